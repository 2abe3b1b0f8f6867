#include "broker/metrics/prometheus_observer.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "broker/metrics/metric_names.h"
#include "gtest/gtest.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"

namespace tlsbroker {
namespace {

namespace m = ::tlsbroker::metrics;
using Labels = std::map<std::string, std::string>;

// One sample line of the text exposition format.
struct Sample {
  std::string name;
  Labels labels;
  double value = 0;
};

// Parses the sample lines of `text` (enough of the format for what prometheus-cpp writes:
// label values without escaped quotes or commas).
std::vector<Sample> ParseSamples(absl::string_view text) {
  std::vector<Sample> samples;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    if (absl::StartsWith(line, "#")) continue;
    Sample sample;
    const size_t space = line.rfind(' ');
    EXPECT_NE(space, absl::string_view::npos) << line;
    EXPECT_TRUE(absl::SimpleAtod(line.substr(space + 1), &sample.value)) << line;
    absl::string_view series = line.substr(0, space);
    const size_t brace = series.find('{');
    sample.name = std::string(series.substr(0, brace));
    if (brace != absl::string_view::npos) {
      absl::string_view labels = series.substr(brace + 1);
      EXPECT_TRUE(absl::ConsumeSuffix(&labels, "}")) << line;
      for (absl::string_view pair : absl::StrSplit(labels, ',', absl::SkipEmpty())) {
        std::pair<std::string, std::string> kv = absl::StrSplit(pair, absl::MaxSplits('=', 1));
        absl::string_view value = kv.second;
        absl::ConsumePrefix(&value, "\"");
        absl::ConsumeSuffix(&value, "\"");
        sample.labels[kv.first] = std::string(value);
      }
    }
    samples.push_back(std::move(sample));
  }
  return samples;
}

class PrometheusObserverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_ = std::make_shared<prometheus::Registry>();
    absl::StatusOr<std::unique_ptr<PrometheusMetricsObserver>> observer =
        PrometheusMetricsObserver::Create(registry_);
    ASSERT_TRUE(observer.ok()) << observer.status();
    observer_ = std::move(observer).value();
    backend_ = observer_->ForBackend("ims-prod");
    ASSERT_NE(backend_, nullptr);
    // As SocketPool::Create does before any socket: the addresses get their series.
    backend_->OnAddresses({"ims-a:9999", "ims-b:9999"});
  }

  // The value of the series `name{backend="ims-prod", labels...}`, or nullopt when absent.
  std::optional<double> Value(absl::string_view name, Labels labels = {}) const {
    labels["backend"] = "ims-prod";
    for (const Sample& sample : ParseSamples(SerializeMetrics(*registry_))) {
      if (sample.name == name && sample.labels == labels) return sample.value;
    }
    return std::nullopt;
  }

  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<PrometheusMetricsObserver> observer_;
  std::shared_ptr<BackendObserver> backend_;
};

// The metric name list is sorted, unique and follows the naming rules, so it stays the one
// place to look names up.
TEST(MetricNamesTest, NamesAreSortedUniqueAndPrefixed) {
  absl::string_view previous;
  for (absl::string_view name : m::kAllMetricNames) {
    EXPECT_LT(previous, name) << name;
    EXPECT_TRUE(absl::StartsWith(name, "tlsbroker_")) << name;
    previous = name;
  }
  EXPECT_EQ(std::size(m::kAllMetricNames), 32u);
}

// Connect attempts count per address and result; an address the pool never named is ignored
// (no unbounded label values).
TEST_F(PrometheusObserverTest, ConnectAttemptsCountPerAddress) {
  EXPECT_EQ(Value(m::kBackendConnectAttemptsTotal, {{"address", "ims-b:9999"}, {"result", "ok"}}),
            0.0);
  backend_->OnConnectAttempt("ims-a:9999", false);
  backend_->OnConnectAttempt("ims-b:9999", true);
  backend_->OnConnectAttempt("ims-b:9999", true);
  backend_->OnConnectAttempt("unknown:1", true);
  EXPECT_EQ(Value(m::kBackendConnectAttemptsTotal,
                  {{"address", "ims-a:9999"}, {"result", "failed"}}),
            1.0);
  EXPECT_EQ(Value(m::kBackendConnectAttemptsTotal, {{"address", "ims-b:9999"}, {"result", "ok"}}),
            2.0);
  EXPECT_EQ(Value(m::kBackendConnectAttemptsTotal, {{"address", "unknown:1"}, {"result", "ok"}}),
            std::nullopt);
}

