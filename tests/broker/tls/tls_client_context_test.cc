// TlsClientContext + TlsSocket against real peers: the project's multi-connection TlsTestServer
// (handshake counting, fault switches) and `openssl s_server` (third-party interoperability:
// TLS 1.2/1.3 only, NULL ciphers, legacy suites).
//
// Every socket lives on one EventLoops loop; the test thread drives it by posting work and
// waiting on a future with a bounded timeout.

#include "broker/tls/tls_client_context.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <asio/post.hpp>
#include <atomic>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "broker/config/options.h"
#include "broker/io/event_loops.h"
#include "broker/tls/failure_reason.h"
#include "broker/tls/openssl_ptr.h"
#include "broker/tls/tls_socket.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/refusing_port.h"
#include "tests/support/openssl_server.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_pki.h"
#include "tests/support/tls_test_server.h"

namespace tlsbroker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testutil::OpensslServer;
using testutil::PkiPath;
using testutil::TlsTestServer;
using testutil::TlsTestServerOptions;

constexpr char kServerSubject[] = "CN=QM2.backend,OU=IBM,OU=WEBSPHERE,O=Example,C=GB";
constexpr char kClientSubject[] = "CN=app1,OU=payments,O=Example,C=GB";
// Upper bound for any single wait on the loop; tests normally finish in milliseconds.
constexpr absl::Duration kWait = absl::Seconds(10);

// The broker side of the PKI: trusts root.crt, presents client.crt (+ intermediate).
TlsOptions ClientOptions(absl::string_view alg = "ec") {
  TlsOptions options;
  options.ca_file = PkiPath(alg, "root.crt");
  options.cert_file = PkiPath(alg, "client.fullchain.pem");
  options.key_file = PkiPath(alg, "client.key");
  return options;
}

std::shared_ptr<TlsClientContext> MakeContext(const TlsOptions& options,
                                              const std::string& server_name = "localhost") {
  auto ctx = TlsClientContext::Create(options, server_name);
  EXPECT_TRUE(ctx.ok()) << ctx.status();
  return ctx.ok() ? *std::move(ctx) : nullptr;
}

