#include "schedule/cron.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace metronome {
namespace {

using ::testing::HasSubstr;

WallTime at(std::string_view iso) {
  Result<WallTime> t = parse_iso(iso);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return t.value_or(WallTime{});
}

CronExpr cron(std::string_view text) {
  Result<CronExpr> e = CronExpr::parse(text);
  if (!e) ADD_FAILURE() << e.status().ToString();
  return e.value_or(*CronExpr::parse("* * * * * *"));
}

// The next match after `from`, as ISO text, or "none".
std::string next(std::string_view expr, std::string_view from) {
  std::optional<SlotTime> t = cron(expr).next_after(at(from));
  return t ? format_iso_ms(*t) : "none";
}

// The first `n` matches after `from`, chaining next_after.
std::vector<std::string> matches(std::string_view expr, std::string_view from, int n) {
  CronExpr e = cron(expr);
  std::vector<std::string> out;
  WallTime t = at(from);
  for (int i = 0; i < n; ++i) {
    std::optional<SlotTime> s = e.next_after(t);
    if (!s) break;
    out.push_back(format_iso_s(*s));
    t = WallTime(*s);
  }
  return out;
}

// The error message of parsing `text`; "" when it parses.
std::string error_of(std::string_view text) {
  Result<CronExpr> e = CronExpr::parse(text);
  if (e) return "";
  EXPECT_EQ(e.status().code(), Status::Code::kInvalidArgument);
  return e.status().message();
}

// ---- next_after: basics ----

TEST(CronNextAfter, EveryEvenSecond) {
  EXPECT_EQ(matches("*/2 * * * * *", "2026-11-27T21:15:57.5Z", 4),
            (std::vector<std::string>{"2026-11-27T21:15:58Z", "2026-11-27T21:16:00Z",
                                      "2026-11-27T21:16:02Z", "2026-11-27T21:16:04Z"}));
}

TEST(CronNextAfter, StrictlyAfterAnExactMatch) {
  EXPECT_EQ(next("*/2 * * * * *", "2026-11-27T21:16:00Z"), "2026-11-27T21:16:02.000Z");
  EXPECT_EQ(next("* * * * * *", "2026-11-27T21:16:00Z"), "2026-11-27T21:16:01.000Z");
}

TEST(CronNextAfter, SubSecondInputRoundsUpToTheNextWholeSecond) {
  EXPECT_EQ(next("* * * * * *", "2026-11-27T21:16:00.000000001Z"), "2026-11-27T21:16:01.000Z");
  EXPECT_EQ(next("* * * * * *", "2026-11-27T21:16:00.999999999Z"), "2026-11-27T21:16:01.000Z");
  EXPECT_EQ(next("* * * * * *", "2026-11-27T21:15:59.999Z"), "2026-11-27T21:16:00.000Z");
}

TEST(CronNextAfter, ResultsAreWholeSeconds) {
  CronExpr e = cron("*/7 * * * * *");
  WallTime t = at("2026-01-01T00:00:00.123456789Z");
  for (int i = 0; i < 100; ++i) {
    std::optional<SlotTime> s = e.next_after(t);
    ASSERT_TRUE(s);
    EXPECT_EQ(to_unix_ms(*s) % 1000, 0);
    EXPECT_GT(WallTime(*s), t);
    t = WallTime(*s) + Nanos(123);
  }
}

TEST(CronNextAfter, CarriesThroughMinuteHourDayMonthYear) {
  EXPECT_EQ(next("0 * * * * *", "2026-11-27T21:15:59Z"), "2026-11-27T21:16:00.000Z");
  EXPECT_EQ(next("0 0 * * * *", "2026-11-27T21:59:59Z"), "2026-11-27T22:00:00.000Z");
  EXPECT_EQ(next("0 0 0 * * *", "2026-11-27T23:59:59Z"), "2026-11-28T00:00:00.000Z");
  EXPECT_EQ(next("0 0 0 1 * *", "2026-11-27T21:00:00Z"), "2026-12-01T00:00:00.000Z");
  EXPECT_EQ(next("0 0 0 1 1 *", "2026-11-27T21:00:00Z"), "2027-01-01T00:00:00.000Z");
  EXPECT_EQ(next("* * * * * *", "2026-12-31T23:59:59Z"), "2027-01-01T00:00:00.000Z");
}

TEST(CronNextAfter, LaterInTheSameUnitThenResetsSmallerOnes) {
  // The hour matches later today: minutes and seconds restart from their first match.
  EXPECT_EQ(next("5,10 15 9,17 * * *", "2026-11-27T09:20:00Z"), "2026-11-27T17:15:05.000Z");
  EXPECT_EQ(next("5,10 15 9,17 * * *", "2026-11-27T09:15:05Z"), "2026-11-27T09:15:10.000Z");
  EXPECT_EQ(next("5,10 15 9,17 * * *", "2026-11-27T17:15:10Z"), "2026-11-28T09:15:05.000Z");
  EXPECT_EQ(next("30 */20 * * * *", "2026-11-27T09:41:00Z"), "2026-11-27T10:00:30.000Z");
}

TEST(CronNextAfter, NineToFiveOnWeekdays) {
  // 2026-11-27 is a Friday.
  EXPECT_EQ(next("0 0 9-17 * * MON-FRI", "2026-11-27T16:30:00Z"), "2026-11-27T17:00:00.000Z");
  EXPECT_EQ(next("0 0 9-17 * * MON-FRI", "2026-11-27T17:00:00Z"), "2026-11-30T09:00:00.000Z");
  EXPECT_EQ(next("0 0 9-17 * * MON-FRI", "2026-11-29T12:00:00Z"), "2026-11-30T09:00:00.000Z");
}

TEST(CronNextAfter, MonthsAreSkippedWholesale) {
  EXPECT_EQ(next("0 0 0 * JUN *", "2026-06-30T23:59:59Z"), "2027-06-01T00:00:00.000Z");
  EXPECT_EQ(next("0 0 12 15 mar,sep *", "2026-03-15T12:00:00Z"), "2026-09-15T12:00:00.000Z");
  EXPECT_EQ(next("0 0 12 15 mar,sep *", "2026-09-15T12:00:00Z"), "2027-03-15T12:00:00.000Z");
}

TEST(CronNextAfter, LeapDay) {
  EXPECT_EQ(next("0 0 0 29 2 *", "2025-01-01T00:00:00Z"), "2028-02-29T00:00:00.000Z");
  EXPECT_EQ(next("0 0 0 29 FEB *", "2028-02-29T00:00:00Z"), "2032-02-29T00:00:00.000Z");
  EXPECT_EQ(next("* * * * * *", "2028-02-28T23:59:59Z"), "2028-02-29T00:00:00.000Z");
  EXPECT_EQ(next("0 0 0 1 3 *", "2028-02-29T00:00:00Z"), "2028-03-01T00:00:00.000Z");
  // The last day of February, whichever it is.
  EXPECT_EQ(next("0 0 0 28,29 2 *", "2027-02-28T00:00:00Z"), "2028-02-28T00:00:00.000Z");
}

TEST(CronNextAfter, DayThirtyOneSkipsShortMonths) {
  EXPECT_EQ(matches("0 0 0 31 * *", "2026-01-31T00:00:00Z", 4),
            (std::vector<std::string>{"2026-03-31T00:00:00Z", "2026-05-31T00:00:00Z",
                                      "2026-07-31T00:00:00Z", "2026-08-31T00:00:00Z"}));
}

TEST(CronNextAfter, NeverMatchingReturnsNullopt) {
  EXPECT_EQ(next("0 0 0 30 FEB *", "2026-01-01T00:00:00Z"), "none");
  EXPECT_EQ(next("0 0 0 31 4,6,9,11 *", "2026-01-01T00:00:00Z"), "none");
  EXPECT_EQ(next("* * * 31 FEB *", "2026-01-01T00:00:00Z"), "none");
}

TEST(CronNextAfter, FiveYearHorizon) {
  // After 2096-02-29 the next leap day is 2104-02-29 (2100 is not a leap year): beyond 5 years.
  EXPECT_EQ(next("0 0 0 29 2 *", "2096-02-29T00:00:00Z"), "none");
  // A match just inside 5 years is found: Feb 29 2028 from early 2024 (after that year's).
  EXPECT_EQ(next("0 0 0 29 2 *", "2024-02-29T00:00:01Z"), "2028-02-29T00:00:00.000Z");
}

TEST(CronNextAfter, YearEnd) {
  EXPECT_EQ(next("59 59 23 31 12 *", "2026-12-31T23:59:58Z"), "2026-12-31T23:59:59.000Z");
  EXPECT_EQ(next("59 59 23 31 12 *", "2026-12-31T23:59:59Z"), "2027-12-31T23:59:59.000Z");
  EXPECT_EQ(next("0 0 0 1 1 *", "2026-12-31T23:59:59.999Z"), "2027-01-01T00:00:00.000Z");
}

TEST(CronNextAfter, BeforeTheEpoch) {
  EXPECT_EQ(next("0 0 0 1 1 *", "1969-06-01T00:00:00Z"), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(next("*/2 * * * * *", "1969-12-31T23:59:58.5Z"), "1970-01-01T00:00:00.000Z");
}

struct Civil {
  int sec, min, hour, dom, month, dow;  // dow: Sunday = 0
};

// Calls `f(seconds since the epoch, civil fields)` for every second of the days [first, last).
template <typename F>
void for_each_second(std::chrono::sys_days first, std::chrono::sys_days last, F f) {
  for (auto day = first; day < last; day += std::chrono::days(1)) {
    std::chrono::year_month_day ymd{day};
    Civil c{};
    c.dom = static_cast<int>(static_cast<unsigned>(ymd.day()));
    c.month = static_cast<int>(static_cast<unsigned>(ymd.month()));
    c.dow = static_cast<int>(std::chrono::weekday(day).c_encoding());
    const int64_t day_start = std::chrono::sys_seconds(day).time_since_epoch().count();
    for (int s = 0; s < 86'400; ++s) {
      c.hour = s / 3600;
      c.min = s / 60 % 60;
      c.sec = s % 60;
      f(day_start + s, c);
    }
  }
}

TEST(CronNextAfter, AgreesWithASecondBySecondScan) {
  // Each expression with a hand-written predicate; every match found by scanning 5 days second by
  // second (across Feb 29 and a month end) must be exactly what chained next_after returns.
  struct Case {
    const char* text;
    bool (*matches)(const Civil&);
  };
  const Case cases[] = {
      {"*/17 */7 */5 * * *",
       [](const Civil& c) { return c.sec % 17 == 0 && c.min % 7 == 0 && c.hour % 5 == 0; }},
      {"0 30 1-3,22 * * SAT,SUN",
       [](const Civil& c) {
         return c.sec == 0 && c.min == 30 && ((c.hour >= 1 && c.hour <= 3) || c.hour == 22) &&
                (c.dow == 6 || c.dow == 0);
       }},
      {"13 0 0 */3 * *",
       [](const Civil& c) {
         return c.sec == 13 && c.min == 0 && c.hour == 0 && (c.dom - 1) % 3 == 0;
       }},
      {"0 0 * 1,15 * MON",
       [](const Civil& c) {
         return c.sec == 0 && c.min == 0 && (c.dom == 1 || c.dom == 15 || c.dow == 1);
       }},
      {"5-10/2 0 12 * * 2",
       [](const Civil& c) {
         return (c.sec == 5 || c.sec == 7 || c.sec == 9) && c.min == 0 && c.hour == 12 &&
                c.dow == 2;
       }},
      {"0 0 0 * * 7",
       [](const Civil& c) { return c.sec == 0 && c.min == 0 && c.hour == 0 && c.dow == 0; }},
      {"0 0 */6 29 FEB,MAR *",
       [](const Civil& c) {
         return c.sec == 0 && c.min == 0 && c.hour % 6 == 0 && c.dom == 29 &&
                (c.month == 2 || c.month == 3);
       }},
  };
  // 2028-02-26 is a Saturday; the scan runs to the end of 2028-03-01.
  const std::chrono::sys_days first_day = std::chrono::year(2028) / 2 / 26;
  const std::chrono::sys_days end_day = std::chrono::year(2028) / 3 / 2;
  const WallTime start = WallTime(first_day) - Nanos(1);
  const int64_t end_s = std::chrono::sys_seconds(end_day).time_since_epoch().count();
  for (const Case& c : cases) {
    CronExpr e = cron(c.text);
    std::vector<int64_t> scanned;
    for_each_second(first_day, end_day, [&](int64_t s, const Civil& civil) {
      if (c.matches(civil)) scanned.push_back(s);
    });
    std::vector<int64_t> chained;
    WallTime t = start;
    while (true) {
      std::optional<SlotTime> next = e.next_after(t);
      ASSERT_TRUE(next) << c.text;
      if (next->time_since_epoch() >= Seconds(end_s)) break;
      chained.push_back(std::chrono::duration_cast<Seconds>(next->time_since_epoch()).count());
      t = WallTime(*next);
    }
    EXPECT_FALSE(scanned.empty()) << c.text;
    EXPECT_EQ(chained, scanned) << c.text;
  }
}

// ---- fields ----

TEST(CronFields, Lists) {
  EXPECT_EQ(matches("1,3,5 * * * * *", "2026-01-01T00:00:00Z", 4),
            (std::vector<std::string>{"2026-01-01T00:00:01Z", "2026-01-01T00:00:03Z",
                                      "2026-01-01T00:00:05Z", "2026-01-01T00:01:01Z"}));
}

TEST(CronFields, RangesAndListsOfRanges) {
  EXPECT_EQ(matches("1-2,58-59 * * * * *", "2026-01-01T00:00:00Z", 5),
            (std::vector<std::string>{"2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z",
                                      "2026-01-01T00:00:58Z", "2026-01-01T00:00:59Z",
                                      "2026-01-01T00:01:01Z"}));
}

TEST(CronFields, SingleValueRange) {
  EXPECT_EQ(next("7-7 * * * * *", "2026-01-01T00:00:00Z"), "2026-01-01T00:00:07.000Z");
}

TEST(CronFields, StarStep) {
  EXPECT_EQ(matches("*/15 * * * * *", "2026-01-01T00:00:00Z", 4),
            (std::vector<std::string>{"2026-01-01T00:00:15Z", "2026-01-01T00:00:30Z",
                                      "2026-01-01T00:00:45Z", "2026-01-01T00:01:00Z"}));
  // 60 is not a multiple of 7: the step restarts at 0 each minute.
  EXPECT_EQ(matches("*/7 * * * * *", "2026-01-01T00:00:50Z", 3),
            (std::vector<std::string>{"2026-01-01T00:00:56Z", "2026-01-01T00:01:00Z",
                                      "2026-01-01T00:01:07Z"}));
}

TEST(CronFields, RangeStep) {
  EXPECT_EQ(matches("10-20/5 * * * * *", "2026-01-01T00:00:00Z", 4),
            (std::vector<std::string>{"2026-01-01T00:00:10Z", "2026-01-01T00:00:15Z",
                                      "2026-01-01T00:00:20Z", "2026-01-01T00:01:10Z"}));
  // The step stops at the range end even when it does not land on it.
  EXPECT_EQ(matches("10-21/4 * * * * *", "2026-01-01T00:00:00Z", 4),
            (std::vector<std::string>{"2026-01-01T00:00:10Z", "2026-01-01T00:00:14Z",
                                      "2026-01-01T00:00:18Z", "2026-01-01T00:01:10Z"}));
}

TEST(CronFields, StartStepRunsToTheFieldEnd) {
  EXPECT_EQ(matches("50/3 * * * * *", "2026-01-01T00:00:00Z", 4),
            (std::vector<std::string>{"2026-01-01T00:00:50Z", "2026-01-01T00:00:53Z",
                                      "2026-01-01T00:00:56Z", "2026-01-01T00:00:59Z"}));
  EXPECT_EQ(next("50/3 * * * * *", "2026-01-01T00:00:59Z"), "2026-01-01T00:01:50.000Z");
  // Hours: 20/2 is 20 and 22.
  EXPECT_EQ(matches("0 0 20/2 * * *", "2026-01-01T00:00:00Z", 3),
            (std::vector<std::string>{"2026-01-01T20:00:00Z", "2026-01-01T22:00:00Z",
                                      "2026-01-02T20:00:00Z"}));
  // Day-of-month 1/10: 1, 11, 21, 31.
  EXPECT_EQ(matches("0 0 0 1/10 * *", "2026-01-01T00:00:00Z", 4),
            (std::vector<std::string>{"2026-01-11T00:00:00Z", "2026-01-21T00:00:00Z",
                                      "2026-01-31T00:00:00Z", "2026-02-01T00:00:00Z"}));
}

TEST(CronFields, StepLargerThanTheFieldKeepsTheFirstValue) {
  EXPECT_EQ(matches("*/60 * * * * *", "2026-01-01T00:00:00Z", 2),
            (std::vector<std::string>{"2026-01-01T00:01:00Z", "2026-01-01T00:02:00Z"}));
  EXPECT_EQ(next("5/100 * * * * *", "2026-01-01T00:00:00Z"), "2026-01-01T00:00:05.000Z");
  EXPECT_EQ(matches("59/2147483647 * * * * *", "2026-01-01T00:00:00Z", 2),
            (std::vector<std::string>{"2026-01-01T00:00:59Z", "2026-01-01T00:01:59Z"}));
  EXPECT_EQ(matches("1-59/2147483647 * * * * *", "2026-01-01T00:00:00Z", 2),
            (std::vector<std::string>{"2026-01-01T00:00:01Z", "2026-01-01T00:01:01Z"}));
}

TEST(CronFields, MonthNamesCaseInsensitive) {
  for (const char* month : {"JUL", "jul", "Jul", "jUl", "7"}) {
    EXPECT_EQ(next(std::string("0 0 0 1 ") + month + " *", "2026-01-01T00:00:00Z"),
              "2026-07-01T00:00:00.000Z")
        << month;
  }
  const char* names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                         "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
  for (int m = 1; m <= 12; ++m) {
    CronExpr by_name = cron(std::string("0 0 0 1 ") + names[m - 1] + " *");
    CronExpr by_number = cron("0 0 0 1 " + std::to_string(m) + " *");
    WallTime from = at("2026-01-01T00:00:00Z");
    EXPECT_EQ(by_name.next_after(from), by_number.next_after(from)) << names[m - 1];
  }
}

TEST(CronFields, MonthNameRangesAndSteps) {
  EXPECT_THAT(error_of("0 0 0 1 NOV-FEB *"), HasSubstr("reversed"));
  EXPECT_EQ(matches("0 0 0 1 jan-dec/3 *", "2026-01-01T00:00:00Z", 4),
            (std::vector<std::string>{"2026-04-01T00:00:00Z", "2026-07-01T00:00:00Z",
                                      "2026-10-01T00:00:00Z", "2027-01-01T00:00:00Z"}));
  EXPECT_EQ(matches("0 0 0 1 MAR/4 *", "2026-01-01T00:00:00Z", 4),
            (std::vector<std::string>{"2026-03-01T00:00:00Z", "2026-07-01T00:00:00Z",
                                      "2026-11-01T00:00:00Z", "2027-03-01T00:00:00Z"}));
}

TEST(CronFields, DayNamesAndNumbers) {
  // 2026-11-23 is a Monday; each name picks its day of that week.
  const char* names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};
  const char* dates[] = {"2026-11-29", "2026-11-23", "2026-11-24", "2026-11-25",
                         "2026-11-26", "2026-11-27", "2026-11-28"};
  for (int d = 0; d < 7; ++d) {
    std::string want = std::string(dates[d]) + "T00:00:00.000Z";
    EXPECT_EQ(next(std::string("0 0 0 * * ") + names[d], "2026-11-22T12:00:00Z"), want);
    EXPECT_EQ(next("0 0 0 * * " + std::to_string(d), "2026-11-22T12:00:00Z"), want);
  }
}

TEST(CronFields, SundayIsZeroAndSeven) {
  const std::string sunday = "2026-11-29T00:00:00.000Z";
  EXPECT_EQ(next("0 0 0 * * 0", "2026-11-23T00:00:00Z"), sunday);
  EXPECT_EQ(next("0 0 0 * * 7", "2026-11-23T00:00:00Z"), sunday);
  EXPECT_EQ(next("0 0 0 * * sun", "2026-11-23T00:00:00Z"), sunday);
  // 5-7 is Friday, Saturday, Sunday.
  EXPECT_EQ(matches("0 0 0 * * 5-7", "2026-11-23T00:00:00Z", 4),
            (std::vector<std::string>{"2026-11-27T00:00:00Z", "2026-11-28T00:00:00Z",
                                      "2026-11-29T00:00:00Z", "2026-12-04T00:00:00Z"}));
  // A range ending at the name SUN runs to the end of the week.
  EXPECT_EQ(matches("0 0 0 * * FRI-SUN", "2026-11-23T00:00:00Z", 4),
            matches("0 0 0 * * 5-7", "2026-11-23T00:00:00Z", 4));
  EXPECT_EQ(matches("0 0 0 * * mon-sun", "2026-11-23T00:00:00Z", 7).size(), 7u);
  // 0-7 and */1 are every day.
  EXPECT_EQ(matches("0 0 0 * * 0-7", "2026-11-23T00:00:00Z", 7),
            matches("0 0 0 * * *", "2026-11-23T00:00:00Z", 7));
}

TEST(CronFields, DayOfWeekSteps) {
  // */2 over Sunday..Saturday: Sun, Tue, Thu, Sat (Sunday is not counted twice as 7).
  EXPECT_EQ(matches("0 0 0 * * */2", "2026-11-22T12:00:00Z", 5),
            (std::vector<std::string>{"2026-11-24T00:00:00Z", "2026-11-26T00:00:00Z",
                                      "2026-11-28T00:00:00Z", "2026-11-29T00:00:00Z",
                                      "2026-12-01T00:00:00Z"}));
  // MON/2: Mon, Wed, Fri.
  EXPECT_EQ(matches("0 0 0 * * MON/2", "2026-11-22T12:00:00Z", 4),
            (std::vector<std::string>{"2026-11-23T00:00:00Z", "2026-11-25T00:00:00Z",
                                      "2026-11-27T00:00:00Z", "2026-11-30T00:00:00Z"}));
}

// ---- day-of-month and day-of-week together (Vixie cron) ----

TEST(CronDays, BothRestrictedMatchEither) {
  // The 1st of the month OR any Monday. 2026-06-01 is a Monday; 2026-07-01 a Wednesday.
  EXPECT_EQ(matches("0 0 0 1 * MON", "2026-06-20T00:00:00Z", 4),
            (std::vector<std::string>{"2026-06-22T00:00:00Z", "2026-06-29T00:00:00Z",
                                      "2026-07-01T00:00:00Z", "2026-07-06T00:00:00Z"}));
  // "Friday the 13th" in Vixie cron is every 13th and every Friday; 2026-12-13 is a Sunday.
  EXPECT_EQ(matches("0 0 0 13 * FRI", "2026-12-05T00:00:00Z", 3),
            (std::vector<std::string>{"2026-12-11T00:00:00Z", "2026-12-13T00:00:00Z",
                                      "2026-12-18T00:00:00Z"}));
}

TEST(CronDays, OnlyDayOfMonthRestricted) {
  EXPECT_EQ(matches("0 0 0 15 * *", "2026-01-01T00:00:00Z", 2),
            (std::vector<std::string>{"2026-01-15T00:00:00Z", "2026-02-15T00:00:00Z"}));
}

TEST(CronDays, OnlyDayOfWeekRestricted) {
  EXPECT_EQ(matches("0 0 0 * * WED", "2026-01-01T00:00:00Z", 2),
            (std::vector<std::string>{"2026-01-07T00:00:00Z", "2026-01-14T00:00:00Z"}));
}

TEST(CronDays, AStarStepIsNotARestriction) {
  // As in Vixie cron, a field starting with '*' is unrestricted, so the days are ANDed:
  // odd days of the month that are also Mondays.
  EXPECT_EQ(matches("0 0 0 */2 * MON", "2026-06-01T00:00:00Z", 3),
            (std::vector<std::string>{"2026-06-15T00:00:00Z", "2026-06-29T00:00:00Z",
                                      "2026-07-13T00:00:00Z"}));
}

TEST(CronDays, FullRangeWrittenOutIsARestriction) {
  // "1-31" is restricted (does not start with '*'): ORed with MON it matches every day.
  EXPECT_EQ(matches("0 0 0 1-31 * MON", "2026-06-01T00:00:00Z", 3),
            (std::vector<std::string>{"2026-06-02T00:00:00Z", "2026-06-03T00:00:00Z",
                                      "2026-06-04T00:00:00Z"}));
}

TEST(CronDays, BothRestrictedButNoDomMatchInMonth) {
  // Day 31 OR Sunday in February: only the Sundays.
  EXPECT_EQ(matches("0 0 0 31 FEB SUN", "2026-01-01T00:00:00Z", 3),
            (std::vector<std::string>{"2026-02-01T00:00:00Z", "2026-02-08T00:00:00Z",
                                      "2026-02-15T00:00:00Z"}));
}

// ---- parsing ----

TEST(CronParse, KeepsTheText) {
  EXPECT_EQ(cron("*/2 * * * * *").text(), "*/2 * * * * *");
}

TEST(CronParse, WhitespaceBetweenFieldsIsFlexible) {
  EXPECT_EQ(next("  */2 \t*  * * *   *  ", "2026-01-01T00:00:00Z"), "2026-01-01T00:00:02.000Z");
}

TEST(CronParse, AcceptsBoundaryValues) {
  EXPECT_EQ(error_of("0 0 0 1 1 0"), "");
  EXPECT_EQ(error_of("59 59 23 31 12 7"), "");
  EXPECT_EQ(error_of("0-59 0-59 0-23 1-31 1-12 0-7"), "");
  EXPECT_EQ(error_of("00 05 09 01 01 00"), "");
}

TEST(CronParse, ErrorNamesExpressionFieldAndText) {
  EXPECT_EQ(error_of("*/0 * * * * *"),
            "cron '*/0 * * * * *': second field '*/0': step must be at least 1");
}

TEST(CronParse, WrongFieldCount) {
  EXPECT_THAT(error_of(""), HasSubstr("expected 6 fields"));
  EXPECT_THAT(error_of("   "), HasSubstr("got 0"));
  EXPECT_THAT(error_of("* * * * *"), HasSubstr("got 5"));
  EXPECT_THAT(error_of("* * * * * * *"), HasSubstr("got 7"));
  EXPECT_THAT(error_of("@hourly"), HasSubstr("cron '@hourly': expected 6 fields"));
}

struct BadCase {
  const char* text;
  const char* field;
  const char* field_text;
  const char* reason;
};

class CronParseError : public ::testing::TestWithParam<BadCase> {};

TEST_P(CronParseError, NamesFieldAndReason) {
  const BadCase& c = GetParam();
  std::string msg = error_of(c.text);
  EXPECT_THAT(msg, HasSubstr(std::string("cron '") + c.text + "': "));
  EXPECT_THAT(msg, HasSubstr(std::string(c.field) + " field '" + c.field_text + "': "));
  EXPECT_THAT(msg, HasSubstr(c.reason));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, CronParseError,
    ::testing::Values(
        // out of range, per field
        BadCase{"60 * * * * *", "second", "60", "value 60 out of range 0-59"},
        BadCase{"* 60 * * * *", "minute", "60", "out of range 0-59"},
        BadCase{"* * 24 * * *", "hour", "24", "out of range 0-23"},
        BadCase{"* * * 0 * *", "day-of-month", "0", "out of range 1-31"},
        BadCase{"* * * 32 * *", "day-of-month", "32", "out of range 1-31"},
        BadCase{"* * * * 0 *", "month", "0", "out of range 1-12"},
        BadCase{"* * * * 13 *", "month", "13", "out of range 1-12"},
        BadCase{"* * * * * 8", "day-of-week", "8", "out of range 0-7"},
        BadCase{"0-60 * * * * *", "second", "0-60", "out of range"},
        BadCase{"99999999999999999999 * * * * *", "second", "99999999999999999999", "out of range"},
        // reversed ranges
        BadCase{"5-3 * * * * *", "second", "5-3", "range 5-3 is reversed"},
        BadCase{"* * 17-9 * * *", "hour", "17-9", "reversed"},
        BadCase{"* * * * DEC-JAN *", "month", "DEC-JAN", "reversed"},
        BadCase{"* * * * * FRI-MON", "day-of-week", "FRI-MON", "reversed"},
        BadCase{"* * * * * 7-1", "day-of-week", "7-1", "reversed"},
        // steps
        BadCase{"*/0 * * * * *", "second", "*/0", "step must be at least 1"},
        BadCase{"1-5/0 * * * * *", "second", "1-5/0", "step must be at least 1"},
        BadCase{"5/0 * * * * *", "second", "5/0", "step must be at least 1"},
        BadCase{"*/ * * * * *", "second", "*/", "missing step"},
        BadCase{"/5 * * * * *", "second", "/5", "missing value before '/'"},
        BadCase{"*/x * * * * *", "second", "*/x", "step 'x' is not a number"},
        BadCase{"*/-1 * * * * *", "second", "*/-1", "not a number"},
        BadCase{"*/2/3 * * * * *", "second", "*/2/3", "not a number"},
        BadCase{"*/99999999999999999999 * * * * *", "second", "*/99999999999999999999",
                "too large"},
        BadCase{"* * * * */MON *", "month", "*/MON", "step 'MON' is not a number"},
        // garbage
        BadCase{"x * * * * *", "second", "x", "'x' is not a number"},
        BadCase{"1x * * * * *", "second", "1x", "not a number"},
        BadCase{"** * * * * *", "second", "**", "not a number"},
        BadCase{"-5 * * * * *", "second", "-5", "missing value"},
        BadCase{"5- * * * * *", "second", "5-", "missing value"},
        BadCase{"1-2-3 * * * * *", "second", "1-2-3", "not a number"},
        BadCase{"+5 * * * * *", "second", "+5", "not a number"},
        BadCase{"1.5 * * * * *", "second", "1.5", "not a number"},
        BadCase{"* * * ? * *", "day-of-month", "?", "not a number"},
        BadCase{"* * * L * *", "day-of-month", "L", "not a number"},
        // empty list items
        BadCase{"1,2, * * * * *", "second", "1,2,", "empty list item"},
        BadCase{",1 * * * * *", "second", ",1", "empty list item"},
        BadCase{"1,,2 * * * * *", "second", "1,,2", "empty list item"},
        BadCase{", * * * * *", "second", ",", "empty list item"},
        // names where they do not belong, or unknown
        BadCase{"* * * * JANUARY *", "month", "JANUARY", "unknown name 'JANUARY'"},
        BadCase{"* * * * FOO *", "month", "FOO", "unknown name 'FOO'"},
        BadCase{"* * * * MON *", "month", "MON", "unknown name 'MON'"},
        BadCase{"* * * * * JAN", "day-of-week", "JAN", "unknown name 'JAN'"},
        BadCase{"* * * * * MONDAY", "day-of-week", "MONDAY", "unknown name"},
        BadCase{"* * * JAN * *", "day-of-month", "JAN", "'JAN' is not a number"},
        BadCase{"MON * * * * *", "second", "MON", "not a number"},
        // errors in the middle of a list are still found
        BadCase{"* * * * * MON,WED,FUN", "day-of-week", "MON,WED,FUN", "unknown name 'FUN'"},
        BadCase{"* * 1,2,99 * * *", "hour", "1,2,99", "value 99 out of range 0-23"}));

TEST(CronParse, FirstBadFieldIsReported) {
  EXPECT_THAT(error_of("60 60 * * * *"), HasSubstr("second field '60'"));
  EXPECT_THAT(error_of("0 60 99 * * *"), HasSubstr("minute field '60'"));
}

}  // namespace
}  // namespace metronome
