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

LeaseReactor::LeaseReactor(grpc::CallbackServerContext* context, const ServiceContext& services)
    : context_(context), services_(services), caller_(CallerIdentity(*context)) {
  services_.flow->RpcStarted();
  {
    MutexLock lock(&mu_);
    StartRead(&request_);
  }
  ReleasePending();
}

void LeaseReactor::OnReadDone(bool ok) {
  if (!ok) {
    // The caller half-closed (or the call ended): the lease ends cleanly if the exchange did.
    End(absl::OkStatus(), /*broken=*/false);
    return;
  }
  Phase phase;
  v1::LeaseRequest request;
  {
    MutexLock lock(&mu_);
    phase = phase_;
    request = std::move(request_);
    request_.Clear();
  }
  switch (request.kind_case()) {
    case v1::LeaseRequest::kOpen:
      if (phase != Phase::kAwaitOpen) {
        End(absl::InvalidArgumentError("open sent twice on one Lease stream"), true);
        return;
      }
      HandleOpen(request.open());
      return;
    case v1::LeaseRequest::kData: {
      if (phase != Phase::kActive) {
        End(absl::InvalidArgumentError("the first message of a Lease stream must be open"),
            false);
        return;
      }
      std::string* data = request.mutable_data();
      uint64_t size = data->size();
      services_.flow->Hold(size);
      MutexLock lock(&mu_);
      if (phase_ != Phase::kActive) {
        services_.flow->Drop(size);
        return;
      }
      ++pending_callbacks_;
      // The next caller message is read only once this one reached the backend.
      lease_.Write(std::move(*data),
                   [this, size](absl::Status status) { OnBackendWritten(size, status); });
      return;
    }
    case v1::LeaseRequest::kRelease:
      End(absl::OkStatus(), false);
      return;
    case v1::LeaseRequest::KIND_NOT_SET:
      End(absl::InvalidArgumentError("empty LeaseRequest: set open, data or release"),
          phase == Phase::kActive);
      return;
  }
}

