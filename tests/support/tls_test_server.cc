#include "tests/support/tls_test_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_pki.h"

namespace tlsbroker::testutil {
namespace {

constexpr size_t kReadChunk = 16 * 1024;
// Frames larger than this are treated as a broken client, not buffered.
constexpr uint32_t kMaxRequestFrame = 64 * 1024 * 1024;
// How often a connection waiting for bytes re-reads close_idle_after, so a change made while
// it waits takes effect.
constexpr int kIdlePollMs = 50;

// Drains OpenSSL's error queue into one line for a Status message.
std::string OpenSslErrors() {
  std::string out;
  unsigned long code;
  while ((code = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "no OpenSSL error" : out;
}

absl::Status SslError(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(what, ": ", OpenSslErrors()));
}

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
using BioOwner = std::unique_ptr<BIO, BioDeleter>;
struct SslDeleter {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
using SslOwner = std::unique_ptr<SSL, SslDeleter>;

std::string NameToString(const X509_NAME* name) {
  BioOwner bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253) < 0) return "";
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

std::string FrameHeader(uint32_t length) {
  std::string header(4, '\0');
  header[0] = static_cast<char>((length >> 24) & 0xff);
  header[1] = static_cast<char>((length >> 16) & 0xff);
  header[2] = static_cast<char>((length >> 8) & 0xff);
  header[3] = static_cast<char>(length & 0xff);
  return header;
}

uint32_t ReadFrameHeader(absl::string_view bytes) {
  return (static_cast<uint32_t>(static_cast<uint8_t>(bytes[0])) << 24) |
         (static_cast<uint32_t>(static_cast<uint8_t>(bytes[1])) << 16) |
         (static_cast<uint32_t>(static_cast<uint8_t>(bytes[2])) << 8) |
         static_cast<uint32_t>(static_cast<uint8_t>(bytes[3]));
}

std::string RandomBytes(size_t n) {
  std::string bytes(n, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()), static_cast<int>(n));
  return bytes;
}

absl::Status LoadChainFile(SSL_CTX* ctx, const std::string& path) {
  BioOwner bio(BIO_new_file(path.c_str(), "r"));
  if (bio == nullptr) return SslError(absl::StrCat("cannot open chain file ", path));
  int added = 0;
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    // add0 takes ownership.
    if (SSL_CTX_add0_chain_cert(ctx, cert) != 1) {
      X509_free(cert);
      return SslError(absl::StrCat("cannot add chain cert from ", path));
    }
    ++added;
  }
  // The loop ends with a "no start line" error at end of file; that is not a failure.
  ERR_clear_error();
  if (added == 0) return absl::InvalidArgumentError(absl::StrCat("no certificate in ", path));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TlsTestServer::SslCtxOwner> TlsTestServer::BuildContext(
    const TlsTestServerOptions& options) {
  TlsTestServer::SslCtxOwner ctx(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
  if (ctx == nullptr) return SslError("SSL_CTX_new");
  SSL_CTX* c = ctx.get();
  if (SSL_CTX_use_certificate_chain_file(c, options.cert_file.c_str()) != 1) {
    return SslError(absl::StrCat("cannot load certificate ", options.cert_file));
  }
  if (SSL_CTX_use_PrivateKey_file(c, options.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return SslError(absl::StrCat("cannot load key ", options.key_file));
  }
  if (SSL_CTX_check_private_key(c) != 1) return SslError("key does not match certificate");
  if (!options.chain_file.empty()) {
    absl::Status status = LoadChainFile(c, options.chain_file);
    if (!status.ok()) return status;
  }
  if (!options.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(c, options.ca_file.c_str(), nullptr) != 1) {
      return SslError(absl::StrCat("cannot load CA file ", options.ca_file));
    }
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(options.ca_file.c_str());
    if (names != nullptr) SSL_CTX_set_client_CA_list(c, names);  // takes ownership
    SSL_CTX_set_verify(c,
                       options.require_client_cert
                           ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                           : SSL_VERIFY_PEER,
                       nullptr);
  }
  if (!options.crl_file.empty()) {
    X509_STORE* store = SSL_CTX_get_cert_store(c);
    X509_LOOKUP* lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());
    if (lookup == nullptr ||
        X509_load_crl_file(lookup, options.crl_file.c_str(), X509_FILETYPE_PEM) <= 0) {
      return SslError(absl::StrCat("cannot load CRL file ", options.crl_file));
    }
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
  }
  if (options.min_version != 0 && SSL_CTX_set_min_proto_version(c, options.min_version) != 1) {
    return SslError("bad min_version");
  }
  if (options.max_version != 0 && SSL_CTX_set_max_proto_version(c, options.max_version) != 1) {
    return SslError("bad max_version");
  }
  if (options.security_level >= 0) SSL_CTX_set_security_level(c, options.security_level);
  if (!options.cipher_list.empty() &&
      SSL_CTX_set_cipher_list(c, options.cipher_list.c_str()) != 1) {
    return SslError(absl::StrCat("bad cipher list ", options.cipher_list));
  }
  if (!options.ciphersuites.empty() &&
      SSL_CTX_set_ciphersuites(c, options.ciphersuites.c_str()) != 1) {
    return SslError(absl::StrCat("bad ciphersuites ", options.ciphersuites));
  }
  // Resumption with client verification needs a session ID context.
  static const unsigned char kContext[] = "tlsb-test-server";
  SSL_CTX_set_session_id_context(c, kContext, sizeof(kContext) - 1);
  SSL_CTX_set_session_cache_mode(
      c, options.session_cache ? SSL_SESS_CACHE_SERVER : SSL_SESS_CACHE_OFF);
  if (!options.session_tickets) {
    // TLS 1.3 then sends stateful tickets (session IDs) if the cache is on, none otherwise.
    SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
    if (!options.session_cache) SSL_CTX_set_num_tickets(c, 0);
  }
  return ctx;
}

// One accepted TCP connection. `fd` is closed only by the connection's own thread, under mu_,
// so Stop()/CloseAllConnections() can shutdown(2) it without racing a reuse of the number.
struct TlsTestServer::Connection {
  int fd = -1;
  std::thread thread;
  std::atomic<bool> finished{false};
};

TlsTestServerOptions TlsTestServer::PkiOptions(absl::string_view alg) {
  TlsTestServerOptions options;
  options.cert_file = PkiPath(alg, "server.crt");
  options.key_file = PkiPath(alg, "server.key");
  options.chain_file = PkiPath(alg, "int.crt");
  options.ca_file = PkiPath(alg, "root.crt");
  return options;
}

absl::StatusOr<std::unique_ptr<TlsTestServer>> TlsTestServer::Create(TlsTestServerOptions options) {
  // A client that hangs up while we write must not kill the test process.
  signal(SIGPIPE, SIG_IGN);
  absl::StatusOr<SslCtxOwner> ctx = BuildContext(options);
  if (!ctx.ok()) return ctx.status();
  std::string ocsp_response;
  if (!options.ocsp_response_file.empty()) {
    ocsp_response = ReadFileOrEmpty(options.ocsp_response_file);
    if (ocsp_response.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot read OCSP response ", options.ocsp_response_file));
    }
  }
  std::unique_ptr<TlsTestServer> server(new TlsTestServer(std::move(options), std::move(*ctx)));
  if (!ocsp_response.empty()) {
    server->ocsp_response_ = std::move(ocsp_response);
    SSL_CTX_set_tlsext_status_cb(server->ctx_.get(), &TlsTestServer::StatusCallback);
    SSL_CTX_set_tlsext_status_arg(server->ctx_.get(), server.get());
  }
  absl::Status started = server->Start();
  if (!started.ok()) return started;
  return server;
}

TlsTestServer::TlsTestServer(TlsTestServerOptions options, SslCtxOwner ctx)
    : options_(std::move(options)), ctx_(std::move(ctx)), port_(options_.port) {
  SSL_CTX_set_msg_callback(ctx_.get(), &TlsTestServer::MessageCallback);
  SSL_CTX_set_msg_callback_arg(ctx_.get(), this);
}

void TlsTestServer::MessageCallback(int write_p, int /*version*/, int content_type,
                                    const void* buf, size_t len, SSL* /*ssl*/, void* arg) {
  // Counts the TLS 1.3 KeyUpdate messages clients send (handshake type 24).
  if (write_p != 0 || content_type != SSL3_RT_HANDSHAKE || len < 1) return;
  if (static_cast<const unsigned char*>(buf)[0] != SSL3_MT_KEY_UPDATE) return;
  auto* self = static_cast<TlsTestServer*>(arg);
  ++self->key_updates_received_;
  self->Changed();
}

TlsTestServer::~TlsTestServer() {
  Stop();
  MutexLock lifecycle(&lifecycle_mu_);
  if (reserve_fd_ >= 0) close(reserve_fd_);
}

int TlsTestServer::StatusCallback(SSL* ssl, void* arg) {
  auto* self = static_cast<TlsTestServer*>(arg);
  const std::string& der = self->ocsp_response_;
  void* copy = OPENSSL_memdup(der.data(), der.size());
  if (copy == nullptr) return SSL_TLSEXT_ERR_NOACK;
  // The SSL takes ownership of `copy`.
  SSL_set_tlsext_status_ocsp_resp(ssl, static_cast<unsigned char*>(copy),
                                  static_cast<long>(der.size()));
  return SSL_TLSEXT_ERR_OK;
}

std::string TlsTestServer::address() const { return absl::StrCat("127.0.0.1:", port_); }

absl::Status TlsTestServer::Start() {
  MutexLock lock(&lifecycle_mu_);
  if (!stopping_) return absl::OkStatus();
  return Listen();
}

absl::Status TlsTestServer::Listen() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  int one = 1;
  // SO_REUSEADDR lets Start() after Stop() take the same port while old connections sit in
  // TIME_WAIT; SO_REUSEPORT lets it bind beside the reservation Stop() left (see Reserve()).
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port_));
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 128) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    absl::Status status = absl::UnavailableError(
        absl::StrCat("cannot listen on 127.0.0.1:", port_, ": ", strerror(errno)));
    close(fd);
    return status;
  }
  int wake = eventfd(0, EFD_CLOEXEC);
  if (wake < 0) {
    close(fd);
    return absl::InternalError(absl::StrCat("eventfd: ", strerror(errno)));
  }
  port_ = ntohs(addr.sin_port);
  // Listening again: the port is held by the listener itself from here on.
  if (reserve_fd_ >= 0) {
    close(reserve_fd_);
    reserve_fd_ = -1;
  }
  listen_fd_ = fd;
  wake_fd_ = wake;
  stopping_ = false;
  accept_thread_ = std::thread([this, fd, wake] { AcceptLoop(fd, wake); });
  return absl::OkStatus();
}

