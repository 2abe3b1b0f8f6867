#include "services/lease_reactor.h"

#include "absl/strings/str_cat.h"
#include "broker/common/log.h"
#include "services/audit_log.h"
#include "services/caller_identity.h"
#include "services/caller_pattern.h"
#include "services/lease_info_proto.h"
#include "services/status_conversion.h"
#include "services/trace_context.h"

namespace tlsbroker {
namespace {

constexpr size_t kBackendReadChunk = 16 * 1024;

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

}  // namespace

// What the reactor and the lease's callbacks share. Everything mutable is under mu.
struct LeaseReactor::State : std::enable_shared_from_this<State> {
  State(LeaseReactor* r, const ServiceContext& s, std::string c)
      : services(s), caller(std::move(c)), reactor(r) {}

  // The reactor, while it may be used: under mu, and only while !finished (see the class
  // comment).
  LeaseReactor* Live() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return finished ? nullptr : reactor; }
  // Reads the next chunk from the backend (the lease is active).
  void ReadBackendLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // End, under mu; returns the acquire ticket to cancel once the lock is released (0: none).
  uint64_t EndLocked(absl::Status status, bool broken) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  void FinishIfReadyLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  const ServiceContext& services;  // Outlives every RPC.
  const std::string caller;

  Mutex mu;
  LeaseReactor* reactor ABSL_GUARDED_BY(mu);
  Phase phase ABSL_GUARDED_BY(mu) = Phase::kAwaitOpen;
  std::shared_ptr<SocketPool> pool ABSL_GUARDED_BY(mu);
  std::string backend ABSL_GUARDED_BY(mu);
  Lease lease ABSL_GUARDED_BY(mu);
  // This stream's place under limits.max_leases_per_caller, from open to end.
  CallerLeaseLimiter::Slot caller_slot ABSL_GUARDED_BY(mu);
  uint64_t ticket ABSL_GUARDED_BY(mu) = 0;
  bool write_in_flight ABSL_GUARDED_BY(mu) = false;
  uint64_t write_held ABSL_GUARDED_BY(mu) = 0;  // Bytes in the gRPC write in flight.
  bool finish_pending ABSL_GUARDED_BY(mu) = false;
  bool finished ABSL_GUARDED_BY(mu) = false;
  grpc::Status final_status ABSL_GUARDED_BY(mu);
};

LeaseReactor::LeaseReactor(grpc::CallbackServerContext* context, const ServiceContext& services)
    : context_(context),
      services_(services),
      st_(std::make_shared<State>(this, services, CallerIdentity(*context))) {
  services_.flow->RpcStarted();
  MutexLock lock(&st_->mu);
  StartRead(&request_);
}

void LeaseReactor::OnReadDone(bool ok) {
  if (!ok) {
    // The caller half-closed (or the call ended): the lease ends cleanly if the exchange did.
    End(st_, absl::OkStatus(), /*broken=*/false);
    return;
  }
  Phase phase;
  v1::LeaseRequest request;
  {
    MutexLock lock(&st_->mu);
    phase = st_->phase;
    request = std::move(request_);
    request_.Clear();
  }
  switch (request.kind_case()) {
    case v1::LeaseRequest::kOpen:
      if (phase != Phase::kAwaitOpen) {
        End(st_, absl::InvalidArgumentError("open sent twice on one Lease stream"), true);
        return;
      }
      HandleOpen(request.open());
      return;
    case v1::LeaseRequest::kData: {
      if (phase != Phase::kActive) {
        End(st_, absl::InvalidArgumentError("the first message of a Lease stream must be open"),
            false);
        return;
      }
      std::string* data = request.mutable_data();
      uint64_t size = data->size();
      services_.flow->Hold(size);
      MutexLock lock(&st_->mu);
      if (st_->phase != Phase::kActive) {
        services_.flow->Drop(size);
        return;
      }
      // The next caller message is read only once this one reached the backend.
      st_->lease.Write(std::move(*data), [st = st_, size](absl::Status status) {
        OnBackendWritten(st, size, status);
      });
      return;
    }
    case v1::LeaseRequest::kRelease:
      End(st_, absl::OkStatus(), false);
      return;
    case v1::LeaseRequest::KIND_NOT_SET:
      End(st_, absl::InvalidArgumentError("empty LeaseRequest: set open, data or release"),
          phase == Phase::kActive);
      return;
  }
}

