// Differential fuzzing of the frame decoders. One input is decoded four ways — Feed and
// Consume over the fuzzer's chunks, ConsumeAll over the same chunks, Consume over the whole
// stream at once — and by a plain reference decoder written from the documented rules. All
// must find the same frame boundaries and the same error; where the chunks fall must not
// matter (the pool reads the same stream in whatever pieces the socket delivers).

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "broker/config/options.h"
#include "broker/framing/frame_decoder.h"
#include "fuzz/targets/fuzz_targets.h"
#include "fuzz/targets/input_reader.h"

namespace tlsbroker::fuzz {
namespace {

// What one way of decoding found.
struct Decoded {
  std::vector<uint64_t> boundaries;  // Stream offsets just after each complete frame.
  absl::StatusCode error = absl::StatusCode::kOk;
};

// Splits `stream` into chunks whose sizes come from `sizes` (0 = an empty chunk); the last
// chunk takes the rest.
std::vector<absl::string_view> Split(absl::string_view stream, absl::string_view sizes) {
  std::vector<absl::string_view> chunks;
  for (char c : sizes) {
    const size_t n = std::min<size_t>(static_cast<uint8_t>(c), stream.size());
    chunks.push_back(stream.substr(0, n));
    stream.remove_prefix(n);
  }
  chunks.push_back(stream);
  return chunks;
}

std::unique_ptr<FrameDecoder> MakeDecoder(const FramingOptions& options) {
  auto decoder = FrameDecoder::Create(options);
  TLSB_FUZZ_CHECK(decoder.ok());
  return std::move(*decoder);
}

// Consume() in a loop over each chunk, checking the documented contract at every step.
Decoded ByConsume(FrameDecoder& decoder, const std::vector<absl::string_view>& chunks) {
  Decoded out;
  uint64_t pos = 0;
  for (absl::string_view chunk : chunks) {
    if (chunk.empty()) {
      auto none = decoder.Consume(chunk);
      TLSB_FUZZ_CHECK(!none.ok() || *none == 0);
    }
    while (!chunk.empty()) {
      const uint64_t frames_before = decoder.frames_completed();
      const std::optional<uint64_t> until_end = decoder.BytesUntilFrameEnd();
      auto consumed = decoder.Consume(chunk);
      if (!consumed.ok()) {
        out.error = consumed.status().code();
        TLSB_FUZZ_CHECK(decoder.status().code() == out.error);
        TLSB_FUZZ_CHECK(!decoder.AtBoundary());
        // Sticky: the same error again, for any bytes.
        auto again = decoder.Consume("x");
        TLSB_FUZZ_CHECK(!again.ok() && again.status() == consumed.status());
        return out;
      }
      const size_t n = *consumed;
      TLSB_FUZZ_CHECK(n >= 1 && n <= chunk.size());
      pos += n;
      const bool ended = n < chunk.size() || decoder.AtBoundary();
      if (n < chunk.size()) TLSB_FUZZ_CHECK(decoder.AtBoundary());
      TLSB_FUZZ_CHECK(decoder.frames_completed() == frames_before + (ended ? 1 : 0));
      if (until_end.has_value()) {
        // A known remainder is exact: the frame ends after that many more bytes.
        TLSB_FUZZ_CHECK(*until_end >= 1);
        TLSB_FUZZ_CHECK(ended == (n == *until_end));
        TLSB_FUZZ_CHECK(ended || n < *until_end);
      }
      if (ended) {
        out.boundaries.push_back(pos);
        TLSB_FUZZ_CHECK(decoder.frame_bytes() == 0);
        TLSB_FUZZ_CHECK(!decoder.BytesUntilFrameEnd().has_value());
      } else {
        TLSB_FUZZ_CHECK(decoder.frame_bytes() > 0);
        TLSB_FUZZ_CHECK(decoder.frame_bytes() <= decoder.max_frame_bytes());
      }
      chunk.remove_prefix(n);
    }
  }
  return out;
}

// The four ways agree with each other and with `reference`.
void CheckAgreement(const FramingOptions& options, absl::string_view stream,
                    absl::string_view split_sizes, const Decoded& reference) {
  const std::vector<absl::string_view> chunks = Split(stream, split_sizes);

  std::unique_ptr<FrameDecoder> consume_split = MakeDecoder(options);
  const Decoded split = ByConsume(*consume_split, chunks);
  std::unique_ptr<FrameDecoder> consume_whole = MakeDecoder(options);
  const Decoded whole = ByConsume(*consume_whole, {stream});

  TLSB_FUZZ_CHECK(split.error == whole.error);
  TLSB_FUZZ_CHECK(split.boundaries == whole.boundaries);
  TLSB_FUZZ_CHECK(whole.error == reference.error);
  TLSB_FUZZ_CHECK(whole.boundaries == reference.boundaries);

  // Feed: the frames are the stream cut at the boundaries; the partial tail is kept back.
  std::unique_ptr<FrameDecoder> feeder = MakeDecoder(options);
  std::vector<std::string> frames;
  absl::StatusCode feed_error = absl::StatusCode::kOk;
  for (absl::string_view chunk : chunks) {
    absl::Status status = feeder->Feed(chunk, &frames);
    if (!status.ok()) {
      feed_error = status.code();
      break;
    }
  }
  TLSB_FUZZ_CHECK(feed_error == whole.error);
  TLSB_FUZZ_CHECK(frames.size() == whole.boundaries.size());
  uint64_t start = 0;
  for (size_t i = 0; i < frames.size(); ++i) {
    TLSB_FUZZ_CHECK(frames[i].size() == whole.boundaries[i] - start);
    TLSB_FUZZ_CHECK(frames[i] == stream.substr(start, frames[i].size()));
    TLSB_FUZZ_CHECK(frames[i].size() <= options.max_frame_bytes);
    start = whole.boundaries[i];
  }

  // ConsumeAll: the frame count, or the error.
  std::unique_ptr<FrameDecoder> all = MakeDecoder(options);
  uint64_t counted = 0;
  absl::StatusCode all_error = absl::StatusCode::kOk;
  for (absl::string_view chunk : chunks) {
    auto n = all->ConsumeAll(chunk);
    if (!n.ok()) {
      all_error = n.status().code();
      break;
    }
    counted += *n;
  }
  TLSB_FUZZ_CHECK(all_error == whole.error);
  if (all_error == absl::StatusCode::kOk) {
    TLSB_FUZZ_CHECK(counted == whole.boundaries.size());
    const bool at_boundary = whole.boundaries.empty() ? stream.empty()
                                                      : whole.boundaries.back() == stream.size();
    TLSB_FUZZ_CHECK(all->AtBoundary() == at_boundary);
  }

  // Reset forgets everything, including a sticky error.
  consume_split->Reset();
  TLSB_FUZZ_CHECK(consume_split->AtBoundary() && consume_split->frames_completed() == 0);
  const Decoded again = ByConsume(*consume_split, {stream});
  TLSB_FUZZ_CHECK(again.error == whole.error && again.boundaries == whole.boundaries);
}

// Reference length-field decoder, from the rule in length_field_decoder.h, in 128-bit
// arithmetic so that it needs no overflow reasoning of its own.
Decoded ReferenceLengthField(const LengthFieldFraming& lf, uint64_t max_frame_bytes,
                             absl::string_view stream) {
  Decoded out;
  const uint64_t header = static_cast<uint64_t>(lf.offset) + lf.size;
  uint64_t start = 0;
  while (stream.size() - start >= header) {
    unsigned __int128 value = 0;
    for (int i = 0; i < lf.size; ++i) {
      const int index = lf.big_endian ? i : lf.size - 1 - i;
      value = value << 8 | static_cast<uint8_t>(stream[start + lf.offset + index]);
    }
    const __int128 body = static_cast<__int128>(value) + lf.adjustment;
    if (body < 0) {
      out.error = absl::StatusCode::kInvalidArgument;
      return out;
    }
    const unsigned __int128 total = static_cast<unsigned __int128>(body) + header;
    if (total > std::numeric_limits<uint64_t>::max() || total > max_frame_bytes) {
      out.error = absl::StatusCode::kOutOfRange;
      return out;
    }
    if (total > stream.size() - start) break;
    start += static_cast<uint64_t>(total);
    out.boundaries.push_back(start);
  }
  return out;
}

// Reference delimiter decoder: a naive search. A frame ends at the first occurrence of the
// delimiter; without one, the decoder must already have failed when even the shortest frame
// the bytes so far allow (they, plus the rest of a delimiter they may have begun) is too long.
Decoded ReferenceDelimiter(absl::string_view delimiter, uint64_t max_frame_bytes,
                           absl::string_view stream) {
  Decoded out;
  uint64_t start = 0;
  while (true) {
    const absl::string_view rest = stream.substr(start);
    const size_t hit = rest.find(delimiter);
    if (hit != absl::string_view::npos) {
      const uint64_t frame = hit + delimiter.size();
      if (frame > max_frame_bytes) {
        out.error = absl::StatusCode::kOutOfRange;
        return out;
      }
      start += frame;
      out.boundaries.push_back(start);
      continue;
    }
    size_t begun = std::min(rest.size(), delimiter.size() - 1);
    while (begun > 0 && rest.substr(rest.size() - begun) != delimiter.substr(0, begun)) --begun;
    if (rest.size() + (delimiter.size() - begun) > max_frame_bytes) {
      out.error = absl::StatusCode::kOutOfRange;
    }
    return out;
  }
}

}  // namespace

int FuzzLengthField(const uint8_t* data, size_t size) {
  InputReader in(data, size);
  FramingOptions options;
  options.kind = FramingOptions::Kind::kLengthField;
  const uint8_t b0 = in.Byte();
  const uint8_t b1 = in.Byte();
  options.length_field.offset = b0 == 0xff ? -1 : b0 % 6;
  static constexpr int kSizes[] = {1, 2, 4, 8, 3};
  options.length_field.size = kSizes[b1 % 5];
  options.length_field.big_endian = (b1 & 0x80) != 0;
  const int64_t small = static_cast<int16_t>(in.U16());
  // Now and then an adjustment near the ends of int64 (overflow handling).
  switch ((b1 >> 5) & 3) {
    case 1:
      options.length_field.adjustment = std::numeric_limits<int64_t>::max() - (small & 0xff);
      break;
    case 2:
      options.length_field.adjustment = std::numeric_limits<int64_t>::min() + (small & 0xff);
      break;
    default:
      options.length_field.adjustment = small;
  }
  const uint16_t max = in.U16();
  options.max_frame_bytes = max == 0xffff ? std::numeric_limits<uint64_t>::max() : max;
  const absl::string_view split_sizes = in.Bytes(in.Byte() % 8);
  const absl::string_view stream = in.Rest();

  auto decoder = FrameDecoder::Create(options);
  const bool valid = options.length_field.offset >= 0 && options.length_field.size != 3 &&
                     options.max_frame_bytes > 0 &&
                     static_cast<uint64_t>(options.length_field.offset) +
                             options.length_field.size <=
                         options.max_frame_bytes;
  TLSB_FUZZ_CHECK(decoder.ok() == valid);
  if (!valid) {
    TLSB_FUZZ_CHECK(decoder.status().code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  CheckAgreement(options, stream, split_sizes,
                 ReferenceLengthField(options.length_field, options.max_frame_bytes, stream));
  return 0;
}

int FuzzDelimiter(const uint8_t* data, size_t size) {
  InputReader in(data, size);
  FramingOptions options;
  options.kind = FramingOptions::Kind::kDelimiter;
  options.delimiter = std::string(in.Bytes(in.Byte() % 6));
  options.max_frame_bytes = in.Byte();
  const absl::string_view split_sizes = in.Bytes(in.Byte() % 8);
  const absl::string_view stream = in.Rest();

  auto decoder = FrameDecoder::Create(options);
  const bool valid = !options.delimiter.empty() && options.max_frame_bytes > 0 &&
                     options.delimiter.size() <= options.max_frame_bytes;
  TLSB_FUZZ_CHECK(decoder.ok() == valid);
  if (!valid) {
    TLSB_FUZZ_CHECK(decoder.status().code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  CheckAgreement(options, stream, split_sizes,
                 ReferenceDelimiter(options.delimiter, options.max_frame_bytes, stream));
  return 0;
}

}  // namespace tlsbroker::fuzz
