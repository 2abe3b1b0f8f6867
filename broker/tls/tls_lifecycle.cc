#include "broker/tls/tls_lifecycle.h"

#include <openssl/x509.h>

#include <algorithm>
#include <unordered_set>
#include <utility>

#include <asio/post.hpp>

#include "absl/strings/str_cat.h"
#include "broker/common/log.h"
#include "broker/tls/failure_reason.h"

namespace tlsbroker {
namespace {

// Never re-check one socket more often than this, whatever the margin and the answer's
// lifetime: a margin longer than the lifetime would otherwise query on every tick.
constexpr absl::Duration kMinRecheckInterval = absl::Seconds(1);

// When a re-check gave no usable answer (responder down or "unknown" under ALLOW, or a
// failure while the old answer still holds): ask again this soon.
absl::Duration RetryInterval(absl::Duration margin) {
  return std::clamp(margin / 4, kMinRecheckInterval, absl::Seconds(30));
}

absl::Time NextRecheck(absl::Time valid_until, absl::Duration margin, absl::Time now) {
  return std::max(valid_until - margin, now + kMinRecheckInterval);
}

// Same certificate: the one re-checked socket stands for every socket to that certificate.
bool SameLeaf(const PeerChain& chain, const PeerChain* of) {
  if (&chain == of) return true;
  return of != nullptr && chain.leaf() != nullptr && of->leaf() != nullptr &&
         X509_cmp(chain.leaf(), of->leaf()) == 0;
}

// The tick's period: the watch interval (at least 100 ms), at most a second (the OCSP
// re-checks' resolution).
absl::Duration TickPeriod(const TlsOptions& tls) {
  if (tls.watch_interval <= absl::ZeroDuration()) return absl::Seconds(1);
  return std::clamp(tls.watch_interval, absl::Milliseconds(100), absl::Seconds(1));
}

LeasedPolicy OnRevoked(const TlsOptions& tls) {
  return tls.on_revoked == RevokedLeasePolicy::kAbortLease ? LeasedPolicy::kAbortLease
                                                           : LeasedPolicy::kFinishLease;
}

}  // namespace

std::shared_ptr<TlsLifecycle> TlsLifecycle::Create(Settings settings,
                                                   std::shared_ptr<const TlsClientContext> context,
                                                   std::weak_ptr<TlsSocketSet> sockets,
                                                   std::shared_ptr<BackendObserver> observer,
                                                   asio::io_context& io) {
  std::shared_ptr<TlsLifecycle> lifecycle(new TlsLifecycle(
      std::move(settings), std::move(context), std::move(sockets), std::move(observer), io));
  const std::shared_ptr<const TlsClientContext> current = lifecycle->context();
  if (auto not_after = current->client_cert_not_after()) {
    lifecycle->observer_->OnClientCertNotAfter(*not_after);
  }
  lifecycle->ReportCrlState(*current);
  return lifecycle;
}

TlsLifecycle::TlsLifecycle(Settings settings, std::shared_ptr<const TlsClientContext> context,
                           std::weak_ptr<TlsSocketSet> sockets,
                           std::shared_ptr<BackendObserver> observer, asio::io_context& io)
    : sockets_(std::move(sockets)),
      observer_(std::move(observer)),
      strand_(asio::make_strand(io)),
      timer_(strand_),
      context_(std::move(context)),
      settings_(std::move(settings)),
      clock_([] { return absl::Now(); }),
      // Read after the context loaded them: a change in between shows as a change at the
      // first check (one needless rebuild), never as a missed one... except a change that
      // is undone in between, which changes nothing.
      files_(TlsFileSnapshot::Read(settings_.tls)) {}

TlsLifecycle::~TlsLifecycle() = default;

absl::Time TlsLifecycle::Now() const {
  std::function<absl::Time()> clock;
  {
    MutexLock lock(&mu_);
    clock = clock_;
  }
  return clock();
}

void TlsLifecycle::SetClockForTest(std::function<absl::Time()> clock) {
  MutexLock lock(&mu_);
  clock_ = std::move(clock);
}

TlsLifecycle::Settings TlsLifecycle::settings() const {
  MutexLock lock(&mu_);
  return settings_;
}

std::shared_ptr<const TlsClientContext> TlsLifecycle::context() const {
  MutexLock lock(&context_mu_);
  return context_;
}

void TlsLifecycle::Start() {
  std::weak_ptr<TlsLifecycle> weak = weak_from_this();
  asio::post(strand_, [weak] {
    auto self = weak.lock();
    if (!self || self->running_) return;
    self->running_ = true;
    self->ArmTimer();
  });
}

void TlsLifecycle::Stop() {
  std::weak_ptr<TlsLifecycle> weak = weak_from_this();
  asio::post(strand_, [weak] {
    auto self = weak.lock();
    if (!self) return;
    self->running_ = false;
    self->timer_.cancel();
  });
}

void TlsLifecycle::ArmTimer() {
  // Re-aiming cancels a wait in progress (it ends with an error and does nothing), so there is
  // one chain of ticks however Start and Stop interleave.
  timer_.expires_after(absl::ToChronoNanoseconds(TickPeriod(settings().tls)));
  std::weak_ptr<TlsLifecycle> weak = weak_from_this();
  timer_.async_wait([weak](const asio::error_code& ec) {
    if (ec) return;
    auto self = weak.lock();
    if (!self || !self->running_) return;
    self->Tick();
    self->ArmTimer();
  });
}

void TlsLifecycle::Tick() {
  const absl::Time now = Now();
  StartDueOcspRechecks(now);
  CheckTlsFilesIfDue(now);
  ReportCrlState(*context());
}

void TlsLifecycle::Reconfigure(Settings settings,
                               std::shared_ptr<const TlsClientContext> context) {
  TlsFileSnapshot files = TlsFileSnapshot::Read(settings.tls);
  {
    MutexLock lock(&mu_);
    settings_ = std::move(settings);
    files_ = std::move(files);
  }
  InstallContext(std::move(context), /*credentials_changed=*/false);
}

void TlsLifecycle::CheckTlsFilesIfDue(absl::Time now) {
  {
    MutexLock lock(&mu_);
    if (settings_.tls.watch_interval <= absl::ZeroDuration() || now < next_file_check_) return;
    next_file_check_ = now + settings_.tls.watch_interval;
  }
  CheckTlsFiles();
}

void TlsLifecycle::CheckTlsFiles() {
  const Settings s = settings();
  TlsFileSnapshot::Changes changes;
  TlsFileSnapshot current = TlsFileSnapshot::Read(s.tls);
  {
    MutexLock lock(&mu_);
    changes = files_.ChangesTo(current);
    if (!changes.any()) return;
    // Remembered even if the new files are rejected below: a broken file is reported once,
    // and tried again when it changes again.
    files_ = std::move(current);
  }
  auto context = TlsClientContext::Create(s.tls, s.server_name);
  if (!context.ok()) {
    std::string kind = TlsFileKindOfError(context.status(), s.tls);
    if (kind == "crl") {
      observer_->OnCrlReloadFailure();
    } else {
      observer_->OnCredentialReloadFailure(kind);
    }
    LogEvent(LogLevel::kError, "changed TLS files rejected; the previous ones stay in use",
             absl::StrCat(LogField("backend", s.backend), " ", LogField("file", kind), " ",
                          LogField("error", context.status().message())));
    return;
  }
  LogEvent(LogLevel::kInfo, "TLS files changed; new sockets use them",
           absl::StrCat(LogField("backend", s.backend), " crl=", changes.crl,
                        " credentials=", changes.credentials));
  InstallContext(*std::move(context), changes.credentials);
}

void TlsLifecycle::InstallContext(std::shared_ptr<const TlsClientContext> context,
                                  bool credentials_changed) {
  const Settings s = settings();
  std::shared_ptr<const TlsClientContext> previous;
  {
    MutexLock lock(&context_mu_);
    previous = std::move(context_);
    context_ = context;
  }
  // Sessions of the old context would resume without the new checks (and re-present the old
  // client certificate); the new context starts with an empty cache, and the old one's is
  // dropped so nothing can pick it up.
  if (previous != nullptr) previous->FlushSessions();
  if (auto not_after = context->client_cert_not_after()) {
    observer_->OnClientCertNotAfter(*not_after);
  }
  ReportCrlState(*context);
  if (!context->options().crl_files.empty()) {
    Retire([&context](const PeerChain& chain) { return context->IsRevoked(chain); }, "revoked",
           OnRevoked(s.tls));
  }
  if (credentials_changed && s.tls.on_rotation == RotationPolicy::kDrain) {
    Retire([](const PeerChain&) { return true; }, "rotation", LeasedPolicy::kFinishLease);
  }
}

void TlsLifecycle::Retire(absl::FunctionRef<bool(const PeerChain&)> matches,
                          absl::string_view close_reason, LeasedPolicy leased) {
  if (auto sockets = sockets_.lock()) {
    sockets->RetireIf(matches, close_reason, leased, "certificate_revoked");
  }
}

void TlsLifecycle::ReportCrlState(const TlsClientContext& context) {
  std::optional<absl::Time> next_update = context.crl_next_update();
  if (!next_update) return;
  const bool stale = absl::Now() > *next_update;
  observer_->OnCrlNextUpdate(*next_update, stale);
  bool log_now = false;
  std::string backend;
  {
    MutexLock lock(&mu_);
    log_now = stale != crl_stale_reported_;
    crl_stale_reported_ = stale;
    backend = settings_.backend;
  }
  if (stale && context.options().stale_crl == StaleCrlPolicy::kFail) {
    // Refusing new handshakes must cover resumed ones too: no cached session outlives the
    // CRL's nextUpdate (new sockets also re-check a resumed session, see TlsSocket).
    context.FlushSessions();
  }
  if (log_now) {
    LogEvent(stale ? LogLevel::kWarning : LogLevel::kInfo,
             stale ? "CRL is past its nextUpdate" : "CRLs are current again",
             absl::StrCat(LogField("backend", backend), " ",
                          LogField("next_update", absl::FormatTime(*next_update)), " ",
                          LogField("stale_crl", context.options().stale_crl == StaleCrlPolicy::kFail
                                                    ? "FAIL (new handshakes refused)"
                                                    : "WARN")));
  }
}

// ---- OCSP re-checks of open sockets ----
//
// A socket can live for hours, far longer than the OCSP answer it was accepted with. Before
// that answer expires (tls.ocsp.recheck_margin ahead of its nextUpdate) the tick asks again;
// "revoked" retires the socket as a new CRL would. Each re-check runs on its socket's loop
// (TlsSocket::RecheckOcsp), the responder query on the OCSP checker's own worker thread, so no
// thread waits for the responder. Sockets presenting one certificate share the checker's cache
// and in-flight query, so N sockets to one backend cost one query per period.

void TlsLifecycle::StartDueOcspRechecks(absl::Time now) {
  auto sockets = sockets_.lock();
  if (!sockets) return;
  const std::vector<OpenTlsSocket> open = sockets->OpenSockets();
  std::vector<const OpenTlsSocket*> due;
  {
    MutexLock lock(&mu_);
    const absl::Duration margin = settings_.tls.ocsp.recheck_margin;
    std::unordered_set<uint64_t> ids;
    for (const OpenTlsSocket& socket : open) ids.insert(socket.id);
    for (auto it = ocsp_.begin(); it != ocsp_.end();) {  // Forget the closed ones.
      it = ids.count(it->first) != 0 ? std::next(it) : ocsp_.erase(it);
    }
    for (const OpenTlsSocket& socket : open) {
      auto [it, added] = ocsp_.try_emplace(socket.id);
      OcspSchedule& schedule = it->second;
      if (added && socket.tls != nullptr) {
        // The first re-check, from the handshake's answer.
        const OcspChecker* checker = socket.tls->context()->ocsp();
        if (checker == nullptr) continue;  // OCSP off for this socket: nothing to re-check.
        schedule.valid_until = socket.ocsp_valid_until;
        if (schedule.valid_until) {
          schedule.recheck_at = NextRecheck(*schedule.valid_until, margin, now);
        } else if (checker->options().mode != OcspMode::kStapleOnly) {
          // Accepted without an answer (ALLOW): keep asking, a revocation may show up later.
          schedule.recheck_at = now + RetryInterval(margin);
        }
      }
      if (schedule.pending || now < schedule.recheck_at) continue;
      schedule.pending = true;
      due.push_back(&socket);
    }
  }
  for (const OpenTlsSocket* socket : due) StartOcspRecheck(*socket);
}

void TlsLifecycle::StartOcspRecheck(const OpenTlsSocket& socket) {
  const Settings s = settings();
  const OcspChecker* checker = socket.tls->context()->ocsp();
  if (checker != nullptr && checker->options().mode == OcspMode::kStapleOnly) {
    // No responder to ask: only a new handshake brings a new staple. Replace the socket
    // before its answer expires (a leased one at the end of its lease).
    LogEvent(LogLevel::kInfo, "OCSP staple about to expire; replacing the socket",
             absl::StrCat(LogField("backend", s.backend), " ",
                          LogField("client_id", socket.client_id)));
    // A resumed handshake carries no staple (and would be answered from the cache, which
    // expires with the old staple): the replacement must make a full handshake.
    socket.tls->context()->FlushSessions();
    context()->FlushSessions();
    const PeerChain* chain = socket.peer_chain.get();
    Retire([chain](const PeerChain& c) { return &c == chain; }, "ocsp_refresh",
           LeasedPolicy::kFinishLease);
    return;
  }
  std::weak_ptr<TlsLifecycle> weak = weak_from_this();
  const absl::Duration margin = s.tls.ocsp.recheck_margin;
  std::shared_ptr<TlsSocket> tls = socket.tls;
  // TlsSocket is loop-thread only. The callbacks hold the socket only until the verdict (the
  // query is bounded by ocsp.timeout), and the lifecycle weakly; the verdict is applied on the
  // strand, off the socket's loop.
  asio::post(tls->io(), [weak, margin, socket]() mutable {
    if (weak.expired()) return;
    std::shared_ptr<TlsSocket> tls = socket.tls;
    tls->RecheckOcsp(margin, [weak, socket = std::move(socket)](OcspVerdict verdict) mutable {
      auto self = weak.lock();
      if (!self) return;
      asio::post(self->strand_, [weak, socket = std::move(socket),
                                 verdict = std::move(verdict)]() mutable {
        if (auto self = weak.lock()) self->OnOcspRecheck(socket, std::move(verdict));
      });
    });
  });
}

void TlsLifecycle::OnOcspRecheck(const OpenTlsSocket& socket, OcspVerdict verdict) {
  const Settings s = settings();
  const absl::Time now = Now();
  if (!verdict.source.empty()) observer_->OnOcspResponse(verdict.source, verdict.cert_status);
  const std::string reason = verdict.status.ok() ? "" : ReasonOf(verdict.status);
  const PeerChain* chain = socket.peer_chain.get();
  if (reason == "certificate_revoked") {
    LogEvent(LogLevel::kWarning, "OCSP re-check: backend certificate revoked",
             absl::StrCat(LogField("backend", s.backend), " ",
                          LogField("client_id", socket.client_id), " ",
                          LogField("detail", verdict.status.message())));
    // First, so that the replacements the retirement starts cannot resume a session with the
    // revoked certificate: they make full handshakes, which meet the cached revoked answer.
    socket.tls->context()->FlushSessions();
    context()->FlushSessions();
    Retire([chain](const PeerChain& c) { return SameLeaf(c, chain); }, "revoked",
           OnRevoked(s.tls));
    return;
  }
  std::string retire;
  {
    MutexLock lock(&mu_);
    auto it = ocsp_.find(socket.id);
    if (it == ocsp_.end()) return;  // Closed meanwhile.
    OcspSchedule& schedule = it->second;
    schedule.pending = false;
    if (!schedule.answer) schedule.answer.emplace();
    if (!verdict.source.empty()) {
      schedule.answer->source = verdict.source;
      schedule.answer->status = verdict.cert_status;
    }
    const absl::Duration margin = s.tls.ocsp.recheck_margin;
    if (verdict.status.ok()) {
      if (verdict.valid_until) {
        schedule.valid_until = verdict.valid_until;
        schedule.answer->valid_until = verdict.valid_until;
        schedule.recheck_at = NextRecheck(*verdict.valid_until, margin, now);
      } else {
        schedule.recheck_at = now + RetryInterval(margin);  // Accepted by ALLOW.
      }
    } else if (schedule.valid_until && now < *schedule.valid_until) {
      // unknown / unreachable / invalid under FAIL: the old answer still vouches for the
      // certificate until it expires; ask again meanwhile, and decide at its expiry.
      schedule.recheck_at = std::min(now + RetryInterval(margin), *schedule.valid_until);
    } else {
      retire = reason.empty() ? std::string("ocsp_invalid") : reason;
    }
  }
  if (!verdict.status.ok()) {
    LogEvent(retire.empty() ? LogLevel::kWarning : LogLevel::kError,
             retire.empty() ? "OCSP re-check failed; the previous answer holds until it expires"
                            : "OCSP re-check failed and the previous answer expired; retiring",
             absl::StrCat(LogField("backend", s.backend), " ",
                          LogField("client_id", socket.client_id), " ",
                          LogField("error", verdict.status.message())));
  }
  if (!retire.empty()) {
    Retire([chain](const PeerChain& c) { return &c == chain; }, retire,
           LeasedPolicy::kFinishLease);
  }
}

std::optional<TlsLifecycle::OcspAnswer> TlsLifecycle::OcspAnswerOf(uint64_t id) const {
  MutexLock lock(&mu_);
  auto it = ocsp_.find(id);
  if (it == ocsp_.end()) return std::nullopt;
  return it->second.answer;
}

}  // namespace tlsbroker
