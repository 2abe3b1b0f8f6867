// TCP keepalive on backend sockets (backends[].tcp_keepalive): after TlsSocket::Connect the
// kernel reports SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL and TCP_KEEPCNT as configured, so a
// connection a firewall silently dropped while idle is found by the probes, not by the next
// lease. The backend is the project's TlsTestServer on 127.0.0.1.

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <functional>
#include <future>
#include <memory>
#include <string>

// After the standard headers, as in the other socket tests.
#include <asio/post.hpp>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "broker/config/options.h"
#include "broker/io/event_loops.h"
#include "broker/tls/tls_client_context.h"
#include "broker/tls/tls_socket.h"
#include "gtest/gtest.h"
#include "tests/support/test_pki.h"
#include "tests/support/tls_test_server.h"

namespace tlsbroker {
namespace {

using testutil::PkiPath;
using testutil::TlsTestServer;

constexpr absl::Duration kWait = absl::Seconds(30);  // A hang bound, not a timing check.

// What the kernel reports for a socket.
struct KernelKeepalive {
  int enabled = -1;
  int idle = -1;
  int interval = -1;
  int count = -1;
};

KernelKeepalive ReadKeepalive(int fd) {
  KernelKeepalive k;
  socklen_t len = sizeof(int);
  EXPECT_EQ(getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &k.enabled, &len), 0);
  len = sizeof(int);
  EXPECT_EQ(getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &k.idle, &len), 0);
  len = sizeof(int);
  EXPECT_EQ(getsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &k.interval, &len), 0);
  len = sizeof(int);
  EXPECT_EQ(getsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &k.count, &len), 0);
  return k;
}

class TcpKeepaliveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto options = TlsTestServer::PkiOptions("ec");
    server_ = *TlsTestServer::Create(options);
  }

  void TearDown() override {
    if (socket_ != nullptr) {
      RunOnLoop([this] { socket_->Close(); });
    }
  }

  void RunOnLoop(std::function<void()> fn) {
    std::promise<void> done;
    asio::post(io_, [&] {
      fn();
      done.set_value();
    });
    ASSERT_EQ(done.get_future().wait_for(absl::ToChronoNanoseconds(kWait)),
              std::future_status::ready);
  }

  // Connects a socket made with `keepalive` to the test server and returns what the kernel
  // reports for its fd.
  KernelKeepalive ConnectAndRead(const TcpKeepaliveOptions& keepalive) {
    TlsOptions options;
    options.ca_file = PkiPath("ec", "root.crt");
    options.cert_file = PkiPath("ec", "client.fullchain.pem");
    options.key_file = PkiPath("ec", "client.key");
    options.tcp_keepalive = keepalive;
    auto context = TlsClientContext::Create(options, "localhost");
    EXPECT_TRUE(context.ok()) << context.status();
    if (!context.ok()) return {};
    socket_ = std::make_shared<TlsSocket>(io_, *std::move(context));
    auto connected = std::make_shared<std::promise<absl::Status>>();
    std::future<absl::Status> future = connected->get_future();
    asio::post(io_, [this, connected] {
      socket_->Connect("127.0.0.1", static_cast<uint16_t>(server_->port()), absl::Seconds(10),
                       absl::Seconds(10),
                       [connected](absl::Status s) { connected->set_value(std::move(s)); });
    });
    EXPECT_EQ(future.wait_for(absl::ToChronoNanoseconds(kWait)), std::future_status::ready);
    absl::Status status = future.get();
    EXPECT_TRUE(status.ok()) << status;
    KernelKeepalive k;
    RunOnLoop([&] { k = ReadKeepalive(socket_->native_fd()); });
    return k;
  }

  std::unique_ptr<TlsTestServer> server_;
  EventLoops loops_{1};
  asio::io_context& io_ = loops_.Next();
  std::shared_ptr<TlsSocket> socket_;
};

// Configured values (none of them the kernel's defaults of 7200 s / 75 s / 9) are what the
// kernel reports for the connected socket.
TEST_F(TcpKeepaliveTest, ConnectedSocketCarriesTheConfiguredKeepalive) {
  TcpKeepaliveOptions keepalive;
  keepalive.idle = absl::Seconds(45);
  keepalive.interval = absl::Seconds(7);
  keepalive.count = 4;
  const KernelKeepalive k = ConnectAndRead(keepalive);
  EXPECT_EQ(k.enabled, 1);
  EXPECT_EQ(k.idle, 45);
  EXPECT_EQ(k.interval, 7);
  EXPECT_EQ(k.count, 4);
}

// Unconfigured, keepalive is on with the documented defaults (60 s idle, 10 s apart, 6 probes).
TEST_F(TcpKeepaliveTest, KeepaliveIsOnByDefault) {
  const KernelKeepalive k = ConnectAndRead(TcpKeepaliveOptions{});
  EXPECT_EQ(k.enabled, 1);
  EXPECT_EQ(k.idle, 60);
  EXPECT_EQ(k.interval, 10);
  EXPECT_EQ(k.count, 6);
}

// Turned off, the socket carries no keepalive.
TEST_F(TcpKeepaliveTest, DisabledKeepaliveLeavesItOff) {
  TcpKeepaliveOptions keepalive;
  keepalive.enabled = false;
  const KernelKeepalive k = ConnectAndRead(keepalive);
  EXPECT_EQ(k.enabled, 0);
}

}  // namespace
}  // namespace tlsbroker
