#include "tests/services/http_get.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace tlsbroker::testutil {
namespace {

// Closes the socket on every return path.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// Waits for `events` on `fd` until `deadline`.
absl::Status WaitFor(int fd, short events, absl::Time deadline, absl::string_view what) {
  while (true) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError(absl::StrCat("HTTP client: timed out ", what));
    }
    pollfd pfd = {fd, events, 0};
    const int n = poll(&pfd, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    if (n > 0) return absl::OkStatus();
    if (n < 0 && errno != EINTR) {
      return absl::InternalError(absl::StrCat("HTTP client: poll: ", strerror(errno)));
    }
  }
}

// Decodes a chunked body (chunk extensions and trailers ignored).
absl::StatusOr<std::string> Dechunk(absl::string_view in) {
  std::string out;
  while (true) {
    const size_t eol = in.find("\r\n");
    if (eol == absl::string_view::npos) return absl::InternalError("HTTP client: bad chunk size");
    absl::string_view size_text = in.substr(0, eol);
    size_text = size_text.substr(0, size_text.find(';'));
    uint64_t size = 0;
    if (!absl::SimpleHexAtoi(absl::StripAsciiWhitespace(size_text), &size)) {
      return absl::InternalError(absl::StrCat("HTTP client: bad chunk size \"", size_text, "\""));
    }
    in.remove_prefix(eol + 2);
    if (size == 0) return out;
    if (in.size() < size + 2) return absl::InternalError("HTTP client: truncated chunk");
    out.append(in.data(), size);
    in.remove_prefix(size + 2);
  }
}

absl::StatusOr<HttpResponse> Parse(absl::string_view raw) {
  const size_t header_end = raw.find("\r\n\r\n");
  if (header_end == absl::string_view::npos) {
    return absl::InternalError(
        absl::StrCat("HTTP client: no end of headers in ", raw.size(), " bytes: ", raw));
  }
  std::vector<absl::string_view> lines =
      absl::StrSplit(raw.substr(0, header_end), absl::ByString("\r\n"));
  // Status line: HTTP/1.x SP code SP reason.
  std::vector<absl::string_view> status_parts = absl::StrSplit(lines[0], absl::MaxSplits(' ', 2));
  HttpResponse response;
  if (status_parts.size() < 2 || !absl::StartsWith(status_parts[0], "HTTP/1.") ||
      !absl::SimpleAtoi(status_parts[1], &response.status)) {
    return absl::InternalError(absl::StrCat("HTTP client: bad status line \"", lines[0], "\""));
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t colon = lines[i].find(':');
    if (colon == absl::string_view::npos) {
      return absl::InternalError(absl::StrCat("HTTP client: bad header \"", lines[i], "\""));
    }
    response.headers[absl::AsciiStrToLower(lines[i].substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
  }
  absl::string_view body = raw.substr(header_end + 4);
  const auto te = response.headers.find("transfer-encoding");
  if (te != response.headers.end() && absl::AsciiStrToLower(te->second) == "chunked") {
    auto dechunked = Dechunk(body);
    if (!dechunked.ok()) return dechunked.status();
    response.body = *std::move(dechunked);
    return response;
  }
  const auto length = response.headers.find("content-length");
  if (length != response.headers.end()) {
    size_t n = 0;
    if (!absl::SimpleAtoi(length->second, &n) || n > body.size()) {
      return absl::InternalError(absl::StrCat("HTTP client: Content-Length ", length->second,
                                              " but ", body.size(), " body bytes"));
    }
    body = body.substr(0, n);
  }
  response.body = std::string(body);
  return response;
}

}  // namespace

absl::StatusOr<HttpResponse> HttpRequest(const std::string& method, const std::string& host,
                                         int port, const std::string& path,
                                         absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("HTTP client: not an IPv4 literal: ", host));
  }
  Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));

  const std::string target = absl::StrCat(host, ":", port);
  if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (errno != EINPROGRESS) {
      return absl::UnavailableError(absl::StrCat("connect ", target, ": ", strerror(errno)));
    }
    if (auto s = WaitFor(fd.get(), POLLOUT, deadline, "connecting"); !s.ok()) return s;
    int error = 0;
    socklen_t len = sizeof(error);
    getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &len);
    if (error != 0) {
      return absl::UnavailableError(absl::StrCat("connect ", target, ": ", strerror(error)));
    }
  }

  const std::string request = absl::StrCat(method, " ", path, " HTTP/1.1\r\nHost: ", target,
                                           "\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
  absl::string_view pending = request;
  while (!pending.empty()) {
    if (auto s = WaitFor(fd.get(), POLLOUT, deadline, "sending"); !s.ok()) return s;
    const ssize_t n = send(fd.get(), pending.data(), pending.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return absl::UnavailableError(absl::StrCat("send to ", target, ": ", strerror(errno)));
    }
    pending.remove_prefix(static_cast<size_t>(n));
  }

  std::string raw;
  char buffer[16 * 1024];
  while (true) {
    if (auto s = WaitFor(fd.get(), POLLIN, deadline, "reading the response"); !s.ok()) return s;
    const ssize_t n = recv(fd.get(), buffer, sizeof(buffer), 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      // A reset after a complete response still leaves a usable response.
      if (errno == ECONNRESET && !raw.empty()) break;
      return absl::UnavailableError(absl::StrCat("recv from ", target, ": ", strerror(errno)));
    }
    raw.append(buffer, static_cast<size_t>(n));
  }
  return Parse(raw);
}

absl::StatusOr<HttpResponse> HttpGet(const std::string& host, int port, const std::string& path,
                                     absl::Duration timeout) {
  return HttpRequest("GET", host, port, path, timeout);
}

}  // namespace tlsbroker::testutil
