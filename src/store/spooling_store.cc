#include "store/spooling_store.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "store/record_json.h"

namespace metronome {
namespace {

using Json = nlohmann::json;

// 'MSPL': tells a spool file from the SQLite store's files.
constexpr int kApplicationId = 0x4d53504c;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS spool (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  kind TEXT NOT NULL,            -- execution | state | slot | dlq
  feed TEXT NOT NULL,
  slot_ms INTEGER,               -- slot entries (and DLQ messages about a slot)
  spooled_at_ns INTEGER NOT NULL,
  body TEXT NOT NULL             -- the write, as JSON
);
CREATE TABLE IF NOT EXISTS rejected (
  seq INTEGER PRIMARY KEY,
  kind TEXT NOT NULL,
  feed TEXT NOT NULL,
  slot_ms INTEGER,
  spooled_at_ns INTEGER NOT NULL,
  body TEXT NOT NULL,
  error TEXT NOT NULL,
  rejected_at_ns INTEGER NOT NULL
);)sql";

bool unavailable(const Status& s) {
  return s.code() == Status::Code::kUnavailable;
}

int64_t ns_of(WallTime t) {
  return t.time_since_epoch().count();
}
WallTime wall_of(int64_t ns) {
  return WallTime(Nanos(ns));
}
Json optional_ns(const std::optional<WallTime>& t) {
  return t ? Json(ns_of(*t)) : Json(nullptr);
}
std::optional<WallTime> optional_wall(const Json& j) {
  if (j.is_null()) return std::nullopt;
  return wall_of(j.get<int64_t>());
}

Json slot_to_json(const SlotRecord& s) {
  return Json{{"slot_ms", to_unix_ms(s.slot)},
              {"outcome", std::string(to_string(s.outcome))},
              {"fired_at_ns", optional_ns(s.fired_at)},
              {"lateness_us", s.lateness_us ? Json(*s.lateness_us) : Json(nullptr)},
              {"error", s.error},
              {"attempts", s.attempts}};
}

Result<SlotRecord> slot_from_json(const Json& j) {
  SlotRecord s;
  s.slot = slot_from_unix_ms(j.at("slot_ms").get<int64_t>());
  METRONOME_ASSIGN_OR_RETURN(s.outcome, parse_slot_outcome(j.at("outcome").get<std::string>()));
  s.fired_at = optional_wall(j.at("fired_at_ns"));
  if (!j.at("lateness_us").is_null()) s.lateness_us = j.at("lateness_us").get<int64_t>();
  s.error = j.at("error").get<std::string>();
  s.attempts = j.at("attempts").get<int>();
  return s;
}

Json record_json(const std::optional<ValueRecord>& r) {
  return r ? Json::parse(record_to_json_text(*r)) : Json(nullptr);
}

Result<std::optional<ValueRecord>> record_from(const Json& j) {
  if (j.is_null()) return std::optional<ValueRecord>();
  METRONOME_ASSIGN_OR_RETURN(ValueRecord r, record_from_json_text(j.dump()));
  return std::optional<ValueRecord>(std::move(r));
}

// One write waiting in the spool.
struct Entry {
  int64_t seq = 0;
  std::string kind;
  std::string feed;
  std::optional<int64_t> slot_ms;
  int64_t spooled_at_ns = 0;
  std::string body;
};

Entry slot_entry(const SlotCommit& c) {
  Json body{{"execution", c.execution.str()},
            {"feed", c.feed.str()},
            {"slot", slot_to_json(c.slot)},
            {"record", record_json(c.record)},
            {"fence", c.fence ? Json{{"holder", c.fence->holder}, {"epoch", c.fence->epoch}}
                              : Json(nullptr)}};
  return Entry{0, "slot", c.feed.str(), to_unix_ms(c.slot.slot), 0, body.dump()};
}

// The fence is read back for the record's sake only: replay drops it.
Result<SlotCommit> slot_commit_of(const Json& j) {
  SlotCommit c;
  c.execution = ExecutionId(j.at("execution").get<std::string>());
  c.feed = FeedId(j.at("feed").get<std::string>());
  METRONOME_ASSIGN_OR_RETURN(c.slot, slot_from_json(j.at("slot")));
  METRONOME_ASSIGN_OR_RETURN(c.record, record_from(j.at("record")));
  return c;
}

Entry execution_entry(const Execution& e) {
  Json slots = Json::array();
  for (const SlotRecord& s : e.slots) slots.push_back(slot_to_json(s));
  Json body{{"id", e.id.str()},
            {"feed", e.feed.str()},
            {"window_start_ms", to_unix_ms(e.window_start)},
            {"window_end_ms", to_unix_ms(e.window_end)},
            {"state", std::string(to_string(e.state))},
            {"created_at_ns", ns_of(e.created_at)},
            {"finished_at_ns", optional_ns(e.finished_at)},
            {"slots", std::move(slots)}};
  return Entry{0, "execution", e.feed.str(), std::nullopt, 0, body.dump()};
}

Result<Execution> execution_of(const Json& j) {
  Execution e;
  e.id = ExecutionId(j.at("id").get<std::string>());
  e.feed = FeedId(j.at("feed").get<std::string>());
  e.window_start = slot_from_unix_ms(j.at("window_start_ms").get<int64_t>());
  e.window_end = slot_from_unix_ms(j.at("window_end_ms").get<int64_t>());
  METRONOME_ASSIGN_OR_RETURN(e.state, parse_execution_state(j.at("state").get<std::string>()));
  e.created_at = wall_of(j.at("created_at_ns").get<int64_t>());
  e.finished_at = optional_wall(j.at("finished_at_ns"));
  for (const Json& s : j.at("slots")) {
    METRONOME_ASSIGN_OR_RETURN(SlotRecord slot, slot_from_json(s));
    e.slots.push_back(std::move(slot));
  }
  return e;
}

Entry dlq_entry(const DlqMessage& m) {
  Json body{{"feed", m.feed.str()},
            {"slot_ms", m.slot ? Json(to_unix_ms(*m.slot)) : Json(nullptr)},
            {"execution", m.execution.str()},
            {"stage", m.stage},
            {"error", m.error},
            {"attempts", m.attempts},
            {"first_failure_ns", ns_of(m.first_failure)},
            {"last_failure_ns", ns_of(m.last_failure)},
            {"record", record_json(m.record)}};
  std::optional<int64_t> slot_ms;
  if (m.slot) slot_ms = to_unix_ms(*m.slot);
  return Entry{0, "dlq", m.feed.str(), slot_ms, 0, body.dump()};
}

Result<DlqMessage> dlq_of(const Json& j) {
  DlqMessage m;
  m.feed = FeedId(j.at("feed").get<std::string>());
  if (!j.at("slot_ms").is_null()) m.slot = slot_from_unix_ms(j.at("slot_ms").get<int64_t>());
  m.execution = ExecutionId(j.at("execution").get<std::string>());
  m.stage = j.at("stage").get<std::string>();
  m.error = j.at("error").get<std::string>();
  m.attempts = j.at("attempts").get<int>();
  m.first_failure = wall_of(j.at("first_failure_ns").get<int64_t>());
  m.last_failure = wall_of(j.at("last_failure_ns").get<int64_t>());
  METRONOME_ASSIGN_OR_RETURN(m.record, record_from(j.at("record")));
  return m;
}

// The checks every backend makes, made before spooling so that a bad commit is refused now
// rather than rejected when the database is back.
Status validate(std::span<const SlotCommit> commits) {
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
  return Status::Ok();
}

std::string describe(const Entry& e) {
  std::string text = fmt::format("spool entry {} ({} feed {}", e.seq, e.kind, e.feed);
  if (e.slot_ms) text += fmt::format(" slot {}", format_iso_ms(slot_from_unix_ms(*e.slot_ms)));
  return text + ")";
}

// What replaying one entry did.
enum class Replay { kWritten, kAlreadyPresent, kUnavailable, kRejected };

}  // namespace

