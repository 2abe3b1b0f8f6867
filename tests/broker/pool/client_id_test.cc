#include "broker/pool/client_id.h"

#include "gtest/gtest.h"

namespace tlsbroker {
namespace {

ClientIdOptions Ids(std::string prefix, int width) {
  ClientIdOptions o;
  o.prefix = std::move(prefix);
  o.width = width;
  return o;
}

// Slot numbers are zero-padded to fill the width after the prefix.
TEST(ClientIdTest, FormatsPrefixAndZeroPaddedSlot) {
  EXPECT_EQ(FormatClientId(Ids("TLSB", 8), 3), "TLSB0003");
  EXPECT_EQ(FormatClientId(Ids("A", 4), 12), "A012");
}

// An ID maps back to its slot; IDs outside the pool or malformed map to nothing.
TEST(ClientIdTest, SlotForClientIdRoundTripsAndRejectsOthers) {
  ClientIdOptions o = Ids("TLSB", 8);
  EXPECT_EQ(SlotForClientId(o, 32, "TLSB0032"), 32);
  EXPECT_EQ(SlotForClientId(o, 32, "TLSB0033"), std::nullopt);
  EXPECT_EQ(SlotForClientId(o, 32, "TLSB0000"), std::nullopt);
  EXPECT_EQ(SlotForClientId(o, 32, "XLSB0001"), std::nullopt);
  EXPECT_EQ(SlotForClientId(o, 32, "TLSB001"), std::nullopt);
  EXPECT_EQ(SlotForClientId(o, 32, "TLSB00A1"), std::nullopt);
}

// IMS Connect rules: 1-8 of A-Z 0-9 @ # $, not starting with HWS.
TEST(ClientIdTest, ImsRulesRejectLowerCaseLongAndHwsIds) {
  EXPECT_TRUE(CheckImsClientId("TLSB0001").ok());
  EXPECT_TRUE(CheckImsClientId("@#$1").ok());
  EXPECT_FALSE(CheckImsClientId("tlsb0001").ok());
  EXPECT_FALSE(CheckImsClientId("TLSB00001").ok());
  EXPECT_FALSE(CheckImsClientId("").ok());
  EXPECT_FALSE(CheckImsClientId("HWS00001").ok());
}

// Options that cannot number every slot, or that break the IMS rules, are refused.
TEST(ClientIdTest, ValidateRejectsTooFewDigitsAndBadPrefixes) {
  EXPECT_TRUE(ValidateClientIdOptions(Ids("TLSB", 8), 9999).ok());
  EXPECT_FALSE(ValidateClientIdOptions(Ids("TLSB", 8), 10000).ok());
  EXPECT_FALSE(ValidateClientIdOptions(Ids("TLSBROKE", 8), 1).ok());
  EXPECT_FALSE(ValidateClientIdOptions(Ids("HWSX", 8), 1).ok());
  EXPECT_FALSE(ValidateClientIdOptions(Ids("tlsb", 8), 1).ok());
  EXPECT_FALSE(ValidateClientIdOptions(Ids("TLSB", 9), 1).ok());
}

}  // namespace
}  // namespace tlsbroker
