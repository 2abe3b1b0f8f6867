#include "broker/tls/failure_reason.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "absl/strings/str_cat.h"
#include "broker/tls/tls_client_context.h"

namespace tlsbroker {

absl::string_view ReasonForVerifyError(long verify_error) {
  switch (verify_error) {
    case X509_V_OK:
      return "ok";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_UNTRUSTED:
      return "unknown_ca";
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return "expired";
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return "not_yet_valid";
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
      return "hostname_mismatch";
    case X509_V_ERR_CERT_REVOKED:
      return "certificate_revoked";
    case X509_V_ERR_CRL_HAS_EXPIRED:
      return "crl_stale";
    case X509_V_ERR_UNABLE_TO_GET_CRL:
    case X509_V_ERR_CRL_NOT_YET_VALID:
    case X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE:
    case X509_V_ERR_CRL_SIGNATURE_FAILURE:
      return "crl_unavailable";
    default:
      return "bad_certificate";
  }
}

std::string HandshakeFailureReason(SSL* ssl) {
  // Checks of our own (peer-name filter, SAN, issuer) record their reason on the SSL.
  std::string app_reason = TlsClientContext::AppVerifyFailure(ssl);
  if (!app_reason.empty()) return app_reason;
  long verify = SSL_get_verify_result(ssl);
  if (verify != X509_V_OK) return std::string(ReasonForVerifyError(verify));

  // Otherwise classify by the library's reason code: a label, never control flow.
  unsigned long err = ERR_peek_last_error();
  if (err == 0) return "handshake_failed";
  switch (ERR_GET_REASON(err)) {
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_NO_PROTOCOLS_AVAILABLE:
      return "protocol_version";
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_NO_CIPHERS_AVAILABLE:
    case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
      return "no_shared_cipher";
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
    case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
    case SSL_R_TLSV1_ALERT_DECRYPT_ERROR:
      return "peer_rejected_certificate";
    default:
      return "handshake_failed";
  }
}

absl::Status TlsFailure(absl::string_view reason, absl::string_view detail) {
  return ReasonedError(absl::StatusCode::kUnavailable, reason, detail);
}

}  // namespace tlsbroker
