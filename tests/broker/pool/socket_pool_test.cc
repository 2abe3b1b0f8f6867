// SocketPool against a real multi-connection TLS backend (tests/support TlsTestServer).

#include "broker/pool/socket_pool.h"

#include <atomic>
#include <future>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "broker/tls/failure_reason.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/broker/pool/pool_test_util.h"
#include "tests/broker/pool/recording_observer.h"
#include "tests/support/refusing_port.h"
#include "tests/support/subprocess.h"
#include "tests/support/tls_test_server.h"

namespace tlsbroker {
namespace {

using ::testing::HasSubstr;
using testutil::AcquireSync;
using testutil::RoundTrip;
using testutil::WaitUntil;

class SocketPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server_options = testutil::TlsTestServer::PkiOptions("ec");
    server_options.mode = testutil::TlsTestServerMode::kFramedEcho;
    server_options.response_prefix = "re:";
    auto server = testutil::TlsTestServer::Create(server_options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    observer_ = std::make_shared<testutil::RecordingObserver>();
  }

  void TearDown() override {
    if (pool_) pool_->Shutdown();
    pool_.reset();
    loops_.reset();
    server_.reset();
  }

  BackendOptions Backend() { return testutil::FramedBackend(server_->port()); }

  void MakePool(const BackendOptions& options) {
    auto pool = SocketPool::Create(options, loops_.get(), observer_);
    ASSERT_TRUE(pool.ok()) << pool.status();
    pool_ = *std::move(pool);
    pool_->Start();
  }

