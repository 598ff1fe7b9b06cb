#include "store/sqlite_store.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <thread>

#include "testing/faulty_store.h"
#include "testing/store_conformance.h"

namespace metronome {
namespace {

using testing::FaultyStore;
using ::testing::HasSubstr;
using testing::StoreConformanceTest;
using testing::StoreFactory;
using testing::StoreFactoryName;
using testing::TempDir;

SqliteStoreOptions options_in(const std::filesystem::path& dir) {
  return {.path = dir / "metronome.db", .dlq_path = dir / "metronome-dlq.db"};
}

std::unique_ptr<Store> open_sqlite(const std::filesystem::path& dir) {
  auto store = SqliteStore::open(options_in(dir));
  if (!store.ok()) {
    ADD_FAILURE() << store.status().ToString();
    return nullptr;
  }
  return std::move(store).value();
}

INSTANTIATE_TEST_SUITE_P(Sqlite, StoreConformanceTest,
                         ::testing::Values(StoreFactory{"sqlite", open_sqlite}), StoreFactoryName);

// ---- SQLite-specific behaviour ----

const SlotTime kSlot = slot_from_unix_ms(1'795'000'020'000);

ValueRecord record_at(SlotTime slot, std::string value) {
  ValueRecord r;
  r.feed = FeedId("random_int");
  r.round = to_unix_ms(slot) / 2000;
  r.slot = slot;
  r.value = std::move(value);
  r.observed_at = WallTime(slot) + Nanos(123'456'789);
  r.published_at = WallTime(slot) + Nanos(223'456'789);
  r.execution = make_execution_id(r.feed, kSlot);
  r.signer = "0xabc";
  r.signature = "0xdef";
  r.digest = "0x123";
  return r;
}

std::vector<SlotCommit> publish(const ValueRecord& r) {
  SlotCommit c;
  c.execution = r.execution;
  c.feed = r.feed;
  c.slot.slot = r.slot;
  c.slot.outcome = SlotOutcome::kPublished;
  c.slot.attempts = 1;
  c.record = r;
  return {c};
}

DlqMessage dlq_message(std::string error) {
  DlqMessage m;
  m.feed = FeedId("random_int");
  m.slot = kSlot;
  m.execution = make_execution_id(m.feed, kSlot);
  m.stage = "publish";
  m.error = std::move(error);
  m.attempts = 1;
  m.first_failure = WallTime(kSlot);
  m.last_failure = WallTime(kSlot) + Seconds(1);
  return m;
}

int pragma_int(const std::filesystem::path& file, const char* pragma) {
  SQLite::Database db(file.string(), SQLite::OPEN_READONLY);
  return db.execAndGet(std::string("PRAGMA ") + pragma).getInt();
}

class SqliteStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<SqliteStore> open(const SqliteStoreOptions& options) {
    auto store = SqliteStore::open(options);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(store).value() : nullptr;
  }

  TempDir dir_{"metronome-sqlite"};
  SqliteStoreOptions options_ = options_in(dir_.path());
};

TEST_F(SqliteStoreTest, MigratesEmptyFilesAndCreatesFolders) {
  options_.path = dir_.path() / "a" / "b" / "values.db";
  options_.dlq_path = dir_.path() / "c" / "dlq.db";
  std::filesystem::create_directories(options_.path.parent_path());
  std::ofstream(options_.path).close();  // an empty file is an empty database
  ASSERT_EQ(std::filesystem::file_size(options_.path), 0u);

  auto store = open(options_);
  ASSERT_NE(store, nullptr);
  for (const auto& file : {options_.path, options_.dlq_path}) {
    EXPECT_EQ(pragma_int(file, "user_version"), SqliteStore::kSchemaVersion) << file;
    SQLite::Database db(file.string(), SQLite::OPEN_READONLY);
    EXPECT_EQ(db.execAndGet("PRAGMA journal_mode").getString(), "wal") << file;
  }
  SQLite::Database values(options_.path.string(), SQLite::OPEN_READONLY);
  for (const char* table : {"value_log", "value_feed_index", "value_index_state", "feed_latest",
                            "executions", "slot_outcomes"}) {
    EXPECT_TRUE(values.tableExists(table)) << table;
  }
  SQLite::Database dlq(options_.dlq_path.string(), SQLite::OPEN_READONLY);
  for (const char* table : {"dlq", "alarms"}) EXPECT_TRUE(dlq.tableExists(table)) << table;

  // Opening a migrated file again changes nothing.
  store.reset();
  store = open(options_);
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->ping().ok());
}

