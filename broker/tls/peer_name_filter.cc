#include "broker/tls/peer_name_filter.h"

#include <openssl/asn1.h>
#include <openssl/crypto.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include <array>
#include <cstddef>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"

namespace tlsbroker {
namespace {

// Pattern attribute types (upper-cased) and the canonical type they stand for. The canonical
// names are exactly what DnAttributesFromX509Name produces (OpenSSL's short name, upper-cased),
// so a rule and a certificate attribute compare by plain string equality. The synonyms are
// MQ's SSLPEER ones.
struct TypeAlias {
  absl::string_view alias;
  absl::string_view canonical;
};
constexpr std::array<TypeAlias, 28> kTypeAliases = {{
    {"CN", "CN"},
    {"T", "TITLE"},
    {"TITLE", "TITLE"},
    {"OU", "OU"},
    {"O", "O"},
    {"L", "L"},
    {"ST", "ST"},
    {"SP", "ST"},
    {"S", "ST"},
    {"C", "C"},
    {"DC", "DC"},
    {"STREET", "STREET"},
    {"PC", "POSTALCODE"},
    {"POSTALCODE", "POSTALCODE"},
    {"SERIALNUMBER", "SERIALNUMBER"},
    {"MAIL", "EMAILADDRESS"},
    {"E", "EMAILADDRESS"},
    {"EMAIL", "EMAILADDRESS"},
    {"EMAILADDRESS", "EMAILADDRESS"},
    {"UID", "UID"},
    {"USERID", "UID"},
    {"DNQ", "DNQUALIFIER"},
    {"DNQUALIFIER", "DNQUALIFIER"},
    {"UNSTRUCTUREDNAME", "UNSTRUCTUREDNAME"},
    {"UNSTRUCTUREDADDRESS", "UNSTRUCTUREDADDRESS"},
    {"GN", "GN"},
    {"GIVENNAME", "GN"},
    {"SURNAME", "SN"},
}};

constexpr absl::string_view kKnownTypesForErrors =
    "CN, T, OU, O, L, ST (SP, S), C, DC, STREET, PC, SERIALNUMBER, MAIL (E), UID (USERID), DNQ, "
    "GN, SURNAME, UNSTRUCTUREDNAME, UNSTRUCTUREDADDRESS";

absl::string_view CanonicalType(absl::string_view upper_type) {
  for (const TypeAlias& a : kTypeAliases) {
    if (a.alias == upper_type) return a.canonical;
  }
  return {};
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// `value_upper` is already upper-cased; `core_upper` is the pattern without its '*' markers.
bool MatchUpper(absl::string_view core_upper, bool prefix_wildcard, bool suffix_wildcard,
                absl::string_view value_upper) {
  if (prefix_wildcard && suffix_wildcard) return absl::StrContains(value_upper, core_upper);
  if (prefix_wildcard) return absl::EndsWith(value_upper, core_upper);
  if (suffix_wildcard) return absl::StartsWith(value_upper, core_upper);
  return value_upper == core_upper;
}

// Escapes `value` so that it reads back literally in a pattern (and reads unambiguously in a
// log line): separators, '=', quotes, backslashes, '*' and edge spaces get a backslash.
std::string EscapePatternValue(absl::string_view value) {
  std::string out;
  for (size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    const bool edge_space = IsSpace(c) && (i == 0 || i + 1 == value.size());
    if (c == ',' || c == ';' || c == '=' || c == '"' || c == '\\' || c == '*' || edge_space) {
      out.push_back('\\');
    }
    out.push_back(c);
  }
  return out;
}

// Escapes a DN value for FormatDn, RFC 4514 style: , + " \ < > ; always, '#' and ' ' at the
// start, ' ' at the end.
std::string EscapeDnValue(absl::string_view value) {
  std::string out;
  for (size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    const bool special = c == ',' || c == '+' || c == '"' || c == '\\' || c == '<' || c == '>' ||
                         c == ';' || (i == 0 && (c == '#' || c == ' ')) ||
                         (i + 1 == value.size() && c == ' ');
    if (special) out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

// One character of a parsed value: escaped characters and characters inside quotes are never
// wildcards, except that an unescaped '*' first or last inside quotes still is one.
struct ValueChar {
  char c;
  bool literal;   // Escaped with '\', so never a wildcard.
  size_t offset;  // Position in the pattern, for errors.
};

// Recursive-descent parser over the whole pattern; keeps the offset for error messages.
// Not thread-safe; lives for one Parse call.
class PatternParser {
 public:
  explicit PatternParser(absl::string_view input) : in_(input) {}

  struct ParsedRule {
    std::string type;
    std::string value;  // Original case, without the '*' markers.
    bool prefix_wildcard = false;
    bool suffix_wildcard = false;
  };

  absl::Status Run(std::vector<ParsedRule>& rules) {
    SkipSpace();
    if (AtEnd()) {
      return Error(pos_, "the pattern is empty; expected an attribute such as CN=name");
    }
    while (true) {
      ParsedRule rule;
      if (absl::Status s = ParseType(rule.type); !s.ok()) return s;
      SkipSpace();
      if (AtEnd() || Peek() != '=') {
        return Error(pos_, absl::StrCat("expected '=' after attribute type \"", rule.type, "\"",
                                        AtEnd() ? " but the pattern ended" : ""));
      }
      ++pos_;
      SkipSpace();
      if (absl::Status s = ParseValue(rule); !s.ok()) return s;
      rules.push_back(std::move(rule));
      SkipSpace();
      if (AtEnd()) return absl::OkStatus();
      if (Peek() != ',' && Peek() != ';') {
        return Error(pos_, absl::StrCat("expected ',' or ';' between attributes, found '",
                                        std::string(1, Peek()), "'"));
      }
      ++pos_;
      SkipSpace();
    }
  }

 private:
  bool AtEnd() const { return pos_ >= in_.size(); }
  char Peek() const { return in_[pos_]; }
  void SkipSpace() {
    while (!AtEnd() && IsSpace(Peek())) ++pos_;
  }

  absl::Status Error(size_t offset, absl::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid peer-name pattern \"", in_, "\": at offset ", offset, ": ", what));
  }

  absl::Status ParseType(std::string& canonical) {
    const size_t start = pos_;
    while (!AtEnd() && absl::ascii_isalnum(static_cast<unsigned char>(Peek()))) ++pos_;
    if (pos_ == start) {
      if (AtEnd()) {
        return Error(pos_, "expected an attribute type (such as CN) but the pattern ended");
      }
      return Error(pos_, absl::StrCat("expected an attribute type (such as CN), found '",
                                      std::string(1, Peek()), "'"));
    }
    const std::string upper = absl::AsciiStrToUpper(in_.substr(start, pos_ - start));
    const absl::string_view found = CanonicalType(upper);
    if (found.empty()) {
      return Error(start, absl::StrCat("unknown attribute type \"", in_.substr(start, pos_ - start),
                                       "\"; expected one of ", kKnownTypesForErrors));
    }
    canonical = std::string(found);
    return absl::OkStatus();
  }

  absl::Status ParseValue(ParsedRule& rule) {
    const size_t value_start = pos_;
    std::vector<ValueChar> chars;
    bool quoted = false;
    if (!AtEnd() && Peek() == '"') {
      quoted = true;
      if (absl::Status s = ParseQuoted(chars); !s.ok()) return s;
    } else {
      if (absl::Status s = ParseUnquoted(chars); !s.ok()) return s;
    }
    if (chars.empty()) {
      return Error(value_start, absl::StrCat("expected a value for attribute \"", rule.type,
                                             "\" (an empty value never matches)"));
    }

    size_t begin = 0;
    size_t end = chars.size();
    if (!chars.front().literal && chars.front().c == '*') {
      rule.prefix_wildcard = true;
      ++begin;
    }
    if (end > begin && !chars.back().literal && chars.back().c == '*') {
      rule.suffix_wildcard = true;
      --end;
    }
    for (size_t i = begin; i < end; ++i) {
      const ValueChar& vc = chars[i];
      if (!quoted && !vc.literal && vc.c == '*') {
        return Error(vc.offset,
                     "'*' is allowed only at the start or end of a value; write \\* or quote the "
                     "value for a literal '*'");
      }
      rule.value.push_back(vc.c);
    }
    return absl::OkStatus();
  }

  // Reads up to an unescaped ',' or ';' (or the end), dropping unescaped trailing whitespace.
  absl::Status ParseUnquoted(std::vector<ValueChar>& chars) {
    size_t kept = 0;  // chars.size() without unescaped trailing whitespace.
    while (!AtEnd()) {
      const char c = Peek();
      if (c == ',' || c == ';') break;
      if (c == '\\') {
        if (pos_ + 1 >= in_.size()) {
          return Error(pos_, "'\\' at the end of the pattern; expected a character to escape");
        }
        chars.push_back({in_[pos_ + 1], true, pos_});
        pos_ += 2;
        kept = chars.size();
        continue;
      }
      if (c == '=' || c == '"') {
        return Error(pos_, absl::StrCat("unexpected '", std::string(1, c),
                                        "' in a value; escape it with '\\' or quote the value"));
      }
      chars.push_back({c, false, pos_});
      ++pos_;
      if (!IsSpace(c)) kept = chars.size();
    }
    chars.resize(kept);
    return absl::OkStatus();
  }

  // Reads "..." where \" and \\ (and '\' before any character) escape; ',', ';', '=' are plain.
  absl::Status ParseQuoted(std::vector<ValueChar>& chars) {
    const size_t open = pos_;
    ++pos_;  // Opening quote.
    while (true) {
      if (AtEnd()) {
        return Error(open, "unterminated quoted value; expected a closing '\"'");
      }
      const char c = Peek();
      if (c == '"') {
        ++pos_;
        return absl::OkStatus();
      }
      if (c == '\\') {
        if (pos_ + 1 >= in_.size()) {
          return Error(open, "unterminated quoted value; expected a closing '\"'");
        }
        chars.push_back({in_[pos_ + 1], true, pos_});
        pos_ += 2;
        continue;
      }
      chars.push_back({c, false, pos_});
      ++pos_;
    }
  }

  absl::string_view in_;
  size_t pos_ = 0;
};

}  // namespace

absl::StatusOr<PeerNameFilter> PeerNameFilter::Parse(absl::string_view pattern) {
  std::vector<PatternParser::ParsedRule> parsed;
  PatternParser parser(pattern);
  if (absl::Status s = parser.Run(parsed); !s.ok()) return s;

  PeerNameFilter filter;
  std::vector<std::string> canonical_parts;
  for (PatternParser::ParsedRule& p : parsed) {
    canonical_parts.push_back(absl::StrCat(p.type, "=", p.prefix_wildcard ? "*" : "",
                                           EscapePatternValue(p.value),
                                           p.suffix_wildcard ? "*" : ""));
    Rule rule;
    rule.type = std::move(p.type);
    rule.value = absl::AsciiStrToUpper(p.value);
    rule.prefix_wildcard = p.prefix_wildcard;
    rule.suffix_wildcard = p.suffix_wildcard;
    filter.rules_.push_back(std::move(rule));
  }
  filter.pattern_ = absl::StrJoin(canonical_parts, ", ");
  return filter;
}

bool PeerNameFilter::Matches(const std::vector<DnAttribute>& dn) const {
  for (size_t r = 0; r < rules_.size(); ++r) {
    const Rule& rule = rules_[r];
    // This is the k-th rule of its type; it is compared with the k-th DN attribute of that type.
    size_t k = 0;
    for (size_t earlier = 0; earlier < r; ++earlier) {
      if (rules_[earlier].type == rule.type) ++k;
    }
    const DnAttribute* attribute = nullptr;
    for (const DnAttribute& a : dn) {
      if (!absl::EqualsIgnoreCase(a.type, rule.type)) continue;
      if (k == 0) {
        attribute = &a;
        break;
      }
      --k;
    }
    if (attribute == nullptr || !RuleMatches(rule, attribute->value)) return false;
  }
  return true;
}

bool PeerNameFilter::RuleMatches(const Rule& rule, absl::string_view value) {
  return MatchUpper(rule.value, rule.prefix_wildcard, rule.suffix_wildcard,
                    absl::AsciiStrToUpper(value));
}

std::vector<DnAttribute> DnAttributesFromX509Name(const X509_NAME* name) {
  std::vector<DnAttribute> out;
  if (name == nullptr) return out;
  const int count = X509_NAME_entry_count(name);
  // OpenSSL stores the most significant RDN (C) first; RFC 2253 prints the most specific first.
  for (int i = count - 1; i >= 0; --i) {
    const X509_NAME_ENTRY* entry = X509_NAME_get_entry(name, i);
    if (entry == nullptr) continue;
    const ASN1_OBJECT* object = X509_NAME_ENTRY_get_object(entry);
    const ASN1_STRING* data = X509_NAME_ENTRY_get_data(entry);

    DnAttribute attribute;
    const int nid = OBJ_obj2nid(object);
    const char* short_name = nid == NID_undef ? nullptr : OBJ_nid2sn(nid);
    if (short_name != nullptr) {
      attribute.type = absl::AsciiStrToUpper(short_name);
    } else {
      // An attribute OpenSSL has no name for: its dotted OID, which no pattern type equals.
      char oid[128];
      const int len = OBJ_obj2txt(oid, sizeof(oid), object, /*no_name=*/1);
      attribute.type = len > 0 ? std::string(oid) : std::string("UNKNOWN");
    }

    unsigned char* utf8 = nullptr;
    const int len = ASN1_STRING_to_UTF8(&utf8, data);
    if (len >= 0) {
      // The buffer belongs to OpenSSL's allocator.
      std::unique_ptr<unsigned char, void (*)(unsigned char*)> owned(
          utf8, [](unsigned char* p) { OPENSSL_free(p); });
      attribute.value.assign(reinterpret_cast<const char*>(utf8), static_cast<size_t>(len));
    } else {
      // Not convertible to UTF-8 (malformed string): RFC 2253's "#hex" form of the raw bytes,
      // which can never equal an ordinary pattern value by accident.
      attribute.value = "#";
      const unsigned char* bytes = ASN1_STRING_get0_data(data);
      const int n = ASN1_STRING_length(data);
      static constexpr char kHex[] = "0123456789ABCDEF";
      for (int b = 0; b < n; ++b) {
        attribute.value.push_back(kHex[bytes[b] >> 4]);
        attribute.value.push_back(kHex[bytes[b] & 0xF]);
      }
    }
    out.push_back(std::move(attribute));
  }
  return out;
}

std::string SerialNumberText(const ASN1_INTEGER* serial) {
  std::string out;
  if (serial == nullptr) return out;
  // The magnitude's bytes, big-endian, as MQ and Windows show them: "4C:D0:49:D5:02:5F:38".
  const unsigned char* bytes = ASN1_STRING_get0_data(serial);
  const int n = ASN1_STRING_length(serial);
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (int b = 0; b < n; ++b) {
    if (b > 0) out.push_back(':');
    out.push_back(kHex[bytes[b] >> 4]);
    out.push_back(kHex[bytes[b] & 0xF]);
  }
  return out;
}

std::vector<DnAttribute> PeerAttributesFromCertificate(X509* cert) {
  std::vector<DnAttribute> out;
  if (cert == nullptr) return out;
  out.push_back({"SERIALNUMBER", SerialNumberText(X509_get0_serialNumber(cert))});
  std::vector<DnAttribute> dn = DnAttributesFromX509Name(X509_get_subject_name(cert));
  out.insert(out.end(), std::make_move_iterator(dn.begin()), std::make_move_iterator(dn.end()));
  return out;
}

std::string FormatDn(const std::vector<DnAttribute>& dn) {
  return absl::StrJoin(dn, ",", [](std::string* out, const DnAttribute& a) {
    absl::StrAppend(out, a.type, "=", EscapeDnValue(a.value));
  });
}

bool WildcardMatch(absl::string_view pattern, absl::string_view value) {
  bool prefix_wildcard = false;
  bool suffix_wildcard = false;
  if (absl::ConsumePrefix(&pattern, "*")) prefix_wildcard = true;
  if (absl::ConsumeSuffix(&pattern, "*")) suffix_wildcard = true;
  return MatchUpper(absl::AsciiStrToUpper(pattern), prefix_wildcard, suffix_wildcard,
                    absl::AsciiStrToUpper(value));
}

bool CaseSensitiveWildcardMatch(absl::string_view pattern, absl::string_view value) {
  bool prefix_wildcard = false;
  bool suffix_wildcard = false;
  if (absl::ConsumePrefix(&pattern, "*")) prefix_wildcard = true;
  if (absl::ConsumeSuffix(&pattern, "*")) suffix_wildcard = true;
  // MatchUpper compares as given; it is only ever fed upper-cased text by the other callers.
  return MatchUpper(pattern, prefix_wildcard, suffix_wildcard, value);
}

}  // namespace tlsbroker
