#include "broker/pool/socket_pool.h"

#include <algorithm>
#include <atomic>
#include <random>

#include <asio/post.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "broker/common/log.h"
#include "broker/pool/client_id.h"
#include "broker/pool/lease_core.h"
#include "broker/tls/failure_reason.h"

namespace tlsbroker {
namespace {

std::atomic<uint64_t> g_next_socket_id{1};

absl::Duration Jittered(absl::Duration d) {
  // Full jitter in [d/2, d]: many brokers restarting together do not reconnect in lockstep.
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_real_distribution<double> dist(0.5, 1.0);
  return d * dist(rng);
}

}  // namespace

absl::StatusOr<std::shared_ptr<SocketPool>> SocketPool::Create(
    const BackendOptions& options, EventLoops* loops, std::shared_ptr<BackendObserver> observer,
    std::shared_ptr<SocketBudget> budget) {
  if (options.pool.max_sockets < 1) {
    return absl::InvalidArgumentError("pool.max_sockets must be at least 1");
  }
  absl::Status ids = ValidateClientIdOptions(options.client_id, options.pool.max_sockets);
  if (!ids.ok()) return ids;
  auto context = TlsClientContext::Create(options.tls, options.server_name.empty()
                                                           ? options.host
                                                           : options.server_name);
  if (!context.ok()) return context.status();
  if (observer == nullptr) observer = std::make_shared<NullBackendObserver>();
  std::shared_ptr<SocketPool> pool(
      new SocketPool(options, loops, *std::move(context), std::move(observer), std::move(budget)));
  pool->ReportCrlState(*pool->tls_context());
  pool->ReportAddresses(options);
  return pool;
}

void SocketPool::ReportAddresses(const BackendOptions& options) {
  std::vector<std::string> addresses;
  for (const BackendEndpoint& e : options.Endpoints()) addresses.push_back(e.address);
  observer_->OnAddresses(addresses);
}

SocketPool::SocketPool(const BackendOptions& options, EventLoops* loops,
                       std::shared_ptr<const TlsClientContext> context,
                       std::shared_ptr<BackendObserver> observer,
                       std::shared_ptr<SocketBudget> budget)
    : loops_(loops),
      options_(std::make_shared<const BackendOptions>(options)),
      context_(std::move(context)),
      observer_(std::move(observer)),
      // Read after the context loaded them: a change in between shows as a change at the
      // first check (one needless rebuild), never as a missed one... except a change that
      // is undone in between, which changes nothing.
      files_(TlsFileSnapshot::Read(options.tls)),
      budget_(std::move(budget)),
      timer_loop_(loops->Next()),
      sweep_timer_(timer_loop_),
      retry_timer_(timer_loop_) {
  MutexLock lock(&mu_);
  slots_.resize(options.pool.max_sockets);
  counters_.max_sockets = options.pool.max_sockets;
  if (auto not_after = context_->client_cert_not_after()) {
    observer_->OnClientCertNotAfter(*not_after);
  }
}

namespace {

// When a socket to a backend presenting `chain` must stop serving: `margin` before the
// earliest notAfter in the chain. A socket made inside the margin (the backend has not
// rotated yet) gets half of what is left, so the pool does not reconnect in a tight loop
// while the certificate is still valid.
absl::Time RetireTime(const PeerChain& chain, absl::Duration margin, absl::Time created_at) {
  std::optional<absl::Time> earliest;
  for (const X509Ptr& cert : chain.certs()) {
    std::optional<absl::Time> t = NotAfterOf(cert.get());
    if (t && (!earliest || *t < *earliest)) earliest = t;
  }
  if (!earliest) return absl::InfiniteFuture();
  absl::Time at = *earliest - margin;
  if (at <= created_at) at = created_at + (*earliest - created_at) / 2;
  return at;
}

}  // namespace

SocketPool::~SocketPool() {
  // The pool goes when nothing uses it any more (no lease, no I/O handler): its sockets are
  // closed, so their tokens go back to the budget shared with the other pools.
  MutexLock lock(&mu_);
  if (budget_ != nullptr) budget_->Give(budget_held_);
  budget_held_ = 0;
}

void SocketPool::Start() {
  const std::shared_ptr<const BackendOptions> opts = options();
  {
    MutexLock lock(&mu_);
    if (started_) return;
    started_ = true;
  }
  ScheduleSweep();
  Dispatch();
}

uint64_t SocketPool::Acquire(AcquireRequest request, AcquireCallback done) {
  const std::shared_ptr<const BackendOptions> opts = options();
  int slot = 0;
  if (!request.client_id.empty()) {
    std::optional<int> found =
        SlotForClientId(opts->client_id, opts->pool.max_sockets, request.client_id);
    if (!found.has_value()) {
      observer_->OnLeaseRefused(absl::StatusCode::kNotFound);
      std::move(done)(absl::NotFoundError(
          absl::StrCat("client ID ", request.client_id, " is not one of backend ", opts->name,
                       " (", FormatClientId(opts->client_id, 1), "..",
                       FormatClientId(opts->client_id, opts->pool.max_sockets), ")")));
      return 0;
    }
    slot = *found;
  }
  Actions actions;
  uint64_t ticket;
  absl::Status refused;
  {
    MutexLock lock(&mu_);
    ticket = next_ticket_++;
    if (shut_down_) {
      refused = absl::UnavailableError(
          absl::StrCat("draining: backend ", opts->name, " is not taking new leases"));
    } else {
      Waiter waiter;
      waiter.ticket = ticket;
      waiter.slot = slot;
      waiter.deadline = request.deadline;
      waiter.enqueued_at = absl::Now();
      waiter.caller = std::move(request.caller);
      waiter.trace_parent = std::move(request.trace_parent);
      waiter.done = std::move(done);
      waiters_.push_back(std::move(waiter));
      DispatchLocked(&actions);
      // Still queued: it has to wait. max_waiters bounds only callers who wait; one served at
      // once (an idle socket) never counts against it.
      for (auto it = waiters_.begin(); it != waiters_.end(); ++it) {
        if (it->ticket != ticket) continue;
        if (static_cast<int>(waiters_.size()) > opts->pool.max_waiters) {
          done = std::move(it->done);
          waiters_.erase(it);
          refused = absl::ResourceExhaustedError(absl::StrCat(
              "too many callers waiting for backend ", opts->name, " (max_waiters ",
              opts->pool.max_waiters, ")"));
        } else {
          ArmWaiterTimerLocked(&*it);
        }
        break;
      }
      observer_->OnWaiters(static_cast<int>(waiters_.size()));
    }
  }
  // Dispatch may have served or started connections for others: always carry it out.
  Run(std::move(actions));
  if (!refused.ok()) {
    observer_->OnLeaseRefused(refused.code());
    std::move(done)(refused);
  }
  return ticket;
}

void SocketPool::CancelAcquire(uint64_t ticket) {
  AcquireCallback done;
  std::shared_ptr<asio::steady_timer> timer;
  {
    MutexLock lock(&mu_);
    for (auto it = waiters_.begin(); it != waiters_.end(); ++it) {
      if (it->ticket != ticket) continue;
      done = std::move(it->done);
      timer = std::move(it->timer);
      waiters_.erase(it);
      observer_->OnWaiters(static_cast<int>(waiters_.size()));
      break;
    }
  }
  if (timer) asio::post(timer->get_executor(), [timer] { timer->cancel(); });
  if (done) {
    observer_->OnLeaseRefused(absl::StatusCode::kCancelled);
    std::move(done)(absl::CancelledError("acquire cancelled by the caller"));
  }
}

void SocketPool::ArmWaiterTimerLocked(Waiter* waiter) {
  if (waiter->timer || waiter->deadline == absl::InfiniteFuture()) return;
  auto timer = std::make_shared<asio::steady_timer>(loops_->Next());
  absl::Duration left = std::max(waiter->deadline - absl::Now(), absl::ZeroDuration());
  timer->expires_after(absl::ToChronoNanoseconds(left));
  std::weak_ptr<SocketPool> weak = weak_from_this();
  uint64_t ticket = waiter->ticket;
  // The timer is armed on its own loop: Asio timers must be used from one thread.
  asio::post(timer->get_executor(), [timer, weak, ticket] {
    timer->async_wait([weak, ticket](const asio::error_code& ec) {
      if (ec) return;
      if (auto pool = weak.lock()) pool->OnWaiterDeadline(ticket);
    });
  });
  waiter->timer = std::move(timer);
}

void SocketPool::OnWaiterDeadline(uint64_t ticket) {
  const std::shared_ptr<const BackendOptions> opts = options();
  AcquireCallback done;
  absl::Duration waited;
  absl::Status last_failure;
  {
    MutexLock lock(&mu_);
    for (auto it = waiters_.begin(); it != waiters_.end(); ++it) {
      if (it->ticket != ticket) continue;
      done = std::move(it->done);
      waited = absl::Now() - it->enqueued_at;
      waiters_.erase(it);
      observer_->OnWaiters(static_cast<int>(waiters_.size()));
      last_failure = last_failure_;
      break;
    }
  }
  if (!done) return;
  observer_->OnLeaseRefused(absl::StatusCode::kDeadlineExceeded);
  std::string msg = absl::StrCat("no socket of backend ", opts->name, " became free within ",
                                 absl::FormatDuration(waited));
  if (!last_failure.ok()) absl::StrAppend(&msg, " (last connect failure: ", last_failure.message(), ")");
  std::move(done)(absl::DeadlineExceededError(msg));
}

void SocketPool::Dispatch() {
  Actions actions;
  {
    MutexLock lock(&mu_);
    DispatchLocked(&actions);
  }
  Run(std::move(actions));
}

int SocketPool::ReserveEmptySlotLocked() {
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].state == SlotState::kEmpty) {
      if (!TakeBudgetLocked()) return kNoBudget;
      slots_[i].state = SlotState::kConnecting;
      return static_cast<int>(i) + 1;
    }
  }
  return 0;
}

