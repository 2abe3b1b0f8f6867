#ifndef FUZZ_TARGETS_INPUT_READER_H_
#define FUZZ_TARGETS_INPUT_READER_H_

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "absl/strings/string_view.h"

namespace tlsbroker::fuzz {

// Takes parameters from the front of a fuzz input; reads past the end give zeros, so every
// input decodes to something. Not thread-safe (a cursor over one input).
class InputReader {
 public:
  InputReader(const uint8_t* data, size_t size)
      : rest_(reinterpret_cast<const char*>(data), size) {}

  uint8_t Byte() {
    if (rest_.empty()) return 0;
    const uint8_t b = static_cast<uint8_t>(rest_[0]);
    rest_.remove_prefix(1);
    return b;
  }
  uint16_t U16() {
    const uint16_t high = Byte();
    return static_cast<uint16_t>(high << 8 | Byte());
  }
  // Up to n bytes.
  absl::string_view Bytes(size_t n) {
    absl::string_view out = rest_.substr(0, n);
    rest_.remove_prefix(out.size());
    return out;
  }
  absl::string_view Rest() const { return rest_; }

 private:
  absl::string_view rest_;
};

}  // namespace tlsbroker::fuzz

#endif  // FUZZ_TARGETS_INPUT_READER_H_
