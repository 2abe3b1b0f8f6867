#ifndef BROKER_METRICS_METRIC_NAMES_H_
#define BROKER_METRICS_METRIC_NAMES_H_

// Every metric the broker exports, in one sorted list, and the bounded label value sets.
// Names follow Prometheus conventions: `tlsbroker_` prefix, base units (`_seconds`,
// `_bytes`), `_total` on counters. Label values outside a set are reported as "other" (the
// last entry of every set), so a misbehaving caller cannot create unbounded series.

#include <cstddef>

#include "absl/strings/string_view.h"

namespace tlsbroker::metrics {

// Metric names (sorted).
inline constexpr absl::string_view kBackendConnectAttemptsTotal =
    "tlsbroker_backend_connect_attempts_total";
inline constexpr absl::string_view kBuildInfo = "tlsbroker_build_info";
inline constexpr absl::string_view kBytesTotal = "tlsbroker_bytes_total";
inline constexpr absl::string_view kCallDurationSeconds = "tlsbroker_call_duration_seconds";
inline constexpr absl::string_view kCallerLeaseLimitRefusalsTotal =
    "tlsbroker_caller_lease_limit_refusals_total";
inline constexpr absl::string_view kCallsTotal = "tlsbroker_calls_total";
inline constexpr absl::string_view kCertVerifyFailuresTotal =
    "tlsbroker_cert_verify_failures_total";
inline constexpr absl::string_view kClientCertNotAfterTimestampSeconds =
    "tlsbroker_client_cert_not_after_timestamp_seconds";
inline constexpr absl::string_view kConfigLastReloadSuccess =
    "tlsbroker_config_last_reload_success";
inline constexpr absl::string_view kConfigLastReloadSuccessTimestampSeconds =
    "tlsbroker_config_last_reload_success_timestamp_seconds";
inline constexpr absl::string_view kCredentialReloadFailuresTotal =
    "tlsbroker_credential_reload_failures_total";
inline constexpr absl::string_view kCrlNextUpdateTimestampSeconds =
    "tlsbroker_crl_next_update_timestamp_seconds";
inline constexpr absl::string_view kCrlReloadFailuresTotal = "tlsbroker_crl_reload_failures_total";
inline constexpr absl::string_view kCrlStale = "tlsbroker_crl_stale";
inline constexpr absl::string_view kEnullSockets = "tlsbroker_enull_sockets";
inline constexpr absl::string_view kInsecureFilePermissions =
    "tlsbroker_insecure_file_permissions";
inline constexpr absl::string_view kLeaseDurationSeconds = "tlsbroker_lease_duration_seconds";
inline constexpr absl::string_view kLeaseWaitSeconds = "tlsbroker_lease_wait_seconds";
inline constexpr absl::string_view kLeasesEndedTotal = "tlsbroker_leases_ended_total";
inline constexpr absl::string_view kLeasesTotal = "tlsbroker_leases_total";
inline constexpr absl::string_view kLogLinesDroppedTotal = "tlsbroker_log_lines_dropped_total";
inline constexpr absl::string_view kOcspResponsesTotal = "tlsbroker_ocsp_responses_total";
inline constexpr absl::string_view kPeerCertNotAfterTimestampSeconds =
    "tlsbroker_peer_cert_not_after_timestamp_seconds";
inline constexpr absl::string_view kPoolSockets = "tlsbroker_pool_sockets";
inline constexpr absl::string_view kPoolWaiters = "tlsbroker_pool_waiters";
inline constexpr absl::string_view kSocketBudgetLimitSockets =
    "tlsbroker_socket_budget_limit_sockets";
inline constexpr absl::string_view kSocketBudgetRefusalsTotal =
    "tlsbroker_socket_budget_refusals_total";
inline constexpr absl::string_view kSocketBudgetSockets = "tlsbroker_socket_budget_sockets";
inline constexpr absl::string_view kSocketReusesTotal = "tlsbroker_socket_reuses_total";
inline constexpr absl::string_view kSocketsClosedTotal = "tlsbroker_sockets_closed_total";
inline constexpr absl::string_view kTlsHandshakeDurationSeconds =
    "tlsbroker_tls_handshake_duration_seconds";
inline constexpr absl::string_view kTlsHandshakesTotal = "tlsbroker_tls_handshakes_total";

inline constexpr absl::string_view kAllMetricNames[] = {
    kBackendConnectAttemptsTotal,
    kBuildInfo,
    kBytesTotal,
    kCallDurationSeconds,
    kCallerLeaseLimitRefusalsTotal,
    kCallsTotal,
    kCertVerifyFailuresTotal,
    kClientCertNotAfterTimestampSeconds,
    kConfigLastReloadSuccess,
    kConfigLastReloadSuccessTimestampSeconds,
    kCredentialReloadFailuresTotal,
    kCrlNextUpdateTimestampSeconds,
    kCrlReloadFailuresTotal,
    kCrlStale,
    kEnullSockets,
    kInsecureFilePermissions,
    kLeaseDurationSeconds,
    kLeaseWaitSeconds,
    kLeasesEndedTotal,
    kLeasesTotal,
    kLogLinesDroppedTotal,
    kOcspResponsesTotal,
    kPeerCertNotAfterTimestampSeconds,
    kPoolSockets,
    kPoolWaiters,
    kSocketBudgetLimitSockets,
    kSocketBudgetRefusalsTotal,
    kSocketBudgetSockets,
    kSocketReusesTotal,
    kSocketsClosedTotal,
    kTlsHandshakeDurationSeconds,
    kTlsHandshakesTotal,
};

// The process metrics every Prometheus client library exports under these standard names
// (no tlsbroker_ prefix, so generic dashboards and alerts find them), read from /proc/self at
// scrape time (process_collector.h).
inline constexpr absl::string_view kProcessCpuSecondsTotal = "process_cpu_seconds_total";
inline constexpr absl::string_view kProcessMaxFds = "process_max_fds";
inline constexpr absl::string_view kProcessOpenFds = "process_open_fds";
inline constexpr absl::string_view kProcessResidentMemoryBytes = "process_resident_memory_bytes";
inline constexpr absl::string_view kProcessStartTimeSeconds = "process_start_time_seconds";
inline constexpr absl::string_view kProcessVirtualMemoryBytes = "process_virtual_memory_bytes";

inline constexpr absl::string_view kProcessMetricNames[] = {
    kProcessCpuSecondsTotal,     kProcessMaxFds,           kProcessOpenFds,
    kProcessResidentMemoryBytes, kProcessStartTimeSeconds, kProcessVirtualMemoryBytes,
};

// Label names.
inline constexpr absl::string_view kLabelAddress = "address";
inline constexpr absl::string_view kLabelBackend = "backend";
inline constexpr absl::string_view kLabelCode = "code";
inline constexpr absl::string_view kLabelCommit = "commit";
inline constexpr absl::string_view kLabelDirection = "direction";
inline constexpr absl::string_view kLabelFile = "file";
inline constexpr absl::string_view kLabelReason = "reason";
inline constexpr absl::string_view kLabelResult = "result";
inline constexpr absl::string_view kLabelResumed = "resumed";
inline constexpr absl::string_view kLabelSource = "source";
inline constexpr absl::string_view kLabelState = "state";
inline constexpr absl::string_view kLabelStatus = "status";
inline constexpr absl::string_view kLabelVersion = "version";

// backend_connect_attempts_total{result}.
inline constexpr absl::string_view kConnectAttemptResults[] = {"ok", "failed"};

// The catch-all value, last in every set below.
inline constexpr absl::string_view kOther = "other";

// tls_handshakes_total{result}: "ok" or why the socket could not be established.
inline constexpr absl::string_view kHandshakeResults[] = {
    "ok",
    "unknown_ca",
    "expired",
    "not_yet_valid",
    "hostname_mismatch",
    "peer_name_mismatch",
    "san_mismatch",
    "issuer_mismatch",
    "certificate_revoked",
    "crl_stale",
    "crl_unavailable",
    "ocsp_unknown",
    "ocsp_unreachable",
    "ocsp_invalid",
    "spki_pin_mismatch",
    "handshake_timeout",
    "connect_timeout",
    "connect_refused",
    "protocol_version",
    "no_shared_cipher",
    "bad_certificate",
    "peer_rejected_certificate",
    "handshake_failed",
    kOther,
};

// cert_verify_failures_total{reason}: the handshake results that are verification failures.
inline constexpr absl::string_view kCertVerifyFailureReasons[] = {
    "unknown_ca",          "expired",         "not_yet_valid",       "hostname_mismatch",
    "peer_name_mismatch",  "san_mismatch",    "issuer_mismatch",     "certificate_revoked",
    "bad_certificate",     "crl_stale",       "crl_unavailable",     "ocsp_unknown",
    "ocsp_unreachable",    "ocsp_invalid",    "spki_pin_mismatch",   kOther,
};

// ocsp_responses_total{source}: where an OCSP answer came from ("none": no answer was had).
inline constexpr absl::string_view kOcspSources[] = {"staple", "responder", "cache", "none",
                                                     kOther};
// ocsp_responses_total{status}: what it said, or why there was no usable answer.
inline constexpr absl::string_view kOcspStatuses[] = {"good",        "revoked", "unknown",
                                                      "unreachable", "invalid", kOther};

// tls_handshakes_total{resumed}.
inline constexpr absl::string_view kResumedValues[] = {"false", "true"};

// pool_sockets{state}. No "other": OnSocketStates() passes each state explicitly.
inline constexpr absl::string_view kSocketStates[] = {"connecting", "idle", "leased",
                                                      "retiring"};

// socket_budget_sockets{state}: the sockets counted against the budget. Its limit is a
// family of its own (socket_budget_limit_sockets), so that summing this family means
// something. The label stays, with its one value, so that queries written for
// {state="used"} keep working.
inline constexpr absl::string_view kSocketBudgetStates[] = {"used"};

// leases_ended_total{result}: how a granted lease ended.
inline constexpr absl::string_view kLeaseEndResults[] = {"clean", "broken", "reclaimed", kOther};

// sockets_closed_total{reason}.
inline constexpr absl::string_view kCloseReasons[] = {
    "idle",   "lifetime", "max_leases", "per_lease", "revoked",  "expired",
    "broken", "drain",    "dirty",      "shutdown",  "rotation", kOther,
};
// credential_reload_failures_total{file}: which watched file was rejected.
inline constexpr absl::string_view kCredentialFiles[] = {"cert", "key", "ca", kOther};

// calls_total{code} and leases_total{code}: gRPC status code names, as gRPC spells them, in
// code number order (kGrpcCodes[n] is the name of code n). A granted lease counts as "OK"; a
// refused one under the code its caller got.
inline constexpr absl::string_view kGrpcCodes[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
    kOther,
};

// bytes_total{direction}: "sent" is to the backend.
inline constexpr absl::string_view kDirections[] = {"sent", "received", kOther};

// Position of `value` in `values`, or of the last entry ("other") when absent.
template <size_t N>
constexpr size_t LabelIndex(const absl::string_view (&values)[N], absl::string_view value) {
  for (size_t i = 0; i < N; ++i) {
    if (values[i] == value) return i;
  }
  return N - 1;
}

}  // namespace tlsbroker::metrics

#endif  // BROKER_METRICS_METRIC_NAMES_H_
