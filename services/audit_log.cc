#include "services/audit_log.h"

#include <iterator>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "broker/common/log.h"
#include "broker/metrics/metric_names.h"

namespace tlsbroker {

std::string CodeName(absl::StatusCode code) {
  // kGrpcCodes is in code number order, ending with "other" (not a code).
  const int index = static_cast<int>(code);
  constexpr int kCodes = static_cast<int>(std::size(metrics::kGrpcCodes)) - 1;
  return std::string(index >= 0 && index < kCodes ? metrics::kGrpcCodes[index] : "UNKNOWN");
}

std::string RefusalReason(const absl::Status& status) {
  const absl::string_view msg = status.message();
  switch (status.code()) {
    case absl::StatusCode::kPermissionDenied:
      return kRefusedPermission;
    case absl::StatusCode::kResourceExhausted:
      // The messages are the broker's own: CallerLeaseLimiter::Take and SocketPool::Acquire /
      // BudgetExhaustedLocked. A frame over max_frame_bytes is RESOURCE_EXHAUSTED too, but
      // arrives after the lease began, where nobody asks.
      if (absl::StrContains(msg, "limits.max_leases_per_caller")) return kRefusedCallerLimit;
      if (absl::StartsWith(msg, "socket budget exhausted")) return kRefusedSocketBudget;
      if (absl::StrContains(msg, "max_waiters")) return kRefusedMaxWaiters;
      return "resource_exhausted";
    case absl::StatusCode::kUnavailable:
      if (absl::StartsWith(msg, "draining:")) return kRefusedDraining;
      return "";
    default:
      return "";
  }
}

void LogRefusal(absl::string_view rpc, absl::string_view caller, absl::string_view backend,
                absl::string_view reason, const absl::Status& status) {
  LogEvent(LogLevel::kInfo, "request refused",
           absl::StrCat(LogField("rpc", rpc), " ", LogField("caller", caller), " ",
                        LogField("backend", backend), " ", LogField("reason", reason), " ",
                        LogField("code", CodeName(status.code())), " ",
                        LogField("error", status.message())));
}

void LogAdminAction(absl::string_view action, absl::string_view caller,
                    absl::string_view backend, const absl::Status& status,
                    absl::string_view detail) {
  std::string fields =
      absl::StrCat(LogField("action", action), " ", LogField("caller", caller), " ",
                   LogField("backend", backend), " ", LogField("result", CodeName(status.code())));
  if (!status.ok()) absl::StrAppend(&fields, " ", LogField("reason", status.message()));
  if (!detail.empty()) absl::StrAppend(&fields, " ", LogField("detail", detail));
  LogEvent(status.ok() ? LogLevel::kInfo : LogLevel::kWarning, "admin action", fields);
}

}  // namespace tlsbroker