void TlsTestServer::Stop() {
  MutexLock lifecycle(&lifecycle_mu_);
  if (stopping_ && !accept_thread_.joinable()) return;
  stopping_ = true;
  uint64_t one = 1;
  ssize_t ignored = write(wake_fd_, &one, sizeof(one));
  (void)ignored;
  if (accept_thread_.joinable()) accept_thread_.join();
  Reserve();
  close(listen_fd_);
  close(wake_fd_);
  listen_fd_ = -1;
  wake_fd_ = -1;
  // No new connection can appear now: wake every connection thread and wait for them.
  std::list<std::unique_ptr<Connection>> connections;
  {
    MutexLock lock(&mu_);
    for (const auto& connection : connections_) {
      if (connection->fd >= 0) shutdown(connection->fd, SHUT_RDWR);
    }
    connections.swap(connections_);
  }
  Changed();  // wakes response delays
  for (const auto& connection : connections) connection->thread.join();
}

// A stopped backend must keep its port: under ctest -j another test's listener could take a
// port that is free for a moment, and the broker would then talk to the wrong server after the
// "restart". A bound socket that does not listen holds the port (the kernel picks it for no
// bind(port 0) and no outgoing connection) and refuses connections, as a stopped server does.
void TlsTestServer::Reserve() {
  if (reserve_fd_ >= 0) return;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port_));
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return;
  }
  reserve_fd_ = fd;
}

