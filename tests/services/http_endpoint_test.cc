#include "services/http_endpoint.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "broker/common/mutex.h"
#include "broker/metrics/metric_names.h"
#include "broker/metrics/prometheus_observer.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "tests/services/http_get.h"

namespace tlsbroker {
namespace {

using testutil::HttpGet;
using testutil::HttpRequest;
using testutil::HttpResponse;

constexpr char kLoopback[] = "127.0.0.1";
constexpr char kMetricsContentType[] = "text/plain; version=0.0.4; charset=utf-8";

// The value of header `name` (lower case), or "" when absent.
std::string Header(const HttpResponse& response, const std::string& name) {
  const auto it = response.headers.find(name);
  return it == response.headers.end() ? "" : it->second;
}

// Readiness that the test flips while the endpoint runs (read on CivetWeb's threads).
class FakeReadiness {
 public:
  void Set(bool ready, std::string body) {
    MutexLock lock(&mu_);
    ready_ = ready;
    body_ = std::move(body);
  }
  std::pair<bool, std::string> Get() {
    MutexLock lock(&mu_);
    return {ready_, body_};
  }

 private:
  Mutex mu_;
  bool ready_ ABSL_GUARDED_BY(mu_) = false;
  std::string body_ ABSL_GUARDED_BY(mu_) = "starting";
};

class HttpEndpointTest : public ::testing::Test {
 protected:
  HttpEndpoint::Handlers FakeHandlers() {
    return {
        .metrics = [] { return std::string("# TYPE fake_total counter\nfake_total 7\n"); },
        .ready = [this] { return readiness_.Get(); },
    };
  }

  // Starts an endpoint on a free loopback port.
  std::unique_ptr<HttpEndpoint> StartOrDie(HttpEndpoint::Handlers handlers) {
    auto endpoint = HttpEndpoint::Start(absl::StrCat(kLoopback, ":0"), std::move(handlers));
    EXPECT_TRUE(endpoint.ok()) << endpoint.status();
    if (!endpoint.ok()) return nullptr;
    EXPECT_GT((*endpoint)->port(), 0);
    return *std::move(endpoint);
  }

  // GETs `path`; fails the test on a transport error.
  HttpResponse Get(const HttpEndpoint& endpoint, const std::string& path) {
    auto response = HttpGet(kLoopback, endpoint.port(), path);
    EXPECT_TRUE(response.ok()) << path << ": " << response.status();
    return response.ok() ? *std::move(response) : HttpResponse{};
  }

  FakeReadiness readiness_;
};

// Liveness says "ok" even while the broker is not ready: it must not depend on backends.
TEST_F(HttpEndpointTest, HealthzIsOkEvenWhenNotReady) {
  readiness_.Set(false, "b1: no socket established yet\n");
  auto endpoint = StartOrDie(FakeHandlers());
  ASSERT_NE(endpoint, nullptr);
  const HttpResponse response = Get(*endpoint, "/healthz");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, "ok");
}

// /readyz follows the handler at run time: 503 with its reasons, then 200 once it says ready.
TEST_F(HttpEndpointTest, ReadyzFollowsHandlerAtRunTime) {
  auto endpoint = StartOrDie(FakeHandlers());
  ASSERT_NE(endpoint, nullptr);

  readiness_.Set(false, "b1: not ready: connect_refused\nb2: ready\n");
  HttpResponse response = Get(*endpoint, "/readyz");
  EXPECT_EQ(response.status, 503);
  EXPECT_EQ(response.body, "b1: not ready: connect_refused\nb2: ready\n");

  readiness_.Set(true, "b1: ready\nb2: ready\n");
  response = Get(*endpoint, "/readyz");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, "b1: ready\nb2: ready\n");

  readiness_.Set(false, "draining\n");
  response = Get(*endpoint, "/readyz");
  EXPECT_EQ(response.status, 503);
  EXPECT_EQ(response.body, "draining\n");
}

// A query string does not change the route (probes sometimes add ?verbose).
TEST_F(HttpEndpointTest, QueryStringDoesNotChangeRoute) {
  readiness_.Set(true, "all ready\n");
  auto endpoint = StartOrDie(FakeHandlers());
  ASSERT_NE(endpoint, nullptr);
  const HttpResponse response = Get(*endpoint, "/readyz?verbose=1");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, "all ready\n");
}

