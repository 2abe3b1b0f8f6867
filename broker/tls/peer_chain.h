#ifndef BROKER_TLS_PEER_CHAIN_H_
#define BROKER_TLS_PEER_CHAIN_H_

// The certificate chain a backend presented at the handshake, kept for the life of the socket
// so pooled sockets can be re-checked later (a new CRL, an OCSP answer, the leaf's expiry)
// without touching the SSL object, which belongs to the socket's I/O loop.

#include <optional>
#include <vector>

#include <openssl/x509.h>

#include "absl/time/time.h"
#include "broker/tls/openssl_ptr.h"

namespace tlsbroker {

// Immutable after construction, so it may be read from any thread. Leaf first.
class PeerChain final {
 public:
  // Takes its own reference on every certificate of `chain` (leaf first); null = empty.
  explicit PeerChain(STACK_OF(X509) * chain);

  bool empty() const { return certs_.empty(); }
  X509* leaf() const { return certs_.empty() ? nullptr : certs_.front().get(); }
  const std::vector<X509Ptr>& certs() const { return certs_; }
  // The leaf's notAfter; nullopt for an empty chain or an unreadable time.
  std::optional<absl::Time> leaf_not_after() const;

 private:
  std::vector<X509Ptr> certs_;
};

// notAfter of `cert` as absl::Time; nullopt when it cannot be read.
std::optional<absl::Time> NotAfterOf(const X509* cert);

}  // namespace tlsbroker

#endif  // BROKER_TLS_PEER_CHAIN_H_
