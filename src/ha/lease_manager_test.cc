#include "ha/lease_manager.h"

#include <gtest/gtest.h>

#include <map>
#include <pqxx/pqxx>
#include <thread>

#include "clock/system_clock.h"
#include "testing/offset_clock.h"
#include "testing/postgres_server.h"

namespace metronome {
namespace {

using testing::OffsetClock;
using testing::PostgresServer;

std::vector<FeedId> feeds(int n) {
  std::vector<FeedId> out;
  for (int i = 0; i < n; ++i) out.push_back(FeedId(fmt::format("feed{}", i)));
  return out;
}

TEST(Rendezvous, DeterministicBalancedAndMovesOnlyTheLeaversFeeds) {
  const std::vector<std::string> three = {"a", "b", "c"};
  const std::vector<std::string> two = {"a", "c"};
  std::map<std::string, int> share;
  for (const FeedId& f : feeds(3000)) {
    const std::string owner = rendezvous_owner(f, three);
    ++share[owner];
    EXPECT_EQ(owner, rendezvous_owner(f, {"c", "b", "a"})) << "order must not matter";
    // b leaves: only b's feeds move.
    if (owner != "b") {
      EXPECT_EQ(rendezvous_owner(f, two), owner) << f.str();
    }
  }
  for (const auto& [replica, n] : share) {
    EXPECT_GT(n, 850) << replica;
    EXPECT_LT(n, 1150) << replica;
  }
  EXPECT_EQ(rendezvous_owner(FeedId("x"), {}), "");
}

class LeaseManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PostgresServer* server = PostgresServer::shared();
    ASSERT_NE(server, nullptr);
    auto url = server->create_database();
    ASSERT_TRUE(url.ok()) << url.status().ToString();
    db_.url = *url;
    auto migrated = PostgresStore::migrate(db_);
    ASSERT_TRUE(migrated.ok()) << migrated.status().ToString();
  }

  std::unique_ptr<LeaseManager> replica(const std::string& id, Clock& clock,
                                        Millis ttl = Millis(2000)) {
    LeaseOptions o{.replica_id = id, .ttl = ttl, .renew = Millis(ttl / 4)};
    auto m = LeaseManager::open(db_, o, clock);
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    return m.ok() ? std::move(m).value() : nullptr;
  }

  int64_t count(const std::string& sql) {
    pqxx::connection c(db_.url);
    pqxx::nontransaction n(c);
    return n.exec(sql)[0][0].as<int64_t>();
  }

  PostgresStoreOptions db_;
  SystemClock clock_;
};

TEST_F(LeaseManagerTest, ALoneReplicaHoldsEveryFeedUntilItsLeaseExpires) {
  auto a = replica("a", clock_);
  ASSERT_NE(a, nullptr);
  ASSERT_TRUE(a->tick(feeds(5)).ok());
  EXPECT_TRUE(a->clock_ok());
  for (const FeedId& f : feeds(5)) EXPECT_EQ(a->owns(f, clock_.now()), 1) << f.str();
  EXPECT_EQ(a->owns(FeedId("not_configured"), clock_.now()), std::nullopt);
  // Judged locally and conservatively: not valid a TTL from now.
  EXPECT_EQ(a->owns(FeedId("feed0"), clock_.now() + Millis(2000)), std::nullopt);
  // Renewing keeps the epoch.
  ASSERT_TRUE(a->tick(feeds(5)).ok());
  EXPECT_EQ(a->owns(FeedId("feed0"), clock_.now()), 1);
  EXPECT_EQ(count("SELECT count(*) FROM leases WHERE holder = 'a' AND epoch = 1"), 5);
}

TEST_F(LeaseManagerTest, TwoReplicasSplitTheFeedsAndNeverBothOwnOne) {
  auto a = replica("a", clock_);
  auto b = replica("b", clock_);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  const auto all = feeds(40);
  // a starts alone and takes everything; b joins; a hands over b's share; b takes it.
  ASSERT_TRUE(a->tick(all).ok());
  ASSERT_TRUE(b->tick(all).ok());
  ASSERT_TRUE(a->tick(all).ok());
  ASSERT_TRUE(b->tick(all).ok());
  int of_a = 0, of_b = 0;
  for (const FeedId& f : all) {
    auto ea = a->owns(f, clock_.now());
    auto eb = b->owns(f, clock_.now());
    EXPECT_FALSE(ea && eb) << f.str() << " owned by both";
    EXPECT_TRUE(ea || eb) << f.str() << " owned by neither";
    const std::string expected = rendezvous_owner(f, {"a", "b"});
    EXPECT_EQ(ea.has_value(), expected == "a") << f.str();
    if (ea) ++of_a;
    if (eb) {
      ++of_b;
      EXPECT_EQ(*eb, 2) << "a change of holder increments the epoch";
    }
  }
  EXPECT_GT(of_a, 5);
  EXPECT_GT(of_b, 5);
}

