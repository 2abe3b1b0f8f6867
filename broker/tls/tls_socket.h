#ifndef BROKER_TLS_TLS_SOCKET_H_
#define BROKER_TLS_TLS_SOCKET_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "broker/tls/host_resolver.h"
#include "broker/tls/openssl_ptr.h"
#include "broker/tls/peer_chain.h"
#include "broker/tls/tls_client_context.h"

namespace tlsbroker {

// What a socket learned at its handshake; reported with every lease.
struct TlsSessionInfo {
  std::string tls_version;  // "TLSv1.3"
  std::string cipher;       // "TLS_AES_256_GCM_SHA384"
  bool resumed = false;
  std::string peer_subject;  // RFC 2253
  std::string peer_issuer;
  std::string peer_serial;  // hex
  std::optional<absl::Time> peer_not_after;
  std::vector<std::string> peer_sans;  // "DNS:x", "IP:1.2.3.4", "URI:spiffe://..."
  absl::Time authenticated_at;
  absl::Duration handshake_duration;
  // OCSP at the handshake (empty when OCSP is off): where the answer came from
  // ("staple", "responder", "cache", "none"), what it said ("good", "revoked", "unknown",
  // "unreachable", "invalid"), and until when it holds.
  std::string ocsp_source;
  std::string ocsp_status;
  std::optional<absl::Time> ocsp_valid_until;
};

// One TCP + TLS connection to a backend. OpenSSL reads and writes the socket's fd itself
// (SSL_set_fd); Asio supplies readiness (async_wait) and timers, so ciphertext is never copied
// through memory BIOs.
//
// Loop-thread only: every method must run on the io_context the socket was made with, and all
// callbacks run there. Owned by std::shared_ptr because pending handlers keep it alive. At most
// one Read and one Write in flight at a time.
class TlsSocket final : public std::enable_shared_from_this<TlsSocket> {
 public:
  using StatusCallback = absl::AnyInvocable<void(absl::Status) &&>;
  using ReadCallback = absl::AnyInvocable<void(absl::StatusOr<std::string>) &&>;

  TlsSocket(asio::io_context& io, std::shared_ptr<const TlsClientContext> context);
  ~TlsSocket();
  TlsSocket(const TlsSocket&) = delete;
  TlsSocket& operator=(const TlsSocket&) = delete;

  // Resolves, connects and handshakes. Fails with kUnavailable "<reason>: detail" (see
  // failure_reason.h): connect_refused, connect_timeout, handshake_timeout, unknown_ca, ...
  // The timeouts are end to end: `connect_timeout` covers name resolution (see
  // host_resolver.h) and the TCP connect, `handshake_timeout` the TLS handshake and the OCSP
  // check; either ends the connect when it fires, even while a lookup or an OCSP query is
  // still running (its late answer is then ignored).
  void Connect(const std::string& host, uint16_t port, absl::Duration connect_timeout,
               absl::Duration handshake_timeout, StatusCallback done);

  // Writes all of `data`.
  void Write(std::string data, StatusCallback done);
  // Reads what is available, at most `max_bytes` (waits until at least one byte). A clean close
  // by the backend is kUnavailable "backend_closed: ...".
  void Read(size_t max_bytes, ReadCallback done);

  // Abandons a Read that is waiting for the backend (nothing consumed yet): its callback runs
  // now with kCancelled and the socket stays usable. No-op when no Read is pending.
  void CancelRead();

  // While idle: consume TLS 1.3 post-handshake records (session tickets, key updates) as they
  // arrive, and report application data or a close by the backend through `on_broken`
  // (called at most once). StopIdleWatch() disarms it without calling `on_broken`.
  void WatchIdle(StatusCallback on_broken);
  void StopIdleWatch();

  // Non-blocking: OK when nothing unread is waiting (TLS post-handshake records are processed
  // and do not count); kFailedPrecondition "unread_bytes" when application bytes wait;
  // kUnavailable when the backend closed the connection.
  absl::Status CheckNothingUnread();

  // The pool's hook for re-checking a pooled socket's peer certificate by OCSP (see
  // OcspChecker::Recheck): `done` runs on this socket's loop with the verdict — a
  // certificate_revoked status means the socket must be retired. Call it before
  // session_info().ocsp_valid_until minus `margin`; on an OK verdict ocsp_valid_until moves to
  // the new answer's expiry. With OCSP off or before a handshake, the verdict is OK with no
  // source. Loop-thread only, like every method.
  void RecheckOcsp(absl::Duration margin, absl::AnyInvocable<void(OcspVerdict) &&> done);

