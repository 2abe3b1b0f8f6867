#include "services/http_endpoint.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "broker/common/log.h"
#include "broker/metrics/prometheus_observer.h"

namespace tlsbroker {
namespace {

constexpr char kMetricsContentType[] = "text/plain; version=0.0.4; charset=utf-8";
constexpr char kTextContentType[] = "text/plain; charset=utf-8";

// Few threads: the endpoint serves a scraper and the kubelet's probes, a handful of requests a
// minute; each thread costs a stack.
constexpr char kNumThreads[] = "2";
// A stalled client holds a worker thread at most this long, so it cannot starve the probes.
constexpr char kRequestTimeoutMs[] = "5000";

// mg_init_library() is not thread-safe and is reference counted; initialise once per process
// and never tear down (other endpoints may start later, e.g. in tests).
void InitCivetWebOnce() {
  static std::once_flag once;
  std::call_once(once, [] { mg_init_library(0); });
}

// CivetWeb reports why a listener could not be set up (e.g. "cannot bind to 127.0.0.1:9464: 98
// (Address already in use)") only through its log callback, while mg_start2's own error text
// just says the ports failed. Start() points this at a buffer while it runs mg_start2 on its
// thread, which is where CivetWeb sets up the listeners.
thread_local std::vector<std::string>* start_messages = nullptr;

int LogCivetWebMessage(const mg_connection* /*conn*/, const char* message) {
  if (start_messages != nullptr) {
    start_messages->emplace_back(message);
  } else {
    LogEvent(LogLevel::kWarning, "http endpoint", LogField("civetweb", message));
  }
  return 1;  // Handled: CivetWeb writes nothing itself.
}

struct ParsedAddress {
  std::string listening_ports;  // CivetWeb's option value.
  std::string wake_host;        // An IPv4 literal that reaches the listener; empty for IPv6.
};

// Checks "host:port" and turns it into CivetWeb's listening_ports syntax, which is the same
// for the literals accepted here. Validating first keeps CivetWeb's own suffixes ("s" for TLS,
// "r" for redirect) and lists ("a,b") out of a configured address.
absl::StatusOr<ParsedAddress> ParseAddress(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics address \"", address, "\" is not host:port"));
  }
  absl::string_view host = absl::string_view(address).substr(0, colon);
  const absl::string_view port_text = absl::string_view(address).substr(colon + 1);
  int port = -1;
  if (port_text.empty() || port_text.find_first_not_of("0123456789") != absl::string_view::npos ||
      !absl::SimpleAtoi(port_text, &port) || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics address \"", address, "\": bad port \"", port_text, "\""));
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    const std::string literal(host.substr(1, host.size() - 2));
    in6_addr addr6;
    if (inet_pton(AF_INET6, literal.c_str(), &addr6) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("metrics address \"", address, "\": bad IPv6 address"));
    }
    if (mg_check_feature(MG_FEATURES_IPV6) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "metrics address \"", address,
          "\": this CivetWeb library has no IPv6 support; use an IPv4 address such as 0.0.0.0"));
    }
    return ParsedAddress{address, ""};
  }
  in_addr addr4;
  if (inet_pton(AF_INET, std::string(host).c_str(), &addr4) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics address \"", address,
        "\": host must be an IPv4 literal (e.g. 0.0.0.0) or a bracketed IPv6 literal"));
  }
  const bool any = addr4.s_addr == htonl(INADDR_ANY);
  return ParsedAddress{address, any ? "127.0.0.1" : std::string(host)};
}

// Opens and closes one TCP connection to host:port, ignoring every failure.
void Poke(const std::string& host, int port) {
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) return;
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  // Non-blocking: on loopback the handshake completes in the kernel whether or not we wait.
  (void)connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  close(fd);
}

