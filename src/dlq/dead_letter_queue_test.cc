#include "dlq/dead_letter_queue.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "dlq/dlq_test_support.h"
#include "testing/manual_clock.h"

namespace metronome {
namespace {

using dlq_testing::FlakyStore;
using dlq_testing::LogCapture;
using dlq_testing::TempDir;
using ::testing::HasSubstr;

const FeedId kFeed("random_int");
const SlotTime kWindow = slot_from_unix_ms(1'795'000'020'000);

ValueQuery values_of_feed() {
  ValueQuery query;
  query.feed = kFeed;
  return query;
}

class DeadLetterQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = dlq_testing::open_store(dir_);
    ASSERT_NE(store_, nullptr);
    flaky_ = std::make_unique<FlakyStore>(*store_);
    dlq_ = std::make_unique<DeadLetterQueue>(*flaky_, clock_);
    dlq_->set_on_change([this] { ++changes_; });

    Execution execution;
    execution.id = make_execution_id(kFeed, kWindow);
    execution.feed = kFeed;
    execution.window_start = kWindow;
    execution.window_end = kWindow + Millis(60'000);
    execution.created_at = clock_.now();
    for (int i = 0; i < 30; ++i) {
      SlotRecord planned;
      planned.slot = slot(i);
      execution.slots.push_back(planned);
    }
    ASSERT_TRUE(store_->create_execution(execution).ok());
  }

  static SlotTime slot(int i) { return kWindow + Millis(2000 * i); }
  static ExecutionId execution_id() { return make_execution_id(kFeed, kWindow); }

  ValueRecord record(int i, std::string value = "537") {
    ValueRecord r;
    r.feed = kFeed;
    r.round = to_unix_ms(slot(i)) / 2000;
    r.slot = slot(i);
    r.value = std::move(value);
    r.observed_at = WallTime(slot(i).time_since_epoch()) + Micros(150);
    r.published_at = r.observed_at + Micros(50);
    r.execution = execution_id();
    return r;
  }

  // A slot whose publish failed after its retries, as the publish task records it.
  DlqMessage failed_slot(int i, bool with_record) {
    SlotCommit failed{.execution = execution_id(),
                      .feed = kFeed,
                      .slot = {.slot = slot(i),
                               .outcome = SlotOutcome::kFailed,
                               .fired_at = WallTime(slot(i).time_since_epoch()) + Micros(120),
                               .lateness_us = 120,
                               .error = "io_error: store: disk I/O error",
                               .attempts = 3},
                      .record = std::nullopt};
    EXPECT_TRUE(store_->commit_slots(std::span<const SlotCommit>(&failed, 1)).ok());
    DlqMessage m;
    m.feed = kFeed;
    m.slot = slot(i);
    m.execution = execution_id();
    m.stage = "publish";
    m.error = "io_error: store: disk I/O error";
    m.attempts = 3;
    m.first_failure = WallTime(slot(i).time_since_epoch()) + Millis(1);
    m.last_failure = m.first_failure + Millis(900);
    if (with_record) m.record = record(i);
    return m;
  }

  int64_t push(DlqMessage m) {
    auto id = dlq_->push(std::move(m));
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    return id.value_or(-1);
  }

  SlotRecord slot_record(int i) {
    auto execution = store_->get_execution(execution_id());
    EXPECT_TRUE(execution.ok() && execution->has_value());
    return (*execution)->slots.at(i);
  }

  int64_t depth() { return dlq_->depth().value_or(-1); }

  TempDir dir_;
  testing::ManualClock clock_;
  std::unique_ptr<SqliteStore> store_;
  std::unique_ptr<FlakyStore> flaky_;
  std::unique_ptr<DeadLetterQueue> dlq_;
  int changes_ = 0;
};

TEST_F(DeadLetterQueueTest, PushLogsOneWarningWithTheContext) {
  LogCapture log;
  int64_t id = push(failed_slot(3, /*with_record=*/true));
  auto lines = log.lines();
  ASSERT_EQ(lines.size(), 1u) << log.text();
  EXPECT_THAT(lines[0], HasSubstr("warning"));
  EXPECT_THAT(lines[0], HasSubstr(fmt::format("DLQ message {}", id)));
  EXPECT_THAT(lines[0], HasSubstr("feed random_int"));
  EXPECT_THAT(lines[0], HasSubstr(format_iso_ms(slot(3))));
  EXPECT_THAT(lines[0], HasSubstr("stage publish"));
  EXPECT_THAT(lines[0], HasSubstr("after 3 attempts"));
  EXPECT_THAT(lines[0], HasSubstr("disk I/O error"));
  EXPECT_EQ(changes_, 1);
}

TEST_F(DeadLetterQueueTest, PushListGetRoundTrip) {
  DlqMessage first = failed_slot(1, true);
  DlqMessage second = failed_slot(2, false);
  DlqMessage plan;  // a failed execution start: not about one slot
  plan.feed = kFeed;
  plan.execution = execution_id();
  plan.stage = "plan";
  plan.error = "io_error: cannot write";
  plan.attempts = 1;
  first.id = push(first);
  second.id = push(second);
  plan.id = push(plan);
  EXPECT_LT(first.id, second.id);
  EXPECT_LT(second.id, plan.id);

  auto listed = dlq_->list();
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 3u);
  EXPECT_EQ((*listed)[0], first);  // oldest first
  EXPECT_EQ((*listed)[1], second);
  EXPECT_EQ((*listed)[2].stage, "plan");
  EXPECT_FALSE((*listed)[2].slot.has_value());
  // A message pushed without failure times gets the clock's time.
  EXPECT_EQ((*listed)[2].first_failure, clock_.now());
  EXPECT_EQ((*listed)[2].last_failure, clock_.now());

