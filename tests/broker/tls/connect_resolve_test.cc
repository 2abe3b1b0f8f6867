// Name resolution under TlsSocket::Connect: a name whose lookup hangs costs its own connect
// `connect_timeout` and nothing else. DNS itself cannot be made to hang on demand, so the
// lookup goes through the resolver's test hook (SetResolveFunctionForTesting), which blocks
// for one name until the test releases it and hands every other name to the real getaddrinfo.
// The backend is the project's TlsTestServer on 127.0.0.1.

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

// After the standard headers, as in the other socket tests.
#include <asio/post.hpp>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "broker/config/options.h"
#include "broker/io/event_loops.h"
#include "broker/tls/failure_reason.h"
#include "broker/tls/host_resolver.h"
#include "broker/tls/tls_client_context.h"
#include "broker/tls/tls_socket.h"
#include "gtest/gtest.h"
#include "tests/support/openssl_server.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_pki.h"
#include "tests/support/tls_test_server.h"

namespace tlsbroker {
namespace {

using testutil::PkiPath;
using testutil::TlsTestServer;

constexpr absl::Duration kWait = absl::Seconds(20);
constexpr char kHangingName[] = "hangs.invalid";
// A name with no address, answered at once by the hook (as getaddrinfo's EAI_NONAME would be)
// so that no test asks the network.
constexpr char kUnknownName[] = "unknown.invalid";

// The lookup of kHangingName blocks until Release(); other names resolve for real. Shared
// with the resolver thread, which may still be inside Lookup() when the test ends.
class HangingLookup {
 public:
  absl::StatusOr<ResolvedEndpoints> Lookup(const std::string& host, uint16_t port) {
    if (host == kUnknownName) return absl::NotFoundError("Name or service not known");
    if (host != kHangingName) return ResolveWithGetaddrinfo(host, port);
    std::unique_lock<std::mutex> lock(mu_);
    entered_ = true;
    changed_.notify_all();
    changed_.wait(lock, [this] { return released_; });
    return absl::UnavailableError("released by the test");
  }

  bool WaitEntered(absl::Duration timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return changed_.wait_for(lock, absl::ToChronoNanoseconds(timeout), [this] { return entered_; });
  }

  bool hanging() {
    std::lock_guard<std::mutex> lock(mu_);
    return entered_ && !released_;
  }

  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    released_ = true;
    changed_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  bool entered_ = false;
  bool released_ = false;
};

class ConnectResolveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SetResolveFunctionForTesting([lookup = lookup_](const std::string& host, uint16_t port) {
      return lookup->Lookup(host, port);
    });
  }

  void TearDown() override {
    // Let the hung lookup return, and see its thread gone, before the loop goes away.
    lookup_->Release();
    SetResolveFunctionForTesting(nullptr);
    EXPECT_TRUE(testutil::PollUntil([] { return ResolverThreadsForTesting() == 0; }, kWait))
        << "a resolver thread outlived the test";
    RunOnLoop([this](auto done) {
      for (auto& socket : sockets_) socket->Close();
      sockets_.clear();
      done(absl::OkStatus());
    }).IgnoreError();
  }

  // Runs `start` on the loop and waits for the status it reports.
  absl::Status RunOnLoop(std::function<void(std::function<void(absl::Status)>)> start) {
    auto promise = std::make_shared<std::promise<absl::Status>>();
    std::future<absl::Status> future = promise->get_future();
    asio::post(io_, [promise, start = std::move(start)] {
      start([promise](absl::Status s) { promise->set_value(std::move(s)); });
    });
    if (future.wait_for(absl::ToChronoNanoseconds(kWait)) != std::future_status::ready) {
      return absl::DeadlineExceededError("the test timed out waiting for the event loop");
    }
    return future.get();
  }

