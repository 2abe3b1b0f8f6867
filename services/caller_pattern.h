#ifndef SERVICES_CALLER_PATTERN_H_
#define SERVICES_CALLER_PATTERN_H_

// The pattern language of `allowed_callers` (per backend) and `listen.admin_callers`.
//
// A caller identity is a URI SAN (a SPIFFE ID when the certificate has one), else the subject
// DN as gRPC prints it (RFC 2253: "CN=batch,OU=ops,O=Example,C=GB"), or "local" on a plaintext
// listener. SPIFFE IDs, URI paths and DN values are case-sensitive, so patterns are too:
//
// - Without `*`, a pattern matches exactly that identity, byte for byte.
// - A `*` at the end matches any rest, including nothing and including '/': it is a prefix
//   match. "spiffe://example.org/ns/payments/sa/*" admits ".../sa/app1" and ".../sa/app1/x"
//   but not ".../ns/PAYMENTS/sa/app1". End the prefix with '/' to stay inside one path
//   ("spiffe://example.org/ns/pay*" also admits ".../ns/payroll/...").
// - "*" alone matches every (non-empty) identity.
// - `*` anywhere else is refused by the config loader (a leading `*` would match the end of an
//   identity from any trust domain). Should such a pattern reach the matcher anyway, its `*` is
//   a literal character: it can only match less, never more.
//
// Case-insensitive matching stays where MQ defines it: tls.peer_name / tls.issuer_name of a
// backend (broker/tls/peer_name_filter.h), never for callers.

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace tlsbroker {

// One-line summary of the rules above, for --check-config and error messages.
inline constexpr char kCallerPatternRules[] =
    "case-sensitive; exact, or a prefix ending in `*` (which also matches '/')";

// True when `identity` matches `pattern` by the rules above.
bool CallerPatternMatches(absl::string_view pattern, absl::string_view identity);

// True when `identity` matches one of `patterns`. An empty list, and an empty identity (a
// certificate without URI SAN or subject), allow nobody.
bool CallerAllowed(const std::vector<std::string>& patterns, absl::string_view identity);

}  // namespace tlsbroker

#endif  // SERVICES_CALLER_PATTERN_H_
