#include "store/records.h"

#include <fmt/format.h>

namespace metronome {

std::string_view to_string(SlotOutcome o) {
  switch (o) {
    case SlotOutcome::kPlanned:
      return "planned";
    case SlotOutcome::kPublished:
      return "published";
    case SlotOutcome::kFailed:
      return "failed";
    case SlotOutcome::kMissed:
      return "missed";
    case SlotOutcome::kSkipped:
      return "skipped";
  }
  return "unknown";
}

Result<SlotOutcome> parse_slot_outcome(std::string_view text) {
  for (auto o : {SlotOutcome::kPlanned, SlotOutcome::kPublished, SlotOutcome::kFailed,
                 SlotOutcome::kMissed, SlotOutcome::kSkipped}) {
    if (to_string(o) == text) return o;
  }
  return Status::InvalidArgument(fmt::format("unknown slot outcome '{}'", text));
}

std::string_view to_string(ExecutionState s) {
  switch (s) {
    case ExecutionState::kPlanned:
      return "planned";
    case ExecutionState::kRunning:
      return "running";
    case ExecutionState::kSucceeded:
      return "succeeded";
    case ExecutionState::kFailed:
      return "failed";
    case ExecutionState::kInterrupted:
      return "interrupted";
  }
  return "unknown";
}

Result<ExecutionState> parse_execution_state(std::string_view text) {
  for (auto s : {ExecutionState::kPlanned, ExecutionState::kRunning, ExecutionState::kSucceeded,
                 ExecutionState::kFailed, ExecutionState::kInterrupted}) {
    if (to_string(s) == text) return s;
  }
  return Status::InvalidArgument(fmt::format("unknown execution state '{}'", text));
}

std::string_view to_string(AlarmStatus s) {
  return s == AlarmStatus::kOk ? "OK" : "ALARM";
}

ExecutionId make_execution_id(const FeedId& feed, SlotTime window_start) {
  // Whole-second windows read as the replaced system's ("...:16:00Z"); sub-second ones keep
  // their milliseconds so that ids stay unique.
  bool whole_second = to_unix_ms(window_start) % 1000 == 0;
  return ExecutionId(
      fmt::format("{}@{}", feed.str(),
                  whole_second ? format_iso_s(window_start) : format_iso_ms(window_start)));
}

}  // namespace metronome
