#include "broker/framing/frame_encoder.h"

#include <limits>
#include <memory>

#include "absl/strings/str_cat.h"
#include "broker/common/status_macros.h"
#include "broker/framing/frame_decoder.h"

namespace tlsbroker {

absl::StatusOr<FrameEncoder> FrameEncoder::Create(const FramingOptions& options) {
  // The decoder owns the option checks; an encoder is valid exactly when a decoder is.
  BROKER_RETURN_IF_ERROR(FrameDecoder::Create(options).status());
  return FrameEncoder(options);
}

absl::StatusOr<std::string> FrameEncoder::Encode(absl::string_view payload) const {
  std::string out;
  BROKER_RETURN_IF_ERROR(AppendFrame(payload, &out));
  return out;
}

absl::StatusOr<std::string> FrameEncoder::EncodeWithPrefix(absl::string_view prefix,
                                                           absl::string_view payload) const {
  if (options_.kind != FramingOptions::Kind::kLengthField) {
    return absl::InvalidArgumentError("a prefix needs length-field framing");
  }
  std::string out;
  BROKER_RETURN_IF_ERROR(AppendFrameWithPrefix(prefix, payload, &out));
  return out;
}

absl::Status FrameEncoder::AppendFrame(absl::string_view payload, std::string* out) const {
  if (options_.kind == FramingOptions::Kind::kDelimiter) {
    const absl::string_view delimiter = options_.delimiter;
    const uint64_t total = static_cast<uint64_t>(payload.size()) + delimiter.size();
    if (total > options_.max_frame_bytes) {
      return absl::OutOfRangeError(absl::StrCat("frame of ", total,
                                                " bytes exceeds max_frame_bytes ",
                                                options_.max_frame_bytes));
    }
    // The first occurrence of the delimiter in payload+delimiter must be the appended one,
    // including occurrences that straddle the join.
    std::string frame = absl::StrCat(payload, delimiter);
    if (absl::string_view(frame).find(delimiter) != payload.size()) {
      return absl::InvalidArgumentError("payload contains the delimiter");
    }
    out->append(frame);
    return absl::OkStatus();
  }
  return AppendFrameWithPrefix(
      std::string(static_cast<size_t>(options_.length_field.offset), '\0'), payload, out);
}

absl::Status FrameEncoder::AppendFrameWithPrefix(absl::string_view prefix,
                                                 absl::string_view payload,
                                                 std::string* out) const {
  const LengthFieldFraming& lf = options_.length_field;
  if (prefix.size() != static_cast<size_t>(lf.offset)) {
    return absl::InvalidArgumentError(
        absl::StrCat("prefix of ", prefix.size(), " bytes, offset is ", lf.offset));
  }
  const uint64_t body = payload.size();
  const uint64_t total = prefix.size() + static_cast<uint64_t>(lf.size) + body;
  if (total > options_.max_frame_bytes) {
    return absl::OutOfRangeError(absl::StrCat(
        "frame of ", total, " bytes exceeds max_frame_bytes ", options_.max_frame_bytes));
  }
  // value = body - adjustment, computed without overflow (body < 2^63 here since it is a
  // string size and total fits max_frame_bytes).
  uint64_t value;
  if (lf.adjustment >= 0) {
    const uint64_t plus = static_cast<uint64_t>(lf.adjustment);
    if (body < plus) {
      return absl::InvalidArgumentError(absl::StrCat("payload of ", body,
                                                     " bytes with adjustment ", lf.adjustment,
                                                     " needs a negative length value"));
    }
    value = body - plus;
  } else {
    const uint64_t minus = uint64_t{0} - static_cast<uint64_t>(lf.adjustment);
    if (body > std::numeric_limits<uint64_t>::max() - minus) {
      return absl::OutOfRangeError("length value overflows 64 bits");
    }
    value = body + minus;
  }
  if (lf.size < 8 && value >> (8 * lf.size) != 0) {
    return absl::OutOfRangeError(absl::StrCat("length value ", value, " does not fit in a ",
                                              lf.size, "-byte field"));
  }
  char field[8];
  for (int i = 0; i < lf.size; ++i) {
    const int shift = lf.big_endian ? 8 * (lf.size - 1 - i) : 8 * i;
    field[i] = static_cast<char>((value >> shift) & 0xff);
  }
  out->reserve(out->size() + total);
  out->append(prefix.data(), prefix.size());
  out->append(field, static_cast<size_t>(lf.size));
  out->append(payload.data(), payload.size());
  return absl::OkStatus();
}

}  // namespace tlsbroker
