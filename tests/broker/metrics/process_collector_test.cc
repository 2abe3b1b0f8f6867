// The process_* collector: /proc/<pid>/stat and /proc/stat parsing on real-looking text, and
// the collector on this very process (open descriptors, the descriptor limit).

#include "broker/metrics/process_collector.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <map>
#include <string>

#include "broker/metrics/metric_names.h"
#include "gtest/gtest.h"

namespace tlsbroker {
namespace {

namespace m = ::tlsbroker::metrics;

// A /proc/<pid>/stat line whose command name holds a space and a ')' (both legal in comm), so
// counting fields from the first ')' or by splitting the whole line would shift every field.
constexpr char kStat[] =
    "4242 (tls broker) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 "
    "250 150 0 0 20 0 9 0 12345 987654321 2048 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 "
    "17 1 0 0 0 0 0\n";

// utime 250 + stime 150 ticks = 4 s at 100 Hz; starttime 12345 ticks; vsize in bytes; rss in
// pages.
TEST(ProcStatTest, FieldsAreCountedFromTheLastParenthesis) {
  const std::optional<ProcStat> stat = ParseProcStat(kStat, 100, 4096);
  ASSERT_TRUE(stat.has_value());
  EXPECT_DOUBLE_EQ(stat->cpu_seconds, 4.0);
  EXPECT_DOUBLE_EQ(stat->start_after_boot, 123.45);
  EXPECT_DOUBLE_EQ(stat->virtual_bytes, 987654321.0);
  EXPECT_DOUBLE_EQ(stat->resident_bytes, 2048.0 * 4096);
}

// Truncated or garbled text gives no values rather than wrong ones.
TEST(ProcStatTest, ShortOrGarbledTextGivesNothing) {
  EXPECT_FALSE(ParseProcStat("4242 (x) S 1 2 3", 100, 4096).has_value());
  EXPECT_FALSE(ParseProcStat("no parenthesis at all", 100, 4096).has_value());
  std::string garbled = kStat;
  garbled.replace(garbled.find("250"), 3, "2x0");
  EXPECT_FALSE(ParseProcStat(garbled, 100, 4096).has_value());
}

TEST(ProcStatTest, BootTimeIsTheBtimeLine) {
  EXPECT_EQ(ParseBootTime("cpu  1 2 3\nintr 5\nbtime 1764600000\nprocesses 9\n"), 1764600000.0);
  EXPECT_FALSE(ParseBootTime("cpu  1 2 3\n").has_value());
}

std::map<std::string, double> Collect(const ProcessCollector& collector) {
  std::map<std::string, double> values;
  for (const prometheus::MetricFamily& family : collector.Collect()) {
    EXPECT_EQ(family.metric.size(), 1u) << family.name;
    if (family.metric.empty()) continue;
    values[family.name] = family.type == prometheus::MetricType::Counter
                              ? family.metric[0].counter.value
                              : family.metric[0].gauge.value;
  }
  return values;
}

// On this process: every metric present; open descriptors follow a descriptor this test opens
// and closes; the limit is the soft RLIMIT_NOFILE.
TEST(ProcessCollectorTest, ReportsThisProcess) {
  ProcessCollector collector;
  std::map<std::string, double> before = Collect(collector);
  for (absl::string_view name : m::kProcessMetricNames) {
    EXPECT_EQ(before.count(std::string(name)), 1u) << name;
  }
  const int fd = open("/dev/null", O_RDONLY);
  ASSERT_GE(fd, 0);
  std::map<std::string, double> during = Collect(collector);
  close(fd);
  std::map<std::string, double> after = Collect(collector);
  EXPECT_EQ(during[std::string(m::kProcessOpenFds)], before[std::string(m::kProcessOpenFds)] + 1);
  EXPECT_EQ(after[std::string(m::kProcessOpenFds)], before[std::string(m::kProcessOpenFds)]);
  rlimit limit{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  EXPECT_EQ(before[std::string(m::kProcessMaxFds)], static_cast<double>(limit.rlim_cur));
  EXPECT_GT(before[std::string(m::kProcessResidentMemoryBytes)], 0);
  EXPECT_GE(before[std::string(m::kProcessVirtualMemoryBytes)],
            before[std::string(m::kProcessResidentMemoryBytes)]);
  EXPECT_GT(before[std::string(m::kProcessStartTimeSeconds)], 0);
}

// Without /proc the values that come from it are left off, not reported as 0.
TEST(ProcessCollectorTest, LeavesOffWhatItCannotRead) {
  ProcessCollector collector("/nonexistent/self", "/nonexistent/stat");
  std::map<std::string, double> values = Collect(collector);
  EXPECT_EQ(values.count(std::string(m::kProcessOpenFds)), 0u);
  EXPECT_EQ(values.count(std::string(m::kProcessCpuSecondsTotal)), 0u);
  EXPECT_EQ(values.count(std::string(m::kProcessStartTimeSeconds)), 0u);
  EXPECT_EQ(values.count(std::string(m::kProcessMaxFds)), 1u);  // getrlimit needs no /proc.
}

}  // namespace
}  // namespace tlsbroker
