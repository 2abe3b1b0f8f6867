// The broker's socket budget (limits.max_backend_sockets) exhausted across two real TLS
// backends, through the real gRPC API: the next lease fails at once with RESOURCE_EXHAUSTED
// naming the budget, the leases already held keep exchanging bytes, and ending one lets a new
// lease through.

#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/faults/fault_test_env.h"

namespace tlsbroker {
namespace {

using ::testing::HasSubstr;
using testutil::FaultTest;
using testutil::Frame;
using testutil::LeaseStream;

class SocketBudgetFaultTest : public FaultTest {
 protected:
  void SetUp() override {
    FaultTest::SetUp();
    auto second = testutil::TlsTestServer::PkiOptions("ec");
    second.mode = testutil::TlsTestServerMode::kFramedEcho;
    second.response_prefix = "b2:";
    auto backend = testutil::TlsTestServer::Create(second);
    ASSERT_TRUE(backend.ok()) << backend.status();
    backend2_ = *std::move(backend);
    BackendOptions other = testutil::FramedBackend(backend2_->port());
    other.name = "framed2";
    other.client_id.prefix = "OTHR";
    other.allowed_callers = {testutil::kApp1};
    options_.backends.push_back(other);
    for (BackendOptions& b : options_.backends) b.pool.max_sockets = 4;
    options_.limits.max_backend_sockets = 3;
  }
  void TearDown() override {
    FaultTest::TearDown();
    backend2_.reset();
  }

  struct HeldLease {
    std::unique_ptr<grpc::ClientContext> context = std::make_unique<grpc::ClientContext>();
    std::unique_ptr<LeaseStream> stream;
    std::string backend;
    std::string prefix;
  };

  // Opens a Lease on `backend`; the stream and its context are kept by the caller.
  HeldLease Open(const std::string& backend, v1::LeaseInfo* info, grpc::Status* failure) {
    HeldLease held;
    held.backend = backend;
    held.prefix = backend == "framed" ? "re:" : "b2:";
    held.context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
    held.stream = stub_->Lease(held.context.get());
    if (!testutil::OpenLease(held.stream.get(), backend, info)) {
      *failure = held.stream->Finish();
      held.stream.reset();
    }
    return held;
  }

  double BudgetMetric(const std::string& series) {
    return testutil::MetricValue(Metrics(), series);
  }

