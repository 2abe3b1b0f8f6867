// Failure reasons travel in the status as a payload, never parsed out of the message.

#include "broker/common/status_reason.h"

#include <gtest/gtest.h>

namespace tlsbroker {
namespace {

TEST(StatusReasonTest, AReasonedErrorCarriesItsReasonAndAReadableMessage) {
  absl::Status s =
      ReasonedError(absl::StatusCode::kUnavailable, "connect_refused", "connection refused");
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), "connect_refused: connection refused");
  EXPECT_EQ(ReasonOf(s), "connect_refused");
}

TEST(StatusReasonTest, AMessageThatLooksLikeAReasonCarriesNone) {
  EXPECT_EQ(ReasonOf(absl::UnavailableError("connect_refused: typed by hand")), "");
  EXPECT_EQ(ReasonOf(absl::OkStatus()), "");
}

TEST(StatusReasonTest, CopiesAndNewContextKeepTheReason) {
  absl::Status original =
      ReasonedError(absl::StatusCode::kUnavailable, "handshake_timeout", "too slow");
  absl::Status copy = original;
  EXPECT_EQ(ReasonOf(copy), "handshake_timeout");
  absl::Status with_context = WithMessage(original, "too slow (address a:1, 1 of 2)");
  EXPECT_EQ(with_context.message(), "too slow (address a:1, 1 of 2)");
  EXPECT_EQ(with_context.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ReasonOf(with_context), "handshake_timeout");
}

TEST(StatusReasonTest, AttachingAnotherReasonReplacesTheFirst) {
  absl::Status s = WithReason(
      ReasonedError(absl::StatusCode::kAborted, "backend_closed", "eof"), "outcome_unknown");
  EXPECT_EQ(ReasonOf(s), "outcome_unknown");
}

TEST(StatusReasonTest, TheTableHoldsEachReasonOnceInLowerSnakeCase) {
  for (size_t i = 0; i < std::size(kReasons); ++i) {
    for (char c : kReasons[i]) EXPECT_TRUE(c == '_' || (c >= 'a' && c <= 'z')) << kReasons[i];
    for (size_t j = i + 1; j < std::size(kReasons); ++j) EXPECT_NE(kReasons[i], kReasons[j]);
    EXPECT_TRUE(IsReason(kReasons[i]));
  }
  EXPECT_FALSE(IsReason("peer_name"));
}

}  // namespace
}  // namespace tlsbroker
