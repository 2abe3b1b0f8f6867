#include <cstdio>
#include <cstdlib>

#include "fuzz/targets/fuzz_targets.h"

namespace tlsbroker::fuzz {

void FuzzFail(const char* file, int line, const char* what) {
  std::fprintf(stderr, "%s:%d: fuzz invariant broken: %s\n", file, line, what);
  std::abort();
}

}  // namespace tlsbroker::fuzz
