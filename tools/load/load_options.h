#ifndef TOOLS_LOAD_LOAD_OPTIONS_H_
#define TOOLS_LOAD_LOAD_OPTIONS_H_

// Command-line options of tlsbroker-load, parsed into a plain struct.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tlsbroker::load {

enum class LoadMode {
  kCall,   // BrokerService.Call: one framed request/response per RPC.
  kLease,  // BrokerService.Lease: --exchanges-per-lease framed round trips per stream.
  kBulk,   // BrokerService.Lease: --bulk-bytes pushed through a raw echo backend in 64 KiB messages.
};

struct LoadOptions {
  std::string target;   // host:port or unix:/path of the broker.
  std::string backend;  // Backend name from the broker's config.
  std::string client_id;  // Optional: pin every call to this client ID.
  LoadMode mode = LoadMode::kCall;

  // Caller credentials (mTLS) or plaintext (a broker with listen.plaintext: true).
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  std::string tls_server_name;  // Overrides the name checked against the broker's certificate.
  bool insecure_plaintext = false;

  int callers = 4;   // Concurrent callers (each has one operation in flight).
  int channels = 1;  // gRPC channels (TCP connections); callers are spread round robin.

  // Bounds: the run stops at whichever comes first. `count` counts operations: calls (call),
  // leases (lease) or bulk streams (bulk). Unset count and duration means count 1000 (call,
  // lease) or one stream per caller (bulk): a run is always bounded.
  int64_t count = -1;
  absl::Duration duration = absl::ZeroDuration();

  // Request payload size: fixed (size_min == size_max) or uniformly random per request.
  int64_t size_min = 1024;
  int64_t size_max = 1024;

  int exchanges_per_lease = 10;           // lease mode
  int64_t bulk_bytes = 16 * 1024 * 1024;  // bulk mode, per stream
  int64_t bulk_message_bytes = 64 * 1024;

  std::string response_prefix = "re:";    // what the framed backend prepends to each payload
  absl::Duration timeout = absl::Seconds(10);  // per RPC (per lease stream)
  std::string metrics_url;                // e.g. http://127.0.0.1:9464 (/metrics is appended)
  bool json = false;
  uint64_t seed = 1;
};

// The usage text printed by --help and after a usage error.
const char* LoadUsage();

// Parses argv[1..]. Returns InvalidArgument with a message for people on a usage error, and
// NotFound("help") for --help.
absl::StatusOr<LoadOptions> ParseLoadFlags(const std::vector<std::string>& args);

// "call", "lease" or "bulk".
const char* LoadModeName(LoadMode mode);

}  // namespace tlsbroker::load

#endif  // TOOLS_LOAD_LOAD_OPTIONS_H_
