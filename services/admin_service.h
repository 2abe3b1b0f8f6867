#ifndef SERVICES_ADMIN_SERVICE_H_
#define SERVICES_ADMIN_SERVICE_H_

#include <functional>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "services/service_context.h"
#include "tlsbroker/v1/broker.grpc.pb.h"

namespace tlsbroker {

// tlsbroker.v1.BrokerAdminService, for callers on the admin list only. Thread-safe.
class AdminService final : public v1::BrokerAdminService::CallbackService {
 public:
  // `reload` re-reads the configuration; it returns the errors that kept the new one out
  // (empty = applied). Null = reload not supported by this server.
  using ReloadFn = std::function<std::vector<std::string>()>;
  AdminService(ServiceContext services, ReloadFn reload)
      : services_(std::move(services)), reload_(std::move(reload)) {}

  // v1::BrokerAdminService::CallbackService
  grpc::ServerUnaryReactor* ListBackends(grpc::CallbackServerContext* context,
                                         const v1::ListBackendsRequest* request,
                                         v1::ListBackendsResponse* response) override;
  grpc::ServerUnaryReactor* ListSockets(grpc::CallbackServerContext* context,
                                        const v1::ListSocketsRequest* request,
                                        v1::ListSocketsResponse* response) override;
  grpc::ServerUnaryReactor* Drain(grpc::CallbackServerContext* context,
                                  const v1::DrainRequest* request,
                                  v1::DrainResponse* response) override;
  grpc::ServerUnaryReactor* Resume(grpc::CallbackServerContext* context,
                                   const v1::ResumeRequest* request,
                                   v1::ResumeResponse* response) override;
  grpc::ServerUnaryReactor* Reload(grpc::CallbackServerContext* context,
                                   const v1::ReloadRequest* request,
                                   v1::ReloadResponse* response) override;

 private:
  // Finishes `context` with PERMISSION_DENIED (and logs the refusal) and returns false for a
  // non-admin. `action` and `backend` name what was asked, for the log line.
  bool Authorize(grpc::CallbackServerContext* context, grpc::ServerUnaryReactor* reactor,
                 absl::string_view action, absl::string_view backend = "");
  // Finishes with `status`, after one log line naming the admin, the action, the backend and
  // the outcome (see admin_log.h).
  void FinishAction(grpc::CallbackServerContext* context, grpc::ServerUnaryReactor* reactor,
                    absl::string_view action, absl::string_view backend,
                    const absl::Status& status, absl::string_view detail = "");

  const ServiceContext services_;
  const ReloadFn reload_;
};

}  // namespace tlsbroker

#endif  // SERVICES_ADMIN_SERVICE_H_
