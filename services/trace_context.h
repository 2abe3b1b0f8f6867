#ifndef SERVICES_TRACE_CONTEXT_H_
#define SERVICES_TRACE_CONTEXT_H_

// The W3C Trace Context `traceparent` a caller sends as gRPC metadata, so the broker's audit
// line for its lease can be joined with the caller's trace.

#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/strings/string_view.h"

namespace tlsbroker {

inline constexpr char kTraceParentMetadataKey[] = "traceparent";

// True for `00-<32 hex>-<16 hex>-<2 hex>` (lower-case hex, as the W3C spec requires) whose
// trace ID and parent ID are not all zeros (the spec calls those invalid).
bool IsValidTraceParent(absl::string_view value);

// The caller's traceparent when it sent one in the valid format; "" otherwise. An invalid
// value is left out rather than logged: it is caller-controlled text.
std::string TraceParent(const grpc::ServerContextBase& context);

}  // namespace tlsbroker

#endif  // SERVICES_TRACE_CONTEXT_H_
