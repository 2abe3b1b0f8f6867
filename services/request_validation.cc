#include "services/request_validation.h"

#include "absl/strings/str_cat.h"
#include "broker/framing/frame_decoder.h"

namespace tlsbroker {

absl::Status CheckOneRequestFrame(const FramingOptions& framing, absl::string_view request) {
  auto decoder = FrameDecoder::Create(framing);
  if (!decoder.ok()) return decoder.status();
  auto consumed = (*decoder)->Consume(request);
  if (!consumed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("request is not a valid frame: ", consumed.status().message()));
  }
  if (*consumed < request.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "request holds more than one frame (the first ends at byte ", *consumed, " of ",
        request.size(), ")"));
  }
  if (!(*decoder)->AtBoundary() || request.empty()) {
    return absl::InvalidArgumentError("request is an incomplete frame");
  }
  return absl::OkStatus();
}

}  // namespace tlsbroker
