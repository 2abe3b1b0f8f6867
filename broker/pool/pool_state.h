#ifndef BROKER_POOL_POOL_STATE_H_
#define BROKER_POOL_POOL_STATE_H_

// Internal to broker/pool: the bookkeeping of one backend's pool, without I/O.

#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "broker/config/options.h"
#include "broker/pool/socket_budget.h"

namespace tlsbroker {

// What the pool knows and decides about its slots, idle sockets and waiters: which caller gets
// which socket, when a new socket is opened, when one is closed, when callers fail, the
// broker-wide socket budget, the backoff after connect failures, shutdown and resume.
//
// It does no I/O, takes no locks, starts no timers and reads no clock: every entry point gets
// `now` from its caller and appends what must happen to an Actions, which the caller carries
// out (SocketPool does, under its mutex for the decisions and outside it for the I/O). Keeping
// the decisions free of threads and time lets them be tested step by step, and lets them move
// onto a per-backend strand later without change.
//
// Sockets are named by the id the caller gave them (PooledSocket::id) and slots by their
// 1-based number; the caller keeps the objects. Every entry point that names a socket checks
// that the slot still holds it, so a stale event (a socket already forgotten) changes nothing.
//
// Not thread-safe: one caller at a time.
class PoolState final {
 public:
  enum class SlotState { kEmpty, kConnecting, kIdle, kLeased };

  // One queued caller. `order` is its place in the FIFO (smaller = earlier).
  struct Waiter {
    uint64_t ticket = 0;
    int slot = 0;  // 0 = any socket.
    absl::Time deadline = absl::InfiniteFuture();
    absl::Time enqueued_at;
    int64_t order = 0;
  };
  // Waiter `waiter` gets the socket `socket` in `slot` (now marked leased).
  struct Grant {
    Waiter waiter;
    int slot = 0;
    uint64_t socket = 0;
  };
  struct Failure {
    Waiter waiter;
    absl::Status status;
  };
  // Close socket `socket` (no longer in `slot`); `reason` is the sockets_closed_total label.
  struct Close {
    int slot = 0;
    uint64_t socket = 0;
    std::string reason;
  };
  // What the caller must do, in this order: fail, close, connect, grant. The timers are set
  // when the field is present: to the time given, or cancelled when it is InfiniteFuture.
  // Only the latest value counts (see deadline_timer_at()).
  struct Actions {
    std::vector<Failure> failures;
    std::vector<Close> closes;
    std::vector<int> connects;  // Slots now connecting: open a socket for each.
    std::vector<Grant> grants;
    std::optional<absl::Time> deadline_timer;  // When the earliest waiter's deadline passes.
    std::optional<absl::Time> retry_timer;     // When the backoff ends: call OnRetryTimer.
    bool empty() const {
      return failures.empty() && closes.empty() && connects.empty() && grants.empty() &&
             !deadline_timer && !retry_timer;
    }
  };

  // One slot as the listing and the tests see it.
  struct SlotInfo {
    SlotState state = SlotState::kEmpty;
    uint64_t socket = 0;  // 0 unless idle or leased.
    // Leased and its lease has ended: the socket is on its way back (the clean check runs on
    // its loop). Counted as supply so a caller arriving meanwhile waits for it instead of
    // making the pool open another socket.
    bool returning = false;
    absl::Time created_at;
    absl::Time last_released;
    absl::Time retire_at = absl::InfiniteFuture();
    int leases_served = 0;
    // Non-empty: the socket must not serve another lease; closed with this reason when its
    // lease ends.
    std::string retire_reason;
  };

  // `budget` may be null (no broker-wide limit); it must outlive this. `seed` drives the
  // backoff jitter, so tests can repeat it.
  PoolState(std::string backend, const PoolOptions& options, SocketBudget* budget,
            uint64_t seed);
  // Gives the budget tokens still held back (the pool's sockets are gone with it).
  ~PoolState();
  PoolState(const PoolState&) = delete;
  PoolState& operator=(const PoolState&) = delete;

  // New settings (reload). max_sockets must not change.
  void SetOptions(std::string backend, const PoolOptions& options);

  // Starts the prewarm (min_idle). False when already started.
  bool Start(absl::Time now, Actions* actions);

