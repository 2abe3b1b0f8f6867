#include "tools/load/load_options.h"

#include <optional>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace tlsbroker::load {
namespace {

constexpr char kUsage[] =
    "Usage: tlsbroker-load --target HOST:PORT --backend NAME [options]\n"
    "\n"
    "Drives a tlsbroker with N concurrent callers and reports throughput, latency\n"
    "percentiles, errors by gRPC code, the client IDs that served the calls and the TLS\n"
    "handshakes the broker made during the run.\n"
    "\n"
    "Connection:\n"
    "  --target ADDR           broker gRPC address (host:port or unix:/path)\n"
    "  --ca FILE               CA bundle that verifies the broker's certificate\n"
    "  --cert FILE --key FILE  caller certificate chain and key (mTLS)\n"
    "  --tls-server-name NAME  name to verify in the broker's certificate (default: host)\n"
    "  --insecure-plaintext    no TLS (a broker with listen.plaintext: true on loopback)\n"
    "  --channels M            gRPC channels (TCP connections), default 1\n"
    "\n"
    "Load:\n"
    "  --backend NAME          backend from the broker's config (required)\n"
    "  --client-id ID          use only the socket with this client ID\n"
    "  --mode call|lease|bulk  BrokerService.Call (default); Lease with framed exchanges; Lease\n"
    "                          pushing --bulk-bytes through a raw echo backend\n"
    "  --callers N             concurrent callers, default 4\n"
    "  --count N               operations in total: calls, leases or bulk streams\n"
    "                          (default 1000; bulk: one stream per caller)\n"
    "  --duration D            stop after D (e.g. 10s); with --count, whichever is first\n"
    "  --size B                request payload bytes, default 1024\n"
    "  --size-min B --size-max B  random payload size per request, uniform in [min, max]\n"
    "  --exchanges-per-lease K framed round trips per lease (lease mode), default 10\n"
    "  --bulk-bytes B          bytes per bulk stream, default 16777216\n"
    "  --response-prefix S     what the framed backend prepends to a payload, default re:\n"
    "  --timeout D             deadline per RPC, default 10s\n"
    "  --seed N                random seed for payload sizes and contents, default 1\n"
    "\n"
    "Report:\n"
    "  --metrics-url URL       broker's metrics endpoint (http://host:port): the delta of\n"
    "                          tlsbroker_tls_handshakes_total for the backend is reported\n"
    "  --json                  one JSON object on stdout instead of the table\n"
    "\n"
    "Exit codes: 0 every operation succeeded and verified, 1 some failed or returned a\n"
    "wrong response (corrupt), 2 usage error.\n";

absl::Status Usage(absl::string_view message) {
  return absl::InvalidArgumentError(message);
}

bool ParseBytes(const std::string& text, int64_t* out) {
  int64_t multiplier = 1;
  std::string digits = text;
  if (absl::EndsWith(digits, "Ki")) {
    multiplier = 1024;
    digits.resize(digits.size() - 2);
  } else if (absl::EndsWith(digits, "Mi")) {
    multiplier = 1024 * 1024;
    digits.resize(digits.size() - 2);
  }
  int64_t value = 0;
  if (!absl::SimpleAtoi(digits, &value) || value < 0) return false;
  *out = value * multiplier;
  return true;
}

}  // namespace

const char* LoadUsage() { return kUsage; }

const char* LoadModeName(LoadMode mode) {
  switch (mode) {
    case LoadMode::kCall:
      return "call";
    case LoadMode::kLease:
      return "lease";
    case LoadMode::kBulk:
      return "bulk";
  }
  return "call";
}

