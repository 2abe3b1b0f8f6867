#include "broker/config/load_options.h"

#include <arpa/inet.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "absl/strings/escaping.h"
#include "broker/config/yaml_to_json.h"
#include "broker/tls/keystore.h"
#include "broker/tls/peer_name_filter.h"
#include "broker/tls/openssl_ptr.h"
#include "google/protobuf/util/json_util.h"
#include "tlsbroker/config/v1/config.pb.h"
#include "yaml-cpp/yaml.h"

namespace tlsbroker {
namespace {

namespace pb = ::tlsbroker::config::v1;
using config_internal::YamlPosition;

constexpr char kOrdinalPlaceholder[] = "{ordinal}";
constexpr size_t kOrdinalPlaceholderSize = sizeof(kOrdinalPlaceholder) - 1;
constexpr int kImsMaxWidth = 8;
constexpr int kMaxWidth = 64;

BioPtr MemBio(const std::string& data) {
  return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

// Refuses to prompt for a passphrase: encrypted keys are not supported.
int NoPassword(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*userdata*/) { return -1; }

int CountOccurrences(absl::string_view haystack, absl::string_view needle) {
  int n = 0;
  for (size_t pos = haystack.find(needle); pos != absl::string_view::npos;
       pos = haystack.find(needle, pos + needle.size())) {
    ++n;
  }
  return n;
}

std::string Quote(absl::string_view s) { return absl::StrCat("\"", s, "\""); }

bool IsLoopbackHost(absl::string_view host) {
  if (host == "localhost" || host == "::1") return true;
  in_addr addr4;
  const std::string h(host);
  if (inet_pton(AF_INET, h.c_str(), &addr4) == 1) {
    return (ntohl(addr4.s_addr) >> 24) == 127;
  }
  return false;
}

bool IsIpLiteral(absl::string_view host) {
  const std::string h(host);
  in_addr a4;
  in6_addr a6;
  return inet_pton(AF_INET, h.c_str(), &a4) == 1 || inet_pton(AF_INET6, h.c_str(), &a6) == 1;
}

// "host:port" or "[v6]:port". Returns an explanation on failure.
std::optional<std::string> SplitHostPort(absl::string_view address, bool allow_port_zero,
                                         std::string* host, int* port) {
  absl::string_view port_text;
  if (absl::StartsWith(address, "[")) {
    const size_t close = address.find(']');
    if (close == absl::string_view::npos || close + 1 >= address.size() ||
        address[close + 1] != ':') {
      return "expected \"[ipv6]:port\"";
    }
    *host = std::string(address.substr(1, close - 1));
    port_text = address.substr(close + 2);
  } else {
    const size_t colon = address.rfind(':');
    if (colon == absl::string_view::npos) return "expected \"host:port\" (the port is missing)";
    *host = std::string(address.substr(0, colon));
    if (absl::StrContains(*host, ':')) {
      return "an IPv6 address needs brackets, e.g. \"[::1]:9999\"";
    }
    port_text = address.substr(colon + 1);
  }
  if (host->empty()) return "expected \"host:port\" (the host is missing)";
  int p = -1;
  if (port_text.empty() || !absl::ascii_isdigit(static_cast<unsigned char>(port_text[0])) ||
      !absl::SimpleAtoi(port_text, &p) || p > 65535 || p < (allow_port_zero ? 0 : 1)) {
    return absl::StrCat("port ", Quote(port_text), " is not a number from ",
                        allow_port_zero ? "0" : "1", " to 65535");
  }
  *port = p;
  return std::nullopt;
}

// The ID of slot 1, for messages (the pool formats IDs in broker/pool/client_id.h).
std::string FirstClientId(const ClientIdOptions& options) {
  const int digits = options.width - static_cast<int>(options.prefix.size());
  return absl::StrCat(options.prefix,
                      std::string(static_cast<size_t>(std::max(digits - 1, 0)), '0'), "1");
}

// A private key or config file that others may read, or group or others may write, is reported,
// not refused: Kubernetes mounts Secrets and ConfigMaps 0644 unless defaultMode says otherwise,
// and a broker that refused to start there would be worse than one that says so. Group read is
// not reported: that is how the chart gives the non-root broker its files (0440 with fsGroup).
// Returns the warning, or nothing when the file is private enough (or cannot be examined:
// reading it reports that).
std::optional<std::string> ExposedFileWarning(const std::string& file, absl::string_view what) {
  struct stat st;
  if (stat(file.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  const unsigned mode = st.st_mode & 07777;
  if ((mode & (S_IROTH | S_IWOTH | S_IWGRP)) == 0) return std::nullopt;
  char octal[8];
  std::snprintf(octal, sizeof(octal), "%04o", mode);
  return absl::StrCat(what, " ", Quote(file), " has mode ", octal, ": ",
                      (mode & (S_IWOTH | S_IWGRP)) != 0 ? "group or others may write it"
                                                          : "others may read it",
                      "; chmod 600 (or 640) it; in Kubernetes give the Secret or ConfigMap "
                      "volume defaultMode: 0440");
}

std::string FormatAsn1Time(const ASN1_TIME* t) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || ASN1_TIME_print(bio.get(), t) != 1) return "?";
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

// Checks the whole config and fills the options. One instance per load.
class Checker {
 public:
  Checker(std::map<std::string, YamlPosition> positions, std::string base_dir, int ordinal,
          ConfigReport* report)
      : positions_(std::move(positions)),
        base_dir_(std::move(base_dir)),
        ordinal_(ordinal),
        report_(report) {
    for (const ConfigError& e : report->errors) schema_error_paths_.push_back(e.field_path);
  }

  void Run(const pb::Config& config) {
    CheckListen(config);
    if (config.backends().empty()) {
      Error("backends", "at least one backend is required");
    }
    for (int i = 0; i < config.backends_size(); ++i) {
      report_->options.backends.push_back(
          CheckBackend(config.backends(i), absl::StrCat("backends[", i, "]")));
    }
    CheckUniqueNames(config);
    CheckClientIdCollisions();
    CheckLimits(config);
    CheckConnectionAgeGrace(config);
  }

 private:
  // ---- reporting ----

  // The position of `path`, or of its nearest ancestor that has one.
  YamlPosition Pos(std::string path) const {
    while (true) {
      auto it = positions_.find(path);
      if (it != positions_.end() && it->second.line > 0) return it->second;
      if (path.empty()) return YamlPosition{};
      const size_t cut = path.find_last_of(".[");
      path = cut == std::string::npos ? "" : path.substr(0, cut);
    }
  }

  void Error(const std::string& path, std::string message) {
    if (UnderSchemaError(path)) return;
    const YamlPosition p = Pos(path);
    report_->errors.push_back(ConfigError{p.line, p.column, path, std::move(message)});
  }
  // True when `path` or one of its ancestors already has a schema error.
  bool UnderSchemaError(const std::string& path) const {
    for (const std::string& bad : schema_error_paths_) {
      if (path == bad ||
          (absl::StartsWith(path, bad) && (path[bad.size()] == '.' || path[bad.size()] == '['))) {
        return true;
      }
    }
    return false;
  }

  void Warning(const std::string& path, std::string message) {
    if (UnderSchemaError(path)) return;
    const YamlPosition p = Pos(path);
    report_->warnings.push_back(ConfigError{p.line, p.column, path, std::move(message)});
  }

  static std::string Join(const std::string& path, absl::string_view field) {
    return absl::StrCat(path, ".", field);
  }

  // ---- values ----

  // A duration field: empty = `fallback`; otherwise must parse and be positive and finite.
  absl::Duration Duration(const std::string& value, const std::string& path,
                          absl::Duration fallback) {
    if (value.empty()) return fallback;
    absl::Duration d;
    if (!absl::ParseDuration(std::string(absl::StripAsciiWhitespace(value)), &d)) {
      Error(path, absl::StrCat("expected a duration such as \"300ms\", \"30s\", \"5m\" or "
                               "\"1h\", got ",
                               Quote(value)));
      return fallback;
    }
    if (d <= absl::ZeroDuration()) {
      Error(path, absl::StrCat("must be a positive duration, got ", Quote(value)));
      return fallback;
    }
    if (d == absl::InfiniteDuration()) {
      Error(path, absl::StrCat("must be a finite duration, got ", Quote(value)));
      return fallback;
    }
    return d;
  }

  std::string Resolve(const std::string& file) const {
    std::filesystem::path p(file);
    if (p.is_absolute() || base_dir_.empty()) return p.lexically_normal().string();
    return (std::filesystem::path(base_dir_) / p).lexically_normal().string();
  }

  // Reads a file named by the config; on failure reports it at `path`.
  std::optional<std::string> ReadConfigFile(const std::string& resolved, const std::string& path) {
    std::error_code ec;
    if (!std::filesystem::exists(resolved, ec)) {
      Error(path, absl::StrCat("file ", Quote(resolved), " does not exist"));
      return std::nullopt;
    }
    if (std::filesystem::is_directory(resolved, ec)) {
      Error(path, absl::StrCat(Quote(resolved), " is a directory, not a file"));
      return std::nullopt;
    }
    std::ifstream in(resolved, std::ios::binary);
    std::ostringstream contents;
    if (!in || !(contents << in.rdbuf())) {
      // An empty file also lands here (nothing to copy); that is reported by the parsers.
      if (in && in.peek() == std::ifstream::traits_type::eof()) return std::string();
      Error(path, absl::StrCat("file ", Quote(resolved), " cannot be read"));
      return std::nullopt;
    }
    return contents.str();
  }

  // A PEM file of one or more certificates. Returns them in file order (empty on error).
  std::vector<X509Ptr> Certificates(const std::string& file, const std::string& path,
                                    absl::string_view what) {
    std::vector<X509Ptr> certs;
    const std::string resolved = Resolve(file);
    const std::optional<std::string> data = ReadConfigFile(resolved, path);
    if (!data) return certs;
    const int expected = CountOccurrences(*data, "-----BEGIN CERTIFICATE-----") +
                         CountOccurrences(*data, "-----BEGIN TRUSTED CERTIFICATE-----");
    BioPtr bio = MemBio(*data);
    while (true) {
      X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, NoPassword, nullptr));
      if (!cert) break;
      certs.push_back(std::move(cert));
    }
    ERR_clear_error();
    if (certs.empty()) {
      Error(path, absl::StrCat(Quote(resolved), " holds no readable PEM certificate (", what, ")"));
    } else if (static_cast<int>(certs.size()) < expected) {
      Error(path, absl::StrCat("certificate #", certs.size() + 1, " in ", Quote(resolved),
                               " cannot be parsed"));
      certs.clear();
    }
    return certs;
  }

  EvpPkeyPtr PrivateKey(const std::string& file, const std::string& path,
                        const std::string& password_file = "", bool encrypted_allowed = false) {
    const std::string resolved = Resolve(file);
    if (encrypted_allowed) {
      // Backend client keys may be encrypted (tls.key_password_file / tls.password_file).
      if (!std::filesystem::exists(resolved)) {
        Error(path, absl::StrCat("file ", Quote(resolved), " does not exist"));
        return nullptr;
      }
      absl::StatusOr<EvpPkeyPtr> key = LoadPemPrivateKey(resolved, password_file);
      if (!key.ok()) {
        Error(path, std::string(key.status().message()));
        return nullptr;
      }
      return *std::move(key);
    }
    const std::optional<std::string> data = ReadConfigFile(resolved, path);
    if (!data) return nullptr;
    BioPtr bio = MemBio(*data);
    EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassword, nullptr));
    ERR_clear_error();
    if (!key) {
      if (absl::StrContains(*data, "ENCRYPTED")) {
        Error(path, absl::StrCat(Quote(resolved),
                                 " is an encrypted private key; give an unencrypted PEM key "
                                 "(protect the file with permissions / a Kubernetes Secret)"));
      } else {
        Error(path, absl::StrCat(Quote(resolved), " holds no readable PEM private key"));
      }
    }
    return key;
  }

