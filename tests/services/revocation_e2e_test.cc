// Re-checks through the real broker (gRPC with mTLS in front of the project's TLS test
// server): CRLs and client credentials published Kubernetes-style (a `..data` symlink swap)
// while callers use the broker.

#include <atomic>
#include <filesystem>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/services/broker_test_env.h"
#include "tests/support/test_pki_files.h"

namespace tlsbroker {
namespace {

using testutil::Frame;
using testutil::KubernetesStyleDir;
using testutil::MetricSum;
using testutil::PkiPath;
using testutil::ReadAll;

constexpr absl::Duration kPatience = absl::Seconds(20);

std::string Reason(const grpc::ClientContext& context) {
  auto it = context.GetServerTrailingMetadata().find("tlsbroker-reason");
  if (it == context.GetServerTrailingMetadata().end()) return "";
  return std::string(it->second.data(), it->second.size());
}

bool Eventually(const std::function<bool()>& condition) {
  const absl::Time deadline = absl::Now() + kPatience;
  while (absl::Now() < deadline) {
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return condition();
}

class RevocationE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::path(::testing::TempDir()) /
           absl::StrCat("tlsb-revocation-e2e-", getpid(), "-", info->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    stub_.reset();
    broker_.reset();
    backend_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  void StartBackend(const std::string& cert, const std::string& key) {
    auto options = testutil::TlsTestServer::PkiOptions("ec");
    options.cert_file = cert;
    options.key_file = key;
    options.mode = testutil::TlsTestServerMode::kFramedEcho;
    options.response_prefix = "re:";
    auto server = testutil::TlsTestServer::Create(options);
    ASSERT_TRUE(server.ok()) << server.status();
    backend_ = *std::move(server);
  }

  BackendOptions Backend() {
    BackendOptions b = testutil::FramedBackend(backend_->port());
    b.name = "framed";
    b.allowed_callers = {testutil::kApp1};
    b.tls.watch_interval = absl::Milliseconds(100);
    return b;
  }

  void StartBroker(const BackendOptions& backend) {
    BrokerOptions options = testutil::BrokerTestOptions();
    options.backends.push_back(backend);
    BrokerServer::StartOptions start;
    start.io_threads = 2;
    auto server = BrokerServer::Start(options, start);
    ASSERT_TRUE(server.ok()) << server.status();
    broker_ = *std::move(server);
    stub_ = v1::BrokerService::NewStub(
        testutil::BrokerChannel(absl::StrCat("localhost:", broker_->grpc_port())));
  }

  grpc::Status Call(const std::string& payload, grpc::ClientContext* context = nullptr) {
    grpc::ClientContext local;
    grpc::ClientContext& ctx = context != nullptr ? *context : local;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    v1::CallRequest request;
    request.set_backend("framed");
    request.set_request(Frame(payload));
    v1::CallResponse response;
    grpc::Status status = stub_->Call(&ctx, request, &response);
    if (status.ok() && response.response() != Frame(absl::StrCat("re:", payload))) {
      return grpc::Status(grpc::StatusCode::DATA_LOSS, "wrong response");
    }
    return status;
  }

  std::string Metrics() {
    auto response = testutil::HttpGet("127.0.0.1", broker_->metrics_port(), "/metrics");
    return response.ok() ? response->body : "";
  }

  std::string Crl(const std::vector<std::string>& revoked) {
    const std::string path = (dir_ / "made.crl.pem").string();
    EXPECT_TRUE(testutil::WriteIntermediateCrl("ec", path, revoked, absl::Now() - absl::Minutes(1),
                                               absl::Now() + absl::Hours(24))
                    .ok());
    return ReadAll(path);
  }

  std::filesystem::path dir_;
  std::unique_ptr<testutil::TlsTestServer> backend_;
  std::unique_ptr<BrokerServer> broker_;
  std::unique_ptr<v1::BrokerService::Stub> stub_;
};

// A CRL published by symlink swap revokes the backend's certificate: the pooled sockets are
// closed (sockets_closed_total{reason="revoked"}) and the next Call fails UNAVAILABLE with
// reason certificate_revoked.
TEST_F(RevocationE2eTest, CrlSwapClosesPooledSocketsAndCallsFailCertificateRevoked) {
  StartBackend(PkiPath("ec", "revoked-server.crt"), PkiPath("ec", "revoked-server.key"));
  KubernetesStyleDir secret((dir_ / "crl").string());
  ASSERT_TRUE(secret.Publish({{"int.crl.pem", Crl({})}}).ok());
  BackendOptions b = Backend();
  b.tls.crl_files = {secret.Path("int.crl.pem")};
  b.pool.min_idle = 2;
  StartBroker(b);
  ASSERT_TRUE(Call("before").ok());
  ASSERT_TRUE(Eventually([&] { return backend_->current_connections() >= 2; }));

  ASSERT_TRUE(
      secret.Publish({{"int.crl.pem", Crl({PkiPath("ec", "revoked-server.crt")})}}).ok());
  EXPECT_TRUE(Eventually([&] {
    return MetricSum(Metrics(), "tlsbroker_sockets_closed_total", {"reason=\"revoked\""}) >= 2;
  }));
  EXPECT_TRUE(Eventually([&] { return backend_->current_connections() == 0; }));
  grpc::ClientContext context;
  grpc::Status status = Call("after", &context);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_EQ(Reason(context), "CERTIFICATE_REVOKED") << status.error_message();
}

// ABORT_LEASE through a Lease stream: the stream open on the revoked backend is ended once the
// new CRL is published. The stream had sent bytes, so by the broker's rule for Lease streams
// the caller gets ABORTED outcome_unknown (the broker cannot tell in general whether a request
// was in flight), with certificate_revoked as the cause in the message.
TEST_F(RevocationE2eTest, AbortLeaseEndsAnOpenLeaseStreamCitingCertificateRevoked) {
  StartBackend(PkiPath("ec", "revoked-server.crt"), PkiPath("ec", "revoked-server.key"));
  KubernetesStyleDir secret((dir_ / "crl").string());
  ASSERT_TRUE(secret.Publish({{"int.crl.pem", Crl({})}}).ok());
  BackendOptions b = Backend();
  b.tls.crl_files = {secret.Path("int.crl.pem")};
  b.tls.on_revoked = RevokedLeasePolicy::kAbortLease;
  StartBroker(b);

  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + kPatience));
  auto stream = stub_->Lease(&context);
  v1::LeaseRequest open;
  open.mutable_open()->set_backend("framed");
  ASSERT_TRUE(stream->Write(open));
  v1::LeaseResponse response;
  ASSERT_TRUE(stream->Read(&response));
  ASSERT_TRUE(response.has_info());
  v1::LeaseRequest data;
  data.set_data(Frame("hello"));
  ASSERT_TRUE(stream->Write(data));
  std::string got;
  while (got.size() < Frame("re:hello").size() && stream->Read(&response)) got += response.data();
  ASSERT_EQ(got, Frame("re:hello"));

