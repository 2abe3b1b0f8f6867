#include "services/caller_lease_limiter.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace tlsbroker {

CallerLeaseLimiter::Slot::Slot(Slot&& other) noexcept
    : limiter_(std::exchange(other.limiter_, nullptr)), caller_(std::move(other.caller_)) {}

CallerLeaseLimiter::Slot& CallerLeaseLimiter::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    Release();
    limiter_ = std::exchange(other.limiter_, nullptr);
    caller_ = std::move(other.caller_);
  }
  return *this;
}

void CallerLeaseLimiter::Slot::Release() {
  if (limiter_ == nullptr) return;
  std::exchange(limiter_, nullptr)->Give(caller_);
}

absl::StatusOr<CallerLeaseLimiter::Slot> CallerLeaseLimiter::Take(absl::string_view caller) {
  const int limit = limit_.load(std::memory_order_relaxed);
  {
    MutexLock lock(&mu_);
    auto it = active_.find(caller);
    const int held = it == active_.end() ? 0 : it->second;
    if (limit <= 0 || held < limit) {
      if (it == active_.end()) {
        active_.emplace(std::string(caller), 1);
      } else {
        ++it->second;
      }
      return Slot(this, std::string(caller));
    }
  }
  if (metrics_ != nullptr) metrics_->OnCallerLeaseLimitRefused();
  return absl::ResourceExhaustedError(absl::StrCat(
      "caller \"", caller, "\" holds ", limit, " leases already (limits.max_leases_per_caller ",
      limit, "); end one before starting another"));
}

int CallerLeaseLimiter::ActiveFor(absl::string_view caller) const {
  MutexLock lock(&mu_);
  auto it = active_.find(caller);
  return it == active_.end() ? 0 : it->second;
}

void CallerLeaseLimiter::Give(const std::string& caller) {
  MutexLock lock(&mu_);
  auto it = active_.find(caller);
  if (it == active_.end()) return;
  if (--it->second <= 0) active_.erase(it);
}

}  // namespace tlsbroker
