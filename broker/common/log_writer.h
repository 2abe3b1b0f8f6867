#ifndef BROKER_COMMON_LOG_WRITER_H_
#define BROKER_COMMON_LOG_WRITER_H_

// Log lines written by a background thread, so no Call waits on write(2).
//
// Why: the broker writes one audit line per lease; written inline, the write(2) of that line
// cost about an eighth of the broker's CPU per Call and put a blocking system call (stderr
// can be a slow pipe) on the I/O loops. With the writer running, LogEvent only appends the
// formatted line to a bounded buffer under a short lock; the writer thread takes the whole
// buffer and writes it with as few write(2) calls as it can, at least every 50 ms, at once
// for warnings and errors.
//
// Nothing logged is lost by the process's own doing: FlushLogs() (drain, SIGTERM) and
// StopBackgroundLogWriter() (exit) write everything queued before they return. When the buffer
// is full (the log reader is stalled), a line is dropped rather than blocking the broker, and
// counted (DroppedLogLines(), exported as a metric).
//
// Not started (tools, most tests): LogEvent writes each line itself, as before.

#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"

namespace tlsbroker {

// Starts the writer thread for file descriptor `fd` (stderr by default). `capacity_bytes`
// bounds the buffered lines. Calling it while running does nothing.
void StartBackgroundLogWriter(int fd = 2, size_t capacity_bytes = 4 << 20);

// Returns once every line logged before the call has been written (no-op when not running).
void FlushLogs();

// Flushes, then stops the thread: later lines are written synchronously again.
void StopBackgroundLogWriter();

// Lines dropped because the buffer was full, since the process started.
uint64_t DroppedLogLines();

// For LogEvent: queues one whole line (with its newline). False when the writer is not
// running, so the caller writes the line itself. `urgent` wakes the writer at once.
bool EnqueueLogLine(absl::string_view line, bool urgent);

}  // namespace tlsbroker

#endif  // BROKER_COMMON_LOG_WRITER_H_
