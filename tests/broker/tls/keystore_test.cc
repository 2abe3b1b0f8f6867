// Client keystores against a real peer: `openssl s_server -Verify` (mutual TLS, client
// certificate required) accepts the broker presenting its certificate from a PKCS#12 bundle or
// with an encrypted PEM key; wrong passwords give a clear error naming the file, never the
// password.

#include "broker/tls/keystore.h"

#include <asio/post.hpp>
#include <fstream>
#include <future>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "broker/config/options.h"
#include "broker/io/event_loops.h"
#include "broker/tls/tls_client_context.h"
#include "broker/tls/tls_socket.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/openssl_server.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_pki.h"

namespace tlsbroker {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testutil::OpensslServer;
using testutil::PkiPath;


class KeystoreTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testutil::MakeTempDir("tlsb-keystore"); }

  std::string WriteFile(const std::string& name, const std::string& contents) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << contents;
    return path;
  }

  // Connects to an s_server that requires a client certificate, sends a line and returns the
  // status; `server_log` receives what s_server printed (it logs the client's subject).
  absl::Status HandshakeWithMutualTls(const TlsOptions& options, std::string* server_log) {
    auto server = OpensslServer::Start(OpensslServer::PkiOptions("ec"));
    if (!server.ok()) return server.status();
    auto ctx = TlsClientContext::Create(options, "localhost");
    if (!ctx.ok()) return ctx.status();
    EventLoops loops(1);
    asio::io_context& io = loops.Next();
    auto socket = std::make_shared<TlsSocket>(io, *ctx);
    std::promise<absl::Status> promise;
    asio::post(io, [&] {
      socket->Connect("127.0.0.1", static_cast<uint16_t>((*server)->port()), absl::Seconds(5),
                      absl::Seconds(5), [&, socket](absl::Status s) {
                        if (!s.ok()) {
                          promise.set_value(s);
                          return;
                        }
                        // TLS 1.3: the server judges our certificate after our Finished; the
                        // reversed line proves it accepted it.
                        socket->Write("hello\n", [&, socket](absl::Status w) {
                          if (!w.ok()) {
                            promise.set_value(w);
                            return;
                          }
                          socket->Read(64, [&, socket](absl::StatusOr<std::string> r) {
                            promise.set_value(!r.ok()                  ? r.status()
                                              : absl::StrContains(*r, "olleh")
                                                  ? absl::OkStatus()
                                                  : absl::InternalError(*r));
                          });
                        });
                      });
    });
    std::future<absl::Status> future = promise.get_future();
    absl::Status result = future.wait_for(std::chrono::seconds(20)) == std::future_status::ready
                              ? future.get()
                              : absl::DeadlineExceededError("no answer from s_server");
    std::promise<void> closed;
    asio::post(io, [&] {
      socket->Close();
      closed.set_value();
    });
    closed.get_future().wait();
    *server_log = (*server)->Log();
    return result;
  }

  std::string dir_;
};

TlsOptions BaseOptions() {
  TlsOptions options;
  options.ca_file = PkiPath("ec", "root.crt");
  return options;
}

TEST_F(KeystoreTest, Pkcs12ClientCertificateIsAcceptedByMutualTlsServer) {
  TlsOptions options = BaseOptions();
  options.pkcs12_file = PkiPath("ec", "client.p12");
  options.password_file = PkiPath("ec", "client.p12.pass");
  std::string log;
  absl::Status status = HandshakeWithMutualTls(options, &log);
  ASSERT_TRUE(status.ok()) << status << "\n" << log;
  // s_server -Verify prints the verified client subject.
  EXPECT_THAT(log, HasSubstr("CN = app1")) << log;
}

TEST_F(KeystoreTest, EncryptedPemKeyIsAcceptedByMutualTlsServer) {
  TlsOptions options = BaseOptions();
  options.cert_file = PkiPath("ec", "client.fullchain.pem");
  options.key_file = PkiPath("ec", "client.enc.key");
  options.key_password_file = PkiPath("ec", "client.key.pass");
  std::string log;
  absl::Status status = HandshakeWithMutualTls(options, &log);
  ASSERT_TRUE(status.ok()) << status << "\n" << log;
}

