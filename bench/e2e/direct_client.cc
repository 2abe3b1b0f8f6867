// tlsb-bench-direct: the direct-client baselines of the end-to-end benchmark (scripts/bench.sh).
// N caller threads talk TLS with client certificates straight to a backend, with no broker:
//
//   --mode full        a new TCP+TLS connection with a full handshake per request     (a)
//   --mode resume      a new connection per request, resuming the caller's last session (b)
//   --mode persistent  one TLS connection per caller for the whole run               (c)
//   --mode bulk        one TLS connection per caller streaming --bulk-bytes through a raw echo
//                      backend in --bulk-message-bytes writes                       ((c) bulk)
//
// Requests and responses are the ones tlsbroker-load sends through the broker (the same
// PayloadFactory and BulkPattern, every response verified), and the report is tlsbroker-load's
// JSON, so the script reads both the same way. Blocking sockets and one thread per caller: the
// simplest client that can be written, which is what an application without a broker would do.
//
// Exit codes: 0 every operation succeeded and verified, 1 some failed or were corrupt, 2 usage.

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "bench/e2e/blocking_tls_connection.h"
#include "broker/tls/openssl_ptr.h"
#include "tools/load/load_options.h"
#include "tools/load/load_stats.h"
#include "tools/load/payload.h"

namespace tlsbroker::bench {
namespace {

using load::LoadStats;

enum class DirectMode { kFull, kResume, kPersistent, kBulk };

struct DirectOptions {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string ca_file, cert_file, key_file;
  std::string server_name = "localhost";
  DirectMode mode = DirectMode::kPersistent;
  std::string mode_name = "persistent";
  int callers = 1;
  int64_t count = -1;  // operations: requests, or bulk streams
  absl::Duration duration = absl::ZeroDuration();
  int64_t size = 1024;
  std::string response_prefix = "re:";
  int64_t bulk_bytes = 16 * 1024 * 1024;
  int64_t bulk_message_bytes = 64 * 1024;
  // Bulk: how many bytes may be written and not yet echoed back. Bounded so that the echo
  // backend's replies always fit the socket buffers (blocking I/O cannot deadlock) while the
  // pipe stays full, as with gRPC flow control on the broker path.
  int64_t bulk_window_bytes = 256 * 1024;
  bool json = false;
};

constexpr const char kUsage[] =
    "usage: tlsb-bench-direct --address HOST:PORT --ca F --cert F --key F\n"
    "         --mode full|resume|persistent|bulk [--callers N] [--count N] [--duration D]\n"
    "         [--size BYTES] [--server-name NAME] [--response-prefix S] [--bulk-bytes N]\n"
    "         [--bulk-message-bytes N] [--json]\n"
    "  full: new connection + full handshake per request; resume: new connection per request\n"
    "  with session resumption; persistent: one connection per caller; bulk: one connection\n"
    "  per caller streaming --bulk-bytes (default 16 MiB) through a raw echo backend.\n"
    "  The run stops at --count operations or after --duration, whichever comes first\n"
    "  (default: --count 1000, or one bulk stream per caller).\n";

absl::StatusOr<DirectOptions> ParseFlags(int argc, char** argv) {
  DirectOptions o;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--json") {
      o.json = true;
      continue;
    }
    if (flag == "--help" || flag == "-h") return absl::NotFoundError("help");
    if (i + 1 >= argc) return absl::InvalidArgumentError(absl::StrCat(flag, " needs a value"));
    std::string value = argv[++i];
    bool ok = true;
    if (flag == "--address") {
      size_t colon = value.rfind(':');
      ok = colon != std::string::npos && absl::SimpleAtoi(value.substr(colon + 1), &o.port);
      if (ok) o.host = value.substr(0, colon);
    } else if (flag == "--ca") {
      o.ca_file = value;
    } else if (flag == "--cert") {
      o.cert_file = value;
    } else if (flag == "--key") {
      o.key_file = value;
    } else if (flag == "--server-name") {
      o.server_name = value;
    } else if (flag == "--mode") {
      o.mode_name = value;
      if (value == "full") {
        o.mode = DirectMode::kFull;
      } else if (value == "resume") {
        o.mode = DirectMode::kResume;
      } else if (value == "persistent") {
        o.mode = DirectMode::kPersistent;
      } else if (value == "bulk") {
        o.mode = DirectMode::kBulk;
      } else {
        ok = false;
      }
    } else if (flag == "--callers") {
      ok = absl::SimpleAtoi(value, &o.callers) && o.callers > 0;
    } else if (flag == "--count") {
      ok = absl::SimpleAtoi(value, &o.count) && o.count > 0;
    } else if (flag == "--duration") {
      ok = absl::ParseDuration(value, &o.duration) && o.duration > absl::ZeroDuration();
    } else if (flag == "--size") {
      ok = absl::SimpleAtoi(value, &o.size) && o.size > 0;
    } else if (flag == "--response-prefix") {
      o.response_prefix = value;
    } else if (flag == "--bulk-bytes") {
      ok = absl::SimpleAtoi(value, &o.bulk_bytes) && o.bulk_bytes > 0;
    } else if (flag == "--bulk-message-bytes") {
      ok = absl::SimpleAtoi(value, &o.bulk_message_bytes) && o.bulk_message_bytes > 0;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag ", flag));
    }
    if (!ok) return absl::InvalidArgumentError(absl::StrCat("bad value for ", flag, ": ", value));
  }
  if (o.port <= 0 || o.ca_file.empty() || o.cert_file.empty() || o.key_file.empty()) {
    return absl::InvalidArgumentError("--address, --ca, --cert and --key are required");
  }
  if (o.count < 0 && o.duration == absl::ZeroDuration()) {
    o.count = o.mode == DirectMode::kBulk ? o.callers : 1000;
  }
  return o;
}

