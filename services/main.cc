// The tlsbroker executable: flag parsing, config loading, and (later) serving.
//
//   tlsbroker --config FILE                 load FILE and serve
//   tlsbroker --check-config FILE           validate FILE, print a summary or every error
//   tlsbroker --config FILE --check-config  the same
//   tlsbroker --version | --help
//
// Exit codes: 0 success (also after a SIGTERM drain), 1 invalid config, 2 usage error,
// 3 the server could not start (port in use, unreadable credentials, ...).

#include <pthread.h>
#include <signal.h>
#include <string.h>

#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "broker/config/load_options.h"
#include "broker/config/options.h"
#include "broker/common/log.h"
#include "broker/common/log_writer.h"
#include "services/broker_server.h"
#include "services/build_info.h"
#include "services/caller_pattern.h"
#include "services/grpc_log.h"
#include "broker/pool/client_id.h"

namespace tlsbroker {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitInvalidConfig = 1;
constexpr int kExitUsage = 2;
constexpr int kExitServeFailed = 3;

constexpr char kUsage[] =
    "Usage:\n"
    "  tlsbroker --config FILE                 serve with the config in FILE\n"
    "  tlsbroker --check-config FILE           validate FILE and exit\n"
    "  tlsbroker --config FILE --check-config  the same\n"
    "  tlsbroker --version                     print the version\n"
    "  tlsbroker --help                        print this help\n"
    "\n"
    "Options:\n"
    "  --log-level L    debug, info (default), warning or error\n"
    "  --log-format F   text (default) or json: one object per line\n"
    "  --io-threads N   backend I/O threads (default: one per core)\n"
    "  --ordinal N   replica ordinal that replaces {ordinal} in client ID prefixes\n"
    "                (default: the number after the last '-' of $HOSTNAME, else 0)\n"
    "\n"
    "--check-config prints every error as FILE:LINE:COL: field.path: message and exits 1,\n"
    "or prints a summary of the backends, pools and client ID ranges and exits 0.\n"
    "Relative file paths in the config are relative to the config file's directory.\n";

struct Flags {
  std::string config_path;
  bool check_config = false;
  bool help = false;
  bool version = false;
  int ordinal = kOrdinalFromHostname;
  int io_threads = 0;
};

// Accepts "--flag VALUE" and "--flag=VALUE". --check-config takes its FILE optionally, so
// that both "--check-config FILE" and "--config FILE --check-config" work.
std::optional<Flags> ParseFlags(const std::vector<std::string>& args, std::string* error) {
  Flags flags;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    std::optional<std::string> inline_value;
    if (absl::StartsWith(arg, "--")) {
      if (const size_t eq = arg.find('='); eq != std::string::npos) {
        inline_value = arg.substr(eq + 1);
        arg = arg.substr(0, eq);
      }
    }
    auto take_value = [&](bool optional) -> std::optional<std::string> {
      if (inline_value) return inline_value;
      if (i + 1 < args.size() && !absl::StartsWith(args[i + 1], "--")) return args[++i];
      if (!optional) *error = absl::StrCat(arg, " needs a value");
      return std::nullopt;
    };
    if (arg == "--help" || arg == "-h") {
      flags.help = true;
    } else if (arg == "--version") {
      flags.version = true;
    } else if (arg == "--config") {
      std::optional<std::string> v = take_value(/*optional=*/false);
      if (!v) return std::nullopt;
      flags.config_path = *v;
    } else if (arg == "--check-config") {
      flags.check_config = true;
      if (std::optional<std::string> v = take_value(/*optional=*/true)) {
        if (!flags.config_path.empty() && flags.config_path != *v) {
          *error = "--config and --check-config name different files";
          return std::nullopt;
        }
        flags.config_path = *v;
      }
    } else if (arg == "--log-level") {
      std::optional<std::string> v = take_value(/*optional=*/false);
      if (!v) return std::nullopt;
      LogLevel level;
      if (!ParseLogLevel(*v, &level)) {
        *error = absl::StrCat("--log-level must be debug, info, warning or error, got \"", *v,
                              "\"");
        return std::nullopt;
      }
      SetMinLogLevel(level);
    } else if (arg == "--log-format") {
      std::optional<std::string> v = take_value(/*optional=*/false);
      if (!v) return std::nullopt;
      if (*v == "json") {
        SetLogFormat(LogFormat::kJson);
      } else if (*v == "text") {
        SetLogFormat(LogFormat::kText);
      } else {
        *error = absl::StrCat("--log-format must be text or json, got \"", *v, "\"");
        return std::nullopt;
      }
    } else if (arg == "--io-threads") {
      std::optional<std::string> v = take_value(/*optional=*/false);
      if (!v) return std::nullopt;
      if (!absl::SimpleAtoi(*v, &flags.io_threads) || flags.io_threads < 0) {
        *error = absl::StrCat("--io-threads needs a number 0 or more, got \"", *v, "\"");
        return std::nullopt;
      }
    } else if (arg == "--ordinal") {
      std::optional<std::string> v = take_value(/*optional=*/false);
      if (!v) return std::nullopt;
      if (!absl::SimpleAtoi(*v, &flags.ordinal) || flags.ordinal < 0) {
        *error = absl::StrCat("--ordinal needs a number 0 or more, got \"", *v, "\"");
        return std::nullopt;
      }
    } else {
      *error = absl::StrCat("unknown argument \"", args[i], "\"");
      return std::nullopt;
    }
  }
  if (!flags.help && !flags.version && flags.config_path.empty()) {
    *error =
        flags.check_config ? "--check-config needs a config FILE" : "--config FILE is required";
    return std::nullopt;
  }
  return flags;
}