bool SocketPool::TakeBudgetLocked() {
  if (budget_ == nullptr) return true;
  if (!budget_->TryTake()) return false;
  ++budget_held_;
  return true;
}

void SocketPool::ReconcileBudgetLocked() {
  if (budget_ == nullptr) return;
  int in_use = 0;
  for (const Slot& s : slots_) in_use += s.state != SlotState::kEmpty;
  if (budget_held_ > in_use) {
    budget_->Give(budget_held_ - in_use);
    budget_held_ = in_use;
  }
}

absl::Status SocketPool::BudgetExhaustedLocked(const BackendOptions& opts) const {
  return absl::ResourceExhaustedError(absl::StrCat(
      "socket budget exhausted: ", budget_->used(), " of limits.max_backend_sockets ",
      budget_->limit(), " backend sockets are open or connecting across all backends, and no "
      "idle socket of backend ", opts.name, " is free; retry later"));
}

void SocketPool::RemoveIdleLocked(int slot) {
  idle_.erase(std::remove(idle_.begin(), idle_.end(), slot), idle_.end());
}

void SocketPool::DispatchLocked(Actions* actions) {
  const std::shared_ptr<const BackendOptions> opts = options();
  const absl::Time now = absl::Now();
  // Slots emptied since the last dispatch free their tokens before new sockets are counted.
  ReconcileBudgetLocked();
  if (shut_down_) {
    for (Waiter& w : waiters_) {
      actions->failures.emplace_back(
          std::move(w), absl::UnavailableError(absl::StrCat(
                            "draining: backend ", opts->name, " is not taking new leases")));
    }
    waiters_.clear();
    ReportStatesLocked();
    return;
  }
  const bool backing_off = now < backoff_until_;
  int connecting = 0;
  int returning = 0;
  for (const Slot& s : slots_) {
    connecting += s.state == SlotState::kConnecting;
    returning += s.state == SlotState::kLeased && s.returning;
  }

  int unserved_any = 0;
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    if (it->slot != 0) {
      Slot& slot = slots_[it->slot - 1];
      if (slot.state == SlotState::kIdle) {
        RemoveIdleLocked(it->slot);
        slot.state = SlotState::kLeased;
        actions->grants.emplace_back(std::move(*it), slot.socket);
        it = waiters_.erase(it);
        continue;
      }
      if (slot.state == SlotState::kEmpty && !backing_off) {
        if (!TakeBudgetLocked()) {
          // Its own slot is free, so nothing this caller could wait for frees a token.
          budget_->NoteRefused();
          actions->failures.emplace_back(std::move(*it), BudgetExhaustedLocked(*opts));
          it = waiters_.erase(it);
          continue;
        }
        slot.state = SlotState::kConnecting;
        ++connecting;
        actions->connects.push_back(it->slot);
      }
      ++it;
      continue;
    }
    if (!idle_.empty()) {
      int n = idle_.back();  // Most recently used first: surplus sockets age out.
      idle_.pop_back();
      slots_[n - 1].state = SlotState::kLeased;
      actions->grants.emplace_back(std::move(*it), slots_[n - 1].socket);
      it = waiters_.erase(it);
      continue;
    }
    ++unserved_any;
    ++it;
  }

  if (backing_off) {
    // The backend is failing: tell waiters now, with the reason, rather than at their deadline
    // — unless a connection attempt is still under way that could serve them.
    if (connecting == 0 && !last_failure_.ok()) {
      for (auto it = waiters_.begin(); it != waiters_.end();) {
        bool slot_leased = it->slot != 0 && slots_[it->slot - 1].state == SlotState::kLeased;
        if (slot_leased) {
          ++it;
          continue;
        }
        actions->failures.emplace_back(std::move(*it), last_failure_);
        it = waiters_.erase(it);
      }
    }
    ScheduleRetryLocked();
  } else {
    // New sockets for callers with nothing to take (sockets on their way back count as
    // supply), then up to min_idle spare ones.
    bool out_of_budget = false;
    while (connecting + returning < unserved_any) {
      int slot = ReserveEmptySlotLocked();
      if (slot == kNoBudget) out_of_budget = true;
      if (slot <= 0) break;
      ++connecting;
      actions->connects.push_back(slot);
    }
    if (out_of_budget) {
      // The pool could open a socket but the broker-wide budget is used up. Callers covered by
      // a socket already connecting or coming back keep waiting (oldest first); the newest
      // beyond that are refused now (see SocketBudget for why they do not wait).
      int covered = connecting + returning;
      for (auto it = waiters_.begin(); it != waiters_.end();) {
        if (it->slot != 0 || covered-- > 0) {
          ++it;
          continue;
        }
        budget_->NoteRefused();
        actions->failures.emplace_back(std::move(*it), BudgetExhaustedLocked(*opts));
        it = waiters_.erase(it);
      }
    }
    if (started_) {
      while (static_cast<int>(idle_.size()) + connecting - unserved_any < opts->pool.min_idle) {
        int slot = ReserveEmptySlotLocked();
        if (slot <= 0) break;
        ++connecting;
        actions->connects.push_back(slot);
      }
    }
  }
  ReportStatesLocked();
}

