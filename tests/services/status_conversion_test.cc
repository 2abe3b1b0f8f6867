// What a caller sees of a failure: the reason in UPPER_SNAKE, from a closed and documented set.

#include "services/status_conversion.h"

#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "broker/common/status_reason.h"
#include "tlsbroker/v1/broker.pb.h"

namespace tlsbroker {
namespace {

v1::ErrorInfo ErrorInfoOf(const grpc::Status& status) {
  v1::RpcStatus details;
  EXPECT_TRUE(details.ParseFromString(status.error_details()));
  v1::ErrorInfo info;
  EXPECT_EQ(details.details_size(), 1);
  if (details.details_size() == 1) {
    EXPECT_TRUE(info.ParseFromString(details.details(0).value()));
  }
  return info;
}

TEST(StatusConversionTest, AKnownCoreReasonReachesTheCallerInUpperSnake) {
  grpc::Status status = ToGrpcStatus(
      ReasonedError(absl::StatusCode::kUnavailable, "certificate_revoked", "serial 1F is revoked"),
      "", "ims");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  v1::ErrorInfo info = ErrorInfoOf(status);
  EXPECT_EQ(info.reason(), "CERTIFICATE_REVOKED");
  EXPECT_EQ(info.domain(), "tlsbroker.dev");
  EXPECT_EQ(info.metadata().at("backend"), "ims");
}

TEST(StatusConversionTest, WithoutAnAttachedReasonTheCodeNameIsTheReason) {
  // Config checks prefix their messages with the field ("peer_name: ..."); that is not a reason
  // a caller can act on, so the API says INVALID_ARGUMENT.
  EXPECT_EQ(ApiReason(absl::InvalidArgumentError("peer_name: bad pattern")), "INVALID_ARGUMENT");
  EXPECT_EQ(ApiReason(absl::NotFoundError("unknown backend \"x\"")), "NOT_FOUND");
  // The message text is for people: a message that happens to start like a reason is not one.
  EXPECT_EQ(ApiReason(absl::UnavailableError("certificate_revoked: but not attached")),
            "UNAVAILABLE");
}

TEST(StatusConversionTest, AnExplicitReasonOverridesTheMessage) {
  EXPECT_EQ(ApiReason(absl::AbortedError("backend_closed: eof"), "outcome_unknown"),
            "OUTCOME_UNKNOWN");
}

TEST(StatusConversionTest, OutcomeUnknownStatusesCarryTheirReason) {
  EXPECT_EQ(ApiReason(OutcomeUnknown(absl::UnavailableError("backend_closed: eof"))),
            "OUTCOME_UNKNOWN");
  EXPECT_EQ(ApiReason(CallTimedOut("ims", absl::Seconds(30))), "OUTCOME_UNKNOWN");
}

// docs/errors.md is the one table callers read; every reason the API can carry is in it.
TEST(StatusConversionTest, EveryKnownReasonIsDocumentedInErrorsMd) {
  std::ifstream in(absl::StrCat(TLSB_SOURCE_DIR, "/docs/errors.md"));
  ASSERT_TRUE(in) << "docs/errors.md is missing";
  std::stringstream text;
  text << in.rdbuf();
  for (absl::string_view reason : KnownReasons()) {
    std::string row = absl::StrCat("| `", absl::AsciiStrToUpper(reason), "`");
    EXPECT_NE(text.str().find(row), std::string::npos) << "no table row for " << row;
  }
}

}  // namespace
}  // namespace tlsbroker