const char* PolicyName(CipherPolicy p) {
  switch (p) {
    case CipherPolicy::kStrong:
      return "STRONG";
    case CipherPolicy::kWeak:
      return "WEAK";
    case CipherPolicy::kEnull:
      return "ENULL";
  }
  return "?";
}

const char* OcspName(OcspMode m) {
  switch (m) {
    case OcspMode::kOff:
      return "off";
    case OcspMode::kStapleOnly:
      return "STAPLE_ONLY";
    case OcspMode::kStapleOrQuery:
      return "STAPLE_OR_QUERY";
    case OcspMode::kQuery:
      return "QUERY";
  }
  return "?";
}

std::string FramingSummary(const FramingOptions& f) {
  switch (f.kind) {
    case FramingOptions::Kind::kNone:
      return "none (Call refused; Lease sockets close at lease end)";
    case FramingOptions::Kind::kLengthField:
      return absl::StrCat("length field (offset ", f.length_field.offset, ", size ",
                          f.length_field.size, ", ", f.length_field.big_endian ? "big" : "little",
                          "-endian, adjustment ", f.length_field.adjustment, "), max frame ",
                          f.max_frame_bytes, " bytes");
    case FramingOptions::Kind::kDelimiter: {
      std::string shown;
      for (char c : f.delimiter) {
        if (c == '\n') {
          shown += "\\n";
        } else if (c == '\r') {
          shown += "\\r";
        } else if (c == '\t') {
          shown += "\\t";
        } else {
          shown += c;
        }
      }
      return absl::StrCat("delimiter \"", shown, "\", max frame ", f.max_frame_bytes, " bytes");
    }
  }
  return "?";
}

