#include "broker/tls/tls_socket.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <asio/connect.hpp>
#include <asio/post.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "broker/tls/failure_reason.h"
#include "broker/tls/openssl_errors.h"
#include "broker/tls/tcp_keepalive.h"

namespace tlsbroker {
namespace {

std::string NameToString(const X509_NAME* name) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, len);
}

// The certificate that issued `leaf`: from the verified chain, else (a resumed session keeps no
// verified chain) from the chain the peer sent, else from the trust store.
X509Ptr FindIssuer(SSL* ssl, X509* leaf) {
  STACK_OF(X509)* verified = SSL_get0_verified_chain(ssl);  // get0: owned by ssl.
  if (verified != nullptr && sk_X509_num(verified) >= 2) return UpRef(sk_X509_value(verified, 1));
  STACK_OF(X509)* sent = SSL_get_peer_cert_chain(ssl);  // Borrowed.
  for (int i = 0; sent != nullptr && i < sk_X509_num(sent); ++i) {
    X509* candidate = sk_X509_value(sent, i);
    if (X509_cmp(candidate, leaf) != 0 && X509_check_issued(candidate, leaf) == X509_V_OK) {
      return UpRef(candidate);
    }
  }
  X509_STORE* store = SSL_CTX_get_cert_store(SSL_get_SSL_CTX(ssl));  // get0.
  std::unique_ptr<X509_STORE_CTX, void (*)(X509_STORE_CTX*)> ctx(X509_STORE_CTX_new(),
                                                                 X509_STORE_CTX_free);
  X509* issuer = nullptr;
  if (ctx && X509_STORE_CTX_init(ctx.get(), store, leaf, nullptr) == 1) {
    if (X509_STORE_CTX_get1_issuer(&issuer, ctx.get(), leaf) != 1) issuer = nullptr;
  }
  ERR_clear_error();
  return X509Ptr(issuer);
}

absl::Status Cancelled() { return absl::CancelledError("socket closed"); }

// Whether the error code means our own Close()/timeout cancelled the wait.
bool Aborted(const asio::error_code& ec) { return ec == asio::error::operation_aborted; }

// Whether a failed SSL_read/SSL_peek means the backend hung up without close_notify. OpenSSL 3
// reports that as SSL_ERROR_SSL "unexpected eof while reading"; 1.1 reported SSL_ERROR_SYSCALL
// with an empty error queue. Must run before the error queue is drained.
bool ClosedWithoutNotify(int ssl_error) {
  if (ssl_error == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) return true;
  return ssl_error == SSL_ERROR_SSL &&
         ERR_GET_REASON(ERR_peek_last_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
}

}  // namespace

TlsSocket::TlsSocket(asio::io_context& io, std::shared_ptr<const TlsClientContext> context)
    : io_(io), context_(std::move(context)), socket_(io), connect_timer_(io) {}

TlsSocket::~TlsSocket() {
  asio::error_code ec;
  socket_.close(ec);
}

void TlsSocket::Connect(const std::string& host, uint16_t port, absl::Duration connect_timeout,
                        absl::Duration handshake_timeout, StatusCallback done) {
  connect_done_ = std::move(done);
  handshake_timeout_ = handshake_timeout;
  connect_phase_ = ConnectPhase::kResolving;
  auto self = shared_from_this();
  connect_timer_.expires_after(absl::ToChronoNanoseconds(connect_timeout));
  connect_timer_.async_wait([self](const asio::error_code& ec) { self->OnConnectTimer(ec); });
  // Held weakly: a lookup can hang far longer than any connect budget, and the connect timer
  // (which holds the socket) ends the connect without it. The late answer must then neither
  // keep the socket alive nor post to a loop that may be gone; it finds nobody and is dropped.
  std::weak_ptr<TlsSocket> weak = self;
  ResolveHost(host, port, [weak](absl::StatusOr<ResolvedEndpoints> result) mutable {
    std::shared_ptr<TlsSocket> socket = weak.lock();
    if (socket == nullptr) return;
    asio::io_context& io = socket->io_;
    // `socket` moves into the handler: the loop, not the resolver thread, lets go of it.
    asio::post(io, [socket = std::move(socket), result = std::move(result)]() mutable {
      socket->OnResolveResult(std::move(result));
    });
  });
}

