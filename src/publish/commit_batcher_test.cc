// CommitBatcher tests: commits queued while a batch is written form the next batch, each
// answered with its own result; a failed batch of several hands each commit back to be made
// alone, a failed batch of one gets its error; nothing queued is lost at destruction; the store
// is offered its deferred work when the queue is empty. A real SQLite store behind FaultyStore.
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

// Answers of n commits, the first of which is held on the batcher's thread until the others
// are queued (release()): those then form the next batch together.
struct HeldFirst {
  explicit HeldFirst(size_t n) : all_answered(static_cast<std::ptrdiff_t>(n)), answers(n) {}

  // The first commit's callback: records, then waits on the batcher's thread for release().
  CommitBatcher::Done hold() {
    return [this](std::optional<Result<bool>> a) {
      {
        std::lock_guard lock(mu);
        answers[0] = std::move(a);
      }
      first_answered.count_down();
      others_queued.wait();
      all_answered.count_down();
    };
  }
  // Commit i's callback: records its answer.
  CommitBatcher::Done record(size_t i) {
    return [this, i](std::optional<Result<bool>> a) {
      std::lock_guard lock(mu);
      answers[i] = std::move(a);
      all_answered.count_down();
    };
  }
  void release() { others_queued.count_down(); }

  std::latch first_answered{1}, others_queued{1}, all_answered;
  std::mutex mu;
  std::vector<std::optional<Result<bool>>> answers;  // guarded by mu
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

  testing::TempDir dir_{"commit-batcher"};
  std::unique_ptr<SqliteStore> sqlite_;
  std::unique_ptr<testing::FaultyStore> store_;
};

// The first commit's answer is held on the batcher's thread until 50 more are queued: they are
// then written as one batch, and each learns whether its own value was inserted.
TEST_F(CommitBatcherTest, CommitsQueuedDuringABatchAreTheNextBatchEachWithItsOwnAnswer) {
  // A value already stored for feed f7: its commit is answered "not inserted".
  ASSERT_TRUE(store_->commit_slots(std::vector{published("f7", kSlot)}).ok());
  HeldFirst held(51);
  auto& answers = held.answers;
  {
    CommitBatcher batcher(*store_);
    batcher.submit(published("first", kSlot), held.hold());
    held.first_answered.wait();
    for (int i = 1; i <= 50; ++i)
      batcher.submit(published(fmt::format("f{}", i), kSlot), held.record(i));
    held.release();
    held.all_answered.wait();
    EXPECT_EQ(batcher.batches(), 2u);
    EXPECT_EQ(batcher.commits(), 51u);
  }
  std::lock_guard lock(held.mu);
  for (int i = 0; i <= 50; ++i) {
    ASSERT_TRUE(answers[i].has_value()) << i;
    ASSERT_TRUE(answers[i]->ok()) << i << ": " << answers[i]->status().ToString();
    EXPECT_EQ(**answers[i], i != 7) << "commit " << i;
  }
  auto stored = sqlite_->list_values({.limit = 100});
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->size(), 51u);
}

TEST_F(CommitBatcherTest, AFailedBatchOfSeveralHandsEachCommitBackAndABatchOfOneGetsItsError) {
  HeldFirst held(4);
  auto& answers = held.answers;
  CommitBatcher batcher(*store_);
  batcher.submit(published("first", kSlot), held.hold());
  held.first_answered.wait();
  store_->fail_next_commits(1, Status::IOError("disk I/O error (injected)"));
  for (int i = 1; i <= 3; ++i)
    batcher.submit(published(fmt::format("f{}", i), kSlot), held.record(i));
  held.release();
  held.all_answered.wait();
  {
    std::lock_guard lock(held.mu);
    ASSERT_TRUE(answers[0].has_value() && answers[0]->ok());
    for (int i = 1; i <= 3; ++i) EXPECT_FALSE(answers[i].has_value()) << "commit " << i;
  }
  auto none = sqlite_->get_value(FeedId("f1"), kSlot);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());

  // Alone in its batch: the store's own error.
  store_->fail_next_commits(1, Status::IOError("disk I/O error (injected)"));
  std::promise<std::optional<Result<bool>>> alone;
  batcher.submit(published("alone", kSlot),
                 [&](std::optional<Result<bool>> a) { alone.set_value(std::move(a)); });
  auto answer = alone.get_future().get();
  ASSERT_TRUE(answer.has_value());
  ASSERT_FALSE(answer->ok());
  EXPECT_EQ(answer->status().code(), Status::Code::kIOError);
  EXPECT_NE(answer->status().message().find("injected"), std::string::npos);
}

TEST_F(CommitBatcherTest, DestructionWritesAndAnswersWhatIsQueued) {
  std::atomic<int> answered{0};
  {
    CommitBatcher batcher(*store_);
    for (int i = 0; i < 200; ++i) {
      batcher.submit(published(fmt::format("f{}", i), kSlot), [&](std::optional<Result<bool>> a) {
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
  batcher.submit(published("f", kSlot), [&](std::optional<Result<bool>>) { done.set_value(); });
  done.get_future().get();
  // The offer comes right after the batch's answers, on the batcher's thread.
  for (int i = 0; i < 500 && store_->counts().deferred_work_calls == 0; ++i) {
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(store_->counts().deferred_work_calls, 1);
}

// run_on_thread(): what the scheduler uses to give the commit thread the workers' realtime
// priority. It runs on the batcher's own thread, before the batch that follows it.
TEST_F(CommitBatcherTest, SetupRunsOnTheBatchersThreadBeforeItsNextBatch) {
  CommitBatcher batcher(*store_);
  std::mutex mu;
  std::vector<std::string> order;  // guarded by mu
  std::thread::id setup_thread, done_thread;
  std::promise<void> done;
  batcher.run_on_thread([&] {
    std::lock_guard lock(mu);
    order.push_back("setup");
    setup_thread = std::this_thread::get_id();
  });
  batcher.submit(published("f", kSlot), [&](std::optional<Result<bool>>) {
    {
      std::lock_guard lock(mu);
      order.push_back("commit");
      done_thread = std::this_thread::get_id();
    }
    done.set_value();
  });
  done.get_future().get();
  std::lock_guard lock(mu);
  EXPECT_EQ(order, (std::vector<std::string>{"setup", "commit"}));
  EXPECT_EQ(setup_thread, done_thread);
  EXPECT_NE(setup_thread, std::this_thread::get_id());
}

}  // namespace
}  // namespace metronome
