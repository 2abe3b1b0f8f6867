#include "services/broker_server.h"

#include <fstream>
#include <sstream>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "broker/common/log.h"
#include "broker/common/log_writer.h"
#include "broker/config/load_options.h"
#include "services/grpc_connection_args.h"
#include "services/message_size.h"

namespace tlsbroker {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool IsLoopbackOrUnix(absl::string_view address) {
  return absl::StartsWith(address, "unix:") || absl::StartsWith(address, "127.") ||
         absl::StartsWith(address, "localhost:") || absl::StartsWith(address, "[::1]:");
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeCredentials(
    const ListenOptions& listen) {
  if (!listen.has_tls) {
    // Without TLS nobody is authenticated: only for a loopback or unix socket listener.
    if (!IsLoopbackOrUnix(listen.grpc)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "listen.grpc ", listen.grpc, " is not loopback or unix: listen.plaintext is allowed "
          "only there; callers on the network must authenticate with mTLS (set listen.tls)"));
    }
    return grpc::InsecureServerCredentials();
  }
  auto cert = ReadFile(listen.tls.cert_file);
  if (!cert.ok()) return cert.status();
  auto key = ReadFile(listen.tls.key_file);
  if (!key.ok()) return key.status();
  auto ca = ReadFile(listen.tls.client_ca_file);
  if (!ca.ok()) return ca.status();
  grpc::SslServerCredentialsOptions ssl(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  ssl.pem_root_certs = *ca;
  ssl.pem_key_cert_pairs.push_back({*key, *cert});
  return grpc::SslServerCredentials(ssl);
}

}  // namespace

absl::StatusOr<std::unique_ptr<BrokerServer>> BrokerServer::Start(const BrokerOptions& options,
                                                                  StartOptions start) {
  std::unique_ptr<BrokerServer> s(new BrokerServer());
  s->options_ = options;
  s->loops_ = std::make_unique<EventLoops>(start.io_threads);
  s->metrics_registry_ = std::make_shared<prometheus::Registry>();
  auto metrics = PrometheusMetricsObserver::Create(s->metrics_registry_);
  if (!metrics.ok()) return metrics.status();
  s->metrics_ = *std::move(metrics);
  s->metrics_->SetBuildInfo(start.version, start.commit);
  auto registry = BackendRegistry::Create(options, s->loops_.get(), s->metrics_.get());
  if (!registry.ok()) return registry.status();
  s->registry_ = *std::move(registry);
  // The configuration is in force from here (before /metrics serves, so no scrape sees 0).
  s->metrics_->OnConfigApplied(true, absl::Now());
  s->caller_limits_ = std::make_unique<CallerLeaseLimiter>(options.limits.max_leases_per_caller,
                                                           s->metrics_.get());
  s->metrics_->OnInsecureFilePermissions(static_cast<int>(options.insecure_files.size()));
  for (const std::string& file : options.insecure_files) {
    LogEvent(LogLevel::kWarning, "file readable or writable by group or others",
             LogField("file", file));
  }

  ServiceContext services;
  services.registry = s->registry_.get();
  services.flow = &s->flow_;
  services.caller_limits = s->caller_limits_.get();
  s->start_ = start;
  s->broker_service_ = std::make_unique<BrokerService>(services);
  AdminService::ReloadFn reload;
  if (!start.config_path.empty()) {
    BrokerServer* self = s.get();
    reload = [self] { return self->ReloadFromFile(); };
  }
  s->admin_service_ = std::make_unique<AdminService>(services, std::move(reload));

  auto credentials = MakeCredentials(options.listen);
  if (!credentials.ok()) return credentials.status();
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  ApplyGrpcConnectionArgs(options.listen, &builder);
  s->grpc_receive_limit_ = GrpcReceiveLimit(options);
  builder.SetMaxReceiveMessageSize(s->grpc_receive_limit_);
  builder.AddListeningPort(options.listen.grpc, *credentials, &s->grpc_port_);
  builder.RegisterService(s->broker_service_.get());
  builder.RegisterService(s->admin_service_.get());
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for gRPC on ", options.listen.grpc));
  }

  HttpEndpoint::Handlers handlers;
  BrokerServer* raw = s.get();
  handlers.metrics = [raw] {
    raw->metrics_->SyncLogLinesDropped(DroppedLogLines());
    return SerializeMetrics({raw->metrics_registry_.get(), &raw->process_metrics_});
  };
  handlers.ready = [raw] {
    std::string body;
    bool ready = raw->Ready(&body);
    return std::make_pair(ready, body);
  };
  auto http = HttpEndpoint::Start(options.listen.metrics, std::move(handlers));
  if (!http.ok()) return http.status();
  s->http_ = *std::move(http);

  s->registry_->StartAll();
  s->health_thread_ = std::thread([raw] { raw->HealthLoop(); });
  LogEvent(LogLevel::kInfo, "tlsbroker serving",
           absl::StrCat(LogField("grpc", s->grpc_target()), " ",
                        LogField("metrics", absl::StrCat("http://", options.listen.metrics,
                                                         " (port ", s->metrics_port(), ")")),
                        " backends=", options.backends.size()));
  return s;
}

