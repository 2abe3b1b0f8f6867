#ifndef TOOLS_LOAD_PAYLOAD_H_
#define TOOLS_LOAD_PAYLOAD_H_

// Request payloads that let every response be checked: a framed request carries its caller,
// sequence number and a checksum of its filler, and the framed echo backend must answer with
// exactly prefix + payload. Bulk streams carry a position-dependent byte pattern.

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace tlsbroker::load {

// Thread-safe: immutable after construction.
class PayloadFactory final {
 public:
  // `response_prefix` is what the framed backend prepends to each payload.
  PayloadFactory(std::string response_prefix, int64_t max_size, uint64_t seed);

  // A complete request frame: 4-byte big-endian length (counting itself) + payload of
  // `payload_size` bytes (at least the header "T<caller>:<seq>:<fnv32>:").
  std::string FramedRequest(int caller, int64_t seq, int64_t payload_size) const;

  // Whether `response` is exactly the frame the backend must answer `request` with.
  bool IsExpectedResponse(absl::string_view request, absl::string_view response) const;

  // Length of a complete frame at the start of `bytes`, or 0 when more bytes are needed.
  static size_t CompleteFrameLength(absl::string_view bytes);

  const std::string& response_prefix() const { return response_prefix_; }

 private:
  std::string response_prefix_;
  std::string filler_;  // random printable bytes, max_size long
};

// The bulk stream's byte pattern: byte i is a function of i with a period (65521) that is not
// a multiple of the message size, so a reordered, dropped or duplicated message is noticed.
// Thread-safe: immutable after construction.
class BulkPattern final {
 public:
  BulkPattern();
  // `length` pattern bytes starting at stream offset `offset`.
  std::string Bytes(int64_t offset, size_t length) const;
  // Whether `bytes` equals the pattern at stream offset `offset`.
  bool Matches(int64_t offset, absl::string_view bytes) const;

 private:
  std::string period_;
};

// 32-bit FNV-1a.
uint32_t Fnv1a32(absl::string_view bytes);

}  // namespace tlsbroker::load

#endif  // TOOLS_LOAD_PAYLOAD_H_
