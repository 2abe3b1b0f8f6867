// Security checks on the real tlsbroker binary: a plaintext gRPC listener off loopback is
// refused at startup, its logs (at debug level, through leases, Calls, failures, a rejected
// reload and config errors) never contain key material or payload bytes, and a private key
// that others may read is reported (warning and metric) without stopping the broker.

#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/faults/fault_test_env.h"
#include "tests/support/subprocess.h"

namespace tlsbroker {
namespace {

using ::testing::HasSubstr;
using testutil::Frame;

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path + ".tmp");
  out << text;
  out.close();
  std::filesystem::rename(path + ".tmp", path);
}

// A config for the real binary: mTLS callers on a loopback port chosen at run time, one framed
// backend on `backend_port` whose client key is `client_key` (and its certificate next to it
// in the PKI unless `client_cert` is given).
std::string ConfigYaml(int backend_port, const std::string& client_key,
                       const std::string& client_cert = "") {
  const std::string pki = testutil::PkiPath("ec", "");
  const std::string cert = client_cert.empty() ? pki + "client.fullchain.pem" : client_cert;
  return absl::StrCat(R"(listen:
  grpc: 127.0.0.1:0
  metrics: 127.0.0.1:0
  tls: {cert: )", pki, "server.fullchain.pem, key: ", pki, "server.key, client_ca: ", pki,
                      R"(root.crt}
  admin_callers: ["spiffe://example.org/ns/payments/sa/app1"]
backends:
  - name: framed
    address: 127.0.0.1:)", backend_port, R"(
    server_name: localhost
    tls: {ca: )", pki, "root.crt, cert: ", cert, ", key: ", client_key, R"(}
    pool: {max_sockets: 4, min_idle: 1}
    framing: {length_field: {offset: 0, size: 4, big_endian: true, adjustment: -4}, max_frame_bytes: 4096}
    allowed_callers: ["spiffe://example.org/ns/payments/sa/app1"]
)");
}

// Starts the binary on `config` and waits until it serves; fills the ports from its log.
std::unique_ptr<testutil::Subprocess> StartBroker(const std::vector<std::string>& extra_args,
                                                  const std::string& config,
                                                  const std::string& log, int* grpc_port,
                                                  int* metrics_port) {
  std::vector<std::string> argv = {TLSB_BROKER_BINARY, "--config", config, "--io-threads", "2"};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  auto broker = testutil::Subprocess::Start(argv, log);
  EXPECT_TRUE(broker.ok()) << broker.status();
  if (!broker.ok()) return nullptr;
  absl::Status serving = (*broker)->WaitForLog("tlsbroker serving", absl::Seconds(20));
  EXPECT_TRUE(serving.ok()) << serving << "\n" << (*broker)->ReadLog();
  if (!serving.ok()) return nullptr;
  const std::string text = (*broker)->ReadLog();
  std::smatch grpc, metrics;
  EXPECT_TRUE(std::regex_search(text, grpc, std::regex("grpc=127\\.0\\.0\\.1:([0-9]+)")));
  EXPECT_TRUE(std::regex_search(text, metrics, std::regex("\\(port ([0-9]+)\\)")));
  if (grpc.empty() || metrics.empty()) return nullptr;
  *grpc_port = std::stoi(grpc[1].str());
  *metrics_port = std::stoi(metrics[1].str());
  return *std::move(broker);
}

std::unique_ptr<testutil::TlsTestServer> FramedEchoBackend() {
  auto options = testutil::TlsTestServer::PkiOptions("ec");
  options.mode = testutil::TlsTestServerMode::kFramedEcho;
  options.response_prefix = "re:";
  auto backend = testutil::TlsTestServer::Create(options);
  EXPECT_TRUE(backend.ok()) << backend.status();
  return backend.ok() ? *std::move(backend) : nullptr;
}

// plaintext: true on a wildcard address: the binary exits 1 before listening, and says which
// setting is wrong (also under --check-config).
TEST(SecurityProcessTest, PlaintextListenerOffLoopbackIsRefusedAtStartup) {
  const std::string dir = testutil::MakeTempDir("tlsb-security");
  const std::string config = dir + "/plaintext.yaml";
  WriteText(config, absl::StrCat(R"(listen:
  grpc: "0.0.0.0:0"
  metrics: 127.0.0.1:0
  plaintext: true
backends:
  - name: framed
    address: 127.0.0.1:1
    tls: {ca: )", testutil::PkiPath("ec", "root.crt"), R"(}
    allowed_callers: [local]
)"));
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{TLSB_BROKER_BINARY, "--config", config},
        std::vector<std::string>{TLSB_BROKER_BINARY, "--check-config", config}}) {
    auto run = testutil::RunCommand(args, "", absl::Seconds(20));
    ASSERT_TRUE(run.ok()) << run.status();
    EXPECT_EQ(run->exit_code, 1) << run->output;
    EXPECT_THAT(run->output, HasSubstr("listen.plaintext: allowed only on a loopback"));
    EXPECT_THAT(run->output, ::testing::Not(HasSubstr("tlsbroker serving")));
  }
  std::filesystem::remove_all(dir);
}

