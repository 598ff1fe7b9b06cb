// PostgresStore: the Store on PostgreSQL (libpqxx), for running several replicas on one database.
//
// Same records, same contract and same schema as SqliteStore (the shared conformance suite runs
// against both): values, executions, slot outcomes, the DLQ and alarm states, with times as
// integers (slot times in Unix ms, wall times in Unix ns) so every record round-trips exactly.
// Text keys use the "C" collation, so ordering ties by feed or id sort as they do in SQLite.
//
// Schema versions: the metronome_schema table records every migration applied. open() never
// migrates: a database older (or newer) than this build is refused with a message that says to
// run `metronome migrate` (docs/adr/0004-postgres-schema-and-explicit-migrations.md). migrate()
// applies the missing steps, each in its own transaction under an advisory lock, so replicas and
// operators racing to migrate apply each step exactly once.
//
// Round trips: every write is one statement (commit_slots() passes the whole batch as arrays
// through one prepared statement: values insert, slot upserts and the per-commit "inserted"
// answer in one round trip, one implicit transaction); reads of executions with their slots are
// one statement too, so each is one consistent snapshot.
//
// Connections: a small pool (options.connections), each connection with its statements prepared
// once. A connection that breaks (server restart, network) is dropped and replaced on next use;
// idempotent operations are retried once on a fresh connection, so a restarted server costs one
// failed call at most. Errors name the database without its password:
// "store postgresql://metronome@db:5432/oracle: ...". Connection problems, deadlocks and
// timeouts are kUnavailable (retryable); a read-only session's write is kPermissionDenied.
//
// Thread-safety: all methods may be called concurrently (each takes a pooled connection).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "store/store.h"

namespace metronome {

struct PostgresStoreOptions {
  // "postgresql://USER@HOST:PORT/DATABASE?..." (or "postgres://"); libpq's URI syntax.
  std::string url{};
  // When not empty, the password (e.g. read from a secret); it overrides one in the URL.
  std::string password{};
  bool read_only = false;  // sessions are read-only (default_transaction_read_only)
  int connections = 4;     // pool size: operations that can run at once
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds statement_timeout{10000};
  std::string application_name{"metronome"};
};

// The libpq connection string for `options`: the URL with the password (when given apart), a
// connect timeout and the application name appended as query parameters, unless the URL sets
// them itself. Contains the password: never log it.
std::string postgres_conninfo(const PostgresStoreOptions& options);

struct SchemaMigration {
  int from = 0;  // the version found
  int to = 0;    // the version now (kSchemaVersion)
};

class PostgresStore final : public Store {
 public:
  // The schema version this build writes (and requires).
  static constexpr int kSchemaVersion = 4;

  // Connects and checks the schema version (refusing an unmigrated or newer database). Errors
  // name the database.
  static Result<std::unique_ptr<PostgresStore>> open(const PostgresStoreOptions& options);
  // Applies every migration the database lacks. Refuses a database newer than this build.
  static Result<SchemaMigration> migrate(const PostgresStoreOptions& options);
  // The URL without its password or query: "postgresql://metronome@db:5432/oracle".
  static std::string redact_url(const std::string& url);

  ~PostgresStore() override;

  Status create_execution(const Execution& execution) override;
  Result<std::optional<Execution>> get_execution(const ExecutionId& id) override;
  Result<std::vector<Execution>> list_executions(const ExecutionQuery& query) override;
  Result<std::vector<Execution>> unfinished_executions() override;
  Status set_execution_state(const ExecutionId& id, ExecutionState state,
                             std::optional<WallTime> finished_at) override;

  // Group commit: concurrent calls are written together, one statement (one round trip) for all
  // the calls queued while the previous group was written. Each caller gets its own answer.
  Result<std::vector<bool>> commit_slots(std::span<const SlotCommit> commits) override;
  // How many commit statements commit_slots() has sent (for tests and benchmarks).
  int64_t commit_statements() const;
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

 private:
  struct Impl;
  explicit PostgresStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace metronome