  std::shared_ptr<TlsSocket> NewSocket() {
    TlsOptions options;
    options.ca_file = PkiPath("ec", "root.crt");
    options.cert_file = PkiPath("ec", "client.fullchain.pem");
    options.key_file = PkiPath("ec", "client.key");
    auto context = TlsClientContext::Create(options, "localhost");
    EXPECT_TRUE(context.ok()) << context.status();
    if (!context.ok()) return nullptr;
    auto socket = std::make_shared<TlsSocket>(io_, *std::move(context));
    sockets_.push_back(socket);
    return socket;
  }

  // Starts a connect on the loop; the future gets its result.
  std::future<absl::Status> StartConnect(std::shared_ptr<TlsSocket> socket,
                                         const std::string& host, int port,
                                         absl::Duration connect_timeout) {
    auto promise = std::make_shared<std::promise<absl::Status>>();
    std::future<absl::Status> future = promise->get_future();
    asio::post(io_, [socket, host, port, connect_timeout, promise] {
      socket->Connect(host, static_cast<uint16_t>(port), connect_timeout, absl::Seconds(10),
                      [promise](absl::Status s) { promise->set_value(std::move(s)); });
    });
    return future;
  }

  static absl::Status Await(std::future<absl::Status>& future) {
    if (future.wait_for(absl::ToChronoNanoseconds(kWait)) != std::future_status::ready) {
      return absl::DeadlineExceededError("the connect did not complete");
    }
    return future.get();
  }

  std::shared_ptr<HangingLookup> lookup_ = std::make_shared<HangingLookup>();
  EventLoops loops_{1};
  asio::io_context& io_ = loops_.Next();
  std::vector<std::shared_ptr<TlsSocket>> sockets_;
};

// The connect timer ends the connect while the lookup is still blocked: the caller gets
// connect_timeout without waiting for DNS.
TEST_F(ConnectResolveTest, HangingLookupFailsWithConnectTimeoutWhileStillHanging) {
  auto socket = NewSocket();
  ASSERT_NE(socket, nullptr);
  std::future<absl::Status> connected =
      StartConnect(socket, kHangingName, 443, absl::Milliseconds(200));
  ASSERT_TRUE(lookup_->WaitEntered(kWait));
  absl::Status status = Await(connected);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_EQ(ReasonOf(status), "connect_timeout") << status;
  EXPECT_TRUE(lookup_->hanging()) << "the connect waited for the lookup to return";
}

// A second socket on the same loop, to a different name, resolves and connects while the
// first name's lookup still hangs: lookups are not queued behind one another per loop.
TEST_F(ConnectResolveTest, HangingLookupDoesNotDelayAnotherNameOnTheSameLoop) {
  auto server = TlsTestServer::Create(TlsTestServer::PkiOptions("ec"));
  ASSERT_TRUE(server.ok()) << server.status();
  auto stuck = NewSocket();
  auto fast = NewSocket();
  ASSERT_NE(stuck, nullptr);
  ASSERT_NE(fast, nullptr);
  std::future<absl::Status> stuck_connected =
      StartConnect(stuck, kHangingName, (*server)->port(), absl::Minutes(5));
  ASSERT_TRUE(lookup_->WaitEntered(kWait));

  std::future<absl::Status> fast_connected =
      StartConnect(fast, "localhost", (*server)->port(), absl::Seconds(10));
  absl::Status status = Await(fast_connected);
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_TRUE(lookup_->hanging());
  EXPECT_EQ(stuck_connected.wait_for(std::chrono::seconds(0)), std::future_status::timeout)
      << "the hanging connect ended early";

  // Released, the hung lookup fails and so does its connect, with the resolver's reason.
  lookup_->Release();
  absl::Status stuck_status = Await(stuck_connected);
  EXPECT_EQ(ReasonOf(stuck_status), "resolve_failed") << stuck_status;
}

