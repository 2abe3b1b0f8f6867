#ifndef SERVICES_MESSAGE_SIZE_H_
#define SERVICES_MESSAGE_SIZE_H_

// One message-size rule for the gRPC listener. A Call carries one whole request frame, so gRPC's
// receive limit must let through the largest frame any backend accepts (framing.max_frame_bytes)
// plus the request's envelope; otherwise gRPC refuses a legal request with its own terse
// RESOURCE_EXHAUSTED before the broker's clearer check can name the backend's limit. gRPC fixes
// the limit when the server starts, so a reload that would need a larger one is refused.

#include <cstdint>
#include <string>

#include "broker/config/options.h"

namespace tlsbroker {

// gRPC's own default: the floor, so Lease data on unframed backends keeps today's room.
inline constexpr int64_t kMinGrpcReceiveBytes = 4 << 20;
// Room for everything in a CallRequest besides the frame (backend name, client ID, timeout,
// protobuf tags): far more than those fields can take.
inline constexpr int64_t kRequestEnvelopeBytes = 64 << 10;

// The receive limit for `options`: max(4 MiB, largest max_frame_bytes of a framed backend +
// 64 KiB), at most INT32_MAX (gRPC's limit is an int).
int GrpcReceiveLimit(const BrokerOptions& options);

// "" when `next` fits the limit the running server was started with; otherwise an error naming
// the backend whose frames would not fit.
std::string CheckFitsReceiveLimit(const BrokerOptions& next, int running_limit);

}  // namespace tlsbroker

#endif  // SERVICES_MESSAGE_SIZE_H_
