#include "tests/support/tls_test_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_pki.h"
#include "tests/support/tls_test_client.h"

namespace tlsbroker::testutil {
namespace {

constexpr absl::Duration kWait = absl::Seconds(10);

std::unique_ptr<TlsTestServer> StartServer(const TlsTestServerOptions& options) {
  absl::StatusOr<std::unique_ptr<TlsTestServer>> server = TlsTestServer::Create(options);
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? std::move(*server) : nullptr;
}

std::unique_ptr<TlsTestClient> ConnectOrDie(int port, const TlsTestClientOptions& options,
                                            TlsSessionPtr resume = nullptr) {
  absl::StatusOr<std::unique_ptr<TlsTestClient>> client =
      TlsTestClient::Connect(port, options, std::move(resume));
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? std::move(*client) : nullptr;
}

// `openssl s_client -reconnect`: one connection, then five more offering the first session.
absl::StatusOr<CommandResult> SClientReconnect(int port, absl::string_view alg,
                                               std::vector<std::string> extra) {
  std::vector<std::string> argv = {"openssl",     "s_client",
                                   "-connect",    absl::StrCat("127.0.0.1:", port),
                                   "-CAfile",     PkiPath(alg, "root.crt"),
                                   "-cert",       PkiPath(alg, "client.crt"),
                                   "-key",        PkiPath(alg, "client.key"),
                                   "-cert_chain", PkiPath(alg, "int.crt"),
                                   "-reconnect"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return RunCommand(argv, "", absl::Seconds(30));
}

int CountOccurrences(absl::string_view haystack, absl::string_view needle) {
  int count = 0;
  for (size_t pos = haystack.find(needle); pos != absl::string_view::npos;
       pos = haystack.find(needle, pos + 1)) {
    ++count;
  }
  return count;
}

bool SettlesAt(const TlsTestServer& server, int64_t full, int64_t resumed, int64_t failures) {
  return server.WaitFor(
      [&](const TlsTestServerStats& s) {
        return s.full_handshakes == full && s.resumed_handshakes == resumed &&
               s.handshake_failures == failures && s.current_connections == 0;
      },
      kWait);
}

// s_client -reconnect over TLS 1.2 makes one full and five resumed handshakes, and the server
// counts exactly that. (TLS 1.3 s_client reconnects before reading its ticket, so it never
// resumes; the C++ client test below covers TLS 1.3.)
TEST(TlsTestServerTest, CountsOneFullAndFiveResumedHandshakesFromSClientReconnect) {
  auto server = StartServer(TlsTestServer::PkiOptions("ec"));
  ASSERT_NE(server, nullptr);
  absl::StatusOr<CommandResult> result = SClientReconnect(server->port(), "ec", {"-tls1_2"});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(CountOccurrences(result->output, "\nReused, TLSv1.2"), 5) << result->output;
  EXPECT_TRUE(SettlesAt(*server, 1, 5, 0))
      << "full " << server->full_handshakes() << " resumed " << server->resumed_handshakes();
  EXPECT_EQ(server->full_handshakes(), 1);
  EXPECT_EQ(server->resumed_handshakes(), 5);
  EXPECT_EQ(server->connections_accepted(), 6);
}

// With tickets and the session cache off, every one of the six handshakes is a full one.
TEST(TlsTestServerTest, CountsSixFullHandshakesWhenResumptionIsOff) {
  TlsTestServerOptions options = TlsTestServer::PkiOptions("ec");
  options.session_tickets = false;
  options.session_cache = false;
  auto server = StartServer(options);
  ASSERT_NE(server, nullptr);
  absl::StatusOr<CommandResult> result = SClientReconnect(server->port(), "ec", {"-tls1_2"});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(CountOccurrences(result->output, "\nReused,"), 0) << result->output;
  EXPECT_TRUE(SettlesAt(*server, 6, 0, 0));
  EXPECT_EQ(server->full_handshakes(), 6);
  EXPECT_EQ(server->resumed_handshakes(), 0);
}

// A TLS 1.3 client that reads the ticket and offers it resumes, and the server counts it.
TEST(TlsTestServerTest, CountsTls13ResumptionFromCppClient) {
  auto server = StartServer(TlsTestServer::PkiOptions("ec"));
  ASSERT_NE(server, nullptr);
  TlsTestClientOptions options = TlsTestClient::PkiOptions("ec");
  auto first = ConnectOrDie(server->port(), options);
  ASSERT_NE(first, nullptr);
  ASSERT_TRUE(first->Write("ping").ok());
  ASSERT_EQ(first->ReadExactly(4).value_or(""), "ping");  // also consumes the tickets
  EXPECT_EQ(first->version(), "TLSv1.3");
  TlsSessionPtr session = first->session();
  ASSERT_NE(session, nullptr);
  first->Close();

  auto second = ConnectOrDie(server->port(), options, session);
  ASSERT_NE(second, nullptr);
  EXPECT_TRUE(second->resumed());
  second->Close();
  EXPECT_TRUE(SettlesAt(*server, 1, 1, 0));
  std::vector<TlsTestServerHandshake> handshakes = server->handshakes();
  ASSERT_EQ(handshakes.size(), 2u);
  EXPECT_FALSE(handshakes[0].resumed);
  EXPECT_TRUE(handshakes[1].resumed);
}

// The server records the RFC 2253 subject of each client certificate.
TEST(TlsTestServerTest, RecordsClientCertificateSubjects) {
  auto server = StartServer(TlsTestServer::PkiOptions("rsa"));
  ASSERT_NE(server, nullptr);
  for (const char* name : {"client", "client2"}) {
    auto client = ConnectOrDie(server->port(), TlsTestClient::PkiOptions("rsa", name));
    ASSERT_NE(client, nullptr);
    EXPECT_EQ(client->peer_subject(), "CN=QM2.backend,OU=IBM,OU=WEBSPHERE,O=Example,C=GB");
    ASSERT_TRUE(client->Write("x").ok());
    ASSERT_EQ(client->ReadExactly(1).value_or(""), "x");
  }
  EXPECT_EQ(server->peer_subjects(),
            (std::vector<std::string>{"CN=app1,OU=payments,O=Example,C=GB",
                                      "CN=app2,OU=payments,O=Example,C=GB"}));
}

// A client without a certificate is refused, and counted as a handshake failure.
TEST(TlsTestServerTest, RefusesClientWithoutCertificate) {
  auto server = StartServer(TlsTestServer::PkiOptions("ec"));
  ASSERT_NE(server, nullptr);
  TlsTestClientOptions options = TlsTestClient::PkiOptions("ec");
  options.cert_file.clear();
  options.key_file.clear();
  absl::StatusOr<std::unique_ptr<TlsTestClient>> client =
      TlsTestClient::Connect(server->port(), options);
  // In TLS 1.3 the client's handshake completes; the refusal arrives at its first read.
  if (client.ok()) {
    (void)(*client)->Write("x");
    EXPECT_FALSE((*client)->ReadExactly(1).ok());
  }
  EXPECT_TRUE(SettlesAt(*server, 0, 0, 1));
  EXPECT_EQ(server->handshake_failures(), 1);
  EXPECT_TRUE(server->peer_subjects().empty());
}

// A client certificate from another CA is refused, and counted as a handshake failure.
TEST(TlsTestServerTest, RefusesClientFromWrongCa) {
  auto server = StartServer(TlsTestServer::PkiOptions("ec"));
  ASSERT_NE(server, nullptr);
  TlsTestClientOptions options = TlsTestClient::PkiOptions("ec");
  options.cert_file = PkiPath("ec", "wrongca/client.crt");
  options.key_file = PkiPath("ec", "wrongca/client.key");
  options.max_version = TLS1_2_VERSION;  // TLS 1.2: the refusal is part of the handshake
  absl::StatusOr<std::unique_ptr<TlsTestClient>> client =
      TlsTestClient::Connect(server->port(), options);
  EXPECT_FALSE(client.ok());
  EXPECT_TRUE(SettlesAt(*server, 0, 0, 1));
  EXPECT_EQ(server->handshake_failures(), 1);
}

// With a CRL configured, a revoked client certificate is refused; a good one is not.
TEST(TlsTestServerTest, RefusesRevokedClientWhenCrlIsConfigured) {
  TlsTestServerOptions server_options = TlsTestServer::PkiOptions("ec");
  server_options.crl_file = PkiPath("ec", "int.crl.pem");
  auto server = StartServer(server_options);
  ASSERT_NE(server, nullptr);
  TlsTestClientOptions options = TlsTestClient::PkiOptions("ec", "revoked-client");
  options.max_version = TLS1_2_VERSION;
  EXPECT_FALSE(TlsTestClient::Connect(server->port(), options).ok());
  auto good = ConnectOrDie(server->port(), TlsTestClient::PkiOptions("ec"));
  ASSERT_NE(good, nullptr);
  good->Close();
  EXPECT_TRUE(SettlesAt(*server, 1, 0, 1));
}

// With require_client_cert off, a client without a certificate is served.
TEST(TlsTestServerTest, ServesClientWithoutCertificateWhenNotRequired) {
  TlsTestServerOptions server_options = TlsTestServer::PkiOptions("ec");
  server_options.require_client_cert = false;
  auto server = StartServer(server_options);
  ASSERT_NE(server, nullptr);
  TlsTestClientOptions options = TlsTestClient::PkiOptions("ec");
  options.cert_file.clear();
  options.key_file.clear();
  auto client = ConnectOrDie(server->port(), options);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Write("abc").ok());
  EXPECT_EQ(client->ReadExactly(3).value_or(""), "abc");
  EXPECT_EQ(server->peer_subjects(), std::vector<std::string>{""});
}

// Echo mode writes back every byte, and the byte counters follow.
TEST(TlsTestServerTest, EchoModeEchoesEveryByte) {
  auto server = StartServer(TlsTestServer::PkiOptions("ec"));
  ASSERT_NE(server, nullptr);
  auto client = ConnectOrDie(server->port(), TlsTestClient::PkiOptions("ec"));
  ASSERT_NE(client, nullptr);
  // In chunks: neither side reads while it writes, so one huge write could fill both ways.
  for (int i = 0; i < 10; ++i) {
    std::string chunk(10000, static_cast<char>('a' + i));
    ASSERT_TRUE(client->Write(chunk).ok());
    ASSERT_EQ(client->ReadExactly(chunk.size()).value_or(""), chunk);
  }
  // Counters move just after the bytes do: wait for them.
  EXPECT_TRUE(server->WaitFor(
      [](const TlsTestServerStats& s) { return s.bytes_in == 100000 && s.bytes_out == 100000; },
      kWait))
      << server->bytes_in() << " in, " << server->bytes_out() << " out";
}

// Framed mode answers each request frame, even two sent in one write, with one frame of
// prefix + transformed payload.
TEST(TlsTestServerTest, FramedEchoAnswersEachFrame) {
  TlsTestServerOptions options = TlsTestServer::PkiOptions("ec");
  options.mode = TlsTestServerMode::kFramedEcho;
  options.response_prefix = "re:";
  options.transform = [](absl::string_view p) { return absl::StrCat(p, "/", p.size()); };
  auto server = StartServer(options);
  ASSERT_NE(server, nullptr);
  auto client = ConnectOrDie(server->port(), TlsTestClient::PkiOptions("ec"));
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Write(std::string("\0\0\0\x07one\0\0\0\x04", 11)).ok());
  ASSERT_TRUE(client->WriteFrame("three").ok());
  EXPECT_EQ(client->ReadFrame().value_or("?"), "re:one/3");
  EXPECT_EQ(client->ReadFrame().value_or("?"), "re:/0");
  EXPECT_EQ(client->ReadFrame().value_or("?"), "re:three/5");
  EXPECT_TRUE(server->WaitFor(
      [](const TlsTestServerStats& s) { return s.requests == 3 && s.responses == 3; }, kWait));
}

// Line mode reverses each line like `s_server -rev`, and CLOSE hangs up.
TEST(TlsTestServerTest, LineReverseModeReversesLinesAndClosesOnClose) {
  TlsTestServerOptions options = TlsTestServer::PkiOptions("ec");
  options.mode = TlsTestServerMode::kLineReverse;
  auto server = StartServer(options);
  ASSERT_NE(server, nullptr);
  auto client = ConnectOrDie(server->port(), TlsTestClient::PkiOptions("ec"));
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Write("hello\nab").ok());
  EXPECT_EQ(client->ReadLine().value_or("?"), "olleh");
  ASSERT_TRUE(client->Write("c\nCLOSE\n").ok());
  EXPECT_EQ(client->ReadLine().value_or("?"), "cba");
  absl::StatusOr<std::string> after = client->ReadSome();
  EXPECT_TRUE(!after.ok() || after->empty());
  EXPECT_TRUE(server->WaitFor(
      [](const TlsTestServerStats& s) { return s.current_connections == 0; }, kWait));
}

