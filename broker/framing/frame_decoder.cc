#include "broker/framing/frame_decoder.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "broker/common/status_macros.h"
#include "broker/framing/delimiter_decoder.h"
#include "broker/framing/length_field_decoder.h"

namespace tlsbroker {

absl::StatusOr<std::unique_ptr<FrameDecoder>> FrameDecoder::Create(
    const FramingOptions& options) {
  if (options.max_frame_bytes == 0) {
    return absl::InvalidArgumentError("max_frame_bytes must be positive");
  }
  switch (options.kind) {
    case FramingOptions::Kind::kNone:
      return absl::InvalidArgumentError("framing is none: there are no frames to decode");
    case FramingOptions::Kind::kLengthField: {
      BROKER_ASSIGN_OR_RETURN(
          std::unique_ptr<LengthFieldDecoder> decoder,
          LengthFieldDecoder::Create(options.length_field, options.max_frame_bytes));
      return std::unique_ptr<FrameDecoder>(std::move(decoder));
    }
    case FramingOptions::Kind::kDelimiter: {
      BROKER_ASSIGN_OR_RETURN(
          std::unique_ptr<DelimiterDecoder> decoder,
          DelimiterDecoder::Create(options.delimiter, options.max_frame_bytes));
      return std::unique_ptr<FrameDecoder>(std::move(decoder));
    }
  }
  return absl::InvalidArgumentError("unknown framing kind");
}

absl::StatusOr<size_t> FrameDecoder::Consume(absl::string_view bytes) {
  if (!status_.ok()) return status_;
  if (bytes.empty()) return 0;
  absl::StatusOr<size_t> consumed = ConsumeImpl(bytes);
  if (!consumed.ok()) {
    // Sticky: the stream position is lost, so nothing after this can be trusted.
    status_ = consumed.status();
    partial_.clear();
    partial_.shrink_to_fit();
  }
  return consumed;
}

absl::StatusOr<uint64_t> FrameDecoder::ConsumeAll(absl::string_view bytes) {
  const uint64_t before = frames_completed_;
  while (!bytes.empty()) {
    BROKER_ASSIGN_OR_RETURN(size_t consumed, Consume(bytes));
    bytes.remove_prefix(consumed);
  }
  if (!status_.ok()) return status_;
  return frames_completed_ - before;
}

absl::Status FrameDecoder::Feed(absl::string_view bytes, std::vector<std::string>* frames) {
  if (!status_.ok()) return status_;
  while (!bytes.empty()) {
    BROKER_ASSIGN_OR_RETURN(size_t consumed, Consume(bytes));
    // Every frame has at least one byte, so consuming bytes and landing on a boundary means
    // a frame ended at the last consumed byte.
    if (AtBoundary()) {
      if (partial_.empty()) {
        frames->emplace_back(bytes.substr(0, consumed));
      } else {
        partial_.append(bytes.data(), consumed);
        frames->push_back(std::move(partial_));
        partial_.clear();
      }
    } else {
      partial_.append(bytes.data(), consumed);
    }
    bytes.remove_prefix(consumed);
  }
  return absl::OkStatus();
}

void FrameDecoder::Reset() {
  frame_bytes_ = 0;
  frames_completed_ = 0;
  status_ = absl::OkStatus();
  partial_.clear();
  ResetImpl();
}

absl::Status FrameDecoder::FrameTooLarge(uint64_t frame_size) const {
  return absl::OutOfRangeError(absl::StrCat("frame of ", frame_size,
                                            " bytes exceeds max_frame_bytes ", max_frame_bytes_));
}

}  // namespace tlsbroker