struct SpoolingStore::Impl {
  std::unique_ptr<Store> inner;
  SpoolOptions options;
  Clock& clock;
  std::function<void(int64_t)> on_depth;

  mutable std::mutex mu;  // the spool file and the fields below
  std::unique_ptr<SQLite::Database> db;
  // True from the first spooled write until a drain finds the spool empty: while true every
  // write goes to the spool, so none overtakes a spooled one.
  bool spooling = false;
  SpoolStats stats;

  std::mutex drain_mu;  // one drain at a time
  std::jthread drainer;

  Impl(std::unique_ptr<Store> s, SpoolOptions o, Clock& c)
      : inner(std::move(s)), options(std::move(o)), clock(c) {}

  std::string label() const { return "spool " + options.path.string(); }

  Status file_error(const std::exception& e) const {
    return Status::IOError(fmt::format("{}: {}", label(), e.what()));
  }

  void notify(int64_t depth) const {
    if (on_depth) on_depth(depth);
  }

  // Marks an outage (logged once per outage).
  void on_unavailable(const Status& cause) {
    std::lock_guard lock(mu);
    if (!stats.outage) {
      stats.outage = true;
      spdlog::warn(
          "database unavailable ({}); slots go on being published into the spool {} and are "
          "written to the database when it answers again",
          cause.ToString(), options.path.string());
    }
  }

