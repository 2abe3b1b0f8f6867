#include "broker/tls/tls_client_context.h"

#include <arpa/inet.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "broker/common/log.h"
#include "broker/common/status_macros.h"
#include "broker/tls/failure_reason.h"
#include "broker/tls/keystore.h"
#include "broker/tls/openssl_errors.h"

namespace tlsbroker {
namespace {

// TLS 1.2 suites for STRONG: forward-secret key exchange and AEAD only.
constexpr char kStrongTls12Ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
// WEAK adds CBC and static-RSA suites that old backends still need; needs security level 1.
constexpr char kWeakExtraCiphers[] =
    "ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA:"
    "ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA:AES128-GCM-SHA256:AES256-GCM-SHA384:"
    "AES128-SHA256:AES256-SHA256:AES128-SHA:AES256-SHA:@SECLEVEL=1";
// ENULL: integrity only. OpenSSL 3.0 has no TLS 1.3 NULL suites, so TLS 1.2 only, level 0.
constexpr char kEnullCiphers[] = "NULL-SHA256:ECDHE-ECDSA-NULL-SHA:ECDHE-RSA-NULL-SHA:@SECLEVEL=0";

int ContextExIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// Per-SSL slot for the reason our own verification checks failed with.
int AppReasonExIndex() {
  static const int index = SSL_get_ex_new_index(
      0, nullptr, nullptr, nullptr,
      [](void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
        delete static_cast<std::string*>(ptr);
      });
  return index;
}

bool IsIpLiteral(const std::string& name) {
  unsigned char buf[16];
  return inet_pton(AF_INET, name.c_str(), buf) == 1 || inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

absl::Status SslError(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(what, ": ", DrainOpenSslErrors()));
}

std::string Asn1StringToUtf8(const ASN1_STRING* s) {
  unsigned char* out = nullptr;
  int len = ASN1_STRING_to_UTF8(&out, s);
  if (len < 0) return "";
  std::string result(reinterpret_cast<char*>(out), len);
  OPENSSL_free(out);
  return result;
}

std::string IpToString(const ASN1_OCTET_STRING* ip) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (ip->length == 4) inet_ntop(AF_INET, ip->data, buf, sizeof(buf));
  if (ip->length == 16) inet_ntop(AF_INET6, ip->data, buf, sizeof(buf));
  return buf;
}

bool AnyMatches(const std::vector<std::string>& patterns, const std::vector<std::string>& values,
                bool case_sensitive = false) {
  for (const std::string& p : patterns) {
    for (const std::string& v : values) {
      if (case_sensitive ? CaseSensitiveWildcardMatch(p, v) : WildcardMatch(p, v)) return true;
    }
  }
  return false;
}

}  // namespace

TlsClientContext::TlsClientContext(const TlsOptions& options, const std::string& server_name)
    : options_(options), server_name_(server_name) {}

TlsClientContext::~TlsClientContext() = default;

absl::StatusOr<std::shared_ptr<TlsClientContext>> TlsClientContext::Create(
    const TlsOptions& options, const std::string& server_name) {
  std::shared_ptr<TlsClientContext> ctx(new TlsClientContext(options, server_name));
  absl::Status status = ctx->Init();
  if (!status.ok()) return status;
  return ctx;
}

