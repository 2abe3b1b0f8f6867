// A storm of handshakes that resume cached TLS 1.3 sessions on two I/O loops at once, while
// callers cut their Calls short with tiny deadlines and cancels. Run under AddressSanitizer
// it hunts use-after-free and double free around sessions, tickets and half-finished
// handshakes; in every build it checks that no caller ever gets another caller's bytes and
// that the pool and the fds come back to rest.
//
// TLSB_STORM_SECONDS sets how long the storm blows (default 4 s; longer for a hunt).

#include <atomic>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "gtest/gtest.h"
#include "tests/faults/fault_test_env.h"

namespace tlsbroker::testutil {
namespace {

absl::Duration StormLength() {
  int seconds = 4;
  const char* env = std::getenv("TLSB_STORM_SECONDS");
  if (env != nullptr && !absl::SimpleAtoi(env, &seconds)) seconds = 4;
  return absl::Seconds(std::max(seconds, 1));
}

// What each open fd is (socket:[inode], anon_inode:[eventfd], a path), for a failure message.
std::string DescribeFds() {
  std::string out;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::error_code link_ec;
    out += std::filesystem::read_symlink(it->path(), link_ec).string() + " ";
  }
  return out;
}

// Open sockets of this process (both ends of every loopback connection, the listeners). Other
// fds are left out: gRPC grows its own thread pools, with their eventfds, under a storm.
int CountOpenSockets() {
  int n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::error_code link_ec;
    if (std::filesystem::read_symlink(it->path(), link_ec).string().rfind("socket:", 0) == 0) ++n;
  }
  return n;
}

class SessionStormTest : public FaultTest {};

TEST_F(SessionStormTest, PerLeaseHandshakeStormWithDeadlinesAndCancelsStaysCorrect) {
  BackendOptions& framed = framed_options();
  framed.pool.mode = PoolMode::kPerLease;  // Every Call opens a socket: a handshake per Call.
  framed.pool.max_sockets = 64;
  framed.pool.max_waiters = 1024;
  StartBroker();
  {
    // Connects the caller's channel, so its socket pair is counted before the storm.
    v1::CallResponse warm;
    ASSERT_TRUE(Call("warm", &warm).ok());
    ASSERT_TRUE(WaitPoolQuiet());
  }
  const int sockets_before = CountOpenSockets();
  // Some answers come late, so deadlines and cancels land mid-exchange as well as mid-handshake.
  backend_->set_response_delay(absl::Milliseconds(2));

  constexpr int kCallers = 24;
  const absl::Time stop_at = absl::Now() + StormLength();
  std::atomic<int64_t> ok{0}, failed{0}, wrong{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&, c] {
      std::mt19937 rng(static_cast<uint32_t>(c) * 7919u + 1u);
      for (int64_t i = 0; absl::Now() < stop_at; ++i) {
        const std::string payload = absl::StrCat("caller-", c, "-call-", i);
        grpc::ClientContext context;
        // A third get a deadline short enough to cut the handshake or the exchange; a few are
        // cancelled by another thread at a random moment.
        const int kind = static_cast<int>(rng() % 6);
        const absl::Duration deadline =
            kind < 2 ? absl::Milliseconds(1 + rng() % 20) : absl::Seconds(10);
        std::thread canceller;
        if (kind == 5) {
          const auto after = std::chrono::microseconds(rng() % 5000);
          canceller = std::thread([&context, after] {
            std::this_thread::sleep_for(after);
            context.TryCancel();
          });
        }
        v1::CallResponse response;
        grpc::Status status = Call(payload, &response, deadline, &context);
        if (canceller.joinable()) canceller.join();
        if (status.ok()) {
          ++ok;
          if (response.response() != Frame("re:" + payload)) ++wrong;
        } else {
          ++failed;
        }
      }
    });
  }
  for (std::thread& t : callers) t.join();
  backend_->set_response_delay(absl::ZeroDuration());

  EXPECT_EQ(wrong, 0) << "a caller received bytes that were not its own answer";
  EXPECT_GT(ok, 0);
  // The storm really was one: most Calls made a new socket, many of them resumed.
  const PoolStats stats = Stats();
  EXPECT_GT(stats.handshakes_resumed, 0u);
  EXPECT_TRUE(WaitPoolQuiet(absl::Seconds(30)));
  // Every socket of the storm is closed again, except idle ones that connected for a caller
  // who had left (PER_LEASE lends each once): every backend connection still open is one of
  // those, and no other socket is left open.
  EXPECT_TRUE(WaitUntil(
      [&] {
        const int idle = Stats().idle;
        return backend_->current_connections() == idle &&
               CountOpenSockets() == sockets_before + 2 * idle;
      },
      absl::Seconds(30)))
      << CountOpenSockets() << " sockets open, " << sockets_before
      << " before the storm; backend has "
      << backend_->current_connections() << " connections; pool idle " << Stats().idle << "; "
      << DescribeFds();
  v1::CallResponse after;
  ASSERT_TRUE(Call("after-the-storm", &after).ok());
  EXPECT_EQ(after.response(), Frame("re:after-the-storm"));
  std::printf("storm: %lld ok, %lld cut short, %llu full and %llu resumed handshakes\n",
              static_cast<long long>(ok.load()), static_cast<long long>(failed.load()),
              static_cast<unsigned long long>(stats.handshakes_full),
              static_cast<unsigned long long>(stats.handshakes_resumed));
}

}  // namespace
}  // namespace tlsbroker::testutil
