#ifndef TOOLS_TLSBROKERCTL_CTL_OUTPUT_H_
#define TOOLS_TLSBROKERCTL_CTL_OUTPUT_H_

// What tlsbrokerctl prints: aligned tables and one-line summaries for people, JSON (protobuf's
// JSON mapping, proto field names) for scripts. Pure functions, no I/O.

#include <string>
#include <vector>

#include <google/protobuf/message.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tlsbroker/v1/broker.pb.h"

namespace tlsbroker::ctl {

// Rows of cells, the first row the header, as left-aligned columns two spaces apart (the last
// column unpadded); empty cells print as "-". One line per row, each ending in '\n'.
std::string FormatTable(const std::vector<std::vector<std::string>>& rows);

// "backend=b client_id=X socket_id=3 reused=yes ..." for stderr.
std::string LeaseSummary(const v1::LeaseInfo& info);

std::string BackendsTable(const v1::ListBackendsResponse& response);

// Socket ages are relative to `now`.
std::string SocketsTable(const v1::ListSocketsResponse& response, absl::Time now);

// One line of JSON (no trailing newline): proto field names, default values included.
absl::StatusOr<std::string> MessageJson(const google::protobuf::Message& message);

// {"response_base64": "...", "lease": {...LeaseInfo...}}
absl::StatusOr<std::string> CallResponseJson(const v1::CallResponse& response);

}  // namespace tlsbroker::ctl

#endif  // TOOLS_TLSBROKERCTL_CTL_OUTPUT_H_
