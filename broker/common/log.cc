#include "broker/common/log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "broker/common/log_writer.h"

namespace tlsbroker {
namespace {

LogLevel LevelFromEnv() {
  const char* env = std::getenv("TLSB_LOG_LEVEL");
  if (env == nullptr) return LogLevel::kInfo;
  std::string v = absl::AsciiStrToLower(env);
  if (v == "debug") return LogLevel::kDebug;
  if (v == "warning") return LogLevel::kWarning;
  if (v == "error") return LogLevel::kError;
  return LogLevel::kInfo;
}

std::atomic<int>& Format() {
  static std::atomic<int> format{static_cast<int>(LogFormat::kText)};
  return format;
}

void AppendJsonString(std::string* out, absl::string_view s) {
  out->push_back('"');
  for (char c : s) {
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\t': out->append("\\t"); break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out->append(absl::StrFormat("\\u%04x", c));
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

// Turns our own `k=v k2="v \"2\""` field text (as LogField writes it) into JSON members.
void AppendFieldsAsJson(std::string* out, absl::string_view fields) {
  size_t i = 0;
  while (i < fields.size()) {
    while (i < fields.size() && fields[i] == ' ') ++i;
    size_t eq = fields.find('=', i);
    if (eq == absl::string_view::npos) break;
    absl::string_view key = fields.substr(i, eq - i);
    std::string value;
    i = eq + 1;
    if (i < fields.size() && fields[i] == '"') {
      ++i;
      while (i < fields.size() && fields[i] != '"') {
        if (fields[i] == '\\' && i + 1 < fields.size()) {
          ++i;
          value.push_back(fields[i] == 'n' ? '\n' : fields[i]);
        } else {
          value.push_back(fields[i]);
        }
        ++i;
      }
      ++i;  // Closing quote.
    } else {
      size_t end = fields.find(' ', i);
      if (end == absl::string_view::npos) end = fields.size();
      value = std::string(fields.substr(i, end - i));
      i = end;
    }
    out->push_back(',');
    AppendJsonString(out, key);
    out->push_back(':');
    AppendJsonString(out, value);
  }
}

std::atomic<int>& MinLevel() {
  static std::atomic<int> level{static_cast<int>(LevelFromEnv())};
  return level;
}

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarning: return "warning";
    case LogLevel::kError: return "error";
  }
  return "info";
}

}  // namespace

void SetMinLogLevel(LogLevel level) { MinLevel().store(static_cast<int>(level)); }

void SetLogFormat(LogFormat format) { Format().store(static_cast<int>(format)); }

bool ParseLogLevel(absl::string_view name, LogLevel* level) {
  std::string v = absl::AsciiStrToLower(name);
  if (v == "debug") *level = LogLevel::kDebug;
  else if (v == "info") *level = LogLevel::kInfo;
  else if (v == "warning" || v == "warn") *level = LogLevel::kWarning;
  else if (v == "error") *level = LogLevel::kError;
  else return false;
  return true;
}

bool LogEnabled(LogLevel level) { return static_cast<int>(level) >= MinLevel().load(); }

std::string LogField(absl::string_view key, absl::string_view value) {
  std::string escaped;
  bool quote = value.empty();
  for (char c : value) {
    if (c == '"' || c == '\\') {
      escaped += '\\';
      quote = true;
    }
    if (c == ' ' || c == '=') quote = true;
    if (c == '\n') {
      escaped += "\\n";
      quote = true;
      continue;
    }
    escaped += c;
  }
  return quote ? absl::StrCat(key, "=\"", escaped, "\"") : absl::StrCat(key, "=", escaped);
}

namespace {

// Queues the line for the background writer when it runs (see log_writer.h). An error is
// written by its caller, after everything queued before it: it may be the last line before an
// abort, and must not die in a buffer.
void WriteLine(LogLevel level, const std::string& line) {
  if (level >= LogLevel::kError) {
    FlushLogs();
  } else if (EnqueueLogLine(line, level >= LogLevel::kWarning)) {
    return;
  }
  // One fwrite per line keeps lines from different threads whole.
  std::fwrite(line.data(), 1, line.size(), stderr);
}

// `{"ts":...,"level":...,"msg":...` without the closing brace: the caller appends its members.
std::string JsonLineStart(LogLevel level, absl::string_view msg) {
  std::string json = "{\"ts\":";
  AppendJsonString(&json, absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(),
                                           absl::UTCTimeZone()));
  json += ",\"level\":";
  AppendJsonString(&json, LevelName(level));
  json += ",\"msg\":";
  AppendJsonString(&json, msg);
  return json;
}

}  // namespace

bool LogFormatIsJson() { return Format().load() == static_cast<int>(LogFormat::kJson); }

void LogEvent(LogLevel level, absl::string_view msg, absl::string_view fields) {
  if (!LogEnabled(level)) return;
  if (LogFormatIsJson()) {
    std::string json = JsonLineStart(level, msg);
    AppendFieldsAsJson(&json, fields);
    json += "}\n";
    WriteLine(level, json);
    return;
  }
  std::string line = absl::StrCat(
      "ts=", absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone()),
      " level=", LevelName(level), " ", LogField("msg", msg));
  if (!fields.empty()) absl::StrAppend(&line, " ", fields);
  line += '\n';
  WriteLine(level, line);
}

LogValue::LogValue(absl::string_view key, std::string value, bool quoted)
    : key_(key), value_(std::move(value)), quoted_(quoted) {}

LogValue LogValue::Str(absl::string_view key, absl::string_view value) {
  return LogValue(key, std::string(value), /*quoted=*/true);
}

LogValue LogValue::Int(absl::string_view key, int64_t value) {
  return LogValue(key, absl::StrCat(value), /*quoted=*/false);
}

LogValue LogValue::Bool(absl::string_view key, bool value) {
  return LogValue(key, value ? "true" : "false", /*quoted=*/false);
}

void LogEventWith(LogLevel level, absl::string_view msg, absl::Span<const LogValue> fields) {
  if (!LogEnabled(level)) return;
  if (LogFormatIsJson()) {
    std::string json = JsonLineStart(level, msg);
    for (const LogValue& field : fields) {
      json += ',';
      AppendJsonString(&json, field.key());
      json += ':';
      if (field.quoted()) {
        AppendJsonString(&json, field.value());
      } else {
        json += field.value();
      }
    }
    json += "}\n";
    WriteLine(level, json);
    return;
  }
  std::string text;
  for (const LogValue& field : fields) {
    if (!text.empty()) text += ' ';
    text += field.quoted() ? LogField(field.key(), field.value())
                           : absl::StrCat(field.key(), "=", field.value());
  }
  LogEvent(level, msg, text);
}

}  // namespace tlsbroker
