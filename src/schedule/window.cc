#include "schedule/window.h"

#include <cstdio>
#include <cstdlib>
#include <optional>

namespace metronome {
namespace {

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int64_t ceil_div(int64_t a, int64_t b) {
  return -floor_div(-a, b);
}

void require_valid_window(Millis window) {
  if (window < Millis(1)) {
    std::fprintf(stderr, "window planning: window %lld ms is below 1 ms\n",
                 static_cast<long long>(window.count()));
    std::abort();
  }
}

// The start of the aligned window that contains `now`.
SlotTime containing_window_start(Millis window, WallTime now) {
  require_valid_window(window);
  const int64_t w = window.count();
  const int64_t now_ms = std::chrono::floor<Millis>(now).time_since_epoch().count();
  return slot_from_unix_ms(floor_div(now_ms, w) * w);
}

// `t` as a WallTime, or nullopt outside WallTime's range (about years 1678..2261). Interval
// schedules are computed in milliseconds and have no such limit; cron schedules need it.
std::optional<WallTime> to_wall(SlotTime t) {
  constexpr Millis kMax = std::chrono::duration_cast<Millis>(Nanos::max()) - Millis(1);
  constexpr Millis kMin = std::chrono::duration_cast<Millis>(Nanos::min()) + Millis(1);
  if (t.time_since_epoch() > kMax || t.time_since_epoch() < kMin) return std::nullopt;
  return WallTime(t);
}

std::optional<SlotTime> first_slot_at_or_after(const Schedule& schedule, SlotTime t) {
  if (schedule.is_interval()) {
    const int64_t iv = schedule.interval().count();
    return slot_from_unix_ms(ceil_div(to_unix_ms(t), iv) * iv);
  }
  std::optional<WallTime> wall = to_wall(t);
  if (!wall) return std::nullopt;
  return schedule.next_after(*wall - Nanos(1));
}

std::optional<SlotTime> slot_after(const Schedule& schedule, SlotTime slot) {
  if (schedule.is_interval()) return slot + schedule.interval();
  std::optional<WallTime> wall = to_wall(slot);
  if (!wall) return std::nullopt;
  return schedule.next_after(*wall);
}

// The window [start, start + window) with the slots from `first` on.
WindowPlan make_plan(const Schedule& schedule, SlotTime start, Millis window,
                     std::optional<SlotTime> first) {
  WindowPlan plan{start, start + window, {}};
  if (schedule.is_interval()) {
    plan.slots.reserve(static_cast<size_t>(window / schedule.interval() + 1));
  }
  for (std::optional<SlotTime> slot = first; slot && *slot < plan.end;
       slot = slot_after(schedule, *slot)) {
    plan.slots.push_back(*slot);
  }
  return plan;
}

}  // namespace

WindowPlan plan_window(const Schedule& schedule, Millis window, WallTime now) {
  return plan_window_at(schedule, window, containing_window_start(window, now) + window);
}

WindowPlan plan_current_window(const Schedule& schedule, Millis window, WallTime now) {
  return make_plan(schedule, containing_window_start(window, now), window,
                   schedule.next_after(now));
}

WindowPlan plan_window_at(const Schedule& schedule, Millis window, SlotTime start) {
  require_valid_window(window);
  return make_plan(schedule, start, window, first_slot_at_or_after(schedule, start));
}

}  // namespace metronome
