#include "store/sqlite_store.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <fmt/format.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <iterator>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>

#include "common/hex.h"
#include "store/group_commit.h"
#include "store/signature_batch.h"
#include "store/source_answers.h"

// Schema notes (both files use STRICT tables, so a wrong type is an error, not a silent cast):
// - Times are integers: slot times in Unix milliseconds (*_ms), wall times in Unix nanoseconds
//   (*_ns), so every record round-trips exactly.
// - slots has no foreign key to executions on purpose: commit_slots() may record an outcome for an
//   execution that was never created (or was pruned), and a redrive must never fail for that.
//   get_execution()/list_executions() only show slots of executions that exist.
// - The values table is named "values", a keyword, so it is always quoted.
// - PRAGMA application_id tells a values file from a DLQ file, so swapping the two paths in the
//   configuration is refused instead of silently opening the wrong schema.

namespace metronome {
namespace {

constexpr int64_t kMinInt = std::numeric_limits<int64_t>::min();
constexpr int64_t kMaxInt = std::numeric_limits<int64_t>::max();

// One step of a file's schema history. Steps are applied in order, each in its own transaction
// that also sets PRAGMA user_version to the step's version. Never edit a released step: append.
struct Migration {
  int version;
  const char* sql;
};

constexpr int kValuesApplicationId = 0x4D544E56;  // "MTNV"
constexpr int kDlqApplicationId = 0x4D544E44;     // "MTND"

constexpr Migration kValuesMigrations[] = {
    {1, R"sql(
CREATE TABLE "values" (
  feed TEXT NOT NULL,
  slot_ms INTEGER NOT NULL,
  round INTEGER NOT NULL,
  value TEXT NOT NULL,
  decimals INTEGER NOT NULL,
  observed_at_ns INTEGER NOT NULL,
  published_at_ns INTEGER NOT NULL,
  execution TEXT NOT NULL,
  signer TEXT NOT NULL,
  signature TEXT NOT NULL,
  digest TEXT NOT NULL,
  PRIMARY KEY (feed, slot_ms)
) WITHOUT ROWID, STRICT;
-- list_values() without a feed: newest first across feeds.
CREATE INDEX values_by_slot ON "values"(slot_ms);

CREATE TABLE executions (
  id TEXT PRIMARY KEY NOT NULL,
  feed TEXT NOT NULL,
  window_start_ms INTEGER NOT NULL,
  window_end_ms INTEGER NOT NULL,
  state TEXT NOT NULL,
  created_at_ns INTEGER NOT NULL,
  finished_at_ns INTEGER
) STRICT;
CREATE INDEX executions_by_window ON executions(window_start_ms);
CREATE INDEX executions_by_feed_window ON executions(feed, window_start_ms);
-- unfinished_executions() at start-up must not scan the whole history.
CREATE INDEX executions_unfinished ON executions(window_start_ms)
  WHERE state IN ('planned', 'running');

CREATE TABLE slots (
  execution TEXT NOT NULL,
  slot_ms INTEGER NOT NULL,
  feed TEXT NOT NULL,
  outcome TEXT NOT NULL,
  fired_at_ns INTEGER,
  lateness_us INTEGER,
  error TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  PRIMARY KEY (execution, slot_ms)
) STRICT;
CREATE INDEX slots_by_outcome ON slots(outcome, slot_ms);

PRAGMA application_id = 1297370710;
)sql"},
    // A median's sources that answered, as JSON text: [{"source":"a","value":"100.5"}, ...].
    {2, R"sql(
ALTER TABLE "values" ADD COLUMN sources TEXT NOT NULL DEFAULT '[]';
)sql"},
    // Time-clustered layout (docs/adr/0013-time-clustered-sqlite-layout.md): a boundary's
    // records are appended together instead of each landing in its feed's own B-tree page.
    // - value_log: values in commit order (rowid); UNIQUE (slot_ms, feed) is exactly-once.
    // - value_feed_index: (feed, slot_ms) -> row, written in bulk for the rows up to
    //   value_index_state.indexed_through_id; later rows (the tail) are found by scanning it.
    // - feed_latest: each feed's newest slot with a value (small: one row per feed).
    // - executions.plan: the planned slot times (JSON array of Unix ms). Slots without an
    //   outcome are no longer rows; slot_outcomes holds outcomes only, in commit order.
    {3, R"sql(
CREATE TABLE value_log (
  id INTEGER PRIMARY KEY,
  feed TEXT NOT NULL,
  slot_ms INTEGER NOT NULL,
  round INTEGER NOT NULL,
  value TEXT NOT NULL,
  decimals INTEGER NOT NULL,
  observed_at_ns INTEGER NOT NULL,
  published_at_ns INTEGER NOT NULL,
  execution TEXT NOT NULL,
  signer TEXT NOT NULL,
  signature TEXT NOT NULL,
  digest TEXT NOT NULL,
  sources TEXT NOT NULL DEFAULT '[]'
) STRICT;
CREATE UNIQUE INDEX value_log_by_slot ON value_log(slot_ms, feed);
CREATE TABLE value_feed_index (
  feed TEXT NOT NULL,
  slot_ms INTEGER NOT NULL,
  id INTEGER NOT NULL,
  PRIMARY KEY (feed, slot_ms)
) WITHOUT ROWID, STRICT;
CREATE TABLE value_index_state (
  one INTEGER PRIMARY KEY CHECK (one = 1),
  indexed_through_id INTEGER NOT NULL
) STRICT;
CREATE TABLE feed_latest (
  feed TEXT PRIMARY KEY NOT NULL,
  slot_ms INTEGER NOT NULL
) WITHOUT ROWID, STRICT;
INSERT INTO value_log(feed, slot_ms, round, value, decimals, observed_at_ns, published_at_ns,
                      execution, signer, signature, digest, sources)
  SELECT feed, slot_ms, round, value, decimals, observed_at_ns, published_at_ns, execution,
         signer, signature, digest, sources
  FROM "values" ORDER BY slot_ms, feed;
INSERT INTO value_feed_index(feed, slot_ms, id) SELECT feed, slot_ms, id FROM value_log;
INSERT INTO value_index_state(one, indexed_through_id)
  VALUES (1, (SELECT coalesce(max(id), 0) FROM value_log));
INSERT INTO feed_latest(feed, slot_ms) SELECT feed, max(slot_ms) FROM value_log GROUP BY feed;
DROP TABLE "values";

ALTER TABLE executions ADD COLUMN plan TEXT NOT NULL DEFAULT '[]';
UPDATE executions SET plan = (
  SELECT coalesce(json_group_array(slot_ms), '[]')
  FROM (SELECT slot_ms FROM slots WHERE slots.execution = executions.id ORDER BY slot_ms));
CREATE TABLE slot_outcomes (
  id INTEGER PRIMARY KEY,
  execution TEXT NOT NULL,
  slot_ms INTEGER NOT NULL,
  feed TEXT NOT NULL,
  outcome TEXT NOT NULL,
  fired_at_ns INTEGER,
  lateness_us INTEGER,
  error TEXT NOT NULL,
  attempts INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX slot_outcomes_by_slot ON slot_outcomes(slot_ms, execution);
CREATE INDEX slot_outcomes_by_outcome ON slot_outcomes(outcome, slot_ms);
INSERT INTO slot_outcomes(execution, slot_ms, feed, outcome, fired_at_ns, lateness_us, error,
                          attempts)
  SELECT execution, slot_ms, feed, outcome, fired_at_ns, lateness_us, error, attempts
  FROM slots WHERE outcome <> 'planned' ORDER BY slot_ms, execution;
DROP TABLE slots;
)sql"},
    // A published slot's outcome is its value row: value_log gains the outcome's columns, and
    // slot_outcomes keeps the other outcomes only (and "published" for an execution whose value
    // row was written by another). One row and two index entries fewer per published slot: the
    // writer's cost per record at 10,000 feeds went from ~7.4 to ~5 us (docs/performance.md).
    {4, R"sql(
ALTER TABLE value_log ADD COLUMN fired_at_ns INTEGER;
ALTER TABLE value_log ADD COLUMN lateness_us INTEGER;
ALTER TABLE value_log ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1;
-- The outcome's note, e.g. "redriven from DLQ message 7; ...".
ALTER TABLE value_log ADD COLUMN slot_error TEXT NOT NULL DEFAULT '';
-- Driven by value_log, one lookup in slot_outcomes_by_slot per value (UPDATE ... FROM let the
-- planner scan every value of a slot for each outcome: minutes for 300,000 values).
UPDATE value_log SET (fired_at_ns, lateness_us, attempts, slot_error) = (
    SELECT o.fired_at_ns, o.lateness_us, o.attempts, o.error FROM slot_outcomes AS o
    WHERE o.slot_ms = value_log.slot_ms AND o.execution = value_log.execution
      AND o.outcome = 'published')
  WHERE EXISTS (
    SELECT 1 FROM slot_outcomes AS o
    WHERE o.slot_ms = value_log.slot_ms AND o.execution = value_log.execution
      AND o.outcome = 'published');
DELETE FROM slot_outcomes WHERE EXISTS (
  SELECT 1 FROM value_log AS v WHERE v.slot_ms = slot_outcomes.slot_ms
    AND v.feed = slot_outcomes.feed AND v.execution = slot_outcomes.execution);
)sql"},
    // feed_latest is brought up to date when the writer is idle, not in every commit (ADR 0017):
    // it covers value_log's rows through latest_through_id, and latest_value() also reads the
    // rows after. Until now it was updated in every commit, so it covers every row.
    {5, R"sql(
ALTER TABLE value_index_state ADD COLUMN latest_through_id INTEGER NOT NULL DEFAULT 0;
UPDATE value_index_state SET latest_through_id = (SELECT coalesce(max(id), 0) FROM value_log);
)sql"},
    // Batch signatures (ADR 0018).
    // - proof: the Merkle proof from the row's digest to the root its signature signs. ''
    //   (every row until now): the signature signs the digest itself.
    // - signature_batches: one row per batch, its signature and every node of its tree
    //   (store/signature_batch.h). A row of a batch written by the daemon keeps only batch_root
    //   and batch_leaf; its signature, digest and proof columns are '' and are read back from
    //   the batch. At 100,000 feeds the texts made each row ~2.5 times larger, and the single
    //   writer was the bottleneck (docs/performance.md, "Session 15").
    {6, R"sql(
ALTER TABLE value_log ADD COLUMN proof TEXT NOT NULL DEFAULT '';
ALTER TABLE value_log ADD COLUMN batch_root BLOB;
ALTER TABLE value_log ADD COLUMN batch_leaf INTEGER;
CREATE TABLE signature_batches (
  root BLOB PRIMARY KEY NOT NULL,
  signature TEXT NOT NULL,
  leaves INTEGER NOT NULL,
  nodes BLOB NOT NULL
) WITHOUT ROWID, STRICT;
)sql"},
};

constexpr Migration kDlqMigrations[] = {
    {1, R"sql(
CREATE TABLE dlq (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  feed TEXT NOT NULL,
  slot_ms INTEGER,
  execution TEXT NOT NULL,
  stage TEXT NOT NULL,
  error TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  first_failure_ns INTEGER NOT NULL,
  last_failure_ns INTEGER NOT NULL,
  record_json TEXT
) STRICT;

CREATE TABLE alarms (
  name TEXT PRIMARY KEY NOT NULL,
  status TEXT NOT NULL,
  since_ns INTEGER NOT NULL,
  reason TEXT NOT NULL,
  previous TEXT NOT NULL DEFAULT 'OK',
  actions_pending INTEGER NOT NULL DEFAULT 0
) STRICT;

PRAGMA application_id = 1297370692;
)sql"},
    // No table change: a DLQ record (record_json) may now carry "sources". The version moves with
    // the values file's, so an older build refuses both files alike.
    {2, R"sql(
-- schema version 2
)sql"},
    // No table change: the version moves with the values file's.
    {3, R"sql(
-- schema version 3
)sql"},
    // No table change: the version moves with the values file's.
    {4, R"sql(
-- schema version 4
)sql"},
    // No table change: the version moves with the values file's.
    {5, R"sql(
-- schema version 5
)sql"},
    // No table change: a DLQ record (record_json) may now carry "proof"; the version moves with
    // the values file's.
    {6, R"sql(
-- schema version 6
)sql"},
};

static_assert(kValuesApplicationId == 1297370710 && kDlqApplicationId == 1297370692,
              "the application ids in the migrations must match the constants");
static_assert(std::size(kValuesMigrations) > 0 &&
                  kValuesMigrations[std::size(kValuesMigrations) - 1].version ==
                      SqliteStore::kSchemaVersion,
              "the last values migration must be kSchemaVersion");
static_assert(std::size(kDlqMigrations) > 0 &&
                  kDlqMigrations[std::size(kDlqMigrations) - 1].version ==
                      SqliteStore::kSchemaVersion,
              "the last DLQ migration must be kSchemaVersion");

// ---- SQL of the cached statements ----

// The value row is also the slot's outcome ("published"): see schema step 4.
constexpr const char* kInsertValue = R"sql(
INSERT INTO value_log(feed, slot_ms, round, value, decimals, observed_at_ns, published_at_ns,
                      execution, signer, signature, digest, sources, fired_at_ns, lateness_us,
                      attempts, slot_error, proof, batch_root, batch_leaf)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)
ON CONFLICT (slot_ms, feed) DO NOTHING)sql";
// A batch's signature and tree, once (its records may be written by more than one commit).
constexpr const char* kInsertSignatureBatch = R"sql(
INSERT INTO signature_batches(root, signature, leaves, nodes) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (root) DO NOTHING)sql";

