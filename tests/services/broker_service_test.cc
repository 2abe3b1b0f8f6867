// The BrokerService and BrokerAdminService services through real gRPC channels (mTLS over TCP) in front of
// real TLS backends (the project's multi-connection test server).

#include <atomic>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "broker/metrics/metric_names.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include <future>

#include <google/protobuf/wrappers.pb.h>
#include <grpcpp/generic/generic_stub.h>

#include "services/trace_context.h"
#include "tests/services/broker_test_env.h"
#include "tests/services/log_capture.h"
#include "tests/support/refusing_port.h"

namespace tlsbroker {
namespace {

using ::testing::HasSubstr;
using testutil::Frame;
using testutil::MetricSum;
using testutil::MetricValue;

constexpr char kApp2[] = "spiffe://example.org/ns/payments/sa/app2";

std::string Reason(const grpc::ClientContext& context) {
  auto it = context.GetServerTrailingMetadata().find("tlsbroker-reason");
  if (it == context.GetServerTrailingMetadata().end()) return "";
  return std::string(it->second.data(), it->second.size());
}

class BrokerServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto framed = testutil::TlsTestServer::PkiOptions("ec");
    framed.mode = testutil::TlsTestServerMode::kFramedEcho;
    framed.response_prefix = "re:";
    framed_backend_ = *testutil::TlsTestServer::Create(framed);
    auto raw = testutil::TlsTestServer::PkiOptions("ec");
    raw.mode = testutil::TlsTestServerMode::kEcho;
    raw_backend_ = *testutil::TlsTestServer::Create(raw);

    options_ = testutil::BrokerTestOptions();
    BackendOptions f = testutil::FramedBackend(framed_backend_->port());
    f.name = "framed";
    f.allowed_callers = {"spiffe://example.org/ns/payments/sa/app1"};
    options_.backends.push_back(f);
    BackendOptions r = testutil::FramedBackend(raw_backend_->port());
    r.name = "raw";
    r.framing = FramingOptions();  // No framing: Lease only, sockets never reused.
    r.client_id.prefix = "RAW";
    r.allowed_callers = {"spiffe://example.org/*"};
    options_.backends.push_back(r);
  }

  void StartBroker() {
    BrokerServer::StartOptions start;
    start.io_threads = 2;
    auto server = BrokerServer::Start(options_, start);
    ASSERT_TRUE(server.ok()) << server.status();
    broker_ = *std::move(server);
    target_ = absl::StrCat("localhost:", broker_->grpc_port());
    stub_ = v1::BrokerService::NewStub(testutil::BrokerChannel(target_));
  }

  void TearDown() override {
    stub_.reset();
    broker_.reset();
  }

  grpc::Status Call(const std::string& backend, const std::string& request,
                    v1::CallResponse* response, const std::string& client_id = "",
                    absl::Duration deadline = absl::Seconds(10),
                    grpc::ClientContext* ctx = nullptr) {
    grpc::ClientContext local;
    grpc::ClientContext& context = ctx != nullptr ? *ctx : local;
    context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    v1::CallRequest req;
    req.set_backend(backend);
    req.set_request(request);
    req.set_client_id(client_id);
    return stub_->Call(&context, req, response);
  }

  // /readyz: (status, body); status -1 when the request failed.
  std::pair<int, std::string> Readyz() {
    auto r = testutil::HttpGet("127.0.0.1", broker_->metrics_port(), "/readyz");
    if (!r.ok()) return {-1, std::string(r.status().message())};
    return {r->status, r->body};
  }

  // The gRPC health status of `service` ("" = the whole server): 1 SERVING, 2 NOT_SERVING,
  // -1 when the call failed. grpc.health.v1's two messages are wire-compatible with these
  // wrappers (a string and an enum, both field 1), and no health stub ships with gRPC.
  int HealthStatus(const std::string& service) {
    grpc::TemplatedGenericStub<google::protobuf::StringValue, google::protobuf::Int32Value> stub(
        testutil::BrokerChannel(target_));
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    google::protobuf::StringValue request;
    request.set_value(service);
    google::protobuf::Int32Value response;
    std::promise<grpc::Status> done;
    stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request,
                   &response, [&done](grpc::Status status) { done.set_value(status); });
    return done.get_future().get().ok() ? response.value() : -1;
  }

  grpc::Status Drain(const std::string& backend, bool all = false,
                     const std::string& client = "client") {
    auto admin = v1::BrokerAdminService::NewStub(testutil::BrokerChannel(target_, client));
    grpc::ClientContext context;
    v1::DrainRequest request;
    request.set_backend(backend);
    request.set_all(all);
    v1::DrainResponse response;
    return admin->Drain(&context, request, &response);
  }

  grpc::Status Resume(const std::string& backend, bool all = false,
                      v1::ResumeResponse* response = nullptr,
                      const std::string& client = "client") {
    auto admin = v1::BrokerAdminService::NewStub(testutil::BrokerChannel(target_, client));
    grpc::ClientContext context;
    v1::ResumeRequest request;
    request.set_backend(backend);
    request.set_all(all);
    v1::ResumeResponse local;
    return admin->Resume(&context, request, response != nullptr ? response : &local);
  }

  std::string Metrics() {
    auto response = testutil::HttpGet("127.0.0.1", broker_->metrics_port(), "/metrics");
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? response->body : "";
  }

  BrokerOptions options_;
  std::unique_ptr<testutil::TlsTestServer> framed_backend_;
  std::unique_ptr<testutil::TlsTestServer> raw_backend_;
  std::unique_ptr<BrokerServer> broker_;
  std::string target_;
  std::unique_ptr<v1::BrokerService::Stub> stub_;
};