void TlsSocket::OnConnectTimer(const asio::error_code& ec) {
  if (!connect_done_) return;  // The connect is over (this is FinishConnect's cancel).
  if (closed_) {
    // Close() cancels socket waits, whose handlers end the connect; a lookup or an OCSP query
    // has none, so the connect ends here instead of waiting for their answer.
    if (connect_phase_ == ConnectPhase::kResolving || connect_phase_ == ConnectPhase::kOcsp) {
      FinishConnect(Cancelled());
    }
    return;
  }
  if (ec) return;  // Re-armed for the handshake.
  timed_out_ = true;
  asio::error_code ignored;
  switch (connect_phase_) {
    case ConnectPhase::kResolving:
      FinishConnect(TlsFailure("connect_timeout", "resolving the backend's name timed out"));
      return;
    case ConnectPhase::kTcpConnect:
      // The async_connect handler reports connect_timeout.
      socket_.cancel(ignored);
      socket_.close(ignored);
      return;
    case ConnectPhase::kHandshake:
      // DoHandshake, woken by the cancelled wait, reports handshake_timeout.
      socket_.cancel(ignored);
      return;
    case ConnectPhase::kOcsp:
      FinishConnect(TlsFailure("handshake_timeout",
                               "the OCSP check of the backend certificate did not finish in time"));
      return;
    case ConnectPhase::kIdle:
    case ConnectPhase::kDone:
      return;
  }
}

void TlsSocket::OnResolveResult(absl::StatusOr<ResolvedEndpoints> result) {
  if (!connect_done_) return;  // Ended by the connect timer or Close(): a late answer.
  if (closed_) {
    FinishConnect(Cancelled());
    return;
  }
  if (!result.ok()) {
    FinishConnect(TlsFailure("resolve_failed", result.status().message()));
    return;
  }
  OnResolved(*result);
}

void TlsSocket::OnResolved(const ResolvedEndpoints& endpoints) {
  connect_phase_ = ConnectPhase::kTcpConnect;
  auto self = shared_from_this();
  asio::async_connect(
      socket_, endpoints, [self](const asio::error_code& ec, const asio::ip::tcp::endpoint&) {
        if (ec) {
          if (self->timed_out_) {
            self->FinishConnect(TlsFailure("connect_timeout", "TCP connect timed out"));
          } else if (ec == asio::error::connection_refused) {
            self->FinishConnect(TlsFailure("connect_refused", ec.message()));
          } else {
            self->FinishConnect(TlsFailure("connect_failed", ec.message()));
          }
          return;
        }
        if (self->closed_) {
          self->FinishConnect(Cancelled());
          return;
        }
        asio::error_code opt_ec;
        self->socket_.set_option(asio::ip::tcp::no_delay(true), opt_ec);
        self->socket_.non_blocking(true, opt_ec);
        // Configured on, keepalive must really be on: a refusal fails this connect.
        if (absl::Status keepalive = ApplyTcpKeepalive(
                self->socket_.native_handle(), self->context_->options().tcp_keepalive);
            !keepalive.ok()) {
          self->FinishConnect(TlsFailure(
              "connect_failed", absl::StrCat("tcp_keepalive: ", keepalive.message())));
          return;
        }
        auto ssl = self->context_->NewSsl();
        if (!ssl.ok()) {
          self->FinishConnect(TlsFailure("handshake_failed", ssl.status().message()));
          return;
        }
        self->ssl_ = *std::move(ssl);
        SSL_set_fd(self->ssl_.get(), self->socket_.native_handle());
        // The handshake (and the OCSP check after it) gets its own budget, separate from the
        // TCP connect.
        self->connect_phase_ = ConnectPhase::kHandshake;
        self->connect_timer_.expires_after(absl::ToChronoNanoseconds(self->handshake_timeout_));
        self->connect_timer_.async_wait(
            [self](const asio::error_code& tec) { self->OnConnectTimer(tec); });
        self->handshake_started_ = absl::Now();
        self->DoHandshake();
      });
}

