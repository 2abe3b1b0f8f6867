#ifndef SERVICES_FLOW_ACCOUNTING_H_
#define SERVICES_FLOW_ACCOUNTING_H_

#include <atomic>
#include <cstdint>

namespace tlsbroker {

// Counts the payload bytes the service layer holds between the two sides of a lease (read from
// one side, not yet written to the other), and the highest that count has reached. Flow control
// (one read and one write in flight per side) bounds it per lease; tests assert the bound from
// the high-water mark rather than from process memory. Thread-safe.
class FlowAccounting final {
 public:
  void Hold(uint64_t bytes) {
    uint64_t now = held_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
    uint64_t high = high_water_.load(std::memory_order_relaxed);
    while (now > high &&
           !high_water_.compare_exchange_weak(high, now, std::memory_order_relaxed)) {
    }
  }
  void Drop(uint64_t bytes) { held_.fetch_sub(bytes, std::memory_order_relaxed); }
  uint64_t held() const { return held_.load(std::memory_order_relaxed); }
  uint64_t high_water() const { return high_water_.load(std::memory_order_relaxed); }
  void ResetHighWaterForTest() { high_water_.store(held()); }

  // Lease and Call RPCs in progress (a drain waits for them to reach zero).
  void RpcStarted() { active_rpcs_.fetch_add(1, std::memory_order_relaxed); }
  void RpcDone() { active_rpcs_.fetch_sub(1, std::memory_order_relaxed); }
  int active_rpcs() const { return active_rpcs_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> held_{0};
  std::atomic<uint64_t> high_water_{0};
  std::atomic<int> active_rpcs_{0};
};

}  // namespace tlsbroker

#endif  // SERVICES_FLOW_ACCOUNTING_H_
