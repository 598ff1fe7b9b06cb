// Publisher tests: retries with backoff inside the slot's deadline, exactly-once on ambiguous
// failures, DLQ routing with and without a record, signing. A ManualClock drives the backoff
// sleeps; the store is a real SQLite store behind the fault-injecting FaultyStore.
#include "publish/publisher.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "publish/backoff.h"
#include "secret/file_secret.h"
#include "sign/signer.h"
#include "sign/signing_key.h"
#include "source/random_int_source.h"
#include "store/sqlite_store.h"
#include "testing/faulty_store.h"
#include "testing/manual_clock.h"
#include "testing/store_conformance.h"

namespace metronome {
namespace {

using namespace std::chrono_literals;

class FailingSource final : public Source {
 public:
  explicit FailingSource(Status status) : status_(std::move(status)) {}
  Result<SourceValue> observe(const ObserveContext&) override {
    ++calls;
    return status_;
  }
  std::string describe() const override { return "failing"; }
  int calls = 0;

 private:
  Status status_;
};

class PublisherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SqliteStoreOptions o;
    o.path = dir_.path() / "metronome.db";
    o.dlq_path = dir_.path() / "metronome.dlq.db";
    sqlite_ = std::move(*SqliteStore::open(o));
    store_ = std::make_unique<testing::FaultyStore>(*sqlite_);
    dlq_ = std::make_unique<DeadLetterQueue>(*store_, clock_);
    publisher_ = std::make_unique<Publisher>(*store_, *dlq_, clock_);
    feed_.id = FeedId("random_int");
    feed_.schedule = Schedule::every(2000ms);
    feed_.retries = 3;
    feed_.source = std::make_unique<RandomIntSource>(0, 1000);
  }

  SlotJob job() {
    SlotJob j;
    j.execution = make_execution_id(feed_.id, slot_ - Millis(to_unix_ms(slot_) % 60000));
    j.slot = slot_;
    j.fired_at = WallTime(slot_) + 150us;
    j.deadline = feed_.deadline_of(slot_);
    return j;
  }

  // Runs publish_slot on another thread, moving the manual clock on whenever it sleeps.
  SlotResult publish(const SlotJob& j) {
    clock_.set(j.fired_at);
    auto result = std::async(std::launch::async,
                             [&] { return publisher_->publish_slot(feed_, j, std::stop_token()); });
    while (result.wait_for(1ms) != std::future_status::ready) {
      if (clock_.sleepers() > 0) clock_.advance(1ms);
    }
    return result.get();
  }

