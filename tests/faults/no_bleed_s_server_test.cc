// The randomized no-bleed check against a backend the project did not write: `openssl
// s_server -rev`, which answers every line with the line reversed. s_server serves one
// connection at a time, so the pool has one socket and the callers take turns on it; short
// deadlines and cancels cut exchanges short, which destroys the socket and makes the broker
// reconnect. Every answer must be exactly the caller's own line, reversed.

#include <algorithm>
#include <atomic>
#include <future>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "broker/common/log.h"
#include "gtest/gtest.h"
#include "tests/faults/fault_test_env.h"
#include "tests/support/openssl_server.h"

namespace tlsbroker {
namespace {

using testutil::FaultTest;

// Small: every cut exchange costs a reconnect with a full handshake to a single-connection
// server. The in-house backend's test (no_bleed_test.cc) does the volume.
constexpr int kExchanges = 1500;
constexpr int kCallers = 4;
constexpr size_t kMaxBody = 2000;  // s_server -rev reads lines into a 16 KiB buffer

uint32_t Checksum(absl::string_view bytes) {  // FNV-1a
  uint32_t h = 2166136261u;
  for (char c : bytes) {
    h ^= static_cast<uint8_t>(c);
    h *= 16777619u;
  }
  return h;
}

// "T<caller>#<seq>|<printable body>|<checksum, 8 hex digits>": one line, no newline inside
// (and not starting with "CLOSE", which would make s_server hang up).
std::string MakeLine(int caller, int seq, std::mt19937& rng) {
  std::string p = absl::StrCat("T", caller, "#", seq, "|");
  const size_t body = std::uniform_int_distribution<size_t>(0, kMaxBody)(rng);
  for (size_t i = 0; i < body; ++i) p.push_back(static_cast<char>(' ' + rng() % 95));
  p.push_back('|');
  absl::StrAppend(&p, absl::StrFormat("%08x", Checksum(p)));
  return p;
}

std::string Reversed(std::string s) {
  std::reverse(s.begin(), s.end());
  return s;
}

using NoBleedSServerTest = FaultTest;

TEST_F(NoBleedSServerTest, RandomizedCallersNeverReceiveAnotherCallersBytesFromOpensslSServer) {
  auto s_server = testutil::OpensslServer::Start(testutil::OpensslServer::PkiOptions("ec"));
  ASSERT_TRUE(s_server.ok()) << s_server.status();
  BackendOptions& backend = framed_options();
  backend.address = (*s_server)->address();
  backend.port = static_cast<uint16_t>((*s_server)->port());
  backend.framing.kind = FramingOptions::Kind::kDelimiter;
  backend.framing.delimiter = "\n";
  backend.pool.max_sockets = 1;
  // A new connection waits in s_server's backlog until it has closed the previous one: only a
  // hang bound.
  backend.pool.handshake_timeout = absl::Seconds(30);
  backend.pool.acquire_timeout = absl::Seconds(60);
  SetMinLogLevel(LogLevel::kWarning);
  StartBroker();

  std::atomic<int> attempted{0}, ok{0}, bled{0}, cut{0}, unexpected{0};
  std::mutex failure_mu;
  std::string first_failure;
  std::vector<std::thread> callers;
  for (int t = 0; t < kCallers; ++t) {
    callers.emplace_back([&, t] {
      std::mt19937 rng(7919u * (t + 1));
      for (int seq = 0; attempted.fetch_add(1) < kExchanges; ++seq) {
        const std::string line = MakeLine(t, seq, rng);
        const int action = static_cast<int>(rng() % 100);
        const bool short_deadline = action < 5;          // 5%: 1-3 ms deadline
        const bool cancel = action >= 5 && action < 10;  // 5%: cancelled after 0-2 ms
        grpc::ClientContext context;
        context.set_deadline(absl::ToChronoTime(
            absl::Now() + (short_deadline ? absl::Milliseconds(1 + rng() % 3) : absl::Seconds(60))));
        v1::CallRequest request;
        request.set_backend("framed");
        request.set_request(line + "\n");
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
          if (response.response() == Reversed(line) + "\n") {
            ++ok;
            continue;
          }
          ++bled;
          std::lock_guard<std::mutex> lock(failure_mu);
          if (first_failure.empty()) {
            first_failure = absl::StrCat("T", t, "#", seq, " got ", response.response().size(),
                                         " bytes that are not its own line reversed");
          }
        } else if ((status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED &&
                    short_deadline) ||
                   (status.error_code() == grpc::StatusCode::CANCELLED && cancel)) {
          ++cut;
        } else {
          ++unexpected;
          std::lock_guard<std::mutex> lock(failure_mu);
          if (first_failure.empty()) {
            first_failure = absl::StrCat("T", t, "#", seq, ": ", status.error_code(), " ",
                                         status.error_message());
          }
        }
      }
    });
  }
  for (auto& th : callers) th.join();
  std::cerr << "ok " << ok << ", cut short " << cut << ", bled " << bled << ", unexpected "
            << unexpected << ", sockets created " << Stats().sockets_created << "\n";
  EXPECT_EQ(ok + bled + cut + unexpected, kExchanges);
  EXPECT_EQ(bled.load(), 0) << first_failure;
  EXPECT_EQ(unexpected.load(), 0) << first_failure << "\n" << (*s_server)->Log().substr(0, 2000);
  EXPECT_GT(ok.load(), kExchanges * 8 / 10);
  EXPECT_TRUE(WaitPoolQuiet(absl::Seconds(60)));
}

}  // namespace
}  // namespace tlsbroker
