#ifndef TESTS_SUPPORT_OCSP_RESPONDER_PROCESS_H_
#define TESTS_SUPPORT_OCSP_RESPONDER_PROCESS_H_

// A real `openssl ocsp` responder on 127.0.0.1 for tests: tests/support/ocsp_responder.py, a
// loopback-only HTTP front that runs `openssl ocsp` once per request (`openssl ocsp -port`
// itself would bind every interface). It answers for the EC test PKI's intermediate CA, signed
// by the delegated OCSP signer, from an `openssl ca` index file that it re-reads per request,
// so a test can revoke a certificate by editing a copy of the index.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "tests/support/subprocess.h"

namespace tlsbroker::testutil {

// Thread-compatible. Destruction stops the process.
class OcspResponderProcess final {
 public:
  // Starts the responder on a port the kernel picks, answering from `index`.
  static absl::StatusOr<std::unique_ptr<OcspResponderProcess>> Start(const std::string& index);

  std::string url() const;  // http://127.0.0.1:PORT/
  int requests() const;     // Requests answered so far.
  std::string log() const;  // Everything the helper printed.

 private:
  OcspResponderProcess(std::unique_ptr<Subprocess> process, int port)
      : process_(std::move(process)), port_(port) {}

  std::unique_ptr<Subprocess> process_;
  int port_;
};

}  // namespace tlsbroker::testutil

#endif  // TESTS_SUPPORT_OCSP_RESPONDER_PROCESS_H_
