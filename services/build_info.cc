#include "services/build_info.h"

// Defined for this file alone (services/CMakeLists.txt), so a new commit recompiles only it.
#ifndef TLSB_VERSION
#define TLSB_VERSION "unknown"
#endif
#ifndef TLSB_COMMIT
#define TLSB_COMMIT "unknown"
#endif

namespace tlsbroker {

absl::string_view BuildVersion() { return TLSB_VERSION; }
absl::string_view BuildCommit() { return TLSB_COMMIT; }

}  // namespace tlsbroker
