// Window planning: the replaced system's first step ("compute the next minute and its 30
// timestamps"), as a pure function of the schedule and the time.
//
// Windows are aligned to multiples of their length since the Unix epoch: with window = 1m they are
// whole minutes. A window's slots are the schedule's slots in [start, end).
#pragma once

#include <vector>

#include "common/time.h"
#include "schedule/schedule.h"

namespace metronome {

struct WindowPlan {
  SlotTime start;               // "next_minute" in the replaced system
  SlotTime end;                 // exclusive: start + window
  std::vector<SlotTime> slots;  // ascending; may be empty for a sparse cron schedule

  friend bool operator==(const WindowPlan&, const WindowPlan&) = default;
};

// The window that starts at the first window boundary strictly after `now`, with all its slots.
// For every 2s / window 1m at 21:15:37.5 that is 21:16:00 with 21:16:00, 21:16:02 ... 21:16:58.
// REQUIRES: window >= 1ms.
WindowPlan plan_window(const Schedule& schedule, Millis window, WallTime now);

// The window containing `now`, with only its slots strictly after `now`: what the daemon runs
// when it starts (or resumes) mid-window instead of waiting for the next whole window.
WindowPlan plan_current_window(const Schedule& schedule, Millis window, WallTime now);

// The window that starts at `start` (which must be aligned), with all its slots.
WindowPlan plan_window_at(const Schedule& schedule, Millis window, SlotTime start);

}  // namespace metronome
