#ifndef BROKER_POOL_BACKEND_REGISTRY_H_
#define BROKER_POOL_BACKEND_REGISTRY_H_

#include <map>
#include <set>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "broker/common/mutex.h"
#include "broker/config/options.h"
#include "broker/io/event_loops.h"
#include "broker/metrics/pool_observer.h"
#include "broker/pool/socket_budget.h"
#include "broker/pool/socket_pool.h"

namespace tlsbroker {

// The pools of all configured backends, by name.
//
// Thread-safe. Pools are handed out as shared_ptr, so a lease keeps its pool alive even if the
// backend is replaced (reload) meanwhile.
class BackendRegistry final {
 public:
  // Builds one pool per backend (TLS contexts load their files here; the first error wins and
  // names the backend). `metrics` may be null.
  static absl::StatusOr<std::unique_ptr<BackendRegistry>> Create(const BrokerOptions& options,
                                                                 EventLoops* loops,
                                                                 MetricsObserver* metrics);

  // The pool of `name`, or null.
  std::shared_ptr<SocketPool> Find(absl::string_view name) const;
  // Every pool, in configuration order.
  std::vector<std::shared_ptr<SocketPool>> All() const;

  // Applies a new configuration, all or nothing: existing backends are reconfigured (new
  // sockets use the new settings; open sockets and running leases are not disturbed), new ones
  // get a pool (started), removed ones are drained and forgotten. Returns every reason that
  // kept the new configuration out; empty = applied.
  std::vector<std::string> Reload(const BrokerOptions& options, EventLoops* loops,
                                  MetricsObserver* metrics);

  // Callers allowed to use the admin API (swapped by Reload).
  std::vector<std::string> AdminCallers() const;

  // The broker-wide socket budget all pools share (limits.max_backend_sockets).
  const SocketBudget& budget() const { return *budget_; }

  void StartAll();
  // Stops lending on every backend for good (SIGTERM): see SocketPool::Shutdown. Unlike
  // DrainAll, nothing resumes it.
  void ShutdownAll();

  // Admin drains, reversible. A backend lends only while neither it (Drain) nor the whole
  // broker (DrainAll) is drained; the two are independent, so ending a whole-broker drain does
  // not undo a drain of one backend. Both survive a reload; a backend a reload adds while the
  // broker is drained starts drained.
  //
  // Drains one backend. False if unknown.
  bool Drain(absl::string_view name);
  // Resumes one backend drained by name. NotFound if unknown; FailedPrecondition after
  // ShutdownAll. OK (and nothing changes) when it was not drained; while the broker is drained
  // it stays out of service until ResumeAll.
  absl::Status Resume(absl::string_view name);
  void DrainAll();
  // Ends the whole-broker drain; returns the backends that lend again. FailedPrecondition
  // after ShutdownAll.
  absl::StatusOr<std::vector<std::string>> ResumeAll();
  // True while the backend does not lend because of a drain (its own or the broker's).
  bool IsDraining(absl::string_view name) const;
  // True while the whole broker is drained (DrainAll or ShutdownAll).
  bool BrokerDraining() const;

 private:
  explicit BackendRegistry(std::shared_ptr<SocketBudget> budget) : budget_(std::move(budget)) {}
  bool LendsLocked(absl::string_view name) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Serializes drain state changes (and the pool Shutdown/Resume that follow them) with each
  // other and with a reload's swap, so a pool's state always matches the flags. Taken before
  // mu_; held while pools run their waiters' callbacks, which never call back in here.
  Mutex drain_mu_;
  // Shared with every pool (a pool may outlive the registry while a lease holds it).
  const std::shared_ptr<SocketBudget> budget_;
  mutable Mutex mu_;
  std::vector<std::shared_ptr<SocketPool>> pools_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<SocketPool>, std::less<>> by_name_ ABSL_GUARDED_BY(mu_);
  // Backends drained by name (Drain); a reload forgets the ones it removes.
  std::set<std::string, std::less<>> drained_ ABSL_GUARDED_BY(mu_);
  bool broker_drained_ ABSL_GUARDED_BY(mu_) = false;  // DrainAll or ShutdownAll.
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;       // ShutdownAll: final.
  std::vector<std::string> admin_callers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tlsbroker

#endif  // BROKER_POOL_BACKEND_REGISTRY_H_
