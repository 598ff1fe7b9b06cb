// CommitBatcher tests: commits queued while a batch is written form the next batch, each
// answered with its own result; a failed batch of several hands each commit back to be made
// alone, a failed batch of one gets its error; nothing queued is lost at destruction; the store
// is offered its deferred work when the queue is empty; setup runs on both of its threads; a
// chore waits for the queued commits, or for kBatchesPerChore batches of a queue that never
// empties. A real SQLite store behind FaultyStore.
#include "publish/commit_batcher.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <latch>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "store/sqlite_store.h"
#include "testing/faulty_store.h"
#include "testing/store_conformance.h"

namespace metronome {
namespace {

using namespace std::chrono_literals;

const SlotTime kSlot = slot_from_unix_ms(1'795'000'002'000);

SlotCommit published(const std::string& feed, SlotTime slot) {
  ValueRecord r;
  r.feed = FeedId(feed);
  r.slot = slot;
  r.round = to_unix_ms(slot) / 2000;
  r.value = "7";
  r.execution = make_execution_id(r.feed, slot);
  SlotCommit c;
  c.execution = r.execution;
  c.feed = r.feed;
  c.slot.slot = slot;
  c.slot.outcome = SlotOutcome::kPublished;
  c.slot.attempts = 1;
  c.record = r;
  return c;
}

// The answers of n commits, each recorded by its callback with the feed of the commit it was
// handed back.
struct Answers {
  explicit Answers(size_t n) : all_answered(static_cast<std::ptrdiff_t>(n)), answers(n), feeds(n) {}

  CommitBatcher::Done record(size_t i) {
    return [this, i](std::optional<Result<bool>> a, SlotCommit& commit) {
      std::lock_guard lock(mu);
      answers[i] = std::move(a);
      feeds[i] = commit.feed.str();
      all_answered.count_down();
    };
  }

  std::latch all_answered;
  std::mutex mu;
  std::vector<std::optional<Result<bool>>> answers;  // guarded by mu
  std::vector<std::string> feeds;                    // guarded by mu
};

class CommitBatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SqliteStoreOptions o;
    o.path = dir_.path() / "metronome.db";
    o.dlq_path = dir_.path() / "metronome.dlq.db";
    auto opened = SqliteStore::open(o);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    sqlite_ = std::move(*opened);
    store_ = std::make_unique<testing::FaultyStore>(*sqlite_);
  }

  // Holds the store, submits `first` (answered to a.record(0)) and waits until its batch is in
  // the store (a stalled disk); then queues f1..fn behind it (answered to a.record(1..n)).
  void hold_first_then_queue(CommitBatcher& batcher, Answers& a, const std::string& first, int n) {
    store_->hold_commits();
    batcher.submit(published(first, kSlot), a.record(0));
    ASSERT_TRUE(store_->wait_for_held_commits(1, 10s));
    for (int i = 1; i <= n; ++i) {
      batcher.submit(published(fmt::format("f{}", i), kSlot), a.record(i));
    }
  }

  testing::TempDir dir_{"commit-batcher"};
  std::unique_ptr<SqliteStore> sqlite_;
  std::unique_ptr<testing::FaultyStore> store_;
};

// The first commit is held in the store (a stalled disk) until 50 more are queued: they are
// then written as one batch, and each learns whether its own value was inserted.
TEST_F(CommitBatcherTest, CommitsQueuedDuringABatchAreTheNextBatchEachWithItsOwnAnswer) {
  // A value already stored for feed f7: its commit is answered "not inserted".
  ASSERT_TRUE(store_->commit_slots(std::vector{published("f7", kSlot)}).ok());
  Answers a(51);
  {
    CommitBatcher batcher(*store_);
    ASSERT_NO_FATAL_FAILURE(hold_first_then_queue(batcher, a, "first", 50));
    ASSERT_TRUE(batcher.wait_for_queued(50, 10s));
    store_->release_commits();
    a.all_answered.wait();
    EXPECT_EQ(batcher.batches(), 2u);
    EXPECT_EQ(batcher.commits(), 51u);
  }
  std::lock_guard lock(a.mu);
  for (int i = 0; i <= 50; ++i) {
    ASSERT_TRUE(a.answers[i].has_value()) << i;
    ASSERT_TRUE(a.answers[i]->ok()) << i << ": " << a.answers[i]->status().ToString();
    EXPECT_EQ(**a.answers[i], i != 7) << "commit " << i;
    EXPECT_EQ(a.feeds[i], i == 0 ? "first" : fmt::format("f{}", i)) << "its own commit back";
  }
  auto stored = sqlite_->list_values({.limit = 100});
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->size(), 51u);
}

