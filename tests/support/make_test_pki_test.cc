// Checks the certificates make_test_pki.sh produces, with the openssl command line.

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_pki.h"

namespace tlsbroker::testutil {
namespace {

class MakeTestPkiTest : public ::testing::TestWithParam<std::string> {
 protected:
  std::string Path(absl::string_view file) const { return PkiPath(GetParam(), file); }

  // Runs `openssl ARGS...` and returns its output and exit code.
  CommandResult Openssl(std::vector<std::string> args) const {
    args.insert(args.begin(), "openssl");
    absl::StatusOr<CommandResult> result = RunCommand(args);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : CommandResult{};
  }

  CommandResult Verify(std::vector<std::string> extra, absl::string_view leaf) const {
    std::vector<std::string> args = {"verify", "-CAfile", Path("root.crt"), "-untrusted",
                                     Path("int.crt")};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back(Path(leaf));
    return Openssl(args);
  }
};

// Server, client and client2 chain to the root through the intermediate.
TEST_P(MakeTestPkiTest, LeafCertificatesVerifyAgainstRoot) {
  for (const char* leaf :
       {"server.crt", "client.crt", "client2.crt", "revoked-server.crt", "ocsp.crt"}) {
    CommandResult r = Verify({}, leaf);
    EXPECT_EQ(r.exit_code, 0) << leaf << ": " << r.output;
    EXPECT_TRUE(absl::StrContains(r.output, ": OK")) << r.output;
  }
}

// The expired server certificate fails with X509 error 10, the future one with error 9.
TEST_P(MakeTestPkiTest, ExpiredAndNotYetValidCertificatesFailVerification) {
  CommandResult expired = Verify({}, "expired-server.crt");
  EXPECT_NE(expired.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(expired.output, "error 10 ")) << expired.output;
  CommandResult notyet = Verify({}, "notyet-server.crt");
  EXPECT_NE(notyet.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(notyet.output, "error 9 ")) << notyet.output;
}

// Revoked certificates fail a CRL check (error 23); good ones pass a full-chain CRL check.
TEST_P(MakeTestPkiTest, RevokedCertificatesFailCrlCheck) {
  for (const char* leaf : {"revoked-server.crt", "revoked-client.crt"}) {
    CommandResult r = Verify({"-crl_check", "-CRLfile", Path("int.crl.pem")}, leaf);
    EXPECT_NE(r.exit_code, 0) << leaf;
    EXPECT_TRUE(absl::StrContains(r.output, "error 23 ")) << r.output;
  }
  CommandResult good = Verify({"-crl_check_all", "-CRLfile", Path("crl-chain.pem")}, "client.crt");
  EXPECT_EQ(good.exit_code, 0) << good.output;
  // The DER CRL is the same CRL.
  CommandResult der =
      Openssl({"crl", "-inform", "DER", "-in", Path("int.crl.der"), "-noout", "-text"});
  EXPECT_EQ(der.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(der.output, "Key Compromise")) << der.output;
}

// Certificates of the wrong CA do not verify against the real root, but do against theirs.
TEST_P(MakeTestPkiTest, WrongCaCertificatesFailAgainstRealRoot) {
  CommandResult r = Verify({}, "wrongca/server.crt");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(r.output, "error 20 ")) << r.output;
  CommandResult own = Openssl({"verify", "-CAfile", Path("wrongca/root.crt"),
                               Path("wrongca/server.crt"), Path("wrongca/client.crt")});
  EXPECT_EQ(own.exit_code, 0) << own.output;
}

// Subjects keep the order the CSRs gave them, so RFC 2253 prints them most-specific first;
// the SANs are the ones peer-name and caller-identity tests rely on.
TEST_P(MakeTestPkiTest, SubjectsAndSansAreAsDocumented) {
  CommandResult server = Openssl({"x509", "-in", Path("server.crt"), "-noout", "-subject",
                                  "-nameopt", "RFC2253", "-ext", "subjectAltName"});
  EXPECT_TRUE(
      absl::StrContains(server.output, "subject=CN=QM2.backend,OU=IBM,OU=WEBSPHERE,O=Example,C=GB"))
      << server.output;
  EXPECT_TRUE(absl::StrContains(
      server.output, "DNS:localhost, IP Address:127.0.0.1, URI:spiffe://example.org/backend/qm2"))
      << server.output;
  CommandResult client = Openssl({"x509", "-in", Path("client.crt"), "-noout", "-subject",
                                  "-nameopt", "RFC2253", "-ext", "subjectAltName"});
  EXPECT_TRUE(absl::StrContains(client.output, "subject=CN=app1,OU=payments,O=Example,C=GB"))
      << client.output;
  EXPECT_TRUE(absl::StrContains(client.output, "URI:spiffe://example.org/ns/payments/sa/app1"));
  CommandResult wrong = Openssl(
      {"x509", "-in", Path("wrongca/server.crt"), "-noout", "-subject", "-nameopt", "RFC2253"});
  EXPECT_TRUE(absl::StrContains(wrong.output, "CN=QM2.backend,OU=IBM,OU=WEBSPHERE"));
  CommandResult intermediate =
      Openssl({"x509", "-in", Path("int.crt"), "-noout", "-ext", "basicConstraints"});
  EXPECT_TRUE(absl::StrContains(intermediate.output, "pathlen:0")) << intermediate.output;
}

// The intermediate's database answers OCSP queries: revoked for revoked-client.
TEST_P(MakeTestPkiTest, IntDatabaseServesOcspAnswers) {
  std::string dir = MakeTempDir();
  ASSERT_FALSE(dir.empty());
  std::string req = dir + "/req.der";
  std::string resp = dir + "/resp.der";
  for (const char* leaf : {"client.crt", "revoked-client.crt"}) {
    ASSERT_EQ(Openssl({"ocsp", "-issuer", Path("int.crt"), "-cert", Path(leaf), "-no_nonce",
                       "-reqout", req})
                  .exit_code,
              0);
    CommandResult answer =
        Openssl({"ocsp", "-index", Path("int-db/index.txt"), "-CA", Path("int.crt"), "-rsigner",
                 Path("ocsp.crt"), "-rkey", Path("ocsp.key"), "-reqin", req, "-respout", resp});
    ASSERT_EQ(answer.exit_code, 0) << answer.output;
    CommandResult check =
        Openssl({"ocsp", "-no_nonce", "-respin", resp, "-issuer", Path("int.crt"), "-cert",
                 Path(leaf), "-CAfile", Path("root.crt"), "-verify_other", Path("int.crt")});
    EXPECT_TRUE(absl::StrContains(check.output, "Response verify OK")) << check.output;
    EXPECT_TRUE(
        absl::StrContains(check.output, std::string(leaf) == "client.crt" ? ": good" : ": revoked"))
        << check.output;
  }
  std::filesystem::remove_all(dir);
}

// Without OCSP_URL (as ctest runs it) leaf certificates carry no AIA extension.
TEST_P(MakeTestPkiTest, LeavesHaveNoAiaByDefault) {
  CommandResult r = Openssl({"x509", "-in", Path("server.crt"), "-noout", "-text"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_FALSE(absl::StrContains(r.output, "Authority Information Access")) << r.output;
}

INSTANTIATE_TEST_SUITE_P(BothAlgorithms, MakeTestPkiTest, ::testing::Values("ec", "rsa"));

std::string Script() {
  const char* source = getenv("TLSB_SOURCE_DIR");
  return absl::StrCat(source != nullptr ? source : TLSB_SUPPORT_SOURCE_DIR_FOR_TEST,
                      source != nullptr ? "/tests/support" : "", "/make_test_pki.sh");
}

// Runs started together into the same new directory all succeed and leave one complete
// PKI and no temporary directories; a later run leaves it untouched. Also checks OCSP_URL.
TEST(MakeTestPkiScriptTest, ConcurrentRunsPublishOneCompletePkiAndRerunIsANoOp) {
  std::string parent = MakeTempDir();
  ASSERT_FALSE(parent.empty());
  std::string out = parent + "/pki";
  std::vector<std::unique_ptr<Subprocess>> runs;
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<std::unique_ptr<Subprocess>> run =
        Subprocess::Start({"env", "OCSP_URL=http://127.0.0.1:1/ocsp", "bash", Script(), out});
    ASSERT_TRUE(run.ok()) << run.status();
    runs.push_back(std::move(*run));
  }
  for (auto& run : runs) {
    absl::StatusOr<int> code = run->Wait(absl::Seconds(60));
    ASSERT_TRUE(code.ok()) << code.status();
    EXPECT_EQ(*code, 0) << run->ReadLog();
  }
  EXPECT_TRUE(std::filesystem::exists(out + "/.complete"));
  EXPECT_TRUE(std::filesystem::exists(out + "/README.txt"));
  int entries = 0;
  for (const auto& entry : std::filesystem::directory_iterator(parent)) {
    ++entries;
    EXPECT_EQ(entry.path().filename(), "pki");
  }
  EXPECT_EQ(entries, 1);

  absl::StatusOr<CommandResult> aia = RunCommand(
      {"openssl", "x509", "-in", out + "/ec/client.crt", "-noout", "-ext", "authorityInfoAccess"});
  ASSERT_TRUE(aia.ok());
  EXPECT_TRUE(absl::StrContains(aia->output, "OCSP - URI:http://127.0.0.1:1/ocsp")) << aia->output;

  std::string before = ReadFileOrEmpty(out + "/rsa/server.crt");
  absl::StatusOr<CommandResult> again = RunCommand({"bash", Script(), out});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->exit_code, 0);
  EXPECT_EQ(ReadFileOrEmpty(out + "/rsa/server.crt"), before);
  std::filesystem::remove_all(parent);
}

// A test binary run by hand (no TLSB_TEST_PKI_DIR) generates a PKI of its own and uses it.
TEST(MakeTestPkiScriptTest, TestBinaryWithoutPkiDirGeneratesItsOwn) {
  std::string self = std::filesystem::read_symlink("/proc/self/exe");
  absl::StatusOr<CommandResult> r =
      RunCommand({"env", "-u", "TLSB_TEST_PKI_DIR", self,
                  "--gtest_filter=BothAlgorithms/MakeTestPkiTest.LeafCertificatesVerify*"},
                 "", absl::Seconds(90));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 0) << r->output;
  EXPECT_TRUE(absl::StrContains(r->output, "[  PASSED  ] 2 tests")) << r->output;
}

}  // namespace
}  // namespace tlsbroker::testutil
