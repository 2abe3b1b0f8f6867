#include "fuzz/targets/scripted_tls_server.h"

#include <arpa/inet.h>
#include <poll.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <thread>
#include <utility>

namespace tlsbroker::fuzz {
namespace {

constexpr size_t kMaxRecord = 16384;  // TLS's largest record plaintext.

// Writes all of `data` to the blocking socket; false when the peer is gone.
bool SendAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    // MSG_NOSIGNAL: a broker that dropped the connection must not kill the process.
    const ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

absl::StatusOr<ScriptedTlsServer*> ScriptedTlsServer::StartForever(const ThrowawayPki& pki) {
  // SSL_accept, SSL_read and SSL_shutdown write to the socket with write(2), and the broker's
  // own sockets do the same; a peer that already closed must give EPIPE, not end the process
  // (the broker's main ignores SIGPIPE for the same reason).
  std::signal(SIGPIPE, SIG_IGN);
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) return absl::InternalError("SSL_CTX_new failed");
  bool ok = SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) == 1 &&  // KeyUpdate is 1.3.
            SSL_CTX_use_certificate(ctx, pki.server_cert()) == 1 &&
            SSL_CTX_use_PrivateKey(ctx, pki.server_key()) == 1 &&
            SSL_CTX_check_private_key(ctx) == 1 &&
            X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), pki.root_cert()) == 1 &&
            SSL_CTX_add_client_CA(ctx, pki.root_cert()) == 1;
  if (!ok) {
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return absl::InternalError("cannot set up the server's SSL_CTX");
  }
  // Mutual TLS, as the broker's backends require.
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  // The broker resumes sessions; with client certificates, OpenSSL refuses to resume (an
  // internal_error alert) unless the sessions are tied to a context.
  static const unsigned char kSessionContext[] = "tlsb-fuzz-backend";
  SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof(kSessionContext) - 1);

  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(fd, 16) != 0 || getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (fd >= 0) close(fd);
    SSL_CTX_free(ctx);
    return absl::InternalError("cannot listen on 127.0.0.1");
  }
  // Lives until the process exits: the accept thread blocks in accept() or SSL_read() and no
  // fuzz driver has a hook to stop it, so neither it nor the server is ever torn down.
  auto* server = new ScriptedTlsServer(ctx, fd, ntohs(addr.sin_port));
  server->thread_ = std::thread([server] { server->Run(); });
  return server;
}

void ScriptedTlsServer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    // shutdown(2), not close(2): it wakes a thread blocked on the fd, and the fd number cannot
    // be reused under it.
    if (connection_fd_ >= 0) shutdown(connection_fd_, SHUT_RDWR);
  }
  shutdown(listen_fd_, SHUT_RDWR);
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ScriptedTlsServer::Arm(BackendScript script) {
  std::lock_guard<std::mutex> lock(mu_);
  script_ = std::move(script);
  state_ = State::kArmed;
}

bool ScriptedTlsServer::Finish(uint64_t id, absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  const bool done = cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout), [this, id] {
    return state_ != State::kAnswering || script_.id != id;
  });
  if (!done) return false;
  // Never asked for (the lease failed before its request reached us): a late request for it
  // now finds nothing armed and is treated as stale.
  if (state_ == State::kArmed && script_.id == id) state_ = State::kIdle;
  return true;
}

void ScriptedTlsServer::Run() {
  for (;;) {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) {
        if (fd >= 0) close(fd);
        return;
      }
      connection_fd_ = fd;
    }
    if (fd < 0) continue;
    Serve(fd);
  }
}

void ScriptedTlsServer::CloseConnection(int fd) {
  {
    // Forgotten before it is closed, so Stop never shuts down a reused fd number.
    std::lock_guard<std::mutex> lock(mu_);
    connection_fd_ = -1;
  }
  // close(2) with unread bytes in the receive queue sends a TCP reset instead of a FIN, and a
  // reset may destroy the answer before the broker read it. The broker may well have sent
  // bytes we never read (a KeyUpdate: it rekeys every rekey_after_bytes), so read what has
  // arrived first. A scripted reset sets SO_LINGER {1, 0} and resets regardless.
  char sink[4096];
  while (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0) {
  }
  close(fd);
}

void ScriptedTlsServer::DrainUntilPeerCloses(int fd) {
  // Bounded so a broker that never closes cannot stall the next connection for long; Stop()
  // shuts the fd down, which ends the wait at once.
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  char sink[4096];
  for (;;) {
    const int64_t left_ms = absl::ToInt64Milliseconds(give_up - absl::Now());
    if (left_ms <= 0) return;
    pollfd p{fd, POLLIN, 0};
    const int ready = poll(&p, 1, static_cast<int>(left_ms));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return;
    const ssize_t n = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
    if (n == 0) return;  // The broker closed its side.
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return;
  }
}

