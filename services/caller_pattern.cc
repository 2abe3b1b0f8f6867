#include "services/caller_pattern.h"

#include "absl/strings/match.h"
#include "absl/strings/strip.h"

namespace tlsbroker {

bool CallerPatternMatches(absl::string_view pattern, absl::string_view identity) {
  if (absl::ConsumeSuffix(&pattern, "*")) return absl::StartsWith(identity, pattern);
  return pattern == identity;
}

bool CallerAllowed(const std::vector<std::string>& patterns, absl::string_view identity) {
  if (identity.empty()) return false;
  for (const std::string& pattern : patterns) {
    if (CallerPatternMatches(pattern, identity)) return true;
  }
  return false;
}

}  // namespace tlsbroker
