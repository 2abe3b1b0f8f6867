// OCSP re-checks of pooled sockets against real peers: a real `openssl ocsp` responder
// (tests/support/ocsp_responder.py runs it once per request, so it reads its `openssl ca`
// index afresh every time) and the project's multi-connection TLS test server as the backend.
// The responder's answers hold for a day (-ndays 1); a recheck_margin longer than that makes
// the pool re-check at its minimum interval (1 s), so the tests see re-checks within seconds.

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "broker/pool/socket_pool.h"
#include "broker/tls/failure_reason.h"
#include "gtest/gtest.h"
#include "tests/broker/pool/pool_test_util.h"
#include "tests/broker/pool/recording_observer.h"
#include "tests/support/ocsp_responder_process.h"
#include "tests/support/openssl_server.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_pki.h"
#include "tests/support/tls_test_server.h"

namespace tlsbroker {
namespace {

using testutil::AcquireSync;
using testutil::OpensslServer;
using testutil::PkiPath;
using testutil::RoundTrip;
using testutil::Subprocess;
using testutil::WaitUntil;

// Generous: re-checks run every second, but CI machines are slow and shared.
constexpr absl::Duration kPatience = absl::Seconds(20);

// A real `openssl ocsp` responder on 127.0.0.1, answering from `index` (an `openssl ca` index).
std::unique_ptr<testutil::OcspResponderProcess> StartResponder(const std::string& index) {
  auto responder = testutil::OcspResponderProcess::Start(index);
  EXPECT_TRUE(responder.ok()) << responder.status();
  return responder.ok() ? *std::move(responder) : nullptr;
}

class OcspRecheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::path(::testing::TempDir()) /
           absl::StrCat("tlsb-ocsp-recheck-", getpid(), "-", info->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    observer_ = std::make_shared<testutil::RecordingObserver>();
    // The responder reads a copy of the PKI's index, which the tests edit.
    index_ = (dir_ / "index.txt").string();
    std::filesystem::copy_file(PkiPath("ec", "int-db/index.txt"), index_);
    responder_ = StartResponder(index_);
    ASSERT_NE(responder_, nullptr);

    auto options = testutil::TlsTestServer::PkiOptions("ec");
    options.cert_file = PkiPath("ec", "server.crt");
    options.key_file = PkiPath("ec", "server.key");
    options.chain_file = PkiPath("ec", "int.crt");
    options.mode = testutil::TlsTestServerMode::kFramedEcho;
    options.response_prefix = "re:";
    auto server = testutil::TlsTestServer::Create(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  void TearDown() override {
    if (pool_) pool_->Shutdown();
    pool_.reset();
    loops_.reset();
    server_.reset();
    responder_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  BackendOptions Backend() {
    BackendOptions b = testutil::FramedBackend(server_->port());
    b.tls.ocsp.mode = OcspMode::kQuery;
    b.tls.ocsp.responder_url = responder_->url();
    b.tls.ocsp.timeout = absl::Seconds(10);
    // Longer than the answers' day: re-check at the pool's minimum interval.
    b.tls.ocsp.recheck_margin = absl::Hours(25);
    return b;
  }

  void MakePool(const BackendOptions& options) {
    auto pool = SocketPool::Create(options, loops_.get(), observer_);
    ASSERT_TRUE(pool.ok()) << pool.status();
    pool_ = *std::move(pool);
    pool_->Start();
  }

  // Marks the backend's certificate (CN=QM2.backend) revoked in the responder's index, as
  // `openssl ca -revoke` would.
  void RevokeBackendCertificate() {
    std::ifstream in(index_);
    std::stringstream text;
    text << in.rdbuf();
    const std::string revoked_at =
        absl::FormatTime("%y%m%d%H%M%SZ", absl::Now() - absl::Minutes(1), absl::UTCTimeZone());
    std::vector<std::string> lines;
    bool found = false;
    for (absl::string_view line : absl::StrSplit(text.str(), '\n', absl::SkipEmpty())) {
      std::vector<std::string> f = absl::StrSplit(line, '\t');
      if (f.size() == 6 && f[0] == "V" && absl::EndsWith(f[5], "/CN=QM2.backend")) {
        f[0] = "R";
        f[2] = revoked_at + ",keyCompromise";
        found = true;
      }
      lines.push_back(absl::StrJoin(f, "\t"));
    }
    ASSERT_TRUE(found) << text.str();
    // Written aside and renamed: the responder never reads a half-written index.
    const std::string next = index_ + ".next";
    std::ofstream(next) << absl::StrJoin(lines, "\n") << "\n";
    std::filesystem::rename(next, index_);
  }

  std::filesystem::path dir_;
  std::string index_;
  std::unique_ptr<testutil::OcspResponderProcess> responder_;
  std::unique_ptr<EventLoops> loops_ = std::make_unique<EventLoops>(2);
  std::unique_ptr<testutil::TlsTestServer> server_;
  std::shared_ptr<testutil::RecordingObserver> observer_;
  std::shared_ptr<SocketPool> pool_;
};

// While the responder keeps answering good, a pooled socket is re-checked (a new query each
// time the answer nears expiry), stays open, and its re-arm is visible as further queries.
TEST_F(OcspRecheckTest, GoodAnswerReArmsTheRecheckAndKeepsTheSocket) {
  BackendOptions b = Backend();
  b.pool.min_idle = 1;
  MakePool(b);
  ASSERT_TRUE(WaitUntil([&] { return pool_->Stats().idle == 1; }, kPatience));
  const std::vector<SocketSnapshot> before = pool_->Sockets();
  ASSERT_EQ(before.size(), 1u);
  EXPECT_EQ(before[0].tls.ocsp_status, "good");

  // The handshake's query, then at least two re-checks: each answer re-armed the next one.
  EXPECT_TRUE(WaitUntil([&] { return responder_->requests() >= 3; }, kPatience))
      << responder_->log();
  EXPECT_TRUE(WaitUntil([&] { return observer_->Get("ocsp:responder:good") >= 3; }, kPatience));
  const std::vector<SocketSnapshot> after = pool_->Sockets();
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0].socket_id, before[0].socket_id);
  EXPECT_EQ(after[0].state, "idle");
  EXPECT_EQ(after[0].tls.ocsp_source, "responder");
  EXPECT_EQ(pool_->Stats().sockets_created, 1u);
  auto lease = AcquireSync(*pool_);
  ASSERT_TRUE(lease.ok()) << lease.status();
  EXPECT_TRUE(RoundTrip(*lease, "still-good").ok());
}

// The responder starts answering revoked: the idle sockets are closed within a bounded time
// (reason revoked), the backend sees them go, and new handshakes fail certificate_revoked.
TEST_F(OcspRecheckTest, RevokedAnswerClosesIdleSocketsAndRefusesNewHandshakes) {
  MakePool(Backend());
  // Two idle sockets, made one after the other: under TSan, two handshakes verifying against
  // one context at the same moment on two loops trip a race report inside libcrypto (which is
  // not instrumented), unrelated to the re-check under test.
  {
    auto first = AcquireSync(*pool_);
    ASSERT_TRUE(first.ok()) << first.status();
    auto second = AcquireSync(*pool_);
    ASSERT_TRUE(second.ok()) << second.status();
  }
  ASSERT_TRUE(WaitUntil([&] { return pool_->Stats().idle == 2; }, kPatience));
  EXPECT_EQ(observer_->Get("closed:revoked"), 0);

  RevokeBackendCertificate();
  EXPECT_TRUE(WaitUntil([&] { return observer_->Get("closed:revoked") >= 2; }, kPatience))
      << observer_->Get("closed:revoked") << "\n" << responder_->log();
  EXPECT_GE(observer_->Get("ocsp:responder:revoked"), 1);
  EXPECT_TRUE(WaitUntil([&] { return server_->current_connections() == 0; }, kPatience));

  auto lease = AcquireSync(*pool_, "", absl::Seconds(5));
  ASSERT_FALSE(lease.ok());
  EXPECT_EQ(ReasonOf(lease.status()), "certificate_revoked") << lease.status();
  EXPECT_GE(observer_->Get("verify_failure:certificate_revoked"), 1);
}

// on_revoked FINISH_LEASE: a leased socket keeps serving its lease after the revoked answer,
// and is closed (reason revoked) rather than pooled when the lease ends.
TEST_F(OcspRecheckTest, RevokedAnswerWithFinishLeaseClosesTheSocketAtLeaseEnd) {
  BackendOptions b = Backend();
  b.tls.on_revoked = RevokedLeasePolicy::kFinishLease;
  MakePool(b);
  auto lease = AcquireSync(*pool_);
  ASSERT_TRUE(lease.ok()) << lease.status();
  ASSERT_TRUE(RoundTrip(*lease, "before").ok());

  RevokeBackendCertificate();
  ASSERT_TRUE(
      WaitUntil([&] { return observer_->Get("ocsp:responder:revoked") >= 1; }, kPatience))
      << responder_->log();
  auto reply = RoundTrip(*lease, "during");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "re:during");
  EXPECT_EQ(observer_->Get("closed:revoked"), 0);

