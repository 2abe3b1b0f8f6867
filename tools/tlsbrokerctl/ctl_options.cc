#include "tools/tlsbrokerctl/ctl_options.h"

#include <arpa/inet.h>

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "broker/common/status_macros.h"

namespace tlsbroker::ctl {
namespace {

// Bit per command, so each flag lists the commands it belongs to.
constexpr uint32_t Bit(Command c) { return 1u << static_cast<int>(c); }
constexpr uint32_t kAnyCommand = ~0u;

struct FlagSpec {
  const char* name;
  bool takes_value;
  uint32_t commands;
};

constexpr FlagSpec kFlags[] = {
    {"--target", true, kAnyCommand},
    {"--ca", true, kAnyCommand},
    {"--cert", true, kAnyCommand},
    {"--key", true, kAnyCommand},
    {"--server-name", true, kAnyCommand},
    {"--insecure-plaintext", false, kAnyCommand},
    {"--timeout", true, kAnyCommand},
    {"--json", false, kAnyCommand},
    {"--quiet", false, kAnyCommand},
    {"--help", false, kAnyCommand},
    {"--version", false, kAnyCommand},
    {"--client-id", true, Bit(Command::kCall) | Bit(Command::kLease)},
    {"--data", true, Bit(Command::kCall)},
    {"--file", true, Bit(Command::kCall)},
    {"--frame-text", true, Bit(Command::kCall)},
    {"--linger", true, Bit(Command::kLease)},
    {"--all", false, Bit(Command::kDrain) | Bit(Command::kResume)},
};

const FlagSpec* FindFlag(absl::string_view name) {
  for (const FlagSpec& f : kFlags) {
    if (name == f.name) return &f;
  }
  return nullptr;
}

absl::Status Usage(absl::string_view message) {
  return absl::InvalidArgumentError(message);
}

struct CommandSpec {
  const char* name;
  Command command;
  int positionals;  // BACKEND or nothing
  // BACKEND may instead be --all (the whole broker); exactly one of the two.
  bool or_all = false;
};

constexpr CommandSpec kCommands[] = {
    {"help", Command::kHelp, 0},          {"call", Command::kCall, 1},
    {"lease", Command::kLease, 1},        {"backends", Command::kBackends, 0},
    {"sockets", Command::kSockets, 1},    {"drain", Command::kDrain, 1, true},
    {"resume", Command::kResume, 1, true}, {"reload", Command::kReload, 0},
};

}  // namespace

absl::StatusOr<absl::Duration> ParseDurationFlag(absl::string_view text) {
  absl::Duration d;
  double seconds = 0;
  if (absl::SimpleAtod(text, &seconds)) {
    d = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(text, &d)) {
    return Usage(absl::StrCat("bad duration \"", text, "\" (examples: 500ms, 10s, 1m)"));
  }
  if (d < absl::ZeroDuration() || d == absl::InfiniteDuration()) {
    return Usage(absl::StrCat("bad duration \"", text, "\": must be finite and not negative"));
  }
  return d;
}

absl::Status CheckPlaintextTarget(absl::string_view target) {
  if (absl::StartsWith(target, "unix:") || absl::StartsWith(target, "unix-abstract:")) {
    return absl::OkStatus();
  }
  absl::string_view host = target;
  for (absl::string_view scheme : {"dns:///", "ipv4:", "ipv6:"}) {
    if (absl::StartsWith(host, scheme)) host.remove_prefix(scheme.size());
  }
  if (!host.empty() && host.front() == '[') {
    size_t close = host.find(']');
    host = close == absl::string_view::npos ? absl::string_view() : host.substr(1, close - 1);
  } else if (size_t colon = host.rfind(':'); colon != absl::string_view::npos) {
    host = host.substr(0, colon);
  }
  const std::string h = absl::AsciiStrToLower(host);
  in_addr v4;
  in6_addr v6;
  bool loopback = h == "localhost";
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) {
    loopback = (ntohl(v4.s_addr) >> 24) == 127;
  } else if (inet_pton(AF_INET6, h.c_str(), &v6) == 1) {
    loopback = IN6_IS_ADDR_LOOPBACK(&v6);
  }
  if (loopback) return absl::OkStatus();
  return Usage(absl::StrCat("--insecure-plaintext is only allowed to a loopback or unix: target, "
                            "not \"", target, "\""));
}

std::string FrameText(absl::string_view text) {
  const uint32_t len = static_cast<uint32_t>(text.size() + 4);
  std::string out;
  out.reserve(len);
  out.push_back(static_cast<char>(len >> 24));
  out.push_back(static_cast<char>(len >> 16));
  out.push_back(static_cast<char>(len >> 8));
  out.push_back(static_cast<char>(len));
  out.append(text.data(), text.size());
  return out;
}