std::unique_ptr<TlsTestServer> StartServer(TlsTestServerOptions options) {
  auto server = TlsTestServer::Create(std::move(options));
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

// The default test backend (ec PKI, client certificate required, echo) with a different
// server certificate and no intermediate unless `chain` is given.
TlsTestServerOptions ServerWithCert(absl::string_view cert, absl::string_view key,
                                    absl::string_view chain = "int.crt") {
  TlsTestServerOptions options = TlsTestServer::PkiOptions("ec");
  options.cert_file = PkiPath("ec", cert);
  options.key_file = PkiPath("ec", key);
  options.chain_file = chain.empty() ? "" : PkiPath("ec", chain);
  return options;
}

class TlsClientTest : public ::testing::Test {
 protected:
  void TearDown() override {
    // Close on the loop, then let the cancelled handlers run before the loops go away.
    RunOnLoop<absl::Status>([this](auto done) {
      for (auto& socket : sockets_) socket->Close();
      done(absl::OkStatus());
    }).IgnoreError();
    RunOnLoop<absl::Status>([](auto done) { done(absl::OkStatus()); }).IgnoreError();
    RunOnLoop<absl::Status>([this](auto done) {
      sockets_.clear();
      done(absl::OkStatus());
    }).IgnoreError();
  }

  // Runs `start` on the loop and waits (bounded) for the value it passes to its callback.
  // T is absl::Status or absl::StatusOr<...>: a timeout becomes DeadlineExceeded.
  template <typename T>
  T RunOnLoop(std::function<void(std::function<void(T)>)> start, absl::Duration timeout = kWait) {
    auto promise = std::make_shared<std::promise<T>>();
    auto fired = std::make_shared<std::atomic<bool>>(false);
    std::future<T> future = promise->get_future();
    asio::post(io_, [promise, fired, start = std::move(start)] {
      start([promise, fired](T value) {
        if (!fired->exchange(true)) promise->set_value(std::move(value));
      });
    });
    if (future.wait_for(absl::ToChronoNanoseconds(timeout)) != std::future_status::ready) {
      return absl::DeadlineExceededError("the test timed out waiting for the event loop");
    }
    return future.get();
  }

  std::shared_ptr<TlsSocket> NewSocket(std::shared_ptr<const TlsClientContext> ctx) {
    auto socket = std::make_shared<TlsSocket>(io_, std::move(ctx));
    sockets_.push_back(socket);
    return socket;
  }

  absl::Status Connect(const std::shared_ptr<TlsSocket>& socket, int port,
                       absl::Duration handshake_timeout = absl::Seconds(5)) {
    return RunOnLoop<absl::Status>([socket, port, handshake_timeout](auto done) {
      socket->Connect("127.0.0.1", static_cast<uint16_t>(port), absl::Seconds(5), handshake_timeout,
                      [done](absl::Status s) { done(std::move(s)); });
    });
  }

  // A new socket on `ctx`, connected to `port`; the status of the connect.
  absl::Status ConnectNew(std::shared_ptr<const TlsClientContext> ctx, int port,
                          std::shared_ptr<TlsSocket>* out = nullptr) {
    if (ctx == nullptr) return absl::InternalError("no context");
    auto socket = NewSocket(std::move(ctx));
    if (out != nullptr) *out = socket;
    return Connect(socket, port);
  }

  absl::Status Write(const std::shared_ptr<TlsSocket>& socket, std::string data) {
    return RunOnLoop<absl::Status>([socket, data](auto done) {
      socket->Write(data, [done](absl::Status s) { done(std::move(s)); });
    });
  }

  absl::StatusOr<std::string> Read(const std::shared_ptr<TlsSocket>& socket,
                                   size_t max_bytes = 4096) {
    return RunOnLoop<absl::StatusOr<std::string>>([socket, max_bytes](auto done) {
      socket->Read(max_bytes, [done](absl::StatusOr<std::string> r) { done(std::move(r)); });
    });
  }

  // Reads until `n` bytes have arrived (reading at most what is still missing).
  absl::StatusOr<std::string> ReadExactly(const std::shared_ptr<TlsSocket>& socket, size_t n) {
    std::string got;
    while (got.size() < n) {
      absl::StatusOr<std::string> part = Read(socket, n - got.size());
      if (!part.ok()) return part.status();
      got += *part;
    }
    return got;
  }

  // Reads until the data ends with '\n'.
  absl::StatusOr<std::string> ReadLine(const std::shared_ptr<TlsSocket>& socket) {
    std::string got;
    while (got.empty() || got.back() != '\n') {
      absl::StatusOr<std::string> part = Read(socket);
      if (!part.ok()) return part.status();
      got += *part;
    }
    return got;
  }

  // Sends `message` to an echo server and returns what came back.
  absl::StatusOr<std::string> Echo(const std::shared_ptr<TlsSocket>& socket,
                                   const std::string& message) {
    absl::Status written = Write(socket, message);
    if (!written.ok()) return written;
    return ReadExactly(socket, message.size());
  }

  absl::Status CheckNothingUnread(const std::shared_ptr<TlsSocket>& socket) {
    return RunOnLoop<absl::Status>([socket](auto done) { done(socket->CheckNothingUnread()); });
  }

  TlsSessionInfo SessionInfo(const std::shared_ptr<TlsSocket>& socket) {
    TlsSessionInfo info;
    RunOnLoop<absl::Status>([&info, socket](auto done) {
      info = socket->session_info();
      done(absl::OkStatus());
    }).IgnoreError();
    return info;
  }

  // The failure reason of connecting a new socket on `options`/`server_name` to `port`.
  std::string ConnectFailureReason(const TlsOptions& options, int port,
                                   const std::string& server_name = "localhost") {
    absl::Status status = ConnectNew(MakeContext(options, server_name), port);
    EXPECT_FALSE(status.ok());
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
    return ReasonOf(status);
  }

  EventLoops loops_{1};
  asio::io_context& io_ = loops_.Next();
  // Touched only on the loop after creation (TearDown clears it there).
  std::vector<std::shared_ptr<TlsSocket>> sockets_;
};

// ---------------------------------------------------------------------------------------------
// Against TlsTestServer.

// Mutual TLS: both sides verify, the server sees our client certificate, we see its subject.
TEST_F(TlsClientTest, MutualTlsHandshakeRecordsBothSubjects) {
  auto server = StartServer(TlsTestServer::PkiOptions("ec"));
  ASSERT_NE(server, nullptr);
  std::shared_ptr<TlsSocket> socket;
  ASSERT_TRUE(ConnectNew(MakeContext(ClientOptions()), server->port(), &socket).ok());
  ASSERT_TRUE(server->WaitFor([](const auto& s) { return s.full_handshakes == 1; }, kWait));
  EXPECT_THAT(server->peer_subjects(), ElementsAre(kClientSubject));
  TlsSessionInfo info = SessionInfo(socket);
  EXPECT_EQ(info.peer_subject, kServerSubject);
  EXPECT_EQ(info.tls_version, "TLSv1.3");
  EXPECT_FALSE(info.resumed);
  EXPECT_THAT(info.peer_sans,
              ::testing::UnorderedElementsAre("DNS:localhost", "IP:127.0.0.1",
                                              "URI:spiffe://example.org/backend/qm2"));
}

// Write + Read: bytes go through and come back unchanged.
TEST_F(TlsClientTest, EchoRoundTripReturnsTheSameBytes) {
  auto server = StartServer(TlsTestServer::PkiOptions("ec"));
  ASSERT_NE(server, nullptr);
  std::shared_ptr<TlsSocket> socket;
  ASSERT_TRUE(ConnectNew(MakeContext(ClientOptions()), server->port(), &socket).ok());
  std::string message(20000, 'x');
  for (size_t i = 0; i < message.size(); ++i) message[i] = static_cast<char>('a' + i % 26);
  absl::StatusOr<std::string> echoed = Echo(socket, message);
  ASSERT_TRUE(echoed.ok()) << echoed.status();
  EXPECT_EQ(*echoed, message);
  EXPECT_EQ(socket->bytes_sent(), message.size());
  EXPECT_EQ(socket->bytes_received(), message.size());
}

// A backend certificate from another CA is refused as unknown_ca.
TEST_F(TlsClientTest, ServerFromWrongCaFailsWithUnknownCa) {
  auto server = StartServer(ServerWithCert("wrongca/server.crt", "wrongca/server.key", ""));
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(ConnectFailureReason(ClientOptions(), server->port()), "unknown_ca");
}

// An expired backend certificate is refused as expired.
TEST_F(TlsClientTest, ExpiredServerCertificateFailsWithExpired) {
  auto server = StartServer(ServerWithCert("expired-server.crt", "expired-server.key"));
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(ConnectFailureReason(ClientOptions(), server->port()), "expired");
}

// A backend certificate valid only from 2040 is refused as not_yet_valid.
TEST_F(TlsClientTest, NotYetValidServerCertificateFailsWithNotYetValid) {
  auto server = StartServer(ServerWithCert("notyet-server.crt", "notyet-server.key"));
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(ConnectFailureReason(ClientOptions(), server->port()), "not_yet_valid");
}

// A server_name the certificate does not carry is refused as hostname_mismatch.
TEST_F(TlsClientTest, ServerNameNotInCertificateFailsWithHostnameMismatch) {
  auto server = StartServer(TlsTestServer::PkiOptions("ec"));
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(ConnectFailureReason(ClientOptions(), server->port(), "other.example"),
            "hostname_mismatch");
}

// An IP literal server_name is verified against the certificate's IP SAN.
TEST_F(TlsClientTest, IpServerNameVerifiesAgainstIpSan) {
  auto server = StartServer(TlsTestServer::PkiOptions("ec"));
  ASSERT_NE(server, nullptr);
  absl::Status status = ConnectNew(MakeContext(ClientOptions(), "127.0.0.1"), server->port());
  EXPECT_TRUE(status.ok()) << status;
}

// An IP server_name the certificate does not carry is refused as hostname_mismatch.
TEST_F(TlsClientTest, WrongIpServerNameFailsWithHostnameMismatch) {
  auto server = StartServer(TlsTestServer::PkiOptions("ec"));
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(ConnectFailureReason(ClientOptions(), server->port(), "127.0.0.2"),
            "hostname_mismatch");
}

// Returns the SNI host name of a TLS ClientHello record, "" when it has no SNI extension, or
// an error when the bytes are not a complete ClientHello.
absl::StatusOr<std::string> SniOfClientHello(const std::string& record) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(record[i]); };
  auto u16 = [&](size_t i) { return (byte(i) << 8) | byte(i + 1); };
  if (record.size() < 9 || byte(0) != 0x16 || byte(5) != 0x01) {
    return absl::InvalidArgumentError("not a ClientHello record");
  }
  size_t pos = 9 + 2 + 32;  // handshake header, client_version, random
  if (pos >= record.size()) return absl::InvalidArgumentError("short ClientHello");
  pos += 1 + byte(pos);  // session_id
  if (pos + 2 > record.size()) return absl::InvalidArgumentError("short ClientHello");
  pos += 2 + u16(pos);  // cipher_suites
  if (pos >= record.size()) return absl::InvalidArgumentError("short ClientHello");
  pos += 1 + byte(pos);  // compression_methods
  if (pos + 2 > record.size()) return absl::InvalidArgumentError("no extensions");
  size_t end = pos + 2 + u16(pos);
  pos += 2;
  if (end > record.size()) return absl::InvalidArgumentError("truncated extensions");
  while (pos + 4 <= end) {
    int type = u16(pos);
    size_t len = u16(pos + 2);
    pos += 4;
    if (type == 0) {  // server_name: list length (2), name type (1), name length (2), name.
      if (len < 5 || pos + len > end) return absl::InvalidArgumentError("bad server_name");
      size_t name_len = u16(pos + 3);
      return record.substr(pos + 5, name_len);
    }
    pos += len;
  }
  return std::string();
}