  *lease = Lease();
  EXPECT_TRUE(WaitUntil([&] { return observer_->Get("closed:revoked") == 1; }, kPatience));
  EXPECT_TRUE(WaitUntil([&] { return server_->current_connections() == 0; }, kPatience));
  EXPECT_EQ(pool_->Stats().idle, 0);
}

// on_revoked ABORT_LEASE: the revoked answer ends the lease at once; the read it was waiting
// on fails with UNAVAILABLE certificate_revoked.
TEST_F(OcspRecheckTest, RevokedAnswerWithAbortLeaseEndsTheLease) {
  BackendOptions b = Backend();
  b.tls.on_revoked = RevokedLeasePolicy::kAbortLease;
  MakePool(b);
  auto lease = AcquireSync(*pool_);
  ASSERT_TRUE(lease.ok()) << lease.status();
  ASSERT_TRUE(RoundTrip(*lease, "before").ok());

  std::promise<absl::StatusOr<std::string>> pending;
  auto pending_result = pending.get_future();
  lease->ReadFrame([&pending](absl::StatusOr<std::string> r) { pending.set_value(std::move(r)); });
  RevokeBackendCertificate();
  ASSERT_EQ(pending_result.wait_for(absl::ToChronoSeconds(kPatience)), std::future_status::ready)
      << responder_->log();
  absl::StatusOr<std::string> read = pending_result.get();
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kUnavailable) << read.status();
  EXPECT_EQ(ReasonOf(read.status()), "certificate_revoked") << read.status();
  *lease = Lease();
  EXPECT_TRUE(WaitUntil([&] { return observer_->Get("closed:revoked") == 1; }, kPatience));
}