// feed_latest brought up to date with the rows after its watermark (?1): one upsert per feed, in
// feed order. Run when the writer is idle (run_deferred_work), not in each commit: in each
// commit it took ~23 % of a batch's time at 10,000 feeds (bench/group_commit; ADR 0017).
constexpr const char* kCatchUpFeedLatest = R"sql(
INSERT INTO feed_latest(feed, slot_ms)
SELECT feed, max(slot_ms) FROM value_log WHERE id > ?1 GROUP BY feed
ON CONFLICT (feed) DO UPDATE SET slot_ms = excluded.slot_ms
WHERE excluded.slot_ms > feed_latest.slot_ms)sql";
constexpr const char* kLatestWatermark =
    "SELECT latest_through_id FROM value_index_state WHERE one = 1";
constexpr const char* kSetLatestWatermark =
    "UPDATE value_index_state SET latest_through_id = ?1 WHERE one = 1";

// The slot's value row was just written, so it is the outcome: an earlier outcome (failed,
// skipped) goes.
constexpr const char* kDeleteOutcome =
    "DELETE FROM slot_outcomes WHERE slot_ms = ?1 AND execution = ?2";
// Whether any outcome row lies in a batch's range of slots: usually none (nothing was skipped or
// failed), and then no published slot of the batch has an outcome row to delete.
constexpr const char* kAnyOutcomeBetween =
    "SELECT 1 FROM slot_outcomes WHERE slot_ms BETWEEN ?1 AND ?2 LIMIT 1";

// A published slot is final: a later commit for the same slot (a retry whose first attempt did
// land, a second replica) must not turn it back into failed, since the value exists. Its value
// row says so when this execution wrote it (nothing is written), its outcome row otherwise.
// (The SELECT's WHERE also keeps SQLite from reading ON CONFLICT as a join constraint.)
#define METRONOME_NO_VALUE_OF_THIS_EXECUTION                                           \
  "NOT EXISTS (SELECT 1 FROM value_log AS v WHERE v.slot_ms = ?2 AND v.feed = ?3 AND " \
  "v.execution = ?1)"
constexpr const char* kUpsertSlot =
    "INSERT INTO slot_outcomes(execution, slot_ms, feed, outcome, fired_at_ns, lateness_us,"
    " error, attempts)"
    " SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8 WHERE " METRONOME_NO_VALUE_OF_THIS_EXECUTION
    " ON CONFLICT (slot_ms, execution) DO UPDATE SET"
    " feed = excluded.feed, outcome = excluded.outcome, fired_at_ns = excluded.fired_at_ns,"
    " lateness_us = excluded.lateness_us, error = excluded.error, attempts = excluded.attempts"
    " WHERE slot_outcomes.outcome <> 'published'";

// An execution created with outcomes already (recovery): they are kept as they were given,
// unless the slot's value row (of this execution) already says it was published.
constexpr const char* kInsertCreatedSlot =
    "INSERT INTO slot_outcomes(execution, slot_ms, feed, outcome, fired_at_ns, lateness_us,"
    " error, attempts)"
    " SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8 WHERE " METRONOME_NO_VALUE_OF_THIS_EXECUTION
    " ON CONFLICT (slot_ms, execution) DO NOTHING";

constexpr const char* kInsertExecution = R"sql(
INSERT INTO executions(id, feed, window_start_ms, window_end_ms, state, created_at_ns,
                       finished_at_ns, plan)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
ON CONFLICT (id) DO NOTHING)sql";

#define METRONOME_EXECUTION_COLUMNS \
  "id, feed, window_start_ms, window_end_ms, state, created_at_ns, finished_at_ns, plan"

constexpr const char* kGetExecution =
    "SELECT " METRONOME_EXECUTION_COLUMNS " FROM executions WHERE id = ?1";
constexpr const char* kListExecutions = "SELECT " METRONOME_EXECUTION_COLUMNS
                                        " FROM executions WHERE window_start_ms < ?1"
                                        " ORDER BY window_start_ms DESC, id ASC LIMIT ?2";
constexpr const char* kListExecutionsOfFeed =
    "SELECT " METRONOME_EXECUTION_COLUMNS
    " FROM executions WHERE feed = ?1 AND window_start_ms < ?2"
    " ORDER BY window_start_ms DESC, id ASC LIMIT ?3";
constexpr const char* kUnfinishedExecutions =
    "SELECT " METRONOME_EXECUTION_COLUMNS
    " FROM executions WHERE state IN ('planned', 'running') ORDER BY window_start_ms ASC, id ASC";
// A slot's outcome: its value row if this execution wrote one, else its outcome row.
constexpr const char* kOutcomeOfSlot =
    "SELECT 'published', fired_at_ns, lateness_us, slot_error, attempts, 0 AS pick FROM value_log"
    " WHERE slot_ms = ?1 AND feed = ?3 AND execution = ?2"
    " UNION ALL"
    " SELECT outcome, fired_at_ns, lateness_us, error, attempts, 1 AS pick FROM slot_outcomes"
    " WHERE slot_ms = ?1 AND execution = ?2"
    " ORDER BY pick LIMIT 1";
constexpr const char* kSetExecutionState =
    "UPDATE executions SET state = ?1, finished_at_ns = ?2 WHERE id = ?3";

// A value row and, for a batch-signed row, its batch (read_value() rebuilds its texts).
#define METRONOME_VALUE_COLUMNS                                                                   \
  "v.feed, v.slot_ms, v.round, v.value, v.decimals, v.observed_at_ns, v.published_at_ns, "        \
  "v.execution, v.signer, v.signature, v.digest, v.sources, v.proof, v.batch_leaf, b.signature, " \
  "b.leaves, b.nodes"
#define METRONOME_VALUE_FROM \
  " FROM value_log AS v LEFT JOIN signature_batches AS b ON b.root = v.batch_root"

constexpr const char* kListValues = "SELECT " METRONOME_VALUE_COLUMNS METRONOME_VALUE_FROM
                                    " WHERE v.slot_ms >= ?1 AND v.slot_ms < ?2"
                                    " ORDER BY v.slot_ms DESC, v.feed ASC LIMIT ?3";
// A feed's values, newest first, in two parts: the rows value_feed_index has (up to its
// watermark), and the tail after the watermark (?5), which is scanned: it holds at most about
// a minute of commits (see kIndexEvery). The caller merges the two.
constexpr const char* kListValuesOfFeedIndexed =
    "SELECT " METRONOME_VALUE_COLUMNS METRONOME_VALUE_FROM
    " WHERE v.id IN ("
    " SELECT id FROM value_feed_index WHERE feed = ?1 AND slot_ms >= ?2 AND slot_ms < ?3"
    " ORDER BY slot_ms DESC LIMIT ?4)"
    " ORDER BY v.slot_ms DESC";
constexpr const char* kListValuesOfFeedTail =
    "SELECT " METRONOME_VALUE_COLUMNS METRONOME_VALUE_FROM
    " WHERE v.id > ?4 AND v.feed = ?1 AND v.slot_ms >= ?2 AND v.slot_ms < ?3"
    " ORDER BY v.slot_ms DESC LIMIT ?5";
constexpr const char* kGetValue =
    "SELECT " METRONOME_VALUE_COLUMNS METRONOME_VALUE_FROM " WHERE v.slot_ms = ?2 AND v.feed = ?1";
// The newer of feed_latest's slot and the newest among the rows feed_latest does not cover yet
// (after its watermark: at most a few batches, found by rowid).
constexpr const char* kLatestValue =
    "SELECT " METRONOME_VALUE_COLUMNS METRONOME_VALUE_FROM
    " WHERE v.slot_ms = (SELECT max(slot_ms) FROM ("
    " SELECT slot_ms FROM feed_latest WHERE feed = ?1"
    " UNION ALL"
    " SELECT slot_ms FROM value_log WHERE feed = ?1 AND id > ("
    " SELECT latest_through_id FROM value_index_state WHERE one = 1)))"
    " AND v.feed = ?1";
constexpr const char* kCountOutcomes =
    "SELECT count(*) FROM slot_outcomes WHERE outcome = ?1 AND slot_ms >= ?2";
