// No bleed between leases, proved at scale: many callers with random sizes, delays, cancels and
// short deadlines against a backend that sometimes answers late. Every request carries its
// caller's tag, a sequence number and a checksum; every answer must be exactly the caller's own.
//
// TLSB_SOAK_EXCHANGES sets the number of exchanges (default below) for a longer soak.

#include <atomic>
#include <cstdlib>
#include <future>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "broker/common/log.h"
#include "gtest/gtest.h"
#include "tests/faults/fault_test_env.h"

namespace tlsbroker {
namespace {

using testutil::FaultTest;
using testutil::Frame;

constexpr int kDefaultExchanges = 100000;
constexpr int kCallers = 16;
constexpr size_t kMaxBody = 8 * 1024;

int Exchanges() {
  const char* env = std::getenv("TLSB_SOAK_EXCHANGES");
  int n = 0;
  if (env != nullptr && absl::SimpleAtoi(env, &n) && n > 0) return n;
  return kDefaultExchanges;
}

// FNV-1a, 32 bits: enough to tell a corrupted body from an intact one.
uint32_t Checksum(absl::string_view bytes) {
  uint32_t h = 2166136261u;
  for (char c : bytes) {
    h ^= static_cast<uint8_t>(c);
    h *= 16777619u;
  }
  return h;
}

// "T<caller>#<seq>|<body>|<checksum of everything before it, 8 hex digits>".
std::string MakePayload(int caller, int seq, std::mt19937& rng) {
  std::string p = absl::StrCat("T", caller, "#", seq, "|");
  size_t body = std::uniform_int_distribution<size_t>(0, kMaxBody)(rng);
  for (size_t i = 0; i < body; ++i) p.push_back(static_cast<char>(rng() & 0xff));
  p.push_back('|');
  absl::StrAppend(&p, absl::StrFormat("%08x", Checksum(p)));
  return p;
}

// The caller tag of a payload ("T3"), or "" when none can be read.
std::string TagOf(absl::string_view payload) {
  size_t hash = payload.find('#');
  if (payload.empty() || payload[0] != 'T' || hash == absl::string_view::npos) return "";
  return std::string(payload.substr(0, hash));
}

bool ChecksumHolds(absl::string_view payload) {
  if (payload.size() < 9) return false;
  absl::string_view covered = payload.substr(0, payload.size() - 8);
  return absl::StrFormat("%08x", Checksum(covered)) == payload.substr(payload.size() - 8);
}

struct Counts {
  std::atomic<int> attempted{0}, ok{0}, bled{0}, corrupted{0};
  std::atomic<int> deadline{0}, cancelled{0}, unexpected{0};
};

using NoBleedTest = FaultTest;

// Randomized callers never receive another caller's bytes or a corrupted answer: every OK
// answer is exactly "re:" + the caller's own request; cut-short calls fail with a code.
TEST_F(NoBleedTest, RandomizedCallersNeverReceiveAnotherCallersBytes) {
  framed_options().pool.max_sockets = 8;
  framed_options().pool.min_idle = 2;
  // One "lease ended" line per exchange would be 100,000 lines: keep warnings and errors.
  SetMinLogLevel(LogLevel::kWarning);
  StartBroker();
  const int total = Exchanges();
  Counts counts;
  std::atomic<bool> done{false};

  // A backend that sometimes answers late: the delay flips every few milliseconds.
  std::thread toggler([&] {
    std::mt19937 rng(4242);
    while (!done) {
      backend_->set_response_delay(rng() % 3 == 0 ? absl::Microseconds(200 + rng() % 2800)
                                                  : absl::ZeroDuration());
      absl::SleepFor(absl::Milliseconds(5 + rng() % 20));
    }
    backend_->set_response_delay(absl::ZeroDuration());
  });

  std::mutex failure_mu;
  std::string first_failure;
  absl::Time start = absl::Now();
  std::vector<std::thread> callers;
  for (int t = 0; t < kCallers; ++t) {
    callers.emplace_back([&, t] {
      std::mt19937 rng(1000003u * (t + 1));
      const std::string tag = absl::StrCat("T", t);
      for (int seq = 0; counts.attempted.fetch_add(1) < total; ++seq) {
        std::string payload = MakePayload(t, seq, rng);
        const int action = static_cast<int>(rng() % 100);
        const bool short_deadline = action < 8;             // 8%: 1-3 ms deadline
        const bool cancel = action >= 8 && action < 14;     // 6%: cancelled after 0-2 ms
        grpc::ClientContext context;
        context.set_deadline(absl::ToChronoTime(
            absl::Now() + (short_deadline ? absl::Milliseconds(1 + rng() % 3) : absl::Seconds(20))));
        v1::CallRequest request;
        request.set_backend("framed");
        request.set_request(Frame(payload));
        v1::CallResponse response;
        std::promise<grpc::Status> finished;
        stub_->async()->Call(&context, &request, &response,
                             [&finished](grpc::Status s) { finished.set_value(std::move(s)); });
        if (cancel) {
          absl::SleepFor(absl::Microseconds(rng() % 2000));
          context.TryCancel();
        }
        grpc::Status status = finished.get_future().get();
        if (status.ok()) {
          const std::string& got = response.response();
          if (got == Frame("re:" + payload)) {
            ++counts.ok;
            continue;
          }
          absl::string_view body = absl::string_view(got).substr(got.size() >= 7 ? 7 : got.size());
          if (TagOf(body) != tag || !ChecksumHolds(body)) {
            ++(TagOf(body) != tag ? counts.bled : counts.corrupted);
          } else {
            ++counts.corrupted;  // Its own tag and a valid checksum, yet not its request.
          }
          std::lock_guard<std::mutex> lock(failure_mu);
          if (first_failure.empty()) {
            first_failure = absl::StrCat(tag, "#", seq, " got an answer tagged \"", TagOf(body),
                                         "\" of ", got.size(), " bytes");
          }
        } else if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED &&
                   short_deadline) {
          ++counts.deadline;
        } else if (status.error_code() == grpc::StatusCode::CANCELLED && cancel) {
          ++counts.cancelled;
        } else {
          ++counts.unexpected;
          std::lock_guard<std::mutex> lock(failure_mu);
          if (first_failure.empty()) {
            first_failure = absl::StrCat(tag, "#", seq, ": ", status.error_code(), " ",
                                         status.error_message());
          }
        }
        if (rng() % 8 == 0) absl::SleepFor(absl::Microseconds(rng() % 1000));
      }
    });
  }
  for (auto& th : callers) th.join();
  const absl::Duration took = absl::Now() - start;
  done = true;
  toggler.join();

