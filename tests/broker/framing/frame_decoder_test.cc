#include "broker/framing/frame_decoder.h"

#include <cstdint>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "broker/config/options.h"
#include "broker/framing/frame_encoder.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tlsbroker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

FramingOptions LengthField(int offset, int size, bool big_endian, int64_t adjustment,
                           uint64_t max_frame_bytes = 1 << 20) {
  FramingOptions options;
  options.kind = FramingOptions::Kind::kLengthField;
  options.length_field.offset = offset;
  options.length_field.size = size;
  options.length_field.big_endian = big_endian;
  options.length_field.adjustment = adjustment;
  options.max_frame_bytes = max_frame_bytes;
  return options;
}

FramingOptions Delimiter(std::string delimiter, uint64_t max_frame_bytes = 1 << 20) {
  FramingOptions options;
  options.kind = FramingOptions::Kind::kDelimiter;
  options.delimiter = std::move(delimiter);
  options.max_frame_bytes = max_frame_bytes;
  return options;
}

std::unique_ptr<FrameDecoder> MustCreate(const FramingOptions& options) {
  absl::StatusOr<std::unique_ptr<FrameDecoder>> decoder = FrameDecoder::Create(options);
  EXPECT_TRUE(decoder.ok()) << decoder.status();
  return decoder.ok() ? std::move(decoder).value() : nullptr;
}

// Splits `stream` into random chunks (sizes 1..max_chunk) and returns the chunks.
std::vector<std::string> RandomSplit(const std::string& stream, std::mt19937& rng,
                                     size_t max_chunk) {
  std::vector<std::string> chunks;
  std::uniform_int_distribution<size_t> chunk_size(1, max_chunk);
  for (size_t pos = 0; pos < stream.size();) {
    const size_t n = std::min(chunk_size(rng), stream.size() - pos);
    chunks.push_back(stream.substr(pos, n));
    pos += n;
  }
  return chunks;
}

// Feeds `chunks` through Consume() and returns the stream offsets at which frames ended.
std::vector<uint64_t> FrameEndsByConsume(FrameDecoder& decoder,
                                         const std::vector<std::string>& chunks) {
  std::vector<uint64_t> ends;
  uint64_t offset = 0;
  for (absl::string_view chunk : chunks) {
    while (!chunk.empty()) {
      absl::StatusOr<size_t> consumed = decoder.Consume(chunk);
      EXPECT_TRUE(consumed.ok()) << consumed.status();
      if (!consumed.ok()) return ends;
      EXPECT_GT(*consumed, 0u);
      offset += *consumed;
      chunk.remove_prefix(*consumed);
      if (decoder.AtBoundary()) ends.push_back(offset);
    }
  }
  return ends;
}

// Encodes `payloads` and checks that every random split of the stream decodes back to the
// same frames, through both Feed() and Consume().
void CheckRandomSplits(const FramingOptions& options, const std::vector<std::string>& payloads,
                       std::mt19937& rng, int iterations) {
  absl::StatusOr<FrameEncoder> encoder = FrameEncoder::Create(options);
  ASSERT_TRUE(encoder.ok()) << encoder.status();
  std::vector<std::string> frames;
  std::vector<uint64_t> ends;
  std::string stream;
  for (const std::string& payload : payloads) {
    absl::StatusOr<std::string> frame = encoder->Encode(payload);
    ASSERT_TRUE(frame.ok()) << frame.status();
    frames.push_back(*frame);
    stream += *frame;
    ends.push_back(stream.size());
  }
  for (int i = 0; i < iterations; ++i) {
    const size_t max_chunk = (i % 3 == 0) ? 1 : (i % 3 == 1 ? 7 : 300);
    const std::vector<std::string> chunks = RandomSplit(stream, rng, max_chunk);

    std::unique_ptr<FrameDecoder> feeder = MustCreate(options);
    ASSERT_NE(feeder, nullptr);
    std::vector<std::string> decoded;
    for (const std::string& chunk : chunks) ASSERT_TRUE(feeder->Feed(chunk, &decoded).ok());
    ASSERT_EQ(decoded, frames) << "iteration " << i;
    EXPECT_TRUE(feeder->AtBoundary());

    std::unique_ptr<FrameDecoder> tracker = MustCreate(options);
    ASSERT_EQ(FrameEndsByConsume(*tracker, chunks), ends) << "iteration " << i;
    EXPECT_EQ(tracker->frames_completed(), frames.size());
  }
}

