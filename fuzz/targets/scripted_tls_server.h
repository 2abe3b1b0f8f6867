#ifndef FUZZ_TARGETS_SCRIPTED_TLS_SERVER_H_
#define FUZZ_TARGETS_SCRIPTED_TLS_SERVER_H_

// A real TLS 1.3 server on 127.0.0.1 whose answers are scripted byte for byte, for the
// backend_bytes fuzz target: it answers each request frame with exactly the application bytes,
// TLS record sizes, TCP write sizes, KeyUpdate and connection end that the current script
// names. The broker's TlsSocket reads its fd itself (SSL_set_fd), so the read path can only be
// driven by a peer on a real socket; this is that peer.
//
// Requests are 4-byte big-endian length frames (the length counting itself) of 8 bytes: the
// big-endian id of the script they ask for. A request for any other id than the armed one is
// stale (a request of an earlier input): the server drops that connection without answering.
//
// One accept thread serves one connection at a time with blocking I/O. Thread-safe: Arm and
// Finish may be called from any one thread while the server thread runs.

#include <openssl/ssl.h>

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fuzz/targets/throwaway_pki.h"

namespace tlsbroker::fuzz {

struct BackendScript {
  // What the server does once the answer is sent.
  enum class After {
    kKeepOpen,       // Waits for the next request on the same connection.
    kCloseNotify,    // Sends close_notify, then closes the socket.
    kCloseSilently,  // Closes the socket without close_notify (a TLS-level truncation).
    kReset,          // Closes with SO_LINGER 0: a TCP RST, which may discard unread bytes.
  };
  uint64_t id = 0;
  std::string bytes;  // Application bytes of the answer; anything, framed or not.
  // TLS record plaintext sizes (each 1..16384), used in turn and wrapping around; the last
  // record takes what is left. Empty: 16384-byte records.
  std::vector<uint16_t> record_sizes;
  // TCP write sizes, used in turn and wrapping around. Empty: one write of everything. Every
  // record is encrypted before the first byte is sent, as by a backend that batches its output.
  std::vector<uint32_t> chunk_sizes;
  int key_update_before_record = -1;  // -1: none.
  bool key_update_requested = false;  // Asks the broker to update its keys too.
  After after = After::kKeepOpen;
};

class ScriptedTlsServer {
 public:
  // Listens on 127.0.0.1 (a free port) and starts the accept thread, which runs until Stop().
  // Never destroyed: the server is meant to be a process-lifetime static.
  static absl::StatusOr<ScriptedTlsServer*> StartForever(const ThrowawayPki& pki);
  // Ends the accept thread (wakes it from accept or a blocking read) and joins it. Called at
  // exit before OpenSSL's own exit handler frees its global state, which a thread still inside
  // SSL_accept or SSL_read would then touch. Idempotent.
  void Stop();

  int port() const { return port_; }

  // Makes `script` the answer to the next request carrying script.id.
  void Arm(BackendScript script);
  // Ends the exchange of `id`: waits (up to `timeout`) until its answer, if the server has
  // begun one, is fully sent and the connection end done, then disarms it. False on timeout.
  bool Finish(uint64_t id, absl::Duration timeout);

 private:
  enum class State { kIdle, kArmed, kAnswering };
  ScriptedTlsServer(SSL_CTX* ctx, int listen_fd, int port)
      : ctx_(ctx), listen_fd_(listen_fd), port_(port) {}
  void Run();
  void Serve(int fd);
  // Reads one request frame; its script id, or 0 when the connection ended or broke framing.
  uint64_t ReadRequest(SSL* ssl);
  // Sends the answer; false when the connection is to be closed (the script ends it, with
  // SO_LINGER already set for a reset, or it broke).
  bool Answer(SSL* ssl, BIO* socket_bio, int fd, const BackendScript& script);
  void CloseConnection(int fd);
  // After a graceful end (FIN sent): reads and discards until the broker closes its side.
  void DrainUntilPeerCloses(int fd);

  SSL_CTX* const ctx_;
  const int listen_fd_;
  const int port_;
  std::thread thread_;

  std::mutex mu_;
  std::condition_variable cv_;
  State state_ = State::kIdle;  // Guarded by mu_.
  BackendScript script_;        // Guarded by mu_.
  bool stopping_ = false;       // Guarded by mu_.
  int connection_fd_ = -1;      // Guarded by mu_. The connection being served, for Stop().
};

}  // namespace tlsbroker::fuzz

#endif  // FUZZ_TARGETS_SCRIPTED_TLS_SERVER_H_
