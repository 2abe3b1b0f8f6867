#ifndef TESTS_SERVICES_HTTP_GET_H_
#define TESTS_SERVICES_HTTP_GET_H_

// A minimal HTTP/1.1 client over a real TCP socket, for tests of the broker's HTTP endpoint:
// it sends one request with "Connection: close" and reads the response to EOF, so the test
// sees exactly what a scraper or the kubelet would.

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tlsbroker::testutil {

struct HttpResponse {
  int status = 0;
  // Header names lower-cased (HTTP names are case-insensitive); a repeated header keeps the
  // last value.
  std::map<std::string, std::string> headers;
  // De-chunked when the response used Transfer-Encoding: chunked.
  std::string body;
};

// Sends `method` `path` to host:port (an IPv4 literal) and returns the parsed response. The
// whole exchange (connect, send, read to EOF) is bounded by `timeout`: DeadlineExceeded past
// it; Unavailable when the connection is refused or fails; Internal on an unparsable response.
absl::StatusOr<HttpResponse> HttpRequest(const std::string& method, const std::string& host,
                                         int port, const std::string& path,
                                         absl::Duration timeout = absl::Seconds(10));

// HttpRequest("GET", ...).
absl::StatusOr<HttpResponse> HttpGet(const std::string& host, int port, const std::string& path,
                                     absl::Duration timeout = absl::Seconds(10));

}  // namespace tlsbroker::testutil

#endif  // TESTS_SERVICES_HTTP_GET_H_
