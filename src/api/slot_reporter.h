// SlotReporter: the one call the slot path makes per slot outcome to keep the API's view current:
// it updates the StatusBoard (latest value, last outcome) and the Metrics (slot counter, fire
// lateness, publish latency) together, and tells the EventHub (when given) for the live
// dashboard, so the wiring is one line per hook.
//
// Thread-safety: as StatusBoard and Metrics: any thread, no lock taken for a configured feed
// (the EventHub takes its mutex for an O(1) push, and only while an event stream is open).
#pragma once

#include <optional>

#include "api/event_hub.h"
#include "api/metrics.h"
#include "api/status_board.h"

namespace metronome {

class SlotReporter {
 public:
  SlotReporter(StatusBoard& board, Metrics& metrics, EventHub* events = nullptr)
      : board_(board), metrics_(metrics), events_(events) {}

  // After a slot has its outcome. `record` is the value stored for the slot when it was
  // published; `committed_at` is when its durable commit returned (default: the record's
  // published_at, when it was handed to the commit).
  void on_slot(const FeedId& feed, const SlotRecord& slot, const ValueRecord* record = nullptr,
               std::optional<WallTime> committed_at = std::nullopt) {
    std::optional<Nanos> lateness;
    if (slot.fired_at) lateness = *slot.fired_at - WallTime(slot.slot);
    std::optional<Nanos> latency;
    if (record != nullptr && slot.outcome == SlotOutcome::kPublished) {
      latency = committed_at.value_or(record->published_at) - WallTime(slot.slot);
      board_.on_published(*record);
    }
    board_.on_outcome(feed, slot);
    metrics_.on_slot(feed, slot.outcome, lateness, latency);
    if (events_ != nullptr) {
      if (record != nullptr && slot.outcome == SlotOutcome::kPublished) events_->on_record(*record);
      events_->on_slot(feed, slot);
    }
  }

  // After a redrive stored a record (no slot outcome to count).
  void on_redriven(const ValueRecord& record) {
    board_.on_published(record);
    if (events_ != nullptr) events_->on_record(record);
  }

  // When the scheduler notices the wall clock was stepped.
  void on_clock_step(WallTime at, Nanos step) {
    board_.on_clock_step(at, step);
    metrics_.on_clock_step();
  }

  // After each store write: whether it worked, and why not.
  void on_store_write(const Status& status) {
    board_.set_store_reachable(status.ok(), status.ok() ? std::string() : status.ToString());
  }

 private:
  StatusBoard& board_;
  Metrics& metrics_;
  EventHub* events_;  // may be null
};

}  // namespace metronome
