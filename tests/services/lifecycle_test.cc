// Reload and shutdown: a broken config never replaces the running one, a good one changes new
// sockets only, and SIGTERM under load drains cleanly (the real tlsbroker binary). Also what
// /metrics says about the process, the build and the outcome of reloads.

#include <signal.h>
#include <sys/resource.h>

#include <atomic>
#include <fstream>
#include <regex>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "broker/config/load_options.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/services/broker_test_env.h"
#include "tests/support/subprocess.h"

namespace tlsbroker {
namespace {

using ::testing::HasSubstr;
using testutil::Frame;

// A config file with mTLS callers and one framed backend; `client` names the certificate the
// broker presents to the backend.
std::string ConfigYaml(int backend_port, const std::string& client = "client",
                       const std::string& extra_backend = "") {
  std::string pki = testutil::PkiPath("ec", "");
  return absl::StrCat(R"(listen:
  grpc: 127.0.0.1:0
  metrics: 127.0.0.1:0
  drain_grace_period: 10s
  tls: {cert: )", pki, "server.fullchain.pem, key: ", pki, "server.key, client_ca: ", pki,
                      R"(root.crt}
  admin_callers: ["spiffe://example.org/ns/payments/sa/app1"]
backends:
  - name: framed
    address: 127.0.0.1:)", backend_port, R"(
    server_name: localhost
    tls: {ca: )", pki, "root.crt, cert: ", pki, client, ".fullchain.pem, key: ", pki, client,
                      R"(.key}
    pool: {max_sockets: 4}
    framing: {length_field: {offset: 0, size: 4, big_endian: true, adjustment: -4}}
    allowed_callers: ["spiffe://example.org/ns/payments/sa/app1"]
)", extra_backend);
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

class LifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto options = testutil::TlsTestServer::PkiOptions("ec");
    options.mode = testutil::TlsTestServerMode::kFramedEcho;
    options.response_prefix = "re:";
    backend_ = *testutil::TlsTestServer::Create(options);
    dir_ = testutil::MakeTempDir("tlsb-lifecycle");
    config_path_ = dir_ + "/config.yaml";
  }

  void StartInProcess() {
    WriteFile(config_path_, ConfigYaml(backend_->port()));
    auto options = LoadOptionsFromFile(config_path_, 0);
    ASSERT_TRUE(options.ok()) << options.status();
    BrokerServer::StartOptions start;
    start.io_threads = 2;
    start.config_path = config_path_;
    start.ordinal = 0;
    auto server = BrokerServer::Start(*options, start);
    ASSERT_TRUE(server.ok()) << server.status();
    broker_ = *std::move(server);
    target_ = absl::StrCat("localhost:", broker_->grpc_port());
    stub_ = v1::BrokerService::NewStub(testutil::BrokerChannel(target_));
    admin_ = v1::BrokerAdminService::NewStub(testutil::BrokerChannel(target_));
  }

  grpc::Status Call(const std::string& payload, v1::CallResponse* response,
                    const std::string& client_id = "") {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    v1::CallRequest request;
    request.set_backend("framed");
    request.set_request(Frame(payload));
    request.set_client_id(client_id);
    return stub_->Call(&context, request, response);
  }

  grpc::Status Reload(v1::ReloadResponse* response) {
    grpc::ClientContext context;
    return admin_->Reload(&context, v1::ReloadRequest(), response);
  }

  // The in-process broker's /metrics page.
  std::string Metrics() {
    auto response = testutil::HttpGet("127.0.0.1", broker_->metrics_port(), "/metrics");
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? response->body : "";
  }

  // Starts the tlsbroker binary on config_path_ with `args` (and `env`, NAME=VALUE, through
  // env(1)); its metrics port goes to `metrics_port`.
  std::unique_ptr<testutil::Subprocess> StartBinary(const std::vector<std::string>& args,
                                                    int* metrics_port,
                                                    const std::vector<std::string>& env = {}) {
    std::vector<std::string> argv;
    if (!env.empty()) {
      argv.push_back("/usr/bin/env");
      argv.insert(argv.end(), env.begin(), env.end());
    }
    argv.insert(argv.end(), {TLSB_BROKER_BINARY, "--config", config_path_});
    argv.insert(argv.end(), args.begin(), args.end());
    auto broker = testutil::Subprocess::Start(argv, dir_ + "/broker.log");
    EXPECT_TRUE(broker.ok()) << broker.status();
    if (!broker.ok()) return nullptr;
    EXPECT_TRUE((*broker)->WaitForLog("tlsbroker serving", absl::Seconds(20)).ok())
        << (*broker)->ReadLog();
    std::smatch match;
    const std::string log = (*broker)->ReadLog();
    EXPECT_TRUE(std::regex_search(log, match, std::regex("\\(port ([0-9]+)\\)"))) << log;
    *metrics_port = match.empty() ? 0 : std::stoi(match[1].str());
    return *std::move(broker);
  }

