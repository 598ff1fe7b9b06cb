#include "store/postgres_store.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cctype>
#include <condition_variable>
#include <iterator>
#include <limits>
#include <mutex>
#include <pqxx/pqxx>
#include <set>
#include <stdexcept>
#include <utility>

#include "store/group_commit.h"
#include "store/record_json.h"
#include "store/source_answers.h"

// Schema notes: the tables and columns are SqliteStore's (see sqlite_store.cc), in PostgreSQL
// types: integers are bigint (times) or integer (counts), text keys COLLATE "C" (byte order, as
// SQLite compares), actions_pending boolean. slots has no foreign key to executions, for the
// same reason as in SQLite: a redrive must never fail because its execution was pruned.

namespace metronome {
namespace {

constexpr int64_t kMinInt = std::numeric_limits<int64_t>::min();
constexpr int64_t kMaxInt = std::numeric_limits<int64_t>::max();

// Serialises migrations across processes (any constant unique to Metronome: "MTNM").
constexpr int64_t kMigrationLockKey = 0x4D544E4D;

// One step of the schema history; never edit a released step: append.
struct Migration {
  int version;
  const char* description;
  const char* sql;
};

constexpr Migration kMigrations[] = {
    {1, "values, executions, slots, dlq, alarms", R"sql(
CREATE TABLE "values" (
  feed text COLLATE "C" NOT NULL,
  slot_ms bigint NOT NULL,
  round bigint NOT NULL,
  value text NOT NULL,
  decimals integer NOT NULL,
  observed_at_ns bigint NOT NULL,
  published_at_ns bigint NOT NULL,
  execution text COLLATE "C" NOT NULL,
  signer text NOT NULL,
  signature text NOT NULL,
  digest text NOT NULL,
  PRIMARY KEY (feed, slot_ms)
);
CREATE INDEX values_by_slot ON "values"(slot_ms);

CREATE TABLE executions (
  id text COLLATE "C" PRIMARY KEY,
  feed text COLLATE "C" NOT NULL,
  window_start_ms bigint NOT NULL,
  window_end_ms bigint NOT NULL,
  state text NOT NULL,
  created_at_ns bigint NOT NULL,
  finished_at_ns bigint
);
CREATE INDEX executions_by_window ON executions(window_start_ms);
CREATE INDEX executions_by_feed_window ON executions(feed, window_start_ms);
CREATE INDEX executions_unfinished ON executions(window_start_ms)
  WHERE state IN ('planned', 'running');

CREATE TABLE slots (
  execution text COLLATE "C" NOT NULL,
  slot_ms bigint NOT NULL,
  feed text COLLATE "C" NOT NULL,
  outcome text NOT NULL,
  fired_at_ns bigint,
  lateness_us bigint,
  error text NOT NULL,
  attempts integer NOT NULL,
  PRIMARY KEY (execution, slot_ms)
);
CREATE INDEX slots_by_outcome ON slots(outcome, slot_ms);

CREATE TABLE dlq (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  feed text COLLATE "C" NOT NULL,
  slot_ms bigint,
  execution text COLLATE "C" NOT NULL,
  stage text NOT NULL,
  error text NOT NULL,
  attempts integer NOT NULL,
  first_failure_ns bigint NOT NULL,
  last_failure_ns bigint NOT NULL,
  record_json text
);

CREATE TABLE alarms (
  name text COLLATE "C" PRIMARY KEY,
  status text NOT NULL,
  since_ns bigint NOT NULL,
  reason text NOT NULL,
  previous text NOT NULL DEFAULT 'OK',
  actions_pending boolean NOT NULL DEFAULT false
);
)sql"},
    // A median's sources that answered, as JSON text: [{"source":"a","value":"100.5"}, ...]
    // (SqliteStore's version 2 too). DLQ records (record_json) may carry "sources" from now on.
    {2, "values.sources", R"sql(
ALTER TABLE "values" ADD COLUMN sources text NOT NULL DEFAULT '[]';
)sql"},
    {3, "replicas (heartbeats) and leases (one per feed) for high availability", R"sql(
-- One row per running replica, refreshed every lease renewal; live = seen within the lease TTL.
CREATE TABLE replicas (
  id text COLLATE "C" PRIMARY KEY,
  last_seen timestamptz NOT NULL
);
-- Who may write each feed's slots. epoch grows on every change of holder (the fencing token).
CREATE TABLE leases (
  feed text COLLATE "C" PRIMARY KEY,
  holder text COLLATE "C" NOT NULL,
  epoch bigint NOT NULL,
  expires_at timestamptz NOT NULL
);
)sql"},
    // Batch signatures (ADR 0018; SqliteStore's version 6): the Merkle proof from the digest to
    // the root the signature signs; '' when it signs the digest itself. DLQ records may carry
    // "proof" from now on.
    {4, "values.proof (batch signatures)", R"sql(
ALTER TABLE "values" ADD COLUMN proof text NOT NULL DEFAULT '';
)sql"},
};

static_assert(std::size(kMigrations) > 0 &&
                  kMigrations[std::size(kMigrations) - 1].version == PostgresStore::kSchemaVersion,
              "the last migration must be kSchemaVersion");

constexpr const char* kCreateSchemaTable = R"sql(
CREATE TABLE IF NOT EXISTS metronome_schema (
  version integer PRIMARY KEY,
  description text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
))sql";

// 0 when the database has no Metronome schema at all. (Two statements: a query naming a table
// that does not exist fails at planning, whatever its CASE says.)
int read_schema_version(pqxx::transaction_base& t) {
  if (t.exec("SELECT to_regclass('metronome_schema') IS NULL")[0][0].as<bool>()) return 0;
  return t.exec("SELECT coalesce(max(version), 0) FROM metronome_schema")[0][0].as<int>();
}

// ---- prepared statements (name, SQL); every connection prepares them all ----

struct Prepared {
  const char* name;
  const char* sql;
};

#define METRONOME_VALUE_COLUMNS                                                         \
  "feed, slot_ms, round, value, decimals, observed_at_ns, published_at_ns, execution, " \
  "signer, signature, digest, sources, proof"
#define METRONOME_DLQ_COLUMNS                                                                 \
  "id, feed, slot_ms, execution, stage, error, attempts, first_failure_ns, last_failure_ns, " \
  "record_json"
#define METRONOME_ALARM_COLUMNS "name, status, since_ns, reason, previous, actions_pending"

// An execution and its slots in one statement (one snapshot): `e` is a CTE choosing the
// executions; each row is an execution's columns then one slot's (NULLs when it has none).
#define METRONOME_EXECUTIONS_WITH_SLOTS(choose, order)                                    \
  "WITH e AS (" choose                                                                    \
  ") SELECT e.id, e.feed, e.window_start_ms, e.window_end_ms, e.state, e.created_at_ns, " \
  "e.finished_at_ns, s.slot_ms, s.outcome, s.fired_at_ns, s.lateness_us, s.error, "       \
  "s.attempts FROM e LEFT JOIN slots s ON s.execution = e.id ORDER BY " order ", s.slot_ms"

#define METRONOME_EXECUTION_COLUMNS \
  "id, feed, window_start_ms, window_end_ms, state, created_at_ns, finished_at_ns"

// The whole batch as arrays ($1..$21), one statement: insert the values that are absent,
// upsert every slot's outcome (a published slot stays published), and answer per commit, in
// input order, whether its value was inserted. REQUIRES: no (feed, slot) repeated among the
// records and no (execution, slot) repeated (commit_slots() splits a batch that has some).
constexpr const char* kCommitSlots = R"sql(
WITH input AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[],
                       $6::bigint[], $7::text[], $8::integer[], $9::boolean[], $10::bigint[],
                       $11::text[], $12::integer[], $13::bigint[], $14::bigint[], $15::text[],
                       $16::text[], $17::text[], $18::text[], $19::text[], $20::text[],
                       $21::bigint[], $22::text[])
    WITH ORDINALITY AS t(execution, feed, slot_ms, outcome, fired_at_ns, lateness_us, error,
                         attempts, has_record, round, value, decimals, observed_at_ns,
                         published_at_ns, record_execution, signer, signature, digest, sources,
                         fence_holder, fence_epoch, proof, ord)
),
-- The commits allowed to write: unfenced, or fenced by the lease their writer holds now.
allowed AS (
  SELECT * FROM input
  WHERE fence_holder IS NULL OR EXISTS (
    SELECT 1 FROM leases l
    WHERE l.feed = input.feed AND l.holder = input.fence_holder AND l.epoch = input.fence_epoch
      AND l.expires_at > clock_timestamp())
),
inserted AS (
  INSERT INTO "values"(feed, slot_ms, round, value, decimals, observed_at_ns, published_at_ns,
                       execution, signer, signature, digest, sources, proof)
  SELECT feed, slot_ms, round, value, decimals, observed_at_ns, published_at_ns,
         record_execution, signer, signature, digest, sources, proof
  FROM allowed WHERE has_record ORDER BY ord
  ON CONFLICT (feed, slot_ms) DO NOTHING
  RETURNING feed, slot_ms
),
outcomes AS (
  INSERT INTO slots(execution, slot_ms, feed, outcome, fired_at_ns, lateness_us, error, attempts)
  SELECT execution, slot_ms, feed, outcome, fired_at_ns, lateness_us, error, attempts
  FROM allowed ORDER BY ord
  ON CONFLICT (execution, slot_ms) DO UPDATE SET
    feed = excluded.feed, outcome = excluded.outcome, fired_at_ns = excluded.fired_at_ns,
    lateness_us = excluded.lateness_us, error = excluded.error, attempts = excluded.attempts
  WHERE slots.outcome <> 'published'
)
SELECT input.has_record AND inserted.feed IS NOT NULL
FROM input LEFT JOIN inserted ON inserted.feed = input.feed AND inserted.slot_ms = input.slot_ms
ORDER BY input.ord)sql";