void TlsSocket::DoHandshake() {
  if (timed_out_) {
    FinishConnect(TlsFailure("handshake_timeout", "the TLS handshake did not finish in time"));
    return;
  }
  if (closed_) {
    FinishConnect(Cancelled());
    return;
  }
  ERR_clear_error();
  int rc = SSL_connect(ssl_.get());
  if (rc == 1) {
    FillSessionInfo();
    if (info_.resumed && !RecheckResumedSession()) return;
    if (context_->ocsp() != nullptr) {
      StartOcspCheck();
      return;
    }
    FinishConnect(absl::OkStatus());
    return;
  }
  int err = SSL_get_error(ssl_.get(), rc);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
    auto self = shared_from_this();
    socket_.async_wait(
        err == SSL_ERROR_WANT_READ ? asio::ip::tcp::socket::wait_read
                                   : asio::ip::tcp::socket::wait_write,
        [self](const asio::error_code& ec) {
          if (ec && !Aborted(ec)) {
            self->FinishConnect(TlsFailure("handshake_failed", ec.message()));
            return;
          }
          self->DoHandshake();
        });
    return;
  }
  std::string reason = HandshakeFailureReason(ssl_.get());
  std::string detail = DrainOpenSslErrors();
  long verify = SSL_get_verify_result(ssl_.get());
  if (verify != X509_V_OK) {
    detail = absl::StrCat(X509_verify_cert_error_string(verify), detail.empty() ? "" : "; ", detail);
  }
  if (detail.empty()) detail = "the backend closed the connection during the handshake";
  FinishConnect(TlsFailure(reason, detail));
}

bool TlsSocket::RecheckResumedSession() {
  absl::Status status = context_->CheckResumedSession(ssl_.get());
  if (status.ok()) return true;
  // The cached sessions carry what no longer passes: the next socket does a full handshake.
  context_->FlushSessions();
  ERR_clear_error();
  SSL_shutdown(ssl_.get());
  ERR_clear_error();
  FinishConnect(std::move(status));
  return false;
}

void TlsSocket::StartOcspCheck() {
  // The handshake timer keeps running: it ends the connect if the verdict is late.
  connect_phase_ = ConnectPhase::kOcsp;
  X509* leaf = SSL_get0_peer_certificate(ssl_.get());  // get0: owned by the session.
  if (leaf != nullptr) {
    ocsp_subject_.leaf = UpRef(leaf);
    ocsp_subject_.issuer = FindIssuer(ssl_.get(), leaf);
  }
  const unsigned char* staple = nullptr;
  const long staple_len = SSL_get_tlsext_status_ocsp_resp(ssl_.get(), &staple);
  std::string staple_der;
  if (staple != nullptr && staple_len > 0) {
    staple_der.assign(reinterpret_cast<const char*>(staple), staple_len);
  }
  OcspSubject subject{ocsp_subject_.leaf ? UpRef(ocsp_subject_.leaf.get()) : nullptr,
                      ocsp_subject_.issuer ? UpRef(ocsp_subject_.issuer.get()) : nullptr};
  // The verdict may come from the OCSP worker thread: hop back onto this socket's loop. `self`
  // moves into the posted handler so that the worker never holds the last reference.
  auto self = shared_from_this();
  context_->ocsp()->Check(std::move(subject), std::move(staple_der),
                          [self](OcspVerdict verdict) mutable {
                            asio::io_context& io = self->io_;
                            asio::post(io, [self = std::move(self),
                                            verdict = std::move(verdict)]() mutable {
                              self->OnOcspVerdict(std::move(verdict));
                            });
                          });
}