void TlsTestServer::CloseAllConnections() {
  MutexLock lock(&mu_);
  for (const auto& connection : connections_) {
    if (connection->fd >= 0) shutdown(connection->fd, SHUT_RDWR);
  }
}

void TlsTestServer::AcceptLoop(int listen_fd, int wake_fd) {
  while (true) {
    pollfd fds[2] = {{listen_fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0 || stopping_) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    ++connections_accepted_;
    ++current_connections_;
    {
      MutexLock lock(&mu_);
      ReapFinishedLocked();
      auto connection = std::make_unique<Connection>();
      connection->fd = fd;
      Connection* raw = connection.get();
      connections_.push_back(std::move(connection));
      raw->thread = std::thread([this, raw] { ServeConnection(raw); });
    }
    Changed();
  }
}

void TlsTestServer::ReapFinishedLocked() {
  for (auto it = connections_.begin(); it != connections_.end();) {
    if ((*it)->finished) {
      (*it)->thread.join();
      it = connections_.erase(it);
    } else {
      ++it;
    }
  }
}

void TlsTestServer::CloseConnection(Connection* connection) {
  {
    MutexLock lock(&mu_);
    close(connection->fd);
    connection->fd = -1;
  }
  --current_connections_;
  connection->finished = true;
  Changed();
}

void TlsTestServer::ServeConnection(Connection* connection) {
  const int fd = connection->fd;  // stable: only this thread closes it
  if (stall_handshake_) {
    // Take the ClientHello and never answer, until the client or Stop() gives up.
    char buf[4096];
    while (read(fd, buf, sizeof(buf)) > 0) {
    }
    CloseConnection(connection);
    return;
  }
  SslOwner ssl(SSL_new(ctx_.get()));
  if (ssl == nullptr || SSL_set_fd(ssl.get(), fd) != 1) {
    ++handshake_failures_;
    CloseConnection(connection);
    return;
  }
  ERR_clear_error();
  if (SSL_accept(ssl.get()) != 1) {
    ERR_clear_error();
    if (!stopping_) ++handshake_failures_;
    ssl.reset();
    CloseConnection(connection);
    return;
  }
  TlsTestServerHandshake record;
  if (const X509* peer = SSL_get0_peer_certificate(ssl.get())) {
    record.peer_subject = NameToString(X509_get_subject_name(peer));
  }
  record.version = SSL_get_version(ssl.get());
  record.cipher = SSL_get_cipher_name(ssl.get());
  record.resumed = SSL_session_reused(ssl.get()) == 1;
  {
    MutexLock lock(&mu_);
    handshakes_.push_back(record);
  }
  if (record.resumed) {
    ++resumed_handshakes_;
  } else {
    ++full_handshakes_;
  }
  Changed();
  Serve(ssl.get(), fd);
  ssl.reset();
  CloseConnection(connection);
}

void TlsTestServer::Serve(SSL* ssl, int fd) {
  std::string pending;
  std::string buf(kReadChunk, '\0');
  absl::Time last_read = absl::Now();
  while (!stopping_) {
    if (SSL_pending(ssl) == 0) {
      pollfd pfd = {fd, POLLIN, 0};
      int ready = poll(&pfd, 1, kIdlePollMs);
      if (ready < 0 && errno != EINTR) return;
      if (ready <= 0) {
        int64_t idle_ms = close_idle_after_ms_;
        if (idle_ms > 0 && absl::Now() - last_read >= absl::Milliseconds(idle_ms)) {
          // An orderly close, as a backend's idle timeout would do it.
          SSL_shutdown(ssl);
          ++idle_closes_;
          Changed();
          return;
        }
        continue;
      }
    }
    ERR_clear_error();
    int n = SSL_read(ssl, buf.data(), static_cast<int>(buf.size()));
    if (n <= 0) {
      int err = SSL_get_error(ssl, n);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) continue;
      if (err == SSL_ERROR_ZERO_RETURN) SSL_shutdown(ssl);  // answer the close_notify
      ERR_clear_error();
      return;
    }
    last_read = absl::Now();
    bytes_in_ += n;
    absl::string_view data(buf.data(), static_cast<size_t>(n));
    switch (options_.mode) {
      case TlsTestServerMode::kEcho:
        ++requests_;
        if (!Respond(ssl, data)) return;
        break;
      case TlsTestServerMode::kFramedEcho:
        pending.append(data.data(), data.size());
        while (pending.size() >= 4) {
          uint32_t length = ReadFrameHeader(pending);
          if (length < 4 || length > kMaxRequestFrame) return;  // not our protocol: hang up
          if (pending.size() < length) break;
          std::string payload = pending.substr(4, length - 4);
          pending.erase(0, length);
          ++requests_;
          if (!Respond(ssl, payload)) return;
        }
        break;
      case TlsTestServerMode::kLineReverse:
        pending.append(data.data(), data.size());
        for (size_t pos; (pos = pending.find('\n')) != std::string::npos;) {
          std::string line = pending.substr(0, pos);
          pending.erase(0, pos + 1);
          ++requests_;
          if (absl::string_view(line).substr(0, 5) == "CLOSE") return;
          if (!Respond(ssl, line)) return;
        }
        break;
    }
  }
}