  void CheckCrl(const std::string& file, const std::string& path) {
    const std::string resolved = Resolve(file);
    const std::optional<std::string> data = ReadConfigFile(resolved, path);
    if (!data) return;
    int parsed = 0;
    {
      BioPtr bio = MemBio(*data);
      while (X509CrlPtr crl{PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr)}) {
        ++parsed;
      }
    }
    if (parsed == 0) {
      BioPtr bio = MemBio(*data);
      if (X509CrlPtr crl{d2i_X509_CRL_bio(bio.get(), nullptr)}) parsed = 1;
    }
    ERR_clear_error();
    if (parsed == 0) {
      Error(path, absl::StrCat(Quote(resolved), " is not a CRL (PEM or DER)"));
    } else if (parsed < CountOccurrences(*data, "-----BEGIN X509 CRL-----")) {
      Error(path, absl::StrCat("CRL #", parsed + 1, " in ", Quote(resolved), " cannot be parsed"));
    }
  }

  void WarnIfExpired(const X509* cert, const std::string& path) {
    if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0) {
      Warning(path, absl::StrCat("the certificate expired on ",
                                 FormatAsn1Time(X509_get0_notAfter(cert))));
    } else if (X509_cmp_current_time(X509_get0_notBefore(cert)) > 0) {
      Warning(path, absl::StrCat("the certificate is not valid before ",
                                 FormatAsn1Time(X509_get0_notBefore(cert))));
    }
  }

  // A certificate chain + key pair; both or neither. Returns the resolved paths.
  void CertAndKey(const std::string& cert, const std::string& key, const std::string& path,
                  absl::string_view cert_field, absl::string_view key_field, bool required,
                  std::string* cert_out, std::string* key_out,
                  const std::string& key_password_file = "", bool encrypted_key_allowed = false) {
    const std::string cert_path = Join(path, cert_field);
    const std::string key_path = Join(path, key_field);
    if (cert.empty() && key.empty()) {
      if (required) {
        Error(cert_path, "required");
        Error(key_path, "required");
      }
      return;
    }
    if (cert.empty()) {
      Error(cert_path, absl::StrCat("required when ", key_field, " is set"));
    }
    if (key.empty()) {
      Error(key_path, absl::StrCat("required when ", cert_field, " is set"));
    }
    std::vector<X509Ptr> chain;
    EvpPkeyPtr pkey;
    if (!cert.empty()) {
      *cert_out = Resolve(cert);
      chain = Certificates(cert, cert_path, "certificate chain, leaf first");
      if (!chain.empty()) WarnIfExpired(chain.front().get(), cert_path);
    }
    if (!key.empty()) {
      *key_out = Resolve(key);
      pkey = PrivateKey(key, key_path, key_password_file, encrypted_key_allowed);
      if (pkey != nullptr) CheckPrivateFile(*key_out, key_path, "private key");
    }
    if (!chain.empty() && pkey != nullptr) {
      if (X509_check_private_key(chain.front().get(), pkey.get()) != 1) {
        Error(key_path, absl::StrCat("the key does not match the certificate in ", cert_path, " (",
                                     Quote(*cert_out), ")"));
      }
      ERR_clear_error();
    }
  }

  void CallerPatterns(const google::protobuf::RepeatedPtrField<std::string>& patterns,
                      const std::string& path, std::vector<std::string>* out) {
    for (int i = 0; i < patterns.size(); ++i) {
      const std::string& p = patterns.Get(i);
      const std::string item = absl::StrCat(path, "[", i, "]");
      if (p.empty()) {
        Error(item, "must not be empty");
      } else if (p.find('*') != std::string::npos && p.find('*') != p.size() - 1) {
        Error(item,
              absl::StrCat("`*` is allowed only at the end of a caller pattern, got ", Quote(p)));
      }
      out->push_back(p);
    }
  }

  // ---- sections ----

  void CheckLimits(const pb::Config& config) {
    const pb::Limits& in = config.limits();
    LimitsOptions& out = report_->options.limits;
    const int fd_room = MaxSocketBudgetForFdLimit();
    out.max_backend_sockets = DefaultMaxBackendSockets();
    if (in.has_max_backend_sockets()) {
      // Refused rather than clamped: a budget the fd limit cannot honour would fail as
      // EMFILE on accept() and open() under load, far from its cause; the operator raises
      // ulimit -n (or lowers the value) once, at config check time.
      if (in.max_backend_sockets() < 1) {
        Error("limits.max_backend_sockets",
              absl::StrCat("must be 1 or more, got ", in.max_backend_sockets()));
      } else if (in.max_backend_sockets() > fd_room) {
        Error("limits.max_backend_sockets",
              absl::StrCat(in.max_backend_sockets(), " is more than this process can open: the "
                           "open-file limit (RLIMIT_NOFILE) minus ", kFdReserve,
                           " kept for listeners, gRPC connections and files leaves ", fd_room,
                           "; raise ulimit -n or lower the value"));
      } else {
        out.max_backend_sockets = in.max_backend_sockets();
      }
    }
    if (in.has_max_leases_per_caller()) {
      if (in.max_leases_per_caller() < 0) {
        Error("limits.max_leases_per_caller",
              absl::StrCat("must be 0 (unlimited) or more, got ", in.max_leases_per_caller()));
      } else {
        out.max_leases_per_caller = in.max_leases_per_caller();
      }
    }
    int64_t pool_total = 0;
    int64_t min_idle_total = 0;
    for (const BackendOptions& b : report_->options.backends) {
      pool_total += b.pool.max_sockets;
      min_idle_total += b.pool.min_idle;
    }
    if (min_idle_total > out.max_backend_sockets) {
      // Some pool could never reach min_idle, and /readyz would never turn ready.
      Error(in.has_max_backend_sockets() ? "limits.max_backend_sockets" : "backends",
            absl::StrCat("the backends' pool.min_idle add up to ", min_idle_total,
                         ", more than the socket budget (limits.max_backend_sockets ",
                         out.max_backend_sockets, "): some pools could never warm up"));
    }
    if (pool_total > out.max_backend_sockets) {
      Warning(in.has_max_backend_sockets() ? "limits.max_backend_sockets" : "backends",
              absl::StrCat("the backends' pool.max_sockets add up to ", pool_total,
                           ", more than the socket budget (limits.max_backend_sockets ",
                           out.max_backend_sockets,
                           "): when it is used up, leases that no idle socket can serve fail "
                           "with RESOURCE_EXHAUSTED"));
    }
  }

  void CheckPrivateFile(const std::string& resolved, const std::string& path,
                        absl::string_view what) {
    if (std::optional<std::string> why = ExposedFileWarning(resolved, what)) {
      report_->options.insecure_files.push_back(resolved);
      Warning(path, *std::move(why));
    }
  }

  void CheckListen(const pb::Config& config) {
    ListenOptions& out = report_->options.listen;
    const pb::Listen& in = config.listen();
    if (!in.grpc().empty()) out.grpc = in.grpc();
    if (!in.metrics().empty()) out.metrics = in.metrics();
    bool grpc_loopback = false;
    if (absl::StartsWith(out.grpc, "unix:")) {
      grpc_loopback = true;
      if (out.grpc.size() == 5) Error("listen.grpc", "\"unix:\" needs a socket path");
    } else {
      std::string host;
      int port = 0;
      if (auto why = SplitHostPort(out.grpc, /*allow_port_zero=*/true, &host, &port)) {
        Error("listen.grpc", absl::StrCat(*why, ", got ", Quote(out.grpc)));
      } else {
        grpc_loopback = IsLoopbackHost(host);
      }
    }
    {
      std::string host;
      int port = 0;
      if (auto why = SplitHostPort(out.metrics, /*allow_port_zero=*/true, &host, &port)) {
        Error("listen.metrics", absl::StrCat(*why, ", got ", Quote(out.metrics)));
      }
    }
    out.has_tls = in.has_tls();
    if (in.has_tls()) {
      CertAndKey(in.tls().cert(), in.tls().key(), "listen.tls", "cert", "key",
                 /*required=*/true, &out.tls.cert_file, &out.tls.key_file);
      if (in.tls().client_ca().empty()) {
        Error("listen.tls.client_ca", "required: callers authenticate with client certificates");
      } else {
        out.tls.client_ca_file = Resolve(in.tls().client_ca());
        Certificates(in.tls().client_ca(), "listen.tls.client_ca", "CA bundle");
      }
      if (in.plaintext()) {
        Error("listen.plaintext", "cannot be true together with listen.tls");
      }
    } else if (!grpc_loopback && in.plaintext()) {
      // Anyone who can reach the port would be a trusted "local" caller.
      Error("listen.plaintext",
            absl::StrCat("allowed only on a loopback or unix: address, not ", Quote(out.grpc),
                         ": callers on the network must authenticate with mTLS (set "
                         "listen.tls)"));
    } else if (!grpc_loopback) {
      Error("listen.tls",
            absl::StrCat("required when listen.grpc (", Quote(out.grpc),
                         ") is not a loopback or unix: address: callers must authenticate "
                         "with mTLS"));
    } else if (!in.plaintext()) {
      // Unauthenticated callers only by an explicit decision, never by leaving tls out.
      Error("listen.tls",
            "required unless listen.plaintext: true (allowed only on a loopback or unix: "
            "address; callers are then identified as \"local\")");
    }
    out.plaintext = in.plaintext();
    CallerPatterns(in.admin_callers(), "listen.admin_callers", &out.admin_callers);
    out.drain_grace_period =
        Duration(in.drain_grace_period(), "listen.drain_grace_period", out.drain_grace_period);
    out.keepalive_time =
        GrpcDuration(in.keepalive_time(), "listen.keepalive_time", out.keepalive_time, true);
    out.keepalive_timeout = GrpcDuration(in.keepalive_timeout(), "listen.keepalive_timeout",
                                         out.keepalive_timeout, false);
    out.keepalive_min_client_interval =
        GrpcDuration(in.keepalive_min_client_interval(), "listen.keepalive_min_client_interval",
                     out.keepalive_min_client_interval, false);
    out.max_connection_age = GrpcDuration(in.max_connection_age(), "listen.max_connection_age",
                                          out.max_connection_age, true);
  }

  // listen.max_connection_age_grace, after the backends: its default outlasts every lease
  // they allow, and a shorter explicit value is a warning (ageing would cut such leases).
  void CheckConnectionAgeGrace(const pb::Config& config) {
    ListenOptions& out = report_->options.listen;
    absl::Duration longest = absl::Seconds(30);
    std::string longest_backend;
    for (const BackendOptions& b : report_->options.backends) {
      const absl::Duration lease =
          b.pool.acquire_timeout + std::max(b.pool.max_lease_duration, b.pool.call_timeout);
      if (lease > longest) {
        longest = lease;
        longest_backend = b.name;
      }
    }
    const std::string& grace = config.listen().max_connection_age_grace();
    out.max_connection_age_grace = GrpcDuration(grace, "listen.max_connection_age_grace",
                                                longest, false);
    if (!grace.empty() && out.max_connection_age > absl::ZeroDuration() &&
        out.max_connection_age_grace < longest && !longest_backend.empty()) {
      Warning("listen.max_connection_age_grace",
              absl::StrCat(absl::FormatDuration(out.max_connection_age_grace),
                           " is shorter than what backend ", Quote(longest_backend),
                           " allows a lease (acquire_timeout + max_lease_duration or call_timeout = ",
                           absl::FormatDuration(longest),
                           "): leases running when their connection is aged out "
                           "(listen.max_connection_age) are cut after the grace"));
    }
  }

  // A gRPC channel-argument duration: whole milliseconds in an int. `zero_means_off` allows
  // "0s" (the feature off); otherwise it must be positive.
  absl::Duration GrpcDuration(const std::string& value, const std::string& path,
                              absl::Duration fallback, bool zero_means_off) {
    const std::string text(absl::StripAsciiWhitespace(value));
    absl::Duration zero;
    if (zero_means_off && !text.empty() && absl::ParseDuration(text, &zero) &&
        zero == absl::ZeroDuration()) {
      return absl::ZeroDuration();
    }
    const absl::Duration d = Duration(value, path, fallback);
    if (d >= absl::Milliseconds(std::numeric_limits<int>::max())) {
      Error(path, absl::StrCat("must be below 24 days (gRPC counts it in 32-bit milliseconds), "
                               "got ",
                               Quote(value)));
      return fallback;
    }
    return d;
  }

  // `address` or `addresses` (exactly one), each "host:port". Fills out->endpoints (for
  // `addresses`) and address/host/port with the first.
  void CheckAddresses(const pb::Backend& in, const std::string& path,
                      BackendOptions* out) {
    const std::string who = in.name().empty() ? "this backend" : Quote(in.name());
    if (!in.address().empty() && in.addresses_size() > 0) {
      Error(Join(path, "addresses"),
            absl::StrCat("backend ", who, " sets both address and addresses; set one of them"));
      return;
    }
    if (in.address().empty() && in.addresses_size() == 0) {
      Error(Join(path, "address"),
            absl::StrCat("required for backend ", who,
                         " (\"host:port\"; or addresses: [\"host:port\", ...])"));
      return;
    }
    const bool list = in.addresses_size() > 0;
    std::vector<std::string> given;
    if (list) {
      given.assign(in.addresses().begin(), in.addresses().end());
    } else {
      given.push_back(in.address());
    }
    std::vector<BackendEndpoint> endpoints;
    bool ok = true;
    for (size_t i = 0; i < given.size(); ++i) {
      const std::string field =
          list ? absl::StrCat(Join(path, "addresses"), "[", i, "]") : Join(path, "address");
      BackendEndpoint e;
      e.address = given[i];
      int port = 0;
      if (given[i].empty()) {
        Error(field, "empty; expected \"host:port\"");
        ok = false;
      } else if (auto why = SplitHostPort(given[i], /*allow_port_zero=*/false, &e.host, &port)) {
        Error(field, absl::StrCat(*why, ", got ", Quote(given[i])));
        ok = false;
      } else {
        e.port = static_cast<uint16_t>(port);
        for (size_t j = 0; j < i; ++j) {
          if (given[j] == given[i]) {
            Error(field, absl::StrCat(Quote(given[i]), " is listed twice (also at [", j, "])"));
            ok = false;
          }
        }
      }
      endpoints.push_back(std::move(e));
    }
    if (!ok) return;
    if (list && in.server_name().empty()) {
      // One TLS context (one name to verify) serves every address of the backend.
      for (const BackendEndpoint& e : endpoints) {
        if (e.host != endpoints.front().host) {
          Error(Join(path, "server_name"),
                absl::StrCat("required when addresses name different hosts (",
                             Quote(endpoints.front().host), ", ", Quote(e.host),
                             "): the name every address's certificate carries"));
          return;
        }
      }
    }
    out->address = endpoints.front().address;
    out->host = endpoints.front().host;
    out->port = endpoints.front().port;
    if (list) out->endpoints = std::move(endpoints);
  }

  BackendOptions CheckBackend(const pb::Backend& in, const std::string& path) {
    BackendOptions out;
    out.name = in.name();
    if (in.name().empty()) {
      Error(Join(path, "name"), "required");
    } else if (!absl::ascii_isalnum(static_cast<unsigned char>(in.name()[0])) ||
               !std::all_of(in.name().begin(), in.name().end(), [](char c) {
                 return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' ||
                        c == '_' || c == '.';
               })) {
      Error(Join(path, "name"),
            absl::StrCat("must start with a letter or digit and contain only letters, digits, "
                         "'-', '_' and '.', got ",
                         Quote(in.name())));
    }
    CheckAddresses(in, path, &out);
    out.server_name = in.server_name().empty() ? out.host : in.server_name();
    CheckTls(in.tls(), Join(path, "tls"), &out.tls);
    CheckTcpKeepalive(in.tcp_keepalive(), Join(path, "tcp_keepalive"), &out.tls.tcp_keepalive);
    CheckPool(in.pool(), Join(path, "pool"), &out.pool);
    CheckClientId(in.client_id(), Join(path, "client_id"), out.pool.max_sockets, &out.client_id);
    if (in.has_framing()) CheckFraming(in.framing(), Join(path, "framing"), &out.framing);
    CallerPatterns(in.allowed_callers(), Join(path, "allowed_callers"), &out.allowed_callers);
    if (in.allowed_callers().empty()) {
      Warning(Join(path, "allowed_callers"), "empty: no caller may lease sockets of this backend");
    }
    out.rekey_after_bytes = in.rekey_after_bytes();
    if (out.rekey_after_bytes > 0 &&
        (out.tls.encryption == CipherPolicy::kEnull || out.tls.max_version == TLS1_2_VERSION)) {
      Warning(Join(path, "rekey_after_bytes"),
              "KeyUpdate needs TLS 1.3, which this backend's TLS settings rule out");
    }
    return out;
  }

  void CheckTcpKeepalive(const pb::TcpKeepalive& in, const std::string& path,
                         TcpKeepaliveOptions* out) {
    if (in.has_enabled()) out->enabled = in.enabled();
    // The kernel takes whole seconds, at most 32767 (TCP_KEEPIDLE / TCP_KEEPINTVL).
    const auto seconds = [&](const std::string& value, const std::string& field,
                             absl::Duration fallback) {
      const absl::Duration d = Duration(value, Join(path, field), fallback);
      if (d != absl::Trunc(d, absl::Seconds(1)) || d > absl::Seconds(32767)) {
        Error(Join(path, field),
              absl::StrCat("must be whole seconds from 1s to 32767s (the kernel's unit and "
                           "limit), got ",
                           Quote(value)));
        return fallback;
      }
      return d;
    };
    out->idle = seconds(in.idle(), "idle", out->idle);
    out->interval = seconds(in.interval(), "interval", out->interval);
    if (in.has_count()) {
      if (in.count() < 1 || in.count() > 127) {
        Error(Join(path, "count"),
              absl::StrCat("must be 1 to 127 (TCP_KEEPCNT), got ", in.count()));
      } else {
        out->count = in.count();
      }
    }
  }

  void CheckTls(const pb::BackendTls& in, const std::string& path, TlsOptions* out) {
    if (in.ca().empty()) {
      Error(Join(path, "ca"), "required: the CA bundle that verifies the backend");
    } else {
      out->ca_file = Resolve(in.ca());
      Certificates(in.ca(), Join(path, "ca"), "CA bundle");
    }
    CheckClientCredentials(in, path, out);
    switch (in.encryption()) {
      case pb::Encryption::WEAK:
        out->encryption = CipherPolicy::kWeak;
        break;
      case pb::Encryption::ENULL:
        out->encryption = CipherPolicy::kEnull;
        break;
      default:
        out->encryption = CipherPolicy::kStrong;
        break;
    }
    out->allow_null_encryption = in.allow_null_encryption();
    if (out->encryption == CipherPolicy::kEnull) {
      if (!in.allow_null_encryption()) {
        Error(Join(path, "encryption"),
              "ENULL sends traffic unencrypted (integrity only); set allow_null_encryption: true "
              "to opt in");
      } else {
        Warning(Join(path, "encryption"), "ENULL: traffic to this backend is not encrypted");
      }
    }
    out->cipher_list = in.cipher_list();
    out->ciphersuites = in.ciphersuites();
    auto version = [&](const std::string& value, absl::string_view field) -> int {
      if (value.empty()) return 0;
      absl::StatusOr<int> v = ParseTlsVersion(value);
      if (!v.ok()) {
        Error(Join(path, field), std::string(v.status().message()));
        return 0;
      }
      return *v;
    };
    out->min_version = version(in.min_version(), "min_version");
    out->max_version = version(in.max_version(), "max_version");
    if (out->min_version != 0 && out->max_version != 0 && out->min_version > out->max_version) {
      Error(Join(path, "min_version"), absl::StrCat("min_version ", in.min_version(),
                                                    " is above max_version ", in.max_version()));
    }
    if (out->encryption == CipherPolicy::kEnull && out->min_version == TLS1_3_VERSION) {
      Error(Join(path, "min_version"),
            "ENULL needs TLS 1.2: OpenSSL has no TLS 1.3 integrity-only suites");
    }
    out->verify_server_name = !in.has_verify_server_name() || in.verify_server_name();
    out->peer_name = in.peer_name();
    out->issuer_name = in.issuer_name();
    // Parse errors name the character position in the pattern.
    if (!in.peer_name().empty()) {
      absl::StatusOr<PeerNameFilter> f = PeerNameFilter::Parse(in.peer_name());
      if (!f.ok()) Error(Join(path, "peer_name"), std::string(f.status().message()));
    }
    if (!in.issuer_name().empty()) {
      absl::StatusOr<PeerNameFilter> f = PeerNameFilter::Parse(in.issuer_name());
      if (!f.ok()) Error(Join(path, "issuer_name"), std::string(f.status().message()));
    }
    for (const std::string& s : in.san().dns()) out->san_dns.push_back(s);
    for (int i = 0; i < in.san().ip_size(); ++i) {
      if (!IsIpLiteral(in.san().ip(i))) {
        Error(absl::StrCat(path, ".san.ip[", i, "]"),
              absl::StrCat("expected an IPv4 or IPv6 address, got ", Quote(in.san().ip(i))));
      }
      out->san_ip.push_back(in.san().ip(i));
    }
    for (const std::string& s : in.san().uri()) out->san_uri.push_back(s);
    for (int i = 0; i < in.spki_pins_size(); ++i) {
      std::string digest;
      if (!absl::Base64Unescape(in.spki_pins(i), &digest) || digest.size() != 32) {
        Error(absl::StrCat(path, ".spki_pins[", i, "]"),
              absl::StrCat("expected the base64 SHA-256 digest of a public key (44 characters), "
                           "got ",
                           Quote(in.spki_pins(i))));
      }
      out->spki_pins.push_back(in.spki_pins(i));
    }
    for (int i = 0; i < in.crl_size(); ++i) {
      out->crl_files.push_back(Resolve(in.crl(i)));
      CheckCrl(in.crl(i), absl::StrCat(path, ".crl[", i, "]"));
    }
    out->crl_check_chain = in.crl_check() == pb::CrlCheck::CHAIN;
    CheckOcsp(in.ocsp(), Join(path, "ocsp"), &out->ocsp);
    out->session_resumption = !in.has_session_resumption() || in.session_resumption();
    out->on_revoked = in.on_revoked() == pb::OnRevoked::ABORT_LEASE
                          ? RevokedLeasePolicy::kAbortLease
                          : RevokedLeasePolicy::kFinishLease;
    out->stale_crl =
        in.stale_crl() == pb::StaleCrl::FAIL ? StaleCrlPolicy::kFail : StaleCrlPolicy::kWarn;
    out->on_rotation = in.on_rotation() == pb::OnRotation::DRAIN
                           ? RotationPolicy::kDrain
                           : RotationPolicy::kKeepUntilLifetime;
    // "0s" is allowed here (and only here): it turns file watching off.
    const std::string watch(absl::StripAsciiWhitespace(in.watch_interval()));
    absl::Duration zero;
    if (!watch.empty() && absl::ParseDuration(watch, &zero) && zero == absl::ZeroDuration()) {
      out->watch_interval = absl::ZeroDuration();
    } else {
      out->watch_interval =
          Duration(in.watch_interval(), Join(path, "watch_interval"), out->watch_interval);
    }
    out->expiry_margin = Duration(in.expiry_margin(), Join(path, "expiry_margin"),
                                  out->expiry_margin);
  }

  // cert + key (the key possibly encrypted), or a PKCS#12 bundle; passwords come from files.
  void CheckClientCredentials(const pb::BackendTls& in, const std::string& path,
                              TlsOptions* out) {
    if (!in.password_file().empty()) {
      out->password_file = Resolve(in.password_file());
      CheckPrivateFile(out->password_file, Join(path, "password_file"), "password file");
    }
    if (!in.key_password_file().empty()) {
      out->key_password_file = Resolve(in.key_password_file());
      CheckPrivateFile(out->key_password_file, Join(path, "key_password_file"), "password file");
    }
    if (in.pkcs12().empty()) {
      const std::string& key_password =
          out->key_password_file.empty() ? out->password_file : out->key_password_file;
      CertAndKey(in.cert(), in.key(), path, "cert", "key", /*required=*/false, &out->cert_file,
                 &out->key_file, key_password, /*encrypted_key_allowed=*/true);
      return;
    }
    if (!in.cert().empty() || !in.key().empty()) {
      Error(Join(path, "pkcs12"), "give either pkcs12 or cert + key, not both");
      return;
    }
    out->pkcs12_file = Resolve(in.pkcs12());
    CheckPrivateFile(out->pkcs12_file, Join(path, "pkcs12"), "PKCS#12 keystore");
    if (in.password_file().empty()) {
      Error(Join(path, "password_file"), "required with pkcs12: the file holding its password");
      return;
    }
    if (!std::filesystem::exists(out->pkcs12_file)) {
      Error(Join(path, "pkcs12"), absl::StrCat("file ", Quote(out->pkcs12_file), " does not exist"));
      return;
    }
    absl::StatusOr<ClientCredentials> creds = LoadPkcs12(out->pkcs12_file, out->password_file);
    if (!creds.ok()) {
      Error(Join(path, "pkcs12"), std::string(creds.status().message()));
      return;
    }
    WarnIfExpired(creds->cert.get(), Join(path, "pkcs12"));
  }

  void CheckOcsp(const pb::Ocsp& in, const std::string& path, OcspOptions* out) {
    switch (in.mode()) {
      case pb::OcspMode::STAPLE_ONLY:
        out->mode = OcspMode::kStapleOnly;
        break;
      case pb::OcspMode::STAPLE_OR_QUERY:
        out->mode = OcspMode::kStapleOrQuery;
        break;
      case pb::OcspMode::QUERY:
        out->mode = OcspMode::kQuery;
        break;
      default:
        out->mode = OcspMode::kOff;
        break;
    }
    out->responder_url = in.responder_url();
    if (!in.responder_url().empty() && !absl::StartsWith(in.responder_url(), "http://")) {
      Error(Join(path, "responder_url"),
            absl::StrCat("expected an http:// URL, got ", Quote(in.responder_url())));
    }
    out->on_unknown =
        in.on_unknown() == pb::FailPolicy::ALLOW ? FailPolicy::kAllow : FailPolicy::kFail;
    out->on_unreachable =
        in.on_unreachable() == pb::FailPolicy::ALLOW ? FailPolicy::kAllow : FailPolicy::kFail;
    out->timeout = Duration(in.timeout(), Join(path, "timeout"), out->timeout);
    out->recheck_margin =
        Duration(in.recheck_margin(), Join(path, "recheck_margin"), out->recheck_margin);
    // Settings that the chosen mode ignores are almost always a mistake in the mode.
    if (out->mode == OcspMode::kOff &&
        (!in.responder_url().empty() || in.on_unknown() != pb::FailPolicy::UNSPECIFIED ||
         in.on_unreachable() != pb::FailPolicy::UNSPECIFIED || !in.recheck_margin().empty())) {
      Warning(Join(path, "mode"), "OCSP is OFF: the other ocsp settings have no effect");
    }
    if (out->mode == OcspMode::kStapleOnly && !in.responder_url().empty()) {
      Warning(Join(path, "responder_url"),
              "not used with mode STAPLE_ONLY (use STAPLE_OR_QUERY to fall back to it)");
    }
  }

  void CheckPool(const pb::Pool& in, const std::string& path, PoolOptions* out) {
    out->mode = in.mode() == pb::PoolMode::PER_LEASE ? PoolMode::kPerLease : PoolMode::kPersistent;
    auto non_negative = [&](bool has, int value, absl::string_view field, int* target) {
      if (!has) return;
      if (value < 0) {
        Error(Join(path, field), absl::StrCat("must be 0 or more, got ", value));
        return;
      }
      *target = value;
    };
    non_negative(in.has_min_idle(), in.min_idle(), "min_idle", &out->min_idle);
    non_negative(in.has_max_waiters(), in.max_waiters(), "max_waiters", &out->max_waiters);
    non_negative(in.has_max_leases_per_socket(), in.max_leases_per_socket(),
                 "max_leases_per_socket", &out->max_leases_per_socket);
    if (in.has_max_sockets()) {
      if (in.max_sockets() < 1) {
        Error(Join(path, "max_sockets"), absl::StrCat("must be 1 or more, got ", in.max_sockets()));
      } else {
        out->max_sockets = in.max_sockets();
      }
    }
    if (out->min_idle > out->max_sockets) {
      Error(Join(path, "min_idle"),
            absl::StrCat("min_idle (", out->min_idle, ") must not exceed max_sockets (",
                         out->max_sockets, ")"));
    }
    out->acquire_timeout =
        Duration(in.acquire_timeout(), Join(path, "acquire_timeout"), out->acquire_timeout);
    out->idle_timeout = Duration(in.idle_timeout(), Join(path, "idle_timeout"), out->idle_timeout);
    out->max_lifetime = Duration(in.max_lifetime(), Join(path, "max_lifetime"), out->max_lifetime);
    out->connect_timeout =
        Duration(in.connect_timeout(), Join(path, "connect_timeout"), out->connect_timeout);
    out->handshake_timeout =
        Duration(in.handshake_timeout(), Join(path, "handshake_timeout"), out->handshake_timeout);
    out->max_lease_duration = Duration(in.max_lease_duration(), Join(path, "max_lease_duration"),
                                       out->max_lease_duration);
    out->call_timeout = Duration(in.call_timeout(), Join(path, "call_timeout"), out->call_timeout);
    if (out->call_timeout > out->max_lease_duration) {
      // The lease is reclaimed first, so the Call would end at max_lease_duration anyway.
      Warning(Join(path, "call_timeout"),
              absl::StrCat("longer than max_lease_duration (",
                           absl::FormatDuration(out->max_lease_duration),
                           "): Calls end at max_lease_duration instead"));
    }
    out->backoff_initial =
        Duration(in.backoff_initial(), Join(path, "backoff_initial"), out->backoff_initial);
    out->backoff_max = Duration(in.backoff_max(), Join(path, "backoff_max"), out->backoff_max);
    if (out->backoff_initial > out->backoff_max) {
      Error(Join(path, "backoff_initial"), "must not exceed backoff_max");
    }
  }

  void CheckClientId(const pb::ClientId& in, const std::string& path, int max_sockets,
                     ClientIdOptions* out) {
    const std::string prefix_path = Join(path, "prefix");
    const std::string width_path = Join(path, "width");
    const std::string raw_prefix = in.has_prefix() ? in.prefix() : out->prefix;
    if (in.has_width()) out->width = in.width();
    if (in.has_ims_rules()) out->ims_rules = in.ims_rules();
    // Replace "{ordinal}"; any other brace is a typo of it.
    std::string prefix =
        absl::StrReplaceAll(raw_prefix, {{kOrdinalPlaceholder, absl::StrCat(ordinal_)}});
    out->prefix = prefix;
    bool valid = true;
    if (prefix.find_first_of("{}") != std::string::npos) {
      Error(prefix_path,
            absl::StrCat("the only placeholder is {ordinal}, got ", Quote(raw_prefix)));
      valid = false;
    }
    const int max_width = out->ims_rules ? kImsMaxWidth : kMaxWidth;
    if (out->width < 1 || out->width > max_width) {
      Error(width_path,
            absl::StrCat("must be from 1 to ", max_width,
                         out->ims_rules ? " (IMS Connect client IDs are at most 8 characters)" : "",
                         ", got ", out->width));
      valid = false;
    }
    if (valid && out->ims_rules) {
      for (char c : prefix) {
        if (absl::ascii_islower(static_cast<unsigned char>(c))) {
          Error(prefix_path,
                absl::StrCat("IMS Connect client IDs are upper case, got ", Quote(prefix)));
          valid = false;
          break;
        }
        if (!absl::ascii_isupper(static_cast<unsigned char>(c)) &&
            !absl::ascii_isdigit(static_cast<unsigned char>(c)) && c != '@' && c != '#' &&
            c != '$') {
          Error(prefix_path, absl::StrCat("character '", std::string(1, c), "' in ", Quote(prefix),
                                          " is not allowed in IMS Connect client IDs (A-Z 0-9 "
                                          "@ # $)"));
          valid = false;
          break;
        }
      }
      if (valid && absl::StartsWith(prefix, "HWS")) {
        Error(prefix_path, absl::StrCat("IMS Connect reserves client IDs starting with HWS, got ",
                                        Quote(prefix)));
        valid = false;
      }
    } else if (valid) {
      for (char c : prefix) {
        if (!absl::ascii_isgraph(static_cast<unsigned char>(c))) {
          Error(prefix_path, "must contain only printable characters without spaces");
          valid = false;
          break;
        }
      }
    }
    if (!valid) return;
    const int digits = out->width - static_cast<int>(prefix.size());
    if (digits < 1) {
      Error(prefix_path, absl::StrCat("prefix ", Quote(prefix), " (", prefix.size(),
                                      " characters) leaves no digits in width ", out->width));
      return;
    }
    // Slots are numbered from 1 (broker/pool/client_id.h), so the last ID is max_sockets.
    int64_t capacity = 1;
    for (int i = 0; i < digits && capacity < (int64_t{1} << 40); ++i) capacity *= 10;
    capacity -= 1;
    if (capacity < max_sockets) {
      Error(width_path, absl::StrCat("width ", out->width, " with prefix ", Quote(prefix),
                                     " leaves ", digits, " digit(s): ", capacity,
                                     " client IDs, fewer than max_sockets (", max_sockets, ")"));
      return;
    }
    // "{ordinal}" followed directly by the slot digits: ordinals 1 and 11 produce IDs such as
    // X1 + "100" == X11 + "00" once replicas reach two-digit ordinals.
    const size_t at = raw_prefix.find(kOrdinalPlaceholder);
    if (at != std::string::npos) {
      const size_t after = at + kOrdinalPlaceholderSize;
      if (after == raw_prefix.size() ||
          absl::ascii_isdigit(static_cast<unsigned char>(raw_prefix[after]))) {
        Warning(prefix_path,
                "\"{ordinal}\" is followed by digits: replicas whose ordinals differ in length "
                "(1 and 11) can mint the same IDs; put a letter after {ordinal} if you run 10 "
                "or more replicas");
      }
    }
    client_ids_ok_.push_back(static_cast<int>(report_->options.backends.size()));
  }

  void CheckFraming(const pb::Framing& in, const std::string& path, FramingOptions* out) {
    switch (in.kind_case()) {
      case pb::Framing::kLengthField: {
        out->kind = FramingOptions::Kind::kLengthField;
        const pb::LengthField& lf = in.length_field();
        const std::string lf_path = Join(path, "length_field");
        if (lf.offset() < 0) {
          Error(Join(lf_path, "offset"), absl::StrCat("must be 0 or more, got ", lf.offset()));
        }
        out->length_field.offset = lf.offset();
        if (lf.has_size()) {
          if (lf.size() != 1 && lf.size() != 2 && lf.size() != 4 && lf.size() != 8) {
            Error(Join(lf_path, "size"), absl::StrCat("must be 1, 2, 4 or 8, got ", lf.size()));
          }
          out->length_field.size = lf.size();
        }
        if (lf.has_big_endian()) out->length_field.big_endian = lf.big_endian();
        out->length_field.adjustment = lf.adjustment();
        break;
      }
      case pb::Framing::kDelimiter:
        out->kind = FramingOptions::Kind::kDelimiter;
        out->delimiter = in.delimiter();
        if (in.delimiter().empty()) Error(Join(path, "delimiter"), "must not be empty");
        break;
      case pb::Framing::KIND_NOT_SET:
        Error(path, "set one of length_field or delimiter (or leave framing out)");
        break;
    }
    if (in.has_max_frame_bytes()) {
      if (in.max_frame_bytes() == 0) {
        Error(Join(path, "max_frame_bytes"), "must be 1 or more");
      }
      out->max_frame_bytes = in.max_frame_bytes();
    }
  }

  void CheckUniqueNames(const pb::Config& config) {
    std::map<std::string, int> first;
    for (int i = 0; i < config.backends_size(); ++i) {
      const std::string& name = config.backends(i).name();
      if (name.empty()) continue;
      auto [it, inserted] = first.emplace(name, i);
      if (!inserted) {
        const std::string first_path = absl::StrCat("backends[", it->second, "].name");
        Error(absl::StrCat("backends[", i, "].name"),
              absl::StrCat("duplicate backend name ", Quote(name), " (first used at ", first_path,
                           ", line ", Pos(first_path).line, ")"));
      }
    }
  }

  // Backend a mints prefix_a + n (1 <= n <= max_a, zero-padded to width); b likewise. With
  // equal widths and prefix_a no longer than prefix_b, an ID is shared iff prefix_b =
  // prefix_a + s with s all digits and s * 10^(digits of b) + 1 <= max_a (the smallest n that
  // reproduces one of b's IDs).
  void CheckClientIdCollisions() {
    const std::vector<BackendOptions>& backends = report_->options.backends;
    for (size_t x = 0; x < client_ids_ok_.size(); ++x) {
      for (size_t y = x + 1; y < client_ids_ok_.size(); ++y) {
        const BackendOptions& first = backends[client_ids_ok_[x]];
        const BackendOptions& second = backends[client_ids_ok_[y]];
        if (first.client_id.width != second.client_id.width) continue;
        const bool first_shorter = first.client_id.prefix.size() <= second.client_id.prefix.size();
        const BackendOptions& a = first_shorter ? first : second;
        const BackendOptions& b = first_shorter ? second : first;
        if (!absl::StartsWith(b.client_id.prefix, a.client_id.prefix)) continue;
        const std::string rest = b.client_id.prefix.substr(a.client_id.prefix.size());
        if (!std::all_of(rest.begin(), rest.end(), [](char c) {
              return absl::ascii_isdigit(static_cast<unsigned char>(c));
            })) {
          continue;
        }
        int64_t smallest = 0;
        if (!rest.empty()) {
          // All digits and at most `width` (<= 8) of them, so this cannot fail.
          if (!absl::SimpleAtoi(rest, &smallest)) continue;
          const int b_digits = b.client_id.width - static_cast<int>(b.client_id.prefix.size());
          for (int i = 0; i < b_digits && smallest < (int64_t{1} << 40); ++i) smallest *= 10;
        }
        if (smallest + 1 > a.pool.max_sockets) continue;
        const std::string path = absl::StrCat("backends[", client_ids_ok_[y], "].client_id.prefix");
        Error(path, absl::StrCat("client IDs can collide with backend ", Quote(first.name),
                                 ": both can mint ", FirstClientId(b.client_id),
                                 "; give each backend its own prefix"));
      }
    }
  }

  std::map<std::string, YamlPosition> positions_;
  std::string base_dir_;
  int ordinal_;
  ConfigReport* report_;
  // Field paths that already have a schema (unknown field / wrong type) error.
  std::vector<std::string> schema_error_paths_;
  // Indexes of backends whose client ID settings are valid (collisions are checked among them).
  std::vector<int> client_ids_ok_;
};

