// listen.max_connection_age reaches the gRPC server: a client channel is sent GOAWAY when its
// connection reaches that age and reconnects for the next call, and a Lease stream running on
// the aged connection goes on through the grace. Real broker (in-process, mTLS over TCP) in
// front of a real TLS backend. No timing assertions: waits are hang bounds.

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/services/broker_test_env.h"

namespace tlsbroker {
namespace {

using testutil::Frame;

// Generous: ageing fires after about a second; a sanitizer build on a busy machine is slower.
constexpr absl::Duration kHangBound = absl::Seconds(60);

class GrpcConnectionAgeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto framed = testutil::TlsTestServer::PkiOptions("ec");
    framed.mode = testutil::TlsTestServerMode::kFramedEcho;
    framed.response_prefix = "re:";
    backend_ = *testutil::TlsTestServer::Create(framed);
    options_ = testutil::BrokerTestOptions();
    BackendOptions b = testutil::FramedBackend(backend_->port());
    b.name = "framed";
    b.allowed_callers = {testutil::kApp1};
    options_.backends.push_back(b);
  }

  void StartBroker() {
    BrokerServer::StartOptions start;
    start.io_threads = 2;
    auto server = BrokerServer::Start(options_, start);
    ASSERT_TRUE(server.ok()) << server.status();
    broker_ = *std::move(server);
    channel_ = testutil::BrokerChannel(absl::StrCat("localhost:", broker_->grpc_port()));
    stub_ = v1::BrokerService::NewStub(channel_);
  }

  void TearDown() override {
    stub_.reset();
    channel_.reset();
    broker_.reset();
  }

  grpc::Status Call(const std::string& text) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    v1::CallRequest request;
    request.set_backend("framed");
    request.set_request(Frame(text));
    v1::CallResponse response;
    grpc::Status status = stub_->Call(&context, request, &response);
    if (status.ok() && response.response() != Frame("re:" + text)) {
      return grpc::Status(grpc::StatusCode::INTERNAL, "unexpected response " + response.response());
    }
    return status;
  }

  // Waits (up to `bound`) until the channel leaves READY; false if it stayed READY.
  bool WaitUntilChannelLeavesReady(absl::Duration bound) {
    const absl::Time deadline = absl::Now() + bound;
    grpc_connectivity_state state = channel_->GetState(false);
    while (state == GRPC_CHANNEL_READY) {
      if (!channel_->WaitForStateChange(state, absl::ToChronoTime(deadline))) return false;
      state = channel_->GetState(false);
    }
    return true;
  }

  std::unique_ptr<testutil::TlsTestServer> backend_;
  BrokerOptions options_;
  std::unique_ptr<BrokerServer> broker_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::BrokerService::Stub> stub_;
};

// After max_connection_age the server sends GOAWAY: the channel leaves READY (its connection is
// gone), and the next call works over a new connection.
TEST_F(GrpcConnectionAgeTest, AgedConnectionIsSentGoawayAndTheChannelReconnects) {
  options_.listen.max_connection_age = absl::Seconds(1);
  options_.listen.max_connection_age_grace = absl::Seconds(1);
  StartBroker();
  ASSERT_TRUE(Call("first").ok());
  ASSERT_EQ(channel_->GetState(false), GRPC_CHANNEL_READY);
  ASSERT_TRUE(WaitUntilChannelLeavesReady(kHangBound))
      << "the connection was never aged out: max_connection_age did not reach the server";
  grpc::Status again = Call("second");
  EXPECT_TRUE(again.ok()) << again.error_message();
  EXPECT_EQ(channel_->GetState(false), GRPC_CHANNEL_READY);
}

// The control: with ageing off ("0s") the same channel keeps its connection over several
// times the age used above.
TEST_F(GrpcConnectionAgeTest, WithAgeingOffTheConnectionStays) {
  options_.listen.max_connection_age = absl::ZeroDuration();
  StartBroker();
  ASSERT_TRUE(Call("first").ok());
  ASSERT_EQ(channel_->GetState(false), GRPC_CHANNEL_READY);
  EXPECT_FALSE(WaitUntilChannelLeavesReady(absl::Seconds(4)));
  EXPECT_TRUE(Call("second").ok());
}

// A Lease stream open when its connection is aged out goes on within the grace: GOAWAY stops
// new calls on that connection, not running ones.
TEST_F(GrpcConnectionAgeTest, RunningLeaseOutlivesGoawayWithinTheGrace) {
  options_.listen.max_connection_age = absl::Seconds(1);
  options_.listen.max_connection_age_grace = absl::Minutes(10);
  StartBroker();
  grpc::ClientContext context;
  auto stream = stub_->Lease(&context);
  v1::LeaseRequest open;
  open.mutable_open()->set_backend("framed");
  ASSERT_TRUE(stream->Write(open));
  v1::LeaseResponse info;
  ASSERT_TRUE(stream->Read(&info));
  ASSERT_TRUE(info.has_info());
  // A new call needs a connection: once the channel left READY and the call works, the Lease's
  // connection has been sent GOAWAY.
  ASSERT_TRUE(WaitUntilChannelLeavesReady(kHangBound));
  ASSERT_TRUE(Call("new-connection").ok());
  v1::LeaseRequest data;
  data.set_data(Frame("on-the-old-connection"));
  ASSERT_TRUE(stream->Write(data));
  std::string got;
  const std::string want = Frame("re:on-the-old-connection");
  v1::LeaseResponse response;
  while (got.size() < want.size() && stream->Read(&response)) got += response.data();
  EXPECT_EQ(got, want);
  v1::LeaseRequest release;
  release.mutable_release();
  ASSERT_TRUE(stream->Write(release));
  stream->WritesDone();
  while (stream->Read(&response)) {
  }
  grpc::Status status = stream->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
}

}  // namespace
}  // namespace tlsbroker
