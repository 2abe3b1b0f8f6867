// Tests of the config loader's broker-wide checks: the `limits` section (socket budget bounded
// by the process's file limit, per-caller lease limit), plaintext gRPC off loopback, and config
// and key files that group or others may read (reported, not refused).

#include <sys/resource.h>
#include <sys/stat.h>

#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "broker/config/load_options.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/broker/config/config_test_util.h"

namespace tlsbroker {
namespace {

using testing::AllErrors;
using testing::FindError;
using ::testing::HasSubstr;

constexpr char kBackend[] =
    "backends:\n"
    "  - name: ims\n"
    "    address: ims.example:9999\n"
    "    tls: {ca: pki/ec/ca-chain.pem}\n"
    "    allowed_callers: [\"spiffe://example.org/*\"]\n"
    "listen: {plaintext: true}\n";

class LimitsConfigTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::MakeDirWithPki(); }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  ConfigReport Load(const std::string& yaml) { return LoadConfig(yaml, dir_, 0); }
  static std::string Warnings(const ConfigReport& report) {
    std::string out;
    for (const ConfigError& w : report.warnings) absl::StrAppend(&out, w.ToString(), "\n");
    return out;
  }
  std::string dir_;
};

// Without a limits section the socket budget follows the file limit and leases are unlimited
// per caller.
TEST_F(LimitsConfigTest, DefaultSocketBudgetFollowsTheFileLimit) {
  const ConfigReport report = Load(kBackend);
  ASSERT_TRUE(report.ok()) << AllErrors(report);
  struct rlimit limit;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  const int64_t expected =
      std::max<int64_t>(static_cast<int64_t>(std::min<rlim_t>(limit.rlim_cur, 1 << 30)) -
                            kFdReserve,
                        kMinDefaultSocketBudget);
  EXPECT_EQ(report.options.limits.max_backend_sockets, expected);
  EXPECT_EQ(report.options.limits.max_leases_per_caller, 0);
}

// Configured limits are taken as given.
TEST_F(LimitsConfigTest, ConfiguredLimitsAreUsed) {
  const ConfigReport report =
      Load(absl::StrCat(kBackend,
                        "limits: {max_backend_sockets: 100, max_leases_per_caller: 3}\n"));
  ASSERT_TRUE(report.ok()) << AllErrors(report);
  EXPECT_EQ(report.options.limits.max_backend_sockets, 100);
  EXPECT_EQ(report.options.limits.max_leases_per_caller, 3);
}

// A budget the file limit cannot honour is an error naming the field and the limit.
TEST_F(LimitsConfigTest, SocketBudgetAboveTheFileLimitIsRejected) {
  const int room = MaxSocketBudgetForFdLimit();
  const ConfigReport report = Load(absl::StrCat(kBackend, "limits:\n  max_backend_sockets: ",
                                                room + 1, "\n"));
  const ConfigError* e = FindError(report, "limits.max_backend_sockets");
  ASSERT_NE(e, nullptr) << AllErrors(report);
  EXPECT_EQ(e->line, 8);
  EXPECT_THAT(e->message, HasSubstr("RLIMIT_NOFILE"));
  EXPECT_THAT(e->message, HasSubstr(absl::StrCat("leaves ", room)));
  // The largest allowed value is accepted.
  EXPECT_TRUE(Load(absl::StrCat(kBackend, "limits: {max_backend_sockets: ", room, "}\n")).ok());
}

// Zero or negative limits are errors with the field's path.
TEST_F(LimitsConfigTest, NonPositiveLimitsAreRejected) {
  const ConfigReport report =
      Load(absl::StrCat(kBackend, "limits: {max_backend_sockets: 0, max_leases_per_caller: -1}\n"));
  const ConfigError* budget = FindError(report, "limits.max_backend_sockets");
  ASSERT_NE(budget, nullptr) << AllErrors(report);
  EXPECT_THAT(budget->message, HasSubstr("must be 1 or more"));
  const ConfigError* per_caller = FindError(report, "limits.max_leases_per_caller");
  ASSERT_NE(per_caller, nullptr) << AllErrors(report);
  EXPECT_THAT(per_caller->message, HasSubstr("must be 0 (unlimited) or more"));
}