// A file as version 1 wrote it (the layout clustered by feed, planned slots as rows, no
// sources column), with a value, an execution whose slots are published, failed and planned,
// and an outcome for an execution that was never created: after the migration to version 3
// every one of them reads back the same.
TEST_F(SqliteStoreTest, MigratesAVersion1FileKeepingValuesExecutionsAndOutcomes) {
  {
    SQLite::Database db(options_.path.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db.exec(R"sql(
CREATE TABLE "values" (
  feed TEXT NOT NULL, slot_ms INTEGER NOT NULL, round INTEGER NOT NULL, value TEXT NOT NULL,
  decimals INTEGER NOT NULL, observed_at_ns INTEGER NOT NULL, published_at_ns INTEGER NOT NULL,
  execution TEXT NOT NULL, signer TEXT NOT NULL, signature TEXT NOT NULL, digest TEXT NOT NULL,
  PRIMARY KEY (feed, slot_ms)) WITHOUT ROWID, STRICT;
CREATE TABLE executions (
  id TEXT PRIMARY KEY NOT NULL, feed TEXT NOT NULL, window_start_ms INTEGER NOT NULL,
  window_end_ms INTEGER NOT NULL, state TEXT NOT NULL, created_at_ns INTEGER NOT NULL,
  finished_at_ns INTEGER) STRICT;
CREATE TABLE slots (
  execution TEXT NOT NULL, slot_ms INTEGER NOT NULL, feed TEXT NOT NULL, outcome TEXT NOT NULL,
  fired_at_ns INTEGER, lateness_us INTEGER, error TEXT NOT NULL, attempts INTEGER NOT NULL,
  PRIMARY KEY (execution, slot_ms)) STRICT;
INSERT INTO "values" VALUES ('f', 2000, 1, '12.5', 1, 3, 4, 'f@x', '', '', '');
INSERT INTO executions VALUES ('f@x', 'f', 0, 6000, 'running', 5, NULL);
INSERT INTO slots VALUES ('f@x', 2000, 'f', 'published', 2001000000, 1000, '', 1);
INSERT INTO slots VALUES ('f@x', 4000, 'f', 'failed', 4001000000, 1000, 'timeout', 3);
INSERT INTO slots VALUES ('f@x', 0, 'f', 'planned', NULL, NULL, '', 0);
INSERT INTO slots VALUES ('g@never', 2000, 'g', 'missed', NULL, NULL, 'down', 0);
PRAGMA application_id = 1297370710;
PRAGMA user_version = 1;
)sql");
    SQLite::Database dlq(options_.dlq_path.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    dlq.exec(R"sql(
CREATE TABLE dlq (
  id INTEGER PRIMARY KEY AUTOINCREMENT, feed TEXT NOT NULL, slot_ms INTEGER,
  execution TEXT NOT NULL, stage TEXT NOT NULL, error TEXT NOT NULL, attempts INTEGER NOT NULL,
  first_failure_ns INTEGER NOT NULL, last_failure_ns INTEGER NOT NULL, record_json TEXT) STRICT;
CREATE TABLE alarms (
  name TEXT PRIMARY KEY NOT NULL, status TEXT NOT NULL, since_ns INTEGER NOT NULL,
  reason TEXT NOT NULL, previous TEXT NOT NULL DEFAULT 'OK',
  actions_pending INTEGER NOT NULL DEFAULT 0) STRICT;
PRAGMA application_id = 1297370692;
PRAGMA user_version = 1;
)sql");
  }
  auto store = open(options_);
  ASSERT_NE(store, nullptr);
  for (const auto& file : {options_.path, options_.dlq_path}) {
    EXPECT_EQ(pragma_int(file, "user_version"), SqliteStore::kSchemaVersion) << file;
  }
  auto old = store->get_value(FeedId("f"), slot_from_unix_ms(2000));
  ASSERT_TRUE(old.ok() && old->has_value()) << old.status().ToString();
  EXPECT_EQ((*old)->value, "12.5");
  EXPECT_TRUE((*old)->sources.empty());
  auto latest = store->latest_value(FeedId("f"));
  ASSERT_TRUE(latest.ok() && latest->has_value());
  EXPECT_EQ((*latest)->slot, slot_from_unix_ms(2000));
  auto listed = store->list_values({.feed = FeedId("f")});
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);

  auto e = store->get_execution(ExecutionId("f@x"));
  ASSERT_TRUE(e.ok() && e->has_value()) << e.status().ToString();
  ASSERT_EQ((*e)->slots.size(), 3u);
  EXPECT_EQ((*e)->slots[0].slot, slot_from_unix_ms(0));
  EXPECT_EQ((*e)->slots[0].outcome, SlotOutcome::kPlanned);
  EXPECT_EQ((*e)->slots[1].outcome, SlotOutcome::kPublished);
  EXPECT_EQ((*e)->slots[1].lateness_us, 1000);
  EXPECT_EQ((*e)->slots[1].fired_at, WallTime(Nanos(2001000000)));
  EXPECT_EQ((*e)->slots[1].attempts, 1);
  EXPECT_EQ((*e)->slots[2].outcome, SlotOutcome::kFailed);
  EXPECT_EQ((*e)->slots[2].error, "timeout");
  EXPECT_EQ((*e)->slots[2].attempts, 3);
  auto count = [&](SlotOutcome o) {
    auto n = store->count_outcomes(o, slot_from_unix_ms(0));
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    return n.value_or(-1);
  };
  EXPECT_EQ(count(SlotOutcome::kPublished), 1);
  EXPECT_EQ(count(SlotOutcome::kFailed), 1);
  EXPECT_EQ(count(SlotOutcome::kMissed), 1);  // the execution that was never created
  EXPECT_EQ(count(SlotOutcome::kPlanned), 1);
  // Schema step 4: a published slot's outcome is its value row, not an outcome row.
  store.reset();
  SQLite::Database values(options_.path.string(), SQLite::OPEN_READONLY);
  EXPECT_EQ(
      values.execAndGet("SELECT count(*) FROM slot_outcomes WHERE outcome = 'published'").getInt(),
      0);
  EXPECT_EQ(values.execAndGet("SELECT count(*) FROM slot_outcomes").getInt(), 2);
  // Schema step 5: feed_latest covered every row when it was updated in each commit.
  EXPECT_EQ(values.execAndGet("SELECT latest_through_id FROM value_index_state").getInt64(),
            values.execAndGet("SELECT max(id) FROM value_log").getInt64());
}

// A feed's values are found whether or not the per-feed index has them yet (the index is
// written in bulk, after the commits): newest first, filtered and paged the same either way.
TEST_F(SqliteStoreTest, AFeedsValuesAreListedTheSameBeforeAndAfterTheyAreIndexed) {
  auto store = open(options_);
  ASSERT_NE(store, nullptr);
  auto commit = [&](const char* feed, int64_t slot_ms) {
    ValueRecord r = record_at(slot_from_unix_ms(slot_ms), "v" + std::to_string(slot_ms));
    r.feed = FeedId(feed);
    r.execution = make_execution_id(r.feed, r.slot);
    ASSERT_TRUE(store->commit_slots(publish(r)).ok());
  };
  auto slots_of = [&](const ValueQuery& q) {
    std::vector<int64_t> out;
    auto values = store->list_values(q);
    EXPECT_TRUE(values.ok()) << values.status().ToString();
    if (values.ok()) {
      for (const ValueRecord& v : *values) out.push_back(to_unix_ms(v.slot));
    }
    return out;
  };
  for (int64_t ms : {2000, 4000, 6000}) {
    commit("a", ms);
    commit("b", ms);
  }
  ASSERT_TRUE(store->index_values().ok());
  for (int64_t ms : {8000, 10000}) commit("a", ms);
  commit("a", 1000);  // a late value for an older slot lands in the unindexed tail

  const std::vector<int64_t> all{10000, 8000, 6000, 4000, 2000, 1000};
  for (int pass = 0; pass < 2; ++pass) {
    SCOPED_TRACE(pass == 0 ? "partly indexed" : "all indexed");
    EXPECT_EQ(slots_of({.feed = FeedId("a")}), all);
    EXPECT_EQ(slots_of({.feed = FeedId("a"), .limit = 3}),
              (std::vector<int64_t>{10000, 8000, 6000}));
    EXPECT_EQ(slots_of({.feed = FeedId("a"), .before = slot_from_unix_ms(6000), .limit = 2}),
              (std::vector<int64_t>{4000, 2000}));
    EXPECT_EQ(slots_of({.feed = FeedId("a"),
                        .since = slot_from_unix_ms(2000),
                        .before = slot_from_unix_ms(9000)}),
              (std::vector<int64_t>{8000, 6000, 4000, 2000}));
    EXPECT_EQ(slots_of({.feed = FeedId("b")}), (std::vector<int64_t>{6000, 4000, 2000}));
    auto latest = store->latest_value(FeedId("a"));
    ASSERT_TRUE(latest.ok() && latest->has_value());
    EXPECT_EQ(to_unix_ms((*latest)->slot), 10000);
    ASSERT_TRUE(store->index_values().ok());
  }
}

// The per-feed index is written a run of feeds at a time, each run a write of its own
// (run_deferred_work, once a boundary's worth of rows came since the last); its watermark moves
// at the last run. Meanwhile, and after a reopen half-way, a feed's values are listed once
// each, whichever part holds them.
TEST_F(SqliteStoreTest, ThePerFeedIndexIsWrittenARunOfFeedsAtATime) {
  options_.index_run_rows = 600;  // about one feed's rows per run below
  auto store = open(options_);
  ASSERT_NE(store, nullptr);
  const std::vector<std::string> feeds{"a", "b", "c", "d", "e", "f", "g", "h"};
  int64_t slots = 0;  // each feed's, at 2000, 4000, ...
  auto commit_slots = [&](int64_t count) {
    std::vector<SlotCommit> batch;
    for (int64_t k = 0; k < count; ++k) {
      ++slots;
      for (const std::string& feed : feeds) {
        ValueRecord r = record_at(slot_from_unix_ms(2000 * slots), "v");
        r.feed = FeedId(feed);
        r.execution = make_execution_id(r.feed, r.slot);
        batch.push_back(publish(r).front());
      }
    }
    ASSERT_TRUE(store->commit_slots(batch).ok());
  };
  auto state = [&]() {  // the watermark, the index's rows, the last row
    SQLite::Database db(options_.path.string(), SQLite::OPEN_READONLY);
    return std::tuple(db.execAndGet("SELECT indexed_through_id FROM value_index_state").getInt64(),
                      db.execAndGet("SELECT count(*) FROM value_feed_index").getInt64(),
                      db.execAndGet("SELECT max(id) FROM value_log").getInt64());
  };
  auto listed = [&](const std::string& feed, int limit) {
    auto values = store->list_values({.feed = FeedId(feed), .limit = limit});
    EXPECT_TRUE(values.ok()) << values.status().ToString();
    std::vector<int64_t> out;
    if (values.ok()) {
      for (const ValueRecord& v : *values) out.push_back(to_unix_ms(v.slot));
    }
    return out;
  };
  auto newest = [&](int n) {
    std::vector<int64_t> out;
    for (int64_t i = 0; i < n; ++i) out.push_back(2000 * (slots - i));
    return out;
  };

  commit_slots(520);           // 4,160 rows: worth a pass (4,096)
  store->run_deferred_work();  // feed_latest, then the first run: feed "a"
  auto [watermark, indexed, last] = state();
  EXPECT_EQ(watermark, 0);
  EXPECT_EQ(indexed, 520);
  store->run_deferred_work();  // no new rows since that run: none
  EXPECT_EQ(std::get<1>(state()), 520);
  commit_slots(8);  // 64 rows: a boundary's worth for 8 feeds (at least 64)
  EXPECT_EQ(listed("a", 1000).size(), 528u);
  EXPECT_EQ(listed("a", 3), newest(3));
  EXPECT_EQ(listed("h", 1000).size(), 528u);
  store->run_deferred_work();  // feed "b"
  EXPECT_EQ(std::get<1>(state()), 2 * 520);

  store.reset();  // half-way: the next pass begins again from the watermark
  store = open(options_);
  ASSERT_NE(store, nullptr);
  const int64_t pass_end = std::get<2>(state());
  EXPECT_EQ(listed("b", 1000).size(), 528u);
  EXPECT_EQ(listed("c", 2), newest(2));
  int runs = 0;
  while (runs < 20) {
    store->run_deferred_work();
    ++runs;
    if (std::get<0>(state()) != 0) break;
    commit_slots(8);
  }
  EXPECT_EQ(runs, 8);  // every feed again, "a" and "b" included
  std::tie(watermark, indexed, last) = state();
  EXPECT_EQ(watermark, pass_end);
  EXPECT_EQ(indexed, 8 * 528);
  EXPECT_EQ(last - watermark, 7 * 64);  // the rows committed during the pass: the next one's
  for (const std::string& feed : feeds) {
    EXPECT_EQ(listed(feed, 1000).size(), static_cast<size_t>(slots)) << feed;
    EXPECT_EQ(listed(feed, 2), newest(2)) << feed;
  }
}

// A few feeds have few rows per slot time: their pass is one write, as before runs (and the
// store does not keep a slot time per row in memory meanwhile).
TEST_F(SqliteStoreTest, AFewFeedsIndexTheirTailInOneWrite) {
  options_.index_run_rows = 600;
  auto store = open(options_);
  ASSERT_NE(store, nullptr);
  std::vector<SlotCommit> batch;
  for (int64_t k = 1; k <= 4100; ++k) {
    ValueRecord r = record_at(slot_from_unix_ms(2000 * k), "v");
    r.execution = make_execution_id(r.feed, r.slot);
    batch.push_back(publish(r).front());
  }
  ASSERT_TRUE(store->commit_slots(batch).ok());
  store->run_deferred_work();
  SQLite::Database db(options_.path.string(), SQLite::OPEN_READONLY);
  EXPECT_EQ(db.execAndGet("SELECT indexed_through_id FROM value_index_state").getInt64(), 4100);
  EXPECT_EQ(db.execAndGet("SELECT count(*) FROM value_feed_index").getInt64(), 4100);
  auto values = store->list_values({.feed = batch.front().feed, .limit = 5000});
  ASSERT_TRUE(values.ok()) << values.status().ToString();
  EXPECT_EQ(values->size(), 4100u);
}

// feed_latest is brought up to date between batches (run_deferred_work), or by a commit once it
// lags too far; latest_value() is right either way, also for a late value of an older slot and
// after a reopen.
TEST_F(SqliteStoreTest, AFeedsLatestValueIsRightWhetherOrNotFeedLatestIsUpToDate) {
  auto store = open(options_);
  ASSERT_NE(store, nullptr);
  auto commit = [&](const std::string& feed, int64_t slot_ms) {
    ValueRecord r = record_at(slot_from_unix_ms(slot_ms), "v" + std::to_string(slot_ms));
    r.feed = FeedId(feed);
    r.execution = make_execution_id(r.feed, r.slot);
    ASSERT_TRUE(store->commit_slots(publish(r)).ok());
  };
  auto latest_ms = [&](const char* feed) -> int64_t {
    auto latest = store->latest_value(FeedId(feed));
    EXPECT_TRUE(latest.ok()) << latest.status().ToString();
    return latest.ok() && latest->has_value() ? to_unix_ms((*latest)->slot) : -1;
  };
  // Rows feed_latest covers, and rows after its watermark.
  auto coverage = [&]() {
    SQLite::Database db(options_.path.string(), SQLite::OPEN_READONLY);
    return std::pair(db.execAndGet("SELECT latest_through_id FROM value_index_state").getInt64(),
                     db.execAndGet("SELECT max(id) FROM value_log").getInt64());
  };

  commit("a", 2000);
  commit("b", 2000);
  commit("a", 4000);
  EXPECT_EQ(coverage().first, 0);  // nothing caught up yet: found among the newer rows
  EXPECT_EQ(latest_ms("a"), 4000);
  EXPECT_EQ(latest_ms("b"), 2000);
  EXPECT_EQ(latest_ms("c"), -1);

  store->run_deferred_work();  // 3 rows: not worth a write of its own yet
  EXPECT_EQ(coverage().first, 0);
  for (int64_t i = 0; i < 70; ++i) commit("x" + std::to_string(i), 2000);
  store->run_deferred_work();
  auto [covered, last] = coverage();
  EXPECT_EQ(covered, last);
  EXPECT_EQ(latest_ms("a"), 4000);
  EXPECT_EQ(latest_ms("x69"), 2000);

  commit("a", 1000);  // a late value of an older slot does not become the latest
  EXPECT_EQ(latest_ms("a"), 4000);
  commit("a", 6000);
  EXPECT_EQ(latest_ms("a"), 6000);

  store.reset();
  store = open(options_);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(latest_ms("a"), 6000);
  EXPECT_EQ(latest_ms("b"), 2000);
  for (int64_t i = 0; i < 70; ++i) commit("y" + std::to_string(i), 4000);
  store->run_deferred_work();  // the rows from before the reopen count too
  std::tie(covered, last) = coverage();
  EXPECT_EQ(covered, last);
  EXPECT_EQ(latest_ms("a"), 6000);

  // A writer that never runs the deferred work: a commit catches up past 4 x 4,096 rows.
  std::vector<SlotCommit> many;
  for (int64_t i = 0; i < 4 * 4096; ++i) {
    ValueRecord r = record_at(slot_from_unix_ms(8000), "8");
    r.feed = FeedId("z" + std::to_string(i));
    r.execution = make_execution_id(r.feed, r.slot);
    many.push_back(publish(r).front());
  }
  ASSERT_TRUE(store->commit_slots(many).ok());
  std::tie(covered, last) = coverage();
  EXPECT_EQ(covered, last);
  EXPECT_EQ(latest_ms("z16383"), 8000);
  EXPECT_EQ(latest_ms("a"), 6000);
}

// The values file's WAL is copied into the database by the checkpoint thread, not by a commit,
// and does not grow past its threshold: 100 commits write ~190 times the threshold.
TEST_F(SqliteStoreTest, TheWalIsCheckpointedByItsOwnThreadAndStaysBounded) {
  options_.wal_checkpoint_pages = 32;  // 128 KiB; a commit below is ~60 pages
  auto store = open(options_);
  ASSERT_NE(store, nullptr);
  const auto wal = std::filesystem::path(options_.path.string() + "-wal");
  const auto db_size_before = std::filesystem::file_size(options_.path);
  const std::string big(2000, 'x');
  uintmax_t wal_max = 0;
  for (int i = 0; i < 100; ++i) {
    std::vector<SlotCommit> commits;
    for (int f = 0; f < 50; ++f) {
      ValueRecord r = record_at(slot_from_unix_ms(2000 * (i + 1)), std::to_string(i));
      r.feed = FeedId(fmt::format("feed_{:02}", f));
      r.execution = make_execution_id(r.feed, r.slot);
      r.signature = big;
      commits.push_back(publish(r).front());
    }
    const int64_t before = store->wal_checkpoints();
    ASSERT_TRUE(store->commit_slots(commits).ok());
    wal_max = std::max(wal_max, std::filesystem::file_size(wal));
    // Each commit is past the threshold: the thread checkpoints after it, as it would in the
    // idle time between boundaries.
    for (int t = 0; t < 5000 && store->wal_checkpoints() == before; ++t) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ASSERT_GT(store->wal_checkpoints(), before) << "no checkpoint after commit " << i;
  }
  // 100 commits of ~100 KiB: without checkpoints the WAL would hold all of them (~10 MiB).
  EXPECT_LT(wal_max, uintmax_t{1} << 20);
  EXPECT_GT(std::filesystem::file_size(options_.path), db_size_before + (uintmax_t{1} << 20));
  auto listed = store->list_values({.feed = FeedId("feed_07"), .limit = 1000});
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  EXPECT_EQ(listed->size(), 100u);
}

// configure_sqlite_process() must come before SQLite starts; once a store is open it refuses,
// says why, and the store keeps working.
TEST_F(SqliteStoreTest, ProcessSettingsAfterSqliteStartedAreRefusedWithTheReason) {
  auto store = open(options_);
  ASSERT_NE(store, nullptr);
  Status late = configure_sqlite_process();
  EXPECT_EQ(late.code(), Status::Code::kInternal);
  EXPECT_THAT(late.message(), HasSubstr("SQLite has already started"));
  EXPECT_TRUE(store->ping().ok());
}

TEST_F(SqliteStoreTest, RefusesAFileFromANewerBuild) {
  ASSERT_NE(open(options_), nullptr);
  {
    SQLite::Database db(options_.path.string(), SQLite::OPEN_READWRITE);
    db.exec(fmt::format("PRAGMA user_version = {}", SqliteStore::kSchemaVersion + 1));
  }
  auto store = SqliteStore::open(options_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(store.status().message(), HasSubstr(options_.path.string()));
  EXPECT_THAT(store.status().message(),
              HasSubstr(fmt::format("schema version {} is newer than this build's version {}",
                                    SqliteStore::kSchemaVersion + 1, SqliteStore::kSchemaVersion)));
  // Refused, not touched.
  EXPECT_EQ(pragma_int(options_.path, "user_version"), SqliteStore::kSchemaVersion + 1);
}

TEST_F(SqliteStoreTest, ReadOnlyNeedsAnExistingDatabase) {
  options_.read_only = true;
  auto store = SqliteStore::open(options_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), Status::Code::kNotFound);
  EXPECT_EQ(store.status().message(),
            fmt::format("no database at {}; has the daemon run?", options_.path.string()));
  EXPECT_FALSE(std::filesystem::exists(options_.path));
}

TEST_F(SqliteStoreTest, ReadOnlySeesTheWritersCommitsAndRefusesWrites) {
  auto writer = open(options_);
  ASSERT_NE(writer, nullptr);
  ValueRecord first = record_at(kSlot, "1");
  ASSERT_TRUE(writer->commit_slots(publish(first)).ok());

  SqliteStoreOptions ro = options_;
  ro.read_only = true;
  auto reader = open(ro);
  ASSERT_NE(reader, nullptr);
  auto latest = reader->latest_value(first.feed);
  ASSERT_TRUE(latest.ok()) << latest.status().ToString();
  EXPECT_EQ(*latest, first);

  // A later commit is visible to the same reader: it holds no stale snapshot between calls.
  ValueRecord second = record_at(kSlot + Seconds(2), "2");
  ASSERT_TRUE(writer->commit_slots(publish(second)).ok());
  latest = reader->latest_value(first.feed);
  ASSERT_TRUE(latest.ok()) << latest.status().ToString();
  EXPECT_EQ(*latest, second);

  auto write = reader->commit_slots(publish(record_at(kSlot + Seconds(4), "3")));
  ASSERT_FALSE(write.ok());
  EXPECT_EQ(write.status().code(), Status::Code::kIOError);
  EXPECT_EQ(write.status().message(),
            fmt::format("store {}: attempt to write a readonly database", options_.path.string()));
  auto push = reader->dlq_push(dlq_message("x"));
  ASSERT_FALSE(push.ok());
  EXPECT_THAT(push.status().message(), HasSubstr(options_.dlq_path.string()));
}

TEST_F(SqliteStoreTest, ReadOnlyRefusesAnUnmigratedFile) {
  std::ofstream(options_.path).close();
  std::ofstream(options_.dlq_path).close();
  options_.read_only = true;
  auto store = SqliteStore::open(options_);
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(store.status().message(), HasSubstr("start the daemon once"));
  EXPECT_THAT(store.status().message(), HasSubstr(options_.path.string()));
}

TEST_F(SqliteStoreTest, AFileThatIsNotADatabaseIsAClearError) {
  std::ofstream(options_.path) << "this is a config file, not a database\n"
                               << std::string(4096, 'x');
  auto store = SqliteStore::open(options_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().message(),
            fmt::format("store {}: file is not a database", options_.path.string()));
  EXPECT_FALSE(store.status().retryable());
}

TEST_F(SqliteStoreTest, RefusesSwappedOrSharedFiles) {
  ASSERT_NE(open(options_), nullptr);
  SqliteStoreOptions swapped = options_;
  std::swap(swapped.path, swapped.dlq_path);
  auto store = SqliteStore::open(swapped);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(store.status().message(), HasSubstr("not a Metronome values database"));

  SqliteStoreOptions shared = options_;
  shared.dlq_path = shared.path;
  store = SqliteStore::open(shared);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), Status::Code::kInvalidArgument);
}

