// Backend faults with a backend the project did not write: `openssl s_server -rev` (each line
// answered reversed; a line starting with "CLOSE" makes it hang up). The same rules as with the
// project's test server (backend_faults_test.cc): a lease that has sent bytes ends with
// outcome_unknown (the broker cannot tell whether a request was in flight), one that has sent
// nothing with backend_closed.

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "tests/faults/fault_test_env.h"
#include "tests/support/openssl_server.h"

namespace tlsbroker {
namespace {

using testutil::FaultTest;
using testutil::Reason;

class OpensslBackendFaultsTest : public FaultTest {
 protected:
  // Points the broker's one backend at a fresh s_server, one line per frame.
  void StartBrokerOnOpensslServer() {
    auto server = testutil::OpensslServer::Start(testutil::OpensslServer::PkiOptions("ec"));
    ASSERT_TRUE(server.ok()) << server.status();
    s_server_ = *std::move(server);
    BackendOptions& backend = framed_options();
    backend.address = s_server_->address();
    backend.port = static_cast<uint16_t>(s_server_->port());
    backend.framing.kind = FramingOptions::Kind::kDelimiter;
    backend.framing.delimiter = "\n";
    backend.pool.max_sockets = 1;  // s_server serves one connection at a time
    StartBroker();
  }

  // Opens a Lease (its socket's handshake with s_server done) and sends nothing.
  std::unique_ptr<testutil::LeaseStream> OpenLease(grpc::ClientContext* context) {
    auto lease = stub_->Lease(context);
    v1::LeaseInfo info;
    EXPECT_TRUE(testutil::OpenLease(lease.get(), "framed", &info)) << s_server_->Log();
    return lease;
  }

  // Opens a Lease and checks one line goes through.
  std::unique_ptr<testutil::LeaseStream> OpenWorkingLease(grpc::ClientContext* context) {
    auto lease = OpenLease(context);
    v1::LeaseRequest data;
    data.set_data("hello\n");
    EXPECT_TRUE(lease->Write(data));
    EXPECT_EQ(testutil::ReadLeaseBytes(lease.get(), 6), "olleh\n");
    return lease;
  }

  std::unique_ptr<testutil::OpensslServer> s_server_;
};

// s_server killed while a lease that has sent nothing is open: the lease ends UNAVAILABLE
// backend_closed (safe to retry: no request was lost).
TEST_F(OpensslBackendFaultsTest, KilledUnderALeaseThatSentNothingEndsItWithBackendClosed) {
  StartBrokerOnOpensslServer();
  grpc::ClientContext context;
  auto lease = OpenLease(&context);
  s_server_->Stop();
  v1::LeaseResponse ignored;
  EXPECT_FALSE(lease->Read(&ignored));
  grpc::Status status = lease->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_EQ(Reason(context), "BACKEND_CLOSED") << status.error_message();
  EXPECT_TRUE(WaitPoolQuiet(absl::Seconds(60)));
  EXPECT_EQ(Stats().idle + Stats().leased, 0);
}

// s_server killed after a lease exchanged a line: the lease ends ABORTED outcome_unknown.
TEST_F(OpensslBackendFaultsTest, KilledUnderALeaseThatSentBytesEndsItWithOutcomeUnknown) {
  StartBrokerOnOpensslServer();
  grpc::ClientContext context;
  auto lease = OpenWorkingLease(&context);
  s_server_->Stop();
  v1::LeaseResponse ignored;
  EXPECT_FALSE(lease->Read(&ignored));
  grpc::Status status = lease->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ABORTED) << status.error_message();
  EXPECT_EQ(Reason(context), "OUTCOME_UNKNOWN") << status.error_message();
  EXPECT_TRUE(WaitPoolQuiet(absl::Seconds(60)));
}

// s_server hanging up on a request it read (a "CLOSE" line) without answering: the lease ends
// ABORTED outcome_unknown, since the request reached the backend.
TEST_F(OpensslBackendFaultsTest, HangingUpOnARequestEndsLeaseWithOutcomeUnknown) {
  StartBrokerOnOpensslServer();
  grpc::ClientContext context;
  auto lease = OpenWorkingLease(&context);
  v1::LeaseRequest close;
  close.set_data("CLOSE\n");
  ASSERT_TRUE(lease->Write(close));
  v1::LeaseResponse ignored;
  EXPECT_FALSE(lease->Read(&ignored));
  grpc::Status status = lease->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ABORTED) << status.error_message();
  EXPECT_EQ(Reason(context), "OUTCOME_UNKNOWN") << status.error_message();
  EXPECT_TRUE(WaitPoolQuiet(absl::Seconds(60)));
}

}  // namespace
}  // namespace tlsbroker
