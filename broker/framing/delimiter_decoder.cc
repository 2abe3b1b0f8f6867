#include "broker/framing/delimiter_decoder.h"

#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace tlsbroker {
namespace {

absl::Status NoDelimiterError(uint64_t at_least, uint64_t max_frame_bytes,
                              absl::string_view delimiter) {
  return absl::OutOfRangeError(absl::StrCat(
      "frame of at least ", at_least, " bytes exceeds max_frame_bytes ", max_frame_bytes,
      ": no delimiter \"", absl::CHexEscape(delimiter), "\" within the limit"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<DelimiterDecoder>> DelimiterDecoder::Create(
    absl::string_view delimiter, uint64_t max_frame_bytes) {
  if (delimiter.empty()) return absl::InvalidArgumentError("delimiter must not be empty");
  if (delimiter.size() > max_frame_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("delimiter of ", delimiter.size(),
                                                   " bytes exceeds max_frame_bytes ",
                                                   max_frame_bytes));
  }
  return std::unique_ptr<DelimiterDecoder>(new DelimiterDecoder(delimiter, max_frame_bytes));
}

DelimiterDecoder::DelimiterDecoder(absl::string_view delimiter, uint64_t max_frame_bytes)
    : FrameDecoder(max_frame_bytes), delimiter_(delimiter), failure_(delimiter.size(), 0) {
  size_t k = 0;
  for (size_t i = 1; i < delimiter_.size(); ++i) {
    while (k > 0 && delimiter_[i] != delimiter_[k]) k = failure_[k - 1];
    if (delimiter_[i] == delimiter_[k]) ++k;
    failure_[i] = k;
  }
}

absl::StatusOr<size_t> DelimiterDecoder::ConsumeImpl(absl::string_view bytes) {
  const char* const data = bytes.data();
  const size_t n = bytes.size();
  const size_t dsize = delimiter_.size();
  size_t pos = 0;
  while (pos < n) {
    if (matched_ == 0) {
      // Nothing matched yet: jump to the next byte that can start the delimiter.
      const void* hit = std::memchr(data + pos, delimiter_[0], n - pos);
      const size_t skip =
          hit == nullptr ? n - pos : static_cast<size_t>(static_cast<const char*>(hit) - (data + pos));
      frame_bytes_ += skip;
      pos += skip;
      if (frame_bytes_ + dsize > max_frame_bytes()) {
        return NoDelimiterError(frame_bytes_ + dsize, max_frame_bytes(), delimiter_);
      }
      if (hit == nullptr) break;
    }
    const char c = data[pos];
    while (matched_ > 0 && delimiter_[matched_] != c) matched_ = failure_[matched_ - 1];
    if (delimiter_[matched_] == c) ++matched_;
    ++pos;
    ++frame_bytes_;
    if (matched_ == dsize) {
      matched_ = 0;
      FinishFrame();
      return pos;
    }
    if (frame_bytes_ + (dsize - matched_) > max_frame_bytes()) {
      return NoDelimiterError(frame_bytes_ + (dsize - matched_), max_frame_bytes(), delimiter_);
    }
  }
  return pos;
}

}  // namespace tlsbroker