  // Queues a caller (`slot` 0: any socket) and serves what can be served. Its outcome is in
  // `actions` or comes later: a grant, or a failure (kUnavailable when shut down or the backend
  // is failing, kResourceExhausted for max_waiters or the budget, kDeadlineExceeded,
  // kCancelled). Returns its ticket.
  uint64_t Acquire(int slot, absl::Time deadline, absl::Time now, Actions* actions);
  // Fails the waiter `ticket` with kCancelled; no-op when it is no longer waiting.
  void Cancel(uint64_t ticket, Actions* actions);
  // The deadline timer fired: waiters whose deadline has passed fail.
  void OnDeadlineTimer(absl::Time now, Actions* actions);
  // The retry timer fired (the backoff may be over).
  void OnRetryTimer(absl::Time now, Actions* actions);

  // A connecting slot's socket is ready. False (slot emptied; the caller closes the socket)
  // when the pool was shut down meanwhile.
  bool OnConnected(int slot, uint64_t socket, absl::Time now, absl::Time retire_at, bool resumed,
                   Actions* actions);
  // A connecting slot's every address failed: the backoff starts.
  void OnConnectFailed(int slot, const absl::Status& status, absl::Time now, Actions* actions);
  // A connecting slot's socket is not used (the TLS context changed while it connected); not a
  // connect failure.
  void OnConnectDiscarded(int slot, absl::Time now, Actions* actions);

  // A granted socket turned out unusable when its lease was to begin: the slot empties and the
  // waiter goes back to the front of the queue (it was first in line, and has waited already).
  void OnGrantFailed(const Waiter& waiter, int slot, uint64_t socket, absl::Time now,
                     Actions* actions);
  // The retire reason of a granted socket as its lease begins ("expired" from `now` on when
  // nothing retired it before); empty when it may serve. "gone" if the slot no longer holds
  // it, which cannot happen while a grant is on its way: only its own lease frees the slot.
  std::string RetireReasonAtLeaseStart(int slot, uint64_t socket, absl::Time now);
  // A lease began on the socket: returns how many leases it has served, this one included.
  int OnLeaseStarted(int slot, uint64_t socket);
  // The socket's lease ended; its clean check is still to come (see SlotInfo::returning).
  void NoteReturning(int slot, uint64_t socket);
  struct ReturnResult {
    bool known = false;  // False: the slot no longer holds the socket; nothing changed.
    bool keep = false;   // True: back to idle. False: closed with `reason`.
    std::string reason;
  };
  // The lease of the socket ended; `clean` says whether the socket may serve again, and when
  // it is not `close_reason` is the label it closes with.
  ReturnResult OnReturned(int slot, uint64_t socket, bool clean, absl::string_view close_reason,
                          absl::Time now, Actions* actions);
  // A leased socket was closed by its lease (max_lease_duration): the slot empties.
  bool Forget(int slot, uint64_t socket, absl::Time now, Actions* actions);
  // An idle socket broke (closed by the backend, or sent bytes). True: removed; the caller
  // closes it.
  bool OnIdleBroken(int slot, uint64_t socket, absl::Time now, Actions* actions);

  enum class RetireResult { kGone, kIdleClosed, kLeasedRetired };
  // Retires the socket: an idle one closes (a Close action) at once, a leased one when its
  // lease ends. Does not dispatch: the caller calls Dispatch after a batch.
  RetireResult Retire(int slot, uint64_t socket, absl::string_view reason, Actions* actions);

  // Idle retirement (certificate expiry, max_lifetime, idle_timeout above min_idle) and
  // leased sockets whose certificate is about to expire; then dispatches. No-op when shut
  // down.
  void Sweep(absl::Time now, Actions* actions);

  // Stops lending: waiters fail, idle sockets close, leased ones close when their lease ends.
  void Shutdown(absl::Time now, Actions* actions);
  // Undoes Shutdown. False when not shut down.
  bool Resume(absl::Time now, Actions* actions);

  // Serves waiters and opens sockets as the state allows. Every entry point above that changes
  // anything calls it; exposed for a batch of Retire calls and for a reload.
  void Dispatch(absl::Time now, Actions* actions);

