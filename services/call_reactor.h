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
// unknown), and a failure after the request was written is ABORTED/OUTCOME_UNKNOWN.
//
// The exchange (from the acquired socket to the response frame) is bounded by the backend's
// pool.call_timeout, or by the RPC deadline when that is sooner (gRPC then cancels the call).
// A Call without a deadline therefore cannot hold a socket of a silent backend for longer than
// call_timeout: at that point the socket is destroyed and the answer is DEADLINE_EXCEEDED,
// reason OUTCOME_UNKNOWN.
//
// Ownership: gRPC owns the reactor until OnDone, which deletes it (the only place that does).
// The pool's callbacks arrive on I/O threads and may come after OnDone, so they never hold the
// reactor: they hold the Exchange, and reach the reactor only through it, before the exchange
// completes (gRPC calls OnDone only after Finish, and only the completing thread calls Finish).
class CallReactor final : public grpc::ServerUnaryReactor {
 public:
  CallReactor(grpc::CallbackServerContext* context, const v1::CallRequest* request,
              v1::CallResponse* response, const ServiceContext& services);

  // grpc::ServerUnaryReactor
  void OnCancel() override;
  void OnDone() override;

 private:
  struct Exchange;

  void Start();
  static void OnAcquired(const std::shared_ptr<Exchange>& ex, absl::StatusOr<Lease> lease);
  static void OnWritten(const std::shared_ptr<Exchange>& ex, absl::Status status);
  static void OnResponse(const std::shared_ptr<Exchange>& ex, absl::StatusOr<std::string> frame);
  // Ends the exchange once (later calls are ignored): cancels a pending acquire, releases the
  // lease (destroying the socket when `broken`), and finishes the RPC with `status`.
  static void Complete(const std::shared_ptr<Exchange>& ex, absl::Status status, bool broken);

  grpc::CallbackServerContext* const context_;
  const v1::CallRequest* const request_;
  v1::CallResponse* const response_;
  const ServiceContext& services_;
  const std::shared_ptr<Exchange> exchange_;
};

}  // namespace tlsbroker

#endif  // SERVICES_CALL_REACTOR_H_
