// Who gets in, through the real gRPC API with mTLS (in-process broker, real TLS backend):
// callers without a client certificate or with one from an untrusted CA fail the handshake,
// callers outside allowed_callers and non-admins on the admin API are PERMISSION_DENIED (caller
// identities compared case-sensitively),
// over-size messages are refused while others keep being served, and one caller cannot hold
// more than limits.max_leases_per_caller leases.
//
// Already covered elsewhere and not repeated here: Call by a caller outside allowed_callers
// (tests/services/broker_service_test.cc CallerOutsideAllowedCallersIsPermissionDenied, with
// its ErrorInfo details) and ListBackends by a non-admin (AdminApiRefusesNonAdmin).

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/faults/fault_test_env.h"

namespace tlsbroker {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;
using testutil::FaultTest;
using testutil::Frame;
using testutil::LeaseStream;

// A channel presenting `key`/`cert` (either may be empty: no client certificate) and trusting
// the broker's CA.
std::shared_ptr<grpc::Channel> ChannelWith(const std::string& target, const std::string& key,
                                           const std::string& cert) {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = testutil::ReadAll(testutil::PkiPath("ec", "root.crt"));
  if (!key.empty()) ssl.pem_private_key = testutil::ReadAll(key);
  if (!cert.empty()) ssl.pem_cert_chain = testutil::ReadAll(cert);
  return grpc::CreateChannel(target, grpc::SslCredentials(ssl));
}

class SecurityAccessTest : public FaultTest {
 protected:
  grpc::Status CallAs(v1::BrokerService::Stub* stub, const std::string& payload,
                      v1::CallResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    v1::CallRequest request;
    request.set_backend("framed");
    request.set_request(Frame(payload));
    return stub->Call(&context, request, response);
  }

  // Opens a Lease as `stub`'s caller; on failure returns null and the stream's status.
  struct Held {
    std::unique_ptr<grpc::ClientContext> context = std::make_unique<grpc::ClientContext>();
    std::unique_ptr<LeaseStream> stream;
  };
  Held OpenAs(v1::BrokerService::Stub* stub, grpc::Status* failure) {
    Held held;
    held.context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    held.stream = stub->Lease(held.context.get());
    v1::LeaseInfo info;
    if (!testutil::OpenLease(held.stream.get(), "framed", &info)) {
      *failure = held.stream->Finish();
      held.stream.reset();
    }
    return held;
  }

  // Every BrokerAdminService RPC made as `stub`'s caller is PERMISSION_DENIED.
  static void ExpectEveryAdminRpcRefused(v1::BrokerAdminService::Stub* stub) {
    {
      grpc::ClientContext context;
      v1::ListBackendsResponse response;
      EXPECT_EQ(stub->ListBackends(&context, {}, &response).error_code(),
                grpc::StatusCode::PERMISSION_DENIED);
    }
    {
      grpc::ClientContext context;
      v1::ListSocketsRequest request;
      request.set_backend("framed");
      v1::ListSocketsResponse response;
      EXPECT_EQ(stub->ListSockets(&context, request, &response).error_code(),
                grpc::StatusCode::PERMISSION_DENIED);
    }
    {
      grpc::ClientContext context;
      v1::DrainRequest request;
      request.set_backend("framed");
      v1::DrainResponse response;
      EXPECT_EQ(stub->Drain(&context, request, &response).error_code(),
                grpc::StatusCode::PERMISSION_DENIED);
    }
    {
      grpc::ClientContext context;
      v1::ReloadResponse response;
      EXPECT_EQ(stub->Reload(&context, {}, &response).error_code(),
                grpc::StatusCode::PERMISSION_DENIED);
    }
  }