  ASSERT_TRUE(
      secret.Publish({{"int.crl.pem", Crl({PkiPath("ec", "revoked-server.crt")})}}).ok());
  while (stream->Read(&response)) {
  }
  grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ABORTED) << status.error_message();
  EXPECT_EQ(Reason(context), "OUTCOME_UNKNOWN") << status.error_message();
  EXPECT_NE(status.error_message().find("certificate_revoked"), std::string::npos)
      << status.error_message();
  EXPECT_TRUE(Eventually([&] {
    return MetricSum(Metrics(), "tlsbroker_sockets_closed_total", {"reason=\"revoked\""}) >= 1;
  }));
}

// The client certificate and key rotated (symlink swap) while callers run Calls: not one Call
// fails, and the backend sees the new certificate on the new sockets (on_rotation DRAIN).
TEST_F(RevocationE2eTest, ClientCertificateRotatedMidTrafficWithZeroFailedCalls) {
  StartBackend(PkiPath("ec", "server.crt"), PkiPath("ec", "server.key"));
  KubernetesStyleDir secret((dir_ / "client").string());
  ASSERT_TRUE(secret
                  .Publish({{"tls.crt", ReadAll(PkiPath("ec", "client.fullchain.pem"))},
                            {"tls.key", ReadAll(PkiPath("ec", "client.key"))}})
                  .ok());
  BackendOptions b = Backend();
  b.tls.cert_file = secret.Path("tls.crt");
  b.tls.key_file = secret.Path("tls.key");
  b.tls.on_rotation = RotationPolicy::kDrain;
  StartBroker(b);

  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&, t] {
      for (int i = 0; !stop; ++i) {
        grpc::Status status = Call(absl::StrCat("t", t, "-", i));
        if (status.ok()) {
          ++ok;
        } else {
          ++failed;
          ADD_FAILURE() << status.error_message();
        }
      }
    });
  }
  ASSERT_TRUE(Eventually([&] { return ok >= 40; }));
  ASSERT_TRUE(secret
                  .Publish({{"tls.crt", ReadAll(PkiPath("ec", "client2.fullchain.pem"))},
                            {"tls.key", ReadAll(PkiPath("ec", "client2.key"))}})
                  .ok());
  EXPECT_TRUE(Eventually([&] {
    for (const std::string& subject : backend_->peer_subjects()) {
      if (subject.find("CN=app2") != std::string::npos) return true;
    }
    return false;
  }));
  const int ok_at_rotation = ok;
  EXPECT_TRUE(Eventually([&] { return ok >= ok_at_rotation + 40; }));
  stop = true;
  for (auto& t : callers) t.join();
  EXPECT_EQ(failed, 0);
  const std::string metrics = Metrics();
  EXPECT_GE(MetricSum(metrics, "tlsbroker_sockets_closed_total", {"reason=\"rotation\""}), 1);
  EXPECT_EQ(MetricSum(metrics, "tlsbroker_credential_reload_failures_total"), 0);
}