bool TlsTestServer::Respond(SSL* ssl, absl::string_view payload) {
  Changed();                         // requests_ moved
  if (stall_response_) return true;  // keep reading, never answer
  int64_t delay_ms = response_delay_ms_;
  if (delay_ms > 0 && !DelayUnlessStopping(delay_ms)) return false;

  std::string response;
  const bool framed = options_.mode == TlsTestServerMode::kFramedEcho;
  if (oversize_response_) {
    response = FrameHeader(0x7fffffff) + "oversize";
  } else if (garbage_response_) {
    response = framed ? FrameHeader(1) + RandomBytes(12) : RandomBytes(16);
  } else {
    switch (options_.mode) {
      case TlsTestServerMode::kEcho:
        response = std::string(payload);
        break;
      case TlsTestServerMode::kFramedEcho: {
        std::string body = options_.response_prefix;
        body += options_.transform ? options_.transform(payload) : std::string(payload);
        response = FrameHeader(static_cast<uint32_t>(body.size() + 4)) + body;
        break;
      }
      case TlsTestServerMode::kLineReverse: {
        std::string line(payload);
        bool cr = !line.empty() && line.back() == '\r';
        if (cr) line.pop_back();
        std::reverse(line.begin(), line.end());
        response = line + (cr ? "\r\n" : "\n");
        break;
      }
    }
  }
  if (const CutResponse cut = cut_response_; cut != CutResponse::kNone) {
    // Half a frame reaches the client, then the connection ends mid-frame.
    if (!WriteAll(ssl, absl::string_view(response).substr(0, response.size() / 2))) return false;
    if (cut == CutResponse::kCloseNotify) {
      SSL_shutdown(ssl);
      return false;  // Serve() returns: the socket closes
    }
    shutdown(SSL_get_fd(ssl), SHUT_WR);
    return true;  // keeps reading until the client closes
  }
  if (send_extra_byte_) response += "!";
  // Both copies in one write, so the client finds the second one already there.
  if (extra_response_) response += response;
  if (!WriteAll(ssl, response)) return false;
  ++responses_;
  Changed();
  return true;
}

