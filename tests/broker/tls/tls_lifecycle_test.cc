// TlsLifecycle without a pool: a fake socket set records what the lifecycle asks of it, against
// real CRL and credential files, real contexts, and for OCSP a real `openssl ocsp` responder
// and real TLS sockets to the project's test server. The schedule reads a test clock; the
// tests drive it with Tick() and never assert on wall-clock time.

#include <openssl/pem.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <asio/post.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "broker/common/mutex.h"
#include "broker/io/event_loops.h"
#include "broker/tls/tls_lifecycle.h"
#include "gtest/gtest.h"
#include "tests/broker/pool/recording_observer.h"
#include "tests/support/ocsp_responder_process.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_pki.h"
#include "tests/support/test_pki_files.h"
#include "tests/support/tls_test_server.h"

namespace tlsbroker {
namespace {

using testutil::KubernetesStyleDir;
using testutil::PkiPath;
using testutil::ReadFileOrEmpty;

constexpr absl::Duration kPatience = absl::Seconds(20);

bool WaitUntil(const std::function<bool()>& condition, absl::Duration timeout = kPatience) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return condition();
}

// The certificates of a PEM file (leaf first).
std::shared_ptr<const PeerChain> ChainFromFile(const std::string& path) {
  STACK_OF(X509)* stack = sk_X509_new_null();
  if (FILE* f = fopen(path.c_str(), "r")) {
    while (X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr)) sk_X509_push(stack, cert);
    fclose(f);
  }
  auto chain = std::make_shared<const PeerChain>(stack);  // Takes its own references.
  sk_X509_pop_free(stack, X509_free);
  return chain;
}

// A socket set that holds what the test gives it and records every retirement.
class FakeSocketSet final : public TlsSocketSet {
 public:
  struct Retirement {
    std::string close_reason;
    LeasedPolicy leased;
    std::string abort_reason;
    std::vector<uint64_t> matched;  // Socket ids whose chain matched.
  };

  void Add(OpenTlsSocket socket) {
    MutexLock lock(&mu_);
    open_.push_back(std::move(socket));
  }

  std::vector<Retirement> retirements() const {
    MutexLock lock(&mu_);
    return retirements_;
  }

  std::vector<OpenTlsSocket> OpenSockets() const override {
    MutexLock lock(&mu_);
    return open_;
  }

  int RetireIf(absl::FunctionRef<bool(const PeerChain&)> matches, absl::string_view close_reason,
               LeasedPolicy leased, absl::string_view abort_reason) override {
    std::vector<OpenTlsSocket> open = OpenSockets();
    Retirement r{std::string(close_reason), leased, std::string(abort_reason), {}};
    for (const OpenTlsSocket& s : open) {
      if (s.peer_chain != nullptr && matches(*s.peer_chain)) r.matched.push_back(s.id);
    }
    MutexLock lock(&mu_);
    retirements_.push_back(r);
    return static_cast<int>(r.matched.size());
  }

 private:
  mutable Mutex mu_;
  std::vector<OpenTlsSocket> open_ ABSL_GUARDED_BY(mu_);
  std::vector<Retirement> retirements_ ABSL_GUARDED_BY(mu_);
};

// A clock the test moves.
class TestClock {
 public:
  absl::Time Now() const {
    MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    MutexLock lock(&mu_);
    now_ += d;
  }

 private:
  mutable Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_) = absl::Now();
};

class TlsLifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::path(::testing::TempDir()) /
           absl::StrCat("tlsb-lifecycle-", getpid(), "-", info->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    observer_ = std::make_shared<testutil::RecordingObserver>();
    sockets_ = std::make_shared<FakeSocketSet>();
  }

  void TearDown() override {
    lifecycle_.reset();
    sockets_.reset();  // May hold TlsSockets: gone before their loops.
    loops_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::string Dir(absl::string_view name) { return (dir_ / std::string(name)).string(); }

  static TlsOptions ClientOptions() {
    TlsOptions tls;
    tls.ca_file = PkiPath("ec", "root.crt");
    tls.cert_file = PkiPath("ec", "client.fullchain.pem");
    tls.key_file = PkiPath("ec", "client.key");
    tls.watch_interval = absl::Seconds(10);
    return tls;
  }

  static TlsLifecycle::Settings SettingsFor(const TlsOptions& tls) {
    return {"test-backend", tls, "localhost"};
  }

  std::shared_ptr<const TlsClientContext> MakeContext(const TlsOptions& tls) {
    auto context = TlsClientContext::Create(tls, "localhost");
    EXPECT_TRUE(context.ok()) << context.status();
    return context.ok() ? *std::move(context) : nullptr;
  }

  void MakeLifecycle(const TlsOptions& tls) {
    auto context = MakeContext(tls);
    ASSERT_NE(context, nullptr);
    lifecycle_ = TlsLifecycle::Create(SettingsFor(tls), context, sockets_, observer_,
                                      loops_->maintenance());
    lifecycle_->SetClockForTest([this] { return clock_.Now(); });
  }

  // CRL contents of the intermediate CA, revoking `revoked`, current for a day.
  std::string Crl(const std::vector<std::string>& revoked) {
    const std::string path = Dir("made.crl.pem");
    const absl::Time now = absl::Now();
    absl::Status status = testutil::WriteIntermediateCrl("ec", path, revoked,
                                                         now - absl::Minutes(1),
                                                         now + absl::Hours(24));
    EXPECT_TRUE(status.ok()) << status;
    return ReadFileOrEmpty(path);
  }

  // Two open sockets, without TLS sockets of their own: one to the revoked-server certificate
  // (id 1), one to the good server certificate (id 2).
  void AddRevokedAndGoodSockets() {
    sockets_->Add({1, "TLSB00000001", nullptr,
                   ChainFromFile(PkiPath("ec", "revoked-server.fullchain.pem")), std::nullopt});
    sockets_->Add({2, "TLSB00000002", nullptr,
                   ChainFromFile(PkiPath("ec", "server.fullchain.pem")), std::nullopt});
  }

  std::filesystem::path dir_;
  std::unique_ptr<EventLoops> loops_ = std::make_unique<EventLoops>(1);
  std::shared_ptr<testutil::RecordingObserver> observer_;
  std::shared_ptr<FakeSocketSet> sockets_;
  TestClock clock_;
  std::shared_ptr<TlsLifecycle> lifecycle_;
};

// ---- files, CRLs, rotation ----

TEST_F(TlsLifecycleTest, ChangedCrlInstallsANewContextAndRetiresOnlyTheRevokedChain) {
  KubernetesStyleDir secret(Dir("crl-secret"));
  ASSERT_TRUE(secret.Publish({{"int.crl.pem", Crl({})}}).ok());
  TlsOptions tls = ClientOptions();
  tls.crl_files = {secret.Path("int.crl.pem")};
  tls.on_revoked = RevokedLeasePolicy::kAbortLease;
  MakeLifecycle(tls);
  AddRevokedAndGoodSockets();
  const auto before = lifecycle_->context();

  ASSERT_TRUE(
      secret.Publish({{"int.crl.pem", Crl({PkiPath("ec", "revoked-server.crt")})}}).ok());
  lifecycle_->CheckTlsFiles();

  EXPECT_NE(lifecycle_->context(), before);
  const auto retirements = sockets_->retirements();
  ASSERT_EQ(retirements.size(), 1u);
  EXPECT_EQ(retirements[0].close_reason, "revoked");
  EXPECT_EQ(retirements[0].leased, LeasedPolicy::kAbortLease);
  EXPECT_EQ(retirements[0].abort_reason, "certificate_revoked");
  EXPECT_EQ(retirements[0].matched, std::vector<uint64_t>{1});
}

TEST_F(TlsLifecycleTest, UnchangedFilesKeepTheContextAndRetireNothing) {
  TlsOptions tls = ClientOptions();
  tls.crl_files = {PkiPath("ec", "int.crl.pem")};
  MakeLifecycle(tls);
  AddRevokedAndGoodSockets();
  const auto before = lifecycle_->context();
  lifecycle_->CheckTlsFiles();
  EXPECT_EQ(lifecycle_->context(), before);
  EXPECT_TRUE(sockets_->retirements().empty());
}

