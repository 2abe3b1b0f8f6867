// Fuzzes the lease read path with what a backend sends: arbitrary response bytes, cut into TLS
// records and TCP writes of fuzzer-chosen sizes, optionally with a KeyUpdate and followed by a
// fuzzer-chosen connection end, from a real TLS server (scripted_tls_server.h) over loopback
// to a real SocketPool. Each input takes a lease, writes one request frame and reads the answer
// with ReadFrame (or, when the input says so, one Read), then checks:
//   - the read completes within kDeadline (a hang is a bug, like a crash);
//   - ReadFrame returns exactly the first frame of the scripted bytes when they hold one within
//     max_frame_bytes (unless the script ends in a TCP reset, which may discard it), and fails
//     otherwise: kResourceExhausted or kUnavailable for a frame over the limit, kUnavailable
//     for a bad or unfinished one;
//   - Read returns a non-empty prefix of the scripted bytes, no longer than asked for;
//   - a socket whose exchange failed, left bytes unread or was closed by the backend never
//     serves another lease, and a clean one does (checked with a second lease of the pool).
// The backend's answer holds 4-byte big-endian length frames (the length counting itself), as
// configured for the pool; max_frame_bytes is small so oversize frames are cheap to reach, and
// rekey_after_bytes is small so the broker's KeyUpdates interleave with the server's.
//
// Input layout (InputReader: missing bytes read as zeros):
//   flags    bits 0-1 connection end (BackendScript::After), bit 2 use Read, bit 3 start with a
//            generated frame, bit 4 the server sends a KeyUpdate, bit 5 ... with update_requested
//   records  count (mod 16), then that many U16 record sizes (1 + v % 16384)
//   chunks   count (mod 16), then that many U16 TCP write sizes (1 + v)
//   [bit 4]  Byte: the record the KeyUpdate precedes
//   [bit 2]  U16: Read's max_bytes (1 + v)
//   [bit 3]  Byte + U16: the generated frame's 24-bit length field, Byte: its fill byte; the
//            body is capped just above max_frame_bytes, so a 64 KiB frame fits in a small input
//   rest     raw response bytes (after the generated frame, if any)

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include <openssl/ssl.h>
#include <stdlib.h>  // mkdtemp

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "broker/common/log.h"
#include "broker/config/options.h"
#include "broker/io/event_loops.h"
#include "broker/pool/lease.h"
#include "broker/pool/socket_pool.h"
#include "fuzz/targets/fuzz_targets.h"
#include "fuzz/targets/input_reader.h"
#include "fuzz/targets/scripted_tls_server.h"
#include "fuzz/targets/throwaway_pki.h"

namespace tlsbroker::fuzz {
namespace {

constexpr uint64_t kMaxFrameBytes = 64 * 1024;
#if defined(__SANITIZE_THREAD__)
#define TLSB_FUZZ_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TLSB_FUZZ_UNDER_TSAN 1
#endif
#endif
// Generous: a loopback exchange takes milliseconds even in sanitizer builds; libFuzzer's own
// -timeout (scripts/fuzz.sh: 10 s) is longer, so a hang fails here with a clearer message.
// ThreadSanitizer (the corpus replay only, never libFuzzer) costs far more per TLS record,
// and the seeds include a 64 KiB frame in one-byte records.
#ifdef TLSB_FUZZ_UNDER_TSAN
constexpr absl::Duration kDeadline = absl::Seconds(60);
#else
constexpr absl::Duration kDeadline = absl::Seconds(8);
#endif

// A value handed from an I/O-thread callback to the fuzz thread. Shared, because a callback
// may in principle outlive a waiter that gave up (FuzzFail aborts, but the type stays safe).
template <typename T>
class Handoff {
 public:
  void Set(T value) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      value_.emplace(std::move(value));
    }
    cv_.notify_all();
  }
  // The value, or nullopt after `timeout`.
  std::optional<T> Take(absl::Duration timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout),
                      [this] { return value_.has_value(); })) {
      return std::nullopt;
    }
    std::optional<T> out = std::move(value_);
    value_.reset();
    return out;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<T> value_;
};

// What the pool, built once per process, talks to.
struct Harness {
  ScriptedTlsServer* server = nullptr;
  EventLoops* loops = nullptr;
  std::shared_ptr<SocketPool> pool;
  std::mutex call_mu;  // One input at a time, even if a driver were to call concurrently.
  uint64_t next_id = 0;
};

