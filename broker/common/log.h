#ifndef BROKER_COMMON_LOG_H_
#define BROKER_COMMON_LOG_H_

// Minimal structured logging: one line per event on stderr, `ts=... level=... msg="..." k=v`.
// Debian's Abseil (20220623) predates absl/log, and the broker needs no more than this.
// Thread-safe. Never pass key material or payload bytes.

#include <string>

#include "absl/strings/string_view.h"

namespace tlsbroker {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

enum class LogFormat { kText, kJson };

// Text: `ts=... level=... msg="..." k=v`; JSON: one object per line with the same keys.
void SetLogFormat(LogFormat format);

// Parses "debug|info|warning|error" (false if unknown).
bool ParseLogLevel(absl::string_view name, LogLevel* level);

// Lines below `level` are dropped. Default: kInfo (TLSB_LOG_LEVEL=debug|info|warning|error).
void SetMinLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);

// `fields` is preformatted `key=value key2="value 2"` text (see LogField).
void LogEvent(LogLevel level, absl::string_view msg, absl::string_view fields = "");

// Formats one `key="value"` pair with quotes and escapes as needed.
std::string LogField(absl::string_view key, absl::string_view value);

}  // namespace tlsbroker

#endif  // BROKER_COMMON_LOG_H_