// Published slots: value rows, plus outcome rows of executions whose value another wrote.
constexpr const char* kCountPublished =
    "SELECT (SELECT count(*) FROM value_log WHERE slot_ms >= ?1) + (SELECT count(*)"
    " FROM slot_outcomes WHERE outcome = 'published' AND slot_ms >= ?1)";
// Planned slots are not rows: those of a plan with neither an outcome row nor a value row.
constexpr const char* kCountPlanned =
    "SELECT count(*) FROM executions, json_each(executions.plan) AS p"
    " WHERE executions.window_end_ms > ?1 AND p.value >= ?1 AND NOT EXISTS ("
    " SELECT 1 FROM slot_outcomes o WHERE o.slot_ms = p.value AND o.execution = executions.id)"
    " AND NOT EXISTS (SELECT 1 FROM value_log v WHERE v.slot_ms = p.value"
    " AND v.feed = executions.feed AND v.execution = executions.id)";
constexpr const char* kIndexWatermark =
    "SELECT indexed_through_id FROM value_index_state WHERE one = 1";
constexpr const char* kLastValueId = "SELECT coalesce(max(id), 0) FROM value_log";
// Sorted by feed, so that each feed's index page is written once for all its new rows. OR
// IGNORE: a pass that stopped half-way (IndexPass) may have written some of them.
constexpr const char* kIndexTail =
    "INSERT OR IGNORE INTO value_feed_index(feed, slot_ms, id)"
    " SELECT feed, slot_ms, id FROM value_log WHERE id > ?1 AND id <= ?2 ORDER BY feed, slot_ms";
// One run of an IndexPass, for one slot time: the rows of feeds [?2, ?3) (or [?2, ...) found
// by a seek in value_log_by_slot (slot_ms, feed).
constexpr const char* kIndexRun =
    "INSERT OR IGNORE INTO value_feed_index(feed, slot_ms, id)"
    " SELECT feed, slot_ms, id FROM value_log INDEXED BY value_log_by_slot"
    " WHERE slot_ms = ?1 AND feed >= ?2 AND feed < ?3 AND id > ?4 AND id <= ?5";
constexpr const char* kIndexLastRun =
    "INSERT OR IGNORE INTO value_feed_index(feed, slot_ms, id)"
    " SELECT feed, slot_ms, id FROM value_log INDEXED BY value_log_by_slot"
    " WHERE slot_ms = ?1 AND feed >= ?2 AND id > ?4 AND id <= ?5";
// Where a run of ?2 feeds from ?1 ends (feed_latest lists the feeds; one that it does not list
// yet still falls in some run, since the runs cover every feed id).
constexpr const char* kIndexRunEnd =
    "SELECT feed FROM feed_latest WHERE feed >= ?1 ORDER BY feed LIMIT 1 OFFSET ?2";
// The slot times of the rows after the watermark, once at open (later, commits note theirs).
constexpr const char* kTailSlots = "SELECT DISTINCT slot_ms FROM value_log WHERE id > ?1";
constexpr const char* kSetIndexWatermark =
    "UPDATE value_index_state SET indexed_through_id = ?1 WHERE one = 1";

#define METRONOME_DLQ_COLUMNS                                                                 \
  "id, feed, slot_ms, execution, stage, error, attempts, first_failure_ns, last_failure_ns, " \
  "record_json"

constexpr const char* kDlqPush = R"sql(
INSERT INTO dlq(feed, slot_ms, execution, stage, error, attempts, first_failure_ns,
                last_failure_ns, record_json)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9))sql";
constexpr const char* kDlqList =
    "SELECT " METRONOME_DLQ_COLUMNS " FROM dlq ORDER BY id ASC LIMIT ?1";
constexpr const char* kDlqGet = "SELECT " METRONOME_DLQ_COLUMNS " FROM dlq WHERE id = ?1";
constexpr const char* kDlqDelete = "DELETE FROM dlq WHERE id = ?1";
constexpr const char* kDlqDepth = "SELECT count(*) FROM dlq";

constexpr const char* kAlarmStates =
    "SELECT name, status, since_ns, reason, previous, actions_pending FROM alarms "
    "ORDER BY name ASC";
constexpr const char* kAlarmState =
    "SELECT name, status, since_ns, reason, previous, actions_pending FROM alarms "
    "WHERE name = ?1";
constexpr const char* kPutAlarmState = R"sql(
INSERT INTO alarms(name, status, since_ns, reason, previous, actions_pending)
VALUES (?1, ?2, ?3, ?4, ?5, ?6)
ON CONFLICT (name) DO UPDATE SET
  status = excluded.status, since_ns = excluded.since_ns, reason = excluded.reason,
  previous = excluded.previous, actions_pending = excluded.actions_pending)sql";

// Reads the header page, so it proves the file answers (SELECT 1 would not touch it).
constexpr const char* kPing = "PRAGMA user_version";

// ---- conversions ----

int64_t to_ns(WallTime t) {
  return t.time_since_epoch().count();
}
WallTime wall_from_ns(int64_t ns) {
  return WallTime(Nanos(ns));
}

// A row this build cannot read (an unknown enum text, a malformed record): the file was written
// by something else. Thrown inside the adapter only; becomes Status::Internal.
class UnreadableRow : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <typename T>
T value_or_throw(Result<T> result) {
  if (!result.ok()) throw UnreadableRow(result.status().message());
  return std::move(result).value();
}

AlarmStatus parse_alarm_status(const std::string& text) {
  if (text == to_string(AlarmStatus::kOk)) return AlarmStatus::kOk;
  if (text == to_string(AlarmStatus::kAlarm)) return AlarmStatus::kAlarm;
  throw UnreadableRow(fmt::format("unknown alarm status '{}'", text));
}

nlohmann::json record_to_json(const ValueRecord& r) {
  return nlohmann::json{
      {"feed", r.feed.str()},
      {"round", r.round},
      {"slot_ms", to_unix_ms(r.slot)},
      {"value", r.value},
      {"decimals", r.decimals},
      {"observed_at_ns", to_ns(r.observed_at)},
      {"published_at_ns", to_ns(r.published_at)},
      {"execution", r.execution.str()},
      {"signer", r.signer},
      {"signature", r.signature},
      {"digest", r.digest},
      {"sources", nlohmann::json::parse(source_answers_to_json(r.sources))},
      {"proof", r.proof},
  };
}

ValueRecord record_from_json(const std::string& text) {
  try {
    nlohmann::json j = nlohmann::json::parse(text);
    ValueRecord r;
    r.feed = FeedId(j.at("feed").get<std::string>());
    r.round = j.at("round").get<int64_t>();
    r.slot = slot_from_unix_ms(j.at("slot_ms").get<int64_t>());
    r.value = j.at("value").get<std::string>();
    r.decimals = j.at("decimals").get<int>();
    r.observed_at = wall_from_ns(j.at("observed_at_ns").get<int64_t>());
    r.published_at = wall_from_ns(j.at("published_at_ns").get<int64_t>());
    r.execution = ExecutionId(j.at("execution").get<std::string>());
    r.signer = j.at("signer").get<std::string>();
    r.signature = j.at("signature").get<std::string>();
    r.digest = j.at("digest").get<std::string>();
    if (j.contains("sources")) {
      r.sources = value_or_throw(source_answers_from_json(j.at("sources").dump()));
    }
    if (j.contains("proof")) r.proof = j.at("proof").get<std::string>();
    return r;
  } catch (const nlohmann::json::exception& e) {
    throw UnreadableRow(fmt::format("unreadable DLQ record: {}", e.what()));
  }
}

void bind_optional(SQLite::Statement& s, int index, const std::optional<int64_t>& v) {
  if (v) {
    s.bind(index, *v);
  } else {
    s.bind(index);
  }
}

std::optional<int64_t> optional_int64(const SQLite::Column& c) {
  if (c.isNull()) return std::nullopt;
  return c.getInt64();
}

// Reads a row of METRONOME_VALUE_COLUMNS.
ValueRecord read_value(const SQLite::Statement& s) {
  ValueRecord r;
  r.feed = FeedId(s.getColumn(0).getString());
  r.slot = slot_from_unix_ms(s.getColumn(1).getInt64());
  r.round = s.getColumn(2).getInt64();
  r.value = s.getColumn(3).getString();
  r.decimals = s.getColumn(4).getInt();
  r.observed_at = wall_from_ns(s.getColumn(5).getInt64());
  r.published_at = wall_from_ns(s.getColumn(6).getInt64());
  r.execution = ExecutionId(s.getColumn(7).getString());
  r.signer = s.getColumn(8).getString();
  r.signature = s.getColumn(9).getString();
  r.digest = s.getColumn(10).getString();
  r.sources = value_or_throw(source_answers_from_json(s.getColumn(11).getString()));
  r.proof = s.getColumn(12).getString();
  if (!s.getColumn(14).isNull()) {
    // A batch-signed row: its signature, digest (its leaf) and proof come from its batch.
    const int64_t leaf = s.getColumn(13).getInt64();
    const int64_t leaves = s.getColumn(15).getInt64();
    const SQLite::Column nodes = s.getColumn(16);
    if (leaves < 1 || leaf < 0 || leaf >= leaves ||
        static_cast<size_t>(nodes.getBytes()) !=
            merkle_node_count(static_cast<size_t>(leaves)) * sizeof(MerkleNode)) {
      throw UnreadableRow(fmt::format("value {} at {}: its signature batch is malformed",
                                      r.feed.str(), to_unix_ms(r.slot)));
    }
    std::vector<MerkleNode> tree(static_cast<size_t>(nodes.getBytes()) / sizeof(MerkleNode));
    std::memcpy(tree.data(), nodes.getBlob(), static_cast<size_t>(nodes.getBytes()));
    r.signature = s.getColumn(14).getString();
    r.digest = to_hex_0x(tree[static_cast<size_t>(leaf)]);
    merkle_proof_hex(tree, static_cast<size_t>(leaves), static_cast<size_t>(leaf), r.proof);
  }
  return r;
}

// Reads a row of METRONOME_EXECUTION_COLUMNS (without its slots).
Execution read_execution(const SQLite::Statement& s) {
  Execution e;
  e.id = ExecutionId(s.getColumn(0).getString());
  e.feed = FeedId(s.getColumn(1).getString());
  e.window_start = slot_from_unix_ms(s.getColumn(2).getInt64());
  e.window_end = slot_from_unix_ms(s.getColumn(3).getInt64());
  e.state = value_or_throw(parse_execution_state(s.getColumn(4).getString()));
  e.created_at = wall_from_ns(s.getColumn(5).getInt64());
  if (auto ns = optional_int64(s.getColumn(6))) e.finished_at = wall_from_ns(*ns);
  // The planned slots; load_slots() fills in their outcomes.
  try {
    for (const auto& ms : nlohmann::json::parse(s.getColumn(7).getString())) {
      e.slots.push_back(SlotRecord{.slot = slot_from_unix_ms(ms.get<int64_t>())});
    }
  } catch (const nlohmann::json::exception& ex) {
    throw UnreadableRow(fmt::format("execution {}: unreadable plan: {}", e.id.str(), ex.what()));
  }
  return e;
}

