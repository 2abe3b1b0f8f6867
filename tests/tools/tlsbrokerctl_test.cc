// The real tlsbrokerctl binary, run as a subprocess with the test PKI's client certificates,
// against an in-process broker (real gRPC over TCP with mTLS) in front of real TLS backends.

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/services/broker_test_env.h"
#include "tests/support/subprocess.h"

namespace tlsbroker {
namespace {

using ::testing::HasSubstr;
using testutil::Frame;

// The binary under test: this build's, unless $TLSBROKERCTL names another one (e.g. a
// sanitizer build, or an installed copy).
std::string CtlBinary() {
  const char* env = std::getenv("TLSBROKERCTL");
  return env != nullptr && *env != '\0' ? env : TLSBROKERCTL_BINARY;
}

struct CtlResult {
  int exit_code = -1;
  std::string out;  // stdout alone
  std::string err;  // stderr alone
};

// Parses `json` into a Struct; fails the test when it is not valid JSON.
google::protobuf::Struct ParseJson(const std::string& json) {
  google::protobuf::Struct parsed;
  auto status = google::protobuf::util::JsonStringToMessage(json, &parsed);
  EXPECT_TRUE(status.ok()) << status.ToString() << "\n" << json;
  return parsed;
}

class TlsbrokerctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto framed = testutil::TlsTestServer::PkiOptions("ec");
    framed.mode = testutil::TlsTestServerMode::kFramedEcho;
    framed.response_prefix = "re:";
    framed_backend_ = *testutil::TlsTestServer::Create(framed);
    auto echo = testutil::TlsTestServer::PkiOptions("ec");
    echo.mode = testutil::TlsTestServerMode::kEcho;
    echo_backend_ = *testutil::TlsTestServer::Create(echo);

    options_ = testutil::BrokerTestOptions();
    BackendOptions f = testutil::FramedBackend(framed_backend_->port());
    f.name = "framed";
    f.allowed_callers = {"spiffe://example.org/*"};
    options_.backends.push_back(f);
    BackendOptions e = testutil::FramedBackend(echo_backend_->port());
    e.name = "echo";
    e.framing = FramingOptions();  // Raw bytes: Lease only.
    e.client_id.prefix = "ECHO";
    e.allowed_callers = {"spiffe://example.org/*"};
    options_.backends.push_back(e);
    temp_dir_ = testutil::MakeTempDir("tlsbrokerctl-test");
  }

  void StartBroker(const std::string& config_path = "") {
    BrokerServer::StartOptions start;
    start.io_threads = 2;
    start.config_path = config_path;
    auto server = BrokerServer::Start(options_, start);
    ASSERT_TRUE(server.ok()) << server.status();
    broker_ = *std::move(server);
    target_ = absl::StrCat("localhost:", broker_->grpc_port());
  }

  // Runs tlsbrokerctl with `args` and no credentials at all (for a plaintext broker).
  CtlResult PlainCtl(const std::vector<std::string>& args) {
    const std::string err_path = absl::StrCat(temp_dir_, "/stderr");
    std::vector<std::string> argv = {"/bin/sh", "-c",
                                     absl::StrCat("exec \"$0\" \"$@\" 2>'", err_path, "'"),
                                     CtlBinary(), "--target", target_};
    argv.insert(argv.end(), args.begin(), args.end());
    CtlResult result;
    auto run = testutil::RunCommand(argv, "", absl::Seconds(60));
    EXPECT_TRUE(run.ok()) << run.status();
    if (!run.ok()) return result;
    result.exit_code = run->exit_code;
    result.out = run->output;
    result.err = testutil::ReadFileOrEmpty(err_path);
    return result;
  }

  // Runs tlsbrokerctl with `args` as the PKI's `client` ("client" = app1, an admin; "client2"
  // = app2, not an admin), stdout and stderr kept apart.
  CtlResult Ctl(const std::vector<std::string>& args, const std::string& client = "client",
                const std::string& stdin_data = "") {
    const std::string err_path = absl::StrCat(temp_dir_, "/stderr");
    // sh only redirects stderr to a file, then becomes tlsbrokerctl (exec).
    std::vector<std::string> argv = {"/bin/sh",
                                     "-c",
                                     absl::StrCat("exec \"$0\" \"$@\" 2>'", err_path, "'"),
                                     CtlBinary(),
                                     "--target",
                                     target_,
                                     "--ca",
                                     testutil::PkiPath("ec", "root.crt"),
                                     "--cert",
                                     testutil::PkiPath("ec", client + ".fullchain.pem"),
                                     "--key",
                                     testutil::PkiPath("ec", client + ".key")};
    argv.insert(argv.end(), args.begin(), args.end());
    CtlResult result;
    auto run = testutil::RunCommand(argv, stdin_data, absl::Seconds(60));
    EXPECT_TRUE(run.ok()) << run.status();
    if (!run.ok()) return result;
    result.exit_code = run->exit_code;
    result.out = run->output;
    result.err = testutil::ReadFileOrEmpty(err_path);
    return result;
  }

