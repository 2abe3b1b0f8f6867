#ifndef BROKER_POOL_LEASE_OWNER_H_
#define BROKER_POOL_LEASE_OWNER_H_

// What a lease needs of the pool that lent it its socket: the three ways a lease hands the
// socket back. SocketPool implements it; LeaseCore knows the pool only through it.

#include <memory>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "broker/pool/pooled_socket.h"

namespace tlsbroker {

class LeaseOwner {
 public:
  virtual ~LeaseOwner() = default;

  // The lease is ending: called on the caller's thread the moment it releases the lease, so a
  // caller that asks for a socket right after waits for this one rather than making the pool
  // open another.
  virtual void NoteReturning(const std::shared_ptr<PooledSocket>& socket) = 0;
  // The lease ended (on the socket's loop). `verdict` OK = the socket may be reused; otherwise
  // its message says why not, and `close_reason` is the sockets_closed_total label.
  virtual void ReturnSocket(const std::shared_ptr<PooledSocket>& socket, absl::Status verdict,
                            absl::string_view close_reason) = 0;
  // max_lease_duration reclaimed the lease (on the socket's loop); the socket is closed already.
  virtual void ForgetSocket(const std::shared_ptr<PooledSocket>& socket) = 0;
};

}  // namespace tlsbroker

#endif  // BROKER_POOL_LEASE_OWNER_H_
