#include "broker/common/status_reason.h"

#include <cassert>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/types/optional.h"

namespace tlsbroker {
namespace {

// The payload's type URL: a name of ours, so it cannot clash with anyone else's payload.
constexpr absl::string_view kReasonPayloadUrl = "type.tlsbroker.dev/tlsbroker.FailureReason";

}  // namespace

bool IsReason(absl::string_view reason) {
  for (absl::string_view known : kReasons) {
    if (known == reason) return true;
  }
  return false;
}

absl::Status WithReason(absl::Status status, absl::string_view reason) {
  assert(IsReason(reason) && "add the reason to kReasons (and docs/errors.md)");
  if (status.ok() || !IsReason(reason)) return status;
  status.SetPayload(kReasonPayloadUrl, absl::Cord(reason));
  return status;
}

absl::Status ReasonedError(absl::StatusCode code, absl::string_view reason,
                           absl::string_view detail) {
  return WithReason(absl::Status(code, absl::StrCat(reason, ": ", detail)), reason);
}

std::string ReasonOf(const absl::Status& status) {
  absl::optional<absl::Cord> payload = status.GetPayload(kReasonPayloadUrl);
  return payload.has_value() ? std::string(*payload) : std::string();
}

absl::Status WithMessage(const absl::Status& status, absl::string_view message) {
  absl::Status out(status.code(), message);
  std::string reason = ReasonOf(status);
  return reason.empty() ? out : WithReason(std::move(out), reason);
}

}  // namespace tlsbroker