void ScriptedTlsServer::Serve(int fd) {
  // Each scripted TCP write goes out as its own segment instead of being coalesced.
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  SSL* ssl = SSL_new(ctx_);
  BIO* socket_bio = ssl != nullptr ? BIO_new_socket(fd, BIO_NOCLOSE) : nullptr;
  bool open = socket_bio != nullptr;
  if (open) {
    SSL_set_bio(ssl, socket_bio, socket_bio);  // Two references: one as rbio, one as wbio.
    open = SSL_accept(ssl) == 1;
  }
  while (open) {
    const uint64_t id = ReadRequest(ssl);
    if (id == 0) break;
    BackendScript script;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (state_ != State::kArmed || script_.id != id) break;  // Stale: drop the connection.
      state_ = State::kAnswering;
      script = script_;
    }
    open = Answer(ssl, socket_bio, fd, script);
    // The connection end is part of the answer: sent before the exchange is reported over.
    // A scripted reset closes at once. Any other end is a FIN (after close_notify if
    // scripted) with the socket kept open for reading until the broker closes its side:
    // the broker may still send KeyUpdates while it reads the answer (it rekeys every
    // rekey_after_bytes), and such bytes reaching a closed socket draw a TCP reset, which can
    // destroy answer bytes the broker has not read yet.
    const bool graceful = !open && script.after != BackendScript::After::kReset;
    if (graceful) {
      shutdown(fd, SHUT_WR);
    } else if (!open) {
      CloseConnection(fd);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (script_.id == id) state_ = State::kIdle;
    }
    cv_.notify_all();
    if (!open) {
      if (graceful) {
        DrainUntilPeerCloses(fd);
        CloseConnection(fd);
      }
      SSL_free(ssl);
      ERR_clear_error();
      return;
    }
  }
  SSL_free(ssl);  // Frees socket_bio; BIO_NOCLOSE leaves the fd to us.
  ERR_clear_error();
  CloseConnection(fd);
}

uint64_t ScriptedTlsServer::ReadRequest(SSL* ssl) {
  unsigned char frame[12];
  size_t got = 0;
  while (got < sizeof(frame)) {
    const int n = SSL_read(ssl, frame + got, static_cast<int>(sizeof(frame) - got));
    if (n <= 0) return 0;
    got += static_cast<size_t>(n);
  }
  uint64_t length = 0;
  for (int i = 0; i < 4; ++i) length = length << 8 | frame[i];
  if (length != sizeof(frame)) return 0;
  uint64_t id = 0;
  for (int i = 4; i < 12; ++i) id = id << 8 | frame[i];
  return id;
}

bool ScriptedTlsServer::Answer(SSL* ssl, BIO* socket_bio, int fd, const BackendScript& script) {
  // Encrypt every record into memory first (a memory BIO swapped in as the write BIO, one
  // SSL_write per record), so the TCP write sizes are independent of the record sizes and a
  // reader may find many records waiting at once: the case that once recursed per record.
  BIO* memory = BIO_new(BIO_s_mem());
  if (memory == nullptr) return false;
  BIO_up_ref(socket_bio);  // SSL_set0_wbio frees one reference; the rbio keeps its own.
  SSL_set0_wbio(ssl, memory);
  size_t pos = 0;
  size_t record = 0;
  bool ok = true;
  while (ok && pos < script.bytes.size()) {
    if (static_cast<int>(record) == script.key_update_before_record) {
      // Sent ahead of the next record's data.
      SSL_key_update(ssl, script.key_update_requested ? SSL_KEY_UPDATE_REQUESTED
                                                      : SSL_KEY_UPDATE_NOT_REQUESTED);
    }
    size_t size = kMaxRecord;
    if (!script.record_sizes.empty()) {
      size = script.record_sizes[record % script.record_sizes.size()];
    }
    size = std::clamp<size_t>(size, 1, kMaxRecord);
    size = std::min(size, script.bytes.size() - pos);
    ok = SSL_write(ssl, script.bytes.data() + pos, static_cast<int>(size)) ==
         static_cast<int>(size);
    pos += size;
    ++record;
  }
  char* data = nullptr;
  const long encrypted = BIO_get_mem_data(memory, &data);
  const std::string ciphertext(data, encrypted > 0 ? static_cast<size_t>(encrypted) : 0);
  SSL_set0_wbio(ssl, socket_bio);  // Frees the memory BIO.
  ERR_clear_error();

  size_t sent = 0;
  size_t chunk = 0;
  while (ok && sent < ciphertext.size()) {
    size_t size = ciphertext.size() - sent;
    if (!script.chunk_sizes.empty()) {
      size = std::min<size_t>(size, std::max<uint32_t>(
                                        1, script.chunk_sizes[chunk % script.chunk_sizes.size()]));
    }
    ok = SendAll(fd, ciphertext.data() + sent, size);
    sent += size;
    ++chunk;
  }
  using After = BackendScript::After;
  if (ok && script.after == After::kKeepOpen) return true;
  if (ok && script.after == After::kCloseNotify) {
    SSL_shutdown(ssl);  // One call: sends close_notify without waiting for the broker's.
  } else if (script.after == After::kReset) {
    const linger reset{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
  }
  ERR_clear_error();
  return false;
}

}  // namespace tlsbroker::fuzz