absl::Status TlsClientContext::Init() {
  ERR_clear_error();
  if (options_.encryption == CipherPolicy::kEnull && !options_.allow_null_encryption) {
    return absl::InvalidArgumentError(
        "encryption ENULL sends data in clear and needs allow_null_encryption: true");
  }
  server_name_is_ip_ = IsIpLiteral(server_name_);
  ctx_.reset(SSL_CTX_new(TLS_client_method()));
  if (!ctx_) return SslError("SSL_CTX_new");
  SSL_CTX_set_ex_data(ctx_.get(), ContextExIndex(), this);
  // Partial writes let a large buffer go out in pieces as the socket drains; the buffer may
  // move between retries because the caller's string can be reallocated. Released buffers:
  // an idle pooled socket holds no 16 KiB+ read and write buffers (OpenSSL frees them once
  // empty and takes them again at the next record), which is most of its memory.
  SSL_CTX_set_mode(ctx_.get(), SSL_MODE_ENABLE_PARTIAL_WRITE |
                                   SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_options(ctx_.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);

  BROKER_RETURN_IF_ERROR(ConfigureProtocols());
  BROKER_RETURN_IF_ERROR(LoadTrust());
  BROKER_RETURN_IF_ERROR(LoadClientCredentials());
  BROKER_RETURN_IF_ERROR(LoadSpkiPins());
  if (options_.ocsp.mode != OcspMode::kOff) {
    auto checker = OcspChecker::Create(options_.ocsp, options_.ca_file);
    if (!checker.ok()) return checker.status();
    ocsp_ = *std::move(checker);
  }

  if (!options_.peer_name.empty()) {
    auto filter = PeerNameFilter::Parse(options_.peer_name);
    if (!filter.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("peer_name: ", filter.status().message()));
    }
    peer_filter_ = *std::move(filter);
  }
  if (!options_.issuer_name.empty()) {
    auto filter = PeerNameFilter::Parse(options_.issuer_name);
    if (!filter.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("issuer_name: ", filter.status().message()));
    }
    issuer_filter_ = *std::move(filter);
  }

  SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_PEER, &TlsClientContext::VerifyCallback);

  if (options_.session_resumption) {
    // Sessions are kept by this object, not OpenSSL's internal cache: a client cache is keyed by
    // nothing useful, and we want one cache per backend that FlushSessions() can clear.
    SSL_CTX_set_session_cache_mode(ctx_.get(),
                                   SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx_.get(), &TlsClientContext::NewSessionCallback);
  } else {
    SSL_CTX_set_session_cache_mode(ctx_.get(), SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx_.get(), SSL_OP_NO_TICKET);
  }
  return absl::OkStatus();
}

absl::Status TlsClientContext::ConfigureProtocols() {
  int min_version = TLS1_2_VERSION;
  int max_version = TLS1_3_VERSION;
  std::string cipher_list;
  switch (options_.encryption) {
    case CipherPolicy::kStrong:
      cipher_list = kStrongTls12Ciphers;
      break;
    case CipherPolicy::kWeak:
      cipher_list = absl::StrCat(kStrongTls12Ciphers, ":", kWeakExtraCiphers);
      break;
    case CipherPolicy::kEnull:
      cipher_list = kEnullCiphers;
      max_version = TLS1_2_VERSION;
      break;
  }
  if (options_.min_version != 0) min_version = options_.min_version;
  if (options_.max_version != 0) max_version = options_.max_version;
  if (options_.encryption == CipherPolicy::kEnull && max_version > TLS1_2_VERSION) {
    return absl::InvalidArgumentError(
        "encryption ENULL needs max_version TLS1.2: OpenSSL has no TLS 1.3 NULL suites");
  }
  if (!options_.cipher_list.empty()) cipher_list = options_.cipher_list;
  if (SSL_CTX_set_min_proto_version(ctx_.get(), min_version) != 1 ||
      SSL_CTX_set_max_proto_version(ctx_.get(), max_version) != 1) {
    return SslError("setting the TLS protocol versions");
  }
  if (SSL_CTX_set_cipher_list(ctx_.get(), cipher_list.c_str()) != 1) {
    return SslError(absl::StrCat("cipher list \"", cipher_list, "\" selects no cipher"));
  }
  if (!options_.ciphersuites.empty() &&
      SSL_CTX_set_ciphersuites(ctx_.get(), options_.ciphersuites.c_str()) != 1) {
    return SslError(absl::StrCat("ciphersuites \"", options_.ciphersuites, "\" selects no suite"));
  }
  return absl::OkStatus();
}

