#ifndef BROKER_FRAMING_FRAME_DECODER_H_
#define BROKER_FRAMING_FRAME_DECODER_H_

// Incremental frame decoders for the two framing kinds of FramingOptions (length field,
// delimiter). Bytes may arrive split anywhere; the decoder keeps just enough state to know
// where the current frame ends.
//
// Two ways to use a decoder:
//  - Boundary tracking, zero copy (the pool's hot path): Consume() walks bytes up to and
//    including the end of the first frame that completes in them and reports how many it
//    took; AtBoundary() says whether the stream so far ends exactly on a frame boundary.
//    That is what decides whether a socket may go back to the pool after a lease, and it
//    reads exactly one response frame for a Call (bytes after that frame are "unread").
//  - Frame extraction (tests, tools, the Call path): Feed() appends every frame completed
//    by the bytes to a vector, buffering a partial frame between calls.
//
// Errors (over-size frame, negative or overflowing computed length) are sticky: after one,
// every call returns the same error until Reset(). Error codes:
//   kOutOfRange       a frame is (or would be) larger than max_frame_bytes, or its length
//                     does not fit in 64 bits;
//   kInvalidArgument  the length field and adjustment give a negative length (malformed),
//                     or Create() got options that cannot describe a frame.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "broker/config/options.h"

namespace tlsbroker {

// Not thread-safe: one decoder per byte stream (per socket), used from one thread at a time.
class FrameDecoder {
 public:
  // Builds the decoder for options.kind. kNone, a length-field size other than 1/2/4/8, a
  // negative offset, an empty delimiter, or a max_frame_bytes too small to hold the smallest
  // possible frame are kInvalidArgument.
  static absl::StatusOr<std::unique_ptr<FrameDecoder>> Create(const FramingOptions& options);

  FrameDecoder(const FrameDecoder&) = delete;
  FrameDecoder& operator=(const FrameDecoder&) = delete;
  virtual ~FrameDecoder() = default;

  // Consumes bytes from the front of `bytes` up to and including the end of the first frame
  // that completes within them, or all of `bytes` when none completes. Returns the number
  // consumed: when it is less than bytes.size(), or when AtBoundary() is true afterwards, a
  // frame ended exactly there. Every frame is at least one byte long, so non-empty input
  // always consumes at least one byte.
  absl::StatusOr<size_t> Consume(absl::string_view bytes);

  // Consumes all of `bytes`, tracking boundaries only. Returns how many frames completed.
  absl::StatusOr<uint64_t> ConsumeAll(absl::string_view bytes);

  // Appends each frame completed by `bytes` (together with earlier buffered bytes) to
  // `frames`; keeps a trailing partial frame for the next call.
  absl::Status Feed(absl::string_view bytes, std::vector<std::string>* frames);

  // True when every byte consumed so far belongs to a complete frame (also true initially).
  bool AtBoundary() const { return status_.ok() && frame_bytes_ == 0; }

  // Bytes still needed to finish the current frame, when known: for length-field framing
  // once the current frame's length field has been read. nullopt at a boundary (the next
  // frame's length is not known yet), before the length field is complete, and always for
  // delimiter framing.
  virtual std::optional<uint64_t> BytesUntilFrameEnd() const = 0;

  // Bytes of the current, incomplete frame consumed so far (0 at a boundary).
  uint64_t frame_bytes() const { return frame_bytes_; }
  // Frames completed since construction or the last Reset().
  uint64_t frames_completed() const { return frames_completed_; }
  // OK, or the sticky error.
  const absl::Status& status() const { return status_; }
  uint64_t max_frame_bytes() const { return max_frame_bytes_; }

  // Forgets all state, including a sticky error and a buffered partial frame.
  void Reset();

 protected:
  explicit FrameDecoder(uint64_t max_frame_bytes) : max_frame_bytes_(max_frame_bytes) {}

  // Implementation of Consume(); called only while status_ is OK and with non-empty bytes.
  // Must advance frame_bytes_ as it consumes and call FinishFrame() at the end of a frame,
  // then return immediately. Errors are returned, not stored (the base class stores them).
  virtual absl::StatusOr<size_t> ConsumeImpl(absl::string_view bytes) = 0;
  // Clears the subclass's per-frame state.
  virtual void ResetImpl() = 0;

  void FinishFrame() {
    frame_bytes_ = 0;
    ++frames_completed_;
  }
  // The error for a frame known to need `frame_size` bytes (> max_frame_bytes_).
  absl::Status FrameTooLarge(uint64_t frame_size) const;

  uint64_t frame_bytes_ = 0;

 private:
  const uint64_t max_frame_bytes_;
  uint64_t frames_completed_ = 0;
  absl::Status status_;
  std::string partial_;  // Feed() only: bytes of the current incomplete frame.
};

}  // namespace tlsbroker

#endif  // BROKER_FRAMING_FRAME_DECODER_H_