absl::StatusOr<LoadOptions> ParseLoadFlags(const std::vector<std::string>& args) {
  LoadOptions o;
  bool have_size = false;
  bool have_size_range = false;
  bool have_min = false;
  bool have_max = false;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i];
    std::optional<std::string> inline_value;
    if (absl::StartsWith(flag, "--")) {
      if (size_t eq = flag.find('='); eq != std::string::npos) {
        inline_value = flag.substr(eq + 1);
        flag = flag.substr(0, eq);
      }
    }
    std::string value;
    auto take = [&]() -> bool {
      if (inline_value) {
        value = *inline_value;
        return true;
      }
      if (i + 1 >= args.size()) return false;
      value = args[++i];
      return true;
    };
    auto need = [&]() -> absl::Status {
      if (!take()) return Usage(absl::StrCat(flag, " needs a value"));
      return absl::OkStatus();
    };
    auto int_flag = [&](int64_t min, int64_t* out) -> absl::Status {
      if (!take()) return Usage(absl::StrCat(flag, " needs a value"));
      if (!ParseBytes(value, out) || *out < min) {
        return Usage(absl::StrCat(flag, " must be an integer >= ", min, ", got \"", value, "\""));
      }
      return absl::OkStatus();
    };
    auto duration_flag = [&](absl::Duration* out) -> absl::Status {
      if (!take()) return Usage(absl::StrCat(flag, " needs a value"));
      if (!absl::ParseDuration(value, out) || *out <= absl::ZeroDuration()) {
        return Usage(absl::StrCat(flag, " must be a positive duration like 10s or 500ms, got \"",
                                  value, "\""));
      }
      return absl::OkStatus();
    };
    absl::Status s;
    int64_t n = 0;
    if (flag == "--help" || flag == "-h") {
      return absl::NotFoundError("help");
    } else if (flag == "--target") {
      s = need();
      o.target = value;
    } else if (flag == "--backend") {
      s = need();
      o.backend = value;
    } else if (flag == "--client-id") {
      s = need();
      o.client_id = value;
    } else if (flag == "--mode") {
      s = need();
      if (s.ok()) {
        if (value == "call") {
          o.mode = LoadMode::kCall;
        } else if (value == "lease") {
          o.mode = LoadMode::kLease;
        } else if (value == "bulk") {
          o.mode = LoadMode::kBulk;
        } else {
          s = Usage(absl::StrCat("--mode is call, lease or bulk, got \"", value, "\""));
        }
      }
    } else if (flag == "--ca") {
      s = need();
      o.ca_file = value;
    } else if (flag == "--cert") {
      s = need();
      o.cert_file = value;
    } else if (flag == "--key") {
      s = need();
      o.key_file = value;
    } else if (flag == "--tls-server-name") {
      s = need();
      o.tls_server_name = value;
    } else if (flag == "--insecure-plaintext") {
      o.insecure_plaintext = true;
    } else if (flag == "--callers") {
      s = int_flag(1, &n);
      o.callers = static_cast<int>(n);
    } else if (flag == "--channels") {
      s = int_flag(1, &n);
      o.channels = static_cast<int>(n);
    } else if (flag == "--count") {
      s = int_flag(1, &o.count);
    } else if (flag == "--duration") {
      s = duration_flag(&o.duration);
    } else if (flag == "--size") {
      s = int_flag(0, &n);
      o.size_min = o.size_max = n;
      have_size = true;
    } else if (flag == "--size-min") {
      s = int_flag(0, &o.size_min);
      have_size_range = have_min = true;
    } else if (flag == "--size-max") {
      s = int_flag(0, &o.size_max);
      have_size_range = have_max = true;
    } else if (flag == "--exchanges-per-lease") {
      s = int_flag(1, &n);
      o.exchanges_per_lease = static_cast<int>(n);
    } else if (flag == "--bulk-bytes") {
      s = int_flag(1, &o.bulk_bytes);
    } else if (flag == "--response-prefix") {
      s = need();
      o.response_prefix = value;
    } else if (flag == "--timeout") {
      s = duration_flag(&o.timeout);
    } else if (flag == "--metrics-url") {
      s = need();
      o.metrics_url = value;
    } else if (flag == "--json") {
      o.json = true;
    } else if (flag == "--seed") {
      s = int_flag(0, &n);
      o.seed = static_cast<uint64_t>(n);
    } else {
      s = Usage(absl::StrCat("unknown flag \"", args[i], "\""));
    }
    if (!s.ok()) return s;
  }
  if (o.target.empty()) return Usage("--target is required");
  if (o.backend.empty()) return Usage("--backend is required");
  if (o.insecure_plaintext && (!o.ca_file.empty() || !o.cert_file.empty())) {
    return Usage("--insecure-plaintext excludes --ca/--cert/--key");
  }
  if (!o.insecure_plaintext && o.ca_file.empty()) {
    return Usage("--ca (and usually --cert/--key) or --insecure-plaintext is required");
  }
  if (o.cert_file.empty() != o.key_file.empty()) {
    return Usage("--cert and --key go together");
  }
  if (have_size && have_size_range) return Usage("--size excludes --size-min/--size-max");
  if (have_min != have_max) return Usage("--size-min and --size-max go together");
  if (o.size_min > o.size_max) return Usage("--size-min is larger than --size-max");
  if (o.size_max > 64 * 1024 * 1024) return Usage("request size is at most 64 MiB");
  if (o.callers > 10000) return Usage("--callers is at most 10000");
  if (o.channels > o.callers) o.channels = o.callers;
  if (o.count < 0 && o.duration == absl::ZeroDuration()) {
    o.count = o.mode == LoadMode::kBulk ? o.callers : 1000;
  }
  return o;
}

}  // namespace tlsbroker::load
