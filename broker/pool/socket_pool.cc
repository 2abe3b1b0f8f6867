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

TlsLifecycle::Settings LifecycleSettings(const BackendOptions& options);

uint64_t RandomSeed() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
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
      new SocketPool(options, loops, std::move(observer), std::move(budget)));
  // The TLS lifecycle ticks on the maintenance loop: it reads files and parses CRLs, which
  // must not delay a loop that carries sockets.
  pool->lifecycle_ = TlsLifecycle::Create(LifecycleSettings(options), *std::move(context),
                                          pool, pool->observer_, loops->maintenance());
  pool->ReportAddresses(options);
  return pool;
}

void SocketPool::ReportAddresses(const BackendOptions& options) {
  std::vector<std::string> addresses;
  for (const BackendEndpoint& e : options.Endpoints()) addresses.push_back(e.address);
  observer_->OnAddresses(addresses);
}

SocketPool::SocketPool(const BackendOptions& options, EventLoops* loops,
                       std::shared_ptr<BackendObserver> observer,
                       std::shared_ptr<SocketBudget> budget)
    : loops_(loops),
      options_(std::make_shared<const BackendOptions>(options)),
      observer_(std::move(observer)),
      budget_(std::move(budget)),
      timer_loop_(loops->Next()),
      sweep_timer_(timer_loop_),
      retry_timer_(timer_loop_),
      deadline_timer_(timer_loop_),
      state_(options.name, options.pool, budget_.get(), RandomSeed()),
      sockets_(options.pool.max_sockets) {}