// The same refusal inside BrokerServer, for options that did not come from the loader.
TEST(SecurityProcessTest, BrokerServerRefusesPlaintextOffLoopback) {
  BrokerOptions options;
  options.listen.grpc = "0.0.0.0:0";
  options.listen.metrics = "127.0.0.1:0";
  options.listen.plaintext = true;
  auto server = BrokerServer::Start(options);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(server.status().message(), HasSubstr("listen.plaintext"));
}

// Every base64 body line of every private key of the test PKI.
std::vector<std::string> KeyBodyLines() {
  std::vector<std::string> lines;
  for (const char* alg : {"ec", "rsa"}) {
    const std::filesystem::path root(testutil::PkiPath(alg, ""));
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (it->path().extension() != ".key") continue;
      const std::string pem = testutil::ReadAll(it->path().string());
      for (absl::string_view line : absl::StrSplit(pem, '\n')) {
        line = absl::StripAsciiWhitespace(line);
        if (line.size() >= 16 && !absl::StartsWith(line, "-----")) lines.emplace_back(line);
      }
    }
  }
  return lines;
}

// A full run at debug level — leases, Calls, a cancelled lease, an invalid request, a backend
// failure, a rejected reload, and config errors that point at key files — leaves no payload
// byte and no line of any test key in the broker's output.
TEST(SecurityProcessTest, LogsNeverContainKeyMaterialOrPayloads) {
  const std::string marker = "PAYLOAD-MARKER-5f2c9e";
  const std::string dir = testutil::MakeTempDir("tlsb-security");
  auto backend = FramedEchoBackend();
  ASSERT_NE(backend, nullptr);
  const std::string config = dir + "/config.yaml";
  const std::string client_key = testutil::PkiPath("ec", "client.key");
  WriteText(config, ConfigYaml(backend->port(), client_key));
  std::string output;
  {
    int grpc_port = 0, metrics_port = 0;
    auto broker = StartBroker({"--log-level", "debug"}, config, dir + "/broker.log", &grpc_port,
                              &metrics_port);
    ASSERT_NE(broker, nullptr);
    auto stub = v1::BrokerService::NewStub(testutil::BrokerChannel(absl::StrCat("localhost:", grpc_port)));
    for (int i = 0; i < 5; ++i) {
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
      v1::CallRequest request;
      request.set_backend("framed");
      request.set_request(Frame(absl::StrCat(marker, "-call-", i)));
      v1::CallResponse response;
      grpc::Status status = stub->Call(&context, request, &response);
      ASSERT_TRUE(status.ok()) << status.error_message();
      EXPECT_EQ(response.response(), Frame(absl::StrCat("re:", marker, "-call-", i)));
    }
    {  // A request that is not one valid frame, carrying the marker.
      grpc::ClientContext context;
      v1::CallRequest request;
      request.set_backend("framed");
      request.set_request(absl::StrCat(Frame(marker), marker));
      v1::CallResponse response;
      EXPECT_EQ(stub->Call(&context, request, &response).error_code(),
                grpc::StatusCode::INVALID_ARGUMENT);
    }
    {  // A lease that exchanges frames and ends cleanly.
      grpc::ClientContext context;
      auto lease = stub->Lease(&context);
      v1::LeaseInfo info;
      ASSERT_TRUE(testutil::OpenLease(lease.get(), "framed", &info));
      const std::string payload = absl::StrCat(marker, "-lease");
      EXPECT_EQ(testutil::LeaseExchange(lease.get(), payload, Frame("re:" + payload).size()),
                Frame("re:" + payload));
      EXPECT_TRUE(testutil::FinishLease(lease.get()).ok());
    }
    {  // A lease cancelled with part of a frame sent (the socket is destroyed as dirty).
      grpc::ClientContext context;
      auto lease = stub->Lease(&context);
      v1::LeaseInfo info;
      ASSERT_TRUE(testutil::OpenLease(lease.get(), "framed", &info));
      v1::LeaseRequest data;
      data.set_data(Frame(absl::StrCat(marker, "-partial")).substr(0, 12));
      ASSERT_TRUE(lease->Write(data));
      context.TryCancel();
      lease->Finish();
    }
    {  // The backend stalls its answer and the Call's deadline passes mid-exchange.
      backend->set_stall_response(true);
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Milliseconds(500)));
      v1::CallRequest request;
      request.set_backend("framed");
      request.set_request(Frame(absl::StrCat(marker, "-stalled")));
      v1::CallResponse response;
      EXPECT_FALSE(stub->Call(&context, request, &response).ok());
      backend->set_stall_response(false);
    }
    // A reload whose client key does not match its certificate is rejected and logged.
    WriteText(config, ConfigYaml(backend->port(), testutil::PkiPath("ec", "client2.key")));
    ASSERT_TRUE(broker->Signal(SIGHUP).ok());
    ASSERT_TRUE(broker->WaitForLog("reload rejected", absl::Seconds(20)).ok())
        << broker->ReadLog();
    ASSERT_TRUE(broker->Signal(SIGTERM).ok());
    EXPECT_EQ(broker->Wait(absl::Seconds(20)).value_or(-1), 0);
    output = broker->ReadLog();
  }
  // Config errors that point at key files: a key given as the certificate, a key that does not
  // match, and a key file given as the CA bundle.
  WriteText(config, ConfigYaml(backend->port(), testutil::PkiPath("ec", "client2.key"),
                               testutil::PkiPath("ec", "client.key")));
  auto check = testutil::RunCommand({TLSB_BROKER_BINARY, "--check-config", config});
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_EQ(check->exit_code, 1) << check->output;
  output += check->output;
  auto serve = testutil::RunCommand(
      {TLSB_BROKER_BINARY, "--config", config, "--log-level", "debug"});
  ASSERT_TRUE(serve.ok()) << serve.status();
  EXPECT_EQ(serve->exit_code, 1) << serve->output;
  output += serve->output;

  // The run did log, at debug level, the events around those payloads.
  EXPECT_THAT(output, HasSubstr("lease ended"));
  EXPECT_THAT(output, HasSubstr("reload rejected"));
  EXPECT_THAT(output, HasSubstr("holds no readable PEM certificate"));
  EXPECT_EQ(output.find(marker), std::string::npos) << output;
  const std::vector<std::string> key_lines = KeyBodyLines();
  ASSERT_GT(key_lines.size(), 20u);
  for (const std::string& line : key_lines) {
    EXPECT_EQ(output.find(line), std::string::npos) << "key material in the logs: " << line;
  }
  EXPECT_EQ(output.find("PRIVATE KEY"), std::string::npos) << output;
  std::filesystem::remove_all(dir);
}

