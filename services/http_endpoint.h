#ifndef SERVICES_HTTP_ENDPOINT_H_
#define SERVICES_HTTP_ENDPOINT_H_

// The broker's plain-HTTP endpoint on the metrics port: /metrics for Prometheus, /healthz and
// /readyz for the kubelet (whose probes cannot present a client certificate, so they cannot use
// the mTLS gRPC port). One CivetWeb server serves all three paths: prometheus-cpp's Exposer
// serves only /metrics, so it is not used.

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "prometheus/registry.h"

struct mg_connection;
struct mg_context;

namespace tlsbroker {

// Serves, for GET only (anything else gets 405):
//   /metrics  200, the Prometheus text exposition format 0.0.4 from Handlers::metrics;
//   /healthz  200 "ok" while the process serves HTTP at all, whatever the backends do
//             (liveness: a restart would not fix a backend);
//   /readyz   200 or 503 as Handlers::ready says, with its body (which should say per backend
//             why, for whoever runs `kubectl describe`);
// and 404 for every other path.
//
// Thread-safe. The handlers run on CivetWeb's worker threads (two), possibly concurrently, so
// they must be thread-safe; they must not throw (a throw becomes a 500, never crosses CivetWeb's
// C frames). Destruction stops the server and joins its threads, after which no handler runs.
class HttpEndpoint final {
 public:
  struct Handlers {
    // The exposition text (see PrometheusTextFrom()).
    std::function<std::string()> metrics;
    // (ready?, human-readable body).
    std::function<std::pair<bool, std::string>()> ready;
  };

  // Listens on `address`, "host:port": an IPv4 literal (127.0.0.1, 0.0.0.0); port 0 picks a free
  // port (see port()). "[::]:port" is accepted only if the CivetWeb library was built with IPv6
  // support (Debian's is not: InvalidArgument then). Both handlers are required
  // (InvalidArgument). A failure to bind is Unavailable, naming the address and the error.
  static absl::StatusOr<std::unique_ptr<HttpEndpoint>> Start(const std::string& address,
                                                             Handlers handlers);

  HttpEndpoint(const HttpEndpoint&) = delete;
  HttpEndpoint& operator=(const HttpEndpoint&) = delete;
  ~HttpEndpoint();

  // The port actually bound (the chosen one when `address` asked for port 0).
  int port() const { return port_; }

 private:
  explicit HttpEndpoint(Handlers handlers);

  // CivetWeb's request handler; `cbdata` is the HttpEndpoint.
  static int HandleRequest(mg_connection* conn, void* cbdata);
  int Handle(mg_connection* conn) const;

  // Connects to the listener until `stopped`, so that mg_stop() need not wait out CivetWeb's
  // poll quantum (see the destructor).
  void WakeListenerUntil(const std::atomic<bool>& stopped) const;

  const Handlers handlers_;
  mg_context* context_ = nullptr;
  int port_ = 0;
  // An IPv4 literal that reaches the listener (127.0.0.1 for 0.0.0.0); empty for IPv6.
  std::string wake_host_;
};

// A Handlers::metrics that serializes `registry` with prometheus-cpp's TextSerializer on each
// scrape. Keeps the registry alive.
std::function<std::string()> PrometheusTextFrom(std::shared_ptr<prometheus::Registry> registry);

}  // namespace tlsbroker

#endif  // SERVICES_HTTP_ENDPOINT_H_