namespace {

TlsLifecycle::Settings LifecycleSettings(const BackendOptions& options) {
  return {options.name, options.tls,
          options.server_name.empty() ? options.host : options.server_name};
}

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

// The PoolState gives the budget tokens back as it goes.
SocketPool::~SocketPool() = default;

void SocketPool::Start() {
  Actions actions;
  {
    MutexLock lock(&mu_);
    PoolState::Actions decided;
    if (!state_.Start(absl::Now(), &decided)) return;
    actions = TakeActionsLocked(std::move(decided));
  }
  ScheduleSweep();
  lifecycle_->Start();
  Run(std::move(actions));
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
  {
    MutexLock lock(&mu_);
    PoolState::Actions decided;
    ticket = state_.Acquire(slot, request.deadline, absl::Now(), &decided);
    // Known before the decisions are looked up: they may serve or refuse this caller at once.
    pending_.emplace(ticket, Pending{std::move(done), std::move(request.caller),
                                     std::move(request.trace_parent)});
    actions = TakeActionsLocked(std::move(decided));
  }
  Run(std::move(actions));
  return ticket;
}

void SocketPool::CancelAcquire(uint64_t ticket) {
  Actions actions;
  {
    MutexLock lock(&mu_);
    PoolState::Actions decided;
    state_.Cancel(ticket, &decided);
    actions = TakeActionsLocked(std::move(decided));
  }
  Run(std::move(actions));
}

void SocketPool::Dispatch() {
  Actions actions;
  {
    MutexLock lock(&mu_);
    PoolState::Actions decided;
    state_.Dispatch(absl::Now(), &decided);
    actions = TakeActionsLocked(std::move(decided));
  }
  Run(std::move(actions));
}

bool SocketPool::HoldsLocked(const std::shared_ptr<PooledSocket>& socket) const {
  return sockets_[socket->slot - 1] == socket;
}

SocketPool::Actions SocketPool::TakeActionsLocked(PoolState::Actions decided) {
  Actions actions;
  for (PoolState::Failure& f : decided.failures) {
    auto it = pending_.find(f.waiter.ticket);
    if (it == pending_.end()) continue;
    actions.failures.emplace_back(std::move(it->second), std::move(f.status));
    pending_.erase(it);
  }
  for (PoolState::Close& c : decided.closes) {
    std::shared_ptr<PooledSocket>& socket = sockets_[c.slot - 1];
    if (socket != nullptr && socket->id == c.socket) {
      actions.closes.emplace_back(std::move(socket), std::move(c.reason));
    }
  }
  actions.connects = std::move(decided.connects);
  for (PoolState::Grant& g : decided.grants) {
    auto it = pending_.find(g.waiter.ticket);
    if (it == pending_.end()) continue;
    actions.grants.push_back({g.waiter, std::move(it->second), sockets_[g.slot - 1]});
    pending_.erase(it);
  }
  actions.sync_deadline_timer = decided.deadline_timer.has_value();
  actions.sync_retry_timer = decided.retry_timer.has_value();
  // Sockets whose slot the state emptied (closed, broken, forgotten) are no longer the pool's.
  for (int n = 1; n <= state_.max_sockets(); ++n) {
    std::shared_ptr<PooledSocket>& socket = sockets_[n - 1];
    if (socket != nullptr && state_.slot(n).socket != socket->id) socket.reset();
  }
  ReportStatesLocked();
  return actions;
}

void SocketPool::ReportStatesLocked() {
  int leased = 0, retiring = 0, enull = 0;
  for (int n = 1; n <= state_.max_sockets(); ++n) {
    const PoolState::SlotInfo& s = state_.slot(n);
    if (s.state == PoolState::SlotState::kLeased) {
      ++leased;
      // Leased but retired (revoked, expiring, drained): closes when its lease ends.
      retiring += !s.retire_reason.empty();
    }
    // Open sockets whose cipher encrypts nothing (OpenSSL names them ...NULL...): an operator
    // must be able to see that integrity-only traffic is flowing (an alert watches this).
    const std::shared_ptr<PooledSocket>& socket = sockets_[n - 1];
    enull += socket != nullptr && absl::StrContains(socket->info.cipher, "NULL");
  }
  observer_->OnSocketStates(state_.connecting(), state_.idle(), leased - retiring, retiring);
  observer_->OnEnullSockets(enull);
  observer_->OnWaiters(state_.waiters());
}

void SocketPool::SyncTimer(Timer which) {
  std::weak_ptr<SocketPool> weak = weak_from_this();
  // Asio timers must be used from one thread: timer_loop_'s. The time is read there, under the
  // lock, rather than taken from the action: two threads' syncs may reach the loop in either
  // order, and the state's latest wish is the one that must stand.
  asio::post(timer_loop_, [weak, which] {
    auto pool = weak.lock();
    if (!pool) return;
    absl::Time at;
    {
      MutexLock lock(&pool->mu_);
      at = which == Timer::kDeadline ? pool->state_.deadline_timer_at()
                                     : pool->state_.retry_timer_at();
    }
    asio::steady_timer& timer =
        which == Timer::kDeadline ? pool->deadline_timer_ : pool->retry_timer_;
    if (at == absl::InfiniteFuture()) {
      timer.cancel();
      return;
    }
    // Re-aiming cancels the wait in progress (it ends with an error and does nothing).
    timer.expires_after(
        absl::ToChronoNanoseconds(std::max(at - absl::Now(), absl::ZeroDuration())));
    timer.async_wait([weak, which](const asio::error_code& ec) {
      if (ec) return;
      if (auto pool = weak.lock()) pool->OnTimer(which);
    });
  });
}

void SocketPool::OnTimer(Timer which) {
  Actions actions;
  {
    MutexLock lock(&mu_);
    PoolState::Actions decided;
    if (which == Timer::kDeadline) {
      state_.OnDeadlineTimer(absl::Now(), &decided);
    } else {
      state_.OnRetryTimer(absl::Now(), &decided);
    }
    actions = TakeActionsLocked(std::move(decided));
  }
  Run(std::move(actions));
}

void SocketPool::Run(Actions actions) {
  for (auto& [pending, status] : actions.failures) {
    observer_->OnLeaseRefused(status.code());
    std::move(pending.done)(status);
  }
  for (auto& [socket, reason] : actions.closes) {
    observer_->OnSocketClosed(reason);
    CloseOnLoop(socket);
  }
  for (int slot : actions.connects) StartConnect(slot);
  for (Grant& grant : actions.grants) {
    auto self = shared_from_this();
    asio::io_context& io = grant.socket->tls->io();
    asio::post(io, [self, grant = std::move(grant)]() mutable {
      self->Activate(std::move(grant));
    });
  }
  if (actions.sync_deadline_timer) SyncTimer(Timer::kDeadline);
  if (actions.sync_retry_timer) SyncTimer(Timer::kRetry);
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
            status = WithMessage(status, absl::StrCat(status.message(), " (address ", address,
                                                       ", ", index + 1, " of ", count, ")"));
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
    const absl::Time now = absl::Now();
    PoolState::Actions decided;
    if (!status.ok()) {
      state_.OnConnectFailed(slot, status, now, &decided);
    } else if (!discard.empty()) {
      state_.OnConnectDiscarded(slot, now, &decided);
    } else {
      auto candidate = std::make_shared<PooledSocket>();
      candidate->slot = slot;
      candidate->client_id = FormatClientId(opts->client_id, slot);
      candidate->id = g_next_socket_id.fetch_add(1);
      candidate->tls = tls;
      candidate->created_at = now;
      candidate->peer_chain = tls->peer_chain();
      if (candidate->peer_chain != nullptr) {
        candidate->retire_at =
            RetireTime(*candidate->peer_chain, opts->tls.expiry_margin, candidate->created_at);
      }
      candidate->info = info;
      // False when shut down meanwhile: the socket is closed below.
      if (state_.OnConnected(slot, candidate->id, now, candidate->retire_at, info.resumed,
                             &decided)) {
        socket = std::move(candidate);
        sockets_[slot - 1] = socket;  // Before the decisions: they may lend it at once.
      }
    }
    actions = TakeActionsLocked(std::move(decided));
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

void SocketPool::Activate(Grant grant) {
  const std::shared_ptr<const BackendOptions> opts = options();
  const std::shared_ptr<PooledSocket>& socket = grant.socket;
  // Runs on the socket's loop. The socket is marked leased; make sure it is still healthy:
  // a backend may have closed it, or sent bytes, since it went idle.
  socket->tls->StopIdleWatch();
  std::string retired;
  {
    MutexLock lock(&mu_);
    retired = state_.RetireReasonAtLeaseStart(socket->slot, socket->id, absl::Now());
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
      PoolState::Actions decided;
      // The caller goes back to the front of the queue, so it is known again by its ticket.
      pending_.emplace(grant.waiter.ticket, std::move(grant.pending));
      state_.OnGrantFailed(grant.waiter, socket->slot, socket->id, absl::Now(), &decided);
      actions = TakeActionsLocked(std::move(decided));
    }
    Run(std::move(actions));
    return;
  }
  int leases_served;
  {
    MutexLock lock(&mu_);
    leases_served = state_.OnLeaseStarted(socket->slot, socket->id);
  }
  const bool reused = leases_served > 1;
  LeaseInfo info;
  info.backend = opts->name;
  info.client_id = socket->client_id;
  info.socket_id = socket->id;
  info.slot = socket->slot;
  info.reused = reused;
  info.leases_served = leases_served;
  info.wait = absl::Now() - grant.waiter.enqueued_at;
  info.tls = socket->tls->session_info();
  observer_->OnLeaseGranted(info.wait, reused);
  auto core = LeaseCore::Create(shared_from_this(), opts, observer_, socket, std::move(info),
                                grant.pending.caller, grant.pending.trace_parent);
  bool abort_now = false;
  std::string abort_reason;
  {
    MutexLock lock(&mu_);
    socket->lease_id = core->info().lease_id;
    socket->lease_caller = grant.pending.caller;
    socket->lease_started_at = absl::Now();
    socket->lease = core;
    // Retired with ABORT_LEASE between the check above and now.
    abort_now = HoldsLocked(socket) && !state_.slot(socket->slot).retire_reason.empty() &&
                !socket->abort_reason.empty();
    abort_reason = socket->abort_reason;
  }
  if (abort_now) {
    core->Abort(TlsFailure(abort_reason, "the socket was retired as its lease began"));
  }
  std::move(grant.pending.done)(Lease(std::move(core)));
}

void SocketPool::OnIdleBroken(const std::shared_ptr<PooledSocket>& socket, absl::Status status) {
  const std::shared_ptr<const BackendOptions> opts = options();
  // Runs on the socket's loop.
  bool removed = false;
  Actions actions;
  {
    MutexLock lock(&mu_);
    if (!HoldsLocked(socket)) return;
    PoolState::Actions decided;
    removed = state_.OnIdleBroken(socket->slot, socket->id, absl::Now(), &decided);
    actions = TakeActionsLocked(std::move(decided));
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
  PoolState::ReturnResult returned;
  Actions actions;
  {
    MutexLock lock(&mu_);
    if (!HoldsLocked(socket)) return;  // Already forgotten (reclaimed).
    socket->lease_id.clear();
    socket->lease_caller.clear();
    socket->lease.reset();
    PoolState::Actions decided;
    returned = state_.OnReturned(socket->slot, socket->id, verdict.ok(), close_reason,
                                 absl::Now(), &decided);
    actions = TakeActionsLocked(std::move(decided));
  }
  if (!returned.known) {
    Run(std::move(actions));
    return;
  }
  if (returned.keep) {
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
                            LogField("reason", returned.reason), " ",
                            LogField("detail", verdict.message())));
    }
    observer_->OnSocketClosed(returned.reason);
    socket->tls->Close();
  }
  Run(std::move(actions));
}

