#include "broker/common/log_writer.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace tlsbroker {
namespace {

// Lines wait at most this long; a buffer this full is written at once.
constexpr auto kMaxDelay = std::chrono::milliseconds(50);
constexpr size_t kWriteAtBytes = 64 << 10;

// std::mutex directly, not the project's annotated Mutex: the condition variables need the
// native mutex, and this state is private to this file.
struct Writer {
  std::mutex mu;
  std::condition_variable wake;     // The writer thread waits on it.
  std::condition_variable written;  // FlushLogs waits on it.
  std::thread thread;
  bool running = false;
  bool stopping = false;
  bool urgent = false;
  int fd = 2;
  size_t capacity = 0;
  std::string buffer;
  uint64_t queued_bytes = 0;   // Appended since start, in total.
  uint64_t written_bytes = 0;  // Taken from the buffer and written, in total.
  uint64_t flush_waiters = 0;
};

Writer& TheWriter() {
  // Never destroyed: a line may be logged from a static destructor after main returns.
  static Writer* writer = new Writer;
  return *writer;
}

std::atomic<uint64_t> g_dropped{0};

void WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n > 0) {
      done += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return;  // A closed or broken log stream: nothing better to do with the lines.
    }
  }
}

void RunWriter(Writer* w) {
  std::string batch;
  std::unique_lock<std::mutex> lock(w->mu);
  while (true) {
    w->wake.wait_for(lock, kMaxDelay, [w] {
      return w->stopping || w->urgent || w->flush_waiters > 0 ||
             w->buffer.size() >= kWriteAtBytes;
    });
    w->urgent = false;
    batch.clear();
    batch.swap(w->buffer);  // The buffer keeps the batch's old capacity: no reallocation.
    const uint64_t upto = w->queued_bytes;
    const bool stop = w->stopping;
    lock.unlock();
    if (!batch.empty()) WriteAll(w->fd, batch);
    lock.lock();
    w->written_bytes = upto;
    w->written.notify_all();
    if (stop && w->buffer.empty()) return;
  }
}

}  // namespace

void StartBackgroundLogWriter(int fd, size_t capacity_bytes) {
  Writer& w = TheWriter();
  std::lock_guard<std::mutex> lock(w.mu);
  if (w.running) return;
  w.fd = fd;
  w.capacity = capacity_bytes;
  w.stopping = false;
  w.running = true;
  w.thread = std::thread(RunWriter, &w);
}

void FlushLogs() {
  Writer& w = TheWriter();
  std::unique_lock<std::mutex> lock(w.mu);
  if (!w.running) return;
  const uint64_t target = w.queued_bytes;
  ++w.flush_waiters;
  w.wake.notify_one();
  w.written.wait(lock, [&w, target] { return w.written_bytes >= target || !w.running; });
  --w.flush_waiters;
}

void StopBackgroundLogWriter() {
  Writer& w = TheWriter();
  std::thread thread;
  {
    std::lock_guard<std::mutex> lock(w.mu);
    if (!w.running || w.stopping) return;
    w.stopping = true;
    w.wake.notify_one();
    thread = std::move(w.thread);
  }
  thread.join();  // The writer empties the buffer before it returns.
  std::lock_guard<std::mutex> lock(w.mu);
  w.running = false;
  w.stopping = false;
  w.written.notify_all();
}

uint64_t DroppedLogLines() { return g_dropped.load(std::memory_order_relaxed); }

bool EnqueueLogLine(absl::string_view line, bool urgent) {
  Writer& w = TheWriter();
  std::lock_guard<std::mutex> lock(w.mu);
  // Once stopping, the writer may already have taken its last batch: write inline.
  if (!w.running || w.stopping) return false;
  if (w.buffer.size() + line.size() > w.capacity) {
    g_dropped.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  w.buffer.append(line.data(), line.size());
  w.queued_bytes += line.size();
  if (urgent || w.buffer.size() >= kWriteAtBytes) {
    w.urgent = true;
    w.wake.notify_one();
  }
  return true;
}

}  // namespace tlsbroker