  // Appends entries in one durable transaction; the spool is then in use.
  Status append(std::vector<Entry> entries) {
    int64_t depth = 0;
    {
      std::lock_guard lock(mu);
      try {
        SQLite::Transaction t(*db);
        SQLite::Statement insert(
            *db,
            "INSERT INTO spool(kind, feed, slot_ms, spooled_at_ns, body) VALUES (?, ?, ?, ?, ?)");
        const int64_t now = ns_of(clock.now());
        for (const Entry& e : entries) {
          insert.bind(1, e.kind);
          insert.bind(2, e.feed);
          if (e.slot_ms) {
            insert.bind(3, *e.slot_ms);
          } else {
            insert.bind(3);
          }
          insert.bind(4, now);
          insert.bind(5, e.body);
          insert.exec();
          insert.reset();
        }
        t.commit();
      } catch (const std::exception& e) {
        return file_error(e);
      }
      spooling = true;
      stats.spooled += static_cast<int64_t>(entries.size());
      stats.depth += static_cast<int64_t>(entries.size());
      depth = stats.depth;
    }
    notify(depth);
    return Status::Ok();
  }

  bool in_spool_mode() const {
    std::lock_guard lock(mu);
    return spooling;
  }

  // Runs `direct` (which returns the database's status) unless the spool is in use; spools
  // `entries()` when the spool is in use or the database is unavailable. Returns whether it
  // spooled (false: `direct` ran and its answer stands).
  template <typename F>
  Result<bool> write(F&& direct, const std::function<std::vector<Entry>()>& entries) {
    if (!in_spool_mode()) {
      Status status = direct();
      if (!unavailable(status)) return false;
      on_unavailable(status);
    }
    METRONOME_RETURN_IF_ERROR(append(entries()));
    return true;
  }

  Result<std::vector<Entry>> read_batch() const {
    std::lock_guard lock(mu);
    std::vector<Entry> out;
    try {
      SQLite::Statement q(
          *db,
          "SELECT seq, kind, feed, slot_ms, spooled_at_ns, body FROM spool ORDER BY seq LIMIT ?");
      q.bind(1, std::max(1, options.batch));
      while (q.executeStep()) {
        Entry e;
        e.seq = q.getColumn(0).getInt64();
        e.kind = q.getColumn(1).getString();
        e.feed = q.getColumn(2).getString();
        if (!q.getColumn(3).isNull()) e.slot_ms = q.getColumn(3).getInt64();
        e.spooled_at_ns = q.getColumn(4).getInt64();
        e.body = q.getColumn(5).getString();
        out.push_back(std::move(e));
      }
    } catch (const std::exception& e) {
      return file_error(e);
    }
    return out;
  }

