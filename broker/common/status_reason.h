#ifndef BROKER_COMMON_STATUS_REASON_H_
#define BROKER_COMMON_STATUS_REASON_H_

// A failure's machine-readable reason ("certificate_revoked", "outcome_unknown", ...), carried
// in the absl::Status as a payload, so nothing has to parse it back out of the message. The
// message still starts with "<reason>: " for people reading logs; code reads the payload.
//
// The set of reasons is closed: kReasons is the one table of them (the API turns them into
// UPPER_SNAKE ErrorInfo reasons, docs/errors.md explains each, and a test checks the two agree).
// The metric label tables in broker/metrics name subsets of it.

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace tlsbroker {

// Grouped as docs/errors.md groups them.
inline constexpr absl::string_view kReasons[] = {
    // The broker or the backend is drained (nothing was sent).
    "draining",
    // Reaching the backend (nothing was sent).
    "connect_refused", "connect_timeout", "connect_failed", "resolve_failed",
    "handshake_timeout", "handshake_failed", "protocol_version", "no_shared_cipher",
    "peer_rejected_certificate",
    // The backend's certificate (nothing was sent).
    "unknown_ca", "expired", "not_yet_valid", "bad_certificate", "hostname_mismatch",
    "peer_name_mismatch", "san_mismatch", "issuer_mismatch", "spki_pin_mismatch",
    "certificate_revoked", "crl_stale", "crl_unavailable", "ocsp_unknown", "ocsp_invalid",
    "ocsp_unreachable",
    // The exchange with the backend.
    "outcome_unknown", "backend_closed", "write_failed", "read_failed", "frame_too_large",
    "bad_frame", "extra_response", "unread_bytes",
};

bool IsReason(absl::string_view reason);

// `status` with `reason` attached (replacing any earlier one). `reason` must be one of kReasons;
// anything else is a programming error (checked in debug builds, dropped otherwise).
absl::Status WithReason(absl::Status status, absl::string_view reason);

// A status with code `code`, message "<reason>: <detail>" and `reason` attached.
absl::Status ReasonedError(absl::StatusCode code, absl::string_view reason,
                           absl::string_view detail);

// The reason attached to `status`; "" when none (OK statuses, and failures that are not one of
// the listed reasons, such as bad config or requests: their code says enough).
std::string ReasonOf(const absl::Status& status);

// A new status with `status`'s code and reason and the message `message`: for adding context
// to a message without losing the reason.
absl::Status WithMessage(const absl::Status& status, absl::string_view message);

}  // namespace tlsbroker

#endif  // BROKER_COMMON_STATUS_REASON_H_
