#include "store/postgres_store.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <latch>
#include <pqxx/pqxx>
#include <thread>

#include "testing/postgres_server.h"
#include "testing/store_conformance.h"

namespace metronome {
namespace {

using ::testing::HasSubstr;
using testing::PostgresServer;
using testing::StoreConformanceTest;
using testing::StoreFactory;
using testing::StoreFactoryName;

// A fresh, migrated database on the test binary's server for every store the suite opens.
std::unique_ptr<Store> open_postgres(const std::filesystem::path&) {
  PostgresServer* server = PostgresServer::shared();
  if (server == nullptr) return nullptr;
  auto url = server->create_database();
  if (!url.ok()) {
    ADD_FAILURE() << url.status().ToString();
    return nullptr;
  }
  PostgresStoreOptions options{.url = *url};
  auto migrated = PostgresStore::migrate(options);
  if (!migrated.ok()) {
    ADD_FAILURE() << migrated.status().ToString();
    return nullptr;
  }
  auto store = PostgresStore::open(options);
  if (!store.ok()) {
    ADD_FAILURE() << store.status().ToString();
    return nullptr;
  }
  return std::move(store).value();
}

INSTANTIATE_TEST_SUITE_P(Postgres, StoreConformanceTest,
                         ::testing::Values(StoreFactory{"postgres", open_postgres}),
                         StoreFactoryName);

// ---- PostgreSQL-specific behaviour ----

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

SlotCommit published(const ValueRecord& r) {
  SlotCommit c;
  c.execution = r.execution;
  c.feed = r.feed;
  c.slot.slot = r.slot;
  c.slot.outcome = SlotOutcome::kPublished;
  c.slot.attempts = 1;
  c.record = r;
  return c;
}

class PostgresStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = PostgresServer::shared();
    ASSERT_NE(server_, nullptr);
    auto url = server_->create_database();
    ASSERT_TRUE(url.ok()) << url.status().ToString();
    options_.url = *url;
    database_ = url->substr(url->rfind('/') + 1);
  }

  std::unique_ptr<PostgresStore> open(const PostgresStoreOptions& options) {
    auto store = PostgresStore::open(options);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(store).value() : nullptr;
  }

  int64_t count(const std::string& sql) {
    pqxx::connection c(options_.url);
    pqxx::nontransaction n(c);
    return n.exec(sql)[0][0].as<int64_t>();
  }

  PostgresServer* server_ = nullptr;
  PostgresStoreOptions options_;
  std::string database_;
};

TEST_F(PostgresStoreTest, OpenRefusesAnUnmigratedDatabaseAndNamesTheCommand) {
  auto store = PostgresStore::open(options_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(store.status().message(), HasSubstr("schema version 0 is older"));
  EXPECT_THAT(store.status().message(), HasSubstr("metronome migrate"));
  EXPECT_THAT(store.status().message(), HasSubstr(database_));
}

TEST_F(PostgresStoreTest, MigrateAppliesOnceAndRecordsTheVersion) {
  auto first = PostgresStore::migrate(options_);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->from, 0);
  EXPECT_EQ(first->to, PostgresStore::kSchemaVersion);
  auto again = PostgresStore::migrate(options_);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->from, PostgresStore::kSchemaVersion);
  EXPECT_EQ(count("SELECT count(*) FROM metronome_schema"), PostgresStore::kSchemaVersion);
  EXPECT_NE(open(options_), nullptr);
}

TEST_F(PostgresStoreTest, ConcurrentMigratorsApplyEachStepOnce) {
  constexpr int kMigrators = 4;
  std::latch start(kMigrators);
  std::vector<Status> results(kMigrators);
  {
    std::vector<std::jthread> threads;
    for (int i = 0; i < kMigrators; ++i) {
      threads.emplace_back([&, i] {
        start.arrive_and_wait();
        auto r = PostgresStore::migrate(options_);
        results[i] = r.ok() ? Status::Ok() : r.status();
      });
    }
  }
  for (const Status& s : results) EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(count("SELECT count(*) FROM metronome_schema"), PostgresStore::kSchemaVersion);
}