// stall_handshake accepts the TCP connection but never answers the ClientHello.
TEST(TlsTestServerTest, StallHandshakeMakesClientHandshakeTimeOut) {
  auto server = StartServer(TlsTestServer::PkiOptions("ec"));
  ASSERT_NE(server, nullptr);
  server->set_stall_handshake(true);
  TlsTestClientOptions options = TlsTestClient::PkiOptions("ec");
  options.io_timeout = absl::Milliseconds(300);
  absl::StatusOr<std::unique_ptr<TlsTestClient>> client =
      TlsTestClient::Connect(server->port(), options);
  EXPECT_EQ(client.status().code(), absl::StatusCode::kDeadlineExceeded) << client.status();
  EXPECT_EQ(server->connections_accepted(), 1);
  EXPECT_EQ(server->total_handshakes(), 0);
  EXPECT_EQ(server->handshake_failures(), 0);
  // Switched off, the next connection completes.
  server->set_stall_handshake(false);
  EXPECT_NE(ConnectOrDie(server->port(), TlsTestClient::PkiOptions("ec")), nullptr);
}

// stall_response reads the request but never answers it.
TEST(TlsTestServerTest, StallResponseReadsButNeverAnswers) {
  TlsTestServerOptions server_options = TlsTestServer::PkiOptions("ec");
  server_options.mode = TlsTestServerMode::kFramedEcho;
  auto server = StartServer(server_options);
  ASSERT_NE(server, nullptr);
  server->set_stall_response(true);
  TlsTestClientOptions options = TlsTestClient::PkiOptions("ec");
  options.io_timeout = absl::Milliseconds(300);
  auto client = ConnectOrDie(server->port(), options);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->WriteFrame("req").ok());
  EXPECT_EQ(client->ReadFrame().status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(server->stats().requests, 1);
  EXPECT_EQ(server->stats().responses, 0);
}

