#include "broker/io/event_loops.h"

#include <pthread.h>

#include <future>
#include <string>

#include <asio/post.hpp>

namespace tlsbroker {

EventLoops::EventLoops(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::thread::hardware_concurrency());
  if (threads <= 0) threads = 1;
  for (int i = 0; i < threads; ++i) {
    auto loop = std::make_unique<Loop>();
    Loop* raw = loop.get();
    loop->thread = std::thread([raw, i] {
      std::string name = "tlsb-io-" + std::to_string(i);
      pthread_setname_np(pthread_self(), name.c_str());
      raw->io.run();
    });
    loops_.push_back(std::move(loop));
  }
  maintenance_ = std::make_unique<Loop>();
  Loop* raw = maintenance_.get();
  maintenance_->thread = std::thread([raw] {
    pthread_setname_np(pthread_self(), "tlsb-maint");
    raw->io.run();
  });
}

EventLoops::~EventLoops() {
  // Let work already posted run (socket closes send close_notify and break the callbacks'
  // references); twice, for the completions those closes queue.
  RunPending();
  RunPending();
  ForEachLoop([](Loop& loop) {
    loop.work.reset();
    loop.io.stop();
  });
  ForEachLoop([](Loop& loop) {
    if (loop.thread.joinable()) loop.thread.join();
  });
  ForEachLoop([](Loop& loop) { loop.io.DestroyQueuedHandlers(); });
}

void EventLoops::RunPending() {
  ForEachLoop([](Loop& loop) {
    std::promise<void> done;
    asio::post(loop.io, [&done] { done.set_value(); });
    done.get_future().wait();
  });
}

asio::io_context& EventLoops::Next() {
  unsigned n = next_.fetch_add(1, std::memory_order_relaxed);
  return loops_[n % loops_.size()]->io;
}

}  // namespace tlsbroker