  testing::TempDir dir_{"publisher"};
  testing::ManualClock clock_{WallTime(std::chrono::seconds(1'795'000'000))};
  SlotTime slot_ = std::chrono::floor<Millis>(WallTime(std::chrono::seconds(1'795'000'002)));
  std::unique_ptr<SqliteStore> sqlite_;
  std::unique_ptr<testing::FaultyStore> store_;
  std::unique_ptr<DeadLetterQueue> dlq_;
  std::unique_ptr<Publisher> publisher_;
  FeedRuntime feed_;
};

TEST(Backoff, GrowsExponentiallyWithJitterAndIsCapped) {
  BackoffPolicy p{20ms, 2.0, 1000ms};
  EXPECT_EQ(backoff_delay(p, 1, 0.0), 10ms);
  EXPECT_EQ(backoff_delay(p, 1, 0.999999), Nanos(19'999'990));
  EXPECT_EQ(backoff_delay(p, 3, 0.0), 40ms);    // 80 ms step, half fixed
  EXPECT_EQ(backoff_delay(p, 20, 0.0), 500ms);  // capped at max
  EXPECT_LT(backoff_delay(p, 20, 0.99), 1000ms);
  WallTime t(std::chrono::seconds(10));
  EXPECT_TRUE(retry_fits(t, 10ms, 0ms, t + 11ms));
  EXPECT_FALSE(retry_fits(t, 10ms, 0ms, t + 10ms));
}

TEST_F(PublisherTest, PublishesOneRecordWithItsRoundAndLateness) {
  SlotResult r = publish(job());
  ASSERT_EQ(r.slot.outcome, SlotOutcome::kPublished) << r.slot.error;
  EXPECT_TRUE(r.inserted);
  EXPECT_EQ(*r.slot.lateness_us, 150);
  auto stored = sqlite_->get_value(feed_.id, slot_);
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ((*stored)->round, to_unix_ms(slot_) / 2000);
  EXPECT_EQ((*stored)->value, r.record->value);
}

TEST_F(PublisherTest, RetryableStoreErrorsAreRetriedAndTheSameValueIsStored) {
  store_->fail_next_commits(2, Status::IOError("disk I/O error"));
  SlotResult r = publish(job());
  ASSERT_EQ(r.slot.outcome, SlotOutcome::kPublished) << r.slot.error;
  EXPECT_EQ(r.slot.attempts, 3);
  EXPECT_EQ((*sqlite_->get_value(feed_.id, slot_))->value, r.record->value);
  EXPECT_EQ(*dlq_->depth(), 0);
}

// publish_slot_async(): the first commit is the batcher's; when it fails, the retries run on
// the executor's thread, and `done` gets the same result publish_slot() would give.
TEST_F(PublisherTest, AsyncPublishRetriesAFailedFirstCommitOnTheExecutorAndStoresOnce) {
  store_->fail_next_commits(2, Status::IOError("disk I/O error"));
  clock_.set(job().fired_at);
  std::atomic<int> executed{0};
  std::mutex workers_mu;
  std::vector<std::jthread> workers;  // joined when the test ends
  Publisher::Executor executor = [&](std::function<void()> task) {
    ++executed;
    std::lock_guard lock(workers_mu);
    workers.emplace_back(std::move(task));  // a worker of its own, like the scheduler's pool
    return true;
  };
  std::promise<SlotResult> result;
  publisher_->publish_slot_async(feed_, job(), std::stop_token(), executor,
                                 [&](SlotResult r) { result.set_value(std::move(r)); });
  auto done = result.get_future();
  while (done.wait_for(1ms) != std::future_status::ready) {
    if (clock_.sleepers() > 0) clock_.advance(1ms);
  }
  SlotResult r = done.get();
  ASSERT_EQ(r.slot.outcome, SlotOutcome::kPublished) << r.slot.error;
  EXPECT_TRUE(r.inserted);
  EXPECT_EQ(r.slot.attempts, 3);
  EXPECT_EQ(executed.load(), 1);  // only the failed commit needed a worker
  EXPECT_EQ((*sqlite_->get_value(feed_.id, slot_))->value, r.record->value);
  EXPECT_EQ(*dlq_->depth(), 0);
}

// Written at once: `done` runs on the batcher's answering thread, no worker is needed.
TEST_F(PublisherTest, AsyncPublishWrittenAtOnceNeedsNoWorker) {
  clock_.set(job().fired_at);
  std::atomic<int> executed{0};
  Publisher::Executor executor = [&](std::function<void()>) {
    ++executed;
    return false;
  };
  std::promise<SlotResult> result;
  publisher_->publish_slot_async(feed_, job(), std::stop_token(), executor,
                                 [&](SlotResult r) { result.set_value(std::move(r)); });
  SlotResult r = result.get_future().get();
  ASSERT_EQ(r.slot.outcome, SlotOutcome::kPublished) << r.slot.error;
  EXPECT_TRUE(r.inserted && r.outcome_persisted);
  EXPECT_EQ(executed.load(), 0);
  EXPECT_EQ((*sqlite_->get_value(feed_.id, slot_))->value, r.record->value);
}

// SlotResult::observed says whether the record went to its commit, after job.observed ran (the
// scheduler counts the feed's commits by it); a failed observation has neither.
TEST_F(PublisherTest, AsyncResultSaysWhetherTheRecordWentToItsCommitAfterObservedRan) {
  clock_.set(job().fired_at);
  Publisher::Executor executor = [](std::function<void()> task) {
    task();
    return true;
  };
  auto publish_async = [&](std::atomic<int>& observed_calls) {
    SlotJob j = job();
    j.observed = [&observed_calls] { ++observed_calls; };
    std::promise<SlotResult> result;
    publisher_->publish_slot_async(feed_, std::move(j), std::stop_token(), executor,
                                   [&](SlotResult r) { result.set_value(std::move(r)); });
    return result.get_future().get();
  };

  std::atomic<int> calls{0};
  SlotResult published = publish_async(calls);
  ASSERT_EQ(published.slot.outcome, SlotOutcome::kPublished) << published.slot.error;
  EXPECT_TRUE(published.observed);
  EXPECT_EQ(calls.load(), 1);

  feed_.source = std::make_unique<FailingSource>(Status::InvalidArgument("not a number: 'abc'"));
  std::atomic<int> failed_calls{0};
  SlotResult failed = publish_async(failed_calls);
  EXPECT_EQ(failed.slot.outcome, SlotOutcome::kFailed);
  EXPECT_FALSE(failed.observed);
  EXPECT_EQ(failed_calls.load(), 0);
}

// An outcome without a value (skipped, missed) through the batcher: written with a batch, then
// `done`; when its batch fails, it is made on its own on the executor, and kept for a later
// retry if that fails too.
TEST_F(PublisherTest, AsyncOutcomeIsWrittenByTheBatcherOrAloneWhenItsBatchFails) {
  SlotRecord skipped;
  skipped.slot = slot_;
  skipped.outcome = SlotOutcome::kSkipped;
  skipped.fired_at = WallTime(slot_);
  skipped.error = "the previous slot of this feed was still running";
  std::atomic<int> executed{0};
  Publisher::Executor executor = [&](std::function<void()> task) {
    ++executed;
    task();
    return true;
  };
  const ExecutionId execution = job().execution;
  std::promise<void> first;
  publisher_->record_outcome_async(feed_.id, execution, skipped, std::nullopt, executor,
                                   [&] { first.set_value(); });
  first.get_future().get();
  EXPECT_EQ(executed.load(), 0);  // written by the batch: no worker needed
  EXPECT_EQ(*sqlite_->count_outcomes(SlotOutcome::kSkipped, slot_), 1);

  // Its batch fails, and so does the commit on its own: kept for later, `done` still runs.
  store_->fail_next_commits(2, Status::IOError("disk I/O error"));
  SlotRecord later = skipped;
  later.slot = slot_ + Millis(2000);
  std::promise<void> second;
  publisher_->record_outcome_async(feed_.id, execution, later, std::nullopt, executor,
                                   [&] { second.set_value(); });
  second.get_future().get();
  EXPECT_EQ(executed.load(), 1);
  EXPECT_EQ(*sqlite_->count_outcomes(SlotOutcome::kSkipped, slot_), 1);
  EXPECT_EQ(publisher_->pending_outcomes(), 1u);
  EXPECT_EQ(publisher_->flush_pending(), 0u);
  EXPECT_EQ(*sqlite_->count_outcomes(SlotOutcome::kSkipped, slot_), 2);
}

TEST_F(PublisherTest, AmbiguousFailureAfterTheCommitLandedKeepsTheFirstValueOnce) {
  store_->fail_next_commits_after_applying(1, Status::IOError("connection lost after commit"));
  SlotResult r = publish(job());
  ASSERT_EQ(r.slot.outcome, SlotOutcome::kPublished) << r.slot.error;
  EXPECT_FALSE(r.inserted);  // the retry found the first attempt's value
  auto values = sqlite_->list_values(ValueQuery{.feed = feed_.id, .limit = 10});
  ASSERT_EQ(values->size(), 1u);
  EXPECT_EQ(values->front().value, r.record->value);
}

TEST_F(PublisherTest, BackoffStaysInsideTheDeadlineThenTheSlotFailsIntoTheDlqWithItsRecord) {
  feed_.retries = 100;  // the deadline, not the retry count, ends it
  store_->fail_commits_always(Status::IOError("disk I/O error"));
  SlotJob j = job();
  SlotResult r = publish(j);
  EXPECT_EQ(r.slot.outcome, SlotOutcome::kFailed);
  EXPECT_EQ(r.slot.error.rfind("deadline_exceeded: ", 0), 0u) << r.slot.error;
  EXPECT_LE(clock_.now(), j.deadline) << "a retry ran past the slot's deadline";
  EXPECT_GT(r.slot.attempts, 3);
  auto messages = dlq_->list();
  ASSERT_EQ(messages->size(), 1u);
  const DlqMessage& m = messages->front();
  EXPECT_EQ(m.stage, "publish");
  EXPECT_EQ(m.slot, slot_);
  ASSERT_TRUE(m.record.has_value());
  EXPECT_EQ(m.record->value, r.record->value);  // redrive delivers exactly the observed value
  EXPECT_EQ(m.attempts, r.slot.attempts);
  EXPECT_FALSE(r.outcome_persisted);
  EXPECT_EQ(publisher_->pending_outcomes(), 1u);
  // The store recovers: the next commit also records the failed outcome that was waiting.
  store_->clear_faults();
  EXPECT_EQ(publisher_->flush_pending(), 0u);
}

TEST_F(PublisherTest, RetriesStopAtTheConfiguredCount) {
  feed_.retries = 2;
  store_->fail_commits_always(Status::Unavailable("database is locked"));
  SlotResult r = publish(job());
  EXPECT_EQ(r.slot.outcome, SlotOutcome::kFailed);
  EXPECT_EQ(store_->counts().commit_calls, 3 + 1);  // 3 attempts, then the failed outcome
}

TEST_F(PublisherTest, NonRetryableErrorFailsAtOnce) {
  store_->fail_commits_always(Status::Internal("constraint failed"));
  SlotResult r = publish(job());
  EXPECT_EQ(r.slot.outcome, SlotOutcome::kFailed);
  EXPECT_EQ(r.slot.attempts, 1);
}

TEST_F(PublisherTest, SourceFailureGoesToTheDlqWithoutARecord) {
  auto source = std::make_unique<FailingSource>(Status::InvalidArgument("not a number: 'abc'"));
  FailingSource* s = source.get();
  feed_.source = std::move(source);
  SlotResult r = publish(job());
  EXPECT_EQ(r.slot.outcome, SlotOutcome::kFailed);
  EXPECT_EQ(s->calls, 1);  // not retryable
  EXPECT_FALSE(r.record.has_value());
  auto messages = dlq_->list();
  ASSERT_EQ(messages->size(), 1u);
  EXPECT_EQ(messages->front().stage, "observe");
  EXPECT_FALSE(messages->front().record.has_value());
  EXPECT_NE(messages->front().error.find("failing"), std::string::npos);
  EXPECT_FALSE(sqlite_->get_value(feed_.id, slot_)->has_value());
}

TEST_F(PublisherTest, SignedRecordsVerify) {
  auto key_path = dir_.path() / "key";
  auto key = generate_signing_key_hex();
  ASSERT_TRUE(FileSecret::create(key_path, SecretValue(*key)).ok());
  std::map<SecretName, SecretConfig> secrets{
      {SecretName("k"), SecretConfig{SecretName("k"), key_path, std::nullopt}}};
  auto registry = SecretRegistry::from_config(secrets);
  ASSERT_TRUE(registry.ok());
  auto signer = FeedSigner::create(feed_.id, SecretName("k"), *registry, 1);
  ASSERT_TRUE(signer.ok()) << signer.status().ToString();
  feed_.signer = std::move(*signer);
  SlotJob j = job();
  j.signer = feed_.signer->for_next_window();
  SlotResult r = publish(j);
  ASSERT_EQ(r.slot.outcome, SlotOutcome::kPublished) << r.slot.error;
  auto stored = **sqlite_->get_value(feed_.id, slot_);
  EXPECT_EQ(stored.signer, j.signer->address_text());
  EXPECT_TRUE(verify_record(stored, ObservationDomain(1)).ok());
}

class FixedSource final : public Source {
 public:
  explicit FixedSource(std::string value) : value_(std::move(value)) {}
  Result<SourceValue> observe(const ObserveContext&) override { return SourceValue{value_, {}}; }
  std::string describe() const override { return "fixed " + value_; }

 private:
  std::string value_;
};

// Batch signatures (SignBatch, ADR 0018): feeds signed by one key share one signature over the
// Merkle root of their records; a feed without batch_signatures (an evm sink's) is signed alone;
// a record without an EIP-712 form fails alone.
class PublisherBatchTest : public PublisherTest {
 protected:
  void SetUp() override {
    PublisherTest::SetUp();
    auto key_path = dir_.path() / "key";
    ASSERT_TRUE(FileSecret::create(key_path, SecretValue(*generate_signing_key_hex())).ok());
    std::map<SecretName, SecretConfig> secrets{
        {SecretName("k"), SecretConfig{SecretName("k"), key_path, std::nullopt}}};
    registry_ = std::make_unique<SecretRegistry>(std::move(*SecretRegistry::from_config(secrets)));
  }

  FeedRuntime& AddFeed(const std::string& id, bool batch, std::unique_ptr<Source> source) {
    auto rt = std::make_unique<FeedRuntime>();
    rt->id = FeedId(id);
    rt->schedule = Schedule::every(2000ms);
    rt->decimals = 1;
    rt->source = std::move(source);
    rt->signer = std::move(*FeedSigner::create(rt->id, SecretName("k"), *registry_, 1));
    rt->batch_signatures = batch;
    feeds_.push_back(std::move(rt));
    return *feeds_.back();
  }

  // Starts the slot of `feed` through publish_slot_async; its result arrives in results_.
  void Start(FeedRuntime& feed, SignBatch* batch) {
    SlotJob j;
    j.execution = make_execution_id(feed.id, slot_ - Millis(to_unix_ms(slot_) % 60000));
    j.slot = slot_;
    j.fired_at = WallTime(slot_);
    j.deadline = feed.deadline_of(slot_);
    j.signer = feed.signer->for_next_window();
    j.batch = batch;
    publisher_->publish_slot_async(feed, std::move(j), std::stop_token(), nullptr,
                                   [this](SlotResult r) {
                                     std::lock_guard lock(mu_);
                                     results_.push_back(std::move(r));
                                     cv_.notify_all();
                                   });
  }

  std::vector<SlotResult> WaitForResults(size_t n) {
    std::unique_lock lock(mu_);
    EXPECT_TRUE(cv_.wait_for(lock, 10s, [&] { return results_.size() >= n; }));
    return results_;
  }

  ValueRecord Stored(const FeedRuntime& feed) {
    auto stored = sqlite_->get_value(feed.id, slot_);
    EXPECT_TRUE(stored.ok() && stored->has_value()) << feed.id.str();
    return stored.ok() && stored->has_value() ? **stored : ValueRecord{};
  }

  std::unique_ptr<SecretRegistry> registry_;
  std::vector<std::unique_ptr<FeedRuntime>> feeds_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<SlotResult> results_;
};

TEST_F(PublisherBatchTest, RecordsOfABatchShareOneSignatureAndEachVerifies) {
  clock_.set(WallTime(slot_));
  for (int i = 0; i < 5; ++i) {
    AddFeed("batched_" + std::to_string(i), true, std::make_unique<RandomIntSource>(0, 1000));
  }
  FeedRuntime& alone = AddFeed("evm_feed", false, std::make_unique<FixedSource>("12.5"));
  {
    SignBatch batch(*publisher_, 64);
    for (auto& f : feeds_) Start(*f, &batch);
    // The feed without batch signatures went to its commit at once; the others wait.
    EXPECT_EQ(batch.waiting(), 5u);
    WaitForResults(1);
    EXPECT_FALSE(sqlite_->get_value(feeds_[0]->id, slot_)->has_value());
  }  // closing the batch signs it and queues its commits
  std::vector<SlotResult> results = WaitForResults(6);
  for (const SlotResult& r : results) {
    EXPECT_EQ(r.slot.outcome, SlotOutcome::kPublished) << r.slot.error;
  }
  const ValueRecord first = Stored(*feeds_[0]);
  for (int i = 0; i < 5; ++i) {
    const ValueRecord r = Stored(*feeds_[i]);
    EXPECT_FALSE(r.proof.empty()) << r.feed.str();
    EXPECT_EQ(r.signature, first.signature) << r.feed.str();
    Status st = verify_record(r, ObservationDomain(1), feeds_[i]->signer->current()->address());
    EXPECT_TRUE(st.ok()) << r.feed.str() << ": " << st.ToString();
  }
  // On disk: one batch row; the batch's value rows keep their leaf, not the texts.
  SQLite::Database db((dir_.path() / "metronome.db").string(), SQLite::OPEN_READONLY);
  EXPECT_EQ(db.execAndGet("SELECT count(*) FROM signature_batches").getInt(), 1);
  EXPECT_EQ(db.execAndGet("SELECT count(*) FROM value_log WHERE batch_root IS NOT NULL AND "
                          "signature = '' AND digest = '' AND proof = ''")
                .getInt(),
            5);
  const ValueRecord single = Stored(alone);
  EXPECT_TRUE(single.proof.empty());
  EXPECT_NE(single.signature, first.signature);
  EXPECT_TRUE(verify_record(single, ObservationDomain(1)).ok());
}

TEST_F(PublisherBatchTest, AFullBatchIsSignedAtOnceAndAnUnsignableRecordFailsAlone) {
  clock_.set(WallTime(slot_));
  AddFeed("a", true, std::make_unique<FixedSource>("1.5"));
  AddFeed("b", true, std::make_unique<FixedSource>("2.5"));
  // 3 fraction digits with decimals 1: no EIP-712 form, so the slot fails at "sign".
  FeedRuntime& bad = AddFeed("bad", true, std::make_unique<FixedSource>("3.125"));
  AddFeed("c", true, std::make_unique<FixedSource>("4.5"));
  {
    SignBatch batch(*publisher_, 2);
    Start(*feeds_[0], &batch);
    EXPECT_EQ(batch.waiting(), 1u);
    Start(*feeds_[1], &batch);
    EXPECT_EQ(batch.waiting(), 0u);  // full: signed and queued
    Start(bad, &batch);
    EXPECT_EQ(batch.waiting(), 0u);  // failed before its batch
    Start(*feeds_[3], &batch);
    EXPECT_EQ(batch.waiting(), 1u);
  }
  std::vector<SlotResult> results = WaitForResults(4);
  int published = 0;
  for (const SlotResult& r : results) {
    if (r.slot.outcome == SlotOutcome::kPublished) {
      ++published;
    } else {
      EXPECT_EQ(r.slot.outcome, SlotOutcome::kFailed);
      EXPECT_NE(r.slot.error.find("3.125"), std::string::npos) << r.slot.error;
    }
  }
  EXPECT_EQ(published, 3);
  const ValueRecord a = Stored(*feeds_[0]), b = Stored(*feeds_[1]), c = Stored(*feeds_[3]);
  EXPECT_EQ(a.signature, b.signature);
  EXPECT_FALSE(a.proof.empty());
  EXPECT_TRUE(c.proof.empty());  // alone in the last batch: signed alone
  for (const ValueRecord& r : {a, b, c}) {
    EXPECT_TRUE(verify_record(r, ObservationDomain(1)).ok()) << r.feed.str();
  }
  EXPECT_FALSE(sqlite_->get_value(bad.id, slot_)->has_value());
  EXPECT_EQ(dlq_->depth().value_or(0), 1);
}

}  // namespace
}  // namespace metronome
