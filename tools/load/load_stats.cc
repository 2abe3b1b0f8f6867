#include "tools/load/load_stats.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tlsbroker::load {
namespace {

struct Summary {
  double seconds = 0;
  double ops_per_second = 0;
  double exchanges_per_second = 0;
  double mb_per_second = 0;
  int64_t p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0;
  double mean = 0;
};

Summary Summarise(const LoadReport& r) {
  Summary s;
  s.seconds = absl::ToDoubleSeconds(r.elapsed);
  if (s.seconds > 0) {
    s.ops_per_second = static_cast<double>(r.stats.operations) / s.seconds;
    s.exchanges_per_second = static_cast<double>(r.stats.exchanges) / s.seconds;
    s.mb_per_second = static_cast<double>(r.stats.bulk_bytes) / 1e6 / s.seconds;
  }
  std::vector<int64_t> sorted = r.stats.latencies_us;
  std::sort(sorted.begin(), sorted.end());
  s.p50 = Percentile(sorted, 0.50);
  s.p90 = Percentile(sorted, 0.90);
  s.p99 = Percentile(sorted, 0.99);
  s.p999 = Percentile(sorted, 0.999);
  s.max = sorted.empty() ? 0 : sorted.back();
  if (!sorted.empty()) {
    double sum = 0;
    for (int64_t v : sorted) sum += static_cast<double>(v);
    s.mean = sum / static_cast<double>(sorted.size());
  }
  return s;
}

std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(&out, "\\u%04x", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

std::string JsonCountMap(const std::map<std::string, int64_t>& m) {
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : m) {
    absl::StrAppend(&out, first ? "" : ",", JsonString(k), ":", v);
    first = false;
  }
  return out + "}";
}

}  // namespace

void LoadStats::RecordError(const std::string& code, const std::string& message) {
  ++errors[code];
  first_error_message.emplace(code, message);
}

void LoadStats::Merge(const LoadStats& other) {
  operations += other.operations;
  ok += other.ok;
  corrupt += other.corrupt;
  exchanges += other.exchanges;
  bulk_bytes += other.bulk_bytes;
  latencies_us.insert(latencies_us.end(), other.latencies_us.begin(), other.latencies_us.end());
  for (const auto& [code, n] : other.errors) errors[code] += n;
  for (const auto& [code, message] : other.first_error_message) {
    first_error_message.emplace(code, message);
  }
  for (const auto& [id, n] : other.client_ids) client_ids[id] += n;
}

int64_t LoadStats::ErrorCount() const {
  int64_t n = 0;
  for (const auto& [code, count] : errors) n += count;
  return n;
}

int64_t Percentile(const std::vector<int64_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  // Nearest rank: the smallest value with at least q of the samples at or below it.
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  if (rank == 0) rank = 1;
  if (rank > sorted.size()) rank = sorted.size();
  return sorted[rank - 1];
}

