// Re-checking what the pool holds: CRLs replaced at run time (Kubernetes-style symlink swaps),
// stale CRLs, credential rotation and backend certificates expiring while pooled. Against the
// real multi-connection TLS test server and real CRL and certificate files.

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "absl/strings/str_cat.h"
#include "broker/pool/socket_pool.h"
#include "broker/tls/failure_reason.h"
#include "gtest/gtest.h"
#include "tests/broker/pool/pool_test_util.h"
#include "tests/broker/pool/recording_observer.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_pki_files.h"
#include "tests/support/tls_test_server.h"

namespace tlsbroker {
namespace {

using testutil::AcquireSync;
using testutil::KubernetesStyleDir;
using testutil::PkiPath;
using testutil::ReadFileOrEmpty;
using testutil::RoundTrip;
using testutil::WaitUntil;

// Generous: the watch interval is 100 ms, but CI machines are slow and shared.
constexpr absl::Duration kPatience = absl::Seconds(15);

class RevocationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::path(::testing::TempDir()) /
           absl::StrCat("tlsb-revocation-", getpid(), "-", info->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    observer_ = std::make_shared<testutil::RecordingObserver>();
  }

  void TearDown() override {
    if (pool_) pool_->Shutdown();
    pool_.reset();
    loops_.reset();
    server_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // A framed-echo backend presenting `cert`/`key` (the PKI's, or files made by the test).
  void StartServer(const std::string& cert, const std::string& key) {
    auto options = testutil::TlsTestServer::PkiOptions("ec");
    options.cert_file = cert;
    options.key_file = key;
    options.mode = testutil::TlsTestServerMode::kFramedEcho;
    options.response_prefix = "re:";
    auto server = testutil::TlsTestServer::Create(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  BackendOptions Backend() {
    BackendOptions b = testutil::FramedBackend(server_->port());
    b.tls.watch_interval = absl::Milliseconds(100);
    return b;
  }

  void MakePool(const BackendOptions& options) {
    auto pool = SocketPool::Create(options, loops_.get(), observer_);
    ASSERT_TRUE(pool.ok()) << pool.status();
    pool_ = *std::move(pool);
    pool_->Start();
  }

  // CRL contents of the intermediate CA, revoking `revoked`, current for a day (or stale).
  std::string Crl(const std::vector<std::string>& revoked, bool stale = false) {
    const std::string path = (dir_ / "made.crl.pem").string();
    absl::Time now = absl::Now();
    absl::Status status =
        stale ? testutil::WriteIntermediateCrl("ec", path, revoked, now - absl::Hours(48),
                                               now - absl::Hours(24))
              : testutil::WriteIntermediateCrl("ec", path, revoked, now - absl::Minutes(1),
                                               now + absl::Hours(24));
    EXPECT_TRUE(status.ok()) << status;
    return ReadFileOrEmpty(path);
  }

  std::string Dir(absl::string_view name) { return (dir_ / std::string(name)).string(); }

  // A CRL of the intermediate CA made by `openssl ca -gencrl` from a copy of the test PKI's CA
  // database (so it lists the PKI's revoked-* certificates), current for `valid_for` from
  // now. `*stale_after` is set to a time by which its nextUpdate has surely passed.
  std::string OpensslCaCrl(absl::Duration valid_for, absl::Time* stale_after) {
    const std::filesystem::path ca = dir_ / "ca";
    std::filesystem::create_directories(ca);
    std::filesystem::copy(PkiPath("ec", "int-db"), ca / "int-db",
                          std::filesystem::copy_options::recursive);
    std::filesystem::copy_file(PkiPath("ec", "int.key"), ca / "int.key");
    std::filesystem::copy_file(PkiPath("ec", "int.crt"), ca / "int.crt");
    const std::string out = Dir("ca-made.crl.pem");
    const absl::Time before = absl::Now();
    auto result = testutil::RunCommand(
        {"sh", "-c",
         absl::StrCat("cd '", ca.string(),
                      "' && openssl ca -gencrl -batch -config int-db/ca.cnf -keyfile int.key "
                      "-cert int.crt -crlexts crl_ext -crlsec ",
                      absl::ToInt64Seconds(valid_for), " -out '", out, "'")});
    EXPECT_TRUE(result.ok() && result->exit_code == 0)
        << (result.ok() ? result->output : result.status().ToString());
    // CRL times have whole seconds; one more covers the rounding.
    *stale_after = before + valid_for + absl::Seconds(1) + (absl::Now() - before);
    return out;
  }

  std::filesystem::path dir_;
  std::unique_ptr<EventLoops> loops_ = std::make_unique<EventLoops>(2);
  std::unique_ptr<testutil::TlsTestServer> server_;
  std::shared_ptr<testutil::RecordingObserver> observer_;
  std::shared_ptr<SocketPool> pool_;
};

// A CRL replaced at run time by a Kubernetes-style `..data` symlink swap: the pooled idle
// sockets to the newly revoked backend certificate are closed (reason revoked) within a
// bounded time, and new handshakes fail with certificate_revoked.
TEST_F(RevocationTest, CrlSwappedBySymlinkClosesIdleRevokedSocketsAndRefusesNewHandshakes) {
  StartServer(PkiPath("ec", "revoked-server.crt"), PkiPath("ec", "revoked-server.key"));
  KubernetesStyleDir secret(Dir("crl-secret"));
  ASSERT_TRUE(secret.Publish({{"int.crl.pem", Crl({})}}).ok());
  BackendOptions b = Backend();
  b.tls.crl_files = {secret.Path("int.crl.pem")};
  b.pool.min_idle = 2;
  MakePool(b);
  ASSERT_TRUE(WaitUntil([&] { return pool_->Stats().idle == 2; }, kPatience));

  ASSERT_TRUE(
      secret.Publish({{"int.crl.pem", Crl({PkiPath("ec", "revoked-server.crt")})}}).ok());
  EXPECT_TRUE(WaitUntil([&] { return observer_->Get("closed:revoked") >= 2; }, kPatience))
      << observer_->Get("closed:revoked");
  EXPECT_TRUE(WaitUntil([&] { return server_->current_connections() == 0; }, kPatience));

  auto lease = AcquireSync(*pool_, "", absl::Seconds(5));
  ASSERT_FALSE(lease.ok());
  EXPECT_EQ(ReasonOf(lease.status()), "certificate_revoked") << lease.status();
  EXPECT_GE(observer_->Get("verify_failure:certificate_revoked"), 1);
}

// With file watching off, a Reload (Prepare/ApplyReconfigure) re-reads the CRLs and re-checks
// the pooled sockets the same way.
TEST_F(RevocationTest, ReloadAppliesANewCrlToPooledSockets) {
  StartServer(PkiPath("ec", "revoked-server.crt"), PkiPath("ec", "revoked-server.key"));
  const std::string crl = Dir("int.crl.pem");
  {
    std::ofstream(crl) << Crl({});
  }
  BackendOptions b = Backend();
  b.tls.crl_files = {crl};
  b.tls.watch_interval = absl::ZeroDuration();
  b.pool.min_idle = 1;
  // The TLS lifecycle's tick (every second with watching off) is where a watched file would be
  // re-read; each tick reports the CRL state ("crl_report").
  b.pool.idle_timeout = absl::Milliseconds(400);
  MakePool(b);
  ASSERT_TRUE(WaitUntil([&] { return pool_->Stats().idle == 1; }, kPatience));
  {
    std::ofstream(crl) << Crl({PkiPath("ec", "revoked-server.crt")});
  }
  // Watching is off: two whole ticks after the write change nothing by themselves.
  const int sweeps = observer_->Get("crl_report");
  ASSERT_TRUE(WaitUntil([&] { return observer_->Get("crl_report") >= sweeps + 2; }, kPatience));
  EXPECT_EQ(observer_->Get("closed:revoked"), 0);

  auto context = pool_->PrepareReconfigure(b);
  ASSERT_TRUE(context.ok()) << context.status();
  pool_->ApplyReconfigure(b, *context);
  EXPECT_TRUE(WaitUntil([&] { return observer_->Get("closed:revoked") >= 1; }, kPatience));
}

// FINISH_LEASE: a leased socket whose certificate is revoked keeps serving its lease, and is
// closed (not pooled) when the lease ends.
TEST_F(RevocationTest, FinishLeaseLetsTheLeaseEndThenClosesTheSocket) {
  StartServer(PkiPath("ec", "revoked-server.crt"), PkiPath("ec", "revoked-server.key"));
  KubernetesStyleDir secret(Dir("crl-secret"));
  ASSERT_TRUE(secret.Publish({{"int.crl.pem", Crl({})}}).ok());
  BackendOptions b = Backend();
  b.tls.crl_files = {secret.Path("int.crl.pem")};
  b.tls.on_revoked = RevokedLeasePolicy::kFinishLease;
  MakePool(b);
  auto lease = AcquireSync(*pool_);
  ASSERT_TRUE(lease.ok()) << lease.status();
  ASSERT_TRUE(RoundTrip(*lease, "before").ok());

  ASSERT_TRUE(
      secret.Publish({{"int.crl.pem", Crl({PkiPath("ec", "revoked-server.crt")})}}).ok());
  pool_->tls_lifecycle().CheckTlsFiles();  // The new CRL is in force once this returns.
  auto reply = RoundTrip(*lease, "during");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "re:during");
  EXPECT_EQ(observer_->Get("closed:revoked"), 0);

  *lease = Lease();
  EXPECT_TRUE(WaitUntil([&] { return observer_->Get("closed:revoked") == 1; }, kPatience));
  EXPECT_TRUE(WaitUntil([&] { return server_->current_connections() == 0; }, kPatience));
  EXPECT_EQ(pool_->Stats().idle, 0);
}

// ABORT_LEASE: the lease is ended at once; the read it was waiting on, and any later
// operation, fail with UNAVAILABLE certificate_revoked; nothing more is exchanged.
TEST_F(RevocationTest, AbortLeaseEndsTheLeaseWithCertificateRevoked) {
  StartServer(PkiPath("ec", "revoked-server.crt"), PkiPath("ec", "revoked-server.key"));
  KubernetesStyleDir secret(Dir("crl-secret"));
  ASSERT_TRUE(secret.Publish({{"int.crl.pem", Crl({})}}).ok());
  BackendOptions b = Backend();
  b.tls.crl_files = {secret.Path("int.crl.pem")};
  b.tls.on_revoked = RevokedLeasePolicy::kAbortLease;
  MakePool(b);
  auto lease = AcquireSync(*pool_);
  ASSERT_TRUE(lease.ok()) << lease.status();
  ASSERT_TRUE(RoundTrip(*lease, "before").ok());

  // A read waiting for the backend when the revocation arrives.
  std::promise<absl::StatusOr<std::string>> pending;
  auto pending_result = pending.get_future();
  lease->ReadFrame([&pending](absl::StatusOr<std::string> r) { pending.set_value(std::move(r)); });
  ASSERT_TRUE(
      secret.Publish({{"int.crl.pem", Crl({PkiPath("ec", "revoked-server.crt")})}}).ok());
  ASSERT_EQ(pending_result.wait_for(std::chrono::seconds(15)), std::future_status::ready);
  absl::StatusOr<std::string> read = pending_result.get();
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kUnavailable) << read.status();
  EXPECT_EQ(ReasonOf(read.status()), "certificate_revoked") << read.status();

  absl::Status write = testutil::WriteSync(*lease, testutil::Frame("after"));
  EXPECT_EQ(ReasonOf(write), "certificate_revoked") << write;
  const int64_t requests = server_->stats().requests;
  *lease = Lease();
  EXPECT_TRUE(WaitUntil([&] { return observer_->Get("closed:revoked") == 1; }, kPatience));
  EXPECT_EQ(server_->stats().requests, requests);  // "after" never reached the backend.
}

// A changed CRL file that does not parse leaves the previous CRL in force (sockets stay,
// handshakes succeed as before) and is counted once in the reload-failure metric.
TEST_F(RevocationTest, BrokenCrlFileKeepsThePreviousCrlAndIsCounted) {
  StartServer(PkiPath("ec", "revoked-server.crt"), PkiPath("ec", "revoked-server.key"));
  KubernetesStyleDir secret(Dir("crl-secret"));
  ASSERT_TRUE(secret.Publish({{"int.crl.pem", Crl({})}}).ok());
  BackendOptions b = Backend();
  b.tls.crl_files = {secret.Path("int.crl.pem")};
  b.pool.min_idle = 1;
  MakePool(b);
  ASSERT_TRUE(WaitUntil([&] { return pool_->Stats().idle == 1; }, kPatience));

  ASSERT_TRUE(secret.Publish({{"int.crl.pem", "-----BEGIN X509 CRL-----\ngarbage\n"}}).ok());
  ASSERT_TRUE(WaitUntil([&] { return observer_->Get("crl_reload_failure") == 1; }, kPatience));
  pool_->tls_lifecycle().CheckTlsFiles();
  pool_->tls_lifecycle().CheckTlsFiles();
  EXPECT_EQ(observer_->Get("crl_reload_failure"), 1);  // Once per broken version, not per tick.
  EXPECT_EQ(observer_->Get("closed:revoked"), 0);
  EXPECT_EQ(pool_->Stats().idle, 1);
  // New handshakes still use the previous (empty) CRL: with the idle socket leased, a second
  // lease needs a new socket.
  auto first = AcquireSync(*pool_);
  ASSERT_TRUE(first.ok()) << first.status();
  const int64_t handshakes = server_->total_handshakes();
  auto second = AcquireSync(*pool_);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(server_->WaitFor(
      [&](const testutil::TlsTestServerStats& st) {
        return st.full_handshakes + st.resumed_handshakes > handshakes;
      },
      kPatience));
  EXPECT_TRUE(RoundTrip(*second, "x").ok());
  *first = Lease();
  *second = Lease();

  // A good CRL afterwards is picked up as usual.
  ASSERT_TRUE(
      secret.Publish({{"int.crl.pem", Crl({PkiPath("ec", "revoked-server.crt")})}}).ok());
  EXPECT_TRUE(WaitUntil([&] { return observer_->Get("closed:revoked") >= 1; }, kPatience));
}

// stale_crl FAIL: a CRL past its nextUpdate refuses new handshakes (reason crl_stale) and is
// reported stale.
TEST_F(RevocationTest, StaleCrlWithFailRefusesNewHandshakes) {
  StartServer(PkiPath("ec", "server.crt"), PkiPath("ec", "server.key"));
  const std::string crl = Dir("stale.crl.pem");
  {
    std::ofstream(crl) << Crl({}, /*stale=*/true);
  }
  BackendOptions b = Backend();
  b.tls.crl_files = {crl};
  b.tls.stale_crl = StaleCrlPolicy::kFail;
  MakePool(b);
  auto lease = AcquireSync(*pool_, "", absl::Seconds(5));
  ASSERT_FALSE(lease.ok());
  EXPECT_EQ(ReasonOf(lease.status()), "crl_stale") << lease.status();
  EXPECT_EQ(observer_->crl_stale(), 1);
}

// stale_crl FAIL covers resumed handshakes too: a session cached while the CRL was current
// does not carry new sockets past its nextUpdate (PER_LEASE, so every lease needs a new
// socket, which would resume). The CRL is issued by `openssl ca` and turns stale at run time.
TEST_F(RevocationTest, CrlTurningStaleUnderFailRefusesResumedHandshakesToo) {
  StartServer(PkiPath("ec", "server.crt"), PkiPath("ec", "server.key"));
  absl::Time stale_after;
  const std::string crl = OpensslCaCrl(absl::Seconds(4), &stale_after);
  BackendOptions b = Backend();
  b.tls.crl_files = {crl};
  b.tls.stale_crl = StaleCrlPolicy::kFail;
  b.pool.mode = PoolMode::kPerLease;
  MakePool(b);
  {
    auto lease = AcquireSync(*pool_);
    ASSERT_TRUE(lease.ok()) << lease.status();
    ASSERT_TRUE(RoundTrip(*lease, "while-current").ok());  // Reads the TLS 1.3 ticket.
  }
  ASSERT_TRUE(WaitUntil([&] { return pool_->tls_context()->CachedSessionsForTest() >= 1; },
                        kPatience))
      << "no session was cached, so nothing could resume and this test proves nothing";
  ASSERT_TRUE(WaitUntil([&] { return absl::Now() > stale_after; }, kPatience));

  auto lease = AcquireSync(*pool_, "", absl::Seconds(5));
  ASSERT_FALSE(lease.ok()) << "a socket was leased after the CRL went stale";
  EXPECT_EQ(ReasonOf(lease.status()), "crl_stale") << lease.status();
  EXPECT_EQ(pool_->Stats().handshakes_resumed, 0u);
  EXPECT_GE(observer_->Get("verify_failure:crl_stale"), 1);
}

// stale_crl WARN: the stale CRL is still used (handshakes succeed) and reported stale.
TEST_F(RevocationTest, StaleCrlWithWarnConnectsAndReportsStale) {
  StartServer(PkiPath("ec", "server.crt"), PkiPath("ec", "server.key"));
  const std::string crl = Dir("stale.crl.pem");
  {
    std::ofstream(crl) << Crl({}, /*stale=*/true);
  }
  BackendOptions b = Backend();
  b.tls.crl_files = {crl};
  b.tls.stale_crl = StaleCrlPolicy::kWarn;
  MakePool(b);
  auto lease = AcquireSync(*pool_);
  ASSERT_TRUE(lease.ok()) << lease.status();
  EXPECT_TRUE(RoundTrip(*lease, "x").ok());
  EXPECT_EQ(observer_->crl_stale(), 1);
}

// A current CRL is reported not stale.
TEST_F(RevocationTest, CurrentCrlIsReportedNotStale) {
  StartServer(PkiPath("ec", "server.crt"), PkiPath("ec", "server.key"));
  const std::string crl = Dir("fresh.crl.pem");
  {
    std::ofstream(crl) << Crl({});
  }
  BackendOptions b = Backend();
  b.tls.crl_files = {crl};
  MakePool(b);
  EXPECT_EQ(observer_->crl_stale(), 0);
}

// The client certificate and key rotated (symlink swap) while Calls run: no lease fails, and
// the backend sees the new certificate on the new sockets (on_rotation DRAIN).
TEST_F(RevocationTest, ClientCertificateRotatedMidTrafficWithZeroFailures) {
  StartServer(PkiPath("ec", "server.crt"), PkiPath("ec", "server.key"));
  KubernetesStyleDir secret(Dir("client-secret"));
  ASSERT_TRUE(secret
                  .Publish({{"tls.crt", ReadFileOrEmpty(PkiPath("ec", "client.fullchain.pem"))},
                            {"tls.key", ReadFileOrEmpty(PkiPath("ec", "client.key"))}})
                  .ok());
  BackendOptions b = Backend();
  b.tls.cert_file = secret.Path("tls.crt");
  b.tls.key_file = secret.Path("tls.key");
  b.tls.on_rotation = RotationPolicy::kDrain;
  MakePool(b);

  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 3; ++t) {
    callers.emplace_back([&, t] {
      for (int i = 0; !stop; ++i) {
        auto lease = AcquireSync(*pool_);
        absl::StatusOr<std::string> reply =
            lease.ok() ? RoundTrip(*lease, absl::StrCat("t", t, "-", i)) : lease.status();
        if (reply.ok()) {
          ++ok;
        } else {
          ++failed;
          ADD_FAILURE() << reply.status();
        }
      }
    });
  }
  ASSERT_TRUE(WaitUntil([&] { return ok >= 30; }, kPatience));
  ASSERT_TRUE(secret
                  .Publish({{"tls.crt", ReadFileOrEmpty(PkiPath("ec", "client2.fullchain.pem"))},
                            {"tls.key", ReadFileOrEmpty(PkiPath("ec", "client2.key"))}})
                  .ok());
  auto saw_app2 = [&] {
    for (const std::string& s : server_->peer_subjects()) {
      if (s.find("CN=app2") != std::string::npos) return true;
    }
    return false;
  };
  EXPECT_TRUE(WaitUntil(saw_app2, kPatience));
  const int ok_at_rotation = ok;
  EXPECT_TRUE(WaitUntil([&] { return ok >= ok_at_rotation + 30; }, kPatience));
  stop = true;
  for (auto& t : callers) t.join();
  EXPECT_EQ(failed, 0);
  EXPECT_GE(observer_->Get("closed:rotation"), 1);
}

// The client credentials as a PKCS#12 bundle (a Secret's tls.p12 and its password file),
// rotated by a symlink swap to a bundle holding another client certificate, under a new
// password, while exchanges run: none fails, and new handshakes present the new certificate.
TEST_F(RevocationTest, ClientPkcs12RotatedMidTrafficWithZeroFailures) {
  StartServer(PkiPath("ec", "server.crt"), PkiPath("ec", "server.key"));
  // Bundles made the way an operator makes them: `openssl pkcs12 -export`.
  auto make_bundle = [&](const std::string& name, const std::string& password) {
    const std::string pass_file = Dir(name + ".pass");
    { std::ofstream(pass_file, std::ios::trunc) << password; }
    const std::string out = Dir(name + ".p12");
    auto made = testutil::RunCommand(
        {"openssl", "pkcs12", "-export", "-in", PkiPath("ec", name + ".crt"), "-inkey",
         PkiPath("ec", name + ".key"), "-certfile", PkiPath("ec", "int.crt"), "-passout",
         "file:" + pass_file, "-out", out});
    EXPECT_TRUE(made.ok() && made->exit_code == 0)
        << (made.ok() ? made->output : made.status().ToString());
    return ReadFileOrEmpty(out);
  };
  const std::string first = make_bundle("client", "first-password");
  const std::string second = make_bundle("client2", "second-password");
  ASSERT_FALSE(first.empty());
  ASSERT_FALSE(second.empty());
  KubernetesStyleDir secret(Dir("client-p12-secret"));
  ASSERT_TRUE(secret.Publish({{"tls.p12", first}, {"p12.pass", "first-password"}}).ok());
  BackendOptions b = Backend();
  b.tls.cert_file.clear();
  b.tls.key_file.clear();
  b.tls.pkcs12_file = secret.Path("tls.p12");
  b.tls.password_file = secret.Path("p12.pass");
  b.tls.on_rotation = RotationPolicy::kDrain;
  b.tls.watch_interval = absl::ZeroDuration();  // The test drives the check.
  MakePool(b);

  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::thread caller([&] {
    for (int i = 0; !stop; ++i) {
      auto lease = AcquireSync(*pool_);
      absl::StatusOr<std::string> reply =
          lease.ok() ? RoundTrip(*lease, absl::StrCat("p12-", i)) : lease.status();
      if (reply.ok() && *reply == absl::StrCat("re:p12-", i)) {
        ++ok;
      } else {
        ++failed;
        ADD_FAILURE() << (reply.ok() ? "wrong reply " + *reply : reply.status().ToString());
      }
    }
  });
  ASSERT_TRUE(WaitUntil([&] { return ok >= 20; }, kPatience));
  for (const std::string& subject : server_->peer_subjects()) {
    EXPECT_NE(subject.find("CN=app1"), std::string::npos) << subject;
  }

  ASSERT_TRUE(secret.Publish({{"tls.p12", second}, {"p12.pass", "second-password"}}).ok());
  pool_->tls_lifecycle().CheckTlsFiles();
  auto saw_app2 = [&] {
    for (const std::string& s : server_->peer_subjects()) {
      if (s.find("CN=app2") != std::string::npos) return true;
    }
    return false;
  };
  EXPECT_TRUE(WaitUntil(saw_app2, kPatience)) << "no handshake presented the new certificate";
  const int ok_at_rotation = ok;
  EXPECT_TRUE(WaitUntil([&] { return ok >= ok_at_rotation + 20; }, kPatience));
  stop = true;
  caller.join();
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(observer_->Get("credential_reload_failure:key"), 0);
  EXPECT_GE(observer_->Get("closed:rotation"), 1);
}

// Broken rotation files are rejected with the file named: the old credentials stay in use for
// new sockets.
TEST_F(RevocationTest, BrokenRotationFilesKeepTheOldCredentials) {
  StartServer(PkiPath("ec", "server.crt"), PkiPath("ec", "server.key"));
  KubernetesStyleDir secret(Dir("client-secret"));
  const std::string old_cert = ReadFileOrEmpty(PkiPath("ec", "client.fullchain.pem"));
  const std::string old_key = ReadFileOrEmpty(PkiPath("ec", "client.key"));
  const std::string ca = ReadFileOrEmpty(PkiPath("ec", "root.crt"));
  ASSERT_TRUE(secret.Publish({{"tls.crt", old_cert}, {"tls.key", old_key}, {"ca.crt", ca}}).ok());
  BackendOptions b = Backend();
  b.tls.cert_file = secret.Path("tls.crt");
  b.tls.key_file = secret.Path("tls.key");
  b.tls.ca_file = secret.Path("ca.crt");
  b.tls.watch_interval = absl::ZeroDuration();  // The test drives the checks.
  b.tls.session_resumption = false;  // Every socket presents its certificate afresh.
  b.pool.mode = PoolMode::kPerLease;  // Every lease gets a new socket.
  MakePool(b);

  // The client certificate subject the backend saw on a new socket.
  auto new_socket_subject = [&]() -> std::string {
    const size_t before = server_->peer_subjects().size();
    auto lease = AcquireSync(*pool_);
    EXPECT_TRUE(lease.ok()) << lease.status();
    if (!lease.ok()) return "";
    EXPECT_TRUE(RoundTrip(*lease, "x").ok());
    *lease = Lease();
    std::vector<std::string> subjects = server_->peer_subjects();
    return subjects.size() > before ? subjects.back() : "";
  };
  ASSERT_NE(new_socket_subject().find("CN=app1"), std::string::npos);

  // The new certificate with the old key: the key does not match.
  const std::string new_cert = ReadFileOrEmpty(PkiPath("ec", "client2.fullchain.pem"));
  ASSERT_TRUE(secret.Publish({{"tls.crt", new_cert}, {"tls.key", old_key}, {"ca.crt", ca}}).ok());
  pool_->tls_lifecycle().CheckTlsFiles();
  EXPECT_EQ(observer_->Get("credential_reload_failure:key"), 1);
  EXPECT_NE(new_socket_subject().find("CN=app1"), std::string::npos);

  // A certificate file that is not PEM.
  ASSERT_TRUE(
      secret.Publish({{"tls.crt", "not a certificate\n"}, {"tls.key", old_key}, {"ca.crt", ca}})
          .ok());
  pool_->tls_lifecycle().CheckTlsFiles();
  EXPECT_EQ(observer_->Get("credential_reload_failure:cert"), 1);
  EXPECT_NE(new_socket_subject().find("CN=app1"), std::string::npos);

  // An empty CA bundle.
  ASSERT_TRUE(secret.Publish({{"tls.crt", old_cert}, {"tls.key", old_key}, {"ca.crt", ""}}).ok());
  pool_->tls_lifecycle().CheckTlsFiles();
  EXPECT_EQ(observer_->Get("credential_reload_failure:ca"), 1);
  EXPECT_NE(new_socket_subject().find("CN=app1"), std::string::npos);

  // And a good rotation still goes through.
  ASSERT_TRUE(secret
                  .Publish({{"tls.crt", new_cert},
                            {"tls.key", ReadFileOrEmpty(PkiPath("ec", "client2.key"))},
                            {"ca.crt", ca}})
                  .ok());
  pool_->tls_lifecycle().CheckTlsFiles();
  EXPECT_NE(new_socket_subject().find("CN=app2"), std::string::npos);
}

// The expiry tests give the backend certificate ten minutes of life and retire sockets at
// notAfter - expiry_margin, a few seconds from now: the checks below have minutes of slack, and
// the only timing left is that the sockets are made within kRetireAfter of the certificate
// (a socket made inside the margin would get half its remaining life instead).
constexpr absl::Duration kLifetime = absl::Minutes(10);
constexpr absl::Duration kRetireAfter = absl::Seconds(4);

// A backend certificate that expires while its socket is pooled: the idle socket is retired
// (reason expired) before the certificate's notAfter.
TEST_F(RevocationTest, BackendCertificateExpiringWhilePooledIsRetiredBeforeNotAfter) {
  // notAfter has one-second resolution: whole seconds from now.
  const absl::Time not_after =
      absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now() + kLifetime));
  const std::string cert = Dir("short-lived.crt");
  ASSERT_TRUE(testutil::WriteReissuedCertificate("ec", PkiPath("ec", "server.crt"), not_after,
                                                 cert)
                  .ok());
  StartServer(cert, PkiPath("ec", "server.key"));
  BackendOptions b = Backend();
  b.tls.expiry_margin = kLifetime - kRetireAfter;
  b.pool.max_sockets = 1;
  MakePool(b);
  {
    auto lease = AcquireSync(*pool_);
    ASSERT_TRUE(lease.ok()) << lease.status();
    ASSERT_TRUE(RoundTrip(*lease, "x").ok());
  }
  ASSERT_TRUE(WaitUntil([&] { return pool_->Stats().idle == 1; }, kPatience));
  ASSERT_TRUE(WaitUntil([&] { return observer_->Get("closed:expired") >= 1; },
                        kRetireAfter + absl::Seconds(60)));
  EXPECT_EQ(pool_->Stats().idle, 0);
  // Minutes of slack: only a retirement at notAfter itself (no margin applied) fails this.
  EXPECT_LT(absl::Now(), not_after - absl::Minutes(5)) << "the socket was retired at notAfter";
}

