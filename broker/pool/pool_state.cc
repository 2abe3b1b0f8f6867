#include "broker/pool/pool_state.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "broker/common/status_reason.h"

namespace tlsbroker {

PoolState::PoolState(std::string backend, const PoolOptions& options, SocketBudget* budget,
                     uint64_t seed)
    : backend_(std::move(backend)),
      options_(options),
      budget_(budget),
      rng_(seed),
      slots_(std::max(options.max_sockets, 0)) {
  for (int n = 1; n <= max_sockets(); ++n) empty_.insert(n);
}

PoolState::~PoolState() {
  // The pool goes when nothing uses it any more (no lease, no I/O handler): its sockets are
  // closed, so their tokens go back to the budget shared with the other pools.
  if (budget_ != nullptr) budget_->Give(budget_held_);
  budget_held_ = 0;
}

void PoolState::SetOptions(std::string backend, const PoolOptions& options) {
  backend_ = std::move(backend);
  const int max = max_sockets();
  options_ = options;
  options_.max_sockets = max;  // The slots are the pool's identity (see PrepareReconfigure).
}

bool PoolState::Start(absl::Time now, Actions* actions) {
  if (started_) return false;
  started_ = true;
  Dispatch(now, actions);
  return true;
}

void PoolState::SetState(int n, SlotState state) {
  SlotInfo& s = slots_[n - 1];
  if (s.state == state) return;
  switch (s.state) {
    case SlotState::kEmpty: empty_.erase(n); break;
    case SlotState::kConnecting: connecting_.erase(n); break;
    case SlotState::kIdle:
      idle_.erase(std::remove(idle_.begin(), idle_.end(), n), idle_.end());
      break;
    case SlotState::kLeased:
      leased_.erase(n);
      if (s.returning) --returning_;
      s.returning = false;
      break;
  }
  s.state = state;
  switch (state) {
    case SlotState::kEmpty:
      empty_.insert(n);
      // The socket's own data goes with it; the slot (and its client ID) stays.
      s = SlotInfo();
      // Tokens follow the slots: an empty slot holds none.
      --budget_held_;
      if (budget_ != nullptr) budget_->Give(1);
      break;
    case SlotState::kConnecting: connecting_.insert(n); break;
    case SlotState::kIdle: idle_.push_back(n); break;  // Most recently used.
    case SlotState::kLeased: leased_.insert(n); break;
  }
}

bool PoolState::Holds(int slot, uint64_t socket, SlotState state) const {
  if (slot < 1 || slot > max_sockets()) return false;
  const SlotInfo& s = slots_[slot - 1];
  return s.state == state && s.socket == socket && socket != 0;
}

bool PoolState::TakeBudget() {
  if (budget_ != nullptr && !budget_->TryTake()) return false;
  ++budget_held_;
  return true;
}

int PoolState::ReserveEmptySlot() {
  if (empty_.empty()) return 0;
  if (!TakeBudget()) return kNoBudget;
  int n = *empty_.begin();  // The lowest free slot, so low client IDs are the busy ones.
  SetState(n, SlotState::kConnecting);
  return n;
}

absl::Status PoolState::BudgetExhausted() const {
  return absl::ResourceExhaustedError(absl::StrCat(
      "socket budget exhausted: ", budget_->used(), " of limits.max_backend_sockets ",
      budget_->limit(), " backend sockets are open or connecting across all backends, and no "
      "idle socket of backend ", backend_, " is free; retry later"));
}

absl::Status PoolState::Draining() const {
  return ReasonedError(absl::StatusCode::kUnavailable, "draining",
                       absl::StrCat("backend ", backend_, " is not taking new leases"));
}

absl::Duration PoolState::Jittered(absl::Duration d) {
  // Full jitter in [d/2, d]: many brokers restarting together do not reconnect in lockstep.
  std::uniform_real_distribution<double> dist(0.5, 1.0);
  return d * dist(rng_);
}

std::vector<PoolState::Waiter> PoolState::Waiters() const {
  std::vector<Waiter> out;
  out.reserve(fifo_.size());
  for (const auto& [order, ticket] : fifo_) out.push_back(waiters_.at(ticket));
  return out;
}

PoolState::Waiter PoolState::TakeWaiter(uint64_t ticket) {
  auto it = waiters_.find(ticket);
  Waiter w = it->second;
  waiters_.erase(it);
  fifo_.erase(w.order);
  if (w.deadline != absl::InfiniteFuture()) deadlines_.erase({w.deadline, w.ticket});
  return w;
}

void PoolState::Fail(uint64_t ticket, absl::Status status, Actions* actions) {
  actions->failures.push_back({TakeWaiter(ticket), std::move(status)});
}

void PoolState::GrantTo(uint64_t ticket, int slot, Actions* actions) {
  SetState(slot, SlotState::kLeased);
  actions->grants.push_back({TakeWaiter(ticket), slot, slots_[slot - 1].socket});
}

uint64_t PoolState::Acquire(int slot, absl::Time deadline, absl::Time now, Actions* actions) {
  const uint64_t ticket = next_ticket_++;
  Waiter w;
  w.ticket = ticket;
  w.slot = slot;
  w.deadline = deadline;
  w.enqueued_at = now;
  w.order = next_order_++;
  if (shut_down_) {
    actions->failures.push_back({w, Draining()});
    return ticket;
  }
  waiters_.emplace(ticket, w);
  fifo_.emplace(w.order, ticket);
  if (deadline != absl::InfiniteFuture()) deadlines_.insert({deadline, ticket});
  Dispatch(now, actions);
  // Still queued: it has to wait. max_waiters bounds only callers who wait; one served at once
  // (an idle socket) never counts against it. The dispatch above may have started a socket
  // for it; that socket serves whoever comes next.
  if (waiters_.count(ticket) != 0 && waiters() > options_.max_waiters) {
    Fail(ticket,
         absl::ResourceExhaustedError(absl::StrCat("too many callers waiting for backend ",
                                                   backend_, " (max_waiters ",
                                                   options_.max_waiters, ")")),
         actions);
    SyncDeadlineTimer(actions);
  }
  return ticket;
}

void PoolState::Cancel(uint64_t ticket, Actions* actions) {
  if (waiters_.count(ticket) == 0) return;
  Fail(ticket, absl::CancelledError("acquire cancelled by the caller"), actions);
  SyncDeadlineTimer(actions);
}

void PoolState::OnDeadlineTimer(absl::Time now, Actions* actions) {
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    const uint64_t ticket = deadlines_.begin()->second;
    std::string msg = absl::StrCat("no socket of backend ", backend_, " became free within ",
                                   absl::FormatDuration(now - waiters_.at(ticket).enqueued_at));
    if (!last_failure_.ok()) {
      absl::StrAppend(&msg, " (last connect failure: ", last_failure_.message(), ")");
    }
    Fail(ticket, absl::DeadlineExceededError(msg), actions);
  }
  // The timer that fired is spent: aim it again if anyone still waits.
  deadline_armed_ = absl::InfiniteFuture();
  SyncDeadlineTimer(actions);
}

