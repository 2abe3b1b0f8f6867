// The gRPC receive limit rule (services/message_size.h), as a pure function of the config.

#include "services/message_size.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace tlsbroker {
namespace {

using ::testing::HasSubstr;

BackendOptions Framed(const std::string& name, uint64_t max_frame_bytes) {
  BackendOptions b;
  b.name = name;
  b.framing.kind = FramingOptions::Kind::kLengthField;
  b.framing.max_frame_bytes = max_frame_bytes;
  return b;
}

TEST(MessageSizeTest, LimitIsTheLargestFramePlusTheEnvelope) {
  BrokerOptions options;
  options.backends = {Framed("a", 6 << 20), Framed("b", 10 << 20)};
  EXPECT_EQ(GrpcReceiveLimit(options), (10 << 20) + (64 << 10));
}

TEST(MessageSizeTest, DefaultFramesGetSixteenMebibytesAndTheEnvelope) {
  BrokerOptions options;
  options.backends = {Framed("a", FramingOptions{}.max_frame_bytes)};
  EXPECT_EQ(GrpcReceiveLimit(options), (16 << 20) + (64 << 10));
}

TEST(MessageSizeTest, SmallFramesAndUnframedBackendsKeepGrpcsFourMebibytes) {
  BrokerOptions options;
  BackendOptions raw;
  raw.name = "raw";
  raw.framing.max_frame_bytes = 100 << 20;  // Ignored: a raw backend has no frames.
  options.backends = {Framed("small", 1024), raw};
  EXPECT_EQ(GrpcReceiveLimit(options), 4 << 20);
}

TEST(MessageSizeTest, HugeFramesClampToGrpcsIntLimit) {
  BrokerOptions options;
  options.backends = {Framed("huge", uint64_t{1} << 40)};
  EXPECT_EQ(GrpcReceiveLimit(options), 2147483647);
}

TEST(MessageSizeTest, ReloadCheckNamesTheBackendThatDoesNotFit) {
  BrokerOptions next;
  next.backends = {Framed("fits", 1 << 20), Framed("ims", 20 << 20)};
  EXPECT_EQ(CheckFitsReceiveLimit(next, (20 << 20) + (64 << 10)), "");
  std::string error = CheckFitsReceiveLimit(next, (16 << 20) + (64 << 10));
  EXPECT_THAT(error, HasSubstr("backends[ims].framing.max_frame_bytes 20971520"));
  EXPECT_THAT(error, HasSubstr("restart the broker"));
}

}  // namespace
}  // namespace tlsbroker
