#ifndef SERVICES_CALLER_LEASE_LIMITER_H_
#define SERVICES_CALLER_LEASE_LIMITER_H_

#include <atomic>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "broker/common/mutex.h"
#include "broker/metrics/pool_observer.h"

namespace tlsbroker {

// limits.max_leases_per_caller: how many leases (Lease streams and Calls, from the moment they
// ask for a socket until they end) one caller identity may hold at once, over all backends.
// One caller that opens streams without end cannot then take every socket and waiter place
// from the others; it gets RESOURCE_EXHAUSTED instead.
//
// Thread-safe; mu_ is a leaf (reactors call it under their own mutex).
class CallerLeaseLimiter final {
 public:
  // One counted lease; move-only. Destroying it (or Release()) gives the place back.
  class Slot {
   public:
    Slot() = default;
    Slot(Slot&& other) noexcept;
    Slot& operator=(Slot&& other) noexcept;
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot() { Release(); }
    void Release();

   private:
    friend class CallerLeaseLimiter;
    Slot(CallerLeaseLimiter* limiter, std::string caller)
        : limiter_(limiter), caller_(std::move(caller)) {}
    CallerLeaseLimiter* limiter_ = nullptr;
    std::string caller_;
  };

  // `limit` 0 = unlimited. `metrics` may be null; it must outlive the limiter.
  CallerLeaseLimiter(int limit, MetricsObserver* metrics) : limit_(limit), metrics_(metrics) {}
  CallerLeaseLimiter(const CallerLeaseLimiter&) = delete;
  CallerLeaseLimiter& operator=(const CallerLeaseLimiter&) = delete;

  // A place for one more lease of `caller`, or RESOURCE_EXHAUSTED naming the limit. Every
  // Slot must be gone before the limiter is.
  absl::StatusOr<Slot> Take(absl::string_view caller);
  // Reload. Leases above a lowered limit keep running; new ones wait until below it.
  void SetLimit(int limit) { limit_.store(limit, std::memory_order_relaxed); }
  // Leases `caller` holds now.
  int ActiveFor(absl::string_view caller) const;

 private:
  void Give(const std::string& caller);

  std::atomic<int> limit_;
  MetricsObserver* const metrics_;
  mutable Mutex mu_;
  // Only callers holding at least one lease: the map stays as small as the active set.
  std::map<std::string, int, std::less<>> active_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tlsbroker

#endif  // SERVICES_CALLER_LEASE_LIMITER_H_
