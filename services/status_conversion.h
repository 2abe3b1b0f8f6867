#ifndef SERVICES_STATUS_CONVERSION_H_
#define SERVICES_STATUS_CONVERSION_H_

// One place that turns the core's absl::Status into what a gRPC caller sees: the canonical code
// (Abseil's codes mirror gRPC's 1:1), the message, and a machine-readable reason carried twice:
// as trailing metadata "tlsbroker-reason" and as an ErrorInfo inside grpc-status-details-bin.
//
// Inside the broker (log lines, metric labels) a reason is lower_snake, as Prometheus labels
// are; on the API it is UPPER_SNAKE with the domain kErrorDomain, as google.rpc.ErrorInfo
// (AIP-193) asks. docs/errors.md lists every reason and what a caller should do about it.

#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "absl/time/time.h"

namespace tlsbroker {

inline constexpr char kReasonMetadataKey[] = "tlsbroker-reason";
// ErrorInfo.domain: DNS-style, as AIP-193 asks, so it cannot clash with another service's.
inline constexpr char kErrorDomain[] = "tlsbroker.dev";

// The reason of `status`: the one the core attached (status_reason.h), else one derived from
// the code ("deadline_exceeded", "not_found", ...).
std::string ReasonFor(const absl::Status& status);

// The reason as callers see it, in UPPER_SNAKE: ReasonFor (or `reason` when non-empty) when it
// is one of KnownReasons(), otherwise the name of the status code. So the API's set of reasons
// is closed and documented (docs/errors.md, which a test checks against the table).
std::string ApiReason(const absl::Status& status, absl::string_view reason = "");

// Every specific reason the API can carry (lower_snake): the core's table, kReasons.
absl::Span<const absl::string_view> KnownReasons();

// The gRPC status with details (RpcStatus + ErrorInfo{ApiReason, kErrorDomain, metadata}).
// `reason` (lower_snake) overrides ReasonFor(status) when non-empty; `backend` goes into the metadata.
grpc::Status ToGrpcStatus(const absl::Status& status, absl::string_view reason = "",
                          absl::string_view backend = "");

// Like ToGrpcStatus, and also adds the reason as trailing metadata on `context` (call it before
// Finish).
grpc::Status FinishStatus(grpc::ServerContextBase* context, const absl::Status& status,
                          absl::string_view reason = "", absl::string_view backend = "");

// The status for a failure that happened after request bytes may have reached the backend:
// ABORTED with reason OUTCOME_UNKNOWN, so clients do not blindly resend (payments!).
absl::Status OutcomeUnknown(const absl::Status& cause);

// A Call whose backend did not answer within the backend's pool.call_timeout:
// DEADLINE_EXCEEDED (the caller's wait is over, as with its own deadline) with reason
// OUTCOME_UNKNOWN (the request was sent, so the backend may have acted on it).
absl::Status CallTimedOut(absl::string_view backend, absl::Duration call_timeout);

}  // namespace tlsbroker

#endif  // SERVICES_STATUS_CONVERSION_H_