TEST_F(SqliteStoreTest, RecordsSurviveCloseAndReopen) {
  ValueRecord value = record_at(kSlot, "537");
  DlqMessage message = dlq_message("deadline exceeded");
  message.record = value;
  AlarmState alarm{"dlq_not_empty", AlarmStatus::kAlarm, WallTime(Nanos(1'795'000'000'000'000'001)),
                   "DLQ depth 1 >= 1"};
  Execution execution;
  execution.feed = value.feed;
  execution.id = value.execution;
  execution.window_start = kSlot;
  execution.window_end = kSlot + Seconds(60);
  execution.created_at = WallTime(kSlot) - Nanos(5);
  execution.slots.emplace_back().slot = kSlot;
  {
    auto store = open(options_);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->create_execution(execution).ok());
    ASSERT_TRUE(store->commit_slots(publish(value)).ok());
    auto id = store->dlq_push(message);
    ASSERT_TRUE(id.ok());
    message.id = *id;
    ASSERT_TRUE(store->put_alarm_state(alarm).ok());
  }
  auto store = open(options_);
  ASSERT_NE(store, nullptr);
  auto got_value = store->get_value(value.feed, value.slot);
  ASSERT_TRUE(got_value.ok());
  EXPECT_EQ(*got_value, value);
  auto got_execution = store->get_execution(execution.id);
  ASSERT_TRUE(got_execution.ok() && got_execution->has_value());
  EXPECT_EQ((*got_execution)->slots[0].outcome, SlotOutcome::kPublished);
  auto got_message = store->dlq_get(message.id);
  ASSERT_TRUE(got_message.ok());
  EXPECT_EQ(*got_message, message);
  auto got_alarm = store->alarm_state(alarm.name);
  ASSERT_TRUE(got_alarm.ok());
  EXPECT_EQ(*got_alarm, alarm);
}