BrokerServer::~BrokerServer() { Shutdown(absl::ZeroDuration()); }

std::string BrokerServer::grpc_target() const {
  const std::string& address = options_.listen.grpc;
  if (absl::StartsWith(address, "unix:")) return address;
  size_t colon = address.rfind(':');
  std::string host = address.substr(0, colon);
  if (host == "0.0.0.0" || host.empty()) host = "127.0.0.1";
  if (host == "[::]") host = "[::1]";
  return absl::StrCat(host, ":", grpc_port_);
}

namespace {

bool SameListen(const ListenOptions& a, const ListenOptions& b) {
  return a.grpc == b.grpc && a.metrics == b.metrics && a.has_tls == b.has_tls &&
         a.plaintext == b.plaintext && a.tls.cert_file == b.tls.cert_file &&
         a.tls.key_file == b.tls.key_file && a.tls.client_ca_file == b.tls.client_ca_file;
}

}  // namespace

std::vector<std::string> BrokerServer::Reload(const BrokerOptions& next) {
  std::lock_guard<std::mutex> lock(reload_mu_);
  std::vector<std::string> errors = ReloadLocked(next);
  metrics_->OnConfigApplied(errors.empty(), absl::Now());
  return errors;
}

std::vector<std::string> BrokerServer::ReloadLocked(const BrokerOptions& next) {
  if (shut_down_) return {"the broker is shutting down"};
  ListenOptions running_listen = options_.listen;
  ListenOptions next_listen = next.listen;
  // Only the admin list may change in the listen section without a restart.
  running_listen.admin_callers.clear();
  next_listen.admin_callers.clear();
  if (!SameListen(running_listen, next_listen)) {
    return {"listen (addresses, TLS files, plaintext) cannot change on reload; restart the "
            "broker to apply"};
  }
  if (std::string error = CheckFitsReceiveLimit(next, grpc_receive_limit_); !error.empty()) {
    return {error};
  }
  std::vector<std::string> errors =
      registry_->Reload(next, loops_.get(), metrics_.get());
  if (errors.empty()) {
    caller_limits_->SetLimit(next.limits.max_leases_per_caller);
    metrics_->OnInsecureFilePermissions(static_cast<int>(next.insecure_files.size()));
    options_ = next;
    LogEvent(LogLevel::kInfo, "configuration reloaded",
             absl::StrCat("backends=", next.backends.size()));
  }
  return errors;
}

std::vector<std::string> BrokerServer::ReloadFromFile() {
  std::vector<std::string> errors;
  if (start_.config_path.empty()) {
    errors.push_back("this broker was not started from a config file");
  } else {
    const ConfigReport report = LoadConfigFile(start_.config_path, start_.ordinal);
    for (const ConfigError& e : report.errors) {
      errors.push_back(absl::StrCat(start_.config_path, ":", e.ToString()));
    }
    if (errors.empty()) {
      errors = Reload(report.options);
    } else {
      metrics_->OnConfigApplied(false, absl::Now());
    }
  }
  for (const std::string& e : errors) {
    LogEvent(LogLevel::kError, "reload rejected; the running configuration stays",
             LogField("error", e));
  }
  return errors;
}