// executions.plan: the slot times, ascending, as a JSON array of Unix ms.
std::string plan_json(const Execution& e) {
  std::vector<int64_t> ms;
  ms.reserve(e.slots.size());
  for (const SlotRecord& s : e.slots) ms.push_back(to_unix_ms(s.slot));
  std::sort(ms.begin(), ms.end());
  ms.erase(std::unique(ms.begin(), ms.end()), ms.end());
  return nlohmann::json(ms).dump();
}

// Reads a row of METRONOME_DLQ_COLUMNS.
DlqMessage read_dlq(const SQLite::Statement& s) {
  DlqMessage m;
  m.id = s.getColumn(0).getInt64();
  m.feed = FeedId(s.getColumn(1).getString());
  if (auto ms = optional_int64(s.getColumn(2))) m.slot = slot_from_unix_ms(*ms);
  m.execution = ExecutionId(s.getColumn(3).getString());
  m.stage = s.getColumn(4).getString();
  m.error = s.getColumn(5).getString();
  m.attempts = s.getColumn(6).getInt();
  m.first_failure = wall_from_ns(s.getColumn(7).getInt64());
  m.last_failure = wall_from_ns(s.getColumn(8).getInt64());
  if (!s.getColumn(9).isNull()) m.record = record_from_json(s.getColumn(9).getString());
  return m;
}

AlarmState read_alarm(const SQLite::Statement& s) {
  AlarmState a;
  a.name = s.getColumn(0).getString();
  a.status = parse_alarm_status(s.getColumn(1).getString());
  a.since = wall_from_ns(s.getColumn(2).getInt64());
  a.reason = s.getColumn(3).getString();
  a.previous = parse_alarm_status(s.getColumn(4).getString());
  a.actions_pending = s.getColumn(5).getInt() != 0;
  return a;
}

// Maps an exception thrown inside the adapter to a Status naming the file. Busy and I/O
// conditions are retryable; everything else needs a person or is a bug.
Status to_status(const std::filesystem::path& path, const std::exception& e) {
  std::string message = fmt::format("store {}: {}", path.string(), e.what());
  if (const auto* se = dynamic_cast<const SQLite::Exception*>(&e)) {
    switch (se->getErrorCode() & 0xff) {
      case SQLITE_BUSY:
      case SQLITE_LOCKED:
        return Status::Unavailable(std::move(message));
      case SQLITE_IOERR:
      case SQLITE_FULL:
      case SQLITE_READONLY:
      case SQLITE_CANTOPEN:
      case SQLITE_PROTOCOL:
        return Status::IOError(std::move(message));
      case SQLITE_PERM:
      case SQLITE_AUTH:
        return Status::PermissionDenied(std::move(message));
      default:  // CONSTRAINT, MISUSE, NOTADB, CORRUPT, SCHEMA, ...: retrying will not help
        return Status::Internal(std::move(message));
    }
  }
  return Status::Internal(std::move(message));
}

// The group commit's per-operation savepoint statements (keys of the statement cache).
constexpr const char* kSavepoint = "SAVEPOINT op";
constexpr const char* kRollbackTo = "ROLLBACK TO op";
constexpr const char* kRelease = "RELEASE op";

// One SQLite connection with its cached prepared statements.
//
// Group commit (write()): with synchronous=FULL every transaction waits for an fsync (≈ 4 ms on
// the dev machine's disk), which caps one-transaction-per-write at ≈ 350 writes/s — far below a
// boundary of thousands of feeds. Writers therefore go through a GroupCommitQueue
// (store/group_commit.h): the leader runs everything queued as one transaction with one SAVEPOINT
// per operation (a failing operation is rolled back alone and gets its own error), then one fsync
// for all. (bench/group_commit: 340 records/s at one per transaction, 32,000/s at 100.)
//
// Thread-safety: callers hold mu() for the whole of an operation (statement use included); the
// connection is never used by two threads at once, which is what SQLiteCpp requires. The write
// queue has its own mutex, never held while waiting for mu_ or for the disk.
class Connection {
 public:
  Connection(std::filesystem::path path, std::unique_ptr<SQLite::Database> db)
      : path_(std::move(path)), db_(std::move(db)) {}

  const std::filesystem::path& path() const { return path_; }
  SQLite::Database& db() { return *db_; }

  // Runs f() under the connection's mutex, turning every exception into a Status.
  template <typename F>
  auto run(F&& f) -> decltype(f()) {
    std::lock_guard lock(mu_);
    try {
      return f();
    } catch (const std::exception& e) {
      return to_status(path_, e);
    } catch (...) {
      return Status::Internal(fmt::format("store {}: unknown exception", path_.string()));
    }
  }

  // Runs `op` (statements on db(), without a transaction of its own) durably, grouped with the
  // operations other threads queued meanwhile into one transaction (see the class comment).
  // Returns op's status; when op fails or throws, its own changes are rolled back and the group's
  // are kept; when the group's commit fails, every operation of the group gets that error.
  Status write(const std::function<Status()>& op) {
    return writes_.submit(op,
                          [this](const std::vector<const Op*>& group) { return run_group(group); });
  }

  // A cached statement for `sql`, ready to bind; reset again (ending its implicit read
  // transaction, which would otherwise pin the WAL) when the returned handle goes away.
  // REQUIRES: inside run(). `sql` is one of the static strings above (the cache is keyed by it).
  class Use {
   public:
    explicit Use(SQLite::Statement& s) : s_(s) {}
    Use(const Use&) = delete;
    Use& operator=(const Use&) = delete;
    ~Use() { s_.tryReset(); }
    SQLite::Statement& operator*() { return s_; }
    SQLite::Statement* operator->() { return &s_; }

   private:
    SQLite::Statement& s_;
  };
  Use statement(const char* sql) {
    auto& slot = statements_[sql];
    if (!slot) slot = std::make_unique<SQLite::Statement>(*db_, sql);
    slot->tryReset();
    slot->clearBindings();
    return Use(*slot);
  }

 private:
  using Op = std::function<Status()>;

  // One transaction for the whole group: a SAVEPOINT per operation, one commit.
  std::vector<Status> run_group(const std::vector<const Op*>& group) {
    std::vector<Status> results(group.size(), Status::Ok());
    Status committed = run([&]() -> Status {
      SQLite::Transaction txn(*db_, SQLite::TransactionBehavior::IMMEDIATE);
      for (size_t i = 0; i < group.size(); ++i) {
        // Prepared once (statement() caches them): parsing three statements per record was a
        // visible share of the CPU at a 10,000-feed boundary.
        statement(kSavepoint)->exec();
        try {
          results[i] = (*group[i])();
        } catch (const std::exception& e) {
          results[i] = to_status(path_, e);
        }
        if (!results[i].ok()) statement(kRollbackTo)->exec();
        statement(kRelease)->exec();
      }
      txn.commit();
      return Status::Ok();
    });
    if (!committed.ok()) std::fill(results.begin(), results.end(), committed);
    return results;
  }

  GroupCommitQueue<Op, Status> writes_;

  std::mutex mu_;
  const std::filesystem::path path_;
  std::unique_ptr<SQLite::Database> db_;
  // Declared after db_ so that statements are finalized before the connection closes.
  std::unordered_map<const char*, std::unique_ptr<SQLite::Statement>> statements_;
};

// Opens (and unless read-only, configures and migrates) one database file.
Result<std::unique_ptr<Connection>> open_connection(const std::filesystem::path& path,
                                                    std::string_view kind, int application_id,
                                                    std::span<const Migration> migrations,
                                                    const SqliteStoreOptions& options) {
  if (path.empty()) {
    return Status::InvalidArgument(
        fmt::format("store: no path configured for the {} database", kind));
  }
  std::error_code ec;
  if (options.read_only) {
    if (!std::filesystem::exists(path, ec)) {
      return Status::NotFound(fmt::format("no database at {}; has the daemon run?", path.string()));
    }
  } else if (path.has_parent_path()) {
    std::filesystem::create_directories(path.parent_path(), ec);
    if (ec) {
      return Status::IOError(fmt::format("store {}: cannot create folder {}: {}", path.string(),
                                         path.parent_path().string(), ec.message()));
    }
  }

  try {
    // NOMUTEX: the connection's own mutex (Connection::run) already keeps it to one thread at a
    // time, so SQLite's per-call mutex on it is a second lock per statement call.
    const int flags =
        SQLite::OPEN_NOMUTEX | (options.read_only ? SQLite::OPEN_READONLY
                                                  : (SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE));
    auto db = std::make_unique<SQLite::Database>(path.string(), flags,
                                                 static_cast<int>(options.busy_timeout.count()));
    // Reading user_version first also proves the file is a database ("file is not a database").
    int version = db->execAndGet("PRAGMA user_version").getInt();
    int app_id = db->execAndGet("PRAGMA application_id").getInt();
    if (app_id != application_id && !(app_id == 0 && version == 0)) {
      return Status::InvalidArgument(fmt::format(
          "store {}: not a Metronome {} database (application_id {:#x}, expected {:#x})",
          path.string(), kind, app_id, application_id));
    }
    const int latest = migrations.back().version;
    if (version > latest) {
      return Status::InvalidArgument(
          fmt::format("store {}: schema version {} is newer than this build's version {}; "
                      "upgrade Metronome or use another file",
                      path.string(), version, latest));
    }
    db->exec("PRAGMA foreign_keys = ON");
    if (options.read_only) {
      if (version < latest) {
        return Status::InvalidArgument(
            fmt::format("store {}: schema version {} is older than this build's version {}; "
                        "start the daemon once to migrate it",
                        path.string(), version, latest));
      }
      return std::make_unique<Connection>(path, std::move(db));
    }

    const bool writable = sqlite3_db_readonly(db->getHandle(), "main") == 0;
    if (!writable) {
      // SQLite falls back to read-only when the file cannot be opened for writing. Keep going so
      // that the other file (the DLQ) still works; every write here will fail with a clear error.
      spdlog::warn("store {}: the {} database is not writable; opened read-only", path.string(),
                   kind);
    } else {
      std::string mode = db->execAndGet("PRAGMA journal_mode = WAL").getString();
      if (mode != "wal") {
        return Status::IOError(
            fmt::format("store {}: cannot switch to WAL mode (mode is '{}')", path.string(), mode));
      }
    }
    // FULL: a commit is durable (the WAL is synced) when it returns.
    db->exec("PRAGMA synchronous = FULL");
    if (application_id == kValuesApplicationId) {
      db->exec(fmt::format("PRAGMA cache_size = -{}", options.cache_kib));
    }
    // Checkpoint every options.wal_checkpoint_pages WAL pages (default 16,384: 64 MiB at 4 KiB)
    // instead of SQLite's 1,000: at a 10,000-feed boundary the committing writer ran a checkpoint
    // (copy into the file + fsync) after every few groups, re-copying the same hot index pages
    // each time; bench/scale spent ~10% less CPU with the larger interval. The values file's
    // checkpoints run on a thread of their own (Checkpointer, which replaces this setting).
    // journal_size_limit truncates the WAL file back to that size after a checkpoint, so a burst
    // does not leave a large file behind.
    db->exec(fmt::format("PRAGMA wal_autocheckpoint = {}", options.wal_checkpoint_pages));
    db->exec(fmt::format("PRAGMA journal_size_limit = {}",
                         int64_t{options.wal_checkpoint_pages} * 4096));

    for (const Migration& m : migrations) {
      if (m.version <= version) continue;
      // IMMEDIATE takes the write lock before reading the version again, so two processes
      // opening a new file at once apply each step exactly once.
      SQLite::Transaction txn(*db, SQLite::TransactionBehavior::IMMEDIATE);
      version = db->execAndGet("PRAGMA user_version").getInt();
      if (m.version <= version) continue;
      db->exec(m.sql);
      db->exec(fmt::format("PRAGMA user_version = {}", m.version));
      txn.commit();
      version = m.version;
      spdlog::info("store {}: migrated the {} database to schema version {}", path.string(), kind,
                   m.version);
    }
    return std::make_unique<Connection>(path, std::move(db));
  } catch (const std::exception& e) {
    return to_status(path, e);
  }
}