void SocketPool::ScheduleRetryLocked() {
  if (retry_scheduled_) return;
  retry_scheduled_ = true;
  absl::Duration wait = std::max(backoff_until_ - absl::Now(), absl::Milliseconds(1));
  std::weak_ptr<SocketPool> weak = weak_from_this();
  asio::post(timer_loop_, [weak, wait] {
    auto pool = weak.lock();
    if (!pool) return;
    pool->retry_timer_.expires_after(absl::ToChronoNanoseconds(wait));
    pool->retry_timer_.async_wait([weak](const asio::error_code& ec) {
      auto pool = weak.lock();
      if (!pool) return;
      {
        MutexLock lock(&pool->mu_);
        pool->retry_scheduled_ = false;
      }
      if (!ec) pool->Dispatch();
    });
  });
}

void SocketPool::ReportStatesLocked() {
  ReconcileBudgetLocked();
  int connecting = 0, idle = 0, leased = 0, retiring = 0, enull = 0;
  for (const Slot& s : slots_) {
    connecting += s.state == SlotState::kConnecting;
    idle += s.state == SlotState::kIdle;
    leased += s.state == SlotState::kLeased;
    // Leased but retired (revoked, expiring, drained): closes when its lease ends.
    retiring += s.state == SlotState::kLeased && s.socket && !s.socket->retire_reason.empty();
    // Open sockets whose cipher encrypts nothing (OpenSSL names them ...NULL...): an operator
    // must be able to see that integrity-only traffic is flowing (an alert watches this).
    enull += (s.state == SlotState::kIdle || s.state == SlotState::kLeased) && s.socket &&
             absl::StrContains(s.socket->info.cipher, "NULL");
  }
  counters_.connecting = connecting;
  counters_.idle = idle;
  counters_.leased = leased;
  counters_.waiters = static_cast<int>(waiters_.size());
  observer_->OnSocketStates(connecting, idle, leased - retiring, retiring);
  observer_->OnEnullSockets(enull);
  observer_->OnWaiters(static_cast<int>(waiters_.size()));
}

void SocketPool::Run(Actions actions) {
  for (auto& [waiter, status] : actions.failures) {
    if (waiter.timer) {
      auto timer = waiter.timer;
      asio::post(timer->get_executor(), [timer] { timer->cancel(); });
    }
    observer_->OnLeaseRefused(status.code());
    std::move(waiter.done)(status);
  }
  for (auto& [socket, reason] : actions.closes) {
    observer_->OnSocketClosed(reason);
    CloseOnLoop(socket);
  }
  for (int slot : actions.connects) StartConnect(slot);
  for (auto& [waiter, socket] : actions.grants) {
    auto self = shared_from_this();
    // `socket = socket`: clang 14 cannot capture a structured binding by name (C++20 allows it
    // from clang 16); the init-capture copies it the same way.
    asio::post(socket->tls->io(), [self, waiter = std::move(waiter), socket = socket]() mutable {
      self->Activate(std::move(waiter), std::move(socket));
    });
  }
}