std::string MakeTempDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                        "/tlsb-fuzz-backend-XXXXXX";
  char* made = mkdtemp(pattern.data());
  TLSB_FUZZ_CHECK(made != nullptr);
  return made;
}

Harness* g_harness = nullptr;  // Set once by GetHarness, for StopHarness.

// At exit, before OpenSSL's exit handler frees its global state: an I/O thread or the server
// thread still in OpenSSL (a handshake finishing after its lease was granted, session tickets
// read by the idle watch) would crash on it. The objects themselves stay (reachable, so
// LeakSanitizer is content); only their threads end.
void StopHarness() {
  Harness* h = g_harness;
  std::lock_guard<std::mutex> call_lock(h->call_mu);
  h->pool->Shutdown();  // Closes the idle socket (close_notify) on its loop.
  h->pool.reset();      // What the loops' queued handlers still hold goes with them.
  delete h->loops;      // Runs what is pending, then joins the I/O thread.
  h->loops = nullptr;
  h->server->Stop();
}

// Built on first use; its threads run until StopHarness at exit.
Harness& GetHarness() {
  static Harness* harness = [] {
    // A lease-ended line per input would drown the fuzzer's output.
    SetMinLogLevel(LogLevel::kError);
    // OpenSSL registers its exit handler on first initialisation; handlers run in reverse
    // order, so StopHarness, registered after it, runs before it.
    TLSB_FUZZ_CHECK(OPENSSL_init_ssl(0, nullptr) == 1);
    absl::StatusOr<ThrowawayPki> pki = ThrowawayPki::Create();
    TLSB_FUZZ_CHECK(pki.ok());
    auto* h = new Harness;
    absl::StatusOr<ScriptedTlsServer*> server = ScriptedTlsServer::StartForever(*pki);
    TLSB_FUZZ_CHECK(server.ok());
    h->server = *server;
    h->loops = new EventLoops(1);

    const std::string dir = MakeTempDir();
    TLSB_FUZZ_CHECK(pki->WriteClientFiles(dir).ok());
    BackendOptions b;
    b.name = "fuzz-backend";
    b.host = "127.0.0.1";
    b.port = static_cast<uint16_t>(h->server->port());
    b.address = b.host + ":" + std::to_string(b.port);
    b.server_name = "localhost";
    b.tls.ca_file = dir + "/root.crt";
    b.tls.cert_file = dir + "/client.crt";
    b.tls.key_file = dir + "/client.key";
    // The files are read once by Create and removed below; never re-read them.
    b.tls.watch_interval = absl::ZeroDuration();
    // One socket: the server serves one connection at a time, and "the next lease got another
    // socket" is then a plain comparison of socket IDs.
    b.pool.max_sockets = 1;
    b.pool.connect_timeout = absl::Seconds(2);
    b.pool.handshake_timeout = absl::Seconds(2);
    b.pool.backoff_initial = absl::Milliseconds(5);
    b.pool.backoff_max = absl::Milliseconds(20);
    b.client_id.prefix = "FUZZ";
    b.client_id.width = 8;
    b.framing.kind = FramingOptions::Kind::kLengthField;
    b.framing.length_field = {0, 4, true, -4};
    b.framing.max_frame_bytes = kMaxFrameBytes;
    b.rekey_after_bytes = 4096;
    absl::StatusOr<std::shared_ptr<SocketPool>> pool = SocketPool::Create(b, h->loops);
    TLSB_FUZZ_CHECK(pool.ok());
    h->pool = *std::move(pool);
    h->pool->Start();
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
    g_harness = h;
    TLSB_FUZZ_CHECK(std::atexit(StopHarness) == 0);
    return h;
  }();
  return *harness;
}

// The first frame of `bytes` as the backend's framing defines it, decoded the obvious way.
struct Reference {
  enum class Kind { kFrame, kIncomplete, kBad, kTooLarge } kind;
  size_t size = 0;  // kFrame: the frame's length.
};

Reference FirstFrame(absl::string_view bytes) {
  if (bytes.size() < 4) return {Reference::Kind::kIncomplete};
  uint64_t length = 0;
  for (int i = 0; i < 4; ++i) length = length << 8 | static_cast<uint8_t>(bytes[i]);
  if (length < 4) return {Reference::Kind::kBad};  // The length counts its own 4 bytes.
  if (length > kMaxFrameBytes) return {Reference::Kind::kTooLarge};
  if (bytes.size() < length) return {Reference::Kind::kIncomplete};
  return {Reference::Kind::kFrame, static_cast<size_t>(length)};
}