TEST_F(LeaseManagerTest, ASilentReplicasFeedsAreTakenAfterTheTtlWithANewEpoch) {
  const Millis ttl(400);
  auto a = replica("a", clock_, ttl);
  auto b = replica("b", clock_, ttl);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  const auto all = feeds(10);
  ASSERT_TRUE(a->tick(all).ok());
  ASSERT_TRUE(b->tick(all).ok());
  ASSERT_TRUE(a->tick(all).ok());
  ASSERT_TRUE(b->tick(all).ok());
  // a stops renewing (killed, paused). Until its leases expire, b takes none of them.
  std::vector<FeedId> of_a;
  for (const FeedId& f : all) {
    if (a->owns(f, clock_.now())) of_a.push_back(f);
  }
  ASSERT_FALSE(of_a.empty());
  ASSERT_TRUE(b->tick(all).ok());
  for (const FeedId& f : of_a) EXPECT_EQ(b->owns(f, clock_.now()), std::nullopt) << f.str();
  std::this_thread::sleep_for(ttl + Millis(100));
  EXPECT_EQ(a->owns(of_a.front(), clock_.now()), std::nullopt) << "a's own view expired too";
  ASSERT_TRUE(b->tick(all).ok());
  for (const FeedId& f : all) EXPECT_TRUE(b->owns(f, clock_.now()).has_value()) << f.str();
  // a held them at epoch 1 since it started; b's takeover is the first change of holder.
  for (const FeedId& f : of_a) EXPECT_EQ(b->owns(f, clock_.now()), 2) << f.str();
  // a comes back: it may not write with its old epoch, and it gets its share back (new epoch).
  ASSERT_TRUE(a->tick(all).ok());
  for (const FeedId& f : of_a) EXPECT_EQ(a->owns(f, clock_.now()), std::nullopt) << f.str();
  ASSERT_TRUE(b->tick(all).ok());
  ASSERT_TRUE(a->tick(all).ok());
  for (const FeedId& f : of_a) EXPECT_EQ(a->owns(f, clock_.now()), 3) << f.str();
}

// Issue 8: "a replica takes an expired lease at the next slot". The survivor's next tick is
// timed by the silent replica's heartbeat and leases running out, not by its own renew period.
TEST_F(LeaseManagerTest, ASilentReplicasFeedsAreTakenWhenItsLeasesRunOutNotAtTheNextRenewal) {
  const LeaseOptions slow{.replica_id = "", .ttl = Millis(1000), .renew = Millis(900)};
  LeaseOptions oa = slow, ob = slow;
  oa.replica_id = "a";
  ob.replica_id = "b";
  auto a = LeaseManager::open(db_, oa, clock_);
  auto b = LeaseManager::open(db_, ob, clock_);
  ASSERT_TRUE(a.ok() && b.ok());
  const auto all = feeds(10);
  ASSERT_TRUE((*a)->tick(all).ok());  // a alone: takes everything
  ASSERT_TRUE((*b)->tick(all).ok());  // b joins: its share is still under a's leases
  ASSERT_TRUE((*a)->tick(all).ok());  // a hands over b's share
  ASSERT_TRUE((*b)->tick(all).ok());
  std::vector<FeedId> of_a;
  for (const FeedId& f : all) {
    if ((*a)->owns(f, clock_.now())) of_a.push_back(f);
  }
  ASSERT_FALSE(of_a.empty());
  ASSERT_LT(of_a.size(), all.size());
  // a goes silent now. b ticks on its own schedule, each wait the one it asked for.
  std::vector<Nanos> waits;
  for (int i = 0; i < 4; ++i) {
    bool all_ours = true;
    for (const FeedId& f : all) all_ours = all_ours && (*b)->owns(f, clock_.now()).has_value();
    if (all_ours) break;
    waits.push_back((*b)->next_tick_in());
    std::this_thread::sleep_for(waits.back());
    ASSERT_TRUE((*b)->tick(all).ok());
  }
  for (const FeedId& f : of_a) EXPECT_EQ((*b)->owns(f, clock_.now()), 2) << f.str();
  // b waited 900 ms (a still live), then woke just after a's heartbeat and leases ran out, a
  // TTL (1 s) after a's last tick: about 1 s in all, where ticking every `renew` takes 1.8 s.
  Nanos waited{0};
  for (Nanos w : waits) waited += w;
  EXPECT_LT(waited, Millis(1300)) << waits.size() << " waits";
  EXPECT_GE(waits.size(), 2u);
  // Then back to the regular period.
  EXPECT_EQ((*b)->next_tick_in(), Millis(900));
}

