#ifndef BROKER_TLS_FAILURE_REASON_H_
#define BROKER_TLS_FAILURE_REASON_H_

// Turns OpenSSL's view of a failed handshake into one bounded reason label
// ("unknown_ca", "expired", ...). The reason reaches the caller (in the status message and as
// the `reason` of an UNAVAILABLE error) and the metric labels, so the set is closed: anything
// unrecognised is "handshake_failed".

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "broker/common/status_reason.h"

typedef struct ssl_st SSL;

namespace tlsbroker {

// Reason for a certificate verification error code (X509_V_ERR_*).
absl::string_view ReasonForVerifyError(long verify_error);

// Reason for a handshake that failed on `ssl` (verification result, application checks stored by
// the context, alerts from the peer). Reads but does not clear the OpenSSL error queue.
std::string HandshakeFailureReason(SSL* ssl);

// Builds the status the pool reports for a failed connect or handshake: kUnavailable with
// message "<reason>: <detail>" and the reason attached (ReasonOf in status_reason.h reads it).
absl::Status TlsFailure(absl::string_view reason, absl::string_view detail);

}  // namespace tlsbroker

#endif  // BROKER_TLS_FAILURE_REASON_H_
