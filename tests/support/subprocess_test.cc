// Child-process helpers, the s_server wrapper and the tlsb-test-backend executable.

#include "tests/support/refusing_port.h"
#include "tests/support/subprocess.h"

#include <signal.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/support/openssl_server.h"
#include "tests/support/test_pki.h"

namespace tlsbroker::testutil {
namespace {

// s_client with the PKI's client certificate against 127.0.0.1:port; `input` on stdin.
// -quiet keeps reading after stdin ends; input ending in CLOSE makes s_server hang up.
absl::StatusOr<CommandResult> SClient(int port, absl::string_view alg, absl::string_view input,
                                      std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {"openssl",
                                   "s_client",
                                   "-connect",
                                   absl::StrCat("127.0.0.1:", port),
                                   "-servername",
                                   "localhost",
                                   "-verify_hostname",
                                   "localhost",
                                   "-CAfile",
                                   PkiPath(alg, "root.crt"),
                                   "-verify_return_error",
                                   "-quiet"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return RunCommand(argv, input, absl::Seconds(20));
}

std::vector<std::string> ClientCert(absl::string_view alg) {
  return {"-cert",       PkiPath(alg, "client.crt"), "-key", PkiPath(alg, "client.key"),
          "-cert_chain", PkiPath(alg, "int.crt")};
}

// RunCommand feeds stdin, captures stdout and stderr, and reports the exit code.
TEST(SubprocessTest, RunCommandCapturesOutputAndExitCode) {
  absl::StatusOr<CommandResult> r =
      RunCommand({"sh", "-c", "cat; echo err >&2; exit 3"}, "from stdin\n");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->output, "from stdin\nerr\n");
}

// RunCommand kills a command that outlives its timeout.
TEST(SubprocessTest, RunCommandKillsCommandAfterTimeout) {
  absl::StatusOr<CommandResult> r = RunCommand({"sleep", "30"}, "", absl::Milliseconds(200));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded);
}

// A Subprocess logs to its file and is killed and reaped by its destructor.
TEST(SubprocessTest, DestructorKillsAndReapsChild) {
  pid_t pid = 0;
  {
    absl::StatusOr<std::unique_ptr<Subprocess>> p =
        Subprocess::Start({"sh", "-c", "echo started; exec sleep 30"});
    ASSERT_TRUE(p.ok()) << p.status();
    pid = (*p)->pid();
    EXPECT_TRUE((*p)->WaitForLog("started", absl::Seconds(10)).ok());
    EXPECT_TRUE((*p)->Running());
  }
  // Reaped: the pid no longer names our child.
  EXPECT_NE(kill(pid, 0), 0);
}

// Wait() reports the exit code; WaitForLog fails fast when the child exits without the line.
TEST(SubprocessTest, WaitReportsExitCodeAndWaitForLogNoticesExit) {
  absl::StatusOr<std::unique_ptr<Subprocess>> p = Subprocess::Start({"sh", "-c", "exit 7"});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)->WaitForLog("never", absl::Seconds(10)).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*p)->Wait(absl::Seconds(10)).value_or(-1), 7);
}

// RefusingPort holds a loopback port nobody listens on; WaitForPort times out on it.
TEST(SubprocessTest, WaitForPortTimesOutOnARefusingPort) {
  RefusingPort closed;
  ASSERT_GT(closed.port(), 0);
  EXPECT_EQ(WaitForPort(closed.port(), absl::Milliseconds(50)).code(),
            absl::StatusCode::kDeadlineExceeded);
}

