#ifndef BROKER_FRAMING_FRAME_ENCODER_H_
#define BROKER_FRAMING_FRAME_ENCODER_H_

// Wraps payloads in frames of a FramingOptions kind: the inverse of FrameDecoder, for the test
// server, tests, benchmarks and tools.

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "broker/config/options.h"

namespace tlsbroker {

// Thread-safe: immutable after Create().
class FrameEncoder final {
 public:
  // Same checks as FrameDecoder::Create(); kNone is kInvalidArgument.
  static absl::StatusOr<FrameEncoder> Create(const FramingOptions& options);

  // Length field: `offset` zero bytes, the length field holding
  // payload.size() - adjustment, then `payload` (the bytes after the length field).
  // Delimiter: `payload` followed by the delimiter.
  // kOutOfRange when the frame would exceed max_frame_bytes or the value does not fit the
  // field; kInvalidArgument for a negative field value or a payload that contains the
  // delimiter (it would end the frame early).
  absl::StatusOr<std::string> Encode(absl::string_view payload) const;

  // Length field only: like Encode() with `prefix` (exactly `offset` bytes) before the field.
  absl::StatusOr<std::string> EncodeWithPrefix(absl::string_view prefix,
                                               absl::string_view payload) const;

  // Appends the frame for `payload` to `out` (unchanged on error).
  absl::Status AppendFrame(absl::string_view payload, std::string* out) const;

 private:
  explicit FrameEncoder(const FramingOptions& options) : options_(options) {}

  absl::Status AppendFrameWithPrefix(absl::string_view prefix, absl::string_view payload,
                                     std::string* out) const;

  FramingOptions options_;
};

}  // namespace tlsbroker

#endif  // BROKER_FRAMING_FRAME_ENCODER_H_
