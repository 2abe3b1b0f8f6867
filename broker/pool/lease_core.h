#ifndef BROKER_POOL_LEASE_CORE_H_
#define BROKER_POOL_LEASE_CORE_H_

// Internal to broker/pool: the shared state behind a Lease.

#include <atomic>
#include <memory>
#include <string>

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include "broker/config/options.h"
#include "broker/framing/frame_decoder.h"
#include "broker/metrics/pool_observer.h"
#include "broker/pool/lease.h"
#include "broker/pool/lease_owner.h"
#include "broker/pool/pooled_socket.h"

namespace tlsbroker {

// Everything below runs on the socket's loop, so the fields need no lock; wrote_any_ and
// posted_ are atomic because callers on other threads read them.
//
// Entry points called on the socket's loop run at once (OnLoop); from another thread they are
// posted there. Running at once saves a trip through the loop's queue for each step of a Call
// (acquire, write, read, release all happen on the loop), but the user of a Lease must never
// find its own callback running inside its call into the lease (it may hold a lock the
// callback takes): Deliver posts a callback that became due while an entry point runs inline.
class LeaseCore final : public std::enable_shared_from_this<LeaseCore> {
 public:
  // `pool` lent `socket` and takes it back (LeaseOwner); `options` are the backend's settings
  // as the lease begins; `observer` is the backend's.
  static std::shared_ptr<LeaseCore> Create(std::shared_ptr<LeaseOwner> pool,
                                           std::shared_ptr<const BackendOptions> options,
                                           std::shared_ptr<BackendObserver> observer,
                                           std::shared_ptr<PooledSocket> socket, LeaseInfo info,
                                           std::string caller, std::string trace_parent = "");
  ~LeaseCore();

  const LeaseInfo& info() const { return info_; }
  bool wrote_any() const { return wrote_any_.load(); }

  void Write(std::string bytes, Lease::StatusCallback done);
  void Read(size_t max_bytes, Lease::ReadCallback done);
  void ReadFrame(Lease::ReadCallback done);
  void MarkBroken(std::string reason);
  void Release();
  // Ends the lease from the pool's side (its socket was retired with ABORT_LEASE): the socket
  // is closed, and the operation in flight and every later one fail with `status`. No-op once
  // released.
  void Abort(absl::Status status);
  // See Lease::SetTimeout.
  void SetTimeout(absl::Duration after, absl::Status status);

 private:
  LeaseCore(std::shared_ptr<LeaseOwner> pool, std::shared_ptr<const BackendOptions> options,
            std::shared_ptr<BackendObserver> observer, std::shared_ptr<PooledSocket> socket,
            LeaseInfo info, std::string caller, std::string trace_parent);
  void StartMaxDurationTimer();
  void Reclaim();
  // Abort on the loop; `what` names the cause in the log line. `io_error`: the socket is
  // counted closed "broken" (retired), otherwise "dirty" (it may work, but owes an answer).
  void AbortOnLoop(absl::Status status, absl::string_view what, bool io_error);
  void BreakOnLoop(std::string reason, bool io_error = false);
  void ContinueReadFrame(std::string acc, Lease::ReadCallback done);
  void CountForRekey(size_t bytes);
  asio::io_context& io() { return socket_->tls->io(); }
  // Runs `fn` now when on the socket's loop and nothing posted earlier is still queued (so the
  // caller's order is kept), otherwise posts it to the loop.
  template <typename Fn>
  void OnLoop(Fn fn) {
    if (posted_.load(std::memory_order_acquire) == 0 &&
        io().get_executor().running_in_this_thread()) {
      ++inline_depth_;
      fn();
      --inline_depth_;
      return;
    }
    posted_.fetch_add(1, std::memory_order_acq_rel);
    asio::post(io(), [self = shared_from_this(), fn = std::move(fn)]() mutable {
      self->posted_.fetch_sub(1, std::memory_order_acq_rel);
      fn();
    });
  }
  // Calls the user's callback: directly when the loop got here on its own (an I/O completion,
  // a posted entry point), posted when an entry point is running inline.
  template <typename Callback, typename Value>
  void Deliver(Callback done, Value value) {
    if (inline_depth_ == 0) {
      std::move(done)(std::move(value));
      return;
    }
    asio::post(io(), [done = std::move(done), value = std::move(value)]() mutable {
      std::move(done)(std::move(value));
    });
  }

  const std::shared_ptr<LeaseOwner> pool_;
  // The backend's settings when the lease began: a reload does not change a running lease.
  const std::shared_ptr<const BackendOptions> options_;
  const std::shared_ptr<BackendObserver> observer_;
  const std::shared_ptr<PooledSocket> socket_;
  const LeaseInfo info_;
  const std::string caller_;
  // The caller's W3C traceparent (already validated), for the audit line; may be empty.
  const std::string trace_parent_;
  const absl::Time granted_at_;
  asio::steady_timer max_duration_timer_;
  asio::steady_timer timeout_timer_;  // SetTimeout; cancelled at release.
  std::unique_ptr<FrameDecoder> request_decoder_;   // Tracks frame boundaries we sent.
  std::unique_ptr<FrameDecoder> response_decoder_;  // Tracks frame boundaries we received.
  std::atomic<bool> wrote_any_{false};
  std::atomic<int> posted_{0};  // Entry points posted and not yet run.
  int inline_depth_ = 0;        // Entry points running inline (OnLoop), nested.
  bool broken_ = false;
  bool broken_by_io_error_ = false;
  std::string broken_reason_;
  bool reclaimed_ = false;
  absl::Status abort_status_;  // Set by Abort.
  bool released_ = false;
  bool read_in_flight_ = false;
  bool cancelling_read_ = false;  // Release is abandoning a read that consumed nothing.
  bool write_in_flight_ = false;
  uint64_t bytes_sent_ = 0;
  uint64_t bytes_received_ = 0;
};

}  // namespace tlsbroker

#endif  // BROKER_POOL_LEASE_CORE_H_
