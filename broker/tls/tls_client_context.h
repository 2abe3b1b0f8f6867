#ifndef BROKER_TLS_TLS_CLIENT_CONTEXT_H_
#define BROKER_TLS_TLS_CLIENT_CONTEXT_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "broker/common/mutex.h"
#include "broker/config/options.h"
#include "broker/tls/ocsp_checker.h"
#include "broker/tls/openssl_ptr.h"
#include "broker/tls/peer_chain.h"
#include "broker/tls/peer_name_filter.h"

namespace tlsbroker {

// The TLS client side of one backend: CA bundle, CRLs, client credentials, protocol and cipher
// policy, server-name verification, the peer-name/SAN/issuer rules, and the backend's TLS
// session cache. Shared by all sockets of the backend (std::shared_ptr<const ...>); to rotate
// credentials build a new one — open sockets keep the context they were made with.
//
// Thread-safe. Immutable after Create() except the session cache, which has its own lock.
class TlsClientContext final {
 public:
  // `server_name` is the name (or IP literal) the backend's certificate must carry.
  static absl::StatusOr<std::shared_ptr<TlsClientContext>> Create(const TlsOptions& options,
                                                                  const std::string& server_name);
  ~TlsClientContext();
  TlsClientContext(const TlsClientContext&) = delete;
  TlsClientContext& operator=(const TlsClientContext&) = delete;

  // A new SSL for one connection: SNI (DNS names only), host/IP verification, and a cached
  // session to resume when resumption is on.
  absl::StatusOr<SslPtr> NewSsl() const;

  // Drops cached sessions (after a CRL, OCSP or credential change a resumed session would skip
  // the new checks).
  void FlushSessions() const;

  // For a handshake that resumed a session on `ssl`: re-verifies the chain the session
  // carries against this context's policy now (see the definition). OK, or the failure as
  // TlsFailure builds it ("<reason>: ...").
  absl::Status CheckResumedSession(SSL* ssl) const;

  // True when `chain` (as a pooled socket's backend presented it) contains a certificate that
  // this context's CRLs revoke (the leaf, or any certificate with crl_check CHAIN). Only
  // revocation counts here: expiry and a stale CRL are handled elsewhere. Thread-safe.
  bool IsRevoked(const PeerChain& chain) const;

  // The earliest nextUpdate of the loaded CRLs; nullopt without CRLs.
  std::optional<absl::Time> crl_next_update() const { return crl_next_update_; }

  const TlsOptions& options() const { return options_; }
  bool session_resumption() const { return options_.session_resumption; }
  bool enull() const { return options_.encryption == CipherPolicy::kEnull; }
  const std::string& server_name() const { return server_name_; }
  // notAfter of the client certificate, if one is configured.
  std::optional<absl::Time> client_cert_not_after() const { return client_not_after_; }

  // The OCSP checker of this backend; nullptr when OCSP is off.
  OcspChecker* ocsp() const { return ocsp_.get(); }

  // The reason recorded by our own checks (peer_name_mismatch, san_mismatch, issuer_mismatch,
  // spki_pin_mismatch)
  // during the handshake of `ssl`; "" when none failed.
  static std::string AppVerifyFailure(SSL* ssl);

  // Number of sessions currently cached (tests).
  size_t CachedSessionsForTest() const;
  // Copies `other`'s cached sessions into this cache (tests): a session verified under one
  // policy, offered for resumption under another.
  void AdoptSessionsForTest(const TlsClientContext& other) const;

 private:
  TlsClientContext(const TlsOptions& options, const std::string& server_name);
  absl::Status Init();
  absl::Status ConfigureProtocols();
  absl::Status LoadTrust();
  absl::Status LoadClientCredentials();
  absl::Status LoadSpkiPins();
  // Peer-name, issuer, SAN and SPKI-pin rules on the leaf; returns a reason or "".
  std::string CheckLeaf(X509* leaf) const;

  static int VerifyCallback(int preverify_ok, X509_STORE_CTX* store_ctx);
  static int NewSessionCallback(SSL* ssl, SSL_SESSION* session);

  const TlsOptions options_;
  const std::string server_name_;
  bool server_name_is_ip_ = false;
  SslCtxPtr ctx_;
  std::optional<PeerNameFilter> peer_filter_;
  std::optional<PeerNameFilter> issuer_filter_;
  std::optional<absl::Time> client_not_after_;
  std::optional<absl::Time> crl_next_update_;
  std::vector<std::string> spki_pins_;  // Raw SHA-256 digests (32 bytes each).
  std::unique_ptr<OcspChecker> ocsp_;

  mutable Mutex sessions_mu_;
  // Newest last. A handful per backend: sockets that connect together each take their own.
  mutable std::vector<SslSessionPtr> sessions_ ABSL_GUARDED_BY(sessions_mu_);
};

}  // namespace tlsbroker

#endif  // BROKER_TLS_TLS_CLIENT_CONTEXT_H_