TEST_F(SqliteStoreTest, TwoStoresOnTheSameFilesKeepExactlyOnce) {
  // As two processes (a daemon and a CLI redrive) would: separate connections, one file.
  auto a = open(options_);
  auto b = open(options_);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  auto first = a->commit_slots(publish(record_at(kSlot, "1")));
  auto second = b->commit_slots(publish(record_at(kSlot, "2")));
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(*first, std::vector<bool>{true});
  EXPECT_EQ(*second, std::vector<bool>{false});
  auto got = b->get_value(FeedId("random_int"), kSlot);
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->value, "1");
}

// Sets or clears the immutable flag (chattr +i / -i) of a file.
Status set_immutable(const std::filesystem::path& file, bool immutable) {
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Status::IOError(fmt::format("open {}: {}", file.string(), strerror(errno)));
  int flags = 0;
  int rc = ::ioctl(fd, FS_IOC_GETFLAGS, &flags);
  if (rc == 0) {
    flags = immutable ? (flags | FS_IMMUTABLE_FL) : (flags & ~FS_IMMUTABLE_FL);
    rc = ::ioctl(fd, FS_IOC_SETFLAGS, &flags);
  }
  int err = errno;
  ::close(fd);
  if (rc != 0) {
    return Status::PermissionDenied(
        fmt::format("chattr {}i {}: {}", immutable ? '+' : '-', file.string(), strerror(err)));
  }
  return Status::Ok();
}

