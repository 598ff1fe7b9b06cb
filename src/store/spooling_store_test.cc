#include "store/spooling_store.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <pqxx/pqxx>
#include <thread>

#include "store/postgres_store.h"
#include "testing/manual_clock.h"
#include "testing/postgres_server.h"
#include "testing/store_conformance.h"

namespace metronome {
namespace {

using ::testing::HasSubstr;
using testing::ManualClock;
using testing::PostgresServer;
using testing::TempDir;

const FeedId kFeed("spooled");
const SlotTime kWindow = slot_from_unix_ms(1'795'000'020'000);
const ExecutionId kExecution = make_execution_id(kFeed, kWindow);

SlotTime slot(int i) {
  return kWindow + Millis(200) * i;
}

ValueRecord record_at(int i, std::string value) {
  ValueRecord r;
  r.feed = kFeed;
  r.round = to_unix_ms(slot(i)) / 200;
  r.slot = slot(i);
  r.value = std::move(value);
  r.observed_at = WallTime(slot(i)) + Nanos(123'456);
  r.published_at = WallTime(slot(i)) + Nanos(223'456);
  r.execution = kExecution;
  r.signer = "0xabc";
  r.signature = fmt::format("0x{:0130x}", i + 1);
  r.digest = fmt::format("0x{:064x}", i + 1);
  r.sources = {{"a", r.value}};
  return r;
}

SlotCommit published(int i, std::string value) {
  SlotCommit c;
  c.execution = kExecution;
  c.feed = kFeed;
  c.slot.slot = slot(i);
  c.slot.outcome = SlotOutcome::kPublished;
  c.slot.fired_at = WallTime(slot(i)) + Nanos(1000);
  c.slot.lateness_us = 1;
  c.slot.attempts = 1;
  c.record = record_at(i, std::move(value));
  return c;
}

Execution window(int slots) {
  Execution e;
  e.id = kExecution;
  e.feed = kFeed;
  e.window_start = kWindow;
  e.window_end = slot(slots);
  e.state = ExecutionState::kPlanned;
  e.created_at = WallTime(kWindow) - Nanos(5'000'000);
  for (int i = 0; i < slots; ++i) e.slots.push_back(SlotRecord{.slot = slot(i)});
  return e;
}

// One server for the suite (the tests stop and start it), a fresh database per test.
class SpoolingStoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto server = PostgresServer::start();
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value().release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    auto url = server_->create_database();
    ASSERT_TRUE(url.ok()) << url.status().ToString();
    options_.url = *url;
    ASSERT_TRUE(PostgresStore::migrate(options_).ok());
  }

  std::unique_ptr<SpoolingStore> open_spooling() {
    auto pg = PostgresStore::open(options_);
    EXPECT_TRUE(pg.ok()) << pg.status().ToString();
    if (!pg.ok()) return nullptr;
    auto store = SpoolingStore::open(std::move(pg).value(), {.path = spool_path()}, clock_);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(store).value() : nullptr;
  }

  std::filesystem::path spool_path() const { return dir_.path() / "data" / "spool.db"; }

  pqxx::result query(const std::string& sql) {
    pqxx::connection c(options_.url);
    pqxx::nontransaction n(c);
    return n.exec(sql);
  }

  // The slots that have a value, in the order their rows were written (xmin: one transaction
  // per replayed entry), with their value.
  std::vector<std::pair<int64_t, std::string>> values_in_write_order() {
    std::vector<std::pair<int64_t, std::string>> out;
    for (const auto& row :
         query("SELECT slot_ms, value FROM \"values\" ORDER BY xmin::text::bigint, slot_ms")) {
      out.emplace_back(row[0].as<int64_t>(), row[1].as<std::string>());
    }
    return out;
  }

  void stop_server() { ASSERT_TRUE(server_->stop("fast").ok()); }
  void start_server() { ASSERT_TRUE(server_->start_again().ok()); }

  static PostgresServer* server_;
  PostgresStoreOptions options_;
  TempDir dir_{"metronome-spool"};
  ManualClock clock_;
};

PostgresServer* SpoolingStoreTest::server_ = nullptr;

TEST_F(SpoolingStoreTest, OutageIsSpooledThenDrainedInOrderNoneTwice) {
  auto store = open_spooling();
  ASSERT_NE(store, nullptr);
  std::vector<int64_t> depths;
  store->set_on_depth([&](int64_t d) { depths.push_back(d); });
  ASSERT_TRUE(store->create_execution(window(8)).ok());
  ASSERT_TRUE(store->commit_slots(std::vector{published(0, "100")}).ok());
  EXPECT_EQ(store->stats().spooled, 0);

  stop_server();
  // The outage: the next window is planned, slots go on being published, fenced as a replica's
  // are, and the execution changes state; everything lands in the spool.
  Execution next = window(8);
  next.id = ExecutionId("spooled@next");
  next.window_start = slot(8);
  next.window_end = slot(16);
  for (int i = 0; i < 8; ++i) next.slots[i].slot = slot(8 + i);
  ASSERT_TRUE(store->create_execution(next).ok());
  for (int i = 1; i <= 5; ++i) {
    SlotCommit c = published(i, std::to_string(100 + i));
    c.fence = SlotFence{"replica-a", 7};  // a lease that the database does not hold: dropped
    auto inserted = store->commit_slots(std::vector{c});
    ASSERT_TRUE(inserted.ok()) << inserted.status().ToString();
    EXPECT_EQ(*inserted, std::vector<bool>{true});
  }
  SlotCommit failed;
  failed.execution = kExecution;
  failed.feed = kFeed;
  failed.slot = SlotRecord{.slot = slot(6), .outcome = SlotOutcome::kFailed, .error = "timeout"};
  ASSERT_TRUE(store->commit_slots(std::vector{failed}).ok());
  ASSERT_TRUE(store->set_execution_state(kExecution, ExecutionState::kRunning, std::nullopt).ok());
  DlqMessage message;
  message.feed = kFeed;
  message.slot = slot(6);
  message.execution = kExecution;
  message.stage = "observe";
  message.error = "timeout";
  message.attempts = 2;
  message.first_failure = message.last_failure = WallTime(slot(6));
  auto pushed = store->dlq_push(message);
  ASSERT_TRUE(pushed.ok()) << pushed.status().ToString();
  EXPECT_EQ(*pushed, 0);

  SpoolStats during = store->stats();
  EXPECT_TRUE(during.outage);
  EXPECT_EQ(during.depth, 9);  // execution, 5 values, 1 failed outcome, 1 state, 1 DLQ message
  EXPECT_EQ(depths.back(), 9);
  // Reads still go to the database, which is down.
  EXPECT_EQ(store->latest_value(kFeed).status().code(), Status::Code::kUnavailable);

  // Still down: a drain writes nothing and keeps everything.
  auto left = store->drain_once();
  ASSERT_TRUE(left.ok()) << left.status().ToString();
  EXPECT_EQ(*left, 9);

  start_server();
  // Until the spool is drained, new writes queue behind it (none overtakes a spooled one).
  ASSERT_TRUE(store->commit_slots(std::vector{published(7, "107")}).ok());
  EXPECT_EQ(store->stats().depth, 10);
  left = store->drain_once();
  ASSERT_TRUE(left.ok()) << left.status().ToString();
  EXPECT_EQ(*left, 0);
  EXPECT_EQ(depths.back(), 0);

  SpoolStats after = store->stats();
  EXPECT_FALSE(after.outage);
  EXPECT_EQ(after.replayed, 10);
  EXPECT_EQ(after.already_present, 0);
  EXPECT_EQ(after.rejected, 0);

  // Every value, once, in slot order, exactly as produced (signatures and sources intact).
  auto written = values_in_write_order();
  ASSERT_EQ(written.size(), 7u);
  for (int i = 0; i < 7; ++i) {
    const int n = i < 6 ? i : 7;
    EXPECT_EQ(written[i].first, to_unix_ms(slot(n)));
    EXPECT_EQ(written[i].second, std::to_string(100 + n));
    auto stored = store->get_value(kFeed, slot(n));
    ASSERT_TRUE(stored.ok() && stored->has_value());
    EXPECT_EQ(**stored, record_at(n, std::to_string(100 + n)));
  }
  auto execution = store->get_execution(kExecution);
  ASSERT_TRUE(execution.ok() && execution->has_value());
  EXPECT_EQ((*execution)->state, ExecutionState::kRunning);
  EXPECT_EQ((*execution)->slots[3], published(3, "103").slot);
  EXPECT_EQ((*execution)->slots[6].outcome, SlotOutcome::kFailed);
  EXPECT_EQ((*execution)->slots[6].error, "timeout");
  auto planned_during_outage = store->get_execution(next.id);
  ASSERT_TRUE(planned_during_outage.ok() && planned_during_outage->has_value());
  EXPECT_EQ((*planned_during_outage)->slots.size(), 8u);
  auto dlq = store->dlq_list(10);
  ASSERT_TRUE(dlq.ok());
  ASSERT_EQ(dlq->size(), 1u);
  EXPECT_EQ((*dlq)[0].error, "timeout");

  // Back to writing straight to the database.
  ASSERT_TRUE(store->set_execution_state(next.id, ExecutionState::kRunning, std::nullopt).ok());
  EXPECT_EQ(store->stats().spooled, 10);
  EXPECT_EQ(std::filesystem::exists(spool_path()), true);
}

TEST_F(SpoolingStoreTest, SlotAlreadyInTheDatabaseIsLeftAloneAndTheSpooledEntryDropped) {
  auto store = open_spooling();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->create_execution(window(4)).ok());
  stop_server();
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(store->commit_slots(std::vector{published(i, "mine")}).ok());
  }
  start_server();
  // Meanwhile another replica wrote slot 0's value and recorded slot 1 missed.
  {
    auto other = PostgresStore::open(options_);
    ASSERT_TRUE(other.ok()) << other.status().ToString();
    SlotCommit missed;
    missed.execution = kExecution;
    missed.feed = kFeed;
    missed.slot = SlotRecord{.slot = slot(1), .outcome = SlotOutcome::kMissed};
    auto r = (*other)->commit_slots(std::vector{published(0, "theirs"), missed});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }
  auto left = store->drain_once();
  ASSERT_TRUE(left.ok()) << left.status().ToString();
  EXPECT_EQ(*left, 0);
  SpoolStats stats = store->stats();
  EXPECT_EQ(stats.already_present, 2);
  EXPECT_EQ(stats.replayed, 1);

