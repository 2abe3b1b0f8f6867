#include "tests/support/openssl_server.h"

#include <stdlib.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "tests/support/test_pki.h"

namespace tlsbroker::testutil {

OpensslServer::Options OpensslServer::PkiOptions(absl::string_view alg) {
  Options options;
  options.cert = PkiPath(alg, "server.crt");
  options.key = PkiPath(alg, "server.key");
  options.cert_chain = PkiPath(alg, "int.crt");
  options.ca_file = PkiPath(alg, "root.crt");
  return options;
}

absl::StatusOr<std::unique_ptr<OpensslServer>> OpensslServer::Start(Options options) {
  // s_server writes (and takes) an IPv6 address in brackets.
  const std::string host = absl::StrContains(options.host, ':')
                               ? absl::StrCat("[", options.host, "]")
                               : options.host;
  std::vector<std::string> argv = {"openssl", "s_server",   "-accept", absl::StrCat(host, ":0"),
                                   "-cert",   options.cert, "-key",    options.key};
  if (!options.cert_chain.empty()) {
    argv.insert(argv.end(), {"-cert_chain", options.cert_chain});
  }
  if (!options.ca_file.empty()) {
    argv.insert(argv.end(), {"-CAfile", options.ca_file});
    if (options.require_client_cert) {
      argv.insert(argv.end(), {"-Verify", "2", "-verify_return_error"});
    } else {
      argv.insert(argv.end(), {"-verify", "2"});
    }
  }
  if (!options.crl_file.empty()) {
    argv.insert(argv.end(), {"-CRL", options.crl_file, "-crl_check"});
  }
  argv.insert(argv.end(), options.extra_args.begin(), options.extra_args.end());
  // -rev keeps s_server off its stdin (/dev/null would make it exit at once).
  argv.push_back("-rev");

  absl::StatusOr<std::unique_ptr<Subprocess>> process =
      Subprocess::Start(std::move(argv), options.log_path);
  if (!process.ok()) return process.status();
  // s_server prints "ACCEPT 127.0.0.1:PORT" (or "ACCEPT [::1]:PORT") once it is listening.
  const std::string accept = absl::StrCat("ACCEPT ", host, ":");
  absl::Status listening = (*process)->WaitForLog(accept, options.start_timeout);
  if (!listening.ok()) return listening;
  // The line is complete once its newline is there; poll briefly for it.
  std::string log;
  size_t pos = std::string::npos;
  size_t end = std::string::npos;
  PollUntil(
      [&] {
        log = (*process)->ReadLog();
        pos = log.find(accept);
        end = pos == std::string::npos ? pos : log.find('\n', pos);
        return end != std::string::npos;
      },
      options.start_timeout);
  int port = 0;
  const size_t digits = pos + accept.size();
  if (end == std::string::npos || !absl::SimpleAtoi(log.substr(digits, end - digits), &port) ||
      port <= 0) {
    return absl::InternalError(absl::StrCat("cannot read s_server's port; log:\n", log));
  }
  return std::unique_ptr<OpensslServer>(new OpensslServer(std::move(*process), host, port));
}

std::string OpensslServer::address() const { return absl::StrCat(host_, ":", port_); }

}  // namespace tlsbroker::testutil
