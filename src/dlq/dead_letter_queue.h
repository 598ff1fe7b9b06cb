// DeadLetterQueue: what failed after its retries, kept durably until a person redrives or
// purges it.
//
// A message carries the failure (feed, slot, execution, stage, error, attempts, first and last
// failure) and, when one was produced, the record. redrive() re-delivers that exact record to the
// store (idempotently: a slot that already has a value keeps it) and never re-observes a past slot;
// a message without a record can only be purged (the slot stays failed in the history). A
// planning failure (stage "plan") is resolved by a redrive once the daemon has persisted the
// execution at a later slot. A failure after the store (stage "sink:<kind>", e.g. "sink:dynamodb")
// is redriven by the redriver registered for that stage (set_stage_redriver), which delivers the
// message's record to the sink again, not to the store; without one the message stays.
//
// Thread-safety: all methods may be called concurrently (the Store serialises).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "clock/clock.h"
#include "store/store.h"

namespace metronome {

struct RedriveSummary {
  int redriven = 0;                 // delivered (or found already delivered) and removed
  int not_redrivable = 0;           // no record: left on the queue, purge them
  int failed = 0;                   // delivery failed again: left on the queue
  std::vector<std::string> errors;  // one line per message not redriven
};

class DeadLetterQueue {
 public:
  DeadLetterQueue(Store& store, Clock& clock);

  // Appends a message; logs one warning line with its context. Returns its id.
  Result<int64_t> push(DlqMessage message);
  // Oldest first.
  Result<std::vector<DlqMessage>> list(int limit = 1000);
  Result<DlqMessage> get(int64_t id);  // NotFound naming the id
  // InvalidArgument when the message has no record; NotFound for an unknown id; the store's
  // error (the message stays) when delivery fails.
  Status redrive(int64_t id);
  RedriveSummary redrive_all();
  Status purge(int64_t id);
  Result<int> purge_all();
  Result<int64_t> depth();

  // Called after every successful change (push, redrive, purge), e.g. to re-evaluate alarms;
  // once per redrive_all()/purge_all() that changed anything. REQUIRES: set before the queue is
  // shared between threads.
  void set_on_change(std::function<void()> callback) { on_change_ = std::move(callback); }

  // Delivers the record of a message of `stage` (e.g. "sink:dynamodb") somewhere else than the
  // store; Ok means delivered (or found delivered already), and the message is then removed.
  // REQUIRES: set before the queue is shared between threads.
  using StageRedriver = std::function<Status(const DlqMessage& message)>;
  void set_stage_redriver(std::string stage, StageRedriver redriver) {
    stage_redrivers_[std::move(stage)] = std::move(redriver);
  }
  // Called after a redrive stored a record the store did not have yet (so the sinks, which only
  // see records as they are published, get it too). REQUIRES: set before the queue is shared.
  void set_on_record_stored(std::function<void(const ValueRecord&)> callback) {
    on_record_stored_ = std::move(callback);
  }

 private:
  // Delivers one message's record and removes it; no on_change_ call (callers batch it).
  Status redrive_plan(const DlqMessage& message);
  Status redrive_message(const DlqMessage& message);
  Status redrive_to_stage(const DlqMessage& message);

  Store& store_;
  Clock& clock_;
  std::function<void()> on_change_;
  std::map<std::string, StageRedriver, std::less<>> stage_redrivers_;
  std::function<void(const ValueRecord&)> on_record_stored_;
};

}  // namespace metronome
