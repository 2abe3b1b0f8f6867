// A Broker client that opens a Lease, exchanges one frame, sends a second request and then
// waits forever without reading: the fault tests SIGKILL it to make a caller vanish mid-lease
// (its connection dropped by the kernel, no cancel sent).
//
// Usage: tlsb-vanishing-lease-client TARGET BACKEND
// Prints "LEASED <socket_id>" once the lease is open and "SENT" once the second request is
// written. Certificates: the test PKI's app1 client (TLSB_TEST_PKI_DIR).

#include <unistd.h>

#include <iostream>
#include <string>

#include "tests/faults/fault_test_env.h"

int main(int argc, char** argv) {
  using namespace tlsbroker;
  if (argc != 3) {
    std::cerr << "usage: " << argv[0] << " TARGET BACKEND\n";
    return 2;
  }
  auto stub = v1::BrokerService::NewStub(testutil::BrokerChannel(argv[1]));
  grpc::ClientContext context;
  auto stream = stub->Lease(&context);
  v1::LeaseInfo info;
  if (!testutil::OpenLease(stream.get(), argv[2], &info)) {
    std::cerr << "open failed: " << stream->Finish().error_message() << "\n";
    return 1;
  }
  std::cout << "LEASED " << info.socket_id() << std::endl;
  if (testutil::LeaseExchange(stream.get(), "first", testutil::Frame("re:first").size()) !=
      testutil::Frame("re:first")) {
    std::cerr << "exchange failed\n";
    return 1;
  }
  v1::LeaseRequest data;
  data.set_data(testutil::Frame("second, never read"));
  if (!stream->Write(data)) return 1;
  std::cout << "SENT" << std::endl;
  for (;;) pause();
}
