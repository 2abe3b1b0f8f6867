#ifndef BROKER_POOL_SOCKET_POOL_H_
#define BROKER_POOL_SOCKET_POOL_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <asio/steady_timer.hpp>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "broker/common/mutex.h"
#include "broker/config/options.h"
#include "broker/io/event_loops.h"
#include "broker/metrics/pool_observer.h"
#include "broker/pool/lease.h"
#include "broker/pool/lease_owner.h"
#include "broker/pool/pool_state.h"
#include "broker/pool/pooled_socket.h"
#include "broker/tls/peer_chain.h"
#include "broker/pool/socket_budget.h"
#include "broker/tls/tls_client_context.h"
#include "broker/tls/tls_lifecycle.h"
#include "broker/tls/tls_socket.h"

namespace tlsbroker {

// Figures for one pool (admin API, tests).
struct PoolStats {
  int max_sockets = 0;
  int connecting = 0;
  int idle = 0;
  int leased = 0;
  int waiters = 0;
  uint64_t sockets_created = 0;
  uint64_t handshakes_full = 0;
  uint64_t handshakes_resumed = 0;
  uint64_t leases_granted = 0;
  uint64_t connect_failures = 0;
  std::string last_failure;  // "" when the last connect succeeded.
};

// One socket as ListSockets reports it.
struct SocketSnapshot {
  int slot = 0;
  std::string client_id;
  uint64_t socket_id = 0;
  std::string state;  // connecting, idle, leased
  absl::Time created_at;
  int leases_served = 0;
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  std::string lease_id;  // The current lease (admins only).
  std::string lease_caller;     // Who holds it; empty when not leased.
  absl::Time lease_started_at;  // When that lease was granted (when lease_caller is set).
  TlsSessionInfo tls;
};

// The sockets of one backend: at most max_sockets, in numbered slots whose client IDs never
// change. Sockets connect and handshake on the I/O loops; callers wait in FIFO order with a
// deadline; idle sockets are reused most-recently-used first so surplus sockets age out.
//
// The decisions (which caller gets which socket, when to open or close one, backoff, budget,
// shutdown) are PoolState's; this class carries them out: sockets, TLS, timers, callbacks.
// The TLS side over time (the context new sockets use, file watching, CRL staleness,
// rotation, OCSP re-checks of open sockets) is its TlsLifecycle's, which reaches the sockets
// through TlsSocketSet.
//
// Thread-safe. All state is behind mu_; no I/O and no caller callback runs under it.
// Owned by std::shared_ptr (I/O handlers keep it alive). The EventLoops must outlive it.
class SocketPool final : public std::enable_shared_from_this<SocketPool>,
                         public TlsSocketSet,
                         public LeaseOwner {
 public:
  using AcquireCallback = absl::AnyInvocable<void(absl::StatusOr<Lease>) &&>;

  struct AcquireRequest {
    std::string client_id;  // Empty = any socket.
    absl::Time deadline = absl::InfiniteFuture();
    std::string caller;     // For logs and the lease record.
    // The caller's W3C traceparent, validated by the caller of Acquire (empty: none); goes
    // into the lease's audit line.
    std::string trace_parent;
  };

  // `budget` (may be null: no broker-wide limit) is shared with the other pools of the broker;
  // see SocketBudget.
  static absl::StatusOr<std::shared_ptr<SocketPool>> Create(
      const BackendOptions& options, EventLoops* loops,
      std::shared_ptr<BackendObserver> observer = nullptr,
      std::shared_ptr<SocketBudget> budget = nullptr);
  ~SocketPool();
  SocketPool(const SocketPool&) = delete;
  SocketPool& operator=(const SocketPool&) = delete;

  // Starts the prewarm (min_idle) and the retirement sweep.
  void Start();

  // Calls `done` exactly once: inline for errors known at once, otherwise on an I/O thread.
  // Errors: kNotFound (client ID not of this pool), kResourceExhausted (max_waiters, or the
  // broker's socket budget is used up and no idle socket can serve the caller),
  // kDeadlineExceeded, kUnavailable "<reason>: ..." (backend failing, or pool shut down),
  // kCancelled (CancelAcquire). Returns a ticket for CancelAcquire.
  uint64_t Acquire(AcquireRequest request, AcquireCallback done);
  // Stops waiting for `ticket` (no-op once a socket was assigned).
  void CancelAcquire(uint64_t ticket);

  // Stops lending: waiters fail with kUnavailable, idle sockets close (close_notify), leased
  // ones close when their lease ends.
  void Shutdown();
  // Undoes Shutdown (an admin drain is reversible): new leases are served again, the sweep
  // and the prewarm (min_idle) restart. No-op when not shut down. Sockets leased before the
  // drain still close at lease end (they were retired).
  void Resume();

  PoolStats Stats() const;
  std::vector<SocketSnapshot> Sockets() const;
  // The settings in force now (they change on Reconfigure). A lease keeps the snapshot it
  // started with.
  std::shared_ptr<const BackendOptions> options() const ABSL_LOCKS_EXCLUDED(settings_mu_);
  // The context new sockets use (the lifecycle's).
  std::shared_ptr<const TlsClientContext> tls_context() const;
  // The backend's TLS lifecycle: file watching, CRL state, OCSP re-checks (tests drive it).
  TlsLifecycle& tls_lifecycle() const { return *lifecycle_; }
  BackendObserver* observer() const { return observer_.get(); }

  // Applies new settings (reload): TLS credentials and policy, timeouts, min_idle, framing,
  // allowed callers, address. New sockets use them; sockets already open keep what they were
  // made with, and no lease is disturbed. max_sockets and client_id cannot change (they define
  // the slots and their IDs). In two steps so a reload of many backends is all or nothing:
  // Prepare checks `next` and builds its TLS context (reading the files) without changing
  // anything; Apply swaps them in.
  absl::StatusOr<std::shared_ptr<const TlsClientContext>> PrepareReconfigure(
      const BackendOptions& next) const;
  void ApplyReconfigure(const BackendOptions& next,
                        std::shared_ptr<const TlsClientContext> context)
      ABSL_LOCKS_EXCLUDED(settings_mu_);

  // TlsSocketSet. RetireIf: see there. Called outside the pool's lock, from any thread. A
  // socket still connecting is not seen; a caller whose check depends on the TLS context
  // installs the context first (sockets that connect with an older one are re-checked, see
  // OnConnected). Used for CRL and OCSP revocation and credential rotation.
  std::vector<OpenTlsSocket> OpenSockets() const override ABSL_LOCKS_EXCLUDED(mu_);
  int RetireIf(absl::FunctionRef<bool(const PeerChain&)> matches, absl::string_view close_reason,
               LeasedPolicy leased, absl::string_view abort_reason) override
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // A queued caller's side that the PoolState does not keep (it knows the ticket).
  struct Pending {
    AcquireCallback done;
    std::string caller;
    std::string trace_parent;
  };
  struct Grant {
    PoolState::Waiter waiter;
    Pending pending;
    std::shared_ptr<PooledSocket> socket;
  };
  // The state's decisions with the callbacks and sockets they name, taken under the lock (so
  // they still match the decision) and carried out after it is released.
  struct Actions {
    std::vector<std::pair<Pending, absl::Status>> failures;
    std::vector<std::pair<std::shared_ptr<PooledSocket>, std::string>> closes;
    std::vector<int> connects;  // Slot numbers (1-based) to connect.
    std::vector<Grant> grants;
    bool sync_deadline_timer = false;
    bool sync_retry_timer = false;
  };
  enum class Timer { kDeadline, kRetry };

  SocketPool(const BackendOptions& options, EventLoops* loops,
             std::shared_ptr<BackendObserver> observer, std::shared_ptr<SocketBudget> budget);

  void Dispatch() ABSL_LOCKS_EXCLUDED(mu_);
  // Looks up what `decided` names (callbacks, sockets), drops the sockets the state no longer
  // holds, and reports the figures.
  Actions TakeActionsLocked(PoolState::Actions decided) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Run(Actions actions) ABSL_LOCKS_EXCLUDED(mu_);
  void ReportStatesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Aims the timer where the state wants it now (on timer_loop_).
  void SyncTimer(Timer which) ABSL_LOCKS_EXCLUDED(mu_);
  void OnTimer(Timer which) ABSL_LOCKS_EXCLUDED(mu_);
  // Whether the socket is still the one in its slot.
  bool HoldsLocked(const std::shared_ptr<PooledSocket>& socket) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void StartConnect(int slot);
  // Connects slot `slot` to the `index`th of opts' addresses; on failure tries the next one,
  // and after the last reports the failure to OnConnected (which starts the backoff).
  void ConnectTo(int slot, std::shared_ptr<const BackendOptions> opts, size_t index);
  // Tells the observer which addresses new sockets try.
  void ReportAddresses(const BackendOptions& options);
  void OnConnected(int slot, std::shared_ptr<TlsSocket> tls, absl::Status status);
  void Activate(Grant grant);
  void OnIdleBroken(const std::shared_ptr<PooledSocket>& socket, absl::Status status);
  void Sweep();
  void ScheduleSweep();
  static void CloseOnLoop(std::shared_ptr<PooledSocket> socket);

  // LeaseOwner: how a lease hands its socket back.
  void ReturnSocket(const std::shared_ptr<PooledSocket>& socket, absl::Status verdict,
                    absl::string_view close_reason) override ABSL_LOCKS_EXCLUDED(mu_);
  void NoteReturning(const std::shared_ptr<PooledSocket>& socket) override
      ABSL_LOCKS_EXCLUDED(mu_);
  void ForgetSocket(const std::shared_ptr<PooledSocket>& socket) override
      ABSL_LOCKS_EXCLUDED(mu_);

  EventLoops* const loops_;
  // Swapped by Reconfigure; read through options(). A leaf lock.
  mutable Mutex settings_mu_;
  std::shared_ptr<const BackendOptions> options_ ABSL_GUARDED_BY(settings_mu_);
  const std::shared_ptr<BackendObserver> observer_;
  // Set once by Create, before the pool is shared. Holds the pool weakly.
  std::shared_ptr<TlsLifecycle> lifecycle_;
  const std::shared_ptr<SocketBudget> budget_;  // May be null.
  asio::io_context& timer_loop_;  // Runs the sweep, retry and deadline timers (an I/O loop).
  asio::steady_timer sweep_timer_;
  asio::steady_timer retry_timer_;     // The backoff's end (PoolState::retry_timer_at).
  asio::steady_timer deadline_timer_;  // The earliest waiter deadline.

  mutable Mutex mu_;
  // After budget_: gives its tokens back when the pool goes.
  PoolState state_ ABSL_GUARDED_BY(mu_);
  // By slot: the socket of an idle or leased slot, null otherwise.
  std::vector<std::shared_ptr<PooledSocket>> sockets_ ABSL_GUARDED_BY(mu_);
  std::unordered_map<uint64_t, Pending> pending_ ABSL_GUARDED_BY(mu_);  // By ticket.
};

}  // namespace tlsbroker

#endif  // BROKER_POOL_SOCKET_POOL_H_
