#ifndef SERVICES_SERVICE_CONTEXT_H_
#define SERVICES_SERVICE_CONTEXT_H_

#include <string>
#include <vector>

#include "broker/pool/backend_registry.h"
#include "services/caller_lease_limiter.h"
#include "services/flow_accounting.h"

namespace tlsbroker {

// What the gRPC services share. The pointed-to objects outlive the gRPC server.
struct ServiceContext {
  BackendRegistry* registry = nullptr;
  FlowAccounting* flow = nullptr;
  CallerLeaseLimiter* caller_limits = nullptr;  // Null: no per-caller limit.
};

}  // namespace tlsbroker

#endif  // SERVICES_SERVICE_CONTEXT_H_
