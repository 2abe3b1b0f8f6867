// The background log writer: lines leave the caller's thread, none is lost or torn, and a
// stalled log reader costs dropped (counted) lines, never a blocked caller.

#include "broker/common/log_writer.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "broker/common/log.h"
#include "gtest/gtest.h"

namespace tlsbroker {
namespace {

// A pipe whose read end the test drains; the writer thread writes into the other end.
class Pipe {
 public:
  Pipe() {
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    read_ = fds[0];
    write_ = fds[1];
  }
  ~Pipe() {
    ::close(read_);
    ::close(write_);
  }
  int write_fd() const { return write_; }
  // Everything written so far (the writer has flushed or stopped, so nothing more is coming
  // unless the test logs again).
  std::string Drain() {
    std::string out;
    char buf[65536];
    while (true) {
      pollfd p{read_, POLLIN, 0};
      if (::poll(&p, 1, 0) <= 0) break;
      ssize_t n = ::read(read_, buf, sizeof buf);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
  // Shrinks the pipe to its minimum (one page) so a test can fill it quickly.
  void MakeSmall() { ::fcntl(write_, F_SETPIPE_SZ, 4096); }

 private:
  int read_ = -1;
  int write_ = -1;
};

TEST(LogWriterTest, EveryLineFromManyThreadsArrivesWholeAndInEachThreadsOrder) {
  Pipe pipe;
  StartBackgroundLogWriter(pipe.write_fd(), 4 << 20);
  constexpr int kThreads = 4;
  constexpr int kLinesEach = 500;  // ~100 KB in all: more than the pipe holds at once.
  const uint64_t dropped_before = DroppedLogLines();
  std::string received;
  std::thread reader([&] {
    // Reads while the threads log, so the pipe never fills and nothing needs dropping.
    while (true) {
      std::string part = pipe.Drain();
      received += part;
      if (received.find("thread=done") != std::string::npos) return;
      if (part.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t] {
      for (int i = 0; i < kLinesEach; ++i) {
        LogEvent(LogLevel::kInfo, "lease ended",
                 absl::StrCat("thread=", t, " seq=", i, " ", LogField("pad", std::string(120, 'x'))));
      }
    });
  }
  for (auto& th : threads) th.join();
  FlushLogs();
  LogEvent(LogLevel::kInfo, "end", "thread=done");
  StopBackgroundLogWriter();
  reader.join();

  EXPECT_EQ(DroppedLogLines(), dropped_before);
  std::map<int, int> next_seq;
  int lines = 0;
  for (absl::string_view line : absl::StrSplit(received, '\n', absl::SkipEmpty())) {
    if (line.find("thread=done") != absl::string_view::npos) continue;
    ++lines;
    // Whole lines only: each starts with the timestamp and carries thread, seq and the pad.
    ASSERT_TRUE(absl::StartsWith(line, "ts=")) << line;
    ASSERT_NE(line.find(std::string(120, 'x')), absl::string_view::npos) << line;
    size_t t_at = line.find("thread=");
    size_t s_at = line.find(" seq=");
    ASSERT_NE(t_at, absl::string_view::npos);
    ASSERT_NE(s_at, absl::string_view::npos);
    int t = 0, seq = 0;
    ASSERT_TRUE(absl::SimpleAtoi(line.substr(t_at + 7, s_at - t_at - 7), &t)) << line;
    size_t s_end = line.find(' ', s_at + 1);
    ASSERT_TRUE(absl::SimpleAtoi(line.substr(s_at + 5, s_end - s_at - 5), &seq)) << line;
    EXPECT_EQ(seq, next_seq[t]) << "thread " << t << " lines out of order";
    next_seq[t] = seq + 1;
  }
  EXPECT_EQ(lines, kThreads * kLinesEach);
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(next_seq[t], kLinesEach) << "thread " << t;
}

TEST(LogWriterTest, FlushReturnsOnlyOnceEveryEarlierLineIsWritten) {
  Pipe pipe;
  StartBackgroundLogWriter(pipe.write_fd(), 4 << 20);
  for (int i = 0; i < 20; ++i) LogEvent(LogLevel::kInfo, "audit", absl::StrCat("n=", i));
  FlushLogs();
  // No reader ran meanwhile: whatever is in the pipe now was written before FlushLogs returned.
  std::string got = pipe.Drain();
  StopBackgroundLogWriter();
  for (int i = 0; i < 20; ++i) {
    EXPECT_NE(got.find(absl::StrCat(" n=", i, "\n")), std::string::npos) << "line " << i;
  }
}

TEST(LogWriterTest, StalledReaderCostsCountedDroppedLinesNotABlockedCaller) {
  Pipe pipe;
  pipe.MakeSmall();
  // 8 KiB of buffer behind a 4 KiB pipe nobody reads: the writer thread blocks in write(2) and
  // the buffer fills. If LogEvent blocked, this loop would never end (the test would hang).
  StartBackgroundLogWriter(pipe.write_fd(), 8 << 10);
  const uint64_t dropped_before = DroppedLogLines();
  constexpr int kLines = 2000;  // ~250 KB: far more than pipe and buffer hold.
  for (int i = 0; i < kLines; ++i) {
    LogEvent(LogLevel::kInfo, "lease ended",
             absl::StrCat("seq=", i, " ", LogField("pad", std::string(100, 'y'))));
  }
  const uint64_t dropped = DroppedLogLines() - dropped_before;
  EXPECT_GT(dropped, 0u);
  // Unblock the writer: read until it has written all it kept, then stop it.
  std::string received;
  std::thread reader([&] {
    while (true) {
      std::string part = pipe.Drain();
      received += part;
      if (received.find("seq=marker") != std::string::npos) return;
      if (part.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  // Warnings wake the writer at once; wait until the buffer has room for the marker.
  while (true) {
    const uint64_t before = DroppedLogLines();
    LogEvent(LogLevel::kWarning, "marker", "seq=marker");
    if (DroppedLogLines() == before) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  FlushLogs();
  StopBackgroundLogWriter();
  reader.join();
  int kept = 0;
  for (absl::string_view line : absl::StrSplit(received, '\n', absl::SkipEmpty())) {
    ASSERT_TRUE(absl::StartsWith(line, "ts=")) << "a torn line: " << line;
    if (line.find("seq=marker") == absl::string_view::npos) ++kept;
  }
  // Every line was either written or counted as dropped.
  EXPECT_EQ(static_cast<uint64_t>(kept) + dropped, static_cast<uint64_t>(kLines));
}

// Typed fields: in JSON numbers and booleans are literals and strings are escaped; in text the
// line reads as LogField writes it. (LogEvent's text fields would all become JSON strings.)
TEST(LogWriterTest, TypedFieldsKeepTheirTypeInJsonAndReadAsBeforeInText) {
  Pipe pipe;
  StartBackgroundLogWriter(pipe.write_fd(), 4 << 20);
  SetLogFormat(LogFormat::kJson);
  LogEventWith(LogLevel::kWarning, "config warning",
               {LogValue::Str("file", "/etc/a \"b\".yaml"), LogValue::Int("line", 12),
                LogValue::Int("column", -3), LogValue::Bool("stale", true)});
  SetLogFormat(LogFormat::kText);
  LogEventWith(LogLevel::kWarning, "config warning",
               {LogValue::Str("file", "/etc/a b.yaml"), LogValue::Int("line", 12)});
  FlushLogs();
  const std::string got = pipe.Drain();
  StopBackgroundLogWriter();
  EXPECT_NE(got.find("\"level\":\"warning\",\"msg\":\"config warning\","
                     "\"file\":\"/etc/a \\\"b\\\".yaml\",\"line\":12,\"column\":-3,"
                     "\"stale\":true}\n"),
            std::string::npos)
      << got;
  EXPECT_NE(got.find("level=warning msg=\"config warning\" file=\"/etc/a b.yaml\" line=12\n"),
            std::string::npos)
      << got;
}

}  // namespace
}  // namespace tlsbroker
