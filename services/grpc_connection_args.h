#ifndef SERVICES_GRPC_CONNECTION_ARGS_H_
#define SERVICES_GRPC_CONNECTION_ARGS_H_

// The gRPC server's connection management (listen.keepalive_*, listen.max_connection_age*)
// as channel arguments: keepalive pings find dead clients and keep idle connections through
// NATs; ageing connections out makes long-lived client channels reconnect, so they spread
// over replicas added after they connected (gRPC balances per connection).

#include <string>
#include <utility>
#include <vector>

#include <grpcpp/server_builder.h>

#include "broker/config/options.h"

namespace tlsbroker {

// (argument name, value) pairs, in the order they are applied.
std::vector<std::pair<std::string, int>> GrpcConnectionArgs(const ListenOptions& listen);

void ApplyGrpcConnectionArgs(const ListenOptions& listen, grpc::ServerBuilder* builder);

}  // namespace tlsbroker

#endif  // SERVICES_GRPC_CONNECTION_ARGS_H_