// Writes a complete response with a known length. Keep-alive is off (see Start()), so each
// request is one connection and a slow scraper cannot pin a worker between requests.
void Respond(mg_connection* conn, int status, const char* content_type, const std::string& body) {
  mg_response_header_start(conn, status);
  mg_response_header_add(conn, "Content-Type", content_type, -1);
  mg_response_header_add(conn, "Content-Length", std::to_string(body.size()).c_str(), -1);
  mg_response_header_add(conn, "Cache-Control", "no-store", -1);
  if (status == 405) mg_response_header_add(conn, "Allow", "GET", -1);
  mg_response_header_send(conn);
  if (!body.empty()) mg_write(conn, body.data(), body.size());
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpEndpoint>> HttpEndpoint::Start(const std::string& address,
                                                                  Handlers handlers) {
  if (!handlers.metrics || !handlers.ready) {
    return absl::InvalidArgumentError("HttpEndpoint needs both a metrics and a ready handler");
  }
  auto parsed = ParseAddress(address);
  if (!parsed.ok()) return parsed.status();

  InitCivetWebOnce();
  // Private constructor: no make_unique.
  std::unique_ptr<HttpEndpoint> endpoint(new HttpEndpoint(std::move(handlers)));
  endpoint->wake_host_ = parsed->wake_host;

  // clang-format off
  const char* options[] = {
      "listening_ports", parsed->listening_ports.c_str(),
      "num_threads", kNumThreads,
      "request_timeout_ms", kRequestTimeoutMs,
      // One request per connection: an idle keep-alive scraper would hold one of the two workers.
      "enable_keep_alive", "no",
      nullptr,
  };
  // clang-format on
  mg_callbacks callbacks = {};
  callbacks.log_message = &LogCivetWebMessage;
  mg_init_data init = {};
  init.callbacks = &callbacks;
  init.user_data = endpoint.get();
  init.configuration_options = options;
  char error_text[256] = {};
  unsigned error_code = 0;
  mg_error_data error = {};
  error.code = &error_code;
  error.text = error_text;
  error.text_buffer_size = sizeof(error_text);

  std::vector<std::string> messages;
  start_messages = &messages;
  endpoint->context_ = mg_start2(&init, &error);
  start_messages = nullptr;
  if (endpoint->context_ == nullptr) {
    // The logged causes first; mg_start2's summary only when nothing else was said.
    std::vector<std::string> causes;
    for (std::string& message : messages) {
      if (message != error_text) causes.push_back(std::move(message));
    }
    if (causes.empty()) {
      causes.push_back(error_text[0] != '\0'
                           ? std::string(error_text)
                           : absl::StrCat("CivetWeb failed to start (error ", error_code, ")"));
    }
    return absl::UnavailableError(
        absl::StrCat("cannot serve HTTP on ", address, ": ", absl::StrJoin(causes, "; ")));
  }
  if (!messages.empty()) {
    LogEvent(LogLevel::kWarning, "http endpoint started with warnings",
             LogField("civetweb", absl::StrJoin(messages, "; ")));
  }
  // One handler for every path ("/" is a prefix of all), dispatching itself, so unknown paths
  // get our 404 and no path can fall through to CivetWeb's file serving.
  mg_set_request_handler(endpoint->context_, "/", &HttpEndpoint::HandleRequest, endpoint.get());

  mg_server_port ports[4] = {};
  const int num_ports = mg_get_server_ports(endpoint->context_, 4, ports);
  if (num_ports < 1 || ports[0].port <= 0) {
    return absl::InternalError(
        absl::StrCat("serving HTTP on ", address, " but CivetWeb reports no bound port"));
  }
  endpoint->port_ = ports[0].port;
  return endpoint;
}

HttpEndpoint::HttpEndpoint(Handlers handlers) : handlers_(std::move(handlers)) {}

HttpEndpoint::~HttpEndpoint() {
  if (context_ == nullptr) return;
  // mg_stop() closes the listener and joins CivetWeb's threads: afterwards no handler runs, so
  // handlers_ and whatever the handlers capture may go. CivetWeb 1.15's master thread notices
  // the stop only when its poll() on the listener returns, which without traffic takes its
  // 2-second quantum; every BrokerServer shutdown (and every test) would pay that. Connecting
  // to the listener wakes the poll. The wakes repeat because one that lands before mg_stop()
  // raises its flag only starts another quantum; the loop ends once mg_stop() has returned.
  std::atomic<bool> stopped{false};
  std::thread waker;
  if (!wake_host_.empty()) {
    waker = std::thread([this, &stopped] { WakeListenerUntil(stopped); });
  }
  mg_stop(context_);
  stopped.store(true);
  if (waker.joinable()) waker.join();
}

void HttpEndpoint::WakeListenerUntil(const std::atomic<bool>& stopped) const {
  while (!stopped.load()) {
    Poke(wake_host_, port_);
    // Not synchronisation, only a pace for the retries (mg_stop() usually returns after one).
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

int HttpEndpoint::HandleRequest(mg_connection* conn, void* cbdata) {
  return static_cast<const HttpEndpoint*>(cbdata)->Handle(conn);
}

int HttpEndpoint::Handle(mg_connection* conn) const {
  const mg_request_info* request = mg_get_request_info(conn);
  const absl::string_view method = request->request_method ? request->request_method : "";
  // local_uri is the decoded path without the query string.
  const absl::string_view path = request->local_uri ? request->local_uri : "";

  const bool known_path = path == "/metrics" || path == "/healthz" || path == "/readyz";
  if (!known_path) {
    Respond(conn, 404, kTextContentType, "not found\n");
    return 404;
  }
  if (method != "GET") {
    Respond(conn, 405, kTextContentType, "method not allowed\n");
    return 405;
  }
  if (path == "/healthz") {
    Respond(conn, 200, kTextContentType, "ok");
    return 200;
  }
  // The handlers come from other modules: an exception must not unwind through CivetWeb's C
  // frames (undefined behaviour), so it ends here as a 500.
  try {
    if (path == "/metrics") {
      Respond(conn, 200, kMetricsContentType, handlers_.metrics());
      return 200;
    }
    auto [ready, body] = handlers_.ready();
    const int status = ready ? 200 : 503;
    Respond(conn, status, kTextContentType, body);
    return status;
  } catch (const std::exception& e) {
    Respond(conn, 500, kTextContentType, absl::StrCat("internal error: ", e.what(), "\n"));
  } catch (...) {
    Respond(conn, 500, kTextContentType, "internal error\n");
  }
  return 500;
}

std::function<std::string()> PrometheusTextFrom(std::shared_ptr<prometheus::Registry> registry) {
  return [registry = std::move(registry)] { return SerializeMetrics(*registry); };
}

}  // namespace tlsbroker
