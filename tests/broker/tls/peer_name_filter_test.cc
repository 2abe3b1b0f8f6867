#include "broker/tls/peer_name_filter.h"

#include <openssl/bn.h>
#include <openssl/x509.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tlsbroker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

MATCHER_P2(IsDnAttribute, type, value, "") { return arg.type == type && arg.value == value; }

// The subject of a certificate made with
//   -subj "/C=GB/O=Example/OU=WEBSPHERE/OU=IBM/CN=QM2.backend"
// in RFC 2253 order, as DnAttributesFromX509Name returns it.
std::vector<DnAttribute> Qm2Dn() {
  return {{"CN", "QM2.backend"}, {"OU", "IBM"}, {"OU", "WEBSPHERE"}, {"O", "Example"}, {"C", "GB"}};
}

PeerNameFilter MustParse(absl::string_view pattern) {
  absl::StatusOr<PeerNameFilter> filter = PeerNameFilter::Parse(pattern);
  EXPECT_TRUE(filter.ok()) << pattern << ": " << filter.status();
  if (!filter.ok()) return PeerNameFilter::Parse("CN=never matches \\* this").value();
  return *std::move(filter);
}

bool PatternMatches(absl::string_view pattern, const std::vector<DnAttribute>& dn) {
  return MustParse(pattern).Matches(dn);
}

// Asserts that `pattern` fails to parse with INVALID_ARGUMENT and a message containing `what`
// and the offset of the problem.
void ExpectParseError(absl::string_view pattern, absl::string_view what, int offset) {
  absl::StatusOr<PeerNameFilter> filter = PeerNameFilter::Parse(pattern);
  ASSERT_FALSE(filter.ok()) << pattern;
  EXPECT_EQ(filter.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(filter.status().message()), HasSubstr(std::string(what)));
  EXPECT_THAT(std::string(filter.status().message()),
              HasSubstr("at offset " + std::to_string(offset) + ":"));
}

struct X509NameDeleter {
  void operator()(X509_NAME* name) const { X509_NAME_free(name); }
};
using TestX509NamePtr = std::unique_ptr<X509_NAME, X509NameDeleter>;

void AddEntry(X509_NAME* name, const char* field, const char* value) {
  ASSERT_EQ(X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                       reinterpret_cast<const unsigned char*>(value), -1, -1, 0),
            1)
      << field;
}

// The full MQ-style pattern matches the certificate it was written for.
TEST(PeerNameFilterTest, ExactPatternMatchesItsDn) {
  EXPECT_TRUE(PatternMatches("CN=QM2.backend, OU=IBM, OU=WEBSPHERE, O=Example, C=GB", Qm2Dn()));
}

// One differing value is enough to reject the DN.
TEST(PeerNameFilterTest, DifferentValueDoesNotMatch) {
  EXPECT_FALSE(PatternMatches("CN=QM3.backend, O=Example", Qm2Dn()));
  EXPECT_FALSE(PatternMatches("CN=QM2.backen", Qm2Dn()));
}

// A trailing '*' makes the value a prefix.
TEST(PeerNameFilterTest, SuffixWildcardMatchesPrefix) {
  EXPECT_TRUE(PatternMatches("CN=QM2*, OU=IBM, OU=WEBSPHERE, O=Example, C=GB", Qm2Dn()));
  EXPECT_FALSE(PatternMatches("CN=QM3*", Qm2Dn()));
}

// A leading '*' makes the value a suffix.
TEST(PeerNameFilterTest, PrefixWildcardMatchesSuffix) {
  EXPECT_TRUE(PatternMatches("CN=*.backend", Qm2Dn()));
  EXPECT_FALSE(PatternMatches("CN=*.frontend", Qm2Dn()));
}

// '*' at both ends matches a substring; a lone '*' matches any value of a present attribute.
TEST(PeerNameFilterTest, WildcardsAtBothEndsMatchSubstring) {
  EXPECT_TRUE(PatternMatches("CN=*2.back*", Qm2Dn()));
  EXPECT_FALSE(PatternMatches("CN=*front*", Qm2Dn()));
  EXPECT_TRUE(PatternMatches("CN=*", Qm2Dn()));
  EXPECT_FALSE(PatternMatches("L=*", Qm2Dn()));
}

