#ifndef SERVICES_LEASE_REACTOR_H_
#define SERVICES_LEASE_REACTOR_H_

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "broker/common/mutex.h"
#include "broker/pool/lease.h"
#include "services/service_context.h"
#include "tlsbroker/v1/broker.grpc.pb.h"

namespace tlsbroker {

// One Lease stream: Open -> LeaseInfo -> bytes both ways -> end.
//
// Flow control, end to end: at most one gRPC read and one gRPC write in flight, and the next
// one starts only when the other side has taken the bytes — a caller message is read only
// after the previous one reached the backend, and the backend socket is read only after the
// previous chunk was written to the caller. So a slow side slows the other, and the bytes held
// per lease stay below one message plus one backend chunk.
//
// Ownership: gRPC owns the reactor until OnDone, which deletes it (the only place that does).
// Reactions run on gRPC threads, the lease's callbacks on I/O threads, and the latter may come
// after OnDone. So the callbacks hold the shared State, never the reactor, and reach the
// reactor only under State::mu while `finished` is false: Finish is called under that lock and
// OnDone only follows Finish, so a callback that finds `finished` false holds a live reactor.
class LeaseReactor final
    : public grpc::ServerBidiReactor<v1::LeaseRequest, v1::LeaseResponse> {
 public:
  LeaseReactor(grpc::CallbackServerContext* context, const ServiceContext& services);

  // grpc::ServerBidiReactor
  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  enum class Phase { kAwaitOpen, kAcquiring, kActive, kEnded };
  struct State;

  void HandleOpen(const v1::OpenLease& open);
  static void OnAcquired(const std::shared_ptr<State>& st, absl::StatusOr<Lease> lease);
  static void OnBackendWritten(const std::shared_ptr<State>& st, uint64_t size,
                               absl::Status status);
  static void OnBackendData(const std::shared_ptr<State>& st, absl::StatusOr<std::string> data);
  // Ends the lease and finishes the RPC with `status` (once; later calls are ignored).
  static void End(const std::shared_ptr<State>& st, absl::Status status, bool broken);

  grpc::CallbackServerContext* const context_;
  const ServiceContext& services_;
  const std::shared_ptr<State> st_;
  // gRPC's buffers for the read and the write in flight; under st_->mu.
  v1::LeaseRequest request_;
  v1::LeaseResponse response_;
};

}  // namespace tlsbroker

#endif  // SERVICES_LEASE_REACTOR_H_
