// Backends that keep to the letter of TLS and of their framing but not to its spirit: answers
// cut into thousands of tiny TLS records, answers sent twice, and long exchanges that make the
// broker rekey. Each test runs a real broker (gRPC over mTLS) in front of real TLS backends.

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/faults/fault_test_env.h"

namespace tlsbroker::testutil {
namespace {

using ::testing::AnyOf;

constexpr size_t kMebibyte = 1024 * 1024;

// The payload a "big" backend answers with when asked for `size` bytes: a pattern whose bytes
// depend on their position, so a lost, doubled or reordered record shows.
std::string Pattern(size_t size) {
  std::string out(size, '\0');
  for (size_t i = 0; i < size; ++i) out[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
  return out;
}

// Resident set size of this process (broker and backends run in it), in bytes.
size_t ResidentBytes() {
  long pages = 0;
  long resident = 0;
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
  std::fclose(f);
  return static_cast<size_t>(resident) * 4096;
}

bool UnderSanitizer() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
  return true;
#else
  return false;
#endif
#else
  return false;
#endif
}

// "framed" (from FaultTest) plus "big": a framed backend that answers a request naming a size
// with a frame of that many pattern bytes, cut into TLS records of GetParam() bytes each.
class SmallRecordsTest : public FaultTest, public ::testing::WithParamInterface<size_t> {
 protected:
  void SetUp() override {
    FaultTest::SetUp();
    auto options = TlsTestServer::PkiOptions("ec");
    options.mode = TlsTestServerMode::kFramedEcho;
    options.transform = [](absl::string_view request) {
      size_t size = 0;
      return absl::SimpleAtoi(request, &size) ? Pattern(size) : std::string("bad request");
    };
    auto big = TlsTestServer::Create(options);
    ASSERT_TRUE(big.ok()) << big.status();
    big_ = *std::move(big);
    big_->set_response_record_size(GetParam());
    BackendOptions b = FramedBackend(big_->port());
    b.name = "big";
    b.allowed_callers = {kApp1};
    b.framing.max_frame_bytes = kMaxFrame;
    b.pool.max_sockets = 2;
    options_.backends.push_back(b);
  }

  void TearDown() override {
    FaultTest::TearDown();
    big_.reset();
  }

  grpc::Status CallBig(size_t size, v1::CallResponse* response, grpc::ClientContext* context) {
    context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(120)));
    v1::CallRequest request;
    request.set_backend("big");
    request.set_request(Frame(std::to_string(size)));
    return stub_->Call(context, request, response);
  }

  // A 1 MiB payload fills the frame to exactly max_frame_bytes (the 4-byte header counts).
  static constexpr size_t kMaxFrame = kMebibyte + 4;
  std::unique_ptr<TlsTestServer> big_;
};

// A 1 MiB answer (exactly max_frame_bytes) in 16-byte or 1-byte records: the Call gets every
// byte in order, the I/O threads survive (the read loop does not recurse per record), memory
// stays bounded, and the other backend on the same loops keeps serving.
TEST_P(SmallRecordsTest, MaxSizeFrameInTinyRecordsIsDeliveredAndOtherBackendsKeepServing) {
  StartBroker();
  const size_t rss_before = ResidentBytes();
  grpc::ClientContext context;
  v1::CallResponse response;
  grpc::Status status = CallBig(kMebibyte, &response, &context);
  ASSERT_TRUE(status.ok()) << status.error_message() << " " << Reason(context);
  ASSERT_EQ(response.response().size(), kMaxFrame);
  EXPECT_TRUE(response.response() == Frame(Pattern(kMebibyte)))
      << "the 1 MiB answer came back altered";

  v1::CallResponse other;
  ASSERT_TRUE(Call("still-here", &other).ok());
  EXPECT_EQ(other.response(), Frame("re:still-here"));

  // A second one on the same (clean, reused) socket: nothing of the first was left behind.
  grpc::ClientContext again_context;
  v1::CallResponse again;
  ASSERT_TRUE(CallBig(1000, &again, &again_context).ok());
  EXPECT_EQ(again.response(), Frame(Pattern(1000)));
  if (!UnderSanitizer()) {
    // The answer is 1 MiB; the broker holds it a few times over at most (frame, gRPC message,
    // the client's copy), never one buffer per record.
    EXPECT_LT(ResidentBytes(), rss_before + 64 * kMebibyte)
        << "RSS grew from " << rss_before << " to " << ResidentBytes();
  }
}

// One byte over max_frame_bytes, in tiny records: refused with RESOURCE_EXHAUSTED
// frame_too_large as soon as the header is read, the socket destroyed, and both backends go on
// serving.
TEST_P(SmallRecordsTest, FrameOverMaxFrameBytesInTinyRecordsIsRefusedAsTooLarge) {
  StartBroker();
  grpc::ClientContext context;
  v1::CallResponse response;
  grpc::Status status = CallBig(kMebibyte + 1, &response, &context);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_EQ(Reason(context), "FRAME_TOO_LARGE");
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("max_frame_bytes"));

  grpc::ClientContext next_context;
  v1::CallResponse next;
  ASSERT_TRUE(CallBig(4096, &next, &next_context).ok());
  EXPECT_EQ(next.response(), Frame(Pattern(4096)));
  v1::CallResponse other;
  ASSERT_TRUE(Call("still-here", &other).ok());
  EXPECT_EQ(other.response(), Frame("re:still-here"));
}

