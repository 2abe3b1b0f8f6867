#ifndef TESTS_SERVICES_BROKER_TEST_ENV_H_
#define TESTS_SERVICES_BROKER_TEST_ENV_H_

// A running broker (in-process BrokerServer, real gRPC over TCP with mTLS) in front of real TLS
// backends (the project's test server), plus gRPC clients with the test PKI's identities.

#include <fstream>
#include <map>
#include <sstream>
#include <vector>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "services/broker_server.h"
#include "tests/broker/pool/pool_test_util.h"
#include "tests/services/http_get.h"
#include "tests/support/test_pki.h"
#include "tests/support/tls_test_server.h"
#include "tlsbroker/v1/broker.grpc.pb.h"

namespace tlsbroker::testutil {

inline constexpr char kApp1[] = "spiffe://example.org/ns/payments/sa/app1";

inline std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A gRPC channel to `target` authenticating as the PKI's `client` ("client" = app1, "client2").
inline std::shared_ptr<grpc::Channel> BrokerChannel(const std::string& target,
                                                    const std::string& client = "client") {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ReadAll(PkiPath("ec", "root.crt"));
  ssl.pem_private_key = ReadAll(PkiPath("ec", client + ".key"));
  ssl.pem_cert_chain = ReadAll(PkiPath("ec", client + ".fullchain.pem"));
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  return grpc::CreateCustomChannel(target, grpc::SslCredentials(ssl), args);
}

// Broker options listening on loopback ports chosen at run time, with mTLS for callers and app1
// as admin. Backends are added by the caller.
inline BrokerOptions BrokerTestOptions() {
  BrokerOptions o;
  o.listen.grpc = "127.0.0.1:0";
  o.listen.metrics = "127.0.0.1:0";
  o.listen.has_tls = true;
  o.listen.tls.cert_file = PkiPath("ec", "server.fullchain.pem");
  o.listen.tls.key_file = PkiPath("ec", "server.key");
  o.listen.tls.client_ca_file = PkiPath("ec", "root.crt");
  o.listen.admin_callers = {kApp1};
  return o;
}

// The value of the series `series` (e.g. `tlsbroker_calls_total{backend="b",code="OK"}`) in
// Prometheus text, or -1 when absent.
inline double MetricValue(const std::string& text, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.size() > series.size() && line.substr(0, series.size()) == series &&
        line[series.size()] == ' ') {
      double v = -1;
      if (absl::SimpleAtod(line.substr(series.size() + 1), &v)) return v;
    }
  }
  return -1;
}

// Sum of every series of metric `name` whose label text contains all of `label_parts`.
inline double MetricSum(const std::string& text, const std::string& name,
                        const std::vector<std::string>& label_parts = {}) {
  double sum = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    if (line.substr(0, name.size() + 1) != name + "{") continue;
    bool all = true;
    for (const std::string& part : label_parts) {
      if (line.find(part) == absl::string_view::npos) all = false;
    }
    if (!all) continue;
    double v = 0;
    size_t space = line.rfind(' ');
    if (absl::SimpleAtod(line.substr(space + 1), &v)) sum += v;
  }
  return sum;
}

}  // namespace tlsbroker::testutil

#endif  // TESTS_SERVICES_BROKER_TEST_ENV_H_
