#ifndef SERVICES_BROKER_SERVER_H_
#define SERVICES_BROKER_SERVER_H_

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <prometheus/registry.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "broker/config/options.h"
#include "broker/io/event_loops.h"
#include "broker/metrics/process_collector.h"
#include "broker/metrics/prometheus_observer.h"
#include "broker/pool/backend_registry.h"
#include "services/admin_service.h"
#include "services/broker_service.h"
#include "services/caller_lease_limiter.h"
#include "services/flow_accounting.h"
#include "services/http_endpoint.h"

namespace tlsbroker {

// The whole running broker: I/O loops, backend pools, metrics, the gRPC server (Broker,
// BrokerAdminService, health, reflection) and the HTTP endpoint (/metrics, /healthz, /readyz).
// Used by main() and, in-process, by the tests.
//
// Thread-safe. Shutdown() (or the destructor) drains: new leases are refused, running ones may
// finish within the grace period, then sockets close with close_notify.
// How a BrokerServer runs (not part of the config file).
struct BrokerServerStartOptions {
  int io_threads = 0;  // 0 = one per core.
  // The config file, re-read by ReloadFromFile() (BrokerAdminService.Reload, SIGHUP). Empty: reload
  // from a file is not available.
  std::string config_path;
  int ordinal = -1;  // Replica ordinal for {ordinal}; -1 = from $HOSTNAME.
  // What tlsbroker_build_info says. Given by main() (build_info.h), so that a new commit
  // relinks the executable only, not every test that runs a BrokerServer.
  std::string version = "unknown";
  std::string commit = "unknown";
};

class BrokerServer final {
 public:
  using StartOptions = BrokerServerStartOptions;

  static absl::StatusOr<std::unique_ptr<BrokerServer>> Start(
      const BrokerOptions& options, StartOptions start = StartOptions());
  ~BrokerServer();
  BrokerServer(const BrokerServer&) = delete;
  BrokerServer& operator=(const BrokerServer&) = delete;

  // The bound gRPC port (0 for a unix socket) and HTTP port.
  int grpc_port() const { return grpc_port_; }
  int grpc_receive_limit() const { return grpc_receive_limit_; }
  int metrics_port() const { return http_ ? http_->port() : 0; }
  // A gRPC target for clients: "127.0.0.1:PORT" or "unix:/path".
  std::string grpc_target() const;

  // Drains and stops; returns when everything is closed. Idempotent.
  void Shutdown(absl::Duration grace);

  // Applies a new configuration without dropping leases (see BackendRegistry::Reload). The
  // listen section cannot change without a restart. Returns the errors that kept it out.
  // Either way the outcome is exported (tlsbroker_config_last_reload_success and its
  // timestamp).
  std::vector<std::string> Reload(const BrokerOptions& next);
  // Re-reads the config file given at start and applies it; errors (every one) are logged and
  // returned, and the running configuration stays.
  std::vector<std::string> ReloadFromFile();

  // Readiness (/readyz): the broker is not drained, no backend is still warming up for the
  // first time (min_idle), and at least one backend can serve. A drained or down backend
  // does not hold the pod unready on its own.
  bool Ready(std::string* body) const;

  FlowAccounting& flow() { return flow_; }
  CallerLeaseLimiter& caller_limits() { return *caller_limits_; }
  BackendRegistry& registry() { return *registry_; }
  prometheus::Registry& metrics_registry() { return *metrics_registry_; }

 private:
  BrokerServer() = default;
  void HealthLoop();
  // Reload() under reload_mu_, without reporting the outcome.
  std::vector<std::string> ReloadLocked(const BrokerOptions& next);

  BrokerOptions options_;
  BrokerServerStartOptions start_;
  std::mutex reload_mu_;  // One reload at a time.
  FlowAccounting flow_;
  std::unique_ptr<EventLoops> loops_;
  std::shared_ptr<prometheus::Registry> metrics_registry_;
  std::unique_ptr<PrometheusMetricsObserver> metrics_;
  ProcessCollector process_metrics_;  // process_* on the same /metrics page.
  std::unique_ptr<BackendRegistry> registry_;
  // limits.max_leases_per_caller; after metrics_ (it reports there), before the services.
  std::unique_ptr<CallerLeaseLimiter> caller_limits_;
  std::unique_ptr<BrokerService> broker_service_;
  std::unique_ptr<AdminService> admin_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<HttpEndpoint> http_;
  int grpc_port_ = 0;
  // gRPC's receive limit, fixed at start from the backends' max_frame_bytes (message_size.h).
  int grpc_receive_limit_ = 0;

  // Backends that have reached min_idle at least once (Ready()).
  mutable std::mutex ready_mu_;
  mutable std::set<std::string> warmed_;  // Guarded by ready_mu_.

  std::mutex health_mu_;
  std::condition_variable health_cv_;
  bool stopping_ = false;  // Guarded by health_mu_.
  std::thread health_thread_;
  std::atomic<bool> shut_down_{false};
};

}  // namespace tlsbroker

#endif  // SERVICES_BROKER_SERVER_H_
