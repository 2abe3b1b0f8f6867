// TlsClientContext::IsRevoked: the re-check pooled sockets get when CRLs change, on chains read
// from the test PKI's files (as a backend would present them).

#include <openssl/pem.h>

#include <cstdio>

#include "broker/tls/tls_client_context.h"
#include "gtest/gtest.h"
#include "tests/support/test_pki.h"

namespace tlsbroker {
namespace {

using testutil::PkiPath;

// The certificates of a PEM file (leaf first) as a PeerChain.
PeerChain ChainFromFile(const std::string& path) {
  STACK_OF(X509)* stack = sk_X509_new_null();
  if (FILE* f = fopen(path.c_str(), "r")) {
    while (X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr)) sk_X509_push(stack, cert);
    fclose(f);
  }
  PeerChain chain(stack);  // Takes its own references.
  sk_X509_pop_free(stack, X509_free);
  return chain;
}

std::shared_ptr<TlsClientContext> Context(std::vector<std::string> crls, bool chain = false) {
  TlsOptions options;
  options.ca_file = PkiPath("ec", "root.crt");
  options.crl_files = std::move(crls);
  options.crl_check_chain = chain;
  auto context = TlsClientContext::Create(options, "localhost");
  EXPECT_TRUE(context.ok()) << context.status();
  return context.ok() ? *context : nullptr;
}

// A chain whose leaf the CRL lists is revoked; a good chain is not; without CRLs nothing is.
TEST(IsRevokedTest, LeafOnTheCrlIsRevokedOthersAreNot) {
  const PeerChain revoked = ChainFromFile(PkiPath("ec", "revoked-server.fullchain.pem"));
  const PeerChain good = ChainFromFile(PkiPath("ec", "server.fullchain.pem"));
  ASSERT_FALSE(revoked.empty());
  ASSERT_FALSE(good.empty());
  auto with_crl = Context({PkiPath("ec", "int.crl.pem")});
  ASSERT_NE(with_crl, nullptr);
  EXPECT_TRUE(with_crl->IsRevoked(revoked));
  EXPECT_FALSE(with_crl->IsRevoked(good));
  auto without = Context({});
  ASSERT_NE(without, nullptr);
  EXPECT_FALSE(without->IsRevoked(revoked));
}

// crl_check CHAIN works the same for a revoked leaf when every CA's CRL is there.
TEST(IsRevokedTest, ChainCheckFindsTheRevokedLeaf) {
  auto context = Context({PkiPath("ec", "crl-chain.pem")}, /*chain=*/true);
  ASSERT_NE(context, nullptr);
  EXPECT_TRUE(context->IsRevoked(ChainFromFile(PkiPath("ec", "revoked-server.fullchain.pem"))));
  EXPECT_FALSE(context->IsRevoked(ChainFromFile(PkiPath("ec", "server.fullchain.pem"))));
}

// The earliest nextUpdate of the loaded CRLs is known.
TEST(IsRevokedTest, CrlNextUpdateIsReported) {
  auto context = Context({PkiPath("ec", "int.crl.pem")});
  ASSERT_NE(context, nullptr);
  ASSERT_TRUE(context->crl_next_update().has_value());
  EXPECT_GT(*context->crl_next_update(), absl::Now());
  EXPECT_FALSE(Context({})->crl_next_update().has_value());
}

}  // namespace
}  // namespace tlsbroker
