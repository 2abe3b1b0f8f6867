// Faults that need real processes: a caller that vanishes mid-lease (a client process
// SIGKILLed, so its connection drops without a cancel), and SIGHUP reloads of the real tlsbroker
// binary under load.

#include <signal.h>

#include <atomic>
#include <fstream>
#include <functional>
#include <regex>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/faults/fault_test_env.h"
#include "tests/support/subprocess.h"

namespace tlsbroker {
namespace {

using testutil::FaultTest;
using testutil::Frame;

uint64_t RunAndKillVanishingClient(const std::string& target, testutil::TlsTestServer* backend,
                                   const std::function<uint64_t(uint64_t)>& bytes_received,
                                   bool answered);

class ProcessFaultsTest : public FaultTest {
 protected:
  // What the broker has read from the backend on socket `id` (0 if not listed).
  uint64_t BytesReceived(uint64_t id) {
    for (const v1::SocketStatus& s : ListSockets()) {
      if (s.socket_id() == id) return s.bytes_received();
    }
    return 0;
  }
  uint64_t RunAndKill(bool answered) {
    return RunAndKillVanishingClient(
        target_, backend_.get(), [this](uint64_t id) { return BytesReceived(id); }, answered);
  }
};

// Runs the vanishing client (it opens a Lease, exchanges a frame, sends a second request and
// never reads again), waits until its second request reached the backend, SIGKILLs it, and
// returns the ID of the socket its lease held.
// With `answered`, it is killed only once the broker has read the backend's answer to that
// request (the socket's bytes_received), so the lease owes nothing.
uint64_t RunAndKillVanishingClient(const std::string& target, testutil::TlsTestServer* backend,
                                   const std::function<uint64_t(uint64_t)>& bytes_received,
                                   bool answered) {
  std::string dir = testutil::MakeTempDir("tlsb-faults");
  int64_t requests = backend->stats().requests;
  auto client = testutil::Subprocess::Start({TLSB_VANISHING_CLIENT, target, "framed"},
                                            dir + "/client.log");
  EXPECT_TRUE(client.ok()) << client.status();
  if (!client.ok()) return 0;
  EXPECT_TRUE((*client)->WaitForLog("SENT", absl::Seconds(20)).ok()) << (*client)->ReadLog();
  std::smatch match;
  std::string log = (*client)->ReadLog();
  EXPECT_TRUE(std::regex_search(log, match, std::regex("LEASED ([0-9]+)"))) << log;
  if (match.empty()) return 0;
  EXPECT_TRUE(backend->WaitFor([&](const auto& s) { return s.requests >= requests + 2; },
                               absl::Seconds(10)));
  const uint64_t socket = std::stoull(match[1].str());
  if (answered) {
    const uint64_t all = Frame("re:first").size() + Frame("re:second, never read").size();
    EXPECT_TRUE(testutil::WaitUntil([&] { return bytes_received(socket) == all; }));
  }
  EXPECT_TRUE((*client)->Signal(SIGKILL).ok());
  EXPECT_EQ((*client)->Wait(absl::Seconds(10)).value_or(-1), 128 + SIGKILL);
  return socket;
}

// My lease still works: frames exact, same socket.
void ExpectLeaseUnharmed(testutil::LeaseStream* lease) {
  for (int i = 0; i < 5; ++i) {
    std::string payload = absl::StrCat("still mine ", i);
    EXPECT_EQ(testutil::LeaseExchange(lease, payload, Frame("re:" + payload).size()),
              Frame("re:" + payload));
  }
}

// A caller process killed while the backend still owes it an answer: the broker ends its lease
// and destroys the socket (the late answer can reach no one), while another caller's lease on
// the same backend keeps exchanging frames undisturbed.
TEST_F(ProcessFaultsTest, VanishedCallerOwedAnAnswerEndsLeaseAndDestroysSocketOthersUnharmed) {
  framed_options().pool.max_sockets = 4;
  StartBroker();
  grpc::ClientContext context;
  auto mine = stub_->Lease(&context);
  v1::LeaseInfo my_info;
  ASSERT_TRUE(testutil::OpenLease(mine.get(), "framed", &my_info));
  const double closed_before = SocketsClosed();
  // The backend holds its answer to the vanishing caller's second request.
  backend_->set_response_delay(absl::Seconds(3));
  const uint64_t vanished = RunAndKill(/*answered=*/false);
  ASSERT_NE(vanished, 0u);
  ASSERT_NE(vanished, my_info.socket_id());

  EXPECT_TRUE(testutil::WaitUntil([&] { return !SocketListed(vanished); }, absl::Seconds(15)));
  EXPECT_TRUE(testutil::WaitUntil([&] { return Stats().leased == 1; }));
  EXPECT_TRUE(testutil::WaitUntil([&] { return SocketsClosed() >= closed_before + 1; }));
  backend_->set_response_delay(absl::ZeroDuration());
  ExpectLeaseUnharmed(mine.get());
  EXPECT_TRUE(SocketListed(my_info.socket_id()));
  EXPECT_TRUE(testutil::FinishLease(mine.get()).ok());
  EXPECT_TRUE(WaitPoolQuiet());
}

// A caller process killed after the backend answered everything it sent (the broker read the
// answer; the caller never did): the lease ends, the socket, clean at a frame boundary, goes back
// to the pool, and the next caller on it gets its own answer, never the vanished caller's.
TEST_F(ProcessFaultsTest, VanishedCallerOwedNothingEndsLeaseAndSocketServesNextCallerCleanly) {
  framed_options().pool.max_sockets = 4;
  StartBroker();
  grpc::ClientContext context;
  auto mine = stub_->Lease(&context);
  v1::LeaseInfo my_info;
  ASSERT_TRUE(testutil::OpenLease(mine.get(), "framed", &my_info));
  const uint64_t vanished = RunAndKill(/*answered=*/true);
  ASSERT_NE(vanished, 0u);

  EXPECT_TRUE(testutil::WaitUntil([&] { return Stats().leased == 1; }, absl::Seconds(15)));
  ExpectLeaseUnharmed(mine.get());
  std::string vanished_client_id;
  for (const v1::SocketStatus& s : ListSockets()) {
    if (s.socket_id() == vanished) vanished_client_id = s.client_id();
  }
  // Still pooled: the next lease of that very socket sees only its own answer.
  ASSERT_FALSE(vanished_client_id.empty());
  v1::CallResponse response;
  ASSERT_TRUE(Call("fresh", &response, absl::Seconds(10), nullptr, vanished_client_id).ok());
  EXPECT_EQ(response.lease().socket_id(), vanished);
  EXPECT_EQ(response.response(), Frame("re:fresh"));
  v1::CallResponse any;
  ASSERT_TRUE(Call("any", &any).ok());
  EXPECT_EQ(any.response(), Frame("re:any"));
  EXPECT_TRUE(testutil::FinishLease(mine.get()).ok());
  EXPECT_TRUE(WaitPoolQuiet());
}

// The real binary's config: mTLS callers, one framed backend presenting `client`'s certificate.
std::string ConfigYaml(int backend_port, const std::string& client) {
  std::string pki = testutil::PkiPath("ec", "");
  return absl::StrCat(R"(listen:
  grpc: 127.0.0.1:0
  metrics: 127.0.0.1:0
  tls: {cert: )", pki, "server.fullchain.pem, key: ", pki, "server.key, client_ca: ", pki,
                      R"(root.crt}
  admin_callers: ["spiffe://example.org/ns/payments/sa/app1"]
backends:
  - name: framed
    address: 127.0.0.1:)", backend_port, R"(
    server_name: localhost
    tls: {ca: )", pki, "root.crt, cert: ", pki, client, ".fullchain.pem, key: ", pki, client,
                      R"(.key}
    pool: {max_sockets: 4, min_idle: 1}
    framing: {length_field: {offset: 0, size: 4, big_endian: true, adjustment: -4}}
    allowed_callers: ["spiffe://example.org/ns/payments/sa/app1"]
)");
}

int CountOccurrences(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

// SIGHUP to the real binary under load, again and again (alternating the client certificate so
// each reload changes something): every reload is applied and logged, and no Call fails or gets
// a wrong answer.
TEST(ProcessSignalsTest, SighupUnderLoadReloadsWithoutFailingCalls) {
  auto options = testutil::TlsTestServer::PkiOptions("ec");
  options.mode = testutil::TlsTestServerMode::kFramedEcho;
  options.response_prefix = "re:";
  auto backend = testutil::TlsTestServer::Create(options);
  ASSERT_TRUE(backend.ok()) << backend.status();
  const int port = (*backend)->port();
  std::string dir = testutil::MakeTempDir("tlsb-faults");
  std::string config = dir + "/config.yaml";
  auto write_config = [&](const std::string& client) {
    std::ofstream out(config + ".tmp");
    out << ConfigYaml(port, client);
    out.close();
    std::rename((config + ".tmp").c_str(), config.c_str());
  };
  write_config("client");
  auto broker = testutil::Subprocess::Start(
      {TLSB_BROKER_BINARY, "--config", config, "--io-threads", "2"}, dir + "/broker.log");
  ASSERT_TRUE(broker.ok()) << broker.status();
  ASSERT_TRUE((*broker)->WaitForLog("tlsbroker serving", absl::Seconds(20)).ok())
      << (*broker)->ReadLog();
  std::smatch match;
  std::string log = (*broker)->ReadLog();
  ASSERT_TRUE(std::regex_search(log, match, std::regex("grpc=127\\.0\\.0\\.1:([0-9]+)")));
  auto stub = v1::BrokerService::NewStub(testutil::BrokerChannel(absl::StrCat("localhost:", match[1].str())));

  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, wrong{0}, failed{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&, t] {
      for (int i = 0; !stop; ++i) {
        std::string payload = absl::StrCat("caller", t, "-", i);
        grpc::ClientContext context;
        context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
        v1::CallRequest request;
        request.set_backend("framed");
        request.set_request(Frame(payload));
        v1::CallResponse response;
        grpc::Status status = stub->Call(&context, request, &response);
        if (!status.ok()) {
          ++failed;
          ADD_FAILURE() << status.error_code() << ": " << status.error_message();
        } else {
          (response.response() == Frame("re:" + payload) ? ok : wrong)++;
        }
      }
    });
  }
  // Calls get through before every reload and after the last one: each wait is asserted, and
  // its bound only catches a broker that stopped serving (no throughput floor).
  constexpr int kReloads = 5;
  for (int r = 0; r < kReloads; ++r) {
    int ok_before = ok.load();
    ASSERT_TRUE(testutil::PollUntil([&] { return ok.load() >= ok_before + 50; },
                                    absl::Seconds(60)));
    write_config(r % 2 == 0 ? "client2" : "client");
    ASSERT_TRUE((*broker)->Signal(SIGHUP).ok());
    ASSERT_TRUE(testutil::PollUntil(
        [&] { return CountOccurrences((*broker)->ReadLog(), "configuration reloaded") >= r + 1; },
        absl::Seconds(60)))
        << (*broker)->ReadLog();
  }
  int ok_before = ok.load();
  EXPECT_TRUE(testutil::PollUntil([&] { return ok.load() >= ok_before + 50; }, absl::Seconds(60)))
      << "no calls got through after the last reload";
  stop = true;
  for (auto& th : callers) th.join();
  std::string final_log = (*broker)->ReadLog();
  EXPECT_EQ(CountOccurrences(final_log, "reload requested by SIGHUP"), kReloads);
  EXPECT_EQ(CountOccurrences(final_log, "configuration reloaded"), kReloads);
  EXPECT_EQ(CountOccurrences(final_log, "reload rejected"), 0);
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
  std::cerr << "calls during " << kReloads << " reloads: " << ok.load() << "\n";
  EXPECT_TRUE((*broker)->Running());
  ASSERT_TRUE((*broker)->Signal(SIGTERM).ok());
  EXPECT_EQ((*broker)->Wait(absl::Seconds(15)).value_or(-1), 0);
}

}  // namespace
}  // namespace tlsbroker
