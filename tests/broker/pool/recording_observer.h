#ifndef TESTS_BROKER_POOL_RECORDING_OBSERVER_H_
#define TESTS_BROKER_POOL_RECORDING_OBSERVER_H_

// A BackendObserver that remembers what it was told, for assertions. Thread-safe.

#include <atomic>
#include <map>
#include <string>

#include "broker/common/mutex.h"
#include "broker/metrics/pool_observer.h"

namespace tlsbroker::testutil {

class RecordingObserver final : public BackendObserver {
 public:
  // BackendObserver
  void OnHandshake(absl::string_view result, bool resumed, absl::Duration) override {
    Count(std::string("handshake:") + std::string(result) + (resumed ? ":resumed" : ":full"));
  }
  void OnCertVerifyFailure(absl::string_view reason) override {
    Count("verify_failure:" + std::string(reason));
  }
  void OnSocketStates(int, int, int, int) override {}
  void OnWaiters(int) override {}
  void OnLeaseGranted(absl::Duration, bool reused) override {
    Count(reused ? "lease:reused" : "lease:new");
  }
  void OnLeaseRefused(absl::StatusCode code) override {
    Count("refused:" + absl::StatusCodeToString(code));
  }
  void OnLeaseEnded(absl::string_view result, absl::Duration) override {
    Count("ended:" + std::string(result));
  }
  void OnSocketClosed(absl::string_view reason) override { Count("closed:" + std::string(reason)); }
  void OnBytes(absl::string_view, uint64_t) override {}
  void OnCall(absl::string_view, absl::Duration) override {}
  void OnPeerCertNotAfter(absl::Time) override {}
  void OnClientCertNotAfter(absl::Time) override {}
  void OnEnullSockets(int) override {}
  // Every TLS lifecycle tick reports the CRL state: "crl_report" counts ticks, for tests that
  // must wait until a tick has run rather than sleep.
  void OnCrlNextUpdate(absl::Time, bool stale) override {
    stale_.store(stale ? 1 : 0);
    Count("crl_report");
  }
  void OnCrlReloadFailure() override { Count("crl_reload_failure"); }
  void OnCredentialReloadFailure(absl::string_view file) override {
    Count("credential_reload_failure:" + std::string(file));
  }
  // -1 until reported; then 0 or 1.
  int crl_stale() const { return stale_.load(); }
  void OnOcspResponse(absl::string_view source, absl::string_view status) override {
    Count("ocsp:" + std::string(source) + ":" + std::string(status));
  }
  void OnConnectAttempt(absl::string_view address, bool ok) override {
    Count("connect:" + std::string(address) + (ok ? ":ok" : ":failed"));
  }

  int Get(const std::string& key) const {
    MutexLock lock(&mu_);
    auto it = counts_.find(key);
    return it == counts_.end() ? 0 : it->second;
  }
  // Sum over keys starting with `prefix`.
  int Sum(const std::string& prefix) const {
    MutexLock lock(&mu_);
    int sum = 0;
    for (const auto& [k, v] : counts_) {
      if (k.compare(0, prefix.size(), prefix) == 0) sum += v;
    }
    return sum;
  }

 private:
  void Count(const std::string& key) {
    MutexLock lock(&mu_);
    ++counts_[key];
  }
  mutable Mutex mu_;
  std::map<std::string, int> counts_ ABSL_GUARDED_BY(mu_);
  std::atomic<int> stale_{-1};
};

}  // namespace tlsbroker::testutil

#endif  // TESTS_BROKER_POOL_RECORDING_OBSERVER_H_