// A client key that others may read: --check-config accepts the config with a warning naming
// the file and its mode, and the running broker says so in its log and in
// tlsbroker_insecure_file_permissions. At 0600 the metric is 0.
TEST(SecurityProcessTest, KeyFileReadableByOthersIsReportedNotRefused) {
  const std::string dir = testutil::MakeTempDir("tlsb-security");
  auto backend = FramedEchoBackend();
  ASSERT_NE(backend, nullptr);
  const std::string key = dir + "/client.key";
  std::filesystem::copy_file(testutil::PkiPath("ec", "client.key"), key);
  ASSERT_EQ(chmod(key.c_str(), 0644), 0);
  const std::string config = dir + "/config.yaml";
  WriteText(config, ConfigYaml(backend->port(), key));
  ASSERT_EQ(chmod(config.c_str(), 0600), 0);

  auto check = testutil::RunCommand({TLSB_BROKER_BINARY, "--check-config", config});
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_EQ(check->exit_code, 0) << check->output;
  EXPECT_THAT(check->output, HasSubstr(absl::StrCat("warning: backends[0].tls.key: private key \"",
                                                    key, "\" has mode 0644")));

  for (int mode : {0644, 0600}) {
    ASSERT_EQ(chmod(key.c_str(), static_cast<mode_t>(mode)), 0);
    int grpc_port = 0, metrics_port = 0;
    auto broker = StartBroker({}, config, dir + absl::StrCat("/broker-", mode, ".log"),
                              &grpc_port, &metrics_port);
    ASSERT_NE(broker, nullptr);
    auto metrics = testutil::HttpGet("127.0.0.1", metrics_port, "/metrics");
    ASSERT_TRUE(metrics.ok()) << metrics.status();
    EXPECT_EQ(testutil::MetricValue(metrics->body, "tlsbroker_insecure_file_permissions"),
              mode == 0644 ? 1 : 0);
    EXPECT_EQ(absl::StrContains(broker->ReadLog(), "has mode 0644"), mode == 0644)
        << broker->ReadLog();
    broker->Stop();
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tlsbroker