  // Removes a replayed entry (moved to `rejected` with `error` when refused).
  Status remove(const Entry& e, Replay how, const std::string& error) {
    int64_t depth = 0;
    {
      std::lock_guard lock(mu);
      try {
        SQLite::Transaction t(*db);
        if (how == Replay::kRejected) {
          SQLite::Statement keep(*db,
                                 "INSERT OR REPLACE INTO rejected(seq, kind, feed, slot_ms, "
                                 "spooled_at_ns, body, error, rejected_at_ns) "
                                 "SELECT seq, kind, feed, slot_ms, spooled_at_ns, body, ?, ? "
                                 "FROM spool WHERE seq = ?");
          keep.bind(1, error);
          keep.bind(2, ns_of(clock.now()));
          keep.bind(3, e.seq);
          keep.exec();
        }
        SQLite::Statement del(*db, "DELETE FROM spool WHERE seq = ?");
        del.bind(1, e.seq);
        del.exec();
        t.commit();
      } catch (const std::exception& ex) {
        return file_error(ex);
      }
      --stats.depth;
      switch (how) {
        case Replay::kWritten:
          ++stats.replayed;
          break;
        case Replay::kAlreadyPresent:
          ++stats.already_present;
          break;
        case Replay::kRejected:
          ++stats.rejected;
          break;
        case Replay::kUnavailable:
          break;
      }
      depth = stats.depth;
    }
    notify(depth);
    return Status::Ok();
  }

  // Ends spool mode if the spool is empty (under the lock appends take, so no write is left
  // behind). Returns whether it did, with the outage's figures.
  bool finish_if_empty() {
    std::lock_guard lock(mu);
    try {
      SQLite::Statement q(*db, "SELECT count(*) FROM spool");
      q.executeStep();
      stats.depth = q.getColumn(0).getInt64();
    } catch (const std::exception& e) {
      spdlog::error("{}", file_error(e).ToString());
      return false;
    }
    if (stats.depth != 0) return false;
    const bool was = spooling;
    spooling = false;
    stats.outage = false;
    if (was) {
      spdlog::info(
          "database answers again; spool drained: {} entries written, {} already in the "
          "database, {} rejected (since start)",
          stats.replayed, stats.already_present, stats.rejected);
    }
    return true;
  }

  // Replays one entry on the database, without its fence, insert-if-absent.
  std::pair<Replay, Status> replay(const Entry& e) {
    Json body;
    try {
      body = Json::parse(e.body);
    } catch (const Json::exception& ex) {
      return {Replay::kRejected, Status::InvalidArgument(ex.what())};
    }
    auto classify = [](const Status& s, Replay ok) -> std::pair<Replay, Status> {
      if (s.ok()) return {ok, s};
      return {unavailable(s) ? Replay::kUnavailable : Replay::kRejected, s};
    };
    try {
      if (e.kind == "execution") {
        auto execution = execution_of(body);
        if (!execution.ok()) return {Replay::kRejected, execution.status()};
        return classify(inner->create_execution(*execution), Replay::kWritten);
      }
      if (e.kind == "state") {
        auto state = parse_execution_state(body.at("state").get<std::string>());
        if (!state.ok()) return {Replay::kRejected, state.status()};
        ExecutionId id(body.at("id").get<std::string>());
        Status s = inner->set_execution_state(id, *state, optional_wall(body.at("finished_at_ns")));
        if (s.code() == Status::Code::kNotFound) {
          spdlog::warn("{}: the database has no execution {}; state {} dropped", describe(e),
                       id.str(), to_string(*state));
          return {Replay::kAlreadyPresent, Status::Ok()};
        }
        return classify(s, Replay::kWritten);
      }
      if (e.kind == "dlq") {
        auto message = dlq_of(body);
        if (!message.ok()) return {Replay::kRejected, message.status()};
        auto pushed = inner->dlq_push(*message);
        return classify(pushed.status(), Replay::kWritten);
      }
      if (e.kind == "slot") return replay_slot(e, body);
    } catch (const Json::exception& ex) {
      return {Replay::kRejected, Status::InvalidArgument(ex.what())};
    }
    return {Replay::kRejected, Status::InvalidArgument(fmt::format("unknown kind '{}'", e.kind))};
  }

