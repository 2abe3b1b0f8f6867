#ifndef SERVICES_BROKER_SERVICE_H_
#define SERVICES_BROKER_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "services/service_context.h"
#include "tlsbroker/v1/broker.grpc.pb.h"

namespace tlsbroker {

// tlsbroker.v1.BrokerService on the gRPC callback API: each RPC gets a reactor; no thread per RPC.
// Thread-safe.
class BrokerService final : public v1::BrokerService::CallbackService {
 public:
  explicit BrokerService(ServiceContext services) : services_(std::move(services)) {}

  // v1::BrokerService::CallbackService
  grpc::ServerBidiReactor<v1::LeaseRequest, v1::LeaseResponse>* Lease(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* Call(grpc::CallbackServerContext* context,
                                 const v1::CallRequest* request,
                                 v1::CallResponse* response) override;

 private:
  const ServiceContext services_;
};

}  // namespace tlsbroker

#endif  // SERVICES_BROKER_SERVICE_H_
