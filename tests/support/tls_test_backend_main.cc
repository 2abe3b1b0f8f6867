// tlsb-test-backend: TlsTestServer as a process, for benchmarks and the demo.
//
//   tlsb-test-backend --cert F --key F [--chain F] [--ca F] [--port N] [--mode echo|framed|line]
//                     [--no-client-cert] [--crl F] [--tls-min 1.2|1.3] [--tls-max 1.2|1.3]
//                     [--cipher LIST] [--ciphersuites LIST] [--seclevel N] [--no-resumption]
//                     [--no-tickets] [--no-session-cache] [--response-prefix S]
//                     [--stats-file F]
//   tlsb-test-backend --pki DIR/ec ...   (server.crt, server.key, int.crt, root.crt from DIR)
//
// Prints "LISTENING <port>" on stdout once it accepts connections (--port 0, the default,
// lets the kernel choose). Counters go to --stats-file as "key value" lines on SIGUSR1 and at
// exit, and to stdout after a "stats" line on stdin (ended by "END"). Other stdin commands:
// "close" (drop all connections), "stop" / "start" (stop listening and dropping everything;
// listen again on the same port), "set NAME VALUE" (fault switches: stall_handshake,
// stall_response, garbage, oversize, extra_byte 0|1; close_idle_after_ms, delay_ms N), "quit".
// SIGTERM/SIGINT stop it cleanly.

#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "tests/support/tls_test_server.h"

namespace tlsbroker::testutil {
namespace {

std::string StatsText(const TlsTestServerStats& s) {
  return absl::StrCat("connections_accepted ", s.connections_accepted, "\n",  //
                      "full_handshakes ", s.full_handshakes, "\n",            //
                      "resumed_handshakes ", s.resumed_handshakes, "\n",      //
                      "handshake_failures ", s.handshake_failures, "\n",      //
                      "current_connections ", s.current_connections, "\n",    //
                      "requests ", s.requests, "\n",                          //
                      "responses ", s.responses, "\n",                        //
                      "idle_closes ", s.idle_closes, "\n",                    //
                      "bytes_in ", s.bytes_in, "\n",                          //
                      "bytes_out ", s.bytes_out, "\n");
}

// Written to a temporary name and renamed, so a reader never sees half a file.
void WriteStatsFile(const std::string& path, const TlsTestServerStats& stats) {
  if (path.empty()) return;
  std::string tmp = absl::StrCat(path, ".tmp");
  FILE* f = fopen(tmp.c_str(), "w");
  if (f == nullptr) return;
  std::string text = StatsText(stats);
  fwrite(text.data(), 1, text.size(), f);
  fclose(f);
  rename(tmp.c_str(), path.c_str());
}

// "NAME VALUE": stall_handshake|stall_response|garbage|oversize|extra_byte 0|1,
// close_idle_after_ms|delay_ms N.
void SetFault(TlsTestServer* s, const std::string& setting) {
  size_t space = setting.find(' ');
  std::string name = setting.substr(0, space);
  int64_t value = 0;
  if (space == std::string::npos || !absl::SimpleAtoi(setting.substr(space + 1), &value)) {
    fprintf(stderr, "set: expected NAME VALUE, got '%s'\n", setting.c_str());
    return;
  }
  if (name == "stall_handshake") {
    s->set_stall_handshake(value != 0);
  } else if (name == "stall_response") {
    s->set_stall_response(value != 0);
  } else if (name == "garbage") {
    s->set_garbage_response(value != 0);
  } else if (name == "oversize") {
    s->set_oversize_response(value != 0);
  } else if (name == "extra_byte") {
    s->set_send_extra_bytes_after_response(value != 0);
  } else if (name == "close_idle_after_ms") {
    s->set_close_idle_after(absl::Milliseconds(value));
  } else if (name == "delay_ms") {
    s->set_response_delay(absl::Milliseconds(value));
  } else {
    fprintf(stderr, "set: unknown switch '%s'\n", name.c_str());
  }
}

int ParseVersion(const std::string& v) {
  if (v == "1.2") return TLS1_2_VERSION;
  if (v == "1.3") return TLS1_3_VERSION;
  return -1;
}

[[noreturn]] void Usage(const std::string& error) {
  fprintf(stderr, "tlsb-test-backend: %s\n(see the comment at the top of %s)\n", error.c_str(),
          __FILE__);
  exit(2);
}

int Main(int argc, char** argv) {
  TlsTestServerOptions options;
  std::string stats_file;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Usage(absl::StrCat(flag, " needs a value"));
      return argv[++i];
    };
    if (flag == "--port") {
      if (!absl::SimpleAtoi(value(), &options.port)) Usage("bad --port");
    } else if (flag == "--pki") {
      std::string dir = value();
      options.cert_file = dir + "/server.crt";
      options.key_file = dir + "/server.key";
      options.chain_file = dir + "/int.crt";
      options.ca_file = dir + "/root.crt";
    } else if (flag == "--cert") {
      options.cert_file = value();
    } else if (flag == "--key") {
      options.key_file = value();
    } else if (flag == "--chain") {
      options.chain_file = value();
    } else if (flag == "--ca") {
      options.ca_file = value();
    } else if (flag == "--crl") {
      options.crl_file = value();
    } else if (flag == "--no-client-cert") {
      options.require_client_cert = false;
    } else if (flag == "--mode") {
      std::string mode = value();
      if (mode == "echo") {
        options.mode = TlsTestServerMode::kEcho;
      } else if (mode == "framed") {
        options.mode = TlsTestServerMode::kFramedEcho;
      } else if (mode == "line") {
        options.mode = TlsTestServerMode::kLineReverse;
      } else {
        Usage("--mode is echo, framed or line");
      }
    } else if (flag == "--tls-min" || flag == "--tls-max") {
      int version = ParseVersion(value());
      if (version < 0) Usage(absl::StrCat(flag, " is 1.2 or 1.3"));
      (flag == "--tls-min" ? options.min_version : options.max_version) = version;
    } else if (flag == "--cipher") {
      options.cipher_list = value();
    } else if (flag == "--ciphersuites") {
      options.ciphersuites = value();
    } else if (flag == "--seclevel") {
      if (!absl::SimpleAtoi(value(), &options.security_level)) Usage("bad --seclevel");
    } else if (flag == "--no-resumption") {
      options.session_tickets = false;
      options.session_cache = false;
    } else if (flag == "--no-tickets") {
      options.session_tickets = false;
    } else if (flag == "--no-session-cache") {
      options.session_cache = false;
    } else if (flag == "--response-prefix") {
      options.response_prefix = value();
    } else if (flag == "--stats-file") {
      stats_file = value();
    } else {
      Usage(absl::StrCat("unknown flag ", flag));
    }
  }
  if (options.cert_file.empty() || options.key_file.empty()) Usage("--cert and --key (or --pki)");