// Unknown label values map to "other"; known ones to their own position.
TEST(MetricNamesTest, LabelIndexMapsUnknownValuesToOther) {
  EXPECT_EQ(m::LabelIndex(m::kCloseReasons, "dirty"), 8u);
  EXPECT_EQ(m::kCloseReasons[m::LabelIndex(m::kCloseReasons, "no-such-reason")], m::kOther);
  EXPECT_EQ(m::kGrpcCodes[m::LabelIndex(m::kGrpcCodes, "unavailable")], m::kOther);
}

// Every family and every labelled series of a backend is on the page before anything fired,
// so dashboards and alerts see zeros rather than missing series.
TEST_F(PrometheusObserverTest, SeriesExistBeforeAnyCallback) {
  const std::string text = SerializeMetrics(*registry_);
  for (absl::string_view name : m::kAllMetricNames) {
    // Its one series names the build, which the server supplies (SetBuildInfo).
    if (name == m::kBuildInfo) continue;
    EXPECT_TRUE(absl::StrContains(text, absl::StrCat("# TYPE ", name, " "))) << name;
  }
  for (absl::string_view result : m::kHandshakeResults) {
    for (absl::string_view resumed : m::kResumedValues) {
      EXPECT_EQ(Value(m::kTlsHandshakesTotal,
                      {{"result", std::string(result)}, {"resumed", std::string(resumed)}}),
                0.0)
          << result << " " << resumed;
    }
  }
  for (absl::string_view reason : m::kCloseReasons) {
    EXPECT_EQ(Value(m::kSocketsClosedTotal, {{"reason", std::string(reason)}}), 0.0) << reason;
  }
  for (absl::string_view code : m::kGrpcCodes) {
    EXPECT_EQ(Value(m::kCallsTotal, {{"code", std::string(code)}}), 0.0) << code;
  }
  for (absl::string_view state : m::kSocketStates) {
    EXPECT_EQ(Value(m::kPoolSockets, {{"state", std::string(state)}}), 0.0) << state;
  }
  EXPECT_EQ(Value("tlsbroker_lease_wait_seconds_count"), 0.0);
  EXPECT_EQ(Value(m::kPeerCertNotAfterTimestampSeconds), 0.0);
}

// Handshakes count by result and resumption; only successful ones enter the latency histogram.
TEST_F(PrometheusObserverTest, OnHandshakeCountsByResultAndResumed) {
  backend_->OnHandshake("ok", false, absl::Milliseconds(20));
  backend_->OnHandshake("ok", true, absl::Milliseconds(2));
  backend_->OnHandshake("ok", true, absl::Milliseconds(3));
  backend_->OnHandshake("certificate_revoked", false, absl::Milliseconds(5));
  EXPECT_EQ(Value(m::kTlsHandshakesTotal, {{"result", "ok"}, {"resumed", "false"}}), 1.0);
  EXPECT_EQ(Value(m::kTlsHandshakesTotal, {{"result", "ok"}, {"resumed", "true"}}), 2.0);
  EXPECT_EQ(Value(m::kTlsHandshakesTotal,
                  {{"result", "certificate_revoked"}, {"resumed", "false"}}),
            1.0);
  EXPECT_EQ(Value("tlsbroker_tls_handshake_duration_seconds_count"), 3.0);
  EXPECT_NEAR(*Value("tlsbroker_tls_handshake_duration_seconds_sum"), 0.025, 1e-9);
  EXPECT_EQ(Value("tlsbroker_tls_handshake_duration_seconds_bucket", {{"le", "0.005"}}), 2.0);
}

