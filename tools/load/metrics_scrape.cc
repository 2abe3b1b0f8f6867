#include "tools/load/metrics_scrape.h"

#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace tlsbroker::load {
namespace {

// Closes the fd on every path.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// The value of label `name` in a series' label text `a="x",b="y"`, or "" when absent.
std::string LabelValue(absl::string_view labels, absl::string_view name) {
  const std::string key = absl::StrCat(name, "=\"");
  size_t at = 0;
  while ((at = labels.find(key, at)) != absl::string_view::npos) {
    if (at == 0 || labels[at - 1] == ',' || labels[at - 1] == '{') {
      const size_t start = at + key.size();
      const size_t end = labels.find('"', start);
      if (end == absl::string_view::npos) return "";
      return std::string(labels.substr(start, end - start));
    }
    at += key.size();
  }
  return "";
}

}  // namespace

absl::StatusOr<std::string> HttpGetMetrics(const std::string& url, absl::Duration timeout) {
  absl::string_view rest = url;
  if (!absl::ConsumePrefix(&rest, "http://")) {
    return absl::InvalidArgumentError(absl::StrCat("metrics URL must start with http://: ", url));
  }
  std::string path = "/metrics";
  if (size_t slash = rest.find('/'); slash != absl::string_view::npos) {
    if (rest.substr(slash) != "/") path = std::string(rest.substr(slash));
    rest = rest.substr(0, slash);
  }
  const size_t colon = rest.rfind(':');
  if (colon == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("metrics URL has no port: ", url));
  }
  std::string host(rest.substr(0, colon));
  std::string port(rest.substr(colon + 1));
  if (absl::StartsWith(host, "[") && absl::EndsWith(host, "]")) {
    host = host.substr(1, host.size() - 2);
  }

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return absl::UnavailableError(absl::StrCat("resolve ", host, ": ", gai_strerror(rc)));
  }
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> addresses(found, freeaddrinfo);
  Fd fd(socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(absl::ToInt64Seconds(timeout));
  tv.tv_usec = static_cast<suseconds_t>(absl::ToInt64Microseconds(timeout) % 1000000);
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (connect(fd.get(), found->ai_addr, found->ai_addrlen) != 0) {
    return absl::UnavailableError(absl::StrCat("connect ", rest, ": ", strerror(errno)));
  }
  const std::string request =
      absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: ", rest, "\r\nConnection: close\r\n\r\n");
  for (size_t sent = 0; sent < request.size();) {
    ssize_t n = send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return absl::UnavailableError(absl::StrCat("send: ", strerror(errno)));
    sent += static_cast<size_t>(n);
  }
  std::string response;
  char buf[16384];
  while (true) {
    ssize_t n = recv(fd.get(), buf, sizeof(buf), 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::UnavailableError(absl::StrCat("recv: ", strerror(errno)));
    }
    response.append(buf, static_cast<size_t>(n));
  }
  const size_t header_end = response.find("\r\n\r\n");
  if (header_end == std::string::npos) return absl::UnavailableError("truncated HTTP response");
  absl::string_view status_line = absl::string_view(response).substr(0, response.find("\r\n"));
  if (!absl::StrContains(status_line, " 200")) {
    return absl::UnavailableError(absl::StrCat("GET ", url, ": ", status_line));
  }
  return response.substr(header_end + 4);
}

HandshakeCounts ParseHandshakes(absl::string_view text, absl::string_view backend) {
  HandshakeCounts counts;
  constexpr absl::string_view kName = "tlsbroker_tls_handshakes_total{";
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::StartsWith(line, kName)) continue;
    const size_t close = line.rfind('}');
    if (close == absl::string_view::npos) continue;
    absl::string_view labels = line.substr(kName.size() - 1, close - kName.size() + 2);
    if (LabelValue(labels, "backend") != backend) continue;
    double value = 0;
    absl::string_view number = absl::StripAsciiWhitespace(line.substr(close + 1));
    if (size_t space = number.find(' '); space != absl::string_view::npos) {
      number = number.substr(0, space);  // a timestamp may follow
    }
    if (!absl::SimpleAtod(number, &value)) continue;
    if (LabelValue(labels, "result") != "ok") {
      counts.failed += value;
    } else if (LabelValue(labels, "resumed") == "true") {
      counts.resumed += value;
    } else {
      counts.full += value;
    }
  }
  return counts;
}

}  // namespace tlsbroker::load
