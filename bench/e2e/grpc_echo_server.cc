// tlsb-bench-grpc-echo: baseline (d) of the end-to-end benchmark (scripts/bench.sh): a bare gRPC
// unary echo with no backend at all, the floor for the gRPC leg of a BrokerService.Call.
//
// It serves the broker's own BrokerService.Call method (tlsbroker.v1), so tlsbroker-load drives it with
// exactly the client, channel settings, payloads and verification it uses against tlsbroker.
// Call answers what the framed test backend would: the request frame's payload behind the
// response prefix, in a new 4-byte big-endian length frame. Its listener is set up like the
// broker's (mTLS that requires and verifies client certificates, the callback API), so the
// difference between (e) and (d) is the broker's own work plus the backend round trip.
//
//   tlsb-bench-grpc-echo --cert F --key F --client-ca F [--listen 127.0.0.1:0]
//                        [--response-prefix re:]
// Prints "LISTENING <port>" on stdout when it serves; stops on SIGTERM/SIGINT.

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "tlsbroker/v1/broker.grpc.pb.h"

namespace tlsbroker::bench {
namespace {

// Thread-safe: stateless; reactions run on gRPC's callback threads.
class EchoBroker final : public tlsbroker::v1::BrokerService::CallbackService {
 public:
  explicit EchoBroker(std::string prefix) : prefix_(std::move(prefix)) {}

  grpc::ServerUnaryReactor* Call(grpc::CallbackServerContext* context,
                                 const tlsbroker::v1::CallRequest* request,
                                 tlsbroker::v1::CallResponse* response) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    const std::string& in = request->request();
    if (in.size() < 4) {
      reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "short frame"));
      return reactor;
    }
    const size_t length = 4 + prefix_.size() + in.size() - 4;
    std::string* out = response->mutable_response();
    out->reserve(length);
    for (int shift = 24; shift >= 0; shift -= 8) {
      out->push_back(static_cast<char>((length >> shift) & 0xff));
    }
    out->append(prefix_);
    out->append(in, 4, std::string::npos);
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  const std::string prefix_;
};

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::ostringstream s;
  s << f.rdbuf();
  *out = s.str();
  return true;
}

int Main(int argc, char** argv) {
  // As tlsbroker does (services/main.cc): the baseline gets the same gRPC tuning.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  std::string cert_file, key_file, ca_file, listen = "127.0.0.1:0", prefix = "re:";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--cert") {
      cert_file = value;
    } else if (flag == "--key") {
      key_file = value;
    } else if (flag == "--client-ca") {
      ca_file = value;
    } else if (flag == "--listen") {
      listen = value;
    } else if (flag == "--response-prefix") {
      prefix = value;
    } else {
      std::fprintf(stderr, "tlsb-bench-grpc-echo: unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  std::string cert, key, ca;
  if (!ReadFile(cert_file, &cert) || !ReadFile(key_file, &key) || !ReadFile(ca_file, &ca)) {
    std::fprintf(stderr,
                 "usage: tlsb-bench-grpc-echo --cert F --key F --client-ca F [--listen A]"
                 " [--response-prefix S] (cannot read a file)\n");
    return 2;
  }
  grpc::SslServerCredentialsOptions ssl(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  ssl.pem_root_certs = ca;
  ssl.pem_key_cert_pairs.push_back({key, cert});

  // SIGTERM/SIGINT are blocked before gRPC starts its threads, so that every thread inherits
  // the mask and sigwait below receives them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  EchoBroker service(prefix);
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(listen, grpc::SslServerCredentials(ssl), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "tlsb-bench-grpc-echo: cannot listen on %s\n", listen.c_str());
    return 1;
  }
  std::printf("LISTENING %d\n", port);
  std::fflush(stdout);

  int sig = 0;
  sigwait(&set, &sig);
  server->Shutdown();
  return 0;
}

}  // namespace
}  // namespace tlsbroker::bench

int main(int argc, char** argv) { return tlsbroker::bench::Main(argc, argv); }