  // Figures.
  int max_sockets() const { return static_cast<int>(slots_.size()); }
  bool shut_down() const { return shut_down_; }
  bool started() const { return started_; }
  const SlotInfo& slot(int n) const { return slots_[n - 1]; }
  int connecting() const { return static_cast<int>(connecting_.size()); }
  int idle() const { return static_cast<int>(idle_.size()); }
  int leased() const { return static_cast<int>(leased_.size()); }
  int waiters() const { return static_cast<int>(waiters_.size()); }
  // Idle slots, least recently used first.
  const std::vector<int>& idle_slots() const { return idle_; }
  // Waiters in the order they are served.
  std::vector<Waiter> Waiters() const;
  int budget_held() const { return budget_held_; }
  absl::Time backoff_until() const { return backoff_until_; }
  int consecutive_failures() const { return consecutive_failures_; }
  const absl::Status& last_failure() const { return last_failure_; }
  uint64_t sockets_created() const { return sockets_created_; }
  uint64_t handshakes_full() const { return handshakes_full_; }
  uint64_t handshakes_resumed() const { return handshakes_resumed_; }
  uint64_t leases_granted() const { return leases_granted_; }
  uint64_t connect_failures() const { return connect_failures_; }
  // Where the timers are now (InfiniteFuture: not armed). The deadline timer is never later than
  // the earliest waiter's deadline, but may be earlier (it is not moved later when that waiter
  // leaves; it fires and is aimed again). A caller that carries out timer
  // actions on another thread reads these when it gets there, so actions carried out out of
  // order still leave the timer where the state wants it.
  absl::Time deadline_timer_at() const { return deadline_armed_; }
  absl::Time retry_timer_at() const { return retry_at_; }

  // Checks the invariants (tests): empty when they hold, otherwise what is wrong.
  std::string CheckInvariants() const;

 private:
  void SetState(int slot, SlotState state);
  // Takes a budget token for one more socket (always true without a budget).
  bool TakeBudget();
  // Marks the first empty slot connecting and takes a token for it. 0 when every slot is in
  // use; kNoBudget when a slot is free but the budget is used up.
  int ReserveEmptySlot();
  static constexpr int kNoBudget = -1;
  absl::Status BudgetExhausted() const;
  absl::Status Draining() const;
  // Takes the waiter out of every index; returns it.
  Waiter TakeWaiter(uint64_t ticket);
  void Fail(uint64_t ticket, absl::Status status, Actions* actions);
  void GrantTo(uint64_t ticket, int slot, Actions* actions);
  void ScheduleRetry(absl::Time now, Actions* actions);
  // Re-aims the deadline timer at the earliest deadline when that changed.
  void SyncDeadlineTimer(Actions* actions);
  bool Holds(int slot, uint64_t socket, SlotState state) const;
  absl::Duration Jittered(absl::Duration d);

  std::string backend_;
  PoolOptions options_;
  SocketBudget* const budget_;
  std::mt19937_64 rng_;

  std::vector<SlotInfo> slots_;
  // One index per slot state, so counts are sizes and the first empty slot is at hand.
  std::set<int> empty_;
  std::set<int> connecting_;
  std::vector<int> idle_;  // Most recently used last: handed out first, so surplus ages out.
  std::set<int> leased_;
  int returning_ = 0;  // Leased slots with `returning` set.

  // Waiters by ticket, in FIFO order, and by deadline.
  std::map<uint64_t, Waiter> waiters_;
  std::map<int64_t, uint64_t> fifo_;  // order -> ticket.
  std::set<std::pair<absl::Time, uint64_t>> deadlines_;  // Finite deadlines only.
  uint64_t next_ticket_ = 1;
  int64_t next_order_ = 0;   // For the back of the queue.
  int64_t front_order_ = 0;  // For the front (a waiter put back): decreasing.

  bool shut_down_ = false;
  bool started_ = false;
  int consecutive_failures_ = 0;
  absl::Time backoff_until_ = absl::InfinitePast();
  absl::Status last_failure_;
  absl::Time retry_at_ = absl::InfiniteFuture();
  absl::Time deadline_armed_ = absl::InfiniteFuture();
  int budget_held_ = 0;  // One token per non-empty slot.

  uint64_t sockets_created_ = 0;
  uint64_t handshakes_full_ = 0;
  uint64_t handshakes_resumed_ = 0;
  uint64_t leases_granted_ = 0;
  uint64_t connect_failures_ = 0;
};

}  // namespace tlsbroker

#endif  // BROKER_POOL_POOL_STATE_H_