void SocketPool::NoteReturning(const std::shared_ptr<PooledSocket>& socket) {
  MutexLock lock(&mu_);
  if (HoldsLocked(socket)) state_.NoteReturning(socket->slot, socket->id);
}

void SocketPool::ForgetSocket(const std::shared_ptr<PooledSocket>& socket) {
  Actions actions;
  {
    MutexLock lock(&mu_);
    if (!HoldsLocked(socket)) return;
    PoolState::Actions decided;
    state_.Forget(socket->slot, socket->id, absl::Now(), &decided);
    actions = TakeActionsLocked(std::move(decided));
  }
  Run(std::move(actions));
}

void SocketPool::ScheduleSweep() {
  const std::shared_ptr<const BackendOptions> opts = options();
  const absl::Duration period =
      std::clamp(std::min(opts->pool.idle_timeout, opts->pool.max_lifetime) / 4,
                 absl::Milliseconds(10), absl::Seconds(1));
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
  const absl::Time now = absl::Now();
  Actions actions;
  {
    MutexLock lock(&mu_);
    if (state_.shut_down()) return;
    PoolState::Actions decided;
    state_.Sweep(now, &decided);
    actions = TakeActionsLocked(std::move(decided));
  }
  Run(std::move(actions));
}

void SocketPool::Shutdown() {
  Actions actions;
  {
    MutexLock lock(&mu_);
    PoolState::Actions decided;
    state_.Shutdown(absl::Now(), &decided);
    actions = TakeActionsLocked(std::move(decided));
  }
  Run(std::move(actions));
  std::weak_ptr<SocketPool> weak = weak_from_this();
  asio::post(timer_loop_, [weak] {
    if (auto pool = weak.lock()) pool->sweep_timer_.cancel();
  });
  lifecycle_->Stop();
}