absl::Status TlsClientContext::LoadTrust() {
  if (options_.ca_file.empty()) {
    return absl::InvalidArgumentError("tls.ca is required: the backend must be verified");
  }
  if (SSL_CTX_load_verify_locations(ctx_.get(), options_.ca_file.c_str(), nullptr) != 1) {
    return SslError(absl::StrCat("loading CA bundle ", options_.ca_file));
  }
  X509_STORE* store = SSL_CTX_get_cert_store(ctx_.get());  // get0: owned by ctx_.
  // A rotated bundle that came out empty must not leave the backend trusting nothing.
  if (sk_X509_OBJECT_num(X509_STORE_get0_objects(store)) == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("CA bundle ", options_.ca_file, " holds no certificate"));
  }
  auto note_next_update = [this](const X509_CRL* crl) {
    const ASN1_TIME* next = X509_CRL_get0_nextUpdate(crl);
    struct tm tm_next;
    if (next == nullptr || ASN1_TIME_to_tm(next, &tm_next) != 1) return;
    absl::Time t = absl::FromTM(tm_next, absl::UTCTimeZone());
    if (!crl_next_update_ || t < *crl_next_update_) crl_next_update_ = t;
  };
  for (const std::string& path : options_.crl_files) {
    BioPtr bio(BIO_new_file(path.c_str(), "r"));
    if (!bio) return SslError(absl::StrCat("opening CRL ", path));
    int loaded = 0;
    while (true) {
      X509CrlPtr crl(PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr));
      if (!crl) break;
      if (X509_STORE_add_crl(store, crl.get()) != 1) return SslError("adding CRL");
      note_next_update(crl.get());
      ++loaded;
    }
    ERR_clear_error();  // End of the PEM stream is reported as an error; it is not one.
    if (loaded == 0) {
      // Not PEM: try DER.
      BioPtr der(BIO_new_file(path.c_str(), "rb"));
      X509CrlPtr crl(der ? d2i_X509_CRL_bio(der.get(), nullptr) : nullptr);
      if (!crl) return SslError(absl::StrCat("CRL ", path, " is neither PEM nor DER"));
      if (X509_STORE_add_crl(store, crl.get()) != 1) return SslError("adding CRL");
      note_next_update(crl.get());
    }
  }
  if (!options_.crl_files.empty()) {
    unsigned long flags = X509_V_FLAG_CRL_CHECK;
    if (options_.crl_check_chain) flags |= X509_V_FLAG_CRL_CHECK_ALL;
    X509_STORE_set_flags(store, flags);
  }
  return absl::OkStatus();
}

absl::Status TlsClientContext::LoadClientCredentials() {
  if (!options_.pkcs12_file.empty()) {
    // Certificate, key and chain from one bundle; the chain goes out after the leaf.
    absl::StatusOr<ClientCredentials> creds =
        LoadPkcs12(options_.pkcs12_file, options_.password_file);
    if (!creds.ok()) return creds.status();
    if (SSL_CTX_use_certificate(ctx_.get(), creds->cert.get()) != 1 ||
        SSL_CTX_use_PrivateKey(ctx_.get(), creds->key.get()) != 1) {
      return SslError(absl::StrCat("using the credentials of ", options_.pkcs12_file));
    }
    for (const X509Ptr& c : creds->chain) {
      if (SSL_CTX_add1_chain_cert(ctx_.get(), c.get()) != 1) {
        return SslError(absl::StrCat("adding the chain of ", options_.pkcs12_file));
      }
    }
  } else {
    if (options_.cert_file.empty()) return absl::OkStatus();
    if (SSL_CTX_use_certificate_chain_file(ctx_.get(), options_.cert_file.c_str()) != 1) {
      return SslError(absl::StrCat("loading client certificate ", options_.cert_file));
    }
    // An encrypted key is decrypted with key_password_file, else password_file.
    const std::string& password_file = options_.key_password_file.empty()
                                           ? options_.password_file
                                           : options_.key_password_file;
    absl::StatusOr<EvpPkeyPtr> key = LoadPemPrivateKey(options_.key_file, password_file);
    if (!key.ok()) return key.status();
    if (SSL_CTX_use_PrivateKey(ctx_.get(), key->get()) != 1) {
      return SslError(absl::StrCat("loading client key ", options_.key_file));
    }
  }
  if (SSL_CTX_check_private_key(ctx_.get()) != 1) {
    return SslError(absl::StrCat("client key ", options_.key_file,
                                 " does not match the client certificate ", options_.cert_file));
  }
  X509* cert = SSL_CTX_get0_certificate(ctx_.get());  // get0: borrowed.
  if (cert != nullptr) {
    struct tm tm_after;
    if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm_after) == 1) {
      client_not_after_ = absl::FromTM(tm_after, absl::UTCTimeZone());
    }
  }
  return absl::OkStatus();
}

