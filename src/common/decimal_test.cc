#include "common/decimal.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace metronome {
namespace {

using ::testing::HasSubstr;

std::string canonical(std::string_view text) {
  auto d = Decimal::parse(text);
  EXPECT_TRUE(d.ok()) << text << ": " << d.status().ToString();
  return d.ok() ? d->to_string() : "";
}

Decimal dec(std::string_view text) {
  return Decimal::parse(text).value();
}

TEST(DecimalTest, ParsesPlainAndExponentFormsExactly) {
  EXPECT_EQ(canonical("537"), "537");
  EXPECT_EQ(canonical("-12.5"), "-12.5");
  EXPECT_EQ(canonical("+12.50"), "12.5");
  EXPECT_EQ(canonical("1.2345e3"), "1234.5");
  EXPECT_EQ(canonical("1.5E+3"), "1500");
  EXPECT_EQ(canonical("25e-3"), "0.025");
  EXPECT_EQ(canonical("-0.0"), "0");
  EXPECT_EQ(canonical("0e500"), "0");
  EXPECT_EQ(canonical(".5"), "0.5");
  EXPECT_EQ(canonical("5."), "5");
  EXPECT_EQ(canonical("  42\n"), "42");
  EXPECT_EQ(canonical("0003.1400"), "3.14");
  // More digits than a double holds, kept exactly.
  EXPECT_EQ(canonical("1234567890.12345678901234567890"), "1234567890.1234567890123456789");
  EXPECT_EQ(canonical("0.1"), "0.1");
}

TEST(DecimalTest, RefusesWhatIsNotADecimalNumberNamingIt) {
  for (std::string_view bad : {"", "   ", "NaN", "nan", "Infinity", "-inf", "0x10", "1,5", "1.2.3",
                               "e5", "1e", "1e+", "--1", "12abc", ".", "+", "1 2"}) {
    auto d = Decimal::parse(bad);
    ASSERT_FALSE(d.ok()) << "'" << bad << "'";
    EXPECT_EQ(d.status().code(), Status::Code::kInvalidArgument);
    EXPECT_THAT(d.status().message(), HasSubstr("is not a decimal number")) << bad;
  }
  EXPECT_THAT(Decimal::parse("NaN").status().message(), HasSubstr("'NaN'"));
  EXPECT_THAT(Decimal::parse("1e1001").status().message(), HasSubstr("exponent beyond"));
  auto long_text = Decimal::parse(std::string(300, '7'));
  ASSERT_FALSE(long_text.ok());
  EXPECT_THAT(long_text.status().message(), HasSubstr("longer than 256 characters"));
  EXPECT_THAT(long_text.status().message(), HasSubstr("…"));  // quoted, truncated
}

TEST(DecimalTest, ChecksTheInt256RangeAtTheFeedsDecimals) {
  EXPECT_TRUE(dec("12.5").check_fits_int256(1).ok());
  EXPECT_TRUE(dec("12.5").check_fits_int256(8).ok());
  EXPECT_THAT(dec("12.55").check_fits_int256(1).message(),
              HasSubstr("more fractional digits than the feed's 1 decimals"));
  const std::string max =
      "57896044618658097711785492504343953926634992332820282019728792003956564819967";
  EXPECT_TRUE(dec(max).check_fits_int256(0).ok());
  EXPECT_TRUE(dec("-" + max).check_fits_int256(0).ok());
  EXPECT_TRUE(dec("-57896044618658097711785492504343953926634992332820282019728792003956564819968")
                  .check_fits_int256(0)
                  .ok());
  EXPECT_THAT(dec("57896044618658097711785492504343953926634992332820282019728792003956564819968")
                  .check_fits_int256(0)
                  .message(),
              HasSubstr("outside the int256 range"));
  EXPECT_THAT(dec("1e80").check_fits_int256(0).message(), HasSubstr("too many digits for int256"));
  EXPECT_THAT(dec("1e60").check_fits_int256(18).message(), HasSubstr("too many digits for int256"));
  EXPECT_TRUE(dec("1e58").check_fits_int256(18).ok());
  EXPECT_THAT(dec("6e58").check_fits_int256(18).message(), HasSubstr("outside the int256 range"));
}

TEST(DecimalTest, OrdersAndSubtractsExactly) {
  EXPECT_LT(dec("-2"), dec("-1.5"));
  EXPECT_LT(dec("-1.5"), dec("0"));
  EXPECT_LT(dec("0"), dec("0.001"));
  EXPECT_LT(dec("1.4"), dec("1.41"));
  EXPECT_LT(dec("99"), dec("1e2"));
  EXPECT_EQ(dec("1e2"), dec("100.000"));
  EXPECT_GT(dec("-1.4"), dec("-1.41"));
  EXPECT_EQ((dec("100.5") - dec("0.25")).to_string(), "100.25");
  EXPECT_EQ((dec("0.1") - dec("0.3")).to_string(), "-0.2");
  EXPECT_EQ((dec("-1") - dec("2")).to_string(), "-3");
  EXPECT_EQ((dec("-1") - dec("-1")).to_string(), "0");
  EXPECT_EQ((dec("1.5") * dec("-0.2")).to_string(), "-0.3");
  EXPECT_EQ((dec("123456789123456789") * dec("1000000000.5")).to_string(),
            "123456789185185183561728394.5");
}

TEST(DecimalTest, PercentageDifferenceIsExactAtTheBoundary) {
  // |101 - 100| = 1 is exactly 1 % of 100: not more.
  EXPECT_FALSE(differs_by_more_than_pct(dec("101"), dec("100"), dec("100"), dec("1")));
  EXPECT_TRUE(differs_by_more_than_pct(dec("101.0000001"), dec("100"), dec("100"), dec("1")));
  EXPECT_TRUE(differs_by_more_than_pct(dec("90"), dec("100"), dec("100"), dec("9.99")));
  EXPECT_FALSE(differs_by_more_than_pct(dec("-90"), dec("-100"), dec("-100"), dec("10")));
  EXPECT_TRUE(differs_by_more_than_pct(dec("0.001"), dec("0"), dec("0"), dec("50")));
  EXPECT_FALSE(differs_by_more_than_pct(dec("0"), dec("0"), dec("0"), dec("50")));
}

TEST(DecimalTest, TruncatesQuotedTextForMessages) {
  EXPECT_EQ(truncate_for_message("abc", 5), "abc");
  EXPECT_EQ(truncate_for_message("abcdef", 3), "abc…");
  EXPECT_EQ(truncate_for_message("a\nb", 5), "a?b");
}

}  // namespace
}  // namespace metronome
