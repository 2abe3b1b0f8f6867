#ifndef TESTS_FAULTS_FAULT_TEST_ENV_H_
#define TESTS_FAULTS_FAULT_TEST_ENV_H_

// A broker (in-process BrokerServer, real gRPC over TCP with mTLS) in front of one real framed
// TLS backend (the project's test server with its fault switches), and the helpers the fault
// tests share: Calls with deadlines, Lease streams, the reason of a failed RPC, pool figures
// and the process's open file descriptors.

#include <filesystem>
#include <memory>
#include <string>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/services/broker_test_env.h"

namespace tlsbroker::testutil {

using LeaseStream = grpc::ClientReaderWriter<v1::LeaseRequest, v1::LeaseResponse>;

// The machine reason ("backend_closed", "outcome_unknown", ...) of a finished RPC.
inline std::string Reason(const grpc::ClientContext& context) {
  auto it = context.GetServerTrailingMetadata().find("tlsbroker-reason");
  if (it == context.GetServerTrailingMetadata().end()) return "";
  return std::string(it->second.data(), it->second.size());
}

// Entries of /proc/self/fd: every open file descriptor of this process (both ends of every
// loopback connection, since broker and backend run in-process).
inline int CountOpenFds() {
  int n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return n;
}

// Reads Lease data until `size` bytes arrived or the stream ended.
inline std::string ReadLeaseBytes(LeaseStream* stream, size_t size) {
  std::string got;
  v1::LeaseResponse response;
  while (got.size() < size && stream->Read(&response)) got += response.data();
  return got;
}

// Opens a Lease on `backend`; fills `info` from the first response. False if the stream
// ended instead.
inline bool OpenLease(LeaseStream* stream, const std::string& backend, v1::LeaseInfo* info,
                      const std::string& client_id = "") {
  v1::LeaseRequest open;
  open.mutable_open()->set_backend(backend);
  open.mutable_open()->set_client_id(client_id);
  if (!stream->Write(open)) return false;
  v1::LeaseResponse first;
  if (!stream->Read(&first) || !first.has_info()) return false;
  *info = first.info();
  return true;
}

// Sends one frame on a Lease and returns the response frame (expected `response_size` bytes).
inline std::string LeaseExchange(LeaseStream* stream, const std::string& payload,
                                 size_t response_size) {
  v1::LeaseRequest data;
  data.set_data(Frame(payload));
  if (!stream->Write(data)) return "";
  return ReadLeaseBytes(stream, response_size);
}

// Half-closes a Lease, drains it and returns its final status.
inline grpc::Status FinishLease(LeaseStream* stream) {
  stream->WritesDone();
  v1::LeaseResponse rest;
  while (stream->Read(&rest)) {
  }
  return stream->Finish();
}

// One framed echo backend ("re:" + request) named "framed" behind an in-process broker.
// Tests adjust options_ before StartBroker().
class FaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto framed = TlsTestServer::PkiOptions("ec");
    framed.mode = TlsTestServerMode::kFramedEcho;
    framed.response_prefix = "re:";
    auto backend = TlsTestServer::Create(framed);
    ASSERT_TRUE(backend.ok()) << backend.status();
    backend_ = *std::move(backend);
    options_ = BrokerTestOptions();
    BackendOptions f = FramedBackend(backend_->port());
    f.name = "framed";
    f.allowed_callers = {kApp1};
    options_.backends.push_back(f);
  }

  void TearDown() override {
    stub_.reset();
    admin_.reset();
    broker_.reset();
    backend_.reset();
  }

  BackendOptions& framed_options() { return options_.backends[0]; }

  void StartBroker() {
    BrokerServer::StartOptions start;
    start.io_threads = 2;
    auto server = BrokerServer::Start(options_, start);
    ASSERT_TRUE(server.ok()) << server.status();
    broker_ = *std::move(server);
    target_ = absl::StrCat("localhost:", broker_->grpc_port());
    channel_ = BrokerChannel(target_);
    stub_ = v1::BrokerService::NewStub(channel_);
    admin_ = v1::BrokerAdminService::NewStub(channel_);
  }

  grpc::Status Call(const std::string& payload, v1::CallResponse* response,
                    absl::Duration deadline = absl::Seconds(10),
                    grpc::ClientContext* ctx = nullptr, const std::string& client_id = "") {
    grpc::ClientContext local;
    grpc::ClientContext& context = ctx != nullptr ? *ctx : local;
    context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    v1::CallRequest request;
    request.set_backend("framed");
    request.set_request(Frame(payload));
    request.set_client_id(client_id);
    return stub_->Call(&context, request, response);
  }

  PoolStats Stats() { return broker_->registry().Find("framed")->Stats(); }

  // The sockets of "framed" as the admin API lists them.
  std::vector<v1::SocketStatus> ListSockets() {
    grpc::ClientContext context;
    v1::ListSocketsRequest request;
    request.set_backend("framed");
    v1::ListSocketsResponse response;
    grpc::Status status = admin_->ListSockets(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return {response.sockets().begin(), response.sockets().end()};
  }

  bool SocketListed(uint64_t socket_id) {
    for (const v1::SocketStatus& s : ListSockets()) {
      if (s.socket_id() == socket_id) return true;
    }
    return false;
  }

  std::string Metrics() {
    auto response = HttpGet("127.0.0.1", broker_->metrics_port(), "/metrics");
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? response->body : "";
  }

  double SocketsClosed(const std::string& reason = "") {
    std::vector<std::string> parts = {"backend=\"framed\""};
    if (!reason.empty()) parts.push_back(absl::StrCat("reason=\"", reason, "\""));
    return MetricSum(Metrics(), "tlsbroker_sockets_closed_total", parts);
  }

  // Waits until the pool has nothing connecting, leased or waiting (every RPC finished).
  bool WaitPoolQuiet(absl::Duration timeout = absl::Seconds(10)) {
    return WaitUntil(
        [&] {
          PoolStats s = Stats();
          return s.connecting == 0 && s.leased == 0 && s.waiters == 0 &&
                 broker_->flow().active_rpcs() == 0;
        },
        timeout);
  }

  BrokerOptions options_;
  std::unique_ptr<TlsTestServer> backend_;
  std::unique_ptr<BrokerServer> broker_;
  std::string target_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::BrokerService::Stub> stub_;
  std::unique_ptr<v1::BrokerAdminService::Stub> admin_;
};

}  // namespace tlsbroker::testutil

#endif  // TESTS_FAULTS_FAULT_TEST_ENV_H_