bool BrokerServer::Ready(std::string* body) const {
  // Unready only when this pod cannot be of use: the whole broker is drained, a backend is
  // still warming up for the first time, or not one backend can serve. A backend drained on
  // its own, or known down, does not take the pod out of service for the others.
  const bool broker_draining = registry_->BrokerDraining();
  bool warming = false;
  int serving = 0;
  std::string lines;
  for (const auto& pool : registry_->All()) {
    PoolStats stats = pool->Stats();
    const std::shared_ptr<const BackendOptions> options_snapshot = pool->options();
    const BackendOptions& options = *options_snapshot;
    int have = stats.idle + stats.leased;
    std::string line;
    if (registry_->IsDraining(options.name)) {
      line = absl::StrCat(options.name, ": draining");
    } else if (have == 0 && !stats.last_failure.empty()) {
      line = absl::StrCat(options.name, ": down (", stats.last_failure, ")");
    } else if (have >= options.pool.min_idle) {
      std::lock_guard<std::mutex> lock(ready_mu_);
      warmed_.insert(options.name);
      line = absl::StrCat(options.name, ": ready (", have, " sockets, min_idle ",
                          options.pool.min_idle, ")");
      ++serving;
    } else {
      std::lock_guard<std::mutex> lock(ready_mu_);
      if (warmed_.count(options.name) != 0) {
        // It was ready before (a resume, sockets being replaced): it serves while it refills;
        // holding the pod unready for that would flap it.
        line = absl::StrCat(options.name, ": refilling (", have, " of ", options.pool.min_idle,
                            " sockets)");
        ++serving;
      } else {
        line = absl::StrCat(options.name, ": warming up (", have, " of ", options.pool.min_idle,
                            " sockets)");
        warming = true;
      }
    }
    absl::StrAppend(&lines, line, "\n");
  }
  if (broker_draining) {
    absl::StrAppend(body, "broker: draining (tlsbrokerctl resume --all ends an admin drain)\n");
  } else if (serving == 0 && !warming) {
    absl::StrAppend(body, "broker: not one backend can serve\n");
  }
  absl::StrAppend(body, lines);
  return !broker_draining && !warming && serving > 0;
}

void BrokerServer::HealthLoop() {
  // gRPC's default health service has no callback: publish each backend's state periodically.
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  std::unique_lock<std::mutex> lock(health_mu_);
  while (!stopping_) {
    lock.unlock();
    if (health != nullptr) {
      // The whole server: not serving during a whole-broker drain, so clients that check
      // gRPC health (client-side balancing over the pods) move away as the kubelet does.
      health->SetServingStatus("", !registry_->BrokerDraining());
      for (const auto& pool : registry_->All()) {
        PoolStats stats = pool->Stats();
        bool serving = !registry_->IsDraining(pool->options()->name) &&
                       (stats.last_failure.empty() || stats.idle + stats.leased > 0);
        health->SetServingStatus(pool->options()->name, serving);
      }
    }
    lock.lock();
    health_cv_.wait_for(lock, std::chrono::milliseconds(500), [this] { return stopping_; });
  }
}

void BrokerServer::Shutdown(absl::Duration grace) {
  if (shut_down_.exchange(true)) return;
  const absl::Time deadline = absl::Now() + grace;
  LogEvent(LogLevel::kInfo, "tlsbroker draining",
           LogField("grace", absl::FormatDuration(grace)));
  // 1. Stop lending: new Leases and Calls fail UNAVAILABLE (retryable elsewhere), idle
  //    sockets close; /readyz and health turn unready so load balancers move away.
  if (registry_) registry_->ShutdownAll();
  {
    std::lock_guard<std::mutex> lock(health_mu_);
    stopping_ = true;
  }
  health_cv_.notify_all();
  if (health_thread_.joinable()) health_thread_.join();
  if (server_ != nullptr) {
    if (auto* health = server_->GetHealthCheckService()) health->Shutdown();
  }
  // 2. Let running leases and calls finish, up to the grace period. Only then stop gRPC:
  //    its Shutdown cancels calls that arrive while it closes the connections, and those
  //    callers would see CANCELLED instead of a retryable UNAVAILABLE.
  while (flow_.active_rpcs() > 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  LogEvent(LogLevel::kDebug, "leases and calls finished",
           absl::StrCat("active_rpcs=", flow_.active_rpcs()));
  if (server_) {
    // Nothing of ours runs any more; gRPC's own graceful close waits for clients to drop
    // their connections (seconds), so give it at most one more second.
    absl::Time close_by = std::min(deadline, absl::Now() + absl::Seconds(1));
    server_->Shutdown(absl::ToChronoTime(std::max(close_by, absl::Now())));
    server_->Wait();
  }
  LogEvent(LogLevel::kDebug, "grpc server stopped");
  http_.reset();
  LogEvent(LogLevel::kDebug, "http endpoint stopped");
  // Leases are gone; the sockets they held and the idle ones were closed by the pools: let
  // the loops run those closes (close_notify) before they stop.
  if (loops_) loops_->RunPending();
  registry_.reset();
  loops_.reset();
  LogEvent(LogLevel::kInfo, "tlsbroker stopped");
  // Every lease's audit line is out before the process may exit.
  FlushLogs();
}

}  // namespace tlsbroker
