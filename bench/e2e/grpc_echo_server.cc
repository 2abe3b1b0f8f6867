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
//                        [--response-prefix re:] [--answer-from-loop]
// --answer-from-loop: the handler posts the answer to one Asio event loop thread, which calls
// Finish (baseline d1). That is the least any server pays that answers from a thread of its
// own (as tlsbroker does: the backend's reply arrives on its I/O loop), so (d1) - (d) is the
// price of that one hand-off alone, apart from everything else the broker does.
// --forward-to 127.0.0.1:PORT --forward-ca F --forward-cert F --forward-key F: instead of
// answering itself, each gRPC thread sends the request frame to that TLS backend over a
// persistent connection of its own, with blocking I/O, and answers with the backend's frame
// (baseline d2): the least a proxy on gRPC's threads can pay for the second leg. It blocks
// gRPC's threads while the backend works, which a real broker must not do.
// Prints "LISTENING <port>" on stdout when it serves; stops on SIGTERM/SIGINT.

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <grpcpp/grpcpp.h>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "bench/e2e/blocking_tls_connection.h"
#include "absl/synchronization/mutex.h"
#include "tlsbroker/v1/broker.grpc.pb.h"

namespace tlsbroker::bench {
namespace {

// Where --forward-to sends requests.
struct Forwarding {
  SSL_CTX* ctx = nullptr;
  int port = 0;
};

// The calling thread's own connection to the backend (opened on first use): gRPC runs
// handlers on a few threads of its own, and each keeps one connection, as a pool would.
absl::StatusOr<std::string> ForwardOnThisThread(const Forwarding& to, const std::string& frame) {
  thread_local BlockingTlsConnection connection;
  if (!connection.open()) {
    absl::Status opened = connection.Open(to.ctx, "127.0.0.1", to.port, "localhost", nullptr);
    if (!opened.ok()) {
      connection.Close();
      return opened;
    }
  }
  absl::Status written = connection.WriteAll(frame);
  absl::StatusOr<std::string> answer =
      written.ok() ? connection.ReadFrame() : absl::StatusOr<std::string>(written);
  if (!answer.ok()) connection.Close();
  return answer;
}

// Thread-safe: stateless; reactions run on gRPC's callback threads.
class EchoBroker final : public tlsbroker::v1::BrokerService::CallbackService {
 public:
  // `loop`: where answers are sent from; null = from gRPC's own thread.
  EchoBroker(std::string prefix, asio::io_context* loop, const Forwarding* forward)
      : prefix_(std::move(prefix)), loop_(loop), forward_(forward) {}

  grpc::ServerUnaryReactor* Call(grpc::CallbackServerContext* context,
                                 const tlsbroker::v1::CallRequest* request,
                                 tlsbroker::v1::CallResponse* response) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    const std::string& in = request->request();
    if (forward_ != nullptr) {
      absl::StatusOr<std::string> answer = ForwardOnThisThread(*forward_, in);
      if (!answer.ok()) {
        reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                     std::string(answer.status().message())));
        return reactor;
      }
      *response->mutable_response() = *std::move(answer);
      reactor->Finish(grpc::Status::OK);
      return reactor;
    }
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
    if (loop_ == nullptr) {
      reactor->Finish(grpc::Status::OK);
    } else {
      asio::post(*loop_, [reactor] { reactor->Finish(grpc::Status::OK); });
    }
    return reactor;
  }

 private:
  const std::string prefix_;
  asio::io_context* const loop_;
  const Forwarding* const forward_;
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
  bool answer_from_loop = false;
  std::string forward_to, forward_ca, forward_cert, forward_key;
  for (int i = 1; i < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--answer-from-loop") {
      answer_from_loop = true;
      --i;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "tlsb-bench-grpc-echo: %s needs a value\n", flag.c_str());
      return 2;
    }
    std::string value = argv[i + 1];
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
    } else if (flag == "--forward-to") {
      forward_to = value;
    } else if (flag == "--forward-ca") {
      forward_ca = value;
    } else if (flag == "--forward-cert") {
      forward_cert = value;
    } else if (flag == "--forward-key") {
      forward_key = value;
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

  Forwarding forwarding;
  SslCtxPtr forward_ctx;
  if (!forward_to.empty()) {
    const size_t colon = forward_to.rfind(':');
    if (colon == std::string::npos ||
        !absl::SimpleAtoi(forward_to.substr(colon + 1), &forwarding.port) ||
        forward_to.substr(0, colon) != "127.0.0.1") {
      std::fprintf(stderr, "tlsb-bench-grpc-echo: --forward-to must be 127.0.0.1:PORT\n");
      return 2;
    }
    absl::StatusOr<SslCtxPtr> ctx = MakeClientContext(forward_ca, forward_cert, forward_key);
    if (!ctx.ok()) {
      std::fprintf(stderr, "tlsb-bench-grpc-echo: %s\n", ctx.status().ToString().c_str());
      return 2;
    }
    forward_ctx = *std::move(ctx);
    forwarding.ctx = forward_ctx.get();
  }
  asio::io_context loop;
  auto work = asio::make_work_guard(loop);
  std::thread loop_thread;
  if (answer_from_loop) loop_thread = std::thread([&loop] { loop.run(); });
  EchoBroker service(prefix, answer_from_loop ? &loop : nullptr,
                     forwarding.ctx != nullptr ? &forwarding : nullptr);
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
  work.reset();
  if (loop_thread.joinable()) loop_thread.join();
  return 0;
}

}  // namespace
}  // namespace tlsbroker::bench

int main(int argc, char** argv) { return tlsbroker::bench::Main(argc, argv); }
