#include "services/grpc_connection_args.h"

#include <limits>

#include <grpc/grpc.h>

namespace tlsbroker {
namespace {

// The loader keeps these below INT_MAX milliseconds; zero means "off" for the two that allow
// it, which gRPC spells INT_MAX.
int Millis(absl::Duration d) {
  if (d <= absl::ZeroDuration()) return std::numeric_limits<int>::max();
  return static_cast<int>(absl::ToInt64Milliseconds(d));
}

}  // namespace

std::vector<std::pair<std::string, int>> GrpcConnectionArgs(const ListenOptions& listen) {
  return {
      {GRPC_ARG_KEEPALIVE_TIME_MS, Millis(listen.keepalive_time)},
      {GRPC_ARG_KEEPALIVE_TIMEOUT_MS, Millis(listen.keepalive_timeout)},
      // Ping idle connections too (a Lease stream between frames, a channel between calls):
      // those are the ones a NAT or firewall drops silently.
      {GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1},
      // By default the server stops pinging after 2 pings with no data in between, which
      // would end keepalive on exactly those idle connections.
      {GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0},
      {GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
       Millis(listen.keepalive_min_client_interval)},
      {GRPC_ARG_MAX_CONNECTION_AGE_MS, Millis(listen.max_connection_age)},
      {GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, Millis(listen.max_connection_age_grace)},
  };
}

void ApplyGrpcConnectionArgs(const ListenOptions& listen, grpc::ServerBuilder* builder) {
  for (const auto& [name, value] : GrpcConnectionArgs(listen)) {
    builder->AddChannelArgument(name, value);
  }
}

}  // namespace tlsbroker
