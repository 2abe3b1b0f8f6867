// Fuzzes the SSLPEER-style pattern parser and matcher: any pattern either parses or is refused
// with kInvalidArgument; a parsed pattern's canonical form parses back to a filter that
// prints the same and decides every DN the same way; matching never crashes, whether the DN
// comes straight from the input or through OpenSSL's X509_NAME.

#include <string>
#include <vector>

#include <openssl/x509.h>

#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "broker/tls/peer_name_filter.h"
#include "fuzz/targets/fuzz_targets.h"

namespace tlsbroker::fuzz {
namespace {

// Lines "TYPE=VALUE" after the pattern line; a line without '=' is a value of type CN.
std::vector<DnAttribute> DecodeDn(absl::string_view text) {
  std::vector<DnAttribute> dn;
  if (text.empty()) return dn;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    const size_t eq = line.find('=');
    if (eq == absl::string_view::npos) {
      dn.push_back({"CN", std::string(line)});
    } else {
      dn.push_back({std::string(line.substr(0, eq)), std::string(line.substr(eq + 1))});
    }
  }
  return dn;
}

// The same attributes through OpenSSL (types it does not know are left out).
std::vector<DnAttribute> ThroughX509Name(const std::vector<DnAttribute>& dn) {
  X509_NAME* name = X509_NAME_new();
  TLSB_FUZZ_CHECK(name != nullptr);
  for (const DnAttribute& attribute : dn) {
    if (attribute.type.find('\0') != std::string::npos) continue;
    X509_NAME_add_entry_by_txt(name, attribute.type.c_str(), MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(attribute.value.data()),
                               static_cast<int>(attribute.value.size()), -1, 0);
  }
  std::vector<DnAttribute> read = DnAttributesFromX509Name(name);
  TLSB_FUZZ_CHECK(read.size() == static_cast<size_t>(X509_NAME_entry_count(name)));
  X509_NAME_free(name);
  return read;
}

}  // namespace

int FuzzPeerName(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t newline = input.find('\n');
  const absl::string_view pattern = input.substr(0, newline);
  const absl::string_view rest =
      newline == absl::string_view::npos ? absl::string_view() : input.substr(newline + 1);
  const std::vector<DnAttribute> dn = DecodeDn(rest);
  const std::vector<DnAttribute> x509_dn = ThroughX509Name(dn);
  (void)FormatDn(dn);
  (void)FormatDn(x509_dn);

  // The allow-list matcher on the same strings. A pattern always matches itself.
  for (const DnAttribute& attribute : dn) {
    (void)WildcardMatch(pattern, attribute.value);
  }
  TLSB_FUZZ_CHECK(WildcardMatch(pattern, pattern));

  auto filter = PeerNameFilter::Parse(pattern);
  if (!filter.ok()) {
    TLSB_FUZZ_CHECK(filter.status().code() == absl::StatusCode::kInvalidArgument);
    TLSB_FUZZ_CHECK(!filter.status().message().empty());
    return 0;
  }
  const bool matches = filter->Matches(dn);
  const bool x509_matches = filter->Matches(x509_dn);

  // The canonical form is a fixed point and means the same.
  auto again = PeerNameFilter::Parse(filter->pattern());
  TLSB_FUZZ_CHECK(again.ok());
  TLSB_FUZZ_CHECK(again->pattern() == filter->pattern());
  TLSB_FUZZ_CHECK(again->Matches(dn) == matches);
  TLSB_FUZZ_CHECK(again->Matches(x509_dn) == x509_matches);
  // A pattern constrains: nothing matches an empty DN.
  TLSB_FUZZ_CHECK(!filter->Matches({}));
  return 0;
}

}  // namespace tlsbroker::fuzz
