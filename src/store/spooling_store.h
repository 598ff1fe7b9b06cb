// SpoolingStore: the daemon's PostgreSQL store keeps taking writes while the database is down.
//
// A decorator around another Store (the daemon's PostgresStore). A write that fails with
// kUnavailable (connection lost or refused, server shutting down, timeout: see PostgresStore) is
// appended to a local spool, a SQLite file (`<data_dir>/spool.db`, WAL, synchronous = FULL), and
// reported as done: the slot counts as published locally (commit_slots() answers "inserted" for
// every commit that carries a record). From then on every write goes to the spool, in the order it
// was made, until the spool is empty again, so nothing written later overtakes what is spooled
// (an execution's slots never reach PostgreSQL before the execution, a feed's slots stay in slot
// order). Spooled: create_execution, set_execution_state, commit_slots (one entry per slot) and
// dlq_push (answers id 0: the id is given when the message reaches PostgreSQL). Not spooled:
// reads, put_alarm_state, dlq_delete (they fail as the inner store fails).
//
// A drainer thread (start()) wakes every `drain_interval` on the injected Clock; while the spool
// is not empty it writes the entries to PostgreSQL oldest first, deleting each from the spool once
// written, and stops at the first kUnavailable (tried again at the next wake-up). Replay is
// idempotent and unfenced (docs/adr/0006-database-outage-spool.md):
//   - a slot whose value, or whose outcome (anything but `planned`), is already in PostgreSQL is
//     left alone: the spooled entry is dropped, counted and logged (with its value);
//   - otherwise the slot is committed with its fence removed: the lease it was produced under may
//     have expired during the outage, and the (feed, slot) primary key keeps exactly one value;
//   - an execution is created if absent (create_execution is insert-if-absent); a state change
//     for an execution PostgreSQL does not have is dropped and logged;
//   - an entry PostgreSQL refuses for another reason than unavailability is moved to the spool's
//     `rejected` table (never deleted) and logged at error level, so it cannot block the rest.
// A crash between writing an entry and deleting it replays it again at the next start: harmless
// for slots and executions (insert-if-absent), a second DLQ message at worst.
//
// A spool left by a crash is found by open(); drain_once() at start-up writes it before the
// daemon recovers or plans anything.
//
// Thread-safety: every Store method may be called from any thread (the spool file is used under
// one mutex; PostgreSQL calls are made outside it).
#pragma once

#include <atomic>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <stop_token>
#include <thread>

#include "clock/clock.h"
#include "store/store.h"

namespace metronome {

struct SpoolOptions {
  std::filesystem::path path;  // the spool file, created (with its folder) if missing
  Nanos drain_interval = std::chrono::milliseconds(500);
  int batch = 100;  // entries read from the spool at a time while draining
};

struct SpoolStats {
  int64_t depth = 0;            // entries waiting in the spool
  int64_t spooled = 0;          // entries appended since open
  int64_t replayed = 0;         // entries written to the database by the drainer
  int64_t already_present = 0;  // spooled slots dropped: the database had their value/outcome
  int64_t rejected = 0;         // entries the database refused (kept in the `rejected` table)
  bool outage = false;          // the last write to the database failed as unavailable
};

class SpoolingStore final : public Store {
 public:
  // Opens (or creates) the spool file; errors name it. Does not start the drainer.
  static Result<std::unique_ptr<SpoolingStore>> open(std::unique_ptr<Store> inner,
                                                     SpoolOptions options, Clock& clock);
  ~SpoolingStore() override;  // stops the drainer
  SpoolingStore(const SpoolingStore&) = delete;
  SpoolingStore& operator=(const SpoolingStore&) = delete;

  // Starts / stops the drainer thread. stop() waits for a drain in progress to reach the end of
  // its current entry.
  void start();
  void stop();

  // Writes what the spool holds now to the database, oldest first, until the spool is empty or
  // the database is unavailable. Returns the number of entries left (Unavailable errors are not
  // errors here: the entries stay). Errors only for a spool file that cannot be read or written.
  Result<int64_t> drain_once();

  SpoolStats stats() const;
  const std::filesystem::path& path() const;
  // Called (outside any lock) with the new depth after each change of it. REQUIRES: set before
  // the store is shared between threads.
  void set_on_depth(std::function<void(int64_t)> callback);

  Status create_execution(const Execution& execution) override;
  Result<std::optional<Execution>> get_execution(const ExecutionId& id) override;
  Result<std::vector<Execution>> list_executions(const ExecutionQuery& query) override;
  Result<std::vector<Execution>> unfinished_executions() override;
  Status set_execution_state(const ExecutionId& id, ExecutionState state,
                             std::optional<WallTime> finished_at) override;

  Result<std::vector<bool>> commit_slots(std::span<const SlotCommit> commits) override;
  Result<std::vector<ValueRecord>> list_values(const ValueQuery& query) override;
  Result<std::optional<ValueRecord>> get_value(const FeedId& feed, SlotTime slot) override;
  Result<std::optional<ValueRecord>> latest_value(const FeedId& feed) override;
  Result<int64_t> count_outcomes(SlotOutcome outcome, SlotTime since) override;

  Result<int64_t> dlq_push(const DlqMessage& message) override;
  Result<std::vector<DlqMessage>> dlq_list(int limit) override;
  Result<std::optional<DlqMessage>> dlq_get(int64_t id) override;
  Status dlq_delete(int64_t id) override;
  Result<int64_t> dlq_depth() override;

  Result<std::vector<AlarmState>> alarm_states() override;
  Result<std::optional<AlarmState>> alarm_state(const std::string& name) override;
  Status put_alarm_state(const AlarmState& state) override;

  Status ping() override;
  void run_deferred_work() override;

 private:
  struct Impl;
  explicit SpoolingStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace metronome