TEST_F(PostgresStoreTest, RefusesADatabaseFromANewerBuild) {
  ASSERT_TRUE(PostgresStore::migrate(options_).ok());
  ASSERT_TRUE(server_
                  ->execute(database_,
                            "INSERT INTO metronome_schema(version, description) VALUES (99, 'x')")
                  .ok());
  auto store = PostgresStore::open(options_);
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(store.status().message(), HasSubstr("schema version 99 is newer"));
  auto migrated = PostgresStore::migrate(options_);
  ASSERT_FALSE(migrated.ok());
  EXPECT_THAT(migrated.status().message(), HasSubstr("schema version 99 is newer"));
}

TEST_F(PostgresStoreTest, BadUrlsAreClearErrors) {
  auto not_pg = PostgresStore::open({.url = "mysql://u:secretpw@h/db"});
  ASSERT_FALSE(not_pg.ok());
  EXPECT_EQ(not_pg.status().code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(not_pg.status().message(), HasSubstr("not a PostgreSQL URL"));
  EXPECT_THAT(not_pg.status().message(), ::testing::Not(HasSubstr("secretpw")));

  // Nothing listens on port 1: refused, retryable, and the password is not in the message.
  auto refused = PostgresStore::open(
      {.url = "postgresql://metronome:secretpw@127.0.0.1:1/x", .connect_timeout = Millis(2000)});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Status::Code::kUnavailable);
  EXPECT_THAT(refused.status().message(), HasSubstr("postgresql://metronome@127.0.0.1:1/x"));
  EXPECT_THAT(refused.status().message(), ::testing::Not(HasSubstr("secretpw")));

  auto no_database = PostgresStore::open({.url = server_->url("no_such_database")});
  ASSERT_FALSE(no_database.ok());
  EXPECT_THAT(no_database.status().message(), HasSubstr("no_such_database"));
}

TEST_F(PostgresStoreTest, RedactUrlDropsPasswordAndQuery) {
  EXPECT_EQ(
      PostgresStore::redact_url("postgresql://u:p%40ss@db.example:5432/oracle?sslmode=require"),
      "postgresql://u@db.example:5432/oracle");
  EXPECT_EQ(PostgresStore::redact_url("postgres://u@h/d?password=x"), "postgres://u@h/d");
  EXPECT_EQ(PostgresStore::redact_url("postgresql://h:5432/d"), "postgresql://h:5432/d");
}

// Servers of their own for the tests that reconfigure or restart theirs.
class OwnServerTest : public PostgresStoreTest {
 protected:
  void SetUp() override {
    auto server = PostgresServer::start();
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    own_ = std::move(server).value();
    server_ = own_.get();
    auto url = server_->create_database();
    ASSERT_TRUE(url.ok()) << url.status().ToString();
    options_.url = *url;
    database_ = url->substr(url->rfind('/') + 1);
  }
  std::unique_ptr<PostgresServer> own_;
};

TEST_F(OwnServerTest, PasswordFromOptionsAuthenticates) {
  ASSERT_TRUE(PostgresStore::migrate(options_).ok());
  // A password-protected role, and a server that asks for passwords on TCP from now on.
  ASSERT_TRUE(
      server_->execute("postgres", "CREATE ROLE oracle LOGIN PASSWORD 'p@ss w:rd/?&'").ok());
  ASSERT_TRUE(
      server_->execute(database_, "GRANT ALL ON ALL TABLES IN SCHEMA public TO oracle").ok());
  std::filesystem::path hba = server_->dir() / "data" / "pg_hba.conf";
  {
    std::ofstream out(hba);  // the socket stays trusted for the test's own superuser connections
    out << "local all all trust\nhost all metronome 127.0.0.1/32 trust\n"
           "host all all 127.0.0.1/32 scram-sha-256\n";
  }
  ASSERT_TRUE(server_->execute("postgres", "SELECT pg_reload_conf()").ok());
  const std::string url =
      fmt::format("postgresql://oracle@127.0.0.1:{}/{}", server_->port(), database_);

  auto without = PostgresStore::open({.url = url});
  ASSERT_FALSE(without.ok());
  EXPECT_THAT(without.status().message(), HasSubstr("oracle"));

  auto wrong = PostgresStore::open({.url = url, .password = "nope"});
  ASSERT_FALSE(wrong.ok());

  auto store = open({.url = url, .password = "p@ss w:rd/?&"});
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->ping().ok());
  auto inserted = store->commit_slots(std::vector{published(record_at(kSlot, "7"))});
  ASSERT_TRUE(inserted.ok()) << inserted.status().ToString();
  EXPECT_EQ(*inserted, std::vector<bool>{true});
}

