#ifndef BROKER_METRICS_PROCESS_COLLECTOR_H_
#define BROKER_METRICS_PROCESS_COLLECTOR_H_

// The standard process_* metrics (the names every Prometheus client library uses, so generic
// dashboards and alerts find them) for the calling process, read from /proc/self at scrape
// time. prometheus-cpp 1.0 ships no process collector, hence this one.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace tlsbroker {

// The fields of /proc/self/stat the metrics need, converted to base units.
struct ProcStat {
  double cpu_seconds = 0;        // utime + stime.
  double start_after_boot = 0;   // starttime, seconds after boot.
  double virtual_bytes = 0;      // vsize.
  double resident_bytes = 0;     // rss (pages) × page size.
};

// Parses the text of /proc/<pid>/stat (see proc(5)). The command name in parentheses may hold
// spaces and parentheses itself, so fields are counted from its last ')'. nullopt when the
// text is too short or a field is not a number. `ticks_per_second` is sysconf(_SC_CLK_TCK).
std::optional<ProcStat> ParseProcStat(absl::string_view text, double ticks_per_second,
                                      double page_size);

// The boot time (Unix seconds, the `btime` line) from the text of /proc/stat.
std::optional<double> ParseBootTime(absl::string_view text);

// Collects process_cpu_seconds_total, process_open_fds, process_max_fds,
// process_resident_memory_bytes, process_virtual_memory_bytes and process_start_time_seconds.
// A value that cannot be read (no /proc, say) is left off the page rather than shown as 0,
// which would look like a measurement.
//
// Thread-safe: Collect() keeps no state between calls.
class ProcessCollector final : public prometheus::Collectable {
 public:
  // `proc_self` and `proc_stat`: what to read, /proc/self and /proc/stat except in tests.
  explicit ProcessCollector(std::string proc_self = "/proc/self",
                            std::string proc_stat = "/proc/stat");

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const std::string proc_self_;
  const std::string proc_stat_;
};

}  // namespace tlsbroker

#endif  // BROKER_METRICS_PROCESS_COLLECTOR_H_