// /metrics returns the handler's text with the exposition format's content type.
TEST_F(HttpEndpointTest, MetricsServesHandlerTextWithExpositionContentType) {
  auto endpoint = StartOrDie(FakeHandlers());
  ASSERT_NE(endpoint, nullptr);
  const HttpResponse response = Get(*endpoint, "/metrics");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(Header(response, "content-type"), kMetricsContentType);
  EXPECT_EQ(response.body, "# TYPE fake_total counter\nfake_total 7\n");
}

// Paths other than the three get 404, including near misses.
TEST_F(HttpEndpointTest, UnknownPathIsNotFound) {
  auto endpoint = StartOrDie(FakeHandlers());
  ASSERT_NE(endpoint, nullptr);
  for (const char* path :
       {"/", "/nope", "/metrics/extra", "/healthz/", "/METRICS", "/index.html"}) {
    EXPECT_EQ(Get(*endpoint, path).status, 404) << path;
  }
}

// Only GET is served; other methods get 405 with an Allow header.
TEST_F(HttpEndpointTest, NonGetIsMethodNotAllowed) {
  auto endpoint = StartOrDie(FakeHandlers());
  ASSERT_NE(endpoint, nullptr);
  for (const char* method : {"POST", "PUT", "DELETE"}) {
    auto response = HttpRequest(method, kLoopback, endpoint->port(), "/metrics");
    ASSERT_TRUE(response.ok()) << method << ": " << response.status();
    EXPECT_EQ(response->status, 405) << method;
    EXPECT_EQ(Header(*response, "allow"), "GET") << method;
  }
}

// A handler that throws gives a 500, and the server keeps serving.
TEST_F(HttpEndpointTest, ThrowingHandlerGivesInternalServerError) {
  HttpEndpoint::Handlers handlers = FakeHandlers();
  handlers.metrics = []() -> std::string { throw std::runtime_error("collect failed"); };
  auto endpoint = StartOrDie(std::move(handlers));
  ASSERT_NE(endpoint, nullptr);
  const HttpResponse response = Get(*endpoint, "/metrics");
  EXPECT_EQ(response.status, 500);
  EXPECT_TRUE(absl::StrContains(response.body, "collect failed")) << response.body;
  EXPECT_EQ(Get(*endpoint, "/healthz").status, 200);
}

