#ifndef BROKER_CONFIG_OPTIONS_H_
#define BROKER_CONFIG_OPTIONS_H_

// Plain option structs with defaults. The config loader (load_options.h) fills them from the
// YAML/proto config after validation; every core component copies what it needs at
// construction and never sees the proto.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace tlsbroker {

enum class CipherPolicy {
  kStrong,  // TLS 1.3 + TLS 1.2 ECDHE AEAD only.
  kWeak,    // STRONG plus legacy TLS 1.2 suites (security level 1) for old backends.
  kEnull,   // Integrity only (NULL ciphers): TLS 1.2 max, security level 0. Explicit opt-in.
};

enum class PoolMode {
  kPersistent,  // A clean socket goes back to the pool after a lease.
  kPerLease,    // Every socket is closed at the end of its (single) lease.
};

enum class OcspMode { kOff, kStapleOnly, kStapleOrQuery, kQuery };
enum class FailPolicy { kFail, kAllow };

// What happens to a leased socket whose backend certificate turns out to be revoked.
enum class RevokedLeasePolicy {
  kFinishLease,  // The lease runs to its end; the socket then closes instead of going back.
  kAbortLease,   // The lease is ended now; the caller sees UNAVAILABLE certificate_revoked.
};
// A CRL past its nextUpdate: refuse new handshakes (crl_stale) or only report it.
enum class StaleCrlPolicy { kFail, kWarn };
// What open sockets do when the client certificate, key or CA bundle files change.
enum class RotationPolicy {
  kKeepUntilLifetime,  // They live on until max_lifetime / idle_timeout as usual.
  kDrain,              // Idle ones close now, leased ones at the end of their lease.
};

struct OcspOptions {
  OcspMode mode = OcspMode::kOff;
  std::string responder_url;  // Overrides the certificate's AIA URL when set.
  FailPolicy on_unknown = FailPolicy::kFail;
  FailPolicy on_unreachable = FailPolicy::kFail;
  absl::Duration timeout = absl::Seconds(2);
  // A pooled socket's OCSP answer is re-checked this long before it expires (its nextUpdate);
  // a margin longer than the answer's lifetime re-checks at the pool's minimum interval.
  absl::Duration recheck_margin = absl::Minutes(1);
};

// TCP keepalive on a backend's sockets (config: backends[].tcp_keepalive).
struct TcpKeepaliveOptions {
  bool enabled = true;
  absl::Duration idle = absl::Seconds(60);      // TCP_KEEPIDLE, whole seconds
  absl::Duration interval = absl::Seconds(10);  // TCP_KEEPINTVL, whole seconds
  int count = 6;                                // TCP_KEEPCNT
};

// TLS policy for the broker's client side of one backend.
struct TlsOptions {
  std::string ca_file;    // PEM bundle of trusted roots (and intermediates).
  std::string cert_file;  // Client certificate chain (PEM); empty = no client certificate.
  std::string key_file;   // Client private key (PEM), possibly encrypted.
  // Alternative to cert_file + key_file: a PKCS#12 bundle holding the key, the client
  // certificate and its chain, decrypted with the password in password_file.
  std::string pkcs12_file;
  // File holding the password of pkcs12_file, and of an encrypted key_file when
  // key_password_file is not set. One line; a trailing newline is not part of the password.
  std::string password_file;
  // File holding the password of an encrypted PEM key_file (overrides password_file for it).
  std::string key_password_file;
  // Verify the backend's certificate against BackendOptions::server_name (DNS name or IP).
  bool verify_server_name = true;
  CipherPolicy encryption = CipherPolicy::kStrong;
  bool allow_null_encryption = false;  // Must be true for kEnull.
  std::string cipher_list;   // TLS <= 1.2 cipher string; overrides the policy's list.
  std::string ciphersuites;  // TLS 1.3 suites; overrides the policy's list.
  int min_version = 0;       // TLS1_2_VERSION / TLS1_3_VERSION; 0 = policy default.
  int max_version = 0;
  // MQ SSLPEER-style pattern the backend certificate's subject must match; empty = any.
  std::string peer_name;
  // Same pattern language for the issuer DN; empty = any.
  std::string issuer_name;
  // SAN rules: when non-empty, the certificate must carry at least one SAN of that type
  // matching one of the patterns (`*` allowed at the start and/or end).
  std::vector<std::string> san_dns;
  std::vector<std::string> san_ip;
  std::vector<std::string> san_uri;
  // SubjectPublicKeyInfo pins: base64 SHA-256 of the DER SPKI (as HPKP / `openssl pkey -pubout
  // -outform DER | openssl dgst -sha256 -binary | base64`). When non-empty the backend
  // certificate's key must be one of them.
  std::vector<std::string> spki_pins;
  std::vector<std::string> crl_files;  // PEM or DER CRLs.
  bool crl_check_chain = false;        // false = leaf only.
  OcspOptions ocsp;
  // Not TLS, but set on each socket at connect: kept here because the TLS client context,
  // which carries these options, is what every new socket of the backend is made from.
  TcpKeepaliveOptions tcp_keepalive;
  bool session_resumption = true;
  RevokedLeasePolicy on_revoked = RevokedLeasePolicy::kFinishLease;
  StaleCrlPolicy stale_crl = StaleCrlPolicy::kWarn;
  RotationPolicy on_rotation = RotationPolicy::kKeepUntilLifetime;
  // How often the CRL, certificate, key and CA files are checked for changes (content
  // compared, so a Kubernetes `..data` symlink swap is seen). Zero = never (Reload only).
  absl::Duration watch_interval = absl::Seconds(2);
  // Sockets are retired this long before the backend certificate's notAfter.
  absl::Duration expiry_margin = absl::Seconds(30);
};

