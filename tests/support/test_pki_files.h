#ifndef TESTS_SUPPORT_TEST_PKI_FILES_H_
#define TESTS_SUPPORT_TEST_PKI_FILES_H_

// Certificates and CRLs made at run time from the test PKI's intermediate CA (the things the
// PKI script cannot make ahead: a CRL with a chosen nextUpdate, a certificate that expires a
// few seconds from now), and a directory that publishes files the way Kubernetes updates a
// mounted Secret or ConfigMap.

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace tlsbroker::testutil {

// Writes to `out` (PEM) a CRL of the PKI's intermediate CA (`alg`: "ec" or "rsa") revoking
// the certificates in `revoked` (PEM files), with the given lastUpdate and nextUpdate.
absl::Status WriteIntermediateCrl(absl::string_view alg, const std::string& out,
                                  const std::vector<std::string>& revoked,
                                  absl::Time last_update, absl::Time next_update);

// Writes to `out` (PEM) a copy of certificate `source` (same subject, SANs and key) re-issued
// by the intermediate CA with a new serial, valid from an hour ago until `not_after`.
absl::Status WriteReissuedCertificate(absl::string_view alg, const std::string& source,
                                      absl::Time not_after, const std::string& out);

// A directory laid out like a Kubernetes Secret volume: `dir/NAME` -> `..data/NAME`,
// `..data` -> `..<version>/`. Publish() writes a new version directory and swaps `..data` with
// one rename(2), so a reader sees the old files or the new ones, never a mix.
class KubernetesStyleDir final {
 public:
  explicit KubernetesStyleDir(std::string dir) : dir_(std::move(dir)) {}
  // name -> contents. Every name published once keeps its top-level symlink.
  absl::Status Publish(const std::map<std::string, std::string>& files);
  std::string Path(absl::string_view name) const;

 private:
  std::string dir_;
  int version_ = 0;
};

}  // namespace tlsbroker::testutil

#endif  // TESTS_SUPPORT_TEST_PKI_FILES_H_
