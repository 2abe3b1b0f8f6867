#include "broker/metrics/prometheus_observer.h"

#include <array>
#include <exception>
#include <iterator>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "broker/metrics/metric_names.h"
#include "prometheus/text_serializer.h"

namespace tlsbroker {
namespace {

namespace m = ::tlsbroker::metrics;

using prometheus::Counter;
using prometheus::Gauge;
using prometheus::Histogram;
using prometheus::Labels;

template <size_t N>
constexpr bool EndsWithOther(const absl::string_view (&values)[N]) {
  return values[N - 1] == m::kOther;
}
// LabelIndex() maps unknown values to the last entry; these sets must end with "other".
static_assert(EndsWithOther(m::kHandshakeResults));
static_assert(EndsWithOther(m::kCertVerifyFailureReasons));
static_assert(EndsWithOther(m::kLeaseEndResults));
static_assert(EndsWithOther(m::kCloseReasons));
static_assert(EndsWithOther(m::kGrpcCodes));
static_assert(EndsWithOther(m::kDirections));
static_assert(EndsWithOther(m::kOcspSources));
static_assert(EndsWithOther(m::kOcspStatuses));

// Handshakes: from a fast resumption on loopback to a slow full handshake across a WAN.
const Histogram::BucketBoundaries& HandshakeBuckets() {
  static const auto* const kBuckets = new Histogram::BucketBoundaries{
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  return *kBuckets;
}
// Lease waits: sub-millisecond for an idle socket, up to acquire_timeout when the pool is full.
const Histogram::BucketBoundaries& LeaseWaitBuckets() {
  static const auto* const kBuckets = new Histogram::BucketBoundaries{
      0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  return *kBuckets;
}
// Leases: one exchange (milliseconds) up to max_lease_duration (an hour by default).
const Histogram::BucketBoundaries& LeaseDurationBuckets() {
  static const auto* const kBuckets = new Histogram::BucketBoundaries{
      0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600};
  return *kBuckets;
}
// Calls: one request/response on a pooled socket.
const Histogram::BucketBoundaries& CallBuckets() {
  static const auto* const kBuckets = new Histogram::BucketBoundaries{
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
  return *kBuckets;
}

std::string Str(absl::string_view s) { return std::string(s); }

// kGrpcCodes is in code number order (absl's codes are gRPC's), so a code's index is its number;
// anything outside 0..16 is "other".
static_assert(m::kGrpcCodes[static_cast<int>(absl::StatusCode::kDeadlineExceeded)] ==
                  "DEADLINE_EXCEEDED" &&
              m::kGrpcCodes[static_cast<int>(absl::StatusCode::kUnauthenticated)] ==
                  "UNAUTHENTICATED");
size_t GrpcCodeIndex(absl::StatusCode code) {
  const int n = static_cast<int>(code);
  return n >= 0 && static_cast<size_t>(n) < std::size(m::kGrpcCodes) - 1
             ? static_cast<size_t>(n)
             : std::size(m::kGrpcCodes) - 1;
}

// One backend's series. Thread-safe: only atomic prometheus-cpp operations after construction.
class PrometheusBackendObserver final : public BackendObserver {
 public:
  PrometheusBackendObserver(const PrometheusMetricsObserver::Families& f,
                            const std::string& backend)
      : connect_attempts_family_(f.backend_connect_attempts_total), backend_(backend) {
    const Labels base = {{Str(m::kLabelBackend), backend}};
    auto with = [&base](absl::string_view name, absl::string_view value) {
      Labels labels = base;
      labels.emplace(Str(name), Str(value));
      return labels;
    };
    for (size_t r = 0; r < std::size(m::kHandshakeResults); ++r) {
      for (size_t s = 0; s < std::size(m::kResumedValues); ++s) {
        Labels labels = with(m::kLabelResult, m::kHandshakeResults[r]);
        labels.emplace(Str(m::kLabelResumed), Str(m::kResumedValues[s]));
        handshakes_[r][s] = &f.tls_handshakes_total->Add(labels);
      }
    }
    handshake_duration_ = &f.tls_handshake_duration_seconds->Add(base, HandshakeBuckets());
    Fill(*f.cert_verify_failures_total, with, m::kLabelReason, m::kCertVerifyFailureReasons,
         cert_verify_failures_);
    for (size_t i = 0; i < std::size(m::kSocketStates); ++i) {
      sockets_[i] = &f.pool_sockets->Add(with(m::kLabelState, m::kSocketStates[i]));
    }
    waiters_ = &f.pool_waiters->Add(base);
    Fill(*f.leases_total, with, m::kLabelCode, m::kGrpcCodes, leases_);
    lease_wait_ = &f.lease_wait_seconds->Add(base, LeaseWaitBuckets());
    socket_reuses_ = &f.socket_reuses_total->Add(base);
    Fill(*f.leases_ended_total, with, m::kLabelResult, m::kLeaseEndResults, leases_ended_);
    lease_duration_ = &f.lease_duration_seconds->Add(base, LeaseDurationBuckets());
    Fill(*f.sockets_closed_total, with, m::kLabelReason, m::kCloseReasons, sockets_closed_);
    Fill(*f.bytes_total, with, m::kLabelDirection, m::kDirections, bytes_);
    Fill(*f.calls_total, with, m::kLabelCode, m::kGrpcCodes, calls_);
    call_duration_ = &f.call_duration_seconds->Add(base, CallBuckets());
    peer_not_after_ = &f.peer_cert_not_after_timestamp_seconds->Add(base);
    client_not_after_ = &f.client_cert_not_after_timestamp_seconds->Add(base);
    enull_sockets_ = &f.enull_sockets->Add(base);
    crl_next_update_ = &f.crl_next_update_timestamp_seconds->Add(base);
    crl_stale_ = &f.crl_stale->Add(base);
    crl_reload_failures_ = &f.crl_reload_failures_total->Add(base);
    Fill(*f.credential_reload_failures_total, with, m::kLabelFile, m::kCredentialFiles,
         credential_reload_failures_);
    for (size_t src = 0; src < std::size(m::kOcspSources); ++src) {
      for (size_t st = 0; st < std::size(m::kOcspStatuses); ++st) {
        Labels labels = with(m::kLabelSource, m::kOcspSources[src]);
        labels.emplace(Str(m::kLabelStatus), Str(m::kOcspStatuses[st]));
        ocsp_responses_[src][st] = &f.ocsp_responses_total->Add(labels);
      }
    }
  }

  // BackendObserver
  void OnHandshake(absl::string_view result, bool resumed, absl::Duration duration) override {
    const size_t r = m::LabelIndex(m::kHandshakeResults, result);
    handshakes_[r][resumed ? 1 : 0]->Increment();
    // Only successful handshakes: a refused connect or a timeout would distort the latency.
    if (r == 0) handshake_duration_->Observe(absl::ToDoubleSeconds(duration));
  }
  void OnCertVerifyFailure(absl::string_view reason) override {
    cert_verify_failures_[m::LabelIndex(m::kCertVerifyFailureReasons, reason)]->Increment();
  }
  void OnSocketStates(int connecting, int idle, int leased, int retiring) override {
    sockets_[0]->Set(connecting);
    sockets_[1]->Set(idle);
    sockets_[2]->Set(leased);
    sockets_[3]->Set(retiring);
  }
  void OnWaiters(int waiters) override { waiters_->Set(waiters); }
  void OnLeaseGranted(absl::Duration wait, bool reused) override {
    leases_[0]->Increment();  // "OK"
    lease_wait_->Observe(absl::ToDoubleSeconds(wait));
    if (reused) socket_reuses_->Increment();
  }
  void OnLeaseRefused(absl::StatusCode code) override {
    leases_[GrpcCodeIndex(code)]->Increment();
  }
  void OnLeaseEnded(absl::string_view result, absl::Duration duration) override {
    leases_ended_[m::LabelIndex(m::kLeaseEndResults, result)]->Increment();
    lease_duration_->Observe(absl::ToDoubleSeconds(duration));
  }
  void OnSocketClosed(absl::string_view reason) override {
    sockets_closed_[m::LabelIndex(m::kCloseReasons, reason)]->Increment();
  }
  void OnBytes(absl::string_view direction, uint64_t bytes) override {
    bytes_[m::LabelIndex(m::kDirections, direction)]->Increment(static_cast<double>(bytes));
  }
  void OnCall(absl::string_view code, absl::Duration duration) override {
    calls_[m::LabelIndex(m::kGrpcCodes, code)]->Increment();
    call_duration_->Observe(absl::ToDoubleSeconds(duration));
  }
  void OnPeerCertNotAfter(absl::Time not_after) override {
    peer_not_after_->Set(static_cast<double>(absl::ToUnixSeconds(not_after)));
  }
  void OnClientCertNotAfter(absl::Time not_after) override {
    client_not_after_->Set(static_cast<double>(absl::ToUnixSeconds(not_after)));
  }
  void OnEnullSockets(int sockets) override { enull_sockets_->Set(sockets); }
  void OnCrlNextUpdate(absl::Time next_update, bool stale) override {
    crl_next_update_->Set(static_cast<double>(absl::ToUnixSeconds(next_update)));
    crl_stale_->Set(stale ? 1 : 0);
  }
  void OnCrlReloadFailure() override { crl_reload_failures_->Increment(); }
  void OnCredentialReloadFailure(absl::string_view file) override {
    credential_reload_failures_[m::LabelIndex(m::kCredentialFiles, file)]->Increment();
  }
  void OnOcspResponse(absl::string_view source, absl::string_view status) override {
    ocsp_responses_[m::LabelIndex(m::kOcspSources, source)]
                   [m::LabelIndex(m::kOcspStatuses, status)]
                       ->Increment();
  }
  // Series per address, made when the pool names its addresses (not on the hot path: only
  // connects count here). A reload that drops an address keeps its series (counters must not
  // vanish mid-scrape history).
  void OnAddresses(const std::vector<std::string>& addresses) override {
    MutexLock lock(&addresses_mu_);
    for (const std::string& address : addresses) {
      if (connect_attempts_.count(address) != 0) continue;
      std::array<Counter*, std::size(m::kConnectAttemptResults)>& series =
          connect_attempts_[address];
      for (size_t i = 0; i < series.size(); ++i) {
        series[i] = &connect_attempts_family_->Add({{Str(m::kLabelBackend), backend_},
                                                    {Str(m::kLabelAddress), address},
                                                    {Str(m::kLabelResult),
                                                     Str(m::kConnectAttemptResults[i])}});
      }
    }
  }
  void OnConnectAttempt(absl::string_view address, bool ok) override {
    MutexLock lock(&addresses_mu_);
    auto it = connect_attempts_.find(address);
    if (it != connect_attempts_.end()) it->second[ok ? 0 : 1]->Increment();
  }

 private:
  template <typename With, size_t N>
  static void Fill(prometheus::Family<Counter>& family, const With& with, absl::string_view label,
                   const absl::string_view (&values)[N], std::array<Counter*, N>& out) {
    for (size_t i = 0; i < N; ++i) out[i] = &family.Add(with(label, values[i]));
  }

  std::array<std::array<Counter*, std::size(m::kResumedValues)>, std::size(m::kHandshakeResults)>
      handshakes_;
  Histogram* handshake_duration_;
  std::array<Counter*, std::size(m::kCertVerifyFailureReasons)> cert_verify_failures_;
  std::array<Gauge*, std::size(m::kSocketStates)> sockets_;
  Gauge* waiters_;
  std::array<Counter*, std::size(m::kGrpcCodes)> leases_;
  Histogram* lease_wait_;
  Counter* socket_reuses_;
  std::array<Counter*, std::size(m::kLeaseEndResults)> leases_ended_;
  Histogram* lease_duration_;
  std::array<Counter*, std::size(m::kCloseReasons)> sockets_closed_;
  std::array<Counter*, std::size(m::kDirections)> bytes_;
  std::array<Counter*, std::size(m::kGrpcCodes)> calls_;
  Histogram* call_duration_;
  Gauge* peer_not_after_;
  Gauge* client_not_after_;
  Gauge* enull_sockets_;
  Gauge* crl_next_update_;
  Gauge* crl_stale_;
  Counter* crl_reload_failures_;
  std::array<Counter*, std::size(m::kCredentialFiles)> credential_reload_failures_;
  std::array<std::array<Counter*, std::size(m::kOcspStatuses)>, std::size(m::kOcspSources)>
      ocsp_responses_;
  prometheus::Family<Counter>* const connect_attempts_family_;
  const std::string backend_;
  Mutex addresses_mu_;
  std::map<std::string, std::array<Counter*, std::size(m::kConnectAttemptResults)>, std::less<>>
      connect_attempts_ ABSL_GUARDED_BY(addresses_mu_);
};

static_assert(m::kConnectAttemptResults[0] == "ok", "OnConnectAttempt() relies on this order");
static_assert(m::kSocketStates[0] == "connecting" && m::kSocketStates[1] == "idle" &&
                  m::kSocketStates[2] == "leased" && m::kSocketStates[3] == "retiring",
              "OnSocketStates() relies on this order");
static_assert(m::kGrpcCodes[0] == "OK", "OnLeaseGranted() relies on this");
static_assert(m::kSocketBudgetStates[0] == "used", "the budget series rely on this");
static_assert(m::kHandshakeResults[0] == "ok", "OnHandshake() relies on this");
static_assert(m::kResumedValues[1] == "true", "OnHandshake() relies on this");

}  // namespace

absl::StatusOr<std::unique_ptr<PrometheusMetricsObserver>> PrometheusMetricsObserver::Create(
    std::shared_ptr<prometheus::Registry> registry) {
  if (registry == nullptr) return absl::InvalidArgumentError("registry is null");
  prometheus::Registry& r = *registry;
  Families f;
  // prometheus-cpp reports conflicts by throwing; keep that inside this module.
  try {
    auto counter = [&r](absl::string_view name, const char* help) {
      return &prometheus::BuildCounter().Name(Str(name)).Help(help).Register(r);
    };
    auto gauge = [&r](absl::string_view name, const char* help) {
      return &prometheus::BuildGauge().Name(Str(name)).Help(help).Register(r);
    };
    auto histogram = [&r](absl::string_view name, const char* help) {
      return &prometheus::BuildHistogram().Name(Str(name)).Help(help).Register(r);
    };
    f.build_info = gauge(m::kBuildInfo,
                         "Always 1; the labels say which tlsbroker this is (version, and the git "
                         "commit it was built from, or unknown).");
    f.bytes_total = counter(m::kBytesTotal,
                            "Application bytes moved on backend sockets, by direction (sent = to "
                            "the backend).");
    f.call_duration_seconds =
        histogram(m::kCallDurationSeconds, "Duration of Call RPCs (acquire to response frame).");
    f.caller_lease_limit_refusals_total =
        counter(m::kCallerLeaseLimitRefusalsTotal,
                "Leases and Calls refused because their caller held limits.max_leases_per_caller "
                "already.");
    f.calls_total = counter(m::kCallsTotal, "Call RPCs, by gRPC status code.");
    f.cert_verify_failures_total = counter(
        m::kCertVerifyFailuresTotal, "Backend certificate verification failures, by reason.");
    f.client_cert_not_after_timestamp_seconds =
        gauge(m::kClientCertNotAfterTimestampSeconds,
              "Expiry (Unix time) of the client certificate the broker presents; 0 until "
              "loaded.");
    f.config_last_reload_success =
        gauge(m::kConfigLastReloadSuccess,
              "1 when the latest configuration reload (SIGHUP or the admin Reload RPC) was "
              "applied, 0 when it was rejected (the running configuration stays); 1 at start.");
    f.config_last_reload_success_timestamp_seconds =
        gauge(m::kConfigLastReloadSuccessTimestampSeconds,
              "When (Unix time) the running configuration was applied: at start or by the "
              "latest successful reload.");
    f.credential_reload_failures_total =
        counter(m::kCredentialReloadFailuresTotal,
                "Changed client certificate, key or CA bundle files that were rejected (the "
                "previous credentials stay in use), by file.");
    f.crl_next_update_timestamp_seconds =
        gauge(m::kCrlNextUpdateTimestampSeconds,
              "Earliest nextUpdate (Unix time) of the backend's CRLs; 0 without CRLs.");
    f.crl_reload_failures_total =
        counter(m::kCrlReloadFailuresTotal,
                "Changed CRL files that could not be loaded (the previous CRLs stay in force).");
    f.crl_stale = gauge(m::kCrlStale, "1 when a CRL of the backend is past its nextUpdate.");
    f.enull_sockets =
        gauge(m::kEnullSockets, "Open sockets using integrity-only (NULL encryption) ciphers.");
    f.insecure_file_permissions =
        gauge(m::kInsecureFilePermissions,
              "Config and private key files that group or others may read or write (see the "
              "config warnings for which).");
    f.lease_duration_seconds =
        histogram(m::kLeaseDurationSeconds, "How long leases held their socket.");
    f.lease_wait_seconds =
        histogram(m::kLeaseWaitSeconds, "Time from acquire to a granted lease.");
    f.leases_ended_total =
        counter(m::kLeasesEndedTotal, "Granted leases that ended, by how they ended.");
    f.leases_total = counter(m::kLeasesTotal,
                             "Lease acquisitions (Lease RPCs and Calls), by gRPC status code: OK "
                             "for a granted lease, else the code of the refusal.");
    f.log_lines_dropped_total =
        counter(m::kLogLinesDroppedTotal,
                "Log lines dropped because the log buffer was full (whatever reads the "
                "broker's stderr fell behind); the broker never waits for its log.");
    f.backend_connect_attempts_total =
        counter(m::kBackendConnectAttemptsTotal,
                "Connect and handshake attempts per backend address (addresses are tried in "
                "order), by result.");
    f.ocsp_responses_total =
        counter(m::kOcspResponsesTotal,
                "OCSP checks of backend certificates, by where the answer came from and what it "
                "said.");
    f.peer_cert_not_after_timestamp_seconds =
        gauge(m::kPeerCertNotAfterTimestampSeconds,
              "Expiry (Unix time) of the backend certificate seen at the latest handshake; 0 "
              "until the first.");
    f.pool_sockets = gauge(m::kPoolSockets, "Sockets in the pool, by state.");
    f.pool_waiters = gauge(m::kPoolWaiters, "Acquires waiting for a socket.");
    f.socket_budget_limit_sockets =
        gauge(m::kSocketBudgetLimitSockets,
              "The broker-wide socket budget, limits.max_backend_sockets (0 = unlimited).");
    f.socket_budget_refusals_total =
        counter(m::kSocketBudgetRefusalsTotal,
                "Leases and Calls refused because the broker-wide socket budget "
                "(limits.max_backend_sockets) was used up.");
    f.socket_budget_sockets =
        gauge(m::kSocketBudgetSockets,
              "Sockets counted against the broker-wide socket budget (open or connecting, all "
              "backends); the limit is tlsbroker_socket_budget_limit_sockets.");
    f.socket_reuses_total =
        counter(m::kSocketReusesTotal, "Leases served by a socket that had served an earlier one.");
    f.sockets_closed_total = counter(m::kSocketsClosedTotal, "Sockets closed, by reason.");
    f.tls_handshake_duration_seconds = histogram(m::kTlsHandshakeDurationSeconds,
                                                 "Duration of successful TLS handshakes.");
    f.tls_handshakes_total =
        counter(m::kTlsHandshakesTotal,
                "TLS handshakes (one per socket created, none on reuse), by result and whether "
                "the session was resumed.");
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot register broker metrics: ", e.what()));
  }
  return std::unique_ptr<PrometheusMetricsObserver>(
      new PrometheusMetricsObserver(std::move(registry), f));
}

PrometheusMetricsObserver::PrometheusMetricsObserver(
    std::shared_ptr<prometheus::Registry> registry, const Families& families)
    : registry_(std::move(registry)),
      families_(families),
      caller_lease_limit_refusals_(families.caller_lease_limit_refusals_total->Add({})),
      insecure_file_permissions_(families.insecure_file_permissions->Add({})),
      log_lines_dropped_(families.log_lines_dropped_total->Add({})),
      socket_budget_refusals_(families.socket_budget_refusals_total->Add({})),
      socket_budget_limit_(families.socket_budget_limit_sockets->Add({})),
      socket_budget_used_(families.socket_budget_sockets->Add(
          {{Str(m::kLabelState), Str(m::kSocketBudgetStates[0])}})),
      config_reload_success_(families.config_last_reload_success->Add({})),
      config_reload_success_timestamp_(
          families.config_last_reload_success_timestamp_seconds->Add({})) {}

void PrometheusMetricsObserver::OnSocketBudget(int limit, int used) {
  socket_budget_limit_.Set(limit);
  socket_budget_used_.Set(used);
}

void PrometheusMetricsObserver::OnConfigApplied(bool applied, absl::Time at) {
  config_reload_success_.Set(applied ? 1 : 0);
  // A rejected reload leaves the time the running configuration was applied.
  if (applied) config_reload_success_timestamp_.Set(static_cast<double>(absl::ToUnixMicros(at)) / 1e6);
}

void PrometheusMetricsObserver::SetBuildInfo(absl::string_view version,
                                             absl::string_view commit) {
  MutexLock lock(&mu_);
  if (build_info_set_) return;
  build_info_set_ = true;
  families_.build_info
      ->Add({{Str(m::kLabelVersion), Str(version)}, {Str(m::kLabelCommit), Str(commit)}})
      .Set(1);
}

void PrometheusMetricsObserver::SyncLogLinesDropped(uint64_t total) {
  // Under mu_: two scrapes at once must not both add the same difference.
  MutexLock lock(&mu_);
  const double seen = log_lines_dropped_.Value();
  const double now = static_cast<double>(total);
  if (now > seen) log_lines_dropped_.Increment(now - seen);
}

void PrometheusMetricsObserver::OnSocketBudgetRefused() { socket_budget_refusals_.Increment(); }

void PrometheusMetricsObserver::OnCallerLeaseLimitRefused() {
  caller_lease_limit_refusals_.Increment();
}

void PrometheusMetricsObserver::OnInsecureFilePermissions(int files) {
  insecure_file_permissions_.Set(files);
}

std::shared_ptr<BackendObserver> PrometheusMetricsObserver::ForBackend(absl::string_view backend) {
  MutexLock lock(&mu_);
  auto it = backends_.find(backend);
  if (it != backends_.end()) return it->second;
  std::shared_ptr<BackendObserver> observer;
  try {
    observer = std::make_shared<PrometheusBackendObserver>(families_, std::string(backend));
  } catch (const std::exception&) {
    // Only label-name validation can throw, and the names are constants; never reached in
    // practice, but metrics must not take the broker down.
    observer = std::make_shared<NullBackendObserver>();
  }
  backends_.emplace(std::string(backend), observer);
  return observer;
}

std::string SerializeMetrics(const prometheus::Registry& registry) {
  return prometheus::TextSerializer().Serialize(registry.Collect());
}

std::string SerializeMetrics(const std::vector<const prometheus::Collectable*>& sources) {
  std::vector<prometheus::MetricFamily> families;
  for (const prometheus::Collectable* source : sources) {
    std::vector<prometheus::MetricFamily> more = source->Collect();
    families.insert(families.end(), std::make_move_iterator(more.begin()),
                    std::make_move_iterator(more.end()));
  }
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace tlsbroker
