// Acquire + release of an idle pooled socket, against a real TLS backend (the project's test
// server), with 1, 2, 8 and 64 caller threads; acquire by client ID; and, as the baseline in
// the same run, one round trip through an I/O loop (post a task, wait for it), which is the
// least any pool whose sockets live on event loops must pay.

#include <benchmark/benchmark.h>

#include <future>
#include <memory>

#include <asio/post.hpp>

#include "absl/strings/str_cat.h"
#include "broker/common/log.h"
#include "broker/io/event_loops.h"
#include "broker/pool/client_id.h"
#include "broker/pool/socket_pool.h"
#include "tests/broker/pool/pool_test_util.h"
#include "tests/support/tls_test_server.h"

namespace tlsbroker {
namespace {

// One backend and pool shared by every benchmark in the process (built on first use).
struct Fixture {
  Fixture() {
    // The per-lease audit line is not what these benchmarks measure.
    SetMinLogLevel(LogLevel::kWarning);
    auto options = testutil::TlsTestServer::PkiOptions("ec");
    options.mode = testutil::TlsTestServerMode::kFramedEcho;
    server = *testutil::TlsTestServer::Create(options);
    loops = std::make_unique<EventLoops>(2);
    BackendOptions b = testutil::FramedBackend(server->port());
    b.pool.max_sockets = 64;
    b.pool.min_idle = 64;
    b.pool.max_waiters = 100000;
    pool = *SocketPool::Create(b, loops.get());
    pool->Start();
    testutil::WaitUntil([&] { return pool->Stats().idle == 64; }, absl::Seconds(30));
  }
  std::unique_ptr<testutil::TlsTestServer> server;
  std::unique_ptr<EventLoops> loops;
  std::shared_ptr<SocketPool> pool;
};

Fixture& GetFixture() {
  static Fixture* fixture = new Fixture();  // Leaked on purpose: lives until exit.
  return *fixture;
}

void BM_LoopRoundTrip(benchmark::State& state) {
  Fixture& f = GetFixture();
  for (auto _ : state) {
    std::promise<void> done;
    asio::post(f.loops->Next(), [&done] { done.set_value(); });
    done.get_future().wait();
  }
}
BENCHMARK(BM_LoopRoundTrip)->Threads(1)->Threads(2)->Threads(8)->Threads(64)->UseRealTime();

void BM_AcquireReleaseIdle(benchmark::State& state) {
  Fixture& f = GetFixture();
  for (auto _ : state) {
    auto lease = testutil::AcquireSync(*f.pool);
    if (!lease.ok()) {
      state.SkipWithError(std::string(lease.status().message()).c_str());
      break;
    }
    benchmark::DoNotOptimize(lease->info().socket_id);
  }  // Each destroyed lease goes back to the pool (a clean release, checked on the loop).
}
BENCHMARK(BM_AcquireReleaseIdle)->Threads(1)->Threads(2)->Threads(8)->Threads(64)->UseRealTime();

void BM_AcquireByClientId(benchmark::State& state) {
  Fixture& f = GetFixture();
  // Each thread asks for its own slot, so threads never wait on each other's socket.
  std::string id = FormatClientId(f.pool->options()->client_id, state.thread_index() + 1);
  for (auto _ : state) {
    auto lease = testutil::AcquireSync(*f.pool, id);
    if (!lease.ok()) {
      state.SkipWithError(std::string(lease.status().message()).c_str());
      break;
    }
    benchmark::DoNotOptimize(lease->info().socket_id);
  }
}
BENCHMARK(BM_AcquireByClientId)->Threads(1)->Threads(8)->UseRealTime();

}  // namespace
}  // namespace tlsbroker