TEST_F(LeaseManagerTest, AReplicaWithASkewedClockPublishesNothingAndLeavesItsFeeds) {
  OffsetClock skewed(Millis(200));
  auto bad = replica("skewed", skewed);
  auto good = replica("good", clock_);
  ASSERT_NE(bad, nullptr);
  ASSERT_NE(good, nullptr);
  const auto all = feeds(10);
  ASSERT_TRUE(bad->tick(all).ok());
  EXPECT_FALSE(bad->clock_ok());
  EXPECT_GT(bad->last_skew(), Millis(150));
  for (const FeedId& f : all) EXPECT_EQ(bad->owns(f, skewed.now()), std::nullopt);
  EXPECT_EQ(count("SELECT count(*) FROM replicas WHERE id = 'skewed'"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM leases WHERE holder = 'skewed'"), 0);
  // The healthy replica does not wait for it: every feed is its own.
  ASSERT_TRUE(good->tick(all).ok());
  EXPECT_TRUE(good->clock_ok());
  EXPECT_LT(std::chrono::abs(good->last_skew()), Millis(50));
  for (const FeedId& f : all) EXPECT_TRUE(good->owns(f, clock_.now()).has_value()) << f.str();
}

SlotCommit fenced_commit(const FeedId& feed, SlotTime slot, const std::string& value,
                         std::optional<SlotFence> fence) {
  SlotCommit c;
  c.feed = feed;
  c.execution = make_execution_id(feed, std::chrono::floor<std::chrono::minutes>(slot));
  c.slot.slot = slot;
  c.slot.outcome = SlotOutcome::kPublished;
  c.slot.attempts = 1;
  ValueRecord r;
  r.feed = feed;
  r.slot = slot;
  r.value = value;
  r.execution = c.execution;
  c.record = r;
  c.fence = std::move(fence);
  return c;
}

TEST_F(LeaseManagerTest, AFencedCommitLandsOnlyUnderTheCurrentLease) {
  const Millis ttl(400);
  auto a = replica("a", clock_, ttl);
  ASSERT_NE(a, nullptr);
  auto store = PostgresStore::open(db_);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  const FeedId feed("feed0");
  const SlotTime t0 = slot_from_unix_ms(1'795'000'020'000);
  ASSERT_TRUE(a->tick({feed}).ok());
  auto epoch = a->owns(feed, clock_.now());
  ASSERT_EQ(epoch, 1);

  auto landed =
      (*store)->commit_slots(std::vector{fenced_commit(feed, t0, "1", SlotFence{"a", *epoch})});
  ASSERT_TRUE(landed.ok()) << landed.status().ToString();
  EXPECT_EQ(*landed, std::vector<bool>{true});

  // a pauses past its TTL; b takes the feed (epoch 2). a's late commit, still under epoch 1,
  // writes nothing: no value and no outcome.
  std::this_thread::sleep_for(ttl + Millis(100));
  auto b = replica("b", clock_, ttl);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(b->tick({feed}).ok());
  ASSERT_EQ(b->owns(feed, clock_.now()), 2);
  const SlotTime t1 = t0 + Millis(2000);
  auto stale =
      (*store)->commit_slots(std::vector{fenced_commit(feed, t1, "stale", SlotFence{"a", 1})});
  ASSERT_TRUE(stale.ok()) << stale.status().ToString();
  EXPECT_EQ(*stale, std::vector<bool>{false});
  EXPECT_EQ(count("SELECT count(*) FROM slots WHERE slot_ms = " + std::to_string(to_unix_ms(t1))),
            0);
  auto current =
      (*store)->commit_slots(std::vector{fenced_commit(feed, t1, "b", SlotFence{"b", 2})});
  ASSERT_TRUE(current.ok());
  EXPECT_EQ(*current, std::vector<bool>{true});
  auto value = (*store)->get_value(feed, t1);
  ASSERT_TRUE(value.ok() && value->has_value());
  EXPECT_EQ((*value)->value, "b");
  // An unfenced commit (a single writer) is not checked.
  auto unfenced = (*store)->commit_slots(
      std::vector{fenced_commit(feed, t1 + Millis(2000), "u", std::nullopt)});
  ASSERT_TRUE(unfenced.ok());
  EXPECT_EQ(*unfenced, std::vector<bool>{true});
}

// The spool contract (docs/ha.md): with the database unreachable, the leases of the last
// successful renewal stand (slots keep being signed, their commits spooled); the first renewal
// that succeeds answers with the database's truth, and a lease lost meanwhile stops at once.
TEST_F(LeaseManagerTest, AnUnreachableDatabaseKeepsTheLastLeasesUntilARenewalSucceeds) {
  // A server of its own: this test stops it (the shared one must keep running).
  auto server = PostgresServer::start();
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  auto url = (*server)->create_database();
  ASSERT_TRUE(url.ok()) << url.status().ToString();
  PostgresStoreOptions db{.url = *url};
  ASSERT_TRUE(PostgresStore::migrate(db).ok());
  const Millis ttl(400);
  LeaseOptions options{.replica_id = "a", .ttl = ttl, .renew = Millis(100)};
  auto a = LeaseManager::open(db, options, clock_);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  const auto all = feeds(6);
  const std::vector<FeedId> held_by_a(all.begin(), all.begin() + 4);
  ASSERT_TRUE((*a)->tick(held_by_a).ok());
  EXPECT_TRUE((*a)->database_reachable());
  EXPECT_EQ((*a)->renew_failures(), 0u);

  ASSERT_TRUE((*server)->stop("immediate").ok());
  Status failed = (*a)->tick(held_by_a);
  EXPECT_EQ(failed.code(), Status::Code::kUnavailable) << failed.ToString();
  EXPECT_FALSE((*a)->database_reachable());
  EXPECT_EQ((*a)->renew_failures(), 1u);
  std::this_thread::sleep_for(ttl + Millis(100));  // past every local expiry
  EXPECT_FALSE((*a)->tick(held_by_a).ok());
  EXPECT_EQ((*a)->renew_failures(), 2u);
  for (const FeedId& f : held_by_a) EXPECT_EQ((*a)->owns(f, clock_.now()), 1) << f.str();
  // Only what it held: a feed it never had is still not its own.
  EXPECT_EQ((*a)->owns(all[5], clock_.now()), std::nullopt);

  // The database is back; b renews first and takes every expired lease (a is not live).
  ASSERT_TRUE((*server)->start_again().ok());
  auto b = LeaseManager::open(db, LeaseOptions{.replica_id = "b", .ttl = ttl, .renew = Millis(100)},
                              clock_);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  ASSERT_TRUE((*b)->tick(all).ok());
  for (const FeedId& f : all) EXPECT_TRUE((*b)->owns(f, clock_.now()).has_value()) << f.str();
  // a's renewal succeeds: its leases are b's now, so it stops at once.
  ASSERT_TRUE((*a)->tick(held_by_a).ok());
  EXPECT_TRUE((*a)->database_reachable());
  for (const FeedId& f : held_by_a) EXPECT_EQ((*a)->owns(f, clock_.now()), std::nullopt) << f.str();
  EXPECT_TRUE((*a)->held().empty());
}

// A statement the database refuses is not an outage: the leases run out at their local expiry.
TEST_F(LeaseManagerTest, ARefusedRenewalIsNotAnOutage) {
  const Millis ttl(400);
  auto a = replica("a", clock_, ttl);
  ASSERT_NE(a, nullptr);
  ASSERT_TRUE(a->tick(feeds(2)).ok());
  ASSERT_TRUE(PostgresServer::shared()
                  ->execute(db_.url.substr(db_.url.rfind('/') + 1), "DROP TABLE replicas")
                  .ok());
  Status failed = a->tick(feeds(2));
  EXPECT_FALSE(failed.ok());
  EXPECT_TRUE(a->database_reachable()) << failed.ToString();
  EXPECT_EQ(a->renew_failures(), 1u);
  EXPECT_TRUE(a->owns(FeedId("feed0"), clock_.now()).has_value());  // until its local expiry
  EXPECT_EQ(a->owns(FeedId("feed0"), clock_.now() + ttl), std::nullopt);
}

TEST_F(LeaseManagerTest, OpenRefusesAnUnmigratedDatabaseAndBadTimings) {
  auto url = PostgresServer::shared()->create_database();
  ASSERT_TRUE(url.ok());
  auto unmigrated = LeaseManager::open({.url = *url}, {.replica_id = "a"}, clock_);
  ASSERT_FALSE(unmigrated.ok());
  EXPECT_NE(unmigrated.status().message().find("metronome migrate"), std::string::npos)
      << unmigrated.status().ToString();
  auto bad = LeaseManager::open(db_, {.replica_id = "a", .ttl = Millis(500), .renew = Millis(500)},
                                clock_);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Status::Code::kInvalidArgument);
}

}  // namespace
}  // namespace metronome