// close_idle_after closes a connection that sent nothing for that long, with close_notify.
TEST(TlsTestServerTest, CloseIdleAfterClosesIdleConnections) {
  auto server = StartServer(TlsTestServer::PkiOptions("ec"));
  ASSERT_NE(server, nullptr);
  server->set_close_idle_after(absl::Milliseconds(100));
  auto client = ConnectOrDie(server->port(), TlsTestClient::PkiOptions("ec"));
  ASSERT_NE(client, nullptr);
  absl::StatusOr<std::string> read = client->ReadSome();
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, "");  // orderly end
  EXPECT_TRUE(server->WaitFor(
      [](const TlsTestServerStats& s) { return s.idle_closes == 1 && s.current_connections == 0; },
      kWait));
}

// garbage_response answers with a header that no valid frame can have.
TEST(TlsTestServerTest, GarbageResponseIsNotAFrame) {
  TlsTestServerOptions options = TlsTestServer::PkiOptions("ec");
  options.mode = TlsTestServerMode::kFramedEcho;
  auto server = StartServer(options);
  ASSERT_NE(server, nullptr);
  server->set_garbage_response(true);
  auto client = ConnectOrDie(server->port(), TlsTestClient::PkiOptions("ec"));
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->WriteFrame("req").ok());
  EXPECT_EQ(client->ReadFrame().status().code(), absl::StatusCode::kDataLoss);
}

