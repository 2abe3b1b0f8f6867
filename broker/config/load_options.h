#ifndef BROKER_CONFIG_LOAD_OPTIONS_H_
#define BROKER_CONFIG_LOAD_OPTIONS_H_

// Loads the YAML config file into BrokerOptions.
//
// The YAML is walked against the schema (proto/tlsbroker/config/v1/config.proto) first, so that
// every unknown field and every wrongly typed value is reported with its line, column and field
// path (the proto JSON parser alone stops at the first error and knows no lines). A clean tree
// is then converted through the proto JSON mapping and checked semantically: required fields,
// addresses, files that exist and parse, keys that match their certificates, positive
// durations, pool sizes, framing, and client IDs (valid and collision-free).
//
// Scalars are typed by the schema, not by YAML: a plain or quoted "32" is accepted for an
// integer field (as the proto JSON mapping does, and as Helm's `quote` produces); booleans must
// be a plain true/false (any case), never quoted; enum values are their bare names (STRONG).
// A key with an empty (null) value counts as absent.
//
// Thread-safe: the functions keep no state.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "broker/config/options.h"

namespace tlsbroker {

// One problem found in a config file.
struct ConfigError {
  int line = 0;            // 1-based; 0 when the problem has no position (e.g. an unreadable file).
  int column = 0;          // 1-based.
  std::string field_path;  // e.g. "backends[2].pool.max_sockets"; empty for the whole file.
  std::string message;

  // "LINE:COL: field.path: message" (parts without a value are left out).
  std::string ToString() const;
};

// Everything LoadConfig found.
struct ConfigReport {
  // The converted options; meaningful only when ok().
  BrokerOptions options;
  // Every error found, in file order. Non-empty means the config must not be used.
  std::vector<ConfigError> errors;
  // Things that are allowed but probably unintended (no caller may use a backend, an expired
  // client certificate, plaintext gRPC on a non-loopback address, ...).
  std::vector<ConfigError> warnings;
  // The replica ordinal that "{ordinal}" in client ID prefixes was replaced with.
  int ordinal = 0;

  bool ok() const { return errors.empty(); }
  // One "FILE:LINE:COL: field.path: message" line per error, each ending in '\n'.
  std::string FormatErrors(absl::string_view file_name) const;
};

// Pass as `ordinal` to take the replica ordinal from $HOSTNAME (see DefaultReplicaOrdinal).
inline constexpr int kOrdinalFromHostname = -1;

// The ordinal at the end of a StatefulSet pod hostname: "tlsbroker-3" -> 3. Returns 0 when the
// name does not end in "-<digits>".
int OrdinalFromHostname(absl::string_view hostname);

// OrdinalFromHostname($HOSTNAME), or 0 when HOSTNAME is unset.
int DefaultReplicaOrdinal();

// Parses and checks `yaml`. Relative file paths in it resolve against `base_dir` (empty: the
// current directory). Never fails as a whole: problems are in the report.
ConfigReport LoadConfig(absl::string_view yaml, const std::string& base_dir,
                        int ordinal = kOrdinalFromHostname);

// Reads `path` and loads it as LoadConfig does, with relative paths resolved against the
// directory of `path`. An unreadable file is one error without a position.
ConfigReport LoadConfigFile(const std::string& path, int ordinal = kOrdinalFromHostname);

// As LoadConfigFile / LoadConfig, for callers that only need the options: InvalidArgument
// listing every error ("LINE:COL: field.path: message" lines; the file name prefixed for
// LoadOptionsFromFile) when the config is not valid.
absl::StatusOr<BrokerOptions> LoadOptionsFromFile(const std::string& path,
                                                  int ordinal = kOrdinalFromHostname);
absl::StatusOr<BrokerOptions> LoadOptionsFromString(absl::string_view yaml,
                                                    const std::string& base_dir,
                                                    int ordinal = kOrdinalFromHostname);

// File descriptors kept out of the socket budget for listeners, gRPC connections, config and
// credential files, and the like.
inline constexpr int kFdReserve = 256;
// The smallest default socket budget, whatever the file limit says.
inline constexpr int kMinDefaultSocketBudget = 16;

// The highest limits.max_backend_sockets this process accepts: its soft RLIMIT_NOFILE minus
// kFdReserve (capped to fit an int). 0 when the file limit is kFdReserve or lower.
int MaxSocketBudgetForFdLimit();
// The default limits.max_backend_sockets: MaxSocketBudgetForFdLimit(), at least
// kMinDefaultSocketBudget.
int DefaultMaxBackendSockets();

// "TLS1.2" / "TLS1.3" -> TLS1_2_VERSION / TLS1_3_VERSION; InvalidArgument otherwise.
absl::StatusOr<int> ParseTlsVersion(absl::string_view name);

}  // namespace tlsbroker

#endif  // BROKER_CONFIG_LOAD_OPTIONS_H_
