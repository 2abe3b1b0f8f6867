#ifndef TOOLS_TLSBROKERCTL_CTL_OPTIONS_H_
#define TOOLS_TLSBROKERCTL_CTL_OPTIONS_H_

// Command-line parsing for tlsbrokerctl: the commands, the connection and output options, the
// exit codes scripts rely on, and the usage text that documents them.

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace tlsbroker::ctl {

// Process exit codes; documented in UsageText(), so scripts can branch on them.
enum ExitCode : int {
  kExitOk = 0,
  kExitLocalError = 1,   // local I/O failure (writing stdout failed, ...)
  kExitUsage = 2,        // bad flags or arguments, unreadable input file
  kExitUnavailable = 3,  // broker unreachable, or UNAVAILABLE from it
  kExitDenied = 4,       // PERMISSION_DENIED or UNAUTHENTICATED
  kExitNotFound = 5,     // NOT_FOUND
  kExitDeadline = 6,     // DEADLINE_EXCEEDED
  kExitRpcError = 7,     // any other RPC error
};

enum class Command {
  kHelp,
  kVersion,
  kCall,
  kLease,
  kBackends,
  kSockets,
  kDrain,
  kResume,
  kReload
};

// Where `call` takes its request bytes from.
enum class PayloadSource { kNone, kData, kFile, kFrameText };

struct ConnectionOptions {
  std::string target;       // HOST:PORT, unix:/path, or any gRPC target URI
  std::string ca_file;      // empty = the system's roots
  std::string cert_file;    // client certificate chain for mTLS (with key_file)
  std::string key_file;
  std::string server_name;  // overrides the name checked against the broker's certificate
  bool insecure_plaintext = false;
};

struct CtlOptions {
  Command command = Command::kHelp;
  ConnectionOptions connection;
  // RPC deadline; for `lease` only the wait for the lease (the session has no deadline).
  absl::Duration timeout = absl::Seconds(10);
  bool timeout_set = false;
  bool json = false;
  bool quiet = false;
  std::string backend;
  // `drain` / `resume` on the whole broker (--all) instead of one backend.
  bool all = false;
  std::string client_id;
  PayloadSource payload_source = PayloadSource::kNone;
  std::string payload_arg;  // the TEXT or file name
  // `lease`: after stdin EOF, how long the backend must stay quiet before the lease ends.
  absl::Duration linger = absl::Seconds(1);
};

// Looks up an environment variable (null when unset); injectable for tests.
using GetEnvFn = std::function<const char*(const char*)>;

inline constexpr char kDefaultTarget[] = "127.0.0.1:7443";

// Parses argv[1..] (without the program name). Options may come before or after the command.
// InvalidArgument (a usage error) with a message for people on any mistake.
absl::StatusOr<CtlOptions> ParseArgs(const std::vector<std::string>& args,
                                     const GetEnvFn& getenv);

// The --help text: commands, options, exit codes.
std::string UsageText();

// "10s", "500ms", "1m30s", or a bare number of seconds ("2.5").
absl::StatusOr<absl::Duration> ParseDurationFlag(absl::string_view text);

// OK if `target` is a unix socket or a loopback address (the only places plaintext is allowed).
absl::Status CheckPlaintextTarget(absl::string_view target);

// `text` in the 4-byte big-endian length framing whose length counts its own 4 bytes
// (length_field {offset 0, size 4, big_endian true, adjustment -4}).
std::string FrameText(absl::string_view text);

}  // namespace tlsbroker::ctl

#endif  // TOOLS_TLSBROKERCTL_CTL_OPTIONS_H_