// A batch of one that fails gets the store's error; each commit of a failed batch of several
// is handed back (nullopt) to be committed again on its own.
TEST_F(CommitBatcherTest, AFailedBatchOfSeveralHandsEachCommitBackAndABatchOfOneGetsItsError) {
  Answers a(4);
  CommitBatcher batcher(*store_);
  ASSERT_NO_FATAL_FAILURE(hold_first_then_queue(batcher, a, "alone", 3));
  ASSERT_TRUE(batcher.wait_for_queued(3, 10s));
  store_->fail_next_commits(2, Status::IOError("disk I/O error (injected)"));
  store_->release_commits();
  a.all_answered.wait();
  EXPECT_EQ(batcher.batches(), 2u);
  std::lock_guard lock(a.mu);
  ASSERT_TRUE(a.answers[0].has_value());
  ASSERT_FALSE(a.answers[0]->ok());
  EXPECT_EQ(a.answers[0]->status().code(), Status::Code::kIOError);
  EXPECT_NE(a.answers[0]->status().message().find("injected"), std::string::npos);
  for (int i = 1; i <= 3; ++i) EXPECT_FALSE(a.answers[i].has_value()) << "commit " << i;
  for (const char* feed : {"alone", "f1"}) {
    auto none = sqlite_->get_value(FeedId(feed), kSlot);
    ASSERT_TRUE(none.ok());
    EXPECT_FALSE(none->has_value()) << feed;
  }
}

// More queued than a batch holds: the oldest max_batch go first, in order, and each commit
// still gets its own answer.
TEST_F(CommitBatcherTest, AQueueLongerThanABatchIsWrittenOldestFirstInBatchesOfMaxBatch) {
  ASSERT_TRUE(store_->commit_slots(std::vector{published("f3", kSlot)}).ok());
  Answers a(6);
  {
    CommitBatcher batcher(*store_, /*max_batch=*/2, /*max_queued=*/5);
    ASSERT_NO_FATAL_FAILURE(hold_first_then_queue(batcher, a, "first", 5));
    ASSERT_TRUE(batcher.wait_for_queued(5, 10s));
    store_->release_commits();
    a.all_answered.wait();
    EXPECT_EQ(batcher.batches(), 4u);  // 1, then 2 + 2 + 1
    EXPECT_EQ(batcher.commits(), 6u);
  }
  std::lock_guard lock(a.mu);
  for (int i = 0; i <= 5; ++i) {
    ASSERT_TRUE(a.answers[i].has_value() && a.answers[i]->ok()) << i;
    EXPECT_EQ(**a.answers[i], i != 3) << "commit " << i;
    EXPECT_EQ(a.feeds[i], i == 0 ? "first" : fmt::format("f{}", i)) << "its own commit back";
  }
}

// Back-pressure: with the store stalled and max_queued commits waiting, submit() waits for
// room instead of queueing without bound; it returns once the store takes a batch.
TEST_F(CommitBatcherTest, SubmitWaitsWhileTheQueueIsFull) {
  Answers a(6);
  CommitBatcher batcher(*store_, /*max_batch=*/4, /*max_queued=*/4);
  ASSERT_NO_FATAL_FAILURE(hold_first_then_queue(batcher, a, "first", 4));
  std::atomic<bool> returned{false};
  std::thread late([&] {
    batcher.submit(published("late", kSlot), a.record(5));
    returned = true;
  });
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(returned.load()) << "submit() returned with the queue full";
  EXPECT_EQ(batcher.queued(), 4u);
  store_->release_commits();
  late.join();
  a.all_answered.wait();
  EXPECT_TRUE(returned.load());
  std::lock_guard lock(a.mu);
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(a.answers[i].has_value() && a.answers[i]->ok()) << i;
    EXPECT_TRUE(**a.answers[i]) << i;
  }
}

