// Backend faults through the whole broker (real gRPC with mTLS, real TLS backend): a backend
// killed mid-lease, restarting under load, stalling its handshake or its response, answering
// garbage or an over-size frame, closing idle sockets silently; and the per-backend limits
// refusing new leases cleanly while existing ones keep working.

#include <atomic>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/faults/fault_test_env.h"

namespace tlsbroker {
namespace {

using ::testing::AnyOf;
using testutil::FaultTest;
using testutil::Frame;
using testutil::LeaseStream;
using testutil::Reason;

using BackendFaultsTest = FaultTest;

// A backend killed while leases are open ends them: UNAVAILABLE backend_closed for a lease that
// sent nothing, ABORTED outcome_unknown for one whose request reached the backend. Their
// sockets are gone, and the pool refills to min_idle once the backend is back on its port.
TEST_F(BackendFaultsTest, BackendKilledMidLeaseEndsLeaseWithReasonAndPoolRefillsOnReturn) {
  framed_options().pool.min_idle = 2;
  framed_options().pool.max_sockets = 4;
  StartBroker();
  ASSERT_TRUE(testutil::WaitUntil([&] { return Stats().idle == 2; }, absl::Seconds(10)));

  grpc::ClientContext quiet_context, busy_context;
  auto quiet = stub_->Lease(&quiet_context);
  auto busy = stub_->Lease(&busy_context);
  v1::LeaseInfo quiet_info, busy_info;
  ASSERT_TRUE(testutil::OpenLease(quiet.get(), "framed", &quiet_info));
  ASSERT_TRUE(testutil::OpenLease(busy.get(), "framed", &busy_info));
  ASSERT_EQ(testutil::LeaseExchange(busy.get(), "hello", Frame("re:hello").size()),
            Frame("re:hello"));
  // The busy lease's request reaches the backend, which holds its answer.
  backend_->set_stall_response(true);
  int64_t requests = backend_->stats().requests;
  v1::LeaseRequest pay;
  pay.set_data(Frame("pay 100"));
  ASSERT_TRUE(busy->Write(pay));
  ASSERT_TRUE(backend_->WaitFor([&](const auto& s) { return s.requests > requests; },
                                absl::Seconds(10)));

  backend_->Stop();

  v1::LeaseResponse ignored;
  EXPECT_FALSE(quiet->Read(&ignored));
  grpc::Status quiet_status = quiet->Finish();
  EXPECT_EQ(quiet_status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << quiet_status.error_message();
  EXPECT_EQ(Reason(quiet_context), "BACKEND_CLOSED");
  EXPECT_FALSE(busy->Read(&ignored));
  grpc::Status busy_status = busy->Finish();
  EXPECT_EQ(busy_status.error_code(), grpc::StatusCode::ABORTED) << busy_status.error_message();
  EXPECT_EQ(Reason(busy_context), "OUTCOME_UNKNOWN");

  // Both sockets are gone (and the idle ones, whose backend hung up, with them).
  EXPECT_TRUE(testutil::WaitUntil([&] {
    return !SocketListed(quiet_info.socket_id()) && !SocketListed(busy_info.socket_id()) &&
           Stats().leased == 0 && Stats().idle == 0;
  }));

  backend_->set_stall_response(false);
  ASSERT_TRUE(backend_->Start().ok());
  EXPECT_TRUE(testutil::WaitUntil([&] { return Stats().idle == 2; }, absl::Seconds(10)))
      << "idle " << Stats().idle << " connecting " << Stats().connecting;
  EXPECT_TRUE(backend_->WaitFor([](const auto& s) { return s.current_connections == 2; },
                                absl::Seconds(5)));
  std::set<uint64_t> refilled;
  for (const v1::SocketStatus& s : ListSockets()) {
    if (s.state() == v1::SOCKET_STATE_IDLE) refilled.insert(s.socket_id());
  }
  EXPECT_EQ(refilled.size(), 2u);
  v1::CallResponse after;
  grpc::Status status = Call("after", &after);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(after.response(), Frame("re:after"));
  EXPECT_EQ(refilled.count(after.lease().socket_id()), 1u);  // It ran on a refilled socket.
}

// A backend restarting again and again while callers run: every Call is either exactly right
// or fails with a code (never wrong bytes), and afterwards no waiter is stuck and no socket or
// file descriptor leaked.
TEST_F(BackendFaultsTest, BackendRestartingUnderLoadLeaksNothingAndNoCallGetsWrongBytes) {
  framed_options().pool.max_sockets = 4;
  framed_options().pool.min_idle = 0;
  StartBroker();
  // Baseline with the gRPC channel connected and no backend connection on either side.
  v1::CallResponse warm;
  ASSERT_TRUE(Call("warm", &warm).ok());
  auto no_connections = [&] {
    backend_->CloseAllConnections();
    return testutil::WaitUntil(
        [&] {
          PoolStats s = Stats();
          return s.idle == 0 && s.connecting == 0 && s.leased == 0 &&
                 backend_->current_connections() == 0;
        },
        absl::Seconds(10));
  };
  ASSERT_TRUE(no_connections());
  const int fds_before = testutil::CountOpenFds();

  constexpr int kCallers = 6;
  constexpr int kRestarts = 15;
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, wrong{0}, other{0};
  std::mutex mu;
  std::map<std::string, int> failures;  // "CODE reason" -> count
  std::vector<std::thread> callers;
  for (int t = 0; t < kCallers; ++t) {
    callers.emplace_back([&, t] {
      std::mt19937 rng(t + 11);
      for (int i = 0; !stop; ++i) {
        std::string payload = absl::StrCat("caller", t, "-", i, ":",
                                           std::string(rng() % 3000, static_cast<char>('a' + t)));
        v1::CallResponse response;
        grpc::ClientContext context;
        grpc::Status status = Call(payload, &response, absl::Seconds(5), &context);
        if (status.ok()) {
          (response.response() == Frame("re:" + payload) ? ok : wrong)++;
          continue;
        }
        std::string reason = Reason(context);
        bool expected = status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                        (status.error_code() == grpc::StatusCode::ABORTED &&
                         reason == "OUTCOME_UNKNOWN");
        if (!expected) ++other;
        std::lock_guard<std::mutex> lock(mu);
        ++failures[absl::StrCat(status.error_code(), " ", reason)];
      }
    });
  }
  for (int r = 0; r < kRestarts; ++r) {
    int ok_before = ok.load();
    // Let some calls through between restarts, then kill the backend under them. The bound
    // only catches a broker that stopped serving; the count is what is asserted.
    ASSERT_TRUE(
        testutil::WaitUntil([&] { return ok.load() >= ok_before + 20; }, absl::Seconds(60)))
        << "restart " << r << ": no calls got through";
    if (r % 3 == 2) {
      backend_->CloseAllConnections();  // A network blip: the listener stays.
    } else {
      backend_->Stop();
      absl::SleepFor(absl::Milliseconds(20));
      ASSERT_TRUE(backend_->Start().ok());
    }
  }
  const bool served_after = testutil::WaitUntil(
      [&] { return ok.load() >= kRestarts * 20 + 20; }, absl::Seconds(60));
  stop = true;
  for (auto& th : callers) th.join();

  std::string summary;
  for (const auto& [what, n] : failures) absl::StrAppend(&summary, what, ": ", n, "; ");
  RecordProperty("failures", summary);
  std::cerr << "restarts " << kRestarts << ", ok " << ok << ", failures: " << summary << "\n";
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(other.load(), 0) << summary;
  EXPECT_TRUE(served_after) << "ok " << ok.load();
  EXPECT_FALSE(failures.empty());  // The restarts did hit calls in flight.

  // Settled: no stuck waiter, no RPC left, and the backend serves again.
  EXPECT_TRUE(WaitPoolQuiet()) << "waiters " << Stats().waiters << " leased " << Stats().leased;
  EXPECT_EQ(Stats().waiters, 0);
  EXPECT_TRUE(testutil::WaitUntil(
      [&] {
        v1::CallResponse response;
        return Call("again", &response).ok() && response.response() == Frame("re:again");
      },
      absl::Seconds(10)));
  ASSERT_TRUE(no_connections());
  EXPECT_LE(Stats().idle + Stats().leased + Stats().connecting, 0);
  // Both ends of every backend connection are closed; a few descriptors of slack for gRPC's
  // own (its executor may have grown).
  const int fds_after = testutil::CountOpenFds();
  std::cerr << "fds before " << fds_before << ", after " << fds_after << "\n";
  EXPECT_LE(fds_after, fds_before + 4);
}

// A backend that accepts TCP and never finishes the handshake: the Call fails UNAVAILABLE with
// reason handshake_timeout (not the acquire timeout's reason), and nothing is left connecting.
TEST_F(BackendFaultsTest, BackendStallingHandshakeFailsCallWithHandshakeTimeout) {
  framed_options().pool.handshake_timeout = absl::Milliseconds(500);
  // Acquire timeout and deadline only catch a hang: the reason tells which timer ended the
  // call, so no clock is read.
  framed_options().pool.acquire_timeout = absl::Seconds(60);
  backend_->set_stall_handshake(true);
  StartBroker();
  grpc::ClientContext context;
  v1::CallResponse response;
  grpc::Status status = Call("x", &response, absl::Seconds(90), &context);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_EQ(Reason(context), "HANDSHAKE_TIMEOUT");
  EXPECT_EQ(backend_->stats().requests, 0);
  EXPECT_TRUE(testutil::WaitUntil([&] { return Stats().connecting == 0 && Stats().idle == 0; }));

  // The backend recovers: calls succeed again (after the pool's backoff).
  backend_->set_stall_handshake(false);
  EXPECT_TRUE(testutil::WaitUntil(
      [&] {
        v1::CallResponse r;
        return Call("y", &r).ok() && r.response() == Frame("re:y");
      },
      absl::Seconds(10)));
}

// A backend that stalls mid-response: a Call with a deadline gets DEADLINE_EXCEEDED and its
// socket is destroyed (dirty), so the late answer can never reach the next caller.
TEST_F(BackendFaultsTest, BackendStallingResponseGivesDeadlineExceededAndDestroysSocket) {
  StartBroker();
  v1::CallResponse warm;
  ASSERT_TRUE(Call("warm", &warm).ok());
  const uint64_t socket = warm.lease().socket_id();
  backend_->set_stall_response(true);
  v1::CallResponse response;
  // The status says the deadline ended the call; how long that took is not asserted.
  grpc::Status status = Call("stalled", &response, absl::Milliseconds(300));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_TRUE(testutil::WaitUntil([&] { return !SocketListed(socket); }));
  EXPECT_TRUE(testutil::WaitUntil([&] { return SocketsClosed("dirty") >= 1; }));

  backend_->set_stall_response(false);
  v1::CallResponse next;
  ASSERT_TRUE(Call("next", &next).ok());
  EXPECT_EQ(next.response(), Frame("re:next"));
  EXPECT_NE(next.lease().socket_id(), socket);
  EXPECT_FALSE(next.lease().reused());
}

// A backend answering with a malformed frame (a header shorter than itself) or an over-size one
// (0x7fffffff bytes declared): the Call fails at once with a code and a reason (the over-size
// one RESOURCE_EXHAUSTED frame_too_large), the socket is destroyed, and the next Call gets a
// fresh socket and the right answer.
class BadFrameTest : public FaultTest, public ::testing::WithParamInterface<bool> {};

TEST_P(BadFrameTest, BadResponseFrameFailsCallAndDestroysSocket) {
  const bool oversize = GetParam();
  StartBroker();
  v1::CallResponse warm;
  ASSERT_TRUE(Call("warm", &warm).ok());
  const uint64_t socket = warm.lease().socket_id();
  const double closed_before = SocketsClosed();
  if (oversize) {
    backend_->set_oversize_response(true);
  } else {
    backend_->set_garbage_response(true);
  }
  grpc::ClientContext context;
  v1::CallResponse response;
  // Refused, not waited out: a call that waited would end DEADLINE_EXCEEDED, which the codes
  // below exclude. The deadline only catches a hang.
  grpc::Status status = Call("bad", &response, absl::Seconds(60), &context);
  if (oversize) {
    // A frame over max_frame_bytes is an answer too large to deliver, not a broken stream.
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
        << status.error_message();
    EXPECT_EQ(Reason(context), "FRAME_TOO_LARGE");
  } else {
    EXPECT_THAT(status.error_code(),
                AnyOf(grpc::StatusCode::UNAVAILABLE, grpc::StatusCode::ABORTED))
        << status.error_message();
    EXPECT_THAT(Reason(context), AnyOf("BAD_FRAME", "OUTCOME_UNKNOWN"));
  }
  EXPECT_TRUE(response.response().empty());
  EXPECT_TRUE(testutil::WaitUntil([&] { return !SocketListed(socket); }));
  EXPECT_TRUE(testutil::WaitUntil([&] { return SocketsClosed() >= closed_before + 1; }));

  backend_->set_oversize_response(false);
  backend_->set_garbage_response(false);
  v1::CallResponse next;
  ASSERT_TRUE(Call("next", &next).ok());
  EXPECT_EQ(next.response(), Frame("re:next"));
  EXPECT_NE(next.lease().socket_id(), socket);
}

INSTANTIATE_TEST_SUITE_P(GarbageAndOversize, BadFrameTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "OversizeFrame" : "GarbageFrame";
                         });

// A backend that ends the connection in the middle of a response frame, with an orderly TLS
// close (close_notify) or a TCP half-close (FIN, no close_notify, still reading): the Call
// fails with a code and reason outcome_unknown (the request reached the backend), never half an
// answer as OK; the socket is destroyed, and the next Call gets a fresh socket and the answer.
class CutResponseTest : public FaultTest,
                        public ::testing::WithParamInterface<testutil::CutResponse> {};

TEST_P(CutResponseTest, BackendEndingConnectionMidFrameFailsCallAndNextCallGetsFreshSocket) {
  StartBroker();
  v1::CallResponse warm;
  ASSERT_TRUE(Call("warm", &warm).ok());
  const uint64_t socket = warm.lease().socket_id();
  backend_->set_cut_response(GetParam());
  grpc::ClientContext context;
  v1::CallResponse response;
  grpc::Status status = Call("cut", &response, absl::Seconds(60), &context);
  EXPECT_THAT(status.error_code(), AnyOf(grpc::StatusCode::UNAVAILABLE, grpc::StatusCode::ABORTED))
      << status.error_message();
  EXPECT_EQ(Reason(context), "OUTCOME_UNKNOWN") << status.error_message();
  EXPECT_TRUE(response.response().empty());
  EXPECT_TRUE(testutil::WaitUntil([&] { return !SocketListed(socket); }));

  backend_->set_cut_response(testutil::CutResponse::kNone);
  v1::CallResponse next;
  ASSERT_TRUE(Call("next", &next).ok());
  EXPECT_EQ(next.response(), Frame("re:next"));
  EXPECT_NE(next.lease().socket_id(), socket);
  EXPECT_FALSE(next.lease().reused());
}

INSTANTIATE_TEST_SUITE_P(CloseNotifyAndHalfClose, CutResponseTest,
                         ::testing::Values(testutil::CutResponse::kCloseNotify,
                                           testutil::CutResponse::kHalfClose),
                         [](const ::testing::TestParamInfo<testutil::CutResponse>& info) {
                           return info.param == testutil::CutResponse::kCloseNotify
                                      ? "CloseNotify"
                                      : "HalfClose";
                         });

// A backend that silently closes idle sockets: the broker never hands such a socket out. Every
// Call made right after the backend closed the idle socket succeeds, on a replacement socket in
// the same slot (same client ID, reused=false).
TEST_F(BackendFaultsTest, IdleSocketClosedByBackendIsNeverHandedOut) {
  framed_options().pool.max_sockets = 2;
  backend_->set_close_idle_after(absl::Milliseconds(100));
  StartBroker();
  constexpr int kRounds = 10;
  std::set<uint64_t> sockets;
  int fresh = 0;
  for (int round = 0; round < kRounds; ++round) {
    v1::CallResponse response;
    grpc::Status status = Call(absl::StrCat("round", round), &response);
    ASSERT_TRUE(status.ok()) << "round " << round << ": " << status.error_message();
    EXPECT_EQ(response.response(), Frame(absl::StrCat("re:round", round)));
    EXPECT_EQ(response.lease().client_id(), "TLSB0001");
    sockets.insert(response.lease().socket_id());
    if (!response.lease().reused()) ++fresh;
    // The backend closes this socket once it has been idle for 100 ms; call again at once.
    ASSERT_TRUE(backend_->WaitFor([&](const auto& s) { return s.idle_closes >= round + 1; },
                                  absl::Seconds(5)));
  }
  EXPECT_EQ(fresh, kRounds);
  EXPECT_EQ(static_cast<int>(sockets.size()), kRounds);
  EXPECT_EQ(backend_->total_handshakes(), kRounds);
}

// The per-backend limits exhausted (max_sockets leased, max_waiters queued): new leases and
// calls fail at once with RESOURCE_EXHAUSTED, the leases already open keep working, and the
// queued one gets the first socket released.
TEST_F(BackendFaultsTest, ExhaustedPoolRefusesNewLeasesWhileExistingOnesKeepWorking) {
  framed_options().pool.max_sockets = 2;
  framed_options().pool.max_waiters = 1;
  StartBroker();
  grpc::ClientContext c1, c2, c3;
  auto l1 = stub_->Lease(&c1);
  auto l2 = stub_->Lease(&c2);
  v1::LeaseInfo i1, i2;
  ASSERT_TRUE(testutil::OpenLease(l1.get(), "framed", &i1));
  ASSERT_TRUE(testutil::OpenLease(l2.get(), "framed", &i2));
  // The third waits for a socket.
  auto l3 = stub_->Lease(&c3);
  v1::LeaseRequest open;
  open.mutable_open()->set_backend("framed");
  open.mutable_open()->mutable_acquire_timeout()->set_seconds(20);
  ASSERT_TRUE(l3->Write(open));
  ASSERT_TRUE(testutil::WaitUntil([&] { return Stats().waiters == 1; }));

  // Beyond the budget: refused at once, with the reason.
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext context;
    v1::CallResponse response;
    // Refused at once rather than queued: a queued call would end DEADLINE_EXCEEDED (the
    // waiter ahead holds its place for 20 s), not RESOURCE_EXHAUSTED.
    grpc::Status status = Call("over", &response, absl::Seconds(10), &context);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
        << status.error_message();
    EXPECT_EQ(Reason(context), "RESOURCE_EXHAUSTED");
  }
  {
    grpc::ClientContext context;
    auto l4 = stub_->Lease(&context);
    v1::LeaseInfo info;
    EXPECT_FALSE(testutil::OpenLease(l4.get(), "framed", &info));
    EXPECT_EQ(l4->Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  }

  // The leases already open are unharmed.
  for (int i = 0; i < 3; ++i) {
    std::string a = absl::StrCat("one", i), b = absl::StrCat("two", i);
    EXPECT_EQ(testutil::LeaseExchange(l1.get(), a, Frame("re:" + a).size()), Frame("re:" + a));
    EXPECT_EQ(testutil::LeaseExchange(l2.get(), b, Frame("re:" + b).size()), Frame("re:" + b));
  }
  EXPECT_TRUE(testutil::FinishLease(l1.get()).ok());
  // The waiter gets the released socket.
  v1::LeaseResponse first;
  ASSERT_TRUE(l3->Read(&first));
  ASSERT_TRUE(first.has_info());
  EXPECT_EQ(first.info().socket_id(), i1.socket_id());
  EXPECT_EQ(testutil::LeaseExchange(l3.get(), "three", Frame("re:three").size()),
            Frame("re:three"));
  EXPECT_TRUE(testutil::FinishLease(l2.get()).ok());
  EXPECT_TRUE(testutil::FinishLease(l3.get()).ok());
  EXPECT_EQ(backend_->total_handshakes(), 2);
  EXPECT_TRUE(WaitPoolQuiet());
}

// With max_waiters 0 nobody queues: idle sockets are lent, and a caller who would have to wait
// is refused at once with RESOURCE_EXHAUSTED.
TEST_F(BackendFaultsTest, NoWaitersAllowedLendsIdleSocketsAndRefusesTheRest) {
  framed_options().pool.max_sockets = 2;
  framed_options().pool.min_idle = 2;
  framed_options().pool.max_waiters = 0;
  StartBroker();
  ASSERT_TRUE(testutil::WaitUntil([&] { return Stats().idle == 2; }, absl::Seconds(10)));
  grpc::ClientContext c1, c2;
  auto l1 = stub_->Lease(&c1);
  auto l2 = stub_->Lease(&c2);
  v1::LeaseInfo i1, i2;
  ASSERT_TRUE(testutil::OpenLease(l1.get(), "framed", &i1))
      << testutil::FinishLease(l1.get()).error_message();
  ASSERT_TRUE(testutil::OpenLease(l2.get(), "framed", &i2));
  v1::CallResponse response;
  EXPECT_EQ(Call("over", &response).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(testutil::LeaseExchange(l1.get(), "a", Frame("re:a").size()), Frame("re:a"));
  EXPECT_TRUE(testutil::FinishLease(l1.get()).ok());
  EXPECT_TRUE(testutil::FinishLease(l2.get()).ok());
}

}  // namespace
}  // namespace tlsbroker