// Shared by the caller threads: the run's bounds.
struct RunState {
  RunState(const DirectOptions* o, SSL_CTX* c)
      : options(o), ctx(c), payloads(o->response_prefix, o->size, 1) {}

  const DirectOptions* options;
  SSL_CTX* ctx;
  load::PayloadFactory payloads;
  load::BulkPattern pattern;
  std::atomic<int64_t> started{0};
  std::chrono::steady_clock::time_point deadline;
  bool has_deadline = false;

  // Claims the next operation; false when the run is over.
  bool Next() {
    if (has_deadline && std::chrono::steady_clock::now() >= deadline) return false;
    if (options->count > 0) return started.fetch_add(1) < options->count;
    return true;
  }
};

int64_t MicrosSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                                start)
      .count();
}

// One bulk stream on `c`: writes o.bulk_bytes of the pattern, reads and verifies the echo.
absl::Status BulkStream(RunState& run, BlockingTlsConnection& c, LoadStats& stats) {
  const DirectOptions& o = *run.options;
  int64_t sent = 0, received = 0;
  std::string in;
  while (received < o.bulk_bytes) {
    if (sent < o.bulk_bytes && sent - received < o.bulk_window_bytes) {
      const int64_t n = std::min(o.bulk_message_bytes, o.bulk_bytes - sent);
      absl::Status s = c.WriteAll(run.pattern.Bytes(sent, static_cast<size_t>(n)));
      if (!s.ok()) return s;
      sent += n;
      continue;
    }
    in.clear();
    absl::Status s = c.ReadSome(&in);
    if (!s.ok()) return s;
    if (received + static_cast<int64_t>(in.size()) > sent ||
        !run.pattern.Matches(received, in)) {
      return absl::DataLossError("bulk echo differs from what was sent");
    }
    received += static_cast<int64_t>(in.size());
  }
  stats.bulk_bytes += received;
  return absl::OkStatus();
}

