#include "fuzz/targets/throwaway_pki.h"

#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <functional>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"

namespace tlsbroker::fuzz {
namespace {

struct Extension {
  int nid;
  const char* value;
};

// A certificate for `key` named CN=`cn`, signed by `issuer_key` (self-signed when `issuer` is
// null). Valid from an hour ago (clock skew) for a week: a fuzz process never runs that long,
// and the pool retires sockets only near notAfter.
X509* MakeCert(EVP_PKEY* key, const char* cn, long serial, X509* issuer, EVP_PKEY* issuer_key,
               std::initializer_list<Extension> extensions) {
  X509* cert = X509_new();
  if (cert == nullptr) return nullptr;
  bool ok = X509_set_version(cert, X509_VERSION_3) == 1 &&
            ASN1_INTEGER_set(X509_get_serialNumber(cert), serial) == 1 &&
            X509_gmtime_adj(X509_getm_notBefore(cert), -3600) != nullptr &&
            X509_gmtime_adj(X509_getm_notAfter(cert), 7L * 24 * 3600) != nullptr &&
            X509_set_pubkey(cert, key) == 1;
  X509_NAME* name = X509_get_subject_name(cert);
  ok = ok && X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                        reinterpret_cast<const unsigned char*>(cn), -1, -1,
                                        0) == 1;
  ok = ok && X509_set_issuer_name(cert, issuer != nullptr ? X509_get_subject_name(issuer)
                                                          : name) == 1;
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer != nullptr ? issuer : cert, cert, nullptr, nullptr, 0);
  for (const Extension& e : extensions) {
    if (!ok) break;
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, e.nid, e.value);
    ok = ext != nullptr && X509_add_ext(cert, ext, -1) == 1;
    X509_EXTENSION_free(ext);
  }
  ok = ok && X509_sign(cert, issuer_key, EVP_sha256()) > 0;
  if (!ok) {
    X509_free(cert);
    return nullptr;
  }
  return cert;
}

absl::Status WritePem(const std::string& path, const std::function<int(FILE*)>& write) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "w"), &std::fclose);
  if (!f || write(f.get()) != 1) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ThrowawayPki> ThrowawayPki::Create() {
  ThrowawayPki pki;
  pki.root_key_ = EVP_EC_gen("P-256");
  pki.server_key_ = EVP_EC_gen("P-256");
  pki.client_key_ = EVP_EC_gen("P-256");
  if (pki.root_key_ == nullptr || pki.server_key_ == nullptr || pki.client_key_ == nullptr) {
    return absl::InternalError("EC key generation failed");
  }
  pki.root_cert_ =
      MakeCert(pki.root_key_, "tlsb fuzz root CA", 1, nullptr, pki.root_key_,
               {{NID_basic_constraints, "critical,CA:TRUE"},
                {NID_key_usage, "critical,keyCertSign,cRLSign"},
                {NID_subject_key_identifier, "hash"}});
  if (pki.root_cert_ == nullptr) return absl::InternalError("cannot make the root CA");
  pki.server_cert_ =
      MakeCert(pki.server_key_, "localhost", 2, pki.root_cert_, pki.root_key_,
               {{NID_basic_constraints, "critical,CA:FALSE"},
                {NID_key_usage, "critical,digitalSignature"},
                {NID_ext_key_usage, "serverAuth"},
                {NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1"},
                {NID_subject_key_identifier, "hash"},
                {NID_authority_key_identifier, "keyid:always"}});
  pki.client_cert_ =
      MakeCert(pki.client_key_, "tlsb fuzz client", 3, pki.root_cert_, pki.root_key_,
               {{NID_basic_constraints, "critical,CA:FALSE"},
                {NID_key_usage, "critical,digitalSignature"},
                {NID_ext_key_usage, "clientAuth"},
                {NID_subject_key_identifier, "hash"},
                {NID_authority_key_identifier, "keyid:always"}});
  if (pki.server_cert_ == nullptr || pki.client_cert_ == nullptr) {
    return absl::InternalError("cannot make the leaf certificates");
  }
  return pki;
}

ThrowawayPki::ThrowawayPki(ThrowawayPki&& other) noexcept
    : root_key_(std::exchange(other.root_key_, nullptr)),
      root_cert_(std::exchange(other.root_cert_, nullptr)),
      server_key_(std::exchange(other.server_key_, nullptr)),
      server_cert_(std::exchange(other.server_cert_, nullptr)),
      client_key_(std::exchange(other.client_key_, nullptr)),
      client_cert_(std::exchange(other.client_cert_, nullptr)) {}

ThrowawayPki::~ThrowawayPki() {
  X509_free(client_cert_);
  EVP_PKEY_free(client_key_);
  X509_free(server_cert_);
  EVP_PKEY_free(server_key_);
  X509_free(root_cert_);
  EVP_PKEY_free(root_key_);
}

absl::Status ThrowawayPki::WriteClientFiles(const std::string& dir) const {
  absl::Status s = WritePem(dir + "/root.crt",
                            [this](FILE* f) { return PEM_write_X509(f, root_cert_); });
  if (s.ok()) {
    s = WritePem(dir + "/client.crt", [this](FILE* f) { return PEM_write_X509(f, client_cert_); });
  }
  if (s.ok()) {
    s = WritePem(dir + "/client.key", [this](FILE* f) {
      return PEM_write_PrivateKey(f, client_key_, nullptr, nullptr, 0, nullptr, nullptr);
    });
  }
  return s;
}

}  // namespace tlsbroker::fuzz
