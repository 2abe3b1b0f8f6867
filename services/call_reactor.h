#ifndef SERVICES_CALL_REACTOR_H_
#define SERVICES_CALL_REACTOR_H_

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "broker/common/mutex.h"
#include "broker/pool/lease.h"
#include "services/service_context.h"
#include "tlsbroker/v1/broker.grpc.pb.h"

namespace tlsbroker {

// One Call: acquire (by client ID if asked), write the request frame, read exactly one response
// frame, release, answer. A cancel or deadline mid-exchange destroys the socket (its state is
// unknown), and a failure after the request was written is ABORTED/outcome_unknown.
//
// The exchange (from the acquired socket to the response frame) is bounded by the backend's
// pool.call_timeout, or by the RPC deadline when that is sooner (gRPC then cancels the call).
// A Call without a deadline therefore cannot hold a socket of a silent backend for longer than
// call_timeout: at that point the socket is destroyed and the answer is DEADLINE_EXCEEDED,
// reason outcome_unknown.
//
// Thread-safe; deletes itself after OnDone once no pool callback is pending.
class CallReactor final : public grpc::ServerUnaryReactor {
 public:
  CallReactor(grpc::CallbackServerContext* context, const v1::CallRequest* request,
              v1::CallResponse* response, const ServiceContext& services);

  // grpc::ServerUnaryReactor
  void OnCancel() override;
  void OnDone() override;

 private:
  void Start();
  void OnAcquired(absl::StatusOr<Lease> lease);
  // Bounds the lease by call_timeout unless the RPC deadline comes first.
  void ArmCallTimeoutLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnWritten(absl::Status status);
  void OnResponse(absl::StatusOr<std::string> frame);
  void Complete(absl::Status status, bool broken);
  // A pending callback has finished (call last: may delete this).
  void ReleasePending();

  grpc::CallbackServerContext* const context_;
  const v1::CallRequest* const request_;
  v1::CallResponse* const response_;
  const ServiceContext& services_;
  const std::string caller_;
  const absl::Time started_ = absl::Now();

  Mutex mu_;
  std::shared_ptr<SocketPool> pool_ ABSL_GUARDED_BY(mu_);
  Lease lease_ ABSL_GUARDED_BY(mu_);
  // This Call's place under limits.max_leases_per_caller, from acquire to answer.
  CallerLeaseLimiter::Slot caller_slot_ ABSL_GUARDED_BY(mu_);
  uint64_t ticket_ ABSL_GUARDED_BY(mu_) = 0;
  bool acquiring_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t held_request_bytes_ = 0;  // Set before the write starts, read by its callback.
  bool completed_ ABSL_GUARDED_BY(mu_) = false;
  // Starts at 1 for the constructor, released when it returns.
  int pending_callbacks_ ABSL_GUARDED_BY(mu_) = 1;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace tlsbroker

#endif  // SERVICES_CALL_REACTOR_H_
