#include "services/broker_service.h"

#include "services/call_reactor.h"
#include "services/lease_reactor.h"

namespace tlsbroker {

grpc::ServerBidiReactor<v1::LeaseRequest, v1::LeaseResponse>* BrokerService::Lease(
    grpc::CallbackServerContext* context) {
  return new LeaseReactor(context, services_);
}

grpc::ServerUnaryReactor* BrokerService::Call(grpc::CallbackServerContext* context,
                                              const v1::CallRequest* request,
                                              v1::CallResponse* response) {
  return new CallReactor(context, request, response, services_);
}

}  // namespace tlsbroker