// Close() while the lookup hangs ends the connect at once (kCancelled): nothing waits for DNS.
TEST_F(ConnectResolveTest, CloseDuringAHangingLookupEndsTheConnectAtOnce) {
  auto socket = NewSocket();
  ASSERT_NE(socket, nullptr);
  std::future<absl::Status> connected =
      StartConnect(socket, kHangingName, 443, absl::Minutes(5));
  ASSERT_TRUE(lookup_->WaitEntered(kWait));
  ASSERT_TRUE(RunOnLoop([socket](auto done) {
                socket->Close();
                done(absl::OkStatus());
              }).ok());
  absl::Status status = Await(connected);
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled) << status;
  EXPECT_TRUE(lookup_->hanging());
}

// Many sockets to one hanging name wait on one lookup, not one resolver thread each.
TEST_F(ConnectResolveTest, SocketsToTheSameHangingNameShareOneLookup) {
  std::vector<std::future<absl::Status>> connects;
  for (int i = 0; i < 5; ++i) {
    auto socket = NewSocket();
    ASSERT_NE(socket, nullptr);
    connects.push_back(StartConnect(socket, kHangingName, 443, absl::Minutes(5)));
  }
  ASSERT_TRUE(lookup_->WaitEntered(kWait));
  // Every connect has asked (the loop ran them in order); then one thread serves them all.
  ASSERT_TRUE(RunOnLoop([](auto done) { done(absl::OkStatus()); }).ok());
  EXPECT_EQ(ResolverThreadsForTesting(), 1);
  lookup_->Release();
  for (auto& connected : connects) {
    absl::Status status = Await(connected);
    EXPECT_EQ(ReasonOf(status), "resolve_failed") << status;
  }
}

// A backend name that does not resolve fails the connect with resolve_failed (UNAVAILABLE, so
// the pool may retry), and no resolver thread is left behind.
TEST_F(ConnectResolveTest, UnresolvableNameFailsWithResolveFailed) {
  auto socket = NewSocket();
  ASSERT_NE(socket, nullptr);
  std::future<absl::Status> connected = StartConnect(socket, kUnknownName, 443, kWait);
  absl::Status status = Await(connected);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_EQ(ReasonOf(status), "resolve_failed") << status;
}

// A backend named `localhost` (resolved from /etc/hosts, maybe to ::1 before 127.0.0.1)
// reaches the backend listening on 127.0.0.1 and completes the handshake there.
TEST_F(ConnectResolveTest, LocalhostNameReachesTheIpv4Backend) {
  auto server = TlsTestServer::Create(TlsTestServer::PkiOptions("ec"));
  ASSERT_TRUE(server.ok()) << server.status();
  auto socket = NewSocket();
  ASSERT_NE(socket, nullptr);
  std::future<absl::Status> connected =
      StartConnect(socket, "localhost", (*server)->port(), kWait);
  absl::Status status = Await(connected);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_TRUE((*server)->WaitFor(
      [](const auto& s) { return s.full_handshakes + s.resumed_handshakes == 1; }, kWait));
}

// True when the kernel has an IPv6 loopback: a socket binds to [::1].
bool KernelHasIpv6Loopback() {
  int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_addr = in6addr_loopback;
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

// A backend on the IPv6 loopback ([::1], here openssl s_server) is reached by its address
// literal and the mTLS handshake completes over IPv6. Without an IPv6 loopback in the kernel
// the test says it skipped.
TEST_F(ConnectResolveTest, Ipv6LoopbackBackendCompletesTheHandshake) {
  if (!KernelHasIpv6Loopback()) {
    GTEST_SKIP() << "this kernel has no IPv6 loopback ([::1])";
  }
  testutil::OpensslServer::Options options = testutil::OpensslServer::PkiOptions("ec");
  options.host = "::1";
  auto server = testutil::OpensslServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ((*server)->address(), absl::StrCat("[::1]:", (*server)->port()));
  auto socket = NewSocket();
  ASSERT_NE(socket, nullptr);
  std::future<absl::Status> connected = StartConnect(socket, "::1", (*server)->port(), kWait);
  absl::Status status = Await(connected);
  EXPECT_TRUE(status.ok()) << status << "\n" << (*server)->Log();
}

}  // namespace
}  // namespace tlsbroker
