#include "services/message_size.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"

namespace tlsbroker {
namespace {

constexpr int64_t kMaxLimit = std::numeric_limits<int32_t>::max();

int64_t NeededFor(const BackendOptions& backend) {
  if (backend.framing.kind == FramingOptions::Kind::kNone) return kMinGrpcReceiveBytes;
  // Unsigned frame sizes beyond what gRPC can take clamp to its maximum.
  const uint64_t frame = std::min<uint64_t>(backend.framing.max_frame_bytes, kMaxLimit);
  return std::min<int64_t>(static_cast<int64_t>(frame) + kRequestEnvelopeBytes, kMaxLimit);
}

}  // namespace

int GrpcReceiveLimit(const BrokerOptions& options) {
  int64_t limit = kMinGrpcReceiveBytes;
  for (const BackendOptions& backend : options.backends) limit = std::max(limit, NeededFor(backend));
  return static_cast<int>(limit);
}

std::string CheckFitsReceiveLimit(const BrokerOptions& next, int running_limit) {
  for (const BackendOptions& backend : next.backends) {
    if (NeededFor(backend) > running_limit) {
      return absl::StrCat("backends[", backend.name, "].framing.max_frame_bytes ",
                          backend.framing.max_frame_bytes,
                          " needs a gRPC receive limit of ", NeededFor(backend),
                          " bytes, above the ", running_limit,
                          " the broker started with; restart the broker to apply it");
    }
  }
  return "";
}

}  // namespace tlsbroker