std::string RandomBytes(std::mt19937& rng, size_t n, absl::string_view alphabet = "") {
  std::string s(n, '\0');
  std::uniform_int_distribution<int> byte(0, 255);
  for (char& c : s) {
    c = alphabet.empty() ? static_cast<char>(byte(rng))
                         : alphabet[static_cast<size_t>(byte(rng)) % alphabet.size()];
  }
  return s;
}

// Every field size, both byte orders, several offsets and adjustments survive arbitrary
// splits of a stream of frames (including empty payloads).
TEST(FrameDecoderTest, LengthFieldRandomSplitsDecodeEveryFrame) {
  std::mt19937 rng(20240611);
  for (int size : {1, 2, 4, 8}) {
    for (bool big_endian : {true, false}) {
      for (int offset : {0, 3}) {
        for (int64_t adjustment : {int64_t{0}, -int64_t{size} - offset, int64_t{-2}, int64_t{5}}) {
          SCOPED_TRACE(absl::StrCat("size=", size, " big_endian=", big_endian,
                                    " offset=", offset, " adjustment=", adjustment));
          const FramingOptions options = LengthField(offset, size, big_endian, adjustment);
          std::vector<std::string> payloads;
          std::uniform_int_distribution<size_t> length(0, size == 1 ? 200 : 2000);
          for (int i = 0; i < 40; ++i) {
            size_t n = (i % 10 == 0) ? 0 : length(rng);
            // A positive adjustment means the field counts adjustment fewer bytes than follow
            // it, so the body is at least `adjustment` long.
            if (adjustment > 0) n = std::max<size_t>(n, static_cast<size_t>(adjustment));
            payloads.push_back(RandomBytes(rng, n));
          }
          CheckRandomSplits(options, payloads, rng, 30);
        }
      }
    }
  }
}

// One- and multi-byte delimiters, including ones whose prefix repeats, survive arbitrary
// splits, so a delimiter cut across two reads is still found.
TEST(FrameDecoderTest, DelimiterRandomSplitsDecodeEveryFrame) {
  std::mt19937 rng(7);
  const std::vector<std::string> delimiters = {"\n", "\r\n", "aab", "||",
                                               std::string("\x00\xff", 2)};
  for (const std::string& delimiter : delimiters) {
    SCOPED_TRACE(absl::CHexEscape(delimiter));
    const FramingOptions options = Delimiter(delimiter);
    absl::StatusOr<FrameEncoder> encoder = FrameEncoder::Create(options);
    ASSERT_TRUE(encoder.ok());
    // The alphabet includes the delimiter's bytes so that near-misses occur often.
    const std::string alphabet = absl::StrCat("ab|\r\nxyz", std::string("\x00\xff", 2));
    std::vector<std::string> payloads;
    std::uniform_int_distribution<size_t> length(0, 300);
    while (payloads.size() < 60) {
      std::string payload = RandomBytes(rng, payloads.size() % 10 == 0 ? 0 : length(rng),
                                        alphabet);
      if (encoder->Encode(payload).ok()) payloads.push_back(std::move(payload));
    }
    CheckRandomSplits(options, payloads, rng, 60);
  }
}

// A two-byte delimiter whose bytes arrive in different chunks ends the frame on the second.
TEST(FrameDecoderTest, DelimiterSplitAcrossChunksIsFound) {
  std::unique_ptr<FrameDecoder> decoder = MustCreate(Delimiter("\r\n"));
  std::vector<std::string> frames;
  ASSERT_TRUE(decoder->Feed("abc\r", &frames).ok());
  EXPECT_TRUE(frames.empty());
  EXPECT_FALSE(decoder->AtBoundary());
  ASSERT_TRUE(decoder->Feed("\nxy", &frames).ok());
  EXPECT_THAT(frames, ElementsAre("abc\r\n"));
  EXPECT_FALSE(decoder->AtBoundary());
}