// Lease callbacks move leases, reuses, waits, durations and end results.
TEST_F(PrometheusObserverTest, LeaseCallbacksMoveLeaseSeries) {
  backend_->OnLeaseGranted(absl::Microseconds(50), /*reused=*/false);
  backend_->OnLeaseGranted(absl::Milliseconds(3), /*reused=*/true);
  backend_->OnLeaseRefused(absl::StatusCode::kDeadlineExceeded);
  backend_->OnLeaseRefused(absl::StatusCode::kResourceExhausted);
  backend_->OnLeaseEnded("clean", absl::Seconds(2));
  backend_->OnLeaseEnded("reclaimed", absl::Hours(1));
  EXPECT_EQ(Value(m::kLeasesTotal, {{"code", "OK"}}), 2.0);
  EXPECT_EQ(Value(m::kLeasesTotal, {{"code", "DEADLINE_EXCEEDED"}}), 1.0);
  EXPECT_EQ(Value(m::kLeasesTotal, {{"code", "RESOURCE_EXHAUSTED"}}), 1.0);
  EXPECT_EQ(Value(m::kSocketReusesTotal), 1.0);
  EXPECT_EQ(Value("tlsbroker_lease_wait_seconds_count"), 2.0);
  EXPECT_EQ(Value("tlsbroker_lease_wait_seconds_bucket", {{"le", "0.0001"}}), 1.0);
  EXPECT_EQ(Value(m::kLeasesEndedTotal, {{"result", "clean"}}), 1.0);
  EXPECT_EQ(Value(m::kLeasesEndedTotal, {{"result", "reclaimed"}}), 1.0);
  EXPECT_EQ(Value("tlsbroker_lease_duration_seconds_count"), 2.0);
  EXPECT_NEAR(*Value("tlsbroker_lease_duration_seconds_sum"), 3602.0, 1e-6);
}

// Gauges take the latest reported value.
TEST_F(PrometheusObserverTest, GaugeCallbacksSetLatestValue) {
  backend_->OnSocketStates(1, 2, 3, 4);
  backend_->OnSocketStates(0, 5, 3, 1);
  backend_->OnWaiters(7);
  backend_->OnEnullSockets(2);
  backend_->OnPeerCertNotAfter(absl::FromUnixSeconds(1893456000));
  backend_->OnClientCertNotAfter(absl::FromUnixSeconds(1800000000));
  EXPECT_EQ(Value(m::kPoolSockets, {{"state", "connecting"}}), 0.0);
  EXPECT_EQ(Value(m::kPoolSockets, {{"state", "idle"}}), 5.0);
  EXPECT_EQ(Value(m::kPoolSockets, {{"state", "leased"}}), 3.0);
  EXPECT_EQ(Value(m::kPoolSockets, {{"state", "retiring"}}), 1.0);
  EXPECT_EQ(Value(m::kPoolWaiters), 7.0);
  EXPECT_EQ(Value(m::kEnullSockets), 2.0);
  EXPECT_EQ(Value(m::kPeerCertNotAfterTimestampSeconds), 1893456000.0);
  EXPECT_EQ(Value(m::kClientCertNotAfterTimestampSeconds), 1800000000.0);
}

// CRL state and rejected TLS file reloads: the gauges take the latest report, the counters
// count per backend (credential failures by file).
TEST_F(PrometheusObserverTest, CrlAndCredentialReloadCallbacksMoveTheirSeries) {
  EXPECT_EQ(Value(m::kCrlStale), 0.0);
  EXPECT_EQ(Value(m::kCredentialReloadFailuresTotal, {{"file", "key"}}), 0.0);
  backend_->OnCrlNextUpdate(absl::FromUnixSeconds(1700000000), /*stale=*/true);
  EXPECT_EQ(Value(m::kCrlNextUpdateTimestampSeconds), 1700000000.0);
  EXPECT_EQ(Value(m::kCrlStale), 1.0);
  backend_->OnCrlNextUpdate(absl::FromUnixSeconds(1900000000), /*stale=*/false);
  EXPECT_EQ(Value(m::kCrlStale), 0.0);
  backend_->OnCrlReloadFailure();
  backend_->OnCrlReloadFailure();
  EXPECT_EQ(Value(m::kCrlReloadFailuresTotal), 2.0);
  backend_->OnCredentialReloadFailure("key");
  backend_->OnCredentialReloadFailure("ca");
  backend_->OnCredentialReloadFailure("something-else");
  EXPECT_EQ(Value(m::kCredentialReloadFailuresTotal, {{"file", "key"}}), 1.0);
  EXPECT_EQ(Value(m::kCredentialReloadFailuresTotal, {{"file", "ca"}}), 1.0);
  EXPECT_EQ(Value(m::kCredentialReloadFailuresTotal, {{"file", "cert"}}), 0.0);
  EXPECT_EQ(Value(m::kCredentialReloadFailuresTotal, {{"file", "other"}}), 1.0);
}

