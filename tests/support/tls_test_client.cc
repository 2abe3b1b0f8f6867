#include "tests/support/tls_test_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "tests/support/test_pki.h"

namespace tlsbroker::testutil {
namespace {

std::string OpenSslErrors() {
  std::string out;
  unsigned long code;
  while ((code = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

absl::Status IoError(absl::string_view what, SSL* ssl, int ret) {
  int err = SSL_get_error(ssl, ret);
  int saved_errno = errno;
  std::string detail = OpenSslErrors();
  if (err == SSL_ERROR_SYSCALL && saved_errno != 0) {
    detail = absl::StrCat(detail, detail.empty() ? "" : "; ", strerror(saved_errno));
  }
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE || saved_errno == EAGAIN ||
      saved_errno == EWOULDBLOCK) {
    return absl::DeadlineExceededError(absl::StrCat(what, " timed out ", detail));
  }
  return absl::UnavailableError(absl::StrCat(what, " failed (SSL_get_error ", err, ") ", detail));
}

}  // namespace

TlsTestClientOptions TlsTestClient::PkiOptions(absl::string_view alg, absl::string_view client) {
  TlsTestClientOptions options;
  options.ca_file = PkiPath(alg, "root.crt");
  options.cert_file = PkiPath(alg, absl::StrCat(client, ".fullchain.pem"));
  options.key_file = PkiPath(alg, absl::StrCat(client, ".key"));
  return options;
}

absl::StatusOr<std::unique_ptr<TlsTestClient>> TlsTestClient::Connect(
    int port, const TlsTestClientOptions& options, TlsSessionPtr resume) {
  signal(SIGPIPE, SIG_IGN);  // a server that hangs up must not kill the test
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) return absl::InternalError("SSL_CTX_new");
  // From here on ~TlsTestClient (or the explicit frees below) release ctx.
  auto fail = [&](absl::string_view what) {
    std::string errors = OpenSslErrors();
    SSL_CTX_free(ctx);
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", errors));
  };
  if (!options.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, options.ca_file.c_str(), nullptr) != 1) {
      return fail(absl::StrCat("cannot load ", options.ca_file));
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  }
  if (!options.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, options.cert_file.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, options.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      return fail(absl::StrCat("cannot load ", options.cert_file, " / ", options.key_file));
    }
  }
  if (options.min_version != 0) SSL_CTX_set_min_proto_version(ctx, options.min_version);
  if (options.max_version != 0) SSL_CTX_set_max_proto_version(ctx, options.max_version);
  if (options.security_level >= 0) SSL_CTX_set_security_level(ctx, options.security_level);
  if (!options.cipher_list.empty() &&
      SSL_CTX_set_cipher_list(ctx, options.cipher_list.c_str()) != 1) {
    return fail(absl::StrCat("bad cipher list ", options.cipher_list));
  }

  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail("socket");
  timeval tv{};
  int64_t us = absl::ToInt64Microseconds(options.io_timeout);
  tv.tv_sec = us / 1000000;
  tv.tv_usec = us % 1000000;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    absl::Status status =
        absl::UnavailableError(absl::StrCat("connect 127.0.0.1:", port, ": ", strerror(errno)));
    close(fd);
    SSL_CTX_free(ctx);
    return status;
  }
  SSL* ssl = SSL_new(ctx);
  std::unique_ptr<TlsTestClient> client(new TlsTestClient(ctx, ssl, fd));
  if (ssl == nullptr) return absl::InternalError("SSL_new");
  SSL_set_fd(ssl, fd);
  if (!options.server_name.empty()) {
    SSL_set_tlsext_host_name(ssl, options.server_name.c_str());
    SSL_set1_host(ssl, options.server_name.c_str());
  }
  if (resume != nullptr) SSL_set_session(ssl, resume.get());
  errno = 0;
  int ret = SSL_connect(ssl);
  if (ret != 1) {
    absl::Status status = IoError("handshake", ssl, ret);
    long verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK) {
      status = absl::UnavailableError(absl::StrCat(status.message(), "; verify error ", verify,
                                                   ": ", X509_verify_cert_error_string(verify)));
    }
    return status;
  }
  return client;
}