  auto written = values_in_write_order();
  ASSERT_EQ(written.size(), 2u);
  EXPECT_EQ(written[0], std::make_pair(to_unix_ms(slot(0)), std::string("theirs")));
  EXPECT_EQ(written[1], std::make_pair(to_unix_ms(slot(2)), std::string("mine")));
  auto execution = store->get_execution(kExecution);
  ASSERT_TRUE(execution.ok() && execution->has_value());
  EXPECT_EQ((*execution)->slots[1].outcome, SlotOutcome::kMissed);
  EXPECT_EQ((*execution)->slots[2].outcome, SlotOutcome::kPublished);
}

TEST_F(SpoolingStoreTest, SpoolLeftByACrashIsDrainedByTheNextStart) {
  {
    auto store = open_spooling();
    ASSERT_NE(store, nullptr);
    stop_server();
    ASSERT_TRUE(store->create_execution(window(4)).ok());
    for (int i = 0; i < 4; ++i) {
      ASSERT_TRUE(store->commit_slots(std::vector{published(i, std::to_string(i))}).ok());
    }
    EXPECT_EQ(store->stats().depth, 5);
    // The process dies here: nothing is drained, the spool file is all that is left.
  }
  start_server();
  auto store = open_spooling();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->stats().depth, 5);
  // A spool with entries is in use from the start: a new write queues behind them.
  ASSERT_TRUE(
      store->set_execution_state(kExecution, ExecutionState::kSucceeded, WallTime(slot(4))).ok());
  EXPECT_EQ(store->stats().depth, 6);
  auto left = store->drain_once();
  ASSERT_TRUE(left.ok()) << left.status().ToString();
  EXPECT_EQ(*left, 0);
  auto written = values_in_write_order();
  ASSERT_EQ(written.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(written[i], std::make_pair(to_unix_ms(slot(i)), std::to_string(i)));
  }
  auto execution = store->get_execution(kExecution);
  ASSERT_TRUE(execution.ok() && execution->has_value());
  EXPECT_EQ((*execution)->state, ExecutionState::kSucceeded);

  // Reopened once more: nothing left to write.
  store.reset();
  store = open_spooling();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->stats().depth, 0);
}

