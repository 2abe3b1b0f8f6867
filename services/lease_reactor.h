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
// Thread-safe: reactions (gRPC threads) and lease callbacks (I/O threads) take mu_ briefly and
// never block. Deletes itself once gRPC has called OnDone and no lease callback is pending.
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

  void HandleOpen(const v1::OpenLease& open);
  void OnAcquired(absl::StatusOr<Lease> lease);
  void OnBackendWritten(uint64_t size, absl::Status status);
  void OnBackendData(absl::StatusOr<std::string> data);
  void ReadBackendLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends the lease and finishes the RPC with `status` (once; later calls are ignored).
  void End(absl::Status status, bool broken);
  void EndLocked(absl::Status status, bool broken, uint64_t* to_cancel)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishIfReadyLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A pending callback has finished (call last: may delete this).
  void ReleasePending();

  grpc::CallbackServerContext* const context_;
  const ServiceContext& services_;
  const std::string caller_;

  Mutex mu_;
  Phase phase_ ABSL_GUARDED_BY(mu_) = Phase::kAwaitOpen;
  v1::LeaseRequest request_ ABSL_GUARDED_BY(mu_);
  v1::LeaseResponse response_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<SocketPool> pool_ ABSL_GUARDED_BY(mu_);
  std::string backend_ ABSL_GUARDED_BY(mu_);
  Lease lease_ ABSL_GUARDED_BY(mu_);
  // This stream's place under limits.max_leases_per_caller, from open to end.
  CallerLeaseLimiter::Slot caller_slot_ ABSL_GUARDED_BY(mu_);
  uint64_t ticket_ ABSL_GUARDED_BY(mu_) = 0;
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t write_held_ ABSL_GUARDED_BY(mu_) = 0;  // Bytes in the gRPC write in flight.
  bool finish_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status final_status_ ABSL_GUARDED_BY(mu_);
  // Starts at 1 for the constructor, released when it returns.
  int pending_callbacks_ ABSL_GUARDED_BY(mu_) = 1;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace tlsbroker

#endif  // SERVICES_LEASE_REACTOR_H_