struct PoolOptions {
  PoolMode mode = PoolMode::kPersistent;
  int min_idle = 0;
  int max_sockets = 16;
  int max_waiters = 1000;
  int max_leases_per_socket = 0;  // 0 = unlimited.
  absl::Duration acquire_timeout = absl::Seconds(5);
  absl::Duration idle_timeout = absl::Minutes(5);
  absl::Duration max_lifetime = absl::Hours(1);
  absl::Duration connect_timeout = absl::Seconds(3);
  absl::Duration handshake_timeout = absl::Seconds(5);
  absl::Duration max_lease_duration = absl::Hours(1);
  // A Call's exchange (request written to response frame read) ends after this long: the
  // socket is destroyed and the Call fails outcome_unknown. The RPC deadline wins when sooner.
  absl::Duration call_timeout = absl::Seconds(30);
  absl::Duration backoff_initial = absl::Milliseconds(100);
  absl::Duration backoff_max = absl::Seconds(10);
};

struct ClientIdOptions {
  // May contain "{ordinal}", replaced with the replica's ordinal (pod hostname suffix).
  std::string prefix = "TLSB";
  int width = 8;             // Total length of the ID (prefix + zero-padded slot number).
  bool ims_rules = true;     // 1-8 of A-Z 0-9 @ # $, not starting with "HWS".
};

struct LengthFieldFraming {
  int offset = 0;            // Bytes before the length field.
  int size = 4;              // 1, 2, 4 or 8.
  bool big_endian = true;
  // Added to the field's value to get the number of bytes that follow the length field.
  // Total frame = offset + size + value + adjustment (the well-known length-field decoder).
  int64_t adjustment = 0;
};

struct FramingOptions {
  enum class Kind { kNone, kLengthField, kDelimiter };
  Kind kind = Kind::kNone;
  LengthFieldFraming length_field;
  std::string delimiter;  // For kDelimiter: the frame ends with (and includes) this string.
  uint64_t max_frame_bytes = 16 * 1024 * 1024;
};

// One "host:port" a backend can be reached at.
struct BackendEndpoint {
  std::string address;  // host:port as configured.
  std::string host;
  uint16_t port = 0;
};

struct BackendOptions {
  std::string name;
  // The first (or only) address; with `addresses` configured, the first of them.
  std::string address;      // host:port as configured.
  std::string host;         // Parsed from address.
  uint16_t port = 0;        // Parsed from address.
  // `addresses` in configuration order, tried in that order for each new socket. Empty: the
  // single address above (see Endpoints()).
  std::vector<BackendEndpoint> endpoints;
  // What new sockets try, in order: `endpoints`, or else {address, host, port}.
  std::vector<BackendEndpoint> Endpoints() const {
    if (!endpoints.empty()) return endpoints;
    return {BackendEndpoint{address, host, port}};
  }
  std::string server_name;  // Name (or IP) to verify and to send as SNI; defaults to host.
  TlsOptions tls;
  PoolOptions pool;
  ClientIdOptions client_id;
  FramingOptions framing;
  // Caller patterns: case-sensitive, exact or a prefix ending in `*` (see CallerPatternMatches).
  std::vector<std::string> allowed_callers;
  uint64_t rekey_after_bytes = 0;  // 0 = never send KeyUpdate.
};

struct ListenTlsOptions {
  std::string cert_file;
  std::string key_file;
  std::string client_ca_file;
};

struct ListenOptions {
  std::string grpc = "127.0.0.1:7443";    // host:port or unix:/path
  std::string metrics = "127.0.0.1:9464"; // host:port for /metrics, /healthz, /readyz
  bool has_tls = false;
  ListenTlsOptions tls;
  // gRPC without TLS (loopback/unix only, explicit opt-in); callers are "local".
  bool plaintext = false;
  std::vector<std::string> admin_callers;  // Caller patterns, as allowed_callers.
  absl::Duration drain_grace_period = absl::Seconds(25);
  // gRPC connection management (config.proto, Listen). Zero keepalive_time = no server
  // pings; zero max_connection_age = connections never aged out. The loader fills
  // max_connection_age_grace from the backends when the config leaves it out.
  absl::Duration keepalive_time = absl::Seconds(60);
  absl::Duration keepalive_timeout = absl::Seconds(20);
  absl::Duration keepalive_min_client_interval = absl::Seconds(10);
  absl::Duration max_connection_age = absl::Minutes(5);
  absl::Duration max_connection_age_grace = absl::Seconds(30);
};

// Broker-wide limits (the `limits` section).
struct LimitsOptions {
  // Backend sockets open or connecting across all backends. The loader fills in the default
  // (see DefaultMaxBackendSockets in load_options.h); 0 here means unlimited.
  int max_backend_sockets = 0;
  // Leases (Lease streams and Calls, acquiring or active) one caller identity may hold at
  // once. 0 = unlimited.
  int max_leases_per_caller = 0;
};

struct BrokerOptions {
  ListenOptions listen;
  std::vector<BackendOptions> backends;
  LimitsOptions limits;
  // Found by the loader, not configured: the config and key files that group or others may
  // read or write (each reported as a warning too).
  std::vector<std::string> insecure_files;
};

}  // namespace tlsbroker

#endif  // BROKER_CONFIG_OPTIONS_H_
