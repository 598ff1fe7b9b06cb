#include "common/time.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <limits>

namespace metronome {
namespace {

using std::chrono::days;
using std::chrono::hours;
using std::chrono::minutes;
using ::testing::HasSubstr;

// 2026-11-27T21:16:02Z
constexpr int64_t kSlotMs = 1'795'814'162'000;

WallTime parsed(std::string_view text) {
  Result<WallTime> t = parse_iso(text);
  EXPECT_TRUE(t.ok()) << text << ": " << t.status().ToString();
  return t.value_or(WallTime{});
}

std::string parse_error(std::string_view text) {
  Result<WallTime> t = parse_iso(text);
  if (t) return "";
  EXPECT_EQ(t.status().code(), Status::Code::kInvalidArgument);
  return t.status().message();
}

std::string duration_error(std::string_view text) {
  Result<Nanos> d = parse_duration(text);
  if (d) return "";
  EXPECT_EQ(d.status().code(), Status::Code::kInvalidArgument);
  return d.status().message();
}

Nanos duration(std::string_view text) {
  Result<Nanos> d = parse_duration(text);
  EXPECT_TRUE(d.ok()) << text << ": " << d.status().ToString();
  return d.value_or(Nanos(-1));
}

// ---- conversions ----

TEST(UnixMs, RoundTrips) {
  EXPECT_EQ(to_unix_ms(slot_from_unix_ms(kSlotMs)), kSlotMs);
  EXPECT_EQ(to_unix_ms(slot_from_unix_ms(-1)), -1);
  EXPECT_EQ(to_unix_ms(SlotTime{}), 0);
}

// ---- formatting ----

TEST(FormatIso, Milliseconds) {
  EXPECT_EQ(format_iso_ms(slot_from_unix_ms(kSlotMs)), "2026-11-27T21:16:02.000Z");
  EXPECT_EQ(format_iso_ms(slot_from_unix_ms(kSlotMs + 7)), "2026-11-27T21:16:02.007Z");
  EXPECT_EQ(format_iso_ms(slot_from_unix_ms(kSlotMs + 999)), "2026-11-27T21:16:02.999Z");
  EXPECT_EQ(format_iso_ms(slot_from_unix_ms(0)), "1970-01-01T00:00:00.000Z");
}

TEST(FormatIso, Microseconds) {
  WallTime t = WallTime(Millis(kSlotMs)) + Nanos(123'456'789);
  EXPECT_EQ(format_iso_us(t), "2026-11-27T21:16:02.123456Z");  // truncated, not rounded
  EXPECT_EQ(format_iso_us(WallTime(Millis(kSlotMs))), "2026-11-27T21:16:02.000000Z");
  EXPECT_EQ(format_iso_us(WallTime(Millis(kSlotMs)) + Nanos(999)), "2026-11-27T21:16:02.000000Z");
}

TEST(FormatIso, SecondsTruncate) {
  EXPECT_EQ(format_iso_s(slot_from_unix_ms(kSlotMs)), "2026-11-27T21:16:02Z");
  EXPECT_EQ(format_iso_s(slot_from_unix_ms(kSlotMs + 999)), "2026-11-27T21:16:02Z");
}

TEST(FormatIso, BeforeTheEpochRoundsTowardsThePast) {
  EXPECT_EQ(format_iso_ms(slot_from_unix_ms(-1)), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(format_iso_s(slot_from_unix_ms(-1)), "1969-12-31T23:59:59Z");
  EXPECT_EQ(format_iso_us(WallTime(Nanos(-1))), "1969-12-31T23:59:59.999999Z");
  EXPECT_EQ(format_iso_ms(slot_from_unix_ms(-86'400'000)), "1969-12-31T00:00:00.000Z");
}

TEST(FormatIso, CalendarEdges) {
  EXPECT_EQ(format_iso_ms(std::chrono::sys_days(std::chrono::year(2028) / 2 / 29) + hours(23) +
                          minutes(59) + Seconds(59) + Millis(999)),
            "2028-02-29T23:59:59.999Z");
  EXPECT_EQ(format_iso_ms(std::chrono::sys_days(std::chrono::year(2027) / 1 / 1)),
            "2027-01-01T00:00:00.000Z");
}

TEST(FormatIso, SlotTimesBeyondWallTimeRange) {
  // SlotTime (milliseconds) spans far more than WallTime (nanoseconds, ~1678..2261); formatting
  // must not go through WallTime.
  SlotTime far = std::chrono::sys_days(std::chrono::year(2500) / 6 / 15) + hours(1) + Millis(5);
  EXPECT_EQ(format_iso_ms(far), "2500-06-15T01:00:00.005Z");
  EXPECT_EQ(format_iso_s(far), "2500-06-15T01:00:00Z");
  SlotTime early = std::chrono::sys_days(std::chrono::year(1500) / 1 / 1);
  EXPECT_EQ(format_iso_ms(early), "1500-01-01T00:00:00.000Z");
}

TEST(FormatIso, WallTimeLimits) {
  EXPECT_EQ(format_iso_us(WallTime::max()), "2262-04-11T23:47:16.854775Z");
  EXPECT_EQ(format_iso_us(WallTime::min()), "1677-09-21T00:12:43.145224Z");
}

// ---- parse_iso ----

TEST(ParseIso, Basic) {
  EXPECT_EQ(parsed("2026-11-27T21:16:02Z"), WallTime(Millis(kSlotMs)));
  EXPECT_EQ(parsed("1970-01-01T00:00:00Z"), WallTime{});
  EXPECT_EQ(parsed("1969-12-31T23:59:59Z"), WallTime(Seconds(-1)));
}

TEST(ParseIso, RoundTripsWithFormat) {
  for (int64_t ms : {kSlotMs, kSlotMs + 1, kSlotMs + 999, int64_t{0}, int64_t{-1}}) {
    SlotTime t = slot_from_unix_ms(ms);
    EXPECT_EQ(parsed(format_iso_ms(t)), WallTime(t)) << ms;
  }
  WallTime t = WallTime(Millis(kSlotMs)) + Micros(123'456);
  EXPECT_EQ(parsed(format_iso_us(t)), t);
}

TEST(ParseIso, Fractions) {
  const WallTime base = WallTime(Millis(kSlotMs));
  EXPECT_EQ(parsed("2026-11-27T21:16:02.5Z"), base + Millis(500));
  EXPECT_EQ(parsed("2026-11-27T21:16:02.05Z"), base + Millis(50));
  EXPECT_EQ(parsed("2026-11-27T21:16:02.123Z"), base + Millis(123));
  EXPECT_EQ(parsed("2026-11-27T21:16:02.123456Z"), base + Micros(123'456));
  EXPECT_EQ(parsed("2026-11-27T21:16:02.123456789Z"), base + Nanos(123'456'789));
  EXPECT_EQ(parsed("2026-11-27T21:16:02.000000001Z"), base + Nanos(1));
  EXPECT_EQ(parsed("2026-11-27T21:16:02.000Z"), base);
}

TEST(ParseIso, Offsets) {
  const WallTime utc = parsed("2026-11-27T21:16:02Z");
  EXPECT_EQ(parsed("2026-11-27T22:16:02+01:00"), utc);
  EXPECT_EQ(parsed("2026-11-27T16:16:02-05:00"), utc);
  EXPECT_EQ(parsed("2026-11-28T02:46:02+05:30"), utc);  // crosses midnight
  EXPECT_EQ(parsed("2026-11-27T21:16:02+00:00"), utc);
  EXPECT_EQ(parsed("2026-11-27T21:16:02-00:00"), utc);
  EXPECT_EQ(parsed("2026-11-27T21:16:02.250+01:00"), parsed("2026-11-27T20:16:02.25Z"));
  EXPECT_EQ(parsed("2027-01-01T00:30:00+01:00"), parsed("2026-12-31T23:30:00Z"));
}

TEST(ParseIso, Variants) {
  const WallTime utc = parsed("2026-11-27T21:16:02Z");
  EXPECT_EQ(parsed("2026-11-27 21:16:02Z"), utc);
  EXPECT_EQ(parsed("2026-11-27t21:16:02z"), utc);
  EXPECT_EQ(parsed("2026-11-27T21:16Z"), utc - Seconds(2));
  EXPECT_EQ(parsed("2026-11-27"),
            WallTime(std::chrono::sys_days(std::chrono::year(2026) / 11 / 27)));
}

TEST(ParseIso, LeapDay) {
  EXPECT_EQ(parsed("2028-02-29T12:00:00Z"),
            WallTime(std::chrono::sys_days(std::chrono::year(2028) / 2 / 29) + hours(12)));
  EXPECT_THAT(parse_error("2027-02-29T12:00:00Z"), HasSubstr("no such date"));
  EXPECT_THAT(parse_error("2100-02-29"), HasSubstr("no such date"));
  EXPECT_EQ(parse_error("2000-02-29"), "");
}

TEST(ParseIso, Errors) {
  struct Case {
    const char* text;
    const char* why;
  };
  const Case cases[] = {
      {"", "date must be YYYY-MM-DD"},
      {"garbage", "date must be YYYY-MM-DD"},
      {"26-11-27", "date must be YYYY-MM-DD"},
      {"2026/11/27", "date must be YYYY-MM-DD"},
      {"2026-1-27", "date must be YYYY-MM-DD"},
      {"2026-13-01", "no such date"},
      {"2026-00-01", "no such date"},
      {"2026-11-31", "no such date"},
      {"2026-11-00", "no such date"},
      {"2026-11-27X21:16:02Z", "expected 'T'"},
      {"2026-11-27T", "HH:MM"},
      {"2026-11-27T21Z", "HH:MM"},
      {"2026-11-27T2:16:02Z", "HH:MM"},
      {"2026-11-27T21:16:2Z", "seconds must be two digits"},
      {"2026-11-27T24:00:00Z", "out of range"},
      {"2026-11-27T21:60:00Z", "out of range"},
      {"2026-11-27T21:16:60Z", "out of range"},  // no leap seconds
      {"2026-11-27T21:16:02", "missing 'Z' or offset"},
      {"2026-11-27T21:16:02.Z", "empty fraction"},
      {"2026-11-27T21:16:02.1234567891Z", "more than 9 fractional digits"},
      {"2026-11-27T21:16.5Z", "missing 'Z' or offset"},  // a fraction needs seconds
      {"2026-11-27T21:16:02+0100", "offset must be +HH:MM"},
      {"2026-11-27T21:16:02+1", "offset must be +HH:MM"},
      {"2026-11-27T21:16:02+24:00", "offset must be +HH:MM"},
      {"2026-11-27T21:16:02+01:60", "offset must be +HH:MM"},
      {"2026-11-27T21:16:02ZZ", "unexpected text"},
      {"2026-11-27T21:16:02Z ", "unexpected text"},
      {" 2026-11-27T21:16:02Z", "date must be YYYY-MM-DD"},
      {"2026-11-27T21:16:02+01:00x", "unexpected text"},
      // WallTime holds int64 nanoseconds: about 1678..2261.
      {"2262-04-12T00:00:00Z", "outside the supported years"},
      {"9999-12-31T23:59:59Z", "outside the supported years"},
      {"1677-09-21T00:00:00Z", "outside the supported years"},
      {"0000-01-01", "outside the supported years"},
  };
  for (const Case& c : cases) {
    std::string msg = parse_error(c.text);
    EXPECT_THAT(msg, HasSubstr(c.why)) << "input: '" << c.text << "'";
    EXPECT_THAT(msg, HasSubstr(std::string("'") + c.text + "'")) << "the message names the input";
  }
}

TEST(ParseIso, NearTheLimitsOfWallTime) {
  EXPECT_EQ(format_iso_us(parsed("2262-04-11T00:00:00Z")), "2262-04-11T00:00:00.000000Z");
  EXPECT_EQ(format_iso_us(parsed("1677-09-22T00:00:00Z")), "1677-09-22T00:00:00.000000Z");
  EXPECT_EQ(format_iso_us(parsed("2262-04-11T23:47:15.999999999Z")), "2262-04-11T23:47:15.999999Z");
}

// ---- parse_duration ----

TEST(ParseDuration, Units) {
  EXPECT_EQ(duration("7ns"), Nanos(7));
  EXPECT_EQ(duration("7us"), Micros(7));
  EXPECT_EQ(duration("100ms"), Millis(100));
  EXPECT_EQ(duration("2s"), Seconds(2));
  EXPECT_EQ(duration("1m"), minutes(1));
  EXPECT_EQ(duration("3h"), hours(3));
  EXPECT_EQ(duration("2d"), days(2));
  EXPECT_EQ(duration("0s"), Nanos(0));
  EXPECT_EQ(duration("0ns"), Nanos(0));
  EXPECT_EQ(duration("007s"), Seconds(7));
}

TEST(ParseDuration, Combinations) {
  EXPECT_EQ(duration("1m30s"), Seconds(90));
  EXPECT_EQ(duration("1h1m1s"), Seconds(3661));
  EXPECT_EQ(duration("1d12h"), hours(36));
  EXPECT_EQ(duration("1s500ms"), Millis(1500));
  EXPECT_EQ(duration("2s3us4ns"), Seconds(2) + Micros(3) + Nanos(4));
  // "ms" is one unit, not minutes followed by seconds.
  EXPECT_EQ(duration("5ms"), Millis(5));
}

TEST(ParseDuration, LargestValues) {
  EXPECT_EQ(duration("9223372036854775807ns"), Nanos::max());
  EXPECT_EQ(duration("106751d"), days(106751));  // about 292 years
  EXPECT_EQ(duration("9223372036854775806ns1ns"), Nanos::max());
}

TEST(ParseDuration, Errors) {
  struct Case {
    const char* text;
    const char* why;
  };
  const Case cases[] = {
      {"", "empty"},
      {"2", "missing unit"},
      {"1m30", "missing unit"},
      {"2x", "unknown unit 'x'"},
      {"2S", "unknown unit 'S'"},
      {"2sec", "unknown unit 'sec'"},
      {"2 s", "missing unit"},
      {"s", "expected a number"},
      {"-2s", "expected a number"},
      {"+2s", "expected a number"},
      {" 2s", "expected a number"},
      {"2s ", "expected a number"},
      {"1.5s", "missing unit"},
      {"9223372036854775808ns", "number too large"},
      {"99999999999999999999s", "number too large"},
      {"9223372036854775807s", "too large"},
      {"106752d", "too large"},
      {"9223372036854775807ns1ns", "too large"},
      {"106751d1d", "too large"},
  };
  for (const Case& c : cases) {
    std::string msg = duration_error(c.text);
    EXPECT_THAT(msg, HasSubstr(c.why)) << "input: '" << c.text << "'";
    EXPECT_THAT(msg, HasSubstr(std::string("'") + c.text + "'")) << "the message names the input";
  }
}

// ---- format_duration ----

TEST(FormatDuration, ShortestExactForm) {
  EXPECT_EQ(format_duration(Seconds(2)), "2s");
  EXPECT_EQ(format_duration(Millis(1500)), "1500ms");
  EXPECT_EQ(format_duration(Seconds(60)), "1m");
  EXPECT_EQ(format_duration(Seconds(90)), "90s");
  EXPECT_EQ(format_duration(minutes(60)), "1h");
  EXPECT_EQ(format_duration(hours(24)), "1d");
  EXPECT_EQ(format_duration(hours(36)), "36h");
  EXPECT_EQ(format_duration(days(7)), "7d");
  EXPECT_EQ(format_duration(Millis(100)), "100ms");
  EXPECT_EQ(format_duration(Micros(5)), "5us");
  EXPECT_EQ(format_duration(Nanos(1)), "1ns");
  EXPECT_EQ(format_duration(Nanos(1500)), "1500ns");
  EXPECT_EQ(format_duration(Nanos(0)), "0s");
  EXPECT_EQ(format_duration(Nanos::max()), "9223372036854775807ns");
}

TEST(FormatDuration, RoundTripsThroughParse) {
  for (Nanos d : {Nanos(0), Nanos(1), Nanos(Millis(1500)), Nanos(Seconds(2)), Nanos(minutes(1)),
                  Nanos(hours(36)), Nanos(days(3)), Nanos(Micros(7)), Nanos::max()}) {
    EXPECT_EQ(duration(format_duration(d)), d) << format_duration(d);
  }
}

TEST(FormatDuration, Negative) {
  EXPECT_EQ(format_duration(Seconds(-2)), "-2s");
  EXPECT_EQ(format_duration(Millis(-1500)), "-1500ms");
}

}  // namespace
}  // namespace metronome
