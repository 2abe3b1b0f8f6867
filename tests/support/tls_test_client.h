#ifndef TESTS_SUPPORT_TLS_TEST_CLIENT_H_
#define TESTS_SUPPORT_TLS_TEST_CLIENT_H_

// A small blocking TLS client for tests that need to talk to a test peer directly (not
// through the broker): mTLS, resumption with a saved session, frames and lines.

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;

namespace tlsbroker::testutil {

// A saved TLS session, for resuming on a later connection.
using TlsSessionPtr = std::shared_ptr<SSL_SESSION>;

struct TlsTestClientOptions {
  std::string ca_file;    // trust for the server; empty = do not verify the server
  std::string cert_file;  // client certificate (may be a full chain); empty = none
  std::string key_file;
  // SNI and the name the server certificate must carry; empty = no SNI, no name check.
  std::string server_name = "localhost";
  int min_version = 0;  // e.g. TLS1_2_VERSION; 0 = library default
  int max_version = 0;
  std::string cipher_list;  // TLS <= 1.2, optional
  int security_level = -1;  // -1 = library default
  // Bounds every connect, handshake, read and write (SO_RCVTIMEO/SO_SNDTIMEO), so a stalled
  // peer fails the call instead of hanging the test.
  absl::Duration io_timeout = absl::Seconds(10);
};

// One TCP+TLS connection to 127.0.0.1. Connect() returns once the handshake is done; in TLS
// 1.3 a server's rejection of the client certificate then shows up at the first read.
//
// Thread-compatible: one thread at a time.
class TlsTestClient final {
 public:
  // root.crt as trust, `client` + ".fullchain.pem" / ".key" as the client certificate.
  static TlsTestClientOptions PkiOptions(absl::string_view alg,
                                         absl::string_view client = "client");

  // Connects and handshakes, offering `resume` if given.
  static absl::StatusOr<std::unique_ptr<TlsTestClient>> Connect(int port,
                                                                const TlsTestClientOptions& options,
                                                                TlsSessionPtr resume = nullptr);

  TlsTestClient(const TlsTestClient&) = delete;
  TlsTestClient& operator=(const TlsTestClient&) = delete;
  ~TlsTestClient();

  absl::Status Write(absl::string_view bytes);
  // Exactly `n` bytes; an error if the connection ends or times out first.
  absl::StatusOr<std::string> ReadExactly(size_t n);
  // Whatever arrives next (at least one byte); "" at an orderly end (close_notify).
  absl::StatusOr<std::string> ReadSome();
  // Up to and excluding the next '\n'.
  absl::StatusOr<std::string> ReadLine();
  // A 4-byte big-endian length frame (the length counts the header): write and read.
  absl::Status WriteFrame(absl::string_view payload);
  absl::StatusOr<std::string> ReadFrame();  // the payload

  // The session to resume later. In TLS 1.3 the server's ticket arrives after the handshake:
  // read something first (any round trip will do).
  TlsSessionPtr session() const;
  bool resumed() const;
  std::string version() const;  // "TLSv1.3"
  std::string cipher() const;
  // Subject of the server certificate, RFC 2253.
  std::string peer_subject() const;

  // Sends close_notify and closes the socket; the getters above still work afterwards.
  void Close();

 private:
  TlsTestClient(SSL_CTX* ctx, SSL* ssl, int fd) : ctx_(ctx), ssl_(ssl), fd_(fd) {}

  // One SSL_read, ignoring buffered_.
  absl::StatusOr<std::string> ReadFromSsl();

  SSL_CTX* ctx_;
  SSL* ssl_;
  int fd_;
  std::string buffered_;  // read but not yet returned (ReadLine / ReadExactly)
};

}  // namespace tlsbroker::testutil

#endif  // TESTS_SUPPORT_TLS_TEST_CLIENT_H_
