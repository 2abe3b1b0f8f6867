#ifndef BROKER_POOL_LEASE_H_
#define BROKER_POOL_LEASE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "broker/tls/tls_socket.h"

namespace tlsbroker {

struct PooledSocket;
class LeaseCore;

// What a caller learns about its lease (returned to it as tlsbroker.v1.LeaseInfo).
struct LeaseInfo {
  std::string backend;
  std::string lease_id;   // 128 random bits, hex.
  std::string client_id;  // Stable for every lease of this socket's slot.
  uint64_t socket_id = 0;
  int slot = 0;
  bool reused = false;    // False when this lease's socket was just created.
  int leases_served = 0;  // Including this one.
  absl::Duration wait;    // Time spent waiting for the socket.
  TlsSessionInfo tls;
};

// Exclusive use of one pooled socket, from acquire to destruction. Move-only RAII: destroying
// the Lease releases the socket — back to the pool when the exchange ended cleanly (at a frame
// boundary both ways, nothing unread, no error, nothing in flight), otherwise the socket is
// destroyed and its slot refilled.
//
// Thread-compatible: call from one thread at a time; callbacks run on the socket's I/O thread
// and run exactly once, even when the Lease is destroyed first (then with an error), so they
// must own what they capture. At most one Read/ReadFrame and one Write in flight.
class Lease final {
 public:
  using StatusCallback = absl::AnyInvocable<void(absl::Status) &&>;
  using ReadCallback = absl::AnyInvocable<void(absl::StatusOr<std::string>) &&>;

  Lease() = default;
  explicit Lease(std::shared_ptr<LeaseCore> core);
  ~Lease();
  Lease(Lease&&) noexcept;
  Lease& operator=(Lease&&) noexcept;
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;

  bool valid() const { return core_ != nullptr; }
  const LeaseInfo& info() const;

  // Sends bytes to the backend.
  void Write(std::string bytes, StatusCallback done);
  // Receives what the backend sends next, at most `max_bytes`.
  void Read(size_t max_bytes, ReadCallback done);
  // Receives exactly one frame (the backend's framing). Bytes after that frame in the same
  // read make the socket dirty: it is destroyed at release.
  void ReadFrame(ReadCallback done);

  // The exchange went wrong (caller cancelled, deadline): destroy the socket at release and
  // cancel what is in flight. `reason` goes to the log.
  void MarkBroken(absl::string_view reason);

  // Bounds the lease: if it is still held `after` from now, its socket is closed (never
  // reused) and the operation in flight, and every later one, fails with `status`. The timer
  // runs on the socket's loop beside its I/O, so arming and cancelling it (at release) cost no
  // thread hand-off. Call at most once.
  void SetTimeout(absl::Duration after, absl::Status status);

  // Whether any request byte has been written (for "outcome_unknown" errors).
  bool wrote_any() const;

 private:
  void Release();
  std::shared_ptr<LeaseCore> core_;
};

}  // namespace tlsbroker

#endif  // BROKER_POOL_LEASE_H_