// The responder goes down (on_unreachable FAIL): a failed re-check does not close a socket
// whose previous good answer still holds for hours; it stays pooled and usable.
TEST_F(OcspRecheckTest, UnreachableResponderKeepsTheSocketWhileItsAnswerHolds) {
  BackendOptions b = Backend();
  b.pool.min_idle = 1;
  MakePool(b);
  ASSERT_TRUE(WaitUntil([&] { return pool_->Stats().idle == 1; }, kPatience));
  const uint64_t socket_id = pool_->Sockets().at(0).socket_id;

  responder_.reset();  // Stops the responder process; its port refuses connections.
  EXPECT_TRUE(
      WaitUntil([&] { return observer_->Get("ocsp:none:unreachable") >= 1; }, kPatience));
  const std::vector<SocketSnapshot> after = pool_->Sockets();
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0].socket_id, socket_id);
  EXPECT_EQ(pool_->Stats().sockets_created, 1u);
  auto lease = AcquireSync(*pool_);
  ASSERT_TRUE(lease.ok()) << lease.status();
  EXPECT_TRUE(RoundTrip(*lease, "still-pooled").ok());
}

// STAPLE_ONLY cannot query a responder: a pooled socket is replaced by a new handshake (a
// fresh staple) before its stapled answer expires. The margin is longer than the staple's day,
// so the replacement comes at the pool's minimum re-check interval.
TEST_F(OcspRecheckTest, StapleOnlySocketIsReplacedBeforeItsStapleExpires) {
  // A good answer for the backend's certificate, made by the real `openssl ocsp`.
  const std::string req = (dir_ / "server.req.der").string();
  const std::string staple = (dir_ / "server.resp.der").string();
  auto made_req = testutil::RunCommand({"openssl", "ocsp", "-issuer", PkiPath("ec", "int.crt"),
                                        "-cert", PkiPath("ec", "server.crt"), "-no_nonce",
                                        "-reqout", req});
  ASSERT_TRUE(made_req.ok() && made_req->exit_code == 0)
      << (made_req.ok() ? made_req->output : made_req.status().ToString());
  auto made_resp = testutil::RunCommand(
      {"openssl", "ocsp", "-index", index_, "-CA", PkiPath("ec", "int.crt"), "-rsigner",
       PkiPath("ec", "ocsp.crt"), "-rkey", PkiPath("ec", "ocsp.key"), "-rother",
       PkiPath("ec", "int.crt"), "-reqin", req, "-respout", staple, "-ndays", "1"});
  ASSERT_TRUE(made_resp.ok() && made_resp->exit_code == 0)
      << (made_resp.ok() ? made_resp->output : made_resp.status().ToString());
  OpensslServer::Options options = OpensslServer::PkiOptions("ec");
  options.extra_args = {"-status_file", staple};
  auto stapling = OpensslServer::Start(std::move(options));
  ASSERT_TRUE(stapling.ok()) << stapling.status();

  BackendOptions b = testutil::FramedBackend((*stapling)->port());
  b.tls.ocsp.mode = OcspMode::kStapleOnly;
  b.tls.ocsp.recheck_margin = absl::Hours(25);
  b.pool.min_idle = 1;
  MakePool(b);
  EXPECT_TRUE(WaitUntil([&] { return observer_->Get("closed:ocsp_refresh") >= 1; }, kPatience))
      << observer_->Get("closed:ocsp_refresh");
  // Replaced, not just closed: a second handshake, again with a good staple.
  EXPECT_TRUE(WaitUntil([&] { return pool_->Stats().sockets_created >= 2; }, kPatience));
  // A full handshake each time (a resumed one would carry no staple).
  EXPECT_TRUE(WaitUntil([&] { return observer_->Get("ocsp:staple:good") >= 2; }, kPatience))
      << observer_->Get("ocsp:staple:good") << " " << observer_->Get("ocsp:cache:good");
  EXPECT_EQ(pool_->Stats().handshakes_resumed, 0u);
  EXPECT_EQ(responder_->requests(), 0);  // STAPLE_ONLY never asks the responder.
  pool_->Shutdown();
}

}  // namespace
}  // namespace tlsbroker