void SocketPool::CloseOnLoop(std::shared_ptr<PooledSocket> socket) {
  asio::post(socket->tls->io(), [socket] { socket->tls->Close(); });
}

void SocketPool::StartConnect(int slot) {
  // The settings in force now; a reload while this connects does not change this socket.
  ConnectTo(slot, options(), 0);
}

void SocketPool::ConnectTo(int slot, std::shared_ptr<const BackendOptions> opts, size_t index) {
  asio::io_context& io = loops_->Next();
  auto tls = std::make_shared<TlsSocket>(io, tls_context());
  auto self = shared_from_this();
  asio::post(io, [self, tls, slot, opts, index] {
    const std::vector<BackendEndpoint> endpoints = opts->Endpoints();
    const BackendEndpoint& endpoint = endpoints[index];
    // The callback is stored in `tls` itself: hold it weakly, or it would own itself.
    std::weak_ptr<TlsSocket> weak_tls = tls;
    tls->Connect(
        endpoint.host, endpoint.port, opts->pool.connect_timeout, opts->pool.handshake_timeout,
        [self, weak_tls, slot, opts, index, count = endpoints.size(),
         address = endpoint.address](absl::Status status) {
          auto tls = weak_tls.lock();
          if (!tls) return;
          self->observer_->OnConnectAttempt(address, status.ok());
          if (!status.ok() && count > 1) {
            // Which address failed, for the log line and last_failure.
            status = absl::Status(status.code(), absl::StrCat(status.message(), " (address ",
                                                              address, ", ", index + 1, " of ",
                                                              count, ")"));
          }
          if (!status.ok() && index + 1 < count) {
            // The next address at once; the backoff applies once every address failed.
            std::string reason = ReasonOf(status);
            self->observer_->OnHandshake(reason.empty() ? "handshake_failed" : reason, false,
                                         absl::ZeroDuration());
            LogEvent(LogLevel::kWarning, "backend address failed; trying the next one",
                     absl::StrCat(LogField("backend", opts->name), " ",
                                  LogField("address", address), " ",
                                  LogField("error", status.message())));
            self->ConnectTo(slot, opts, index + 1);
            return;
          }
          self->OnConnected(slot, tls, std::move(status));
        });
  });
}

void SocketPool::OnConnected(int slot, std::shared_ptr<TlsSocket> tls, absl::Status status) {
  const std::shared_ptr<const BackendOptions> opts = options();
  // Runs on the socket's loop.
  std::string result = status.ok() ? "ok" : ReasonOf(status);
  if (result.empty()) result = "handshake_failed";
  const TlsSessionInfo& info = tls->session_info();
  observer_->OnHandshake(result, status.ok() && info.resumed,
                         status.ok() ? info.handshake_duration : absl::ZeroDuration());
  if (!info.ocsp_status.empty()) observer_->OnOcspResponse(info.ocsp_source, info.ocsp_status);
  if (!status.ok()) {
    static const char* const kVerifyReasons[] = {
        "unknown_ca", "expired", "not_yet_valid", "hostname_mismatch", "peer_name_mismatch",
        "san_mismatch", "issuer_mismatch", "certificate_revoked", "bad_certificate",
        "crl_unavailable", "crl_stale", "ocsp_unknown", "ocsp_unreachable", "ocsp_invalid",
        "spki_pin_mismatch"};
    for (const char* r : kVerifyReasons) {
      if (result == r) observer_->OnCertVerifyFailure(result);
    }
    LogEvent(LogLevel::kWarning, "backend connect failed",
             absl::StrCat(LogField("backend", opts->name), " ", LogField("reason", result), " ",
                          LogField("error", status.message())));
  }
  std::shared_ptr<PooledSocket> socket;
  // The context changed while this socket was handshaking with the previous one: a new CRL
  // must still apply to it, and a drain on rotation must not miss it.
  std::string discard;
  if (status.ok()) {
    std::shared_ptr<const TlsClientContext> current = tls_context();
    if (current != tls->context()) {
      if (tls->peer_chain() != nullptr && current->IsRevoked(*tls->peer_chain())) {
        discard = "revoked";
      } else if (opts->tls.on_rotation == RotationPolicy::kDrain) {
        discard = "rotation";
      }
    }
  }
  Actions actions;
  {
    MutexLock lock(&mu_);
    Slot& s = slots_[slot - 1];
    if (status.ok() && !discard.empty()) {
      s.state = SlotState::kEmpty;
    } else if (!status.ok()) {
      s.state = SlotState::kEmpty;
      ++counters_.connect_failures;
      ++consecutive_failures_;
      last_failure_ = status;
      counters_.last_failure = std::string(status.message());
      absl::Duration backoff = opts->pool.backoff_initial;
      for (int i = 1; i < consecutive_failures_ && backoff < opts->pool.backoff_max; ++i) {
        backoff *= 2;
      }
      backoff_until_ = absl::Now() + Jittered(std::min(backoff, opts->pool.backoff_max));
    } else if (shut_down_) {
      s.state = SlotState::kEmpty;
    } else {
      consecutive_failures_ = 0;
      last_failure_ = absl::OkStatus();
      counters_.last_failure.clear();
      backoff_until_ = absl::InfinitePast();
      ++counters_.sockets_created;
      if (info.resumed) {
        ++counters_.handshakes_resumed;
      } else {
        ++counters_.handshakes_full;
      }
      socket = std::make_shared<PooledSocket>();
      socket->slot = slot;
      socket->client_id = FormatClientId(opts->client_id, slot);
      socket->id = g_next_socket_id.fetch_add(1);
      socket->tls = tls;
      socket->created_at = absl::Now();
      socket->last_released = socket->created_at;
      socket->peer_chain = tls->peer_chain();
      if (socket->peer_chain != nullptr) {
        socket->retire_at =
            RetireTime(*socket->peer_chain, opts->tls.expiry_margin, socket->created_at);
      }
      socket->info = info;
      ArmOcspRecheckLocked(socket.get(), *opts, socket->created_at);
      s.socket = socket;
      s.state = SlotState::kIdle;
      idle_.push_back(slot);
    }
    DispatchLocked(&actions);
  }
  if (!discard.empty()) {
    LogEvent(LogLevel::kInfo, "new socket closed: the TLS context changed while it connected",
             absl::StrCat(LogField("backend", opts->name), " ", LogField("reason", discard)));
    observer_->OnSocketClosed(discard);
  }
  // Shut down, revoked or drained while connecting.
  if (status.ok() && socket == nullptr) tls->Close();
  if (socket != nullptr) {
    if (info.peer_not_after) observer_->OnPeerCertNotAfter(*info.peer_not_after);
    std::weak_ptr<SocketPool> weak = weak_from_this();
    // Weak: the callback is stored in the socket's own TlsSocket, which the PooledSocket owns.
    std::weak_ptr<PooledSocket> weak_socket = socket;
    tls->WatchIdle([weak, weak_socket](absl::Status broken) {
      auto pool = weak.lock();
      auto pooled = weak_socket.lock();
      if (pool && pooled) pool->OnIdleBroken(pooled, std::move(broken));
    });
  }
  Run(std::move(actions));
}