// The execution ($1..$7) and, only if it was new, its planned slots ($8..$13 as arrays).
constexpr const char* kCreateExecution = R"sql(
WITH e AS (
  INSERT INTO executions(id, feed, window_start_ms, window_end_ms, state, created_at_ns,
                         finished_at_ns)
  VALUES ($1, $2, $3, $4, $5, $6, $7)
  ON CONFLICT (id) DO NOTHING
  RETURNING id, feed
)
INSERT INTO slots(execution, slot_ms, feed, outcome, fired_at_ns, lateness_us, error, attempts)
SELECT e.id, s.slot_ms, e.feed, s.outcome, s.fired_at_ns, s.lateness_us, s.error, s.attempts
FROM e, unnest($8::bigint[], $9::text[], $10::bigint[], $11::bigint[], $12::text[],
               $13::integer[]) AS s(slot_ms, outcome, fired_at_ns, lateness_us, error, attempts)
ON CONFLICT (execution, slot_ms) DO NOTHING)sql";

constexpr Prepared kStatements[] = {
    {"commit_slots", kCommitSlots},
    {"create_execution", kCreateExecution},
    {"get_execution",
     METRONOME_EXECUTIONS_WITH_SLOTS(
         "SELECT " METRONOME_EXECUTION_COLUMNS " FROM executions WHERE id = $1", "e.id")},
    {"list_executions",
     METRONOME_EXECUTIONS_WITH_SLOTS("SELECT " METRONOME_EXECUTION_COLUMNS
                                     " FROM executions WHERE window_start_ms < $1"
                                     " ORDER BY window_start_ms DESC, id ASC LIMIT $2",
                                     "e.window_start_ms DESC, e.id ASC")},
    {"list_executions_of_feed",
     METRONOME_EXECUTIONS_WITH_SLOTS("SELECT " METRONOME_EXECUTION_COLUMNS
                                     " FROM executions WHERE feed = $1 AND window_start_ms < $2"
                                     " ORDER BY window_start_ms DESC, id ASC LIMIT $3",
                                     "e.window_start_ms DESC, e.id ASC")},
    {"unfinished_executions",
     METRONOME_EXECUTIONS_WITH_SLOTS("SELECT " METRONOME_EXECUTION_COLUMNS
                                     " FROM executions WHERE state IN ('planned', 'running')",
                                     "e.window_start_ms ASC, e.id ASC")},
    {"set_execution_state", "UPDATE executions SET state = $1, finished_at_ns = $2 WHERE id = $3"},
    {"list_values",
     "SELECT " METRONOME_VALUE_COLUMNS " FROM \"values\" WHERE slot_ms >= $1 AND slot_ms < $2"
     " ORDER BY slot_ms DESC, feed ASC LIMIT $3"},
    {"list_values_of_feed", "SELECT " METRONOME_VALUE_COLUMNS
                            " FROM \"values\" WHERE feed = $1 AND slot_ms >= $2 AND slot_ms < $3"
                            " ORDER BY slot_ms DESC LIMIT $4"},
    {"get_value",
     "SELECT " METRONOME_VALUE_COLUMNS " FROM \"values\" WHERE feed = $1 AND slot_ms = $2"},
    {"latest_value", "SELECT " METRONOME_VALUE_COLUMNS
                     " FROM \"values\" WHERE feed = $1 ORDER BY slot_ms DESC LIMIT 1"},
    {"count_outcomes", "SELECT count(*) FROM slots WHERE outcome = $1 AND slot_ms >= $2"},
    {"dlq_push",
     "INSERT INTO dlq(feed, slot_ms, execution, stage, error, attempts, first_failure_ns,"
     " last_failure_ns, record_json) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id"},
    {"dlq_list", "SELECT " METRONOME_DLQ_COLUMNS " FROM dlq ORDER BY id ASC LIMIT $1"},
    {"dlq_get", "SELECT " METRONOME_DLQ_COLUMNS " FROM dlq WHERE id = $1"},
    {"dlq_delete", "DELETE FROM dlq WHERE id = $1"},
    {"dlq_depth", "SELECT count(*) FROM dlq"},
    {"alarm_states", "SELECT " METRONOME_ALARM_COLUMNS " FROM alarms ORDER BY name ASC"},
    {"alarm_state", "SELECT " METRONOME_ALARM_COLUMNS " FROM alarms WHERE name = $1"},
    {"put_alarm_state",
     "INSERT INTO alarms(" METRONOME_ALARM_COLUMNS ") VALUES ($1, $2, $3, $4, $5, $6)"
     " ON CONFLICT (name) DO UPDATE SET status = excluded.status, since_ns = excluded.since_ns,"
     " reason = excluded.reason, previous = excluded.previous,"
     " actions_pending = excluded.actions_pending"},
    {"ping", "SELECT 1"},
};