  std::unique_ptr<testutil::TlsTestServer> backend_;
  std::string dir_;
  std::string config_path_;
  std::unique_ptr<BrokerServer> broker_;
  std::string target_;
  std::unique_ptr<v1::BrokerService::Stub> stub_;
  std::unique_ptr<v1::BrokerAdminService::Stub> admin_;
};

// A reload of a broken config is refused with every error, and the running config stays.
TEST_F(LifecycleTest, ReloadWithBrokenConfigKeepsRunningConfigAndReturnsErrors) {
  StartInProcess();
  v1::CallResponse before;
  ASSERT_TRUE(Call("before", &before).ok());
  std::string broken = absl::StrReplaceAll(ConfigYaml(backend_->port()),
                                           {{"max_sockets: 4", "max_sockets: 4, min_idle: 9"},
                                            {"server_name: localhost", "server_nam: localhost"}});
  WriteFile(config_path_, broken);
  v1::ReloadResponse response;
  grpc::Status status = Reload(&response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  // Every error, with its line, in the status message.
  EXPECT_THAT(status.error_message(), HasSubstr("config.yaml:10:5: backends[0].server_nam"));
  EXPECT_THAT(status.error_message(), HasSubstr("backends[0].pool.min_idle"));
  v1::CallResponse after;
  ASSERT_TRUE(Call("after", &after).ok());
  EXPECT_EQ(after.response(), Frame("re:after"));
  EXPECT_EQ(after.lease().socket_id(), before.lease().socket_id());
}

// A good reload changes new sockets only: a lease running across the reload keeps its socket
// (made with the old client certificate), new sockets present the new one.
TEST_F(LifecycleTest, ReloadWithGoodConfigChangesNewSocketsOnly) {
  StartInProcess();
  grpc::ClientContext lease_context;
  auto lease = stub_->Lease(&lease_context);
  v1::LeaseRequest open;
  open.mutable_open()->set_backend("framed");
  open.mutable_open()->set_client_id("TLSB0001");
  ASSERT_TRUE(lease->Write(open));
  v1::LeaseResponse info;
  ASSERT_TRUE(lease->Read(&info));
  ASSERT_TRUE(info.has_info());

  WriteFile(config_path_, ConfigYaml(backend_->port(), "client2"));
  v1::ReloadResponse response;
  grpc::Status status = Reload(&response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(response.applied());

  // The running lease is undisturbed.
  v1::LeaseRequest data;
  data.set_data(Frame("still here"));
  ASSERT_TRUE(lease->Write(data));
  std::string got;
  v1::LeaseResponse chunk;
  while (got.size() < Frame("re:still here").size() && lease->Read(&chunk)) got += chunk.data();
  EXPECT_EQ(got, Frame("re:still here"));
  lease->WritesDone();
  while (lease->Read(&chunk)) {
  }
  EXPECT_TRUE(lease->Finish().ok());

  // A new socket presents the new certificate.
  v1::CallResponse fresh;
  ASSERT_TRUE(Call("new", &fresh, "TLSB0002").ok());
  EXPECT_FALSE(fresh.lease().reused());
  std::vector<std::string> subjects = backend_->peer_subjects();
  ASSERT_EQ(subjects.size(), 2u);
  EXPECT_THAT(subjects[0], HasSubstr("CN=app1"));
  EXPECT_THAT(subjects[1], HasSubstr("CN=app2"));
}

// A reload may add backends, all or nothing: one that adds a good backend and one whose CA file
// is not a certificate changes nothing (the good one is not added either, the running one
// keeps serving); the good one alone is then added.
TEST_F(LifecycleTest, ReloadAddsBackendsAllOrNothing) {
  StartInProcess();
  auto extra_backend = [&](const std::string& name, const std::string& prefix,
                           const std::string& tls_extra) {
    return absl::StrCat("  - name: ", name, "\n    address: 127.0.0.1:", backend_->port(), R"(
    server_name: localhost
    tls: {ca: )", testutil::PkiPath("ec", "root.crt"), tls_extra, R"(}
    framing: {delimiter: "\n"}
    client_id: {prefix: )", prefix, R"(}
    allowed_callers: ["*"]
)");
  };
  auto backend_names = [&] {
    v1::ListBackendsResponse backends;
    grpc::ClientContext context;
    EXPECT_TRUE(admin_->ListBackends(&context, v1::ListBackendsRequest(), &backends).ok());
    std::vector<std::string> names;
    for (const auto& b : backends.backends()) names.push_back(b.name());
    return names;
  };
  const std::string good = extra_backend("second", "SEC", "");
  // A cipher string OpenSSL matches to nothing: the config check passes (it does not build TLS
  // contexts), building the backend fails, after "second" was already built.
  const std::string bad = extra_backend("third", "THI", ", cipher_list: NO-SUCH-CIPHER");

  WriteFile(config_path_, ConfigYaml(backend_->port(), "client", good + bad));
  v1::ReloadResponse refused;
  grpc::Status status = Reload(&refused);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_FALSE(refused.applied());
  EXPECT_THAT(status.error_message(), HasSubstr("backend third"));
  EXPECT_THAT(backend_names(), ::testing::ElementsAre("framed"));
  v1::CallResponse still;
  ASSERT_TRUE(Call("still", &still).ok());
  EXPECT_EQ(still.response(), Frame("re:still"));

  WriteFile(config_path_, ConfigYaml(backend_->port(), "client", good));
  v1::ReloadResponse added;
  ASSERT_TRUE(Reload(&added).ok());
  EXPECT_TRUE(added.applied());
  EXPECT_THAT(backend_names(), ::testing::UnorderedElementsAre("framed", "second"));
}

// SIGTERM under load: every Call either completes with the right answer or fails UNAVAILABLE
// (none returns a partial answer as success), and the process exits 0 within the grace period.
TEST_F(LifecycleTest, SigtermUnderLoadDrainsAndExitsZero) {
  WriteFile(config_path_, ConfigYaml(backend_->port()));
  backend_->set_response_delay(absl::Milliseconds(2));
  auto broker = testutil::Subprocess::Start(
      {TLSB_BROKER_BINARY, "--config", config_path_, "--log-level", "debug", "--io-threads", "2"},
      dir_ + "/broker.log");
  ASSERT_TRUE(broker.ok()) << broker.status();
  ASSERT_TRUE((*broker)->WaitForLog("tlsbroker serving", absl::Seconds(20)).ok())
      << (*broker)->ReadLog();
  std::smatch match;
  std::string log = (*broker)->ReadLog();
  ASSERT_TRUE(std::regex_search(log, match, std::regex("grpc=127\\.0\\.0\\.1:([0-9]+)")));
  target_ = absl::StrCat("localhost:", match[1].str());
  stub_ = v1::BrokerService::NewStub(testutil::BrokerChannel(target_));

  std::atomic<bool> stop{false};
  std::atomic<bool> draining{false};
  std::atomic<int> ok{0}, unavailable{0}, wrong{0}, other{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 6; ++t) {
    callers.emplace_back([&, t] {
      // Like a client behind a load balancer: once this replica says UNAVAILABLE, go elsewhere
      // (here: stop). Calls already under way must still end correctly.
      for (int i = 0; !stop && !draining; ++i) {
        std::string payload = absl::StrCat("caller", t, "-", i);
        v1::CallResponse response;
        grpc::Status status = Call(payload, &response);
        if (status.ok()) {
          (response.response() == Frame("re:" + payload) ? ok : wrong)++;
        } else if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
          ++unavailable;
          draining = true;
        } else {
          ++other;
          ADD_FAILURE() << status.error_code() << ": " << status.error_message();
        }
      }
    });
  }
  ASSERT_TRUE(testutil::PollUntil([&] { return ok.load() > 100; }, absl::Seconds(60)));
  ASSERT_TRUE((*broker)->Signal(SIGTERM).ok());
  // Only a hang bound; the drain's own log line says whether it finished or ran out its grace.
  auto exit_code = (*broker)->Wait(absl::Seconds(60));
  // Every caller still calling after the exit stops on its own at its first UNAVAILABLE: a
  // call to a gone broker fails, it does not hang (each call's deadline bounds the wait).
  for (auto& th : callers) th.join();
  stop = true;
  ASSERT_TRUE(exit_code.ok()) << exit_code.status();
  EXPECT_EQ(*exit_code, 0) << (*broker)->ReadLog();
  // The running calls finished within the grace period: none was left to cut off.
  EXPECT_THAT((*broker)->ReadLog(), HasSubstr("active_rpcs=0"));
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(other.load(), 0);
  EXPECT_GT(unavailable.load(), 0);
  EXPECT_THAT((*broker)->ReadLog(), HasSubstr("tlsbroker stopped"));
}

// The outcome of reloads through the real reload path (BrokerAdminService.Reload re-reads the file):
// 1 with a timestamp at start; a broken file sets 0 and leaves the timestamp of the
// configuration still in force; a good one sets 1 and a timestamp not before the reload.
TEST_F(LifecycleTest, ReloadOutcomeIsExportedWithTheTimeOfTheLastSuccess) {
  StartInProcess();
  const std::string success = "tlsbroker_config_last_reload_success";
  const std::string timestamp = "tlsbroker_config_last_reload_success_timestamp_seconds";
  std::string page = Metrics();
  EXPECT_EQ(testutil::MetricValue(page, success), 1) << page;
  const double started = testutil::MetricValue(page, timestamp);
  EXPECT_GT(started, 0) << page;

  WriteFile(config_path_, absl::StrReplaceAll(ConfigYaml(backend_->port()),
                                              {{"server_name: localhost", "server_nam: x"}}));
  v1::ReloadResponse refused;
  ASSERT_EQ(Reload(&refused).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  page = Metrics();
  EXPECT_EQ(testutil::MetricValue(page, success), 0) << page;
  EXPECT_EQ(testutil::MetricValue(page, timestamp), started) << page;

  // Milliseconds: what the page shows of the time may round below the exact instant.
  const double before =
      static_cast<double>(absl::ToUnixMillis(absl::Now())) / 1000.0;
  WriteFile(config_path_, ConfigYaml(backend_->port(), "client2"));
  v1::ReloadResponse applied;
  grpc::Status status = Reload(&applied);
  ASSERT_TRUE(status.ok()) << status.error_message();
  page = Metrics();
  EXPECT_EQ(testutil::MetricValue(page, success), 1) << page;
  EXPECT_GE(testutil::MetricValue(page, timestamp), before) << page;
}

// The tlsbroker binary's /metrics carries the standard process metrics (read from its /proc),
// which build it is, and the socket budget's configured limit in a family of its own.
TEST_F(LifecycleTest, BinaryExportsProcessBuildAndBudgetLimitMetrics) {
  WriteFile(config_path_,
            ConfigYaml(backend_->port()) + "limits:\n  max_backend_sockets: 40\n");
  int port = 0;
  std::unique_ptr<testutil::Subprocess> broker = StartBinary({}, &port);
  ASSERT_NE(broker, nullptr);
  ASSERT_GT(port, 0);
  auto response = testutil::HttpGet("127.0.0.1", port, "/metrics");
  ASSERT_TRUE(response.ok()) << response.status();
  const std::string& page = response->body;

  // The child inherits this process's descriptor limit.
  rlimit limit{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  EXPECT_EQ(testutil::MetricValue(page, "process_max_fds"), static_cast<double>(limit.rlim_cur))
      << page;
  // Its listeners alone are open descriptors.
  EXPECT_GT(testutil::MetricValue(page, "process_open_fds"), 0) << page;
  EXPECT_GT(testutil::MetricValue(page, "process_resident_memory_bytes"), 0) << page;
  EXPECT_GT(testutil::MetricValue(page, "process_virtual_memory_bytes"), 0) << page;
  EXPECT_GT(testutil::MetricValue(page, "process_start_time_seconds"), 0) << page;
  EXPECT_GE(testutil::MetricValue(page, "process_cpu_seconds_total"), 0) << page;
  EXPECT_THAT(page, HasSubstr("# TYPE process_cpu_seconds_total counter"));

  std::smatch build;
  ASSERT_TRUE(std::regex_search(
      page, build,
      std::regex("\ntlsbroker_build_info\\{commit=\"([^\"]*)\",version=\"([^\"]*)\"\\} 1\n")))
      << page;
  EXPECT_EQ(build[2].str(), TLSB_EXPECTED_VERSION);
  EXPECT_TRUE(std::regex_match(build[1].str(), std::regex("[0-9a-f]{7,40}|unknown")))
      << build[1].str();

  EXPECT_EQ(testutil::MetricValue(page, "tlsbroker_socket_budget_limit_sockets"), 40) << page;
  EXPECT_GE(testutil::MetricValue(page, "tlsbroker_socket_budget_sockets{state=\"used\"}"), 0)
      << page;
  EXPECT_EQ(broker->Stop(absl::Seconds(20)), 0) << broker->ReadLog();
}

// With --log-format json every line the broker writes is one JSON object, including the config
// warnings printed at start (their position as numbers), the per-lease audit line (its counts
// as numbers) and gRPC's own log lines (at
// GRPC_VERBOSITY=INFO gRPC logs its pollers and server setup at start), which carry gRPC's file
// and line.
TEST_F(LifecycleTest, JsonLogStreamStaysJsonWithStartupWarningsAndGrpcLines) {
  // A backend nobody may use: allowed, with a warning.
  const std::string nobody = absl::StrCat("  - name: nobody\n    address: 127.0.0.1:",
                                          backend_->port(), R"(
    server_name: localhost
    tls: {ca: )", testutil::PkiPath("ec", "root.crt"), R"(}
    framing: {delimiter: "\n"}
    client_id: {prefix: NOB}
    allowed_callers: []
)");
  const std::string config = ConfigYaml(backend_->port(), "client", nobody);
  WriteFile(config_path_, config);
  // The warning's line: where `allowed_callers: []` stands.
  int warning_line = 0;
  int n = 0;
  for (absl::string_view line : absl::StrSplit(config, '\n')) {
    ++n;
    if (absl::StrContains(line, "allowed_callers: []")) warning_line = n;
  }
  ASSERT_GT(warning_line, 0);

  int port = 0;
  std::unique_ptr<testutil::Subprocess> broker =
      StartBinary({"--log-format", "json"}, &port, {"GRPC_VERBOSITY=INFO"});
  ASSERT_NE(broker, nullptr);
  // One Call, so that gRPC has its say about a connection too.
  std::smatch grpc_port;
  const std::string started = broker->ReadLog();
  ASSERT_TRUE(std::regex_search(started, grpc_port,
                                std::regex("\"grpc\":\"127\\.0\\.0\\.1:([0-9]+)\"")))
      << started;
  stub_ = v1::BrokerService::NewStub(
      testutil::BrokerChannel(absl::StrCat("localhost:", grpc_port[1].str())));
  v1::CallResponse response;
  ASSERT_TRUE(Call("json", &response).ok());
  ASSERT_EQ(broker->Stop(absl::Seconds(20)), 0) << broker->ReadLog();

  const std::string log = broker->ReadLog();
  int lines = 0;
  bool warning_seen = false, grpc_seen = false, lease_ended_seen = false;
  for (absl::string_view line : absl::StrSplit(log, '\n', absl::SkipEmpty())) {
    ++lines;
    google::protobuf::Struct object;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(std::string(line), &object).ok())
        << "not a JSON object: " << line;
    const auto& f = object.fields();
    ASSERT_TRUE(f.count("ts") && f.count("level") && f.count("msg")) << line;
    if (f.at("msg").string_value() == "config warning" && f.count("field") &&
        f.at("field").string_value() == "backends[1].allowed_callers") {
      warning_seen = true;
      EXPECT_EQ(f.at("level").string_value(), "warning") << line;
      EXPECT_EQ(f.at("file").string_value(), config_path_) << line;
      EXPECT_THAT(f.at("warning").string_value(), HasSubstr("no caller may lease")) << line;
      // Numbers, not strings.
      ASSERT_EQ(f.at("line").kind_case(), google::protobuf::Value::kNumberValue) << line;
      EXPECT_EQ(f.at("line").number_value(), warning_line) << line;
      ASSERT_EQ(f.at("column").kind_case(), google::protobuf::Value::kNumberValue) << line;
      EXPECT_GT(f.at("column").number_value(), 0) << line;
    }
    if (f.at("msg").string_value() == "lease ended") {
      // The audit line's counts are numbers, so a log pipeline can sum them as they come.
      lease_ended_seen = true;
      for (const char* key : {"socket_id", "bytes_sent", "bytes_received", "duration_ms"}) {
        ASSERT_TRUE(f.count(key)) << key << " missing: " << line;
        EXPECT_EQ(f.at(key).kind_case(), google::protobuf::Value::kNumberValue) << key << ": "
                                                                                << line;
      }
      EXPECT_GT(f.at("bytes_sent").number_value(), 0) << line;
      EXPECT_GT(f.at("bytes_received").number_value(), 0) << line;
      EXPECT_EQ(f.at("result").string_value(), "clean") << line;
    }
    if (f.count("logger") && f.at("logger").string_value() == "grpc") {
      grpc_seen = true;
      EXPECT_EQ(f.at("level").string_value(), "info") << line;
      EXPECT_FALSE(f.at("file").string_value().empty()) << line;
      ASSERT_EQ(f.at("line").kind_case(), google::protobuf::Value::kNumberValue) << line;
      EXPECT_GT(f.at("line").number_value(), 0) << line;
    }
  }
  EXPECT_GT(lines, 0);
  EXPECT_TRUE(warning_seen) << log;
  EXPECT_TRUE(grpc_seen) << log;
  EXPECT_TRUE(lease_ended_seen) << log;
}

}  // namespace
}  // namespace tlsbroker