// Makes files immutable for its lifetime. Declare it after the stores that use the files, so that
// the flags are cleared before the stores close (and checkpoint) and before the folder is removed.
class ImmutableFiles {
 public:
  Status add(const std::filesystem::path& file) {
    METRONOME_RETURN_IF_ERROR(set_immutable(file, true));
    files_.push_back(file);
    return Status::Ok();
  }
  ~ImmutableFiles() {
    for (const auto& file : files_) {
      Status s = set_immutable(file, false);
      if (!s.ok()) ADD_FAILURE() << s.ToString();
    }
  }

 private:
  std::vector<std::filesystem::path> files_;
};

TEST_F(SqliteStoreTest, DlqStaysWritableWhenValuesCannotBeWritten) {
  auto store = open(options_);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->commit_slots(publish(record_at(kSlot, "1"))).ok());
  const std::filesystem::path wal = options_.path.string() + "-wal";
  ASSERT_TRUE(std::filesystem::exists(wal));

  ImmutableFiles immutable;
  for (const auto& file : {options_.path, wal}) {
    Status s = immutable.add(file);
    if (!s.ok()) {
      GTEST_SKIP() << "needs root with CAP_LINUX_IMMUTABLE on a filesystem with chattr: "
                   << s.ToString();
    }
  }

  // The open connection: writes fail at the disk, and are worth retrying.
  auto commit = store->commit_slots(publish(record_at(kSlot + Seconds(2), "2")));
  ASSERT_FALSE(commit.ok());
  EXPECT_TRUE(commit.status().retryable()) << commit.status().ToString();
  EXPECT_THAT(commit.status().message(), HasSubstr(options_.path.string()));
  auto id = store->dlq_push(dlq_message(commit.status().ToString()));
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  AlarmState alarm{"dlq_not_empty", AlarmStatus::kAlarm, WallTime(kSlot), "DLQ depth 1 >= 1"};
  EXPECT_TRUE(store->put_alarm_state(alarm).ok());

  // A daemon started now: it opens (the values read-only), and the DLQ still takes messages.
  auto restarted = open(options_);
  ASSERT_NE(restarted, nullptr);
  auto again = restarted->commit_slots(publish(record_at(kSlot + Seconds(4), "3")));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), Status::Code::kIOError);
  EXPECT_EQ(again.status().message(),
            fmt::format("store {}: attempt to write a readonly database", options_.path.string()));
  auto values = restarted->list_values({});
  ASSERT_TRUE(values.ok()) << values.status().ToString();
  EXPECT_EQ(values->size(), 1u);
  ASSERT_TRUE(restarted->dlq_push(dlq_message(again.status().ToString())).ok());
  auto depth = restarted->dlq_depth();
  ASSERT_TRUE(depth.ok());
  EXPECT_EQ(*depth, 2);
}

