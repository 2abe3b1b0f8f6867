#ifndef SERVICES_BUILD_INFO_H_
#define SERVICES_BUILD_INFO_H_

// Which tlsbroker this is: `tlsbroker --version` and the tlsbroker_build_info metric.

#include "absl/strings/string_view.h"

namespace tlsbroker {

// The project version (CMake's PROJECT_VERSION).
absl::string_view BuildVersion();
// The git commit the build was configured from (abbreviated hash), or "unknown" when the
// source tree is not a git checkout.
absl::string_view BuildCommit();

}  // namespace tlsbroker

#endif  // SERVICES_BUILD_INFO_H_