// Socket closes, verify failures, bytes and calls count under their label values.
TEST_F(PrometheusObserverTest, CounterCallbacksMoveTheirSeries) {
  backend_->OnSocketClosed("dirty");
  backend_->OnSocketClosed("dirty");
  backend_->OnSocketClosed("idle");
  backend_->OnCertVerifyFailure("peer_name_mismatch");
  backend_->OnBytes("sent", 100);
  backend_->OnBytes("received", 4096);
  backend_->OnBytes("sent", 23);
  backend_->OnCall("OK", absl::Milliseconds(4));
  backend_->OnCall("UNAVAILABLE", absl::Milliseconds(40));
  EXPECT_EQ(Value(m::kSocketsClosedTotal, {{"reason", "dirty"}}), 2.0);
  EXPECT_EQ(Value(m::kSocketsClosedTotal, {{"reason", "idle"}}), 1.0);
  EXPECT_EQ(Value(m::kSocketsClosedTotal, {{"reason", "drain"}}), 0.0);
  EXPECT_EQ(Value(m::kCertVerifyFailuresTotal, {{"reason", "peer_name_mismatch"}}), 1.0);
  EXPECT_EQ(Value(m::kBytesTotal, {{"direction", "sent"}}), 123.0);
  EXPECT_EQ(Value(m::kBytesTotal, {{"direction", "received"}}), 4096.0);
  EXPECT_EQ(Value(m::kCallsTotal, {{"code", "OK"}}), 1.0);
  EXPECT_EQ(Value(m::kCallsTotal, {{"code", "UNAVAILABLE"}}), 1.0);
  EXPECT_EQ(Value("tlsbroker_call_duration_seconds_count"), 2.0);
}

// OCSP answers count by source and status; every combination exists before the first one.
TEST_F(PrometheusObserverTest, OcspResponsesCountBySourceAndStatus) {
  EXPECT_EQ(Value(m::kOcspResponsesTotal, {{"source", "staple"}, {"status", "revoked"}}), 0.0);
  backend_->OnOcspResponse("responder", "good");
  backend_->OnOcspResponse("cache", "good");
  backend_->OnOcspResponse("cache", "good");
  backend_->OnOcspResponse("none", "unreachable");
  EXPECT_EQ(Value(m::kOcspResponsesTotal, {{"source", "responder"}, {"status", "good"}}), 1.0);
  EXPECT_EQ(Value(m::kOcspResponsesTotal, {{"source", "cache"}, {"status", "good"}}), 2.0);
  EXPECT_EQ(Value(m::kOcspResponsesTotal, {{"source", "none"}, {"status", "unreachable"}}), 1.0);
  EXPECT_EQ(Value(m::kOcspResponsesTotal, {{"source", "staple"}, {"status", "good"}}), 0.0);
}

// A label value outside the known set counts under "other" and creates no new series.
TEST_F(PrometheusObserverTest, UnknownLabelValueCountsAsOther) {
  const size_t series_before = ParseSamples(SerializeMetrics(*registry_)).size();
  backend_->OnHandshake("some_new_failure", false, absl::Seconds(1));
  backend_->OnSocketClosed("cosmic_ray");
  backend_->OnCall("NOT_A_CODE", absl::Seconds(1));
  backend_->OnLeaseRefused(static_cast<absl::StatusCode>(42));
  backend_->OnCertVerifyFailure("odd");
  EXPECT_EQ(Value(m::kTlsHandshakesTotal, {{"result", "other"}, {"resumed", "false"}}), 1.0);
  EXPECT_EQ(Value(m::kSocketsClosedTotal, {{"reason", "other"}}), 1.0);
  EXPECT_EQ(Value(m::kCallsTotal, {{"code", "other"}}), 1.0);
  EXPECT_EQ(Value(m::kLeasesTotal, {{"code", "other"}}), 1.0);
  EXPECT_EQ(Value(m::kCertVerifyFailuresTotal, {{"reason", "other"}}), 1.0);
  EXPECT_EQ(Value(m::kSocketsClosedTotal, {{"reason", "cosmic_ray"}}), std::nullopt);
  EXPECT_EQ(ParseSamples(SerializeMetrics(*registry_)).size(), series_before);
  // Failed handshakes stay out of the latency histogram.
  EXPECT_EQ(Value("tlsbroker_tls_handshake_duration_seconds_count"), 0.0);
}

// One observer per backend name: asking again returns the same one, and backends do not
// share series.
TEST_F(PrometheusObserverTest, ForBackendIsPerBackend) {
  EXPECT_EQ(observer_->ForBackend("ims-prod"), backend_);
  std::shared_ptr<BackendObserver> other = observer_->ForBackend("mq-test");
  ASSERT_NE(other, backend_);
  other->OnSocketClosed("drain");
  EXPECT_EQ(Value(m::kSocketsClosedTotal, {{"reason", "drain"}}), 0.0);
  bool found = false;
  for (const Sample& sample : ParseSamples(SerializeMetrics(*registry_))) {
    if (sample.name == m::kSocketsClosedTotal && sample.labels.at("backend") == "mq-test" &&
        sample.labels.at("reason") == "drain") {
      found = true;
      EXPECT_EQ(sample.value, 1.0);
    }
  }
  EXPECT_TRUE(found);
}

