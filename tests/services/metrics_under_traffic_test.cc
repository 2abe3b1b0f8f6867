// Every metric family, scraped over HTTP from a real broker (in-process BrokerServer, gRPC with
// mTLS) after real traffic: Calls and Leases through a framed backend checked against a real
// CRL file and a real `openssl ocsp` responder, a Lease that has to wait, a backend whose
// certificate the CRL revokes, and an ENULL socket to `openssl s_server`. Every series is
// created up front (a name on the page proves nothing), so each check is on the value the
// traffic must have produced.

#include <openssl/asn1.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/services/broker_test_env.h"
#include "tests/support/ocsp_responder_process.h"
#include "tests/support/openssl_server.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_pki_files.h"

namespace tlsbroker {
namespace {

using testutil::Frame;
using testutil::MetricValue;
using testutil::PkiPath;

// Only catches a hang: every wait below is for an event, never for time to pass.
constexpr absl::Duration kPatience = absl::Seconds(60);

// notAfter of the first certificate in a PEM file, in Unix seconds (-1 if unreadable).
double NotAfterOf(const std::string& pem_path) {
  FILE* f = fopen(pem_path.c_str(), "r");
  if (f == nullptr) return -1;
  X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
  fclose(f);
  if (cert == nullptr) return -1;
  std::tm tm{};
  const bool ok = ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1;
  X509_free(cert);
  return ok ? static_cast<double>(timegm(&tm)) : -1;
}

std::string Reason(const grpc::ClientContext& context) {
  auto it = context.GetServerTrailingMetadata().find("tlsbroker-reason");
  if (it == context.GetServerTrailingMetadata().end()) return "";
  return std::string(it->second.data(), it->second.size());
}

class MetricsUnderTrafficTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testutil::MakeTempDir("tlsb-metrics-traffic");
    ASSERT_FALSE(dir_.empty());
    // The CRL revokes revoked-server.crt; its nextUpdate (whole seconds) is what the CRL gauge
    // must show.
    crl_ = dir_ + "/int.crl.pem";
    crl_next_update_ = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now() + absl::Hours(24)));
    ASSERT_TRUE(testutil::WriteIntermediateCrl("ec", crl_, {PkiPath("ec", "revoked-server.crt")},
                                               absl::Now() - absl::Minutes(1), crl_next_update_)
                    .ok());
    const std::string index = dir_ + "/index.txt";
    std::filesystem::copy_file(PkiPath("ec", "int-db/index.txt"), index);
    auto responder = testutil::OcspResponderProcess::Start(index);
    ASSERT_TRUE(responder.ok()) << responder.status();
    responder_ = *std::move(responder);

    framed_ = StartTlsBackend(PkiPath("ec", "server.crt"), PkiPath("ec", "server.key"));
    revoked_ =
        StartTlsBackend(PkiPath("ec", "revoked-server.crt"), PkiPath("ec", "revoked-server.key"));
    ASSERT_NE(framed_, nullptr);
    ASSERT_NE(revoked_, nullptr);
    // ENULL: integrity only, TLS 1.2, security level 0 (the project's RSA PKI).
    OpensslServerOptions enull = testutil::OpensslServer::PkiOptions("rsa");
    enull.extra_args = {"-tls1_2", "-cipher", "NULL-SHA256:@SECLEVEL=0"};
    auto s_server = testutil::OpensslServer::Start(enull);
    ASSERT_TRUE(s_server.ok()) << s_server.status();
    enull_ = *std::move(s_server);
  }

  void TearDown() override {
    stub_.reset();
    broker_.reset();
  }

  using OpensslServerOptions = testutil::OpensslServer::Options;

  static std::unique_ptr<testutil::TlsTestServer> StartTlsBackend(const std::string& cert,
                                                                  const std::string& key) {
    auto options = testutil::TlsTestServer::PkiOptions("ec");
    options.cert_file = cert;
    options.key_file = key;
    options.chain_file = PkiPath("ec", "int.crt");
    options.mode = testutil::TlsTestServerMode::kFramedEcho;
    options.response_prefix = "re:";
    auto server = testutil::TlsTestServer::Create(options);
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? *std::move(server) : nullptr;
  }

  void StartBroker() {
    BrokerOptions options = testutil::BrokerTestOptions();
    // framed: one socket, so a second Lease waits; CRL and OCSP (responder) checked.
    BackendOptions framed = testutil::FramedBackend(framed_->port());
    framed.name = "framed";
    framed.allowed_callers = {testutil::kApp1};
    framed.pool.max_sockets = 1;
    framed.pool.acquire_timeout = kPatience;
    framed.tls.crl_files = {crl_};
    framed.tls.ocsp.mode = OcspMode::kQuery;
    framed.tls.ocsp.responder_url = responder_->url();
    framed.tls.ocsp.timeout = absl::Seconds(20);
    options.backends.push_back(framed);
    // revoked: its certificate is on the CRL.
    BackendOptions revoked = testutil::FramedBackend(revoked_->port());
    revoked.name = "revoked";
    revoked.client_id.prefix = "REV";
    revoked.allowed_callers = {testutil::kApp1};
    revoked.tls.crl_files = {crl_};
    options.backends.push_back(revoked);
    // enull: openssl s_server -rev, one line per frame.
    BackendOptions enull = testutil::FramedBackend(enull_->port(), "rsa");
    enull.name = "enull";
    enull.client_id.prefix = "NUL";
    enull.allowed_callers = {testutil::kApp1};
    enull.pool.max_sockets = 1;
    enull.tls.encryption = CipherPolicy::kEnull;
    enull.tls.allow_null_encryption = true;
    enull.framing.kind = FramingOptions::Kind::kDelimiter;
    enull.framing.delimiter = "\n";
    options.backends.push_back(enull);

    BrokerServer::StartOptions start;
    start.io_threads = 2;
    auto server = BrokerServer::Start(options, start);
    ASSERT_TRUE(server.ok()) << server.status();
    broker_ = *std::move(server);
    stub_ = v1::BrokerService::NewStub(
        testutil::BrokerChannel(absl::StrCat("localhost:", broker_->grpc_port())));
  }

  std::string Metrics() {
    auto response = testutil::HttpGet("127.0.0.1", broker_->metrics_port(), "/metrics");
    EXPECT_TRUE(response.ok()) << response.status();
    if (!response.ok()) return "";
    EXPECT_EQ(response->status, 200);
    return response->body;
  }

  // The value of one series, e.g. Value("tlsbroker_pool_waiters", {"backend=\"framed\""}):
  // labels in the order prometheus-cpp writes them (sorted by name).
  double Value(const std::string& name, const std::vector<std::string>& labels,
               const std::string& page) {
    std::string series = name;
    if (!labels.empty()) {
      series += "{";
      for (size_t i = 0; i < labels.size(); ++i) absl::StrAppend(&series, i ? "," : "", labels[i]);
      series += "}";
    }
    return MetricValue(page, series);
  }

  // Scrapes until `condition` holds on the page; the page it last saw goes to `page`.
  bool ScrapeUntil(const std::function<bool(const std::string&)>& condition, std::string* page) {
    return testutil::PollUntil(
        [&] {
          *page = Metrics();
          return condition(*page);
        },
        kPatience);
  }

  grpc::Status Call(const std::string& backend, const std::string& payload,
                    v1::CallResponse* response, grpc::ClientContext* context) {
    context->set_deadline(absl::ToChronoTime(absl::Now() + kPatience));
    v1::CallRequest request;
    request.set_backend(backend);
    request.set_request(Frame(payload));
    return stub_->Call(context, request, response);
  }

  using LeaseStream = grpc::ClientReaderWriter<v1::LeaseRequest, v1::LeaseResponse>;

  // Sends one request on an open lease and reads `expected.size()` bytes back.
  static std::string Exchange(LeaseStream* stream, const std::string& request, size_t size) {
    v1::LeaseRequest data;
    data.set_data(request);
    if (!stream->Write(data)) return "";
    std::string got;
    v1::LeaseResponse chunk;
    while (got.size() < size && stream->Read(&chunk)) got += chunk.data();
    return got;
  }

  static grpc::Status Finish(LeaseStream* stream) {
    stream->WritesDone();
    v1::LeaseResponse ignored;
    while (stream->Read(&ignored)) {
    }
    return stream->Finish();
  }

  static bool Open(LeaseStream* stream, const std::string& backend) {
    v1::LeaseRequest open;
    open.mutable_open()->set_backend(backend);
    return stream->Write(open);
  }

  static bool ReadInfo(LeaseStream* stream) {
    v1::LeaseResponse info;
    return stream->Read(&info) && info.has_info();
  }

  std::string dir_;
  std::string crl_;
  absl::Time crl_next_update_;
  std::unique_ptr<testutil::OcspResponderProcess> responder_;
  std::unique_ptr<testutil::TlsTestServer> framed_;
  std::unique_ptr<testutil::TlsTestServer> revoked_;
  std::unique_ptr<testutil::OpensslServer> enull_;
  std::unique_ptr<BrokerServer> broker_;
  std::unique_ptr<v1::BrokerService::Stub> stub_;
};