std::string DirectoryOf(const std::string& path) {
  std::filesystem::path p = std::filesystem::path(path).parent_path();
  std::error_code ec;
  std::filesystem::path abs = std::filesystem::absolute(p.empty() ? "." : p, ec);
  return (ec ? p : abs).lexically_normal().string();
}

absl::Status ReportToStatus(const ConfigReport& report, absl::string_view file_name) {
  std::string text = report.FormatErrors(file_name);
  if (!text.empty() && text.back() == '\n') text.pop_back();
  return absl::InvalidArgumentError(absl::StrCat("invalid config:\n", text));
}

}  // namespace

std::string ConfigError::ToString() const {
  std::string out;
  if (line > 0) absl::StrAppend(&out, line, ":", column, ": ");
  if (!field_path.empty()) absl::StrAppend(&out, field_path, ": ");
  absl::StrAppend(&out, message);
  return out;
}

std::string ConfigReport::FormatErrors(absl::string_view file_name) const {
  std::string out;
  for (const ConfigError& e : errors) {
    if (!file_name.empty()) absl::StrAppend(&out, file_name, e.line > 0 ? ":" : ": ");
    absl::StrAppend(&out, e.ToString(), "\n");
  }
  return out;
}

int OrdinalFromHostname(absl::string_view hostname) {
  const size_t dash = hostname.rfind('-');
  if (dash == absl::string_view::npos) return 0;
  const absl::string_view suffix = hostname.substr(dash + 1);
  int ordinal = 0;
  if (suffix.empty() || suffix.size() > 6 ||
      !std::all_of(suffix.begin(), suffix.end(),
                   [](char c) { return absl::ascii_isdigit(static_cast<unsigned char>(c)); }) ||
      !absl::SimpleAtoi(suffix, &ordinal)) {
    return 0;
  }
  return ordinal;
}