  const int exchanges = counts.ok + counts.bled + counts.corrupted + counts.deadline +
                        counts.cancelled + counts.unexpected;
  PoolStats stats = Stats();
  std::string summary = absl::StrFormat(
      "%d exchanges in %.1f s (%.0f/s): ok %d, deadline %d, cancelled %d, bled %d, "
      "corrupted %d, unexpected %d; sockets created %d, handshakes %d",
      exchanges, absl::ToDoubleSeconds(took), exchanges / absl::ToDoubleSeconds(took),
      counts.ok.load(), counts.deadline.load(), counts.cancelled.load(), counts.bled.load(),
      counts.corrupted.load(), counts.unexpected.load(), static_cast<int>(stats.sockets_created),
      static_cast<int>(backend_->total_handshakes()));
  std::cerr << summary << "\n";
  RecordProperty("summary", summary);

  EXPECT_EQ(exchanges, total);
  EXPECT_EQ(counts.bled.load(), 0) << first_failure;
  EXPECT_EQ(counts.corrupted.load(), 0) << first_failure;
  EXPECT_EQ(counts.unexpected.load(), 0) << first_failure;
  // Most exchanges complete; the cut-short ones really did cut exchanges (sockets churned).
  EXPECT_GT(counts.ok.load(), total * 8 / 10);
  EXPECT_GT(counts.deadline.load() + counts.cancelled.load(), 0);
  EXPECT_TRUE(WaitPoolQuiet()) << "waiters " << Stats().waiters << " leased " << Stats().leased;
}

}  // namespace
}  // namespace tlsbroker