void PoolState::OnRetryTimer(absl::Time now, Actions* actions) {
  retry_at_ = absl::InfiniteFuture();
  Dispatch(now, actions);
}

void PoolState::SyncDeadlineTimer(Actions* actions) {
  const absl::Time earliest =
      deadlines_.empty() ? absl::InfiniteFuture() : deadlines_.begin()->first;
  // Aimed only sooner, never later: when the earliest waiter is served or gives up, the timer
  // stays where it is, fires, finds nobody due and is aimed again (OnDeadlineTimer). Re-aiming
  // it on every grant would cost a trip to the timer's thread per waiter.
  if (earliest >= deadline_armed_) return;
  deadline_armed_ = earliest;
  actions->deadline_timer = earliest;
}

void PoolState::ScheduleRetry(absl::Time now, Actions* actions) {
  if (retry_at_ != absl::InfiniteFuture()) return;  // Already armed.
  retry_at_ = std::max(backoff_until_, now + absl::Milliseconds(1));
  actions->retry_timer = retry_at_;
}

bool PoolState::OnConnected(int slot, uint64_t socket, absl::Time now, absl::Time retire_at,
                            bool resumed, Actions* actions) {
  if (slots_[slot - 1].state != SlotState::kConnecting) return false;
  if (shut_down_) {
    SetState(slot, SlotState::kEmpty);
    Dispatch(now, actions);
    return false;
  }
  consecutive_failures_ = 0;
  last_failure_ = absl::OkStatus();
  backoff_until_ = absl::InfinitePast();
  ++sockets_created_;
  if (resumed) {
    ++handshakes_resumed_;
  } else {
    ++handshakes_full_;
  }
  SlotInfo& s = slots_[slot - 1];
  s.socket = socket;
  s.created_at = now;
  s.last_released = now;
  s.retire_at = retire_at;
  s.leases_served = 0;
  s.retire_reason.clear();
  SetState(slot, SlotState::kIdle);
  Dispatch(now, actions);
  return true;
}