  // Rekeying by volume (rekey_after_bytes), counted per socket across all its leases: adds
  // `bytes` (sent or received) to the count and, each time `limit` more have crossed the
  // socket, sends a TLS 1.3 KeyUpdate (no new handshake) as soon as no write is pending.
  // No-op with `limit` 0 or below TLS 1.3.
  void CountBytesForKeyUpdate(uint64_t bytes, uint64_t limit);
  uint64_t key_updates_sent() const { return key_updates_sent_; }

  // Sends close_notify (best effort, never blocks) and closes the fd. Operations in flight
  // complete with kCancelled. Idempotent.
  void Close();

  bool is_open() const { return socket_.is_open() && !closed_; }
  // The connected fd, for diagnostics and tests (reading socket options back); -1 when closed.
  // Loop-thread only.
  int native_fd() { return socket_.is_open() ? socket_.native_handle() : -1; }
  const TlsSessionInfo& session_info() const { return info_; }
  // The chain the backend presented (leaf first); set once at the handshake, before the socket
  // is handed out, and immutable afterwards. Null before a successful handshake.
  const std::shared_ptr<const PeerChain>& peer_chain() const { return peer_chain_; }
  asio::io_context& io() { return io_; }
  // The context this socket was made with (a reload or file change may have replaced the
  // pool's since).
  const std::shared_ptr<const TlsClientContext>& context() const { return context_; }
  // Readable from any thread (admin listings).
  uint64_t bytes_sent() const { return bytes_sent_.load(std::memory_order_relaxed); }
  uint64_t bytes_received() const { return bytes_received_.load(std::memory_order_relaxed); }

 private:
  // Where Connect is: what the connect timer has to interrupt when it fires.
  enum class ConnectPhase { kIdle, kResolving, kTcpConnect, kHandshake, kOcsp, kDone };

  void OnResolveResult(absl::StatusOr<ResolvedEndpoints> result);
  void OnResolved(const ResolvedEndpoints& endpoints);
  void OnConnectTimer(const asio::error_code& ec);
  void DoHandshake();
  void FinishConnect(absl::Status status);
  void DoWrite();
  void DoRead();
  // Run the pending Write's / Read's callback, marking that a callback is running so a new
  // operation it issues is continued by the caller's loop instead of nesting.
  void DeliverWrite(absl::Status status);
  void DeliverRead(absl::StatusOr<std::string> result);
  // The status of a failed SSL_read; reads the error queue, so call it right away.
  absl::Status ReadFailure(int ssl_error);
  void SendDueKeyUpdate();
  void ArmIdleWatch();
  void FillSessionInfo();
  // After a resumed handshake: the policy in force now must pass on the session's chain (a
  // resumed handshake skips verification). False when it did not; the connect has failed.
  bool RecheckResumedSession();
  void StartOcspCheck();
  void OnOcspVerdict(OcspVerdict verdict);

  asio::io_context& io_;
  std::shared_ptr<const TlsClientContext> context_;
  asio::ip::tcp::socket socket_;
  asio::steady_timer connect_timer_;
  SslPtr ssl_;
  bool closed_ = false;
  bool timed_out_ = false;
  ConnectPhase connect_phase_ = ConnectPhase::kIdle;
  absl::Duration handshake_timeout_;
  absl::Time handshake_started_;

  StatusCallback connect_done_;
  std::string write_buf_;
  size_t write_offset_ = 0;
  StatusCallback write_done_;
  size_t read_max_ = 0;
  ReadCallback read_done_;
  uint64_t read_generation_ = 0;  // Bumped by CancelRead: stale read waits then do nothing.
  bool delivering_read_ = false;
  bool delivering_write_ = false;
  // An error met after bytes were read: those bytes are delivered first, the error next.
  absl::Status deferred_read_error_;
  uint64_t bytes_since_key_update_ = 0;
  bool key_update_due_ = false;
  uint64_t key_updates_sent_ = 0;
  StatusCallback idle_broken_;
  uint64_t idle_generation_ = 0;
  bool idle_wait_armed_ = false;

  std::atomic<uint64_t> bytes_sent_{0};
  std::atomic<uint64_t> bytes_received_{0};
  TlsSessionInfo info_;
  std::shared_ptr<const PeerChain> peer_chain_;
  OcspSubject ocsp_subject_;  // The peer's leaf and issuer, kept for re-checks.
};

}  // namespace tlsbroker

#endif  // BROKER_TLS_TLS_SOCKET_H_
