#include "broker/metrics/process_collector.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "broker/metrics/metric_names.h"

namespace tlsbroker {
namespace {

namespace m = ::tlsbroker::metrics;

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Entries of `dir` other than ".", ".." and the descriptor that reads the directory itself.
std::optional<double> CountOpenFds(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return std::nullopt;
  const std::string self = std::to_string(dirfd(d));
  double n = 0;
  while (const dirent* entry = readdir(d)) {
    const absl::string_view name = entry->d_name;
    if (name == "." || name == ".." || name == self) continue;
    ++n;
  }
  closedir(d);
  return n;
}

prometheus::MetricFamily Family(absl::string_view name, const char* help,
                                prometheus::MetricType type, double value) {
  prometheus::MetricFamily family;
  family.name = std::string(name);
  family.help = help;
  family.type = type;
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(std::move(metric));
  return family;
}

}  // namespace

std::optional<ProcStat> ParseProcStat(absl::string_view text, double ticks_per_second,
                                      double page_size) {
  const size_t paren = text.rfind(')');
  if (paren == absl::string_view::npos || ticks_per_second <= 0) return std::nullopt;
  // After the ')' come the fields from 3 (state) on: field N is at index N - 3.
  const std::vector<absl::string_view> fields =
      absl::StrSplit(absl::StripAsciiWhitespace(text.substr(paren + 1)), ' ', absl::SkipEmpty());
  auto field = [&fields](int number, double* out) {
    const size_t index = static_cast<size_t>(number - 3);
    return index < fields.size() && absl::SimpleAtod(fields[index], out);
  };
  double utime = 0, stime = 0, starttime = 0, vsize = 0, rss = 0;
  if (!field(14, &utime) || !field(15, &stime) || !field(22, &starttime) ||
      !field(23, &vsize) || !field(24, &rss)) {
    return std::nullopt;
  }
  ProcStat stat;
  stat.cpu_seconds = (utime + stime) / ticks_per_second;
  stat.start_after_boot = starttime / ticks_per_second;
  stat.virtual_bytes = vsize;
  stat.resident_bytes = rss * page_size;
  return stat;
}

std::optional<double> ParseBootTime(absl::string_view text) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::ConsumePrefix(&line, "btime ")) continue;
    double seconds = 0;
    if (absl::SimpleAtod(absl::StripAsciiWhitespace(line), &seconds)) return seconds;
    return std::nullopt;
  }
  return std::nullopt;
}

ProcessCollector::ProcessCollector(std::string proc_self, std::string proc_stat)
    : proc_self_(std::move(proc_self)), proc_stat_(std::move(proc_stat)) {}

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> families;
  const std::optional<std::string> stat_text = ReadFile(proc_self_ + "/stat");
  const std::optional<ProcStat> stat =
      stat_text ? ParseProcStat(*stat_text, static_cast<double>(sysconf(_SC_CLK_TCK)),
                                static_cast<double>(sysconf(_SC_PAGESIZE)))
                : std::nullopt;
  if (stat) {
    families.push_back(Family(m::kProcessCpuSecondsTotal,
                              "Total user and system CPU time spent in seconds.",
                              MetricType::Counter, stat->cpu_seconds));
  }
  // The soft limit: the one open() and accept() fail against (EMFILE).
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    families.push_back(Family(m::kProcessMaxFds, "Maximum number of open file descriptors.",
                              MetricType::Gauge, static_cast<double>(limit.rlim_cur)));
  }
  if (std::optional<double> fds = CountOpenFds(proc_self_ + "/fd")) {
    families.push_back(
        Family(m::kProcessOpenFds, "Number of open file descriptors.", MetricType::Gauge, *fds));
  }
  if (stat) {
    families.push_back(Family(m::kProcessResidentMemoryBytes, "Resident memory size in bytes.",
                              MetricType::Gauge, stat->resident_bytes));
  }
  const std::optional<std::string> proc_stat_text = ReadFile(proc_stat_);
  const std::optional<double> boot = proc_stat_text ? ParseBootTime(*proc_stat_text)
                                                    : std::nullopt;
  if (stat && boot) {
    families.push_back(Family(m::kProcessStartTimeSeconds,
                              "Start time of the process since unix epoch in seconds.",
                              MetricType::Gauge, *boot + stat->start_after_boot));
  }
  if (stat) {
    families.push_back(Family(m::kProcessVirtualMemoryBytes, "Virtual memory size in bytes.",
                              MetricType::Gauge, stat->virtual_bytes));
  }
  return families;
}

}  // namespace tlsbroker
