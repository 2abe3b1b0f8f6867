// TlsFileSnapshot sees file changes made the way Kubernetes makes them (a `..data` symlink
// swap), tells CRL changes from credential changes, and TlsFileKindOfError names the file a
// context-building error is about.

#include "broker/tls/tls_file_snapshot.h"

#include <filesystem>
#include <fstream>
#include <map>

#include "absl/strings/str_cat.h"
#include "broker/tls/tls_client_context.h"
#include "gtest/gtest.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_pki.h"
#include "tests/support/test_pki_files.h"

namespace tlsbroker {
namespace {

using testutil::KubernetesStyleDir;
using testutil::PkiPath;
using testutil::ReadFileOrEmpty;

class TlsFileSnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           absl::StrCat("tlsb-snapshot-", getpid(), "-",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::filesystem::path dir_;
};

// A symlink swap that changes a CRL is a CRL change; one that changes the key is a credential
// change; a swap to identical contents is no change.
TEST_F(TlsFileSnapshotTest, SymlinkSwapIsSeenAndClassified) {
  KubernetesStyleDir secret(dir_.string());
  const std::string crl = ReadFileOrEmpty(PkiPath("ec", "int.crl.pem"));
  const std::string cert = ReadFileOrEmpty(PkiPath("ec", "client.fullchain.pem"));
  const std::string key = ReadFileOrEmpty(PkiPath("ec", "client.key"));
  ASSERT_TRUE(secret.Publish({{"crl.pem", crl}, {"tls.crt", cert}, {"tls.key", key}}).ok());
  TlsOptions options;
  options.crl_files = {secret.Path("crl.pem")};
  options.cert_file = secret.Path("tls.crt");
  options.key_file = secret.Path("tls.key");
  const TlsFileSnapshot first = TlsFileSnapshot::Read(options);

  ASSERT_TRUE(secret.Publish({{"crl.pem", crl}, {"tls.crt", cert}, {"tls.key", key}}).ok());
  EXPECT_FALSE(first.ChangesTo(TlsFileSnapshot::Read(options)).any());

  ASSERT_TRUE(secret.Publish({{"crl.pem", crl + "\n"}, {"tls.crt", cert}, {"tls.key", key}}).ok());
  TlsFileSnapshot::Changes crl_changed = first.ChangesTo(TlsFileSnapshot::Read(options));
  EXPECT_TRUE(crl_changed.crl);
  EXPECT_FALSE(crl_changed.credentials);

  ASSERT_TRUE(secret
                  .Publish({{"crl.pem", crl},
                            {"tls.crt", cert},
                            {"tls.key", ReadFileOrEmpty(PkiPath("ec", "client2.key"))}})
                  .ok());
  TlsFileSnapshot::Changes key_changed = first.ChangesTo(TlsFileSnapshot::Read(options));
  EXPECT_FALSE(key_changed.crl);
  EXPECT_TRUE(key_changed.credentials);
}

// A file that disappears counts as changed (and so gets reloaded, and rejected, once).
TEST_F(TlsFileSnapshotTest, MissingFileIsAChange) {
  std::filesystem::create_directories(dir_);
  const std::string path = (dir_ / "crl.pem").string();
  std::ofstream(path) << "x";
  TlsOptions options;
  options.crl_files = {path};
  const TlsFileSnapshot before = TlsFileSnapshot::Read(options);
  std::filesystem::remove(path);
  EXPECT_TRUE(before.ChangesTo(TlsFileSnapshot::Read(options)).crl);
}

// The errors TlsClientContext reports for broken files name the file, and so its kind.
TEST_F(TlsFileSnapshotTest, ContextErrorsNameTheBrokenFileKind) {
  std::filesystem::create_directories(dir_);
  const std::string garbage = (dir_ / "garbage.pem").string();
  std::ofstream(garbage) << "not pem\n";
  const std::string empty = (dir_ / "empty.pem").string();
  std::ofstream(empty) << "";
  TlsOptions good;
  good.ca_file = PkiPath("ec", "root.crt");
  good.cert_file = PkiPath("ec", "client.fullchain.pem");
  good.key_file = PkiPath("ec", "client.key");
  ASSERT_TRUE(TlsClientContext::Create(good, "localhost").ok());

  auto kind_of = [](const TlsOptions& options) {
    auto context = TlsClientContext::Create(options, "localhost");
    EXPECT_FALSE(context.ok());
    return context.ok() ? std::string("ok") : TlsFileKindOfError(context.status(), options);
  };
  TlsOptions bad = good;
  bad.key_file = PkiPath("ec", "client2.key");  // Does not match the certificate.
  EXPECT_EQ(kind_of(bad), "key");
  bad = good;
  bad.cert_file = garbage;
  EXPECT_EQ(kind_of(bad), "cert");
  bad = good;
  bad.ca_file = empty;
  EXPECT_EQ(kind_of(bad), "ca");
  bad = good;
  bad.crl_files = {garbage};
  EXPECT_EQ(kind_of(bad), "crl");
}

// A rotated PKCS#12 bundle, a changed password file and a changed key password file are each a
// credential change (a Secret holding tls.p12 and its password is rotated like one holding PEM
// files).
TEST_F(TlsFileSnapshotTest, Pkcs12AndPasswordFileChangesAreCredentialChanges) {
  KubernetesStyleDir secret(dir_.string());
  const std::string p12 = ReadFileOrEmpty(PkiPath("ec", "client.p12"));
  const std::string password = ReadFileOrEmpty(PkiPath("ec", "client.p12.pass"));
  ASSERT_FALSE(p12.empty());
  ASSERT_FALSE(password.empty());
  const std::map<std::string, std::string> original = {
      {"tls.p12", p12}, {"p12.pass", password}, {"key.pass", "key-password"}};
  ASSERT_TRUE(secret.Publish(original).ok());
  TlsOptions options;
  options.pkcs12_file = secret.Path("tls.p12");
  options.password_file = secret.Path("p12.pass");
  options.key_password_file = secret.Path("key.pass");
  const TlsFileSnapshot first = TlsFileSnapshot::Read(options);

  ASSERT_TRUE(secret.Publish(original).ok());
  EXPECT_FALSE(first.ChangesTo(TlsFileSnapshot::Read(options)).any());

  for (const std::string name : {"tls.p12", "p12.pass", "key.pass"}) {
    std::map<std::string, std::string> changed = original;
    changed[name] += "x";
    ASSERT_TRUE(secret.Publish(changed).ok());
    TlsFileSnapshot::Changes changes = first.ChangesTo(TlsFileSnapshot::Read(options));
    EXPECT_TRUE(changes.credentials) << name;
    EXPECT_FALSE(changes.crl) << name;
  }
}

// A bundle that no longer opens with its password counts against the key.
TEST_F(TlsFileSnapshotTest, BrokenPkcs12ErrorIsAKeyError) {
  std::filesystem::create_directories(dir_);
  const std::string wrong = (dir_ / "wrong.pass").string();
  std::ofstream(wrong) << "not-the-password";
  TlsOptions options;
  options.ca_file = PkiPath("ec", "root.crt");
  options.pkcs12_file = PkiPath("ec", "client.p12");
  options.password_file = wrong;
  auto context = TlsClientContext::Create(options, "localhost");
  ASSERT_FALSE(context.ok());
  EXPECT_EQ(TlsFileKindOfError(context.status(), options), "key") << context.status();
}

}  // namespace
}  // namespace tlsbroker
