#include "tests/support/test_pki_files.h"

#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "tests/support/test_pki.h"

namespace tlsbroker::testutil {
namespace {

template <typename T, void (*F)(T*)>
struct Free {
  void operator()(T* p) const { F(p); }
};
using X509Owner = std::unique_ptr<X509, Free<X509, X509_free>>;
using KeyOwner = std::unique_ptr<EVP_PKEY, Free<EVP_PKEY, EVP_PKEY_free>>;
using CrlOwner = std::unique_ptr<X509_CRL, Free<X509_CRL, X509_CRL_free>>;
using TimeOwner = std::unique_ptr<ASN1_TIME, Free<ASN1_TIME, ASN1_TIME_free>>;
using IntOwner = std::unique_ptr<ASN1_INTEGER, Free<ASN1_INTEGER, ASN1_INTEGER_free>>;

X509Owner ReadCert(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(fopen(path.c_str(), "r"), &fclose);
  if (!f) return nullptr;
  return X509Owner(PEM_read_X509(f.get(), nullptr, nullptr, nullptr));
}

KeyOwner ReadKey(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(fopen(path.c_str(), "r"), &fclose);
  if (!f) return nullptr;
  return KeyOwner(PEM_read_PrivateKey(f.get(), nullptr, nullptr, nullptr));
}

TimeOwner AsnTime(absl::Time t) { return TimeOwner(ASN1_TIME_set(nullptr, absl::ToTimeT(t))); }

template <typename Writer>
absl::Status WritePem(const std::string& out, Writer write) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(fopen(out.c_str(), "w"), &fclose);
  if (!f || write(f.get()) != 1) return absl::InternalError(absl::StrCat("cannot write ", out));
  return absl::OkStatus();
}

}  // namespace

absl::Status WriteIntermediateCrl(absl::string_view alg, const std::string& out,
                                  const std::vector<std::string>& revoked,
                                  absl::Time last_update, absl::Time next_update) {
  X509Owner ca = ReadCert(PkiPath(alg, "int.crt"));
  KeyOwner key = ReadKey(PkiPath(alg, "int.key"));
  if (!ca || !key) return absl::InternalError("cannot read the test PKI's intermediate CA");
  CrlOwner crl(X509_CRL_new());
  X509_CRL_set_version(crl.get(), X509_CRL_VERSION_2);
  X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(ca.get()));
  X509_CRL_set1_lastUpdate(crl.get(), AsnTime(last_update).get());
  X509_CRL_set1_nextUpdate(crl.get(), AsnTime(next_update).get());
  for (const std::string& path : revoked) {
    X509Owner cert = ReadCert(path);
    if (!cert) return absl::InternalError(absl::StrCat("cannot read ", path));
    X509_REVOKED* entry = X509_REVOKED_new();
    X509_REVOKED_set_serialNumber(entry, X509_get_serialNumber(cert.get()));
    X509_REVOKED_set_revocationDate(entry, AsnTime(last_update).get());
    X509_CRL_add0_revoked(crl.get(), entry);
  }
  X509_CRL_sort(crl.get());
  if (X509_CRL_sign(crl.get(), key.get(), EVP_sha256()) <= 0) {
    return absl::InternalError("cannot sign the CRL");
  }
  return WritePem(out, [&crl](FILE* f) { return PEM_write_X509_CRL(f, crl.get()); });
}

absl::Status WriteReissuedCertificate(absl::string_view alg, const std::string& source,
                                      absl::Time not_after, const std::string& out) {
  X509Owner ca = ReadCert(PkiPath(alg, "int.crt"));
  KeyOwner key = ReadKey(PkiPath(alg, "int.key"));
  X509Owner cert = ReadCert(source);
  if (!ca || !key || !cert) return absl::InternalError("cannot read the certificates");
  unsigned char serial_bytes[8];
  RAND_bytes(serial_bytes, sizeof(serial_bytes));
  serial_bytes[0] &= 0x7f;  // Positive.
  std::unique_ptr<BIGNUM, Free<BIGNUM, BN_free>> bn(
      BN_bin2bn(serial_bytes, sizeof(serial_bytes), nullptr));
  IntOwner serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  X509_set_serialNumber(cert.get(), serial.get());
  X509_set1_notBefore(cert.get(), AsnTime(absl::Now() - absl::Hours(1)).get());
  X509_set1_notAfter(cert.get(), AsnTime(not_after).get());
  X509_set_issuer_name(cert.get(), X509_get_subject_name(ca.get()));
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0) {
    return absl::InternalError("cannot sign the certificate");
  }
  return WritePem(out, [&cert](FILE* f) { return PEM_write_X509(f, cert.get()); });
}

absl::Status KubernetesStyleDir::Publish(const std::map<std::string, std::string>& files) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir_, ec);
  const std::string version = absl::StrCat("..v", ++version_);
  fs::create_directory(fs::path(dir_) / version, ec);
  if (ec) return absl::InternalError(absl::StrCat("mkdir ", version, ": ", ec.message()));
  for (const auto& [name, contents] : files) {
    std::ofstream f(fs::path(dir_) / version / name, std::ios::binary);
    f << contents;
    if (!f) return absl::InternalError(absl::StrCat("cannot write ", name));
  }
  // The kubelet's swap: a new symlink renamed over `..data` (atomic).
  const fs::path tmp = fs::path(dir_) / "..data_tmp";
  fs::remove(tmp, ec);
  fs::create_directory_symlink(version, tmp, ec);
  if (ec) return absl::InternalError(absl::StrCat("symlink: ", ec.message()));
  fs::rename(tmp, fs::path(dir_) / "..data", ec);
  if (ec) return absl::InternalError(absl::StrCat("rename: ", ec.message()));
  for (const auto& [name, contents] : files) {
    const fs::path link = fs::path(dir_) / name;
    if (!fs::is_symlink(fs::symlink_status(link))) {
      fs::create_symlink(fs::path("..data") / name, link, ec);
      if (ec) return absl::InternalError(absl::StrCat("symlink ", name, ": ", ec.message()));
    }
  }
  return absl::OkStatus();
}

std::string KubernetesStyleDir::Path(absl::string_view name) const {
  return (std::filesystem::path(dir_) / std::string(name)).string();
}

}  // namespace tlsbroker::testutil