void SocketPool::Activate(Waiter waiter, std::shared_ptr<PooledSocket> socket) {
  const std::shared_ptr<const BackendOptions> opts = options();
  // Runs on the socket's loop. The socket is marked leased; make sure it is still healthy:
  // a backend may have closed it, or sent bytes, since it went idle.
  if (waiter.timer) {
    auto timer = waiter.timer;
    asio::post(timer->get_executor(), [timer] { timer->cancel(); });
    waiter.timer.reset();
  }
  socket->tls->StopIdleWatch();
  std::string retired;
  {
    MutexLock lock(&mu_);
    // Retired (revoked, rotation) since it was granted, or expiring before the sweep saw it.
    if (socket->retire_reason.empty() && absl::Now() >= socket->retire_at) {
      socket->retire_reason = "expired";
    }
    retired = socket->retire_reason;
  }
  absl::Status health = retired.empty()
                            ? socket->tls->CheckNothingUnread()
                            : absl::UnavailableError(absl::StrCat("socket retired: ", retired));
  if (!health.ok()) {
    std::string reason = !retired.empty() ? retired
                         : health.code() == absl::StatusCode::kFailedPrecondition ? "dirty"
                                                                                   : "broken";
    LogEvent(LogLevel::kInfo, "idle socket found unusable at lease time",
             absl::StrCat(LogField("backend", opts->name), " ",
                          LogField("client_id", socket->client_id), " ",
                          LogField("error", health.message())));
    socket->tls->Close();
    observer_->OnSocketClosed(reason);
    Actions actions;
    {
      MutexLock lock(&mu_);
      Slot& s = slots_[socket->slot - 1];
      if (s.socket == socket) {
        s.state = SlotState::kEmpty;
        s.socket.reset();
      }
      // Back to the front of the queue: it was first in line, and has waited already.
      waiters_.push_front(std::move(waiter));
      ArmWaiterTimerLocked(&waiters_.front());
      DispatchLocked(&actions);
    }
    Run(std::move(actions));
    return;
  }
  int leases_served;
  bool reused;
  {
    MutexLock lock(&mu_);
    reused = socket->leases_served > 0;
    leases_served = ++socket->leases_served;
    ++counters_.leases_granted;
  }
  LeaseInfo info;
  info.backend = opts->name;
  info.client_id = socket->client_id;
  info.socket_id = socket->id;
  info.slot = socket->slot;
  info.reused = reused;
  info.leases_served = leases_served;
  info.wait = absl::Now() - waiter.enqueued_at;
  info.tls = socket->tls->session_info();
  observer_->OnLeaseGranted(info.wait, reused);
  auto core = LeaseCore::Create(shared_from_this(), socket, std::move(info), waiter.caller,
                                waiter.trace_parent);
  bool abort_now = false;
  std::string abort_reason;
  {
    MutexLock lock(&mu_);
    socket->lease_id = core->info().lease_id;
    socket->lease_caller = waiter.caller;
    socket->lease_started_at = absl::Now();
    socket->lease = core;
    // Retired with ABORT_LEASE between the check above and now.
    abort_now = !socket->retire_reason.empty() && !socket->abort_reason.empty();
    abort_reason = socket->abort_reason;
  }
  if (abort_now) {
    core->Abort(TlsFailure(abort_reason, "the socket was retired as its lease began"));
  }
  std::move(waiter.done)(Lease(std::move(core)));
}

void SocketPool::OnIdleBroken(const std::shared_ptr<PooledSocket>& socket, absl::Status status) {
  const std::shared_ptr<const BackendOptions> opts = options();
  // Runs on the socket's loop.
  bool removed = false;
  Actions actions;
  {
    MutexLock lock(&mu_);
    Slot& s = slots_[socket->slot - 1];
    if (s.socket == socket && s.state == SlotState::kIdle) {
      RemoveIdleLocked(socket->slot);
      s.state = SlotState::kEmpty;
      s.socket.reset();
      removed = true;
      DispatchLocked(&actions);
    }
  }
  if (removed) {
    std::string reason =
        status.code() == absl::StatusCode::kFailedPrecondition ? "dirty" : "broken";
    LogEvent(LogLevel::kInfo, "idle socket closed",
             absl::StrCat(LogField("backend", opts->name), " ",
                          LogField("client_id", socket->client_id), " ",
                          LogField("reason", reason), " ", LogField("error", status.message())));
    observer_->OnSocketClosed(reason);
    socket->tls->Close();
  }
  Run(std::move(actions));
}

