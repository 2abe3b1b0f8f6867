#ifndef SERVICES_CALLER_IDENTITY_H_
#define SERVICES_CALLER_IDENTITY_H_

#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/string_view.h"

namespace tlsbroker {

// The identity a caller authenticated with: the URI SAN of its client certificate (a SPIFFE ID
// when it has one), else its subject DN (RFC 2253). A caller on a plaintext listener (loopback
// or unix socket, when the config allows one) has no certificate; its identity is "local".
//
// gRPC 1.51 sets peer_spiffe_id only for certificates with exactly one URI SAN, so the URI SANs
// are read from the x509_subject_alternative_name property directly.
std::string CallerIdentity(const grpc::ServerContextBase& context);

inline constexpr char kLocalCallerIdentity[] = "local";

// True when `identity` matches one of `patterns` (case-insensitive, `*` at the start and/or
// end). An empty list allows nobody.
bool CallerAllowed(const std::vector<std::string>& patterns, absl::string_view identity);

}  // namespace tlsbroker

#endif  // SERVICES_CALLER_IDENTITY_H_