// Concurrent scrapes and probes are all answered (handlers run on several threads).
TEST_F(HttpEndpointTest, ConcurrentRequestsAreAllAnswered) {
  readiness_.Set(true, "ready\n");
  auto endpoint = StartOrDie(FakeHandlers());
  ASSERT_NE(endpoint, nullptr);
  constexpr int kThreads = 6;
  constexpr int kRequestsPerThread = 20;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const char* path = (t % 3 == 0) ? "/metrics" : (t % 3 == 1) ? "/readyz" : "/healthz";
      for (int i = 0; i < kRequestsPerThread; ++i) {
        auto response = HttpGet(kLoopback, endpoint->port(), path);
        if (response.ok() && response->status == 200) ok.fetch_add(1);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(ok.load(), kThreads * kRequestsPerThread);
}

// Missing handlers are a caller error, reported before anything listens.
TEST_F(HttpEndpointTest, MissingHandlerIsInvalidArgument) {
  HttpEndpoint::Handlers handlers = FakeHandlers();
  handlers.ready = nullptr;
  auto endpoint = HttpEndpoint::Start("127.0.0.1:0", std::move(handlers));
  ASSERT_FALSE(endpoint.ok());
  EXPECT_EQ(endpoint.status().code(), absl::StatusCode::kInvalidArgument);
}

// Malformed addresses are rejected with the address in the message, and never reach CivetWeb
// (whose port syntax would read "80s" as a TLS port and "a,b" as two listeners).
TEST_F(HttpEndpointTest, MalformedAddressIsInvalidArgument) {
  for (const char* address : {"9464", "localhost:9464", "127.0.0.1:", "127.0.0.1:99999",
                              "127.0.0.1:80s", "127.0.0.1:1,127.0.0.1:2", "[nonsense]:1"}) {
    auto endpoint = HttpEndpoint::Start(address, FakeHandlers());
    ASSERT_FALSE(endpoint.ok()) << address;
    EXPECT_EQ(endpoint.status().code(), absl::StatusCode::kInvalidArgument) << address;
    EXPECT_TRUE(absl::StrContains(endpoint.status().message(), address)) << endpoint.status();
  }
}

// True when the kernel has an IPv6 loopback: a socket binds to [::1].
bool KernelHasIpv6Loopback() {
  int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_addr = in6addr_loopback;
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

// An IPv6 listener: with a CivetWeb built without IPv6 (Debian's) it fails up front saying so,
// instead of with an opaque CivetWeb error; with one built with IPv6 it listens on [::1] and
// accepts a connection there. Which case applies is asked of CivetWeb itself, not inferred from
// the endpoint's answer, so the test cannot pass whatever the endpoint does. Without an IPv6
// loopback in the kernel the second case cannot be checked and the test says it skipped.
TEST_F(HttpEndpointTest, Ipv6AddressListensOrIsRefusedByACivetWebWithoutIpv6) {
  auto endpoint = HttpEndpoint::Start("[::1]:0", FakeHandlers());
  if (mg_check_feature(MG_FEATURES_IPV6) == 0) {
    ASSERT_FALSE(endpoint.ok());
    EXPECT_EQ(endpoint.status().code(), absl::StatusCode::kInvalidArgument) << endpoint.status();
    EXPECT_TRUE(absl::StrContains(endpoint.status().message(), "IPv6")) << endpoint.status();
    return;
  }
  if (!KernelHasIpv6Loopback()) {
    GTEST_SKIP() << "this kernel has no IPv6 loopback ([::1]); the IPv6 listener is unchecked";
  }
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  ASSERT_GT((*endpoint)->port(), 0);
  int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_addr = in6addr_loopback;
  addr.sin6_port = htons(static_cast<uint16_t>((*endpoint)->port()));
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << strerror(errno);
  close(fd);
}

// Binding an address already in use fails with a status naming the address and the cause.
TEST_F(HttpEndpointTest, AddressInUseFailsWithClearStatus) {
  auto first = StartOrDie(FakeHandlers());
  ASSERT_NE(first, nullptr);
  const std::string address = absl::StrCat(kLoopback, ":", first->port());
  auto second = HttpEndpoint::Start(address, FakeHandlers());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(second.status().message(), address)) << second.status();
  EXPECT_TRUE(absl::StrContains(second.status().message(), "in use")) << second.status();
  // The first endpoint is unaffected.
  EXPECT_EQ(Get(*first, "/healthz").status, 200);
}

// Destruction stops the server: the port no longer accepts connections.
TEST_F(HttpEndpointTest, DestructionClosesThePort) {
  auto endpoint = StartOrDie(FakeHandlers());
  ASSERT_NE(endpoint, nullptr);
  const int port = endpoint->port();
  ASSERT_EQ(Get(*endpoint, "/healthz").status, 200);
  endpoint.reset();
  auto response = HttpGet(kLoopback, port, "/healthz", absl::Seconds(2));
  ASSERT_FALSE(response.ok()) << "status " << response->status;
  EXPECT_EQ(response.status().code(), absl::StatusCode::kUnavailable) << response.status();
  EXPECT_TRUE(absl::StrContains(response.status().message(), "refused")) << response.status();
}

// The wildcard address (the production default, 0.0.0.0:9464) serves loopback and stops too.
TEST_F(HttpEndpointTest, WildcardAddressServesLoopbackAndStops) {
  auto endpoint = HttpEndpoint::Start("0.0.0.0:0", FakeHandlers());
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  const int port = (*endpoint)->port();
  EXPECT_EQ(Get(**endpoint, "/healthz").status, 200);
  endpoint->reset();
  auto response = HttpGet(kLoopback, port, "/healthz", absl::Seconds(2));
  ASSERT_FALSE(response.ok()) << "status " << response->status;
  EXPECT_EQ(response.status().code(), absl::StatusCode::kUnavailable) << response.status();
}

// Serves a real registry fed by the broker's metrics observer.
class HttpEndpointRegistryTest : public HttpEndpointTest {
 protected:
  void SetUp() override {
    auto observer = PrometheusMetricsObserver::Create(registry_);
    ASSERT_TRUE(observer.ok()) << observer.status();
    observer_ = *std::move(observer);
    observer_->SetBuildInfo("0.0.0-test", "unknown");
    std::shared_ptr<BackendObserver> b1 = observer_->ForBackend("b1");
    b1->OnAddresses({"b1.example:9999"});  // As the pool does when it is created.
    b1->OnHandshake("ok", /*resumed=*/false, absl::Milliseconds(12));
    b1->OnHandshake("unknown_ca", /*resumed=*/false, absl::Milliseconds(3));
    b1->OnCertVerifyFailure("unknown_ca");
    b1->OnSocketStates(/*connecting=*/1, /*idle=*/2, /*leased=*/3, /*retiring=*/0);
    b1->OnWaiters(4);
    b1->OnLeaseGranted(absl::Milliseconds(1), /*reused=*/true);
    b1->OnLeaseEnded("clean", absl::Milliseconds(40));
    b1->OnBytes("sent", 100);
    b1->OnBytes("received", 250);
    b1->OnCall("OK", absl::Milliseconds(5));
    b1->OnPeerCertNotAfter(absl::FromUnixSeconds(1900000000));
    b1->OnClientCertNotAfter(absl::FromUnixSeconds(1800000000));

    readiness_.Set(true, "b1: ready\n");
    endpoint_ = StartOrDie(
        {.metrics = PrometheusTextFrom(registry_), .ready = [this] { return readiness_.Get(); }});
    ASSERT_NE(endpoint_, nullptr);
  }

  std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();
  std::unique_ptr<PrometheusMetricsObserver> observer_;
  std::unique_ptr<HttpEndpoint> endpoint_;
};

// Every metric docs/operations.md lists is on the page, typed, with b1's series and the recorded
// values.
TEST_F(HttpEndpointRegistryTest, MetricsPageHasEveryBrokerMetric) {
  const HttpResponse response = Get(*endpoint_, "/metrics");
  ASSERT_EQ(response.status, 200);
  EXPECT_EQ(Header(response, "content-type"), kMetricsContentType);
  for (absl::string_view name : metrics::kAllMetricNames) {
    EXPECT_TRUE(absl::StrContains(response.body, absl::StrCat("# TYPE ", name, " ")))
        << name << " missing from:\n"
        << response.body;
  }
  EXPECT_TRUE(
      absl::StrContains(response.body, "tlsbroker_pool_sockets{backend=\"b1\",state=\"leased\"} 3"))
      << response.body;
  EXPECT_TRUE(absl::StrContains(response.body, "tlsbroker_pool_waiters{backend=\"b1\"} 4"))
      << response.body;
}

// Returns the path of promtool, or empty when it is not installed.
std::string FindPromtool() {
  const char* path_env = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path_env == nullptr ? "" : path_env, ':')) {
    if (dir.empty()) continue;
    std::string candidate = absl::StrCat(dir, "/promtool");
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

// The page as served over HTTP passes Prometheus's own linter.
TEST_F(HttpEndpointRegistryTest, MetricsPagePassesPromtoolCheck) {
  const std::string promtool = FindPromtool();
  if (promtool.empty()) {
    GTEST_SKIP() << "promtool not installed (Debian package `prometheus`); lint check skipped";
  }
  const HttpResponse response = Get(*endpoint_, "/metrics");
  ASSERT_EQ(response.status, 200);
  ASSERT_TRUE(absl::StrContains(response.body, "tlsbroker_tls_handshakes_total"));

  const std::string input =
      absl::StrCat(::testing::TempDir(), "/tlsb_http_metrics_", ::getpid(), ".txt");
  const std::string output = input + ".out";
  {
    std::ofstream out(input);
    out << response.body;
    ASSERT_TRUE(out.good());
  }
  const int rc = std::system(
      absl::StrCat(promtool, " check metrics < ", input, " > ", output, " 2>&1").c_str());
  std::ifstream result(output);
  const std::string diagnostics((std::istreambuf_iterator<char>(result)),
                                std::istreambuf_iterator<char>());
  EXPECT_EQ(rc, 0) << diagnostics;
  std::remove(input.c_str());
  std::remove(output.c_str());
}

}  // namespace
}  // namespace tlsbroker