// Checkpoints a database's WAL from a connection and a thread of its own ("metronome-ckpt"),
// so that the writer never copies the WAL into the database file itself.
//
// Why: SQLite's automatic checkpoint runs inside the commit that crosses its threshold. At
// 10,000 feeds that was one commit every ~30 s taking 40-90 ms instead of ~5, and the boundary
// behind it had the run's worst publish latencies (docs/performance.md, "Session 9"). A PASSIVE
// checkpoint from another connection takes no write lock: it copies what no reader still needs
// while the writer goes on appending, and the writer restarts the WAL at its next commit once
// everything was copied. The writer's WAL hook (called after each commit with the WAL's size)
// only wakes this thread. If the thread falls four thresholds behind (readers holding old
// snapshots, a slow disk), the writer checkpoints itself, as SQLite would have: the WAL stays
// bounded.
class Checkpointer {
 public:
  // Registers the WAL hook on `writer` (which replaces SQLite's automatic checkpoint) and opens
  // its own connection to `path`. REQUIRES: `writer` outlives this, and no other thread uses it
  // while start() runs.
  static Result<std::unique_ptr<Checkpointer>> start(const std::filesystem::path& path,
                                                     SQLite::Database& writer, int pages,
                                                     std::chrono::milliseconds busy_timeout) {
    try {
      // Only the checkpoint thread uses it: no per-call mutex (NOMUTEX).
      auto own = std::make_unique<SQLite::Database>(path.string(),
                                                    SQLite::OPEN_READWRITE | SQLite::OPEN_NOMUTEX,
                                                    static_cast<int>(busy_timeout.count()));
      // The checkpoint syncs the database file before the WAL may be restarted.
      own->exec("PRAGMA synchronous = FULL");
      // It copies pages from the WAL to the file and reads nothing back: no page cache (the
      // default daemon's RSS target is 15 MB).
      own->exec("PRAGMA cache_size = 8");
      std::unique_ptr<Checkpointer> c(new Checkpointer(path, writer, std::move(own), pages));
      sqlite3_wal_hook(writer.getHandle(), &Checkpointer::on_commit, c.get());
      c->thread_ = std::jthread([self = c.get()](std::stop_token stop) { self->run(stop); });
      return c;
    } catch (const std::exception& e) {
      return Status::IOError(fmt::format("store {}: cannot open a connection for checkpoints: {}",
                                         path.string(), e.what()));
    }
  }

  ~Checkpointer() {
    sqlite3_wal_hook(writer_.getHandle(), nullptr, nullptr);
    thread_.request_stop();
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  // Checkpoints completed by the thread (for tests).
  int64_t done() const {
    std::lock_guard lock(mu_);
    return done_;
  }

 private:
  Checkpointer(std::filesystem::path path, SQLite::Database& writer,
               std::unique_ptr<SQLite::Database> own, int pages)
      : path_(std::move(path)), writer_(writer), own_(std::move(own)), pages_(pages) {}

  // SQLite's WAL hook: on the writer's thread, after each commit, with the WAL's size in pages.
  static int on_commit(void* arg, sqlite3* db, const char* name, int wal_pages) {
    auto* self = static_cast<Checkpointer*>(arg);
    if (wal_pages >= 4 * self->pages_) {
      (void)sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    } else if (wal_pages >= self->pages_) {
      {
        std::lock_guard lock(self->mu_);
        self->wanted_ = true;
      }
      self->cv_.notify_one();
    }
    return SQLITE_OK;
  }

  void run(std::stop_token stop) {
    pthread_setname_np(pthread_self(), "metronome-ckpt");
    for (;;) {
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, stop, [&] { return wanted_; });
        if (stop.stop_requested()) return;
        wanted_ = false;
      }
      int wal_pages = 0;
      int copied = 0;
      const int rc = sqlite3_wal_checkpoint_v2(own_->getHandle(), nullptr,
                                               SQLITE_CHECKPOINT_PASSIVE, &wal_pages, &copied);
      if (rc == SQLITE_OK) {
        std::lock_guard lock(mu_);
        ++done_;
      } else if (rc != SQLITE_BUSY) {  // busy: another checkpoint runs; the next commit asks again
        spdlog::warn("store {}: WAL checkpoint failed: {}", path_.string(),
                     sqlite3_errmsg(own_->getHandle()));
      }
    }
  }

  const std::filesystem::path path_;
  SQLite::Database& writer_;
  std::unique_ptr<SQLite::Database> own_;
  const int pages_;
  mutable std::mutex mu_;
  std::condition_variable_any cv_;
  bool wanted_ = false;  // guarded by mu_
  int64_t done_ = 0;     // guarded by mu_
  std::jthread thread_;  // last: joined before the members above go
};

}  // namespace

struct SqliteStore::Impl {
  std::unique_ptr<Connection> values;  // values, executions, slot outcomes
  std::unique_ptr<Connection> dlq;     // dlq, alarms
  // Declared after `values`: unhooked and stopped before that connection closes.
  std::unique_ptr<Checkpointer> checkpointer;

  // REQUIRES: inside values->run(). Fills in the outcomes of e's planned slots.
  void load_slots(Execution& e) {
    for (SlotRecord& slot : e.slots) {
      auto s = values->statement(kOutcomeOfSlot);
      s->bind(1, to_unix_ms(slot.slot));
      s->bind(2, e.id.str());
      s->bind(3, e.feed.str());
      if (!s->executeStep()) continue;  // planned
      slot.outcome = value_or_throw(parse_slot_outcome(s->getColumn(0).getString()));
      if (auto ns = optional_int64(s->getColumn(1))) slot.fired_at = wall_from_ns(*ns);
      slot.lateness_us = optional_int64(s->getColumn(2));
      slot.error = s->getColumn(3).getString();
      slot.attempts = s->getColumn(4).getInt();
    }
  }

  // The rows of value_log after value_feed_index's watermark (kept in memory; the database's
  // value_index_state is the truth). Indexed in bulk once there are enough of them.
  std::mutex tail_mu;
  int64_t tail_rows = 0;   // guarded by tail_mu
  int64_t feed_count = 0;  // guarded by tail_mu: rows of feed_latest when last counted
  bool indexing = false;   // guarded by tail_mu
  // The rows of value_log after feed_latest's watermark (in memory, like tail_rows; the
  // database's latest_through_id is the truth). guarded by tail_mu.
  int64_t latest_pending = 0;

  // How many rows feed_latest may lag before run_deferred_work() brings it up to date: a
  // boundary's worth (a row per feed), so that the batches of a boundary leave it alone and one
  // write follows them (latest_value() finds the newer rows by rowid meanwhile).
  int64_t latest_catch_up_rows() const { return std::max<int64_t>(64, feed_count); }
  // A commit brings feed_latest up to date itself past this many rows: a writer that is never
  // idle (more feeds than the machine can take) must not leave latest_value() ever more to read.
  int64_t latest_backstop_rows() const { return 4 * std::max<int64_t>(4096, feed_count); }

  // REQUIRES: inside values->write(). Brings feed_latest up to date with every row of value_log.
  void catch_up_feed_latest() {
    int64_t from = 0;
    {
      auto s = values->statement(kLatestWatermark);
      if (s->executeStep()) from = s->getColumn(0).getInt64();
    }
    const int64_t to = last_value_id();
    if (to <= from) return;
    {
      auto s = values->statement(kCatchUpFeedLatest);
      s->bind(1, from);
      s->exec();
    }
    auto s = values->statement(kSetLatestWatermark);
    s->bind(1, to);
    s->exec();
  }
  // feed_latest brought up to date in a write of its own, when it lags latest_catch_up_rows()
  // or more; a warning when that fails (latest_value() stays right, and the next call retries).
  void catch_up_latest_or_warn() {
    int64_t pending = 0;
    {
      std::lock_guard lock(tail_mu);
      if (latest_pending < latest_catch_up_rows()) return;
      pending = latest_pending;
    }
    int64_t feeds = 0;
    Status st = values->write([&]() -> Status {
      catch_up_feed_latest();
      feeds = count_feeds();
      return Status::Ok();
    });
    if (!st.ok()) {
      spdlog::warn("store {}: could not update the feeds' latest slots: {}",
                   values->path().string(), st);
      return;
    }
    std::lock_guard lock(tail_mu);
    latest_pending = std::max<int64_t>(0, latest_pending - pending);
    feed_count = feeds;
  }

  // How many unindexed rows are worth one bulk indexing: about 32 per feed, so that each
  // feed's index page is written once for 32 of its rows rather than once per row.
  int64_t index_threshold() const { return std::max<int64_t>(4096, 32 * feed_count); }