// ---- conversions ----

int64_t to_ns(WallTime t) {
  return t.time_since_epoch().count();
}
WallTime wall_from_ns(int64_t ns) {
  return WallTime(Nanos(ns));
}
std::optional<int64_t> optional_ns(const std::optional<WallTime>& t) {
  return t ? std::optional<int64_t>(to_ns(*t)) : std::nullopt;
}

// A row this build cannot read (an unknown enum text, a malformed record). Thrown inside the
// adapter only; becomes Status::Internal.
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

std::optional<int64_t> optional_int64(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return f.as<int64_t>();
}

// Builds a PostgreSQL array literal ("{1,NULL,"a\"b"}") for one array parameter.
class ArrayLiteral {
 public:
  void add(int64_t v) { next() += std::to_string(v); }
  void add(bool v) { next() += v ? "t" : "f"; }
  void add(const std::optional<int64_t>& v) {
    if (v) {
      add(*v);
    } else {
      add_null();
    }
  }
  void add(std::string_view text) {
    std::string& out = next();
    out += '"';
    for (char ch : text) {
      if (ch == '"' || ch == '\\') out += '\\';
      out += ch;
    }
    out += '"';
  }
  void add_null() { next() += "NULL"; }
  std::string str() const { return text_ + "}"; }

 private:
  std::string& next() {
    if (text_.size() > 1) text_ += ',';
    return text_;
  }
  std::string text_ = "{";
};

ValueRecord read_value(const pqxx::row& row) {
  ValueRecord r;
  r.feed = FeedId(row[0].as<std::string>());
  r.slot = slot_from_unix_ms(row[1].as<int64_t>());
  r.round = row[2].as<int64_t>();
  r.value = row[3].as<std::string>();
  r.decimals = row[4].as<int>();
  r.observed_at = wall_from_ns(row[5].as<int64_t>());
  r.published_at = wall_from_ns(row[6].as<int64_t>());
  r.execution = ExecutionId(row[7].as<std::string>());
  r.signer = row[8].as<std::string>();
  r.signature = row[9].as<std::string>();
  r.digest = row[10].as<std::string>();
  r.sources = value_or_throw(source_answers_from_json(row[11].as<std::string>()));
  r.proof = row[12].as<std::string>();
  return r;
}