// Accepts one TCP connection on a raw listener and returns the first TLS record the client
// sends (its ClientHello); the connection is then dropped.
class ClientHelloCatcher {
 public:
  ClientHelloCatcher() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 && listen(fd_, 1) == 0 &&
        getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port_ = ntohs(addr.sin_port);
    }
  }
  ~ClientHelloCatcher() { close(fd_); }
  int port() const { return port_; }

  absl::StatusOr<std::string> Catch(absl::Duration timeout) {
    pollfd pfd{fd_, POLLIN, 0};
    if (poll(&pfd, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout))) != 1) {
      return absl::DeadlineExceededError("no connection");
    }
    int conn = accept(fd_, nullptr, nullptr);
    if (conn < 0) return absl::InternalError("accept failed");
    std::string record;
    absl::Time deadline = absl::Now() + timeout;
    while (record.size() < 5 ||
           record.size() < 5 + ((size_t{static_cast<unsigned char>(record[3])} << 8) |
                                size_t{static_cast<unsigned char>(record[4])})) {
      pollfd cfd{conn, POLLIN, 0};
      int left = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
      if (left <= 0 || poll(&cfd, 1, left) != 1) break;
      char buf[4096];
      ssize_t n = read(conn, buf, sizeof(buf));
      if (n <= 0) break;
      record.append(buf, n);
    }
    close(conn);
    return record;
  }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// RFC 6066: a DNS server_name goes out as SNI, an IP literal does not.
