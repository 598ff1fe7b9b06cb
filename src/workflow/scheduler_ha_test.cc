// The scheduler's replica hook (docs/ha.md) against a real PostgreSQL with real leases: the
// scheduler runs on a ManualClock (slot by slot), the LeaseManagers on the system clock (their
// leases are measured against the database's clock). The hook hands the scheduler the lease of
// the replica under test as it stands in real time, which is what the daemon does.
#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include "clock/system_clock.h"
#include "ha/lease_manager.h"
#include "publish/publisher.h"
#include "source/random_int_source.h"
#include "store/postgres_store.h"
#include "testing/manual_clock.h"
#include "testing/offset_clock.h"
#include "testing/postgres_server.h"
#include "workflow/scheduler.h"

namespace metronome {
namespace {

using namespace std::chrono_literals;
using testing::ManualClock;
using testing::OffsetClock;
using testing::PostgresServer;

WallTime at(const char* iso) {
  return *parse_iso(iso);
}
SlotTime slot(const char* iso) {
  return std::chrono::floor<Millis>(at(iso));
}

class SchedulerReplicaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PostgresServer* server = PostgresServer::shared();
    ASSERT_NE(server, nullptr);
    auto url = server->create_database();
    ASSERT_TRUE(url.ok()) << url.status().ToString();
    db_.url = *url;
    ASSERT_TRUE(PostgresStore::migrate(db_).ok());
    auto store = PostgresStore::open(db_);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    dlq_ = std::make_unique<DeadLetterQueue>(*store_, clock_);
    publisher_ = std::make_unique<Publisher>(*store_, *dlq_, clock_);
    for (int i = 0; i < 8; ++i) {
      auto rt = std::make_unique<FeedRuntime>();
      rt->id = FeedId(fmt::format("feed_{}", i));
      rt->schedule = Schedule::every(2000ms);
      rt->window = 60000ms;
      rt->source = std::make_unique<RandomIntSource>(0, 1000);
      feeds_.push_back(std::move(rt));
    }
  }
  void TearDown() override { scheduler_.reset(); }

  std::vector<FeedId> ids() const {
    std::vector<FeedId> out;
    for (const auto& f : feeds_) out.push_back(f->id);
    return out;
  }

  std::unique_ptr<LeaseManager> replica(const std::string& id, Clock& clock) {
    auto m = LeaseManager::open(db_, {.replica_id = id, .ttl = 5000ms, .renew = 1000ms}, clock);
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    return m.ok() ? std::move(*m) : nullptr;
  }

  // The scheduler for replica `leases`, asking it in real time.
  void start(LeaseManager& leases) {
    SchedulerOptions options;
    options.ownership = [&leases, this](const FeedId& feed, WallTime) -> std::optional<SlotFence> {
      auto epoch = leases.owns(feed, real_.now());
      if (!epoch) return std::nullopt;
      return SlotFence{leases.replica_id(), *epoch};
    };
    std::vector<const FeedRuntime*> runtimes;
    for (const auto& f : feeds_) runtimes.push_back(f.get());
    scheduler_ = std::make_unique<Scheduler>(clock_, *store_, *dlq_, *publisher_, runtimes,
                                             std::move(options));
    ASSERT_TRUE(scheduler_->start().ok());
  }

  void advance_to(WallTime t, uint64_t outcomes) {
    ASSERT_TRUE(clock_.wait_for_sleepers(1));
    clock_.set(t);
    ASSERT_TRUE(scheduler_->wait_for_outcomes(outcomes, 10s))
        << "only " << scheduler_->outcomes_handled() << " outcomes by " << format_iso_us(t);
  }

  SlotRecord stored_slot(const FeedId& feed, SlotTime s) {
    auto e = store_->get_execution(make_execution_id(feed, slot("2026-11-27T21:15:00Z")));
    EXPECT_TRUE(e.ok() && e->has_value());
    if (!e.ok() || !*e) return {};
    for (const auto& r : (*e)->slots) {
      if (r.slot == s) return r;
    }
    ADD_FAILURE() << "no slot " << format_iso_ms(s) << " for " << feed.str();
    return {};
  }

  bool has_value(const FeedId& feed, SlotTime s) {
    auto v = store_->get_value(feed, s);
    EXPECT_TRUE(v.ok());
    return v.ok() && v->has_value();
  }

  void sql(const std::string& statement) {
    pqxx::connection c(db_.url);
    pqxx::nontransaction n(c);
    n.exec(statement);
  }

  PostgresStoreOptions db_;
  SystemClock real_;
  ManualClock clock_{at("2026-11-27T21:15:37.500Z")};
  std::unique_ptr<PostgresStore> store_;
  std::unique_ptr<DeadLetterQueue> dlq_;
  std::unique_ptr<Publisher> publisher_;
  std::vector<std::unique_ptr<FeedRuntime>> feeds_;
  std::unique_ptr<Scheduler> scheduler_;
};

