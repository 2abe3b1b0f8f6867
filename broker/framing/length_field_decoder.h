#ifndef BROKER_FRAMING_LENGTH_FIELD_DECODER_H_
#define BROKER_FRAMING_LENGTH_FIELD_DECODER_H_

#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "broker/config/options.h"
#include "broker/framing/frame_decoder.h"

namespace tlsbroker {

// Frames of the form [offset bytes][length field: size bytes][body], where
// body length = field value + adjustment and the whole frame (offset + size + body) counts
// towards max_frame_bytes. Same rule as the well-known length-field decoder with the length
// field kept in the frame. Not thread-safe (see FrameDecoder). Build through
// FrameDecoder::Create().
class LengthFieldDecoder final : public FrameDecoder {
 public:
  // Checks the options; kInvalidArgument when they cannot describe a frame.
  static absl::StatusOr<std::unique_ptr<LengthFieldDecoder>> Create(
      const LengthFieldFraming& options, uint64_t max_frame_bytes);

  // FrameDecoder
  std::optional<uint64_t> BytesUntilFrameEnd() const override;

 private:
  LengthFieldDecoder(const LengthFieldFraming& options, uint64_t max_frame_bytes);

  // FrameDecoder
  absl::StatusOr<size_t> ConsumeImpl(absl::string_view bytes) override;
  void ResetImpl() override;

  // Turns the collected length field into frame_size_, or an error.
  absl::Status ComputeFrameSize();

  const uint64_t offset_;
  const int size_;
  const bool big_endian_;
  const int64_t adjustment_;
  unsigned char field_[8] = {};
  // Total size of the current frame once its length field is complete; 0 before.
  uint64_t frame_size_ = 0;
};

}  // namespace tlsbroker

#endif  // BROKER_FRAMING_LENGTH_FIELD_DECODER_H_