  auto got = dlq_->get(second.id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, second);
  EXPECT_EQ(depth(), 3);

  auto missing = dlq_->get(999);
  EXPECT_EQ(missing.status().code(), Status::Code::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("DLQ message 999"));
}

TEST_F(DeadLetterQueueTest, RedriveDeliversTheStoredRecordExactlyOnce) {
  DlqMessage message = failed_slot(4, true);
  int64_t id = push(message);
  changes_ = 0;

  ASSERT_TRUE(dlq_->redrive(id).ok());
  EXPECT_EQ(changes_, 1);
  EXPECT_EQ(depth(), 0);
  auto value = store_->get_value(kFeed, slot(4));
  ASSERT_TRUE(value.ok() && value->has_value());
  EXPECT_EQ(**value, record(4));  // the value observed at the slot, not a new observation

  SlotRecord redriven = slot_record(4);
  EXPECT_EQ(redriven.outcome, SlotOutcome::kPublished);
  EXPECT_EQ(redriven.error,
            fmt::format("redriven from DLQ message {}; first failure: {}", id, message.error));
  EXPECT_EQ(redriven.attempts, 3);
  // When the slot fired stays when it fired, not when it was redriven.
  EXPECT_EQ(redriven.fired_at, WallTime(slot(4).time_since_epoch()) + Micros(120));
  EXPECT_EQ(redriven.lateness_us, 120);

  // The message is gone: a second redrive of it is NotFound, and the value is still one.
  EXPECT_EQ(dlq_->redrive(id).code(), Status::Code::kNotFound);
  auto values = store_->list_values(values_of_feed());
  ASSERT_TRUE(values.ok());
  EXPECT_EQ(values->size(), 1u);
}

TEST_F(DeadLetterQueueTest, RedriveOfASlotThatAlreadyHasAValueKeepsTheFirstValue) {
  // Two messages for the same slot (e.g. a sink failed twice), and the slot already published.
  int64_t a = push(failed_slot(5, true));
  int64_t b = push(failed_slot(5, true));
  SlotCommit published;
  published.execution = execution_id();
  published.feed = kFeed;
  published.slot.slot = slot(5);
  published.slot.outcome = SlotOutcome::kPublished;
  published.slot.attempts = 1;
  published.record = record(5, "111");
  ASSERT_TRUE(store_->commit_slots(std::span<const SlotCommit>(&published, 1)).ok());

  EXPECT_TRUE(dlq_->redrive(a).ok());
  EXPECT_TRUE(dlq_->redrive(b).ok());
  EXPECT_EQ(depth(), 0);
  auto values = store_->list_values(values_of_feed());
  ASSERT_TRUE(values.ok());
  ASSERT_EQ(values->size(), 1u);
  EXPECT_EQ((*values)[0].value, "111");
}