  // The TLS-level refusals: nothing reaches the service, and no backend is touched.
  void ExpectHandshakeRefused(const std::string& key, const std::string& cert) {
    auto stub = v1::BrokerService::NewStub(ChannelWith(target_, key, cert));
    v1::CallResponse response;
    grpc::Status call = CallAs(stub.get(), "secret", &response);
    EXPECT_EQ(call.error_code(), grpc::StatusCode::UNAVAILABLE) << call.error_message();
    grpc::Status lease;
    EXPECT_EQ(OpenAs(stub.get(), &lease).stream, nullptr);
    EXPECT_EQ(lease.error_code(), grpc::StatusCode::UNAVAILABLE) << lease.error_message();
    EXPECT_EQ(backend_->connections_accepted(), 0);
  }
};

// A caller presenting no client certificate fails the TLS handshake: UNAVAILABLE.
TEST_F(SecurityAccessTest, CallerWithoutClientCertificateFailsHandshake) {
  StartBroker();
  ExpectHandshakeRefused("", "");
}

// A caller whose certificate comes from a CA the broker does not trust fails the handshake.
TEST_F(SecurityAccessTest, CallerWithUntrustedCertificateFailsHandshake) {
  StartBroker();
  ExpectHandshakeRefused(testutil::PkiPath("ec", "wrongca/client.key"),
                         testutil::PkiPath("ec", "wrongca/client.crt"));
}

// A trusted caller outside allowed_callers is PERMISSION_DENIED on Lease (Call: see the header)
// and gets no socket, while an allowed caller on the same broker is served.
TEST_F(SecurityAccessTest, LeaseOutsideAllowedCallersIsPermissionDenied) {
  StartBroker();
  auto other = v1::BrokerService::NewStub(testutil::BrokerChannel(target_, "client2"));
  grpc::Status failure;
  EXPECT_EQ(OpenAs(other.get(), &failure).stream, nullptr);
  EXPECT_EQ(failure.error_code(), grpc::StatusCode::PERMISSION_DENIED) << failure.error_message();
  EXPECT_THAT(failure.error_message(), HasSubstr("spiffe://example.org/ns/payments/sa/app2"));
  EXPECT_EQ(backend_->connections_accepted(), 0);
  v1::CallResponse response;
  ASSERT_TRUE(CallAs(stub_.get(), "ok", &response).ok());
  EXPECT_EQ(response.response(), Frame("re:ok"));
}

// Every admin RPC refuses a caller not on admin_callers, and a refused Drain drains nothing.
TEST_F(SecurityAccessTest, EveryAdminRpcRefusesNonAdmins) {
  StartBroker();
  auto other = v1::BrokerAdminService::NewStub(testutil::BrokerChannel(target_, "client2"));
  ExpectEveryAdminRpcRefused(other.get());
  EXPECT_FALSE(broker_->registry().IsDraining("framed"));
  v1::CallResponse response;
  EXPECT_TRUE(CallAs(stub_.get(), "still", &response).ok());
}

// Caller identities are case-sensitive (SPIFFE IDs and URI paths are): with allowed_callers
// "spiffe://example.org/ns/PAYMENTS/sa/*", app1 (".../ns/payments/sa/app1") is refused on
// Call and Lease, and gets no socket, while the caller whose certificate says PAYMENTS is
// served.
TEST_F(SecurityAccessTest, AllowedCallersDoNotFoldCase) {
  framed_options().allowed_callers = {"spiffe://example.org/ns/PAYMENTS/sa/*"};
  StartBroker();
  v1::CallResponse response;
  grpc::Status call = CallAs(stub_.get(), "lower", &response);
  EXPECT_EQ(call.error_code(), grpc::StatusCode::PERMISSION_DENIED) << call.error_message();
  EXPECT_THAT(call.error_message(), HasSubstr(testutil::kApp1));
  grpc::Status lease;
  EXPECT_EQ(OpenAs(stub_.get(), &lease).stream, nullptr);
  EXPECT_EQ(lease.error_code(), grpc::StatusCode::PERMISSION_DENIED) << lease.error_message();
  EXPECT_EQ(backend_->connections_accepted(), 0);

  auto upper = v1::BrokerService::NewStub(testutil::BrokerChannel(target_, "client-case"));
  ASSERT_TRUE(CallAs(upper.get(), "upper", &response).ok());
  EXPECT_EQ(response.response(), Frame("re:upper"));
}

// The other direction, and admin_callers: a certificate whose SPIFFE ID is app1's but for the
// case of one path segment (".../ns/PAYMENTS/sa/app1") is neither app1 on the backend's
// allowed_callers nor an admin; app1 itself keeps both rights.
TEST_F(SecurityAccessTest, CallerDifferingOnlyInCaseIsNeitherAllowedNorAdmin) {
  ASSERT_EQ(options_.listen.admin_callers, std::vector<std::string>{testutil::kApp1});
  ASSERT_EQ(framed_options().allowed_callers, std::vector<std::string>{testutil::kApp1});
  StartBroker();
  auto channel = testutil::BrokerChannel(target_, "client-case");
  auto broker = v1::BrokerService::NewStub(channel);
  v1::CallResponse response;
  grpc::Status call = CallAs(broker.get(), "case", &response);
  EXPECT_EQ(call.error_code(), grpc::StatusCode::PERMISSION_DENIED) << call.error_message();
  EXPECT_THAT(call.error_message(), HasSubstr("spiffe://example.org/ns/PAYMENTS/sa/app1"));
  grpc::Status lease;
  EXPECT_EQ(OpenAs(broker.get(), &lease).stream, nullptr);
  EXPECT_EQ(lease.error_code(), grpc::StatusCode::PERMISSION_DENIED) << lease.error_message();
  EXPECT_EQ(backend_->connections_accepted(), 0);

  auto admin = v1::BrokerAdminService::NewStub(channel);
  ExpectEveryAdminRpcRefused(admin.get());
  EXPECT_FALSE(broker_->registry().IsDraining("framed"));

  ASSERT_TRUE(CallAs(stub_.get(), "app1", &response).ok());
  grpc::ClientContext context;
  v1::ListBackendsResponse backends;
  EXPECT_TRUE(admin_->ListBackends(&context, {}, &backends).ok());
}

// A request above gRPC's receive limit (4 MiB) is refused with RESOURCE_EXHAUSTED on Call and
// on a Lease, one above the backend's max_frame_bytes with INVALID_ARGUMENT; none reaches the
// backend, and the broker keeps serving others.
TEST_F(SecurityAccessTest, OverSizeMessagesAreRefusedAndOthersStillServed) {
  framed_options().framing.max_frame_bytes = 1024;
  StartBroker();
  const std::string huge(5 << 20, 'h');
  v1::CallResponse response;
  grpc::Status big_call = CallAs(stub_.get(), huge, &response);
  EXPECT_EQ(big_call.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << big_call.error_message();

  {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    auto lease = stub_->Lease(&context);
    v1::LeaseInfo info;
    ASSERT_TRUE(testutil::OpenLease(lease.get(), "framed", &info));
    v1::LeaseRequest data;
    data.set_data(huge);
    lease->Write(data);  // May report success: the refusal comes with the status.
    lease->WritesDone();
    v1::LeaseResponse ignored;
    while (lease->Read(&ignored)) {
    }
    grpc::Status status = lease->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  }

  grpc::Status frame_call = CallAs(stub_.get(), std::string(2000, 'f'), &response);
  EXPECT_EQ(frame_call.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << frame_call.error_message();
  EXPECT_THAT(frame_call.error_message(), HasSubstr("1024"));
  EXPECT_EQ(backend_->stats().requests, 0);

  ASSERT_TRUE(CallAs(stub_.get(), "small", &response).ok());
  EXPECT_EQ(response.response(), Frame("re:small"));
  auto other = v1::BrokerService::NewStub(testutil::BrokerChannel(target_));
  ASSERT_TRUE(CallAs(other.get(), "other", &response).ok());
  EXPECT_EQ(response.response(), Frame("re:other"));
}

// The gRPC receive limit follows the largest max_frame_bytes: with frames of up to 6 MiB (over
// gRPC's 4 MiB default) a Call whose request and response frames are both at the limit's edge is
// served, and a request frame one byte over it is refused by the broker's own check, naming the
// limit, instead of by gRPC with a bare RESOURCE_EXHAUSTED. Nothing over-size reaches the
// backend.
TEST_F(SecurityAccessTest, ReceiveLimitFollowsMaxFrameBytesOnBothSidesOfTheEdge) {
  constexpr uint64_t kMaxFrame = 6 << 20;
  framed_options().framing.max_frame_bytes = kMaxFrame;
  StartBroker();
  EXPECT_EQ(broker_->grpc_receive_limit(), static_cast<int>(kMaxFrame + (64 << 10)));

  // Frame() adds a 4-byte length; the backend answers "re:" + payload. So a payload of
  // kMaxFrame - 7 makes a request frame of kMaxFrame - 3 and a response frame of kMaxFrame.
  const std::string at_edge(kMaxFrame - 7, 'e');
  v1::CallResponse response;
  grpc::Status served = CallAs(stub_.get(), at_edge, &response);
  ASSERT_TRUE(served.ok()) << served.error_message();
  EXPECT_EQ(response.response().size(), kMaxFrame);
  EXPECT_EQ(response.response(), Frame("re:" + at_edge));

  const std::string over(kMaxFrame - 3, 'o');  // A request frame of kMaxFrame + 1.
  grpc::Status refused = CallAs(stub_.get(), over, &response);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << refused.error_message();
  EXPECT_THAT(refused.error_message(), HasSubstr(absl::StrCat(kMaxFrame)));
  EXPECT_EQ(backend_->stats().requests, 1);
}

// gRPC fixes its receive limit when the server starts: a reload whose frames would need a larger
// one is refused, naming the backend and saying a restart applies it; the running config stays.
// A reload that fits is applied.
TEST_F(SecurityAccessTest, ReloadNeedingALargerReceiveLimitIsRefused) {
  framed_options().framing.max_frame_bytes = 6 << 20;
  StartBroker();
  BrokerOptions bigger = options_;
  bigger.backends[0].framing.max_frame_bytes = 32 << 20;
  std::vector<std::string> errors = broker_->Reload(bigger);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_THAT(errors[0], HasSubstr("backends[framed].framing.max_frame_bytes 33554432"));
  EXPECT_THAT(errors[0], HasSubstr("restart the broker"));
  EXPECT_EQ(broker_->registry().Find("framed")->options()->framing.max_frame_bytes, 6u << 20);

  BrokerOptions smaller = options_;
  smaller.backends[0].framing.max_frame_bytes = 1 << 20;
  EXPECT_THAT(broker_->Reload(smaller), ::testing::IsEmpty());
  EXPECT_EQ(broker_->registry().Find("framed")->options()->framing.max_frame_bytes, 1u << 20);
}

// limits.max_leases_per_caller holds across Lease streams and Calls: the caller at its limit
// gets RESOURCE_EXHAUSTED naming the limit, other callers are unaffected, and ending one of
// its leases lets it in again.
TEST_F(SecurityAccessTest, PerCallerLeaseLimitHolds) {
  const std::string app2 = "spiffe://example.org/ns/payments/sa/app2";
  framed_options().allowed_callers = {testutil::kApp1, app2};
  options_.limits.max_leases_per_caller = 2;
  StartBroker();
  std::vector<Held> held;
  for (int i = 0; i < 2; ++i) {
    grpc::Status failure;
    held.push_back(OpenAs(stub_.get(), &failure));
    ASSERT_NE(held.back().stream, nullptr) << failure.error_message();
  }
  grpc::Status third;
  EXPECT_EQ(OpenAs(stub_.get(), &third).stream, nullptr);
  EXPECT_EQ(third.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << third.error_message();
  EXPECT_THAT(third.error_message(), HasSubstr("limits.max_leases_per_caller 2"));
  v1::CallResponse response;
  grpc::Status call = CallAs(stub_.get(), "over", &response);
  EXPECT_EQ(call.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << call.error_message();
  EXPECT_EQ(testutil::MetricValue(Metrics(), "tlsbroker_caller_lease_limit_refusals_total"), 2);

  // Another caller is not held back by app1's leases.
  auto other = v1::BrokerService::NewStub(testutil::BrokerChannel(target_, "client2"));
  ASSERT_TRUE(CallAs(other.get(), "app2", &response).ok());
  EXPECT_EQ(response.response(), Frame("re:app2"));

  // The held leases work; ending one lets app1 lease again.
  EXPECT_EQ(testutil::LeaseExchange(held[0].stream.get(), "held", Frame("re:held").size()),
            Frame("re:held"));
  ASSERT_TRUE(testutil::FinishLease(held[0].stream.get()).ok());
  ASSERT_TRUE(CallAs(stub_.get(), "again", &response).ok());
  EXPECT_EQ(response.response(), Frame("re:again"));
  EXPECT_EQ(broker_->caller_limits().ActiveFor(testutil::kApp1), 1);
  ASSERT_TRUE(testutil::FinishLease(held[1].stream.get()).ok());
  EXPECT_TRUE(testutil::WaitUntil(
      [&] { return broker_->caller_limits().ActiveFor(testutil::kApp1) == 0; }));
}

}  // namespace
}  // namespace tlsbroker