void Caller(RunState& run, int caller, LoadStats& stats) {
  const DirectOptions& o = *run.options;
  BlockingTlsConnection c;
  SslSessionPtr session;
  int64_t seq = 0;
  while (run.Next()) {
    ++stats.operations;
    const auto start = std::chrono::steady_clock::now();
    absl::Status s;
    const bool reconnect = o.mode == DirectMode::kFull || o.mode == DirectMode::kResume;
    if (reconnect || !c.open()) {
      s = c.Open(run.ctx, o.host, o.port, o.server_name, o.mode == DirectMode::kResume ? session.get() : nullptr);
    }
    if (s.ok() && o.mode == DirectMode::kBulk) {
      s = BulkStream(run, c, stats);
    } else if (s.ok()) {
      const std::string request = run.payloads.FramedRequest(caller, seq++, o.size);
      s = c.WriteAll(request);
      absl::StatusOr<std::string> response;
      if (s.ok()) {
        response = c.ReadFrame();
        s = response.status();
      }
      if (s.ok() && !run.payloads.IsExpectedResponse(request, *response)) {
        ++stats.corrupt;
        c.Close();
        continue;
      }
      if (s.ok()) ++stats.exchanges;
    }
    if (!s.ok()) {
      stats.RecordError(absl::StatusCodeToString(s.code()), std::string(s.message()));
      c.Close();
      continue;
    }
    ++stats.ok;
    stats.latencies_us.push_back(MicrosSince(start));
    if (o.mode == DirectMode::kResume) {
      ++stats.client_ids[c.resumed() ? "resumed" : "full"];
      // After a response the TLS 1.3 ticket has been read, so the session can be resumed.
      session = c.TakeSession();
    }
    if (reconnect) c.Close();
  }
}

int Main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  absl::StatusOr<DirectOptions> options = ParseFlags(argc, argv);
  if (!options.ok()) {
    if (absl::IsNotFound(options.status())) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    std::fprintf(stderr, "tlsb-bench-direct: %s\n\n%s",
                 std::string(options.status().message()).c_str(), kUsage);
    return 2;
  }
  absl::StatusOr<SslCtxPtr> ctx = MakeClientContext(options->ca_file, options->cert_file, options->key_file);
  if (!ctx.ok()) {
    std::fprintf(stderr, "tlsb-bench-direct: %s\n", std::string(ctx.status().message()).c_str());
    return 2;
  }
  RunState run(&*options, ctx->get());
  std::vector<LoadStats> stats(static_cast<size_t>(options->callers));
  const auto start = std::chrono::steady_clock::now();
  if (options->duration > absl::ZeroDuration()) {
    run.has_deadline = true;
    run.deadline = start + absl::ToChronoNanoseconds(options->duration);
  }
  std::vector<std::thread> threads;
  for (int i = 0; i < options->callers; ++i) {
    threads.emplace_back([&run, &stats, i] { Caller(run, i, stats[static_cast<size_t>(i)]); });
  }
  for (std::thread& t : threads) t.join();

  load::LoadReport report;
  report.elapsed = absl::FromChrono(std::chrono::steady_clock::now() - start);
  report.options.mode = options->mode == DirectMode::kBulk ? load::LoadMode::kBulk
                                                           : load::LoadMode::kCall;
  report.options.backend = absl::StrCat("direct-", options->mode_name);
  report.options.target = absl::StrCat(options->host, ":", options->port);
  report.options.callers = options->callers;
  report.options.channels = options->callers;
  report.options.size_min = report.options.size_max = options->size;
  report.options.bulk_bytes = options->bulk_bytes;
  report.options.bulk_message_bytes = options->bulk_message_bytes;
  for (const LoadStats& s : stats) report.stats.Merge(s);
  const std::string text =
      options->json ? load::FormatReportJson(report) : load::FormatReportText(report);
  std::fwrite(text.data(), 1, text.size(), stdout);
  return report.stats.ErrorCount() > 0 || report.stats.corrupt > 0 ? 1 : 0;
}

}  // namespace
}  // namespace tlsbroker::bench

int main(int argc, char** argv) { return tlsbroker::bench::Main(argc, argv); }
