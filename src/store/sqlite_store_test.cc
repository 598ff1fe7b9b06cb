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
  for (const char* table : {"values", "executions", "slots"}) {
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

TEST_F(SqliteStoreTest, MigratesAVersion1FileKeepingItsValues) {
  ASSERT_NE(open(options_), nullptr);
  {
    // Back to what version 1 wrote: no sources column, one value in it.
    SQLite::Database db(options_.path.string(), SQLite::OPEN_READWRITE);
    db.exec(R"sql(ALTER TABLE "values" DROP COLUMN sources)sql");
    db.exec(
        R"sql(INSERT INTO "values" VALUES ('f', 2000, 1, '12.5', 1, 3, 4, 'f@x', '', '', ''))sql");
    db.exec("PRAGMA user_version = 1");
    SQLite::Database dlq(options_.dlq_path.string(), SQLite::OPEN_READWRITE);
    dlq.exec("PRAGMA user_version = 1");
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
