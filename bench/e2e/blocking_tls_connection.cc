#include "bench/e2e/blocking_tls_connection.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "tools/load/payload.h"

namespace tlsbroker::bench {

std::string DrainErrors() {
  std::string out;
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    absl::StrAppend(&out, out.empty() ? "" : "; ", buf);
  }
  return out.empty() ? "unknown TLS error" : out;
}

absl::StatusOr<SslCtxPtr> MakeClientContext(const std::string& ca_file,
                                            const std::string& cert_file,
                                            const std::string& key_file) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (ctx == nullptr) return absl::InternalError(DrainErrors());
  if (SSL_CTX_load_verify_locations(ctx.get(), ca_file.c_str(), nullptr) != 1 ||
      SSL_CTX_use_certificate_chain_file(ctx.get(), cert_file.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx.get(), key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("credentials: ", DrainErrors()));
  }
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  // Sessions are kept by hand (mode resume) so that mode full never resumes by accident.
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  // Like the broker: release read/write buffers of idle connections.
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
  return ctx;
}

absl::Status BlockingTlsConnection::Open(SSL_CTX* ctx, const std::string& host, int port,
                                         const std::string& server_name, SSL_SESSION* session) {
  Close();
  fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return absl::UnavailableError(absl::StrCat("socket: ", strerror(errno)));
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (host != "127.0.0.1" && host != "localhost") {
    return absl::InvalidArgumentError("only 127.0.0.1 is supported");
  }
  if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return absl::UnavailableError(absl::StrCat("connect: ", strerror(errno)));
  }
  ssl_.reset(SSL_new(ctx));
  if (ssl_ == nullptr) return absl::InternalError(DrainErrors());
  SSL_set_fd(ssl_.get(), fd_);
  SSL_set_tlsext_host_name(ssl_.get(), server_name.c_str());
  SSL_set1_host(ssl_.get(), server_name.c_str());
  if (session != nullptr) SSL_set_session(ssl_.get(), session);
  ERR_clear_error();
  if (SSL_connect(ssl_.get()) != 1) {
    return absl::UnavailableError(absl::StrCat("handshake: ", DrainErrors()));
  }
  return absl::OkStatus();
}

absl::Status BlockingTlsConnection::WriteAll(absl::string_view bytes) {
  while (!bytes.empty()) {
    ERR_clear_error();
    int n = SSL_write(ssl_.get(), bytes.data(), static_cast<int>(bytes.size()));
    if (n <= 0) return absl::UnavailableError(absl::StrCat("write: ", DrainErrors()));
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status BlockingTlsConnection::ReadSome(std::string* out) {
  char buf[64 * 1024];
  ERR_clear_error();
  int n = SSL_read(ssl_.get(), buf, sizeof(buf));
  if (n <= 0) return absl::UnavailableError(absl::StrCat("read: ", DrainErrors()));
  out->append(buf, static_cast<size_t>(n));
  return absl::OkStatus();
}

absl::StatusOr<std::string> BlockingTlsConnection::ReadFrame() {
  std::string buffer;
  while (true) {
    size_t len = load::PayloadFactory::CompleteFrameLength(buffer);
    if (len > 0) {
      if (len != buffer.size()) return absl::DataLossError("bytes after the response frame");
      return buffer;
    }
    absl::Status s = ReadSome(&buffer);
    if (!s.ok()) return s;
  }
}

void BlockingTlsConnection::Close() {
  if (ssl_ != nullptr) {
    SSL_shutdown(ssl_.get());  // sends close_notify; does not wait for the peer's
    ssl_.reset();
  }
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

}  // namespace tlsbroker::bench