// ---- FaultyStore, over the real store it is meant to wrap ----

TEST_F(SqliteStoreTest, FaultyStoreFailsTheNextCommitsThenForwards) {
  auto sqlite = open(options_);
  ASSERT_NE(sqlite, nullptr);
  FaultyStore store(*sqlite);
  store.fail_next_commits(2, Status::IOError("disk full"));
  for (int i = 0; i < 2; ++i) {
    auto r = store.commit_slots(publish(record_at(kSlot, "1")));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status(), Status::IOError("disk full"));
  }
  auto r = store.commit_slots(publish(record_at(kSlot, "1")));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, std::vector<bool>{true});
  EXPECT_EQ(store.counts().commit_calls, 3);
  EXPECT_EQ(store.counts().commits_failed, 2);
}

TEST_F(SqliteStoreTest, FaultyStoreCanFailACommitThatLanded) {
  auto sqlite = open(options_);
  ASSERT_NE(sqlite, nullptr);
  FaultyStore store(*sqlite);
  store.fail_next_commits_after_applying(1, Status::Unavailable("timeout"));
  auto first = store.commit_slots(publish(record_at(kSlot, "1")));
  ASSERT_FALSE(first.ok());
  // The retry finds the value the "failed" commit wrote.
  auto retry = store.commit_slots(publish(record_at(kSlot, "2")));
  ASSERT_TRUE(retry.ok());
  EXPECT_EQ(*retry, std::vector<bool>{false});
  auto value = store.get_value(FeedId("random_int"), kSlot);
  ASSERT_TRUE(value.ok() && value->has_value());
  EXPECT_EQ((*value)->value, "1");
}