// Rows of METRONOME_EXECUTIONS_WITH_SLOTS: consecutive rows of one execution are merged.
std::vector<Execution> read_executions(const pqxx::result& result) {
  std::vector<Execution> out;
  for (const pqxx::row& row : result) {
    const std::string id = row[0].as<std::string>();
    if (out.empty() || out.back().id.str() != id) {
      Execution e;
      e.id = ExecutionId(id);
      e.feed = FeedId(row[1].as<std::string>());
      e.window_start = slot_from_unix_ms(row[2].as<int64_t>());
      e.window_end = slot_from_unix_ms(row[3].as<int64_t>());
      e.state = value_or_throw(parse_execution_state(row[4].as<std::string>()));
      e.created_at = wall_from_ns(row[5].as<int64_t>());
      if (auto ns = optional_int64(row[6])) e.finished_at = wall_from_ns(*ns);
      out.push_back(std::move(e));
    }
    if (row[7].is_null()) continue;  // an execution without slots
    SlotRecord slot;
    slot.slot = slot_from_unix_ms(row[7].as<int64_t>());
    slot.outcome = value_or_throw(parse_slot_outcome(row[8].as<std::string>()));
    if (auto ns = optional_int64(row[9])) slot.fired_at = wall_from_ns(*ns);
    slot.lateness_us = optional_int64(row[10]);
    slot.error = row[11].as<std::string>();
    slot.attempts = row[12].as<int>();
    out.back().slots.push_back(std::move(slot));
  }
  return out;
}

DlqMessage read_dlq(const pqxx::row& row) {
  DlqMessage m;
  m.id = row[0].as<int64_t>();
  m.feed = FeedId(row[1].as<std::string>());
  if (auto ms = optional_int64(row[2])) m.slot = slot_from_unix_ms(*ms);
  m.execution = ExecutionId(row[3].as<std::string>());
  m.stage = row[4].as<std::string>();
  m.error = row[5].as<std::string>();
  m.attempts = row[6].as<int>();
  m.first_failure = wall_from_ns(row[7].as<int64_t>());
  m.last_failure = wall_from_ns(row[8].as<int64_t>());
  if (!row[9].is_null()) m.record = value_or_throw(record_from_json_text(row[9].as<std::string>()));
  return m;
}

AlarmState read_alarm(const pqxx::row& row) {
  AlarmState a;
  a.name = row[0].as<std::string>();
  a.status = parse_alarm_status(row[1].as<std::string>());
  a.since = wall_from_ns(row[2].as<int64_t>());
  a.reason = row[3].as<std::string>();
  a.previous = parse_alarm_status(row[4].as<std::string>());
  a.actions_pending = row[5].as<bool>();
  return a;
}

}  // namespace

// ---- connection strings ----

namespace {

bool is_postgres_uri(const std::string& url) {
  return url.starts_with("postgresql://") || url.starts_with("postgres://");
}

std::string percent_encode(std::string_view text) {
  std::string out;
  for (unsigned char ch : text) {
    if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
      out += static_cast<char>(ch);
    } else {
      out += fmt::format("%{:02X}", ch);
    }
  }
  return out;
}

}  // namespace

std::string postgres_conninfo(const PostgresStoreOptions& o) {
  std::string url = o.url;
  auto has_param = [&](std::string_view name) {
    size_t q = url.find('?');
    if (q == std::string::npos) return false;
    for (size_t at = q; at != std::string::npos; at = url.find('&', at + 1)) {
      if (url.compare(at + 1, name.size() + 1, std::string(name) + "=") == 0) return true;
    }
    return false;
  };
  auto append = [&](std::string_view name, const std::string& value) {
    url += url.find('?') == std::string::npos ? '?' : '&';
    url += fmt::format("{}={}", name, percent_encode(value));
  };
  if (!o.password.empty()) append("password", o.password);
  if (!has_param("connect_timeout")) {
    // libpq takes whole seconds, at least 2.
    auto seconds = std::chrono::ceil<std::chrono::seconds>(o.connect_timeout).count();
    append("connect_timeout", std::to_string(std::max<int64_t>(2, seconds)));
  }
  if (!has_param("application_name")) append("application_name", o.application_name);
  return url;
}

namespace {

// ---- errors ----

Status sql_error_status(const std::string& label, const pqxx::sql_error& e) {
  const std::string state = e.sqlstate();
  std::string message = fmt::format("store {}: {}", label, e.what());
  while (!message.empty() && message.back() == '\n') message.pop_back();
  if (!state.empty()) message += fmt::format(" (SQLSTATE {})", state);
  const std::string cls = state.substr(0, 2);
  if (cls == "08" || cls == "53" || cls == "57" || state == "40001" || state == "40P01" ||
      state == "55P03") {
    // connection, resources, shutdown / cancel / statement timeout, serialization, deadlock, lock
    return Status::Unavailable(std::move(message));
  }
  if (cls == "28" || state == "42501" || state == "25006") {
    // authentication, privilege, write in a read-only session
    return Status::PermissionDenied(std::move(message));
  }
  if (state == "42P01") {
    return Status::Internal(message + "; has `metronome migrate` been run on this database?");
  }
  return Status::Internal(std::move(message));
}

// Whether a retry on a fresh connection may succeed.
bool is_transient(const Status& s) {
  return s.code() == Status::Code::kUnavailable;
}

}  // namespace

// ---- the pool ----

struct PostgresStore::Impl {
  PostgresStoreOptions options;
  std::string conninfo;
  std::string label;  // the URL without password, for messages

  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::unique_ptr<pqxx::connection>> idle;  // guarded by mu
  int in_use = 0;                                       // guarded by mu

  // Group commit (like SqliteStore's): commit_slots() calls queue their batch; the first to find
  // no group in progress leads: it takes every batch queued, writes them all in one statement
  // (one round trip, one WAL flush; a transaction of several when a slot repeats) and hands each
  // caller its part of the answer. Without it each slot was its own transaction and its own
  // flush: bench/ha_scale.sh at 2,000 feeds spent 17-25 s of every 30 s flushing the WAL.
  // Concurrent commit_slots() calls are written in groups, one statement (one round trip, one
  // WAL flush) per group (store/group_commit.h).
  using Batch = std::span<const SlotCommit>;
  GroupCommitQueue<Batch, Result<std::vector<bool>>> commit_queue;
  std::atomic<int64_t> commit_statements{0};

