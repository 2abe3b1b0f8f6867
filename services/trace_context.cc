#include "services/trace_context.h"

namespace tlsbroker {
namespace {

bool LowerHex(absl::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool AllZeros(absl::string_view s) { return s.find_first_not_of('0') == absl::string_view::npos; }

}  // namespace

bool IsValidTraceParent(absl::string_view value) {
  // version(2) '-' trace-id(32) '-' parent-id(16) '-' flags(2): 55 characters. Only version 00
  // is accepted: a later version may add fields this check does not know.
  if (value.size() != 55 || value[2] != '-' || value[35] != '-' || value[52] != '-') {
    return false;
  }
  const absl::string_view version = value.substr(0, 2);
  const absl::string_view trace_id = value.substr(3, 32);
  const absl::string_view parent_id = value.substr(36, 16);
  const absl::string_view flags = value.substr(53, 2);
  return version == "00" && LowerHex(trace_id) && LowerHex(parent_id) && LowerHex(flags) &&
         !AllZeros(trace_id) && !AllZeros(parent_id);
}

std::string TraceParent(const grpc::ServerContextBase& context) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find(kTraceParentMetadataKey);
  if (it == metadata.end()) return "";
  absl::string_view value(it->second.data(), it->second.size());
  return IsValidTraceParent(value) ? std::string(value) : "";
}

}  // namespace tlsbroker