  std::unique_ptr<EventLoops> loops_ = std::make_unique<EventLoops>(2);
  std::unique_ptr<testutil::TlsTestServer> server_;
  std::shared_ptr<testutil::RecordingObserver> observer_;
  std::shared_ptr<SocketPool> pool_;
};

// N sequential leases on one socket perform one handshake; reuse performs none.
TEST_F(SocketPoolTest, ManyLeasesOnOneSocketPerformOneHandshake) {
  BackendOptions b = Backend();
  b.pool.max_sockets = 1;
  MakePool(b);
  for (int i = 0; i < 20; ++i) {
    auto lease = AcquireSync(*pool_);
    ASSERT_TRUE(lease.ok()) << lease.status();
    EXPECT_EQ(lease->info().reused, i > 0);
    EXPECT_EQ(lease->info().leases_served, i + 1);
    auto reply = RoundTrip(*lease, absl::StrCat("ping", i));
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_EQ(*reply, absl::StrCat("re:ping", i));
  }
  EXPECT_TRUE(WaitUntil([&] { return pool_->Stats().idle == 1; }));
  EXPECT_EQ(server_->total_handshakes(), 1);
  EXPECT_EQ(observer_->Sum("handshake:ok"), 1);
  EXPECT_EQ(observer_->Get("lease:reused"), 19);
  EXPECT_EQ(pool_->Stats().sockets_created, 1u);
}

// N concurrent leases on a pool of K sockets: exactly K handshakes (full or resumed).
TEST_F(SocketPoolTest, ConcurrentLeasesOnKSocketsPerformKHandshakes) {
  BackendOptions b = Backend();
  b.pool.max_sockets = 4;
  MakePool(b);
  constexpr int kThreads = 8;
  constexpr int kLeasesEach = 25;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kLeasesEach; ++i) {
        auto lease = AcquireSync(*pool_, "", absl::Seconds(10));
        if (!lease.ok()) {
          ++failures;
          continue;
        }
        std::string payload = absl::StrCat("t", t, "-", i);
        auto reply = RoundTrip(*lease, payload);
        if (!reply.ok() || *reply != "re:" + payload) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_TRUE(WaitUntil([&] { return pool_->Stats().idle == 4; }));
  PoolStats stats = pool_->Stats();
  EXPECT_EQ(stats.sockets_created, 4u);
  EXPECT_EQ(server_->total_handshakes(), 4);
  EXPECT_EQ(static_cast<int64_t>(stats.handshakes_full + stats.handshakes_resumed), 4);
  EXPECT_EQ(observer_->Sum("handshake:ok"), 4);
  EXPECT_EQ(stats.leases_granted, static_cast<uint64_t>(kThreads * kLeasesEach));
}

// Every lease of a socket carries the same client ID, and acquiring by that ID returns it.
TEST_F(SocketPoolTest, ClientIdIsStableAcrossLeasesAndAcquirableById) {
  MakePool(Backend());
  std::string id;
  uint64_t socket_id;
  {
    auto lease = AcquireSync(*pool_);
    ASSERT_TRUE(lease.ok()) << lease.status();
    id = lease->info().client_id;
    socket_id = lease->info().socket_id;
    EXPECT_EQ(id, "TLSB0001");
    ASSERT_TRUE(RoundTrip(*lease, "a").ok());
  }
  for (int i = 0; i < 5; ++i) {
    auto lease = AcquireSync(*pool_, id);
    ASSERT_TRUE(lease.ok()) << lease.status();
    EXPECT_EQ(lease->info().client_id, id);
    EXPECT_EQ(lease->info().socket_id, socket_id);
    EXPECT_TRUE(lease->info().reused);
    ASSERT_TRUE(RoundTrip(*lease, "b").ok());
  }
}

// Acquiring by the ID of an empty slot creates that slot's socket.
TEST_F(SocketPoolTest, AcquireByIdOfEmptySlotCreatesThatSlot) {
  MakePool(Backend());
  auto lease = AcquireSync(*pool_, "TLSB0003");
  ASSERT_TRUE(lease.ok()) << lease.status();
  EXPECT_EQ(lease->info().client_id, "TLSB0003");
  EXPECT_EQ(lease->info().slot, 3);
  EXPECT_FALSE(lease->info().reused);
}

// An ID that is not one of the pool's slots is NOT_FOUND.
TEST_F(SocketPoolTest, AcquireByUnknownClientIdIsNotFound) {
  MakePool(Backend());
  auto lease = AcquireSync(*pool_, "TLSB0099");
  EXPECT_EQ(lease.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(lease.status().message()), HasSubstr("TLSB0001..TLSB0004"));
}

// A socket destroyed (broken lease) is replaced in the same slot, with the same client ID.
TEST_F(SocketPoolTest, ReplacementSocketKeepsItsSlotsClientId) {
  MakePool(Backend());
  uint64_t first_socket;
  {
    auto lease = AcquireSync(*pool_);
    ASSERT_TRUE(lease.ok());
    first_socket = lease->info().socket_id;
    EXPECT_EQ(lease->info().client_id, "TLSB0001");
    lease->MarkBroken("test breaks it");
  }
  EXPECT_TRUE(WaitUntil([&] { return pool_->Stats().idle == 0 && pool_->Stats().leased == 0; }));
  auto lease = AcquireSync(*pool_, "TLSB0001");
  ASSERT_TRUE(lease.ok()) << lease.status();
  EXPECT_EQ(lease->info().client_id, "TLSB0001");
  EXPECT_NE(lease->info().socket_id, first_socket);
  EXPECT_FALSE(lease->info().reused);
  ASSERT_TRUE(RoundTrip(*lease, "x").ok());
}

// PER_LEASE closes the socket after every lease; each lease gets a new socket.
TEST_F(SocketPoolTest, PerLeaseModeClosesSocketAfterEachLease) {
  BackendOptions b = Backend();
  b.pool.mode = PoolMode::kPerLease;
  b.tls.session_resumption = false;
  MakePool(b);
  std::set<uint64_t> sockets;
  for (int i = 0; i < 3; ++i) {
    auto lease = AcquireSync(*pool_);
    ASSERT_TRUE(lease.ok());
    EXPECT_FALSE(lease->info().reused);
    sockets.insert(lease->info().socket_id);
    ASSERT_TRUE(RoundTrip(*lease, "p").ok());
  }
  EXPECT_EQ(sockets.size(), 3u);
  EXPECT_TRUE(WaitUntil([&] { return observer_->Get("closed:per_lease") == 3; }));
  EXPECT_TRUE(WaitUntil([&] { return server_->current_connections() == 0; }));
  EXPECT_EQ(server_->full_handshakes(), 3);
}

// PERSISTENT keeps the socket open between leases.
TEST_F(SocketPoolTest, PersistentModeReusesSocket) {
  MakePool(Backend());
  uint64_t socket_id = 0;
  for (int i = 0; i < 3; ++i) {
    auto lease = AcquireSync(*pool_);
    ASSERT_TRUE(lease.ok());
    if (i == 0) socket_id = lease->info().socket_id;
    EXPECT_EQ(lease->info().socket_id, socket_id);
    ASSERT_TRUE(RoundTrip(*lease, "p").ok());
    *lease = Lease();
    // Release completes on the socket's loop; wait for it so the next acquire finds it idle.
    ASSERT_TRUE(WaitUntil([&] { return pool_->Stats().idle == 1; }));
  }
  EXPECT_EQ(server_->connections_accepted(), 1);
}

// A lease that ends with a response byte unread destroys its socket: the byte never reaches
// the next lease.
TEST_F(SocketPoolTest, UnreadBytesDestroySocketAndNeverReachNextLease) {
  BackendOptions b = Backend();
  b.pool.max_sockets = 1;
  MakePool(b);
  uint64_t dirty_socket;
  {
    auto lease = AcquireSync(*pool_);
    ASSERT_TRUE(lease.ok());
    dirty_socket = lease->info().socket_id;
    // Send a request and leave without reading the answer.
    ASSERT_TRUE(testutil::WriteSync(*lease, testutil::Frame("unread")).ok());
    ASSERT_TRUE(server_->WaitFor([](const auto& s) { return s.responses >= 1; }, absl::Seconds(5)));
  }
  auto lease = AcquireSync(*pool_);
  ASSERT_TRUE(lease.ok()) << lease.status();
  EXPECT_NE(lease->info().socket_id, dirty_socket);
  auto reply = RoundTrip(*lease, "fresh");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "re:fresh");
  EXPECT_GE(observer_->Get("ended:broken"), 1);
}