void PoolState::OnConnectFailed(int slot, const absl::Status& status, absl::Time now,
                                Actions* actions) {
  if (slots_[slot - 1].state != SlotState::kConnecting) return;
  SetState(slot, SlotState::kEmpty);
  ++connect_failures_;
  ++consecutive_failures_;
  last_failure_ = status;
  absl::Duration backoff = options_.backoff_initial;
  for (int i = 1; i < consecutive_failures_ && backoff < options_.backoff_max; ++i) backoff *= 2;
  backoff_until_ = now + Jittered(std::min(backoff, options_.backoff_max));
  Dispatch(now, actions);
}

void PoolState::OnConnectDiscarded(int slot, absl::Time now, Actions* actions) {
  if (slots_[slot - 1].state != SlotState::kConnecting) return;
  SetState(slot, SlotState::kEmpty);
  Dispatch(now, actions);
}

void PoolState::OnGrantFailed(const Waiter& waiter, int slot, uint64_t socket, absl::Time now,
                              Actions* actions) {
  if (Holds(slot, socket, SlotState::kLeased)) SetState(slot, SlotState::kEmpty);
  Waiter w = waiter;
  w.order = --front_order_;
  waiters_.emplace(w.ticket, w);
  fifo_.emplace(w.order, w.ticket);
  if (w.deadline != absl::InfiniteFuture()) deadlines_.insert({w.deadline, w.ticket});
  Dispatch(now, actions);
}

std::string PoolState::RetireReasonAtLeaseStart(int slot, uint64_t socket, absl::Time now) {
  if (!Holds(slot, socket, SlotState::kLeased)) return "gone";
  SlotInfo& s = slots_[slot - 1];
  // Retired (revoked, rotation) since it was granted, or expiring before the sweep saw it.
  if (s.retire_reason.empty() && now >= s.retire_at) s.retire_reason = "expired";
  return s.retire_reason;
}

int PoolState::OnLeaseStarted(int slot, uint64_t socket) {
  ++leases_granted_;
  if (!Holds(slot, socket, SlotState::kLeased)) return 1;
  return ++slots_[slot - 1].leases_served;
}

void PoolState::NoteReturning(int slot, uint64_t socket) {
  if (!Holds(slot, socket, SlotState::kLeased)) return;
  SlotInfo& s = slots_[slot - 1];
  if (!s.returning) ++returning_;
  s.returning = true;
}

PoolState::ReturnResult PoolState::OnReturned(int slot, uint64_t socket, bool clean,
                                              absl::string_view close_reason, absl::Time now,
                                              Actions* actions) {
  ReturnResult r;
  if (!Holds(slot, socket, SlotState::kLeased)) return r;  // Already forgotten (reclaimed).
  r.known = true;
  r.reason = std::string(close_reason);
  SlotInfo& s = slots_[slot - 1];
  r.keep = clean && !shut_down_;
  if (r.keep && options_.mode == PoolMode::kPerLease) {
    r.keep = false;
    r.reason = "per_lease";
  }
  if (r.keep && now - s.created_at >= options_.max_lifetime) {
    r.keep = false;
    r.reason = "lifetime";
  }
  if (r.keep && options_.max_leases_per_socket > 0 &&
      s.leases_served >= options_.max_leases_per_socket) {
    r.keep = false;
    r.reason = "max_leases";
  }
  if (!r.keep && shut_down_ && clean) r.reason = "drain";
  if (s.retire_reason.empty() && now >= s.retire_at) s.retire_reason = "expired";
  if (!s.retire_reason.empty()) {
    r.keep = false;
    r.reason = s.retire_reason;
  }
  if (r.keep) {
    s.last_released = now;
    SetState(slot, SlotState::kIdle);
  } else {
    SetState(slot, SlotState::kEmpty);
  }
  Dispatch(now, actions);
  return r;
}

bool PoolState::Forget(int slot, uint64_t socket, absl::Time now, Actions* actions) {
  if (!Holds(slot, socket, SlotState::kLeased) && !Holds(slot, socket, SlotState::kIdle)) {
    return false;
  }
  SetState(slot, SlotState::kEmpty);
  Dispatch(now, actions);
  return true;
}

bool PoolState::OnIdleBroken(int slot, uint64_t socket, absl::Time now, Actions* actions) {
  if (!Holds(slot, socket, SlotState::kIdle)) return false;
  SetState(slot, SlotState::kEmpty);
  Dispatch(now, actions);
  return true;
}

