#ifndef TESTS_SUPPORT_TLS_TEST_SERVER_H_
#define TESTS_SUPPORT_TLS_TEST_SERVER_H_

// A real multi-connection TLS server on 127.0.0.1 for tests: the backend the pool talks to.
// It counts full and resumed handshakes, records each client's certificate, and can be told
// to misbehave (stall, drop, answer garbage) while it runs.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "broker/common/mutex.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace tlsbroker::testutil {

enum class TlsTestServerMode {
  kEcho,         // writes back every byte it reads
  kFramedEcho,   // 4-byte big-endian length frames, the length counting its own 4 bytes;
                 // answers each request frame with one frame: response_prefix + transform(payload)
  kLineReverse,  // like `s_server -rev`: each '\n'-terminated line comes back reversed (a
                 // trailing '\r' stays at the end); a line starting with "CLOSE" hangs up
};

// How a backend may end a connection in the middle of a response (set_cut_response).
enum class CutResponse {
  kNone,
  kCloseNotify,  // the first half of the response, then an orderly TLS close (close_notify)
  kHalfClose,    // the first half, then shutdown(SHUT_WR): a TCP FIN without close_notify,
                 // while the backend keeps reading
};

struct TlsTestServerOptions {
  std::string cert_file;            // PEM; may be a full chain (leaf first)
  std::string key_file;             // PEM
  std::string chain_file;           // extra chain certificates (intermediates), optional
  std::string ca_file;              // trust for client certificates; empty = no client certificates
  bool require_client_cert = true;  // refuse clients without a valid certificate
  std::string crl_file;             // CRLs (PEM) checked against client certificates, optional
  int min_version = 0;              // e.g. TLS1_2_VERSION; 0 = library default
  int max_version = 0;              // e.g. TLS1_2_VERSION; 0 = highest
  std::string cipher_list;          // TLS <= 1.2 (SSL_CTX_set_cipher_list), optional
  std::string ciphersuites;         // TLS 1.3 (SSL_CTX_set_ciphersuites), optional
  int security_level = -1;          // -1 = library default (2 on Debian)
  bool session_tickets = true;      // stateless resumption (TLS 1.2 tickets, TLS 1.3 tickets)
  bool session_cache = true;        // stateful resumption (server-side session cache)
  // DER OCSP response stapled when a client asks for status (like s_server -status_file).
  std::string ocsp_response_file;
  TlsTestServerMode mode = TlsTestServerMode::kEcho;
  std::string response_prefix;  // kFramedEcho: prepended to each response payload
  // kFramedEcho: applied to each request payload (after which the prefix is prepended).
  std::function<std::string(absl::string_view)> transform;
  int port = 0;  // 0 = the kernel picks one at Start()
};

// Snapshot of the counters.
struct TlsTestServerStats {
  int64_t connections_accepted = 0;  // TCP connections accepted
  int64_t full_handshakes = 0;       // successful handshakes that did not resume
  int64_t resumed_handshakes = 0;    // successful handshakes that resumed a session
  int64_t handshake_failures = 0;    // SSL_accept failures (bad/missing client cert, ...)
  int64_t current_connections = 0;   // TCP connections open now (handshaken or not)
  int64_t requests = 0;              // request frames / lines / reads handled
  int64_t responses = 0;             // responses written (including garbage ones)
  int64_t idle_closes = 0;           // connections closed by close_idle_after
  int64_t bytes_in = 0;              // application bytes read
  int64_t bytes_out = 0;             // application bytes written
};

// What one successful handshake looked like.
struct TlsTestServerHandshake {
  std::string peer_subject;  // client certificate subject, RFC 2253; empty if none
  std::string version;       // "TLSv1.3"
  std::string cipher;        // "TLS_AES_256_GCM_SHA384"
  bool resumed = false;
};

