#ifndef BROKER_TLS_TLS_LIFECYCLE_H_
#define BROKER_TLS_TLS_LIFECYCLE_H_

// The TLS side of one backend over time: the client context new sockets use, the files it was
// built from (watched for changes), the CRLs' staleness, credential rotation, and OCSP
// re-checks of the sockets already open. The sockets themselves belong to someone else (the
// pool), which this class reaches only through TlsSocketSet: "these are the open sockets" and
// "retire the open sockets whose chain matches".
//
// Where it runs: a periodic tick on a strand of the io_context given to Create. Give it one
// that carries no socket traffic (EventLoops::maintenance()): the tick reads the TLS files,
// parses CRLs and builds contexts, which must not delay an I/O loop. An OCSP re-check itself
// runs on its socket's loop (TlsSocket is loop-thread only; the responder query runs on the
// OCSP checker's worker), and its verdict is applied back on the strand.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "broker/common/mutex.h"
#include "broker/config/options.h"
#include "broker/metrics/pool_observer.h"
#include "broker/tls/ocsp_checker.h"
#include "broker/tls/peer_chain.h"
#include "broker/tls/tls_client_context.h"
#include "broker/tls/tls_file_snapshot.h"
#include "broker/tls/tls_socket.h"

namespace tlsbroker {

// What retiring does to a matching socket that is leased.
enum class LeasedPolicy {
  kFinishLease,  // The lease goes on; the socket closes when it ends.
  kAbortLease,   // The lease ends now: its socket closes and the caller gets an error.
};

// One open socket (idle or leased) as the lifecycle sees it.
struct OpenTlsSocket {
  uint64_t id = 0;        // Unique per socket for the life of the process.
  std::string client_id;  // For log lines.
  // Re-checked by OCSP on its own loop; null = never re-checked (a socket without one).
  std::shared_ptr<TlsSocket> tls;
  std::shared_ptr<const PeerChain> peer_chain;  // What the backend presented at the handshake.
  // Until when the handshake's OCSP answer holds (TlsSessionInfo::ocsp_valid_until).
  std::optional<absl::Time> ocsp_valid_until;
};

// The sockets a TlsLifecycle looks after. Implemented by SocketPool. Called from the
// lifecycle's strand and from the threads calling its public methods, never under the
// lifecycle's locks.
class TlsSocketSet {
 public:
  virtual ~TlsSocketSet() = default;

  // The sockets open now, idle and leased (not those still connecting).
  virtual std::vector<OpenTlsSocket> OpenSockets() const = 0;

  // Retires every open socket whose backend chain satisfies `matches`: idle ones close at once
  // with `close_reason` (the sockets_closed_total label: revoked, rotation, ocsp_refresh, ...),
  // leased ones per `leased`; an aborted lease fails with kUnavailable "<abort_reason>: ...".
  // Returns how many sockets matched.
  virtual int RetireIf(absl::FunctionRef<bool(const PeerChain&)> matches,
                       absl::string_view close_reason, LeasedPolicy leased,
                       absl::string_view abort_reason) = 0;
};

class TlsLifecycle final : public std::enable_shared_from_this<TlsLifecycle> {
 public:
  // The part of a backend's settings the lifecycle works from.
  struct Settings {
    std::string backend;      // For log lines.
    TlsOptions tls;           // The files to watch, watch_interval, on_revoked, on_rotation, ocsp.
    std::string server_name;  // What the backend's certificate must carry (host or server_name).
  };

  // `context` was built from `settings` (by TlsClientContext::Create) and is the one new sockets
  // use from now on. Reports the client certificate's notAfter and the CRL state to
  // `observer`. `sockets` is held weakly: the set owns the lifecycle.
  static std::shared_ptr<TlsLifecycle> Create(Settings settings,
                                              std::shared_ptr<const TlsClientContext> context,
                                              std::weak_ptr<TlsSocketSet> sockets,
                                              std::shared_ptr<BackendObserver> observer,
                                              asio::io_context& io);
  ~TlsLifecycle();
  TlsLifecycle(const TlsLifecycle&) = delete;
  TlsLifecycle& operator=(const TlsLifecycle&) = delete;

  // Starts (or, after Stop, restarts) the periodic tick; no-op while it runs. Stop stops it.
  void Start();
  void Stop();

  // The context new sockets use. Thread-safe, cheap.
  std::shared_ptr<const TlsClientContext> context() const ABSL_LOCKS_EXCLUDED(context_mu_);

  // A reload: new settings, and `context` built from them, for new sockets. The CRLs apply to
  // the open sockets as a changed CRL file would; credentials follow the reload rule (open
  // sockets keep theirs: no rotation drain).
  void Reconfigure(Settings settings, std::shared_ptr<const TlsClientContext> context)
      ABSL_LOCKS_EXCLUDED(mu_, context_mu_);