// A partial delimiter match that fails must fall back correctly ("aab" inside "xaaab").
TEST(FrameDecoderTest, DelimiterWithRepeatedPrefixMatchesAfterFalseStart) {
  std::unique_ptr<FrameDecoder> decoder = MustCreate(Delimiter("aab"));
  std::vector<std::string> frames;
  ASSERT_TRUE(decoder->Feed("xa", &frames).ok());
  ASSERT_TRUE(decoder->Feed("a", &frames).ok());
  ASSERT_TRUE(decoder->Feed("ab", &frames).ok());
  EXPECT_THAT(frames, ElementsAre("xaaab"));
  EXPECT_TRUE(decoder->AtBoundary());
}

// Consume() stops right after the first complete frame, so a Call reads exactly one response
// and can see that bytes follow it.
TEST(FrameDecoderTest, ConsumeStopsAtFirstFrameEnd) {
  std::unique_ptr<FrameDecoder> decoder = MustCreate(LengthField(0, 2, true, 0));
  const std::string stream = std::string("\x00\x03" "abc" "\x00\x01" "z", 8);
  absl::StatusOr<size_t> consumed = decoder->Consume(stream);
  ASSERT_TRUE(consumed.ok());
  EXPECT_EQ(*consumed, 5u);
  EXPECT_TRUE(decoder->AtBoundary());
  EXPECT_EQ(decoder->frames_completed(), 1u);
}

// Little-endian fields are read least significant byte first.
TEST(FrameDecoderTest, LittleEndianFieldIsReadLowByteFirst) {
  std::unique_ptr<FrameDecoder> decoder = MustCreate(LengthField(0, 2, false, 0));
  std::vector<std::string> frames;
  const std::string body(258, 'q');
  ASSERT_TRUE(decoder->Feed(std::string("\x02\x01", 2) + body, &frames).ok());
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].size(), 2u + 258u);
}

// A stream that ends mid-frame is not at a boundary (the socket must not be reused), and the
// decoder says how much of the frame is missing.
TEST(FrameDecoderTest, TruncatedStreamIsNotAtBoundary) {
  std::unique_ptr<FrameDecoder> decoder = MustCreate(LengthField(0, 4, true, 0));
  EXPECT_TRUE(decoder->AtBoundary());
  EXPECT_EQ(decoder->BytesUntilFrameEnd(), std::nullopt);
  ASSERT_TRUE(decoder->ConsumeAll(std::string("\x00\x00", 2)).ok());
  EXPECT_FALSE(decoder->AtBoundary());
  EXPECT_EQ(decoder->BytesUntilFrameEnd(), std::nullopt);  // Length not known yet.
  ASSERT_TRUE(decoder->ConsumeAll(std::string("\x00\x0a" "12345", 7)).ok());
  EXPECT_FALSE(decoder->AtBoundary());
  EXPECT_EQ(decoder->BytesUntilFrameEnd(), std::optional<uint64_t>(5));
  EXPECT_EQ(decoder->frame_bytes(), 9u);

  std::unique_ptr<FrameDecoder> delimited = MustCreate(Delimiter("\n"));
  ASSERT_TRUE(delimited->ConsumeAll("line\npartial").ok());
  EXPECT_FALSE(delimited->AtBoundary());
  EXPECT_EQ(delimited->frames_completed(), 1u);
}

// Zero-length bodies are whole frames: the frame ends with its length field.
TEST(FrameDecoderTest, ZeroLengthPayloadsAreFrames) {
  // The field counts itself (adjustment -4), so an empty body has value 4.
  std::unique_ptr<FrameDecoder> decoder = MustCreate(LengthField(0, 4, true, -4));
  std::vector<std::string> frames;
  ASSERT_TRUE(decoder->Feed(std::string("\x00\x00\x00\x04\x00\x00\x00\x04", 8), &frames).ok());
  EXPECT_EQ(frames.size(), 2u);
  EXPECT_TRUE(decoder->AtBoundary());

  std::unique_ptr<FrameDecoder> delimited = MustCreate(Delimiter("\n"));
  frames.clear();
  ASSERT_TRUE(delimited->Feed("\n\n", &frames).ok());
  EXPECT_THAT(frames, ElementsAre("\n", "\n"));
}