  // A pass of the per-feed index over the rows after its watermark, a run of neighbouring feeds
  // at a time, each run in a short write of its own, so that no commit waits long behind it. In
  // one write, the pass at 100,000 feeds held the writer for 2.5 s, then 4.9 s, then 6.4 s, as
  // the index grew (docs/performance.md, "Session 16"). A run finds its rows with one seek in
  // value_log_by_slot per slot time of the pass. The watermark moves at the pass's last run, so
  // until then a feed's rows may be both in the index and in the tail (list_values() drops the
  // repeats), and a pass cut short (an error, a restart) is simply done again.
  struct IndexPass {
    bool active = false;
    int64_t from = 0;            // the watermark when the pass began
    int64_t to = 0;              // its last row
    std::vector<int64_t> slots;  // the slot times of its rows (a superset)
    std::string next_feed;       // where its next run begins ("": the first feed)
  };
  IndexPass pass;  // used only by the caller that set `indexing`
  // Rows committed since the last run. A run waits for a boundary's worth (a row per feed, as
  // feed_latest does), so that the runs fall in the gaps after the boundaries rather than in the
  // moments a boundary's queue runs empty. guarded by tail_mu.
  int64_t rows_since_run = 0;
  // Runs of about this many rows (options.index_run_rows).
  int64_t index_run_rows = 131072;
  // The slot times of the rows after the pass's (a superset: a rolled-back commit leaves its
  // own). Noted inside the write that inserts the rows, so the write that begins a pass takes
  // every slot time of the rows before it. guarded by tail_mu.
  std::set<int64_t> tail_slots;
  // Set when the slot times are too many to be worth a seek each (too_many_slots): then they are
  // no longer noted, and the next pass is one write, as before runs. guarded by tail_mu.
  bool tail_slots_overflow = false;
  // REQUIRES: tail_mu. Whether tail_slots, for `rows` rows, is past what runs are for: more than
  // 4,096 slot times, or more than 64 with fewer than 4 rows each (a few feeds, or schedules off a
  // common beat). One feed's daemon keeps at most 65 of them.
  bool too_many_slots(int64_t rows) const {
    const auto n = static_cast<int64_t>(tail_slots.size());
    return n > 4096 || (n > 64 && 4 * n > rows);
  }

  // Indexes the tail when it is large enough: the next run of a pass, or all of it (`force`).
  // Returns its own write's status.
  Status index_tail(bool force);
  // REQUIRES: inside values->write(), `indexing`. The next run of `pass` (beginning it first).
  // Returns whether the pass is done (the watermark moved).
  bool index_run();
  // REQUIRES: inside values->write(), `indexing`. Every row after the watermark, in one write.
  void index_all();
  // index_tail(false), with a warning when it fails: the values stay readable (from the tail)
  // and the next call tries again.
  void index_tail_or_warn() {
    if (Status st = index_tail(false); !st.ok()) {
      spdlog::warn("store {}: could not index the newest values: {}", values->path().string(), st);
    }
  }

  // REQUIRES: inside values->run() or write(). The last value_log row in value_feed_index.
  int64_t index_watermark() {
    auto s = values->statement(kIndexWatermark);
    return s->executeStep() ? s->getColumn(0).getInt64() : 0;
  }
  // REQUIRES: inside values->run() or write(). The last row of value_log (0: none).
  int64_t last_value_id() {
    auto s = values->statement(kLastValueId);
    s->executeStep();
    return s->getColumn(0).getInt64();
  }
  // REQUIRES: inside values->run() or write(). Feeds with at least one value.
  int64_t count_feeds() {
    return values->db().execAndGet("SELECT count(*) FROM feed_latest").getInt64();
  }

  // REQUIRES: inside values->run(). Runs `s` (already bound) and loads each execution's slots,
  // all within one read transaction so that the result is one consistent snapshot.
  std::vector<Execution> read_executions(Connection::Use& s) {
    std::vector<Execution> out;
    while (s->executeStep()) out.push_back(read_execution(*s));
    s->tryReset();
    for (Execution& e : out) load_slots(e);
    return out;
  }

  static void bind_slot(SQLite::Statement& s, const ExecutionId& execution, const FeedId& feed,
                        const SlotRecord& slot) {
    s.bind(1, execution.str());
    s.bind(2, to_unix_ms(slot.slot));
    s.bind(3, feed.str());
    s.bind(4, std::string(to_string(slot.outcome)));
    bind_optional(s, 5,
                  slot.fired_at ? std::optional<int64_t>(to_ns(*slot.fired_at)) : std::nullopt);
    bind_optional(s, 6, slot.lateness_us);
    s.bind(7, slot.error);
    s.bind(8, slot.attempts);
  }
};

SqliteStore::SqliteStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqliteStore::~SqliteStore() = default;

int64_t sqlite_cache_kib_for(size_t feeds) {
  return std::max<int64_t>(2000, static_cast<int64_t>(feeds) * 320 / 1024);
}

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const SqliteStoreOptions& options) {
  if (!options.path.empty() && options.path == options.dlq_path) {
    return Status::InvalidArgument(fmt::format(
        "store {}: the values and DLQ databases must be different files", options.path.string()));
  }
  auto impl = std::make_unique<Impl>();
  METRONOME_ASSIGN_OR_RETURN(
      impl->values,
      open_connection(options.path, "values", kValuesApplicationId, kValuesMigrations, options));
  METRONOME_ASSIGN_OR_RETURN(impl->dlq, open_connection(options.dlq_path, "DLQ", kDlqApplicationId,
                                                        kDlqMigrations, options));
  SQLite::Database& writer = impl->values->db();
  if (!options.read_only && sqlite3_db_readonly(writer.getHandle(), "main") == 0) {
    METRONOME_ASSIGN_OR_RETURN(
        impl->checkpointer, Checkpointer::start(options.path, writer, options.wal_checkpoint_pages,
                                                options.busy_timeout));
  }
  Connection& c = *impl->values;
  Status counted = c.run([&]() -> Status {
    const int64_t watermark = impl->index_watermark();
    int64_t latest_watermark = 0;
    {
      auto s = c.statement(kLatestWatermark);
      if (s->executeStep()) latest_watermark = s->getColumn(0).getInt64();
    }
    const int64_t last = impl->last_value_id();
    impl->tail_rows = last - watermark;
    impl->latest_pending = last - latest_watermark;
    impl->feed_count = impl->count_feeds();
    impl->rows_since_run = impl->tail_rows;  // they count for the first run
    if (impl->tail_rows > 0) {
      auto slots = c.statement(kTailSlots);
      slots->bind(1, watermark);
      while (slots->executeStep() && !impl->tail_slots_overflow) {
        impl->tail_slots.insert(slots->getColumn(0).getInt64());
        impl->tail_slots_overflow = impl->too_many_slots(impl->tail_rows);
      }
      if (impl->tail_slots_overflow) impl->tail_slots.clear();
    }
    return Status::Ok();
  });
  impl->index_run_rows = std::max<int64_t>(1, options.index_run_rows);
  METRONOME_RETURN_IF_ERROR(counted);
  return std::unique_ptr<SqliteStore>(new SqliteStore(std::move(impl)));
}

// ---- executions ----

Status SqliteStore::create_execution(const Execution& execution) {
  return create_executions(std::span(&execution, 1)).front();
}

std::vector<Status> SqliteStore::create_executions(std::span<const Execution> executions) {
  std::vector<Status> out(executions.size(), Status::Ok());
  bool any = false;
  for (size_t i = 0; i < executions.size(); ++i) {
    if (executions[i].id.empty() || executions[i].feed.empty()) {
      out[i] = Status::InvalidArgument("create_execution: an execution needs an id and a feed");
    } else {
      any = true;
    }
  }
  if (!any) return out;
  Connection& c = *impl_->values;
  Status written = c.write([&]() -> Status {
    for (size_t i = 0; i < executions.size(); ++i) {
      if (!out[i].ok()) continue;
      const Execution& execution = executions[i];
      int inserted;
      {
        auto s = c.statement(kInsertExecution);
        s->bind(1, execution.id.str());
        s->bind(2, execution.feed.str());
        s->bind(3, to_unix_ms(execution.window_start));
        s->bind(4, to_unix_ms(execution.window_end));
        s->bind(5, std::string(to_string(execution.state)));
        s->bind(6, to_ns(execution.created_at));
        bind_optional(*s, 7,
                      execution.finished_at ? std::optional<int64_t>(to_ns(*execution.finished_at))
                                            : std::nullopt);
        s->bind(8, plan_json(execution));
        inserted = s->exec();
      }
      // An existing execution is left exactly as it is (its slots may have outcomes by now).
      if (inserted == 0) continue;
      for (const SlotRecord& slot : execution.slots) {
        if (slot.outcome == SlotOutcome::kPlanned) continue;  // the plan says it
        auto s = c.statement(kInsertCreatedSlot);
        Impl::bind_slot(*s, execution.id, execution.feed, slot);
        s->exec();
      }
    }
    return Status::Ok();
  });
  if (!written.ok()) {
    for (Status& st : out) {
      if (st.ok()) st = written;
    }
  }
  return out;
}

Result<std::optional<Execution>> SqliteStore::get_execution(const ExecutionId& id) {
  Connection& c = *impl_->values;
  return c.run([&]() -> Result<std::optional<Execution>> {
    SQLite::Transaction txn(c.db());  // one snapshot for the execution and its slots
    auto s = c.statement(kGetExecution);
    s->bind(1, id.str());
    std::vector<Execution> found = impl_->read_executions(s);
    txn.commit();
    if (found.empty()) return std::optional<Execution>();
    return std::optional<Execution>(std::move(found.front()));
  });
}

Result<std::vector<Execution>> SqliteStore::list_executions(const ExecutionQuery& query) {
  if (query.limit <= 0) {
    return Status::InvalidArgument(
        fmt::format("list_executions: limit must be positive, not {}", query.limit));
  }
  Connection& c = *impl_->values;
  return c.run([&]() -> Result<std::vector<Execution>> {
    const int64_t before = query.before ? to_unix_ms(*query.before) : kMaxInt;
    SQLite::Transaction txn(c.db());
    auto s = c.statement(query.feed ? kListExecutionsOfFeed : kListExecutions);
    int i = 1;
    if (query.feed) s->bind(i++, query.feed->str());
    s->bind(i++, before);
    s->bind(i++, query.limit);
    std::vector<Execution> out = impl_->read_executions(s);
    txn.commit();
    return out;
  });
}

Result<std::vector<Execution>> SqliteStore::unfinished_executions() {
  Connection& c = *impl_->values;
  return c.run([&]() -> Result<std::vector<Execution>> {
    SQLite::Transaction txn(c.db());
    auto s = c.statement(kUnfinishedExecutions);
    std::vector<Execution> out = impl_->read_executions(s);
    txn.commit();
    return out;
  });
}

Status SqliteStore::set_execution_state(const ExecutionId& id, ExecutionState state,
                                        std::optional<WallTime> finished_at) {
  const ExecutionStateChange change{id, state, finished_at};
  return set_execution_states(std::span(&change, 1)).front();
}

std::vector<Status> SqliteStore::set_execution_states(
    std::span<const ExecutionStateChange> changes) {
  Connection& c = *impl_->values;
  std::vector<Status> out;
  Status written = c.write([&]() -> Status {
    out.clear();
    out.reserve(changes.size());
    for (const ExecutionStateChange& change : changes) {
      auto s = c.statement(kSetExecutionState);
      s->bind(1, std::string(to_string(change.state)));
      bind_optional(
          *s, 2,
          change.finished_at ? std::optional<int64_t>(to_ns(*change.finished_at)) : std::nullopt);
      s->bind(3, change.id.str());
      out.push_back(s->exec() == 0
                        ? Status::NotFound(fmt::format("store {}: no execution {}",
                                                       c.path().string(), change.id.str()))
                        : Status::Ok());
    }
    return Status::Ok();
  });
  if (!written.ok()) out.assign(changes.size(), written);
  return out;
}

// ---- slots and values ----

