#include "services/grpc_log.h"

#include <grpc/support/log.h>

#include "broker/common/log.h"

namespace tlsbroker {
namespace {

LogLevel LevelOf(gpr_log_severity severity) {
  switch (severity) {
    case GPR_LOG_SEVERITY_DEBUG:
      return LogLevel::kDebug;
    case GPR_LOG_SEVERITY_INFO:
      return LogLevel::kInfo;
    case GPR_LOG_SEVERITY_ERROR:
      return LogLevel::kError;
  }
  return LogLevel::kError;
}

// Runs on whatever thread gRPC logs from, possibly holding gRPC locks: the broker's logger
// only formats and queues (or writes stderr), and never calls back into gRPC.
void ForwardGrpcLog(gpr_log_func_args* args) {
  const LogLevel level = LevelOf(args->severity);
  if (!LogEnabled(level)) return;
  LogEventWith(level, args->message != nullptr ? args->message : "",
               {LogValue::Str("logger", "grpc"),
                LogValue::Str("file", args->file != nullptr ? args->file : ""),
                LogValue::Int("line", args->line)});
}

}  // namespace

void RouteGrpcLogsToBrokerLog() { gpr_set_log_function(ForwardGrpcLog); }

}  // namespace tlsbroker