int DefaultReplicaOrdinal() {
  const char* hostname = std::getenv("HOSTNAME");
  return hostname == nullptr ? 0 : OrdinalFromHostname(hostname);
}

absl::StatusOr<int> ParseTlsVersion(absl::string_view name) {
  const std::string upper = absl::AsciiStrToUpper(absl::StripAsciiWhitespace(name));
  if (upper == "TLS1.2" || upper == "TLSV1.2") return TLS1_2_VERSION;
  if (upper == "TLS1.3" || upper == "TLSV1.3") return TLS1_3_VERSION;
  return absl::InvalidArgumentError(
      absl::StrCat("expected \"TLS1.2\" or \"TLS1.3\", got \"", name, "\""));
}

ConfigReport LoadConfig(absl::string_view yaml, const std::string& base_dir, int ordinal) {
  ConfigReport report;
  report.ordinal = ordinal == kOrdinalFromHostname ? DefaultReplicaOrdinal() : ordinal;
  YAML::Node root;
  try {
    // yaml-cpp reports syntax errors only by exception; it stays inside this function.
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    const int line = e.mark.is_null() ? 0 : e.mark.line + 1;
    const int column = e.mark.is_null() ? 0 : e.mark.column + 1;
    report.errors.push_back(ConfigError{line, column, "", absl::StrCat("YAML syntax: ", e.msg)});
    return report;
  }
  config_internal::YamlToJsonResult converted =
      config_internal::YamlToJson(root, pb::Config::descriptor());
  // Fields with schema errors were left out of the JSON; the rest is still checked, with
  // errors under those fields suppressed (they would only repeat the schema error).
  report.errors = std::move(converted.errors);
  if (converted.json.empty()) return report;  // Not a mapping at all: nothing to check.
  pb::Config config;
  google::protobuf::util::JsonParseOptions parse_options;
  parse_options.ignore_unknown_fields = false;
  const auto status =
      google::protobuf::util::JsonStringToMessage(converted.json, &config, parse_options);
  if (!status.ok()) {
    // The walk above accepts only what the JSON mapping accepts; reaching this is a bug.
    report.errors.push_back(ConfigError{
        0, 0, "", absl::StrCat("internal error converting the config: ", status.ToString())});
    return report;
  }
  Checker(std::move(converted.positions), base_dir, report.ordinal, &report).Run(config);
  auto by_position = [](const ConfigError& a, const ConfigError& b) {
    return std::make_pair(a.line, a.column) < std::make_pair(b.line, b.column);
  };
  std::stable_sort(report.errors.begin(), report.errors.end(), by_position);
  std::stable_sort(report.warnings.begin(), report.warnings.end(), by_position);
  return report;
}