void LeaseReactor::HandleOpen(const v1::OpenLease& open) {
  std::shared_ptr<SocketPool> pool = services_.registry->Find(open.backend());
  if (pool == nullptr) {
    End(absl::NotFoundError(absl::StrCat("unknown backend \"", open.backend(), "\"")), false);
    return;
  }
  if (!CallerAllowed(pool->options()->allowed_callers, caller_)) {
    absl::Status denied = absl::PermissionDeniedError(
        absl::StrCat("caller \"", caller_, "\" may not use backend ", open.backend()));
    LogRefusal("Lease", caller_, open.backend(), kRefusedPermission, denied);
    End(denied, false);
    return;
  }
  CallerLeaseLimiter::Slot caller_slot;
  if (services_.caller_limits != nullptr) {
    absl::StatusOr<CallerLeaseLimiter::Slot> taken = services_.caller_limits->Take(caller_);
    if (!taken.ok()) {
      LogRefusal("Lease", caller_, open.backend(), kRefusedCallerLimit, taken.status());
      End(taken.status(), false);
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
  request.caller = caller_;
  request.trace_parent = TraceParent(*context_);
  {
    MutexLock lock(&mu_);
    if (phase_ == Phase::kEnded) return;
    phase_ = Phase::kAcquiring;
    caller_slot_ = std::move(caller_slot);
    pool_ = pool;
    backend_ = open.backend();
    ++pending_callbacks_;
  }
  uint64_t ticket = pool->Acquire(std::move(request), [this](absl::StatusOr<Lease> lease) {
    OnAcquired(std::move(lease));
  });
  MutexLock lock(&mu_);
  ticket_ = ticket;
}

void LeaseReactor::OnAcquired(absl::StatusOr<Lease> lease) {
  Lease to_release;
  uint64_t to_cancel = 0;
  if (std::string reason = lease.ok() ? "" : RefusalReason(lease.status()); !reason.empty()) {
    std::string backend;
    {
      MutexLock lock(&mu_);
      backend = backend_;
    }
    LogRefusal("Lease", caller_, backend, reason, lease.status());
  }
  {
    MutexLock lock(&mu_);
    if (phase_ != Phase::kAcquiring) {
      // The stream ended while we waited; the lease (if any) goes straight back.
      if (lease.ok()) to_release = std::move(*lease);
    } else if (!lease.ok()) {
      EndLocked(lease.status(), false, &to_cancel);
    } else {
      lease_ = std::move(*lease);
      phase_ = Phase::kActive;
      bool admin = CallerAllowed(services_.registry->AdminCallers(), caller_);
      response_.Clear();
      ToProto(lease_.info(), admin, response_.mutable_info());
      write_in_flight_ = true;
      write_held_ = 0;
      StartWrite(&response_);
      StartRead(&request_);
    }
  }
  to_release = Lease();
  ReleasePending();
}

void LeaseReactor::OnBackendWritten(uint64_t size, absl::Status status) {
  services_.flow->Drop(size);
  if (!status.ok()) {
    // Part of the request may have reached the backend.
    End(OutcomeUnknown(status), true);
  } else {
    MutexLock lock(&mu_);
    if (phase_ == Phase::kActive) StartRead(&request_);
  }
  ReleasePending();
}

void LeaseReactor::ReadBackendLocked() {
  ++pending_callbacks_;
  lease_.Read(kBackendReadChunk,
              [this](absl::StatusOr<std::string> data) { OnBackendData(std::move(data)); });
}

void LeaseReactor::OnBackendData(absl::StatusOr<std::string> data) {
  bool end = false;
  absl::Status end_status;
  {
    MutexLock lock(&mu_);
    if (phase_ == Phase::kActive) {
      if (!data.ok()) {
        end = true;
        end_status = lease_.wrote_any() ? OutcomeUnknown(data.status()) : data.status();
      } else {
        uint64_t size = data->size();
        services_.flow->Hold(size);
        response_.Clear();
        response_.set_data(*std::move(data));
        write_in_flight_ = true;
        write_held_ = size;
        // The backend is read again only when the caller has taken this chunk.
        StartWrite(&response_);
      }
    }
  }
  if (end) End(end_status, true);
  ReleasePending();
}

void LeaseReactor::OnWriteDone(bool ok) {
  MutexLock lock(&mu_);
  write_in_flight_ = false;
  services_.flow->Drop(write_held_);
  write_held_ = 0;
  if (!ok) {
    // The caller is gone; OnCancel/OnReadDone end the lease.
    FinishIfReadyLocked();
    return;
  }
  if (phase_ == Phase::kActive) {
    ReadBackendLocked();
    return;
  }
  FinishIfReadyLocked();
}

void LeaseReactor::OnCancel() {
  // Cancelled or past its deadline mid-exchange: the socket cannot be trusted any more.
  End(absl::CancelledError("the caller cancelled the lease"), true);
}

void LeaseReactor::End(absl::Status status, bool broken) {
  uint64_t to_cancel = 0;
  std::shared_ptr<SocketPool> pool;
  {
    MutexLock lock(&mu_);
    EndLocked(std::move(status), broken, &to_cancel);
    pool = pool_;
  }
  if (to_cancel != 0 && pool != nullptr) pool->CancelAcquire(to_cancel);
}

void LeaseReactor::EndLocked(absl::Status status, bool broken, uint64_t* to_cancel) {
  if (phase_ == Phase::kEnded) return;
  if (phase_ == Phase::kAcquiring) *to_cancel = ticket_;
  phase_ = Phase::kEnded;
  if (lease_.valid()) {
    if (broken) lease_.MarkBroken(status.ok() ? "lease ended abnormally" : status.message());
    // Released before the stream finishes, so the caller's next request finds the socket on
    // its way back to the pool.
    Lease ended = std::move(lease_);
  }
  // The place is free before the caller hears the end, so its next lease is not refused.
  caller_slot_.Release();
  final_status_ = FinishStatus(context_, status, "", backend_);
  finish_pending_ = true;
  FinishIfReadyLocked();
}

void LeaseReactor::FinishIfReadyLocked() {
  // Finish only once no write is in flight.
  if (!finish_pending_ || finished_ || write_in_flight_) return;
  finished_ = true;
  Finish(final_status_);
}

void LeaseReactor::OnDone() {
  services_.flow->RpcDone();
  bool remove;
  {
    // Set done_ and decide in one critical section: a callback finishing on another thread
    // decides too, and exactly one of the two may delete.
    MutexLock lock(&mu_);
    done_ = true;
    if (write_held_ > 0) {
      services_.flow->Drop(write_held_);
      write_held_ = 0;
    }
    remove = pending_callbacks_ == 0;
  }
  if (remove) delete this;
}

void LeaseReactor::ReleasePending() {
  bool remove;
  {
    MutexLock lock(&mu_);
    --pending_callbacks_;
    remove = done_ && pending_callbacks_ == 0;
  }
  if (remove) delete this;
}


}  // namespace tlsbroker
