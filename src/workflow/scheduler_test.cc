// Scheduler tests on a ManualClock with a real SQLite store in a temporary directory: a day of
// slots would run in milliseconds; here each test moves the clock slot by slot and checks what
// the store recorded.
#include "workflow/scheduler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <mutex>

#include "publish/publisher.h"
#include "schedule/window.h"
#include "secret/secret_registry.h"
#include "sign/presign.h"
#include "source/random_int_source.h"
#include "store/sqlite_store.h"
#include "testing/faulty_store.h"
#include "testing/manual_clock.h"

namespace metronome {
namespace {

using namespace std::chrono_literals;
using testing::ManualClock;

WallTime at(const char* iso) {
  return *parse_iso(iso);
}
SlotTime slot(const char* iso) {
  return std::chrono::floor<Millis>(at(iso));
}

// `n` random_int feeds at 2 s named feed_0, feed_1, ...
std::vector<std::unique_ptr<FeedRuntime>> random_int_feeds(int n) {
  std::vector<std::unique_ptr<FeedRuntime>> feeds;
  for (int i = 0; i < n; ++i) {
    auto rt = std::make_unique<FeedRuntime>();
    rt->id = FeedId(fmt::format("feed_{}", i));
    rt->schedule = Schedule::every(2000ms);
    rt->window = 60000ms;
    rt->source = std::make_unique<RandomIntSource>(0, 1000);
    feeds.push_back(std::move(rt));
  }
  return feeds;
}

// A source whose observe() can be held until the test releases it.
class GatedSource final : public Source {
 public:
  Result<SourceValue> observe(const ObserveContext&) override {
    std::unique_lock lock(mu_);
    ++calls_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
    return SourceValue{std::to_string(calls_)};
  }
  std::string describe() const override { return "gated"; }
  void close() {
    std::lock_guard lock(mu_);
    open_ = false;
  }
  void open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  void wait_for_calls(int n) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, 10s, [&] { return calls_ >= n; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = true;
  int calls_ = 0;
};

// A source that never blocks (as random_int) and notes which feed observed, in order.
class NotingSource final : public Source {
 public:
  NotingSource(std::string feed, std::mutex& mu, std::vector<std::string>& seen)
      : feed_(std::move(feed)), mu_(mu), seen_(seen) {}
  Result<SourceValue> observe(const ObserveContext&) override {
    std::lock_guard lock(mu_);
    seen_.push_back(feed_);
    return SourceValue{"1"};
  }
  std::string describe() const override { return "noting"; }
  bool may_block() const override { return false; }

