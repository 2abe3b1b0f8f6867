#ifndef BROKER_IO_EVENT_LOOPS_H_
#define BROKER_IO_EVENT_LOOPS_H_

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

namespace tlsbroker {

// A fixed set of I/O threads, each running one Asio io_context (one event loop per thread).
// A backend socket lives on one loop for its whole life, so its state needs no lock.
//
// Thread-safe. The destructor stops the loops and joins the threads; anything still posted is
// dropped, so owners close their sockets first.
class EventLoops final {
 public:
  // `threads` <= 0 means one per core.
  explicit EventLoops(int threads);
  ~EventLoops();
  EventLoops(const EventLoops&) = delete;
  EventLoops& operator=(const EventLoops&) = delete;

  // The next loop, round robin: spreads sockets over the threads.
  asio::io_context& Next();
  int size() const { return static_cast<int>(loops_.size()); }

  // One more loop, on its own thread, that Next() never hands out, so it carries no socket:
  // for background work that must not delay traffic (each backend's TlsLifecycle ticks here:
  // TLS file checks, CRL parsing, context builds, OCSP re-check scheduling).
  asio::io_context& maintenance() { return maintenance_->io; }

  // Returns once every task posted to any loop before the call has run (e.g. socket closes
  // that must send close_notify before the loops stop). Must not be called from a loop thread.
  void RunPending();

 private:
  // An io_context whose queued handlers can be destroyed on demand. Handlers queued on one
  // loop may own objects (timers, sockets) of another, so every loop drops its handlers
  // before any loop is destroyed.
  class LoopContext : public asio::io_context {  // Not final: Asio derives from it to probe it.
   public:
    using asio::io_context::io_context;
    void DestroyQueuedHandlers() { shutdown(); }
  };
  struct Loop {
    LoopContext io{1};  // Concurrency hint 1: one thread runs each context.
    asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
    std::thread thread;
  };
  // Runs `fn` on every loop: the socket loops, then the maintenance loop.
  template <typename Fn>
  void ForEachLoop(Fn fn) {
    for (auto& loop : loops_) fn(*loop);
    fn(*maintenance_);
  }

  std::vector<std::unique_ptr<Loop>> loops_;
  std::unique_ptr<Loop> maintenance_;
  std::atomic<unsigned> next_{0};
};

}  // namespace tlsbroker

#endif  // BROKER_IO_EVENT_LOOPS_H_
