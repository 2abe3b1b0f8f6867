#ifndef TOOLS_LOAD_LOAD_STATS_H_
#define TOOLS_LOAD_LOAD_STATS_H_

// What one caller saw during a run, and the merged report of all callers.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "tools/load/load_options.h"

namespace tlsbroker::load {

// Thread-compatible: each caller owns one and touches it from one reaction at a time; the
// runner merges them after every caller has finished.
struct LoadStats {
  int64_t operations = 0;  // calls, leases or bulk streams started
  int64_t ok = 0;          // operations that succeeded and verified
  int64_t corrupt = 0;     // operations whose response was not the expected echo
  int64_t exchanges = 0;   // verified request/response round trips (call: == ok)
  int64_t bulk_bytes = 0;  // bytes echoed and verified (bulk)
  std::vector<int64_t> latencies_us;        // per exchange (call, lease) or per stream (bulk)
  std::map<std::string, int64_t> errors;    // gRPC code name -> operations that failed with it
  std::map<std::string, std::string> first_error_message;  // per code, for the report
  std::map<std::string, int64_t> client_ids;  // client ID -> operations it served

  void RecordError(const std::string& code, const std::string& message);
  void Merge(const LoadStats& other);
  int64_t ErrorCount() const;
};

// Handshakes the broker made for the backend, from tlsbroker_tls_handshakes_total.
struct HandshakeCounts {
  double full = 0;
  double resumed = 0;
  double failed = 0;  // result != "ok"
};

struct LoadReport {
  LoadOptions options;
  LoadStats stats;
  absl::Duration elapsed;
  std::optional<HandshakeCounts> handshakes;  // delta over the run, when --metrics-url
  std::string metrics_error;                  // why the delta is missing, if it is
};

// The q-quantile (0 <= q <= 1) of `sorted` by the nearest-rank method; 0 when empty.
int64_t Percentile(const std::vector<int64_t>& sorted, double q);

// A table for people.
std::string FormatReportText(const LoadReport& report);
// One JSON object (and a newline) for scripts.
std::string FormatReportJson(const LoadReport& report);

}  // namespace tlsbroker::load

#endif  // TOOLS_LOAD_LOAD_STATS_H_
