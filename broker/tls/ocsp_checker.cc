#include "broker/tls/ocsp_checker.h"

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/x509v3.h>

#include <algorithm>

#include <asio/post.hpp>

#include "absl/strings/str_cat.h"
#include "broker/tls/failure_reason.h"
#include "broker/tls/ocsp_http.h"
#include "broker/tls/openssl_errors.h"

namespace tlsbroker {
namespace {

// Clock skew tolerated on thisUpdate/nextUpdate (the responder's clock and ours differ).
constexpr long kValiditySkewSeconds = 300;
// How long an answer without nextUpdate (and any "unknown" answer) is reused: RFC 6960 says
// newer information is always available then, but re-asking on every handshake would hammer
// the responder.
constexpr absl::Duration kNoNextUpdateLifetime = absl::Minutes(5);
// The cache is bounded so that a backend cycling through certificates cannot grow it forever.
constexpr size_t kMaxCacheEntries = 4096;

struct StackOfX509Deleter {
  void operator()(STACK_OF(X509) * s) const { sk_X509_free(s); }  // Borrowed elements.
};

absl::Time Asn1ToTime(const ASN1_GENERALIZEDTIME* t) {
  struct tm tm;
  if (ASN1_TIME_to_tm(t, &tm) != 1) return absl::InfinitePast();
  return absl::FromTM(tm, absl::UTCTimeZone());
}

std::string CertIdKey(OCSP_CERTID* id) {
  unsigned char* der = nullptr;
  int len = i2d_OCSP_CERTID(id, &der);
  if (len <= 0) return "";
  std::string key(reinterpret_cast<char*>(der), len);
  OPENSSL_free(der);
  return key;
}

const char* StatusName(int status) {
  switch (status) {
    case V_OCSP_CERTSTATUS_GOOD:
      return "good";
    case V_OCSP_CERTSTATUS_REVOKED:
      return "revoked";
    default:
      return "unknown";
  }
}

}  // namespace

struct OcspChecker::Shared {
  OcspOptions options;
  X509StorePtr trust;  // The backend's CA bundle, without CRL flags.
  mutable Mutex mu;
  std::map<std::string, CacheEntry> cache ABSL_GUARDED_BY(mu);
  // Queries in flight by certificate ID, with everyone waiting for their answer: sockets that
  // connect together (a prewarmed pool) or re-check together share one query.
  std::map<std::string, std::vector<Done>> in_flight ABSL_GUARDED_BY(mu);

  // Hands `verdict` to every waiter of the query for `key`.
  void Complete(const std::string& key, const OcspVerdict& verdict) {
    std::vector<Done> waiters;
    {
      MutexLock lock(&mu);
      auto it = in_flight.find(key);
      if (it == in_flight.end()) return;
      waiters = std::move(it->second);
      in_flight.erase(it);
    }
    for (Done& done : waiters) std::move(done)(verdict);
  }

  // The verdict for a known certificate status under this backend's policy.
  OcspVerdict Decide(int status, int reason, absl::Time valid_until, std::string source) const {
    OcspVerdict v;
    v.source = std::move(source);
    v.cert_status = StatusName(status);
    v.valid_until = valid_until;
    if (status == V_OCSP_CERTSTATUS_REVOKED) {
      v.status = TlsFailure(
          "certificate_revoked",
          absl::StrCat("OCSP (", v.source, ") says the backend certificate is revoked",
                       reason >= 0 ? absl::StrCat(" (", OCSP_crl_reason_str(reason), ")") : ""));
    } else if (status != V_OCSP_CERTSTATUS_GOOD && options.on_unknown == FailPolicy::kFail) {
      v.status = TlsFailure("ocsp_unknown", absl::StrCat("the OCSP responder (", v.source,
                                                         ") does not know the backend "
                                                         "certificate (on_unknown: FAIL)"));
    }
    return v;
  }

  OcspVerdict Invalid(std::string source, absl::string_view detail) const {
    OcspVerdict v;
    v.source = std::move(source);
    v.cert_status = "invalid";
    v.status = TlsFailure("ocsp_invalid", absl::StrCat("OCSP response (", v.source, "): ", detail));
    return v;
  }

  OcspVerdict Unreachable(absl::string_view detail) const {
    OcspVerdict v;
    v.source = "none";
    v.cert_status = "unreachable";
    if (options.on_unreachable == FailPolicy::kFail) {
      v.status = TlsFailure("ocsp_unreachable", absl::StrCat(detail, " (on_unreachable: FAIL)"));
    }
    return v;
  }