// One listening socket, one accept thread, one thread per connection with blocking I/O (a
// test peer, not a product). Stop() never hangs on stalled connections: it shuts their
// sockets down.
//
// Counters move just after the event they count (a response is counted after its bytes are
// written), so a test that has just read a response should WaitFor() the counter it checks.
// A TCP connection closed before completing a handshake (e.g. a port probe) counts as a
// handshake failure.
//
// Thread-safe: every public method may be called from any thread while connections run;
// fault switches take effect for the next request (stall_handshake: for the next accepted
// connection).
class TlsTestServer final {
 public:
  // The PKI's server.crt/server.key, int.crt as chain, root.crt as client CA (alg "ec" or
  // "rsa"), client certificate required.
  static TlsTestServerOptions PkiOptions(absl::string_view alg);

  // Builds the TLS context and starts listening.
  static absl::StatusOr<std::unique_ptr<TlsTestServer>> Create(TlsTestServerOptions options);

  TlsTestServer(const TlsTestServer&) = delete;
  TlsTestServer& operator=(const TlsTestServer&) = delete;
  ~TlsTestServer();  // Stop()

  // The listening port (stays the same across Stop()/Start()).
  int port() const { return port_; }
  std::string address() const;  // "127.0.0.1:PORT"

  // Closes the listener and every connection (abruptly, no close_notify) and joins all
  // threads. Idempotent. Counters are kept.
  void Stop();
  // Listens again on the same port, which Stop() kept bound (without listening, so connects
  // are refused meanwhile) so that no other test can take it. No-op if running.
  absl::Status Start();
  bool running() const { return !stopping_; }

  // Drops every open connection abruptly (shutdown(2) of each socket), as a backend that
  // restarts or loses its network would; keeps listening.
  void CloseAllConnections();

  // Fault switches.
  void set_stall_handshake(bool on) { stall_handshake_ = on; }
  void set_stall_response(bool on) { stall_response_ = on; }
  // Closes (with close_notify) a connection that has read nothing for `idle`; zero = never.
  void set_close_idle_after(absl::Duration idle) {
    close_idle_after_ms_ = absl::ToInt64Milliseconds(idle);
  }
  // kFramedEcho: answers with a header declaring 1 byte (shorter than the header itself: an
  // impossible frame) followed by random bytes. Other modes: 16 random bytes.
  void set_garbage_response(bool on) { garbage_response_ = on; }
  // Answers with a frame header declaring 0x7fffffff bytes and a few payload bytes.
  void set_oversize_response(bool on) { oversize_response_ = on; }
  void set_response_delay(absl::Duration delay) {
    response_delay_ms_ = absl::ToInt64Milliseconds(delay);
  }
  // Sends each response as TLS records of `bytes` application bytes each (0 = as large as
  // OpenSSL makes them), all encrypted first and then written in one go: a legal but hostile
  // backend that makes the client process thousands of tiny records per read.
  void set_response_record_size(size_t bytes) { response_record_size_ = bytes; }
  // Answers each request twice (kFramedEcho: two whole response frames): a backend that breaks
  // the one-request-one-response rule.
  void set_extra_response(bool on) { extra_response_ = on; }
  // After each response, one unsolicited byte ('!') follows.
  void set_send_extra_bytes_after_response(bool on) { send_extra_byte_ = on; }
  // Ends the connection in the middle of each response frame (see CutResponse).
  void set_cut_response(CutResponse cut) { cut_response_ = cut; }

  // Counters.
  TlsTestServerStats stats() const;
  int64_t connections_accepted() const { return connections_accepted_; }
  int64_t full_handshakes() const { return full_handshakes_; }
  int64_t resumed_handshakes() const { return resumed_handshakes_; }
  int64_t total_handshakes() const { return full_handshakes_ + resumed_handshakes_; }
  int64_t handshake_failures() const { return handshake_failures_; }
  int64_t current_connections() const { return current_connections_; }
  int64_t bytes_in() const { return bytes_in_; }
  int64_t bytes_out() const { return bytes_out_; }
  // TLS 1.3 KeyUpdate messages received from clients.
  int64_t key_updates_received() const { return key_updates_received_; }

  // Successful handshakes in the order they completed.
  std::vector<TlsTestServerHandshake> handshakes() const;
  // Their peer subjects (RFC 2253, "" for no certificate), in the same order.
  std::vector<std::string> peer_subjects() const;