void SocketPool::ReturnSocket(const std::shared_ptr<PooledSocket>& socket, absl::Status verdict,
                              absl::string_view close_reason) {
  const std::shared_ptr<const BackendOptions> opts = options();
  // Runs on the socket's loop.
  const absl::Time now = absl::Now();
  std::string reason(close_reason);
  bool keep = false;
  Actions actions;
  {
    MutexLock lock(&mu_);
    Slot& s = slots_[socket->slot - 1];
    if (s.socket != socket) return;  // Already forgotten (reclaimed).
    s.returning = false;
    socket->lease_id.clear();
    socket->lease_caller.clear();
    keep = verdict.ok() && !shut_down_;
    if (keep && opts->pool.mode == PoolMode::kPerLease) {
      keep = false;
      reason = "per_lease";
    }
    if (keep && now - socket->created_at >= opts->pool.max_lifetime) {
      keep = false;
      reason = "lifetime";
    }
    if (keep && opts->pool.max_leases_per_socket > 0 &&
        socket->leases_served >= opts->pool.max_leases_per_socket) {
      keep = false;
      reason = "max_leases";
    }
    if (!keep && shut_down_ && verdict.ok()) reason = "drain";
    if (socket->retire_reason.empty() && now >= socket->retire_at) socket->retire_reason = "expired";
    if (!socket->retire_reason.empty()) {
      keep = false;
      reason = socket->retire_reason;
    }
    socket->lease.reset();
    if (keep) {
      s.state = SlotState::kIdle;
      socket->last_released = now;
      idle_.push_back(socket->slot);
    } else {
      s.state = SlotState::kEmpty;
      s.socket.reset();
    }
    DispatchLocked(&actions);
  }
  if (keep) {
    std::weak_ptr<SocketPool> weak = weak_from_this();
    std::weak_ptr<PooledSocket> weak_socket = socket;  // See OnConnected.
    socket->tls->WatchIdle([weak, weak_socket](absl::Status broken) {
      auto pool = weak.lock();
      auto pooled = weak_socket.lock();
      if (pool && pooled) pool->OnIdleBroken(pooled, std::move(broken));
    });
  } else {
    if (!verdict.ok()) {
      LogEvent(LogLevel::kInfo, "socket not reused",
               absl::StrCat(LogField("backend", opts->name), " ",
                            LogField("client_id", socket->client_id), " ",
                            LogField("reason", reason), " ",
                            LogField("detail", verdict.message())));
    }
    observer_->OnSocketClosed(reason);
    socket->tls->Close();
  }
  Run(std::move(actions));
}

void SocketPool::NoteReturning(const std::shared_ptr<PooledSocket>& socket) {
  MutexLock lock(&mu_);
  Slot& s = slots_[socket->slot - 1];
  if (s.socket == socket && s.state == SlotState::kLeased) s.returning = true;
}

void SocketPool::ForgetSocket(const std::shared_ptr<PooledSocket>& socket) {
  Actions actions;
  {
    MutexLock lock(&mu_);
    Slot& s = slots_[socket->slot - 1];
    if (s.socket != socket) return;
    s.returning = false;
    s.state = SlotState::kEmpty;
    s.socket.reset();
    DispatchLocked(&actions);
  }
  Run(std::move(actions));
}

void SocketPool::ScheduleSweep() {
  const std::shared_ptr<const BackendOptions> opts = options();
  absl::Duration period = std::min(opts->pool.idle_timeout, opts->pool.max_lifetime) / 4;
  if (opts->tls.watch_interval > absl::ZeroDuration()) {
    period = std::min(period, std::max(opts->tls.watch_interval, absl::Milliseconds(100)));
  }
  period = std::clamp(period, absl::Milliseconds(10), absl::Seconds(1));
  std::weak_ptr<SocketPool> weak = weak_from_this();
  asio::post(timer_loop_, [weak, period] {
    auto pool = weak.lock();
    if (!pool) return;
    pool->sweep_timer_.expires_after(absl::ToChronoNanoseconds(period));
    pool->sweep_timer_.async_wait([weak](const asio::error_code& ec) {
      if (ec) return;
      if (auto pool = weak.lock()) {
        pool->Sweep();
        pool->ScheduleSweep();
      }
    });
  });
}

void SocketPool::Sweep() {
  const std::shared_ptr<const BackendOptions> opts = options();
  const absl::Time now = absl::Now();
  Actions actions;
  std::vector<std::shared_ptr<PooledSocket>> ocsp_due;
  {
    MutexLock lock(&mu_);
    if (shut_down_) return;
    // Oldest-used first, so a surplus beyond min_idle retires the least useful sockets.
    int idle_count = static_cast<int>(idle_.size());
    std::vector<int> retire;
    for (int slot : idle_) {
      const PooledSocket& socket = *slots_[slot - 1].socket;
      if (now >= socket.retire_at) {
        actions.closes.emplace_back(slots_[slot - 1].socket, "expired");
        retire.push_back(slot);
        --idle_count;
      } else if (now - socket.created_at >= opts->pool.max_lifetime) {
        actions.closes.emplace_back(slots_[slot - 1].socket, "lifetime");
        retire.push_back(slot);
        --idle_count;
      } else if (now - socket.last_released >= opts->pool.idle_timeout &&
                 idle_count > opts->pool.min_idle) {
        actions.closes.emplace_back(slots_[slot - 1].socket, "idle");
        retire.push_back(slot);
        --idle_count;
      }
    }
    for (int slot : retire) {
      RemoveIdleLocked(slot);
      slots_[slot - 1].state = SlotState::kEmpty;
      slots_[slot - 1].socket.reset();
    }
    // Leased sockets whose backend certificate is about to expire finish their lease first.
    for (Slot& s : slots_) {
      if (s.state == SlotState::kLeased && s.socket && now >= s.socket->retire_at &&
          s.socket->retire_reason.empty()) {
        s.socket->retire_reason = "expired";
      }
    }
    ocsp_due = TakeDueOcspRechecksLocked(now);
    DispatchLocked(&actions);
  }
  Run(std::move(actions));
  for (auto& socket : ocsp_due) StartOcspRecheck(std::move(socket));
  CheckTlsFilesIfDue();
  ReportCrlState(*tls_context());
}

