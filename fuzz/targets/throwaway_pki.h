#ifndef FUZZ_TARGETS_THROWAWAY_PKI_H_
#define FUZZ_TARGETS_THROWAWAY_PKI_H_

// A minimal mutual-TLS PKI made in memory with the OpenSSL API, for fuzz targets that need a
// real TLS peer. The tests' PKI (tests/support) comes from a shell script and a gtest-linked
// library; the fuzz executables link neither, so they make their own: an EC P-256 root CA, a
// server certificate for localhost / 127.0.0.1 and a client certificate, all signed by it.

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <string>

#include "absl/status/statusor.h"

namespace tlsbroker::fuzz {

// Owns its keys and certificates (freed with it). Not copyable.
class ThrowawayPki {
 public:
  static absl::StatusOr<ThrowawayPki> Create();
  ~ThrowawayPki();
  ThrowawayPki(ThrowawayPki&& other) noexcept;
  ThrowawayPki& operator=(ThrowawayPki&&) = delete;
  ThrowawayPki(const ThrowawayPki&) = delete;
  ThrowawayPki& operator=(const ThrowawayPki&) = delete;

  X509* root_cert() const { return root_cert_; }
  X509* server_cert() const { return server_cert_; }
  EVP_PKEY* server_key() const { return server_key_; }

  // Writes root.crt, client.crt and client.key (PEM) into `dir`, the files a BackendOptions
  // names.
  absl::Status WriteClientFiles(const std::string& dir) const;

 private:
  ThrowawayPki() = default;
  EVP_PKEY* root_key_ = nullptr;
  X509* root_cert_ = nullptr;
  EVP_PKEY* server_key_ = nullptr;
  X509* server_cert_ = nullptr;
  EVP_PKEY* client_key_ = nullptr;
  X509* client_cert_ = nullptr;
};

}  // namespace tlsbroker::fuzz

#endif  // FUZZ_TARGETS_THROWAWAY_PKI_H_