TEST_F(TlsLifecycleTest, BrokenCrlKeepsThePreviousContextAndIsCountedOncePerVersion) {
  KubernetesStyleDir secret(Dir("crl-secret"));
  ASSERT_TRUE(secret.Publish({{"int.crl.pem", Crl({})}}).ok());
  TlsOptions tls = ClientOptions();
  tls.crl_files = {secret.Path("int.crl.pem")};
  MakeLifecycle(tls);
  AddRevokedAndGoodSockets();
  const auto before = lifecycle_->context();

  ASSERT_TRUE(secret.Publish({{"int.crl.pem", "-----BEGIN X509 CRL-----\ngarbage\n"}}).ok());
  lifecycle_->CheckTlsFiles();
  lifecycle_->CheckTlsFiles();
  EXPECT_EQ(observer_->Get("crl_reload_failure"), 1);
  EXPECT_EQ(lifecycle_->context(), before);
  EXPECT_TRUE(sockets_->retirements().empty());
}

TEST_F(TlsLifecycleTest, RotatedCredentialsWithDrainRetireEverySocketAndFinishLeases) {
  KubernetesStyleDir secret(Dir("client-secret"));
  ASSERT_TRUE(secret
                  .Publish({{"tls.crt", ReadFileOrEmpty(PkiPath("ec", "client.fullchain.pem"))},
                            {"tls.key", ReadFileOrEmpty(PkiPath("ec", "client.key"))}})
                  .ok());
  TlsOptions tls = ClientOptions();
  tls.cert_file = secret.Path("tls.crt");
  tls.key_file = secret.Path("tls.key");
  tls.on_rotation = RotationPolicy::kDrain;
  MakeLifecycle(tls);
  AddRevokedAndGoodSockets();

  ASSERT_TRUE(secret
                  .Publish({{"tls.crt", ReadFileOrEmpty(PkiPath("ec", "client2.fullchain.pem"))},
                            {"tls.key", ReadFileOrEmpty(PkiPath("ec", "client2.key"))}})
                  .ok());
  lifecycle_->CheckTlsFiles();
  const auto retirements = sockets_->retirements();
  ASSERT_EQ(retirements.size(), 1u);
  EXPECT_EQ(retirements[0].close_reason, "rotation");
  EXPECT_EQ(retirements[0].leased, LeasedPolicy::kFinishLease);
  EXPECT_EQ(retirements[0].matched, (std::vector<uint64_t>{1, 2}));
}

TEST_F(TlsLifecycleTest, RotatedCredentialsWithKeepRetireNothing) {
  KubernetesStyleDir secret(Dir("client-secret"));
  ASSERT_TRUE(secret
                  .Publish({{"tls.crt", ReadFileOrEmpty(PkiPath("ec", "client.fullchain.pem"))},
                            {"tls.key", ReadFileOrEmpty(PkiPath("ec", "client.key"))}})
                  .ok());
  TlsOptions tls = ClientOptions();
  tls.cert_file = secret.Path("tls.crt");
  tls.key_file = secret.Path("tls.key");
  tls.on_rotation = RotationPolicy::kKeepUntilLifetime;
  MakeLifecycle(tls);
  AddRevokedAndGoodSockets();
  const auto before = lifecycle_->context();

  ASSERT_TRUE(secret
                  .Publish({{"tls.crt", ReadFileOrEmpty(PkiPath("ec", "client2.fullchain.pem"))},
                            {"tls.key", ReadFileOrEmpty(PkiPath("ec", "client2.key"))}})
                  .ok());
  lifecycle_->CheckTlsFiles();
  EXPECT_NE(lifecycle_->context(), before);  // New sockets use the new credentials.
  EXPECT_TRUE(sockets_->retirements().empty());
}