// A registry that already uses a broker metric name for another type is refused with a
// status, not an exception.
TEST(PrometheusObserverCreateTest, ConflictingRegistryIsAnError) {
  auto registry = std::make_shared<prometheus::Registry>();
  prometheus::BuildGauge().Name(std::string(m::kBytesTotal)).Help("clash").Register(*registry);
  absl::StatusOr<std::unique_ptr<PrometheusMetricsObserver>> observer =
      PrometheusMetricsObserver::Create(registry);
  EXPECT_EQ(observer.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PrometheusMetricsObserver::Create(nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Returns the path of promtool, or empty when it is not installed.
std::string FindPromtool() {
  const char* path_env = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path_env == nullptr ? "" : path_env, ':')) {
    if (dir.empty()) continue;
    std::string candidate = absl::StrCat(dir, "/promtool");
    if (std::ifstream(candidate).good()) return candidate;
  }
  return "";
}

// The page (after every kind of callback) passes Prometheus's own linter.
TEST_F(PrometheusObserverTest, SerializedMetricsPassPromtoolCheck) {
  const std::string promtool = FindPromtool();
  if (promtool.empty()) {
    GTEST_SKIP() << "promtool not installed (Debian package `prometheus`); lint check skipped";
  }
  backend_->OnHandshake("ok", true, absl::Milliseconds(3));
  backend_->OnLeaseGranted(absl::Milliseconds(1), true);
  backend_->OnCall("OK", absl::Milliseconds(2));
  backend_->OnBytes("sent", 10);
  observer_->ForBackend("second");
  const std::string text = SerializeMetrics(*registry_);
  ASSERT_FALSE(text.empty());

  const std::string dir = ::testing::TempDir();
  const std::string input = absl::StrCat(dir, "/tlsb_metrics_", ::getpid(), ".txt");
  const std::string output = input + ".out";
  {
    std::ofstream out(input);
    out << text;
    ASSERT_TRUE(out.good());
  }
  const int rc = std::system(
      absl::StrCat(promtool, " check metrics < ", input, " > ", output, " 2>&1").c_str());
  std::ifstream result(output);
  const std::string diagnostics((std::istreambuf_iterator<char>(result)),
                                std::istreambuf_iterator<char>());
  EXPECT_EQ(rc, 0) << diagnostics;
  std::remove(input.c_str());
  std::remove(output.c_str());
}

// The broker-wide series (socket budget, refusals, insecure files) carry no backend label and
// show what the observer was told.
TEST_F(PrometheusObserverTest, BrokerWideSeriesReportBudgetRefusalsAndInsecureFiles) {
  observer_->OnSocketBudget(3, 2);
  observer_->OnSocketBudgetRefused();
  observer_->OnSocketBudgetRefused();
  observer_->OnCallerLeaseLimitRefused();
  observer_->OnInsecureFilePermissions(1);
  auto global = [this](absl::string_view name, Labels labels = {}) -> std::optional<double> {
    for (const Sample& sample : ParseSamples(SerializeMetrics(*registry_))) {
      if (sample.name == name && sample.labels == labels) return sample.value;
    }
    return std::nullopt;
  };
  // The limit has a family of its own: summing the usage family sums usage only.
  EXPECT_EQ(global(m::kSocketBudgetLimitSockets), 3.0);
  EXPECT_EQ(global(m::kSocketBudgetSockets, {{"state", "used"}}), 2.0);
  EXPECT_EQ(global(m::kSocketBudgetSockets, {{"state", "limit"}}), std::nullopt);
  EXPECT_EQ(global(m::kSocketBudgetRefusalsTotal), 2.0);
  EXPECT_EQ(global(m::kCallerLeaseLimitRefusalsTotal), 1.0);
  EXPECT_EQ(global(m::kInsecureFilePermissions), 1.0);
}

// The log writer keeps its own count of dropped lines; each scrape brings the counter up to it
// and never counts a drop twice (the counter only rises, by the difference).
TEST_F(PrometheusObserverTest, LogLinesDroppedFollowsTheWritersCountWithoutDoubleCounting) {
  auto dropped = [this]() -> std::optional<double> {
    for (const Sample& sample : ParseSamples(SerializeMetrics(*registry_))) {
      if (sample.name == m::kLogLinesDroppedTotal && sample.labels.empty()) return sample.value;
    }
    return std::nullopt;
  };
  EXPECT_EQ(dropped(), 0.0);
  observer_->SyncLogLinesDropped(3);
  EXPECT_EQ(dropped(), 3.0);
  observer_->SyncLogLinesDropped(3);
  EXPECT_EQ(dropped(), 3.0);
  observer_->SyncLogLinesDropped(10);
  EXPECT_EQ(dropped(), 10.0);
}

// Calls and leases label their outcome with the same label and the same gRPC code names, so
// one query can join or compare them: every code a Call can report, a lease can too.
TEST_F(PrometheusObserverTest, CallsAndLeasesShareOneSpellingOfStatusCodes) {
  backend_->OnCall("RESOURCE_EXHAUSTED", absl::Milliseconds(1));
  backend_->OnLeaseRefused(absl::StatusCode::kResourceExhausted);
  backend_->OnLeaseRefused(absl::StatusCode::kNotFound);
  EXPECT_EQ(Value(m::kCallsTotal, {{"code", "RESOURCE_EXHAUSTED"}}), 1.0);
  EXPECT_EQ(Value(m::kLeasesTotal, {{"code", "RESOURCE_EXHAUSTED"}}), 1.0);
  EXPECT_EQ(Value(m::kLeasesTotal, {{"code", "NOT_FOUND"}}), 1.0);
  std::map<std::string, std::set<std::string>> codes;
  for (const Sample& sample : ParseSamples(SerializeMetrics(*registry_))) {
    if (sample.name != m::kCallsTotal && sample.name != m::kLeasesTotal) continue;
    ASSERT_EQ(sample.labels.count("code"), 1u) << sample.name;
    ASSERT_EQ(sample.labels.count("result"), 0u) << sample.name;
    codes[sample.name].insert(sample.labels.at("code"));
  }
  EXPECT_EQ(codes[std::string(m::kCallsTotal)], codes[std::string(m::kLeasesTotal)]);
  EXPECT_EQ(codes[std::string(m::kLeasesTotal)].size(), std::size(m::kGrpcCodes));
}

// A configuration applied (at start or by a reload) sets success 1 and its time; a rejected
// reload sets success 0 and leaves the time of the configuration still in force.
TEST_F(PrometheusObserverTest, ConfigReloadOutcomeKeepsTheTimeOfTheLastSuccess) {
  auto global = [this](absl::string_view name) -> std::optional<double> {
    for (const Sample& sample : ParseSamples(SerializeMetrics(*registry_))) {
      if (sample.name == name && sample.labels.empty()) return sample.value;
    }
    return std::nullopt;
  };
  observer_->OnConfigApplied(true, absl::FromUnixMillis(1700000000250));
  EXPECT_EQ(global(m::kConfigLastReloadSuccess), 1.0);
  EXPECT_EQ(global(m::kConfigLastReloadSuccessTimestampSeconds), 1700000000.25);
  observer_->OnConfigApplied(false, absl::FromUnixSeconds(1700000100));
  EXPECT_EQ(global(m::kConfigLastReloadSuccess), 0.0);
  EXPECT_EQ(global(m::kConfigLastReloadSuccessTimestampSeconds), 1700000000.25);
  observer_->OnConfigApplied(true, absl::FromUnixSeconds(1700000200));
  EXPECT_EQ(global(m::kConfigLastReloadSuccess), 1.0);
  EXPECT_EQ(global(m::kConfigLastReloadSuccessTimestampSeconds), 1700000200.0);
}

// tlsbroker_build_info is one series, value 1, with the version and commit as labels; a second
// call cannot add another build to the page.
TEST_F(PrometheusObserverTest, BuildInfoIsOneSeriesWithVersionAndCommit) {
  observer_->SetBuildInfo("1.2.3", "0123456789ab");
  observer_->SetBuildInfo("9.9.9", "other");
  std::vector<Sample> build;
  for (const Sample& sample : ParseSamples(SerializeMetrics(*registry_))) {
    if (sample.name == m::kBuildInfo) build.push_back(sample);
  }
  ASSERT_EQ(build.size(), 1u);
  EXPECT_EQ(build[0].value, 1.0);
  EXPECT_EQ(build[0].labels, (Labels{{"commit", "0123456789ab"}, {"version", "1.2.3"}}));
}

}  // namespace
}  // namespace tlsbroker