  Result<std::vector<bool>> group_commit(Batch commits) {
    return commit_queue.submit(commits, [this](const std::vector<const Batch*>& group) {
      Result<std::vector<bool>> all = write_group(group);
      std::vector<Result<std::vector<bool>>> answers;
      answers.reserve(group.size());
      size_t offset = 0;
      for (const Batch* b : group) {
        if (!all.ok()) {
          answers.emplace_back(all.status());
          continue;
        }
        answers.emplace_back(
            std::vector<bool>(all->begin() + static_cast<std::ptrdiff_t>(offset),
                              all->begin() + static_cast<std::ptrdiff_t>(offset + b->size())));
        offset += b->size();
      }
      return answers;
    });
  }

  // Every batch of `group`, in order; one flag per commit (the value was inserted by it).
  Result<std::vector<bool>> write_group(const std::vector<const Batch*>& group);

  // A new session: timeouts, read-only if asked, quiet notices, every statement prepared.
  // Throws (pqxx) when it cannot connect.
  std::unique_ptr<pqxx::connection> connect() const {
    auto c = std::make_unique<pqxx::connection>(conninfo);
    {
      pqxx::nontransaction n(*c);
      n.exec(fmt::format("SET statement_timeout = {}; SET client_min_messages = warning{}",
                         options.statement_timeout.count(),
                         options.read_only ? "; SET default_transaction_read_only = on" : ""));
    }
    for (const Prepared& p : kStatements) c->prepare(p.name, p.sql);
    return c;
  }

  // A connection for one operation (waits while all are in use). Returns nullptr when the
  // caller must connect a new one (the pool is not full yet or the idle one was dropped).
  std::unique_ptr<pqxx::connection> acquire() {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] {
      return !idle.empty() ||
             in_use + static_cast<int>(idle.size()) < std::max(1, options.connections);
    });
    ++in_use;
    if (idle.empty()) return nullptr;
    auto c = std::move(idle.back());
    idle.pop_back();
    return c;
  }

  // Gives the connection back; a broken one (nullptr) is dropped, its place freed.
  void release(std::unique_ptr<pqxx::connection> c) {
    std::lock_guard lock(mu);
    --in_use;
    if (c) idle.push_back(std::move(c));
    cv.notify_one();
  }

  // Runs f(connection) with a pooled connection, turning exceptions into a Status naming the
  // database. A connection that broke is dropped. When `idempotent`, a transient failure is
  // retried once on a fresh connection (the usual case: the server restarted while the pooled
  // connection sat idle).
  template <typename F>
  auto run(bool idempotent, F&& f) -> decltype(f(std::declval<pqxx::connection&>())) {
    using R = decltype(f(std::declval<pqxx::connection&>()));
    for (int attempt = 0;; ++attempt) {
      std::unique_ptr<pqxx::connection> c = acquire();
      Status failed;
      try {
        if (!c) {
          c = connect();
        } else {
          // A pooled connection whose server went away (restart, idle timeout) is found here
          // without a round trip: reading what is pending sees the server's goodbye or EOF.
          c->get_notifs();
          if (!c->is_open()) throw pqxx::broken_connection("the server closed the connection");
        }
        R result = f(*c);
        release(std::move(c));
        return result;
      } catch (const pqxx::broken_connection& e) {
        c.reset();
        failed = Status::Unavailable(
            fmt::format("store {}: connection lost or refused: {}", label, trim(e.what())));
      } catch (const pqxx::in_doubt_error& e) {
        c.reset();
        failed = Status::Unavailable(fmt::format(
            "store {}: connection lost during commit, outcome unknown: {}", label, trim(e.what())));
      } catch (const pqxx::sql_error& e) {
        failed = sql_error_status(label, e);
        // A session may be unusable after a server shutdown message; do not keep it.
        if (is_transient(failed)) c.reset();
      } catch (const std::exception& e) {
        failed = Status::Internal(fmt::format("store {}: {}", label, trim(e.what())));
      }
      release(std::move(c));
      if (!(idempotent && attempt == 0 && is_transient(failed))) return failed;
      spdlog::debug("{}; retrying once on a new connection", failed.message());
    }
  }

  static std::string trim(std::string text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    return text;
  }
};

PostgresStore::PostgresStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PostgresStore::~PostgresStore() = default;

std::string PostgresStore::redact_url(const std::string& url) {
  std::string out = url.substr(0, url.find('?'));
  const size_t scheme = out.find("://");
  if (scheme == std::string::npos) return out;
  const size_t authority = scheme + 3;
  const size_t path = out.find('/', authority);
  const size_t at = out.rfind('@', path == std::string::npos ? std::string::npos : path);
  if (at == std::string::npos || at < authority) return out;
  const size_t colon = out.find(':', authority);
  if (colon != std::string::npos && colon < at) out.erase(colon, at - colon);
  return out;
}

