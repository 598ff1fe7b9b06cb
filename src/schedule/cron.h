// CronExpr: a 6-field cron expression with seconds, evaluated in UTC.
//
//   second minute hour day-of-month month day-of-week
//   "*/2 * * * * *"   every even second
//   "0 0 9-17 * * MON-FRI"
//
// Each field takes '*', numbers, ranges "a-b", steps "*/n" and "a-b/n" and "a/n", and lists
// "a,b-c". "a/n" runs from a to the field's last value (Saturday for days of week). Months take
// JAN..DEC, days of week SUN..SAT (0 or 7 is Sunday; a range may end at SUN, "FRI-SUN"),
// case-insensitive. As in Vixie cron, when both day-of-month and day-of-week are restricted a day
// matches if either matches; a field is restricted unless it starts with '*' (so "*/2" is not
// restricted). Immutable and thread-safe once parsed.
#pragma once

#include <bitset>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "common/time.h"

namespace metronome {

class CronExpr {
 public:
  // InvalidArgument naming the field and the offending text, e.g.
  // "cron '*/0 * * * * *': second field '*/0': step must be at least 1".
  static Result<CronExpr> parse(std::string_view text);

  // The first matching time strictly after `t`, in whole seconds. nullopt when none exists
  // within the next 5 years (e.g. "0 0 0 30 FEB *").
  std::optional<SlotTime> next_after(WallTime t) const;

  const std::string& text() const { return text_; }

 private:
  std::string text_;
  std::bitset<60> seconds_;
  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_of_month_;  // 1..31
  std::bitset<13> months_;         // 1..12
  std::bitset<7> days_of_week_;    // 0..6, Sunday = 0
  bool dom_restricted_ = false;
  bool dow_restricted_ = false;
};

}  // namespace metronome