void TlsSocket::OnOcspVerdict(OcspVerdict verdict) {
  // The connect already ended (handshake_timeout or Close()): the late verdict changes nothing.
  if (!connect_done_) return;
  info_.ocsp_source = verdict.source;
  info_.ocsp_status = verdict.cert_status;
  info_.ocsp_valid_until = verdict.valid_until;
  if (closed_) {
    FinishConnect(Cancelled());
    return;
  }
  if (!verdict.status.ok()) {
    // A refused certificate: say goodbye properly before FinishConnect closes the fd.
    ERR_clear_error();
    SSL_shutdown(ssl_.get());
    ERR_clear_error();
  }
  FinishConnect(std::move(verdict.status));
}

void TlsSocket::RecheckOcsp(absl::Duration margin,
                            absl::AnyInvocable<void(OcspVerdict) &&> done) {
  if (context_->ocsp() == nullptr || !ocsp_subject_.leaf) {
    std::move(done)(OcspVerdict{});
    return;
  }
  OcspSubject subject{UpRef(ocsp_subject_.leaf.get()),
                      ocsp_subject_.issuer ? UpRef(ocsp_subject_.issuer.get()) : nullptr};
  auto self = shared_from_this();
  context_->ocsp()->Recheck(
      std::move(subject), margin, [self, done = std::move(done)](OcspVerdict verdict) mutable {
        asio::io_context& io = self->io_;
        asio::post(io, [self = std::move(self), done = std::move(done),
                        verdict = std::move(verdict)]() mutable {
          if (verdict.status.ok() && verdict.valid_until.has_value()) {
            self->info_.ocsp_valid_until = verdict.valid_until;
            self->info_.ocsp_status = verdict.cert_status;
          }
          std::move(done)(std::move(verdict));
        });
      });
}

void TlsSocket::FinishConnect(absl::Status status) {
  if (!connect_done_) return;
  connect_phase_ = ConnectPhase::kDone;
  asio::error_code ignored;
  connect_timer_.cancel();
  if (!status.ok()) {
    closed_ = true;
    socket_.close(ignored);
  }
  // Emptied before the call: anything the callback triggers sees the connect as over.
  StatusCallback done = std::move(connect_done_);
  connect_done_ = nullptr;
  std::move(done)(std::move(status));
}

void TlsSocket::FillSessionInfo() {
  info_.tls_version = SSL_get_version(ssl_.get());
  info_.cipher = SSL_get_cipher_name(ssl_.get());
  info_.resumed = SSL_session_reused(ssl_.get()) == 1;
  info_.authenticated_at = absl::Now();
  info_.handshake_duration = absl::Now() - handshake_started_;
  X509* peer = SSL_get0_peer_certificate(ssl_.get());  // get0: owned by the session.
  // Kept for re-checks while pooled (CRL updates, expiry). The verified chain ends at the
  // trust anchor; a resumed session has none, so fall back to what the peer sent (on the
  // client side that list starts with the leaf).
  STACK_OF(X509)* chain = SSL_get0_verified_chain(ssl_.get());
  if (chain == nullptr) chain = SSL_get_peer_cert_chain(ssl_.get());
  peer_chain_ = std::make_shared<const PeerChain>(chain);
  if (peer == nullptr) return;
  info_.peer_subject = NameToString(X509_get_subject_name(peer));
  info_.peer_issuer = NameToString(X509_get_issuer_name(peer));
  const ASN1_INTEGER* serial = X509_get0_serialNumber(peer);
  BIGNUM* bn = ASN1_INTEGER_to_BN(serial, nullptr);
  if (bn != nullptr) {
    char* hex = BN_bn2hex(bn);
    info_.peer_serial = hex;
    OPENSSL_free(hex);
    BN_free(bn);
  }
  struct tm tm_after;
  if (ASN1_TIME_to_tm(X509_get0_notAfter(peer), &tm_after) == 1) {
    info_.peer_not_after = absl::FromTM(tm_after, absl::UTCTimeZone());
  }
  GeneralNamesPtr names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(peer, NID_subject_alt_name, nullptr, nullptr)));
  if (names) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
      if (name->type == GEN_DNS) {
        info_.peer_sans.push_back(absl::StrCat(
            "DNS:", absl::string_view(reinterpret_cast<const char*>(
                                          ASN1_STRING_get0_data(name->d.dNSName)),
                                      ASN1_STRING_length(name->d.dNSName))));
      } else if (name->type == GEN_URI) {
        const ASN1_STRING* uri = name->d.uniformResourceIdentifier;
        info_.peer_sans.push_back(absl::StrCat(
            "URI:", absl::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                                      ASN1_STRING_length(uri))));
      } else if (name->type == GEN_IPADD) {
        const ASN1_OCTET_STRING* ip = name->d.iPAddress;
        asio::ip::address addr;
        if (ip->length == 4) {
          asio::ip::address_v4::bytes_type b;
          std::copy(ip->data, ip->data + 4, b.begin());
          addr = asio::ip::address_v4(b);
        } else if (ip->length == 16) {
          asio::ip::address_v6::bytes_type b;
          std::copy(ip->data, ip->data + 16, b.begin());
          addr = asio::ip::address_v6(b);
        }
        info_.peer_sans.push_back(absl::StrCat("IP:", addr.to_string()));
      }
    }
  }
}