namespace {

Status check_options(const PostgresStoreOptions& options) {
  if (options.url.empty()) {
    return Status::InvalidArgument("store: no PostgreSQL url configured");
  }
  if (!is_postgres_uri(options.url)) {
    return Status::InvalidArgument(
        fmt::format("store: url '{}' is not a PostgreSQL URL (postgresql://USER@HOST:PORT/DB)",
                    PostgresStore::redact_url(options.url)));
  }
  if (options.connections < 1) {
    return Status::InvalidArgument(
        fmt::format("store: connections must be at least 1, not {}", options.connections));
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<PostgresStore>> PostgresStore::open(const PostgresStoreOptions& options) {
  METRONOME_RETURN_IF_ERROR(check_options(options));
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->conninfo = postgres_conninfo(options);
  impl->label = redact_url(options.url);
  METRONOME_ASSIGN_OR_RETURN(int version, impl->run(true, [&](pqxx::connection& c) -> Result<int> {
    pqxx::nontransaction n(c);
    return read_schema_version(n);
  }));
  if (version < kSchemaVersion) {
    return Status::InvalidArgument(fmt::format(
        "store {}: schema version {} is older than this build's version {}; run `metronome "
        "migrate --config FILE` to migrate it",
        impl->label, version, kSchemaVersion));
  }
  if (version > kSchemaVersion) {
    return Status::InvalidArgument(
        fmt::format("store {}: schema version {} is newer than this build's version {}; upgrade "
                    "Metronome",
                    impl->label, version, kSchemaVersion));
  }
  return std::unique_ptr<PostgresStore>(new PostgresStore(std::move(impl)));
}

Result<SchemaMigration> PostgresStore::migrate(const PostgresStoreOptions& options) {
  METRONOME_RETURN_IF_ERROR(check_options(options));
  Impl impl;
  impl.options = options;
  impl.options.read_only = false;
  impl.options.connections = 1;
  impl.conninfo = postgres_conninfo(impl.options);
  impl.label = redact_url(options.url);
  return impl.run(false, [&](pqxx::connection& c) -> Result<SchemaMigration> {
    SchemaMigration result;
    bool first = true;
    for (const Migration& m : kMigrations) {
      pqxx::work w(c);
      // Held to the end of this transaction: concurrent migrators apply each step once.
      w.exec(fmt::format("SELECT pg_advisory_xact_lock({})", kMigrationLockKey));
      w.exec(kCreateSchemaTable);
      const int version = read_schema_version(w);
      if (first) {
        result.from = version;
        first = false;
      }
      if (version > kSchemaVersion) {
        return Status::InvalidArgument(fmt::format(
            "store {}: schema version {} is newer than this build's version {}; upgrade "
            "Metronome",
            impl.label, version, kSchemaVersion));
      }
      if (m.version <= version) continue;
      w.exec(m.sql);
      w.exec_params("INSERT INTO metronome_schema(version, description) VALUES ($1, $2)", m.version,
                    std::string(m.description));
      w.commit();
      spdlog::info("store {}: migrated to schema version {} ({})", impl.label, m.version,
                   m.description);
    }
    result.to = kSchemaVersion;
    return result;
  });
}

// ---- executions ----

Status PostgresStore::create_execution(const Execution& execution) {
  if (execution.id.empty() || execution.feed.empty()) {
    return Status::InvalidArgument("create_execution: an execution needs an id and a feed");
  }
  ArrayLiteral slot_ms, outcome, fired_at_ns, lateness_us, error, attempts;
  for (const SlotRecord& s : execution.slots) {
    slot_ms.add(to_unix_ms(s.slot));
    outcome.add(to_string(s.outcome));
    fired_at_ns.add(optional_ns(s.fired_at));
    lateness_us.add(s.lateness_us);
    error.add(s.error);
    attempts.add(static_cast<int64_t>(s.attempts));
  }
  return impl_->run(true, [&](pqxx::connection& c) -> Status {
    pqxx::nontransaction n(c);
    n.exec_prepared("create_execution", execution.id.str(), execution.feed.str(),
                    to_unix_ms(execution.window_start), to_unix_ms(execution.window_end),
                    std::string(to_string(execution.state)), to_ns(execution.created_at),
                    optional_ns(execution.finished_at), slot_ms.str(), outcome.str(),
                    fired_at_ns.str(), lateness_us.str(), error.str(), attempts.str());
    return Status::Ok();
  });
}

Result<std::optional<Execution>> PostgresStore::get_execution(const ExecutionId& id) {
  return impl_->run(true, [&](pqxx::connection& c) -> Result<std::optional<Execution>> {
    pqxx::nontransaction n(c);
    std::vector<Execution> found = read_executions(n.exec_prepared("get_execution", id.str()));
    if (found.empty()) return std::optional<Execution>();
    return std::optional<Execution>(std::move(found.front()));
  });
}

Result<std::vector<Execution>> PostgresStore::list_executions(const ExecutionQuery& query) {
  if (query.limit <= 0) {
    return Status::InvalidArgument(
        fmt::format("list_executions: limit must be positive, not {}", query.limit));
  }
  const int64_t before = query.before ? to_unix_ms(*query.before) : kMaxInt;
  return impl_->run(true, [&](pqxx::connection& c) -> Result<std::vector<Execution>> {
    pqxx::nontransaction n(c);
    if (query.feed) {
      return read_executions(
          n.exec_prepared("list_executions_of_feed", query.feed->str(), before, query.limit));
    }
    return read_executions(n.exec_prepared("list_executions", before, query.limit));
  });
}

Result<std::vector<Execution>> PostgresStore::unfinished_executions() {
  return impl_->run(true, [&](pqxx::connection& c) -> Result<std::vector<Execution>> {
    pqxx::nontransaction n(c);
    return read_executions(n.exec_prepared("unfinished_executions"));
  });
}

Status PostgresStore::set_execution_state(const ExecutionId& id, ExecutionState state,
                                          std::optional<WallTime> finished_at) {
  return impl_->run(true, [&](pqxx::connection& c) -> Status {
    pqxx::nontransaction n(c);
    auto r = n.exec_prepared("set_execution_state", std::string(to_string(state)),
                             optional_ns(finished_at), id.str());
    if (r.affected_rows() == 0) {
      return Status::NotFound(fmt::format("store {}: no execution {}", impl_->label, id.str()));
    }
    return Status::Ok();
  });
}

// ---- slots and values ----

namespace {

// The batch as the 22 array parameters of kCommitSlots.
struct CommitArrays {
  ArrayLiteral execution, feed, slot_ms, outcome, fired_at_ns, lateness_us, error, attempts,
      has_record, round, value, decimals, observed_at_ns, published_at_ns, record_execution, signer,
      signature, digest, sources, fence_holder, fence_epoch, proof;

  void add(const SlotCommit& commit) {
    execution.add(commit.execution.str());
    feed.add(commit.feed.str());
    slot_ms.add(to_unix_ms(commit.slot.slot));
    outcome.add(to_string(commit.slot.outcome));
    fired_at_ns.add(optional_ns(commit.slot.fired_at));
    lateness_us.add(commit.slot.lateness_us);
    error.add(commit.slot.error);
    attempts.add(static_cast<int64_t>(commit.slot.attempts));
    has_record.add(commit.record.has_value());
    if (commit.fence) {
      fence_holder.add(commit.fence->holder);
      fence_epoch.add(commit.fence->epoch);
    } else {
      fence_holder.add_null();
      fence_epoch.add_null();
    }
    if (commit.record) {
      const ValueRecord& r = *commit.record;
      round.add(r.round);
      value.add(r.value);
      decimals.add(static_cast<int64_t>(r.decimals));
      observed_at_ns.add(to_ns(r.observed_at));
      published_at_ns.add(to_ns(r.published_at));
      record_execution.add(r.execution.str());
      signer.add(r.signer);
      signature.add(r.signature);
      digest.add(r.digest);
      sources.add(source_answers_to_json(r.sources));
      proof.add(r.proof);
    } else {
      for (ArrayLiteral* a : {&round, &value, &decimals, &observed_at_ns, &published_at_ns,
                              &record_execution, &signer, &signature, &digest, &sources, &proof}) {
        a->add_null();
      }
    }
  }

  pqxx::result exec(pqxx::transaction_base& t) const {
    return t.exec_prepared("commit_slots", execution.str(), feed.str(), slot_ms.str(),
                           outcome.str(), fired_at_ns.str(), lateness_us.str(), error.str(),
                           attempts.str(), has_record.str(), round.str(), value.str(),
                           decimals.str(), observed_at_ns.str(), published_at_ns.str(),
                           record_execution.str(), signer.str(), signature.str(), digest.str(),
                           sources.str(), fence_holder.str(), fence_epoch.str(), proof.str());
  }
};

// The arrays of one statement per run of consecutive commits (over all of `batches`, in order)
// in which no (execution, slot) and no record's (feed, slot) repeats: one statement cannot upsert
// a row twice, and a later commit of the same slot must see the earlier one, as it does when
// commits run one after another.
std::vector<CommitArrays> split_repeats(const std::vector<std::span<const SlotCommit>>& batches) {
  std::vector<CommitArrays> runs(1);
  std::set<std::pair<std::string, int64_t>> slots, records;
  for (std::span<const SlotCommit> batch : batches) {
    for (const SlotCommit& c : batch) {
      std::pair<std::string, int64_t> slot_key{c.execution.str(), to_unix_ms(c.slot.slot)};
      std::pair<std::string, int64_t> record_key{c.feed.str(), to_unix_ms(c.slot.slot)};
      if (slots.contains(slot_key) || (c.record && records.contains(record_key))) {
        runs.emplace_back();
        slots.clear();
        records.clear();
      }
      slots.insert(std::move(slot_key));
      if (c.record) records.insert(std::move(record_key));
      runs.back().add(c);
    }
  }
  return runs;
}

}  // namespace

Result<std::vector<bool>> PostgresStore::Impl::write_group(const std::vector<const Batch*>& group) {
  std::vector<std::span<const SlotCommit>> batches;
  size_t total = 0;
  for (const Batch* b : group) {
    batches.push_back(*b);
    total += b->size();
  }
  std::vector<CommitArrays> runs = split_repeats(batches);
  auto collect = [](const pqxx::result& r, std::vector<bool>& out) {
    for (const pqxx::row& row : r) out.push_back(row[0].as<bool>());
  };
  // Idempotent: a retry inserts nothing twice (it may report a value this call inserted before
  // the connection broke as already present, as a second replica would see it).
  return run(true, [&](pqxx::connection& c) -> Result<std::vector<bool>> {
    std::vector<bool> inserted;
    inserted.reserve(total);
    commit_statements.fetch_add(1);
    if (runs.size() == 1) {
      pqxx::nontransaction n(c);  // one statement: its own transaction, one round trip
      collect(runs.front().exec(n), inserted);
    } else {
      pqxx::work w(c);
      for (const CommitArrays& r : runs) collect(r.exec(w), inserted);
      w.commit();
    }
    if (inserted.size() != total) {
      return Status::Internal(
          fmt::format("commit_slots: {} answers for {} commits", inserted.size(), total));
    }
    return inserted;
  });
}

Result<std::vector<bool>> PostgresStore::commit_slots(std::span<const SlotCommit> commits) {
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
  return impl_->group_commit(commits);
}

int64_t PostgresStore::commit_statements() const {
  return impl_->commit_statements.load();
}

Result<std::vector<ValueRecord>> PostgresStore::list_values(const ValueQuery& query) {
  if (query.limit <= 0) {
    return Status::InvalidArgument(
        fmt::format("list_values: limit must be positive, not {}", query.limit));
  }
  const int64_t since = query.since ? to_unix_ms(*query.since) : kMinInt;
  const int64_t before = query.before ? to_unix_ms(*query.before) : kMaxInt;
  return impl_->run(true, [&](pqxx::connection& c) -> Result<std::vector<ValueRecord>> {
    pqxx::nontransaction n(c);
    pqxx::result r = query.feed ? n.exec_prepared("list_values_of_feed", query.feed->str(), since,
                                                  before, query.limit)
                                : n.exec_prepared("list_values", since, before, query.limit);
    std::vector<ValueRecord> out;
    out.reserve(r.size());
    for (const pqxx::row& row : r) out.push_back(read_value(row));
    return out;
  });
}

Result<std::optional<ValueRecord>> PostgresStore::get_value(const FeedId& feed, SlotTime slot) {
  return impl_->run(true, [&](pqxx::connection& c) -> Result<std::optional<ValueRecord>> {
    pqxx::nontransaction n(c);
    pqxx::result r = n.exec_prepared("get_value", feed.str(), to_unix_ms(slot));
    if (r.empty()) return std::optional<ValueRecord>();
    return std::optional<ValueRecord>(read_value(r[0]));
  });
}

Result<std::optional<ValueRecord>> PostgresStore::latest_value(const FeedId& feed) {
  return impl_->run(true, [&](pqxx::connection& c) -> Result<std::optional<ValueRecord>> {
    pqxx::nontransaction n(c);
    pqxx::result r = n.exec_prepared("latest_value", feed.str());
    if (r.empty()) return std::optional<ValueRecord>();
    return std::optional<ValueRecord>(read_value(r[0]));
  });
}

Result<int64_t> PostgresStore::count_outcomes(SlotOutcome outcome, SlotTime since) {
  return impl_->run(true, [&](pqxx::connection& c) -> Result<int64_t> {
    pqxx::nontransaction n(c);
    return n
        .exec_prepared("count_outcomes", std::string(to_string(outcome)), to_unix_ms(since))[0][0]
        .as<int64_t>();
  });
}

// ---- dead-letter queue ----

Result<int64_t> PostgresStore::dlq_push(const DlqMessage& message) {
  std::optional<std::string> record_json;
  if (message.record) record_json = record_to_json_text(*message.record);
  std::optional<int64_t> slot_ms;
  if (message.slot) slot_ms = to_unix_ms(*message.slot);
  // Not retried: a push whose answer was lost may have landed, and a retry would add it twice.
  return impl_->run(false, [&](pqxx::connection& c) -> Result<int64_t> {
    pqxx::nontransaction n(c);
    return n
        .exec_prepared("dlq_push", message.feed.str(), slot_ms, message.execution.str(),
                       message.stage, message.error, static_cast<int64_t>(message.attempts),
                       to_ns(message.first_failure), to_ns(message.last_failure), record_json)[0][0]
        .as<int64_t>();
  });
}

Result<std::vector<DlqMessage>> PostgresStore::dlq_list(int limit) {
  if (limit <= 0) {
    return Status::InvalidArgument(fmt::format("dlq_list: limit must be positive, not {}", limit));
  }
  return impl_->run(true, [&](pqxx::connection& c) -> Result<std::vector<DlqMessage>> {
    pqxx::nontransaction n(c);
    std::vector<DlqMessage> out;
    for (const pqxx::row& row : n.exec_prepared("dlq_list", limit)) out.push_back(read_dlq(row));
    return out;
  });
}

Result<std::optional<DlqMessage>> PostgresStore::dlq_get(int64_t id) {
  return impl_->run(true, [&](pqxx::connection& c) -> Result<std::optional<DlqMessage>> {
    pqxx::nontransaction n(c);
    pqxx::result r = n.exec_prepared("dlq_get", id);
    if (r.empty()) return std::optional<DlqMessage>();
    return std::optional<DlqMessage>(read_dlq(r[0]));
  });
}

Status PostgresStore::dlq_delete(int64_t id) {
  return impl_->run(false, [&](pqxx::connection& c) -> Status {
    pqxx::nontransaction n(c);
    if (n.exec_prepared("dlq_delete", id).affected_rows() == 0) {
      return Status::NotFound(fmt::format("store {}: no DLQ message {}", impl_->label, id));
    }
    return Status::Ok();
  });
}

Result<int64_t> PostgresStore::dlq_depth() {
  return impl_->run(true, [&](pqxx::connection& c) -> Result<int64_t> {
    pqxx::nontransaction n(c);
    return n.exec_prepared("dlq_depth")[0][0].as<int64_t>();
  });
}

// ---- alarms ----

Result<std::vector<AlarmState>> PostgresStore::alarm_states() {
  return impl_->run(true, [&](pqxx::connection& c) -> Result<std::vector<AlarmState>> {
    pqxx::nontransaction n(c);
    std::vector<AlarmState> out;
    for (const pqxx::row& row : n.exec_prepared("alarm_states")) out.push_back(read_alarm(row));
    return out;
  });
}

Result<std::optional<AlarmState>> PostgresStore::alarm_state(const std::string& name) {
  return impl_->run(true, [&](pqxx::connection& c) -> Result<std::optional<AlarmState>> {
    pqxx::nontransaction n(c);
    pqxx::result r = n.exec_prepared("alarm_state", name);
    if (r.empty()) return std::optional<AlarmState>();
    return std::optional<AlarmState>(read_alarm(r[0]));
  });
}

Status PostgresStore::put_alarm_state(const AlarmState& state) {
  if (state.name.empty()) return Status::InvalidArgument("put_alarm_state: an alarm needs a name");
  return impl_->run(true, [&](pqxx::connection& c) -> Status {
    pqxx::nontransaction n(c);
    n.exec_prepared("put_alarm_state", state.name, std::string(to_string(state.status)),
                    to_ns(state.since), state.reason, std::string(to_string(state.previous)),
                    state.actions_pending);
    return Status::Ok();
  });
}

// ---- health ----

Status PostgresStore::ping() {
  // Retried once: a pooled connection broken by a server restart says nothing about the server.
  return impl_->run(true, [&](pqxx::connection& c) -> Status {
    pqxx::nontransaction n(c);
    n.exec_prepared("ping");
    return Status::Ok();
  });
}

}  // namespace metronome
