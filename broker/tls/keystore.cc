#include "broker/tls/keystore.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace tlsbroker {
namespace {

// Wipes a password when it goes out of scope, whichever way the function returns.
class SecretString {
 public:
  explicit SecretString(std::string s) : s_(std::move(s)) {}
  ~SecretString() {
    if (!s_.empty()) OPENSSL_cleanse(s_.data(), s_.size());
  }
  SecretString(const SecretString&) = delete;
  SecretString& operator=(const SecretString&) = delete;
  const std::string& get() const { return s_; }

 private:
  std::string s_;
};

std::string Quote(const std::string& path) { return absl::StrCat("\"", path, "\""); }

// OpenSSL's pem_password_cb: hands over the password, or refuses when there is none (so an
// encrypted key never prompts on a terminal).
int PasswordCallback(char* buf, int size, int /*rwflag*/, void* userdata) {
  const auto* password = static_cast<const std::string*>(userdata);
  if (password == nullptr || password->empty()) return -1;
  const int len = static_cast<int>(std::min<size_t>(password->size(), size));
  memcpy(buf, password->data(), len);
  return len;
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat(what, " ", Quote(path), " cannot be read"));
  }
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

}  // namespace

absl::StatusOr<std::string> ReadPasswordFile(const std::string& path) {
  absl::StatusOr<std::string> data = ReadWholeFile(path, "password file");
  if (!data.ok()) return data.status();
  std::string password = data->substr(0, data->find('\n'));
  if (!password.empty() && password.back() == '\r') password.pop_back();
  OPENSSL_cleanse(data->data(), data->size());
  if (password.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("password file ", Quote(path), " is empty (its first line is the password)"));
  }
  return password;
}

absl::StatusOr<ClientCredentials> LoadPkcs12(const std::string& pkcs12_file,
                                             const std::string& password_file) {
  if (password_file.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("PKCS#12 file ", Quote(pkcs12_file), " needs a password_file"));
  }
  absl::StatusOr<std::string> pw = ReadPasswordFile(password_file);
  if (!pw.ok()) return pw.status();
  SecretString password(*std::move(pw));
  ERR_clear_error();
  BioPtr bio(BIO_new_file(pkcs12_file.c_str(), "rb"));
  if (!bio) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat("PKCS#12 file ", Quote(pkcs12_file), " cannot be read"));
  }
  Pkcs12Ptr p12(d2i_PKCS12_bio(bio.get(), nullptr));
  if (!p12) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat(Quote(pkcs12_file), " is not a PKCS#12 (.p12/.pfx) file"));
  }
  const std::string& pass = password.get();
  if (PKCS12_mac_present(p12.get()) &&
      PKCS12_verify_mac(p12.get(), pass.c_str(), static_cast<int>(pass.size())) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat("wrong password for PKCS#12 file ",
                                                   Quote(pkcs12_file), " (password from ",
                                                   Quote(password_file), ")"));
  }
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
  STACK_OF(X509)* ca = nullptr;
  if (PKCS12_parse(p12.get(), pass.c_str(), &key, &cert, &ca) != 1) {
    const unsigned long err = ERR_peek_last_error();
    ERR_clear_error();
    std::string why = "cannot be decrypted";
    if (ERR_GET_REASON(err) == ERR_R_UNSUPPORTED) {
      why = "uses an algorithm OpenSSL 3 no longer enables (re-export it with AES)";
    }
    return absl::InvalidArgumentError(absl::StrCat("PKCS#12 file ", Quote(pkcs12_file), " ",
                                                   why, " (password from ",
                                                   Quote(password_file), ")"));
  }
  ClientCredentials out;
  out.key.reset(key);
  out.cert.reset(cert);
  for (int i = 0; ca != nullptr && i < sk_X509_num(ca); ++i) {
    out.chain.emplace_back(sk_X509_value(ca, i));  // Takes the stack's reference.
  }
  sk_X509_free(ca);
  if (!out.key || !out.cert) {
    return absl::InvalidArgumentError(absl::StrCat(
        "PKCS#12 file ", Quote(pkcs12_file), " must hold a private key and its certificate"));
  }
  if (X509_check_private_key(out.cert.get(), out.key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(
        "PKCS#12 file ", Quote(pkcs12_file), ": the key does not match the certificate"));
  }
  return out;
}

absl::StatusOr<EvpPkeyPtr> LoadPemPrivateKey(const std::string& key_file,
                                             const std::string& password_file) {
  absl::StatusOr<std::string> pem = ReadWholeFile(key_file, "private key file");
  if (!pem.ok()) return pem.status();
  SecretString key_text(*std::move(pem));
  const bool encrypted = absl::StrContains(key_text.get(), "ENCRYPTED");
  std::string password_text;
  if (encrypted) {
    if (password_file.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          Quote(key_file), " is an encrypted private key; set key_password_file (or "
          "password_file) to the file holding its password"));
    }
    absl::StatusOr<std::string> pw = ReadPasswordFile(password_file);
    if (!pw.ok()) return pw.status();
    password_text = *std::move(pw);
  }
  SecretString password(std::move(password_text));
  ERR_clear_error();
  BioPtr bio(BIO_new_mem_buf(key_text.get().data(), static_cast<int>(key_text.get().size())));
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, PasswordCallback,
                                         const_cast<std::string*>(&password.get())));
  ERR_clear_error();
  if (!key) {
    if (encrypted) {
      return absl::InvalidArgumentError(absl::StrCat("cannot decrypt private key ",
                                                     Quote(key_file), ": wrong password in ",
                                                     Quote(password_file)));
    }
    return absl::InvalidArgumentError(
        absl::StrCat(Quote(key_file), " holds no readable PEM private key"));
  }
  return key;
}

}  // namespace tlsbroker
