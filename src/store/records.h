// The records Metronome keeps: published values, executions with their slots' outcomes, dead-letter
// messages and alarm states. Plain values; every Store backend stores exactly these fields.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/ids.h"
#include "common/result.h"
#include "common/time.h"

namespace metronome {

// One source's answer behind a value: a median keeps the sources that answered.
struct SourceAnswer {
  std::string source;  // the source's name in the feed's config
  std::string value;   // exact decimal text, as that source returned it

  friend bool operator==(const SourceAnswer&, const SourceAnswer&) = default;
};

// A value published for one slot of one feed. (feed, slot) is unique in every store.
struct ValueRecord {
  FeedId feed;
  int64_t round = 0;  // slot_ms / interval_ms (cron feeds: slot_ms / 1000); see schedule/
  SlotTime slot;
  std::string value;  // exact decimal text, e.g. "537" or "-12.5"
  int decimals = 0;
  WallTime observed_at;
  WallTime published_at;  // when the record was handed to the store's durable commit
  ExecutionId execution;
  // Filled in by signing (empty until a feed is signed).
  std::string signer;     // 0x-prefixed address
  std::string signature;  // 0x-prefixed 65 bytes r||s||v
  std::string digest;     // 0x-prefixed 32 bytes
  // Batch signatures (sign/merkle.h): the Merkle proof that links digest to the root the
  // signature signs, "0x" + 32 bytes per level. Empty: the signature signs digest itself.
  std::string proof;
  // The sources that answered, for a median (empty for a single source). Not signed: the
  // signature covers the value; this says where it came from.
  std::vector<SourceAnswer> sources;

  friend bool operator==(const ValueRecord&, const ValueRecord&) = default;
};

enum class SlotOutcome {
  kPlanned,    // no outcome yet
  kPublished,  // a value is stored for the slot
  kFailed,     // retries did not succeed by the slot's deadline; see error and the DLQ
  kMissed,     // the slot's time passed while the daemon was not running
  kSkipped,    // the feed's previous slot was still being observed at the slot's time, or 4
               // earlier slots were still waiting for the store (ADR 0010)
};
std::string_view to_string(SlotOutcome o);
Result<SlotOutcome> parse_slot_outcome(std::string_view text);
inline std::string_view format_as(SlotOutcome o) {
  return to_string(o);
}

// One slot in an execution, with its outcome once it has one.
struct SlotRecord {
  SlotTime slot;
  SlotOutcome outcome = SlotOutcome::kPlanned;
  std::optional<WallTime> fired_at{};    // when the publish task started
  std::optional<int64_t> lateness_us{};  // fired_at - slot, in microseconds (never negative)
  std::string error{};                   // why it failed / was skipped, empty otherwise
  int attempts = 0;

  friend bool operator==(const SlotRecord&, const SlotRecord&) = default;
};

enum class ExecutionState {
  kPlanned,      // persisted, first slot not yet due
  kRunning,      // at least one slot is due or done
  kSucceeded,    // every slot published
  kFailed,       // every slot has an outcome, and some are not published
  kInterrupted,  // the daemon stopped (or crashed) before the window ended
};
std::string_view to_string(ExecutionState s);
Result<ExecutionState> parse_execution_state(std::string_view text);
inline std::string_view format_as(ExecutionState s) {
  return to_string(s);
}
inline bool is_final(ExecutionState s) {
  return s == ExecutionState::kSucceeded || s == ExecutionState::kFailed ||
         s == ExecutionState::kInterrupted;
}

// One run of a feed over one window: the replaced system's workflow execution.
struct Execution {
  ExecutionId id;  // "FEED@WINDOW_START", e.g. "random_int@2026-11-27T21:16:00Z"
  FeedId feed;
  SlotTime window_start;
  SlotTime window_end;  // exclusive
  ExecutionState state = ExecutionState::kPlanned;
  WallTime created_at;
  std::optional<WallTime> finished_at;
  std::vector<SlotRecord> slots;  // ascending by slot time

  friend bool operator==(const Execution&, const Execution&) = default;
};

// "random_int@2026-11-27T21:16:00Z"
ExecutionId make_execution_id(const FeedId& feed, SlotTime window_start);

// A message on the dead-letter queue: something that failed after its retries.
struct DlqMessage {
  int64_t id = 0;  // assigned by the store
  FeedId feed;
  std::optional<SlotTime> slot;  // absent for failures that are not about one slot
  ExecutionId execution;
  std::string stage;  // "publish", "plan", later "sink:dynamodb", ...
  std::string error;
  int attempts = 0;
  WallTime first_failure;
  WallTime last_failure;
  std::optional<ValueRecord> record;  // the record if one was produced; redrive delivers it

  friend bool operator==(const DlqMessage&, const DlqMessage&) = default;
};

enum class AlarmStatus { kOk, kAlarm };
std::string_view to_string(AlarmStatus s);
inline std::string_view format_as(AlarmStatus s) {
  return to_string(s);
}

// The persisted state of one alarm ("dlq_not_empty", "missed_slots").
struct AlarmState {
  std::string name;
  AlarmStatus status = AlarmStatus::kOk;
  WallTime since;                           // last transition
  std::string reason;                       // why it is in this state, e.g. "DLQ depth 3 >= 1"
  AlarmStatus previous = AlarmStatus::kOk;  // the state before the last transition
  bool actions_pending = false;             // the last transition's actions have not all run yet

  friend bool operator==(const AlarmState&, const AlarmState&) = default;
};

}  // namespace metronome