// oversize_response declares a frame longer than any sane maximum.
TEST(TlsTestServerTest, OversizeResponseDeclaresHugeFrame) {
  TlsTestServerOptions options = TlsTestServer::PkiOptions("ec");
  options.mode = TlsTestServerMode::kFramedEcho;
  auto server = StartServer(options);
  ASSERT_NE(server, nullptr);
  server->set_oversize_response(true);
  auto client = ConnectOrDie(server->port(), TlsTestClient::PkiOptions("ec"));
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->WriteFrame("req").ok());
  EXPECT_EQ(client->ReadExactly(4).value_or(""), std::string("\x7f\xff\xff\xff", 4));
}

// send_extra_bytes_after_response puts one unsolicited byte after each answer.
TEST(TlsTestServerTest, ExtraByteFollowsEachResponse) {
  TlsTestServerOptions options = TlsTestServer::PkiOptions("ec");
  options.mode = TlsTestServerMode::kFramedEcho;
  auto server = StartServer(options);
  ASSERT_NE(server, nullptr);
  server->set_send_extra_bytes_after_response(true);
  auto client = ConnectOrDie(server->port(), TlsTestClient::PkiOptions("ec"));
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->WriteFrame("req").ok());
  EXPECT_EQ(client->ReadFrame().value_or("?"), "req");
  EXPECT_EQ(client->ReadExactly(1).value_or("?"), "!");
}