TEST_F(TlsClientTest, SendsSniForDnsNameButNotForIpLiteral) {
  for (const std::string name : {"localhost", "127.0.0.1"}) {
    SCOPED_TRACE(name);
    ClientHelloCatcher catcher;
    ASSERT_NE(catcher.port(), 0);
    auto socket = NewSocket(MakeContext(ClientOptions(), name));
    auto done = std::make_shared<std::promise<absl::Status>>();
    std::future<absl::Status> connected = done->get_future();
    asio::post(io_, [socket, port = catcher.port(), done] {
      socket->Connect("127.0.0.1", static_cast<uint16_t>(port), absl::Seconds(5), absl::Seconds(5),
                      [done](absl::Status s) { done->set_value(s); });
    });
    absl::StatusOr<std::string> hello = catcher.Catch(absl::Seconds(5));
    ASSERT_TRUE(hello.ok()) << hello.status();
    absl::StatusOr<std::string> sni = SniOfClientHello(*hello);
    ASSERT_TRUE(sni.ok()) << sni.status();
    EXPECT_EQ(*sni, name == "localhost" ? "localhost" : "");
    // The catcher hung up: the connect must fail, not hang.
    ASSERT_EQ(connected.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    EXPECT_FALSE(connected.get().ok());
  }
}

// An SSLPEER-style pattern in the certificate's attribute order matches.
TEST_F(TlsClientTest, PeerNamePatternMatchingSubjectPasses) {
  auto server = StartServer(TlsTestServer::PkiOptions("ec"));
  ASSERT_NE(server, nullptr);
  TlsOptions options = ClientOptions();
  options.peer_name = "CN=QM2*, OU=IBM, OU=WEBSPHERE, O=Example, C=GB";
  absl::Status status = ConnectNew(MakeContext(options), server->port());
  EXPECT_TRUE(status.ok()) << status;
}

// OU order is significant (as in MQ SSLPEER): the reversed OUs do not match.
TEST_F(TlsClientTest, PeerNameWithReversedOusFailsWithPeerNameMismatch) {
  auto server = StartServer(TlsTestServer::PkiOptions("ec"));
  ASSERT_NE(server, nullptr);
  TlsOptions options = ClientOptions();
  options.peer_name = "CN=QM2*, OU=WEBSPHERE, OU=IBM, O=Example, C=GB";
  EXPECT_EQ(ConnectFailureReason(options, server->port()), "peer_name_mismatch");
}

// A peer_name naming another CN fails with peer_name_mismatch.
TEST_F(TlsClientTest, PeerNameWithOtherCnFailsWithPeerNameMismatch) {
  auto server = StartServer(TlsTestServer::PkiOptions("ec"));
  ASSERT_NE(server, nullptr);
  TlsOptions options = ClientOptions();
  options.peer_name = "CN=OTHER";
  EXPECT_EQ(ConnectFailureReason(options, server->port()), "peer_name_mismatch");
}

// A URI SAN rule with a trailing wildcard matches the backend's SPIFFE ID.
TEST_F(TlsClientTest, SanUriPatternMatchingPasses) {
  auto server = StartServer(TlsTestServer::PkiOptions("ec"));
  ASSERT_NE(server, nullptr);
  TlsOptions options = ClientOptions();
  options.san_uri = {"spiffe://example.org/backend/*"};
  absl::Status status = ConnectNew(MakeContext(options), server->port());
  EXPECT_TRUE(status.ok()) << status;
}

// A URI SAN rule for another trust domain fails with san_mismatch.
// URI SANs compare case-sensitively (SPIFFE IDs and URI paths are): a pattern that differs
// from the backend's URI only in case is a mismatch, unlike a DNS pattern.
TEST_F(TlsClientTest, SanUriPatternDifferingOnlyInCaseFailsWithSanMismatch) {
  auto server = StartServer(TlsTestServer::PkiOptions("ec"));
  ASSERT_NE(server, nullptr);
  TlsOptions options = ClientOptions();
  options.san_uri = {"spiffe://example.org/BACKEND/*"};
  EXPECT_EQ(ConnectFailureReason(options, server->port()), "san_mismatch");
  TlsOptions dns = ClientOptions();
  dns.san_dns = {"LOCALHOST"};
  EXPECT_TRUE(ConnectNew(MakeContext(dns), server->port()).ok());
}

TEST_F(TlsClientTest, SanUriPatternNotMatchingFailsWithSanMismatch) {
  auto server = StartServer(TlsTestServer::PkiOptions("ec"));
  ASSERT_NE(server, nullptr);
  TlsOptions options = ClientOptions();
  options.san_uri = {"spiffe://other/*"};
  EXPECT_EQ(ConnectFailureReason(options, server->port()), "san_mismatch");
}

// The issuer rule is checked against the leaf's issuer: the intermediate passes, others fail.
TEST_F(TlsClientTest, IssuerNameRuleAcceptsIntermediateAndRejectsOthers) {
  auto server = StartServer(TlsTestServer::PkiOptions("ec"));
  ASSERT_NE(server, nullptr);
  TlsOptions good = ClientOptions();
  good.issuer_name = "CN=Example Test Intermediate CA*, OU=Test PKI, O=Example, C=GB";
  absl::Status status = ConnectNew(MakeContext(good), server->port());
  EXPECT_TRUE(status.ok()) << status;
  TlsOptions bad = ClientOptions();
  bad.issuer_name = "CN=Some Other CA, O=Example";
  EXPECT_EQ(ConnectFailureReason(bad, server->port()), "issuer_mismatch");
}

// The base64 SHA-256 of a certificate's DER SubjectPublicKeyInfo (the tls.spki_pins form).
std::string SpkiPin(const std::string& cert_file) {
  BioPtr bio(BIO_new_file(cert_file.c_str(), "r"));
  X509Ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) return "";
  unsigned char* der = nullptr;
  const int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert.get()), &der);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(der, len, digest);
  OPENSSL_free(der);
  return absl::Base64Escape(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

// A pin of the backend's own key passes (among other pins); pins of other keys only fail
// with spki_pin_mismatch, even though the chain and names verify.
TEST_F(TlsClientTest, SpkiPinOfBackendKeyPassesAndOtherPinsFailWithSpkiPinMismatch) {
  auto server = StartServer(TlsTestServer::PkiOptions("ec"));
  ASSERT_NE(server, nullptr);
  TlsOptions good = ClientOptions();
  good.spki_pins = {SpkiPin(PkiPath("ec", "client.crt")), SpkiPin(PkiPath("ec", "server.crt"))};
  ASSERT_EQ(good.spki_pins[1].size(), 44u);
  absl::Status status = ConnectNew(MakeContext(good), server->port());
  EXPECT_TRUE(status.ok()) << status;
  TlsOptions bad = ClientOptions();
  bad.spki_pins = {SpkiPin(PkiPath("ec", "wrongca/server.crt"))};
  EXPECT_EQ(ConnectFailureReason(bad, server->port()), "spki_pin_mismatch");
}

// Malformed pins are refused when the context is built, naming the pin.
TEST(TlsClientContextCreateTest, MalformedSpkiPinIsRejectedNamingIt) {
  TlsOptions options = ClientOptions();
  options.spki_pins = {"not-base64-sha256"};
  auto ctx = TlsClientContext::Create(options, "localhost");
  ASSERT_FALSE(ctx.ok());
  EXPECT_THAT(ctx.status().message(), HasSubstr("not-base64-sha256"));
}

// SERIALNUMBER in peer_name is the certificate serial number (MQ SSLPEER semantics).
TEST_F(TlsClientTest, PeerNameSerialNumberMatchesCertificateSerial) {
  auto server = StartServer(TlsTestServer::PkiOptions("ec"));
  ASSERT_NE(server, nullptr);
  BioPtr bio(BIO_new_file(PkiPath("ec", "server.crt").c_str(), "r"));
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  ASSERT_NE(cert, nullptr);
  const std::string serial = SerialNumberText(X509_get0_serialNumber(cert.get()));
  TlsOptions good = ClientOptions();
  good.peer_name = absl::StrCat("SERIALNUMBER=", serial, ", CN=QM2.backend");
  absl::Status status = ConnectNew(MakeContext(good), server->port());
  EXPECT_TRUE(status.ok()) << status << " serial " << serial;
  TlsOptions bad = ClientOptions();
  bad.peer_name = "SERIALNUMBER=00:00:01, CN=QM2.backend";
  EXPECT_EQ(ConnectFailureReason(bad, server->port()), "peer_name_mismatch");
}

// With the intermediate's CRL loaded, the revoked backend certificate is refused.
TEST_F(TlsClientTest, RevokedServerCertificateFailsWithCertificateRevoked) {
  auto server = StartServer(ServerWithCert("revoked-server.crt", "revoked-server.key"));
  ASSERT_NE(server, nullptr);
  TlsOptions options = ClientOptions();
  options.crl_files = {PkiPath("ec", "int.crl.pem")};
  EXPECT_EQ(ConnectFailureReason(options, server->port()), "certificate_revoked");
}

// The same CRL does not stop a backend whose certificate is not on it.
TEST_F(TlsClientTest, CrlDoesNotRejectGoodServer) {
  auto server = StartServer(TlsTestServer::PkiOptions("ec"));
  ASSERT_NE(server, nullptr);
  TlsOptions options = ClientOptions();
  options.crl_files = {PkiPath("ec", "int.crl.pem")};
  absl::Status status = ConnectNew(MakeContext(options), server->port());
  EXPECT_TRUE(status.ok()) << status;
}

// Resumption on: once the first socket has read (and so stored the TLS 1.3 ticket), the
// next socket resumes.
TEST_F(TlsClientTest, SecondSocketResumesAfterFirstProcessedTicket) {
  auto server = StartServer(TlsTestServer::PkiOptions("ec"));
  ASSERT_NE(server, nullptr);
  auto ctx = MakeContext(ClientOptions());
  ASSERT_NE(ctx, nullptr);
  std::shared_ptr<TlsSocket> first, second;
  ASSERT_TRUE(ConnectNew(ctx, server->port(), &first).ok());
  ASSERT_TRUE(Echo(first, "ping").ok());
  EXPECT_GE(ctx->CachedSessionsForTest(), 1u);
  ASSERT_TRUE(ConnectNew(ctx, server->port(), &second).ok());
  EXPECT_TRUE(SessionInfo(second).resumed);
  ASSERT_TRUE(server->WaitFor(
      [](const auto& s) { return s.full_handshakes + s.resumed_handshakes == 2; }, kWait));
  EXPECT_EQ(server->full_handshakes(), 1);
  EXPECT_EQ(server->resumed_handshakes(), 1);
  // A resumed session still reports the backend's certificate.
  EXPECT_EQ(SessionInfo(second).peer_subject, kServerSubject);
}

// A resumed handshake skips certificate verification, so a session verified under one policy
// must not carry a socket past a stricter one: a session cached by a context that accepts the
// backend, offered for resumption by a context whose policy refuses it, resumes at the TLS
// level (the backend counts it) and is then refused with the policy's reason. The cache is
// flushed, so the next socket does a full handshake and is refused the same way.
struct ResumedPolicyCase {
  std::string name;
  std::string server_cert;  // PKI file names; the key has the same stem.
  std::function<void(TlsOptions*)> tighten;
  std::string reason;
  std::string server_name = "localhost";  // What the strict context expects.
};

// Names the case in test listings instead of dumping its bytes.
void PrintTo(const ResumedPolicyCase& c, std::ostream* os) { *os << c.name; }

class ResumedSessionPolicyTest : public TlsClientTest,
                                 public ::testing::WithParamInterface<ResumedPolicyCase> {};

TEST_P(ResumedSessionPolicyTest, ResumedSessionIsRecheckedAgainstTheCurrentPolicy) {
  const ResumedPolicyCase& c = GetParam();
  std::string key = c.server_cert;
  key.replace(key.rfind(".crt"), 4, ".key");
  auto server = StartServer(ServerWithCert(c.server_cert, key));
  ASSERT_NE(server, nullptr);
  auto lenient = MakeContext(ClientOptions());
  ASSERT_NE(lenient, nullptr);
  std::shared_ptr<TlsSocket> first;
  ASSERT_TRUE(ConnectNew(lenient, server->port(), &first).ok());
  ASSERT_TRUE(Echo(first, "ping").ok());  // Reads the TLS 1.3 ticket.
  ASSERT_GE(lenient->CachedSessionsForTest(), 1u);

  TlsOptions strict_options = ClientOptions();
  c.tighten(&strict_options);
  auto strict = MakeContext(strict_options, c.server_name);
  ASSERT_NE(strict, nullptr);
  strict->AdoptSessionsForTest(*lenient);
  absl::Status resumed = ConnectNew(strict, server->port());
  EXPECT_EQ(ReasonOf(resumed), c.reason) << resumed;
  ASSERT_TRUE(server->WaitFor([](const auto& s) { return s.resumed_handshakes == 1; }, kWait))
      << "the second socket did not resume, so this test proves nothing";
  EXPECT_EQ(strict->CachedSessionsForTest(), 0u);

  absl::Status full = ConnectNew(strict, server->port());
  EXPECT_EQ(ReasonOf(full), c.reason) << full;
  EXPECT_EQ(server->resumed_handshakes(), 1);
}

INSTANTIATE_TEST_SUITE_P(
    Policies, ResumedSessionPolicyTest,
    ::testing::Values(
        ResumedPolicyCase{"CertificateRevokedSinceTheSessionWasCached", "revoked-server.crt",
                          [](TlsOptions* o) { o->crl_files = {PkiPath("ec", "int.crl.pem")}; },
                          "certificate_revoked"},
        ResumedPolicyCase{"PeerNameRuleAddedSince", "server.crt",
                          [](TlsOptions* o) { o->peer_name = "CN=someone-else"; },
                          "peer_name_mismatch"},
        ResumedPolicyCase{"SpkiPinAddedSince", "server.crt",
                          [](TlsOptions* o) {
                            o->spki_pins = {SpkiPin(PkiPath("ec", "wrongca/server.crt"))};
                          },
                          "spki_pin_mismatch"},
        ResumedPolicyCase{"SanRuleAddedSince", "server.crt",
                          [](TlsOptions* o) { o->san_uri = {"spiffe://elsewhere/*"}; },
                          "san_mismatch"},
        ResumedPolicyCase{"ServerNameChangedSince", "server.crt", [](TlsOptions*) {},
                          "hostname_mismatch", "other.example"}),
    [](const ::testing::TestParamInfo<ResumedPolicyCase>& info) { return info.param.name; });

// Resumption off: every socket does a full handshake, even after tickets were read.
TEST_F(TlsClientTest, ResumptionOffNeverResumes) {
  auto server = StartServer(TlsTestServer::PkiOptions("ec"));
  ASSERT_NE(server, nullptr);
  TlsOptions options = ClientOptions();
  options.session_resumption = false;
  auto ctx = MakeContext(options);
  ASSERT_NE(ctx, nullptr);
  std::shared_ptr<TlsSocket> first, second;
  ASSERT_TRUE(ConnectNew(ctx, server->port(), &first).ok());
  ASSERT_TRUE(Echo(first, "ping").ok());
  ASSERT_TRUE(ConnectNew(ctx, server->port(), &second).ok());
  ASSERT_TRUE(Echo(second, "ping").ok());
  EXPECT_FALSE(SessionInfo(second).resumed);
  EXPECT_EQ(ctx->CachedSessionsForTest(), 0u);
  ASSERT_TRUE(server->WaitFor(
      [](const auto& s) { return s.full_handshakes + s.resumed_handshakes == 2; }, kWait));
  EXPECT_EQ(server->full_handshakes(), 2);
  EXPECT_EQ(server->resumed_handshakes(), 0);
}

// FlushSessions() empties the cache, so the next socket does a full handshake.
TEST_F(TlsClientTest, FlushSessionsForcesFullHandshake) {
  auto server = StartServer(TlsTestServer::PkiOptions("ec"));
  ASSERT_NE(server, nullptr);
  auto ctx = MakeContext(ClientOptions());
  ASSERT_NE(ctx, nullptr);
  std::shared_ptr<TlsSocket> first, second;
  ASSERT_TRUE(ConnectNew(ctx, server->port(), &first).ok());
  ASSERT_TRUE(Echo(first, "ping").ok());
  ASSERT_GE(ctx->CachedSessionsForTest(), 1u);
  ctx->FlushSessions();
  EXPECT_EQ(ctx->CachedSessionsForTest(), 0u);
  ASSERT_TRUE(ConnectNew(ctx, server->port(), &second).ok());
  EXPECT_FALSE(SessionInfo(second).resumed);
  ASSERT_TRUE(server->WaitFor(
      [](const auto& s) { return s.full_handshakes + s.resumed_handshakes == 2; }, kWait));
  EXPECT_EQ(server->full_handshakes(), 2);
  EXPECT_EQ(server->resumed_handshakes(), 0);
}

// A backend that accepts TCP but never answers the ClientHello hits the handshake timeout.
TEST_F(TlsClientTest, StalledHandshakeFailsWithHandshakeTimeout) {
  auto server = StartServer(TlsTestServer::PkiOptions("ec"));
  ASSERT_NE(server, nullptr);
  server->set_stall_handshake(true);
  auto socket = NewSocket(MakeContext(ClientOptions()));
  // The reason names the timer that ended the handshake; no clock is read (a hang is caught by
  // the test's ctest timeout).
  absl::Status status = Connect(socket, server->port(), absl::Milliseconds(500));
  EXPECT_EQ(ReasonOf(status), "handshake_timeout") << status;
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(server->total_handshakes(), 0);
}

// Nothing listening (a port held bound without listening for the whole test):
// connect_refused.
TEST_F(TlsClientTest, ClosedPortFailsWithConnectRefused) {
  testutil::RefusingPort closed;
  ASSERT_GT(closed.port(), 0);
  EXPECT_EQ(ConnectFailureReason(ClientOptions(), closed.port()), "connect_refused");
}

// TLS 1.3: a backend that requires a client certificate we do not present lets the handshake
// finish, and the rejection arrives at the first read.
TEST_F(TlsClientTest, MissingClientCertificateShowsAtFirstReadAsPeerRejectedCertificate) {
  auto server = StartServer(TlsTestServer::PkiOptions("ec"));
  ASSERT_NE(server, nullptr);
  TlsOptions options = ClientOptions();
  options.cert_file.clear();
  options.key_file.clear();
  std::shared_ptr<TlsSocket> socket;
  absl::Status connected = ConnectNew(MakeContext(options), server->port(), &socket);
  ASSERT_TRUE(connected.ok()) << connected;
  absl::StatusOr<std::string> read = Read(socket);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ReasonOf(read.status()), "peer_rejected_certificate") << read.status();
  EXPECT_TRUE(server->WaitFor([](const auto& s) { return s.handshake_failures == 1; }, kWait));
}