  // Checks the TLS files now (the tick does it every tls.watch_interval): when their contents
  // changed, builds a new context for new sockets and applies it to the open ones (a CRL
  // revoking a socket's chain retires it per tls.on_revoked; changed credentials with
  // tls.on_rotation DRAIN retire them all). A file that fails to load is counted and logged
  // once per version, and the previous context stays. The new context is in force when this
  // returns. Tests call it to skip the wait.
  void CheckTlsFiles() ABSL_LOCKS_EXCLUDED(mu_, context_mu_);

  // One round of the tick, now: starts the OCSP re-checks that are due, checks the files when
  // tls.watch_interval has passed, reports the CRL state. Tests call it to drive the schedule
  // (with SetClockForTest) instead of waiting for the timer.
  void Tick() ABSL_LOCKS_EXCLUDED(mu_, context_mu_);

  // What the latest OCSP re-check of socket `id` learned; nullopt before one answered.
  // `source`/`status` are empty when no re-check brought an answer, `valid_until` unset when
  // none brought a good one (the handshake's values then still stand).
  struct OcspAnswer {
    std::string source;
    std::string status;
    std::optional<absl::Time> valid_until;
  };
  std::optional<OcspAnswer> OcspAnswerOf(uint64_t id) const ABSL_LOCKS_EXCLUDED(mu_);

  // Replaces absl::Now for the schedule (tests). Call before Start.
  void SetClockForTest(std::function<absl::Time()> clock) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // One open socket's OCSP re-check schedule.
  struct OcspSchedule {
    std::optional<absl::Time> valid_until;  // Until when its current answer holds.
    absl::Time recheck_at = absl::InfiniteFuture();
    bool pending = false;  // A re-check is under way.
    std::optional<OcspAnswer> answer;
  };

  TlsLifecycle(Settings settings, std::shared_ptr<const TlsClientContext> context,
               std::weak_ptr<TlsSocketSet> sockets, std::shared_ptr<BackendObserver> observer,
               asio::io_context& io);

  absl::Time Now() const ABSL_LOCKS_EXCLUDED(mu_);
  Settings settings() const ABSL_LOCKS_EXCLUDED(mu_);
  // Strand only: aims the tick timer one period ahead.
  void ArmTimer();
  // Makes `context` the one new sockets use, then applies what changed to the open ones.
  void InstallContext(std::shared_ptr<const TlsClientContext> context, bool credentials_changed)
      ABSL_LOCKS_EXCLUDED(mu_, context_mu_);
  // Reports the CRLs' nextUpdate and staleness (metric; a log line when they turn stale).
  void ReportCrlState(const TlsClientContext& context) ABSL_LOCKS_EXCLUDED(mu_);
  void CheckTlsFilesIfDue(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_, context_mu_);
  // Learns the open sockets (forgetting the closed ones, arming new ones from their handshake
  // answer) and starts the re-checks that are due.
  void StartDueOcspRechecks(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);
  void StartOcspRecheck(const OpenTlsSocket& socket) ABSL_LOCKS_EXCLUDED(mu_, context_mu_);
  // On the strand, with the verdict of socket's re-check.
  void OnOcspRecheck(const OpenTlsSocket& socket, OcspVerdict verdict)
      ABSL_LOCKS_EXCLUDED(mu_, context_mu_);
  void Retire(absl::FunctionRef<bool(const PeerChain&)> matches, absl::string_view close_reason,
              LeasedPolicy leased);

  const std::weak_ptr<TlsSocketSet> sockets_;
  const std::shared_ptr<BackendObserver> observer_;
  asio::strand<asio::io_context::executor_type> strand_;
  // Strand only.
  asio::steady_timer timer_;
  bool running_ = false;

  // A leaf lock: held only to swap or copy the pointer.
  mutable Mutex context_mu_;
  std::shared_ptr<const TlsClientContext> context_ ABSL_GUARDED_BY(context_mu_);

  // Not held while calling sockets_ or the observer, or while reading files or building a
  // context.
  mutable Mutex mu_;
  Settings settings_ ABSL_GUARDED_BY(mu_);
  std::function<absl::Time()> clock_ ABSL_GUARDED_BY(mu_);
  TlsFileSnapshot files_ ABSL_GUARDED_BY(mu_);
  absl::Time next_file_check_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool crl_stale_reported_ ABSL_GUARDED_BY(mu_) = false;
  std::unordered_map<uint64_t, OcspSchedule> ocsp_ ABSL_GUARDED_BY(mu_);  // By socket id.
};

}  // namespace tlsbroker

#endif  // BROKER_TLS_TLS_LIFECYCLE_H_
