#include "services/call_reactor.h"

#include "absl/strings/str_cat.h"
#include "services/audit_log.h"
#include "services/caller_identity.h"
#include "services/caller_pattern.h"
#include "services/lease_info_proto.h"
#include "services/request_validation.h"
#include "services/status_conversion.h"
#include "services/trace_context.h"

namespace tlsbroker {
namespace {

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

}  // namespace

CallReactor::CallReactor(grpc::CallbackServerContext* context, const v1::CallRequest* request,
                         v1::CallResponse* response, const ServiceContext& services)
    : context_(context),
      request_(request),
      response_(response),
      services_(services),
      caller_(CallerIdentity(*context)) {
  services_.flow->RpcStarted();
  Start();
  ReleasePending();
}

void CallReactor::Start() {
  std::shared_ptr<SocketPool> pool = services_.registry->Find(request_->backend());
  if (pool == nullptr) {
    Complete(absl::NotFoundError(absl::StrCat("unknown backend \"", request_->backend(), "\"")),
             false);
    return;
  }
  const std::shared_ptr<const BackendOptions> options_snapshot = pool->options();
    const BackendOptions& options = *options_snapshot;
  if (!CallerAllowed(options.allowed_callers, caller_)) {
    absl::Status denied = absl::PermissionDeniedError(
        absl::StrCat("caller \"", caller_, "\" may not use backend ", options.name));
    LogRefusal("Call", caller_, options.name, kRefusedPermission, denied);
    Complete(denied, false);
    return;
  }
  if (options.framing.kind == FramingOptions::Kind::kNone) {
    Complete(absl::FailedPreconditionError(absl::StrCat(
                 "backend ", options.name,
                 " has no framing configured: Call needs it to find the response; use Lease")),
             false);
    return;
  }
  absl::Status frame_ok = CheckOneRequestFrame(options.framing, request_->request());
  if (!frame_ok.ok()) {
    Complete(frame_ok, false);
    return;
  }
  CallerLeaseLimiter::Slot caller_slot;
  if (services_.caller_limits != nullptr) {
    absl::StatusOr<CallerLeaseLimiter::Slot> taken = services_.caller_limits->Take(caller_);
    if (!taken.ok()) {
      LogRefusal("Call", caller_, options.name, kRefusedCallerLimit, taken.status());
      Complete(taken.status(), false);
      return;
    }
    caller_slot = *std::move(taken);
  }
  absl::Duration wait = request_->has_acquire_timeout() ? FromProto(request_->acquire_timeout())
                                                        : options.pool.acquire_timeout;
  absl::Time deadline = absl::Now() + wait;
  absl::Time rpc_deadline = absl::FromChrono(context_->deadline());
  if (rpc_deadline < deadline) deadline = rpc_deadline;
  SocketPool::AcquireRequest acquire;
  acquire.client_id = request_->client_id();
  acquire.deadline = deadline;
  acquire.caller = caller_;
  acquire.trace_parent = TraceParent(*context_);
  {
    MutexLock lock(&mu_);
    pool_ = pool;
    caller_slot_ = std::move(caller_slot);
    acquiring_ = true;
    ++pending_callbacks_;
  }
  uint64_t ticket = pool->Acquire(std::move(acquire), [this](absl::StatusOr<Lease> lease) {
    OnAcquired(std::move(lease));
  });
  MutexLock lock(&mu_);
  ticket_ = ticket;
}

void CallReactor::OnAcquired(absl::StatusOr<Lease> lease) {
  absl::Status failure;
  std::string backend;  // For the refusal line (request_ may be gone once the call finished).
  {
    MutexLock lock(&mu_);
    acquiring_ = false;
    if (completed_) {
      if (lease.ok()) Lease drop = std::move(*lease);  // Cancelled meanwhile: give it back.
    } else if (!lease.ok()) {
      failure = lease.status();
      backend = pool_->options()->name;
    } else {
      lease_ = std::move(*lease);
      ArmCallTimeoutLocked();
      ToProto(lease_.info(), CallerAllowed(services_.registry->AdminCallers(), caller_),
              response_->mutable_lease());
      ++pending_callbacks_;
      held_request_bytes_ = request_->request().size();
      services_.flow->Hold(held_request_bytes_);
      lease_.Write(request_->request(), [this](absl::Status status) { OnWritten(status); });
    }
  }
  if (!failure.ok()) {
    if (std::string reason = RefusalReason(failure); !reason.empty()) {
      LogRefusal("Call", caller_, backend, reason, failure);
    }
    Complete(failure, false);
  }
  ReleasePending();
}

void CallReactor::ArmCallTimeoutLocked() {
  const std::shared_ptr<const BackendOptions> options = pool_->options();
  const absl::Duration call_timeout = options->pool.call_timeout;
  // A sooner RPC deadline is gRPC's to enforce (OnCancel); a timeout racing it would only
  // change a message the caller never sees.
  if (absl::Now() + call_timeout >= absl::FromChrono(context_->deadline())) return;
  // On the socket's loop, beside the exchange it bounds: no gRPC alarm, whose callback would
  // cost a thread hand-off on every Call even when it is cancelled.
  lease_.SetTimeout(call_timeout, CallTimedOut(options->name, call_timeout));
}

namespace {

// The lease's timeout (SetTimeout) fails the operation in flight with CallTimedOut, a
// DEADLINE_EXCEEDED that nothing else on the lease's data path returns: it goes to the caller
// as it is.
bool IsCallTimeout(const absl::Status& status) {
  return status.code() == absl::StatusCode::kDeadlineExceeded;
}

}  // namespace

void CallReactor::OnWritten(absl::Status status) {
  // Not request_->request().size(): a cancel may have finished the call meanwhile, and gRPC
  // frees the request after OnDone.
  services_.flow->Drop(held_request_bytes_);
  bool fail = false;
  {
    MutexLock lock(&mu_);
    if (!completed_) {
      if (status.ok()) {
        ++pending_callbacks_;
        lease_.ReadFrame(
            [this](absl::StatusOr<std::string> frame) { OnResponse(std::move(frame)); });
      } else {
        fail = true;
      }
    }
  }
  if (fail) Complete(IsCallTimeout(status) ? status : OutcomeUnknown(status), true);
  ReleasePending();
}

void CallReactor::OnResponse(absl::StatusOr<std::string> frame) {
  absl::Status failure;
  {
    MutexLock lock(&mu_);
    if (!completed_) {
      if (frame.ok()) {
        response_->set_response(*std::move(frame));
      } else {
        failure = frame.status();
      }
    }
  }
  if (failure.ok()) {
    Complete(absl::OkStatus(), false);
  } else if (failure.code() == absl::StatusCode::kResourceExhausted) {
    // The backend answered, with a frame over max_frame_bytes: the outcome is known (the
    // request was served), only the answer cannot be delivered.
    Complete(failure, true);
  } else if (IsCallTimeout(failure)) {
    Complete(failure, true);
  } else {
    // The request was written: whatever happened, the backend may have acted on it.
    Complete(OutcomeUnknown(failure), true);
  }
  ReleasePending();
}

void CallReactor::OnCancel() {
  Complete(absl::CancelledError("the caller cancelled the call (or its deadline passed)"), true);
}

void CallReactor::Complete(absl::Status status, bool broken) {
  Lease to_release;
  uint64_t to_cancel = 0;
  std::shared_ptr<SocketPool> pool;
  {
    MutexLock lock(&mu_);
    if (completed_) return;
    completed_ = true;
    if (acquiring_) to_cancel = ticket_;
    if (lease_.valid()) {
      if (broken) lease_.MarkBroken(status.message());
      to_release = std::move(lease_);
    }
    // Free before the answer, so the caller's next Call is not refused.
    caller_slot_.Release();
    pool = pool_;
  }
  if (to_cancel != 0 && pool != nullptr) pool->CancelAcquire(to_cancel);
  if (pool != nullptr) {
    pool->observer()->OnCall(CodeName(status.code()), absl::Now() - started_);
  }
  // Release before answering: a caller whose next Call follows at once finds the socket on
  // its way back (or already idle) instead of making the pool open another.
  to_release = Lease();
  std::string backend = request_->backend();
  Finish(FinishStatus(context_, status, "", backend));
}

void CallReactor::OnDone() {
  services_.flow->RpcDone();
  bool remove;
  {
    // Set done_ and decide in one critical section: a callback finishing on another thread
    // decides too, and exactly one of the two may delete.
    MutexLock lock(&mu_);
    done_ = true;
    remove = pending_callbacks_ == 0;
  }
  if (remove) delete this;
}

void CallReactor::ReleasePending() {
  bool remove;
  {
    MutexLock lock(&mu_);
    --pending_callbacks_;
    remove = done_ && pending_callbacks_ == 0;
  }
  if (remove) delete this;
}


}  // namespace tlsbroker