// Whether `bytes` is a sequence of whole, valid frames (a lease that read exactly these may
// give its socket back).
bool WholeFrames(absl::string_view bytes) {
  while (!bytes.empty()) {
    const Reference ref = FirstFrame(bytes);
    if (ref.kind != Reference::Kind::kFrame) return false;
    bytes.remove_prefix(ref.size);
  }
  return true;
}

std::string RequestFrame(uint64_t id) {
  std::string frame = {0, 0, 0, 12};
  for (int shift = 56; shift >= 0; shift -= 8) frame.push_back(static_cast<char>(id >> shift));
  return frame;
}

struct Decoded {
  BackendScript script;
  bool use_read = false;
  size_t read_max = 0;
};

Decoded Decode(InputReader& in, uint64_t id) {
  Decoded d;
  BackendScript& s = d.script;
  s.id = id;
  const uint8_t flags = in.Byte();
  s.after = static_cast<BackendScript::After>(flags & 3);
  d.use_read = (flags & 4) != 0;
  for (int n = in.Byte() % 16; n > 0; --n) {
    s.record_sizes.push_back(static_cast<uint16_t>(1 + in.U16() % 16384));
  }
  for (int n = in.Byte() % 16; n > 0; --n) s.chunk_sizes.push_back(1u + in.U16());
  if ((flags & 16) != 0) {
    s.key_update_before_record = in.Byte();
    s.key_update_requested = (flags & 32) != 0;
  }
  if (d.use_read) d.read_max = 1 + size_t{in.U16()};
  if ((flags & 8) != 0) {
    const uint32_t high = in.Byte();
    const uint32_t length = high << 16 | in.U16();
    const char fill = static_cast<char>(in.Byte());
    for (int shift = 24; shift >= 0; shift -= 8) {
      s.bytes.push_back(static_cast<char>(length >> shift));
    }
    const size_t body = length < 4 ? 0 : std::min<size_t>(length - 4, kMaxFrameBytes + 4096);
    s.bytes.append(body, fill);
  }
  s.bytes.append(in.Rest().data(), in.Rest().size());
  return d;
}

// TLSB_FUZZ_CHECK that also prints the broker's status, which says what went wrong.
#define TLSB_FUZZ_CHECK_STATUS(cond, status)                                  \
  do {                                                                        \
    if (!(cond)) {                                                            \
      std::fprintf(stderr, "status: %s\n", (status).ToString().c_str());      \
      ::tlsbroker::fuzz::FuzzFail(__FILE__, __LINE__, #cond);                 \
    }                                                                         \
  } while (false)

bool CodeIs(const absl::Status& status, absl::StatusCode code) {
  return status.code() == code && !status.message().empty();
}

}  // namespace