// TLS 1.3 tickets that arrived after the handshake are not "unread bytes".
TEST_F(TlsClientTest, CheckNothingUnreadIsOkAfterRoundTripDespiteTickets) {
  auto server = StartServer(TlsTestServer::PkiOptions("ec"));
  ASSERT_NE(server, nullptr);
  std::shared_ptr<TlsSocket> socket;
  ASSERT_TRUE(ConnectNew(MakeContext(ClientOptions()), server->port(), &socket).ok());
  ASSERT_EQ(SessionInfo(socket).tls_version, "TLSv1.3");
  // Before any read the tickets sit unprocessed on the socket; they still do not count.
  EXPECT_TRUE(server->WaitFor([](const auto& s) { return s.full_handshakes == 1; }, kWait));
  EXPECT_TRUE(CheckNothingUnread(socket).ok());
  ASSERT_TRUE(Echo(socket, "hello").ok());
  absl::Status status = CheckNothingUnread(socket);
  EXPECT_TRUE(status.ok()) << status;
}

// An unsolicited byte after the response is reported as unread (kFailedPrecondition).
TEST_F(TlsClientTest, CheckNothingUnreadReportsUnsolicitedByte) {
  auto server = StartServer(TlsTestServer::PkiOptions("ec"));
  ASSERT_NE(server, nullptr);
  server->set_send_extra_bytes_after_response(true);
  std::shared_ptr<TlsSocket> socket;
  ASSERT_TRUE(ConnectNew(MakeContext(ClientOptions()), server->port(), &socket).ok());
  absl::StatusOr<std::string> echoed = Echo(socket, "x");
  ASSERT_TRUE(echoed.ok()) << echoed.status();
  EXPECT_EQ(*echoed, "x");
  // The '!' follows the response; wait (bounded) until it has arrived.
  absl::Status status;
  testutil::PollUntil(
      [&] {
        status = CheckNothingUnread(socket);
        return !status.ok();
      },
      absl::Seconds(5));
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  // Reporting it does not consume it.
  absl::StatusOr<std::string> extra = Read(socket);
  ASSERT_TRUE(extra.ok()) << extra.status();
  EXPECT_EQ(*extra, "!");
}

