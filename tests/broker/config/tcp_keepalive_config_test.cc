// Tests of backends[].tcp_keepalive in the config loader: on by default with the documented
// values, configured values and `enabled: false` taken as given, and values the kernel cannot
// take are errors naming the field.

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

// One backend with `keepalive` (a flow mapping, or empty for none).
std::string Config(const std::string& keepalive) {
  return absl::StrCat("listen: {plaintext: true}\n"
                      "backends:\n"
                      "  - name: ims\n"
                      "    address: ims.example:9999\n"
                      "    tls: {ca: pki/ec/ca-chain.pem}\n"
                      "    allowed_callers: [\"spiffe://example.org/*\"]\n",
                      keepalive.empty() ? "" : absl::StrCat("    tcp_keepalive: ", keepalive, "\n"));
}

class TcpKeepaliveConfigTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::MakeDirWithPki(); }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  ConfigReport Load(const std::string& yaml) { return LoadConfig(yaml, dir_, 0); }
  std::string dir_;
};

TEST_F(TcpKeepaliveConfigTest, OnByDefaultWithDocumentedValues) {
  const ConfigReport report = Load(Config(""));
  ASSERT_TRUE(report.ok()) << AllErrors(report);
  const TcpKeepaliveOptions& k = report.options.backends[0].tls.tcp_keepalive;
  EXPECT_TRUE(k.enabled);
  EXPECT_EQ(k.idle, absl::Seconds(60));
  EXPECT_EQ(k.interval, absl::Seconds(10));
  EXPECT_EQ(k.count, 6);
}

TEST_F(TcpKeepaliveConfigTest, ConfiguredValuesAndOffAreTakenAsGiven) {
  ConfigReport report = Load(Config("{idle: 5m, interval: 30s, count: 3}"));
  ASSERT_TRUE(report.ok()) << AllErrors(report);
  const TcpKeepaliveOptions& k = report.options.backends[0].tls.tcp_keepalive;
  EXPECT_TRUE(k.enabled);
  EXPECT_EQ(k.idle, absl::Minutes(5));
  EXPECT_EQ(k.interval, absl::Seconds(30));
  EXPECT_EQ(k.count, 3);
  report = Load(Config("{enabled: false}"));
  ASSERT_TRUE(report.ok()) << AllErrors(report);
  EXPECT_FALSE(report.options.backends[0].tls.tcp_keepalive.enabled);
}

TEST_F(TcpKeepaliveConfigTest, ValuesTheKernelCannotTakeNameTheField) {
  ConfigReport report = Load(Config("{idle: 1500ms}"));
  const ConfigError* e = FindError(report, "backends[0].tcp_keepalive.idle");
  ASSERT_NE(e, nullptr) << AllErrors(report);
  EXPECT_THAT(e->message, HasSubstr("whole seconds"));
  report = Load(Config("{interval: 10h}"));
  e = FindError(report, "backends[0].tcp_keepalive.interval");
  ASSERT_NE(e, nullptr) << AllErrors(report);
  EXPECT_THAT(e->message, HasSubstr("32767s"));
  report = Load(Config("{count: 0}"));
  e = FindError(report, "backends[0].tcp_keepalive.count");
  ASSERT_NE(e, nullptr) << AllErrors(report);
  EXPECT_THAT(e->message, HasSubstr("1 to 127"));
  report = Load(Config("{idle: 0s}"));
  EXPECT_NE(FindError(report, "backends[0].tcp_keepalive.idle"), nullptr) << AllErrors(report);
}

}  // namespace
}  // namespace tlsbroker