void LeaseReactor::HandleOpen(const v1::OpenLease& open) {
  const std::string& caller = st_->caller;
  std::shared_ptr<SocketPool> pool = services_.registry->Find(open.backend());
  if (pool == nullptr) {
    End(st_, absl::NotFoundError(absl::StrCat("unknown backend \"", open.backend(), "\"")),
        false);
    return;
  }
  if (!CallerAllowed(pool->options()->allowed_callers, caller)) {
    absl::Status denied = absl::PermissionDeniedError(
        absl::StrCat("caller \"", caller, "\" may not use backend ", open.backend()));
    LogRefusal("Lease", caller, open.backend(), kRefusedPermission, denied);
    End(st_, denied, false);
    return;
  }
  CallerLeaseLimiter::Slot caller_slot;
  if (services_.caller_limits != nullptr) {
    absl::StatusOr<CallerLeaseLimiter::Slot> taken = services_.caller_limits->Take(caller);
    if (!taken.ok()) {
      LogRefusal("Lease", caller, open.backend(), kRefusedCallerLimit, taken.status());
      End(st_, taken.status(), false);
      return;
    }
    caller_slot = *std::move(taken);
  }
  absl::Duration wait = open.has_acquire_timeout() ? FromProto(open.acquire_timeout())
                                                   : pool->options()->pool.acquire_timeout;
  absl::Time deadline = absl::Now() + wait;
  absl::Time rpc_deadline = absl::FromChrono(context_->deadline());
  if (rpc_deadline < deadline) deadline = rpc_deadline;
  SocketPool::AcquireRequest request;
  request.client_id = open.client_id();
  request.deadline = deadline;
  request.caller = caller;
  request.trace_parent = TraceParent(*context_);
  {
    MutexLock lock(&st_->mu);
    if (st_->phase == Phase::kEnded) return;
    st_->phase = Phase::kAcquiring;
    st_->caller_slot = std::move(caller_slot);
    st_->pool = pool;
    st_->backend = open.backend();
  }
  // The callback may run inline (an error known at once), before Acquire returns a ticket.
  uint64_t ticket = pool->Acquire(std::move(request), [st = st_](absl::StatusOr<Lease> lease) {
    OnAcquired(st, std::move(lease));
  });
  MutexLock lock(&st_->mu);
  st_->ticket = ticket;
}

void LeaseReactor::OnAcquired(const std::shared_ptr<State>& st, absl::StatusOr<Lease> lease) {
  Lease to_release;
  uint64_t to_cancel = 0;
  std::shared_ptr<SocketPool> pool;
  if (std::string reason = lease.ok() ? "" : RefusalReason(lease.status()); !reason.empty()) {
    std::string backend;
    {
      MutexLock lock(&st->mu);
      backend = st->backend;
    }
    LogRefusal("Lease", st->caller, backend, reason, lease.status());
  }
  {
    MutexLock lock(&st->mu);
    LeaseReactor* reactor = st->Live();
    if (st->phase != Phase::kAcquiring || reactor == nullptr) {
      // The stream ended while we waited; the lease (if any) goes straight back.
      if (lease.ok()) to_release = std::move(*lease);
    } else if (!lease.ok()) {
      to_cancel = st->EndLocked(lease.status(), false);
      pool = st->pool;
    } else {
      st->lease = std::move(*lease);
      st->phase = Phase::kActive;
      bool admin = CallerAllowed(st->services.registry->AdminCallers(), st->caller);
      reactor->response_.Clear();
      ToProto(st->lease.info(), admin, reactor->response_.mutable_info());
      st->write_in_flight = true;
      st->write_held = 0;
      reactor->StartWrite(&reactor->response_);
      reactor->StartRead(&reactor->request_);
    }
  }
  if (to_cancel != 0 && pool != nullptr) pool->CancelAcquire(to_cancel);
  to_release = Lease();
}