// A lease that ends while a read waits for backend bytes that never come (a Lease stream always
// has one armed) still returns its socket clean: nothing was consumed.
TEST_F(SocketPoolTest, PendingReadAtReleaseIsAbandonedAndSocketStaysClean) {
  BackendOptions b = Backend();
  b.pool.max_sockets = 1;
  MakePool(b);
  uint64_t first;
  std::promise<absl::Status> read_result;
  {
    auto lease = AcquireSync(*pool_);
    ASSERT_TRUE(lease.ok());
    first = lease->info().socket_id;
    ASSERT_TRUE(RoundTrip(*lease, "x").ok());
    lease->Read(1024, [&](absl::StatusOr<std::string> data) { read_result.set_value(data.status()); });
  }
  EXPECT_EQ(read_result.get_future().get().code(), absl::StatusCode::kCancelled);
  ASSERT_TRUE(WaitUntil([&] { return pool_->Stats().idle == 1; }));
  auto lease = AcquireSync(*pool_);
  ASSERT_TRUE(lease.ok());
  EXPECT_EQ(lease->info().socket_id, first);
  auto reply = RoundTrip(*lease, "again");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "re:again");
  EXPECT_EQ(observer_->Sum("closed:"), 0);
}

// A lease the caller marks broken (cancel mid-exchange) closes its socket as "dirty".
TEST_F(SocketPoolTest, MarkBrokenClosesSocketAsDirty) {
  MakePool(Backend());
  {
    auto lease = AcquireSync(*pool_);
    ASSERT_TRUE(lease.ok());
    ASSERT_TRUE(testutil::WriteSync(*lease, testutil::Frame("abandoned")).ok());
    lease->MarkBroken("caller cancelled");
  }
  EXPECT_TRUE(WaitUntil([&] { return observer_->Get("closed:dirty") == 1; }));
}

// A lease that ends after a whole request but before its response arrived destroys its socket:
// the late response must never reach the next lease.
TEST_F(SocketPoolTest, ResponseOwedAtReleaseDestroysSocket) {
  BackendOptions b = Backend();
  b.pool.max_sockets = 1;
  MakePool(b);
  server_->set_response_delay(absl::Milliseconds(100));
  uint64_t first;
  {
    auto lease = AcquireSync(*pool_);
    ASSERT_TRUE(lease.ok());
    first = lease->info().socket_id;
    ASSERT_TRUE(testutil::WriteSync(*lease, testutil::Frame("owed")).ok());
  }
  server_->set_response_delay(absl::ZeroDuration());
  auto lease = AcquireSync(*pool_);
  ASSERT_TRUE(lease.ok()) << lease.status();
  EXPECT_NE(lease->info().socket_id, first);
  auto reply = RoundTrip(*lease, "mine");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "re:mine");
  EXPECT_TRUE(WaitUntil([&] { return observer_->Get("closed:dirty") == 1; }));
}

// A lease that ends after half a request frame destroys its socket.
TEST_F(SocketPoolTest, HalfWrittenFrameDestroysSocket) {
  BackendOptions b = Backend();
  b.pool.max_sockets = 1;
  MakePool(b);
  uint64_t half_socket;
  {
    auto lease = AcquireSync(*pool_);
    ASSERT_TRUE(lease.ok());
    half_socket = lease->info().socket_id;
    std::string frame = testutil::Frame("only half of this is sent");
    ASSERT_TRUE(testutil::WriteSync(*lease, frame.substr(0, 10)).ok());
  }
  auto lease = AcquireSync(*pool_);
  ASSERT_TRUE(lease.ok()) << lease.status();
  EXPECT_NE(lease->info().socket_id, half_socket);
  auto reply = RoundTrip(*lease, "whole");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "re:whole");
}