  BrokerOptions options_;
  std::unique_ptr<testutil::TlsTestServer> framed_backend_;
  std::unique_ptr<testutil::TlsTestServer> echo_backend_;
  std::unique_ptr<BrokerServer> broker_;
  std::string target_;
  std::string temp_dir_;
};

// `call --frame-text` frames the text, and stdout gets the backend's response frame unchanged;
// the lease summary goes to stderr.
TEST_F(TlsbrokerctlTest, CallFrameTextPrintsRawResponseFrame) {
  StartBroker();
  CtlResult r = Ctl({"call", "framed", "--frame-text", "hello"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, Frame("re:hello"));
  EXPECT_THAT(r.err, HasSubstr("client_id=TLSB0001"));
  EXPECT_THAT(r.err, HasSubstr("reused=no"));
}

// `call --file` sends the file's bytes as the whole request frame, NUL bytes included.
TEST_F(TlsbrokerctlTest, CallFileSendsBytesUnchanged) {
  StartBroker();
  const std::string path = absl::StrCat(temp_dir_, "/request.bin");
  {
    std::ofstream out(path, std::ios::binary);
    out << Frame(std::string("a\0b", 3));
  }
  CtlResult r = Ctl({"call", "framed", "--file", path, "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, Frame(std::string("re:a\0b", 6)));
  EXPECT_EQ(r.err, "");
}

// `call --json` prints one valid JSON object with the response (base64) and the lease.
TEST_F(TlsbrokerctlTest, CallJsonHasResponseAndLease) {
  StartBroker();
  CtlResult first = Ctl({"call", "framed", "--frame-text", "x", "--json"});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  CtlResult r = Ctl({"call", "framed", "--frame-text", "y", "--json", "--client-id", "TLSB0001"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  google::protobuf::Struct parsed = ParseJson(r.out);
  std::string response;
  ASSERT_TRUE(absl::Base64Unescape(parsed.fields().at("response_base64").string_value(),
                                   &response));
  EXPECT_EQ(response, Frame("re:y"));
  const auto& lease = parsed.fields().at("lease").struct_value().fields();
  EXPECT_EQ(lease.at("client_id").string_value(), "TLSB0001");
  EXPECT_EQ(lease.at("backend").string_value(), "framed");
  // The second call reused the first one's socket: one handshake for two processes.
  EXPECT_TRUE(lease.at("reused").bool_value());
  EXPECT_EQ(framed_backend_->total_handshakes(), 1);
}

// `backends --json` lists every configured backend with its pool figures; the table too.
TEST_F(TlsbrokerctlTest, BackendsListsEveryBackend) {
  StartBroker();
  ASSERT_EQ(Ctl({"call", "framed", "--frame-text", "x"}).exit_code, 0);
  CtlResult r = Ctl({"backends", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  google::protobuf::Struct parsed = ParseJson(r.out);
  std::map<std::string, google::protobuf::Struct> by_name;
  for (const auto& b : parsed.fields().at("backends").list_value().values()) {
    by_name[b.struct_value().fields().at("name").string_value()] = b.struct_value();
  }
  ASSERT_EQ(by_name.size(), 2u) << r.out;
  ASSERT_TRUE(by_name.contains("framed"));
  ASSERT_TRUE(by_name.contains("echo"));
  EXPECT_EQ(by_name["framed"].fields().at("handshakes_full").string_value(), "1");
  EXPECT_EQ(by_name["framed"].fields().at("max_sockets").number_value(), 4);
  EXPECT_EQ(by_name["echo"].fields().at("draining").bool_value(), false);

  CtlResult table = Ctl({"backends"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("NAME"));
  EXPECT_THAT(table.out, HasSubstr("framed"));
  EXPECT_THAT(table.out, HasSubstr("echo"));
}

// `sockets BACKEND --json` lists that backend's sockets by client ID.
TEST_F(TlsbrokerctlTest, SocketsListsTheBackendsSockets) {
  StartBroker();
  ASSERT_EQ(Ctl({"call", "framed", "--frame-text", "x", "--client-id", "TLSB0002"}).exit_code,
            0);
  CtlResult r = Ctl({"sockets", "framed", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  google::protobuf::Struct parsed = ParseJson(r.out);
  bool found = false;
  for (const auto& s : parsed.fields().at("sockets").list_value().values()) {
    const auto& f = s.struct_value().fields();
    if (f.at("client_id").string_value() != "TLSB0002") continue;
    found = true;
    EXPECT_EQ(f.at("state").string_value(), "SOCKET_STATE_IDLE");
    EXPECT_EQ(f.at("tls_version").string_value(), "TLSv1.3");
    EXPECT_EQ(f.at("leases_served").number_value(), 1);
  }
  EXPECT_TRUE(found) << r.out;

  CtlResult table = Ctl({"sockets", "framed"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("TLSB0002"));
}

// `lease` bridges stdin to the backend and the backend to stdout, then releases at stdin EOF
// and exits 0.
TEST_F(TlsbrokerctlTest, LeaseBridgesStdinAndStdout) {
  StartBroker();
  CtlResult r = Ctl({"lease", "echo", "--linger", "2s"}, "client", "hello");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "hello");
  EXPECT_THAT(r.err, HasSubstr("client_id=ECHO0001"));
}

// A caller that is not on the admin list gets exit code 4 and the reason on stderr.
TEST_F(TlsbrokerctlTest, NonAdminBackendsExitsPermissionDenied) {
  StartBroker();
  CtlResult r = Ctl({"backends"}, "client2");
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("PERMISSION_DENIED"));
  EXPECT_THAT(r.err, HasSubstr("spiffe://example.org/ns/payments/sa/app2"));
  EXPECT_THAT(r.err, HasSubstr("reason: PERMISSION_DENIED"));
}

// An unknown backend is exit code 5, for calls and admin commands alike.
TEST_F(TlsbrokerctlTest, UnknownBackendExitsNotFound) {
  StartBroker();
  CtlResult call = Ctl({"call", "nope", "--frame-text", "x"});
  EXPECT_EQ(call.exit_code, 5);
  EXPECT_THAT(call.err, HasSubstr("NOT_FOUND"));
  EXPECT_EQ(Ctl({"sockets", "nope"}).exit_code, 5);
  EXPECT_EQ(Ctl({"lease", "nope"}, "client", "x").exit_code, 5);
}

// A stopped broker is exit code 3.
TEST_F(TlsbrokerctlTest, BrokerDownExitsUnavailable) {
  StartBroker();
  broker_.reset();
  CtlResult r = Ctl({"backends", "--timeout", "5s"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_THAT(r.err, HasSubstr("UNAVAILABLE"));
  EXPECT_EQ(Ctl({"call", "framed", "--frame-text", "x"}).exit_code, 3);
}

// After `drain`, calls to that backend fail with UNAVAILABLE (exit code 3).
TEST_F(TlsbrokerctlTest, DrainThenCallExitsUnavailable) {
  StartBroker();
  ASSERT_EQ(Ctl({"call", "framed", "--frame-text", "x"}).exit_code, 0);
  CtlResult drain = Ctl({"drain", "framed"});
  ASSERT_EQ(drain.exit_code, 0) << drain.err;
  EXPECT_THAT(drain.out, HasSubstr("closed 1 idle socket"));
  CtlResult call = Ctl({"call", "framed", "--frame-text", "x"});
  EXPECT_EQ(call.exit_code, 3) << call.err;
  EXPECT_THAT(call.err, HasSubstr("UNAVAILABLE"));
  // The other backend still serves.
  EXPECT_EQ(Ctl({"lease", "echo", "--linger", "0"}, "client", "").exit_code, 0);
}

// `resume` undoes `drain`: the backend serves again. `drain --all` / `resume --all` act on the
// whole broker, and `backends` says when it is drained.
TEST_F(TlsbrokerctlTest, ResumeUndoesDrainOfBackendAndOfWholeBroker) {
  StartBroker();
  ASSERT_EQ(Ctl({"drain", "framed"}).exit_code, 0);
  ASSERT_EQ(Ctl({"call", "framed", "--frame-text", "x"}).exit_code, 3);
  CtlResult resume = Ctl({"resume", "framed"});
  ASSERT_EQ(resume.exit_code, 0) << resume.err;
  EXPECT_THAT(resume.out, HasSubstr("resumed: framed"));
  CtlResult call = Ctl({"call", "framed", "--frame-text", "again"});
  ASSERT_EQ(call.exit_code, 0) << call.err;
  EXPECT_EQ(call.out, Frame("re:again"));

  CtlResult drain_all = Ctl({"drain", "--all"});
  ASSERT_EQ(drain_all.exit_code, 0) << drain_all.err;
  EXPECT_THAT(drain_all.out, HasSubstr("draining the whole broker"));
  EXPECT_THAT(Ctl({"backends"}).out, HasSubstr("broker: draining"));
  EXPECT_EQ(Ctl({"call", "framed", "--frame-text", "x"}).exit_code, 3);
  CtlResult resume_all = Ctl({"resume", "--all"});
  ASSERT_EQ(resume_all.exit_code, 0) << resume_all.err;
  EXPECT_THAT(resume_all.out, HasSubstr("resumed: framed, echo"));
  EXPECT_THAT(Ctl({"backends"}).out, ::testing::Not(HasSubstr("broker: draining")));
  EXPECT_EQ(Ctl({"call", "framed", "--frame-text", "x"}).exit_code, 0);
  // Not an admin: refused (exit 4).
  EXPECT_EQ(Ctl({"resume", "--all"}, "client2").exit_code, 4);
}

// `sockets` names the caller holding a leased socket and when its lease began.
TEST_F(TlsbrokerctlTest, SocketsNamesHolderOfLeasedSocket) {
  StartBroker();
  auto stub = v1::BrokerService::NewStub(testutil::BrokerChannel(target_));
  grpc::ClientContext context;
  auto lease = stub->Lease(&context);
  v1::LeaseRequest open;
  open.mutable_open()->set_backend("framed");
  ASSERT_TRUE(lease->Write(open));
  v1::LeaseResponse info;
  ASSERT_TRUE(lease->Read(&info));
  CtlResult r = Ctl({"sockets", "framed"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("HOLDER"));
  EXPECT_THAT(r.out, HasSubstr("LEASE_STARTED"));
  EXPECT_THAT(r.out, HasSubstr(testutil::kApp1));
  CtlResult json = Ctl({"sockets", "framed", "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_THAT(json.out, HasSubstr(absl::StrCat("\"holder\":\"", testutil::kApp1, "\"")));
  EXPECT_THAT(json.out, HasSubstr("\"lease_started_at\":\""));
  lease->WritesDone();
  while (lease->Read(&info)) {
  }
  EXPECT_TRUE(lease->Finish().ok());
}

// A rejected reload (the config file became invalid) exits 7 and prints the broker's errors.
TEST_F(TlsbrokerctlTest, RejectedReloadPrintsErrors) {
  const std::string config = absl::StrCat(temp_dir_, "/broker.yaml");
  {
    std::ofstream out(config);
    out << "listen: {grpc: \"127.0.0.1:0\"}\nbackends: [\n";  // unterminated: a YAML error
  }
  StartBroker(config);
  CtlResult r = Ctl({"reload"});
  EXPECT_EQ(r.exit_code, 7);
  EXPECT_THAT(r.err, HasSubstr("reload failed: FAILED_PRECONDITION"));
  EXPECT_THAT(r.err, HasSubstr(config));  // each error names the file
  EXPECT_EQ(r.out, "");
}

// --insecure-plaintext reaches a plaintext broker on a unix socket (callers are "local").
TEST_F(TlsbrokerctlTest, InsecurePlaintextOverUnixSocket) {
  const std::string socket = absl::StrCat(temp_dir_, "/broker.sock");
  options_.listen.grpc = absl::StrCat("unix:", socket);
  options_.listen.has_tls = false;
  options_.listen.plaintext = true;
  options_.listen.admin_callers = {"local"};
  options_.backends[0].allowed_callers = {"local"};
  StartBroker();
  target_ = options_.listen.grpc;
  CtlResult call = PlainCtl({"call", "framed", "--frame-text", "plain", "--insecure-plaintext"});
  ASSERT_EQ(call.exit_code, 0) << call.err;
  EXPECT_EQ(call.out, Frame("re:plain"));
  EXPECT_EQ(PlainCtl({"backends", "--insecure-plaintext"}).exit_code, 0);
  // Without --insecure-plaintext the CLI speaks TLS, which a plaintext broker cannot answer.
  EXPECT_EQ(PlainCtl({"backends", "--timeout", "3s"}).exit_code, 3);
}

// Usage errors exit 2 before any connection is made; --help exits 0.
TEST_F(TlsbrokerctlTest, UsageErrorsExit2AndHelpExits0) {
  // No broker: a usage error must not depend on one.
  target_ = "127.0.0.1:1";
  CtlResult bad = Ctl({"call", "framed"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, HasSubstr("--frame-text"));
  EXPECT_EQ(Ctl({"call", "framed", "--file", "/nonexistent/req.bin"}).exit_code, 2);
  CtlResult help = Ctl({"--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.out, HasSubstr("Exit codes:"));
}

// --version prints the version and commit, exit 0, with no broker to talk to.
TEST_F(TlsbrokerctlTest, VersionPrintsVersionAndCommitWithoutABroker) {
  target_ = "127.0.0.1:1";
  CtlResult version = Ctl({"--version"});
  EXPECT_EQ(version.exit_code, 0) << version.err;
  EXPECT_THAT(version.out,
              testing::MatchesRegex(
                  "tlsbrokerctl [0-9]+\\.[0-9]+\\.[0-9]+ \\(commit ([0-9a-f]+|unknown)\\)\n"));
}

}  // namespace
}  // namespace tlsbroker