// Attribute types and values compare without regard to ASCII case.
TEST(PeerNameFilterTest, TypesAndValuesAreCaseInsensitive) {
  EXPECT_TRUE(PatternMatches("cn=qm2.BACKEND, ou=ibm, Ou=WebSphere, o=EXAMPLE, c=gb", Qm2Dn()));
  EXPECT_TRUE(PatternMatches("cN=qm2*", Qm2Dn()));
}

// Inside quotes ',', ';' and '=' are part of the value.
TEST(PeerNameFilterTest, QuotedValueMayContainSeparators) {
  const std::vector<DnAttribute> dn = {{"CN", "svc"}, {"O", "Example, Inc; a=b"}, {"C", "US"}};
  EXPECT_TRUE(PatternMatches(R"(O="Example, Inc; a=b", C=US)", dn));
  EXPECT_TRUE(PatternMatches(R"(O = "example, inc*" ; C = US)", dn));
  EXPECT_FALSE(PatternMatches(R"(O="Example, Inc")", dn));
}

// Inside quotes \" and \\ stand for a quote and a backslash.
TEST(PeerNameFilterTest, QuotedValueUnescapesQuoteAndBackslash) {
  const std::vector<DnAttribute> dn = {{"CN", R"(a"b\c)"}};
  EXPECT_TRUE(PatternMatches(R"(CN="a\"b\\c")", dn));
}

// Outside quotes a backslash makes the next character literal, including ',' and '*'.
TEST(PeerNameFilterTest, BackslashEscapesInUnquotedValue) {
  const std::vector<DnAttribute> dn = {{"CN", "a,b*c"}, {"O", "*"}};
  EXPECT_TRUE(PatternMatches(R"(CN=a\,b\*c, O=\*)", dn));
  // An escaped '*' is literal, so it does not match other values.
  EXPECT_FALSE(PatternMatches(R"(O=\*)", {{"O", "x"}}));
}

// A '*' in the middle of a quoted value is literal; at its ends it is still a wildcard.
TEST(PeerNameFilterTest, StarInsideQuotesIsLiteralExceptAtEnds) {
  EXPECT_TRUE(PatternMatches(R"(CN="a*b")", {{"CN", "A*B"}}));
  EXPECT_FALSE(PatternMatches(R"(CN="a*b")", {{"CN", "axb"}}));
  EXPECT_TRUE(PatternMatches(R"(CN="a*b*")", {{"CN", "a*bcd"}}));
}

// ';' separates attributes as ',' does, and whitespace around separators and '=' is ignored.
TEST(PeerNameFilterTest, SemicolonSeparatorsAndWhitespaceAccepted) {
  EXPECT_TRUE(PatternMatches("  CN = QM2* ;OU=IBM;  O =Example , C= GB  ", Qm2Dn()));
}

// Repeated OUs match the DN's OUs in RFC 2253 order (most specific first).
TEST(PeerNameFilterTest, RepeatedAttributesMatchInOrder) {
  EXPECT_TRUE(PatternMatches("OU=IBM, OU=WEBSPHERE", Qm2Dn()));
  EXPECT_FALSE(PatternMatches("OU=WEBSPHERE, OU=IBM", Qm2Dn()));
  // Types may interleave: only the order within one type matters.
  EXPECT_TRUE(PatternMatches("OU=IBM, C=GB, CN=QM2*, OU=WEBSPHERE", Qm2Dn()));
}

// A single OU rule is compared with the first (most specific) OU only.
TEST(PeerNameFilterTest, SingleRuleComparesFirstAttributeOfItsType) {
  EXPECT_TRUE(PatternMatches("OU=IBM", Qm2Dn()));
  EXPECT_FALSE(PatternMatches("OU=WEBSPHERE", Qm2Dn()));
}

// More rules of a type than the DN has attributes of that type cannot match.
TEST(PeerNameFilterTest, MoreRulesThanAttributesDoesNotMatch) {
  EXPECT_FALSE(PatternMatches("OU=IBM, OU=WEBSPHERE, OU=*", Qm2Dn()));
}

// A rule naming an attribute the DN lacks fails.
TEST(PeerNameFilterTest, MissingAttributeInDnDoesNotMatch) {
  EXPECT_FALSE(PatternMatches("CN=QM2*, L=London", Qm2Dn()));
  EXPECT_FALSE(MustParse("CN=*").Matches({}));
}

// DN attributes the pattern does not name are ignored.
TEST(PeerNameFilterTest, ExtraDnAttributesAreIgnored) {
  EXPECT_TRUE(PatternMatches("O=Example", Qm2Dn()));
  EXPECT_TRUE(PatternMatches("C=GB", Qm2Dn()));
}

// ST, SP and S all name the stateOrProvinceName attribute; other MQ synonyms map likewise.
TEST(PeerNameFilterTest, TypeSynonymsMapToCanonicalTypes) {
  const std::vector<DnAttribute> dn = {
      {"CN", "x"},         {"ST", "Hampshire"},        {"EMAILADDRESS", "ops@example.com"},
      {"UID", "u1"},       {"TITLE", "Queue manager"}, {"POSTALCODE", "SO21"},
      {"DNQUALIFIER", "q"}};
  EXPECT_TRUE(PatternMatches("ST=Hampshire", dn));
  EXPECT_TRUE(PatternMatches("SP=Hampshire", dn));
  EXPECT_TRUE(PatternMatches("S=Hampshire", dn));
  EXPECT_TRUE(PatternMatches("MAIL=ops@*", dn));
  EXPECT_TRUE(PatternMatches("E=ops@example.com", dn));
  EXPECT_TRUE(PatternMatches("EMAIL=*@example.com", dn));
  EXPECT_TRUE(PatternMatches("USERID=u1, UID=u1", {{"UID", "u1"}, {"UID", "u1"}}));
  EXPECT_TRUE(PatternMatches("T=Queue*, PC=SO21, DNQ=q", dn));
  EXPECT_FALSE(PatternMatches("SP=Kent", dn));
}

// pattern() shows the canonical types and separators, keeps value case, and re-parses.
TEST(PeerNameFilterTest, PatternIsCanonicalAndReparses) {
  const PeerNameFilter filter = MustParse(R"(cn = QM2* ; sp=Hamp;  O="Example, Inc", T=a\*b)");
  EXPECT_EQ(filter.pattern(), R"(CN=QM2*, ST=Hamp, O=Example\, Inc, TITLE=a\*b)");
  const PeerNameFilter again = MustParse(filter.pattern());
  EXPECT_EQ(again.pattern(), filter.pattern());
  EXPECT_TRUE(
      again.Matches({{"CN", "qm2x"}, {"ST", "HAMP"}, {"O", "Example, Inc"}, {"TITLE", "a*b"}}));
}

// An empty or blank pattern is an error; "no filter" is the caller's business.
TEST(PeerNameFilterTest, EmptyPatternIsError) {
  ExpectParseError("", "empty", 0);
  ExpectParseError("   ", "empty", 3);
}

// A type without '=' is reported with what was expected.
TEST(PeerNameFilterTest, MissingEqualsIsError) {
  ExpectParseError("CN QM2", "expected '=' after attribute type \"CN\"", 3);
  ExpectParseError("CN=a, OU", "expected '=' after attribute type \"OU\"", 8);
}

// An unknown attribute type is named in the error, at its offset.
TEST(PeerNameFilterTest, UnknownTypeIsErrorNamingIt) {
  ExpectParseError("CN=a, XYZ=b", "unknown attribute type \"XYZ\"", 6);
  // "SN" is ambiguous (serialNumber or surname), so it is refused rather than guessed.
  ExpectParseError("SN=x", "unknown attribute type \"SN\"", 0);
}

// A quote that never closes is reported at the opening quote.
TEST(PeerNameFilterTest, UnterminatedQuoteIsError) {
  ExpectParseError(R"(CN="abc, O=x)", "unterminated quoted value", 3);
  ExpectParseError(R"(CN="abc\")", "unterminated quoted value", 3);
}

// '*' between other characters of an unquoted value is rejected rather than read literally.
TEST(PeerNameFilterTest, StarInMiddleOfValueIsError) {
  ExpectParseError("CN=QM*2", "'*' is allowed only at the start or end of a value", 5);
}

// Other malformed inputs: empty value, trailing separator, junk after a quoted value.
TEST(PeerNameFilterTest, OtherMalformedPatternsAreErrors) {
  ExpectParseError("CN=", "expected a value for attribute \"CN\"", 3);
  ExpectParseError("CN= , O=x", "expected a value for attribute \"CN\"", 4);
  ExpectParseError("CN=a,", "expected an attribute type", 5);
  ExpectParseError("CN=a,,O=b", "expected an attribute type (such as CN), found ','", 5);
  ExpectParseError(R"(CN="a"b)", "expected ',' or ';' between attributes, found 'b'", 6);
  ExpectParseError("CN=a=b", "unexpected '=' in a value", 4);
  ExpectParseError("CN=a\\", "'\\' at the end of the pattern", 4);
}

// The error message quotes the offending pattern so a config error is easy to find.
TEST(PeerNameFilterTest, ErrorMessageQuotesPattern) {
  absl::StatusOr<PeerNameFilter> filter = PeerNameFilter::Parse("CN=a, Q=b");
  ASSERT_FALSE(filter.ok());
  EXPECT_THAT(std::string(filter.status().message()), HasSubstr("\"CN=a, Q=b\""));
}

// An X509_NAME built C first (as -subj writes it) reads back most specific first.
TEST(DnAttributesFromX509NameTest, ReturnsRfc2253Order) {
  TestX509NamePtr name(X509_NAME_new());
  ASSERT_NE(name, nullptr);
  AddEntry(name.get(), "C", "GB");
  AddEntry(name.get(), "O", "Example");
  AddEntry(name.get(), "OU", "WEBSPHERE");
  AddEntry(name.get(), "OU", "IBM");
  AddEntry(name.get(), "CN", "QM2.backend");

  const std::vector<DnAttribute> dn = DnAttributesFromX509Name(name.get());
  EXPECT_THAT(dn, ElementsAre(IsDnAttribute("CN", "QM2.backend"), IsDnAttribute("OU", "IBM"),
                              IsDnAttribute("OU", "WEBSPHERE"), IsDnAttribute("O", "Example"),
                              IsDnAttribute("C", "GB")));
  EXPECT_EQ(FormatDn(dn), "CN=QM2.backend,OU=IBM,OU=WEBSPHERE,O=Example,C=GB");
  EXPECT_TRUE(PatternMatches("CN=QM2*, OU=IBM, OU=WEBSPHERE, O=Example, C=GB", dn));
  EXPECT_FALSE(PatternMatches("OU=WEBSPHERE, OU=IBM", dn));
}

// OpenSSL's short names, upper-cased, are the canonical types the pattern synonyms map to.
TEST(DnAttributesFromX509NameTest, TypesMatchPatternSynonyms) {
  TestX509NamePtr name(X509_NAME_new());
  ASSERT_NE(name, nullptr);
  AddEntry(name.get(), "DC", "com");
  AddEntry(name.get(), "ST", "Hampshire");
  AddEntry(name.get(), "street", "1 High St");
  AddEntry(name.get(), "postalCode", "SO21 2JN");
  AddEntry(name.get(), "serialNumber", "42");
  AddEntry(name.get(), "title", "QM");
  AddEntry(name.get(), "UID", "u1");
  AddEntry(name.get(), "dnQualifier", "q");
  AddEntry(name.get(), "unstructuredName", "un");
  AddEntry(name.get(), "unstructuredAddress", "ua");
  AddEntry(name.get(), "emailAddress", "ops@example.com");
  AddEntry(name.get(), "surname", "Lovelace");
  AddEntry(name.get(), "givenName", "Ada");
  AddEntry(name.get(), "CN", "QM2");

  const std::vector<DnAttribute> dn = DnAttributesFromX509Name(name.get());
  ASSERT_EQ(dn.size(), 14u);
  EXPECT_EQ(dn[0].type, "CN");
  EXPECT_EQ(dn[1].type, "GN");
  EXPECT_EQ(dn[2].type, "SN");
  EXPECT_EQ(dn[3].type, "EMAILADDRESS");
  EXPECT_EQ(dn[13].type, "DC");
  EXPECT_TRUE(PatternMatches(
      "DC=com, SP=Hampshire, STREET=1 High St, PC=SO21 2JN, SERIALNUMBER=42, T=QM, USERID=u1, "
      "DNQ=q, UNSTRUCTUREDNAME=un, UNSTRUCTUREDADDRESS=ua, MAIL=ops@example.com, SURNAME=Lovelace, "
      "GIVENNAME=Ada, CN=QM2",
      dn));
}

// Non-ASCII values come back as UTF-8 and match literally.
TEST(DnAttributesFromX509NameTest, ValuesAreUtf8) {
  TestX509NamePtr name(X509_NAME_new());
  ASSERT_NE(name, nullptr);
  AddEntry(name.get(), "O", "Z\xC3\xBCrich AG");
  const std::vector<DnAttribute> dn = DnAttributesFromX509Name(name.get());
  EXPECT_THAT(dn, ElementsAre(IsDnAttribute("O", "Z\xC3\xBCrich AG")));
  EXPECT_TRUE(PatternMatches("O=z\xC3\xBCrich*", dn));
}

// A null name has no attributes, so every pattern fails against it.
TEST(DnAttributesFromX509NameTest, NullNameIsEmpty) {
  EXPECT_TRUE(DnAttributesFromX509Name(nullptr).empty());
}

// FormatDn escapes RFC 4514 specials so a value with ',' cannot pose as two attributes.
TEST(FormatDnTest, EscapesSpecialCharacters) {
  EXPECT_EQ(FormatDn({{"CN", "a,b"}, {"O", "x+y;\"z\""}, {"C", " GB "}}),
            R"(CN=a\,b,O=x\+y\;\"z\",C=\ GB\ )");
  EXPECT_EQ(FormatDn({}), "");
}

// Exact, prefix, suffix and substring wildcard matching, ignoring ASCII case.
TEST(WildcardMatchTest, MatchesStarsAtEitherEnd) {
  EXPECT_TRUE(WildcardMatch("backend.example.com", "BACKEND.Example.COM"));
  EXPECT_FALSE(WildcardMatch("backend.example.com", "backend.example.co"));
  EXPECT_TRUE(WildcardMatch("*.example.com", "qm2.example.com"));
  EXPECT_FALSE(WildcardMatch("*.example.com", "example.com"));
  EXPECT_TRUE(WildcardMatch("qm2.*", "QM2.example.com"));
  EXPECT_TRUE(WildcardMatch("*example*", "www.example.org"));
  EXPECT_FALSE(WildcardMatch("*example*", "www.sample.org"));
}

// A lone '*' matches anything, including the empty string; an empty pattern only "".
TEST(WildcardMatchTest, LoneStarMatchesEverything) {
  EXPECT_TRUE(WildcardMatch("*", "anything at all"));
  EXPECT_TRUE(WildcardMatch("*", ""));
  EXPECT_TRUE(WildcardMatch("", ""));
  EXPECT_FALSE(WildcardMatch("", "x"));
}

// SPIFFE-ID allow-lists: a namespace/service-account prefix admits any workload under it.
TEST(WildcardMatchTest, SpiffeIdPrefix) {
  const absl::string_view pattern = "spiffe://cluster.local/ns/payments/sa/*";
  EXPECT_TRUE(WildcardMatch(pattern, "spiffe://cluster.local/ns/payments/sa/teller"));
  EXPECT_FALSE(WildcardMatch(pattern, "spiffe://cluster.local/ns/billing/sa/teller"));
  EXPECT_FALSE(WildcardMatch(pattern, "spiffe://evil.local/ns/payments/sa/teller"));
}

// A '*' in the middle of a WildcardMatch pattern is an ordinary character.
TEST(WildcardMatchTest, MiddleStarIsLiteral) {
  EXPECT_TRUE(WildcardMatch("a*b", "A*B"));
  EXPECT_FALSE(WildcardMatch("a*b", "axb"));
}

}  // namespace
}  // namespace tlsbroker