// Bytes the backend sends after the response frame make the socket dirty: destroyed.
TEST_F(SocketPoolTest, TrailingBytesAfterResponseDestroySocket) {
  BackendOptions b = Backend();
  b.pool.max_sockets = 1;
  MakePool(b);
  server_->set_send_extra_bytes_after_response(true);
  uint64_t first;
  {
    auto lease = AcquireSync(*pool_);
    ASSERT_TRUE(lease.ok());
    first = lease->info().socket_id;
    auto reply = RoundTrip(*lease, "q");
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_EQ(*reply, "re:q");
    // The trailing byte is in this socket's receive queue before the release checks for
    // unread bytes: the server counts bytes after writing them, over loopback with
    // TCP_NODELAY, so once counted they have been delivered. No sleep needed.
    ASSERT_TRUE(server_->WaitFor([](const auto& s) { return s.bytes_out >= 4 + 4 + 1; },
                                 absl::Seconds(30)));
  }
  server_->set_send_extra_bytes_after_response(false);
  auto lease = AcquireSync(*pool_);
  ASSERT_TRUE(lease.ok());
  EXPECT_NE(lease->info().socket_id, first);
  auto reply = RoundTrip(*lease, "clean");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "re:clean");
}

// Waiters are served in the order they arrived.
TEST_F(SocketPoolTest, WaitersAreServedInFifoOrder) {
  BackendOptions b = Backend();
  b.pool.max_sockets = 1;
  MakePool(b);
  auto held = AcquireSync(*pool_);
  ASSERT_TRUE(held.ok());
  std::mutex order_mu;
  std::vector<int> order;
  std::vector<std::promise<void>> done(5);
  for (int i = 0; i < 5; ++i) {
    SocketPool::AcquireRequest request;
    request.deadline = absl::Now() + absl::Seconds(10);
    pool_->Acquire(std::move(request), [&, i](absl::StatusOr<Lease> lease) {
      {
        std::lock_guard<std::mutex> lock(order_mu);
        order.push_back(lease.ok() ? i : -1);
      }
      // Releasing (destroying) the lease hands the socket to the next waiter.
      { Lease drop = lease.ok() ? std::move(*lease) : Lease(); }
      done[i].set_value();
    });
    EXPECT_TRUE(WaitUntil([&] { return pool_->Stats().waiters == i + 1; }));
  }
  *held = Lease();  // Release the held socket: the queue drains in order.
  for (auto& d : done) d.get_future().wait_for(std::chrono::seconds(10));
  std::lock_guard<std::mutex> lock(order_mu);
  EXPECT_THAT(order, ::testing::ElementsAre(0, 1, 2, 3, 4));
}