// Stop() returns with a delayed answer and a stalled handshake in flight, and drops both.
TEST(TlsTestServerTest, StopDoesNotHangOnStalledConnections) {
  auto server = StartServer(TlsTestServer::PkiOptions("ec"));
  ASSERT_NE(server, nullptr);
  server->set_response_delay(absl::Hours(1));
  auto delayed = ConnectOrDie(server->port(), TlsTestClient::PkiOptions("ec"));
  ASSERT_NE(delayed, nullptr);
  ASSERT_TRUE(delayed->Write("x").ok());
  ASSERT_TRUE(server->WaitFor([](const TlsTestServerStats& s) { return s.requests == 1; }, kWait));
  // A second connection held open (plain TCP) while its handshake stalls.
  server->set_stall_handshake(true);
  int raw = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(raw, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(server->port()));
  ASSERT_EQ(connect(raw, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_TRUE(server->WaitFor(
      [](const TlsTestServerStats& s) { return s.current_connections == 2; }, kWait));
  server->Stop();
  EXPECT_EQ(server->current_connections(), 0);
  EXPECT_EQ(server->stats().responses, 0);
  EXPECT_FALSE(server->running());
  char byte;
  EXPECT_EQ(read(raw, &byte, 1), 0);  // the server hung up
  close(raw);
}

// CloseAllConnections drops open sockets and keeps accepting new ones.
TEST(TlsTestServerTest, CloseAllConnectionsDropsSocketsAndKeepsListening) {
  auto server = StartServer(TlsTestServer::PkiOptions("ec"));
  ASSERT_NE(server, nullptr);
  auto a = ConnectOrDie(server->port(), TlsTestClient::PkiOptions("ec"));
  auto b = ConnectOrDie(server->port(), TlsTestClient::PkiOptions("ec"));
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(server->WaitFor(
      [](const TlsTestServerStats& s) { return s.current_connections == 2; }, kWait));
  server->CloseAllConnections();
  absl::StatusOr<std::string> read = a->ReadSome();
  EXPECT_TRUE(!read.ok() || read->empty());
  EXPECT_TRUE(server->WaitFor(
      [](const TlsTestServerStats& s) { return s.current_connections == 0; }, kWait));
  auto c = ConnectOrDie(server->port(), TlsTestClient::PkiOptions("ec"));
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->Write("y").ok());
  EXPECT_EQ(c->ReadExactly(1).value_or(""), "y");
}

// After Stop() the port refuses connections; Start() serves again on the same port.
TEST(TlsTestServerTest, StopThenStartServesOnTheSamePort) {
  auto server = StartServer(TlsTestServer::PkiOptions("ec"));
  ASSERT_NE(server, nullptr);
  const int port = server->port();
  auto before = ConnectOrDie(port, TlsTestClient::PkiOptions("ec"));
  ASSERT_NE(before, nullptr);
  server->Stop();
  EXPECT_FALSE(TlsTestClient::Connect(port, TlsTestClient::PkiOptions("ec")).ok());
  ASSERT_TRUE(server->Start().ok());
  EXPECT_EQ(server->port(), port);
  auto after = ConnectOrDie(port, TlsTestClient::PkiOptions("ec"));
  ASSERT_NE(after, nullptr);
  ASSERT_TRUE(after->Write("z").ok());
  EXPECT_EQ(after->ReadExactly(1).value_or(""), "z");
  EXPECT_EQ(server->full_handshakes(), 2);  // counters survive a restart
}

// Many connections are served at the same time (unlike s_server).
TEST(TlsTestServerTest, ServesManyConnectionsAtOnce) {
  auto server = StartServer(TlsTestServer::PkiOptions("ec"));
  ASSERT_NE(server, nullptr);
  std::vector<std::unique_ptr<TlsTestClient>> clients;
  for (int i = 0; i < 8; ++i) {
    clients.push_back(ConnectOrDie(server->port(), TlsTestClient::PkiOptions("ec")));
    ASSERT_NE(clients.back(), nullptr);
  }
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(clients[i]->Write(absl::StrCat(i)).ok());
    EXPECT_EQ(clients[i]->ReadExactly(1).value_or(""), absl::StrCat(i));
  }
  EXPECT_EQ(server->current_connections(), 8);
  EXPECT_EQ(server->full_handshakes(), 8);
}