// s_server starts on a port it picks, and an mTLS s_client line comes back reversed.
TEST(OpensslServerTest, StartsAndAnswersSClientRoundTrip) {
  absl::StatusOr<std::unique_ptr<OpensslServer>> server =
      OpensslServer::Start(OpensslServer::PkiOptions("ec"));
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_GT((*server)->port(), 0);
  absl::StatusOr<CommandResult> r =
      SClient((*server)->port(), "ec", "hello\nCLOSE\n", ClientCert("ec"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(absl::StrContains(r->output, "olleh")) << r->output;
}

// A plain TCP probe costs s_server its current connection but not the next one: the server
// logs an error and keeps accepting. (Why readiness comes from its ACCEPT line instead.)
TEST(OpensslServerTest, SurvivesPlainTcpProbe) {
  absl::StatusOr<std::unique_ptr<OpensslServer>> server =
      OpensslServer::Start(OpensslServer::PkiOptions("ec"));
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE(WaitForPort((*server)->port(), absl::Seconds(5)).ok());
  absl::StatusOr<CommandResult> r =
      SClient((*server)->port(), "ec", "probe\nCLOSE\n", ClientCert("ec"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(absl::StrContains(r->output, "eborp")) << r->output << (*server)->Log();
}

// With client certificates required, s_server refuses a client that has none.
TEST(OpensslServerTest, RefusesClientWithoutCertificate) {
  absl::StatusOr<std::unique_ptr<OpensslServer>> server =
      OpensslServer::Start(OpensslServer::PkiOptions("ec"));
  ASSERT_TRUE(server.ok()) << server.status();
  absl::StatusOr<CommandResult> r = SClient((*server)->port(), "ec", "hello\nCLOSE\n");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(absl::StrContains(r->output, "olleh")) << r->output;
  EXPECT_TRUE(absl::StrContains(r->output, "certificate required")) << r->output;
}

// The NULL-SHA256 recipe (TLS 1.2, RSA certificate, SECLEVEL=0 on both ends) works.
TEST(OpensslServerTest, NegotiatesNullSha256WithExtraArgs) {
  OpensslServer::Options options = OpensslServer::PkiOptions("rsa");
  options.extra_args = {"-tls1_2", "-cipher", "NULL-SHA256:@SECLEVEL=0"};
  absl::StatusOr<std::unique_ptr<OpensslServer>> server = OpensslServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  std::vector<std::string> extra = ClientCert("rsa");
  extra.insert(extra.end(), {"-tls1_2", "-cipher", "NULL-SHA256:@SECLEVEL=0", "-brief"});
  absl::StatusOr<CommandResult> r = SClient((*server)->port(), "rsa", "null\nCLOSE\n", extra);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(absl::StrContains(r->output, "NULL-SHA256")) << r->output;
  EXPECT_TRUE(absl::StrContains(r->output, "llun")) << r->output;
}

// tlsb-test-backend announces its port, serves mTLS, and writes its counters on SIGUSR1.
TEST(TlsTestBackendTest, AnnouncesPortServesAndWritesStats) {
  std::string dir = MakeTempDir();
  ASSERT_FALSE(dir.empty());
  std::string stats = dir + "/stats.txt";
  absl::StatusOr<std::unique_ptr<Subprocess>> backend = Subprocess::Start(
      {TLSB_TEST_BACKEND_PATH, "--pki", PkiPath("ec", ""), "--mode", "line", "--stats-file", stats},
      dir + "/backend.log");
  ASSERT_TRUE(backend.ok()) << backend.status();
  ASSERT_TRUE((*backend)->WaitForLog("LISTENING ", absl::Seconds(10)).ok());
  ASSERT_TRUE((*backend)->WaitForLog("\n", absl::Seconds(10)).ok());
  std::string log = (*backend)->ReadLog();
  size_t at = log.find("LISTENING ") + 10;
  int port = 0;
  ASSERT_TRUE(absl::SimpleAtoi(log.substr(at, log.find('\n', at) - at), &port)) << log;

  absl::StatusOr<CommandResult> r = SClient(port, "ec", "backend\nCLOSE\n", ClientCert("ec"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(absl::StrContains(r->output, "dnekcab")) << r->output;

  ASSERT_TRUE((*backend)->Signal(SIGUSR1).ok());
  EXPECT_TRUE(
      PollUntil([&] { return absl::StrContains(ReadFileOrEmpty(stats), "full_handshakes 1\n"); },
                absl::Seconds(10)))
      << ReadFileOrEmpty(stats);
  EXPECT_EQ((*backend)->Stop(), 0);
  EXPECT_TRUE(absl::StrContains(ReadFileOrEmpty(stats), "requests 2\n"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tlsbroker::testutil