TEST_F(TlsLifecycleTest, ReconfigureAppliesTheNewCrlButDoesNotDrainForRotation) {
  TlsOptions tls = ClientOptions();
  tls.on_rotation = RotationPolicy::kDrain;
  MakeLifecycle(tls);
  AddRevokedAndGoodSockets();

  const std::string crl = Dir("int.crl.pem");
  { std::ofstream(crl) << Crl({PkiPath("ec", "revoked-server.crt")}); }
  TlsOptions next = tls;
  next.crl_files = {crl};
  next.cert_file = PkiPath("ec", "client2.fullchain.pem");
  next.key_file = PkiPath("ec", "client2.key");
  auto context = MakeContext(next);
  ASSERT_NE(context, nullptr);
  lifecycle_->Reconfigure(SettingsFor(next), context);

  EXPECT_EQ(lifecycle_->context(), context);
  const auto retirements = sockets_->retirements();
  ASSERT_EQ(retirements.size(), 1u);
  EXPECT_EQ(retirements[0].close_reason, "revoked");
  EXPECT_EQ(retirements[0].matched, std::vector<uint64_t>{1});
}

TEST_F(TlsLifecycleTest, TickChecksTheFilesOncePerWatchInterval) {
  KubernetesStyleDir secret(Dir("crl-secret"));
  ASSERT_TRUE(secret.Publish({{"int.crl.pem", Crl({})}}).ok());
  TlsOptions tls = ClientOptions();
  tls.crl_files = {secret.Path("int.crl.pem")};
  tls.watch_interval = absl::Seconds(10);
  MakeLifecycle(tls);
  AddRevokedAndGoodSockets();

  lifecycle_->Tick();  // The first tick checks (nothing changed) and starts the interval.
  EXPECT_TRUE(sockets_->retirements().empty());
  ASSERT_TRUE(
      secret.Publish({{"int.crl.pem", Crl({PkiPath("ec", "revoked-server.crt")})}}).ok());
  clock_.Advance(absl::Seconds(5));
  lifecycle_->Tick();  // Within the interval: the change is not looked at yet.
  EXPECT_TRUE(sockets_->retirements().empty());
  clock_.Advance(absl::Seconds(5));
  lifecycle_->Tick();
  const auto retirements = sockets_->retirements();
  ASSERT_EQ(retirements.size(), 1u);
  EXPECT_EQ(retirements[0].close_reason, "revoked");
  EXPECT_EQ(retirements[0].matched, std::vector<uint64_t>{1});
}

TEST_F(TlsLifecycleTest, TickReportsTheCrlStateAndWatchingOffLeavesChangedFilesAlone) {
  const std::string crl = Dir("int.crl.pem");
  { std::ofstream(crl) << Crl({}); }
  TlsOptions tls = ClientOptions();
  tls.crl_files = {crl};
  tls.watch_interval = absl::ZeroDuration();
  MakeLifecycle(tls);
  AddRevokedAndGoodSockets();
  EXPECT_EQ(observer_->crl_stale(), 0);
  const int reports = observer_->Get("crl_report");

  { std::ofstream(crl) << Crl({PkiPath("ec", "revoked-server.crt")}); }
  clock_.Advance(absl::Hours(1));
  lifecycle_->Tick();
  lifecycle_->Tick();
  EXPECT_EQ(observer_->Get("crl_report"), reports + 2);
  EXPECT_TRUE(sockets_->retirements().empty());
}

TEST_F(TlsLifecycleTest, StartedLifecycleTicksOnItsOwn) {
  TlsOptions tls = ClientOptions();
  tls.crl_files = {PkiPath("ec", "int.crl.pem")};
  tls.watch_interval = absl::Milliseconds(100);
  MakeLifecycle(tls);
  const int reports = observer_->Get("crl_report");
  lifecycle_->Start();
  lifecycle_->Start();  // No second chain of ticks; nothing to assert without a clock.
  EXPECT_TRUE(WaitUntil([&] { return observer_->Get("crl_report") >= reports + 2; }));
  lifecycle_->Stop();
}

// ---- OCSP re-checks ----

