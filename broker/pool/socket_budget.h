#ifndef BROKER_POOL_SOCKET_BUDGET_H_
#define BROKER_POOL_SOCKET_BUDGET_H_

#include <atomic>
#include <mutex>

#include "broker/metrics/pool_observer.h"

namespace tlsbroker {

// The broker-wide budget of backend sockets (limits.max_backend_sockets): one token per socket
// that is connecting or open, shared by every pool of a BackendRegistry. It keeps the process
// below its file-descriptor limit whatever the sum of the pools' max_sockets is, so listeners,
// gRPC connections and config files can always still be opened.
//
// A pool takes a token when it reserves a slot for a new socket and gives it back when the slot
// is empty again (the socket closed, or its connect failed). When no token is left, a caller
// that no idle socket can serve is refused at once (RESOURCE_EXHAUSTED) instead of waiting: the
// tokens are held by sockets of other backends, which are not handed back on any schedule this
// caller could wait for (leased ones return when their callers are done, idle ones only at
// idle_timeout), so waiting would mostly end in DEADLINE_EXCEEDED after acquire_timeout, with
// the caller's stream held open meanwhile. Failing at once tells the caller and the operator
// what is wrong, and sockets already open are never touched.
//
// Thread-safe. Pools call it while holding their own mutex: its own lock (report_mu_, which
// only orders the metric updates) is a leaf.
class SocketBudget final {
 public:
  // `limit` < 1 means unlimited. `observer` may be null; it must outlive the budget.
  SocketBudget(int limit, MetricsObserver* observer);
  SocketBudget(const SocketBudget&) = delete;
  SocketBudget& operator=(const SocketBudget&) = delete;

  // Takes one token; false when the budget is used up.
  bool TryTake();
  // Gives back `n` tokens taken earlier.
  void Give(int n);
  // Counts a caller refused for want of a token (the metric).
  void NoteRefused();
  // Changes the limit (reload). Sockets above a lowered limit stay open; no new ones open
  // until enough have closed.
  void SetLimit(int limit);

  int limit() const { return limit_.load(std::memory_order_relaxed); }
  int used() const { return used_.load(std::memory_order_relaxed); }

 private:
  void Report() const;

  mutable std::mutex report_mu_;  // So the last gauge update carries the latest figures.
  std::atomic<int> limit_;
  std::atomic<int> used_{0};
  MetricsObserver* const observer_;
};

}  // namespace tlsbroker

#endif  // BROKER_POOL_SOCKET_BUDGET_H_