TEST_F(SqliteStoreTest, FaultyStoreFailsByKindUntilCleared) {
  auto sqlite = open(options_);
  ASSERT_NE(sqlite, nullptr);
  FaultyStore store(*sqlite);
  store.fail_dlq(Status::IOError("dlq down"));
  store.fail_commits_always(Status::IOError("values down"));
  EXPECT_FALSE(store.dlq_push(dlq_message("x")).ok());
  EXPECT_FALSE(store.dlq_delete(1).ok());
  EXPECT_FALSE(store.commit_slots(publish(record_at(kSlot, "1"))).ok());
  EXPECT_TRUE(store.dlq_depth().ok());  // reads still work
  EXPECT_TRUE(store.ping().ok());

  store.fail_everything(Status::Unavailable("down"));
  EXPECT_EQ(store.ping(), Status::Unavailable("down"));
  EXPECT_FALSE(store.list_values({}).ok());

  store.clear_faults();
  EXPECT_TRUE(store.ping().ok());
  EXPECT_TRUE(store.dlq_push(dlq_message("x")).ok());
  EXPECT_TRUE(store.commit_slots(publish(record_at(kSlot, "1"))).ok());
  EXPECT_EQ(store.counts().dlq_push_calls, 2);
  EXPECT_EQ(store.counts().dlq_delete_calls, 1);
}

}  // namespace
}  // namespace metronome
