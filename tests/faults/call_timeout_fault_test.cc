// pool.call_timeout through the whole broker (real gRPC with mTLS, real TLS backend that reads
// the request and never answers): a Call without a deadline ends at call_timeout with
// DEADLINE_EXCEEDED / outcome_unknown and its socket destroyed, so a silent backend cannot
// hold the pool's sockets; and an RPC deadline sooner than call_timeout still ends the Call.

#include <future>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/faults/fault_test_env.h"

namespace tlsbroker {
namespace {

using ::testing::HasSubstr;
using testutil::FaultTest;
using testutil::Frame;
using testutil::Reason;

// Bounds only how long a broken build makes the test wait before it fails (instead of hanging
// until ctest's timeout); the Calls themselves carry no deadline.
constexpr absl::Duration kGiveUp = absl::Seconds(60);

class CallTimeoutTest : public FaultTest {
 protected:
  // A Call on "framed" with no RPC deadline (gRPC's default). If no answer comes within
  // kGiveUp the Call is cancelled and the test fails.
  grpc::Status CallWithoutDeadline(const std::string& payload, grpc::ClientContext* context,
                                   v1::CallResponse* response) {
    v1::CallRequest request;
    request.set_backend("framed");
    request.set_request(Frame(payload));
    std::promise<grpc::Status> finished;
    std::future<grpc::Status> status = finished.get_future();
    stub_->async()->Call(context, &request, response,
                         [&finished](grpc::Status s) { finished.set_value(std::move(s)); });
    if (status.wait_for(absl::ToChronoSeconds(kGiveUp)) != std::future_status::ready) {
      ADD_FAILURE() << "a Call without deadline got no answer within " << kGiveUp;
      context->TryCancel();
    }
    return status.get();
  }

  double Calls(const std::string& code) {
    return testutil::MetricSum(Metrics(), "tlsbroker_calls_total",
                               {"backend=\"framed\"", absl::StrCat("code=\"", code, "\"")});
  }
};

// With one socket and a backend that stops answering, a Call without a deadline ends at
// call_timeout: DEADLINE_EXCEEDED, reason outcome_unknown (in the metadata and the ErrorInfo),
// the socket destroyed rather than pooled. The pool is not exhausted: once the backend answers
// again, the next Call without a deadline succeeds on a new connection.
TEST_F(CallTimeoutTest, CallWithoutDeadlineToSilentBackendEndsAtCallTimeoutAndFreesTheSocket) {
  framed_options().pool.max_sockets = 1;
  framed_options().pool.call_timeout = absl::Milliseconds(300);
  StartBroker();
  v1::CallResponse warm;
  ASSERT_TRUE(Call("warm", &warm).ok());
  const uint64_t socket = warm.lease().socket_id();
  ASSERT_TRUE(backend_->WaitFor([](const auto& s) { return s.responses == 1; }, kGiveUp));

  backend_->set_stall_response(true);
  grpc::ClientContext context;
  v1::CallResponse response;
  grpc::Status status = CallWithoutDeadline("stalled", &context, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << status.error_message();
  EXPECT_EQ(Reason(context), "OUTCOME_UNKNOWN");
  EXPECT_THAT(status.error_message(), HasSubstr("pool.call_timeout 300ms"));
  v1::RpcStatus details;
  ASSERT_TRUE(details.ParseFromString(status.error_details()));
  ASSERT_EQ(details.details_size(), 1);
  v1::ErrorInfo info;
  ASSERT_TRUE(info.ParseFromString(details.details(0).value()));
  EXPECT_EQ(info.reason(), "OUTCOME_UNKNOWN");
  EXPECT_TRUE(response.response().empty());

  // The socket is destroyed: the backend sees its connection close, the pool no longer lists
  // it, and it is counted as closed dirty (it was owed an answer).
  EXPECT_TRUE(backend_->WaitFor([](const auto& s) { return s.current_connections == 0; },
                                kGiveUp));
  EXPECT_TRUE(testutil::WaitUntil([&] { return !SocketListed(socket); }));
  EXPECT_TRUE(testutil::WaitUntil([&] { return SocketsClosed("dirty") >= 1; }));
  EXPECT_TRUE(testutil::WaitUntil([&] { return Calls("DEADLINE_EXCEEDED") == 1; }));
  EXPECT_TRUE(WaitPoolQuiet());

  backend_->set_stall_response(false);
  grpc::ClientContext next_context;
  v1::CallResponse next;
  grpc::Status next_status = CallWithoutDeadline("next", &next_context, &next);
  ASSERT_TRUE(next_status.ok()) << next_status.error_message();
  EXPECT_EQ(next.response(), Frame("re:next"));
  EXPECT_NE(next.lease().socket_id(), socket);
  EXPECT_FALSE(next.lease().reused());
  EXPECT_EQ(backend_->connections_accepted(), 2);
}

// An RPC deadline sooner than call_timeout ends the Call at that deadline: the caller sees
// gRPC's DEADLINE_EXCEEDED, the broker counts the Call as cancelled by its caller (not as a
// call_timeout), and the socket is destroyed all the same.
TEST_F(CallTimeoutTest, RpcDeadlineSoonerThanCallTimeoutStillWins) {
  framed_options().pool.call_timeout = absl::Minutes(10);
  StartBroker();
  v1::CallResponse warm;
  ASSERT_TRUE(Call("warm", &warm).ok());
  const uint64_t socket = warm.lease().socket_id();

  backend_->set_stall_response(true);
  grpc::ClientContext context;
  v1::CallResponse response;
  grpc::Status status = Call("stalled", &response, absl::Milliseconds(300), &context);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << status.error_message();
  EXPECT_NE(Reason(context), "OUTCOME_UNKNOWN");
  EXPECT_TRUE(testutil::WaitUntil([&] { return Calls("CANCELLED") == 1; }));
  EXPECT_EQ(Calls("DEADLINE_EXCEEDED"), 0);
  EXPECT_TRUE(testutil::WaitUntil([&] { return !SocketListed(socket); }));
  EXPECT_TRUE(testutil::WaitUntil([&] { return SocketsClosed("dirty") >= 1; }));

  backend_->set_stall_response(false);
  v1::CallResponse next;
  ASSERT_TRUE(Call("next", &next).ok());
  EXPECT_EQ(next.response(), Frame("re:next"));
  EXPECT_NE(next.lease().socket_id(), socket);
}

}  // namespace
}  // namespace tlsbroker
