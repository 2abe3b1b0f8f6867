// OCSP against real peers: a real `openssl ocsp` responder (tests/support/ocsp_responder.py puts
// it on 127.0.0.1), `openssl s_server -status_file` stapling responses made by `openssl ocsp`,
// and the project's TlsTestServer as the backend when several sockets are needed.

#include <atomic>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <vector>

// After the standard headers: Asio picks its allocator from what they define, and every
// translation unit must pick the same one.
#include <asio/post.hpp>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "broker/config/options.h"
#include "broker/io/event_loops.h"
#include "broker/tls/failure_reason.h"
#include "broker/tls/ocsp_checker.h"
#include "broker/tls/tls_client_context.h"
#include "broker/tls/tls_socket.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/refusing_port.h"
#include "tests/support/ocsp_responder_process.h"
#include "tests/support/openssl_server.h"
#include "tests/support/silent_tcp_server.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_pki.h"
#include "tests/support/tls_test_server.h"

namespace tlsbroker {
namespace {

using ::testing::HasSubstr;
using testutil::OpensslServer;
using testutil::PkiPath;
using testutil::Subprocess;
using testutil::TlsTestServer;
using testutil::TlsTestServerOptions;

constexpr absl::Duration kWait = absl::Seconds(20);

// A real `openssl ocsp` responder on 127.0.0.1, answering from `index` (an `openssl ca` index).
std::unique_ptr<testutil::OcspResponderProcess> StartResponder(const std::string& index) {
  auto responder = testutil::OcspResponderProcess::Start(index);
  EXPECT_TRUE(responder.ok()) << responder.status();
  return responder.ok() ? *std::move(responder) : nullptr;
}

// A DER OCSP response for `cert` (ec PKI) made by the real `openssl ocsp`, signed by `rsigner`.
std::string MakeResponseFile(const std::string& dir, const std::string& cert,
                             const std::string& rsigner = "ocsp",
                             const std::string& index = "") {
  const std::string req = absl::StrCat(dir, "/", cert, ".req.der");
  const std::string resp = absl::StrCat(dir, "/", cert, "-", rsigner, ".resp.der");
  auto made_req = testutil::RunCommand({"openssl", "ocsp", "-issuer", PkiPath("ec", "int.crt"),
                                        "-cert", PkiPath("ec", cert + ".crt"), "-no_nonce",
                                        "-reqout", req});
  EXPECT_TRUE(made_req.ok() && made_req->exit_code == 0)
      << (made_req.ok() ? made_req->output : made_req.status().ToString());
  std::string rsigner_crt = PkiPath("ec", rsigner + ".crt");
  std::string rsigner_key = PkiPath("ec", rsigner + ".key");
  auto made_resp = testutil::RunCommand(
      {"openssl", "ocsp", "-index", index.empty() ? PkiPath("ec", "int-db/index.txt") : index,
       "-CA", PkiPath("ec", "int.crt"), "-rsigner", rsigner_crt, "-rkey", rsigner_key, "-rother",
       PkiPath("ec", "int.crt"), "-reqin", req, "-respout", resp, "-ndays", "1"});
  EXPECT_TRUE(made_resp.ok() && made_resp->exit_code == 0)
      << (made_resp.ok() ? made_resp->output : made_resp.status().ToString());
  return resp;
}

TlsOptions ClientOptions() {
  TlsOptions options;
  options.ca_file = PkiPath("ec", "root.crt");
  options.cert_file = PkiPath("ec", "client.fullchain.pem");
  options.key_file = PkiPath("ec", "client.key");
  return options;
}

TlsOptions QueryOptions(const std::string& url) {
  TlsOptions options = ClientOptions();
  options.ocsp.mode = OcspMode::kQuery;
  options.ocsp.responder_url = url;
  options.ocsp.timeout = absl::Seconds(10);
  return options;
}

TlsTestServerOptions ServerWithCert(absl::string_view name) {
  TlsTestServerOptions options = TlsTestServer::PkiOptions("ec");
  options.cert_file = PkiPath("ec", absl::StrCat(name, ".crt"));
  options.key_file = PkiPath("ec", absl::StrCat(name, ".key"));
  options.chain_file = PkiPath("ec", "int.crt");
  return options;
}

std::unique_ptr<TlsTestServer> StartServer(absl::string_view cert) {
  auto server = TlsTestServer::Create(ServerWithCert(cert));
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

std::unique_ptr<OpensslServer> StartStapling(absl::string_view cert, const std::string& staple) {
  OpensslServer::Options options = OpensslServer::PkiOptions("ec");
  options.cert = PkiPath("ec", absl::StrCat(cert, ".crt"));
  options.key = PkiPath("ec", absl::StrCat(cert, ".key"));
  if (!staple.empty()) options.extra_args = {"-status_file", staple};
  auto server = OpensslServer::Start(std::move(options));
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

class OcspTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testutil::MakeTempDir("tlsb-ocsp"); }

  void TearDown() override {
    RunOnLoop<absl::Status>([this](auto done) {
      for (auto& socket : sockets_) socket->Close();
      done(absl::OkStatus());
    }).IgnoreError();
    RunOnLoop<absl::Status>([this](auto done) {
      sockets_.clear();
      done(absl::OkStatus());
    }).IgnoreError();
  }

  template <typename T>
  T RunOnLoop(std::function<void(std::function<void(T)>)> start) {
    auto promise = std::make_shared<std::promise<T>>();
    auto fired = std::make_shared<std::atomic<bool>>(false);
    std::future<T> future = promise->get_future();
    asio::post(io_, [promise, fired, start = std::move(start)] {
      start([promise, fired](T value) {
        if (!fired->exchange(true)) promise->set_value(std::move(value));
      });
    });
    if (future.wait_for(absl::ToChronoNanoseconds(kWait)) != std::future_status::ready) {
      return absl::DeadlineExceededError("the test timed out waiting for the event loop");
    }
    return future.get();
  }

  std::shared_ptr<TlsClientContext> MakeContext(const TlsOptions& options) {
    auto ctx = TlsClientContext::Create(options, "localhost");
    EXPECT_TRUE(ctx.ok()) << ctx.status();
    return ctx.ok() ? *std::move(ctx) : nullptr;
  }

  // Connects a new socket on `ctx` to 127.0.0.1:`port`; the socket is kept in *out.
  absl::Status ConnectNew(std::shared_ptr<const TlsClientContext> ctx, int port,
                          std::shared_ptr<TlsSocket>* out = nullptr) {
    if (ctx == nullptr) return absl::InternalError("no context");
    auto socket = std::make_shared<TlsSocket>(io_, std::move(ctx));
    sockets_.push_back(socket);
    if (out != nullptr) *out = socket;
    return RunOnLoop<absl::Status>([socket, port](auto done) {
      socket->Connect("127.0.0.1", static_cast<uint16_t>(port), absl::Seconds(5),
                      absl::Seconds(5), [done](absl::Status s) { done(std::move(s)); });
    });
  }

  TlsSessionInfo Info(const std::shared_ptr<TlsSocket>& socket) {
    TlsSessionInfo info;
    RunOnLoop<absl::Status>([&info, socket](auto done) {
      info = socket->session_info();
      done(absl::OkStatus());
    }).IgnoreError();
    return info;
  }

  OcspVerdict Recheck(const std::shared_ptr<TlsSocket>& socket, absl::Duration margin) {
    OcspVerdict verdict;
    absl::Status waited = RunOnLoop<absl::Status>([&verdict, socket, margin](auto done) {
      socket->RecheckOcsp(margin, [&verdict, done](OcspVerdict v) {
        verdict = std::move(v);
        done(absl::OkStatus());
      });
    });
    EXPECT_TRUE(waited.ok()) << waited;
    return verdict;
  }

  std::string dir_;
  EventLoops loops_{1};
  asio::io_context& io_ = loops_.Next();
  std::vector<std::shared_ptr<TlsSocket>> sockets_;
};

// ---- responder queries --------------------------------------------------------------------

TEST_F(OcspTest, ResponderAnsweringGoodLetsTheHandshakeSucceed) {
  auto responder = StartResponder(PkiPath("ec", "int-db/index.txt"));
  ASSERT_NE(responder, nullptr);
  auto server = StartServer("server");
  ASSERT_NE(server, nullptr);
  std::shared_ptr<TlsSocket> socket;
  absl::Status status = ConnectNew(MakeContext(QueryOptions(responder->url())), server->port(),
                                   &socket);
  ASSERT_TRUE(status.ok()) << status << "\n" << responder->log();
  TlsSessionInfo info = Info(socket);
  EXPECT_EQ(info.ocsp_source, "responder");
  EXPECT_EQ(info.ocsp_status, "good");
  ASSERT_TRUE(info.ocsp_valid_until.has_value());
  // `-ndays 1`: the answer holds for about a day.
  EXPECT_GT(*info.ocsp_valid_until, absl::Now() + absl::Hours(23));
  EXPECT_EQ(responder->requests(), 1);
}

TEST_F(OcspTest, ResponderAnsweringRevokedFailsWithCertificateRevoked) {
  auto responder = StartResponder(PkiPath("ec", "int-db/index.txt"));
  ASSERT_NE(responder, nullptr);
  auto server = StartServer("revoked-server");
  ASSERT_NE(server, nullptr);
  absl::Status status = ConnectNew(MakeContext(QueryOptions(responder->url())), server->port());
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_EQ(ReasonOf(status), "certificate_revoked") << status;
  EXPECT_THAT(status.message(), HasSubstr("keyCompromise"));
}

TEST_F(OcspTest, ResponderAnsweringUnknownFailsWithOcspUnknownByDefault) {
  // An empty index: the real responder knows no certificate and answers "unknown".
  const std::string empty_index = dir_ + "/empty-index.txt";
  std::ofstream(empty_index).close();
  auto responder = StartResponder(empty_index);
  ASSERT_NE(responder, nullptr);
  auto server = StartServer("server");
  ASSERT_NE(server, nullptr);
  absl::Status status = ConnectNew(MakeContext(QueryOptions(responder->url())), server->port());
  EXPECT_EQ(ReasonOf(status), "ocsp_unknown") << status << "\n" << responder->log();
}

TEST_F(OcspTest, ResponderAnsweringUnknownIsAcceptedWithOnUnknownAllow) {
  const std::string empty_index = dir_ + "/empty-index.txt";
  std::ofstream(empty_index).close();
  auto responder = StartResponder(empty_index);
  ASSERT_NE(responder, nullptr);
  auto server = StartServer("server");
  ASSERT_NE(server, nullptr);
  TlsOptions options = QueryOptions(responder->url());
  options.ocsp.on_unknown = FailPolicy::kAllow;
  std::shared_ptr<TlsSocket> socket;
  absl::Status status = ConnectNew(MakeContext(options), server->port(), &socket);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(Info(socket).ocsp_status, "unknown");
  // "unknown" is not trusted for the responder's whole nextUpdate (a day): minutes at most.
  ASSERT_TRUE(Info(socket).ocsp_valid_until.has_value());
  EXPECT_LE(*Info(socket).ocsp_valid_until, absl::Now() + absl::Minutes(5));
}

TEST_F(OcspTest, ResponderDownFailsWithOcspUnreachableByDefault) {
  auto server = StartServer("server");
  ASSERT_NE(server, nullptr);
  testutil::RefusingPort responder;  // down for the whole test
  const std::string url = absl::StrCat("http://127.0.0.1:", responder.port(), "/");
  absl::Status status = ConnectNew(MakeContext(QueryOptions(url)), server->port());
  EXPECT_EQ(ReasonOf(status), "ocsp_unreachable") << status;
}

TEST_F(OcspTest, ResponderDownIsAcceptedWithOnUnreachableAllow) {
  auto server = StartServer("server");
  ASSERT_NE(server, nullptr);
  testutil::RefusingPort responder;  // down for the whole test
  TlsOptions options =
      QueryOptions(absl::StrCat("http://127.0.0.1:", responder.port(), "/"));
  options.ocsp.on_unreachable = FailPolicy::kAllow;
  std::shared_ptr<TlsSocket> socket;
  absl::Status status = ConnectNew(MakeContext(options), server->port(), &socket);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(Info(socket).ocsp_status, "unreachable");
  EXPECT_EQ(Info(socket).ocsp_source, "none");
}

// A responder that takes the query and never answers: the handshake timeout ends the connect
// (the OCSP check is part of the handshake's budget), and the verdict that comes later, once
// the responder hangs up, is ignored.
TEST_F(OcspTest, SilentResponderFailsTheConnectWithHandshakeTimeout) {
  testutil::SilentTcpServer responder;
  ASSERT_TRUE(responder.ok());
  auto server = StartServer("server");
  ASSERT_NE(server, nullptr);
  TlsOptions options = QueryOptions(responder.url());
  options.ocsp.timeout = absl::Minutes(10);  // Only the handshake timer can end this connect.
  auto ctx = MakeContext(options);
  ASSERT_NE(ctx, nullptr);
  auto socket = std::make_shared<TlsSocket>(io_, ctx);
  sockets_.push_back(socket);
  auto callbacks = std::make_shared<std::atomic<int>>(0);
  const int port = server->port();
  absl::Status status = RunOnLoop<absl::Status>([socket, port, callbacks](auto done) {
    socket->Connect("127.0.0.1", static_cast<uint16_t>(port), absl::Seconds(5),
                    absl::Milliseconds(300), [done, callbacks](absl::Status s) {
                      ++*callbacks;
                      done(std::move(s));
                    });
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_EQ(ReasonOf(status), "handshake_timeout") << status;
  // The TLS handshake itself had completed and the query had gone out: the time ran out while
  // waiting for the responder.
  EXPECT_TRUE(server->WaitFor([](const auto& s) { return s.full_handshakes == 1; }, kWait));
  EXPECT_TRUE(responder.WaitForConnection(kWait));

  // The responder hangs up: the query fails, and its verdict goes back to the socket's loop,
  // which lets go of the socket once the verdict has been handled.
  responder.Close();
  EXPECT_TRUE(testutil::PollUntil([&] { return socket.use_count() == 2; }, kWait))
      << "the late verdict never reached the socket";
  EXPECT_EQ(callbacks->load(), 1);
  EXPECT_EQ(Info(socket).ocsp_status, "") << "the late verdict was applied";
}

TEST_F(OcspTest, SecondSocketIsAnsweredFromTheCacheWithoutAQuery) {
  auto responder = StartResponder(PkiPath("ec", "int-db/index.txt"));
  ASSERT_NE(responder, nullptr);
  auto server = StartServer("server");
  ASSERT_NE(server, nullptr);
  auto ctx = MakeContext(QueryOptions(responder->url()));
  std::shared_ptr<TlsSocket> first, second;
  ASSERT_TRUE(ConnectNew(ctx, server->port(), &first).ok());
  ASSERT_TRUE(ConnectNew(ctx, server->port(), &second).ok());
  EXPECT_EQ(Info(first).ocsp_source, "responder");
  EXPECT_EQ(Info(second).ocsp_source, "cache");
  EXPECT_EQ(Info(second).ocsp_status, "good");
  EXPECT_EQ(responder->requests(), 1);
}

// Without responder_url the query goes to the certificate's own AIA OCSP URL. The backend gets
// a fresh certificate (issued by the test intermediate) whose AIA names the test's responder,
// and the responder's index lists it as valid.
TEST_F(OcspTest, WithoutResponderUrlTheCertificatesAiaUrlIsQueried) {
  const std::string index = dir_ + "/index.txt";
  std::ofstream(index).close();
  auto responder = StartResponder(index);
  ASSERT_NE(responder, nullptr);
  const std::string key = dir_ + "/aia.key", csr = dir_ + "/aia.csr", crt = dir_ + "/aia.crt";
  const std::string ext = dir_ + "/aia.ext";
  {
    std::ofstream(ext) << "basicConstraints = critical,CA:FALSE\n"
                       << "keyUsage = critical,digitalSignature\n"
                       << "extendedKeyUsage = serverAuth\n"
                       << "subjectAltName = DNS:localhost,IP:127.0.0.1\n"
                       << "authorityInfoAccess = OCSP;URI:" << responder->url() << "\n";
  }
  for (const std::vector<std::string>& argv : std::vector<std::vector<std::string>>{
           {"openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-out", key},
           {"openssl", "req", "-new", "-key", key, "-subj", "/C=GB/O=Example/CN=aia.backend",
            "-out", csr},
           {"openssl", "x509", "-req", "-in", csr, "-CA", PkiPath("ec", "int.crt"), "-CAkey",
            PkiPath("ec", "int.key"), "-set_serial", "0x7A1A", "-days", "2", "-extfile", ext,
            "-out", crt}}) {
    auto run = testutil::RunCommand(argv);
    ASSERT_TRUE(run.ok() && run->exit_code == 0)
        << argv[1] << ": " << (run.ok() ? run->output : run.status().ToString());
  }
  // The `openssl ca` index line for it: valid, expiry far ahead, serial 7A1A.
  { std::ofstream(index) << "V\t491231235959Z\t\t7A1A\tunknown\t/C=GB/O=Example/CN=aia.backend\n"; }
  TlsTestServerOptions server_options = TlsTestServer::PkiOptions("ec");
  server_options.cert_file = crt;
  server_options.key_file = key;
  server_options.chain_file = PkiPath("ec", "int.crt");
  auto server = TlsTestServer::Create(server_options);
  ASSERT_TRUE(server.ok()) << server.status();
  TlsOptions options = QueryOptions("");  // No responder_url.
  std::shared_ptr<TlsSocket> socket;
  absl::Status status = ConnectNew(MakeContext(options), (*server)->port(), &socket);
  ASSERT_TRUE(status.ok()) << status << "\n" << responder->log();
  EXPECT_EQ(Info(socket).ocsp_source, "responder");
  EXPECT_EQ(Info(socket).ocsp_status, "good");
  EXPECT_EQ(responder->requests(), 1);
}

// Sockets connecting at the same moment (a prewarmed pool) share one query.
TEST_F(OcspTest, ConcurrentHandshakesShareOneResponderQuery) {
  auto responder = StartResponder(PkiPath("ec", "int-db/index.txt"));
  ASSERT_NE(responder, nullptr);
  auto server = StartServer("server");
  ASSERT_NE(server, nullptr);
  auto ctx = MakeContext(QueryOptions(responder->url()));
  ASSERT_NE(ctx, nullptr);
  static constexpr int kSockets = 4;
  std::vector<std::shared_ptr<TlsSocket>> sockets;
  for (int i = 0; i < kSockets; ++i) {
    sockets.push_back(std::make_shared<TlsSocket>(io_, ctx));
    sockets_.push_back(sockets.back());
  }
  const int port = server->port();
  absl::Status all = RunOnLoop<absl::Status>([sockets, port](auto done) {
    auto remaining = std::make_shared<int>(kSockets);
    auto first_error = std::make_shared<absl::Status>();
    for (const auto& socket : sockets) {
      socket->Connect("127.0.0.1", static_cast<uint16_t>(port), absl::Seconds(5),
                      absl::Seconds(5), [done, remaining, first_error](absl::Status s) {
                        if (!s.ok() && first_error->ok()) *first_error = s;
                        if (--*remaining == 0) done(*first_error);
                      });
    }
  });
  ASSERT_TRUE(all.ok()) << all;
  EXPECT_EQ(responder->requests(), 1);
  for (const auto& socket : sockets) EXPECT_EQ(Info(socket).ocsp_status, "good");
}

// ---- stapling -----------------------------------------------------------------------------

TEST_F(OcspTest, StapledGoodResponseIsAcceptedWithoutAQuery) {
  const std::string staple = MakeResponseFile(dir_, "server");
  auto server = StartStapling("server", staple);
  ASSERT_NE(server, nullptr);
  TlsOptions options = ClientOptions();
  options.ocsp.mode = OcspMode::kStapleOnly;
  std::shared_ptr<TlsSocket> socket;
  absl::Status status = ConnectNew(MakeContext(options), server->port(), &socket);
  ASSERT_TRUE(status.ok()) << status << "\n" << server->Log();
  EXPECT_EQ(Info(socket).ocsp_source, "staple");
  EXPECT_EQ(Info(socket).ocsp_status, "good");
}

TEST_F(OcspTest, StapledRevokedResponseFailsWithCertificateRevoked) {
  const std::string staple = MakeResponseFile(dir_, "revoked-server");
  auto server = StartStapling("revoked-server", staple);
  ASSERT_NE(server, nullptr);
  TlsOptions options = ClientOptions();
  options.ocsp.mode = OcspMode::kStapleOrQuery;
  absl::Status status = ConnectNew(MakeContext(options), server->port());
  EXPECT_EQ(ReasonOf(status), "certificate_revoked") << status << "\n" << server->Log();
}

TEST_F(OcspTest, StapleOnlyWithoutStapleFailsWithOcspUnknown) {
  auto server = StartStapling("server", "");
  ASSERT_NE(server, nullptr);
  TlsOptions options = ClientOptions();
  options.ocsp.mode = OcspMode::kStapleOnly;
  absl::Status status = ConnectNew(MakeContext(options), server->port());
  EXPECT_EQ(ReasonOf(status), "ocsp_unknown") << status;
}

// A response signed by a certificate the CA never delegated OCSP to (here: the server's own
// key) must not be believed, even though it says "good".
TEST_F(OcspTest, StapleSignedByUndelegatedCertificateFailsWithOcspInvalid) {
  const std::string staple = MakeResponseFile(dir_, "server", "client");
  auto server = StartStapling("server", staple);
  ASSERT_NE(server, nullptr);
  TlsOptions options = ClientOptions();
  options.ocsp.mode = OcspMode::kStapleOnly;
  absl::Status status = ConnectNew(MakeContext(options), server->port());
  EXPECT_EQ(ReasonOf(status), "ocsp_invalid") << status;
}

// ---- re-check of a pooled socket ----------------------------------------------------------

TEST_F(OcspTest, RecheckSeesARevocationMadeAfterTheHandshake) {
  // The responder answers from a copy of the index that the test edits.
  const std::string index = dir_ + "/index.txt";
  std::string original = testutil::ReadFileOrEmpty(PkiPath("ec", "int-db/index.txt"));
  ASSERT_FALSE(original.empty());
  { std::ofstream(index) << original; }
  auto responder = StartResponder(index);
  ASSERT_NE(responder, nullptr);
  auto server = StartServer("server");
  ASSERT_NE(server, nullptr);
  std::shared_ptr<TlsSocket> socket;
  ASSERT_TRUE(ConnectNew(MakeContext(QueryOptions(responder->url())), server->port(), &socket)
                  .ok());

  // Within its validity the cached answer is reused: no query.
  OcspVerdict cached = Recheck(socket, absl::Minutes(1));
  EXPECT_TRUE(cached.status.ok()) << cached.status;
  EXPECT_EQ(cached.source, "cache");
  EXPECT_EQ(responder->requests(), 1);

  // Revoke server.crt in the index: its line is the one whose DN ends CN=QM2.backend.
  std::string revoked;
  for (absl::string_view line : absl::StrSplit(original, '\n', absl::SkipEmpty())) {
    std::vector<std::string> f = absl::StrSplit(line, '\t');
    if (f.size() == 6 && absl::EndsWith(f[5], "CN=QM2.backend") && f[0] == "V") {
      f[0] = "R";
      f[2] = "260101000000Z,keyCompromise";
    }
    absl::StrAppend(&revoked, absl::StrJoin(f, "\t"), "\n");
  }
  { std::ofstream(index, std::ios::trunc) << revoked; }

  // A margin longer than the cached answer's life forces a fresh query.
  OcspVerdict fresh = Recheck(socket, absl::Hours(48));
  EXPECT_EQ(fresh.source, "responder");
  EXPECT_EQ(fresh.cert_status, "revoked");
  EXPECT_EQ(ReasonOf(fresh.status), "certificate_revoked") << fresh.status;
  EXPECT_EQ(responder->requests(), 2);
}

TEST(OcspCheckerCreateTest, HttpsResponderUrlIsRejectedNamingIt) {
  OcspOptions options;
  options.mode = OcspMode::kQuery;
  options.responder_url = "https://ocsp.example/";
  auto checker = OcspChecker::Create(options, PkiPath("ec", "root.crt"));
  ASSERT_FALSE(checker.ok());
  EXPECT_THAT(checker.status().message(), HasSubstr("https://ocsp.example/"));
}

}  // namespace
}  // namespace tlsbroker
