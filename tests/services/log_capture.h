#ifndef TESTS_SERVICES_LOG_CAPTURE_H_
#define TESTS_SERVICES_LOG_CAPTURE_H_

// Captures the broker's log lines in-process: while a LogCapture lives, the background log
// writer (broker/common/log_writer.h, as the tlsbroker binary runs it) writes every line below
// error level into a temporary file instead of stderr. Lines() flushes and reads them back.

#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "broker/common/log.h"
#include "broker/common/log_writer.h"
#include "tests/support/subprocess.h"

namespace tlsbroker::testutil {

class LogCapture {
 public:
  LogCapture() {
    path_ = MakeTempDir("tlsb-log-capture") + "/log";
    fd_ = ::open(path_.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
    StartBackgroundLogWriter(fd_);
  }
  ~LogCapture() {
    StopBackgroundLogWriter();
    SetLogFormat(LogFormat::kText);
    if (fd_ >= 0) ::close(fd_);
    ::unlink(path_.c_str());
  }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  // Every line logged so far.
  std::vector<std::string> Lines() const {
    FlushLogs();
    std::vector<std::string> out;
    for (absl::string_view line : absl::StrSplit(ReadFileOrEmpty(path_), '\n', absl::SkipEmpty())) {
      out.emplace_back(line);
    }
    return out;
  }

  // The lines that contain every one of `parts`.
  std::vector<std::string> Matching(const std::vector<std::string>& parts) const {
    std::vector<std::string> out;
    for (const std::string& line : Lines()) {
      bool all = true;
      for (const std::string& part : parts) all = all && absl::StrContains(line, part);
      if (all) out.push_back(line);
    }
    return out;
  }

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace tlsbroker::testutil

#endif  // TESTS_SERVICES_LOG_CAPTURE_H_
