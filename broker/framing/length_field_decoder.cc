#include "broker/framing/length_field_decoder.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "broker/common/status_macros.h"

namespace tlsbroker {

absl::StatusOr<std::unique_ptr<LengthFieldDecoder>> LengthFieldDecoder::Create(
    const LengthFieldFraming& options, uint64_t max_frame_bytes) {
  if (options.size != 1 && options.size != 2 && options.size != 4 && options.size != 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("length field size must be 1, 2, 4 or 8, got ", options.size));
  }
  if (options.offset < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("length field offset must not be negative, got ", options.offset));
  }
  const uint64_t header = static_cast<uint64_t>(options.offset) + options.size;
  if (header > max_frame_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("length field ends at byte ", header,
                                                   ", beyond max_frame_bytes ",
                                                   max_frame_bytes));
  }
  return std::unique_ptr<LengthFieldDecoder>(new LengthFieldDecoder(options, max_frame_bytes));
}

LengthFieldDecoder::LengthFieldDecoder(const LengthFieldFraming& options,
                                       uint64_t max_frame_bytes)
    : FrameDecoder(max_frame_bytes),
      offset_(static_cast<uint64_t>(options.offset)),
      size_(options.size),
      big_endian_(options.big_endian),
      adjustment_(options.adjustment) {}

std::optional<uint64_t> LengthFieldDecoder::BytesUntilFrameEnd() const {
  if (frame_size_ == 0) return std::nullopt;
  return frame_size_ - frame_bytes_;
}

void LengthFieldDecoder::ResetImpl() { frame_size_ = 0; }

absl::StatusOr<size_t> LengthFieldDecoder::ConsumeImpl(absl::string_view bytes) {
  const uint64_t header = offset_ + static_cast<uint64_t>(size_);
  const size_t n = bytes.size();
  size_t pos = 0;
  while (pos < n) {
    if (frame_bytes_ < offset_) {
      // Bytes before the length field: skipped in bulk.
      const uint64_t take = std::min<uint64_t>(offset_ - frame_bytes_, n - pos);
      frame_bytes_ += take;
      pos += take;
    } else if (frame_bytes_ < header) {
      field_[frame_bytes_ - offset_] = static_cast<unsigned char>(bytes[pos]);
      ++frame_bytes_;
      ++pos;
      if (frame_bytes_ == header) {
        BROKER_RETURN_IF_ERROR(ComputeFrameSize());
        if (frame_size_ == header) {  // Empty body: the frame ends with its length field.
          frame_size_ = 0;
          FinishFrame();
          return pos;
        }
      }
    } else {
      const uint64_t take = std::min<uint64_t>(frame_size_ - frame_bytes_, n - pos);
      frame_bytes_ += take;
      pos += take;
      if (frame_bytes_ == frame_size_) {
        frame_size_ = 0;
        FinishFrame();
        return pos;
      }
    }
  }
  return pos;
}

absl::Status LengthFieldDecoder::ComputeFrameSize() {
  uint64_t value = 0;
  for (int i = 0; i < size_; ++i) {
    const int index = big_endian_ ? i : size_ - 1 - i;
    value = (value << 8) | field_[index];
  }
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  uint64_t body;
  if (adjustment_ < 0) {
    // Negate in unsigned arithmetic so that INT64_MIN is handled too.
    const uint64_t minus = uint64_t{0} - static_cast<uint64_t>(adjustment_);
    if (value < minus) {
      return absl::InvalidArgumentError(
          absl::StrCat("length field value ", value, " with adjustment ", adjustment_,
                       " gives a negative frame length"));
    }
    body = value - minus;
  } else {
    const uint64_t plus = static_cast<uint64_t>(adjustment_);
    if (value > kMax - plus) {
      return absl::OutOfRangeError(absl::StrCat("length field value ", value,
                                                " with adjustment ", adjustment_,
                                                " overflows a 64-bit frame length"));
    }
    body = value + plus;
  }
  const uint64_t header = offset_ + static_cast<uint64_t>(size_);
  if (body > kMax - header) {
    return absl::OutOfRangeError(absl::StrCat("length field value ", value, " with adjustment ",
                                              adjustment_, " overflows a 64-bit frame length"));
  }
  const uint64_t total = header + body;
  if (total > max_frame_bytes()) return FrameTooLarge(total);
  frame_size_ = total;
  return absl::OkStatus();
}

}  // namespace tlsbroker