ConfigReport LoadConfigFile(const std::string& path, int ordinal) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream contents;
  if (!in || (in.peek() != std::ifstream::traits_type::eof() && !(contents << in.rdbuf()))) {
    ConfigReport report;
    report.ordinal = ordinal == kOrdinalFromHostname ? DefaultReplicaOrdinal() : ordinal;
    report.errors.push_back(ConfigError{0, 0, "", "cannot read the config file"});
    return report;
  }
  ConfigReport report = LoadConfig(contents.str(), DirectoryOf(path), ordinal);
  if (std::optional<std::string> why = ExposedFileWarning(path, "config file")) {
    report.options.insecure_files.push_back(path);
    report.warnings.insert(report.warnings.begin(), ConfigError{0, 0, "", *std::move(why)});
  }
  return report;
}

int MaxSocketBudgetForFdLimit() {
  struct rlimit limit;
  rlim_t soft = 1024;  // The usual default, if the limit cannot be read.
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) soft = limit.rlim_cur;
  constexpr rlim_t kCap = 1 << 30;  // RLIM_INFINITY and huge limits still fit an int.
  if (soft == RLIM_INFINITY || soft > kCap) soft = kCap;
  const int64_t room = static_cast<int64_t>(soft) - kFdReserve;
  return room > 0 ? static_cast<int>(room) : 0;
}

int DefaultMaxBackendSockets() {
  return std::max(MaxSocketBudgetForFdLimit(), kMinDefaultSocketBudget);
}

absl::StatusOr<BrokerOptions> LoadOptionsFromFile(const std::string& path, int ordinal) {
  ConfigReport report = LoadConfigFile(path, ordinal);
  if (!report.ok()) return ReportToStatus(report, path);
  return std::move(report.options);
}

absl::StatusOr<BrokerOptions> LoadOptionsFromString(absl::string_view yaml,
                                                    const std::string& base_dir, int ordinal) {
  ConfigReport report = LoadConfig(yaml, base_dir, ordinal);
  if (!report.ok()) return ReportToStatus(report, "");
  return std::move(report.options);
}

}  // namespace tlsbroker
