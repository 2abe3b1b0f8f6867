#ifndef BROKER_TLS_PEER_NAME_FILTER_H_
#define BROKER_TLS_PEER_NAME_FILTER_H_

// MQ SSLPEER-style distinguished-name patterns, e.g.
//   CN=QM2*, OU=IBM, OU=WEBSPHERE, O=Example, C=GB
// Attributes are separated by ',' or ';'; types and values are case-insensitive; values may be
// double-quoted; '*' may stand at the start and/or end of a value. Attributes may be given in
// any order, except that repeated attributes of one type (several OU) match the certificate's
// attributes of that type in order. Every attribute of the pattern must match; attributes of the
// DN that the pattern does not name are ignored.
//
// Syntax details (MQ SSLPEER where MQ defines them, otherwise our choice):
// - Types: CN, T/TITLE, OU, O, L, ST/SP/S, C, DC, STREET, PC/POSTALCODE, SERIALNUMBER,
//   MAIL/E/EMAIL/EMAILADDRESS, UID/USERID, DNQ/DNQUALIFIER, GN/GIVENNAME, SURNAME,
//   UNSTRUCTUREDNAME, UNSTRUCTUREDADDRESS. Each maps to OpenSSL's short name upper-cased ("ST",
//   "TITLE", "EMAILADDRESS", ...), which is what DnAttributesFromX509Name produces. An unknown
//   type is a parse error ("SN" is refused on purpose: tools disagree whether it means
//   serialNumber or surname).
// - Whitespace around separators, '=' and values is ignored; an unquoted value keeps its inner
//   spaces. A backslash makes the next character literal ("\,", "\*", "\ ").
// - A quoted value ("...") may contain ',', ';', '=' and, with a backslash, '"' and '\'.
// - '*' is a wildcard only when unescaped and first or last in the value (inside the quotes, for a
//   quoted value); "*" alone matches any value of a present attribute. An unescaped '*' in the
//   middle of an unquoted value is a parse error (it would suggest a glob we do not support); in
//   the middle of a quoted value it is literal.
// - Empty values, empty patterns and dangling separators are parse errors (kInvalidArgument,
//   naming the 0-based character offset and what was expected). "No filter" is the caller's case.
// - Case-insensitivity is ASCII only; other UTF-8 characters compare byte for byte.

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

typedef struct X509_name_st X509_NAME;
typedef struct x509_st X509;
typedef struct asn1_string_st ASN1_INTEGER;

namespace tlsbroker {

// One attribute of a DN: canonical upper-case short type ("CN", "OU", ...) and its value.
struct DnAttribute {
  std::string type;
  std::string value;
};

// Thread-safe (immutable after Parse).
class PeerNameFilter final {
 public:
  // Parses `pattern`; the error names what is wrong and where (character offset).
  static absl::StatusOr<PeerNameFilter> Parse(absl::string_view pattern);

  // True when every attribute of the pattern matches `dn` (attributes in RFC 2253 order,
  // most specific first, as X509_NAME prints with XN_FLAG_RFC2253).
  bool Matches(const std::vector<DnAttribute>& dn) const;

  // The pattern in canonical form (canonical types, ", " separators, values escaped with '\' and
  // in their original case); it parses back to an equivalent filter. For logs.
  const std::string& pattern() const { return pattern_; }

 private:
  struct Rule {
    std::string type;              // Canonical upper-case short type.
    std::string value;             // Upper-cased, without the '*' markers.
    bool prefix_wildcard = false;  // Pattern started with '*'.
    bool suffix_wildcard = false;  // Pattern ended with '*'.
  };
  PeerNameFilter() = default;
  static bool RuleMatches(const Rule& rule, absl::string_view value);

  std::string pattern_;
  std::vector<Rule> rules_;
};

// Reads an OpenSSL X509_NAME into DnAttributes in RFC 2253 order (most specific first).
std::vector<DnAttribute> DnAttributesFromX509Name(const X509_NAME* name);

// What a subject pattern (tls.peer_name) is matched against, as MQ's SSLPEER does: the
// certificate's serial number as SERIALNUMBER (colon-separated upper-case hex bytes,
// "4C:D0:49:D5:02:5F:38"), followed by the subject DN's attributes in RFC 2253 order (a DN
// serialNumber attribute is therefore the second SERIALNUMBER).
std::vector<DnAttribute> PeerAttributesFromCertificate(X509* cert);

// A certificate serial number as colon-separated upper-case hex bytes ("01:A2").
std::string SerialNumberText(const ASN1_INTEGER* serial);

// Formats attributes as "CN=a,OU=b,O=c" (for logs and errors).
std::string FormatDn(const std::vector<DnAttribute>& dn);

// Case-insensitive match of `value` against `pattern`, where `pattern` may begin and/or end with
// '*' (any characters). Used for the DNS and IP SAN rules (DNS names ignore case).
bool WildcardMatch(absl::string_view pattern, absl::string_view value);

// The same, byte for byte: for URI SANs, whose paths (SPIFFE IDs among them) are case-sensitive.
bool CaseSensitiveWildcardMatch(absl::string_view pattern, absl::string_view value);

}  // namespace tlsbroker

#endif  // BROKER_TLS_PEER_NAME_FILTER_H_