void LeaseReactor::OnBackendWritten(const std::shared_ptr<State>& st, uint64_t size,
                                    absl::Status status) {
  st->services.flow->Drop(size);
  if (!status.ok()) {
    // Part of the request may have reached the backend.
    End(st, OutcomeUnknown(status), true);
    return;
  }
  MutexLock lock(&st->mu);
  LeaseReactor* reactor = st->Live();
  if (reactor != nullptr && st->phase == Phase::kActive) reactor->StartRead(&reactor->request_);
}

void LeaseReactor::State::ReadBackendLocked() {
  lease.Read(kBackendReadChunk, [st = shared_from_this()](absl::StatusOr<std::string> data) {
    OnBackendData(st, std::move(data));
  });
}

void LeaseReactor::OnBackendData(const std::shared_ptr<State>& st,
                                 absl::StatusOr<std::string> data) {
  bool end = false;
  absl::Status end_status;
  {
    MutexLock lock(&st->mu);
    LeaseReactor* reactor = st->Live();
    if (reactor != nullptr && st->phase == Phase::kActive) {
      if (!data.ok()) {
        end = true;
        end_status = st->lease.wrote_any() ? OutcomeUnknown(data.status()) : data.status();
      } else {
        uint64_t size = data->size();
        st->services.flow->Hold(size);
        reactor->response_.Clear();
        reactor->response_.set_data(*std::move(data));
        st->write_in_flight = true;
        st->write_held = size;
        // The backend is read again only when the caller has taken this chunk.
        reactor->StartWrite(&reactor->response_);
      }
    }
  }
  if (end) End(st, end_status, true);
}

void LeaseReactor::OnWriteDone(bool ok) {
  MutexLock lock(&st_->mu);
  st_->write_in_flight = false;
  services_.flow->Drop(st_->write_held);
  st_->write_held = 0;
  if (ok && st_->phase == Phase::kActive) {
    st_->ReadBackendLocked();
    return;
  }
  // Not ok: the caller is gone; OnCancel/OnReadDone end the lease.
  st_->FinishIfReadyLocked();
}

void LeaseReactor::OnCancel() {
  // Cancelled or past its deadline mid-exchange: the socket cannot be trusted any more.
  End(st_, absl::CancelledError("the caller cancelled the lease"), true);
}

void LeaseReactor::End(const std::shared_ptr<State>& st, absl::Status status, bool broken) {
  uint64_t to_cancel;
  std::shared_ptr<SocketPool> pool;
  {
    MutexLock lock(&st->mu);
    to_cancel = st->EndLocked(std::move(status), broken);
    pool = st->pool;
  }
  if (to_cancel != 0 && pool != nullptr) pool->CancelAcquire(to_cancel);
}

uint64_t LeaseReactor::State::EndLocked(absl::Status status, bool broken) {
  LeaseReactor* live = Live();
  if (phase == Phase::kEnded || live == nullptr) return 0;
  const uint64_t to_cancel = phase == Phase::kAcquiring ? ticket : 0;
  phase = Phase::kEnded;
  if (lease.valid()) {
    if (broken) lease.MarkBroken(status.ok() ? "lease ended abnormally" : status.message());
    // Released before the stream finishes, so the caller's next request finds the socket on
    // its way back to the pool.
    Lease ended = std::move(lease);
  }
  // The place is free before the caller hears the end, so its next lease is not refused.
  caller_slot.Release();
  final_status = FinishStatus(live->context_, status, "", backend);
  finish_pending = true;
  FinishIfReadyLocked();
  return to_cancel;
}

void LeaseReactor::State::FinishIfReadyLocked() {
  // Finish only once no write is in flight.
  LeaseReactor* live = Live();
  if (!finish_pending || live == nullptr || write_in_flight) return;
  finished = true;  // From here on no callback reaches for the reactor (see Live()).
  live->Finish(final_status);
}

void LeaseReactor::OnDone() {
  services_.flow->RpcDone();
  {
    MutexLock lock(&st_->mu);
    if (st_->write_held > 0) {
      services_.flow->Drop(st_->write_held);
      st_->write_held = 0;
    }
    st_->reactor = nullptr;
  }
  delete this;
}

}  // namespace tlsbroker
