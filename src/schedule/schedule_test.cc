#include "schedule/schedule.h"

#include <gtest/gtest.h>

#include <string>

namespace metronome {
namespace {

using std::chrono::days;
using std::chrono::hours;
using std::chrono::minutes;

WallTime at(std::string_view iso) {
  Result<WallTime> t = parse_iso(iso);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return t.value_or(WallTime{});
}

SlotTime slot(std::string_view iso) {
  return std::chrono::floor<Millis>(at(iso));
}

Schedule cron(std::string_view text) {
  Result<CronExpr> e = CronExpr::parse(text);
  EXPECT_TRUE(e.ok()) << e.status().ToString();
  return Schedule::cron(std::move(e).value());
}

std::string next(const Schedule& s, std::string_view from) {
  std::optional<SlotTime> t = s.next_after(at(from));
  return t ? format_iso_ms(*t) : "none";
}

TEST(ScheduleEvery, TwoSecondsFallOnEvenSeconds) {
  Schedule s = Schedule::every(Millis(2000));
  EXPECT_EQ(next(s, "2026-11-27T21:15:37.5Z"), "2026-11-27T21:15:38.000Z");
  EXPECT_EQ(next(s, "2026-11-27T21:15:38.999999999Z"), "2026-11-27T21:15:40.000Z");
  EXPECT_EQ(next(s, "2026-11-27T21:15:59Z"), "2026-11-27T21:16:00.000Z");
}

TEST(ScheduleEvery, StrictlyAfterASlot) {
  Schedule s = Schedule::every(Millis(2000));
  EXPECT_EQ(next(s, "2026-11-27T21:16:00Z"), "2026-11-27T21:16:02.000Z");
  // One nanosecond before a slot gives that slot.
  EXPECT_EQ(s.next_after(at("2026-11-27T21:16:02Z") - Nanos(1)), slot("2026-11-27T21:16:02Z"));
  // One nanosecond after a slot gives the next one.
  EXPECT_EQ(s.next_after(at("2026-11-27T21:16:02Z") + Nanos(1)), slot("2026-11-27T21:16:04Z"));
}

TEST(ScheduleEvery, OneMillisecond) {
  Schedule s = Schedule::every(Millis(1));
  EXPECT_EQ(s.next_after(at("2026-11-27T21:16:00Z")), slot("2026-11-27T21:16:00.001Z"));
  EXPECT_EQ(s.next_after(at("2026-11-27T21:16:00.0005Z")), slot("2026-11-27T21:16:00.001Z"));
  EXPECT_EQ(s.next_after(at("2026-11-27T21:16:00.000999999Z")), slot("2026-11-27T21:16:00.001Z"));
}

TEST(ScheduleEvery, HundredMilliseconds) {
  Schedule s = Schedule::every(Millis(100));
  EXPECT_EQ(next(s, "2026-11-27T21:16:00.05Z"), "2026-11-27T21:16:00.100Z");
  EXPECT_EQ(next(s, "2026-11-27T21:16:00.9Z"), "2026-11-27T21:16:01.000Z");
}

TEST(ScheduleEvery, IntervalsThatDoNotDivideASecondAreMultiplesSinceTheEpoch) {
  Schedule s = Schedule::every(Millis(300));
  // 1795000000200 ms is a multiple of 300 (5983333334 * 300), so it follows ...100.
  EXPECT_EQ(to_unix_ms(*s.next_after(WallTime(Millis(1'795'000'000'100)))), 1'795'000'000'200);
  EXPECT_EQ(to_unix_ms(*s.next_after(WallTime(Millis(1'795'000'000'200)))), 1'795'000'000'500);
  WallTime t = at("2026-11-27T21:16:00Z");
  for (int i = 0; i < 50; ++i) {
    std::optional<SlotTime> n = s.next_after(t);
    ASSERT_TRUE(n);
    EXPECT_EQ(to_unix_ms(*n) % 300, 0);
    EXPECT_GT(WallTime(*n), t);
    EXPECT_LE(WallTime(*n) - t, Millis(300));
    t = WallTime(*n) + Micros(1);
  }
  // 7 ms: the slot after 21:16:00 is not on the second.
  Schedule seven = Schedule::every(Millis(7));
  SlotTime n = *seven.next_after(at("2026-11-27T21:16:00Z"));
  EXPECT_EQ(to_unix_ms(n) % 7, 0);
  EXPECT_NE(to_unix_ms(n) % 1000, 0);
}

TEST(ScheduleEvery, HugeIntervals) {
  // A week since the epoch: 1970-01-01 was a Thursday, so weekly slots are Thursdays 00:00 UTC.
  Schedule week = Schedule::every(std::chrono::duration_cast<Millis>(days(7)));
  EXPECT_EQ(next(week, "2026-11-27T21:16:00Z"), "2026-12-03T00:00:00.000Z");
  Schedule day = Schedule::every(std::chrono::duration_cast<Millis>(days(1)));
  EXPECT_EQ(next(day, "2026-12-31T23:59:59.999Z"), "2027-01-01T00:00:00.000Z");
  // 365 days: not calendar years, multiples of 365 * 86400 s since the epoch.
  Schedule y = Schedule::every(std::chrono::duration_cast<Millis>(days(365)));
  std::optional<SlotTime> n = y.next_after(at("2026-11-27T21:16:00Z"));
  ASSERT_TRUE(n);
  EXPECT_EQ(to_unix_ms(*n) % (365LL * 86'400'000), 0);
  EXPECT_EQ(format_iso_ms(*n), "2026-12-18T00:00:00.000Z");
  // An interval longer than WallTime's range still yields a slot (in SlotTime's range).
  Schedule millennium = Schedule::every(std::chrono::duration_cast<Millis>(days(365'000)));
  EXPECT_EQ(to_unix_ms(*millennium.next_after(at("2026-11-27T21:16:00Z"))), 365'000LL * 86'400'000);
}

TEST(ScheduleEvery, BeforeTheEpoch) {
  Schedule s = Schedule::every(Millis(2000));
  EXPECT_EQ(next(s, "1969-12-31T23:59:57.5Z"), "1969-12-31T23:59:58.000Z");
  EXPECT_EQ(next(s, "1969-12-31T23:59:59Z"), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(next(s, "1969-12-31T23:59:58Z"), "1970-01-01T00:00:00.000Z");
  Schedule s300 = Schedule::every(Millis(300));
  EXPECT_EQ(to_unix_ms(*s300.next_after(WallTime(Millis(-301)))), -300);
  EXPECT_EQ(to_unix_ms(*s300.next_after(WallTime(Millis(-300)))), 0);
}

TEST(ScheduleEvery, Accessors) {
  Schedule s = Schedule::every(Millis(2000));
  EXPECT_TRUE(s.is_interval());
  EXPECT_EQ(s.interval(), Millis(2000));
}

TEST(ScheduleEveryDeathTest, IntervalBelowOneMillisecondIsABug) {
  EXPECT_DEATH(Schedule::every(Millis(0)), "below 1 ms");
  EXPECT_DEATH(Schedule::every(Millis(-5)), "below 1 ms");
}

TEST(ScheduleCron, DelegatesToTheExpression) {
  Schedule s = cron("*/2 * * * * *");
  EXPECT_FALSE(s.is_interval());
  EXPECT_EQ(next(s, "2026-11-27T21:15:37.5Z"), "2026-11-27T21:15:38.000Z");
  EXPECT_EQ(next(s, "2026-11-27T21:16:00Z"), "2026-11-27T21:16:02.000Z");
  EXPECT_EQ(next(cron("0 0 0 30 FEB *"), "2026-11-27T21:16:00Z"), "none");
}

TEST(ScheduleRound, IntervalIsSlotMsOverIntervalMs) {
  Schedule s = Schedule::every(Millis(2000));
  SlotTime t = slot("2026-11-27T21:16:02Z");
  EXPECT_EQ(s.round_of(t), to_unix_ms(t) / 2000);
  EXPECT_EQ(s.round_of(t + Millis(2000)), s.round_of(t) + 1);
  EXPECT_EQ(s.round_of(slot_from_unix_ms(0)), 0);
  EXPECT_EQ(Schedule::every(Millis(300)).round_of(slot_from_unix_ms(900)), 3);
  EXPECT_EQ(Schedule::every(Millis(100)).round_of(slot_from_unix_ms(1'795'000'000'100)),
            17'950'000'001);
}

TEST(ScheduleRound, CronIsSlotMsOverAThousand) {
  Schedule s = cron("0 * * * * *");
  SlotTime t = slot("2026-11-27T21:16:00Z");
  EXPECT_EQ(s.round_of(t), to_unix_ms(t) / 1000);
  EXPECT_EQ(s.round_of(t + minutes(1)), s.round_of(t) + 60);
}

TEST(ScheduleRound, SameSlotSameRoundAcrossInstances) {
  SlotTime t = slot("2026-11-27T21:16:02Z");
  EXPECT_EQ(Schedule::every(Millis(2000)).round_of(t), Schedule::every(Millis(2000)).round_of(t));
}

TEST(ScheduleRound, BeforeTheEpochCountsDown) {
  Schedule s = Schedule::every(Millis(2000));
  EXPECT_EQ(s.round_of(slot_from_unix_ms(-2000)), -1);
  EXPECT_EQ(s.round_of(slot_from_unix_ms(-4000)), -2);
}

TEST(ScheduleDescribe, Forms) {
  EXPECT_EQ(Schedule::every(Millis(2000)).describe(), "every 2s");
  EXPECT_EQ(Schedule::every(Millis(100)).describe(), "every 100ms");
  EXPECT_EQ(Schedule::every(Millis(1500)).describe(), "every 1500ms");
  EXPECT_EQ(Schedule::every(Millis(60'000)).describe(), "every 1m");
  EXPECT_EQ(Schedule::every(std::chrono::duration_cast<Millis>(hours(24))).describe(), "every 1d");
  EXPECT_EQ(cron("*/2 * * * * *").describe(), "cron */2 * * * * *");
}

}  // namespace
}  // namespace metronome
