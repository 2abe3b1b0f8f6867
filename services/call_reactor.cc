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

// The lease's timeout (SetTimeout) fails the operation in flight with CallTimedOut, a
// DEADLINE_EXCEEDED that nothing else on the lease's data path returns: it goes to the caller
// as it is.
bool IsCallTimeout(const absl::Status& status) {
  return status.code() == absl::StatusCode::kDeadlineExceeded;
}

// Bounds `lease` by the backend's call_timeout unless the RPC deadline comes first.
void ArmCallTimeout(Lease& lease, const BackendOptions& options,
                    const grpc::CallbackServerContext& context) {
  const absl::Duration call_timeout = options.pool.call_timeout;
  // A sooner RPC deadline is gRPC's to enforce (OnCancel); a timeout racing it would only
  // change a message the caller never sees.
  if (absl::Now() + call_timeout >= absl::FromChrono(context.deadline())) return;
  // On the socket's loop, beside the exchange it bounds: no gRPC alarm, whose callback would
  // cost a thread hand-off on every Call even when it is cancelled.
  lease.SetTimeout(call_timeout, CallTimedOut(options.name, call_timeout));
}

}  // namespace

// What the reactor and the pool's callbacks share. Everything mutable is under mu.
struct CallReactor::Exchange {
  Exchange(CallReactor* r, const ServiceContext& s, std::string c)
      : services(s), caller(std::move(c)), reactor(r) {}

  const ServiceContext& services;  // Outlives every RPC.
  const std::string caller;
  const absl::Time started = absl::Now();

  Mutex mu;
  // Valid while !completed (see the class comment).
  CallReactor* reactor ABSL_GUARDED_BY(mu);
  bool completed ABSL_GUARDED_BY(mu) = false;
  std::shared_ptr<SocketPool> pool ABSL_GUARDED_BY(mu);
  Lease lease ABSL_GUARDED_BY(mu);
  // This Call's place under limits.max_leases_per_caller, from acquire to answer.
  CallerLeaseLimiter::Slot caller_slot ABSL_GUARDED_BY(mu);
  uint64_t ticket ABSL_GUARDED_BY(mu) = 0;
  bool acquiring ABSL_GUARDED_BY(mu) = false;
  uint64_t held_request_bytes = 0;  // Set before the write starts, read by its callback.
};

CallReactor::CallReactor(grpc::CallbackServerContext* context, const v1::CallRequest* request,
                         v1::CallResponse* response, const ServiceContext& services)
    : context_(context),
      request_(request),
      response_(response),
      services_(services),
      exchange_(std::make_shared<Exchange>(this, services, CallerIdentity(*context))) {
  services_.flow->RpcStarted();
  Start();
}