// submit_all(): several commits under one lock, each answered; it waits for room like submit(),
// then queues them all even past max_queued.
TEST_F(CommitBatcherTest, SubmitAllQueuesEveryCommitOnceThereIsRoomAndAnswersEach) {
  Answers a(8);
  CommitBatcher batcher(*store_, /*max_batch=*/4, /*max_queued=*/4);
  ASSERT_NO_FATAL_FAILURE(hold_first_then_queue(batcher, a, "first", 4));
  std::atomic<bool> returned{false};
  std::thread late([&] {
    std::vector<SlotCommit> commits;
    std::vector<CommitBatcher::Done> done;
    for (size_t i = 5; i < 8; ++i) {
      commits.push_back(published(fmt::format("late{}", i), kSlot));
      done.push_back(a.record(i));
    }
    batcher.submit_all(commits, done);
    returned = true;
  });
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(returned.load()) << "submit_all() returned with the queue full";
  store_->release_commits();
  late.join();
  a.all_answered.wait();
  std::lock_guard lock(a.mu);
  for (size_t i = 0; i < 8; ++i) {
    ASSERT_TRUE(a.answers[i].has_value() && a.answers[i]->ok()) << i;
    EXPECT_TRUE(**a.answers[i]) << i;
  }
  for (size_t i = 5; i < 8; ++i) EXPECT_EQ(a.feeds[i], fmt::format("late{}", i));
  EXPECT_TRUE((*sqlite_->get_value(FeedId("late7"), kSlot)).has_value());
}

TEST_F(CommitBatcherTest, DestructionWritesAndAnswersWhatIsQueued) {
  std::atomic<int> answered{0};
  {
    CommitBatcher batcher(*store_);
    for (int i = 0; i < 200; ++i) {
      batcher.submit(published(fmt::format("f{}", i), kSlot),
                     [&](std::optional<Result<bool>> a, SlotCommit&) {
                       if (a && a->ok() && **a) ++answered;
                     });
    }
  }
  EXPECT_EQ(answered.load(), 200);
  auto stored = sqlite_->list_values({.limit = 1000});
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->size(), 200u);
}

