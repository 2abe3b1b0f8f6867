#include "broker/pool/socket_budget.h"

namespace tlsbroker {

SocketBudget::SocketBudget(int limit, MetricsObserver* observer)
    : limit_(limit), observer_(observer) {
  Report();
}

bool SocketBudget::TryTake() {
  int used = used_.load(std::memory_order_relaxed);
  while (true) {
    const int limit = limit_.load(std::memory_order_relaxed);
    if (limit > 0 && used >= limit) return false;
    if (used_.compare_exchange_weak(used, used + 1, std::memory_order_relaxed)) break;
  }
  Report();
  return true;
}

void SocketBudget::Give(int n) {
  if (n <= 0) return;
  used_.fetch_sub(n, std::memory_order_relaxed);
  Report();
}

void SocketBudget::NoteRefused() {
  if (observer_ != nullptr) observer_->OnSocketBudgetRefused();
}

void SocketBudget::SetLimit(int limit) {
  limit_.store(limit, std::memory_order_relaxed);
  Report();
}

void SocketBudget::Report() const {
  if (observer_ == nullptr) return;
  std::lock_guard<std::mutex> lock(report_mu_);
  observer_->OnSocketBudget(limit(), used());
}

}  // namespace tlsbroker