absl::Status TlsClientContext::LoadSpkiPins() {
  for (const std::string& pin : options_.spki_pins) {
    std::string digest;
    if (!absl::Base64Unescape(pin, &digest) || digest.size() != 32) {
      return absl::InvalidArgumentError(absl::StrCat(
          "spki_pins: \"", pin, "\" is not a base64 SHA-256 digest (44 characters)"));
    }
    spki_pins_.push_back(std::move(digest));
  }
  return absl::OkStatus();
}

absl::StatusOr<SslPtr> TlsClientContext::NewSsl() const {
  ERR_clear_error();
  SslPtr ssl(SSL_new(ctx_.get()));
  if (!ssl) return SslError("SSL_new");
  if (options_.verify_server_name) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl.get());  // get0: owned by ssl.
    if (server_name_is_ip_) {
      if (X509_VERIFY_PARAM_set1_ip_asc(param, server_name_.c_str()) != 1) {
        return SslError("setting the IP to verify");
      }
    } else {
      X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      if (SSL_set1_host(ssl.get(), server_name_.c_str()) != 1) {
        return SslError("setting the host name to verify");
      }
    }
  }
  // Ask for a stapled OCSP response unless the responder is always asked anyway.
  if (ocsp_ != nullptr && options_.ocsp.mode != OcspMode::kQuery) {
    SSL_set_tlsext_status_type(ssl.get(), TLSEXT_STATUSTYPE_ocsp);
  }
  // SNI carries DNS names only (RFC 6066).
  if (!server_name_is_ip_ && !server_name_.empty()) {
    SSL_set_tlsext_host_name(ssl.get(), server_name_.c_str());
  }
  if (options_.session_resumption) {
    MutexLock lock(&sessions_mu_);
    if (!sessions_.empty()) {
      // TLS 1.3 tickets are meant for one use: take the newest, keep it only if it is the last
      // one (better a reused ticket than a full handshake; the server may refuse it).
      SSL_SESSION* session = sessions_.back().get();
      if (SSL_SESSION_is_resumable(session)) {
        // Each socket gets its own copy: OpenSSL writes to the session object during TLS 1.3
        // handshakes and ticket handling, and sockets on two loops may handshake at once.
        SslSessionPtr own(SSL_SESSION_dup(session));
        if (own) SSL_set_session(ssl.get(), own.get());  // Takes its own reference.
      }
      if (sessions_.size() > 1) sessions_.pop_back();
    }
  }
  return ssl;
}

void TlsClientContext::FlushSessions() const {
  MutexLock lock(&sessions_mu_);
  sessions_.clear();
}

size_t TlsClientContext::CachedSessionsForTest() const {
  MutexLock lock(&sessions_mu_);
  return sessions_.size();
}

void TlsClientContext::AdoptSessionsForTest(const TlsClientContext& other) const {
  std::vector<SslSessionPtr> copies;
  {
    MutexLock lock(&other.sessions_mu_);
    for (const SslSessionPtr& session : other.sessions_) {
      copies.emplace_back(SSL_SESSION_dup(session.get()));
    }
  }
  MutexLock lock(&sessions_mu_);
  for (SslSessionPtr& copy : copies) {
    if (copy) sessions_.push_back(std::move(copy));
  }
}

int TlsClientContext::NewSessionCallback(SSL* ssl, SSL_SESSION* session) {
  auto* self = static_cast<TlsClientContext*>(
      SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ContextExIndex()));
  if (self == nullptr) return 0;
  // Cache a copy, never the connection's own session object: the connection that received
  // the ticket keeps using (and may change) that one on its own loop.
  SslSessionPtr copy(SSL_SESSION_dup(session));
  if (!copy) return 0;
  MutexLock lock(&self->sessions_mu_);
  constexpr size_t kMaxSessions = 16;
  if (self->sessions_.size() >= kMaxSessions) self->sessions_.erase(self->sessions_.begin());
  self->sessions_.push_back(std::move(copy));
  return 0;  // The connection keeps its reference to `session`.
}