  std::pair<Replay, Status> replay_slot(const Entry& e, const Json& body) {
    auto commit = slot_commit_of(body);
    if (!commit.ok()) return {Replay::kRejected, commit.status()};
    const SlotCommit& c = *commit;
    auto fail = [](const Status& s) -> std::pair<Replay, Status> {
      return {unavailable(s) ? Replay::kUnavailable : Replay::kRejected, s};
    };
    // Left alone: a slot that has a value, or an outcome, in the database already.
    auto value = inner->get_value(c.feed, c.slot.slot);
    if (!value.ok()) return fail(value.status());
    if (*value) {
      spdlog::warn(
          "{}: the database already has value {} for this slot; kept it, dropped the spooled "
          "{} {}",
          describe(e), (*value)->value, to_string(c.slot.outcome),
          c.record ? "value " + c.record->value : std::string("outcome"));
      return {Replay::kAlreadyPresent, Status::Ok()};
    }
    auto execution = inner->get_execution(c.execution);
    if (!execution.ok()) return fail(execution.status());
    if (*execution) {
      for (const SlotRecord& s : (*execution)->slots) {
        if (s.slot != c.slot.slot || s.outcome == SlotOutcome::kPlanned) continue;
        spdlog::warn(
            "{}: the database already has outcome {} for this slot; kept it, dropped the "
            "spooled {} {}",
            describe(e), to_string(s.outcome), to_string(c.slot.outcome),
            c.record ? "value " + c.record->value : std::string("outcome"));
        return {Replay::kAlreadyPresent, Status::Ok()};
      }
    }
    // Unfenced: the lease it was produced under may have lapsed during the outage; the
    // (feed, slot) primary key keeps exactly one value whoever writes.
    auto committed = inner->commit_slots(std::span<const SlotCommit>(&c, 1));
    if (!committed.ok()) return fail(committed.status());
    if (c.record && !(*committed)[0]) {
      // Written by someone else between the check and the commit: theirs is kept.
      spdlog::warn("{}: a value for this slot arrived meanwhile; kept it, dropped value {}",
                   describe(e), c.record->value);
      return {Replay::kAlreadyPresent, Status::Ok()};
    }
    return {Replay::kWritten, Status::Ok()};
  }

  Result<int64_t> drain_once() {
    std::lock_guard drain_lock(drain_mu);
    for (;;) {
      METRONOME_ASSIGN_OR_RETURN(std::vector<Entry> batch, read_batch());
      if (batch.empty()) {
        if (finish_if_empty()) return int64_t{0};
        continue;  // appended meanwhile
      }
      for (const Entry& e : batch) {
        auto [how, status] = replay(e);
        if (how == Replay::kUnavailable) {
          on_unavailable(status);
          std::lock_guard lock(mu);
          return stats.depth;
        }
        if (how == Replay::kRejected) {
          spdlog::error("{}: refused by the database, kept in the spool's rejected table: {}",
                        describe(e), status.ToString());
        }
        METRONOME_RETURN_IF_ERROR(remove(e, how, status.ToString()));
      }
    }
  }

  void drain_loop(std::stop_token stop) {
    while (clock.sleep_for(options.drain_interval, stop)) {
      if (!in_spool_mode()) continue;
      auto left = drain_once();
      if (!left.ok()) spdlog::error("spool drain: {}", left.status().ToString());
    }
  }
};