TEST_F(MetricsUnderTrafficTest, EveryFamilyShowsTheValuesRealTrafficProduced) {
  StartBroker();
  const std::string framed = "backend=\"framed\"";

  // 1. Calls: three, on the one framed socket (one handshake, OCSP-checked, CRL-checked).
  size_t sent = 0, received = 0;
  for (int i = 0; i < 3; ++i) {
    const std::string payload = absl::StrCat("call", i);
    grpc::ClientContext context;
    v1::CallResponse response;
    grpc::Status status = Call("framed", payload, &response, &context);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(response.response(), Frame("re:" + payload));
    sent += Frame(payload).size();
    received += Frame("re:" + payload).size();
  }

  // 2. A Lease holds the socket; a second one waits for it (pool_waiters shows it), then gets
  //    it when the first ends.
  grpc::ClientContext first_context, second_context;
  auto first = stub_->Lease(&first_context);
  ASSERT_TRUE(Open(first.get(), "framed"));
  ASSERT_TRUE(ReadInfo(first.get()));
  auto second = stub_->Lease(&second_context);
  ASSERT_TRUE(Open(second.get(), "framed"));
  std::string page;
  EXPECT_TRUE(ScrapeUntil(
      [&](const std::string& p) { return Value("tlsbroker_pool_waiters", {framed}, p) == 1; },
      &page))
      << page;
  ASSERT_EQ(Exchange(first.get(), Frame("lease1"), Frame("re:lease1").size()),
            Frame("re:lease1"));
  ASSERT_TRUE(Finish(first.get()).ok());
  ASSERT_TRUE(ReadInfo(second.get()));
  ASSERT_EQ(Exchange(second.get(), Frame("lease2"), Frame("re:lease2").size()),
            Frame("re:lease2"));
  ASSERT_TRUE(Finish(second.get()).ok());
  sent += Frame("lease1").size() + Frame("lease2").size();
  received += Frame("re:lease1").size() + Frame("re:lease2").size();

  // 3. A backend whose certificate the CRL revokes: the Call fails, with the reason.
  {
    grpc::ClientContext context;
    v1::CallResponse response;
    grpc::Status status = Call("revoked", "x", &response, &context);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
    EXPECT_EQ(Reason(context), "CERTIFICATE_REVOKED") << status.error_message();
  }

  // 4. An ENULL socket carries a line (its gauge: EnullSocketsGaugeCountsTheOpenEnullSocket).
  grpc::ClientContext enull_context;
  auto enull = stub_->Lease(&enull_context);
  ASSERT_TRUE(Open(enull.get(), "enull"));
  ASSERT_TRUE(ReadInfo(enull.get())) << enull_->Log();
  ASSERT_EQ(Exchange(enull.get(), "clear text\n", 11), "txet raelc\n");
  ASSERT_TRUE(Finish(enull.get()).ok());

  // Leases end (and are counted) just after their streams finish: wait for the last one.
  ASSERT_TRUE(ScrapeUntil(
      [&](const std::string& p) {
        return Value("tlsbroker_lease_duration_seconds_count", {framed}, p) == 5 &&
               Value("tlsbroker_pool_waiters", {framed}, p) == 0;
      },
      &page))
      << page;

  // Calls: three OK, timed.
  EXPECT_EQ(Value("tlsbroker_calls_total", {framed, "code=\"OK\""}, page), 3) << page;
  EXPECT_EQ(Value("tlsbroker_call_duration_seconds_count", {framed}, page), 3);
  EXPECT_GT(Value("tlsbroker_call_duration_seconds_sum", {framed}, page), 0);
  EXPECT_EQ(Value("tlsbroker_calls_total", {"backend=\"revoked\"", "code=\"UNAVAILABLE\""}, page),
            1);
  // Bytes: exactly the frames that went each way (three Calls, two Lease exchanges).
  EXPECT_EQ(Value("tlsbroker_bytes_total", {framed, "direction=\"sent\""}, page),
            static_cast<double>(sent));
  EXPECT_EQ(Value("tlsbroker_bytes_total", {framed, "direction=\"received\""}, page),
            static_cast<double>(received));
  // Leases: 3 Calls + 2 Leases granted; the second Lease waited (a positive wait).
  EXPECT_EQ(Value("tlsbroker_leases_total", {framed, "code=\"OK\""}, page), 5);
  EXPECT_EQ(Value("tlsbroker_lease_wait_seconds_count", {framed}, page), 5);
  EXPECT_GT(Value("tlsbroker_lease_wait_seconds_sum", {framed}, page), 0);
  EXPECT_EQ(Value("tlsbroker_leases_ended_total", {framed, "result=\"clean\""}, page), 5);
  EXPECT_GT(Value("tlsbroker_lease_duration_seconds_sum", {framed}, page), 0);
  EXPECT_EQ(Value("tlsbroker_socket_reuses_total", {framed}, page), 4);
  // One socket, one full handshake, timed; OCSP answered by the responder: good.
  EXPECT_EQ(Value("tlsbroker_tls_handshakes_total", {framed, "result=\"ok\"", "resumed=\"false\""},
                  page),
            1);
  EXPECT_EQ(Value("tlsbroker_tls_handshake_duration_seconds_count", {framed}, page), 1);
  EXPECT_GT(Value("tlsbroker_tls_handshake_duration_seconds_sum", {framed}, page), 0);
  EXPECT_GE(Value("tlsbroker_ocsp_responses_total",
                  {framed, "source=\"responder\"", "status=\"good\""}, page),
            1);
  EXPECT_GE(responder_->requests(), 1);
  // Certificate expiry: the backend's and our client certificate's notAfter.
  EXPECT_EQ(Value("tlsbroker_peer_cert_not_after_timestamp_seconds", {framed}, page),
            NotAfterOf(PkiPath("ec", "server.crt")));
  EXPECT_EQ(Value("tlsbroker_client_cert_not_after_timestamp_seconds", {framed}, page),
            NotAfterOf(PkiPath("ec", "client.fullchain.pem")));
  // The CRL: its nextUpdate, not stale.
  EXPECT_EQ(Value("tlsbroker_crl_next_update_timestamp_seconds", {framed}, page),
            static_cast<double>(absl::ToUnixSeconds(crl_next_update_)));
  EXPECT_EQ(Value("tlsbroker_crl_stale", {framed}, page), 0);
  // The revocation: refused handshakes and verification failures with the reason.
  EXPECT_GE(Value("tlsbroker_tls_handshakes_total",
                  {"backend=\"revoked\"", "result=\"certificate_revoked\"", "resumed=\"false\""},
                  page),
            1);
  EXPECT_GE(Value("tlsbroker_cert_verify_failures_total",
                  {"backend=\"revoked\"", "reason=\"certificate_revoked\""}, page),
            1);
  // ENULL bytes went both ways too.
  EXPECT_EQ(Value("tlsbroker_bytes_total", {"backend=\"enull\"", "direction=\"sent\""}, page), 11);
  EXPECT_EQ(
      Value("tlsbroker_bytes_total", {"backend=\"enull\"", "direction=\"received\""}, page), 11);
}

// tlsbroker_enull_sockets counts the open sockets that use a NULL cipher: one while a Lease
// holds the only ENULL socket.
TEST_F(MetricsUnderTrafficTest, EnullSocketsGaugeCountsTheOpenEnullSocket) {
  StartBroker();
  grpc::ClientContext context;
  auto enull = stub_->Lease(&context);
  ASSERT_TRUE(Open(enull.get(), "enull"));
  ASSERT_TRUE(ReadInfo(enull.get())) << enull_->Log();
  ASSERT_EQ(Exchange(enull.get(), "clear text\n", 11), "txet raelc\n");
  const std::string enull_backend = "backend=\"enull\"";
  std::string page;
  // The socket is up and lent: every gauge set when it was made has been set by now.
  ASSERT_TRUE(ScrapeUntil(
      [&](const std::string& p) {
        return Value("tlsbroker_pool_sockets", {enull_backend, "state=\"leased\""}, p) == 1;
      },
      &page))
      << page;
  const double gauge = Value("tlsbroker_enull_sockets", {enull_backend}, page);
  ASSERT_TRUE(Finish(enull.get()).ok());
  EXPECT_EQ(gauge, 1) << page;
}

}  // namespace
}  // namespace tlsbroker
