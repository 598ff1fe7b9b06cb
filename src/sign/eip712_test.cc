#include "sign/eip712.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/hex.h"

namespace metronome {
namespace {

using ::testing::HasSubstr;

std::string scaled_hex(std::string_view text, int decimals) {
  Result<Word256> w = scale_to_int256(text, decimals);
  if (!w) return "error: " + w.status().message();
  return to_hex_0x(*w);
}

std::string word(std::string_view tail, char fill = '0') {
  return "0x" + std::string(64 - tail.size(), fill) + std::string(tail);
}

TEST(ScaleToInt256, ScalesExactly) {
  EXPECT_EQ(scaled_hex("0", 0), word(""));
  EXPECT_EQ(scaled_hex("537", 0), word("219"));
  EXPECT_EQ(scaled_hex("12.5", 2), word("4e2"));  // 1250
  EXPECT_EQ(scaled_hex("12.50", 1), word("7d"));  // trailing zeros beyond decimals: 125
  EXPECT_EQ(scaled_hex("0.000000000000000001", 18), word("1"));
  EXPECT_EQ(scaled_hex("1", 18), word("de0b6b3a7640000"));
  EXPECT_EQ(scaled_hex("007", 0), word("7"));
  EXPECT_EQ(scaled_hex("0", 500), word(""));
}

TEST(ScaleToInt256, NegativesAreTwosComplement) {
  EXPECT_EQ(scaled_hex("-1", 0), word("", 'f'));
  EXPECT_EQ(scaled_hex("-12.5", 2), word("fb1e", 'f'));  // -1250
  EXPECT_EQ(scaled_hex("-0", 0), word(""));
  EXPECT_EQ(scaled_hex("-0.0", 3), word(""));
}

TEST(ScaleToInt256, BoundsOfInt256) {
  const std::string max =
      "57896044618658097711785492504343953926634992332820282019728792003956564819967";
  const std::string min =
      "-57896044618658097711785492504343953926634992332820282019728792003956564819968";
  EXPECT_EQ(scaled_hex(max, 0), "0x7" + std::string(63, 'f'));
  EXPECT_EQ(scaled_hex(min, 0), "0x8" + std::string(63, '0'));
  EXPECT_EQ(
      scaled_hex("5789604461865809771178549250434395392663499233282028201972879200395656481996.7",
                 1),
      "0x7" + std::string(63, 'f'));
  // One beyond each bound.
  EXPECT_THAT(
      scaled_hex("57896044618658097711785492504343953926634992332820282019728792003956564819968",
                 0),
      HasSubstr("outside the int256 range"));
  EXPECT_THAT(
      scaled_hex("-57896044618658097711785492504343953926634992332820282019728792003956564819969",
                 0),
      HasSubstr("outside the int256 range"));
  // Beyond 2^256 while parsing, and by scaling.
  EXPECT_THAT(scaled_hex(std::string(100, '9'), 0), HasSubstr("outside the int256 range"));
  EXPECT_THAT(scaled_hex("1", 77), HasSubstr("outside the int256 range"));
  EXPECT_EQ(scaled_hex("1", 76), scaled_hex("1" + std::string(76, '0'), 0));
  EXPECT_THAT(scaled_hex("1", 1000000), HasSubstr("outside the int256 range"));
}

TEST(ScaleToInt256, RefusesWhatIsNotAnExactDecimal) {
  EXPECT_THAT(scaled_hex("12.55", 1),
              HasSubstr("more fractional digits than the feed's 1 decimals"));
  EXPECT_THAT(scaled_hex("0.5", 0), HasSubstr("more fractional digits"));
  for (std::string_view bad : {"", "-", ".5", "5.", "1e3", "+1", " 1", "1 ", "0x10", "1,5", "--1",
                               "1.2.3", "abc", "NaN", "1.-2"}) {
    EXPECT_THAT(scaled_hex(bad, 2), HasSubstr("is not a decimal number")) << "'" << bad << "'";
  }
  EXPECT_THAT(scaled_hex("1", -1), HasSubstr("decimals -1 is negative"));
}

TEST(Eip712, TypeHashAndDomainSeparatorMatchEthers) {
  // ethers: keccak256(toUtf8Bytes(type)) and TypedDataEncoder.hashDomain({name, version, chainId:
  // 1}).
  EXPECT_EQ(to_hex_0x(observation_type_hash()),
            "0x33ed023b4a0a72d1b170d44a71790921c0d192b1eca9c357601978de0b75a2b4");
  EXPECT_EQ(to_hex_0x(ObservationDomain(1).separator()),
            "0xdff18855df007e735fdbbee439f4083b731471261f1f6fe337df3a4eb93e239a");
  EXPECT_NE(ObservationDomain(1).separator(), ObservationDomain(31337).separator());
  EXPECT_EQ(ObservationDomain(31337).chain_id(), 31337u);
}

ValueRecord Record(std::string value, int decimals = 0) {
  ValueRecord r;
  r.feed = FeedId("random_int");
  r.round = 897906500;
  r.slot = slot_from_unix_ms(1795813000000);
  r.value = std::move(value);
  r.decimals = decimals;
  return r;
}

TEST(Eip712, RecordDigestMatchesEthers) {
  // ethers: TypedDataEncoder.hash(domain, types, {feedId: keccak256("random_int"),
  //         round: 897906500n, timestampMs: 1795813000000n, value})
  Result<Hash32> d = record_digest(ObservationDomain(1), Record("537"));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(to_hex_0x(*d), "0x56f454326be24bd19faf8cff81e4c23a5dc831a3676b1f668f8d998b90ba0f10");

  Result<Hash32> d2 = record_digest(ObservationDomain(31337), Record("-12.50", 2));  // -1250
  ASSERT_TRUE(d2.ok()) << d2.status().ToString();
  EXPECT_EQ(to_hex_0x(*d2), "0xb25419ba6c268da9d0f24f416f597db83a93379cdf8af9425e63a220e723b9bc");
}

TEST(Eip712, ObservationFromRecord) {
  Result<Observation> o = observation_from_record(Record("12.5", 2));
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->feed_id, keccak256(std::string_view("random_int")));
  EXPECT_EQ(o->round, 897906500u);
  EXPECT_EQ(o->timestamp_ms, 1795813000000u);
  EXPECT_EQ(o->value, *scale_to_int256("1250", 0));

  ValueRecord negative_round = Record("1");
  negative_round.round = -1;
  EXPECT_THAT(observation_from_record(negative_round).status().message(), HasSubstr("round -1"));
  ValueRecord early = Record("1");
  early.slot = slot_from_unix_ms(-2000);
  EXPECT_THAT(observation_from_record(early).status().message(), HasSubstr("before 1970"));
  EXPECT_THAT(observation_from_record(Record("1.5")).status().message(),
              HasSubstr("more fractional digits"));
}

}  // namespace
}  // namespace metronome
