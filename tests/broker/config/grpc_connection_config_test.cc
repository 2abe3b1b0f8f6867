// Tests of the listen options for gRPC connection management: keepalive_time,
// keepalive_timeout, keepalive_min_client_interval, max_connection_age and
// max_connection_age_grace (defaults, "0s" where it means off, errors naming the field, and the
// grace's default and warning derived from the backends' lease bounds).

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

// A loopback plaintext listener plus `listen_extra` (indented listen keys), and one backend
// with `pool`.
std::string Config(const std::string& listen_extra, const std::string& pool = "{}") {
  return absl::StrCat("listen:\n  plaintext: true\n", listen_extra,
                      "backends:\n"
                      "  - name: ims\n"
                      "    address: ims.example:9999\n"
                      "    tls: {ca: pki/ec/ca-chain.pem}\n"
                      "    pool: ",
                      pool,
                      "\n"
                      "    allowed_callers: [\"spiffe://example.org/*\"]\n");
}

class GrpcConnectionConfigTest : public ::testing::Test {
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

// Unset, connections are pinged after 60s quiet (20s to answer), clients may ping every 10s,
// and connections age out after 5m; the grace outlasts the longest lease the pool allows
// (acquire_timeout 5s + max_lease_duration 1h by default).
TEST_F(GrpcConnectionConfigTest, DefaultsAgeConnectionsWithinMinutesWithoutCuttingLeases) {
  const ConfigReport report = Load(Config(""));
  ASSERT_TRUE(report.ok()) << AllErrors(report);
  const ListenOptions& l = report.options.listen;
  EXPECT_EQ(l.keepalive_time, absl::Seconds(60));
  EXPECT_EQ(l.keepalive_timeout, absl::Seconds(20));
  EXPECT_EQ(l.keepalive_min_client_interval, absl::Seconds(10));
  EXPECT_EQ(l.max_connection_age, absl::Minutes(5));
  EXPECT_EQ(l.max_connection_age_grace, absl::Hours(1) + absl::Seconds(5));
  EXPECT_EQ(Warnings(report), "");
}

// The default grace follows the backend with the longest lease bound.
TEST_F(GrpcConnectionConfigTest, DefaultGraceFollowsTheLongestLeaseBound) {
  const ConfigReport report =
      Load(Config("", "{acquire_timeout: 2s, max_lease_duration: 10m, call_timeout: 30s}"));
  ASSERT_TRUE(report.ok()) << AllErrors(report);
  EXPECT_EQ(report.options.listen.max_connection_age_grace, absl::Minutes(10) + absl::Seconds(2));
}

// Configured values are taken as given; "0s" turns server pings and ageing off.
TEST_F(GrpcConnectionConfigTest, ConfiguredValuesAndZeroForOff) {
  const ConfigReport report =
      Load(Config("  keepalive_time: 0s\n  keepalive_timeout: 5s\n"
                  "  keepalive_min_client_interval: 1m\n  max_connection_age: 0s\n"
                  "  max_connection_age_grace: 2h\n"));
  ASSERT_TRUE(report.ok()) << AllErrors(report);
  const ListenOptions& l = report.options.listen;
  EXPECT_EQ(l.keepalive_time, absl::ZeroDuration());
  EXPECT_EQ(l.keepalive_timeout, absl::Seconds(5));
  EXPECT_EQ(l.keepalive_min_client_interval, absl::Minutes(1));
  EXPECT_EQ(l.max_connection_age, absl::ZeroDuration());
  EXPECT_EQ(l.max_connection_age_grace, absl::Hours(2));
}

// Bad values are errors naming the field: not a duration, zero where zero means nothing,
// and too long for gRPC's 32-bit milliseconds.
TEST_F(GrpcConnectionConfigTest, BadValuesNameTheField) {
  ConfigReport report = Load(Config("  keepalive_time: soon\n"));
  const ConfigError* e = FindError(report, "listen.keepalive_time");
  ASSERT_NE(e, nullptr) << AllErrors(report);
  EXPECT_THAT(e->message, HasSubstr("expected a duration"));

  report = Load(Config("  keepalive_timeout: 0s\n"));
  e = FindError(report, "listen.keepalive_timeout");
  ASSERT_NE(e, nullptr) << AllErrors(report);
  EXPECT_THAT(e->message, HasSubstr("positive"));

  report = Load(Config("  max_connection_age: 600h\n"));
  e = FindError(report, "listen.max_connection_age");
  ASSERT_NE(e, nullptr) << AllErrors(report);
  EXPECT_THAT(e->message, HasSubstr("below 24 days"));

  report = Load(Config("  max_connection_age_grace: -1s\n"));
  EXPECT_NE(FindError(report, "listen.max_connection_age_grace"), nullptr) << AllErrors(report);
  report = Load(Config("  keepalive_min_client_interval: 0s\n"));
  EXPECT_NE(FindError(report, "listen.keepalive_min_client_interval"), nullptr)
      << AllErrors(report);
}

// A grace shorter than a lease the pool allows is accepted, with a warning naming the field
// and the backend: ageing would cut such leases.
TEST_F(GrpcConnectionConfigTest, GraceShorterThanALeaseWarns) {
  const ConfigReport report = Load(Config("  max_connection_age_grace: 30s\n"));
  ASSERT_TRUE(report.ok()) << AllErrors(report);
  EXPECT_EQ(report.options.listen.max_connection_age_grace, absl::Seconds(30));
  EXPECT_THAT(Warnings(report), HasSubstr("listen.max_connection_age_grace"));
  EXPECT_THAT(Warnings(report), HasSubstr("backend \"ims\""));
  // With ageing off the grace never applies: no warning.
  const ConfigReport off =
      Load(Config("  max_connection_age: 0s\n  max_connection_age_grace: 30s\n"));
  ASSERT_TRUE(off.ok()) << AllErrors(off);
  EXPECT_EQ(Warnings(off), "");
}

}  // namespace
}  // namespace tlsbroker