class TlsLifecycleOcspTest : public TlsLifecycleTest {
 protected:
  void SetUp() override {
    TlsLifecycleTest::SetUp();
    index_ = Dir("index.txt");
    std::filesystem::copy_file(PkiPath("ec", "int-db/index.txt"), index_);
    auto responder = testutil::OcspResponderProcess::Start(index_);
    ASSERT_TRUE(responder.ok()) << responder.status();
    responder_ = *std::move(responder);
    auto options = testutil::TlsTestServer::PkiOptions("ec");
    options.cert_file = PkiPath("ec", "server.crt");
    options.key_file = PkiPath("ec", "server.key");
    options.chain_file = PkiPath("ec", "int.crt");
    auto server = testutil::TlsTestServer::Create(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  void TearDown() override {
    if (tls_ != nullptr) {
      std::promise<void> closed;
      asio::post(tls_->io(), [this, &closed] {
        tls_->Close();
        closed.set_value();
      });
      closed.get_future().wait();
    }
    tls_.reset();
    TlsLifecycleTest::TearDown();
    server_.reset();
    responder_.reset();
  }

  TlsOptions OcspOptions() {
    TlsOptions tls = ClientOptions();
    tls.ocsp.mode = OcspMode::kQuery;
    tls.ocsp.responder_url = responder_->url();
    tls.ocsp.timeout = absl::Seconds(10);
    // Longer than the responder's one-day answers: re-check at the minimum interval.
    tls.ocsp.recheck_margin = absl::Hours(25);
    return tls;
  }

  // Connects a real socket on the lifecycle's context and hands it to the fake set as id 7.
  void ConnectSocket() {
    tls_ = std::make_shared<TlsSocket>(loops_->Next(), lifecycle_->context());
    std::promise<absl::Status> connected;
    asio::post(tls_->io(), [this, &connected] {
      tls_->Connect("127.0.0.1", static_cast<uint16_t>(server_->port()), absl::Seconds(5),
                    absl::Seconds(10), [&connected](absl::Status s) { connected.set_value(s); });
    });
    absl::Status status = connected.get_future().get();
    ASSERT_TRUE(status.ok()) << status << "\n" << responder_->log();
    std::promise<TlsSessionInfo> info;
    asio::post(tls_->io(), [this, &info] { info.set_value(tls_->session_info()); });
    const TlsSessionInfo session = info.get_future().get();
    ASSERT_EQ(session.ocsp_status, "good");
    sockets_->Add({7, "TLSB00000007", tls_, tls_->peer_chain(), session.ocsp_valid_until});
  }

  // Marks the backend's certificate (CN=QM2.backend) revoked in the responder's index.
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
    const std::string next = index_ + ".next";
    std::ofstream(next) << absl::StrJoin(lines, "\n") << "\n";
    std::filesystem::rename(next, index_);
  }

  // One tick that learns the socket, then one when its re-check is due.
  void TickUntilDue() {
    lifecycle_->Tick();
    clock_.Advance(absl::Seconds(2));
    lifecycle_->Tick();
  }

  std::string index_;
  std::unique_ptr<testutil::OcspResponderProcess> responder_;
  std::unique_ptr<testutil::TlsTestServer> server_;
  std::shared_ptr<TlsSocket> tls_;
};

TEST_F(TlsLifecycleOcspTest, GoodRecheckRecordsTheResponderAnswerAndRetiresNothing) {
  MakeLifecycle(OcspOptions());
  ConnectSocket();
  const int queries = responder_->requests();
  EXPECT_FALSE(lifecycle_->OcspAnswerOf(7).has_value());
  TickUntilDue();
  ASSERT_TRUE(WaitUntil([&] {
    auto answer = lifecycle_->OcspAnswerOf(7);
    return answer.has_value() && answer->source == "responder";
  })) << responder_->log();
  const auto answer = lifecycle_->OcspAnswerOf(7);
  EXPECT_EQ(answer->status, "good");
  EXPECT_TRUE(answer->valid_until.has_value());
  EXPECT_GT(responder_->requests(), queries);
  EXPECT_GE(observer_->Get("ocsp:responder:good"), 1);
  EXPECT_TRUE(sockets_->retirements().empty());
}

TEST_F(TlsLifecycleOcspTest, RecheckIsNotStartedBeforeItIsDue) {
  MakeLifecycle(OcspOptions());
  ConnectSocket();
  const int queries = responder_->requests();
  lifecycle_->Tick();  // Learns the socket: due a second from now on the test clock.
  lifecycle_->Tick();
  loops_->RunPending();
  EXPECT_EQ(responder_->requests(), queries);
  EXPECT_FALSE(lifecycle_->OcspAnswerOf(7).has_value());
}

TEST_F(TlsLifecycleOcspTest, RevokedRecheckRetiresEverySocketToThatCertificatePerOnRevoked) {
  TlsOptions tls = OcspOptions();
  tls.on_revoked = RevokedLeasePolicy::kAbortLease;
  MakeLifecycle(tls);
  ConnectSocket();
  // Another socket to the same certificate (its chain read from the file), and one to another.
  sockets_->Add({8, "TLSB00000008", nullptr, ChainFromFile(PkiPath("ec", "server.fullchain.pem")),
                 std::nullopt});
  sockets_->Add({9, "TLSB00000009", nullptr,
                 ChainFromFile(PkiPath("ec", "revoked-server.fullchain.pem")), std::nullopt});
  RevokeBackendCertificate();
  TickUntilDue();
  ASSERT_TRUE(WaitUntil([&] { return !sockets_->retirements().empty(); })) << responder_->log();
  const auto retirements = sockets_->retirements();
  ASSERT_EQ(retirements.size(), 1u);
  EXPECT_EQ(retirements[0].close_reason, "revoked");
  EXPECT_EQ(retirements[0].leased, LeasedPolicy::kAbortLease);
  EXPECT_EQ(retirements[0].abort_reason, "certificate_revoked");
  EXPECT_EQ(retirements[0].matched, (std::vector<uint64_t>{7, 8}));
  EXPECT_GE(observer_->Get("ocsp:responder:revoked"), 1);
}

TEST_F(TlsLifecycleOcspTest, UnreachableResponderKeepsTheSocketWhileItsAnswerHolds) {
  TlsOptions tls = OcspOptions();
  tls.ocsp.on_unreachable = FailPolicy::kFail;
  MakeLifecycle(tls);
  ConnectSocket();
  responder_.reset();  // Its port now refuses connections.
  TickUntilDue();
  ASSERT_TRUE(WaitUntil([&] { return observer_->Get("ocsp:none:unreachable") >= 1; }));
  ASSERT_TRUE(WaitUntil([&] {
    auto answer = lifecycle_->OcspAnswerOf(7);
    return answer.has_value() && answer->status == "unreachable";
  }));
  EXPECT_TRUE(sockets_->retirements().empty());
}

TEST_F(TlsLifecycleOcspTest, StapleOnlySocketIsRetiredForRefreshWhenItsStapleNearsExpiry) {
  TlsOptions tls = ClientOptions();
  tls.ocsp.mode = OcspMode::kStapleOnly;
  tls.ocsp.recheck_margin = absl::Hours(25);
  MakeLifecycle(tls);
  // Not connected: a staple-only re-check asks nobody, it only needs the socket's context.
  auto tls_socket = std::make_shared<TlsSocket>(loops_->Next(), lifecycle_->context());
  auto chain = ChainFromFile(PkiPath("ec", "server.fullchain.pem"));
  sockets_->Add({5, "TLSB00000005", tls_socket, chain, clock_.Now() + absl::Hours(24)});
  // Another socket to the same certificate is not this one's to refresh.
  sockets_->Add({6, "TLSB00000006", nullptr, ChainFromFile(PkiPath("ec", "server.fullchain.pem")),
                 std::nullopt});
  lifecycle_->Tick();
  EXPECT_TRUE(sockets_->retirements().empty());
  clock_.Advance(absl::Seconds(2));
  lifecycle_->Tick();
  const auto retirements = sockets_->retirements();
  ASSERT_EQ(retirements.size(), 1u);
  EXPECT_EQ(retirements[0].close_reason, "ocsp_refresh");
  EXPECT_EQ(retirements[0].leased, LeasedPolicy::kFinishLease);
  EXPECT_EQ(retirements[0].matched, std::vector<uint64_t>{5});
  EXPECT_EQ(responder_->requests(), 0);
}

}  // namespace
}  // namespace tlsbroker