void SocketPool::Shutdown() {
  Actions actions;
  {
    MutexLock lock(&mu_);
    shut_down_ = true;
    for (int slot : idle_) {
      actions.closes.emplace_back(slots_[slot - 1].socket, "drain");
      slots_[slot - 1].state = SlotState::kEmpty;
      slots_[slot - 1].socket.reset();
    }
    idle_.clear();
    DispatchLocked(&actions);
  }
  Run(std::move(actions));
  std::weak_ptr<SocketPool> weak = weak_from_this();
  asio::post(timer_loop_, [weak] {
    if (auto pool = weak.lock()) {
      pool->sweep_timer_.cancel();
      pool->retry_timer_.cancel();
    }
  });
}

void SocketPool::Resume() {
  bool sweep;
  {
    MutexLock lock(&mu_);
    if (!shut_down_) return;
    shut_down_ = false;
    // Shutdown cancelled the sweep; a pool never started gets it from Start().
    sweep = started_;
  }
  // Posted after Shutdown's cancel on the same loop, so the new sweep is not cancelled by it.
  if (sweep) ScheduleSweep();
  Dispatch();  // Prewarm to min_idle again.
}

std::shared_ptr<const BackendOptions> SocketPool::options() const {
  MutexLock lock(&settings_mu_);
  return options_;
}

std::shared_ptr<const TlsClientContext> SocketPool::tls_context() const {
  MutexLock lock(&settings_mu_);
  return context_;
}

absl::StatusOr<std::shared_ptr<const TlsClientContext>> SocketPool::PrepareReconfigure(
    const BackendOptions& next) const {
  const std::shared_ptr<const BackendOptions> current = options();
  // Slots and client IDs are the pool's identity: changing them under live sockets could give
  // two sockets one client ID. That takes a restart (a rolling update), not a reload.
  if (next.pool.max_sockets != current->pool.max_sockets ||
      next.client_id.prefix != current->client_id.prefix ||
      next.client_id.width != current->client_id.width) {
    return absl::FailedPreconditionError(absl::StrCat(
        "backend ", current->name,
        ": pool.max_sockets and client_id cannot change on reload; restart the broker"));
  }
  auto context = TlsClientContext::Create(next.tls, next.server_name.empty() ? next.host
                                                                             : next.server_name);
  if (!context.ok()) {
    return absl::Status(context.status().code(),
                        absl::StrCat("backend ", current->name, ": ", context.status().message()));
  }
  return std::shared_ptr<const TlsClientContext>(*std::move(context));
}

void SocketPool::ApplyReconfigure(const BackendOptions& next,
                                  std::shared_ptr<const TlsClientContext> context) {
  {
    MutexLock lock(&settings_mu_);
    options_ = std::make_shared<const BackendOptions>(next);
  }
  {
    MutexLock lock(&watch_mu_);
    files_ = TlsFileSnapshot::Read(next.tls);
  }
  ReportAddresses(next);
  LogEvent(LogLevel::kInfo, "backend reconfigured; new sockets use the new settings",
           LogField("backend", next.name));
  // A reload re-reads the CRLs too: they apply to pooled sockets as a file change would.
  // Credentials follow the reload rule (open sockets keep theirs).
  InstallContext(std::move(context), /*credentials_changed=*/false);
  Dispatch();  // min_idle may have grown.
}

int SocketPool::RetireIf(absl::FunctionRef<bool(const PeerChain&)> matches,
                         absl::string_view close_reason, LeasedPolicy leased,
                         absl::string_view abort_reason) {
  std::vector<std::shared_ptr<PooledSocket>> open;
  {
    MutexLock lock(&mu_);
    for (const Slot& s : slots_) {
      if (s.socket && (s.state == SlotState::kIdle || s.state == SlotState::kLeased)) {
        open.push_back(s.socket);
      }
    }
  }
  // The checks (a chain verification each, for CRLs) run outside the lock.
  std::vector<std::shared_ptr<PooledSocket>> hits;
  for (auto& socket : open) {
    if (socket->peer_chain != nullptr && matches(*socket->peer_chain)) hits.push_back(socket);
  }
  if (hits.empty()) return 0;
  const std::shared_ptr<const BackendOptions> opts = options();
  Actions actions;
  std::vector<std::shared_ptr<LeaseCore>> aborts;
  int idle = 0, leased_count = 0;
  {
    MutexLock lock(&mu_);
    for (auto& socket : hits) {
      Slot& s = slots_[socket->slot - 1];
      if (s.socket != socket) continue;  // Gone meanwhile.
      if (s.state == SlotState::kIdle) {
        RemoveIdleLocked(socket->slot);
        s.state = SlotState::kEmpty;
        s.socket.reset();
        actions.closes.emplace_back(socket, std::string(close_reason));
        ++idle;
      } else if (s.state == SlotState::kLeased) {
        if (socket->retire_reason.empty()) socket->retire_reason = std::string(close_reason);
        ++leased_count;
        if (leased == LeasedPolicy::kAbortLease) {
          socket->abort_reason = std::string(abort_reason);
          if (auto core = socket->lease.lock()) aborts.push_back(std::move(core));
        }
      }
    }
    DispatchLocked(&actions);  // Replacements for the closed ones (min_idle, waiters).
  }
  LogEvent(LogLevel::kWarning, "retiring sockets",
           absl::StrCat(LogField("backend", opts->name), " ", LogField("reason", close_reason),
                        " idle_closed=", idle, " leased=", leased_count, " ",
                        LogField("leased_policy", leased == LeasedPolicy::kAbortLease
                                                      ? "abort_lease"
                                                      : "finish_lease")));
  Run(std::move(actions));
  for (auto& core : aborts) {
    core->Abort(TlsFailure(abort_reason,
                           absl::StrCat("the lease was ended: socket retired (", close_reason,
                                        ")")));
  }
  return static_cast<int>(hits.size());
}