  // Verifies `der` as the answer for `subject` and caches it. Never throws away the reason:
  // every failure names what was wrong with the response.
  OcspVerdict Evaluate(const OcspSubject& subject, const std::string& der, std::string source) {
    ERR_clear_error();
    const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
    OcspResponsePtr resp(d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(der.size())));
    if (!resp) return Invalid(source, "not a DER OCSP response");
    const int rs = OCSP_response_status(resp.get());
    if (rs != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
      return Invalid(source, absl::StrCat("the responder answered \"",
                                          OCSP_response_status_str(rs), "\""));
    }
    OcspBasicRespPtr basic(OCSP_response_get1_basic(resp.get()));
    if (!basic) return Invalid(source, "no basic response");
    // The issuer helps build the signer's chain when the responder is a delegate of it.
    std::unique_ptr<STACK_OF(X509), StackOfX509Deleter> untrusted(sk_X509_new_null());
    if (untrusted) sk_X509_push(untrusted.get(), subject.issuer.get());
    if (OCSP_basic_verify(basic.get(), untrusted.get(), trust.get(), 0) <= 0) {
      return Invalid(source, absl::StrCat("signature not trusted: ", DrainOpenSslErrors()));
    }
    OcspCertIdPtr id(OCSP_cert_to_id(nullptr, subject.leaf.get(), subject.issuer.get()));
    if (!id) return Invalid(source, "cannot compute the certificate ID");
    int status = -1, reason = -1;
    ASN1_GENERALIZEDTIME *revoked_at = nullptr, *this_update = nullptr, *next_update = nullptr;
    if (OCSP_resp_find_status(basic.get(), id.get(), &status, &reason, &revoked_at, &this_update,
                              &next_update) != 1) {
      return Invalid(source, "it has no status for the backend certificate");
    }
    if (OCSP_check_validity(this_update, next_update, kValiditySkewSeconds, -1) != 1) {
      DrainOpenSslErrors();
      return Invalid(source, "out of date (thisUpdate/nextUpdate do not cover now)");
    }
    absl::Time valid_until = next_update != nullptr ? Asn1ToTime(next_update)
                                                    : absl::Now() + kNoNextUpdateLifetime;
    // "unknown" is often a certificate the responder has not heard of yet: ask again soon
    // rather than refusing a freshly issued backend certificate for a whole nextUpdate period.
    if (status == V_OCSP_CERTSTATUS_UNKNOWN) {
      valid_until = std::min(valid_until, absl::Now() + kNoNextUpdateLifetime);
    }
    Store(CertIdKey(id.get()), CacheEntry{status, reason, valid_until});
    return Decide(status, reason, valid_until, std::move(source));
  }

  void Store(const std::string& key, const CacheEntry& entry) {
    if (key.empty()) return;
    MutexLock lock(&mu);
    if (cache.size() >= kMaxCacheEntries && cache.find(key) == cache.end()) {
      const absl::Time now = absl::Now();
      for (auto it = cache.begin(); it != cache.end();) {
        it = it->second.valid_until <= now ? cache.erase(it) : std::next(it);
      }
      if (cache.size() >= kMaxCacheEntries) cache.erase(cache.begin());
    }
    cache[key] = entry;
  }

  // The cached answer if it stays valid for longer than `margin`.
  std::optional<OcspVerdict> Cached(const OcspSubject& subject, absl::Duration margin) {
    OcspCertIdPtr id(OCSP_cert_to_id(nullptr, subject.leaf.get(), subject.issuer.get()));
    if (!id) return std::nullopt;
    const std::string key = CertIdKey(id.get());
    CacheEntry entry;
    {
      MutexLock lock(&mu);
      auto it = cache.find(key);
      if (it == cache.end()) return std::nullopt;
      if (it->second.valid_until <= absl::Now() + margin) {
        if (it->second.valid_until <= absl::Now()) cache.erase(it);
        return std::nullopt;
      }
      entry = it->second;
    }
    return Decide(entry.status, entry.reason, entry.valid_until, "cache");
  }
};

absl::StatusOr<std::unique_ptr<OcspChecker>> OcspChecker::Create(const OcspOptions& options,
                                                                  const std::string& ca_file) {
  if (!options.responder_url.empty()) {
    absl::StatusOr<HttpUrl> url = ParseHttpUrl(options.responder_url);
    if (!url.ok()) return url.status();
  }
  if (options.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("ocsp.timeout must be positive");
  }
  auto shared = std::make_shared<Shared>();
  shared->options = options;
  shared->trust.reset(X509_STORE_new());
  ERR_clear_error();
  if (!shared->trust || X509_STORE_load_file(shared->trust.get(), ca_file.c_str()) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("OCSP: loading CA bundle ", ca_file, ": ", DrainOpenSslErrors()));
  }
  return std::unique_ptr<OcspChecker>(new OcspChecker(options, std::move(shared)));
}

OcspChecker::OcspChecker(const OcspOptions& options, std::shared_ptr<Shared> shared)
    : options_(options), shared_(std::move(shared)) {
  if (options_.mode == OcspMode::kStapleOrQuery || options_.mode == OcspMode::kQuery) {
    io_ = std::make_shared<asio::io_context>(1);
    work_.emplace(io_->get_executor());
    // The thread holds the io_context too, so it may outlive this object if it is detached.
    thread_ = std::thread([io = io_] { io->run(); });
  }
}

OcspChecker::~OcspChecker() {
  if (!io_) return;
  work_.reset();
  io_->stop();
  // The last owner may be a handler on the worker itself: it cannot join its own thread.
  if (thread_.get_id() == std::this_thread::get_id()) {
    thread_.detach();
  } else {
    thread_.join();
  }
}

