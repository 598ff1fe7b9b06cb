// SqliteStore: the embedded default Store, on SQLite (WAL mode, synchronous=FULL so a commit is
// durable when it returns).
//
// Two files: `path` holds values, executions and slot outcomes; `dlq_path` holds the dead-letter
// queue and alarm states, so the DLQ stays writable when the values database cannot be written
// (docs/adr/0001-dlq-in-its-own-file.md). Each has a versioned schema (PRAGMA user_version) that
// open() migrates forward; a file from a newer Metronome is refused with its version.
//
// Thread-safety: all methods are safe to call concurrently (one connection per file, each behind
// its own mutex). Other processes may read (and the CLI may write the DLQ) at the same time; a
// busy database is waited for up to `busy_timeout`.
#pragma once

#include <filesystem>
#include <memory>

#include "store/store.h"

namespace metronome {

struct SqliteStoreOptions {
  std::filesystem::path path;      // values database
  std::filesystem::path dlq_path;  // DLQ + alarms database
  bool read_only = false;          // for CLI reading commands: never creates or migrates
  std::chrono::milliseconds busy_timeout{5000};
  // The WAL is checkpointed into the database file once it holds this many pages; the values
  // file's on a thread of its own, never in a commit (sqlite_store.cc, Checkpointer).
  int wal_checkpoint_pages = 16384;
  // The values connection's page cache, in KiB (PRAGMA cache_size = -N; SQLite's default is
  // 2,000). It fills with written pages over time, so it is sized by the work: see
  // sqlite_cache_kib_for().
  int64_t cache_kib = 2000;
  // The per-feed index is written in runs of about this many rows, each a write of its own
  // (sqlite_store.cc, IndexPass): 0.2–0.4 s of the writer at 100,000 feeds.
  int64_t index_run_rows = 131072;
};

// A values cache that holds one boundary's working set of `feeds` feeds (the unique index's
// pages that its records land in, and feed_latest's rows): 320 bytes a feed, at least SQLite's
// 2,000 KiB. At 100,000 feeds the default cache re-read those pages from the OS in every commit
// (docs/performance.md, "Session 15").
int64_t sqlite_cache_kib_for(size_t feeds);

class SqliteStore final : public Store {
 public:
  // Opens (creating parent folders and files unless read_only) and migrates both databases.
  // Errors name the file.
  static Result<std::unique_ptr<SqliteStore>> open(const SqliteStoreOptions& options);
  ~SqliteStore() override;

  // The schema version this build writes.
  static constexpr int kSchemaVersion = 6;

  Status create_execution(const Execution& execution) override;
  std::vector<Status> create_executions(std::span<const Execution> executions) override;
  Result<std::optional<Execution>> get_execution(const ExecutionId& id) override;
  Result<std::vector<Execution>> list_executions(const ExecutionQuery& query) override;
  Result<std::vector<Execution>> unfinished_executions() override;
  Status set_execution_state(const ExecutionId& id, ExecutionState state,
                             std::optional<WallTime> finished_at) override;
  std::vector<Status> set_execution_states(std::span<const ExecutionStateChange> changes) override;

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
  // Indexes the newest values by feed when enough are waiting (see the schema in the .cc).
  void run_deferred_work() override;

  // Indexes every value not yet in the per-feed index now (tests; `metronome` never needs it).
  Status index_values();
  // Checkpoints of the values file's WAL made by its checkpoint thread (tests).
  int64_t wal_checkpoints() const;

  // Online backup of both files (values, DLQ) into new files, each one consistent snapshot,
  // while the daemon keeps writing. AlreadyExists if an output file exists.
  Status backup(const std::filesystem::path& values_out, const std::filesystem::path& dlq_out);

 private:
  struct Impl;
  explicit SqliteStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Process-wide SQLite settings; main() calls it before anything opens SQLite. It turns off
// SQLite's allocation statistics (SQLITE_CONFIG_MEMSTATUS), which take one process-wide mutex on
// every allocation SQLite makes: about 2 per value row, on the commit thread, while the workers
// allocate too. Nothing here reads those statistics or sets a heap limit, which need them.
// Internal once SQLite has started (sqlite3_config must come first); SQLite then works as
// before.
Status configure_sqlite_process();

// Online backup of another SQLite file the daemon writes (<data_dir>/evm.db) into the new file
// `out`, the way SqliteStore::backup() copies its own: one consistent snapshot while the daemon
// keeps writing. NotFound if `db` does not exist; AlreadyExists if `out` does.
Status backup_sqlite_file(const std::filesystem::path& db, const std::filesystem::path& out);

}  // namespace metronome