  // Blocks until `condition(stats())` holds or `timeout` passes; returns the last result.
  // Woken by every counter change, so no polling delay.
  bool WaitFor(const std::function<bool(const TlsTestServerStats&)>& condition,
               absl::Duration timeout) const;

 private:
  struct Connection;
  using SslCtxOwner = std::unique_ptr<SSL_CTX, void (*)(SSL_CTX*)>;

  TlsTestServer(TlsTestServerOptions options, SslCtxOwner ctx);

  static absl::StatusOr<SslCtxOwner> BuildContext(const TlsTestServerOptions& options);
  absl::Status Listen() ABSL_EXCLUSIVE_LOCKS_REQUIRED(lifecycle_mu_);
  void Reserve() ABSL_EXCLUSIVE_LOCKS_REQUIRED(lifecycle_mu_);
  static int StatusCallback(SSL* ssl, void* arg);
  void AcceptLoop(int listen_fd, int wake_fd);
  void ServeConnection(Connection* connection);
  void Serve(SSL* ssl, int fd);
  // Answers one request; false ends the connection.
  bool Respond(SSL* ssl, absl::string_view payload);
  bool WriteAll(SSL* ssl, absl::string_view bytes);
  bool WriteAsSmallRecords(SSL* ssl, absl::string_view bytes, size_t record_size);
  static void MessageCallback(int write_p, int version, int content_type, const void* buf,
                              size_t len, SSL* ssl, void* arg);
  // Sleeps up to `ms`; false if the server is stopping.
  bool DelayUnlessStopping(int64_t ms);
  void CloseConnection(Connection* connection);
  void ReapFinishedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Changed() const;

  const TlsTestServerOptions options_;
  const SslCtxOwner ctx_;
  int port_ = 0;

  std::atomic<bool> stall_handshake_{false};
  std::atomic<bool> stall_response_{false};
  std::atomic<int64_t> close_idle_after_ms_{0};
  std::atomic<bool> garbage_response_{false};
  std::atomic<bool> oversize_response_{false};
  std::atomic<int64_t> response_delay_ms_{0};
  std::atomic<bool> send_extra_byte_{false};
  std::atomic<CutResponse> cut_response_{CutResponse::kNone};
  std::atomic<size_t> response_record_size_{0};
  std::atomic<bool> extra_response_{false};
  std::atomic<int64_t> key_updates_received_{0};

  std::atomic<int64_t> connections_accepted_{0};
  std::atomic<int64_t> full_handshakes_{0};
  std::atomic<int64_t> resumed_handshakes_{0};
  std::atomic<int64_t> handshake_failures_{0};
  std::atomic<int64_t> current_connections_{0};
  std::atomic<int64_t> requests_{0};
  std::atomic<int64_t> responses_{0};
  std::atomic<int64_t> idle_closes_{0};
  std::atomic<int64_t> bytes_in_{0};
  std::atomic<int64_t> bytes_out_{0};

  std::atomic<bool> stopping_{true};

  // Serialises Start()/Stop(); taken before mu_.
  Mutex lifecycle_mu_;
  int listen_fd_ ABSL_GUARDED_BY(lifecycle_mu_) = -1;
  int wake_fd_ ABSL_GUARDED_BY(lifecycle_mu_) = -1;  // eventfd that wakes the accept loop
  // While stopped: a bound, non-listening socket that holds port_ (Reserve()).
  int reserve_fd_ ABSL_GUARDED_BY(lifecycle_mu_) = -1;
  std::thread accept_thread_ ABSL_GUARDED_BY(lifecycle_mu_);

  mutable Mutex mu_;
  std::list<std::unique_ptr<Connection>> connections_ ABSL_GUARDED_BY(mu_);
  std::vector<TlsTestServerHandshake> handshakes_ ABSL_GUARDED_BY(mu_);

  // Signalled on every counter change (WaitFor) and on Stop (response delays). Its own
  // mutex, never held with the others.
  mutable std::mutex wait_mu_;
  mutable std::condition_variable changed_;
  // Stapled OCSP response (DER), if any; read by the status callback.
  std::string ocsp_response_;
};

}  // namespace tlsbroker::testutil

#endif  // TESTS_SUPPORT_TLS_TEST_SERVER_H_