Result<std::vector<bool>> SqliteStore::commit_slots(std::span<const SlotCommit> commits) {
  // Validate the whole batch first: a bad commit rejects the batch before anything is written.
  for (const SlotCommit& commit : commits) {
    auto what = [&] {
      return fmt::format("commit_slots: {} slot {}", commit.feed.str(),
                         format_iso_ms(commit.slot.slot));
    };
    if (commit.execution.empty() || commit.feed.empty()) {
      return Status::InvalidArgument(fmt::format("{}: needs an execution and a feed", what()));
    }
    const bool published = commit.slot.outcome == SlotOutcome::kPublished;
    if (published != commit.record.has_value()) {
      return Status::InvalidArgument(fmt::format("{}: outcome {} {} a record", what(),
                                                 to_string(commit.slot.outcome),
                                                 published ? "needs" : "must not carry"));
    }
    if (commit.record &&
        (commit.record->feed != commit.feed || commit.record->slot != commit.slot.slot)) {
      return Status::InvalidArgument(fmt::format("{}: the record is for {} slot {}", what(),
                                                 commit.record->feed.str(),
                                                 format_iso_ms(commit.record->slot)));
    }
  }
  if (commits.empty()) return std::vector<bool>();

  Connection& c = *impl_->values;
  std::vector<bool> inserted;
  int64_t first_ms = kMaxInt;
  int64_t last_ms = kMinInt;
  for (const SlotCommit& commit : commits) {
    first_ms = std::min(first_ms, to_unix_ms(commit.slot.slot));
    last_ms = std::max(last_ms, to_unix_ms(commit.slot.slot));
  }
  bool catch_up_latest;
  {
    std::lock_guard lock(impl_->tail_mu);
    catch_up_latest = impl_->latest_pending + static_cast<int64_t>(commits.size()) >=
                      impl_->latest_backstop_rows();
  }
  Status written = c.write([&]() -> Status {
    inserted.clear();
    inserted.reserve(commits.size());
    // Saves a DELETE per record (~7 % of the writer's time at 10,000 feeds). Set again by an
    // outcome row this batch writes.
    bool outcome_rows = false;
    {
      auto s = c.statement(kAnyOutcomeBetween);
      s->bind(1, first_ms);
      s->bind(2, last_ms);
      outcome_rows = s->executeStep();
    }
    {
      // The slot times of this batch's rows, for the per-feed index's next pass (IndexPass).
      std::lock_guard lock(impl_->tail_mu);
      if (!impl_->tail_slots_overflow) {
        for (const SlotCommit& commit : commits) {
          if (commit.record) impl_->tail_slots.insert(to_unix_ms(commit.slot.slot));
        }
        if (impl_->too_many_slots(impl_->tail_rows + static_cast<int64_t>(commits.size()))) {
          impl_->tail_slots.clear();
          impl_->tail_slots_overflow = true;
        }
      }
    }
    const SignatureBatch* last_batch = nullptr;  // its row is written (a batch's rows are adjacent)
    for (const SlotCommit& commit : commits) {
      bool this_inserted = false;
      if (commit.record) {
        const ValueRecord& r = *commit.record;
        const std::string sources = source_answers_to_json(r.sources);
        // The compact form only for a record that carries its batch's signature at a leaf the
        // batch has (a caller's mistake must not make the row read back another's texts).
        const SignatureBatch* batch =
            commit.batch && commit.batch_leaf < commit.batch->leaves &&
                    commit.batch->nodes.size() == merkle_node_count(commit.batch->leaves) &&
                    r.signature == commit.batch->signature
                ? commit.batch.get()
                : nullptr;
        if (batch != nullptr && batch != last_batch) {
          auto b = c.statement(kInsertSignatureBatch);
          b->bindNoCopy(1, batch->root().data(), static_cast<int>(sizeof(MerkleNode)));
          b->bindNoCopy(2, batch->signature);
          b->bind(3, static_cast<int64_t>(batch->leaves));
          b->bindNoCopy(4, batch->nodes.data(),
                        static_cast<int>(batch->nodes.size() * sizeof(MerkleNode)));
          b->exec();
          last_batch = batch;
        }
        auto s = c.statement(kInsertValue);
        // The texts are bound without a copy (SQLITE_STATIC): the commit and `sources` outlive
        // this statement's step, and statement() clears the bindings before its next use.
        s->bindNoCopy(1, r.feed.str());
        s->bind(2, to_unix_ms(r.slot));
        s->bind(3, r.round);
        s->bindNoCopy(4, r.value);
        s->bind(5, r.decimals);
        s->bind(6, to_ns(r.observed_at));
        s->bind(7, to_ns(r.published_at));
        s->bindNoCopy(8, r.execution.str());
        s->bindNoCopy(9, r.signer);
        // A batch's row keeps its leaf index; the texts are read back from the batch.
        static const std::string kNone;
        s->bindNoCopy(10, batch ? kNone : r.signature);
        s->bindNoCopy(11, batch ? kNone : r.digest);
        s->bindNoCopy(12, sources);
        const SlotRecord& slot = commit.slot;
        bind_optional(*s, 13,
                      slot.fired_at ? std::optional<int64_t>(to_ns(*slot.fired_at)) : std::nullopt);
        bind_optional(*s, 14, slot.lateness_us);
        s->bind(15, slot.attempts);
        s->bindNoCopy(16, slot.error);
        s->bindNoCopy(17, batch ? kNone : r.proof);
        if (batch) {
          s->bindNoCopy(18, batch->root().data(), static_cast<int>(sizeof(MerkleNode)));
          s->bind(19, static_cast<int64_t>(commit.batch_leaf));
        } else {
          s->bind(18);
          s->bind(19);
        }
        // ON CONFLICT DO NOTHING changes no row when the slot already has its value.
        this_inserted = s->exec() == 1;
      }
      if (this_inserted) {
        if (outcome_rows) {
          auto d = c.statement(kDeleteOutcome);
          d->bind(1, to_unix_ms(commit.slot.slot));
          d->bind(2, commit.execution.str());
          d->exec();
        }
      } else {
        auto s = c.statement(kUpsertSlot);
        Impl::bind_slot(*s, commit.execution, commit.feed, commit.slot);
        if (s->exec() > 0) outcome_rows = true;
      }
      inserted.push_back(this_inserted);
    }
    // feed_latest waits for run_deferred_work(), unless it lags too far.
    if (catch_up_latest) impl_->catch_up_feed_latest();
    return Status::Ok();
  });
  if (!written.ok()) return written;
  const int64_t added = std::count(inserted.begin(), inserted.end(), true);
  bool overdue;
  {
    std::lock_guard lock(impl_->tail_mu);
    impl_->tail_rows += added;
    impl_->latest_pending = catch_up_latest ? 0 : impl_->latest_pending + added;
    impl_->rows_since_run += added;
    // A backstop for writers that never call run_deferred_work(): the tail stays bounded.
    overdue = impl_->tail_rows >= 4 * impl_->index_threshold();
  }
  if (overdue) impl_->index_tail_or_warn();
  return inserted;
}

void SqliteStore::run_deferred_work() {
  impl_->catch_up_latest_or_warn();
  impl_->index_tail_or_warn();
}

Status SqliteStore::index_values() {
  return impl_->index_tail(true);
}

int64_t SqliteStore::wal_checkpoints() const {
  return impl_->checkpointer ? impl_->checkpointer->done() : 0;
}

Status SqliteStore::Impl::index_tail(bool force) {
  {
    std::lock_guard lock(tail_mu);
    if (indexing || tail_rows == 0) return Status::Ok();
    if (!force && ((!pass.active && tail_rows < index_threshold()) ||
                   rows_since_run < latest_catch_up_rows())) {
      return Status::Ok();
    }
    indexing = true;
    rows_since_run = 0;
  }
  Connection& c = *values;
  int64_t indexed = 0;  // rows after the old watermark that the index now covers
  int64_t feeds = 0;
  bool done = false;
  Status st = c.write([&]() -> Status {
    const int64_t watermark = index_watermark();
    if (force) {
      index_all();
      done = true;
    } else {
      done = index_run();
    }
    if (!done) return Status::Ok();
    catch_up_feed_latest();  // so that the feed count is current
    feeds = count_feeds();
    indexed = index_watermark() - watermark;
    return Status::Ok();
  });
  std::lock_guard lock(tail_mu);
  indexing = false;
  if (!st.ok()) {
    // The slot times the pass took are not the tail's any more: the next pass is one write,
    // which needs none (and does again whatever this one wrote).
    pass = IndexPass();
    tail_slots.clear();
    tail_slots_overflow = true;
    return st;
  }
  if (done) {
    pass = IndexPass();
    tail_rows = std::max<int64_t>(0, tail_rows - indexed);
    latest_pending = 0;
    feed_count = feeds;
  }
  return st;
}

void SqliteStore::Impl::index_all() {
  Connection& c = *values;
  const int64_t from = index_watermark();
  const int64_t to = last_value_id();
  {
    auto s = c.statement(kIndexTail);
    s->bind(1, from);
    s->bind(2, to);
    s->exec();
  }
  {
    auto s = c.statement(kSetIndexWatermark);
    s->bind(1, to);
    s->exec();
  }
  std::lock_guard lock(tail_mu);  // every row so far is indexed: later ones note their own
  tail_slots.clear();
  tail_slots_overflow = false;
}

bool SqliteStore::Impl::index_run() {
  Connection& c = *values;
  if (!pass.active) {
    pass = IndexPass();
    pass.from = index_watermark();
    pass.to = last_value_id();
    std::lock_guard lock(tail_mu);
    if (!tail_slots_overflow && !tail_slots.empty()) {
      pass.slots.assign(tail_slots.begin(), tail_slots.end());
      tail_slots.clear();
      pass.active = true;
    }
  }
  if (!pass.active) {
    index_all();
    return true;
  }
  // A run of about index_run_rows rows: as many feeds as hold that many rows of the pass.
  int64_t feeds;
  {
    std::lock_guard lock(tail_mu);
    feeds = std::max<int64_t>(1, feed_count);
  }
  const int64_t rows_per_feed = std::max<int64_t>(1, (pass.to - pass.from) / feeds);
  const int64_t run_feeds = std::max<int64_t>(1, index_run_rows / rows_per_feed);
  std::optional<std::string> end;
  {
    auto s = c.statement(kIndexRunEnd);
    s->bind(1, pass.next_feed);
    s->bind(2, run_feeds);
    if (s->executeStep()) end = s->getColumn(0).getString();
  }
  for (int64_t slot_ms : pass.slots) {
    auto s = c.statement(end ? kIndexRun : kIndexLastRun);
    s->bind(1, slot_ms);
    s->bind(2, pass.next_feed);
    if (end) s->bind(3, *end);
    s->bind(4, pass.from);
    s->bind(5, pass.to);
    s->exec();
  }
  if (end) {
    pass.next_feed = std::move(*end);
    return false;
  }
  auto s = c.statement(kSetIndexWatermark);
  s->bind(1, pass.to);
  s->exec();
  return true;
}