bool TlsTestServer::WriteAll(SSL* ssl, absl::string_view bytes) {
  const size_t record_size = response_record_size_;
  if (record_size > 0) return WriteAsSmallRecords(ssl, bytes, record_size);
  while (!bytes.empty()) {
    ERR_clear_error();
    int n = SSL_write(ssl, bytes.data(), static_cast<int>(bytes.size()));
    if (n <= 0) {
      int err = SSL_get_error(ssl, n);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) continue;
      ERR_clear_error();
      return false;
    }
    bytes_out_ += n;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool TlsTestServer::WriteAsSmallRecords(SSL* ssl, absl::string_view bytes, size_t record_size) {
  // Encrypt everything first, one SSL_write (so one TLS record) per `record_size` bytes, into
  // a memory BIO; then send all the ciphertext in one go, so the client finds thousands of
  // records waiting in one read.
  BIO* socket_bio = SSL_get_wbio(ssl);
  BIO_up_ref(socket_bio);
  BIO* memory = BIO_new(BIO_s_mem());
  SSL_set0_wbio(ssl, memory);  // Takes `memory`; drops the SSL's reference on socket_bio.
  bool ok = memory != nullptr;
  for (size_t offset = 0; ok && offset < bytes.size(); offset += record_size) {
    const size_t n = std::min(record_size, bytes.size() - offset);
    ok = SSL_write(ssl, bytes.data() + offset, static_cast<int>(n)) == static_cast<int>(n);
  }
  char* data = nullptr;
  const long len = ok ? BIO_get_mem_data(memory, &data) : 0;
  std::string ciphertext(data == nullptr ? "" : std::string(data, static_cast<size_t>(len)));
  SSL_set0_wbio(ssl, socket_bio);  // Gives our reference back; frees `memory`.
  ERR_clear_error();
  const int fd = SSL_get_fd(ssl);
  for (size_t sent = 0; ok && sent < ciphertext.size();) {
    ssize_t n = ::send(fd, ciphertext.data() + sent, ciphertext.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) sent += static_cast<size_t>(n);
  }
  if (ok) bytes_out_ += static_cast<int64_t>(bytes.size());
  return ok;
}

bool TlsTestServer::DelayUnlessStopping(int64_t ms) {
  std::unique_lock<std::mutex> lock(wait_mu_);
  changed_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return stopping_.load(); });
  return !stopping_;
}

