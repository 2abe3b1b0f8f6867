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

std::string DrainErrors() {
  std::string out;
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    absl::StrAppend(&out, out.empty() ? "" : "; ", buf);
  }
  return out.empty() ? "unknown TLS error" : out;
}

absl::StatusOr<SslCtxPtr> MakeContext(const DirectOptions& o) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (ctx == nullptr) return absl::InternalError(DrainErrors());
  if (SSL_CTX_load_verify_locations(ctx.get(), o.ca_file.c_str(), nullptr) != 1 ||
      SSL_CTX_use_certificate_chain_file(ctx.get(), o.cert_file.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx.get(), o.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("credentials: ", DrainErrors()));
  }
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  // Sessions are kept by hand (mode resume) so that mode full never resumes by accident.
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  // Like the broker: release read/write buffers of idle connections.
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
  return ctx;
}

// One TLS connection with blocking I/O. Thread-compatible: used by one caller thread.
class Connection {
 public:
  ~Connection() { Close(); }

  absl::Status Open(SSL_CTX* ctx, const DirectOptions& o, SSL_SESSION* session) {
    Close();
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return absl::UnavailableError(absl::StrCat("socket: ", strerror(errno)));
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(o.port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (o.host != "127.0.0.1" && o.host != "localhost") {
      return absl::InvalidArgumentError("only 127.0.0.1 is supported");
    }
    if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      return absl::UnavailableError(absl::StrCat("connect: ", strerror(errno)));
    }
    ssl_.reset(SSL_new(ctx));
    if (ssl_ == nullptr) return absl::InternalError(DrainErrors());
    SSL_set_fd(ssl_.get(), fd_);
    SSL_set_tlsext_host_name(ssl_.get(), o.server_name.c_str());
    SSL_set1_host(ssl_.get(), o.server_name.c_str());
    if (session != nullptr) SSL_set_session(ssl_.get(), session);
    ERR_clear_error();
    if (SSL_connect(ssl_.get()) != 1) {
      return absl::UnavailableError(absl::StrCat("handshake: ", DrainErrors()));
    }
    return absl::OkStatus();
  }

  absl::Status WriteAll(absl::string_view bytes) {
    while (!bytes.empty()) {
      ERR_clear_error();
      int n = SSL_write(ssl_.get(), bytes.data(), static_cast<int>(bytes.size()));
      if (n <= 0) return absl::UnavailableError(absl::StrCat("write: ", DrainErrors()));
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return absl::OkStatus();
  }

  // Appends what one SSL_read returns to `out`.
  absl::Status ReadSome(std::string* out) {
    char buf[64 * 1024];
    ERR_clear_error();
    int n = SSL_read(ssl_.get(), buf, sizeof(buf));
    if (n <= 0) return absl::UnavailableError(absl::StrCat("read: ", DrainErrors()));
    out->append(buf, static_cast<size_t>(n));
    return absl::OkStatus();
  }

  // Reads one length-field frame (4-byte big-endian length counting itself).
  absl::StatusOr<std::string> ReadFrame() {
    std::string buffer;
    while (true) {
      size_t len = load::PayloadFactory::CompleteFrameLength(buffer);
      if (len > 0) {
        if (len != buffer.size()) return absl::DataLossError("bytes after the response frame");
        return buffer;
      }
      absl::Status s = ReadSome(&buffer);
      if (!s.ok()) return s;
    }
  }

  SslSessionPtr TakeSession() { return SslSessionPtr(SSL_get1_session(ssl_.get())); }
  bool resumed() const { return SSL_session_reused(ssl_.get()) == 1; }
  bool open() const { return ssl_ != nullptr; }

  void Close() {
    if (ssl_ != nullptr) {
      SSL_shutdown(ssl_.get());  // sends close_notify; does not wait for the peer's
      ssl_.reset();
    }
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
  SslPtr ssl_;
};

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
absl::Status BulkStream(RunState& run, Connection& c, LoadStats& stats) {
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
  Connection c;
  SslSessionPtr session;
  int64_t seq = 0;
  while (run.Next()) {
    ++stats.operations;
    const auto start = std::chrono::steady_clock::now();
    absl::Status s;
    const bool reconnect = o.mode == DirectMode::kFull || o.mode == DirectMode::kResume;
    if (reconnect || !c.open()) {
      s = c.Open(run.ctx, o, o.mode == DirectMode::kResume ? session.get() : nullptr);
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
  absl::StatusOr<SslCtxPtr> ctx = MakeContext(*options);
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