Result<std::vector<ValueRecord>> SqliteStore::list_values(const ValueQuery& query) {
  if (query.limit <= 0) {
    return Status::InvalidArgument(
        fmt::format("list_values: limit must be positive, not {}", query.limit));
  }
  Connection& c = *impl_->values;
  return c.run([&]() -> Result<std::vector<ValueRecord>> {
    const int64_t since = query.since ? to_unix_ms(*query.since) : kMinInt;
    const int64_t before = query.before ? to_unix_ms(*query.before) : kMaxInt;
    std::vector<ValueRecord> out;
    if (!query.feed) {
      auto s = c.statement(kListValues);
      s->bind(1, since);
      s->bind(2, before);
      s->bind(3, query.limit);
      while (s->executeStep()) out.push_back(read_value(*s));
      return out;
    }
    SQLite::Transaction txn(c.db());  // the watermark and both parts: one snapshot
    const int64_t watermark = impl_->index_watermark();
    {
      auto s = c.statement(kListValuesOfFeedIndexed);
      s->bind(1, query.feed->str());
      s->bind(2, since);
      s->bind(3, before);
      s->bind(4, query.limit);
      while (s->executeStep()) out.push_back(read_value(*s));
    }
    {
      auto s = c.statement(kListValuesOfFeedTail);
      s->bind(1, query.feed->str());
      s->bind(2, since);
      s->bind(3, before);
      s->bind(4, watermark);
      s->bind(5, query.limit);
      while (s->executeStep()) out.push_back(read_value(*s));
    }
    txn.commit();
    std::sort(out.begin(), out.end(),
              [](const ValueRecord& a, const ValueRecord& b) { return a.slot > b.slot; });
    // During an index pass, a row may be in both parts.
    out.erase(
        std::unique(out.begin(), out.end(),
                    [](const ValueRecord& a, const ValueRecord& b) { return a.slot == b.slot; }),
        out.end());
    if (out.size() > static_cast<size_t>(query.limit)) out.resize(query.limit);
    return out;
  });
}

Result<std::optional<ValueRecord>> SqliteStore::get_value(const FeedId& feed, SlotTime slot) {
  Connection& c = *impl_->values;
  return c.run([&]() -> Result<std::optional<ValueRecord>> {
    auto s = c.statement(kGetValue);
    s->bind(1, feed.str());
    s->bind(2, to_unix_ms(slot));
    if (!s->executeStep()) return std::optional<ValueRecord>();
    return std::optional<ValueRecord>(read_value(*s));
  });
}

Result<std::optional<ValueRecord>> SqliteStore::latest_value(const FeedId& feed) {
  Connection& c = *impl_->values;
  return c.run([&]() -> Result<std::optional<ValueRecord>> {
    auto s = c.statement(kLatestValue);
    s->bind(1, feed.str());
    if (!s->executeStep()) return std::optional<ValueRecord>();
    return std::optional<ValueRecord>(read_value(*s));
  });
}

Result<int64_t> SqliteStore::count_outcomes(SlotOutcome outcome, SlotTime since) {
  Connection& c = *impl_->values;
  return c.run([&]() -> Result<int64_t> {
    if (outcome == SlotOutcome::kPlanned) {
      auto s = c.statement(kCountPlanned);
      s->bind(1, to_unix_ms(since));
      s->executeStep();
      return s->getColumn(0).getInt64();
    }
    if (outcome == SlotOutcome::kPublished) {
      auto s = c.statement(kCountPublished);
      s->bind(1, to_unix_ms(since));
      s->executeStep();
      return s->getColumn(0).getInt64();
    }
    auto s = c.statement(kCountOutcomes);
    s->bind(1, std::string(to_string(outcome)));
    s->bind(2, to_unix_ms(since));
    s->executeStep();
    return s->getColumn(0).getInt64();
  });
}

// ---- dead-letter queue ----

Result<int64_t> SqliteStore::dlq_push(const DlqMessage& message) {
  std::optional<std::string> record_json;
  if (message.record) record_json = record_to_json(*message.record).dump();
  Connection& c = *impl_->dlq;
  return c.run([&]() -> Result<int64_t> {
    auto s = c.statement(kDlqPush);
    s->bind(1, message.feed.str());
    bind_optional(*s, 2,
                  message.slot ? std::optional<int64_t>(to_unix_ms(*message.slot)) : std::nullopt);
    s->bind(3, message.execution.str());
    s->bind(4, message.stage);
    s->bind(5, message.error);
    s->bind(6, message.attempts);
    s->bind(7, to_ns(message.first_failure));
    s->bind(8, to_ns(message.last_failure));
    if (record_json) {
      s->bind(9, *record_json);
    } else {
      s->bind(9);
    }
    s->exec();
    return c.db().getLastInsertRowid();
  });
}

Result<std::vector<DlqMessage>> SqliteStore::dlq_list(int limit) {
  if (limit <= 0) {
    return Status::InvalidArgument(fmt::format("dlq_list: limit must be positive, not {}", limit));
  }
  Connection& c = *impl_->dlq;
  return c.run([&]() -> Result<std::vector<DlqMessage>> {
    auto s = c.statement(kDlqList);
    s->bind(1, limit);
    std::vector<DlqMessage> out;
    while (s->executeStep()) out.push_back(read_dlq(*s));
    return out;
  });
}

Result<std::optional<DlqMessage>> SqliteStore::dlq_get(int64_t id) {
  Connection& c = *impl_->dlq;
  return c.run([&]() -> Result<std::optional<DlqMessage>> {
    auto s = c.statement(kDlqGet);
    s->bind(1, id);
    if (!s->executeStep()) return std::optional<DlqMessage>();
    return std::optional<DlqMessage>(read_dlq(*s));
  });
}

Status SqliteStore::dlq_delete(int64_t id) {
  Connection& c = *impl_->dlq;
  return c.run([&]() -> Status {
    auto s = c.statement(kDlqDelete);
    s->bind(1, id);
    if (s->exec() == 0) {
      return Status::NotFound(fmt::format("store {}: no DLQ message {}", c.path().string(), id));
    }
    return Status::Ok();
  });
}

Result<int64_t> SqliteStore::dlq_depth() {
  Connection& c = *impl_->dlq;
  return c.run([&]() -> Result<int64_t> {
    auto s = c.statement(kDlqDepth);
    s->executeStep();
    return s->getColumn(0).getInt64();
  });
}

// ---- alarms ----

Result<std::vector<AlarmState>> SqliteStore::alarm_states() {
  Connection& c = *impl_->dlq;
  return c.run([&]() -> Result<std::vector<AlarmState>> {
    auto s = c.statement(kAlarmStates);
    std::vector<AlarmState> out;
    while (s->executeStep()) out.push_back(read_alarm(*s));
    return out;
  });
}

Result<std::optional<AlarmState>> SqliteStore::alarm_state(const std::string& name) {
  Connection& c = *impl_->dlq;
  return c.run([&]() -> Result<std::optional<AlarmState>> {
    auto s = c.statement(kAlarmState);
    s->bind(1, name);
    if (!s->executeStep()) return std::optional<AlarmState>();
    return std::optional<AlarmState>(read_alarm(*s));
  });
}

Status SqliteStore::put_alarm_state(const AlarmState& state) {
  if (state.name.empty()) return Status::InvalidArgument("put_alarm_state: an alarm needs a name");
  Connection& c = *impl_->dlq;
  return c.run([&]() -> Status {
    auto s = c.statement(kPutAlarmState);
    s->bind(1, state.name);
    s->bind(2, std::string(to_string(state.status)));
    s->bind(3, to_ns(state.since));
    s->bind(4, state.reason);
    s->bind(5, std::string(to_string(state.previous)));
    s->bind(6, state.actions_pending ? 1 : 0);
    s->exec();
    return Status::Ok();
  });
}

// ---- backup ----

namespace {

// Copies the database behind `c` into a new file `out` with SQLite's online backup API, in one
// step: the copy is one consistent snapshot (a read transaction), taken while other connections
// keep writing (WAL).
Status backup_one(Connection& c, const std::filesystem::path& out) {
  if (std::filesystem::exists(out)) {
    return Status::AlreadyExists(
        fmt::format("backup {}: the file exists; it is never overwritten", out.string()));
  }
  if (out.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(out.parent_path(), ec);
    if (ec) {
      return Status::IOError(
          fmt::format("backup {}: cannot create its folder: {}", out.string(), ec.message()));
    }
  }
  return c.run([&]() -> Status {
    sqlite3* dest = nullptr;
    int rc =
        sqlite3_open_v2(out.c_str(), &dest, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
    auto fail = [&](const char* what) {
      std::string msg = dest ? sqlite3_errmsg(dest) : "out of memory";
      sqlite3_close(dest);
      std::filesystem::remove(out);
      return Status::IOError(
          fmt::format("backup {} -> {}: {}: {}", c.path().string(), out.string(), what, msg));
    };
    if (rc != SQLITE_OK) return fail("open");
    sqlite3_backup* b = sqlite3_backup_init(dest, "main", c.db().getHandle(), "main");
    if (b == nullptr) return fail("backup_init");
    rc = sqlite3_backup_step(b, -1);
    sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE) return fail("backup_step");
    if (sqlite3_close(dest) != SQLITE_OK) return fail("close");
    return Status::Ok();
  });
}

}  // namespace

Status SqliteStore::backup(const std::filesystem::path& values_out,
                           const std::filesystem::path& dlq_out) {
  METRONOME_RETURN_IF_ERROR(backup_one(*impl_->values, values_out));
  return backup_one(*impl_->dlq, dlq_out);
}

Status configure_sqlite_process() {
  const int rc = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  if (rc != SQLITE_OK) {
    return Status::Internal(
        fmt::format("SQLite's allocation statistics stay on: SQLite has already started ({})",
                    sqlite3_errstr(rc)));
  }
  return Status::Ok();
}

Status backup_sqlite_file(const std::filesystem::path& db, const std::filesystem::path& out) {
  std::error_code ec;
  if (!std::filesystem::exists(db, ec)) {
    return Status::NotFound(fmt::format("backup {}: no such database", db.string()));
  }
  std::unique_ptr<Connection> c;
  try {
    c = std::make_unique<Connection>(
        db, std::make_unique<SQLite::Database>(db.string(), SQLite::OPEN_READONLY, 5000));
  } catch (const std::exception& e) {
    return Status::IOError(fmt::format("backup {}: cannot open it: {}", db.string(), e.what()));
  }
  return backup_one(*c, out);
}

// ---- health ----

Status SqliteStore::ping() {
  for (Connection* c : {impl_->values.get(), impl_->dlq.get()}) {
    METRONOME_RETURN_IF_ERROR(c->run([&]() -> Status {
      auto s = c->statement(kPing);
      s->executeStep();
      return Status::Ok();
    }));
  }
  return Status::Ok();
}

}  // namespace metronome