 private:
  const std::string feed_;
  std::mutex& mu_;
  std::vector<std::string>& seen_;  // guarded by mu_
};

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("metronome-scheduler-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    SqliteStoreOptions o;
    o.path = dir_ / "metronome.db";
    o.dlq_path = dir_ / "metronome.dlq.db";
    store_ = std::move(*SqliteStore::open(o));
    dlq_ = std::make_unique<DeadLetterQueue>(*store_, clock_);
    publisher_ = std::make_unique<Publisher>(*store_, *dlq_, clock_);
    feed_.id = FeedId("random_int");
    feed_.schedule = Schedule::every(2000ms);
    feed_.window = 60000ms;
    feed_.source = std::make_unique<RandomIntSource>(0, 1000);
  }
  void TearDown() override {
    scheduler_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  void start() {
    scheduler_ = std::make_unique<Scheduler>(clock_, *store_, *dlq_, *publisher_,
                                             std::vector<const FeedRuntime*>{&feed_});
    ASSERT_TRUE(scheduler_->start().ok());
  }

  // Moves the clock to `t` and waits until `outcomes` slot outcomes in total were handled.
  void advance_to(WallTime t, uint64_t outcomes) {
    ASSERT_TRUE(clock_.wait_for_sleepers(1));
    clock_.set(t);
    ASSERT_TRUE(scheduler_->wait_for_outcomes(outcomes, 10s))
        << "only " << scheduler_->outcomes_handled() << " outcomes by " << format_iso_us(t);
  }

  Execution execution(const char* id) {
    auto e = store_->get_execution(ExecutionId(id));
    EXPECT_TRUE(e.ok() && e->has_value()) << "no execution " << id;
    return e.ok() && *e ? **e : Execution{};
  }

  std::filesystem::path dir_;
  ManualClock clock_{at("2026-11-27T21:15:37.500Z")};
  std::unique_ptr<SqliteStore> store_;
  std::unique_ptr<DeadLetterQueue> dlq_;
  std::unique_ptr<Publisher> publisher_;
  FeedRuntime feed_;
  std::unique_ptr<Scheduler> scheduler_;
};

TEST_F(SchedulerTest, FirstExecutionCoversTheRestOfTheCurrentWindow) {
  start();
  Execution e = execution("random_int@2026-11-27T21:15:00Z");
  ASSERT_EQ(e.slots.size(), 11u);  // :38, :40 ... :58
  EXPECT_EQ(e.slots.front().slot, slot("2026-11-27T21:15:38Z"));
  EXPECT_EQ(e.slots.back().slot, slot("2026-11-27T21:15:58Z"));
  EXPECT_EQ(e.state, ExecutionState::kPlanned);
}

TEST_F(SchedulerTest, PublishesEverySlotOnceAndNeverEarly) {
  start();
  // Just before the slot nothing fires.
  ASSERT_TRUE(clock_.wait_for_sleepers(1));
  clock_.set(at("2026-11-27T21:15:37.999Z"));
  ASSERT_TRUE(clock_.wait_for_sleepers(1));
  EXPECT_EQ(scheduler_->outcomes_handled(), 0u);

  uint64_t n = 0;
  for (int s = 38; s <= 58; s += 2) {
    advance_to(at(fmt::format("2026-11-27T21:15:{:02}.000Z", s).c_str()), ++n);
  }
  Execution e = execution("random_int@2026-11-27T21:15:00Z");
  EXPECT_EQ(e.state, ExecutionState::kSucceeded);
  for (const auto& s : e.slots) {
    EXPECT_EQ(s.outcome, SlotOutcome::kPublished) << format_iso_ms(s.slot);
    ASSERT_TRUE(s.fired_at.has_value());
    EXPECT_GE(*s.fired_at, WallTime(s.slot));
    EXPECT_EQ(*s.lateness_us, 0);  // the manual clock does not move while the slot runs
  }
  auto values = store_->list_values(ValueQuery{.feed = feed_.id, .limit = 100});
  ASSERT_TRUE(values.ok());
  EXPECT_EQ(values->size(), 11u);
  for (const auto& v : *values) {
    EXPECT_EQ(v.round, to_unix_ms(v.slot) / 2000);
    int value = std::stoi(v.value);
    EXPECT_GE(value, 0);
    EXPECT_LE(value, 1000);
  }
  // The next window was planned (all 30 slots) before its first slot. Planning runs on a worker
  // beside the last slot, so wait for it rather than race it.
  ASSERT_TRUE(scheduler_->wait_for_windows_planned(1, 10s));
  Execution next = execution("random_int@2026-11-27T21:16:00Z");
  ASSERT_EQ(next.slots.size(), 30u);
  EXPECT_EQ(next.slots[1].slot - next.slots[0].slot, 2000ms);
  advance_to(at("2026-11-27T21:16:00Z"), ++n);
  EXPECT_TRUE(store_->get_value(feed_.id, slot("2026-11-27T21:16:00Z"))->has_value());
}

TEST_F(SchedulerTest, SlotDueWhileThePreviousRunsIsSkipped) {
  auto gated = std::make_unique<GatedSource>();
  GatedSource* gate = gated.get();
  feed_.source = std::move(gated);
  feed_.deadline = 10000ms;  // longer than the interval, so the first slot is still in time
  gate->close();
  start();
  ASSERT_TRUE(clock_.wait_for_sleepers(1));
  clock_.set(at("2026-11-27T21:15:38Z"));
  gate->wait_for_calls(1);
  advance_to(at("2026-11-27T21:15:40Z"), 1);  // the :40 slot is skipped
  gate->open();
  ASSERT_TRUE(scheduler_->wait_for_outcomes(2, 10s));
  Execution e = execution("random_int@2026-11-27T21:15:00Z");
  EXPECT_EQ(e.slots[0].outcome, SlotOutcome::kPublished);
  EXPECT_EQ(e.slots[1].outcome, SlotOutcome::kSkipped);
  EXPECT_EQ(e.slots[1].error, "the previous slot of this feed was still running");
  EXPECT_FALSE(store_->get_value(feed_.id, slot("2026-11-27T21:15:40Z"))->has_value());
}

// The timer hands a slot to a worker 2 ms before its time; whether it is skipped is decided at
// the slot, so a skip is never recorded early and a previous slot that ends in time lets it run.
TEST_F(SchedulerTest, SkipIsDecidedAtTheSlotNotAtTheHandOff) {
  auto gated = std::make_unique<GatedSource>();
  GatedSource* gate = gated.get();
  feed_.source = std::move(gated);
  feed_.deadline = 10000ms;
  gate->close();
  start();
  ASSERT_TRUE(clock_.wait_for_sleepers(1));
  clock_.set(at("2026-11-27T21:15:38Z"));
  gate->wait_for_calls(1);
  // Hand-off of :40 while :38 still runs: the worker waits for :40 (and the timer sleeps).
  clock_.set(at("2026-11-27T21:15:39.999Z"));
  ASSERT_TRUE(clock_.wait_for_sleepers(2));
  EXPECT_EQ(scheduler_->outcomes_handled(), 0u);
  gate->open();  // :38 ends before :40
  ASSERT_TRUE(scheduler_->wait_for_outcomes(1, 10s));
  gate->close();  // :40 runs and holds; the hand-off of :42 finds it running
  clock_.set(at("2026-11-27T21:15:40Z"));
  gate->wait_for_calls(2);
  clock_.set(at("2026-11-27T21:15:41.999Z"));
  ASSERT_TRUE(clock_.wait_for_sleepers(2));
  clock_.set(at("2026-11-27T21:15:42.000300Z"));  // still running at its time: skipped
  ASSERT_TRUE(scheduler_->wait_for_outcomes(2, 10s));
  gate->open();
  ASSERT_TRUE(scheduler_->wait_for_outcomes(3, 10s));

  Execution e = execution("random_int@2026-11-27T21:15:00Z");
  ASSERT_GE(e.slots.size(), 3u);
  EXPECT_EQ(e.slots[0].outcome, SlotOutcome::kPublished);
  EXPECT_EQ(e.slots[1].outcome, SlotOutcome::kPublished);
  EXPECT_GE(*e.slots[1].fired_at, at("2026-11-27T21:15:40Z"));
  EXPECT_EQ(e.slots[2].outcome, SlotOutcome::kSkipped);
  ASSERT_TRUE(e.slots[2].fired_at.has_value());
  EXPECT_EQ(*e.slots[2].fired_at, at("2026-11-27T21:15:42.000300Z"));
  EXPECT_EQ(*e.slots[2].lateness_us, 300);
}

// A disk stall longer than the interval: the slot observed and signed waits for its commit, and
// the next slot is observed meanwhile (and waits for the next batch) instead of being skipped.
// Both values land once released.
TEST_F(SchedulerTest, AStalledCommitDelaysTheNextSlotInsteadOfSkippingIt) {
  testing::FaultyStore stalled(*store_);
  Publisher publisher(stalled, *dlq_, clock_);
  SchedulerOptions options;
  options.workers = 8;
  scheduler_ = std::make_unique<Scheduler>(clock_, stalled, *dlq_, publisher,
                                           std::vector<const FeedRuntime*>{&feed_}, options);
  ASSERT_TRUE(scheduler_->start().ok());
  stalled.hold_commits();
  ASSERT_TRUE(clock_.wait_for_sleepers(1));
  clock_.set(at("2026-11-27T21:15:38Z"));
  ASSERT_TRUE(stalled.wait_for_held_commits(1, 10s));
  ASSERT_TRUE(clock_.wait_for_sleepers(1));
  clock_.set(at("2026-11-27T21:15:40Z"));
  ASSERT_TRUE(publisher.wait_for_commits_waiting(1, 10s)) << "the :40 slot was not observed";
  EXPECT_EQ(scheduler_->outcomes_handled(), 0u);
  stalled.release_commits();
  ASSERT_TRUE(scheduler_->wait_for_outcomes(2, 10s));

  Execution e = execution("random_int@2026-11-27T21:15:00Z");
  ASSERT_GE(e.slots.size(), 2u);
  EXPECT_EQ(e.slots[0].outcome, SlotOutcome::kPublished);
  EXPECT_EQ(e.slots[1].outcome, SlotOutcome::kPublished) << e.slots[1].error;
  EXPECT_TRUE(store_->get_value(feed_.id, slot("2026-11-27T21:15:38Z"))->has_value());
  EXPECT_TRUE(store_->get_value(feed_.id, slot("2026-11-27T21:15:40Z"))->has_value());
  scheduler_.reset();  // before `publisher` and `stalled` go
}

// A store that stays stalled does not pile up observed values: with 4 commits of the feed
// waiting (one held in the store, three queued for the next batch), the next slot is skipped,
// naming the store; its outcome is written with the next batch.
TEST_F(SchedulerTest, FourCommitsWaitingForTheStoreSkipTheNextSlot) {
  testing::FaultyStore stalled(*store_);
  Publisher publisher(stalled, *dlq_, clock_);
  SchedulerOptions options;
  options.workers = 8;
  scheduler_ = std::make_unique<Scheduler>(clock_, stalled, *dlq_, publisher,
                                           std::vector<const FeedRuntime*>{&feed_}, options);
  ASSERT_TRUE(scheduler_->start().ok());
  stalled.hold_commits();
  const char* slots[] = {"2026-11-27T21:15:38Z", "2026-11-27T21:15:40Z", "2026-11-27T21:15:42Z",
                         "2026-11-27T21:15:44Z"};
  size_t waiting = 0;
  for (const char* t : slots) {
    ASSERT_TRUE(clock_.wait_for_sleepers(1));
    clock_.set(at(t));
    if (t == slots[0]) {
      ASSERT_TRUE(stalled.wait_for_held_commits(1, 10s)) << t;
    } else {
      ASSERT_TRUE(publisher.wait_for_commits_waiting(++waiting, 10s)) << t;
    }
  }
  ASSERT_TRUE(clock_.wait_for_sleepers(1));
  clock_.set(at("2026-11-27T21:15:46.000200Z"));
  // The skip's own outcome is queued behind the three values.
  ASSERT_TRUE(publisher.wait_for_commits_waiting(4, 10s));
  stalled.release_commits();
  ASSERT_TRUE(scheduler_->wait_for_outcomes(5, 10s));

  Execution e = execution("random_int@2026-11-27T21:15:00Z");
  ASSERT_GE(e.slots.size(), 5u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(e.slots[i].outcome, SlotOutcome::kPublished) << i;
  EXPECT_EQ(e.slots[4].outcome, SlotOutcome::kSkipped);
  EXPECT_EQ(e.slots[4].error, "the feed's earlier slots were still waiting for the store");
  EXPECT_EQ(*e.slots[4].fired_at, at("2026-11-27T21:15:46.000200Z"));
  EXPECT_FALSE(store_->get_value(feed_.id, slot("2026-11-27T21:15:46Z"))->has_value());
  scheduler_.reset();
}

TEST_F(SchedulerTest, StopMarksTheExecutionInterruptedAndRestartRecordsMissedSlots) {
  start();
  advance_to(at("2026-11-27T21:15:38Z"), 1);
  advance_to(at("2026-11-27T21:15:40Z"), 2);
  scheduler_->stop();
  EXPECT_EQ(execution("random_int@2026-11-27T21:15:00Z").state, ExecutionState::kInterrupted);

  // Down for 9 s: :42, :44, :46, :48 pass with nobody running.
  clock_.set(at("2026-11-27T21:15:49.000Z"));
  start();
  Execution e = execution("random_int@2026-11-27T21:15:00Z");
  for (const auto& s : e.slots) {
    if (s.slot <= slot("2026-11-27T21:15:40Z")) {
      EXPECT_EQ(s.outcome, SlotOutcome::kPublished);
    } else if (s.slot < slot("2026-11-27T21:15:49Z")) {
      EXPECT_EQ(s.outcome, SlotOutcome::kMissed) << format_iso_ms(s.slot);
      EXPECT_EQ(s.error, "the daemon was not running at the slot's time");
    } else {
      EXPECT_EQ(s.outcome, SlotOutcome::kPlanned);
    }
  }
  advance_to(at("2026-11-27T21:15:50Z"), 1);
  EXPECT_TRUE(store_->get_value(feed_.id, slot("2026-11-27T21:15:50Z"))->has_value());
  EXPECT_FALSE(store_->get_value(feed_.id, slot("2026-11-27T21:15:44Z"))->has_value());
  auto missed = store_->count_outcomes(SlotOutcome::kMissed, slot("2026-11-27T21:00:00Z"));
  EXPECT_EQ(*missed, 4);
}

TEST_F(SchedulerTest, WindowsThatPassedWhileDownGetExecutionsOfMissedSlots) {
  start();
  advance_to(at("2026-11-27T21:15:38Z"), 1);
  scheduler_->stop();
  clock_.set(at("2026-11-27T21:18:30.5Z"));  // 21:16 and 21:17 passed entirely
  start();
  // 21:15's rest and the next window planned before the stop: interrupted, slots missed.
  Execution w15 = execution("random_int@2026-11-27T21:15:00Z");
  EXPECT_EQ(w15.state, ExecutionState::kInterrupted);
  Execution w16 = execution("random_int@2026-11-27T21:16:00Z");
  EXPECT_EQ(w16.slots.size(), 30u);
  for (const auto& s : w16.slots) EXPECT_EQ(s.outcome, SlotOutcome::kMissed);
  Execution w17 = execution("random_int@2026-11-27T21:17:00Z");
  EXPECT_EQ(w17.state, ExecutionState::kFailed);
  ASSERT_EQ(w17.slots.size(), 30u);
  for (const auto& s : w17.slots) EXPECT_EQ(s.outcome, SlotOutcome::kMissed);
  // 21:18 runs from :32; its slots :00 .. :30 passed while the daemon was down.
  Execution w18 = execution("random_int@2026-11-27T21:18:00Z");
  ASSERT_EQ(w18.slots.size(), 30u);
  EXPECT_EQ(w18.slots[15].outcome, SlotOutcome::kMissed);   // :30
  EXPECT_EQ(w18.slots[16].outcome, SlotOutcome::kPlanned);  // :32
  advance_to(at("2026-11-27T21:18:32Z"), 1);
  EXPECT_TRUE(store_->get_value(feed_.id, slot("2026-11-27T21:18:32Z"))->has_value());
}

TEST_F(SchedulerTest, ClockStepForwardRecordsPassedSlotsMissedWithoutABurst) {
  start();
  advance_to(at("2026-11-27T21:15:38Z"), 1);
  ASSERT_TRUE(clock_.wait_for_sleepers(1));
  clock_.step(9s);  // 21:15:47: :40 and :42 are past their deadline (:42, :44), :44 and :46 too
  ASSERT_TRUE(scheduler_->wait_for_outcomes(5, 10s));
  EXPECT_EQ(scheduler_->clock_steps(), 1u);
  Execution e = execution("random_int@2026-11-27T21:15:00Z");
  int missed = 0, published = 0;
  for (const auto& s : e.slots) {
    if (s.outcome == SlotOutcome::kMissed) ++missed;
    if (s.outcome == SlotOutcome::kPublished) ++published;
  }
  EXPECT_EQ(published, 2);  // :38, and :46 (its deadline :48 is still ahead)
  EXPECT_EQ(missed, 3);     // :40, :42, :44
}

TEST_F(SchedulerTest, ObserveLeadObservesAheadButNeverPublishesEarly) {
  auto gated = std::make_unique<GatedSource>();
  GatedSource* gate = gated.get();
  feed_.source = std::move(gated);
  feed_.observe_lead = 150ms;
  start();
  // 150 ms before :38 the source is asked; the value waits for its slot.
  ASSERT_TRUE(clock_.wait_for_sleepers(1));
  clock_.set(at("2026-11-27T21:15:37.850Z"));
  gate->wait_for_calls(1);
  ASSERT_TRUE(clock_.wait_for_sleepers(2));  // the timer, and the worker holding the record
  EXPECT_EQ(scheduler_->outcomes_handled(), 0u);
  EXPECT_FALSE(store_->get_value(feed_.id, slot("2026-11-27T21:15:38Z"))->has_value());
  clock_.set(at("2026-11-27T21:15:38.000Z"));
  ASSERT_TRUE(scheduler_->wait_for_outcomes(1, 10s));
  auto value = store_->get_value(feed_.id, slot("2026-11-27T21:15:38Z"));
  ASSERT_TRUE(value.ok() && value->has_value());
  EXPECT_LT((*value)->observed_at, WallTime(slot("2026-11-27T21:15:38Z")));
  EXPECT_GE((*value)->published_at, WallTime(slot("2026-11-27T21:15:38Z")));
  Execution e = execution("random_int@2026-11-27T21:15:00Z");
  ASSERT_EQ(e.slots[0].outcome, SlotOutcome::kPublished);
  EXPECT_EQ(*e.slots[0].fired_at, at("2026-11-27T21:15:38Z"));
  EXPECT_EQ(*e.slots[0].lateness_us, 0);
}

TEST_F(SchedulerTest, ManyFeedsAtOneBoundaryArePublishedTogether) {
  // 40 feeds share each boundary: more than log_each_slot_up_to, so one summary per boundary,
  // and their commits overlap (group commit) on the default worker count.
  auto feeds = random_int_feeds(40);
  std::vector<const FeedRuntime*> ptrs;
  for (const auto& rt : feeds) ptrs.push_back(rt.get());
  scheduler_ = std::make_unique<Scheduler>(clock_, *store_, *dlq_, *publisher_, ptrs);
  ASSERT_TRUE(scheduler_->start().ok());
  advance_to(at("2026-11-27T21:15:38Z"), 40);
  advance_to(at("2026-11-27T21:15:40Z"), 80);
  for (const auto& rt : feeds) {
    EXPECT_TRUE(store_->get_value(rt->id, slot("2026-11-27T21:15:38Z"))->has_value())
        << rt->id.str();
    EXPECT_TRUE(store_->get_value(rt->id, slot("2026-11-27T21:15:40Z"))->has_value())
        << rt->id.str();
  }
  scheduler_.reset();  // before the runtimes it points to
}

// A boundary holds the presignature maker (so that it does not take the cores from the slots)
// until its last slot is done, and only when the pool has enough ready for all its slots.
TEST_F(SchedulerTest, ABoundaryHoldsThePresignatureMakerUntilItsSlotsAreDone) {
  auto feeds = random_int_feeds(40);  // more than log_each_slot_up_to: boundaries are tracked
  auto gated = std::make_unique<GatedSource>();
  GatedSource& gate = *gated;
  feeds.push_back(std::make_unique<FeedRuntime>());
  feeds.back()->id = FeedId("gated");
  feeds.back()->schedule = Schedule::every(2000ms);
  feeds.back()->window = 60000ms;
  feeds.back()->source = std::move(gated);
  std::vector<const FeedRuntime*> ptrs;
  for (const auto& rt : feeds) ptrs.push_back(rt.get());
  auto made = PresignPool::Create(PresignPool::Options{.capacity = 128, .background = false});
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  std::shared_ptr<PresignPool> pool = std::move(*made);
  SchedulerOptions options;
  options.presign = pool;
  scheduler_ = std::make_unique<Scheduler>(clock_, *store_, *dlq_, *publisher_, ptrs, options);
  ASSERT_TRUE(scheduler_->start().ok());
  auto holds_reach = [&](int n) {
    for (int i = 0; i < 1000 && pool->holds() != n; ++i) std::this_thread::sleep_for(10ms);
    return pool->holds() == n;
  };

  // Nothing ready: the maker is not held, since it has a boundary to make up for.
  gate.close();
  ASSERT_TRUE(clock_.wait_for_sleepers(1));
  clock_.set(at("2026-11-27T21:15:38Z"));
  gate.wait_for_calls(1);
  ASSERT_TRUE(scheduler_->wait_for_outcomes(40, 10s));
  EXPECT_EQ(pool->holds(), 0);
  gate.open();
  ASSERT_TRUE(scheduler_->wait_for_outcomes(41, 10s));

  // 64 ready for 41 slots: held while the gated slot runs, released once it is done.
  ASSERT_TRUE(pool->make_half().ok());
  ASSERT_EQ(pool->ready(), 64u);
  gate.close();
  ASSERT_TRUE(clock_.wait_for_sleepers(1));
  clock_.set(at("2026-11-27T21:15:40Z"));
  gate.wait_for_calls(2);
  ASSERT_TRUE(scheduler_->wait_for_outcomes(81, 10s));
  EXPECT_EQ(pool->holds(), 1);
  gate.open();
  ASSERT_TRUE(scheduler_->wait_for_outcomes(82, 10s));
  EXPECT_TRUE(holds_reach(0)) << pool->holds() << " holds left after the boundary";
  scheduler_.reset();  // before the runtimes it points to
}

// Feeds due together are handed over in feed-id order, whatever the config's order, and
// sources that never block run several to a worker; a source that may block is never one of
// them: with two workers, one waiting on a blocked source, the other 150 feeds are published.
TEST_F(SchedulerTest, NonBlockingSourcesShareWorkersInFeedOrderAndNeverWaitForABlockedOne) {
  std::mutex mu;
  std::vector<std::string> seen;  // guarded by mu
  std::vector<std::unique_ptr<FeedRuntime>> feeds;
  std::vector<const FeedRuntime*> ptrs;
  auto gated = std::make_unique<GatedSource>();
  GatedSource& gate = *gated;
  for (int i = 149; i >= -1; --i) {  // config order: descending, the gated feed last
    auto rt = std::make_unique<FeedRuntime>();
    rt->id = FeedId(i < 0 ? std::string("a_gated") : fmt::format("b_{:03}", i));
    rt->schedule = Schedule::every(2000ms);
    rt->window = 60000ms;
    if (i < 0) {
      rt->source = std::move(gated);
    } else {
      rt->source = std::make_unique<NotingSource>(rt->id.str(), mu, seen);
    }
    ptrs.push_back(rt.get());
    feeds.push_back(std::move(rt));
  }
  SchedulerOptions options;
  options.workers = 2;
  scheduler_ = std::make_unique<Scheduler>(clock_, *store_, *dlq_, *publisher_, ptrs, options);
  ASSERT_TRUE(scheduler_->start().ok());
  gate.close();
  ASSERT_TRUE(clock_.wait_for_sleepers(1));
  clock_.set(at("2026-11-27T21:15:38Z"));
  gate.wait_for_calls(1);
  const bool all_published = scheduler_->wait_for_outcomes(150, 5s);
  const bool gated_waits =
      !store_->get_value(FeedId("a_gated"), slot("2026-11-27T21:15:38Z"))->has_value();
  gate.open();  // before any assertion, so that a failure does not leave a worker blocked
  ASSERT_TRUE(all_published) << "only " << scheduler_->outcomes_handled()
                             << " outcomes while one feed's source was blocked";
  EXPECT_TRUE(gated_waits);
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(seen.size(), 150u);
    EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  }
  ASSERT_TRUE(scheduler_->wait_for_outcomes(151, 10s));
  EXPECT_TRUE(store_->get_value(FeedId("a_gated"), slot("2026-11-27T21:15:38Z"))->has_value());
  scheduler_.reset();
}

// A source that never blocks for long (as random_int), but takes 200 us, noting how many of its
// kind observe at once.
class CountingSource final : public Source {
 public:
  CountingSource(std::atomic<int>& running, std::atomic<int>& most)
      : running_(running), most_(most) {}
  Result<SourceValue> observe(const ObserveContext&) override {
    const int now = ++running_;
    int seen = most_.load();
    while (now > seen && !most_.compare_exchange_weak(seen, now)) {
    }
    std::this_thread::sleep_for(200us);
    --running_;
    return SourceValue{"1"};
  }
  std::string describe() const override { return "counting"; }
  bool may_block() const override { return false; }

