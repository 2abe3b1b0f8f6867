// OCSP re-checks of pooled sockets: a socket can live for hours, far longer than the OCSP
// answer it was accepted with. Before that answer expires (tls.ocsp.recheck_margin ahead of
// its nextUpdate) the pool's sweep asks again; "revoked" retires the socket as a new CRL would.
//
// The sweep only marks what is due (under mu_); each re-check runs on its socket's loop
// (TlsSocket::RecheckOcsp), and the responder query on the OCSP checker's own worker thread,
// so no I/O thread ever blocks. Sockets presenting one certificate share the checker's cache
// and in-flight query, so a pool of N sockets to one backend costs one query per period.

#include "broker/pool/socket_pool.h"

#include <openssl/x509.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include <asio/post.hpp>

#include "absl/strings/str_cat.h"
#include "broker/common/log.h"
#include "broker/tls/failure_reason.h"
#include "broker/tls/ocsp_checker.h"

namespace tlsbroker {
namespace {

// Never re-check one socket more often than this, whatever the margin and the answer's
// lifetime: a margin longer than the lifetime would otherwise query on every sweep.
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

}  // namespace

void SocketPool::ArmOcspRecheckLocked(PooledSocket* socket, const BackendOptions& opts,
                                      absl::Time now) {
  const OcspChecker* checker = socket->tls->context()->ocsp();
  if (checker == nullptr) return;  // OCSP off for this socket: nothing to re-check.
  socket->ocsp_valid_until = socket->info.ocsp_valid_until;
  const absl::Duration margin = opts.tls.ocsp.recheck_margin;
  if (socket->ocsp_valid_until) {
    socket->ocsp_recheck_at = NextRecheck(*socket->ocsp_valid_until, margin, now);
  } else if (checker->options().mode != OcspMode::kStapleOnly) {
    // Accepted without an answer (ALLOW): keep asking, a revocation may show up later.
    socket->ocsp_recheck_at = now + RetryInterval(margin);
  }
}

std::vector<std::shared_ptr<PooledSocket>> SocketPool::TakeDueOcspRechecksLocked(
    absl::Time now) {
  std::vector<std::shared_ptr<PooledSocket>> due;
  for (const std::shared_ptr<PooledSocket>& socket : sockets_) {  // The open ones.
    if (socket == nullptr) continue;
    if (socket->ocsp_recheck_pending || now < socket->ocsp_recheck_at) continue;
    socket->ocsp_recheck_pending = true;
    due.push_back(socket);
  }
  return due;
}

void SocketPool::StartOcspRecheck(std::shared_ptr<PooledSocket> socket) {
  const std::shared_ptr<const BackendOptions> opts = options();
  const OcspChecker* checker = socket->tls->context()->ocsp();
  if (checker != nullptr && checker->options().mode == OcspMode::kStapleOnly) {
    // No responder to ask: only a new handshake brings a new staple. Replace the socket
    // before its answer expires (a leased one at the end of its lease).
    LogEvent(LogLevel::kInfo, "OCSP staple about to expire; replacing the socket",
             absl::StrCat(LogField("backend", opts->name), " ",
                          LogField("client_id", socket->client_id)));
    // A resumed handshake carries no staple (and would be answered from the cache, which
    // expires with the old staple): the replacement must make a full handshake.
    socket->tls->context()->FlushSessions();
    tls_context()->FlushSessions();
    const PeerChain* chain = socket->peer_chain.get();
    RetireIf([chain](const PeerChain& c) { return &c == chain; }, "ocsp_refresh",
             LeasedPolicy::kFinishLease);
    return;
  }
  std::weak_ptr<SocketPool> weak = weak_from_this();
  const absl::Duration margin = opts->tls.ocsp.recheck_margin;
  asio::io_context& io = socket->tls->io();
  // TlsSocket is loop-thread only. The callback holds the socket only until the verdict (the
  // query is bounded by ocsp.timeout), and the pool weakly.
  asio::post(io, [weak, margin, socket = std::move(socket)]() mutable {
    if (weak.expired()) return;
    std::shared_ptr<TlsSocket> tls = socket->tls;
    tls->RecheckOcsp(margin, [weak, socket = std::move(socket)](OcspVerdict verdict) {
      if (auto pool = weak.lock()) pool->OnOcspRecheck(socket, std::move(verdict));
    });
  });
}

void SocketPool::OnOcspRecheck(const std::shared_ptr<PooledSocket>& socket,
                               OcspVerdict verdict) {
  // Runs on the socket's loop.
  const std::shared_ptr<const BackendOptions> opts = options();
  const absl::Time now = absl::Now();
  if (!verdict.source.empty()) observer_->OnOcspResponse(verdict.source, verdict.cert_status);
  const std::string reason = verdict.status.ok() ? "" : ReasonOf(verdict.status);
  const PeerChain* chain = socket->peer_chain.get();
  if (reason == "certificate_revoked") {
    LogEvent(LogLevel::kWarning, "OCSP re-check: backend certificate revoked",
             absl::StrCat(LogField("backend", opts->name), " ",
                          LogField("client_id", socket->client_id), " ",
                          LogField("detail", verdict.status.message())));
    // First, so that the replacements RetireIf starts cannot resume a session with the revoked
    // certificate: they make full handshakes, which meet the cached revoked answer.
    socket->tls->context()->FlushSessions();
    tls_context()->FlushSessions();
    RetireIf([chain](const PeerChain& c) { return SameLeaf(c, chain); }, "revoked",
             opts->tls.on_revoked == RevokedLeasePolicy::kAbortLease ? LeasedPolicy::kAbortLease
                                                                     : LeasedPolicy::kFinishLease);
    return;
  }
  std::string retire;
  {
    MutexLock lock(&mu_);
    socket->ocsp_recheck_pending = false;
    if (!verdict.source.empty()) {
      socket->info.ocsp_source = verdict.source;
      socket->info.ocsp_status = verdict.cert_status;
    }
    const absl::Duration margin = opts->tls.ocsp.recheck_margin;
    if (verdict.status.ok()) {
      if (verdict.valid_until) {
        socket->ocsp_valid_until = verdict.valid_until;
        socket->info.ocsp_valid_until = verdict.valid_until;
        socket->ocsp_recheck_at = NextRecheck(*verdict.valid_until, margin, now);
      } else {
        socket->ocsp_recheck_at = now + RetryInterval(margin);  // Accepted by ALLOW.
      }
    } else if (socket->ocsp_valid_until && now < *socket->ocsp_valid_until) {
      // unknown / unreachable / invalid under FAIL: the old answer still vouches for the
      // certificate until it expires; ask again meanwhile, and decide at its expiry.
      socket->ocsp_recheck_at = std::min(now + RetryInterval(margin), *socket->ocsp_valid_until);
    } else {
      retire = reason.empty() ? std::string("ocsp_invalid") : reason;
    }
  }
  if (!verdict.status.ok()) {
    LogEvent(retire.empty() ? LogLevel::kWarning : LogLevel::kError,
             retire.empty() ? "OCSP re-check failed; the previous answer holds until it expires"
                            : "OCSP re-check failed and the previous answer expired; retiring",
             absl::StrCat(LogField("backend", opts->name), " ",
                          LogField("client_id", socket->client_id), " ",
                          LogField("error", verdict.status.message())));
  }
  if (!retire.empty()) {
    RetireIf([chain](const PeerChain& c) { return &c == chain; }, retire,
             LeasedPolicy::kFinishLease);
  }
}

}  // namespace tlsbroker