// A waiter whose deadline passes gets DEADLINE_EXCEEDED.
TEST_F(SocketPoolTest, WaiterTimesOutWithDeadlineExceeded) {
  BackendOptions b = Backend();
  b.pool.max_sockets = 1;
  MakePool(b);
  auto held = AcquireSync(*pool_);
  ASSERT_TRUE(held.ok());
  // The code and the counted refusal say the deadline ended the wait; how long it took is not
  // asserted (a slow machine can only make it longer).
  auto second = AcquireSync(*pool_, "", absl::Milliseconds(200));
  EXPECT_EQ(second.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(observer_->Get("refused:DEADLINE_EXCEEDED"), 1);
}

// Beyond max_waiters, acquires are refused at once with RESOURCE_EXHAUSTED.
TEST_F(SocketPoolTest, MaxWaitersRejectsTheExcess) {
  BackendOptions b = Backend();
  b.pool.max_sockets = 1;
  b.pool.max_waiters = 2;
  MakePool(b);
  auto held = AcquireSync(*pool_);
  ASSERT_TRUE(held.ok());
  std::vector<std::promise<absl::Status>> results(3);
  for (int i = 0; i < 3; ++i) {
    SocketPool::AcquireRequest request;
    // Only a hang bound: the queued waiters are served by the release below, long before it.
    request.deadline = absl::Now() + absl::Seconds(60);
    // The lease is dropped when the callback returns, handing the socket to the next waiter.
    pool_->Acquire(std::move(request), [&, i](absl::StatusOr<Lease> lease) {
      results[i].set_value(lease.status());
    });
  }
  auto first = results[0].get_future();
  auto second = results[1].get_future();
  auto third = results[2].get_future();
  ASSERT_EQ(third.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_EQ(third.get().code(), absl::StatusCode::kResourceExhausted);
  // "At once": refused while the two waiters are still queued (the held socket is not yet
  // released, and their deadline is a minute away).
  EXPECT_EQ(pool_->Stats().waiters, 2);
  EXPECT_EQ(first.wait_for(std::chrono::seconds(0)), std::future_status::timeout)
      << "the refusal came only when the queued waiters were done";
  *held = Lease();
  ASSERT_EQ(first.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_TRUE(first.get().ok());
  ASSERT_EQ(second.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_TRUE(second.get().ok());
}

// A cancelled acquire gets CANCELLED and leaves the queue.
TEST_F(SocketPoolTest, CancelledAcquireLeavesQueue) {
  BackendOptions b = Backend();
  b.pool.max_sockets = 1;
  MakePool(b);
  auto held = AcquireSync(*pool_);
  ASSERT_TRUE(held.ok());
  std::promise<absl::Status> result;
  SocketPool::AcquireRequest request;
  request.deadline = absl::Now() + absl::Seconds(10);
  uint64_t ticket = pool_->Acquire(std::move(request), [&](absl::StatusOr<Lease> lease) {
    result.set_value(lease.status());
  });
  pool_->CancelAcquire(ticket);
  EXPECT_EQ(result.get_future().get().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(pool_->Stats().waiters, 0);
}

// min_idle sockets are connected before anyone asks.
TEST_F(SocketPoolTest, PrewarmsMinIdleSockets) {
  BackendOptions b = Backend();
  b.pool.min_idle = 3;
  MakePool(b);
  EXPECT_TRUE(WaitUntil([&] { return pool_->Stats().idle == 3; }));
  // In TLS 1.3 the server finishes its side of the handshake just after the client does.
  EXPECT_TRUE(server_->WaitFor(
      [](const auto& s) { return s.full_handshakes + s.resumed_handshakes == 3; },
      absl::Seconds(30)));
  // No fourth connect is in flight: prewarming stopped at min_idle. (A sleep here could not
  // prove more: nothing in the pool starts a connect later without a lease or a close.)
  EXPECT_EQ(pool_->Stats().connecting, 0);
  EXPECT_EQ(pool_->Stats().idle, 3);
  EXPECT_EQ(server_->total_handshakes(), 3);
}

// Idle sockets are handed out most-recently-used first.
TEST_F(SocketPoolTest, IdleSocketsAreReusedMostRecentlyUsedFirst) {
  MakePool(Backend());
  auto a = AcquireSync(*pool_);
  auto b = AcquireSync(*pool_);
  ASSERT_TRUE(a.ok() && b.ok());
  uint64_t a_id = a->info().socket_id;
  uint64_t b_id = b->info().socket_id;
  *a = Lease();  // a released first ...
  ASSERT_TRUE(WaitUntil([&] { return pool_->Stats().idle == 1; }));
  *b = Lease();  // ... then b: b is the most recently used.
  ASSERT_TRUE(WaitUntil([&] { return pool_->Stats().idle == 2; }));
  auto next = AcquireSync(*pool_);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->info().socket_id, b_id);
  EXPECT_NE(next->info().socket_id, a_id);
}

// A socket the backend closed while idle is noticed and never handed out.
TEST_F(SocketPoolTest, SocketClosedByBackendWhileIdleIsNeverHandedOut) {
  BackendOptions b = Backend();
  b.pool.max_sockets = 1;
  MakePool(b);
  uint64_t first;
  {
    auto lease = AcquireSync(*pool_);
    ASSERT_TRUE(lease.ok());
    first = lease->info().socket_id;
    ASSERT_TRUE(RoundTrip(*lease, "x").ok());
  }
  ASSERT_TRUE(WaitUntil([&] { return pool_->Stats().idle == 1; }));
  server_->CloseAllConnections();
  EXPECT_TRUE(WaitUntil([&] { return observer_->Get("closed:broken") == 1; }));
  auto lease = AcquireSync(*pool_);
  ASSERT_TRUE(lease.ok()) << lease.status();
  EXPECT_NE(lease->info().socket_id, first);
  auto reply = RoundTrip(*lease, "after");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "re:after");
}

// Idle sockets beyond min_idle retire after idle_timeout.
TEST_F(SocketPoolTest, IdleSocketsRetireAfterIdleTimeout) {
  BackendOptions b = Backend();
  b.pool.idle_timeout = absl::Milliseconds(100);
  MakePool(b);
  {
    auto lease = AcquireSync(*pool_);
    ASSERT_TRUE(lease.ok());
    ASSERT_TRUE(RoundTrip(*lease, "x").ok());
  }
  EXPECT_TRUE(WaitUntil([&] { return observer_->Get("closed:idle") == 1; }));
  EXPECT_EQ(pool_->Stats().idle, 0);
}

// Sockets retire after max_lifetime, and after max_leases_per_socket leases.
TEST_F(SocketPoolTest, SocketsRetireAfterMaxLeases) {
  BackendOptions b = Backend();
  b.pool.max_sockets = 1;
  b.pool.max_leases_per_socket = 2;
  MakePool(b);
  std::set<uint64_t> sockets;
  for (int i = 0; i < 4; ++i) {
    auto lease = AcquireSync(*pool_);
    ASSERT_TRUE(lease.ok());
    sockets.insert(lease->info().socket_id);
    ASSERT_TRUE(RoundTrip(*lease, "x").ok());
  }
  EXPECT_EQ(sockets.size(), 2u);
  EXPECT_TRUE(WaitUntil([&] { return observer_->Get("closed:max_leases") == 2; }));
}

// Sockets older than max_lifetime are retired.
TEST_F(SocketPoolTest, SocketsRetireAfterMaxLifetime) {
  BackendOptions b = Backend();
  b.pool.max_lifetime = absl::Milliseconds(150);
  MakePool(b);
  {
    auto lease = AcquireSync(*pool_);
    ASSERT_TRUE(lease.ok());
    ASSERT_TRUE(RoundTrip(*lease, "x").ok());
  }
  EXPECT_TRUE(WaitUntil([&] { return observer_->Get("closed:lifetime") == 1; }));
}

// A lease held past max_lease_duration is reclaimed: socket destroyed, counted.
TEST_F(SocketPoolTest, LeaseHeldPastMaxDurationIsReclaimed) {
  BackendOptions b = Backend();
  b.pool.max_sockets = 1;
  b.pool.max_lease_duration = absl::Milliseconds(100);
  MakePool(b);
  auto lease = AcquireSync(*pool_);
  ASSERT_TRUE(lease.ok());
  uint64_t first = lease->info().socket_id;
  EXPECT_TRUE(WaitUntil([&] { return observer_->Get("ended:reclaimed") == 1; }));
  // The reclaimed lease can no longer talk to the backend.
  EXPECT_FALSE(RoundTrip(*lease, "late").ok());
  // The slot is free again for someone else.
  auto next = AcquireSync(*pool_);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_NE(next->info().socket_id, first);
  ASSERT_TRUE(RoundTrip(*next, "ok").ok());
}

// Lease::SetTimeout (how Call applies pool.call_timeout): a lease still waiting for its answer
// when the timeout passes gets exactly the status it was given, and its socket, owed an answer,
// is destroyed as dirty, never handed to the next lease.
TEST_F(SocketPoolTest, LeaseTimeoutFailsTheReadInFlightWithItsStatusAndDestroysTheSocket) {
  BackendOptions b = Backend();
  b.pool.max_sockets = 1;
  MakePool(b);
  server_->set_stall_response(true);
  uint64_t first;
  {
    auto lease = AcquireSync(*pool_);
    ASSERT_TRUE(lease.ok());
    first = lease->info().socket_id;
    lease->SetTimeout(absl::Milliseconds(50), absl::DeadlineExceededError("test timeout"));
    ASSERT_TRUE(testutil::WriteSync(*lease, testutil::Frame("unanswered")).ok());
    auto reply = testutil::ReadFrameSync(*lease);
    EXPECT_EQ(reply.status(), absl::DeadlineExceededError("test timeout"));
    // Every later operation fails the same way: nothing more reaches the backend.
    EXPECT_EQ(testutil::WriteSync(*lease, testutil::Frame("more")),
              absl::DeadlineExceededError("test timeout"));
  }
  EXPECT_TRUE(WaitUntil([&] { return observer_->Get("closed:dirty") == 1; }));
  server_->set_stall_response(false);
  auto next = AcquireSync(*pool_);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_NE(next->info().socket_id, first);
  auto reply = RoundTrip(*next, "mine");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "re:mine");
}

// A lease released before its timeout goes back to the pool clean: the timer dies with it.
TEST_F(SocketPoolTest, LeaseReleasedBeforeItsTimeoutReturnsItsSocketClean) {
  BackendOptions b = Backend();
  b.pool.max_sockets = 1;
  MakePool(b);
  uint64_t first;
  {
    auto lease = AcquireSync(*pool_);
    ASSERT_TRUE(lease.ok());
    first = lease->info().socket_id;
    lease->SetTimeout(absl::Milliseconds(200), absl::DeadlineExceededError("test timeout"));
    ASSERT_TRUE(RoundTrip(*lease, "quick").ok());
  }
  ASSERT_TRUE(WaitUntil([&] { return pool_->Stats().idle == 1; }));
  // Well past the first lease's timeout: the socket is still idle and serves the next lease.
  absl::SleepFor(absl::Milliseconds(400));
  auto next = AcquireSync(*pool_);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->info().socket_id, first);
  auto reply = RoundTrip(*next, "again");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "re:again");
  EXPECT_EQ(observer_->Sum("closed:"), 0);
}