// An idle socket learns that the backend dropped the connection.
TEST_F(TlsClientTest, WatchIdleReportsBackendDroppingConnection) {
  auto server = StartServer(TlsTestServer::PkiOptions("ec"));
  ASSERT_NE(server, nullptr);
  std::shared_ptr<TlsSocket> socket;
  ASSERT_TRUE(ConnectNew(MakeContext(ClientOptions()), server->port(), &socket).ok());
  ASSERT_TRUE(Echo(socket, "ping").ok());
  auto broken = std::make_shared<std::promise<absl::Status>>();
  std::future<absl::Status> broken_future = broken->get_future();
  ASSERT_TRUE(RunOnLoop<absl::Status>([socket, broken](auto done) {
                socket->WatchIdle([broken](absl::Status s) { broken->set_value(s); });
                done(absl::OkStatus());
              }).ok());
  // Still armed and quiet: the tickets consumed while idle did not trip it.
  EXPECT_EQ(broken_future.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout);
  server->CloseAllConnections();
  ASSERT_EQ(broken_future.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  absl::Status status = broken_future.get();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_EQ(ReasonOf(status), "backend_closed") << status;
}

// A one-connection blocking TLS server (the PKI's server certificate, no client certificate
// asked) that reports how its client ended the connection: true for close_notify, false for a
// bare TCP close. TlsTestServer and s_server log both the same way.
class CloseNotifyWitness {
 public:
  CloseNotifyWitness() {
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        listen(listen_fd_, 1) == 0 &&
        getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port_ = ntohs(addr.sin_port);
    }
    result_ = promise_.get_future();
    thread_ = std::thread([this] { promise_.set_value(Serve()); });
  }
  ~CloseNotifyWitness() {
    thread_.join();
    close(listen_fd_);
  }
  int port() const { return port_; }
  // Waits (bounded) for the client to end the connection.
  absl::StatusOr<bool> EndedWithCloseNotify() {
    if (result_.wait_for(std::chrono::seconds(15)) != std::future_status::ready) {
      return absl::DeadlineExceededError("the witness did not finish");
    }
    return result_.get();
  }

 private:
  absl::StatusOr<bool> Serve() {
    pollfd pfd{listen_fd_, POLLIN, 0};
    if (poll(&pfd, 1, 10000) != 1) return absl::DeadlineExceededError("no client");
    int fd = accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) return absl::InternalError("accept failed");
    timeval tv{10, 0};  // Bounds every blocking read below.
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
    SslPtr ssl;
    absl::StatusOr<bool> result = absl::InternalError("TLS setup failed");
    // No TLS 1.3 session tickets: the server would write them after the client's Finished,
    // racing the client's close, and a write to a closed peer fails the handshake here
    // (it raised SIGPIPE in CI before test binaries ignored it).
    if (ctx && SSL_CTX_set_num_tickets(ctx.get(), 0) == 1 &&
        SSL_CTX_use_certificate_chain_file(ctx.get(),
                                           PkiPath("ec", "server.fullchain.pem").c_str()) == 1 &&
        SSL_CTX_use_PrivateKey_file(ctx.get(), PkiPath("ec", "server.key").c_str(),
                                    SSL_FILETYPE_PEM) == 1) {
      ssl.reset(SSL_new(ctx.get()));
    }
    if (ssl && SSL_set_fd(ssl.get(), fd) == 1) {
      if (SSL_accept(ssl.get()) != 1) {
        result = absl::UnavailableError("handshake failed");
      } else {
        char buf[256];
        int n;
        while ((n = SSL_read(ssl.get(), buf, sizeof(buf))) > 0) {
        }
        result = SSL_get_error(ssl.get(), n) == SSL_ERROR_ZERO_RETURN;
      }
    }
    ssl.reset();
    close(fd);
    return result;
  }

  int listen_fd_ = -1;
  int port_ = 0;
  std::promise<absl::StatusOr<bool>> promise_;
  std::future<absl::StatusOr<bool>> result_;
  std::thread thread_;
};

