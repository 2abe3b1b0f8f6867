#ifndef BROKER_COMMON_LOG_H_
#define BROKER_COMMON_LOG_H_

// Minimal structured logging: one line per event on stderr, `ts=... level=... msg="..." k=v`.
// Debian's Abseil (20220623) predates absl/log, and the broker needs no more than this.
// Thread-safe. Never pass key material or payload bytes.

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

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

// A field that keeps its type: in JSON a number or boolean is written unquoted, so log
// pipelines can compare and sum it without parsing strings. (LogEvent's preformatted fields
// all become JSON strings.) In text the line reads as with LogField.
class LogValue {
 public:
  static LogValue Str(absl::string_view key, absl::string_view value);
  static LogValue Int(absl::string_view key, int64_t value);
  static LogValue Bool(absl::string_view key, bool value);

  const std::string& key() const { return key_; }
  const std::string& value() const { return value_; }
  // False for numbers and booleans: written as JSON literals.
  bool quoted() const { return quoted_; }

 private:
  LogValue(absl::string_view key, std::string value, bool quoted);
  std::string key_;
  std::string value_;
  bool quoted_;
};

// LogEvent with typed fields (a braced list or a vector).
void LogEventWith(LogLevel level, absl::string_view msg, absl::Span<const LogValue> fields);

// True when lines are written as JSON (SetLogFormat), for output that must match the log
// stream, such as the config warnings printed at start.
bool LogFormatIsJson();

}  // namespace tlsbroker

#endif  // BROKER_COMMON_LOG_H_