PoolState::RetireResult PoolState::Retire(int slot, uint64_t socket, absl::string_view reason,
                                          Actions* actions) {
  if (Holds(slot, socket, SlotState::kIdle)) {
    SetState(slot, SlotState::kEmpty);
    actions->closes.push_back({slot, socket, std::string(reason)});
    return RetireResult::kIdleClosed;
  }
  if (Holds(slot, socket, SlotState::kLeased)) {
    SlotInfo& s = slots_[slot - 1];
    if (s.retire_reason.empty()) s.retire_reason = std::string(reason);
    return RetireResult::kLeasedRetired;
  }
  return RetireResult::kGone;
}

void PoolState::Sweep(absl::Time now, Actions* actions) {
  if (shut_down_) return;
  // Oldest-used first, so a surplus beyond min_idle retires the least useful sockets.
  int idle_count = idle();
  std::vector<std::pair<int, const char*>> retire;
  for (int n : idle_) {
    const SlotInfo& s = slots_[n - 1];
    const char* reason = nullptr;
    if (now >= s.retire_at) {
      reason = "expired";
    } else if (now - s.created_at >= options_.max_lifetime) {
      reason = "lifetime";
    } else if (now - s.last_released >= options_.idle_timeout && idle_count > options_.min_idle) {
      reason = "idle";
    }
    if (reason != nullptr) {
      retire.emplace_back(n, reason);
      --idle_count;
    }
  }
  for (const auto& [n, reason] : retire) {
    actions->closes.push_back({n, slots_[n - 1].socket, reason});
    SetState(n, SlotState::kEmpty);
  }
  // Leased sockets whose backend certificate is about to expire finish their lease first.
  for (int n : leased_) {
    SlotInfo& s = slots_[n - 1];
    if (now >= s.retire_at && s.retire_reason.empty()) s.retire_reason = "expired";
  }
  Dispatch(now, actions);
}

void PoolState::Shutdown(absl::Time now, Actions* actions) {
  shut_down_ = true;
  const std::vector<int> idle = idle_;
  for (int n : idle) {
    actions->closes.push_back({n, slots_[n - 1].socket, "drain"});
    SetState(n, SlotState::kEmpty);
  }
  if (retry_at_ != absl::InfiniteFuture()) {
    retry_at_ = absl::InfiniteFuture();
    actions->retry_timer = retry_at_;
  }
  Dispatch(now, actions);
}

bool PoolState::Resume(absl::Time now, Actions* actions) {
  if (!shut_down_) return false;
  shut_down_ = false;
  Dispatch(now, actions);  // Prewarm to min_idle again.
  return true;
}

void PoolState::Dispatch(absl::Time now, Actions* actions) {
  if (shut_down_) {
    while (!fifo_.empty()) Fail(fifo_.begin()->second, Draining(), actions);
    SyncDeadlineTimer(actions);
    return;
  }
  const bool backing_off = now < backoff_until_;
  int connecting = this->connecting();
  const int returning = returning_;

  int unserved_any = 0;
  for (auto it = fifo_.begin(); it != fifo_.end();) {
    const uint64_t ticket = it->second;
    const int want = waiters_.at(ticket).slot;
    ++it;  // Before the waiter may leave the queue.
    if (want != 0) {
      SlotInfo& s = slots_[want - 1];
      if (s.state == SlotState::kIdle) {
        GrantTo(ticket, want, actions);
      } else if (s.state == SlotState::kEmpty && !backing_off) {
        if (!TakeBudget()) {
          // Its own slot is free, so nothing this caller could wait for frees a token.
          budget_->NoteRefused();
          Fail(ticket, BudgetExhausted(), actions);
          continue;
        }
        SetState(want, SlotState::kConnecting);
        ++connecting;
        actions->connects.push_back(want);
      }
      continue;
    }
    if (!idle_.empty()) {
      GrantTo(ticket, idle_.back(), actions);  // Most recently used first: surplus ages out.
      continue;
    }
    ++unserved_any;
  }

  if (backing_off) {
    // The backend is failing: tell waiters now, with the reason, rather than at their deadline
    // — unless a connection attempt is still under way that could serve them, or the slot a
    // waiter asked for is leased (it will come back whatever the backend does).
    if (connecting == 0 && !last_failure_.ok()) {
      for (auto it = fifo_.begin(); it != fifo_.end();) {
        const uint64_t ticket = it->second;
        const int want = waiters_.at(ticket).slot;
        ++it;
        if (want != 0 && slots_[want - 1].state == SlotState::kLeased) continue;
        Fail(ticket, last_failure_, actions);
      }
    }
    ScheduleRetry(now, actions);
  } else {
    // New sockets for callers with nothing to take (sockets on their way back count as
    // supply), then up to min_idle spare ones.
    bool out_of_budget = false;
    while (connecting + returning < unserved_any) {
      int n = ReserveEmptySlot();
      if (n == kNoBudget) out_of_budget = true;
      if (n <= 0) break;
      ++connecting;
      actions->connects.push_back(n);
    }
    if (out_of_budget) {
      // The pool could open a socket but the broker-wide budget is used up. Callers covered by
      // a socket already connecting or coming back keep waiting (oldest first); the newest
      // beyond that are refused now (see SocketBudget for why they do not wait).
      int covered = connecting + returning;
      for (auto it = fifo_.begin(); it != fifo_.end();) {
        const uint64_t ticket = it->second;
        const int want = waiters_.at(ticket).slot;
        ++it;
        if (want != 0 || covered-- > 0) continue;
        budget_->NoteRefused();
        Fail(ticket, BudgetExhausted(), actions);
      }
    }
    if (started_) {
      // Sockets on their way back count here too: each will serve a waiter or be idle. Without
      // them, a caller arriving while the last socket comes back (min_idle 0 included) made the
      // pool open another one, which could then win the race and serve it on a new socket.
      while (idle() + connecting + returning - unserved_any < options_.min_idle) {
        int n = ReserveEmptySlot();
        if (n <= 0) break;
        ++connecting;
        actions->connects.push_back(n);
      }
    }
  }
  SyncDeadlineTimer(actions);
}

