// The caller pattern language of allowed_callers / admin_callers (services/caller_pattern.h):
// case-sensitive, exact or a prefix ending in `*`. Pure logic; the same rules through a real
// mTLS channel are in security_access_test.cc.

#include "services/caller_pattern.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace tlsbroker {
namespace {

constexpr char kApp1[] = "spiffe://example.org/ns/payments/sa/app1";

TEST(CallerPatternTest, IdentityDifferingOnlyInCaseDoesNotMatch) {
  EXPECT_TRUE(CallerPatternMatches(kApp1, kApp1));
  EXPECT_FALSE(CallerPatternMatches(kApp1, "spiffe://example.org/ns/PAYMENTS/sa/app1"));
  EXPECT_FALSE(CallerPatternMatches(kApp1, "spiffe://example.org/ns/payments/sa/App1"));
  EXPECT_FALSE(CallerPatternMatches(kApp1, "SPIFFE://example.org/ns/payments/sa/app1"));
  EXPECT_FALSE(CallerPatternMatches("spiffe://example.org/ns/PAYMENTS/sa/*",
                                    "spiffe://example.org/ns/payments/sa/x"));
  EXPECT_FALSE(CallerPatternMatches("spiffe://example.org/ns/payments/sa/*",
                                    "spiffe://example.org/ns/PAYMENTS/sa/x"));
  EXPECT_TRUE(CallerPatternMatches("spiffe://example.org/ns/PAYMENTS/sa/*",
                                   "spiffe://example.org/ns/PAYMENTS/sa/x"));
}

TEST(CallerPatternTest, SubjectDnValuesMatchCaseSensitively) {
  const std::string dn = "CN=batch,OU=ops,O=Example,C=GB";
  EXPECT_TRUE(CallerPatternMatches(dn, dn));
  EXPECT_FALSE(CallerPatternMatches(dn, "CN=BATCH,OU=ops,O=Example,C=GB"));
  EXPECT_FALSE(CallerPatternMatches("CN=batch,*", "CN=Batch,OU=ops,O=Example,C=GB"));
  EXPECT_TRUE(CallerPatternMatches("CN=batch,*", dn));
}

TEST(CallerPatternTest, TrailingStarIsAPrefixMatchThatCrossesSlashes) {
  const std::string pattern = "spiffe://example.org/ns/payments/sa/*";
  EXPECT_TRUE(CallerPatternMatches(pattern, kApp1));
  EXPECT_TRUE(CallerPatternMatches(pattern, "spiffe://example.org/ns/payments/sa/app1/extra"));
  EXPECT_TRUE(CallerPatternMatches(pattern, "spiffe://example.org/ns/payments/sa/"));
  EXPECT_FALSE(CallerPatternMatches(pattern, "spiffe://example.org/ns/payments/sa"));
  EXPECT_FALSE(CallerPatternMatches(pattern, "spiffe://example.org/ns/payments/other/app1"));
  // Without the '/' the prefix runs into the next path segment's name.
  EXPECT_TRUE(CallerPatternMatches("spiffe://example.org/ns/pay*",
                                   "spiffe://example.org/ns/payroll/sa/x"));
}

TEST(CallerPatternTest, PatternWithoutStarMatchesOnlyTheWholeIdentity) {
  EXPECT_FALSE(CallerPatternMatches(kApp1, "spiffe://example.org/ns/payments/sa/app10"));
  EXPECT_FALSE(CallerPatternMatches(kApp1, "spiffe://example.org/ns/payments/sa/app"));
  EXPECT_FALSE(CallerPatternMatches(kApp1, ""));
}

TEST(CallerPatternTest, StarNotAtTheEndIsALiteralCharacter) {
  // The config loader refuses these; here they can only match less than a wildcard would.
  EXPECT_FALSE(CallerPatternMatches("*/sa/app1", kApp1));
  EXPECT_TRUE(CallerPatternMatches("*/sa/app1", "*/sa/app1"));
  EXPECT_FALSE(CallerPatternMatches("spiffe://example.org/*/sa/app1", kApp1));
  EXPECT_FALSE(CallerPatternMatches("*payments*", kApp1));
}

TEST(CallerPatternTest, LoneStarAdmitsEveryIdentityButNoEmptyOne) {
  EXPECT_TRUE(CallerAllowed({"*"}, kApp1));
  EXPECT_TRUE(CallerAllowed({"*"}, "local"));
  EXPECT_TRUE(CallerAllowed({"*"}, "CN=batch,OU=ops,O=Example,C=GB"));
  EXPECT_FALSE(CallerAllowed({"*"}, ""));
}

TEST(CallerPatternTest, AllowListAdmitsOnAnyMatchAndEmptyListAdmitsNobody) {
  const std::vector<std::string> patterns = {"spiffe://example.org/ns/ops/sa/admin",
                                             "spiffe://example.org/ns/payments/*"};
  EXPECT_TRUE(CallerAllowed(patterns, kApp1));
  EXPECT_TRUE(CallerAllowed(patterns, "spiffe://example.org/ns/ops/sa/admin"));
  EXPECT_FALSE(CallerAllowed(patterns, "spiffe://example.org/ns/OPS/sa/admin"));
  EXPECT_FALSE(CallerAllowed(patterns, "spiffe://example.org/ns/Payments/sa/app1"));
  EXPECT_FALSE(CallerAllowed({}, kApp1));
  EXPECT_FALSE(CallerAllowed({}, "local"));
}

}  // namespace
}  // namespace tlsbroker