// Close() ends the TLS session with close_notify before closing the fd.
TEST_F(TlsClientTest, CloseSendsCloseNotify) {
  CloseNotifyWitness witness;
  ASSERT_NE(witness.port(), 0);
  TlsOptions options = ClientOptions();
  options.cert_file.clear();
  options.key_file.clear();
  auto socket = NewSocket(MakeContext(options));
  absl::Status connected = Connect(socket, witness.port());
  ASSERT_TRUE(connected.ok()) << connected;
  ASSERT_TRUE(RunOnLoop<absl::Status>([socket](auto done) {
                socket->Close();
                done(absl::OkStatus());
              }).ok());
  absl::StatusOr<bool> close_notify = witness.EndedWithCloseNotify();
  ASSERT_TRUE(close_notify.ok()) << close_notify.status();
  EXPECT_TRUE(*close_notify);
}

// Close() completes a pending Read with kCancelled.
TEST_F(TlsClientTest, CloseCancelsPendingRead) {
  auto server = StartServer(TlsTestServer::PkiOptions("ec"));
  ASSERT_NE(server, nullptr);
  std::shared_ptr<TlsSocket> socket;
  ASSERT_TRUE(ConnectNew(MakeContext(ClientOptions()), server->port(), &socket).ok());
  auto read = std::make_shared<std::promise<absl::StatusOr<std::string>>>();
  std::future<absl::StatusOr<std::string>> read_future = read->get_future();
  asio::post(io_, [socket, read] {
    socket->Read(100, [read](absl::StatusOr<std::string> r) { read->set_value(std::move(r)); });
  });
  // The echo server sends nothing unasked: the read stays pending.
  EXPECT_EQ(read_future.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout);
  asio::post(io_, [socket] { socket->Close(); });
  ASSERT_EQ(read_future.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  absl::StatusOr<std::string> result = read_future.get();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled) << result.status();
  EXPECT_FALSE(socket->is_open());
}

// ---------------------------------------------------------------------------------------------
// Against `openssl s_server` (one connection at a time).

