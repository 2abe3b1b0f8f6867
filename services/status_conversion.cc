#include "services/status_conversion.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "broker/common/status_reason.h"
#include "tlsbroker/v1/broker.pb.h"

namespace tlsbroker {

std::string ReasonFor(const absl::Status& status) {
  std::string reason = ReasonOf(status);
  if (!reason.empty()) return reason;
  return absl::AsciiStrToLower(absl::StatusCodeToString(status.code()));
}

absl::Span<const absl::string_view> KnownReasons() { return kReasons; }

std::string ApiReason(const absl::Status& status, absl::string_view reason) {
  std::string why = reason.empty() ? ReasonFor(status) : std::string(reason);
  if (!IsReason(why)) why = absl::StatusCodeToString(status.code());
  return absl::AsciiStrToUpper(why);
}

grpc::Status ToGrpcStatus(const absl::Status& status, absl::string_view reason,
                          absl::string_view backend) {
  if (status.ok()) return grpc::Status::OK;
  v1::ErrorInfo info;
  info.set_reason(ApiReason(status, reason));
  info.set_domain(kErrorDomain);
  if (!backend.empty()) (*info.mutable_metadata())["backend"] = std::string(backend);
  v1::RpcStatus details;
  details.set_code(static_cast<int>(status.code()));
  details.set_message(std::string(status.message()));
  auto* any = details.add_details();
  any->set_type_url("type.googleapis.com/google.rpc.ErrorInfo");
  any->set_value(info.SerializeAsString());
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()),
                      details.SerializeAsString());
}

grpc::Status FinishStatus(grpc::ServerContextBase* context, const absl::Status& status,
                          absl::string_view reason, absl::string_view backend) {
  if (!status.ok()) {
    context->AddTrailingMetadata(kReasonMetadataKey, ApiReason(status, reason));
  }
  return ToGrpcStatus(status, reason, backend);
}

absl::Status OutcomeUnknown(const absl::Status& cause) {
  return ReasonedError(absl::StatusCode::kAborted, "outcome_unknown",
                       absl::StrCat("the request may have reached the backend before this "
                                    "failure (",
                                    cause.message(), "); do not resend blindly"));
}

absl::Status CallTimedOut(absl::string_view backend, absl::Duration call_timeout) {
  return ReasonedError(absl::StatusCode::kDeadlineExceeded, "outcome_unknown",
                       absl::StrCat("backend ", backend,
                                    " sent no response within pool.call_timeout ",
                                    absl::FormatDuration(call_timeout),
                                    "; the request may have reached it, so do not resend "
                                    "blindly"));
}

}  // namespace tlsbroker
