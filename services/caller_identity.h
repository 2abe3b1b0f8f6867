#ifndef SERVICES_CALLER_IDENTITY_H_
#define SERVICES_CALLER_IDENTITY_H_

#include <string>

#include <grpcpp/grpcpp.h>

namespace tlsbroker {

// The identity a caller authenticated with: the URI SAN of its client certificate (a SPIFFE ID
// when it has one), else its subject DN (RFC 2253). A caller on a plaintext listener (loopback
// or unix socket, when the config allows one) has no certificate; its identity is "local".
//
// gRPC 1.51 sets peer_spiffe_id only for certificates with exactly one URI SAN, so the URI SANs
// are read from the x509_subject_alternative_name property directly. Matched against
// allowed_callers / admin_callers by services/caller_pattern.h (case-sensitive).
std::string CallerIdentity(const grpc::ServerContextBase& context);

inline constexpr char kLocalCallerIdentity[] = "local";

}  // namespace tlsbroker

#endif  // SERVICES_CALLER_IDENTITY_H_