  std::unique_ptr<testutil::TlsTestServer> backend2_;
};

TEST_F(SocketBudgetFaultTest, LeaseBeyondBudgetIsResourceExhaustedAndHeldLeasesStillWork) {
  StartBroker();
  std::vector<HeldLease> held;
  for (const char* backend : {"framed", "framed2", "framed"}) {
    v1::LeaseInfo info;
    grpc::Status failure;
    held.push_back(Open(backend, &info, &failure));
    ASSERT_NE(held.back().stream, nullptr) << backend << ": " << failure.error_message();
  }
  EXPECT_EQ(broker_->registry().budget().used(), 3);
  // The configured limit, in its own family.
  EXPECT_EQ(BudgetMetric("tlsbroker_socket_budget_limit_sockets"), 3);
  EXPECT_EQ(BudgetMetric("tlsbroker_socket_budget_sockets{state=\"used\"}"), 3);

  // The 4th lease, on either backend: refused at once (its acquire timeout is 5 s and its
  // deadline 60 s, so a caller left waiting would see DEADLINE_EXCEEDED instead).
  for (const char* backend : {"framed2", "framed"}) {
    v1::LeaseInfo info;
    grpc::Status failure;
    HeldLease refused = Open(backend, &info, &failure);
    ASSERT_EQ(refused.stream, nullptr) << backend << " was granted a lease beyond the budget";
    EXPECT_EQ(failure.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
        << failure.error_message();
    EXPECT_THAT(failure.error_message(), HasSubstr("limits.max_backend_sockets 3"));
  }
  // A Call is refused the same way.
  v1::CallResponse response;
  grpc::Status call = Call("call", &response);
  EXPECT_EQ(call.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << call.error_message();
  EXPECT_EQ(BudgetMetric("tlsbroker_socket_budget_refusals_total"), 3);
  // The refused leases count under the code their callers got, spelt as Calls spell it.
  EXPECT_EQ(testutil::MetricSum(Metrics(), "tlsbroker_leases_total",
                                {"code=\"RESOURCE_EXHAUSTED\""}),
            3);
  // No connection beyond the budget was even attempted (accepts are counted before a lease
  // on the socket can be granted).
  EXPECT_EQ(backend_->connections_accepted() + backend2_->connections_accepted(), 3);

  // The held leases are unharmed: each still exchanges its own frames.
  for (size_t i = 0; i < held.size(); ++i) {
    for (int round = 0; round < 3; ++round) {
      const std::string payload = absl::StrCat("lease", i, "-", round);
      const std::string expected = Frame(held[i].prefix + payload);
      EXPECT_EQ(testutil::LeaseExchange(held[i].stream.get(), payload, expected.size()), expected)
          << held[i].backend;
    }
  }

  // Ending one lease (its socket goes back idle to "framed2") lets a new lease through there.
  grpc::Status ended = testutil::FinishLease(held[1].stream.get());
  ASSERT_TRUE(ended.ok()) << ended.error_message();
  held.erase(held.begin() + 1);
  v1::LeaseInfo info;
  grpc::Status failure;
  ASSERT_TRUE(testutil::WaitUntil([&] {
    HeldLease next = Open("framed2", &info, &failure);
    if (next.stream == nullptr) return false;
    held.push_back(std::move(next));
    return true;
  })) << failure.error_message();
  EXPECT_TRUE(info.reused());
  EXPECT_EQ(testutil::LeaseExchange(held.back().stream.get(), "again", Frame("b2:again").size()),
            Frame("b2:again"));
  for (HeldLease& h : held) {
    grpc::Status status = testutil::FinishLease(h.stream.get());
    EXPECT_TRUE(status.ok()) << status.error_message();
  }
}

// A socket that closes gives its token back: a lease abandoned mid-request on one backend
// lets the other backend open a new socket.
TEST_F(SocketBudgetFaultTest, ClosedSocketFreesBudgetForTheOtherBackend) {
  StartBroker();
  std::vector<HeldLease> held;
  for (const char* backend : {"framed", "framed", "framed"}) {
    v1::LeaseInfo info;
    grpc::Status failure;
    held.push_back(Open(backend, &info, &failure));
    ASSERT_NE(held.back().stream, nullptr) << failure.error_message();
  }
  v1::LeaseInfo info;
  grpc::Status failure;
  ASSERT_EQ(Open("framed2", &info, &failure).stream, nullptr);
  EXPECT_EQ(failure.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);

  // A lease that ends in the middle of a request frame destroys its socket (the backend is
  // left mid-frame): the socket closes.
  v1::LeaseRequest partial;
  partial.set_data(Frame("half a request").substr(0, 6));
  ASSERT_TRUE(held[0].stream->Write(partial));
  testutil::FinishLease(held[0].stream.get());
  ASSERT_TRUE(testutil::WaitUntil([&] { return broker_->registry().budget().used() == 2; },
                                  absl::Seconds(20)))
      << "used " << broker_->registry().budget().used() << ", framed leased " << Stats().leased
      << " idle " << Stats().idle << " connecting " << Stats().connecting;
  HeldLease fresh = Open("framed2", &info, &failure);
  ASSERT_NE(fresh.stream, nullptr) << failure.error_message();
  EXPECT_FALSE(info.reused());
  EXPECT_EQ(testutil::LeaseExchange(fresh.stream.get(), "new", Frame("b2:new").size()),
            Frame("b2:new"));
  EXPECT_TRUE(testutil::FinishLease(fresh.stream.get()).ok());
  for (size_t i = 1; i < held.size(); ++i) {
    EXPECT_TRUE(testutil::FinishLease(held[i].stream.get()).ok());
  }
}

}  // namespace
}  // namespace tlsbroker
