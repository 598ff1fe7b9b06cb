// StatusBoard: what the daemon is doing right now, kept in memory for the HTTP API.
//
// The slot path writes it (a worker after each slot: on_published(), on_outcome(); the timer
// thread: on_outcome() for skipped slots, on_clock_step()); the HTTP threads read it. Each piece
// of state is an immutable snapshot behind a std::atomic<std::shared_ptr<const T>>: a writer
// builds a new snapshot and swaps it in, a reader loads the pointer and reads the snapshot at
// leisure. Neither side takes a mutex, so an HTTP request never delays a slot. (libstdc++ guards
// the pointer swap itself with a lock bit held for a few instructions, never while a snapshot is
// being read.)
//
// Invariants:
//  - The set of feeds is the one given to set_feeds(); writers for other feeds are ignored.
//  - A feed's latest value and last outcome only move forward in slot time (compare-and-swap), so
//    a late writer for an older slot (a redrive, a worker finishing after the next slot was
//    recorded skipped) never hides a newer one.
//  - A clock step stays unresolved until a slot at or after the step is published.
//
// Thread-safety: every method may be called from any thread. REQUIRES: set_feeds() is called
// before the board is shared (later calls are safe but drop nothing: values of feeds that stay
// are carried over).
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/ids.h"
#include "common/time.h"
#include "config/config.h"
#include "schedule/schedule.h"
#include "store/records.h"

namespace metronome {

// A feed's configuration as the API shows it.
struct FeedSummary {
  FeedId id;
  Schedule schedule = Schedule::every(Millis(2000));  // for round <-> slot arithmetic
  std::string schedule_text;                          // "every 2s", "cron */2 * * * * *"
  Millis window{60'000};
  std::optional<Millis> deadline;  // absent: until the next slot
  std::string source;              // "random_int 0..1000"
  int decimals = 0;
};

// The summary of a configured feed; `source` describes its source (Source::describe()).
FeedSummary summarize_feed(const FeedConfig& feed, std::string source);

// The last slot outcome of a feed, and why it is not a timely publication when it is not.
struct SlotStatus {
  SlotRecord slot;
  std::string reason;  // empty when published; "slot 2026-…Z failed: …" otherwise
};

struct ClockStepStatus {
  bool unresolved = false;
  WallTime at;    // when the last step was noticed
  Nanos step{0};  // how far the wall clock moved against the monotonic clock
  uint64_t total = 0;
};

struct StoreStatus {
  bool reachable = true;
  std::string reason;  // why not, from the last failed write
};

// One feed as read by the API: its summary and the latest state, all immutable.
struct FeedSnapshot {
  std::shared_ptr<const FeedSummary> summary;
  std::shared_ptr<const ValueRecord> latest;    // null: nothing published since start
  std::shared_ptr<const SlotStatus> last_slot;  // null: no outcome since start
};

class StatusBoard {
 public:
  StatusBoard();
  StatusBoard(const StatusBoard&) = delete;
  StatusBoard& operator=(const StatusBoard&) = delete;

  // ---- writers (slot path, start-up) ----
  void set_feeds(std::vector<FeedSummary> feeds);
  // After a value is durably stored (by a slot or a redrive).
  void on_published(const ValueRecord& record);
  // After each slot outcome (published, failed, skipped, missed).
  void on_outcome(const FeedId& feed, const SlotRecord& slot);
  void on_clock_step(WallTime at, Nanos step);
  void set_store_reachable(bool reachable, std::string reason = {});

  // ---- readers (HTTP threads) ----
  bool has_feed(const FeedId& feed) const;
  std::optional<FeedSnapshot> feed(const FeedId& feed) const;
  std::vector<FeedSnapshot> feeds() const;  // in configuration order
  std::shared_ptr<const ValueRecord> latest(const FeedId& feed) const;
  std::shared_ptr<const ClockStepStatus> clock_step() const;
  std::shared_ptr<const StoreStatus> store_status() const;

 private:
  struct Cell {
    std::shared_ptr<const FeedSummary> summary;
    std::atomic<std::shared_ptr<const ValueRecord>> latest;
    std::atomic<std::shared_ptr<const SlotStatus>> last_slot;
  };
  struct Feeds {
    std::vector<std::shared_ptr<Cell>> cells;
    std::unordered_map<FeedId, std::shared_ptr<Cell>> by_id;
  };

  std::shared_ptr<Cell> cell(const FeedId& feed) const;
  static FeedSnapshot snapshot_of(const Cell& cell);

  std::atomic<std::shared_ptr<const Feeds>> feeds_;
  std::atomic<std::shared_ptr<const ClockStepStatus>> clock_step_;
  std::atomic<std::shared_ptr<const StoreStatus>> store_;
};

}  // namespace metronome
