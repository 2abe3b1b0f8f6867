// libFuzzer's entry point for one target; TLSB_FUZZ_ENTRY names the function in
// fuzz/targets/fuzz_targets.h (set per executable by fuzz/CMakeLists.txt).

#include <cstddef>
#include <cstdint>

#include "fuzz/targets/fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return tlsbroker::fuzz::TLSB_FUZZ_ENTRY(data, size);
}