void TlsSocket::Write(std::string data, StatusCallback done) {
  if (closed_ || !ssl_) {
    std::move(done)(Cancelled());
    return;
  }
  write_buf_ = std::move(data);
  write_offset_ = 0;
  write_done_ = std::move(done);
  // A Write issued from inside the callback of a write that completed inline is picked up by
  // that DoWrite's loop once the callback returns: nesting would grow the stack per write.
  if (delivering_write_) return;
  DoWrite();
}

void TlsSocket::DeliverWrite(absl::Status status) {
  auto done = std::move(write_done_);
  write_done_ = nullptr;
  write_buf_.clear();
  // A key update asked for while this write was pending can go out now (see
  // CountBytesForKeyUpdate); before the callback, which may start the next write.
  if (status.ok()) SendDueKeyUpdate();
  if (!done) return;
  delivering_write_ = true;
  std::move(done)(std::move(status));
  delivering_write_ = false;
}

void TlsSocket::DoWrite() {
  // The callbacks below may drop every other reference to this socket.
  auto self = shared_from_this();
  while (write_done_) {
    if (closed_) {
      DeliverWrite(Cancelled());
      continue;
    }
    if (write_offset_ >= write_buf_.size()) {
      DeliverWrite(absl::OkStatus());
      continue;  // The callback may have issued the next Write.
    }
    ERR_clear_error();
    int n = SSL_write(ssl_.get(), write_buf_.data() + write_offset_,
                      static_cast<int>(std::min<size_t>(write_buf_.size() - write_offset_, 1 << 20)));
    if (n > 0) {
      write_offset_ += n;
      bytes_sent_ += n;
      continue;
    }
    int err = SSL_get_error(ssl_.get(), n);
    if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
      socket_.async_wait(err == SSL_ERROR_WANT_WRITE ? asio::ip::tcp::socket::wait_write
                                                     : asio::ip::tcp::socket::wait_read,
                         [self](const asio::error_code& ec) {
                           if (ec || self->closed_) {
                             self->DeliverWrite(Cancelled());
                             if (self->write_done_) self->DoWrite();
                             return;
                           }
                           self->DoWrite();
                         });
      return;
    }
    std::string detail = DrainOpenSslErrors();
    DeliverWrite(ReasonedError(absl::StatusCode::kUnavailable, "write_failed",
                               absl::StrCat("writing to the backend failed",
                                            detail.empty() ? "" : ": ", detail)));
  }
}

void TlsSocket::Read(size_t max_bytes, ReadCallback done) {
  if (closed_ || !ssl_) {
    std::move(done)(Cancelled());
    return;
  }
  read_max_ = max_bytes == 0 ? 1 : max_bytes;
  read_done_ = std::move(done);
  // A Read issued from inside the callback of a read that completed inline (OpenSSL already
  // held the bytes) is picked up by that DoRead's loop once the callback returns. Calling
  // DoRead here would nest one stack frame per TLS record: a backend sending 1 MiB as
  // 16-byte records overflowed the I/O thread's stack that way.
  if (delivering_read_) return;
  DoRead();
}