void PrintSummary(const std::string& path, const ConfigReport& report) {
  const BrokerOptions& o = report.options;
  std::cout << path << ": OK (replica ordinal " << report.ordinal << ")\n";
  std::cout << "listen: gRPC " << o.listen.grpc << (o.listen.has_tls ? " (mTLS)" : " (no TLS)")
            << ", metrics " << o.listen.metrics << ", drain grace period "
            << absl::FormatDuration(o.listen.drain_grace_period) << ", admin callers "
            << o.listen.admin_callers.size() << "\n";
  const auto off = [](absl::Duration d, const char* zero) {
    return d == absl::ZeroDuration() ? std::string(zero) : absl::FormatDuration(d);
  };
  std::cout << "gRPC connections: keepalive_time " << off(o.listen.keepalive_time, "off")
            << ", keepalive_timeout " << absl::FormatDuration(o.listen.keepalive_timeout)
            << ", keepalive_min_client_interval "
            << absl::FormatDuration(o.listen.keepalive_min_client_interval)
            << ", max_connection_age " << off(o.listen.max_connection_age, "never")
            << ", max_connection_age_grace "
            << absl::FormatDuration(o.listen.max_connection_age_grace) << "\n";
  std::cout << "caller patterns (admin_callers, allowed_callers): " << kCallerPatternRules
            << "\n";
  std::cout << "admin callers: "
            << (o.listen.admin_callers.empty() ? "none"
                                               : absl::StrJoin(o.listen.admin_callers, ", "))
            << "\n";
  std::cout << "limits: max_backend_sockets " << o.limits.max_backend_sockets
            << ", max_leases_per_caller "
            << (o.limits.max_leases_per_caller == 0
                    ? std::string("unlimited")
                    : std::to_string(o.limits.max_leases_per_caller))
            << "\n";
  std::cout << o.backends.size() << (o.backends.size() == 1 ? " backend:\n" : " backends:\n");
  for (const BackendOptions& b : o.backends) {
    const PoolOptions& p = b.pool;
    std::cout << "  " << b.name << ": " << b.host << ":" << b.port;
    if (b.endpoints.size() > 1) {
      // The others, in the order they are tried after the first.
      std::vector<std::string> rest;
      for (size_t i = 1; i < b.endpoints.size(); ++i) rest.push_back(b.endpoints[i].address);
      std::cout << " (then " << absl::StrJoin(rest, ", then ") << ")";
    }
    std::cout << ", server name " << b.server_name << "\n";
    std::cout << "    tls: " << PolicyName(b.tls.encryption) << ", client certificate "
              << (!b.tls.pkcs12_file.empty()  ? "PKCS#12"
                  : b.tls.cert_file.empty()     ? "none"
                                                : "yes")
              << ", CRLs " << b.tls.crl_files.size()
              << ", OCSP " << OcspName(b.tls.ocsp.mode) << ", session resumption "
              << (b.tls.session_resumption ? "on" : "off") << "\n";
    const TcpKeepaliveOptions& k = b.tls.tcp_keepalive;
    std::cout << "    tcp keepalive: "
              << (k.enabled ? absl::StrCat("idle ", absl::FormatDuration(k.idle), ", interval ",
                                           absl::FormatDuration(k.interval), ", count ", k.count)
                            : std::string("off"))
              << "\n";
    std::cout << "    pool: " << (p.mode == PoolMode::kPersistent ? "PERSISTENT" : "PER_LEASE")
              << ", min_idle " << p.min_idle << ", max_sockets " << p.max_sockets
              << ", max_waiters " << p.max_waiters << ", acquire_timeout "
              << absl::FormatDuration(p.acquire_timeout) << ", call_timeout "
              << absl::FormatDuration(p.call_timeout) << ", max_lifetime "
              << absl::FormatDuration(p.max_lifetime) << "\n";
    std::cout << "    client IDs: " << FormatClientId(b.client_id, 1) << " .. "
              << FormatClientId(b.client_id, p.max_sockets) << "\n";
    std::cout << "    framing: " << FramingSummary(b.framing) << "\n";
    std::cout << "    allowed callers: "
              << (b.allowed_callers.empty() ? "none" : absl::StrJoin(b.allowed_callers, ", "))
              << "\n";
  }
}

void PrintWarnings(const std::string& path, const ConfigReport& report) {
  for (const ConfigError& w : report.warnings) {
    std::cerr << path << ":";
    if (w.line > 0) std::cerr << w.line << ":" << w.column << ":";
    std::cerr << " warning: ";
    if (!w.field_path.empty()) std::cerr << w.field_path << ": ";
    std::cerr << w.message << "\n";
  }
}