void CallReactor::Start() {
  // A copy, not a reference to the member: it must stay valid for the rest of Start even if
  // the call completes on another thread meanwhile.
  const std::shared_ptr<Exchange> ex = exchange_;
  std::shared_ptr<SocketPool> pool = services_.registry->Find(request_->backend());
  if (pool == nullptr) {
    Complete(ex,
             absl::NotFoundError(absl::StrCat("unknown backend \"", request_->backend(), "\"")),
             false);
    return;
  }
  const std::shared_ptr<const BackendOptions> options_snapshot = pool->options();
  const BackendOptions& options = *options_snapshot;
  if (!CallerAllowed(options.allowed_callers, ex->caller)) {
    absl::Status denied = absl::PermissionDeniedError(
        absl::StrCat("caller \"", ex->caller, "\" may not use backend ", options.name));
    LogRefusal("Call", ex->caller, options.name, kRefusedPermission, denied);
    Complete(ex, denied, false);
    return;
  }
  if (options.framing.kind == FramingOptions::Kind::kNone) {
    Complete(ex,
             absl::FailedPreconditionError(absl::StrCat(
                 "backend ", options.name,
                 " has no framing configured: Call needs it to find the response; use Lease")),
             false);
    return;
  }
  absl::Status frame_ok = CheckOneRequestFrame(options.framing, request_->request());
  if (!frame_ok.ok()) {
    Complete(ex, frame_ok, false);
    return;
  }
  CallerLeaseLimiter::Slot caller_slot;
  if (services_.caller_limits != nullptr) {
    absl::StatusOr<CallerLeaseLimiter::Slot> taken = services_.caller_limits->Take(ex->caller);
    if (!taken.ok()) {
      LogRefusal("Call", ex->caller, options.name, kRefusedCallerLimit, taken.status());
      Complete(ex, taken.status(), false);
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
  acquire.caller = ex->caller;
  acquire.trace_parent = TraceParent(*context_);
  {
    MutexLock lock(&ex->mu);
    ex->pool = pool;
    ex->caller_slot = std::move(caller_slot);
    ex->acquiring = true;
  }
  // The callback may run inline (an error known at once), before Acquire returns a ticket.
  uint64_t ticket = pool->Acquire(
      std::move(acquire), [ex](absl::StatusOr<Lease> lease) { OnAcquired(ex, std::move(lease)); });
  MutexLock lock(&ex->mu);
  ex->ticket = ticket;
}

void CallReactor::OnAcquired(const std::shared_ptr<Exchange>& ex, absl::StatusOr<Lease> lease) {
  absl::Status failure;
  std::string backend;  // For the refusal line.
  {
    MutexLock lock(&ex->mu);
    ex->acquiring = false;
    if (ex->completed) {
      if (lease.ok()) Lease drop = std::move(*lease);  // Cancelled meanwhile: give it back.
      return;
    }
    if (!lease.ok()) {
      failure = lease.status();
      backend = ex->pool->options()->name;
    } else {
      CallReactor* reactor = ex->reactor;
      ex->lease = std::move(*lease);
      ArmCallTimeout(ex->lease, *ex->pool->options(), *reactor->context_);
      ToProto(ex->lease.info(), CallerAllowed(ex->services.registry->AdminCallers(), ex->caller),
              reactor->response_->mutable_lease());
      ex->held_request_bytes = reactor->request_->request().size();
      ex->services.flow->Hold(ex->held_request_bytes);
      ex->lease.Write(reactor->request_->request(),
                      [ex](absl::Status status) { OnWritten(ex, status); });
    }
  }
  if (!failure.ok()) {
    if (std::string reason = RefusalReason(failure); !reason.empty()) {
      LogRefusal("Call", ex->caller, backend, reason, failure);
    }
    Complete(ex, failure, false);
  }
}

void CallReactor::OnWritten(const std::shared_ptr<Exchange>& ex, absl::Status status) {
  // Not the request's size: a cancel may have finished the call meanwhile, and gRPC frees the
  // request after OnDone.
  ex->services.flow->Drop(ex->held_request_bytes);
  {
    MutexLock lock(&ex->mu);
    if (ex->completed) return;
    if (status.ok()) {
      ex->lease.ReadFrame(
          [ex](absl::StatusOr<std::string> frame) { OnResponse(ex, std::move(frame)); });
      return;
    }
  }
  Complete(ex, IsCallTimeout(status) ? status : OutcomeUnknown(status), true);
}

void CallReactor::OnResponse(const std::shared_ptr<Exchange>& ex,
                             absl::StatusOr<std::string> frame) {
  if (frame.ok()) {
    {
      MutexLock lock(&ex->mu);
      if (ex->completed) return;
      ex->reactor->response_->set_response(*std::move(frame));
    }
    Complete(ex, absl::OkStatus(), false);
  } else if (frame.status().code() == absl::StatusCode::kResourceExhausted) {
    // The backend answered, with a frame over max_frame_bytes: the outcome is known (the
    // request was served), only the answer cannot be delivered.
    Complete(ex, frame.status(), true);
  } else if (IsCallTimeout(frame.status())) {
    Complete(ex, frame.status(), true);
  } else {
    // The request was written: whatever happened, the backend may have acted on it.
    Complete(ex, OutcomeUnknown(frame.status()), true);
  }
}

void CallReactor::OnCancel() {
  Complete(exchange_, absl::CancelledError("the caller cancelled the call (or its deadline passed)"),
           true);
}

void CallReactor::Complete(const std::shared_ptr<Exchange>& ex, absl::Status status,
                           bool broken) {
  Lease to_release;
  uint64_t to_cancel = 0;
  std::shared_ptr<SocketPool> pool;
  CallReactor* reactor;
  {
    MutexLock lock(&ex->mu);
    if (ex->completed) return;
    ex->completed = true;
    reactor = ex->reactor;
    if (ex->acquiring) to_cancel = ex->ticket;
    if (ex->lease.valid()) {
      if (broken) ex->lease.MarkBroken(status.message());
      to_release = std::move(ex->lease);
    }
    // Free before the answer, so the caller's next Call is not refused.
    ex->caller_slot.Release();
    pool = ex->pool;
  }
  if (to_cancel != 0 && pool != nullptr) pool->CancelAcquire(to_cancel);
  if (pool != nullptr) {
    pool->observer()->OnCall(CodeName(status.code()), absl::Now() - ex->started);
  }
  // Release before answering: a caller whose next Call follows at once finds the socket on
  // its way back (or already idle) instead of making the pool open another.
  to_release = Lease();
  // The last use of the reactor: after Finish, gRPC may call OnDone (and so delete it) at any
  // time, on any thread.
  reactor->Finish(
      FinishStatus(reactor->context_, status, "", reactor->request_->backend()));
}

void CallReactor::OnDone() {
  services_.flow->RpcDone();
  {
    MutexLock lock(&exchange_->mu);
    exchange_->reactor = nullptr;  // Completed already; no callback reaches for it again.
  }
  delete this;
}

}  // namespace tlsbroker