TEST_F(SchedulerReplicaTest, PublishesOnlyTheFeedsItHoldsAndRecordsNothingForTheOthers) {
  auto r1 = replica("r1", real_);
  auto r2 = replica("r2", real_);
  ASSERT_TRUE(r1 && r2);
  // r1 alone first (takes all), then r2 joins: r1 releases r2's share, r2 takes it.
  ASSERT_TRUE(r1->tick(ids()).ok());
  ASSERT_TRUE(r2->tick(ids()).ok());
  ASSERT_TRUE(r1->tick(ids()).ok());
  ASSERT_TRUE(r2->tick(ids()).ok());
  const auto mine = r1->held();
  ASSERT_FALSE(mine.empty());
  ASSERT_LT(mine.size(), feeds_.size()) << "rendezvous gave r2 nothing";

  start(*r1);
  advance_to(at("2026-11-27T21:15:38Z"), 8);
  advance_to(at("2026-11-27T21:15:40Z"), 16);
  for (const FeedId& feed : ids()) {
    const bool held = std::find(mine.begin(), mine.end(), feed) != mine.end();
    for (const char* s : {"2026-11-27T21:15:38Z", "2026-11-27T21:15:40Z"}) {
      EXPECT_EQ(has_value(feed, slot(s)), held) << feed.str() << " " << s;
      EXPECT_EQ(stored_slot(feed, slot(s)).outcome,
                held ? SlotOutcome::kPublished : SlotOutcome::kPlanned)
          << feed.str() << " " << s;
    }
  }
  EXPECT_EQ(*store_->dlq_depth(), 0);
}

TEST_F(SchedulerReplicaTest, ALeaseLostBeforeTheCommitRecordsNothingAndTheNextHolderRecordsTheGap) {
  feeds_.resize(1);
  const FeedId feed = feeds_[0]->id;
  auto r1 = replica("r1", real_);
  ASSERT_TRUE(r1);
  ASSERT_TRUE(r1->tick(ids()).ok());
  ASSERT_EQ(r1->owns(feed, real_.now()), 1);
  start(*r1);
  advance_to(at("2026-11-27T21:15:38Z"), 1);
  EXPECT_TRUE(has_value(feed, slot("2026-11-27T21:15:38Z")));

  // Another replica took the lease; r1's renewal has not told it yet (its cache says epoch 1).
  sql("UPDATE leases SET holder = 'r2', epoch = 2, expires_at = now() + interval '1 hour'");
  advance_to(at("2026-11-27T21:15:40Z"), 2);
  EXPECT_FALSE(has_value(feed, slot("2026-11-27T21:15:40Z")));
  EXPECT_EQ(stored_slot(feed, slot("2026-11-27T21:15:40Z")).outcome, SlotOutcome::kPlanned);
  EXPECT_EQ(*store_->dlq_depth(), 0) << "a lost lease is not a failure";

  // r2 hands it back (epoch 3): r1's first slot under the new lease records the slot nobody
  // published as missed, and publishes its own.
  sql("UPDATE leases SET expires_at = now() - interval '1 second'");
  ASSERT_TRUE(r1->tick(ids()).ok());
  ASSERT_EQ(r1->owns(feed, real_.now()), 3);
  advance_to(at("2026-11-27T21:15:42Z"), 3);
  EXPECT_TRUE(has_value(feed, slot("2026-11-27T21:15:42Z")));
  SlotRecord gap = stored_slot(feed, slot("2026-11-27T21:15:40Z"));
  EXPECT_EQ(gap.outcome, SlotOutcome::kMissed);
  EXPECT_NE(gap.error.find("lease"), std::string::npos) << gap.error;
  // Slots with an outcome are never touched.
  EXPECT_EQ(stored_slot(feed, slot("2026-11-27T21:15:38Z")).outcome, SlotOutcome::kPublished);
  EXPECT_EQ(stored_slot(feed, slot("2026-11-27T21:15:42Z")).outcome, SlotOutcome::kPublished);
}

TEST_F(SchedulerReplicaTest, AReplicaWithASkewedClockPublishesNothing) {
  OffsetClock skewed(200ms);
  auto bad = replica("skewed", skewed);
  ASSERT_TRUE(bad);
  ASSERT_TRUE(bad->tick(ids()).ok());
  ASSERT_FALSE(bad->clock_ok());
  start(*bad);
  advance_to(at("2026-11-27T21:15:38Z"), 8);
  advance_to(at("2026-11-27T21:15:40Z"), 16);
  for (const FeedId& feed : ids()) {
    EXPECT_FALSE(has_value(feed, slot("2026-11-27T21:15:38Z"))) << feed.str();
    EXPECT_EQ(stored_slot(feed, slot("2026-11-27T21:15:40Z")).outcome, SlotOutcome::kPlanned);
  }
  EXPECT_EQ(*store_->dlq_depth(), 0);
}

TEST_F(SchedulerReplicaTest, StartUpRecoveryRecordsMissedSlotsOnlyForTheFeedsItHolds) {
  auto r1 = replica("r1", real_);
  auto r2 = replica("r2", real_);
  ASSERT_TRUE(r1 && r2);
  ASSERT_TRUE(r1->tick(ids()).ok());
  ASSERT_TRUE(r2->tick(ids()).ok());
  ASSERT_TRUE(r1->tick(ids()).ok());
  ASSERT_TRUE(r2->tick(ids()).ok());
  const auto mine = r1->held();
  ASSERT_TRUE(!mine.empty() && mine.size() < feeds_.size());
  // A previous run planned this window and stopped after :38.
  start(*r1);
  ASSERT_TRUE(r2->tick(ids()).ok());
  scheduler_->stop();
  scheduler_.reset();
  clock_.set(at("2026-11-27T21:15:45.500Z"));  // :38 .. :44 passed with nobody running
  start(*r1);
  for (const FeedId& feed : ids()) {
    const bool held = std::find(mine.begin(), mine.end(), feed) != mine.end();
    for (const char* s : {"2026-11-27T21:15:38Z", "2026-11-27T21:15:44Z"}) {
      EXPECT_EQ(stored_slot(feed, slot(s)).outcome,
                held ? SlotOutcome::kMissed : SlotOutcome::kPlanned)
          << feed.str() << " " << s;
    }
    EXPECT_EQ(stored_slot(feed, slot("2026-11-27T21:15:46Z")).outcome, SlotOutcome::kPlanned);
  }
}

}  // namespace
}  // namespace metronome
