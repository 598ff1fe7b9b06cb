#include "workflow/recovery.h"

namespace metronome {

std::vector<SlotTime> missed_slots(const Execution& execution, WallTime now) {
  std::vector<SlotTime> missed;
  for (const auto& s : execution.slots) {
    if (s.outcome == SlotOutcome::kPlanned && WallTime(s.slot) <= now) missed.push_back(s.slot);
  }
  return missed;
}

std::optional<WindowPlan> next_window(const Schedule& schedule, Millis window,
                                      SlotTime previous_end) {
  auto slot = schedule.next_after(WallTime(previous_end) - Nanos(1));
  if (!slot) return std::nullopt;
  int64_t w = window.count();
  int64_t start_ms = to_unix_ms(*slot) / w * w;
  if (to_unix_ms(*slot) < 0 && to_unix_ms(*slot) % w != 0) start_ms -= w;
  return plan_window_at(schedule, window, slot_from_unix_ms(start_ms));
}

std::vector<WindowPlan> gap_windows(const Schedule& schedule, Millis window, SlotTime from,
                                    SlotTime until, size_t max_slots) {
  std::vector<WindowPlan> gaps;
  size_t total = 0;
  SlotTime cursor = from;
  while (cursor < until) {
    auto plan = next_window(schedule, window, cursor);
    if (!plan || plan->end > until) break;
    if (total + plan->slots.size() > max_slots) break;
    total += plan->slots.size();
    cursor = plan->end;
    gaps.push_back(std::move(*plan));
  }
  return gaps;
}

ExecutionState final_state(const std::vector<SlotRecord>& slots) {
  for (const auto& s : slots) {
    if (s.outcome != SlotOutcome::kPublished) return ExecutionState::kFailed;
  }
  return ExecutionState::kSucceeded;
}

}  // namespace metronome
