// CallerLeaseLimiter (limits.max_leases_per_caller): per-identity counting, refusal naming the
// limit, places given back by Slot destruction, move and reload.

#include "services/caller_lease_limiter.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tlsbroker {
namespace {

using ::testing::HasSubstr;

class CountingMetrics final : public MetricsObserver {
 public:
  std::shared_ptr<BackendObserver> ForBackend(absl::string_view) override { return nullptr; }
  void OnCallerLeaseLimitRefused() override { ++refused; }
  std::atomic<int> refused{0};
};

// A caller at its limit is refused with RESOURCE_EXHAUSTED naming the limit; others are not.
TEST(CallerLeaseLimiterTest, CallerAtItsLimitIsRefusedOthersAreNot) {
  CountingMetrics metrics;
  CallerLeaseLimiter limiter(2, &metrics);
  auto a1 = limiter.Take("app1");
  auto a2 = limiter.Take("app1");
  ASSERT_TRUE(a1.ok() && a2.ok());
  auto a3 = limiter.Take("app1");
  ASSERT_FALSE(a3.ok());
  EXPECT_EQ(a3.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(a3.status().message(), HasSubstr("\"app1\""));
  EXPECT_THAT(a3.status().message(), HasSubstr("limits.max_leases_per_caller 2"));
  EXPECT_EQ(metrics.refused, 1);
  EXPECT_TRUE(limiter.Take("app2").ok());
  EXPECT_EQ(limiter.ActiveFor("app1"), 2);
}

// Destroying, releasing or moving over a Slot gives its place back exactly once.
TEST(CallerLeaseLimiterTest, SlotsGiveTheirPlaceBackOnce) {
  CallerLeaseLimiter limiter(1, nullptr);
  {
    auto slot = limiter.Take("app1");
    ASSERT_TRUE(slot.ok());
    CallerLeaseLimiter::Slot moved = *std::move(slot);
    EXPECT_EQ(limiter.ActiveFor("app1"), 1);
    EXPECT_FALSE(limiter.Take("app1").ok());
    moved.Release();
    moved.Release();  // Idempotent.
    EXPECT_EQ(limiter.ActiveFor("app1"), 0);
    auto again = limiter.Take("app1");
    ASSERT_TRUE(again.ok());
    moved = *std::move(again);
  }
  EXPECT_EQ(limiter.ActiveFor("app1"), 0);
}

// 0 is unlimited, and a reload changes the limit for new leases only.
TEST(CallerLeaseLimiterTest, ZeroIsUnlimitedAndReloadChangesTheLimit) {
  CallerLeaseLimiter limiter(0, nullptr);
  std::vector<CallerLeaseLimiter::Slot> slots;
  for (int i = 0; i < 100; ++i) {
    auto slot = limiter.Take("app1");
    ASSERT_TRUE(slot.ok());
    slots.push_back(*std::move(slot));
  }
  limiter.SetLimit(99);
  EXPECT_FALSE(limiter.Take("app1").ok());  // 100 running keep running; no 101st.
  slots.resize(98);
  EXPECT_TRUE(limiter.Take("app1").ok());
}

// Many threads taking and releasing never exceed the limit and leave nothing counted.
TEST(CallerLeaseLimiterTest, ConcurrentTakersNeverExceedTheLimit) {
  CallerLeaseLimiter limiter(3, nullptr);
  std::atomic<int> holding{0}, most{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        auto slot = limiter.Take("app1");
        if (!slot.ok()) continue;
        int now = ++holding;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        --holding;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_LE(most.load(), 3);
  EXPECT_EQ(limiter.ActiveFor("app1"), 0);
}

}  // namespace
}  // namespace tlsbroker