INSTANTIATE_TEST_SUITE_P(RecordSizes, SmallRecordsTest, ::testing::Values(16, 1),
                         [](const ::testing::TestParamInfo<size_t>& info) {
                           return info.param == 1 ? std::string("OneByteRecords")
                                                  : absl::StrCat(info.param, "ByteRecords");
                         });

class HostileBackendTest : public FaultTest {};

// A backend that answers one request with two frames has broken the protocol: the Lease that
// saw both ends with its socket destroyed (reason dirty), never handed to the next caller.
TEST_F(HostileBackendTest, LeaseThatGotTwoAnswersToOneRequestDoesNotReturnItsSocket) {
  framed_options().pool.max_sockets = 1;
  StartBroker();
  backend_->set_extra_response(true);
  const double dirty_before = SocketsClosed("dirty");
  uint64_t first_socket = 0;
  {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    auto stream = stub_->Lease(&context);
    v1::LeaseInfo info;
    ASSERT_TRUE(OpenLease(stream.get(), "framed", &info));
    first_socket = info.socket_id();
    const std::string answer = Frame("re:once");
    EXPECT_EQ(LeaseExchange(stream.get(), "once", 2 * answer.size()), answer + answer);
    EXPECT_TRUE(FinishLease(stream.get()).ok());
  }
  EXPECT_TRUE(WaitUntil([&] { return SocketsClosed("dirty") >= dirty_before + 1; }))
      << SocketsClosed("dirty");
  backend_->set_extra_response(false);
  v1::CallResponse next;
  ASSERT_TRUE(Call("next", &next).ok());
  EXPECT_EQ(next.response(), Frame("re:next"));
  EXPECT_NE(next.lease().socket_id(), first_socket);
}

// The same backend behind a Call: the caller gets the first answer, the second never reaches
// the next Call on that client's socket.
TEST_F(HostileBackendTest, CallThatGotTwoAnswersLeavesNothingForTheNextCall) {
  framed_options().pool.max_sockets = 1;
  StartBroker();
  backend_->set_extra_response(true);
  v1::CallResponse first;
  ASSERT_TRUE(Call("one", &first).ok());
  EXPECT_EQ(first.response(), Frame("re:one"));
  backend_->set_extra_response(false);
  for (int i = 0; i < 5; ++i) {
    v1::CallResponse next;
    const std::string payload = absl::StrCat("next-", i);
    ASSERT_TRUE(Call(payload, &next).ok());
    EXPECT_EQ(next.response(), Frame("re:" + payload));
  }
  EXPECT_EQ(Stats().sockets_created, 2u) << "the socket that got two answers was reused";
}

// rekey_after_bytes counts the bytes of a socket across all its leases: 100 small Calls on one
// socket, 203 bytes each (100-byte request frame, 103-byte answer), with a 4096-byte limit send
// floor(20300 / 4096) = 4 KeyUpdates, which the backend counts as it receives them.
TEST_F(HostileBackendTest, RekeyCountsBytesPerSocketAcrossManySmallCalls) {
  framed_options().pool.max_sockets = 1;
  framed_options().rekey_after_bytes = 4096;
  StartBroker();
  const std::string payload(96, 'k');
  for (int i = 0; i < 100; ++i) {
    v1::CallResponse response;
    ASSERT_TRUE(Call(payload, &response).ok()) << "call " << i;
    ASSERT_EQ(response.response().size(), 103u);
  }
  EXPECT_EQ(Stats().sockets_created, 1u);
  EXPECT_TRUE(WaitUntil([&] { return backend_->key_updates_received() >= 4; }))
      << backend_->key_updates_received();
  // One more Call makes the backend process anything still in flight behind the answers.
  v1::CallResponse last;
  ASSERT_TRUE(Call("x", &last).ok());
  EXPECT_EQ(backend_->key_updates_received(), 4);
}

// A bulk Lease that writes and reads at the same time, on a socket that rekeys every 16 KiB:
// a KeyUpdate never lands while a write is pending (OpenSSL 3.0 refuses that), so the healthy
// stream completes with every byte and no error. 16 MiB each way is more than the loopback
// buffers hold, and the caller starts reading only after a pause, so the broker's writes to
// the backend back up while it reads: the moment the old code broke the stream.
TEST_F(HostileBackendTest, BulkLeaseReadingAndWritingAtOnceCompletesWhileRekeying) {
  framed_options().rekey_after_bytes = 16 * 1024;
  StartBroker();
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(120)));
  auto stream = stub_->Lease(&context);
  v1::LeaseInfo info;
  ASSERT_TRUE(OpenLease(stream.get(), "framed", &info));
  constexpr int kFrames = 256;
  const std::string payload(64 * 1024, 'b');
  const std::string answer = Frame("re:" + payload);
  std::thread writer([&] {
    for (int i = 0; i < kFrames; ++i) {
      v1::LeaseRequest data;
      data.set_data(Frame(payload));
      if (!stream->Write(data)) return;
    }
  });
  // Not a timing assumption: any pause lets the backlog build; the test holds either way.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const std::string got = ReadLeaseBytes(stream.get(), kFrames * answer.size());
  writer.join();
  EXPECT_EQ(got.size(), kFrames * answer.size());
  EXPECT_TRUE(got.size() == kFrames * answer.size() && got.substr(0, answer.size()) == answer &&
              got.substr(got.size() - answer.size()) == answer);
  grpc::Status status = FinishLease(stream.get());
  EXPECT_TRUE(status.ok()) << status.error_message() << " " << Reason(context);
  EXPECT_GE(backend_->key_updates_received(), 1);
}

}  // namespace
}  // namespace tlsbroker::testutil
