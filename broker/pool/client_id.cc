#include "broker/pool/client_id.h"

#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tlsbroker {

std::string FormatClientId(const ClientIdOptions& options, int slot) {
  int digits = options.width - static_cast<int>(options.prefix.size());
  if (digits < 1) digits = 1;
  return absl::StrFormat("%s%0*d", options.prefix, digits, slot);
}

std::optional<int> SlotForClientId(const ClientIdOptions& options, int max_sockets,
                                   absl::string_view client_id) {
  if (!absl::StartsWith(client_id, options.prefix)) return std::nullopt;
  if (client_id.size() != static_cast<size_t>(options.width) &&
      options.width > static_cast<int>(options.prefix.size())) {
    return std::nullopt;
  }
  absl::string_view digits = client_id.substr(options.prefix.size());
  if (digits.empty()) return std::nullopt;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  int slot = 0;
  if (!absl::SimpleAtoi(digits, &slot) || slot < 1 || slot > max_sockets) return std::nullopt;
  if (FormatClientId(options, slot) != client_id) return std::nullopt;
  return slot;
}

absl::Status CheckImsClientId(absl::string_view id) {
  if (id.empty() || id.size() > 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("client ID \"", id, "\" must be 1 to 8 characters (IMS Connect rules)"));
  }
  for (char c : id) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '@' || c == '#' || c == '$';
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat(
          "client ID \"", id, "\" may contain only A-Z 0-9 @ # $ (IMS Connect rules)"));
    }
  }
  if (absl::StartsWith(id, "HWS")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "client ID \"", id, "\" must not start with HWS (reserved for IDs IMS Connect generates)"));
  }
  return absl::OkStatus();
}

absl::Status ValidateClientIdOptions(const ClientIdOptions& options, int max_sockets) {
  int digits = options.width - static_cast<int>(options.prefix.size());
  if (digits < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "client_id.width ", options.width, " leaves no digits after prefix \"", options.prefix,
        "\""));
  }
  std::string largest = absl::StrCat(max_sockets);
  if (static_cast<int>(largest.size()) > digits) {
    return absl::InvalidArgumentError(absl::StrCat(
        "client_id: ", digits, " digit(s) after prefix \"", options.prefix,
        "\" cannot number ", max_sockets, " sockets"));
  }
  if (options.ims_rules) {
    if (options.width > 8) {
      return absl::InvalidArgumentError(absl::StrCat(
          "client_id.width ", options.width, " exceeds 8 (IMS Connect rules)"));
    }
    absl::Status first = CheckImsClientId(FormatClientId(options, 1));
    if (!first.ok()) return first;
  }
  return absl::OkStatus();
}

}  // namespace tlsbroker