// Version and cipher options apply: TLS 1.2 NULL-SHA256 with an RSA certificate, as an
// ENULL backend needs, and the handshake record shows it.
TEST(TlsTestServerTest, NegotiatesNullCipherWhenConfigured) {
  TlsTestServerOptions server_options = TlsTestServer::PkiOptions("rsa");
  server_options.max_version = TLS1_2_VERSION;
  server_options.cipher_list = "NULL-SHA256:@SECLEVEL=0";
  auto server = StartServer(server_options);
  ASSERT_NE(server, nullptr);
  TlsTestClientOptions options = TlsTestClient::PkiOptions("rsa");
  options.cipher_list = "NULL-SHA256:@SECLEVEL=0";
  auto client = ConnectOrDie(server->port(), options);
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->cipher(), "NULL-SHA256");
  ASSERT_TRUE(client->Write("n").ok());  // the server records the handshake before serving
  ASSERT_EQ(client->ReadExactly(1).value_or(""), "n");
  std::vector<TlsTestServerHandshake> handshakes = server->handshakes();
  ASSERT_EQ(handshakes.size(), 1u);
  EXPECT_EQ(handshakes[0].version, "TLSv1.2");
  EXPECT_EQ(handshakes[0].cipher, "NULL-SHA256");
}

}  // namespace
}  // namespace tlsbroker::testutil
