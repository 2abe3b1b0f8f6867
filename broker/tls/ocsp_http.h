#ifndef BROKER_TLS_OCSP_HTTP_H_
#define BROKER_TLS_OCSP_HTTP_H_

// The smallest HTTP/1.0 client that OCSP needs (RFC 6960 appendix A): one POST of a DER
// request, one response body back. Plain http:// only — OCSP responses are signed, so TLS to the
// responder adds nothing but a chicken-and-egg revocation problem. Runs on the io_context it is
// given (the OCSP worker), never on the pool's I/O loops, and never blocks that context.

#include <cstdint>
#include <string>

#include <asio/io_context.hpp>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace tlsbroker {

struct HttpUrl {
  std::string host;
  uint16_t port = 80;
  std::string path = "/";
};

// Parses "http://host[:port][/path]" (IPv6 literals in brackets). kInvalidArgument naming the
// problem otherwise (https:// included: see above).
absl::StatusOr<HttpUrl> ParseHttpUrl(absl::string_view url);

// POSTs `body` (Content-Type application/ocsp-request) to `url` and calls `done` on `io` with the
// body of a 200 response. Anything else — resolve/connect failure, timeout, non-200 status, a
// body over 1 MiB — is kUnavailable with a message saying which. The whole exchange, including
// the connect, is bounded by `timeout`.
void HttpPost(asio::io_context& io, const HttpUrl& url, std::string body, absl::Duration timeout,
              absl::AnyInvocable<void(absl::StatusOr<std::string>) &&> done);

}  // namespace tlsbroker

#endif  // BROKER_TLS_OCSP_HTTP_H_
