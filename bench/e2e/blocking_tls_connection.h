#ifndef BENCH_E2E_BLOCKING_TLS_CONNECTION_H_
#define BENCH_E2E_BLOCKING_TLS_CONNECTION_H_

// A client TLS connection with blocking I/O, for the benchmark's own clients and baselines
// (tlsb-bench-direct, and tlsb-bench-grpc-echo's forwarding mode): the simplest, cheapest way
// to talk to the TLS backend, so that it is a floor the broker is measured against.

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "broker/tls/openssl_ptr.h"

namespace tlsbroker::bench {

// The OpenSSL error queue as one line (and clears it).
std::string DrainErrors();

// A client context that verifies the server against `ca_file` and presents `cert_file`.
absl::StatusOr<SslCtxPtr> MakeClientContext(const std::string& ca_file,
                                            const std::string& cert_file,
                                            const std::string& key_file);

// Thread-compatible: used by one thread at a time.
class BlockingTlsConnection {
 public:
  BlockingTlsConnection() = default;
  ~BlockingTlsConnection() { Close(); }
  BlockingTlsConnection(const BlockingTlsConnection&) = delete;
  BlockingTlsConnection& operator=(const BlockingTlsConnection&) = delete;

  // Connects to 127.0.0.1:`port` (the only host the benchmark uses) and handshakes,
  // resuming `session` when given.
  absl::Status Open(SSL_CTX* ctx, const std::string& host, int port,
                    const std::string& server_name, SSL_SESSION* session);
  absl::Status WriteAll(absl::string_view bytes);
  // Appends what one SSL_read returns to `out`.
  absl::Status ReadSome(std::string* out);
  // Reads one length-field frame (4-byte big-endian length counting itself).
  absl::StatusOr<std::string> ReadFrame();

  SslSessionPtr TakeSession() { return SslSessionPtr(SSL_get1_session(ssl_.get())); }
  bool resumed() const { return SSL_session_reused(ssl_.get()) == 1; }
  bool open() const { return ssl_ != nullptr; }
  // Sends close_notify (without waiting for the peer's) and closes the socket.
  void Close();

 private:
  int fd_ = -1;
  SslPtr ssl_;
};

}  // namespace tlsbroker::bench

#endif  // BENCH_E2E_BLOCKING_TLS_CONNECTION_H_
