#ifndef BROKER_TLS_TLS_FILE_SNAPSHOT_H_
#define BROKER_TLS_TLS_FILE_SNAPSHOT_H_

// Fingerprints (SHA-256) of one backend's TLS files (CA bundle, client certificate and key or
// PKCS#12 bundle, password files, CRLs), to tell when they change. Contents are compared rather than inotify events or mtimes: a
// Kubernetes Secret or ConfigMap update swaps a `..data` symlink, which neither the watched
// path's inode nor its events reflect, while reading through the path always sees the
// current target.

#include <map>
#include <string>

#include "absl/status/status.h"
#include "broker/config/options.h"

namespace tlsbroker {

class TlsFileSnapshot final {
 public:
  // Which kinds of file differ between two snapshots.
  struct Changes {
    bool crl = false;
    bool credentials = false;  // certificate, key, PKCS#12 bundle, password file or CA bundle
    bool any() const { return crl || credentials; }
  };

  TlsFileSnapshot() = default;
  // Reads every file `options` names. An unreadable file is remembered as such (it then
  // differs from any readable content).
  static TlsFileSnapshot Read(const TlsOptions& options);

  Changes ChangesTo(const TlsFileSnapshot& newer) const;

 private:
  std::map<std::string, std::string> crls_;         // path -> SHA-256 of the contents
  std::map<std::string, std::string> credentials_;  // path -> SHA-256 of the contents
};

// Which watched file a context-building error is about: "crl", or for the credential files
// "key", "cert", "ca" (the labels of tlsbroker_credential_reload_failures_total; a PKCS#12
// bundle or a password file counts as "key"), "other" if the message names none of them.
std::string TlsFileKindOfError(const absl::Status& error, const TlsOptions& options);

}  // namespace tlsbroker

#endif  // BROKER_TLS_TLS_FILE_SNAPSHOT_H_
