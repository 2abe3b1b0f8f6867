#ifndef TOOLS_TLSBROKERCTL_CTL_COMMANDS_H_
#define TOOLS_TLSBROKERCTL_CTL_COMMANDS_H_

// The tlsbrokerctl commands over the broker's gRPC API. Each returns the process exit code
// (ctl::ExitCode) and writes its own output: results on stdout, diagnostics on stderr.

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tools/tlsbrokerctl/ctl_options.h"

namespace tlsbroker::ctl {

// A channel to the broker with the TLS (or, on loopback, plaintext) settings of `options`.
// InvalidArgument when a credentials file cannot be read.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const ConnectionOptions& options);

// The exit code for a failed RPC's status code.
int ExitCodeFor(grpc::StatusCode code);

// "<what> failed: <CODE>: <message>" plus, when the broker sent one, "reason: <reason>"
// (from the tlsbroker-reason trailer, else the ErrorInfo in the status details).
std::string DescribeRpcError(absl::string_view what, const grpc::Status& status,
                             const grpc::ClientContext& context);

// Runs the command in `options` against the broker (options.command != kHelp).
int RunCtlCommand(const CtlOptions& options);

}  // namespace tlsbroker::ctl

#endif  // TOOLS_TLSBROKERCTL_CTL_COMMANDS_H_
