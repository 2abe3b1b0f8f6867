#include "broker/tls/peer_chain.h"

#include <ctime>

namespace tlsbroker {

PeerChain::PeerChain(STACK_OF(X509) * chain) {
  if (chain == nullptr) return;
  for (int i = 0; i < sk_X509_num(chain); ++i) certs_.push_back(UpRef(sk_X509_value(chain, i)));
}

std::optional<absl::Time> PeerChain::leaf_not_after() const {
  return certs_.empty() ? std::nullopt : NotAfterOf(certs_.front().get());
}

std::optional<absl::Time> NotAfterOf(const X509* cert) {
  struct tm tm_after;
  if (cert == nullptr || ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm_after) != 1) {
    return std::nullopt;
  }
  return absl::FromTM(tm_after, absl::UTCTimeZone());
}

}  // namespace tlsbroker
