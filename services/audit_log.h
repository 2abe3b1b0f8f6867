#ifndef SERVICES_AUDIT_LOG_H_
#define SERVICES_AUDIT_LOG_H_

// The log lines an operator audits besides the per-lease "lease ended" line: one per refused
// request and one per admin action, each naming the caller's identity, the backend and the
// reason, in the broker's log format (text `k=v` or JSON, see broker/common/log.h).
//
//   msg="request refused" rpc=Call caller=spiffe://... backend=b reason=permission_denied
//       code=PERMISSION_DENIED error="..."
//   msg="admin action" action=Drain caller=spiffe://... backend=b result=OK [reason=...]
//       [detail="..."]
//
// `backend` is "*" for an action on the whole broker and empty when none applies.

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace tlsbroker {

// Refusal reasons beyond the status code (what the operator has to change differs).
inline constexpr char kRefusedPermission[] = "permission_denied";
inline constexpr char kRefusedCallerLimit[] = "caller_lease_limit";
inline constexpr char kRefusedSocketBudget[] = "socket_budget_exhausted";
inline constexpr char kRefusedMaxWaiters[] = "max_waiters";
inline constexpr char kRefusedDraining[] = "draining";

// The refusal reason of a failed acquire or a check before it (see the constants), or "" when
// `status` is not a refusal (a backend failure, a deadline, a bad request).
std::string RefusalReason(const absl::Status& status);

// Logs one "request refused" line (info level: refusals can come in bursts, and warnings wake
// the log writer at once).
void LogRefusal(absl::string_view rpc, absl::string_view caller, absl::string_view backend,
                absl::string_view reason, const absl::Status& status);

// Logs one "admin action" line; `status` is the outcome (its code is the result, its message
// the reason when not OK).
void LogAdminAction(absl::string_view action, absl::string_view caller,
                    absl::string_view backend, const absl::Status& status,
                    absl::string_view detail = "");

// "PERMISSION_DENIED", "OK", ...: gRPC's spelling of the code.
std::string CodeName(absl::StatusCode code);

}  // namespace tlsbroker

#endif  // SERVICES_AUDIT_LOG_H_