TlsTestClient::~TlsTestClient() {
  if (ssl_ != nullptr) SSL_free(ssl_);
  if (fd_ >= 0) close(fd_);
  SSL_CTX_free(ctx_);
}

absl::Status TlsTestClient::Write(absl::string_view bytes) {
  while (!bytes.empty()) {
    ERR_clear_error();
    errno = 0;
    int n = SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size()));
    if (n <= 0) return IoError("write", ssl_, n);
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> TlsTestClient::ReadSome() {
  if (!buffered_.empty()) return std::exchange(buffered_, "");
  return ReadFromSsl();
}

absl::StatusOr<std::string> TlsTestClient::ReadFromSsl() {
  char buf[16 * 1024];
  ERR_clear_error();
  errno = 0;
  int n = SSL_read(ssl_, buf, sizeof(buf));
  if (n > 0) return std::string(buf, static_cast<size_t>(n));
  if (SSL_get_error(ssl_, n) == SSL_ERROR_ZERO_RETURN) return std::string();
  return IoError("read", ssl_, n);
}

absl::StatusOr<std::string> TlsTestClient::ReadExactly(size_t n) {
  while (buffered_.size() < n) {
    absl::StatusOr<std::string> more = ReadFromSsl();
    if (!more.ok()) return more.status();
    if (more->empty()) {
      return absl::UnavailableError(
          absl::StrCat("connection closed after ", buffered_.size(), " of ", n, " bytes"));
    }
    buffered_ += *more;
  }
  std::string out = buffered_.substr(0, n);
  buffered_.erase(0, n);
  return out;
}

absl::StatusOr<std::string> TlsTestClient::ReadLine() {
  size_t pos;
  while ((pos = buffered_.find('\n')) == std::string::npos) {
    absl::StatusOr<std::string> more = ReadFromSsl();
    if (!more.ok()) return more.status();
    if (more->empty()) return absl::UnavailableError("connection closed before a full line");
    buffered_ += *more;
  }
  std::string line = buffered_.substr(0, pos);
  buffered_.erase(0, pos + 1);
  return line;
}

absl::Status TlsTestClient::WriteFrame(absl::string_view payload) {
  uint32_t length = static_cast<uint32_t>(payload.size() + 4);
  std::string frame = {static_cast<char>(length >> 24), static_cast<char>(length >> 16),
                       static_cast<char>(length >> 8), static_cast<char>(length)};
  frame.append(payload.data(), payload.size());
  return Write(frame);
}

absl::StatusOr<std::string> TlsTestClient::ReadFrame() {
  absl::StatusOr<std::string> header = ReadExactly(4);
  if (!header.ok()) return header.status();
  uint32_t length = 0;
  for (char c : *header) length = (length << 8) | static_cast<uint8_t>(c);
  if (length < 4 || length > 64 * 1024 * 1024) {
    return absl::DataLossError(absl::StrCat("bad frame length ", length));
  }
  return ReadExactly(length - 4);
}

TlsSessionPtr TlsTestClient::session() const {
  SSL_SESSION* session = SSL_get1_session(ssl_);
  if (session == nullptr) return nullptr;
  return TlsSessionPtr(session, SSL_SESSION_free);
}

bool TlsTestClient::resumed() const { return SSL_session_reused(ssl_) == 1; }
std::string TlsTestClient::version() const { return SSL_get_version(ssl_); }
std::string TlsTestClient::cipher() const { return SSL_get_cipher_name(ssl_); }

std::string TlsTestClient::peer_subject() const {
  const X509* peer = SSL_get0_peer_certificate(ssl_);
  if (peer == nullptr) return "";
  BIO* bio = BIO_new(BIO_s_mem());
  X509_NAME_print_ex(bio, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(len));
  BIO_free(bio);
  return out;
}

void TlsTestClient::Close() {
  if (fd_ < 0) return;
  SSL_shutdown(ssl_);
  close(fd_);
  fd_ = -1;
}

}  // namespace tlsbroker::testutil