// A broken rotation (the new certificate with the old key) is rejected: Calls keep working
// with the old credentials, and the metric names the key file.
TEST_F(RevocationE2eTest, BrokenRotationKeepsOldCredentialsAndIsCounted) {
  StartBackend(PkiPath("ec", "server.crt"), PkiPath("ec", "server.key"));
  KubernetesStyleDir secret((dir_ / "client").string());
  const std::string old_key = ReadAll(PkiPath("ec", "client.key"));
  ASSERT_TRUE(secret
                  .Publish({{"tls.crt", ReadAll(PkiPath("ec", "client.fullchain.pem"))},
                            {"tls.key", old_key}})
                  .ok());
  BackendOptions b = Backend();
  b.tls.cert_file = secret.Path("tls.crt");
  b.tls.key_file = secret.Path("tls.key");
  b.pool.mode = PoolMode::kPerLease;  // Every Call handshakes: shows the credentials in use.
  b.tls.session_resumption = false;
  StartBroker(b);
  ASSERT_TRUE(Call("before").ok());

  ASSERT_TRUE(secret
                  .Publish({{"tls.crt", ReadAll(PkiPath("ec", "client2.fullchain.pem"))},
                            {"tls.key", old_key}})
                  .ok());
  EXPECT_TRUE(Eventually([&] {
    return MetricSum(Metrics(), "tlsbroker_credential_reload_failures_total",
                     {"file=\"key\""}) == 1;
  }));
  grpc::Status status = Call("after");
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::vector<std::string> subjects = backend_->peer_subjects();
  ASSERT_FALSE(subjects.empty());
  EXPECT_NE(subjects.back().find("CN=app1"), std::string::npos) << subjects.back();
}

}  // namespace
}  // namespace tlsbroker