// A leased socket whose backend certificate reaches the expiry margin finishes its lease and
// is then closed rather than pooled. An idle twin with the same retire time shows when the
// margin has been reached: the sweep that retires it also marks the leased one.
TEST_F(RevocationTest, LeasedSocketNearExpiryClosesAtLeaseEnd) {
  const absl::Time not_after =
      absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now() + kLifetime));
  const std::string cert = Dir("short-lived.crt");
  ASSERT_TRUE(testutil::WriteReissuedCertificate("ec", PkiPath("ec", "server.crt"), not_after,
                                                 cert)
                  .ok());
  StartServer(cert, PkiPath("ec", "server.key"));
  BackendOptions b = Backend();
  b.tls.expiry_margin = kLifetime - kRetireAfter;
  b.pool.max_sockets = 2;
  MakePool(b);
  auto lease = AcquireSync(*pool_);
  ASSERT_TRUE(lease.ok()) << lease.status();
  {
    auto twin = AcquireSync(*pool_);
    ASSERT_TRUE(twin.ok()) << twin.status();
    EXPECT_NE(twin->info().socket_id, lease->info().socket_id);
  }
  ASSERT_TRUE(WaitUntil([&] { return observer_->Get("closed:expired") == 1; },
                        kRetireAfter + absl::Seconds(60)));
  auto reply = RoundTrip(*lease, "still-leased");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(observer_->Get("closed:expired"), 1);
  *lease = Lease();
  EXPECT_TRUE(WaitUntil([&] { return observer_->Get("closed:expired") == 2; }, kPatience));
}

}  // namespace
}  // namespace tlsbroker
