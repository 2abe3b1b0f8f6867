#ifndef BROKER_METRICS_PROMETHEUS_OBSERVER_H_
#define BROKER_METRICS_PROMETHEUS_OBSERVER_H_

// The prometheus-cpp implementation of MetricsObserver (target tlsb_metrics_prometheus). The
// core only sees pool_observer.h; the binary wires this in.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "broker/common/mutex.h"
#include "broker/metrics/pool_observer.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace tlsbroker {

// Registers the broker's metric families (metric_names.h) in a registry and hands out one
// BackendObserver per backend. ForBackend() creates every labelled series of that backend up
// front, so a series that never fired still appears on /metrics, and the returned observer
// holds the series handles: the hot path does no label lookup, only a scan of a short list of
// known values (unknown values count under "other").
//
// Thread-safe. The observers it returns are thread-safe too (prometheus-cpp counters and
// gauges are atomic; histograms lock internally) and stay valid while the registry lives.
class PrometheusMetricsObserver final : public MetricsObserver {
 public:
  // Registers the families. Fails (instead of throwing) when the registry already holds a
  // family of the same name with another type.
  static absl::StatusOr<std::unique_ptr<PrometheusMetricsObserver>> Create(
      std::shared_ptr<prometheus::Registry> registry);

  PrometheusMetricsObserver(const PrometheusMetricsObserver&) = delete;
  PrometheusMetricsObserver& operator=(const PrometheusMetricsObserver&) = delete;

  // MetricsObserver
  std::shared_ptr<BackendObserver> ForBackend(absl::string_view backend) override;
  void OnSocketBudget(int limit, int used) override;
  void OnSocketBudgetRefused() override;
  void OnCallerLeaseLimitRefused() override;
  void OnInsecureFilePermissions(int files) override;
  // Brings tlsbroker_log_lines_dropped_total up to `total` (the log writer's own count, read
  // just before each scrape).
  void SyncLogLinesDropped(uint64_t total);
  // A configuration was applied (`applied`: at start or by a reload) or a reload was rejected,
  // at `at`: sets tlsbroker_config_last_reload_success and, when applied, its timestamp.
  void OnConfigApplied(bool applied, absl::Time at);
  // Adds tlsbroker_build_info{version,commit} 1. Only the first call counts: one build per
  // process.
  void SetBuildInfo(absl::string_view version, absl::string_view commit);

  const std::shared_ptr<prometheus::Registry>& registry() const { return registry_; }

  // The families; each holds the series of every backend. Public for the backend observers.
  struct Families {
    prometheus::Family<prometheus::Counter>* backend_connect_attempts_total;
    prometheus::Family<prometheus::Gauge>* build_info;
    prometheus::Family<prometheus::Counter>* bytes_total;
    prometheus::Family<prometheus::Histogram>* call_duration_seconds;
    prometheus::Family<prometheus::Counter>* caller_lease_limit_refusals_total;
    prometheus::Family<prometheus::Counter>* calls_total;
    prometheus::Family<prometheus::Counter>* cert_verify_failures_total;
    prometheus::Family<prometheus::Gauge>* client_cert_not_after_timestamp_seconds;
    prometheus::Family<prometheus::Gauge>* config_last_reload_success;
    prometheus::Family<prometheus::Gauge>* config_last_reload_success_timestamp_seconds;
    prometheus::Family<prometheus::Counter>* credential_reload_failures_total;
    prometheus::Family<prometheus::Gauge>* crl_next_update_timestamp_seconds;
    prometheus::Family<prometheus::Counter>* crl_reload_failures_total;
    prometheus::Family<prometheus::Gauge>* crl_stale;
    prometheus::Family<prometheus::Gauge>* enull_sockets;
    prometheus::Family<prometheus::Gauge>* insecure_file_permissions;
    prometheus::Family<prometheus::Histogram>* lease_duration_seconds;
    prometheus::Family<prometheus::Histogram>* lease_wait_seconds;
    prometheus::Family<prometheus::Counter>* leases_ended_total;
    prometheus::Family<prometheus::Counter>* leases_total;
    prometheus::Family<prometheus::Counter>* log_lines_dropped_total;
    prometheus::Family<prometheus::Counter>* ocsp_responses_total;
    prometheus::Family<prometheus::Gauge>* peer_cert_not_after_timestamp_seconds;
    prometheus::Family<prometheus::Gauge>* pool_sockets;
    prometheus::Family<prometheus::Gauge>* pool_waiters;
    prometheus::Family<prometheus::Gauge>* socket_budget_limit_sockets;
    prometheus::Family<prometheus::Counter>* socket_budget_refusals_total;
    prometheus::Family<prometheus::Gauge>* socket_budget_sockets;
    prometheus::Family<prometheus::Counter>* socket_reuses_total;
    prometheus::Family<prometheus::Counter>* sockets_closed_total;
    prometheus::Family<prometheus::Histogram>* tls_handshake_duration_seconds;
    prometheus::Family<prometheus::Counter>* tls_handshakes_total;
  };

 private:
  PrometheusMetricsObserver(std::shared_ptr<prometheus::Registry> registry,
                            const Families& families);

  const std::shared_ptr<prometheus::Registry> registry_;
  const Families families_;
  // The broker-wide series (no backend label), created with the families.
  prometheus::Counter& caller_lease_limit_refusals_;
  prometheus::Gauge& insecure_file_permissions_;
  prometheus::Counter& log_lines_dropped_;
  prometheus::Counter& socket_budget_refusals_;
  prometheus::Gauge& socket_budget_limit_;
  prometheus::Gauge& socket_budget_used_;
  prometheus::Gauge& config_reload_success_;
  prometheus::Gauge& config_reload_success_timestamp_;
  Mutex mu_;
  bool build_info_set_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, std::shared_ptr<BackendObserver>, std::less<>> backends_
      ABSL_GUARDED_BY(mu_);
};

// The registry's metrics in the Prometheus text exposition format (what /metrics serves).
std::string SerializeMetrics(const prometheus::Registry& registry);
// The metrics of every source, in order, on one page (the broker's registry and its process
// collector).
std::string SerializeMetrics(const std::vector<const prometheus::Collectable*>& sources);

}  // namespace tlsbroker

#endif  // BROKER_METRICS_PROMETHEUS_OBSERVER_H_