// Lease calls made on the socket's loop run at once (no trip through the loop's queue), but a
// callback never runs inside the call that caused it, even when the operation finishes at
// once: the reactors call the lease while holding a lock their callbacks take.
TEST_F(SocketPoolTest, LeaseCallbacksNeverRunInsideTheCallThatStartedThem) {
  BackendOptions b = Backend();
  b.pool.max_sockets = 1;
  MakePool(b);
  auto lease = AcquireSync(*pool_);
  ASSERT_TRUE(lease.ok());
  Lease* l = &*lease;
  std::atomic<bool> inside{false};
  std::atomic<int> inline_callbacks{0};
  ASSERT_TRUE(testutil::WriteSync(*l, testutil::Frame("one")).ok());
  std::promise<absl::Status> second_written;
  std::promise<absl::StatusOr<std::string>> first_reply;
  l->ReadFrame([&](absl::StatusOr<std::string> reply) {
    // On the socket's loop, from a read: a small write on a socket with room finishes at once.
    inside = true;
    l->Write(testutil::Frame("two"), [&](absl::Status s) {
      if (inside) ++inline_callbacks;
      second_written.set_value(s);
    });
    inside = false;
    first_reply.set_value(std::move(reply));
  });
  auto one = first_reply.get_future().get();
  EXPECT_TRUE(second_written.get_future().get().ok());
  EXPECT_EQ(inline_callbacks.load(), 0);
  auto two = testutil::ReadFrameSync(*l);
  ASSERT_TRUE(one.ok()) << one.status();
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(*one, testutil::Frame("re:one"));
  EXPECT_EQ(*two, testutil::Frame("re:two"));
}

