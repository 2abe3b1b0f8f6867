#include "broker/tls/tls_file_snapshot.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"

namespace tlsbroker {
namespace {

// A file that could not be read: differs from every digest (those are 32 bytes).
constexpr char kUnreadable[] = "unreadable";

// SHA-256 of the file's contents. A digest rather than the contents: the key file's bytes are
// not worth keeping a second copy of in memory.
std::string Fingerprint(const std::string& path) {
  std::ifstream in(path, std::ios::binary);  // Follows symlinks: sees the current target.
  if (!in) return kUnreadable;
  std::ostringstream out;
  out << in.rdbuf();
  std::string contents = out.str();
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  const bool ok = EVP_Digest(contents.data(), contents.size(), digest, &size, EVP_sha256(),
                             nullptr) == 1;
  OPENSSL_cleanse(contents.data(), contents.size());
  if (!ok) return kUnreadable;
  return std::string(reinterpret_cast<const char*>(digest), size);
}

}  // namespace

TlsFileSnapshot TlsFileSnapshot::Read(const TlsOptions& options) {
  TlsFileSnapshot snapshot;
  for (const std::string& path : options.crl_files) snapshot.crls_[path] = Fingerprint(path);
  // Every credential file the options name: a rotated PKCS#12 bundle or a changed password
  // must be picked up like a rotated PEM certificate or key.
  for (const std::string* path : {&options.ca_file, &options.cert_file, &options.key_file,
                                  &options.pkcs12_file, &options.password_file,
                                  &options.key_password_file}) {
    if (!path->empty()) snapshot.credentials_[*path] = Fingerprint(*path);
  }
  return snapshot;
}

TlsFileSnapshot::Changes TlsFileSnapshot::ChangesTo(const TlsFileSnapshot& newer) const {
  Changes changes;
  changes.crl = crls_ != newer.crls_;
  changes.credentials = credentials_ != newer.credentials_;
  return changes;
}

std::string TlsFileKindOfError(const absl::Status& error, const TlsOptions& options) {
  const absl::string_view message = error.message();
  for (const std::string& path : options.crl_files) {
    if (absl::StrContains(message, path)) return "crl";
  }
  // The key first: "client key K does not match the client certificate C" names both. A
  // password file or a PKCS#12 bundle counts as the key: they are what unlocks or holds it.
  for (const std::string* path :
       {&options.key_file, &options.key_password_file, &options.password_file,
        &options.pkcs12_file}) {
    if (!path->empty() && absl::StrContains(message, *path)) return "key";
  }
  if (!options.cert_file.empty() && absl::StrContains(message, options.cert_file)) return "cert";
  if (!options.ca_file.empty() && absl::StrContains(message, options.ca_file)) return "ca";
  return "other";
}

}  // namespace tlsbroker
