#include "services/caller_identity.h"

#include <vector>

#include <grpc/grpc_security_constants.h>

#include "absl/strings/match.h"

namespace tlsbroker {
namespace {

std::vector<std::string> Values(const grpc::AuthContext& auth, const char* name) {
  std::vector<std::string> out;
  for (const grpc::string_ref& v : auth.FindPropertyValues(name)) {
    out.emplace_back(v.data(), v.size());
  }
  return out;
}

bool LooksLikeUri(absl::string_view s) { return absl::StrContains(s, "://"); }

}  // namespace

std::string CallerIdentity(const grpc::ServerContextBase& context) {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr || !auth->IsPeerAuthenticated()) return kLocalCallerIdentity;
  // Prefer a SPIFFE ID, then any URI SAN.
  std::vector<std::string> uris = Values(*auth, GRPC_PEER_URI_PROPERTY_NAME);
  if (uris.empty()) {
    for (const std::string& san : Values(*auth, GRPC_X509_SAN_PROPERTY_NAME)) {
      if (LooksLikeUri(san)) uris.push_back(san);
    }
  }
  for (const std::string& uri : uris) {
    if (absl::StartsWith(uri, "spiffe://")) return uri;
  }
  if (!uris.empty()) return uris.front();
  std::vector<std::string> subject = Values(*auth, GRPC_X509_SUBJECT_PROPERTY_NAME);
  if (!subject.empty()) return subject.front();
  return "";
}

}  // namespace tlsbroker