absl::Status TlsClientContext::CheckResumedSession(SSL* ssl) const {
  // A resumed handshake skips certificate verification: the chain the session carries was
  // checked against the policy of the day it was first verified. Check it again against the
  // policy in force now, exactly as libssl would on a full handshake (same store, purpose,
  // host/IP parameters and verify callback), so trust, CRLs and their staleness, expiry, the
  // server name, the peer-name/issuer/SAN rules and the SPKI pins all apply.
  X509* leaf = SSL_get0_peer_certificate(ssl);  // get0: owned by the session.
  if (leaf == nullptr) {
    return TlsFailure("bad_certificate", "the resumed session carries no backend certificate");
  }
  STACK_OF(X509)* sent = SSL_get_peer_cert_chain(ssl);  // Borrowed; starts with the leaf.
  X509_STORE* store = SSL_CTX_get_cert_store(ctx_.get());  // get0: owned by ctx_.
  std::unique_ptr<X509_STORE_CTX, void (*)(X509_STORE_CTX*)> verify(X509_STORE_CTX_new(),
                                                                    &X509_STORE_CTX_free);
  ERR_clear_error();
  if (!verify || X509_STORE_CTX_init(verify.get(), store, leaf, sent) != 1 ||
      X509_STORE_CTX_set_ex_data(verify.get(), SSL_get_ex_data_X509_STORE_CTX_idx(), ssl) != 1 ||
      X509_STORE_CTX_set_default(verify.get(), "ssl_server") != 1 ||
      X509_VERIFY_PARAM_set1(X509_STORE_CTX_get0_param(verify.get()), SSL_get0_param(ssl)) != 1) {
    return TlsFailure("handshake_failed",
                      absl::StrCat("re-checking the resumed session: ", DrainOpenSslErrors()));
  }
  X509_STORE_CTX_set_verify_cb(verify.get(), &TlsClientContext::VerifyCallback);
  if (X509_verify_cert(verify.get()) == 1) {
    ERR_clear_error();
    return absl::OkStatus();
  }
  const int error = X509_STORE_CTX_get_error(verify.get());
  std::string reason = AppVerifyFailure(ssl);
  if (reason.empty()) reason = std::string(ReasonForVerifyError(error));
  ERR_clear_error();
  return TlsFailure(reason, absl::StrCat("the resumed session no longer passes the policy: ",
                                         reason == "handshake_failed" || error == X509_V_OK
                                             ? "verification failed"
                                             : X509_verify_cert_error_string(error)));
}

std::string TlsClientContext::AppVerifyFailure(SSL* ssl) {
  auto* reason = static_cast<std::string*>(SSL_get_ex_data(ssl, AppReasonExIndex()));
  return reason == nullptr ? "" : *reason;
}

bool TlsClientContext::IsRevoked(const PeerChain& chain) const {
  if (options_.crl_files.empty() || chain.empty()) return false;
  X509_STORE* store = SSL_CTX_get_cert_store(ctx_.get());  // get0: owned by ctx_.
  // The rest of the chain as untrusted intermediates; the store supplies the anchors. The
  // stack borrows the certificates (sk_X509_free does not free them).
  std::unique_ptr<STACK_OF(X509), void (*)(STACK_OF(X509)*)> untrusted(
      sk_X509_new_null(), [](STACK_OF(X509)* sk) { sk_X509_free(sk); });
  if (!untrusted) return false;
  for (size_t i = 1; i < chain.certs().size(); ++i) {
    sk_X509_push(untrusted.get(), chain.certs()[i].get());
  }
  std::unique_ptr<X509_STORE_CTX, void (*)(X509_STORE_CTX*)> verify(X509_STORE_CTX_new(),
                                                                    &X509_STORE_CTX_free);
  if (!verify || X509_STORE_CTX_init(verify.get(), store, chain.leaf(), untrusted.get()) != 1) {
    ERR_clear_error();
    return false;
  }
  // Everything but a revocation is tolerated: this asks one question only. (The CRL flags
  // come from the store, so LEAF/CHAIN is the same as at the handshake.)
  X509_STORE_CTX_set_verify_cb(verify.get(), [](int ok, X509_STORE_CTX* ctx) -> int {
    return ok || X509_STORE_CTX_get_error(ctx) != X509_V_ERR_CERT_REVOKED ? 1 : 0;
  });
  int result = X509_verify_cert(verify.get());
  bool revoked = result <= 0 && X509_STORE_CTX_get_error(verify.get()) == X509_V_ERR_CERT_REVOKED;
  ERR_clear_error();
  return revoked;
}

