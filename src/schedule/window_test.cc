#include "schedule/window.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace metronome {
namespace {

using std::chrono::days;
using std::chrono::hours;
using std::chrono::minutes;

const Millis kMinute = Millis(60'000);
const Millis kSecond = Millis(1000);

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

Schedule every(Millis interval) {
  return Schedule::every(interval);
}

std::vector<std::string> iso(const std::vector<SlotTime>& slots) {
  std::vector<std::string> out;
  for (SlotTime s : slots) out.push_back(format_iso_ms(s));
  return out;
}

// "hh:mm:ss" slots from `first`, `step` apart, `n` of them, on the date of `first`.
std::vector<SlotTime> series(SlotTime first, Millis step, int n) {
  std::vector<SlotTime> out;
  for (int i = 0; i < n; ++i) out.push_back(first + i * step);
  return out;
}

// ---- the replaced system's first step ----

TEST(PlanWindow, NextMinuteAndItsThirtyTimestamps) {
  WindowPlan p = plan_window(every(Millis(2000)), kMinute, at("2026-11-27T21:15:37.5Z"));
  EXPECT_EQ(format_iso_ms(p.start), "2026-11-27T21:16:00.000Z");
  EXPECT_EQ(format_iso_ms(p.end), "2026-11-27T21:17:00.000Z");
  ASSERT_EQ(p.slots.size(), 30u);
  EXPECT_EQ(format_iso_ms(p.slots.front()), "2026-11-27T21:16:00.000Z");
  EXPECT_EQ(format_iso_ms(p.slots[1]), "2026-11-27T21:16:02.000Z");
  EXPECT_EQ(format_iso_ms(p.slots.back()), "2026-11-27T21:16:58.000Z");
  EXPECT_EQ(p.slots, series(slot("2026-11-27T21:16:00Z"), Millis(2000), 30));
}

TEST(PlanWindow, SameNextMinuteFromAnywhereInTheMinute) {
  WindowPlan want = plan_window_at(every(Millis(2000)), kMinute, slot("2026-11-27T21:16:00Z"));
  for (const char* now : {"2026-11-27T21:15:00Z", "2026-11-27T21:15:00.000000001Z",
                          "2026-11-27T21:15:30Z", "2026-11-27T21:15:59.999999999Z"}) {
    EXPECT_EQ(plan_window(every(Millis(2000)), kMinute, at(now)), want) << now;
  }
}

TEST(PlanWindow, ExactlyOnABoundaryPlansTheFollowingWindow) {
  WindowPlan p = plan_window(every(Millis(2000)), kMinute, at("2026-11-27T21:16:00Z"));
  EXPECT_EQ(format_iso_ms(p.start), "2026-11-27T21:17:00.000Z");
  EXPECT_EQ(p.slots.size(), 30u);
}

TEST(PlanWindow, EndIsExclusive) {
  // A slot exactly at the window end belongs to the next window.
  WindowPlan p = plan_window_at(every(Millis(2000)), kMinute, slot("2026-11-27T21:16:00Z"));
  EXPECT_LT(p.slots.back(), p.end);
  WindowPlan next = plan_window_at(every(Millis(2000)), kMinute, p.end);
  EXPECT_EQ(next.slots.front(), p.end);
}

TEST(PlanWindow, ConsecutiveWindowsTileTheSchedule) {
  Schedule s = every(Millis(2000));
  WallTime now = at("2026-11-27T21:15:37.5Z");
  std::vector<SlotTime> tiled;
  WindowPlan p = plan_window(s, kMinute, now);
  const SlotTime first_start = p.start;
  for (int i = 0; i < 5; ++i) {
    tiled.insert(tiled.end(), p.slots.begin(), p.slots.end());
    p = plan_window_at(s, kMinute, p.end);
  }
  EXPECT_EQ(tiled, series(first_start, Millis(2000), 150));
}

TEST(PlanWindow, YearEnd) {
  WindowPlan p = plan_window(every(Millis(2000)), kMinute, at("2026-12-31T23:59:30Z"));
  EXPECT_EQ(format_iso_ms(p.start), "2027-01-01T00:00:00.000Z");
  EXPECT_EQ(p.slots, series(slot("2027-01-01T00:00:00Z"), Millis(2000), 30));

  WindowPlan last = plan_window(every(Millis(2000)), kMinute, at("2026-12-31T23:58:59.9Z"));
  EXPECT_EQ(format_iso_ms(last.slots.back()), "2026-12-31T23:59:58.000Z");
  EXPECT_EQ(last.end, slot("2027-01-01T00:00:00Z"));
}

TEST(PlanWindow, LeapDay) {
  WindowPlan p = plan_window(every(Millis(2000)), kMinute, at("2028-02-28T23:59:30Z"));
  EXPECT_EQ(format_iso_ms(p.start), "2028-02-29T00:00:00.000Z");
  EXPECT_EQ(p.slots.size(), 30u);

  // A day-long window on the leap day: 43,200 slots of 2 s, UTC midnight to midnight.
  WindowPlan day = plan_window(every(Millis(2000)), days(1), at("2028-02-28T12:00:00Z"));
  EXPECT_EQ(format_iso_ms(day.start), "2028-02-29T00:00:00.000Z");
  EXPECT_EQ(format_iso_ms(day.end), "2028-03-01T00:00:00.000Z");
  ASSERT_EQ(day.slots.size(), 43'200u);
  EXPECT_EQ(format_iso_ms(day.slots.back()), "2028-02-29T23:59:58.000Z");

  WindowPlan leap = plan_window_at(cron("0 0 12 29 FEB *"), days(1), slot("2028-02-29T00:00:00Z"));
  EXPECT_EQ(iso(leap.slots), std::vector<std::string>{"2028-02-29T12:00:00.000Z"});
}

// ---- the current window (start-up or resume mid-window) ----

TEST(PlanCurrentWindow, OnlySlotsStrictlyAfterNow) {
  WindowPlan p = plan_current_window(every(Millis(2000)), kMinute, at("2026-11-27T21:15:37.5Z"));
  EXPECT_EQ(format_iso_ms(p.start), "2026-11-27T21:15:00.000Z");
  EXPECT_EQ(format_iso_ms(p.end), "2026-11-27T21:16:00.000Z");
  EXPECT_EQ(p.slots, series(slot("2026-11-27T21:15:38Z"), Millis(2000), 11));
}

TEST(PlanCurrentWindow, ExactlyOnASlotExcludesIt) {
  WindowPlan p = plan_current_window(every(Millis(2000)), kMinute, at("2026-11-27T21:15:38Z"));
  EXPECT_EQ(p.slots, series(slot("2026-11-27T21:15:40Z"), Millis(2000), 10));
}

TEST(PlanCurrentWindow, ExactlyOnTheWindowStart) {
  WindowPlan p = plan_current_window(every(Millis(2000)), kMinute, at("2026-11-27T21:16:00Z"));
  EXPECT_EQ(format_iso_ms(p.start), "2026-11-27T21:16:00.000Z");
  EXPECT_EQ(p.slots, series(slot("2026-11-27T21:16:02Z"), Millis(2000), 29));
}

TEST(PlanCurrentWindow, JustBeforeTheWindowStartIsTheOldWindow) {
  WindowPlan p =
      plan_current_window(every(Millis(2000)), kMinute, at("2026-11-27T21:15:59.999999999Z"));
  EXPECT_EQ(format_iso_ms(p.start), "2026-11-27T21:15:00.000Z");
  EXPECT_TRUE(p.slots.empty());
}

TEST(PlanCurrentWindow, TailPlusNextWindowIsEverySlotAfterNow) {
  Schedule s = every(Millis(300));
  WallTime now = at("2026-11-27T21:15:37.123456Z");
  WindowPlan current = plan_current_window(s, kSecond, now);
  WindowPlan next = plan_window(s, kSecond, now);
  EXPECT_EQ(current.end, next.start);
  std::vector<SlotTime> all = current.slots;
  all.insert(all.end(), next.slots.begin(), next.slots.end());
  WallTime t = now;
  for (SlotTime got : all) {
    EXPECT_EQ(s.next_after(t), got);
    t = WallTime(got);
  }
}

// ---- sub-second intervals and windows ----

TEST(PlanWindow, HundredMillisecondsInOneSecondWindows) {
  WindowPlan p = plan_window(every(Millis(100)), kSecond, at("2026-11-27T21:15:37.5Z"));
  EXPECT_EQ(format_iso_ms(p.start), "2026-11-27T21:15:38.000Z");
  EXPECT_EQ(format_iso_ms(p.end), "2026-11-27T21:15:39.000Z");
  EXPECT_EQ(p.slots, series(slot("2026-11-27T21:15:38Z"), Millis(100), 10));

  WindowPlan cur = plan_current_window(every(Millis(100)), kSecond, at("2026-11-27T21:15:37.5Z"));
  EXPECT_EQ(cur.slots, series(slot("2026-11-27T21:15:37.6Z"), Millis(100), 4));
}

TEST(PlanWindow, HundredMillisecondWindows) {
  WindowPlan p = plan_window(every(Millis(20)), Millis(100), at("2026-11-27T21:15:37.55Z"));
  EXPECT_EQ(format_iso_ms(p.start), "2026-11-27T21:15:37.600Z");
  EXPECT_EQ(p.slots, series(slot("2026-11-27T21:15:37.6Z"), Millis(20), 5));
}

TEST(PlanWindow, ThreeHundredMillisecondsAreMultiplesSinceTheEpoch) {
  // Seconds 0..3 after the epoch hold 4, 3, 3 and 4 slots: 0 300 600 900 | 1200 1500 1800 | ...
  Schedule s = every(Millis(300));
  auto ms = [](const WindowPlan& p) {
    std::vector<int64_t> out;
    for (SlotTime t : p.slots) out.push_back(to_unix_ms(t));
    return out;
  };
  EXPECT_EQ(ms(plan_window_at(s, kSecond, slot_from_unix_ms(0))),
            (std::vector<int64_t>{0, 300, 600, 900}));
  EXPECT_EQ(ms(plan_window_at(s, kSecond, slot_from_unix_ms(1000))),
            (std::vector<int64_t>{1200, 1500, 1800}));
  EXPECT_EQ(ms(plan_window_at(s, kSecond, slot_from_unix_ms(2000))),
            (std::vector<int64_t>{2100, 2400, 2700}));
  EXPECT_EQ(ms(plan_window_at(s, kSecond, slot_from_unix_ms(3000))),
            (std::vector<int64_t>{3000, 3300, 3600, 3900}));

  // Today too: every slot is a multiple of 300 ms since the epoch, 200 in a minute.
  WindowPlan p = plan_window(s, kMinute, at("2026-11-27T21:15:37.5Z"));
  ASSERT_EQ(p.slots.size(), 200u);
  for (SlotTime t : p.slots) EXPECT_EQ(to_unix_ms(t) % 300, 0);
}

TEST(PlanWindow, WindowNotAMultipleOfTheInterval) {
  // 7 s slots in 1 min windows: 8 or 9 per window, and none lost between windows.
  Schedule s = every(Millis(7000));
  WindowPlan p = plan_window(s, kMinute, at("2026-11-27T21:15:37.5Z"));
  size_t total = 0;
  SlotTime expected = *s.next_after(WallTime(p.start) - Nanos(1));
  for (int i = 0; i < 7; ++i) {
    EXPECT_GE(p.slots.size(), 8u);
    EXPECT_LE(p.slots.size(), 9u);
    for (SlotTime t : p.slots) {
      EXPECT_EQ(t, expected);
      expected += Millis(7000);
    }
    total += p.slots.size();
    p = plan_window_at(s, kMinute, p.end);
  }
  EXPECT_EQ(total, 60u);  // 7 minutes hold exactly 60 slots of 7 s
}

TEST(PlanWindow, OneMillisecondIntervalAndWindow) {
  WindowPlan p = plan_window(every(Millis(1)), Millis(1), at("2026-11-27T21:15:37.5004Z"));
  EXPECT_EQ(format_iso_ms(p.start), "2026-11-27T21:15:37.501Z");
  EXPECT_EQ(p.slots, std::vector<SlotTime>{p.start});
}

// ---- huge intervals and windows ----

TEST(PlanWindow, IntervalLongerThanTheWindow) {
  // Weekly slots fall on Thursdays 00:00 UTC (1970-01-01 was a Thursday).
  Schedule weekly = every(std::chrono::duration_cast<Millis>(days(7)));
  EXPECT_TRUE(plan_window(weekly, kMinute, at("2026-11-27T21:15:37Z")).slots.empty());
  WindowPlan thursday = plan_window(weekly, kMinute, at("2026-12-02T23:59:00Z"));
  EXPECT_EQ(iso(thursday.slots), std::vector<std::string>{"2026-12-03T00:00:00.000Z"});
  EXPECT_TRUE(plan_window(weekly, kMinute, at("2026-12-03T00:00:00Z")).slots.empty());
}

TEST(PlanWindow, HourWindowsOfHourlySlots) {
  Schedule hourly = every(std::chrono::duration_cast<Millis>(hours(1)));
  WindowPlan p =
      plan_window(hourly, std::chrono::duration_cast<Millis>(hours(1)), at("2026-11-27T21:15:37Z"));
  EXPECT_EQ(iso(p.slots), std::vector<std::string>{"2026-11-27T22:00:00.000Z"});
}

TEST(PlanWindow, WindowsBeyondWallTimeRangeWorkForIntervals) {
  // Windows of 365,000 days: the next one starts near the year 2969, past what a WallTime
  // (int64 nanoseconds) can hold; interval arithmetic is in milliseconds and still exact.
  const Millis window = std::chrono::duration_cast<Millis>(days(365'000));
  WindowPlan p = plan_window(every(std::chrono::duration_cast<Millis>(days(100'000))), window,
                             at("2026-11-27T21:15:37Z"));
  const int64_t day_ms = 86'400'000;
  EXPECT_EQ(to_unix_ms(p.start), 365'000 * day_ms);
  std::vector<int64_t> got;
  for (SlotTime t : p.slots) got.push_back(to_unix_ms(t));
  EXPECT_EQ(got, (std::vector<int64_t>{400'000 * day_ms, 500'000 * day_ms, 600'000 * day_ms,
                                       700'000 * day_ms}));
  // A cron schedule cannot be evaluated there: the window is planned, empty.
  EXPECT_TRUE(plan_window(cron("0 0 0 1 1 *"), window, at("2026-11-27T21:15:37Z")).slots.empty());
}

// ---- cron windows ----

TEST(PlanCronWindow, EveryTwoSecondsMatchesTheIntervalPlan) {
  WallTime now = at("2026-11-27T21:15:37.5Z");
  EXPECT_EQ(plan_window(cron("*/2 * * * * *"), kMinute, now),
            plan_window(every(Millis(2000)), kMinute, now));
  EXPECT_EQ(plan_current_window(cron("*/2 * * * * *"), kMinute, now),
            plan_current_window(every(Millis(2000)), kMinute, now));
}

TEST(PlanCronWindow, SparseCronLeavesMostWindowsEmpty) {
  Schedule s = cron("0 0 9 * * MON-FRI");
  EXPECT_TRUE(plan_window(s, kMinute, at("2026-11-27T21:15:37Z")).slots.empty());
  WindowPlan nine = plan_window(s, kMinute, at("2026-11-27T08:59:59Z"));
  EXPECT_EQ(iso(nine.slots), std::vector<std::string>{"2026-11-27T09:00:00.000Z"});
  // Saturday: no slot.
  EXPECT_TRUE(plan_window(s, kMinute, at("2026-11-28T08:59:59Z")).slots.empty());
}

TEST(PlanCronWindow, SlotAtTheWindowStartIsIncluded) {
  WindowPlan p = plan_window_at(cron("0,30 * * * * *"), kMinute, slot("2026-11-27T21:16:00Z"));
  EXPECT_EQ(iso(p.slots),
            (std::vector<std::string>{"2026-11-27T21:16:00.000Z", "2026-11-27T21:16:30.000Z"}));
}

TEST(PlanCronWindow, DayWindowOfHourlyCron) {
  WindowPlan p = plan_window(cron("0 0 */6 * * *"), days(1), at("2026-12-31T13:00:00Z"));
  EXPECT_EQ(iso(p.slots),
            (std::vector<std::string>{"2027-01-01T00:00:00.000Z", "2027-01-01T06:00:00.000Z",
                                      "2027-01-01T12:00:00.000Z", "2027-01-01T18:00:00.000Z"}));
}

TEST(PlanCronWindow, SubSecondWindows) {
  // Cron slots are whole seconds: with 100 ms windows only one in ten holds a slot.
  Schedule s = cron("* * * * * *");
  WindowPlan on = plan_window_at(s, Millis(100), slot("2026-11-27T21:16:00Z"));
  EXPECT_EQ(iso(on.slots), std::vector<std::string>{"2026-11-27T21:16:00.000Z"});
  WindowPlan off = plan_window_at(s, Millis(100), slot("2026-11-27T21:16:00.1Z"));
  EXPECT_TRUE(off.slots.empty());
  WindowPlan cur = plan_current_window(s, Millis(100), at("2026-11-27T21:16:00.05Z"));
  EXPECT_TRUE(cur.slots.empty());
}

TEST(PlanCronWindow, NeverMatchingCronPlansEmptyWindows) {
  WindowPlan p = plan_window(cron("0 0 0 30 FEB *"), kMinute, at("2026-11-27T21:15:37Z"));
  EXPECT_EQ(format_iso_ms(p.start), "2026-11-27T21:16:00.000Z");
  EXPECT_TRUE(p.slots.empty());
}

// ---- properties over many intervals and windows ----

TEST(PlanWindowProperty, SlotsAreExactlyTheScheduleSlotsInTheWindow) {
  const int64_t intervals[] = {1, 7, 100, 300, 999, 1000, 2000, 7000, 60'000, 86'400'000};
  const int64_t windows[] = {1, 100, 1000, 60'000, 3'600'000};
  const WallTime nows[] = {at("2026-11-27T21:15:37.5Z"), at("2026-11-27T21:16:00Z"),
                           at("2028-02-29T23:59:59.999999Z"), at("1969-12-31T23:59:59.7Z")};
  for (int64_t iv : intervals) {
    for (int64_t w : windows) {
      if (w / iv > 100'000) continue;
      Schedule s = every(Millis(iv));
      for (WallTime now : nows) {
        SCOPED_TRACE(::testing::Message()
                     << "every " << iv << "ms, window " << w << "ms, now " << format_iso_us(now));
        WindowPlan p = plan_window(s, Millis(w), now);
        EXPECT_EQ(to_unix_ms(p.start) % w, 0);
        EXPECT_GT(WallTime(p.start), now);
        EXPECT_LE(WallTime(p.start) - now, Millis(w));
        EXPECT_EQ(p.end - p.start, Millis(w));
        // Exactly the chain of next_after from just before start, cut at end.
        std::vector<SlotTime> want;
        for (SlotTime t = *s.next_after(WallTime(p.start) - Nanos(1)); t < p.end;
             t = *s.next_after(WallTime(t))) {
          want.push_back(t);
        }
        EXPECT_EQ(p.slots, want);
        EXPECT_EQ(plan_window_at(s, Millis(w), p.start), p);
        WindowPlan cur = plan_current_window(s, Millis(w), now);
        EXPECT_EQ(cur.end, p.start);
        for (SlotTime t : cur.slots) EXPECT_GT(WallTime(t), now);
      }
    }
  }
}

TEST(PlanWindowDeathTest, WindowBelowOneMillisecondIsABug) {
  EXPECT_DEATH(plan_window(every(Millis(2000)), Millis(0), at("2026-11-27T21:15:37Z")),
               "below 1 ms");
  EXPECT_DEATH(plan_window_at(every(Millis(2000)), Millis(0), slot("2026-11-27T21:15:00Z")),
               "below 1 ms");
}

}  // namespace
}  // namespace metronome