// With --log-format json, what a starting broker says about its config is JSON lines like the
// rest of its log (a log pipeline parses every line), with the position as numbers; in text it
// reads as --check-config prints it.
void LogConfigProblems(const std::string& path, const std::vector<ConfigError>& problems,
                       LogLevel level, absl::string_view msg, absl::string_view key) {
  for (const ConfigError& p : problems) {
    // Without a position or a field (a problem of the whole file) those fields are left out.
    std::vector<LogValue> fields = {LogValue::Str("file", path)};
    if (p.line > 0) {
      fields.push_back(LogValue::Int("line", p.line));
      fields.push_back(LogValue::Int("column", p.column));
    }
    if (!p.field_path.empty()) fields.push_back(LogValue::Str("field", p.field_path));
    fields.push_back(LogValue::Str(key, p.message));
    LogEventWith(level, msg, fields);
  }
}

int CheckConfig(const Flags& flags) {
  const ConfigReport report = LoadConfigFile(flags.config_path, flags.ordinal);
  if (!report.ok()) {
    std::cerr << report.FormatErrors(flags.config_path);
    PrintWarnings(flags.config_path, report);
    std::cerr << flags.config_path << ": " << report.errors.size()
              << (report.errors.size() == 1 ? " error\n" : " errors\n");
    return kExitInvalidConfig;
  }
  PrintWarnings(flags.config_path, report);
  PrintSummary(flags.config_path, report);
  return kExitOk;
}

// Loads the config and serves. The gRPC service is wired in here once it exists.
int Serve(const Flags& flags) {
  // Block the signals we handle before any thread starts, so every thread inherits the mask
  // and only the sigwait() below receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // A backend that hangs up mid-write must give an error, not kill the process.
  signal(SIGPIPE, SIG_IGN);
  // Before gRPC starts, so that none of its lines escapes the broker's log format.
  RouteGrpcLogsToBrokerLog();

  const ConfigReport report = LoadConfigFile(flags.config_path, flags.ordinal);
  if (!report.ok()) {
    if (LogFormatIsJson()) {
      LogConfigProblems(flags.config_path, report.errors, LogLevel::kError, "config error",
                        "error");
    } else {
      std::cerr << report.FormatErrors(flags.config_path);
    }
    return kExitInvalidConfig;
  }
  if (LogFormatIsJson()) {
    LogConfigProblems(flags.config_path, report.warnings, LogLevel::kWarning, "config warning",
                      "warning");
  } else {
    PrintWarnings(flags.config_path, report);
  }

  // gRPC locks absl::Mutex on every call; Debian's Abseil is built with its lock-order
  // (deadlock) graph on, which costs every lock a graph lookup. A debugging aid, not a
  // production setting: the project's own tests run under ThreadSanitizer instead.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // From here on log lines (one audit line per lease) are written by a thread of their own.
  StartBackgroundLogWriter();
  BrokerServer::StartOptions start;
  start.io_threads = flags.io_threads;
  start.config_path = flags.config_path;
  start.ordinal = flags.ordinal;
  start.version = std::string(BuildVersion());
  start.commit = std::string(BuildCommit());
  auto server = BrokerServer::Start(report.options, start);
  if (!server.ok()) {
    LogEvent(LogLevel::kError, "cannot start", LogField("error", server.status().message()));
    StopBackgroundLogWriter();
    return kExitServeFailed;
  }
  while (true) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGHUP) {
      LogEvent(LogLevel::kInfo, "reload requested by SIGHUP");
      (*server)->ReloadFromFile();  // Logs what it rejected.
      continue;
    }
    LogEvent(LogLevel::kInfo, "shutting down", LogField("signal", strsignal(sig)));
    (*server)->Shutdown(report.options.listen.drain_grace_period);
    StopBackgroundLogWriter();
    return kExitOk;
  }
}

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string error;
  const std::optional<Flags> flags = ParseFlags(args, &error);
  if (!flags) {
    std::cerr << "tlsbroker: " << error << "\n\n" << kUsage;
    return kExitUsage;
  }
  if (flags->help) {
    std::cout << kUsage;
    return kExitOk;
  }
  if (flags->version) {
    std::cout << "tlsbroker " << BuildVersion() << " (commit " << BuildCommit() << ")\n";
    return kExitOk;
  }
  return flags->check_config ? CheckConfig(*flags) : Serve(*flags);
}

}  // namespace
}  // namespace tlsbroker

int main(int argc, char** argv) { return tlsbroker::Main(argc, argv); }
