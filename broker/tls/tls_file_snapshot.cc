#include "broker/tls/tls_file_snapshot.h"

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"

namespace tlsbroker {
namespace {

// "\0" cannot start a PEM or DER file (DER starts with a SEQUENCE tag), so it marks a file
// that could not be read without colliding with real content.
constexpr char kUnreadable[] = "\0unreadable";

std::string Contents(const std::string& path) {
  std::ifstream in(path, std::ios::binary);  // Follows symlinks: sees the current target.
  if (!in) return std::string(kUnreadable, sizeof(kUnreadable) - 1);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace

TlsFileSnapshot TlsFileSnapshot::Read(const TlsOptions& options) {
  TlsFileSnapshot snapshot;
  for (const std::string& path : options.crl_files) snapshot.crls_[path] = Contents(path);
  for (const std::string* path : {&options.ca_file, &options.cert_file, &options.key_file}) {
    if (!path->empty()) snapshot.credentials_[*path] = Contents(*path);
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
  // The key first: "client key K does not match the client certificate C" names both.
  if (!options.key_file.empty() && absl::StrContains(message, options.key_file)) return "key";
  if (!options.cert_file.empty() && absl::StrContains(message, options.cert_file)) return "cert";
  if (!options.ca_file.empty() && absl::StrContains(message, options.ca_file)) return "ca";
  return "other";
}

}  // namespace tlsbroker