int TlsClientContext::VerifyCallback(int preverify_ok, X509_STORE_CTX* store_ctx) {
  if (!preverify_ok) {
    // A CRL past its nextUpdate is still the best list there is; with stale_crl WARN it is
    // used as it is (the pool reports it through metrics and the log).
    if (X509_STORE_CTX_get_error(store_ctx) != X509_V_ERR_CRL_HAS_EXPIRED) return 0;
    auto* ssl = static_cast<SSL*>(
        X509_STORE_CTX_get_ex_data(store_ctx, SSL_get_ex_data_X509_STORE_CTX_idx()));
    auto* self = static_cast<TlsClientContext*>(
        SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ContextExIndex()));
    return self != nullptr && self->options_.stale_crl == StaleCrlPolicy::kWarn ? 1 : 0;
  }
  if (X509_STORE_CTX_get_error_depth(store_ctx) != 0) return 1;
  auto* ssl = static_cast<SSL*>(
      X509_STORE_CTX_get_ex_data(store_ctx, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* self = static_cast<TlsClientContext*>(
      SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ContextExIndex()));
  if (self == nullptr) return 1;
  std::string reason = self->CheckLeaf(X509_STORE_CTX_get_current_cert(store_ctx));
  if (reason.empty()) return 1;
  SSL_set_ex_data(ssl, AppReasonExIndex(), new std::string(reason));
  X509_STORE_CTX_set_error(store_ctx, X509_V_ERR_APPLICATION_VERIFICATION);
  return 0;
}

std::string TlsClientContext::CheckLeaf(X509* leaf) const {
  if (peer_filter_.has_value() &&
      !peer_filter_->Matches(PeerAttributesFromCertificate(leaf))) {
    return "peer_name_mismatch";
  }
  if (issuer_filter_.has_value() &&
      !issuer_filter_->Matches(DnAttributesFromX509Name(X509_get_issuer_name(leaf)))) {
    return "issuer_mismatch";
  }
  if (!spki_pins_.empty()) {
    // SHA-256 over the DER SubjectPublicKeyInfo, as HPKP and curl's --pinnedpubkey.
    unsigned char* der = nullptr;
    const int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(leaf), &der);
    std::string digest(SHA256_DIGEST_LENGTH, '\0');
    bool pinned = false;
    if (len > 0) {
      SHA256(der, len, reinterpret_cast<unsigned char*>(digest.data()));
      for (const std::string& pin : spki_pins_) pinned = pinned || pin == digest;
    }
    OPENSSL_free(der);
    if (!pinned) return "spki_pin_mismatch";
  }
  if (options_.san_dns.empty() && options_.san_ip.empty() && options_.san_uri.empty()) return "";
  std::vector<std::string> dns, ips, uris;
  GeneralNamesPtr names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(leaf, NID_subject_alt_name, nullptr, nullptr)));
  if (names) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
      if (name->type == GEN_DNS) dns.push_back(Asn1StringToUtf8(name->d.dNSName));
      if (name->type == GEN_URI) uris.push_back(Asn1StringToUtf8(name->d.uniformResourceIdentifier));
      if (name->type == GEN_IPADD) ips.push_back(IpToString(name->d.iPAddress));
    }
  }
  if (!options_.san_dns.empty() && !AnyMatches(options_.san_dns, dns)) return "san_mismatch";
  if (!options_.san_ip.empty() && !AnyMatches(options_.san_ip, ips)) return "san_mismatch";
  // URI paths (SPIFFE IDs) are case-sensitive: "…/backend/*" must not admit "…/BACKEND/x".
  if (!options_.san_uri.empty() && !AnyMatches(options_.san_uri, uris, /*case_sensitive=*/true)) {
    return "san_mismatch";
  }
  return "";
}

}  // namespace tlsbroker