void SocketPool::Resume() {
  bool sweep;
  Actions actions;
  {
    MutexLock lock(&mu_);
    PoolState::Actions decided;
    if (!state_.Resume(absl::Now(), &decided)) return;  // Prewarms to min_idle again.
    // Shutdown cancelled the sweep; a pool never started gets it from Start().
    sweep = state_.started();
    actions = TakeActionsLocked(std::move(decided));
  }
  // Posted after Shutdown's cancel on the same loop, so the new sweep is not cancelled by it
  // (and the lifecycle's start after its stop, on its strand).
  if (sweep) {
    ScheduleSweep();
    lifecycle_->Start();
  }
  Run(std::move(actions));
}


std::shared_ptr<const BackendOptions> SocketPool::options() const {
  MutexLock lock(&settings_mu_);
  return options_;
}

std::shared_ptr<const TlsClientContext> SocketPool::tls_context() const {
  return lifecycle_->context();
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
    MutexLock lock(&mu_);
    state_.SetOptions(next.name, next.pool);
  }
  ReportAddresses(next);
  LogEvent(LogLevel::kInfo, "backend reconfigured; new sockets use the new settings",
           LogField("backend", next.name));
  // A reload re-reads the CRLs too: they apply to pooled sockets as a file change would.
  // Credentials follow the reload rule (open sockets keep theirs).
  lifecycle_->Reconfigure(LifecycleSettings(next), std::move(context));
  Dispatch();  // min_idle may have grown.
}