// A declared length above max_frame_bytes fails as soon as the length field is read, without
// waiting for (or buffering) the body.
TEST(FrameDecoderTest, OversizeLengthFieldFailsImmediately) {
  std::unique_ptr<FrameDecoder> decoder = MustCreate(LengthField(0, 4, true, 0, 1000));
  absl::StatusOr<size_t> consumed = decoder->Consume(std::string("\x7f\xff\xff\xff", 4));
  ASSERT_FALSE(consumed.ok());
  EXPECT_EQ(consumed.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(consumed.status().message(),
              HasSubstr("frame of 2147483651 bytes exceeds max_frame_bytes 1000"));
  EXPECT_FALSE(decoder->AtBoundary());
}

// A frame of exactly max_frame_bytes passes; one byte more fails (length field).
TEST(FrameDecoderTest, LengthFieldFrameAtLimitPassesAndLimitPlusOneFails) {
  const FramingOptions options = LengthField(2, 2, true, 0, 100);
  absl::StatusOr<FrameEncoder> encoder = FrameEncoder::Create(options);
  ASSERT_TRUE(encoder.ok());
  absl::StatusOr<std::string> at_limit = encoder->Encode(std::string(96, 'x'));
  ASSERT_TRUE(at_limit.ok());
  ASSERT_EQ(at_limit->size(), 100u);
  std::unique_ptr<FrameDecoder> decoder = MustCreate(options);
  std::vector<std::string> frames;
  ASSERT_TRUE(decoder->Feed(*at_limit, &frames).ok());
  EXPECT_EQ(frames.size(), 1u);

  EXPECT_EQ(encoder->Encode(std::string(97, 'x')).status().code(),
            absl::StatusCode::kOutOfRange);
  const absl::Status status = decoder->Feed(std::string("\0\0\0\x61", 4), &frames);
  EXPECT_EQ(status.code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(status.message(), HasSubstr("frame of 101 bytes exceeds max_frame_bytes 100"));
}

// A frame of exactly max_frame_bytes passes; without a delimiter by then the decoder fails
// rather than buffering forever (delimiter).
TEST(FrameDecoderTest, DelimiterFrameAtLimitPassesAndLimitPlusOneFails) {
  const FramingOptions options = Delimiter("\r\n", 10);
  std::unique_ptr<FrameDecoder> decoder = MustCreate(options);
  std::vector<std::string> frames;
  ASSERT_TRUE(decoder->Feed("12345678\r\n", &frames).ok());
  EXPECT_THAT(frames, ElementsAre("12345678\r\n"));

  // A 9th payload byte means at least 9 + 2 = 11 > 10 bytes: fails at that byte, before
  // any delimiter could arrive.
  std::unique_ptr<FrameDecoder> over = MustCreate(options);
  EXPECT_TRUE(over->Feed("12345678", &frames).ok());
  const absl::Status status = over->Feed("9", &frames);
  EXPECT_EQ(status.code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(status.message(), HasSubstr("exceeds max_frame_bytes 10"));

  // Bytes without any delimiter fail as soon as the limit is reached, in one big chunk.
  std::unique_ptr<FrameDecoder> flood = MustCreate(options);
  EXPECT_EQ(flood->Consume(std::string(1000, 'x')).status().code(),
            absl::StatusCode::kOutOfRange);
}

// An adjustment that makes the frame length negative is malformed input, not a crash.
TEST(FrameDecoderTest, NegativeComputedLengthIsInvalidArgument) {
  std::unique_ptr<FrameDecoder> decoder = MustCreate(LengthField(0, 1, true, -5));
  absl::StatusOr<size_t> consumed = decoder->Consume(std::string("\x03", 1));
  ASSERT_FALSE(consumed.ok());
  EXPECT_EQ(consumed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(consumed.status().message(), HasSubstr("negative frame length"));
}

// 8-byte lengths near 2^64 overflow with a positive adjustment or the header: an error, not
// a wrapped-around small frame.
TEST(FrameDecoderTest, EightByteLengthOverflowIsOutOfRange) {
  const std::string max_field(8, '\xff');
  for (const FramingOptions& options :
       {LengthField(0, 8, true, 1, UINT64_MAX), LengthField(4, 8, false, 0, UINT64_MAX)}) {
    std::unique_ptr<FrameDecoder> decoder = MustCreate(options);
    absl::StatusOr<uint64_t> frames =
        decoder->ConsumeAll(std::string(options.length_field.offset, '\0') + max_field);
    ASSERT_FALSE(frames.ok());
    EXPECT_EQ(frames.status().code(), absl::StatusCode::kOutOfRange);
    EXPECT_THAT(frames.status().message(), HasSubstr("overflows"));
  }
}

// After an error every call fails the same way until Reset(), which starts a fresh stream.
TEST(FrameDecoderTest, ErrorIsStickyUntilReset) {
  std::unique_ptr<FrameDecoder> decoder = MustCreate(LengthField(0, 1, true, 0, 10));
  std::vector<std::string> frames;
  EXPECT_FALSE(decoder->Feed(std::string("\x20", 1), &frames).ok());
  const absl::Status again = decoder->Feed(std::string("\x01" "a", 2), &frames);
  EXPECT_EQ(again.code(), absl::StatusCode::kOutOfRange);
  EXPECT_TRUE(frames.empty());
  EXPECT_FALSE(decoder->status().ok());

  decoder->Reset();
  EXPECT_TRUE(decoder->status().ok());
  EXPECT_TRUE(decoder->AtBoundary());
  ASSERT_TRUE(decoder->Feed(std::string("\x01" "a", 2), &frames).ok());
  EXPECT_THAT(frames, ElementsAre(std::string("\x01" "a", 2)));
}

// Options that cannot describe a frame are refused at Create().
TEST(FrameDecoderTest, CreateRejectsUnusableOptions) {
  EXPECT_EQ(FrameDecoder::Create(FramingOptions{}).status().code(),
            absl::StatusCode::kInvalidArgument);  // kNone.
  EXPECT_EQ(FrameDecoder::Create(LengthField(0, 3, true, 0)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FrameDecoder::Create(LengthField(-1, 4, true, 0)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FrameDecoder::Create(LengthField(10, 4, true, 0, 12)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FrameDecoder::Create(Delimiter("")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FrameDecoder::Create(Delimiter("\n", 0)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// The encoder refuses frames the decoder could not split back correctly.
TEST(FrameEncoderTest, RejectsPayloadsThatCannotBeFramed) {
  absl::StatusOr<FrameEncoder> delimited = FrameEncoder::Create(Delimiter("aa"));
  ASSERT_TRUE(delimited.ok());
  EXPECT_EQ(delimited->Encode("xaay").status().code(), absl::StatusCode::kInvalidArgument);
  // Straddles the join: "a" + "aa" starts a delimiter one byte early.
  EXPECT_EQ(delimited->Encode("xa").status().code(), absl::StatusCode::kInvalidArgument);

  absl::StatusOr<FrameEncoder> one_byte = FrameEncoder::Create(LengthField(0, 1, true, 0));
  ASSERT_TRUE(one_byte.ok());
  EXPECT_EQ(one_byte->Encode(std::string(256, 'x')).status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(one_byte->EncodeWithPrefix("x", "y").status().code(),
            absl::StatusCode::kInvalidArgument);

  absl::StatusOr<FrameEncoder> adjusted = FrameEncoder::Create(LengthField(0, 2, true, 3));
  ASSERT_TRUE(adjusted.ok());
  EXPECT_EQ(adjusted->Encode("ab").status().code(), absl::StatusCode::kInvalidArgument);
}

// The encoder writes the documented layout: prefix, field (body - adjustment), body.
TEST(FrameEncoderTest, WritesPrefixFieldAndBody) {
  absl::StatusOr<FrameEncoder> encoder = FrameEncoder::Create(LengthField(2, 4, true, -6));
  ASSERT_TRUE(encoder.ok());
  absl::StatusOr<std::string> frame = encoder->EncodeWithPrefix("HD", "xyz");
  ASSERT_TRUE(frame.ok());
  EXPECT_EQ(*frame, std::string("HD\x00\x00\x00\x09xyz", 9));
}

}  // namespace
}  // namespace tlsbroker