std::string FormatReportText(const LoadReport& r) {
  const LoadOptions& o = r.options;
  const LoadStats& st = r.stats;
  const Summary s = Summarise(r);
  const char* unit = o.mode == LoadMode::kCall    ? "calls"
                     : o.mode == LoadMode::kLease ? "leases"
                                                  : "streams";
  std::string out;
  absl::StrAppendFormat(&out, "tlsbroker-load: mode %s, backend %s, target %s\n",
                        LoadModeName(o.mode), o.backend, o.target);
  absl::StrAppendFormat(&out, "  callers             %d over %d channel(s)\n", o.callers,
                        o.channels);
  absl::StrAppendFormat(&out, "  %-19s %d in %.3f s (%.1f/s)\n", unit, st.operations, s.seconds,
                        s.ops_per_second);
  if (o.mode == LoadMode::kLease) {
    absl::StrAppendFormat(&out, "  exchanges           %d (%.1f/s)\n", st.exchanges,
                          s.exchanges_per_second);
  }
  if (o.mode == LoadMode::kBulk) {
    absl::StrAppendFormat(&out, "  bulk                %d bytes echoed (%.1f MB/s)\n",
                          st.bulk_bytes, s.mb_per_second);
  }
  absl::StrAppendFormat(&out, "  ok                  %d\n", st.ok);
  absl::StrAppendFormat(&out, "  errors              %d\n", st.ErrorCount());
  for (const auto& [code, n] : st.errors) {
    auto msg = st.first_error_message.find(code);
    absl::StrAppendFormat(&out, "    %-17s %d (%s)\n", code, n,
                          msg == st.first_error_message.end() ? "" : msg->second);
  }
  absl::StrAppendFormat(&out, "  corrupt             %d\n", st.corrupt);
  absl::StrAppendFormat(&out,
                        "  latency %-11s p50 %d us, p90 %d us, p99 %d us, p99.9 %d us, max %d us\n",
                        o.mode == LoadMode::kBulk ? "(stream)" : "", s.p50, s.p90, s.p99, s.p999,
                        s.max);
  absl::StrAppendFormat(&out, "  client IDs          %d distinct\n", st.client_ids.size());
  for (const auto& [id, n] : st.client_ids) {
    absl::StrAppendFormat(&out, "    %-17s %d %s\n", id, n, unit);
  }
  if (r.handshakes) {
    absl::StrAppendFormat(&out, "  handshakes          %.0f full, %.0f resumed, %.0f failed (broker, during the run)\n",
                          r.handshakes->full, r.handshakes->resumed, r.handshakes->failed);
  } else if (!r.metrics_error.empty()) {
    absl::StrAppendFormat(&out, "  handshakes          unknown (%s)\n", r.metrics_error);
  }
  return out;
}

std::string FormatReportJson(const LoadReport& r) {
  const LoadOptions& o = r.options;
  const LoadStats& st = r.stats;
  const Summary s = Summarise(r);
  std::string out = "{";
  absl::StrAppend(&out, "\"mode\":", JsonString(LoadModeName(o.mode)),
                  ",\"backend\":", JsonString(o.backend), ",\"target\":", JsonString(o.target));
  absl::StrAppend(&out, ",\"callers\":", o.callers, ",\"channels\":", o.channels);
  absl::StrAppend(&out, ",\"operations\":", st.operations, ",\"ok\":", st.ok,
                  ",\"errors\":", st.ErrorCount(), ",\"corrupt\":", st.corrupt,
                  ",\"exchanges\":", st.exchanges, ",\"bulk_bytes\":", st.bulk_bytes);
  absl::StrAppendFormat(&out,
                        ",\"elapsed_seconds\":%.6f,\"operations_per_second\":%.3f,"
                        "\"exchanges_per_second\":%.3f,\"mb_per_second\":%.3f",
                        s.seconds, s.ops_per_second, s.exchanges_per_second, s.mb_per_second);
  absl::StrAppendFormat(&out,
                        ",\"latency_us\":{\"p50\":%d,\"p90\":%d,\"p99\":%d,\"p99_9\":%d,"
                        "\"max\":%d,\"mean\":%.1f}",
                        s.p50, s.p90, s.p99, s.p999, s.max, s.mean);
  absl::StrAppend(&out, ",\"errors_by_code\":", JsonCountMap(st.errors));
  absl::StrAppend(&out, ",\"error_messages\":{");
  bool first = true;
  for (const auto& [code, msg] : st.first_error_message) {
    absl::StrAppend(&out, first ? "" : ",", JsonString(code), ":", JsonString(msg));
    first = false;
  }
  absl::StrAppend(&out, "}");
  absl::StrAppend(&out, ",\"distinct_client_ids\":", st.client_ids.size(),
                  ",\"client_ids\":", JsonCountMap(st.client_ids));
  if (r.handshakes) {
    absl::StrAppendFormat(&out, ",\"handshakes\":{\"full\":%.0f,\"resumed\":%.0f,\"failed\":%.0f}",
                          r.handshakes->full, r.handshakes->resumed, r.handshakes->failed);
  } else {
    absl::StrAppend(&out, ",\"handshakes\":null");
    if (!r.metrics_error.empty()) {
      absl::StrAppend(&out, ",\"metrics_error\":", JsonString(r.metrics_error));
    }
  }
  out += "}\n";
  return out;
}

}  // namespace tlsbroker::load
