#include "schedule/schedule.h"

#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>

namespace metronome {
namespace {

// Rounds towards negative infinity, so times before the epoch fall into the right slot.
int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

}  // namespace

Schedule Schedule::every(Millis interval) {
  if (interval < Millis(1)) {
    std::fprintf(stderr, "Schedule::every: interval %lld ms is below 1 ms\n",
                 static_cast<long long>(interval.count()));
    std::abort();
  }
  return Schedule(interval);
}

Schedule Schedule::cron(CronExpr expr) {
  return Schedule(std::move(expr));
}

std::optional<SlotTime> Schedule::next_after(WallTime t) const {
  if (const auto* cron = std::get_if<CronExpr>(&rule_)) return cron->next_after(t);
  const int64_t interval_ms = std::get<Millis>(rule_).count();
  // A slot at k * interval is strictly after t iff it is after floor(t) in whole milliseconds:
  // slots are whole milliseconds, so t's sub-millisecond part cannot separate them.
  const int64_t t_ms = std::chrono::floor<Millis>(t).time_since_epoch().count();
  return slot_from_unix_ms((floor_div(t_ms, interval_ms) + 1) * interval_ms);
}

int64_t Schedule::round_of(SlotTime slot) const {
  const int64_t divisor = is_interval() ? interval().count() : 1000;
  return floor_div(to_unix_ms(slot), divisor);
}

std::string Schedule::describe() const {
  if (const auto* cron = std::get_if<CronExpr>(&rule_)) return "cron " + cron->text();
  return "every " + format_duration(interval());
}

}  // namespace metronome
