// Fuzzes what the Broker service does with caller messages before any socket is involved:
// a stream of length-prefixed tlsbroker.v1.LeaseRequest / CallRequest messages is parsed;
// each parsed message survives a serialize/parse round trip; Lease data is tracked for frame
// boundaries the way a lease decides whether its socket may go back to the pool; and each
// CallRequest's payload goes through the Call path's one-frame check (services/
// request_validation.h), which must accept exactly the payloads that a fresh decoder reads as
// one complete frame. (The Lease reactor itself needs a gRPC server; its inputs are these.)

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "broker/config/options.h"
#include "broker/framing/frame_decoder.h"
#include "fuzz/targets/fuzz_targets.h"
#include "fuzz/targets/input_reader.h"
#include "services/request_validation.h"
#include "google/protobuf/stubs/logging.h"
#include "tlsbroker/v1/broker.pb.h"

namespace tlsbroker::fuzz {
namespace {

FramingOptions DecodeFraming(InputReader& in) {
  FramingOptions framing;
  const uint8_t kind = in.Byte();
  switch (kind % 4) {
    case 0:  // The tests' framing: a 4-byte big-endian length that counts itself.
      framing.kind = FramingOptions::Kind::kLengthField;
      framing.length_field = {0, 4, true, -4};
      break;
    case 1:
      framing.kind = FramingOptions::Kind::kDelimiter;
      framing.delimiter = "\r\n";
      break;
    case 2: {
      framing.kind = FramingOptions::Kind::kLengthField;
      static constexpr int kSizes[] = {1, 2, 4, 8};
      framing.length_field.offset = in.Byte() % 4;
      framing.length_field.size = kSizes[in.Byte() % 4];
      framing.length_field.big_endian = (kind & 0x80) != 0;
      framing.length_field.adjustment = static_cast<int8_t>(in.Byte());
      break;
    }
    default:
      framing.kind = FramingOptions::Kind::kDelimiter;
      framing.delimiter = std::string(in.Bytes(1 + in.Byte() % 3));
      break;
  }
  framing.max_frame_bytes = 1 + in.U16();
  return framing;
}

// The oracle for CheckOneRequestFrame.
bool IsOneFrame(const FramingOptions& framing, absl::string_view payload) {
  auto decoder = FrameDecoder::Create(framing);
  if (!decoder.ok()) return false;
  auto frames = (*decoder)->ConsumeAll(payload);
  return frames.ok() && *frames == 1 && (*decoder)->AtBoundary();
}

void CheckRequestFrame(const FramingOptions& framing, absl::string_view payload) {
  const absl::Status status = CheckOneRequestFrame(framing, payload);
  TLSB_FUZZ_CHECK(status.ok() == IsOneFrame(framing, payload));
  if (!status.ok()) {
    TLSB_FUZZ_CHECK(status.code() == absl::StatusCode::kInvalidArgument);
    TLSB_FUZZ_CHECK(!status.message().empty());
  }
}

// acquire_timeout as the reactors turn it into a deadline: any value must give a time.
void CheckTimeout(const google::protobuf::Duration& d) {
  const absl::Duration wait = absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
  const absl::Time deadline = absl::Now() + wait;
  (void)absl::FormatTime(deadline);
}

template <typename Message>
void CheckRoundTrip(const Message& message) {
  const std::string bytes = message.SerializeAsString();
  Message back;
  TLSB_FUZZ_CHECK(back.ParseFromString(bytes));
  TLSB_FUZZ_CHECK(back.SerializeAsString() == bytes);
}

}  // namespace

int FuzzLeaseRequests(const uint8_t* data, size_t size) {
  // Invalid UTF-8 in string fields is an expected parse failure, not worth a log line per run.
  static const bool quiet = [] {
    google::protobuf::SetLogHandler(nullptr);
    return true;
  }();
  (void)quiet;
  InputReader in(data, size);
  const FramingOptions framing = DecodeFraming(in);
  auto stream_decoder = FrameDecoder::Create(framing);
  // Options no decoder accepts fail every request (with the decoder's reason).
  TLSB_FUZZ_CHECK(stream_decoder.ok() || !CheckOneRequestFrame(framing, "x").ok());
  bool opened = false;
  while (!in.Rest().empty()) {
    const uint8_t type = in.Byte();
    const absl::string_view body = in.Bytes(in.U16() % 4096);
    if (type % 2 == 1) {
      v1::CallRequest call;
      if (!call.ParseFromArray(body.data(), static_cast<int>(body.size()))) continue;
      CheckRoundTrip(call);
      if (call.has_acquire_timeout()) CheckTimeout(call.acquire_timeout());
      CheckRequestFrame(framing, call.request());
      continue;
    }
    v1::LeaseRequest request;
    if (!request.ParseFromArray(body.data(), static_cast<int>(body.size()))) continue;
    CheckRoundTrip(request);
    switch (request.kind_case()) {
      case v1::LeaseRequest::kOpen:
        if (request.open().has_acquire_timeout()) CheckTimeout(request.open().acquire_timeout());
        opened = true;
        break;
      case v1::LeaseRequest::kData:
        // Bytes a lease writes: the boundary tracking that decides the socket's fate must
        // hold up to any sequence of them, and each one is also tried as a Call request.
        CheckRequestFrame(framing, request.data());
        if (opened && stream_decoder.ok()) {
          const uint64_t before = (*stream_decoder)->frames_completed();
          auto frames = (*stream_decoder)->ConsumeAll(request.data());
          if (frames.ok()) {
            TLSB_FUZZ_CHECK((*stream_decoder)->frames_completed() == before + *frames);
          }
        }
        break;
      case v1::LeaseRequest::kRelease:
      case v1::LeaseRequest::KIND_NOT_SET:
        opened = false;
        if (stream_decoder.ok()) (*stream_decoder)->Reset();
        break;
    }
  }
  return 0;
}

}  // namespace tlsbroker::fuzz
