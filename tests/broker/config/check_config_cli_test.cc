// Runs the real `tlsbroker --check-config` binary: every error of a broken config is printed as
// FILE:LINE:COL: field.path: message with exit code 1; good configs (including each example
// in deploy/examples, placed next to the test PKI) print a summary and exit 0.

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/broker/config/config_test_util.h"

namespace tlsbroker {
namespace {

using ::testing::HasSubstr;

struct RunResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// Runs the tlsbroker binary with `args` (each single-quoted for the shell).
RunResult RunBroker(const std::vector<std::string>& args) {
  std::string command = absl::StrCat("'", TLSBROKER_BINARY, "'");
  for (const std::string& a : args) absl::StrAppend(&command, " '", a, "'");
  absl::StrAppend(&command, " 2>&1");
  RunResult result;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.output.append(buffer, n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

class CheckConfigCliTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::MakeDirWithPki(); }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string dir_;
};

// A config with mistakes in many places: each is printed on its own line, and the exit code is 1.
TEST_F(CheckConfigCliTest, BrokenConfigPrintsEveryErrorAndExits1) {
  const std::string path = dir_ + "/broken.yaml";
  testing::WriteFile(path, R"(listen:
  grpc: 0.0.0.0:7443
backends:
  - name: ims
    address: ims:99999
    tls:
      ca: pki/ec/ca-chain.pem
      cert: pki/ec/client.crt
      key: pki/ec/client2.key
      encryption: ENULL
    pool: {min_idle: 5, max_sockets: 2, acquire_timeout: 0s, max_sockets_: 1}
    client_id: {prefix: HWS1}
  - name: ims
    address: ims:1
    tls: {ca: pki/ec/missing.pem}
    framing: {length_field: {size: 3}}
)");
  const RunResult run = RunBroker({"--check-config", path});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  const std::vector<std::string> expected = {
      path + ":2:3: listen.tls: required",
      path + ":5:14: backends[0].address: port \"99999\"",
      path + ":9:12: backends[0].tls.key: the key does not match",
      path + ":10:19: backends[0].tls.encryption: ENULL",
      path + ":11:22: backends[0].pool.min_idle: min_idle (5) must not exceed max_sockets (2)",
      path + ":11:58: backends[0].pool.acquire_timeout: must be a positive duration",
      path + ":11:62: backends[0].pool.max_sockets_: unknown field",
      path + ":12:25: backends[0].client_id.prefix: IMS Connect reserves",
      path + ":13:11: backends[1].name: duplicate backend name \"ims\"",
      path + ":15:15: backends[1].tls.ca: file",
      path + ":16:36: backends[1].framing.length_field.size: must be 1, 2, 4 or 8",
  };
  const std::vector<std::string> lines = absl::StrSplit(run.output, '\n');
  for (const std::string& want : expected) {
    bool found = false;
    for (const std::string& line : lines) found = found || line.rfind(want, 0) == 0;
    EXPECT_TRUE(found) << "missing line starting with: " << want << "\noutput:\n" << run.output;
  }
  EXPECT_THAT(run.output, HasSubstr(absl::StrCat(path, ": ", expected.size(), " errors")));
}

// A good config prints the backends, pool sizes and client ID ranges, and exits 0.
TEST_F(CheckConfigCliTest, GoodConfigPrintsSummaryAndExits0) {
  const std::string path = dir_ + "/good.yaml";
  testing::WriteFile(path, R"(backends:
  - name: ims-prod
    address: localhost:9999
    tls: {ca: pki/ec/ca-chain.pem, cert: pki/ec/client.fullchain.pem, key: pki/ec/client.key}
    pool: {min_idle: 2, max_sockets: 32}
    client_id: {prefix: "T{ordinal}A", width: 8}
    allowed_callers: ["spiffe://example.org/*"]
listen: {plaintext: true}
)");
  const RunResult run = RunBroker({"--config", path, "--check-config", "--ordinal", "4"});
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr("OK (replica ordinal 4)"));
  EXPECT_THAT(run.output, HasSubstr("ims-prod: localhost:9999"));
  EXPECT_THAT(run.output, HasSubstr("min_idle 2, max_sockets 32"));
  EXPECT_THAT(run.output, HasSubstr("client IDs: T4A00001 .. T4A00032"));
  EXPECT_THAT(run.output, HasSubstr("call_timeout 30s"));
  // What a caller pattern means is printed next to the patterns.
  EXPECT_THAT(run.output, HasSubstr("caller patterns (admin_callers, allowed_callers): "
                                    "case-sensitive; exact, or a prefix ending in `*`"));
  EXPECT_THAT(run.output, HasSubstr("allowed callers: spiffe://example.org/*"));
  EXPECT_THAT(run.output, HasSubstr("admin callers: none"));
}

// Every example config in deploy/examples passes --check-config next to the test PKI.
TEST_F(CheckConfigCliTest, ExampleConfigsPassCheckConfig) {
  int examples = 0;
  for (const auto& entry : std::filesystem::directory_iterator(TLSB_EXAMPLES_DIR)) {
    if (entry.path().extension() != ".yaml") continue;
    ++examples;
    const std::string copy = dir_ + "/" + entry.path().filename().string();
    std::filesystem::copy_file(entry.path(), copy);
    const RunResult run = RunBroker({"--check-config", copy});
    EXPECT_EQ(run.exit_code, 0) << entry.path() << ":\n" << run.output;
    EXPECT_THAT(run.output, HasSubstr(": OK")) << entry.path();
    if (entry.path().filename() == "full.yaml") {
      // `addresses`: every address, in the order they are tried.
      EXPECT_THAT(run.output, HasSubstr("ims-keystore: localhost:9998 (then localhost:9997)"));
    }
  }
  EXPECT_GE(examples, 3);
}

// An unreadable config file, a bad flag, --version and --help.
TEST_F(CheckConfigCliTest, FlagsAndUnreadableFile) {
  RunResult run = RunBroker({"--check-config", dir_ + "/missing.yaml"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.output, HasSubstr("missing.yaml: cannot read the config file"));
  run = RunBroker({"--bogus"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.output, HasSubstr("unknown argument \"--bogus\""));
  run = RunBroker({"--check-config"});
  EXPECT_EQ(run.exit_code, 2);
  run = RunBroker({"--version"});
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_THAT(run.output, HasSubstr("tlsbroker "));
  run = RunBroker({"--help"});
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_THAT(run.output, HasSubstr("--check-config FILE"));
}

}  // namespace
}  // namespace tlsbroker