// Pools that together may want more sockets than the budget get a warning, not an error.
TEST_F(LimitsConfigTest, PoolsAboveTheBudgetAreAWarning) {
  const ConfigReport report = Load(absl::StrCat(
      kBackend, "limits: {max_backend_sockets: 8}\n"));  // max_sockets defaults to 16.
  ASSERT_TRUE(report.ok()) << AllErrors(report);
  EXPECT_THAT(Warnings(report), HasSubstr("add up to 16, more than the socket budget"));
}

// min_idle that the budget could never hold is an error: /readyz would never turn ready.
TEST_F(LimitsConfigTest, MinIdleAboveTheBudgetIsAnError) {
  const ConfigReport report = Load(
      "backends:\n  - name: a\n    address: a.example:1\n    tls: {ca: pki/ec/ca-chain.pem}\n"
      "    pool: {min_idle: 3}\n"
      "  - name: b\n    address: b.example:1\n    tls: {ca: pki/ec/ca-chain.pem}\n"
      "    pool: {min_idle: 2}\n    client_id: {prefix: B}\n"
      "listen: {plaintext: true}\nlimits: {max_backend_sockets: 4}\n");
  const ConfigError* e = FindError(report, "limits.max_backend_sockets");
  ASSERT_NE(e, nullptr) << AllErrors(report);
  EXPECT_THAT(e->message, HasSubstr("min_idle add up to 5"));
}

// plaintext: true on a non-loopback address is refused, naming listen.plaintext.
TEST_F(LimitsConfigTest, PlaintextOffLoopbackIsRefused) {
  const ConfigReport report = Load(
      "backends:\n  - name: ims\n    address: ims.example:9999\n"
      "    tls: {ca: pki/ec/ca-chain.pem}\n"
      "listen: {grpc: \"0.0.0.0:0\", plaintext: true}\n");
  const ConfigError* e = FindError(report, "listen.plaintext");
  ASSERT_NE(e, nullptr) << AllErrors(report);
  EXPECT_THAT(e->message, HasSubstr("loopback"));
  EXPECT_THAT(e->message, HasSubstr("0.0.0.0:0"));
}

// A private key readable by others is reported with its path and mode (and counted), but the
// config stays valid; at 0440 (group read, as the chart mounts it) nothing is said.
TEST_F(LimitsConfigTest, KeyReadableByOthersIsReportedNotRefused) {
  const std::string key = dir_ + "/client.key";
  std::filesystem::copy_file(testing::ConfigTestPkiDir() + "/ec/client.key", key);
  const std::string yaml =
      "backends:\n  - name: ims\n    address: ims.example:9999\n"
      "    tls: {ca: pki/ec/ca-chain.pem, cert: pki/ec/client.crt, key: client.key}\n"
      "    allowed_callers: [x]\n"
      "listen: {plaintext: true}\n";
  ASSERT_EQ(chmod(key.c_str(), 0644), 0);
  ConfigReport report = Load(yaml);
  ASSERT_TRUE(report.ok()) << AllErrors(report);
  EXPECT_THAT(Warnings(report), HasSubstr(absl::StrCat("backends[0].tls.key: private key \"", key,
                                                       "\" has mode 0644")));
  EXPECT_THAT(Warnings(report), HasSubstr("others may read it"));
  EXPECT_EQ(report.options.insecure_files, std::vector<std::string>{key});

  ASSERT_EQ(chmod(key.c_str(), 0440), 0);  // Group read (fsGroup in Kubernetes) is fine.
  report = Load(yaml);
  ASSERT_TRUE(report.ok()) << AllErrors(report);
  EXPECT_THAT(Warnings(report), ::testing::Not(HasSubstr("has mode")));
  EXPECT_TRUE(report.options.insecure_files.empty());
}

// A config file others may write is reported by LoadConfigFile.
TEST_F(LimitsConfigTest, ConfigFileWritableByOthersIsReported) {
  const std::string path = dir_ + "/config.yaml";
  testing::WriteFile(path, kBackend);
  ASSERT_EQ(chmod(path.c_str(), 0666), 0);
  ConfigReport report = LoadConfigFile(path, 0);
  ASSERT_TRUE(report.ok()) << AllErrors(report);
  EXPECT_THAT(Warnings(report), HasSubstr(absl::StrCat("config file \"", path,
                                                       "\" has mode 0666: group or others may "
                                                       "write it")));
  ASSERT_EQ(chmod(path.c_str(), 0600), 0);
  report = LoadConfigFile(path, 0);
  EXPECT_TRUE(report.options.insecure_files.empty());
}

}  // namespace
}  // namespace tlsbroker
