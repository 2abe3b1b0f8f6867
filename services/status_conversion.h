#ifndef SERVICES_STATUS_CONVERSION_H_
#define SERVICES_STATUS_CONVERSION_H_

// One place that turns the core's absl::Status into what a gRPC caller sees: the canonical code
// (Abseil's codes mirror gRPC's 1:1), the message, and a machine-readable reason carried twice:
// as trailing metadata "tlsbroker-reason" and as an ErrorInfo inside grpc-status-details-bin.

#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace tlsbroker {

inline constexpr char kReasonMetadataKey[] = "tlsbroker-reason";

// The reason of `status`: the "<reason>: " prefix the core puts on its messages, else one
// derived from the code ("deadline_exceeded", "not_found", ...).
std::string ReasonFor(const absl::Status& status);

// The gRPC status with details (RpcStatus + ErrorInfo{reason, domain "tlsbroker", metadata}).
// `reason` overrides ReasonFor(status) when non-empty; `backend` goes into the metadata.
grpc::Status ToGrpcStatus(const absl::Status& status, absl::string_view reason = "",
                          absl::string_view backend = "");

// Like ToGrpcStatus, and also adds the reason as trailing metadata on `context` (call it before
// Finish).
grpc::Status FinishStatus(grpc::ServerContextBase* context, const absl::Status& status,
                          absl::string_view reason = "", absl::string_view backend = "");

// The status for a failure that happened after request bytes may have reached the backend:
// ABORTED with reason outcome_unknown, so clients do not blindly resend (payments!).
absl::Status OutcomeUnknown(const absl::Status& cause);

// A Call whose backend did not answer within the backend's pool.call_timeout:
// DEADLINE_EXCEEDED (the caller's wait is over, as with its own deadline) with reason
// outcome_unknown (the request was sent, so the backend may have acted on it).
absl::Status CallTimedOut(absl::string_view backend, absl::Duration call_timeout);

}  // namespace tlsbroker

#endif  // SERVICES_STATUS_CONVERSION_H_