  // Signals are taken by sigwait() in this thread only: block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGUSR1);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<std::unique_ptr<TlsTestServer>> server = TlsTestServer::Create(options);
  if (!server.ok()) {
    fprintf(stderr, "tlsb-test-backend: %s\n", server.status().ToString().c_str());
    return 1;
  }
  TlsTestServer* s = server->get();
  printf("LISTENING %d\n", s->port());
  fflush(stdout);

  // stdin commands. At EOF (e.g. stdin is /dev/null) the thread just ends; the server runs on.
  std::thread([s] {
    std::string line;
    while (std::getline(std::cin, line)) {
      if (line == "stats") {
        std::string text = StatsText(s->stats()) + "END\n";
        fwrite(text.data(), 1, text.size(), stdout);
        fflush(stdout);
      } else if (line == "close") {
        s->CloseAllConnections();
      } else if (line == "stop") {
        s->Stop();
      } else if (line == "start") {
        absl::Status started = s->Start();
        if (!started.ok()) fprintf(stderr, "start: %s\n", started.ToString().c_str());
      } else if (absl::StartsWith(line, "set ")) {
        SetFault(s, line.substr(4));
      } else if (line == "quit") {
        kill(getpid(), SIGTERM);
      }
    }
  }).detach();

  while (true) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGUSR1) {
      WriteStatsFile(stats_file, s->stats());
      continue;
    }
    break;
  }
  s->Stop();
  WriteStatsFile(stats_file, s->stats());
  fflush(stdout);
  // The stdin thread may sit in a blocking read: leave without running static destructors.
  _exit(0);
}

}  // namespace
}  // namespace tlsbroker::testutil

int main(int argc, char** argv) { return tlsbroker::testutil::Main(argc, argv); }