size_t OcspChecker::CachedForTest() const {
  MutexLock lock(&shared_->mu);
  return shared_->cache.size();
}

void OcspChecker::Check(OcspSubject subject, std::string staple, Done done) {
  const bool may_query =
      options_.mode == OcspMode::kStapleOrQuery || options_.mode == OcspMode::kQuery;
  if (!subject.leaf || !subject.issuer) {
    std::move(done)(shared_->Invalid("none", "the backend certificate's issuer is unknown"));
    return;
  }
  // QUERY ignores staples: the operator asked for the responder's own answer.
  if (!staple.empty() && options_.mode != OcspMode::kQuery) {
    OcspVerdict v = shared_->Evaluate(subject, staple, "staple");
    // A broken staple is not the last word when the responder can be asked.
    if (v.cert_status != "invalid" || !may_query) {
      std::move(done)(std::move(v));
      return;
    }
  }
  if (std::optional<OcspVerdict> cached = shared_->Cached(subject, absl::ZeroDuration())) {
    std::move(done)(*std::move(cached));
    return;
  }
  if (!may_query) {
    // STAPLE_ONLY without a staple: the backend gave no answer at all.
    OcspVerdict v;
    v.source = "none";
    v.cert_status = "unknown";
    if (options_.on_unknown == FailPolicy::kFail) {
      v.status = TlsFailure("ocsp_unknown",
                            "the backend stapled no OCSP response (mode STAPLE_ONLY, "
                            "on_unknown: FAIL)");
    }
    std::move(done)(std::move(v));
    return;
  }
  Query(std::move(subject), std::move(done));
}

void OcspChecker::Recheck(OcspSubject subject, absl::Duration margin, Done done) {
  if (!subject.leaf || !subject.issuer) {
    std::move(done)(shared_->Invalid("none", "the backend certificate's issuer is unknown"));
    return;
  }
  if (std::optional<OcspVerdict> cached = shared_->Cached(subject, margin)) {
    std::move(done)(*std::move(cached));
    return;
  }
  if (!io_) {
    std::move(done)(shared_->Unreachable(
        "mode STAPLE_ONLY cannot query a responder; replace the socket to get a new staple"));
    return;
  }
  Query(std::move(subject), std::move(done));
}

void OcspChecker::Query(OcspSubject subject, Done done) {
  std::string url_text = options_.responder_url;
  if (url_text.empty()) {
    // The certificate's own AIA OCSP URL.
    STACK_OF(OPENSSL_STRING)* urls = X509_get1_ocsp(subject.leaf.get());
    if (urls != nullptr && sk_OPENSSL_STRING_num(urls) > 0) {
      url_text = sk_OPENSSL_STRING_value(urls, 0);
    }
    X509_email_free(urls);
  }
  if (url_text.empty()) {
    std::move(done)(shared_->Unreachable(
        "no OCSP responder: the certificate has no AIA OCSP URL and ocsp.responder_url is "
        "not set"));
    return;
  }
  absl::StatusOr<HttpUrl> url = ParseHttpUrl(url_text);
  if (!url.ok()) {
    std::move(done)(shared_->Unreachable(url.status().message()));
    return;
  }
  OcspRequestPtr request(OCSP_REQUEST_new());
  OCSP_CERTID* id = OCSP_cert_to_id(nullptr, subject.leaf.get(), subject.issuer.get());
  const std::string key = id != nullptr ? CertIdKey(id) : "";
  if (!request || key.empty() || OCSP_request_add0_id(request.get(), id) == nullptr) {
    OCSP_CERTID_free(id);
    std::move(done)(shared_->Invalid("responder", "cannot build the OCSP request"));
    return;
  }
  {
    MutexLock lock(&shared_->mu);
    std::vector<Done>& waiters = shared_->in_flight[key];
    waiters.push_back(std::move(done));
    if (waiters.size() > 1) return;  // The query in flight answers this one too.
  }
  unsigned char* der = nullptr;
  const int len = i2d_OCSP_REQUEST(request.get(), &der);
  if (len <= 0) {
    shared_->Complete(key, shared_->Invalid("responder", "cannot encode the OCSP request"));
    return;
  }
  std::string body(reinterpret_cast<char*>(der), len);
  OPENSSL_free(der);

  asio::io_context* io = io_.get();
  std::shared_ptr<Shared> shared = shared_;
  const absl::Duration timeout = options_.timeout;
  asio::post(*io, [io, shared, key, url = *std::move(url), body = std::move(body), timeout,
                   subject = std::move(subject)]() mutable {
    HttpPost(*io, url, std::move(body), timeout,
             [shared, key, subject = std::move(subject)](absl::StatusOr<std::string> response) {
               if (!response.ok()) {
                 shared->Complete(key, shared->Unreachable(response.status().message()));
                 return;
               }
               shared->Complete(key, shared->Evaluate(subject, *response, "responder"));
             });
  });
}

}  // namespace tlsbroker