absl::StatusOr<CtlOptions> ParseArgs(const std::vector<std::string>& args,
                                     const GetEnvFn& getenv) {
  CtlOptions o;
  // Flags are checked against the command after the whole line is read, because options may
  // come before the command.
  std::vector<std::pair<const FlagSpec*, std::string>> flags;
  std::vector<std::string> positionals;
  bool only_positionals = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (only_positionals || arg.size() < 2 || arg[0] != '-') {
      positionals.push_back(arg);
      continue;
    }
    if (arg == "--") {
      only_positionals = true;
      continue;
    }
    std::string name = arg;
    std::string value;
    bool has_inline_value = false;
    if (arg == "-h") name = "--help";
    if (arg == "-q") name = "--quiet";
    if (size_t eq = arg.find('='); absl::StartsWith(arg, "--") && eq != std::string::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      has_inline_value = true;
    }
    const FlagSpec* spec = FindFlag(name);
    if (spec == nullptr) return Usage(absl::StrCat("unknown option ", name));
    if (spec->takes_value && !has_inline_value) {
      if (i + 1 >= args.size()) return Usage(absl::StrCat(name, " needs a value"));
      value = args[++i];
    } else if (!spec->takes_value && has_inline_value) {
      return Usage(absl::StrCat(name, " takes no value"));
    }
    flags.emplace_back(spec, std::move(value));
  }

  bool help = false;
  for (const auto& [spec, value] : flags) {
    if (absl::string_view(spec->name) == "--help") help = true;
  }
  if (help) {
    o.command = Command::kHelp;
    return o;
  }
  // --version comes next: like --help it needs no command and no broker.
  for (const auto& [spec, value] : flags) {
    if (absl::string_view(spec->name) == "--version") {
      o.command = Command::kVersion;
      return o;
    }
  }
  if (positionals.empty()) return Usage("missing command");
  const CommandSpec* command = nullptr;
  for (const CommandSpec& c : kCommands) {
    if (positionals[0] == c.name) command = &c;
  }
  if (command == nullptr) return Usage(absl::StrCat("unknown command \"", positionals[0], "\""));
  o.command = command->command;
  const int got = static_cast<int>(positionals.size()) - 1;
  bool all = false;
  for (const auto& [spec, value] : flags) {
    if (absl::string_view(spec->name) == "--all") all = true;
  }
  if (command->or_all && all) {
    if (got > 0) {
      return Usage(absl::StrCat(command->name, " takes a BACKEND or --all, not both"));
    }
    o.all = true;
  } else if (command->or_all && got < command->positionals) {
    // No default to the whole broker: a forgotten argument must not take the pod out of
    // service.
    return Usage(absl::StrCat(command->name, " needs a BACKEND argument, or --all for the "
                              "whole broker"));
  }
  if (o.all) {
    // Checked above: no positional besides the command.
  } else if (got < command->positionals) {
    return Usage(absl::StrCat(command->name, " needs a BACKEND argument"));
  }
  if (got > command->positionals) {
    return Usage(absl::StrCat("unexpected argument \"", positionals[command->positionals + 1],
                              "\" for ", command->name));
  }
  if (command->positionals == 1 && !o.all) o.backend = positionals[1];

  if (const char* env = getenv("TLSBROKER_TARGET"); env != nullptr && *env != '\0') {
    o.connection.target = env;
  } else {
    o.connection.target = kDefaultTarget;
  }
  if (const char* env = getenv("TLSBROKER_CA"); env != nullptr) o.connection.ca_file = env;
  if (const char* env = getenv("TLSBROKER_CERT"); env != nullptr) o.connection.cert_file = env;
  if (const char* env = getenv("TLSBROKER_KEY"); env != nullptr) o.connection.key_file = env;

  for (const auto& [spec, value] : flags) {
    const absl::string_view name = spec->name;
    if ((spec->commands & Bit(o.command)) == 0) {
      return Usage(absl::StrCat(name, " does not apply to ", command->name));
    }
    if (name == "--target") {
      o.connection.target = value;
    } else if (name == "--ca") {
      o.connection.ca_file = value;
    } else if (name == "--cert") {
      o.connection.cert_file = value;
    } else if (name == "--key") {
      o.connection.key_file = value;
    } else if (name == "--server-name") {
      o.connection.server_name = value;
    } else if (name == "--insecure-plaintext") {
      o.connection.insecure_plaintext = true;
    } else if (name == "--timeout") {
      BROKER_ASSIGN_OR_RETURN(o.timeout, ParseDurationFlag(value));
      if (o.timeout == absl::ZeroDuration()) return Usage("--timeout must be positive");
      o.timeout_set = true;
    } else if (name == "--json") {
      o.json = true;
    } else if (name == "--quiet") {
      o.quiet = true;
    } else if (name == "--client-id") {
      o.client_id = value;
    } else if (name == "--all") {
      // Read above, with the positionals.
    } else if (name == "--linger") {
      BROKER_ASSIGN_OR_RETURN(o.linger, ParseDurationFlag(value));
    } else if (name == "--data" || name == "--file" || name == "--frame-text") {
      if (o.payload_source != PayloadSource::kNone) {
        return Usage("give exactly one of --data, --file, --frame-text");
      }
      o.payload_source = name == "--data"   ? PayloadSource::kData
                         : name == "--file" ? PayloadSource::kFile
                                            : PayloadSource::kFrameText;
      o.payload_arg = value;
    }
  }
  if (o.command == Command::kCall && o.payload_source == PayloadSource::kNone) {
    return Usage("call needs one of --data, --file, --frame-text");
  }
  if (o.connection.target.empty()) return Usage("--target is empty");
  if (o.connection.cert_file.empty() != o.connection.key_file.empty()) {
    return Usage("--cert and --key go together");
  }
  if (o.connection.insecure_plaintext) {
    BROKER_RETURN_IF_ERROR(CheckPlaintextTarget(o.connection.target));
    if (!o.connection.cert_file.empty() || !o.connection.server_name.empty()) {
      return Usage("--insecure-plaintext cannot be combined with --cert/--key/--server-name");
    }
  }
  return o;
}