int FuzzBackendBytes(const uint8_t* data, size_t size) {
  Harness& h = GetHarness();
  std::lock_guard<std::mutex> call_lock(h.call_mu);
  InputReader in(data, size);
  const uint64_t id = ++h.next_id;
  Decoded d = Decode(in, id);
  const BackendScript::After after = d.script.after;
  const std::string bytes = d.script.bytes;
  const Reference ref = FirstFrame(bytes);
  // An unfinished frame on an open connection waits forever, correctly (the caller's deadline
  // ends such a lease, not the broker): end the connection so the read has an outcome.
  if (ref.kind == Reference::Kind::kIncomplete && after == BackendScript::After::kKeepOpen) {
    d.script.after = BackendScript::After::kCloseNotify;
  }
  const bool closes = d.script.after != BackendScript::After::kKeepOpen;
  const bool reset = d.script.after == BackendScript::After::kReset;
  h.server->Arm(std::move(d.script));

  auto acquired = std::make_shared<Handoff<absl::StatusOr<Lease>>>();
  SocketPool::AcquireRequest request;
  request.deadline = absl::Now() + kDeadline;
  request.caller = "fuzz";
  h.pool->Acquire(std::move(request),
                  [acquired](absl::StatusOr<Lease> lease) { acquired->Set(std::move(lease)); });
  std::optional<absl::StatusOr<Lease>> got = acquired->Take(kDeadline + absl::Seconds(1));
  TLSB_FUZZ_CHECK(got.has_value());
  TLSB_FUZZ_CHECK_STATUS(got->ok(), got->status());
  Lease lease = **std::move(got);
  const uint64_t socket_id = lease.info().socket_id;

  auto written = std::make_shared<Handoff<absl::Status>>();
  lease.Write(RequestFrame(id), [written](absl::Status s) { written->Set(std::move(s)); });
  std::optional<absl::Status> write_status = written->Take(kDeadline);
  TLSB_FUZZ_CHECK(write_status.has_value());
  TLSB_FUZZ_CHECK_STATUS(write_status->ok(), *write_status);

  auto read = std::make_shared<Handoff<absl::StatusOr<std::string>>>();
  auto on_read = [read](absl::StatusOr<std::string> r) { read->Set(std::move(r)); };
  if (d.use_read) {
    lease.Read(d.read_max, std::move(on_read));
  } else {
    lease.ReadFrame(std::move(on_read));
  }
  std::optional<absl::StatusOr<std::string>> result = read->Take(kDeadline);
  TLSB_FUZZ_CHECK(result.has_value());  // Else the read hung.

  // Whether the socket may serve the next lease: only after a clean exchange that read
  // everything the backend sent, on a connection the backend kept.
  bool reusable = false;
  if (d.use_read) {
    if (result->ok()) {
      const std::string& got_bytes = **result;
      TLSB_FUZZ_CHECK(!got_bytes.empty());
      TLSB_FUZZ_CHECK(got_bytes.size() <= d.read_max);
      TLSB_FUZZ_CHECK(absl::string_view(bytes).substr(0, got_bytes.size()) == got_bytes);
      reusable = !closes && got_bytes.size() == bytes.size() && WholeFrames(bytes);
    } else {
      TLSB_FUZZ_CHECK_STATUS(bytes.empty() || reset, result->status());
      TLSB_FUZZ_CHECK_STATUS(CodeIs(result->status(), absl::StatusCode::kUnavailable),
                             result->status());
    }
  } else {
    switch (ref.kind) {
      case Reference::Kind::kFrame:
        TLSB_FUZZ_CHECK_STATUS(result->ok() || reset, result->status());
        if (result->ok()) {
          TLSB_FUZZ_CHECK(**result == absl::string_view(bytes).substr(0, ref.size));
          reusable = !closes && ref.size == bytes.size();
        } else {
          TLSB_FUZZ_CHECK_STATUS(CodeIs(result->status(), absl::StatusCode::kUnavailable),
                                 result->status());
        }
        break;
      case Reference::Kind::kTooLarge:
        TLSB_FUZZ_CHECK(!result->ok());
        // kResourceExhausted "frame_too_large" once the broker says so; "bad_frame" before.
        TLSB_FUZZ_CHECK_STATUS(
            CodeIs(result->status(), absl::StatusCode::kResourceExhausted) ||
                CodeIs(result->status(), absl::StatusCode::kUnavailable),
            result->status());
        break;
      case Reference::Kind::kBad:
      case Reference::Kind::kIncomplete:
        TLSB_FUZZ_CHECK(!result->ok());
        TLSB_FUZZ_CHECK_STATUS(CodeIs(result->status(), absl::StatusCode::kUnavailable),
                               result->status());
        break;
    }
  }

  // The whole answer (and the connection end) must have reached the broker's socket before the
  // lease ends, or whether it "left bytes unread" would depend on timing. After a failure the
  // broker may have stopped reading, so release first: closing the socket unblocks the server.
  if (result->ok()) TLSB_FUZZ_CHECK(h.server->Finish(id, kDeadline));
  lease = Lease();
  if (!result->ok()) TLSB_FUZZ_CHECK(h.server->Finish(id, kDeadline));

  // A second lease, with no I/O, shows what became of the socket.
  auto probe = std::make_shared<Handoff<absl::StatusOr<Lease>>>();
  SocketPool::AcquireRequest probe_request;
  probe_request.deadline = absl::Now() + kDeadline;
  probe_request.caller = "fuzz-probe";
  h.pool->Acquire(std::move(probe_request),
                  [probe](absl::StatusOr<Lease> lease) { probe->Set(std::move(lease)); });
  std::optional<absl::StatusOr<Lease>> next = probe->Take(kDeadline + absl::Seconds(1));
  TLSB_FUZZ_CHECK(next.has_value());
  TLSB_FUZZ_CHECK_STATUS(next->ok(), next->status());
  if (reusable) {
    TLSB_FUZZ_CHECK((*next)->info().socket_id == socket_id && (*next)->info().reused);
  } else {
    TLSB_FUZZ_CHECK((*next)->info().socket_id != socket_id);
  }
  return 0;
}

}  // namespace tlsbroker::fuzz