void TlsTestServer::Changed() const {
  { std::lock_guard<std::mutex> lock(wait_mu_); }
  changed_.notify_all();
}

TlsTestServerStats TlsTestServer::stats() const {
  TlsTestServerStats s;
  s.connections_accepted = connections_accepted_;
  s.full_handshakes = full_handshakes_;
  s.resumed_handshakes = resumed_handshakes_;
  s.handshake_failures = handshake_failures_;
  s.current_connections = current_connections_;
  s.requests = requests_;
  s.responses = responses_;
  s.idle_closes = idle_closes_;
  s.bytes_in = bytes_in_;
  s.bytes_out = bytes_out_;
  return s;
}

std::vector<TlsTestServerHandshake> TlsTestServer::handshakes() const {
  MutexLock lock(&mu_);
  return handshakes_;
}

std::vector<std::string> TlsTestServer::peer_subjects() const {
  MutexLock lock(&mu_);
  std::vector<std::string> subjects;
  subjects.reserve(handshakes_.size());
  for (const auto& h : handshakes_) subjects.push_back(h.peer_subject);
  return subjects;
}

bool TlsTestServer::WaitFor(const std::function<bool(const TlsTestServerStats&)>& condition,
                            absl::Duration timeout) const {
  std::unique_lock<std::mutex> lock(wait_mu_);
  return changed_.wait_for(lock, absl::ToChronoMilliseconds(timeout),
                           [&] { return condition(stats()); });
}

}  // namespace tlsbroker::testutil
