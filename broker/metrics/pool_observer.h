#ifndef BROKER_METRICS_POOL_OBSERVER_H_
#define BROKER_METRICS_POOL_OBSERVER_H_

// The core reports what happens through these interfaces, so broker/pool and broker/tls do not
// depend on a metrics library. The prometheus-cpp implementation lives in
// prometheus_observer.h (its own target); tests use a recording fake.
//
// Label values passed here are bounded sets (see metric_names.h for the lists). An
// implementation maps a value outside its known set to "other" rather than creating a series.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace tlsbroker {

// One backend's observer. Thread-safe: called from I/O threads and gRPC threads at once.
// Implementations must not block and must not call back into the pool.
class BackendObserver {
 public:
  virtual ~BackendObserver() = default;

  // A TLS handshake finished. `result` is "ok" or a failure reason ("unknown_ca", ...).
  virtual void OnHandshake(absl::string_view result, bool resumed, absl::Duration duration) = 0;
  // Certificate verification failed with `reason` (a subset of handshake failures).
  virtual void OnCertVerifyFailure(absl::string_view reason) = 0;
  // Current socket counts by state; called whenever one changes.
  virtual void OnSocketStates(int connecting, int idle, int leased, int retiring) = 0;
  virtual void OnWaiters(int waiters) = 0;
  // A lease was granted after `wait`; `reused` is true when the socket served an earlier lease.
  virtual void OnLeaseGranted(absl::Duration wait, bool reused) = 0;
  // An acquire failed with `code`, the status its caller gets (kDeadlineExceeded,
  // kResourceExhausted, kUnavailable, kCancelled, kNotFound, ...). A code rather than a word,
  // so that the metric's label is the gRPC code name the caller saw, spelt as Call's.
  virtual void OnLeaseRefused(absl::StatusCode code) = 0;
  // A lease ended; `result` is "clean", "broken" or "reclaimed".
  virtual void OnLeaseEnded(absl::string_view result, absl::Duration duration) = 0;
  // A socket was closed; `reason` is idle, lifetime, max_leases, per_lease, revoked, expired,
  // broken, drain, dirty, shutdown or rotation.
  virtual void OnSocketClosed(absl::string_view reason) = 0;
  // Application bytes moved; `direction` is "sent" (to the backend) or "received".
  virtual void OnBytes(absl::string_view direction, uint64_t bytes) = 0;
  // A Call finished with the gRPC-style code name ("OK", "UNAVAILABLE", ...).
  virtual void OnCall(absl::string_view code, absl::Duration duration) = 0;
  virtual void OnPeerCertNotAfter(absl::Time not_after) = 0;
  virtual void OnClientCertNotAfter(absl::Time not_after) = 0;
  virtual void OnEnullSockets(int sockets) = 0;
  // The earliest nextUpdate of the backend's CRLs, and whether it has passed (stale).
  virtual void OnCrlNextUpdate(absl::Time next_update, bool stale) = 0;
  // A changed CRL file could not be loaded; the previous CRLs stay in force.
  virtual void OnCrlReloadFailure() = 0;
  // A changed certificate, key or CA file (`file`: cert, key, ca) was rejected; the previous
  // credentials stay in use.
  virtual void OnCredentialReloadFailure(absl::string_view file) = 0;
  // An OCSP check of the backend certificate: `source` is staple, responder, cache or none;
  // `status` is good, revoked, unknown, unreachable or invalid. A no-op by default so that
  // observers which do not export OCSP need not change.
  virtual void OnOcspResponse(absl::string_view /*source*/, absl::string_view /*status*/) {}
  // The addresses new sockets try, in order (at creation and on every reconfigure), so an
  // observer can create their series before any attempt. No-op by default.
  virtual void OnAddresses(const std::vector<std::string>& /*addresses*/) {}
  // One connect and handshake attempt to `address` (one of OnAddresses'); `ok` whether it
  // gave a socket. No-op by default.
  virtual void OnConnectAttempt(absl::string_view /*address*/, bool /*ok*/) {}
};

// Hands out one BackendObserver per backend. Thread-safe.
class MetricsObserver {
 public:
  virtual ~MetricsObserver() = default;
  // Creates (or returns the existing) observer for `backend`; the returned pointer stays valid
  // as long as the MetricsObserver lives.
  virtual std::shared_ptr<BackendObserver> ForBackend(absl::string_view backend) = 0;

  // Broker-wide figures (not per backend). No-ops by default so fakes need not implement them.
  // The socket budget (limits.max_backend_sockets): its limit (0 = unlimited) and the sockets
  // counted against it (connecting + open, all backends).
  virtual void OnSocketBudget(int /*limit*/, int /*used*/) {}
  // A lease or Call was refused because the socket budget was used up.
  virtual void OnSocketBudgetRefused() {}
  // A lease or Call was refused because its caller held limits.max_leases_per_caller already.
  virtual void OnCallerLeaseLimitRefused() {}
  // How many config and key files are readable or writable by group or others.
  virtual void OnInsecureFilePermissions(int /*files*/) {}
};

// Discards everything. For tests and tools that do not export metrics.
class NullBackendObserver final : public BackendObserver {
 public:
  void OnHandshake(absl::string_view, bool, absl::Duration) override {}
  void OnCertVerifyFailure(absl::string_view) override {}
  void OnSocketStates(int, int, int, int) override {}
  void OnWaiters(int) override {}
  void OnLeaseGranted(absl::Duration, bool) override {}
  void OnLeaseRefused(absl::StatusCode) override {}
  void OnLeaseEnded(absl::string_view, absl::Duration) override {}
  void OnSocketClosed(absl::string_view) override {}
  void OnBytes(absl::string_view, uint64_t) override {}
  void OnCall(absl::string_view, absl::Duration) override {}
  void OnPeerCertNotAfter(absl::Time) override {}
  void OnClientCertNotAfter(absl::Time) override {}
  void OnEnullSockets(int) override {}
  void OnCrlNextUpdate(absl::Time, bool) override {}
  void OnCrlReloadFailure() override {}
  void OnCredentialReloadFailure(absl::string_view) override {}
};

}  // namespace tlsbroker

#endif  // BROKER_METRICS_POOL_OBSERVER_H_