void SocketPool::CheckTlsFilesIfDue() {
  const std::shared_ptr<const BackendOptions> opts = options();
  const absl::Time now = absl::Now();
  {
    MutexLock lock(&watch_mu_);
    if (opts->tls.watch_interval <= absl::ZeroDuration() || now < next_file_check_) return;
    next_file_check_ = now + opts->tls.watch_interval;
  }
  CheckTlsFiles();
}

void SocketPool::CheckTlsFiles() {
  const std::shared_ptr<const BackendOptions> opts = options();
  TlsFileSnapshot::Changes changes;
  TlsFileSnapshot current = TlsFileSnapshot::Read(opts->tls);
  {
    MutexLock lock(&watch_mu_);
    changes = files_.ChangesTo(current);
    if (!changes.any()) return;
    // Remembered even if the new files are rejected below: a broken file is reported once,
    // and tried again when it changes again.
    files_ = current;
  }
  auto context = TlsClientContext::Create(
      opts->tls, opts->server_name.empty() ? opts->host : opts->server_name);
  if (!context.ok()) {
    std::string kind = TlsFileKindOfError(context.status(), opts->tls);
    if (kind == "crl") {
      observer_->OnCrlReloadFailure();
    } else {
      observer_->OnCredentialReloadFailure(kind);
    }
    LogEvent(LogLevel::kError, "changed TLS files rejected; the previous ones stay in use",
             absl::StrCat(LogField("backend", opts->name), " ", LogField("file", kind), " ",
                          LogField("error", context.status().message())));
    return;
  }
  LogEvent(LogLevel::kInfo, "TLS files changed; new sockets use them",
           absl::StrCat(LogField("backend", opts->name), " crl=", changes.crl,
                        " credentials=", changes.credentials));
  InstallContext(*std::move(context), changes.credentials);
}

void SocketPool::InstallContext(std::shared_ptr<const TlsClientContext> context,
                                bool credentials_changed) {
  const std::shared_ptr<const BackendOptions> opts = options();
  std::shared_ptr<const TlsClientContext> previous;
  {
    MutexLock lock(&settings_mu_);
    previous = std::move(context_);
    context_ = context;
  }
  // Sessions of the old context would resume without the new checks (and re-present the old
  // client certificate); the new context starts with an empty cache, and the old one's is
  // dropped so nothing can pick it up.
  if (previous != nullptr) previous->FlushSessions();
  if (auto not_after = context->client_cert_not_after()) {
    observer_->OnClientCertNotAfter(*not_after);
  }
  ReportCrlState(*context);
  if (!context->options().crl_files.empty()) {
    RetireIf([&context](const PeerChain& chain) { return context->IsRevoked(chain); }, "revoked",
             opts->tls.on_revoked == RevokedLeasePolicy::kAbortLease ? LeasedPolicy::kAbortLease
                                                                     : LeasedPolicy::kFinishLease);
  }
  if (credentials_changed && opts->tls.on_rotation == RotationPolicy::kDrain) {
    RetireIf([](const PeerChain&) { return true; }, "rotation", LeasedPolicy::kFinishLease);
  }
}

void SocketPool::ReportCrlState(const TlsClientContext& context) {
  std::optional<absl::Time> next_update = context.crl_next_update();
  if (!next_update) return;
  const bool stale = absl::Now() > *next_update;
  observer_->OnCrlNextUpdate(*next_update, stale);
  bool log_now = false;
  {
    MutexLock lock(&watch_mu_);
    log_now = stale != crl_stale_reported_;
    crl_stale_reported_ = stale;
  }
  if (stale && context.options().stale_crl == StaleCrlPolicy::kFail) {
    // Refusing new handshakes must cover resumed ones too: no cached session outlives the
    // CRL's nextUpdate (new sockets also re-check a resumed session, see TlsSocket).
    context.FlushSessions();
  }
  if (log_now) {
    const std::shared_ptr<const BackendOptions> opts = options();
    LogEvent(stale ? LogLevel::kWarning : LogLevel::kInfo,
             stale ? "CRL is past its nextUpdate" : "CRLs are current again",
             absl::StrCat(LogField("backend", opts->name), " ",
                          LogField("next_update", absl::FormatTime(*next_update)), " ",
                          LogField("stale_crl", context.options().stale_crl == StaleCrlPolicy::kFail
                                                    ? "FAIL (new handshakes refused)"
                                                    : "WARN")));
  }
}

PoolStats SocketPool::Stats() const {
  MutexLock lock(&mu_);
  PoolStats stats = counters_;
  stats.waiters = static_cast<int>(waiters_.size());
  return stats;
}

std::vector<SocketSnapshot> SocketPool::Sockets() const {
  const std::shared_ptr<const BackendOptions> opts = options();
  std::vector<SocketSnapshot> out;
  MutexLock lock(&mu_);
  for (size_t i = 0; i < slots_.size(); ++i) {
    const Slot& s = slots_[i];
    if (s.state == SlotState::kEmpty) continue;
    SocketSnapshot snap;
    snap.slot = static_cast<int>(i) + 1;
    snap.client_id = FormatClientId(opts->client_id, snap.slot);
    snap.state = s.state == SlotState::kConnecting ? "connecting"
                 : s.state == SlotState::kIdle     ? "idle"
                                                   : "leased";
    if (s.socket) {
      snap.socket_id = s.socket->id;
      snap.created_at = s.socket->created_at;
      snap.leases_served = s.socket->leases_served;
      snap.lease_id = s.socket->lease_id;
      snap.lease_caller = s.socket->lease_caller;
      snap.lease_started_at = s.socket->lease_started_at;
      snap.bytes_sent = s.socket->tls->bytes_sent();
      snap.bytes_received = s.socket->tls->bytes_received();
      // Byte counters are monotonic counters read for display; the session info is the
      // pool's copy (the TlsSocket's own changes on its loop when OCSP is re-checked).
      snap.tls = s.socket->info;
    }
    out.push_back(std::move(snap));
  }
  return out;
}

}  // namespace tlsbroker
