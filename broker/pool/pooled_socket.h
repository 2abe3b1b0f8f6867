#ifndef BROKER_POOL_POOLED_SOCKET_H_
#define BROKER_POOL_POOLED_SOCKET_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "broker/tls/peer_chain.h"
#include "broker/tls/tls_socket.h"

namespace tlsbroker {

class LeaseCore;

// One pooled connection: its slot (and so its client ID) and its TLS socket.
struct PooledSocket {
  int slot = 0;  // 1-based.
  std::string client_id;
  uint64_t id = 0;
  std::shared_ptr<TlsSocket> tls;
  absl::Time created_at;
  // What the backend presented at the handshake, for re-checks while pooled.
  std::shared_ptr<const PeerChain> peer_chain;
  // Retired (idle: closed; leased: at lease end) from this time on: expiry_margin before the
  // earliest notAfter of the backend's chain. The pool's PoolState keeps a copy and decides
  // with it; its other bookkeeping (leases served, last release, retire reason) is kept there
  // only.
  absl::Time retire_at = absl::InfiniteFuture();
  // The fields below are guarded by the owning pool's mutex.
  // The handshake's session info (read by admin listings from any thread, so never the
  // TlsSocket's own copy; the listing shows the OCSP re-checks' answers from the TlsLifecycle).
  TlsSessionInfo info;
  std::string lease_id;  // Of the lease holding it now; empty when not leased.
  std::string lease_caller;     // Identity of the caller holding it now (admin listing).
  absl::Time lease_started_at;  // When that lease was granted.
  std::weak_ptr<LeaseCore> lease;  // The lease holding it now.
  // Non-empty: the lease is aborted (not finished) with this failure reason (set only when
  // the pool retires a leased socket with LeasedPolicy::kAbortLease).
  std::string abort_reason;
};

}  // namespace tlsbroker

#endif  // BROKER_POOL_POOLED_SOCKET_H_
