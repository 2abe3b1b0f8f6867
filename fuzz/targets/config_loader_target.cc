// Fuzzes the config loader on arbitrary YAML: it must never crash, hang or throw, and must
// report every problem as an error with a message (a config is either usable or explained).

#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "broker/config/load_options.h"
#include "fuzz/targets/fuzz_targets.h"

namespace tlsbroker::fuzz {
namespace {

// An empty directory for relative paths in the config, made once per process. Files named by
// a config resolve against it and are absent, so file checks run their "missing" paths.
const std::string& BaseDir() {
  static const std::string* dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                          "/tlsb-fuzz-config-XXXXXX";
    char* made = mkdtemp(pattern.data());
    TLSB_FUZZ_CHECK(made != nullptr);
    return new std::string(made);
  }();
  return *dir;
}

}  // namespace

int FuzzConfigLoader(const uint8_t* data, size_t size) {
  const absl::string_view yaml(reinterpret_cast<const char*>(data), size);
  const ConfigReport report = LoadConfig(yaml, BaseDir(), /*ordinal=*/3);
  for (const ConfigError& error : report.errors) {
    TLSB_FUZZ_CHECK(!error.message.empty());
    TLSB_FUZZ_CHECK(error.line >= 0 && error.column >= 0);
  }
  for (const ConfigError& warning : report.warnings) {
    TLSB_FUZZ_CHECK(!warning.message.empty());
  }
  const std::string formatted = report.FormatErrors("fuzz.yaml");
  TLSB_FUZZ_CHECK(report.ok() == formatted.empty());
  // The string entry point agrees with the report.
  auto options = LoadOptionsFromString(yaml, BaseDir(), /*ordinal=*/3);
  TLSB_FUZZ_CHECK(options.ok() == report.ok());
  if (!options.ok()) {
    TLSB_FUZZ_CHECK(options.status().code() == absl::StatusCode::kInvalidArgument);
  }
  return 0;
}

}  // namespace tlsbroker::fuzz