// With the backend down, waiters fail fast (with the reason, not waiting out their deadline),
// and the pool refills to min_idle once the backend is back.
TEST_F(SocketPoolTest, BackendDownFailsWaitersFastAndPoolRefillsWhenBack) {
  BackendOptions b = Backend();
  b.pool.min_idle = 2;
  MakePool(b);
  ASSERT_TRUE(WaitUntil([&] { return pool_->Stats().idle == 2; }));
  server_->Stop();
  // A wait that ran out would end DEADLINE_EXCEEDED; the deadline only catches a hang.
  auto lease = AcquireSync(*pool_, "", absl::Seconds(60));
  // The idle sockets were closed by the stop; the acquire needs a new connection and fails.
  ASSERT_FALSE(lease.ok());
  EXPECT_EQ(lease.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ReasonOf(lease.status()), "connect_refused") << lease.status();
  ASSERT_TRUE(server_->Start().ok());
  EXPECT_TRUE(WaitUntil([&] { return pool_->Stats().idle == 2; }, absl::Seconds(30)));
  auto again = AcquireSync(*pool_);
  ASSERT_TRUE(again.ok()) << again.status();
  ASSERT_TRUE(RoundTrip(*again, "back").ok());
}

// A backend whose certificate fails verification: the waiter gets the verification reason.
TEST_F(SocketPoolTest, HandshakeFailureReasonReachesTheWaiter) {
  BackendOptions b = Backend();
  b.server_name = "wrong.example";
  MakePool(b);
  auto lease = AcquireSync(*pool_);
  ASSERT_FALSE(lease.ok());
  EXPECT_EQ(lease.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ReasonOf(lease.status()), "hostname_mismatch") << lease.status();
  EXPECT_EQ(observer_->Get("verify_failure:hostname_mismatch"), 1);
}

// An OCSP refusal reaches the waiter and the metric labels: a responder that is down, with
// on_unreachable FAIL, refuses with ocsp_unreachable and counts an answer-less OCSP check.
TEST_F(SocketPoolTest, OcspUnreachableReasonReachesTheWaiterAndMetrics) {
  BackendOptions b = Backend();
  b.tls.ocsp.mode = OcspMode::kQuery;
  testutil::RefusingPort responder;  // down for the whole test
  b.tls.ocsp.responder_url = absl::StrCat("http://127.0.0.1:", responder.port(), "/");
  MakePool(b);
  auto lease = AcquireSync(*pool_);
  ASSERT_FALSE(lease.ok());
  EXPECT_EQ(lease.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ReasonOf(lease.status()), "ocsp_unreachable") << lease.status();
  EXPECT_GE(observer_->Get("verify_failure:ocsp_unreachable"), 1);
  EXPECT_GE(observer_->Sum("handshake:ocsp_unreachable"), 1);
  EXPECT_GE(observer_->Get("ocsp:none:unreachable"), 1);
}

// With on_unreachable ALLOW the same backend serves leases, and the check is still counted.
TEST_F(SocketPoolTest, OcspUnreachableWithAllowGrantsTheLease) {
  BackendOptions b = Backend();
  b.tls.ocsp.mode = OcspMode::kQuery;
  testutil::RefusingPort responder;  // down for the whole test
  b.tls.ocsp.responder_url = absl::StrCat("http://127.0.0.1:", responder.port(), "/");
  b.tls.ocsp.on_unreachable = FailPolicy::kAllow;
  MakePool(b);
  auto lease = AcquireSync(*pool_);
  ASSERT_TRUE(lease.ok()) << lease.status();
  EXPECT_TRUE(RoundTrip(*lease, "hi").ok());
  EXPECT_EQ(observer_->Get("ocsp:none:unreachable"), 1);
}

// Shutdown fails waiters and refuses new acquires with UNAVAILABLE.
TEST_F(SocketPoolTest, ShutdownRefusesNewLeases) {
  MakePool(Backend());
  pool_->Shutdown();
  auto lease = AcquireSync(*pool_);
  EXPECT_EQ(lease.status().code(), absl::StatusCode::kUnavailable);
}