std::string PoolState::CheckInvariants() const {
  std::string bad;
  auto fail = [&bad](auto&&... parts) { absl::StrAppend(&bad, parts..., "; "); };
  int non_empty = 0, returning = 0;
  std::set<int> idle_set(idle_.begin(), idle_.end());
  if (idle_set.size() != idle_.size()) fail("a slot is in the idle list twice");
  for (int n = 1; n <= max_sockets(); ++n) {
    const SlotInfo& s = slots_[n - 1];
    const int in = empty_.count(n) + connecting_.count(n) + idle_set.count(n) + leased_.count(n);
    if (in != 1) fail("slot ", n, " is in ", in, " state sets");
    const bool right = (s.state == SlotState::kEmpty && empty_.count(n)) ||
                       (s.state == SlotState::kConnecting && connecting_.count(n)) ||
                       (s.state == SlotState::kIdle && idle_set.count(n)) ||
                       (s.state == SlotState::kLeased && leased_.count(n));
    if (!right) fail("slot ", n, " is in the wrong state set");
    const bool open = s.state == SlotState::kIdle || s.state == SlotState::kLeased;
    if (open != (s.socket != 0)) fail("slot ", n, " socket id does not match its state");
    if (s.returning && s.state != SlotState::kLeased) fail("slot ", n, " returning, not leased");
    returning += s.returning;
    non_empty += s.state != SlotState::kEmpty;
    if (!open && !s.retire_reason.empty()) fail("slot ", n, " retired without a socket");
  }
  if (returning != returning_) fail("returning count ", returning_, " != ", returning);
  if (budget_held_ != non_empty) {
    fail("budget tokens ", budget_held_, " != slots in use ", non_empty);
  }
  if (budget_ != nullptr && budget_->limit() > 0 && budget_->used() > budget_->limit()) {
    fail("budget over its limit: ", budget_->used(), " > ", budget_->limit());
  }
  if (waiters_.size() != fifo_.size()) fail("waiters ", waiters_.size(), " != fifo ", fifo_.size());
  size_t finite = 0;
  for (const auto& [ticket, w] : waiters_) {
    if (w.ticket != ticket) fail("waiter keyed by the wrong ticket");
    auto f = fifo_.find(w.order);
    if (f == fifo_.end() || f->second != ticket) fail("waiter ", ticket, " not in fifo order");
    if (w.deadline != absl::InfiniteFuture()) {
      ++finite;
      if (deadlines_.count({w.deadline, ticket}) == 0) fail("waiter ", ticket, " deadline lost");
    }
    // After a dispatch nobody waits for something that is there to take.
    if (w.slot == 0 && !idle_.empty()) fail("waiter ", ticket, " waits beside an idle socket");
    if (w.slot != 0 && slots_[w.slot - 1].state == SlotState::kIdle) {
      fail("waiter ", ticket, " waits for idle slot ", w.slot);
    }
  }
  if (finite != deadlines_.size()) fail("deadline index holds ", deadlines_.size(), " != ", finite);
  if (shut_down_ && !waiters_.empty()) fail("waiters while shut down");
  if (shut_down_ && !idle_.empty()) fail("idle sockets while shut down");
  const absl::Time earliest =
      deadlines_.empty() ? absl::InfiniteFuture() : deadlines_.begin()->first;
  if (deadline_armed_ > earliest) fail("deadline timer aimed after the earliest deadline");
  return bad;
}

}  // namespace tlsbroker