TEST_F(PostgresStoreTest, ReadOnlyStoreReadsAndRefusesWrites) {
  ASSERT_TRUE(PostgresStore::migrate(options_).ok());
  auto writer = open(options_);
  ASSERT_NE(writer, nullptr);
  ASSERT_TRUE(writer->commit_slots(std::vector{published(record_at(kSlot, "7"))}).ok());
  PostgresStoreOptions ro = options_;
  ro.read_only = true;
  auto reader = open(ro);
  ASSERT_NE(reader, nullptr);
  auto value = reader->get_value(FeedId("random_int"), kSlot);
  ASSERT_TRUE(value.ok()) << value.status().ToString();
  ASSERT_TRUE(value->has_value());
  EXPECT_EQ((*value)->value, "7");
  auto write = reader->commit_slots(std::vector{published(record_at(kSlot + Millis(2000), "8"))});
  ASSERT_FALSE(write.ok());
  EXPECT_EQ(write.status().code(), Status::Code::kPermissionDenied);
  EXPECT_THAT(write.status().message(), HasSubstr("read-only"));
}

TEST_F(PostgresStoreTest, OneBatchWithTheSameSlotTwiceKeepsTheFirstValue) {
  ASSERT_TRUE(PostgresStore::migrate(options_).ok());
  auto store = open(options_);
  ASSERT_NE(store, nullptr);
  SlotCommit failed;
  failed.execution = make_execution_id(FeedId("random_int"), kSlot);
  failed.feed = FeedId("random_int");
  failed.slot.slot = kSlot;
  failed.slot.outcome = SlotOutcome::kFailed;
  failed.slot.error = "timeout";
  std::vector<SlotCommit> batch{failed, published(record_at(kSlot, "1")),
                                published(record_at(kSlot, "2")), failed};
  auto inserted = store->commit_slots(batch);
  ASSERT_TRUE(inserted.ok()) << inserted.status().ToString();
  EXPECT_EQ(*inserted, (std::vector<bool>{false, true, false, false}));
  auto value = store->get_value(FeedId("random_int"), kSlot);
  ASSERT_TRUE(value.ok() && value->has_value());
  EXPECT_EQ((*value)->value, "1");
  EXPECT_EQ(count("SELECT count(*) FROM slots WHERE outcome = 'published'"), 1);
}

