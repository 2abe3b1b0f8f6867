// The broker-wide socket budget (SocketBudget) shared by two real pools against a real TLS
// backend: callers beyond it are refused at once with RESOURCE_EXHAUSTED naming the budget,
// leases already granted are unharmed, and tokens come back when sockets close.

#include "broker/pool/socket_budget.h"

#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/broker/pool/pool_test_util.h"
#include "tests/broker/pool/recording_observer.h"
#include "tests/support/tls_test_server.h"

namespace tlsbroker {
namespace {

using ::testing::HasSubstr;
using testutil::AcquireSync;
using testutil::RoundTrip;
using testutil::WaitUntil;

// Records the broker-wide figures the budget reports.
class BudgetMetrics final : public MetricsObserver {
 public:
  std::shared_ptr<BackendObserver> ForBackend(absl::string_view) override { return nullptr; }
  void OnSocketBudget(int limit, int used) override {
    limit_ = limit;
    used_ = used;
  }
  void OnSocketBudgetRefused() override { ++refused_; }
  std::atomic<int> limit_{-1};
  std::atomic<int> used_{-1};
  std::atomic<int> refused_{0};
};

// Tokens are handed out up to the limit and come back; 0 means unlimited.
TEST(SocketBudgetTest, TokensStopAtTheLimitAndComeBack) {
  BudgetMetrics metrics;
  SocketBudget budget(2, &metrics);
  EXPECT_EQ(metrics.limit_, 2);
  EXPECT_TRUE(budget.TryTake());
  EXPECT_TRUE(budget.TryTake());
  EXPECT_FALSE(budget.TryTake());
  EXPECT_EQ(budget.used(), 2);
  EXPECT_EQ(metrics.used_, 2);
  budget.Give(1);
  EXPECT_EQ(metrics.used_, 1);
  EXPECT_TRUE(budget.TryTake());
  budget.SetLimit(1);  // Lowered below what is in use: nothing new until enough return.
  budget.Give(1);
  EXPECT_FALSE(budget.TryTake());
  budget.Give(1);
  EXPECT_TRUE(budget.TryTake());

  SocketBudget unlimited(0, nullptr);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(unlimited.TryTake());
}

class SocketBudgetPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server_options = testutil::TlsTestServer::PkiOptions("ec");
    server_options.mode = testutil::TlsTestServerMode::kFramedEcho;
    server_options.response_prefix = "re:";
    auto server = testutil::TlsTestServer::Create(server_options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    budget_ = std::make_shared<SocketBudget>(3, &metrics_);
    a_ = MakePool("a");
    b_ = MakePool("b");
    ASSERT_NE(a_, nullptr);
    ASSERT_NE(b_, nullptr);
  }

  void TearDown() override {
    for (auto* pool : {&a_, &b_}) {
      if (*pool) (*pool)->Shutdown();
      pool->reset();
    }
    loops_.reset();
    server_.reset();
  }

  std::shared_ptr<SocketPool> MakePool(const std::string& name) {
    BackendOptions options = testutil::FramedBackend(server_->port());
    options.name = name;
    options.pool.max_sockets = 4;
    auto pool = SocketPool::Create(options, loops_.get(), observer_, budget_);
    EXPECT_TRUE(pool.ok()) << pool.status();
    if (!pool.ok()) return nullptr;
    (*pool)->Start();
    return *std::move(pool);
  }

  std::unique_ptr<EventLoops> loops_ = std::make_unique<EventLoops>(2);
  std::unique_ptr<testutil::TlsTestServer> server_;
  std::shared_ptr<testutil::RecordingObserver> observer_ =
      std::make_shared<testutil::RecordingObserver>();
  BudgetMetrics metrics_;
  std::shared_ptr<SocketBudget> budget_;
  std::shared_ptr<SocketPool> a_;
  std::shared_ptr<SocketPool> b_;
};

// With the budget used up across two pools, a caller no idle socket can serve is refused with
// RESOURCE_EXHAUSTED (not left to wait for its deadline), and the held leases keep working.
TEST_F(SocketBudgetPoolTest, CallerBeyondTheBudgetIsRefusedAndHeldLeasesWork) {
  std::vector<Lease> held;
  for (SocketPool* pool : {a_.get(), a_.get(), b_.get()}) {
    auto lease = AcquireSync(*pool);
    ASSERT_TRUE(lease.ok()) << lease.status();
    held.push_back(*std::move(lease));
  }
  EXPECT_EQ(budget_->used(), 3);
  EXPECT_EQ(metrics_.used_, 3);

  // A deadline far away: a waiting caller would end DEADLINE_EXCEEDED, not this.
  auto refused = AcquireSync(*b_, "", absl::Seconds(30));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.status().message(), HasSubstr("limits.max_backend_sockets 3"));
  EXPECT_THAT(refused.status().message(), HasSubstr("backend b"));
  // A caller asking for one socket by client ID is refused the same way.
  auto by_id = AcquireSync(*a_, "TLSB0004", absl::Seconds(30));
  ASSERT_FALSE(by_id.ok());
  EXPECT_EQ(by_id.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(metrics_.refused_, 2);
  EXPECT_EQ(observer_->Get("refused:RESOURCE_EXHAUSTED"), 2);
  // No connection beyond the budget (accepts are counted before a lease on them can exist).
  EXPECT_EQ(server_->connections_accepted(), 3);

  for (size_t i = 0; i < held.size(); ++i) {
    auto reply = RoundTrip(held[i], absl::StrCat("held", i));
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_EQ(*reply, absl::StrCat("re:held", i));
  }
}

// A returned socket stays open (idle) and keeps its token, so its own pool reuses it; a socket
// that closes gives its token back, and another pool can then open one.
TEST_F(SocketBudgetPoolTest, ClosedSocketsGiveTheirTokenToAnyPool) {
  std::vector<Lease> held;
  for (SocketPool* pool : {a_.get(), a_.get(), b_.get()}) {
    auto lease = AcquireSync(*pool);
    ASSERT_TRUE(lease.ok()) << lease.status();
    held.push_back(*std::move(lease));
  }
  { Lease ended = std::move(held[2]); }  // b's socket goes back idle.
  ASSERT_TRUE(WaitUntil([&] { return b_->Stats().idle == 1; }));
  auto again = AcquireSync(*b_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->info().reused);
  EXPECT_EQ(budget_->used(), 3);

  held[0].MarkBroken("test closes it");
  { Lease ended = std::move(held[0]); }  // a's socket closes: one token free.
  ASSERT_TRUE(WaitUntil([&] { return budget_->used() == 2; }));
  auto fresh = AcquireSync(*b_, "", absl::Seconds(10));
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_FALSE(fresh->info().reused);
  auto reply = RoundTrip(*fresh, "fresh");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "re:fresh");
  EXPECT_EQ(budget_->used(), 3);
}

// Draining the pools closes their sockets and returns every token.
TEST_F(SocketBudgetPoolTest, ShutdownReturnsEveryToken) {
  {
    auto lease = AcquireSync(*a_);
    ASSERT_TRUE(lease.ok()) << lease.status();
    auto other = AcquireSync(*b_);
    ASSERT_TRUE(other.ok()) << other.status();
    EXPECT_EQ(budget_->used(), 2);
    a_->Shutdown();
    b_->Shutdown();
  }  // Leases end after the drain started: their sockets close.
  EXPECT_TRUE(WaitUntil([&] { return budget_->used() == 0; })) << budget_->used();
  EXPECT_EQ(metrics_.used_, 0);
}

}  // namespace
}  // namespace tlsbroker