TEST_F(CommitBatcherTest, TheStoreGetsItsDeferredWorkWhenNothingIsQueued) {
  CommitBatcher batcher(*store_);
  std::promise<void> done;
  batcher.submit(published("f", kSlot),
                 [&](std::optional<Result<bool>>, SlotCommit&) { done.set_value(); });
  done.get_future().get();
  // The offer comes right after the batch is written, on the writer's thread.
  for (int i = 0; i < 500 && store_->counts().deferred_work_calls == 0; ++i) {
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(store_->counts().deferred_work_calls, 1);
}

// run_on_thread(): what the scheduler uses to give the commit threads the workers' realtime
// priority. It runs once on each of the batcher's two threads (the writer, the answers), before
// the batch that follows it.
TEST_F(CommitBatcherTest, SetupRunsOnBothOfTheBatchersThreadsBeforeTheirNextBatch) {
  CommitBatcher batcher(*store_);
  std::mutex mu;
  std::vector<std::string> order;         // guarded by mu
  std::vector<std::thread::id> setup_on;  // guarded by mu
  std::thread::id done_on;                // guarded by mu
  std::promise<void> done;
  store_->hold_commits();  // the commit waits in the store until both setups have run
  batcher.run_on_thread([&] {
    std::lock_guard lock(mu);
    order.push_back("setup");
    setup_on.push_back(std::this_thread::get_id());
  });
  batcher.submit(published("f", kSlot), [&](std::optional<Result<bool>>, SlotCommit&) {
    {
      std::lock_guard lock(mu);
      order.push_back("commit");
      done_on = std::this_thread::get_id();
    }
    done.set_value();
  });
  ASSERT_TRUE(store_->wait_for_held_commits(1, 10s));
  for (int i = 0; i < 1000; ++i) {
    {
      std::lock_guard lock(mu);
      if (setup_on.size() == 2) break;
    }
    std::this_thread::sleep_for(1ms);
  }
  store_->release_commits();
  done.get_future().get();
  std::lock_guard lock(mu);
  EXPECT_EQ(order, (std::vector<std::string>{"setup", "setup", "commit"}));
  ASSERT_EQ(setup_on.size(), 2u);
  EXPECT_NE(setup_on[0], setup_on[1]);
  EXPECT_TRUE(done_on == setup_on[0] || done_on == setup_on[1]);
  for (auto id : setup_on) EXPECT_NE(id, std::this_thread::get_id());
}

// Waits (real time, bounded) until the batcher holds n chores. For the tests below.
bool wait_for_chores(const CommitBatcher& batcher, size_t n) {
  for (int i = 0; i < 10'000 && batcher.chores_waiting() < n; ++i) {
    std::this_thread::sleep_for(1ms);
  }
  return batcher.chores_waiting() >= n;
}

// A chore (bookkeeping) handed over while values are queued runs after they are written, not
// in their transaction; run_when_idle() returns once it has run.
TEST_F(CommitBatcherTest, AChoreRunsOnceTheQueuedCommitsAreWritten) {
  Answers a(4);
  CommitBatcher batcher(*store_);
  ASSERT_NO_FATAL_FAILURE(hold_first_then_queue(batcher, a, "first", 3));
  std::atomic<bool> ran{false};
  std::thread::id ran_on;
  size_t values_at_chore = 0;
  std::thread bookkeeping([&] {
    batcher.run_when_idle([&] {
      ran_on = std::this_thread::get_id();
      auto stored = sqlite_->list_values({.limit = 100});
      values_at_chore = stored.ok() ? stored->size() : 0;
      ran = true;
    });
  });
  ASSERT_TRUE(wait_for_chores(batcher, 1));
  EXPECT_FALSE(ran.load()) << "a chore ran while a batch was being written";
  store_->release_commits();
  bookkeeping.join();
  EXPECT_TRUE(ran.load()) << "run_when_idle() returned before its chore ran";
  EXPECT_EQ(values_at_chore, 4u) << "the chore ran before the values queued ahead of it";
  EXPECT_NE(ran_on, bookkeeping.get_id());
  a.all_answered.wait();
  EXPECT_EQ(batcher.batches(), 2u);
}

// An overloaded daemon's queue never empties: a chore still runs, after kBatchesPerChore
// batches, and the commits behind it are then written as usual.
TEST_F(CommitBatcherTest, AQueueThatNeverEmptiesLetsAChoreThroughAfterKBatchesPerChore) {
  constexpr int kQueued = CommitBatcher::kBatchesPerChore + 10;
  Answers a(kQueued + 1);
  CommitBatcher batcher(*store_, /*max_batch=*/1, /*max_queued=*/kQueued);
  ASSERT_NO_FATAL_FAILURE(hold_first_then_queue(batcher, a, "first", kQueued));
  uint64_t batches_at_chore = 0;
  std::thread bookkeeping(
      [&] { batcher.run_when_idle([&] { batches_at_chore = batcher.batches(); }); });
  ASSERT_TRUE(wait_for_chores(batcher, 1));
  store_->release_commits();
  bookkeeping.join();
  // The held batch, then kBatchesPerChore more while the chore waited.
  EXPECT_EQ(batches_at_chore, 1u + CommitBatcher::kBatchesPerChore);
  a.all_answered.wait();
  EXPECT_EQ(batcher.commits(), static_cast<uint64_t>(kQueued + 1));
  std::lock_guard lock(a.mu);
  for (int i = 0; i <= kQueued; ++i) {
    ASSERT_TRUE(a.answers[i].has_value() && a.answers[i]->ok()) << i;
    EXPECT_TRUE(**a.answers[i]) << i;
  }
}

// A chore's exception comes back to its caller; the writer goes on. A chore that hands over a
// chore of its own (on the writer's thread) runs it at once instead of waiting for itself.
TEST_F(CommitBatcherTest, AChoresExceptionReachesItsCallerAndANestedChoreRunsAtOnce) {
  CommitBatcher batcher(*store_);
  EXPECT_THROW(batcher.run_when_idle([] { throw std::runtime_error("bookkeeping failed"); }),
               std::runtime_error);
  bool inner = false;
  batcher.run_when_idle([&] { batcher.run_when_idle([&] { inner = true; }); });
  EXPECT_TRUE(inner);
  std::promise<void> done;
  batcher.submit(published("after", kSlot),
                 [&](std::optional<Result<bool>>, SlotCommit&) { done.set_value(); });
  done.get_future().get();
  auto stored = sqlite_->get_value(FeedId("after"), kSlot);
  ASSERT_TRUE(stored.ok());
  EXPECT_TRUE(stored->has_value());
}

}  // namespace
}  // namespace metronome
