#ifndef BROKER_FRAMING_DELIMITER_DECODER_H_
#define BROKER_FRAMING_DELIMITER_DECODER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "broker/framing/frame_decoder.h"

namespace tlsbroker {

// Frames that end with (and include) a delimiter string. A delimiter split across two
// Consume() calls is still found: the decoder remembers how much of the delimiter the
// previous bytes matched (a KMP automaton, so overlapping prefixes such as "aab" in "aaab"
// are handled). A frame whose delimiter has not appeared within max_frame_bytes is an error.
// Not thread-safe (see FrameDecoder). Build through FrameDecoder::Create().
class DelimiterDecoder final : public FrameDecoder {
 public:
  // kInvalidArgument for an empty delimiter or one longer than max_frame_bytes.
  static absl::StatusOr<std::unique_ptr<DelimiterDecoder>> Create(absl::string_view delimiter,
                                                                  uint64_t max_frame_bytes);

  // FrameDecoder: always nullopt; the end is known only when the delimiter arrives.
  std::optional<uint64_t> BytesUntilFrameEnd() const override { return std::nullopt; }

 private:
  DelimiterDecoder(absl::string_view delimiter, uint64_t max_frame_bytes);

  // FrameDecoder
  absl::StatusOr<size_t> ConsumeImpl(absl::string_view bytes) override;
  void ResetImpl() override { matched_ = 0; }

  const std::string delimiter_;
  // failure_[i]: length of the longest proper prefix of delimiter_[0..i] that is also its
  // suffix (the KMP failure function).
  std::vector<size_t> failure_;
  // How many leading delimiter bytes the most recent bytes matched.
  size_t matched_ = 0;
};

}  // namespace tlsbroker

#endif  // BROKER_FRAMING_DELIMITER_DECODER_H_