// A Call returns the backend's response frame and describes the socket it ran on.
TEST_F(BrokerServiceTest, CallReturnsResponseFrameAndLeaseInfo) {
  StartBroker();
  v1::CallResponse response;
  grpc::Status status = Call("framed", Frame("hello"), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.response(), Frame("re:hello"));
  EXPECT_EQ(response.lease().client_id(), "TLSB0001");
  EXPECT_EQ(response.lease().backend(), "framed");
  EXPECT_FALSE(response.lease().reused());
  EXPECT_EQ(response.lease().tls_version(), "TLSv1.3");
  EXPECT_THAT(response.lease().peer().subject(), HasSubstr("CN=QM2.backend"));
  EXPECT_THAT(response.lease().peer().sans(), ::testing::Contains("IP:127.0.0.1"));
  // The caller is on the admin list, so it sees the lease ID.
  EXPECT_EQ(response.lease().lease_id().size(), 32u);
}

// N calls over a pool of K sockets: K handshakes, seen alike through the API, the metrics and
// the backend; every socket keeps one client ID.
TEST_F(BrokerServiceTest, NCallsOverKSocketsPerformKHandshakes) {
  options_.backends[0].pool.max_sockets = 4;
  StartBroker();
  constexpr int kThreads = 8;
  constexpr int kCallsEach = 25;
  std::mutex mu;
  std::map<uint64_t, std::set<std::string>> ids_by_socket;
  int first_uses = 0;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kCallsEach; ++i) {
        v1::CallResponse response;
        std::string payload = absl::StrCat("t", t, "i", i);
        grpc::Status status = Call("framed", Frame(payload), &response);
        if (!status.ok() || response.response() != Frame("re:" + payload)) {
          ++failures;
          continue;
        }
        std::lock_guard<std::mutex> lock(mu);
        ids_by_socket[response.lease().socket_id()].insert(response.lease().client_id());
        if (!response.lease().reused()) ++first_uses;
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_EQ(failures.load(), 0);
  const int k = static_cast<int>(ids_by_socket.size());
  EXPECT_GE(k, 1);
  EXPECT_LE(k, 4);
  EXPECT_EQ(first_uses, k);
  for (const auto& [socket, ids] : ids_by_socket) EXPECT_EQ(ids.size(), 1u) << socket;
  EXPECT_EQ(framed_backend_->total_handshakes(), k);
  std::string metrics = Metrics();
  EXPECT_EQ(MetricSum(metrics, "tlsbroker_tls_handshakes_total",
                      {"backend=\"framed\"", "result=\"ok\""}),
            k);
  EXPECT_EQ(MetricValue(metrics, "tlsbroker_socket_reuses_total{backend=\"framed\"}"),
            kThreads * kCallsEach - k);
  EXPECT_EQ(MetricValue(metrics, "tlsbroker_calls_total{backend=\"framed\",code=\"OK\"}"),
            kThreads * kCallsEach);
}

// Asking for a client ID runs the call on that socket.
TEST_F(BrokerServiceTest, CallWithClientIdUsesThatSocket) {
  StartBroker();
  v1::CallResponse first;
  ASSERT_TRUE(Call("framed", Frame("a"), &first, "TLSB0002").ok());
  EXPECT_EQ(first.lease().client_id(), "TLSB0002");
  for (int i = 0; i < 3; ++i) {
    v1::CallResponse again;
    ASSERT_TRUE(Call("framed", Frame("b"), &again, "TLSB0002").ok());
    EXPECT_EQ(again.lease().socket_id(), first.lease().socket_id());
    EXPECT_TRUE(again.lease().reused());
  }
}

// A caller outside allowed_callers is refused with PERMISSION_DENIED and a reason.
TEST_F(BrokerServiceTest, CallerOutsideAllowedCallersIsPermissionDenied) {
  StartBroker();
  auto other = v1::BrokerService::NewStub(testutil::BrokerChannel(target_, "client2"));
  grpc::ClientContext context;
  v1::CallRequest request;
  request.set_backend("framed");
  request.set_request(Frame("x"));
  v1::CallResponse response;
  grpc::Status status = other->Call(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("spiffe://example.org/ns/payments/sa/app2"));
  EXPECT_EQ(Reason(context), "PERMISSION_DENIED");
  // The details carry an ErrorInfo (google.rpc.ErrorInfo on the wire).
  v1::RpcStatus details;
  ASSERT_TRUE(details.ParseFromString(status.error_details()));
  ASSERT_EQ(details.details_size(), 1);
  v1::ErrorInfo info;
  ASSERT_TRUE(info.ParseFromString(details.details(0).value()));
  EXPECT_EQ(info.reason(), "PERMISSION_DENIED");
  EXPECT_EQ(info.domain(), "tlsbroker.dev");
  EXPECT_EQ(framed_backend_->connections_accepted(), 0);
}

