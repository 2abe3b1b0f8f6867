#ifndef SERVICES_REQUEST_VALIDATION_H_
#define SERVICES_REQUEST_VALIDATION_H_

// Checks on request bytes that need no server: kept apart from the reactors so the fuzz
// targets (fuzz/) and their regression tests can drive exactly the code the Call path runs.
//
// Thread-safe: no state.

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "broker/config/options.h"

namespace tlsbroker {

// OK when `request` is exactly one whole frame of `framing`: anything else would leave the
// backend mid-frame or hand it two requests. kInvalidArgument (saying what is wrong)
// otherwise, or the decoder's error when `framing` cannot describe a frame.
absl::Status CheckOneRequestFrame(const FramingOptions& framing, absl::string_view request);

}  // namespace tlsbroker

#endif  // SERVICES_REQUEST_VALIDATION_H_