TEST_F(DeadLetterQueueTest, RedriveWithoutRecordIsRefusedAndTheMessageStays) {
  int64_t id = push(failed_slot(6, false));
  changes_ = 0;
  Status status = dlq_->redrive(id);
  EXPECT_EQ(status.code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(status.message(),
            fmt::format("DLQ message {} has no record (stage publish: io_error: store: disk I/O "
                        "error); it can only be purged",
                        id));
  EXPECT_EQ(depth(), 1);
  EXPECT_EQ(changes_, 0);
  EXPECT_EQ(slot_record(6).outcome, SlotOutcome::kFailed);  // stays failed in the history
}

TEST_F(DeadLetterQueueTest, RedriveOfAPlanningFailureResolvesOnceTheExecutionIsStored) {
  DlqMessage m;
  m.feed = kFeed;
  m.execution = make_execution_id(kFeed, kWindow + Millis(60'000));  // the next window
  m.stage = "plan";
  m.error = "io_error: store: disk I/O error";
  m.attempts = 1;
  int64_t id = push(m);
  // Not persisted yet: the message stays, and says what to do.
  Status status = dlq_->redrive(id);
  EXPECT_EQ(status.code(), Status::Code::kUnavailable);
  EXPECT_NE(status.message().find("is still not in the store"), std::string::npos);
  EXPECT_EQ(depth(), 1);
  // The daemon persisted it at a later slot: the redrive resolves the message.
  Execution next;
  next.id = m.execution;
  next.feed = kFeed;
  next.window_start = kWindow + Millis(60'000);
  next.window_end = kWindow + Millis(120'000);
  next.created_at = clock_.now();
  ASSERT_TRUE(store_->create_execution(next).ok());
  EXPECT_TRUE(dlq_->redrive(id).ok());
  EXPECT_EQ(depth(), 0);
}

TEST_F(DeadLetterQueueTest, FailedDeliveryLeavesTheMessage) {
  int64_t id = push(failed_slot(7, true));
  changes_ = 0;
  flaky_->fail_commit = true;
  Status status = dlq_->redrive(id);
  EXPECT_EQ(status.code(), Status::Code::kIOError);
  EXPECT_THAT(status.message(), HasSubstr("disk I/O error"));
  EXPECT_EQ(depth(), 1);
  EXPECT_EQ(changes_, 0);

  flaky_->fail_commit = false;
  EXPECT_TRUE(dlq_->redrive(id).ok());
  EXPECT_EQ(depth(), 0);
}

TEST_F(DeadLetterQueueTest, UnknownIdIsNotFound) {
  EXPECT_EQ(dlq_->redrive(42).code(), Status::Code::kNotFound);
  Status purge = dlq_->purge(42);
  EXPECT_EQ(purge.code(), Status::Code::kNotFound);
  EXPECT_EQ(purge.message(), "DLQ message 42 not found");
}

TEST_F(DeadLetterQueueTest, PurgeRemovesOneMessage) {
  int64_t a = push(failed_slot(1, false));
  int64_t b = push(failed_slot(2, true));
  changes_ = 0;
  ASSERT_TRUE(dlq_->purge(a).ok());
  EXPECT_EQ(changes_, 1);
  auto listed = dlq_->list();
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].id, b);
  EXPECT_EQ(slot_record(1).outcome, SlotOutcome::kFailed);
  EXPECT_EQ(dlq_->purge(a).code(), Status::Code::kNotFound);
}

TEST_F(DeadLetterQueueTest, PurgeAllEmptiesTheQueue) {
  for (int i = 0; i < 5; ++i) push(failed_slot(i, i % 2 == 0));
  changes_ = 0;
  auto purged = dlq_->purge_all();
  ASSERT_TRUE(purged.ok());
  EXPECT_EQ(*purged, 5);
  EXPECT_EQ(depth(), 0);
  EXPECT_EQ(changes_, 1);

  auto again = dlq_->purge_all();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 0);
  EXPECT_EQ(changes_, 1);  // nothing changed
}

TEST_F(DeadLetterQueueTest, RedriveAllSummarises) {
  std::vector<int64_t> without_record;
  for (int i = 0; i < 6; ++i) {
    int64_t id = push(failed_slot(i, i % 3 != 0));
    if (i % 3 == 0) without_record.push_back(id);
  }
  changes_ = 0;
  RedriveSummary summary = dlq_->redrive_all();
  EXPECT_EQ(summary.redriven, 4);
  EXPECT_EQ(summary.not_redrivable, 2);
  EXPECT_EQ(summary.failed, 0);
  ASSERT_EQ(summary.errors.size(), 2u);
  EXPECT_THAT(summary.errors[0], HasSubstr(fmt::format("message {}", without_record[0])));
  EXPECT_THAT(summary.errors[0], HasSubstr("it can only be purged"));
  EXPECT_EQ(changes_, 1);
  EXPECT_EQ(depth(), 2);
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(slot_record(i).outcome, i % 3 != 0 ? SlotOutcome::kPublished : SlotOutcome::kFailed);
  }

  // Again: only the ones without a record are left, and they stay.
  summary = dlq_->redrive_all();
  EXPECT_EQ(summary.redriven, 0);
  EXPECT_EQ(summary.not_redrivable, 2);
  EXPECT_EQ(changes_, 1);
}

TEST_F(DeadLetterQueueTest, RedriveAllCountsFailuresAndKeepsThoseMessages) {
  push(failed_slot(1, true));
  push(failed_slot(2, true));
  flaky_->fail_commit = true;
  RedriveSummary summary = dlq_->redrive_all();
  EXPECT_EQ(summary.redriven, 0);
  EXPECT_EQ(summary.failed, 2);
  EXPECT_EQ(summary.errors.size(), 2u);
  EXPECT_EQ(depth(), 2);
}

TEST_F(DeadLetterQueueTest, RedriveAllReachesPastTheFirstPage) {
  // More messages that stay on the queue than one page holds, then some that can be redriven.
  constexpr int kStaying = 520;
  for (int i = 0; i < kStaying; ++i) {
    DlqMessage observe;  // the source failed: no record, purge only
    observe.feed = kFeed;
    observe.slot = slot(i % 30);
    observe.execution = execution_id();
    observe.stage = "observe";
    observe.error = "unavailable";
    ASSERT_TRUE(store_->dlq_push(observe).ok());
  }
  for (int i = 0; i < 3; ++i) push(failed_slot(i, true));
  RedriveSummary summary = dlq_->redrive_all();
  EXPECT_EQ(summary.redriven, 3);
  EXPECT_EQ(summary.not_redrivable, kStaying);
  EXPECT_EQ(depth(), kStaying);
}

}  // namespace
}  // namespace metronome