void TlsSocket::DeliverRead(absl::StatusOr<std::string> result) {
  auto done = std::move(read_done_);
  read_done_ = nullptr;
  if (!done) return;
  delivering_read_ = true;
  std::move(done)(std::move(result));
  delivering_read_ = false;
}

absl::Status TlsSocket::ReadFailure(int ssl_error) {
  if (ssl_error == SSL_ERROR_ZERO_RETURN) {
    return ReasonedError(absl::StatusCode::kUnavailable, "backend_closed",
                         "the backend closed the connection");
  }
  if (ClosedWithoutNotify(ssl_error)) {
    DrainOpenSslErrors();
    return ReasonedError(absl::StatusCode::kUnavailable, "backend_closed",
                         "the backend closed the connection without close_notify");
  }
  // The reason first: it reads the error queue (e.g. a TLS 1.3 alert rejecting our client
  // certificate, which arrives at the first read), and draining empties it.
  std::string reason = HandshakeFailureReason(ssl_.get());
  if (reason == "handshake_failed") reason = "read_failed";
  std::string detail = DrainOpenSslErrors();
  return ReasonedError(absl::StatusCode::kUnavailable, reason,
                       absl::StrCat("reading from the backend failed: ", detail));
}

void TlsSocket::DoRead() {
  // The callbacks below may drop every other reference to this socket.
  auto self = shared_from_this();
  // Iterative on purpose: every read that completes without waiting is delivered from this
  // loop, and a Read issued by its callback continues the loop instead of nesting.
  while (read_done_) {
    if (closed_) {
      DeliverRead(Cancelled());
      continue;
    }
    if (!deferred_read_error_.ok()) {
      absl::Status error = std::move(deferred_read_error_);
      deferred_read_error_ = absl::OkStatus();
      DeliverRead(std::move(error));
      continue;
    }
    // Always try SSL_read before waiting: OpenSSL may hold decrypted bytes (SSL_pending) that
    // the fd's readiness knows nothing about. Fill the buffer from as many records as are
    // there, so a backend that sends tiny records costs one callback per buffer, not per
    // record.
    std::string buf(read_max_, '\0');
    size_t got = 0;
    int err = SSL_ERROR_NONE;
    while (got < buf.size()) {
      ERR_clear_error();
      int n = SSL_read(ssl_.get(), buf.data() + got, static_cast<int>(buf.size() - got));
      if (n <= 0) {
        err = SSL_get_error(ssl_.get(), n);
        break;
      }
      got += static_cast<size_t>(n);
    }
    const bool would_block = err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE;
    if (got > 0) {
      // Bytes first; an error behind them is reported by the next Read.
      if (err != SSL_ERROR_NONE && !would_block) deferred_read_error_ = ReadFailure(err);
      buf.resize(got);
      bytes_received_ += got;
      DeliverRead(std::move(buf));
      continue;
    }
    if (would_block) {
      uint64_t generation = read_generation_;
      socket_.async_wait(err == SSL_ERROR_WANT_READ ? asio::ip::tcp::socket::wait_read
                                                    : asio::ip::tcp::socket::wait_write,
                         [self, generation](const asio::error_code& ec) {
                           if (generation != self->read_generation_) return;  // CancelRead.
                           if (ec || self->closed_) self->DeliverRead(Cancelled());
                           self->DoRead();
                         });
      return;
    }
    DeliverRead(ReadFailure(err));
  }
}

void TlsSocket::CancelRead() {
  if (!read_done_) return;
  ++read_generation_;
  auto done = std::move(read_done_);
  read_done_ = nullptr;
  std::move(done)(absl::CancelledError("read cancelled"));
}