std::unique_ptr<OpensslServer> StartOpenssl(OpensslServer::Options options) {
  auto server = OpensslServer::Start(std::move(options));
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

OpensslServer::Options OpensslOptions(absl::string_view alg, std::vector<std::string> extra) {
  OpensslServer::Options options = OpensslServer::PkiOptions(alg);
  options.extra_args = std::move(extra);
  return options;
}

// The legacy-only backend: TLS 1.2 with a static-RSA CBC suite.
OpensslServer::Options LegacyOpensslOptions() {
  return OpensslOptions("rsa", {"-tls1_2", "-cipher", "AES128-SHA:@SECLEVEL=1"});
}

// mTLS with a third-party server: `-rev` answers each line reversed.
TEST_F(TlsClientTest, OpensslMutualTlsRoundTripReversesLine) {
  auto server = StartOpenssl(OpensslServer::PkiOptions("ec"));
  ASSERT_NE(server, nullptr);
  std::shared_ptr<TlsSocket> socket;
  absl::Status status = ConnectNew(MakeContext(ClientOptions()), server->port(), &socket);
  ASSERT_TRUE(status.ok()) << status << "\n" << server->Log();
  ASSERT_TRUE(Write(socket, "hello\n").ok());
  absl::StatusOr<std::string> line = ReadLine(socket);
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_EQ(*line, "olleh\n");
  EXPECT_EQ(SessionInfo(socket).peer_subject, kServerSubject);
}

// A TLS 1.2-only backend: we negotiate TLS 1.2 (STRONG keeps ECDHE AEAD suites).
TEST_F(TlsClientTest, OpensslTls12OnlyServerNegotiatesTls12) {
  auto server = StartOpenssl(OpensslOptions("ec", {"-tls1_2"}));
  ASSERT_NE(server, nullptr);
  std::shared_ptr<TlsSocket> socket;
  absl::Status status = ConnectNew(MakeContext(ClientOptions()), server->port(), &socket);
  ASSERT_TRUE(status.ok()) << status << "\n" << server->Log();
  TlsSessionInfo info = SessionInfo(socket);
  EXPECT_EQ(info.tls_version, "TLSv1.2");
  EXPECT_THAT(info.cipher, HasSubstr("ECDHE"));
  ASSERT_TRUE(Write(socket, "abc\n").ok());
  absl::StatusOr<std::string> line = ReadLine(socket);
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_EQ(*line, "cba\n");
}

// A TLS 1.3-only backend: we negotiate TLS 1.3.
TEST_F(TlsClientTest, OpensslTls13OnlyServerNegotiatesTls13) {
  auto server = StartOpenssl(OpensslOptions("ec", {"-tls1_3"}));
  ASSERT_NE(server, nullptr);
  std::shared_ptr<TlsSocket> socket;
  absl::Status status = ConnectNew(MakeContext(ClientOptions()), server->port(), &socket);
  ASSERT_TRUE(status.ok()) << status << "\n" << server->Log();
  EXPECT_EQ(SessionInfo(socket).tls_version, "TLSv1.3");
}

// min_version TLS 1.3 against a TLS 1.2-only backend: protocol_version.
TEST_F(TlsClientTest, OpensslMinTls13AgainstTls12ServerFailsWithProtocolVersion) {
  auto server = StartOpenssl(OpensslOptions("ec", {"-tls1_2"}));
  ASSERT_NE(server, nullptr);
  TlsOptions options = ClientOptions();
  options.min_version = TLS1_3_VERSION;
  EXPECT_EQ(ConnectFailureReason(options, server->port()), "protocol_version");
}

// ENULL (explicitly allowed) negotiates the integrity-only NULL-SHA256 and carries data.
TEST_F(TlsClientTest, OpensslEnullNegotiatesNullSha256) {
  auto server =
      StartOpenssl(OpensslOptions("rsa", {"-tls1_2", "-cipher", "NULL-SHA256:@SECLEVEL=0"}));
  ASSERT_NE(server, nullptr);
  TlsOptions options = ClientOptions("rsa");
  options.encryption = CipherPolicy::kEnull;
  options.allow_null_encryption = true;
  std::shared_ptr<TlsSocket> socket;
  absl::Status status = ConnectNew(MakeContext(options), server->port(), &socket);
  ASSERT_TRUE(status.ok()) << status << "\n" << server->Log();
  TlsSessionInfo info = SessionInfo(socket);
  EXPECT_EQ(info.cipher, "NULL-SHA256");
  EXPECT_EQ(info.tls_version, "TLSv1.2");
  ASSERT_TRUE(Write(socket, "clear text\n").ok());
  absl::StatusOr<std::string> line = ReadLine(socket);
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_EQ(*line, "txet raelc\n");
}

// STRONG refuses a backend that offers only legacy suites: no_shared_cipher.
TEST_F(TlsClientTest, OpensslStrongAgainstLegacyOnlyServerFailsWithNoSharedCipher) {
  auto server = StartOpenssl(LegacyOpensslOptions());
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(ConnectFailureReason(ClientOptions("rsa"), server->port()), "no_shared_cipher");
}

// WEAK reaches the same legacy backend.
TEST_F(TlsClientTest, OpensslWeakAgainstLegacyOnlyServerSucceeds) {
  auto server = StartOpenssl(LegacyOpensslOptions());
  ASSERT_NE(server, nullptr);
  TlsOptions options = ClientOptions("rsa");
  options.encryption = CipherPolicy::kWeak;
  std::shared_ptr<TlsSocket> socket;
  absl::Status status = ConnectNew(MakeContext(options), server->port(), &socket);
  ASSERT_TRUE(status.ok()) << status << "\n" << server->Log();
  TlsSessionInfo info = SessionInfo(socket);
  EXPECT_EQ(info.cipher, "AES128-SHA");
  EXPECT_EQ(info.tls_version, "TLSv1.2");
  ASSERT_TRUE(Write(socket, "old\n").ok());
  absl::StatusOr<std::string> line = ReadLine(socket);
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_EQ(*line, "dlo\n");
}

// ---------------------------------------------------------------------------------------------
// Configuration checks (no peer).

// ENULL must be opted into: Create fails and names the missing switch.
TEST(TlsClientContextCreateTest, EnullWithoutAllowNullEncryptionIsRejected) {
  TlsOptions options = ClientOptions("rsa");
  options.encryption = CipherPolicy::kEnull;
  auto ctx = TlsClientContext::Create(options, "localhost");
  ASSERT_FALSE(ctx.ok());
  EXPECT_EQ(ctx.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ctx.status().message()), HasSubstr("allow_null_encryption"));
}

}  // namespace
}  // namespace tlsbroker