// Bad requests are refused with the right code and touch no backend.
TEST_F(BrokerServiceTest, BadRequestsGetClearErrors) {
  StartBroker();
  v1::CallResponse response;
  EXPECT_EQ(Call("nope", Frame("x"), &response).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Call("raw", "x", &response).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  grpc::Status two = Call("framed", Frame("a") + Frame("b"), &response);
  EXPECT_EQ(two.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(two.error_message(), HasSubstr("more than one frame"));
  EXPECT_EQ(Call("framed", Frame("abc").substr(0, 5), &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Call("framed", "", &response).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Call("framed", Frame("x"), &response, "TLSB0099").error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(framed_backend_->bytes_in(), 0);
}

// Many callers with random payloads, delays and deadlines: every successful answer is exactly
// the caller's own, and no call succeeds with someone else's bytes.
TEST_F(BrokerServiceTest, ConcurrentCallersNeverReceiveAnotherCallersBytes) {
  options_.backends[0].pool.max_sockets = 3;
  StartBroker();
  framed_backend_->set_response_delay(absl::Milliseconds(1));
  constexpr int kThreads = 8;
  constexpr int kCallsEach = 40;
  std::atomic<int> ok{0}, wrong{0}, cut_short{0}, other_errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t * 7919 + 1);
      for (int i = 0; i < kCallsEach; ++i) {
        std::string payload = absl::StrCat("caller", t, "-call", i, ":");
        size_t size = std::uniform_int_distribution<size_t>(0, 20000)(rng);
        for (size_t j = 0; j < size; ++j) payload.push_back(static_cast<char>('a' + rng() % 26));
        // One call in five gets a deadline short enough to cut it off mid-exchange.
        absl::Duration deadline = rng() % 5 == 0 ? absl::Milliseconds(1 + rng() % 3)
                                                 : absl::Seconds(10);
        v1::CallResponse response;
        grpc::Status status = Call("framed", Frame(payload), &response, "", deadline);
        if (status.ok()) {
          if (response.response() == Frame("re:" + payload)) {
            ++ok;
          } else {
            ++wrong;
          }
        } else if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
                   status.error_code() == grpc::StatusCode::CANCELLED) {
          ++cut_short;
        } else {
          ++other_errors;
          ADD_FAILURE() << status.error_code() << " " << status.error_message();
        }
        if (rng() % 4 == 0) absl::SleepFor(absl::Microseconds(rng() % 2000));
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(other_errors.load(), 0);
  EXPECT_GT(ok.load(), kThreads * kCallsEach / 2);
}

// A caller that gives up mid-Call leaves no trace on the next caller of that socket: the socket
// is destroyed (sockets_closed_total{reason="dirty"}) and the next call gets a fresh one.
TEST_F(BrokerServiceTest, CancelledCallDestroysSocketAndNextCallerIsUnaffected) {
  StartBroker();
  v1::CallResponse warm;
  ASSERT_TRUE(Call("framed", Frame("warm"), &warm, "TLSB0001").ok());
  framed_backend_->set_response_delay(absl::Milliseconds(500));
  v1::CallResponse cut;
  grpc::Status status = Call("framed", Frame("slow"), &cut, "TLSB0001", absl::Milliseconds(100));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  ASSERT_TRUE(testutil::WaitUntil([&] {
    return MetricValue(Metrics(),
                       "tlsbroker_sockets_closed_total{backend=\"framed\",reason=\"dirty\"}") == 1;
  }));
  framed_backend_->set_response_delay(absl::ZeroDuration());
  v1::CallResponse next;
  ASSERT_TRUE(Call("framed", Frame("next"), &next, "TLSB0001").ok());
  EXPECT_EQ(next.response(), Frame("re:next"));
  EXPECT_EQ(next.lease().client_id(), "TLSB0001");
  EXPECT_NE(next.lease().socket_id(), warm.lease().socket_id());
  EXPECT_FALSE(next.lease().reused());
}

// A failure after the request reached the backend is ABORTED with reason outcome_unknown.
TEST_F(BrokerServiceTest, BackendDyingAfterRequestGivesOutcomeUnknown) {
  StartBroker();
  framed_backend_->set_stall_response(true);
  grpc::ClientContext context;
  v1::CallResponse response;
  std::thread dropper([&] {
    framed_backend_->WaitFor([](const auto& s) { return s.requests >= 1; }, absl::Seconds(10));
    framed_backend_->CloseAllConnections();
  });
  grpc::Status status = Call("framed", Frame("pay 100"), &response, "", absl::Seconds(10),
                             &context);
  dropper.join();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_EQ(Reason(context), "OUTCOME_UNKNOWN");
}

// A backend that cannot be reached gives UNAVAILABLE with the reason, before any byte is sent.
TEST_F(BrokerServiceTest, UnreachableBackendIsUnavailableWithReason) {
  framed_backend_->Stop();
  StartBroker();
  grpc::ClientContext context;
  v1::CallResponse response;
  grpc::Status status = Call("framed", Frame("x"), &response, "", absl::Seconds(10), &context);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Reason(context), "CONNECT_REFUSED");
}

// Reads the response frame of `expected_size` bytes from a Lease stream (it may arrive in
// several data messages).
std::string ReadLeaseBytes(grpc::ClientReaderWriter<v1::LeaseRequest, v1::LeaseResponse>* stream,
                           size_t expected_size) {
  std::string got;
  v1::LeaseResponse response;
  while (got.size() < expected_size && stream->Read(&response)) got += response.data();
  return got;
}

// A Lease stream: open, info first, bytes both ways, release; a clean lease returns its socket.
TEST_F(BrokerServiceTest, LeaseStreamExchangesFramesAndReturnsSocketClean) {
  StartBroker();
  uint64_t socket_id;
  {
    grpc::ClientContext context;
    auto stream = stub_->Lease(&context);
    v1::LeaseRequest open;
    open.mutable_open()->set_backend("framed");
    ASSERT_TRUE(stream->Write(open));
    v1::LeaseResponse info;
    ASSERT_TRUE(stream->Read(&info));
    ASSERT_TRUE(info.has_info());
    socket_id = info.info().socket_id();
    for (int i = 0; i < 3; ++i) {
      v1::LeaseRequest data;
      data.set_data(Frame(absl::StrCat("msg", i)));
      ASSERT_TRUE(stream->Write(data));
      EXPECT_EQ(ReadLeaseBytes(stream.get(), Frame(absl::StrCat("re:msg", i)).size()),
                Frame(absl::StrCat("re:msg", i)));
    }
    v1::LeaseRequest release;
    release.mutable_release();
    ASSERT_TRUE(stream->Write(release));
    stream->WritesDone();
    v1::LeaseResponse rest;
    while (stream->Read(&rest)) {
    }
    grpc::Status status = stream->Finish();
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  v1::CallResponse after;
  ASSERT_TRUE(Call("framed", Frame("after"), &after).ok());
  EXPECT_EQ(after.lease().socket_id(), socket_id);
  EXPECT_TRUE(after.lease().reused());
}

// A stream whose first message is not open is refused.
TEST_F(BrokerServiceTest, LeaseWithoutOpenIsInvalidArgument) {
  StartBroker();
  grpc::ClientContext context;
  auto stream = stub_->Lease(&context);
  v1::LeaseRequest data;
  data.set_data("x");
  stream->Write(data);
  stream->WritesDone();
  v1::LeaseResponse r;
  while (stream->Read(&r)) {
  }
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

// Without framing, no late byte can be proved absent: the socket is closed at lease end.
TEST_F(BrokerServiceTest, LeaseOnUnframedBackendClosesSocketAtEnd) {
  StartBroker();
  std::set<uint64_t> sockets;
  for (int i = 0; i < 2; ++i) {
    grpc::ClientContext context;
    auto stream = stub_->Lease(&context);
    v1::LeaseRequest open;
    open.mutable_open()->set_backend("raw");
    ASSERT_TRUE(stream->Write(open));
    v1::LeaseResponse info;
    ASSERT_TRUE(stream->Read(&info));
    sockets.insert(info.info().socket_id());
    v1::LeaseRequest data;
    data.set_data("ping");
    ASSERT_TRUE(stream->Write(data));
    EXPECT_EQ(ReadLeaseBytes(stream.get(), 4), "ping");
    stream->WritesDone();
    v1::LeaseResponse rest;
    while (stream->Read(&rest)) {
    }
    ASSERT_TRUE(stream->Finish().ok());
  }
  EXPECT_EQ(sockets.size(), 2u);
  EXPECT_TRUE(testutil::WaitUntil([&] { return raw_backend_->current_connections() == 0; }));
}

// Pushing far more bytes through a Lease than any buffer holds keeps the bytes the broker holds
// below a fixed high-water mark: flow control works end to end.
TEST_F(BrokerServiceTest, BulkLeaseKeepsBufferedBytesBelowHighWaterMark) {
  StartBroker();
  constexpr size_t kMessage = 64 * 1024;
  constexpr size_t kTotal = 32u << 20;  // 32 MiB, 512 messages.
  grpc::ClientContext context;
  auto stream = stub_->Lease(&context);
  v1::LeaseRequest open;
  open.mutable_open()->set_backend("raw");
  ASSERT_TRUE(stream->Write(open));
  v1::LeaseResponse info;
  ASSERT_TRUE(stream->Read(&info));
  broker_->flow().ResetHighWaterForTest();
  std::thread writer([&] {
    std::string chunk(kMessage, '\0');
    for (size_t sent = 0, n = 0; sent < kTotal; sent += kMessage, ++n) {
      for (size_t j = 0; j < kMessage; ++j) chunk[j] = static_cast<char>((n * 131 + j) & 0xff);
      v1::LeaseRequest data;
      data.set_data(chunk);
      if (!stream->Write(data)) break;
    }
  });
  size_t received = 0;
  bool content_ok = true;
  v1::LeaseResponse response;
  while (received < kTotal && stream->Read(&response)) {
    for (char c : response.data()) {
      size_t n = received / kMessage, j = received % kMessage;
      if (c != static_cast<char>((n * 131 + j) & 0xff)) content_ok = false;
      ++received;
    }
  }
  writer.join();
  stream->WritesDone();
  while (stream->Read(&response)) {
  }
  stream->Finish();
  EXPECT_EQ(received, kTotal);
  EXPECT_TRUE(content_ok);
  // One caller message on its way to the backend plus one backend chunk on its way back.
  EXPECT_LE(broker_->flow().high_water(), 2 * kMessage);
  EXPECT_GT(broker_->flow().high_water(), 0u);
}

// /metrics carries every metric docs/operations.md lists, with series for backends that saw no
// traffic.
TEST_F(BrokerServiceTest, MetricsEndpointListsEveryDesignMetric) {
  StartBroker();
  v1::CallResponse response;
  ASSERT_TRUE(Call("framed", Frame("m"), &response).ok());
  std::string metrics = Metrics();
  for (absl::string_view name : metrics::kAllMetricNames) {
    EXPECT_THAT(metrics, HasSubstr(absl::StrCat("# TYPE ", name, " "))) << name;
  }
  for (absl::string_view name : metrics::kProcessMetricNames) {
    EXPECT_THAT(metrics, HasSubstr(absl::StrCat("# TYPE ", name, " "))) << name;
  }
  EXPECT_GE(MetricValue(metrics, "tlsbroker_pool_sockets{backend=\"raw\",state=\"idle\"}"), 0);
}

// /readyz is 200 once every backend has its min_idle sockets, /healthz always 200.
TEST_F(BrokerServiceTest, ReadyzWaitsForMinIdle) {
  options_.backends[0].pool.min_idle = 2;
  StartBroker();
  EXPECT_TRUE(testutil::WaitUntil([&] {
    auto r = testutil::HttpGet("127.0.0.1", broker_->metrics_port(), "/readyz");
    return r.ok() && r->status == 200;
  }));
  auto ready = testutil::HttpGet("127.0.0.1", broker_->metrics_port(), "/readyz");
  ASSERT_TRUE(ready.ok());
  EXPECT_THAT(ready->body, HasSubstr("framed: ready"));
  auto health = testutil::HttpGet("127.0.0.1", broker_->metrics_port(), "/healthz");
  ASSERT_TRUE(health.ok());
  EXPECT_EQ(health->status, 200);
}

// The admin API answers admins and refuses everyone else.
TEST_F(BrokerServiceTest, AdminApiRefusesNonAdmin) {
  StartBroker();
  auto admin = v1::BrokerAdminService::NewStub(testutil::BrokerChannel(target_));
  auto other = v1::BrokerAdminService::NewStub(testutil::BrokerChannel(target_, "client2"));
  v1::ListBackendsRequest request;
  v1::ListBackendsResponse response;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(admin->ListBackends(&context, request, &response).ok());
    ASSERT_EQ(response.backends_size(), 2);
    EXPECT_EQ(response.backends(0).name(), "framed");
  }
  grpc::ClientContext context;
  EXPECT_EQ(other->ListBackends(&context, request, &response).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

// ListSockets shows each socket's client ID, state, traffic and, for a leased one, its lease.
TEST_F(BrokerServiceTest, ListSocketsShowsTrafficAndCurrentLease) {
  StartBroker();
  v1::CallResponse warm;
  ASSERT_TRUE(Call("framed", Frame("counted"), &warm, "TLSB0001").ok());
  grpc::ClientContext lease_context;
  auto lease = stub_->Lease(&lease_context);
  v1::LeaseRequest open;
  open.mutable_open()->set_backend("framed");
  open.mutable_open()->set_client_id("TLSB0001");
  ASSERT_TRUE(lease->Write(open));
  v1::LeaseResponse info;
  ASSERT_TRUE(lease->Read(&info));
  auto admin = v1::BrokerAdminService::NewStub(testutil::BrokerChannel(target_));
  v1::ListSocketsRequest request;
  request.set_backend("framed");
  v1::ListSocketsResponse sockets;
  grpc::ClientContext context;
  ASSERT_TRUE(admin->ListSockets(&context, request, &sockets).ok());
  ASSERT_EQ(sockets.sockets_size(), 1);
  const v1::SocketStatus& s = sockets.sockets(0);
  EXPECT_EQ(s.client_id(), "TLSB0001");
  EXPECT_EQ(s.state(), v1::SOCKET_STATE_LEASED);
  EXPECT_EQ(s.lease_id(), info.info().lease_id());
  EXPECT_EQ(s.bytes_sent(), Frame("counted").size());
  EXPECT_EQ(s.bytes_received(), Frame("re:counted").size());
  EXPECT_EQ(s.leases_served(), 2u);
  EXPECT_EQ(s.tls_version(), "TLSv1.3");
  lease->WritesDone();
  v1::LeaseResponse rest;
  while (lease->Read(&rest)) {
  }
  EXPECT_TRUE(lease->Finish().ok());
}

// ---- Drain and resume ----

// A drained backend refuses leases (UNAVAILABLE "draining"); after Resume it serves again.
TEST_F(BrokerServiceTest, DrainThenResumeOfOneBackendServesLeasesAgain) {
  StartBroker();
  v1::CallResponse response;
  ASSERT_TRUE(Call("framed", Frame("before"), &response).ok());
  ASSERT_TRUE(Drain("framed").ok());
  grpc::ClientContext refused_context;
  grpc::Status refused =
      Call("framed", Frame("during"), &response, "", absl::Seconds(10), &refused_context);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Reason(refused_context), "DRAINING");
  v1::ResumeResponse resumed;
  ASSERT_TRUE(Resume("framed", false, &resumed).ok());
  EXPECT_THAT(resumed.resumed(), ::testing::ElementsAre("framed"));
  EXPECT_THAT(resumed.still_draining(), ::testing::IsEmpty());
  grpc::Status after = Call("framed", Frame("after"), &response);
  ASSERT_TRUE(after.ok()) << after.error_message();
  EXPECT_EQ(response.response(), Frame("re:after"));
  // A Lease stream too, not only Call.
  grpc::ClientContext lease_context;
  auto lease = stub_->Lease(&lease_context);
  v1::LeaseRequest open;
  open.mutable_open()->set_backend("framed");
  ASSERT_TRUE(lease->Write(open));
  v1::LeaseResponse info;
  ASSERT_TRUE(lease->Read(&info));
  EXPECT_TRUE(info.has_info());
  lease->WritesDone();
  while (lease->Read(&info)) {
  }
  EXPECT_TRUE(lease->Finish().ok());
}

// One drained backend of two leaves the pod ready; a whole-broker drain makes it unready and
// refuses every backend; resuming the broker makes it ready again, while the backend drained by
// name stays drained until resumed by name.
TEST_F(BrokerServiceTest, ReadinessFollowsWholeBrokerDrainNotOneDrainedBackend) {
  options_.backends[0].pool.min_idle = 1;
  options_.backends[1].pool.min_idle = 1;
  StartBroker();
  ASSERT_TRUE(testutil::WaitUntil([&] { return Readyz().first == 200; }, absl::Seconds(30)))
      << Readyz().second;

  ASSERT_TRUE(Drain("framed").ok());
  auto [one_drained, one_body] = Readyz();
  EXPECT_EQ(one_drained, 200) << one_body;
  EXPECT_THAT(one_body, HasSubstr("framed: draining"));

  EXPECT_TRUE(testutil::WaitUntil([&] { return HealthStatus("") == 1; }, absl::Seconds(30)));

  ASSERT_TRUE(Drain("", /*all=*/true).ok());
  auto [broker_drained, broker_body] = Readyz();
  EXPECT_EQ(broker_drained, 503) << broker_body;
  EXPECT_THAT(broker_body, HasSubstr("broker: draining"));
  // gRPC health says so too (it is published periodically: wait for it).
  EXPECT_TRUE(testutil::WaitUntil([&] { return HealthStatus("") == 2; }, absl::Seconds(30)));
  grpc::ClientContext raw_context;
  auto raw_lease = stub_->Lease(&raw_context);
  v1::LeaseRequest open;
  open.mutable_open()->set_backend("raw");
  ASSERT_TRUE(raw_lease->Write(open));
  v1::LeaseResponse first;
  EXPECT_FALSE(raw_lease->Read(&first));
  EXPECT_EQ(raw_lease->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);

  v1::ResumeResponse resumed;
  ASSERT_TRUE(Resume("", /*all=*/true, &resumed).ok());
  EXPECT_THAT(resumed.resumed(), ::testing::ElementsAre("raw"));
  EXPECT_THAT(resumed.still_draining(), ::testing::ElementsAre("framed"));
  ASSERT_TRUE(testutil::WaitUntil([&] { return Readyz().first == 200; }, absl::Seconds(30)))
      << Readyz().second;
  EXPECT_TRUE(testutil::WaitUntil([&] { return HealthStatus("") == 1; }, absl::Seconds(30)));
  v1::CallResponse response;
  grpc::ClientContext framed_context;
  EXPECT_EQ(Call("framed", Frame("x"), &response, "", absl::Seconds(10), &framed_context)
                .error_code(),
            grpc::StatusCode::UNAVAILABLE);
  ASSERT_TRUE(Resume("framed").ok());
  grpc::Status back = Call("framed", Frame("back"), &response);
  EXPECT_TRUE(back.ok()) << back.error_message();
}

// When not one backend can serve (here: every one drained by name), the pod is unready.
TEST_F(BrokerServiceTest, ReadinessDropsWhenNoBackendCanServe) {
  StartBroker();
  ASSERT_TRUE(testutil::WaitUntil([&] { return Readyz().first == 200; }, absl::Seconds(30)));
  ASSERT_TRUE(Drain("framed").ok());
  ASSERT_TRUE(Drain("raw").ok());
  auto [status, body] = Readyz();
  EXPECT_EQ(status, 503) << body;
  EXPECT_THAT(body, HasSubstr("not one backend can serve"));
  ASSERT_TRUE(Resume("raw").ok());
  EXPECT_EQ(Readyz().first, 200) << Readyz().second;
}

// Drain and Resume are admin actions: a caller off the admin list is refused and changes
// nothing; an admin must name exactly one of a backend and the whole broker.
TEST_F(BrokerServiceTest, DrainAndResumeRequireAdminAndOneTarget) {
  StartBroker();
  EXPECT_EQ(Drain("framed", false, "client2").error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Drain("", true, "client2").error_code(), grpc::StatusCode::PERMISSION_DENIED);
  v1::CallResponse response;
  EXPECT_TRUE(Call("framed", Frame("still serving"), &response).ok());
  ASSERT_TRUE(Drain("framed").ok());
  EXPECT_EQ(Resume("framed", false, nullptr, "client2").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Resume("", true, nullptr, "client2").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Call("framed", Frame("x"), &response).error_code(), grpc::StatusCode::UNAVAILABLE);

  EXPECT_EQ(Drain("").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Drain("raw", true).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Resume("").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Resume("nope").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Drain("nope").error_code(), grpc::StatusCode::NOT_FOUND);
  // The refused calls changed nothing: "raw" still serves.
  EXPECT_EQ(Readyz().first, 200) << Readyz().second;
}

// A reload does not undo a drain; a backend a reload adds while the broker is drained starts
// drained and lends once the broker resumes.
TEST_F(BrokerServiceTest, DrainSurvivesReloadAndAddedBackendStartsDrained) {
  StartBroker();
  ASSERT_TRUE(Drain("framed").ok());
  ASSERT_THAT(broker_->Reload(options_), ::testing::IsEmpty());
  v1::CallResponse response;
  EXPECT_EQ(Call("framed", Frame("x"), &response).error_code(), grpc::StatusCode::UNAVAILABLE);

  ASSERT_TRUE(Drain("", /*all=*/true).ok());
  BrokerOptions next = options_;
  BackendOptions extra = next.backends[0];
  extra.name = "extra";
  extra.client_id.prefix = "EXTR";
  next.backends.push_back(extra);
  ASSERT_THAT(broker_->Reload(next), ::testing::IsEmpty());
  EXPECT_EQ(Readyz().first, 503);
  EXPECT_EQ(Call("extra", Frame("x"), &response).error_code(), grpc::StatusCode::UNAVAILABLE);
  v1::ResumeResponse resumed;
  ASSERT_TRUE(Resume("", /*all=*/true, &resumed).ok());
  EXPECT_THAT(resumed.resumed(), ::testing::ElementsAre("raw", "extra"));
  EXPECT_THAT(resumed.still_draining(), ::testing::ElementsAre("framed"));
  grpc::Status extra_call = Call("extra", Frame("new"), &response);
  ASSERT_TRUE(extra_call.ok()) << extra_call.error_message();
  EXPECT_EQ(response.response(), Frame("re:new"));
}

// ---- Log lines for refusals and admin actions ----

// A caller refused by allowed_callers gets one log line naming it, the backend and the reason.
TEST_F(BrokerServiceTest, PermissionDeniedIsLoggedWithCallerBackendAndReason) {
  StartBroker();
  testutil::LogCapture log;
  auto other = v1::BrokerService::NewStub(testutil::BrokerChannel(target_, "client2"));
  grpc::ClientContext context;
  v1::CallRequest request;
  request.set_backend("framed");
  request.set_request(Frame("x"));
  v1::CallResponse response;
  ASSERT_EQ(other->Call(&context, request, &response).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  auto lines = log.Matching({"msg=\"request refused\""});
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0], HasSubstr(absl::StrCat("caller=", kApp2)));
  EXPECT_THAT(lines[0], HasSubstr("backend=framed"));
  EXPECT_THAT(lines[0], HasSubstr("reason=permission_denied"));
  EXPECT_THAT(lines[0], HasSubstr("rpc=Call"));
}

// A caller at limits.max_leases_per_caller: the refusal line names it and the limit.
TEST_F(BrokerServiceTest, CallerLeaseLimitRefusalIsLogged) {
  options_.limits.max_leases_per_caller = 1;
  StartBroker();
  testutil::LogCapture log;
  grpc::ClientContext lease_context;
  auto lease = stub_->Lease(&lease_context);
  v1::LeaseRequest open;
  open.mutable_open()->set_backend("framed");
  ASSERT_TRUE(lease->Write(open));
  v1::LeaseResponse info;
  ASSERT_TRUE(lease->Read(&info));
  v1::CallResponse response;
  ASSERT_EQ(Call("framed", Frame("x"), &response).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  auto lines = log.Matching({"msg=\"request refused\""});
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0], HasSubstr(absl::StrCat("caller=", testutil::kApp1)));
  EXPECT_THAT(lines[0], HasSubstr("backend=framed"));
  EXPECT_THAT(lines[0], HasSubstr("reason=caller_lease_limit"));
  lease->WritesDone();
  while (lease->Read(&info)) {
  }
  lease->Finish();
}

// The broker-wide socket budget used up by one backend: a lease on the other is refused, and
// the line says so (in JSON mode too: the same fields as JSON members).
TEST_F(BrokerServiceTest, SocketBudgetRefusalIsLoggedAsJson) {
  options_.limits.max_backend_sockets = 1;
  StartBroker();
  testutil::LogCapture log;
  SetLogFormat(LogFormat::kJson);  // Back to text when `log` goes.
  grpc::ClientContext lease_context;
  auto lease = stub_->Lease(&lease_context);
  v1::LeaseRequest open;
  open.mutable_open()->set_backend("framed");
  ASSERT_TRUE(lease->Write(open));
  v1::LeaseResponse info;
  ASSERT_TRUE(lease->Read(&info));
  grpc::ClientContext raw_context;
  auto raw = stub_->Lease(&raw_context);
  v1::LeaseRequest raw_open;
  raw_open.mutable_open()->set_backend("raw");
  ASSERT_TRUE(raw->Write(raw_open));
  v1::LeaseResponse none;
  EXPECT_FALSE(raw->Read(&none));
  EXPECT_EQ(raw->Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  auto lines = log.Matching({"\"msg\":\"request refused\""});
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0], HasSubstr(absl::StrCat("\"caller\":\"", testutil::kApp1, "\"")));
  EXPECT_THAT(lines[0], HasSubstr("\"backend\":\"raw\""));
  EXPECT_THAT(lines[0], HasSubstr("\"reason\":\"socket_budget_exhausted\""));
  EXPECT_THAT(lines[0], HasSubstr("\"rpc\":\"Lease\""));
  lease->WritesDone();
  while (lease->Read(&info)) {
  }
  lease->Finish();
}

// Every admin call leaves one line: the admin's identity, the action, the backend ("*" for the
// whole broker) and the result; a non-admin's attempt is a refusal line.
TEST_F(BrokerServiceTest, AdminActionsAreLoggedWithCallerBackendAndResult) {
  StartBroker();
  testutil::LogCapture log;
  ASSERT_TRUE(Drain("framed").ok());
  ASSERT_TRUE(Resume("framed").ok());
  ASSERT_TRUE(Drain("", true).ok());
  ASSERT_TRUE(Resume("", true).ok());
  EXPECT_EQ(Drain("nope").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Drain("raw", false, "client2").error_code(), grpc::StatusCode::PERMISSION_DENIED);
  auto admin = v1::BrokerAdminService::NewStub(testutil::BrokerChannel(target_));
  {
    grpc::ClientContext context;
    v1::ReloadResponse response;
    // This broker has no config file: UNIMPLEMENTED, logged as such.
    EXPECT_EQ(admin->Reload(&context, v1::ReloadRequest(), &response).error_code(),
              grpc::StatusCode::UNIMPLEMENTED);
  }
  const std::string by_admin = absl::StrCat("caller=", testutil::kApp1);
  EXPECT_EQ(log.Matching({"msg=\"admin action\"", "action=Drain", by_admin, "backend=framed",
                          "result=OK"})
                .size(),
            1u);
  EXPECT_EQ(log.Matching({"msg=\"admin action\"", "action=Resume", by_admin, "backend=framed",
                          "result=OK"})
                .size(),
            1u);
  EXPECT_EQ(log.Matching({"msg=\"admin action\"", "action=Drain", by_admin, "backend=*",
                          "result=OK"})
                .size(),
            1u);
  EXPECT_EQ(log.Matching({"msg=\"admin action\"", "action=Resume", by_admin, "backend=*",
                          "result=OK", "resumed=framed,raw"})
                .size(),
            1u);
  EXPECT_EQ(log.Matching({"msg=\"admin action\"", "action=Drain", by_admin, "backend=nope",
                          "result=NOT_FOUND", "unknown backend"})
                .size(),
            1u);
  EXPECT_EQ(log.Matching({"msg=\"admin action\"", "action=Reload", by_admin,
                          "result=UNIMPLEMENTED"})
                .size(),
            1u);
  EXPECT_EQ(log.Matching({"msg=\"request refused\"", "rpc=Drain", absl::StrCat("caller=", kApp2),
                          "backend=raw", "reason=permission_denied"})
                .size(),
            1u);
}

// ---- ListSockets: holder and lease start ----

// A leased socket lists its holder's identity and when the lease began; an idle one neither.
TEST_F(BrokerServiceTest, ListSocketsShowsHolderAndLeaseStartOfLeasedSocketOnly) {
  StartBroker();
  v1::CallResponse idle_call;
  ASSERT_TRUE(Call("framed", Frame("idle"), &idle_call, "TLSB0002").ok());
  grpc::ClientContext lease_context;
  auto lease = stub_->Lease(&lease_context);
  v1::LeaseRequest open;
  open.mutable_open()->set_backend("framed");
  open.mutable_open()->set_client_id("TLSB0001");
  ASSERT_TRUE(lease->Write(open));
  v1::LeaseResponse info;
  ASSERT_TRUE(lease->Read(&info));
  auto admin = v1::BrokerAdminService::NewStub(testutil::BrokerChannel(target_));
  v1::ListSocketsRequest request;
  request.set_backend("framed");
  v1::ListSocketsResponse sockets;
  // The Call's socket may still be on its way back to idle: wait for it to get there.
  ASSERT_TRUE(testutil::WaitUntil([&] {
    grpc::ClientContext context;
    sockets.Clear();
    if (!admin->ListSockets(&context, request, &sockets).ok()) return false;
    for (const auto& s : sockets.sockets()) {
      if (s.client_id() == "TLSB0002" && s.state() == v1::SOCKET_STATE_IDLE) return true;
    }
    return false;
  }, absl::Seconds(20)));
  ASSERT_EQ(sockets.sockets_size(), 2);
  for (const v1::SocketStatus& s : sockets.sockets()) {
    if (s.client_id() == "TLSB0001") {
      EXPECT_EQ(s.state(), v1::SOCKET_STATE_LEASED);
      EXPECT_EQ(s.holder(), testutil::kApp1);
      ASSERT_TRUE(s.has_lease_started_at());
      // The lease began after the socket was made.
      EXPECT_GE(s.lease_started_at().seconds(), s.created_at().seconds());
    } else {
      EXPECT_EQ(s.state(), v1::SOCKET_STATE_IDLE);
      EXPECT_EQ(s.holder(), "");
      EXPECT_FALSE(s.has_lease_started_at());
    }
  }
  lease->WritesDone();
  while (lease->Read(&info)) {
  }
  EXPECT_TRUE(lease->Finish().ok());
}

// ---- traceparent in the audit line ----

TEST(TraceParentTest, AcceptsOnlyTheW3cVersion00Format) {
  EXPECT_TRUE(IsValidTraceParent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  EXPECT_TRUE(IsValidTraceParent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"));
  // Upper-case hex, wrong lengths, a missing dash, other versions, all-zero IDs, garbage.
  EXPECT_FALSE(IsValidTraceParent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"));
  EXPECT_FALSE(IsValidTraceParent("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01"));
  EXPECT_FALSE(IsValidTraceParent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011"));
  EXPECT_FALSE(IsValidTraceParent("00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01"));
  EXPECT_FALSE(IsValidTraceParent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  EXPECT_FALSE(IsValidTraceParent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));
  EXPECT_FALSE(IsValidTraceParent("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"));
  EXPECT_FALSE(IsValidTraceParent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g"));
  EXPECT_FALSE(IsValidTraceParent("x=\"1\" level=error"));
  EXPECT_FALSE(IsValidTraceParent(""));
}

// The lease's audit line carries the caller's valid traceparent, and leaves out an invalid one
// rather than logging caller-controlled garbage.
TEST_F(BrokerServiceTest, AuditLineCarriesValidTraceparentAndOmitsInvalidOne) {
  StartBroker();
  testutil::LogCapture log;
  const std::string valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  const std::string invalid = "00-4bf92f3577b34da6a3ce929d0e0e4736-NOT-HEX-AT-ALL-01";
  auto audit_lines = [&] { return log.Matching({"msg=\"lease ended\"", "backend=framed"}); };
  {
    grpc::ClientContext context;
    context.AddMetadata("traceparent", valid);
    v1::CallResponse response;
    ASSERT_TRUE(Call("framed", Frame("traced"), &response, "", absl::Seconds(10), &context).ok());
  }
  // The audit line is written when the socket is back, which may follow the answer.
  ASSERT_TRUE(testutil::WaitUntil([&] { return audit_lines().size() == 1; }, absl::Seconds(20)));
  {
    grpc::ClientContext context;
    context.AddMetadata("traceparent", invalid);
    v1::CallResponse response;
    ASSERT_TRUE(Call("framed", Frame("garbled"), &response, "", absl::Seconds(10), &context).ok());
  }
  ASSERT_TRUE(testutil::WaitUntil([&] { return audit_lines().size() == 2; }, absl::Seconds(20)));
  const auto lines = audit_lines();
  EXPECT_THAT(lines[0], HasSubstr(absl::StrCat("traceparent=", valid)));
  EXPECT_THAT(lines[1], ::testing::Not(HasSubstr("traceparent")));
  EXPECT_THAT(lines[1], ::testing::Not(HasSubstr("NOT-HEX")));
}

// ---- addresses ----

// A backend whose first address refuses (a port bound but never listening) serves from the
// second; /metrics counts the attempts per address, and ListBackends lists both in order.
TEST_F(BrokerServiceTest, ConnectAttemptsAreCountedPerAddress) {
  testutil::RefusingPort dead;
  ASSERT_GT(dead.port(), 0);
  const std::string dead_address = absl::StrCat("127.0.0.1:", dead.port());
  const std::string live_address = absl::StrCat("127.0.0.1:", framed_backend_->port());
  options_.backends[0].endpoints = {
      {dead_address, "127.0.0.1", static_cast<uint16_t>(dead.port())},
      {live_address, "127.0.0.1", static_cast<uint16_t>(framed_backend_->port())}};
  StartBroker();
  v1::CallResponse response;
  grpc::Status status = Call("framed", Frame("failover"), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.response(), Frame("re:failover"));
  const std::string metrics = Metrics();
  const std::string family = "tlsbroker_backend_connect_attempts_total";
  EXPECT_EQ(MetricSum(metrics, family,
                      {"backend=\"framed\"", absl::StrCat("address=\"", dead_address, "\""),
                       "result=\"failed\""}),
            1);
  EXPECT_EQ(MetricSum(metrics, family,
                      {"backend=\"framed\"", absl::StrCat("address=\"", live_address, "\""),
                       "result=\"ok\""}),
            1);
  // The series exist before any attempt (the raw backend's one address).
  EXPECT_THAT(metrics, HasSubstr(absl::StrCat("address=\"127.0.0.1:", raw_backend_->port(),
                                              "\",backend=\"raw\",result=\"failed\"} 0")));
  auto admin = v1::BrokerAdminService::NewStub(testutil::BrokerChannel(target_));
  grpc::ClientContext context;
  v1::ListBackendsResponse backends;
  ASSERT_TRUE(admin->ListBackends(&context, v1::ListBackendsRequest(), &backends).ok());
  EXPECT_THAT(backends.backends(0).addresses(), ::testing::ElementsAre(dead_address, live_address));
}

}  // namespace
}  // namespace tlsbroker