std::vector<OpenTlsSocket> SocketPool::OpenSockets() const {
  std::vector<OpenTlsSocket> open;
  MutexLock lock(&mu_);
  for (const auto& socket : sockets_) {
    if (socket == nullptr) continue;
    open.push_back({socket->id, socket->client_id, socket->tls, socket->peer_chain,
                    socket->info.ocsp_valid_until});
  }
  return open;
}

int SocketPool::RetireIf(absl::FunctionRef<bool(const PeerChain&)> matches,
                         absl::string_view close_reason, LeasedPolicy leased,
                         absl::string_view abort_reason) {
  std::vector<std::shared_ptr<PooledSocket>> open;
  {
    MutexLock lock(&mu_);
    for (const auto& socket : sockets_) {
      if (socket != nullptr) open.push_back(socket);
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
    PoolState::Actions decided;
    for (auto& socket : hits) {
      if (!HoldsLocked(socket)) continue;  // Gone meanwhile.
      switch (state_.Retire(socket->slot, socket->id, close_reason, &decided)) {
        case PoolState::RetireResult::kIdleClosed:
          ++idle;
          break;
        case PoolState::RetireResult::kLeasedRetired:
          ++leased_count;
          if (leased == LeasedPolicy::kAbortLease) {
            socket->abort_reason = std::string(abort_reason);
            if (auto core = socket->lease.lock()) aborts.push_back(std::move(core));
          }
          break;
        case PoolState::RetireResult::kGone:
          break;
      }
    }
    state_.Dispatch(absl::Now(), &decided);  // Replacements for the closed ones.
    actions = TakeActionsLocked(std::move(decided));
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

PoolStats SocketPool::Stats() const {
  MutexLock lock(&mu_);
  PoolStats stats;
  stats.max_sockets = state_.max_sockets();
  stats.connecting = state_.connecting();
  stats.idle = state_.idle();
  stats.leased = state_.leased();
  stats.waiters = state_.waiters();
  stats.sockets_created = state_.sockets_created();
  stats.handshakes_full = state_.handshakes_full();
  stats.handshakes_resumed = state_.handshakes_resumed();
  stats.leases_granted = state_.leases_granted();
  stats.connect_failures = state_.connect_failures();
  stats.last_failure = std::string(state_.last_failure().message());
  return stats;
}

std::vector<SocketSnapshot> SocketPool::Sockets() const {
  const std::shared_ptr<const BackendOptions> opts = options();
  std::vector<SocketSnapshot> out;
  {
    MutexLock lock(&mu_);
    for (int n = 1; n <= state_.max_sockets(); ++n) {
      const PoolState::SlotInfo& s = state_.slot(n);
      if (s.state == PoolState::SlotState::kEmpty) continue;
      SocketSnapshot snap;
      snap.slot = n;
      snap.client_id = FormatClientId(opts->client_id, snap.slot);
      snap.state = s.state == PoolState::SlotState::kConnecting ? "connecting"
                   : s.state == PoolState::SlotState::kIdle     ? "idle"
                                                                : "leased";
      if (const std::shared_ptr<PooledSocket>& socket = sockets_[n - 1]) {
        snap.socket_id = socket->id;
        snap.created_at = socket->created_at;
        snap.leases_served = s.leases_served;
        snap.lease_id = socket->lease_id;
        snap.lease_caller = socket->lease_caller;
        snap.lease_started_at = socket->lease_started_at;
        snap.bytes_sent = socket->tls->bytes_sent();
        snap.bytes_received = socket->tls->bytes_received();
        // Byte counters are monotonic counters read for display; the session info is the
        // pool's copy (the TlsSocket's own changes on its loop when OCSP is re-checked).
        snap.tls = socket->info;
      }
      out.push_back(std::move(snap));
    }
  }
  // The OCSP fields as the latest re-checks left them (the handshake's until one answers).
  for (SocketSnapshot& snap : out) {
    if (snap.socket_id == 0) continue;
    std::optional<TlsLifecycle::OcspAnswer> answer = lifecycle_->OcspAnswerOf(snap.socket_id);
    if (!answer) continue;
    if (!answer->source.empty()) {
      snap.tls.ocsp_source = answer->source;
      snap.tls.ocsp_status = answer->status;
    }
    if (answer->valid_until) snap.tls.ocsp_valid_until = answer->valid_until;
  }
  return out;
}

}  // namespace tlsbroker