TEST_F(SpoolingStoreTest, DrainerThreadWritesTheSpoolWhenTheDatabaseIsBack) {
  auto store = open_spooling();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->create_execution(window(4)).ok());
  store->start();
  stop_server();
  ASSERT_TRUE(store->commit_slots(std::vector{published(0, "1"), published(1, "2")}).ok());
  ASSERT_TRUE(clock_.wait_for_sleepers(1));
  clock_.advance(Millis(500));  // wake-ups while the database is down write nothing
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(store->stats().depth, 2);
  EXPECT_TRUE(store->stats().outage);
  start_server();
  // Each wake-up (every 500 ms of the injected clock) drains what it can. The outage ends in
  // the pass that empties the spool, after its last entry is written: wait for both.
  for (int i = 0; i < 100 && (store->stats().depth != 0 || store->stats().outage); ++i) {
    ASSERT_TRUE(clock_.wait_for_sleepers(1));
    clock_.advance(Millis(500));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(store->stats().depth, 0);
  EXPECT_FALSE(store->stats().outage);
  EXPECT_EQ(values_in_write_order().size(), 2u);
  store->stop();
}

TEST_F(SpoolingStoreTest, OnlyUnavailabilityIsSpooled) {
  auto store = open_spooling();
  ASSERT_NE(store, nullptr);
  SlotCommit bad = published(0, "1");
  bad.record.reset();  // published without its record
  auto refused = store->commit_slots(std::vector{bad});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Status::Code::kInvalidArgument);
  // The database's own refusals come back as they are.
  auto missing =
      store->set_execution_state(ExecutionId("nope@x"), ExecutionState::kRunning, std::nullopt);
  EXPECT_EQ(missing.code(), Status::Code::kNotFound);
  EXPECT_EQ(store->stats().spooled, 0);
  EXPECT_FALSE(store->stats().outage);
}

TEST_F(SpoolingStoreTest, OpenRefusesAFileThatIsNotASpoolAndNamesIt) {
  std::filesystem::create_directories(spool_path().parent_path());
  {
    std::ofstream out(spool_path());
    out << "not a database, certainly not a spool";
  }
  auto pg = PostgresStore::open(options_);
  ASSERT_TRUE(pg.ok()) << pg.status().ToString();
  auto store = SpoolingStore::open(std::move(pg).value(), {.path = spool_path()}, clock_);
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(store.status().message(), HasSubstr(spool_path().string()));
  EXPECT_FALSE(SpoolingStore::open(nullptr, {.path = spool_path()}, clock_).ok());
}

}  // namespace
}  // namespace metronome