 private:
  std::atomic<int>& running_;
  std::atomic<int>& most_;
};

// Chunks of such slots run on at most one worker per core, however many workers there are
// (64 had woken at once on 2 cores and spent a tenth of the CPU switching threads).
TEST_F(SchedulerTest, NonBlockingSlotsRunOnAtMostOneWorkerPerCore) {
  std::atomic<int> running{0};
  std::atomic<int> most{0};
  std::vector<std::unique_ptr<FeedRuntime>> feeds;
  std::vector<const FeedRuntime*> ptrs;
  for (int i = 0; i < 640; ++i) {
    auto rt = std::make_unique<FeedRuntime>();
    rt->id = FeedId(fmt::format("feed_{:03}", i));
    rt->schedule = Schedule::every(2000ms);
    rt->window = 60000ms;
    rt->source = std::make_unique<CountingSource>(running, most);
    ptrs.push_back(rt.get());
    feeds.push_back(std::move(rt));
  }
  SchedulerOptions options;
  options.workers = 64;
  scheduler_ = std::make_unique<Scheduler>(clock_, *store_, *dlq_, *publisher_, ptrs, options);
  ASSERT_TRUE(scheduler_->start().ok());
  advance_to(at("2026-11-27T21:15:38Z"), 640);
  const int cores = static_cast<int>(std::max(2u, std::thread::hardware_concurrency()));
  EXPECT_GE(most.load(), 1);
  EXPECT_LE(most.load(), cores);
  scheduler_.reset();
}

// With many feeds, each boundary of a window plans the next window of a run of neighbouring
// feed ids (the store's execution indexes are keyed by feed: a few neighbouring pages per
// boundary rather than one page per execution), lowest ids first, spread over the window.
TEST_F(SchedulerTest, ManyFeedsPlanTheirNextWindowsInRunsOfNeighbouringIds) {
  auto feeds = random_int_feeds(40);  // more than log_each_slot_up_to
  std::vector<const FeedRuntime*> ptrs;
  for (const auto& rt : feeds) ptrs.push_back(rt.get());
  std::vector<std::string> ids;  // in id order: feed_0, feed_1, feed_10, ...
  for (const auto& rt : feeds) ids.push_back(rt->id.str());
  std::sort(ids.begin(), ids.end());
  scheduler_ = std::make_unique<Scheduler>(clock_, *store_, *dlq_, *publisher_, ptrs);
  ASSERT_TRUE(scheduler_->start().ok());
  auto planned = [&](const std::string& id) {
    auto e = store_->get_execution(ExecutionId(id + "@2026-11-27T21:16:00Z"));
    return e.ok() && e->has_value();
  };
  // The first window runs 11 slots (21:15:38 .. 21:15:58); feed k of 40 in id order plans at
  // slot floor(k * 11 / 40).
  uint64_t outcomes = 0;
  size_t boundaries_that_planned = 0;
  size_t before = 0;
  for (int index = 0; index < 11; ++index) {
    outcomes += 40;
    advance_to(at(fmt::format("2026-11-27T21:15:{:02}.000Z", 38 + 2 * index).c_str()), outcomes);
    size_t expected = 0;
    while (expected < ids.size() && static_cast<int>(expected * 11 / ids.size()) <= index) {
      ++expected;
    }
    ASSERT_TRUE(scheduler_->wait_for_windows_planned(expected, 10s)) << "slot " << index;
    for (size_t k = 0; k < ids.size(); ++k) {
      EXPECT_EQ(planned(ids[k]), k < expected) << ids[k] << " after slot " << index;
    }
    if (expected > before) ++boundaries_that_planned;
    before = expected;
  }
  EXPECT_EQ(before, ids.size());
  EXPECT_EQ(boundaries_that_planned, 11u);
  scheduler_.reset();
}

TEST_F(SchedulerTest, ARemovedFeedsWindowPlannedAheadDoesNotRun) {
  // 20 feeds: the next window is planned during the current one (spread by feed), so removing a
  // feed must also drop its next window, already planned.
  auto feeds = random_int_feeds(20);
  std::vector<const FeedRuntime*> ptrs;
  for (const auto& rt : feeds) ptrs.push_back(rt.get());
  scheduler_ = std::make_unique<Scheduler>(clock_, *store_, *dlq_, *publisher_, ptrs);
  ASSERT_TRUE(scheduler_->start().ok());
  uint64_t n = 0;
  for (int s = 38; s <= 58; s += 2) {
    n += 20;
    advance_to(at(fmt::format("2026-11-27T21:15:{:02}.000Z", s).c_str()), n);
  }
  ASSERT_TRUE(scheduler_->wait_for_windows_planned(20, 10s));
  std::vector<const FeedRuntime*> kept(ptrs.begin() + 1, ptrs.end());
  scheduler_->reconfigure(kept);
  Execution dropped = execution("feed_0@2026-11-27T21:16:00Z");
  EXPECT_EQ(dropped.state, ExecutionState::kInterrupted);
  advance_to(at("2026-11-27T21:16:00Z"), n + 19);
  EXPECT_FALSE(store_->get_value(FeedId("feed_0"), slot("2026-11-27T21:16:00Z"))->has_value());
  EXPECT_TRUE(store_->get_value(FeedId("feed_1"), slot("2026-11-27T21:16:00Z"))->has_value());
  scheduler_.reset();
}

}  // namespace
}  // namespace metronome
