#ifndef BROKER_TLS_OPENSSL_PTR_H_
#define BROKER_TLS_OPENSSL_PTR_H_

// The one place that gives every OpenSSL type an owner. Wrap a pointer on the line that creates
// it (new/get1); never wrap a get0 (borrowed) pointer.

#include <memory>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/pkcs12.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace tlsbroker {

template <typename T, void (*FreeFn)(T*)>
struct OpenSslDeleter {
  void operator()(T* p) const { FreeFn(p); }
};

#define TLSB_DEFINE_OPENSSL_PTR(Alias, Type, FreeFn) \
  using Alias = std::unique_ptr<Type, OpenSslDeleter<Type, FreeFn>>

TLSB_DEFINE_OPENSSL_PTR(SslCtxPtr, SSL_CTX, SSL_CTX_free);
TLSB_DEFINE_OPENSSL_PTR(SslPtr, SSL, SSL_free);
TLSB_DEFINE_OPENSSL_PTR(SslSessionPtr, SSL_SESSION, SSL_SESSION_free);
TLSB_DEFINE_OPENSSL_PTR(X509Ptr, X509, X509_free);
TLSB_DEFINE_OPENSSL_PTR(X509CrlPtr, X509_CRL, X509_CRL_free);
TLSB_DEFINE_OPENSSL_PTR(EvpPkeyPtr, EVP_PKEY, EVP_PKEY_free);
TLSB_DEFINE_OPENSSL_PTR(BioPtr, BIO, BIO_free_all);
TLSB_DEFINE_OPENSSL_PTR(X509StorePtr, X509_STORE, X509_STORE_free);
TLSB_DEFINE_OPENSSL_PTR(GeneralNamesPtr, GENERAL_NAMES, GENERAL_NAMES_free);
TLSB_DEFINE_OPENSSL_PTR(OcspResponsePtr, OCSP_RESPONSE, OCSP_RESPONSE_free);
TLSB_DEFINE_OPENSSL_PTR(OcspBasicRespPtr, OCSP_BASICRESP, OCSP_BASICRESP_free);
TLSB_DEFINE_OPENSSL_PTR(OcspCertIdPtr, OCSP_CERTID, OCSP_CERTID_free);
TLSB_DEFINE_OPENSSL_PTR(OcspRequestPtr, OCSP_REQUEST, OCSP_REQUEST_free);
TLSB_DEFINE_OPENSSL_PTR(Pkcs12Ptr, PKCS12, PKCS12_free);

#undef TLSB_DEFINE_OPENSSL_PTR

// Takes a new reference on an object that is shared by reference count.
inline X509Ptr UpRef(X509* x) {
  X509_up_ref(x);
  return X509Ptr(x);
}
inline SslSessionPtr UpRef(SSL_SESSION* s) {
  SSL_SESSION_up_ref(s);
  return SslSessionPtr(s);
}

}  // namespace tlsbroker

#endif  // BROKER_TLS_OPENSSL_PTR_H_
