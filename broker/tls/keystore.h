#ifndef BROKER_TLS_KEYSTORE_H_
#define BROKER_TLS_KEYSTORE_H_

// Client credentials from keystores: PKCS#12 bundles and (possibly encrypted) PEM keys, with
// passwords read from files. Used by the config loader (to reject a bad keystore or a wrong
// password at load time, naming the file) and by TlsClientContext (to load it).
//
// Passwords never appear in a status message or a log line, and are wiped from memory after
// use; errors name the files only.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "broker/tls/openssl_ptr.h"

namespace tlsbroker {

// The client certificate, its key and the chain certificates to send after it.
struct ClientCredentials {
  X509Ptr cert;
  EvpPkeyPtr key;
  std::vector<X509Ptr> chain;
};

// Reads a password file: its first line, without the line ending. An empty or unreadable file
// is an error naming the file.
absl::StatusOr<std::string> ReadPasswordFile(const std::string& path);

// Reads a PKCS#12 file decrypted with the password in `password_file`. Errors say whether the
// file is unreadable, not PKCS#12, the password is wrong, or it holds no key or certificate.
absl::StatusOr<ClientCredentials> LoadPkcs12(const std::string& pkcs12_file,
                                             const std::string& password_file);

// Reads a PEM private key. An encrypted key needs `password_file` (empty: none given); a wrong
// password is an error naming both files.
absl::StatusOr<EvpPkeyPtr> LoadPemPrivateKey(const std::string& key_file,
                                             const std::string& password_file);

}  // namespace tlsbroker

#endif  // BROKER_TLS_KEYSTORE_H_
