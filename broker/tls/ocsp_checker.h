#ifndef BROKER_TLS_OCSP_CHECKER_H_
#define BROKER_TLS_OCSP_CHECKER_H_

// OCSP revocation checking of a backend's certificate (RFC 6960), for one backend.
//
// At the handshake the socket hands over the peer's leaf and issuer and the stapled response
// (if any); Check() decides from the staple, else from the cache, else — when the mode allows —
// by querying the responder (the configured URL, else the certificate's AIA OCSP URL). Queries
// run on the checker's own worker thread with its own io_context, never on the pool's I/O loops.
//
// Every response is verified before it is believed: OCSP_basic_verify against the backend's CA
// bundle (a response signed by the issuing CA, or by a delegated responder certificate that
// the CA issued with the OCSPSigning EKU), the status entry must be for our certificate, and
// thisUpdate/nextUpdate must hold now (5 minutes of clock skew allowed). Verified answers are
// cached by certificate ID until their nextUpdate (5 minutes when the responder gives none).
//
// Re-checking pooled sockets: Recheck() answers from the cache while the cached answer is good
// for longer than a margin, else queries the responder; Verdict::valid_until says when to ask
// again. See docs/operations.md for how the pool uses it.
//
// Thread-safe. Callbacks run on the worker thread or, for answers known at once (staple, cache,
// configuration errors), inline on the caller's thread: post to your own loop.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "broker/common/mutex.h"
#include "broker/config/options.h"
#include "broker/tls/openssl_ptr.h"

namespace tlsbroker {

// The certificate to check and the one that issued it.
struct OcspSubject {
  X509Ptr leaf;
  X509Ptr issuer;
};

// The outcome of one check.
struct OcspVerdict {
  // OK, or TlsFailure("certificate_revoked" | "ocsp_unknown" | "ocsp_unreachable" |
  // "ocsp_invalid", detail) when the policy refuses the certificate.
  absl::Status status;
  // Where the answer came from: "staple", "responder", "cache", or "none" when no answer was
  // had (unreachable responder, missing staple).
  std::string source;
  // What was learned: "good", "revoked", "unknown", "unreachable", "invalid".
  std::string cert_status;
  // When the answer stops being valid (its nextUpdate); a pooled socket must be re-checked
  // before then. Unset when there is no answer.
  std::optional<absl::Time> valid_until;
};

class OcspChecker final {
 public:
  using Done = absl::AnyInvocable<void(OcspVerdict) &&>;

  // `ca_file` is the backend's CA bundle: the trust for response signatures. Fails on a bad
  // responder URL or CA bundle. Starts the worker thread only for modes that may query.
  static absl::StatusOr<std::unique_ptr<OcspChecker>> Create(const OcspOptions& options,
                                                             const std::string& ca_file);
  ~OcspChecker();
  OcspChecker(const OcspChecker&) = delete;
  OcspChecker& operator=(const OcspChecker&) = delete;

  // The handshake check. `staple` is the DER response the backend stapled ("" for none).
  void Check(OcspSubject subject, std::string staple, Done done);

  // The re-check of a pooled socket's certificate: the cached answer if it stays valid for more
  // than `margin`, else a fresh query (STAPLE_ONLY cannot query: the verdict is then
  // "unreachable" and the socket should be replaced by a new handshake before valid_until).
  void Recheck(OcspSubject subject, absl::Duration margin, Done done);

  const OcspOptions& options() const { return options_; }

  // Responses answered from the cache so far, and cache size (tests, admin).
  size_t CachedForTest() const;

 private:
  struct CacheEntry {
    int status = 0;  // V_OCSP_CERTSTATUS_*
    int reason = -1;
    absl::Time valid_until;
  };
  struct Shared;  // State the worker's handlers share with this object.

  OcspChecker(const OcspOptions& options, std::shared_ptr<Shared> shared);

  void Query(OcspSubject subject, Done done);

  const OcspOptions options_;
  std::shared_ptr<Shared> shared_;
  // The worker: an io_context running on its own thread, kept busy by a work guard.
  std::shared_ptr<asio::io_context> io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::thread thread_;
};

}  // namespace tlsbroker

#endif  // BROKER_TLS_OCSP_CHECKER_H_
