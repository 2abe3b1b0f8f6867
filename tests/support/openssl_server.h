#ifndef TESTS_SUPPORT_OPENSSL_SERVER_H_
#define TESTS_SUPPORT_OPENSSL_SERVER_H_

// `openssl s_server -rev` as a third-party TLS peer on 127.0.0.1.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "tests/support/subprocess.h"

namespace tlsbroker::testutil {

// One `openssl s_server` process in -rev mode: every line a client sends is answered with the
// line reversed; a line starting with "CLOSE" makes it hang up. s_server serves ONE connection
// at a time (a second client waits until the first disconnects): use it for single-socket
// interoperability (mTLS, TLS 1.2/1.3, NULL ciphers, CRL, stapling) and TlsTestServer for
// anything with several sockets or handshake counting.
//
// It listens on a port the kernel picks (port 0); readiness is taken from its "ACCEPT
// 127.0.0.1:PORT" line, never from a probe connection, which s_server would count as its
// client. Destruction stops the process.
//
// Thread-compatible.
class OpensslServer final {
 public:
  struct Options {
    std::string cert;        // -cert
    std::string key;         // -key
    std::string cert_chain;  // -cert_chain (intermediates), optional
    std::string ca_file;     // -CAfile: trust for client certificates, optional
    // -Verify 2 -verify_return_error: a client without a valid certificate is refused.
    // false with a ca_file: -verify 2 (a certificate is asked for but optional).
    bool require_client_cert = true;
    std::string crl_file;  // -CRL FILE -crl_check (client certificate revocation), optional
    // Anything else, e.g. {"-tls1_2", "-cipher", "NULL-SHA256:@SECLEVEL=0"}, {"-tls1_3"},
    // {"-status_file", "resp.der"}.
    std::vector<std::string> extra_args;
    std::string log_path;  // stdout+stderr of s_server; empty = a fresh temp file
    std::string host = "127.0.0.1";  // the loopback address to listen on: "127.0.0.1" or "::1"
    absl::Duration start_timeout = absl::Seconds(10);
  };

  // The PKI's server cert/key/int chain and root.crt as client CA, client cert required.
  static Options PkiOptions(absl::string_view alg);

  // Starts s_server and waits until it listens.
  static absl::StatusOr<std::unique_ptr<OpensslServer>> Start(Options options);

  OpensslServer(const OpensslServer&) = delete;
  OpensslServer& operator=(const OpensslServer&) = delete;
  ~OpensslServer() = default;  // ~Subprocess stops s_server

  int port() const { return port_; }
  std::string address() const;  // "127.0.0.1:PORT" or "[::1]:PORT"
  pid_t pid() const { return process_->pid(); }
  bool Running() { return process_->Running(); }
  std::string Log() const { return process_->ReadLog(); }
  const std::string& log_path() const { return process_->log_path(); }

  // Stops s_server now (the destructor does it too).
  void Stop() { process_->Stop(); }

 private:
  OpensslServer(std::unique_ptr<Subprocess> process, std::string host, int port)
      : process_(std::move(process)), host_(std::move(host)), port_(port) {}

  std::unique_ptr<Subprocess> process_;
  std::string host_;  // as s_server prints it: "127.0.0.1" or "[::1]"
  int port_;
};

}  // namespace tlsbroker::testutil

#endif  // TESTS_SUPPORT_OPENSSL_SERVER_H_