void TlsSocket::WatchIdle(StatusCallback on_broken) {
  idle_broken_ = std::move(on_broken);
  ++idle_generation_;
  ArmIdleWatch();
}

void TlsSocket::ArmIdleWatch() {
  if (closed_ || !idle_broken_) return;
  // First process whatever already arrived (tickets sent right after the handshake).
  absl::Status status = CheckNothingUnread();
  if (!status.ok()) {
    auto cb = std::move(idle_broken_);
    idle_broken_ = nullptr;
    std::move(cb)(status);
    return;
  }
  auto self = shared_from_this();
  uint64_t generation = idle_generation_;
  idle_wait_armed_ = true;
  socket_.async_wait(asio::ip::tcp::socket::wait_read,
                     [self, generation](const asio::error_code& ec) {
                       if (generation != self->idle_generation_) return;  // Disarmed.
                       self->idle_wait_armed_ = false;
                       if (ec || self->closed_) return;
                       self->ArmIdleWatch();
                     });
}

void TlsSocket::StopIdleWatch() {
  ++idle_generation_;
  idle_broken_ = nullptr;
  // The pending wait (if any) completes later as a stale generation. No socket_.cancel():
  // that would also cancel a read or write in flight.
  idle_wait_armed_ = false;
}

absl::Status TlsSocket::CheckNothingUnread() {
  if (closed_ || !ssl_) {
    return ReasonedError(absl::StatusCode::kUnavailable, "backend_closed", "socket closed");
  }
  if (SSL_pending(ssl_.get()) > 0) {
    return ReasonedError(absl::StatusCode::kFailedPrecondition, "unread_bytes",
                         "application bytes left unread");
  }
  char byte;
  ERR_clear_error();
  // SSL_peek processes records (tickets, key updates, alerts) without consuming app data.
  int n = SSL_peek(ssl_.get(), &byte, 1);
  if (n > 0) {
    return ReasonedError(absl::StatusCode::kFailedPrecondition, "unread_bytes",
                         "application bytes left unread");
  }
  int err = SSL_get_error(ssl_.get(), n);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return absl::OkStatus();
  return ReadFailure(err);
}

void TlsSocket::CountBytesForKeyUpdate(uint64_t bytes, uint64_t limit) {
  if (limit == 0 || closed_ || !ssl_) return;
  bytes_since_key_update_ += bytes;
  if (bytes_since_key_update_ < limit) return;
  bytes_since_key_update_ -= limit;
  key_update_due_ = true;
  // OpenSSL 3.0 refuses SSL_key_update while a write is pending (SSL_R_BAD_WRITE_RETRY): then
  // the update waits for that write to finish (DeliverWrite).
  if (!write_done_) SendDueKeyUpdate();
}

void TlsSocket::SendDueKeyUpdate() {
  if (!key_update_due_ || closed_ || !ssl_) return;
  key_update_due_ = false;
  if (SSL_version(ssl_.get()) < TLS1_3_VERSION) return;
  ERR_clear_error();
  if (SSL_key_update(ssl_.get(), SSL_KEY_UPDATE_NOT_REQUESTED) != 1) {
    // Not worth breaking a healthy exchange for: the next limit's worth of bytes tries again.
    DrainOpenSslErrors();
    return;
  }
  // Send it now rather than with the next write, which may never come. On a full socket
  // buffer OpenSSL keeps it and sends it with the next write.
  SSL_do_handshake(ssl_.get());
  ERR_clear_error();
  ++key_updates_sent_;
}

void TlsSocket::Close() {
  if (closed_) return;
  closed_ = true;
  ++idle_generation_;
  idle_broken_ = nullptr;
  asio::error_code ignored;
  connect_timer_.cancel();
  if (ssl_ && SSL_is_init_finished(ssl_.get())) {
    // Best effort close_notify; the fd is non-blocking so this never waits.
    ERR_clear_error();
    SSL_shutdown(ssl_.get());
    ERR_clear_error();
  }
  socket_.cancel(ignored);
  socket_.close(ignored);
}

}  // namespace tlsbroker
