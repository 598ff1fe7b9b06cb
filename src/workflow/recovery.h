// Recovery decisions after a stop or a crash, as pure functions of what the store holds and the
// time: which slots were missed, which windows passed with no execution at all, and what state a
// finished execution ends in. Gaps are recorded, never back-filled with invented values.
#pragma once

#include <vector>

#include "schedule/window.h"
#include "store/records.h"

namespace metronome {

// The planned (outcome-less) slots of `execution` whose time is not after `now`: they passed
// while the daemon was not running.
std::vector<SlotTime> missed_slots(const Execution& execution, WallTime now);

// The windows with at least one slot that lie entirely in [from, until): the windows nobody ran
// while the daemon was down. Stops after `max_slots` slots in total (returns what fits).
std::vector<WindowPlan> gap_windows(const Schedule& schedule, Millis window, SlotTime from,
                                    SlotTime until, size_t max_slots);

// The final state of an execution whose every slot has an outcome: succeeded if all published,
// failed otherwise. REQUIRES: no slot is kPlanned.
ExecutionState final_state(const std::vector<SlotRecord>& slots);

// The window that follows `previous_end`: the first window at or after it that has a slot.
// nullopt for a cron schedule that never fires again.
std::optional<WindowPlan> next_window(const Schedule& schedule, Millis window,
                                      SlotTime previous_end);

}  // namespace metronome