// Shutdown (an admin drain) is reversible: after Resume the pool prewarms to min_idle again
// and lends; a lease held across drain and resume returns its socket to the pool.
TEST_F(SocketPoolTest, ResumeAfterShutdownLendsAndRefillsMinIdle) {
  BackendOptions b = Backend();
  b.pool.min_idle = 1;
  MakePool(b);
  ASSERT_TRUE(testutil::WaitUntil([&] { return pool_->Stats().idle == 1; }, absl::Seconds(20)));
  auto held = testutil::AcquireSync(*pool_);
  ASSERT_TRUE(held.ok()) << held.status();
  pool_->Shutdown();
  auto refused = testutil::AcquireSync(*pool_);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("draining"));

  pool_->Resume();
  // Prewarm runs again: min_idle besides the socket still leased.
  ASSERT_TRUE(testutil::WaitUntil([&] { return pool_->Stats().idle == 1; }, absl::Seconds(20)));
  const uint64_t held_socket = held->info().socket_id;
  *held = Lease();  // Released after the resume: back to the pool, not closed.
  ASSERT_TRUE(testutil::WaitUntil([&] { return pool_->Stats().idle == 2; }, absl::Seconds(20)));
  bool reused_held = false;
  for (const SocketSnapshot& s : pool_->Sockets()) reused_held |= s.socket_id == held_socket;
  EXPECT_TRUE(reused_held);
  auto again = testutil::AcquireSync(*pool_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->info().reused);
}

// `addresses`: a new socket tries them in order. With the first one refusing (a port bound
// but never listening) the socket comes from the second, every time, and each attempt is
// reported per address.
TEST_F(SocketPoolTest, DeadFirstAddressFailsOverToTheNextInOrder) {
  testutil::RefusingPort dead;
  ASSERT_GT(dead.port(), 0);
  BackendOptions b = Backend();
  const std::string dead_address = absl::StrCat("127.0.0.1:", dead.port());
  const std::string live_address = absl::StrCat("127.0.0.1:", server_->port());
  b.endpoints = {{dead_address, "127.0.0.1", static_cast<uint16_t>(dead.port())},
                 {live_address, "127.0.0.1", static_cast<uint16_t>(server_->port())}};
  MakePool(b);
  auto first = AcquireSync(*pool_, "TLSB0001");
  ASSERT_TRUE(first.ok()) << first.status();
  auto echoed = RoundTrip(*first, "via the second address");
  ASSERT_TRUE(echoed.ok()) << echoed.status();
  EXPECT_EQ(*echoed, "re:via the second address");
  EXPECT_EQ(observer_->Get("connect:" + dead_address + ":failed"), 1);
  EXPECT_EQ(observer_->Get("connect:" + live_address + ":ok"), 1);
  // A second socket starts at the first address again.
  auto second = AcquireSync(*pool_, "TLSB0002");
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(observer_->Get("connect:" + dead_address + ":failed"), 2);
  EXPECT_EQ(observer_->Get("connect:" + live_address + ":ok"), 2);
  EXPECT_EQ(observer_->Get("connect:" + dead_address + ":ok"), 0);
  // The server finishes its side of a TLS 1.3 handshake just after the client does.
  EXPECT_TRUE(server_->WaitFor(
      [](const auto& st) { return st.full_handshakes + st.resumed_handshakes == 2; },
      absl::Seconds(30)));
  EXPECT_EQ(pool_->Stats().connect_failures, 0u);  // A round that found a socket did not fail.
}

// When every address fails, the failure names the last one and the pool backs off as with one
// address.
TEST_F(SocketPoolTest, EveryAddressFailingIsOneFailureNamingTheLastAddress) {
  testutil::RefusingPort dead1;
  testutil::RefusingPort dead2;
  ASSERT_GT(dead1.port(), 0);
  ASSERT_GT(dead2.port(), 0);
  BackendOptions b = Backend();
  const std::string a1 = absl::StrCat("127.0.0.1:", dead1.port());
  const std::string a2 = absl::StrCat("127.0.0.1:", dead2.port());
  b.endpoints = {{a1, "127.0.0.1", static_cast<uint16_t>(dead1.port())},
                 {a2, "127.0.0.1", static_cast<uint16_t>(dead2.port())}};
  MakePool(b);
  auto lease = AcquireSync(*pool_);
  ASSERT_FALSE(lease.ok());
  EXPECT_EQ(lease.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ReasonOf(lease.status()), "connect_refused");
  EXPECT_THAT(std::string(lease.status().message()), HasSubstr(absl::StrCat("address ", a2)));
  EXPECT_EQ(observer_->Get("connect:" + a1 + ":failed"), 1);
  EXPECT_EQ(observer_->Get("connect:" + a2 + ":failed"), 1);
  EXPECT_EQ(pool_->Stats().connect_failures, 1u);
}

}  // namespace
}  // namespace tlsbroker