std::string UsageText() {
  return R"(Usage: tlsbrokerctl [OPTIONS] COMMAND [ARGS] [OPTIONS]

A command-line client for the tlsbroker gRPC API (BrokerService and BrokerAdminService).

Commands:
  call BACKEND (--data TEXT | --file F | --frame-text TEXT) [--client-id ID]
      One request/response exchange on a pooled socket (BrokerService.Call). --data and --file
      send their bytes unchanged: they must be one complete request frame in the backend's
      framing (length field or delimiter included). --file - reads stdin. --frame-text TEXT
      is a convenience that wraps TEXT in a 4-byte big-endian length field counting its own
      4 bytes (framing length_field {offset: 0, size: 4, big_endian: true, adjustment: -4}).
      The response frame goes to stdout exactly as received (raw bytes, frame header
      included); a summary of the socket it ran on goes to stderr. With --json, stdout gets
      {"response_base64": "...", "lease": {"client_id": ..., "socket_id": ..., "reused": ...}}.
  lease BACKEND [--client-id ID] [--linger D]
      Bridges stdin/stdout to a lease (BrokerService.Lease), like `openssl s_client` through the
      broker: the lease summary goes to stderr (as JSON with --json), stdin is sent to the
      backend and what the backend sends is written to stdout. At stdin EOF the lease is
      released once the backend has been quiet for --linger (default 1s; 0 = at once), and
      the command exits when the stream ends. --timeout bounds the wait for the lease only.
  backends
      Pool figures of every backend (BrokerAdminService.ListBackends): sockets idle, leased,
      connecting and the maximum, waiters, sockets created, full and resumed handshakes,
      the last connect failure.
  sockets BACKEND
      The sockets of one backend (BrokerAdminService.ListSockets); a leased one with its lease ID,
      the identity of the caller holding it (HOLDER) and when its lease began
      (LEASE_STARTED, UTC).
  drain (BACKEND | --all)
      Refuses new leases on BACKEND and retires its sockets (idle ones now, leased ones
      when their lease ends) (BrokerAdminService.Drain). The broker stays ready (/readyz 200)
      while another backend can serve. --all drains every backend and turns /readyz 503,
      so load balancers move callers to other replicas. Undone by `resume`; a reload does
      not undo it.
  resume (BACKEND | --all)
      Undoes `drain` (BrokerAdminService.Resume): BACKEND, or with --all the whole broker, takes
      new leases again and refills its min_idle sockets. A backend drained by name stays
      drained after `resume --all` until resumed by name; the output lists what is still
      draining. A broker stopping after SIGTERM cannot resume.
  reload
      Makes the broker re-read its configuration and credentials (BrokerAdminService.Reload). A
      rejected configuration leaves the running one in force; its errors are printed.
  help
      This text.

Connection options:
  --target T            broker address: HOST:PORT or unix:/path (default: $TLSBROKER_TARGET,
                        else 127.0.0.1:7443)
  --ca FILE             CA bundle (PEM) that verifies the broker's certificate
                        (default: $TLSBROKER_CA, else the system roots)
  --cert FILE           client certificate chain (PEM) for mutual TLS ($TLSBROKER_CERT)
  --key FILE            its private key (PEM) ($TLSBROKER_KEY)
  --server-name NAME    name to verify the broker's certificate against instead of the
                        target's host (SSL target name override)
  --insecure-plaintext  no TLS; only to a loopback or unix: target (listen.plaintext)
  --timeout D           RPC deadline (default 10s); D like 500ms, 10s, 1m, or seconds

Output options:
  --json                JSON on stdout for scripts (protobuf JSON mapping with proto field
                        names; 64-bit integers are strings, durations like "0.002s")
  -q, --quiet           no lease summary on stderr
  -h, --help            this text
  --version             print tlsbrokerctl's version and commit

Exit codes:
  0  success
  1  local I/O error (e.g. writing stdout failed)
  2  usage error: bad options or arguments, unreadable --file/--ca/--cert/--key
  3  broker unreachable (connection or TLS to the broker failed) or UNAVAILABLE (backend
     unreachable or draining; nothing was sent, safe to retry)
  4  PERMISSION_DENIED or UNAUTHENTICATED
  5  NOT_FOUND (unknown backend or client ID)
  6  DEADLINE_EXCEEDED
  7  any other RPC error (e.g. ABORTED outcome_unknown, FAILED_PRECONDITION)
On an RPC error, stderr gets the status code, the message and the tlsbroker-reason.
)";
}

}  // namespace tlsbroker::ctl