namespace tlsbroker {
namespace {

// ---- Table tests: IBM MQ's documented SSLPEER examples and the rules around them. ----------

struct PeerNameCase {
  const char* pattern;
  std::vector<DnAttribute> peer;  // As PeerAttributesFromCertificate returns them.
  bool matches;
};

// The peer of MQ's DEFINE CHANNEL example: serial 4C:D0:49:D5:02:5F:38, CN=H1_C_FR1,O=IBM,C=GB.
std::vector<DnAttribute> MqH1Peer() {
  return {{"SERIALNUMBER", "4C:D0:49:D5:02:5F:38"},
          {"CN", "H1_C_FR1"},
          {"O", "IBM"},
          {"C", "GB"}};
}
std::vector<DnAttribute> XyzPeer() { return {{"CN", "xyz"}, {"O", "IBM"}, {"C", "UK"}}; }
// A queue manager certificate with two OUs, most specific first (RFC 2253 order).
std::vector<DnAttribute> QmPeer() {
  return {{"SERIALNUMBER", "01:02"}, {"CN", "QMGR.1"}, {"OU", "IBM"},
          {"OU", "WEBSPHERE"},       {"O", "IBM"},     {"C", "UK"}};
}

class PeerNameTableTest : public ::testing::TestWithParam<PeerNameCase> {};

TEST_P(PeerNameTableTest, PatternDecidesAsMqDoes) {
  const PeerNameCase& c = GetParam();
  EXPECT_EQ(PatternMatches(c.pattern, c.peer), c.matches)
      << c.pattern << " vs " << FormatDn(c.peer);
}

INSTANTIATE_TEST_SUITE_P(
    MqDocumentedExamples, PeerNameTableTest,
    ::testing::Values(
        // DEFINE CHANNEL ... SSLPEER('SERIALNUMBER=4C:D0:49:D5:02:5F:38,CN="H1_C_FR1",O=IBM,C=GB')
        PeerNameCase{"SERIALNUMBER=4C:D0:49:D5:02:5F:38,CN=\"H1_C_FR1\",O=IBM,C=GB", MqH1Peer(),
                     true},
        PeerNameCase{"SERIALNUMBER=4c:d0:49:d5:02:5f:38,CN=h1_c_fr1", MqH1Peer(), true},
        PeerNameCase{"SERIALNUMBER=4C:D0:49:D5:02:5F:39,CN=\"H1_C_FR1\",O=IBM,C=GB", MqH1Peer(),
                     false},
        PeerNameCase{"SERIALNUMBER=4C:D0*", MqH1Peer(), true},
        // SSLPEER('CN="xyz",O=IBM,C=UK')
        PeerNameCase{"CN=\"xyz\",O=IBM,C=UK", XyzPeer(), true},
        PeerNameCase{"CN=\"xyz\",O=IBM,C=GB", XyzPeer(), false},
        PeerNameCase{"CN=xyz;O=IBM;C=UK", XyzPeer(), true},
        // Wildcards at the start, the end, or both.
        PeerNameCase{"CN=*, O=IBM, C=UK", XyzPeer(), true},
        PeerNameCase{"CN=x*", XyzPeer(), true},
        PeerNameCase{"CN=*z", XyzPeer(), true},
        PeerNameCase{"CN=*y*", XyzPeer(), true},
        PeerNameCase{"CN=*q*", XyzPeer(), false},
        // SSLPEER('CN=QMGR.*, OU=IBM, OU=WEBSPHERE'): repeated OUs in the certificate's order.
        PeerNameCase{"CN=QMGR.*, OU=IBM, OU=WEBSPHERE", QmPeer(), true},
        PeerNameCase{"OU=IBM, OU=WEBSPHERE", QmPeer(), true},
        PeerNameCase{"OU=WEBSPHERE, OU=IBM", QmPeer(), false},
        PeerNameCase{"OU=IBM", QmPeer(), true},
        PeerNameCase{"OU=WEBSPHERE", QmPeer(), false},
        // Attribute order across types is free; every rule must hold.
        PeerNameCase{"C=UK, O=IBM, CN=QMGR.1", QmPeer(), true},
        PeerNameCase{"C=UK, O=IBM, CN=QMGR.2", QmPeer(), false},
        PeerNameCase{"L=Hursley, CN=QMGR.1", QmPeer(), false},
        // Quoting and escaping keep separators inside a value.
        PeerNameCase{"O=\"IBM, Inc\"", {{"O", "IBM, Inc"}}, true},
        PeerNameCase{"O=IBM\\, Inc", {{"O", "IBM, Inc"}}, true},
        PeerNameCase{"O=IBM", {{"O", "IBM, Inc"}}, false},
        // The attribute names MQ lists, with their synonyms.
        PeerNameCase{"ST=Hants, S=Hants, SP=Hants", {{"ST", "Hants"}, {"ST", "Hants"},
                                                     {"ST", "Hants"}}, true},
        PeerNameCase{"MAIL=a@b.example, E=a@b.example",
                     {{"EMAILADDRESS", "a@b.example"}, {"EMAILADDRESS", "a@b.example"}}, true},
        PeerNameCase{"DC=ibm, DC=com", {{"DC", "ibm"}, {"DC", "com"}}, true},
        PeerNameCase{"DC=com, DC=ibm", {{"DC", "ibm"}, {"DC", "com"}}, false},
        PeerNameCase{"UID=u1, STREET=1 High St, PC=SO21 2JN, T=QM, DNQ=q1",
                     {{"UID", "u1"}, {"STREET", "1 High St"}, {"POSTALCODE", "SO21 2JN"},
                      {"TITLE", "QM"}, {"DNQUALIFIER", "q1"}},
                     true},
        PeerNameCase{"L=Hursley", {{"L", "Hursley"}}, true}));

// SERIALNUMBER in a subject pattern is the certificate's serial number, as in MQ.
TEST(PeerAttributesFromCertificateTest, SerialNumberComesFirstInColonHex) {
  std::unique_ptr<X509, void (*)(X509*)> cert(X509_new(), X509_free);
  ASSERT_NE(cert, nullptr);
  std::unique_ptr<BIGNUM, void (*)(BIGNUM*)> bn(nullptr, BN_free);
  BIGNUM* raw = nullptr;
  ASSERT_GT(BN_hex2bn(&raw, "4CD049D5025F38"), 0);
  bn.reset(raw);
  ASSERT_NE(BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get())), nullptr);
  X509_NAME* name = X509_get_subject_name(cert.get());
  AddEntry(name, "C", "GB");
  AddEntry(name, "O", "IBM");
  AddEntry(name, "CN", "H1_C_FR1");
  const std::vector<DnAttribute> peer = PeerAttributesFromCertificate(cert.get());
  EXPECT_THAT(peer, ElementsAre(IsDnAttribute("SERIALNUMBER", "4C:D0:49:D5:02:5F:38"),
                                IsDnAttribute("CN", "H1_C_FR1"), IsDnAttribute("O", "IBM"),
                                IsDnAttribute("C", "GB")));
  EXPECT_TRUE(
      PatternMatches("SERIALNUMBER=4C:D0:49:D5:02:5F:38,CN=\"H1_C_FR1\",O=IBM,C=GB", peer));
}

}  // namespace
}  // namespace tlsbroker