// Group commit: while one commit waits on the database (here: a lock held by another session),
// the commits that arrive meanwhile are written together in the next statement, each caller
// getting its own answers; a commit repeated within the group keeps the first value.
TEST_F(PostgresStoreTest, CommitsArrivingDuringACommitAreWrittenInOneStatement) {
  ASSERT_TRUE(PostgresStore::migrate(options_).ok());
  auto store = open(options_);
  ASSERT_NE(store, nullptr);
  pqxx::connection blocker(options_.url);
  pqxx::work lock(blocker);
  lock.exec("LOCK TABLE \"values\" IN EXCLUSIVE MODE");

  const int64_t before = store->commit_statements();
  std::thread leader([&] {
    auto r = store->commit_slots(std::vector{published(record_at(kSlot, "0"))});
    EXPECT_TRUE(r.ok() && *r == std::vector<bool>{true}) << r.status().ToString();
  });
  // The leader's statement is waiting for the lock.
  for (int i = 0; i < 500 && count("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                                   "'Lock' AND datname = current_database()") == 0;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  constexpr int kFollowers = 16;
  std::latch queued(kFollowers);
  std::vector<std::thread> followers;
  std::vector<std::vector<bool>> answers(kFollowers);
  for (int i = 0; i < kFollowers; ++i) {
    followers.emplace_back([&, i] {
      // Followers 0 and 1 commit the same slot: the first keeps its value.
      const SlotTime slot = kSlot + Millis(2000) * (i <= 1 ? 1 : i);
      std::vector<SlotCommit> batch{published(record_at(slot, std::to_string(100 + i)))};
      queued.count_down();
      auto r = store->commit_slots(batch);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      answers[i] = *r;
    });
  }
  queued.wait();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // into the queue
  lock.commit();
  leader.join();
  for (auto& t : followers) t.join();

  // One statement for the leader, one for the group (two if a follower was late to queue).
  EXPECT_LE(store->commit_statements() - before, 3);
  EXPECT_EQ(count("SELECT count(*) FROM \"values\""), kFollowers);  // the leader's + 15 slots
  int inserted = 0;
  for (const auto& a : answers) {
    ASSERT_EQ(a.size(), 1u);
    inserted += a[0] ? 1 : 0;
  }
  EXPECT_EQ(inserted, kFollowers - 1);  // 0 and 1 share a slot: one of them inserted it
  EXPECT_NE(answers[0][0], answers[1][0]);
}

// The server ends the session while its commit statement runs (an administrator's
// pg_terminate_backend, a failover): the commit is retried once on a new connection and is
// written once. (libpqxx 6.4 loses the failed statement's PGresult on this path: tests/lsan.supp.)
TEST_F(PostgresStoreTest, ACommitWhoseSessionIsKilledMidStatementIsRetriedAndWrittenOnce) {
  ASSERT_TRUE(PostgresStore::migrate(options_).ok());
  auto store = open(options_);
  ASSERT_NE(store, nullptr);
  pqxx::connection blocker(options_.url);
  pqxx::work lock(blocker);
  lock.exec("LOCK TABLE \"values\" IN EXCLUSIVE MODE");

  std::thread writer([&] {
    auto r = store->commit_slots(std::vector{published(record_at(kSlot, "5"))});
    EXPECT_TRUE(r.ok() && *r == std::vector<bool>{true}) << r.status().ToString();
  });
  const std::string waiting =
      "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = "
      "current_database()";
  for (int i = 0; i < 500 && count(waiting) == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(count(waiting), 1);
  EXPECT_EQ(count("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                  "wait_event_type = 'Lock' AND datname = current_database()"),
            1);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the retry waits on the lock
  lock.commit();
  writer.join();
  EXPECT_EQ(count("SELECT count(*) FROM \"values\" WHERE value = '5'"), 1);
}

TEST_F(OwnServerTest, SurvivesAServerRestartWithOneFailedCallAtMost) {
  ASSERT_TRUE(PostgresStore::migrate(options_).ok());
  auto store = open(options_);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->commit_slots(std::vector{published(record_at(kSlot, "1"))}).ok());

  ASSERT_TRUE(server_->stop("fast").ok());
  auto down = store->commit_slots(std::vector{published(record_at(kSlot + Millis(2000), "2"))});
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(down.status().code(), Status::Code::kUnavailable) << down.status().ToString();
  EXPECT_EQ(store->ping().code(), Status::Code::kUnavailable);
  ASSERT_TRUE(server_->start_again().ok());

  // The pooled connections died with the server; the store reconnects by itself.
  auto up = store->commit_slots(std::vector{published(record_at(kSlot + Millis(2000), "2"))});
  ASSERT_TRUE(up.ok()) << up.status().ToString();
  EXPECT_EQ(*up, std::vector<bool>{true});
  EXPECT_TRUE(store->ping().ok());
  auto values = store->list_values({});
  ASSERT_TRUE(values.ok());
  EXPECT_EQ(values->size(), 2u);
}

}  // namespace
}  // namespace metronome
