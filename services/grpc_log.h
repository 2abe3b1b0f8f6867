#ifndef SERVICES_GRPC_LOG_H_
#define SERVICES_GRPC_LOG_H_

// gRPC's own log lines (gpr_log) through the broker's logger, so that with --log-format json
// the whole stderr stream stays one JSON object per line, and the broker's --log-level applies.

namespace tlsbroker {

// Installs the forwarding (gpr_set_log_function). Each gRPC line becomes one broker line: the
// message as `msg`, `logger` "grpc", gRPC's source `file` and `line` (a number in JSON).
// Severity: gRPC DEBUG, INFO and ERROR become debug, info and error. gRPC still filters first
// by its own GRPC_VERBOSITY (default ERROR): set GRPC_VERBOSITY=INFO or DEBUG to see more.
// Call before anything uses gRPC.
void RouteGrpcLogsToBrokerLog();

}  // namespace tlsbroker

#endif  // SERVICES_GRPC_LOG_H_
