#ifndef TESTS_BROKER_POOL_POOL_TEST_UTIL_H_
#define TESTS_BROKER_POOL_POOL_TEST_UTIL_H_

// Helpers for driving a SocketPool synchronously from a test thread against a real backend.

#include <functional>
#include <future>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "broker/config/options.h"
#include "broker/framing/frame_encoder.h"
#include "broker/pool/socket_pool.h"
#include "tests/support/test_pki.h"

namespace tlsbroker::testutil {

// A backend on 127.0.0.1:`port` with the test PKI (mutual TLS) and the test server's framing
// (4-byte big-endian length that counts its own 4 bytes).
inline BackendOptions FramedBackend(int port, absl::string_view alg = "ec") {
  BackendOptions b;
  b.name = "test-backend";
  b.address = "127.0.0.1:" + std::to_string(port);
  b.host = "127.0.0.1";
  b.port = static_cast<uint16_t>(port);
  b.server_name = "localhost";
  b.tls.ca_file = PkiPath(alg, "root.crt");
  b.tls.cert_file = PkiPath(alg, "client.fullchain.pem");
  b.tls.key_file = PkiPath(alg, "client.key");
  b.pool.max_sockets = 4;
  b.pool.connect_timeout = absl::Seconds(2);
  b.pool.handshake_timeout = absl::Seconds(2);
  b.pool.backoff_initial = absl::Milliseconds(50);
  b.pool.backoff_max = absl::Milliseconds(200);
  b.client_id.prefix = "TLSB";
  b.client_id.width = 8;
  b.framing.kind = FramingOptions::Kind::kLengthField;
  b.framing.length_field.offset = 0;
  b.framing.length_field.size = 4;
  b.framing.length_field.big_endian = true;
  b.framing.length_field.adjustment = -4;
  b.framing.max_frame_bytes = 1 << 20;
  return b;
}

inline absl::StatusOr<Lease> AcquireSync(SocketPool& pool, std::string client_id = "",
                                         absl::Duration timeout = absl::Seconds(5)) {
  std::promise<absl::StatusOr<Lease>> promise;
  auto future = promise.get_future();
  SocketPool::AcquireRequest request;
  request.client_id = std::move(client_id);
  request.deadline = absl::Now() + timeout;
  request.caller = "test";
  pool.Acquire(std::move(request),
               [&promise](absl::StatusOr<Lease> lease) { promise.set_value(std::move(lease)); });
  return future.get();
}

inline absl::Status WriteSync(Lease& lease, std::string bytes) {
  std::promise<absl::Status> promise;
  auto future = promise.get_future();
  lease.Write(std::move(bytes), [&promise](absl::Status s) { promise.set_value(s); });
  return future.get();
}

inline absl::StatusOr<std::string> ReadFrameSync(Lease& lease) {
  std::promise<absl::StatusOr<std::string>> promise;
  auto future = promise.get_future();
  lease.ReadFrame([&promise](absl::StatusOr<std::string> s) { promise.set_value(std::move(s)); });
  return future.get();
}

inline absl::StatusOr<std::string> ReadSync(Lease& lease, size_t max) {
  std::promise<absl::StatusOr<std::string>> promise;
  auto future = promise.get_future();
  lease.Read(max, [&promise](absl::StatusOr<std::string> s) { promise.set_value(std::move(s)); });
  return future.get();
}

// The 4-byte-length frame for `payload`.
inline std::string Frame(absl::string_view payload) {
  std::string out(4, '\0');
  uint32_t len = static_cast<uint32_t>(payload.size() + 4);
  out[0] = static_cast<char>(len >> 24);
  out[1] = static_cast<char>(len >> 16);
  out[2] = static_cast<char>(len >> 8);
  out[3] = static_cast<char>(len);
  out.append(payload.data(), payload.size());
  return out;
}

// Sends one request frame and returns the response frame's payload.
inline absl::StatusOr<std::string> RoundTrip(Lease& lease, absl::string_view payload) {
  absl::Status w = WriteSync(lease, Frame(payload));
  if (!w.ok()) return w;
  auto frame = ReadFrameSync(lease);
  if (!frame.ok()) return frame.status();
  return frame->substr(4);
}

// Polls `condition` until it holds or `timeout` passes.
inline bool WaitUntil(const std::function<bool()>& condition,
                      absl::Duration timeout = absl::Seconds(5)) {
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return condition();
}

}  // namespace tlsbroker::testutil

#endif  // TESTS_BROKER_POOL_POOL_TEST_UTIL_H_
