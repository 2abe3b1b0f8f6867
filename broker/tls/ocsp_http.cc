#include "broker/tls/ocsp_http.h"

#include <array>
#include <memory>

#include <asio/connect.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace tlsbroker {
namespace {

constexpr size_t kMaxResponseBytes = 1 << 20;

// One request in flight; owned by the handlers that refer to it.
class HttpExchange final : public std::enable_shared_from_this<HttpExchange> {
 public:
  using Done = absl::AnyInvocable<void(absl::StatusOr<std::string>) &&>;

  HttpExchange(asio::io_context& io, HttpUrl url, std::string body, Done done)
      : url_(std::move(url)),
        body_(std::move(body)),
        done_(std::move(done)),
        socket_(io),
        resolver_(io),
        timer_(io) {}

  void Start(absl::Duration timeout) {
    auto self = shared_from_this();
    timer_.expires_after(absl::ToChronoNanoseconds(timeout));
    timer_.async_wait([self](const asio::error_code& ec) {
      if (ec) return;  // Cancelled: the exchange finished first.
      self->timed_out_ = true;
      asio::error_code ignored;
      self->resolver_.cancel();
      self->socket_.close(ignored);
    });
    resolver_.async_resolve(
        url_.host, std::to_string(url_.port),
        [self](const asio::error_code& ec, asio::ip::tcp::resolver::results_type results) {
          if (ec) return self->Fail("resolving", ec);
          asio::async_connect(self->socket_, results,
                              [self](const asio::error_code& cec, const asio::ip::tcp::endpoint&) {
                                if (cec) return self->Fail("connecting to", cec);
                                self->SendRequest();
                              });
        });
  }

 private:
  void SendRequest() {
    request_ = absl::StrCat("POST ", url_.path, " HTTP/1.0\r\nHost: ", url_.host, ":", url_.port,
                            "\r\nContent-Type: application/ocsp-request\r\nContent-Length: ",
                            body_.size(), "\r\nConnection: close\r\n\r\n", body_);
    auto self = shared_from_this();
    asio::async_write(socket_, asio::buffer(request_),
                      [self](const asio::error_code& ec, size_t) {
                        if (ec) return self->Fail("sending the request to", ec);
                        self->ReadSome();
                      });
  }

  void ReadSome() {
    auto self = shared_from_this();
    socket_.async_read_some(asio::buffer(chunk_), [self](const asio::error_code& ec, size_t n) {
      self->response_.append(self->chunk_.data(), n);
      if (self->response_.size() > kMaxResponseBytes) {
        return self->Finish(absl::UnavailableError(absl::StrCat(
            "the OCSP responder ", self->Where(), " sent more than ", kMaxResponseBytes,
            " bytes")));
      }
      if (ec == asio::error::eof) return self->Parse();
      if (ec) return self->Fail("reading the response from", ec);
      self->ReadSome();
    });
  }

  void Parse() {
    const size_t header_end = response_.find("\r\n\r\n");
    if (header_end == std::string::npos) {
      return Finish(absl::UnavailableError(
          absl::StrCat("the OCSP responder ", Where(), " sent no complete HTTP header")));
    }
    absl::string_view head(response_.data(), header_end);
    std::vector<absl::string_view> lines = absl::StrSplit(head, "\r\n");
    // "HTTP/1.x 200 OK"
    std::vector<absl::string_view> status = absl::StrSplit(lines[0], absl::MaxSplits(' ', 2));
    int code = 0;
    if (status.size() < 2 || !absl::StartsWith(status[0], "HTTP/1.") ||
        !absl::SimpleAtoi(status[1], &code)) {
      return Finish(absl::UnavailableError(absl::StrCat(
          "the OCSP responder ", Where(), " sent a malformed status line \"", lines[0], "\"")));
    }
    if (code != 200) {
      return Finish(absl::UnavailableError(
          absl::StrCat("the OCSP responder ", Where(), " answered HTTP ", code)));
    }
    std::string body = response_.substr(header_end + 4);
    for (size_t i = 1; i < lines.size(); ++i) {
      std::pair<absl::string_view, absl::string_view> kv =
          absl::StrSplit(lines[i], absl::MaxSplits(':', 1));
      size_t length = 0;
      if (absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(kv.first), "content-length") &&
          absl::SimpleAtoi(absl::StripAsciiWhitespace(kv.second), &length) &&
          length < body.size()) {
        body.resize(length);
      }
    }
    Finish(std::move(body));
  }

  std::string Where() const { return absl::StrCat(url_.host, ":", url_.port); }

  void Fail(absl::string_view what, const asio::error_code& ec) {
    if (timed_out_) {
      return Finish(absl::UnavailableError(
          absl::StrCat("the OCSP responder ", Where(), " did not answer in time")));
    }
    Finish(absl::UnavailableError(
        absl::StrCat(what, " the OCSP responder ", Where(), " failed: ", ec.message())));
  }

  void Finish(absl::StatusOr<std::string> result) {
    if (!done_) return;
    timer_.cancel();
    asio::error_code ignored;
    socket_.close(ignored);
    auto done = std::move(done_);
    done_ = nullptr;
    std::move(done)(std::move(result));
  }

  const HttpUrl url_;
  const std::string body_;
  Done done_;
  asio::ip::tcp::socket socket_;
  asio::ip::tcp::resolver resolver_;
  asio::steady_timer timer_;
  bool timed_out_ = false;
  std::string request_;
  std::string response_;
  std::array<char, 4096> chunk_{};
};

}  // namespace

absl::StatusOr<HttpUrl> ParseHttpUrl(absl::string_view url) {
  absl::string_view rest = url;
  if (!absl::ConsumePrefix(&rest, "http://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("OCSP responder URL \"", url, "\" must start with http://"));
  }
  HttpUrl out;
  const size_t slash = rest.find('/');
  absl::string_view authority = rest.substr(0, slash);
  if (slash != absl::string_view::npos) out.path = std::string(rest.substr(slash));
  absl::string_view port;
  if (absl::StartsWith(authority, "[")) {
    const size_t close = authority.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("OCSP responder URL \"", url, "\": unterminated [IPv6 address]"));
    }
    out.host = std::string(authority.substr(1, close - 1));
    absl::string_view after = authority.substr(close + 1);
    if (!after.empty() && !absl::ConsumePrefix(&after, ":")) {
      return absl::InvalidArgumentError(
          absl::StrCat("OCSP responder URL \"", url, "\": unexpected text after ]"));
    }
    port = after;
  } else {
    const size_t colon = authority.rfind(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != absl::string_view::npos) port = authority.substr(colon + 1);
  }
  if (out.host.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("OCSP responder URL \"", url, "\" has no host"));
  }
  if (!port.empty()) {
    int p = 0;
    if (!absl::SimpleAtoi(port, &p) || p < 1 || p > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat("OCSP responder URL \"", url, "\": bad port \"", port, "\""));
    }
    out.port = static_cast<uint16_t>(p);
  }
  return out;
}

void HttpPost(asio::io_context& io, const HttpUrl& url, std::string body, absl::Duration timeout,
              absl::AnyInvocable<void(absl::StatusOr<std::string>) &&> done) {
  auto exchange = std::make_shared<HttpExchange>(io, url, std::move(body), std::move(done));
  exchange->Start(timeout);
}

}  // namespace tlsbroker