Result<std::unique_ptr<SpoolingStore>> SpoolingStore::open(std::unique_ptr<Store> inner,
                                                           SpoolOptions options, Clock& clock) {
  if (!inner) return Status::InvalidArgument("spool: no store to spool for");
  if (options.path.empty()) return Status::InvalidArgument("spool: the spool file path is empty");
  if (options.drain_interval <= Nanos(0)) {
    return Status::InvalidArgument(
        fmt::format("spool {}: drain interval must be positive", options.path.string()));
  }
  auto impl = std::make_unique<Impl>(std::move(inner), std::move(options), clock);
  const std::filesystem::path& path = impl->options.path;
  std::error_code ec;
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
  if (ec) {
    return Status::IOError(
        fmt::format("spool {}: cannot create its folder: {}", path.string(), ec.message()));
  }
  try {
    impl->db = std::make_unique<SQLite::Database>(path.string(),
                                                  SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    impl->db->exec("PRAGMA journal_mode = WAL");
    impl->db->exec("PRAGMA synchronous = FULL");
    const int app_id = impl->db->execAndGet("PRAGMA application_id").getInt();
    if (app_id != 0 && app_id != kApplicationId) {
      return Status::InvalidArgument(fmt::format(
          "spool {}: not a Metronome spool file (application_id {:#x})", path.string(), app_id));
    }
    impl->db->exec(fmt::format("PRAGMA application_id = {}", kApplicationId));
    impl->db->exec(kSchema);
    impl->stats.depth = impl->db->execAndGet("SELECT count(*) FROM spool").getInt64();
  } catch (const std::exception& e) {
    return impl->file_error(e);
  }
  if (impl->stats.depth > 0) {
    impl->spooling = true;
    spdlog::warn("spool {} holds {} entries from an earlier run; writing them to the database",
                 path.string(), impl->stats.depth);
  }
  return std::unique_ptr<SpoolingStore>(new SpoolingStore(std::move(impl)));
}

SpoolingStore::SpoolingStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

SpoolingStore::~SpoolingStore() {
  stop();
}

void SpoolingStore::start() {
  if (impl_->drainer.joinable()) return;
  impl_->drainer = std::jthread([impl = impl_.get()](std::stop_token st) { impl->drain_loop(st); });
}

void SpoolingStore::stop() {
  if (!impl_->drainer.joinable()) return;
  impl_->drainer.request_stop();
  impl_->drainer.join();
}

Result<int64_t> SpoolingStore::drain_once() {
  return impl_->drain_once();
}

SpoolStats SpoolingStore::stats() const {
  std::lock_guard lock(impl_->mu);
  return impl_->stats;
}

const std::filesystem::path& SpoolingStore::path() const {
  return impl_->options.path;
}

void SpoolingStore::set_on_depth(std::function<void(int64_t)> callback) {
  impl_->on_depth = std::move(callback);
}

// ---- spooled writes ----

Status SpoolingStore::create_execution(const Execution& execution) {
  if (execution.id.empty() || execution.feed.empty()) {
    return Status::InvalidArgument("create_execution: an execution needs an id and a feed");
  }
  Status direct;
  auto spooled = impl_->write([&] { return direct = impl_->inner->create_execution(execution); },
                              [&] { return std::vector<Entry>{execution_entry(execution)}; });
  if (!spooled.ok()) return spooled.status();
  return *spooled ? Status::Ok() : direct;
}

Status SpoolingStore::set_execution_state(const ExecutionId& id, ExecutionState state,
                                          std::optional<WallTime> finished_at) {
  Status direct;
  auto spooled = impl_->write(
      [&] { return direct = impl_->inner->set_execution_state(id, state, finished_at); },
      [&] {
        Json body{{"id", id.str()},
                  {"state", std::string(to_string(state))},
                  {"finished_at_ns", optional_ns(finished_at)}};
        const std::string feed = id.str().substr(0, id.str().find('@'));
        return std::vector<Entry>{Entry{0, "state", feed, std::nullopt, 0, body.dump()}};
      });
  if (!spooled.ok()) return spooled.status();
  return *spooled ? Status::Ok() : direct;
}

Result<std::vector<bool>> SpoolingStore::commit_slots(std::span<const SlotCommit> commits) {
  METRONOME_RETURN_IF_ERROR(validate(commits));
  if (commits.empty()) return std::vector<bool>();
  std::optional<Result<std::vector<bool>>> direct;
  auto spooled = impl_->write(
      [&] {
        direct = impl_->inner->commit_slots(commits);
        return direct->status();
      },
      [&] {
        std::vector<Entry> entries;
        for (const SlotCommit& c : commits) entries.push_back(slot_entry(c));
        return entries;
      });
  if (!spooled.ok()) return spooled.status();
  if (!*spooled) return std::move(*direct);
  // Spooled: each value will be inserted when the database is back (or found there already).
  std::vector<bool> inserted;
  for (const SlotCommit& c : commits) inserted.push_back(c.record.has_value());
  return inserted;
}

Result<int64_t> SpoolingStore::dlq_push(const DlqMessage& message) {
  std::optional<Result<int64_t>> direct;
  auto spooled = impl_->write(
      [&] {
        direct = impl_->inner->dlq_push(message);
        return direct->status();
      },
      [&] { return std::vector<Entry>{dlq_entry(message)}; });
  if (!spooled.ok()) return spooled.status();
  if (!*spooled) return std::move(*direct);
  return int64_t{0};
}

// ---- passed through ----

Result<std::optional<Execution>> SpoolingStore::get_execution(const ExecutionId& id) {
  return impl_->inner->get_execution(id);
}
Result<std::vector<Execution>> SpoolingStore::list_executions(const ExecutionQuery& query) {
  return impl_->inner->list_executions(query);
}
Result<std::vector<Execution>> SpoolingStore::unfinished_executions() {
  return impl_->inner->unfinished_executions();
}
Result<std::vector<ValueRecord>> SpoolingStore::list_values(const ValueQuery& query) {
  return impl_->inner->list_values(query);
}
Result<std::optional<ValueRecord>> SpoolingStore::get_value(const FeedId& feed, SlotTime slot) {
  return impl_->inner->get_value(feed, slot);
}
Result<std::optional<ValueRecord>> SpoolingStore::latest_value(const FeedId& feed) {
  return impl_->inner->latest_value(feed);
}
Result<int64_t> SpoolingStore::count_outcomes(SlotOutcome outcome, SlotTime since) {
  return impl_->inner->count_outcomes(outcome, since);
}
Result<std::vector<DlqMessage>> SpoolingStore::dlq_list(int limit) {
  return impl_->inner->dlq_list(limit);
}
Result<std::optional<DlqMessage>> SpoolingStore::dlq_get(int64_t id) {
  return impl_->inner->dlq_get(id);
}
Status SpoolingStore::dlq_delete(int64_t id) {
  return impl_->inner->dlq_delete(id);
}
Result<int64_t> SpoolingStore::dlq_depth() {
  return impl_->inner->dlq_depth();
}
Result<std::vector<AlarmState>> SpoolingStore::alarm_states() {
  return impl_->inner->alarm_states();
}
Result<std::optional<AlarmState>> SpoolingStore::alarm_state(const std::string& name) {
  return impl_->inner->alarm_state(name);
}
Status SpoolingStore::put_alarm_state(const AlarmState& state) {
  return impl_->inner->put_alarm_state(state);
}
Status SpoolingStore::ping() {
  return impl_->inner->ping();
}

void SpoolingStore::run_deferred_work() {
  impl_->inner->run_deferred_work();
}

}  // namespace metronome