TEST_F(KeystoreTest, EncryptedPemKeyFallsBackToPasswordFile) {
  TlsOptions options = BaseOptions();
  options.cert_file = PkiPath("ec", "client.fullchain.pem");
  options.key_file = PkiPath("ec", "client.enc.key");
  options.password_file = PkiPath("ec", "client.key.pass");
  EXPECT_TRUE(TlsClientContext::Create(options, "localhost").ok());
}

TEST_F(KeystoreTest, WrongPkcs12PasswordNamesTheFilesNotThePassword) {
  TlsOptions options = BaseOptions();
  options.pkcs12_file = PkiPath("ec", "client.p12");
  options.password_file = WriteFile("wrong.pass", "not-the-password-42\n");
  auto ctx = TlsClientContext::Create(options, "localhost");
  ASSERT_FALSE(ctx.ok());
  EXPECT_THAT(ctx.status().message(), HasSubstr("wrong password"));
  EXPECT_THAT(ctx.status().message(), HasSubstr(options.pkcs12_file));
  EXPECT_THAT(ctx.status().message(), HasSubstr(options.password_file));
  EXPECT_THAT(ctx.status().message(), Not(HasSubstr("not-the-password-42")));
}

TEST_F(KeystoreTest, WrongKeyPasswordNamesTheFilesNotThePassword) {
  TlsOptions options = BaseOptions();
  options.cert_file = PkiPath("ec", "client.fullchain.pem");
  options.key_file = PkiPath("ec", "client.enc.key");
  options.key_password_file = WriteFile("wrong.pass", "hunter2-secret\n");
  auto ctx = TlsClientContext::Create(options, "localhost");
  ASSERT_FALSE(ctx.ok());
  EXPECT_THAT(ctx.status().message(), HasSubstr("wrong password"));
  EXPECT_THAT(ctx.status().message(), HasSubstr(options.key_file));
  EXPECT_THAT(ctx.status().message(), Not(HasSubstr("hunter2-secret")));
}

TEST_F(KeystoreTest, EncryptedKeyWithoutPasswordFileSaysWhichSettingIsMissing) {
  auto key = LoadPemPrivateKey(PkiPath("ec", "client.enc.key"), "");
  ASSERT_FALSE(key.ok());
  EXPECT_THAT(key.status().message(), HasSubstr("key_password_file"));
}

TEST_F(KeystoreTest, NotAPkcs12FileIsReportedAsSuch) {
  auto creds = LoadPkcs12(PkiPath("ec", "client.crt"), PkiPath("ec", "client.p12.pass"));
  ASSERT_FALSE(creds.ok());
  EXPECT_THAT(creds.status().message(), HasSubstr("is not a PKCS#12"));
}

TEST_F(KeystoreTest, Pkcs12KeepsTheChainCertificates) {
  auto creds = LoadPkcs12(PkiPath("ec", "client.p12"), PkiPath("ec", "client.p12.pass"));
  ASSERT_TRUE(creds.ok()) << creds.status();
  EXPECT_EQ(creds->chain.size(), 1u);  // int.crt
}

TEST_F(KeystoreTest, EmptyPasswordFileIsAnError) {
  auto pw = ReadPasswordFile(WriteFile("empty.pass", ""));
  ASSERT_FALSE(pw.ok());
  EXPECT_THAT(pw.status().message(), HasSubstr("is empty"));
}

TEST_F(KeystoreTest, PasswordFileLineEndingIsNotPartOfThePassword) {
  auto pw = ReadPasswordFile(WriteFile("crlf.pass", "secret\r\n"));
  ASSERT_TRUE(pw.ok()) << pw.status();
  EXPECT_EQ(*pw, "secret");
}

}  // namespace
}  // namespace tlsbroker
