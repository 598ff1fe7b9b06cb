#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <latch>

#include "dlq/dead_letter_queue.h"
#include "sink/dynamodb_sink.h"
#include "sink/sink_dispatcher.h"
#include "store/sqlite_store.h"
#include "testing/manual_clock.h"

namespace metronome {
namespace {

using ::testing::HasSubstr;

ValueRecord sample_record(int64_t slot_ms = 1'795'000'002'000) {
  ValueRecord r;
  r.feed = FeedId("random_int");
  r.slot = slot_from_unix_ms(slot_ms);
  r.round = slot_ms / 2000;
  r.value = "-537";
  r.decimals = 0;
  r.observed_at = WallTime(Nanos(slot_ms * 1'000'000 + 123'456'789));
  r.published_at = WallTime(Nanos(slot_ms * 1'000'000 + 223'456'001));
  r.execution = ExecutionId("random_int@2026-11-18T19:33:00Z");
  r.signer = "0x1111111111111111111111111111111111111111";
  r.signature = "0x" + std::string(130, 'a');
  r.digest = "0x" + std::string(64, 'b');
  return r;
}

TEST(DynamoDbItemTest, SeedLayoutIsTheReplacedTablesItem) {
  ValueRecord r = sample_record();
  nlohmann::json item = dynamodb_item(r, DynamoDbSinkConfig::Layout::kSeed);
  EXPECT_EQ(item, nlohmann::json::parse(R"({"datetime_utc": {"S": "2026-11-18 11:06:42"},
                                            "random_int": {"N": "-537"}})"));
  // Milliseconds are dropped, never rounded up.
  EXPECT_EQ(datetime_utc(slot_from_unix_ms(1'795'000'002'999)), "2026-11-18 11:06:42");
  EXPECT_EQ(datetime_utc(slot_from_unix_ms(0)), "1970-01-01 00:00:00");
  EXPECT_EQ(dynamodb_partition_key(DynamoDbSinkConfig::Layout::kSeed), "datetime_utc");
}

TEST(DynamoDbItemTest, RecordLayoutRoundTripsEveryField) {
  ValueRecord r = sample_record();
  nlohmann::json item = dynamodb_item(r, DynamoDbSinkConfig::Layout::kRecord);
  EXPECT_EQ(item["feed"], nlohmann::json({{"S", "random_int"}}));
  EXPECT_EQ(item["slot_ms"], nlohmann::json({{"N", "1795000002000"}}));
  auto back = record_from_dynamodb_item(item);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, r);

  ValueRecord unsigned_record = r;
  unsigned_record.signer.clear();
  unsigned_record.signature.clear();
  unsigned_record.digest.clear();
  item = dynamodb_item(unsigned_record, DynamoDbSinkConfig::Layout::kRecord);
  EXPECT_FALSE(item.contains("signature"));  // DynamoDB attributes are never empty strings here
  EXPECT_EQ(*record_from_dynamodb_item(item), unsigned_record);

  item.erase("value");
  EXPECT_THAT(record_from_dynamodb_item(item).status().message(), HasSubstr("'value'"));
}

// A sink whose answers the test chooses; it can be held to show that submit() never waits.
class FakeSink final : public Sink {
 public:
  std::string_view kind() const override { return "dynamodb"; }
  std::string describe() const override { return "fake sink"; }
  Status check() override { return Status::Ok(); }
  Delivery deliver(const ValueRecord& record, WallTime, std::stop_token) override {
    std::unique_lock lock(mu_);
    ++entered_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return !held_; });
    ++calls_;
    cv_.notify_all();
    if (!fail_.ok()) return {fail_, 3};
    delivered_.push_back(record);
    return {Status::Ok(), 1};
  }

  void hold(bool on) {
    std::lock_guard lock(mu_);
    held_ = on;
    cv_.notify_all();
  }
  void fail_with(Status s) {
    std::lock_guard lock(mu_);
    fail_ = std::move(s);
  }
  std::vector<ValueRecord> delivered() {
    std::lock_guard lock(mu_);
    return delivered_;
  }
  int calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }
  bool wait_for_entered(int n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return entered_ >= n; });
  }
  bool wait_for_calls(int n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return calls_ >= n; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool held_ = false;
  Status fail_;
  int calls_ = 0;
  int entered_ = 0;
  std::vector<ValueRecord> delivered_;
};

class SinkDispatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern =
        (std::filesystem::path(::testing::TempDir()) / "sink_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    SqliteStoreOptions options;
    options.path = dir_ / "metronome.db";
    options.dlq_path = dir_ / "metronome.dlq.db";
    auto store = SqliteStore::open(options);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    dlq_ = std::make_unique<DeadLetterQueue>(*store_, clock_);
    sink_ = std::make_shared<FakeSink>();
  }
  void TearDown() override {
    dlq_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::vector<FeedSinks> feeds() {
    FeedSinks fs;
    fs.feed = FeedId("random_int");
    fs.deadline_of = [](SlotTime slot) { return WallTime(slot) + std::chrono::seconds(2); };
    fs.sinks.push_back(sink_);
    std::vector<FeedSinks> out;
    out.push_back(std::move(fs));
    return out;
  }

  std::filesystem::path dir_;
  testing::ManualClock clock_;
  std::unique_ptr<SqliteStore> store_;
  std::unique_ptr<DeadLetterQueue> dlq_;
  std::shared_ptr<FakeSink> sink_;
};

TEST_F(SinkDispatcherTest, SubmitQueuesWithoutWaitingForTheSink) {
  SinkDispatcher dispatcher(*dlq_, clock_);
  dispatcher.configure(feeds());
  sink_->hold(true);  // the sink hangs
  for (int i = 0; i < 5; ++i) dispatcher.submit(sample_record(1'795'000'000'000 + 2000 * i));
  ValueRecord other = sample_record();
  other.feed = FeedId("no_sinks");
  dispatcher.submit(other);  // a feed without sinks: nothing
  EXPECT_TRUE(sink_->delivered().empty());
  sink_->hold(false);
  ASSERT_TRUE(sink_->wait_for_calls(5));
  dispatcher.stop();
  auto delivered = sink_->delivered();
  ASSERT_EQ(delivered.size(), 5u);
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(to_unix_ms(delivered[i].slot), 1'795'000'000'000 + 2000 * i);
  EXPECT_EQ(*dlq_->depth(), 0);
}

TEST_F(SinkDispatcherTest, AFailedDeliveryGoesToTheDlqAndRedrivesToTheSinkNotTheStore) {
  SinkDispatcher dispatcher(*dlq_, clock_);
  dispatcher.configure(feeds());
  for (const std::string& stage : SinkDispatcher::stages()) {
    dlq_->set_stage_redriver(stage,
                             [&dispatcher](const DlqMessage& m) { return dispatcher.redrive(m); });
  }
  sink_->fail_with(Status::Unavailable("DynamoDB PutItem T: HTTP 503"));
  ValueRecord r = sample_record();
  dispatcher.submit(r);
  ASSERT_TRUE(sink_->wait_for_calls(1));
  dispatcher.stop();  // drained: the DLQ push happened
  auto messages = dlq_->list();
  ASSERT_TRUE(messages.ok());
  ASSERT_EQ(messages->size(), 1u);
  const DlqMessage& m = messages->front();
  EXPECT_EQ(m.stage, "sink:dynamodb");
  EXPECT_EQ(m.attempts, 3);
  EXPECT_THAT(m.error, HasSubstr("HTTP 503"));
  ASSERT_TRUE(m.record.has_value());
  EXPECT_EQ(*m.record, r);

  // Still failing: the message stays.
  EXPECT_FALSE(dlq_->redrive(m.id).ok());
  EXPECT_EQ(*dlq_->depth(), 1);
  sink_->fail_with(Status::Ok());
  ASSERT_TRUE(dlq_->redrive(m.id).ok());
  EXPECT_EQ(*dlq_->depth(), 0);
  ASSERT_EQ(sink_->delivered().size(), 1u);
  EXPECT_EQ(sink_->delivered().front(), r);
  // The store was not written: the value stays where the publisher put it (here: nowhere).
  EXPECT_FALSE(store_->get_value(r.feed, r.slot)->has_value());
}

TEST_F(SinkDispatcherTest, RedriveWithoutTheSinkConfiguredLeavesTheMessage) {
  DlqMessage m;
  m.feed = FeedId("random_int");
  m.slot = sample_record().slot;
  m.stage = "sink:dynamodb";
  m.error = "x";
  m.record = sample_record();
  int64_t id = *dlq_->push(m);
  // No redriver registered (e.g. an old binary): a clear error, the message stays.
  Status st = dlq_->redrive(id);
  EXPECT_THAT(st.message(), HasSubstr("no dynamodb sink is configured"));
  SinkDispatcher dispatcher(*dlq_, clock_);  // registered, but the feed has no sinks
  dlq_->set_stage_redriver(
      "sink:dynamodb", [&dispatcher](const DlqMessage& msg) { return dispatcher.redrive(msg); });
  st = dlq_->redrive(id);
  EXPECT_THAT(st.message(), HasSubstr("feed random_int has no dynamodb sink"));
  EXPECT_EQ(*dlq_->depth(), 1);
}

TEST_F(SinkDispatcherTest, AFullQueueGoesToTheDlqInsteadOfWaiting) {
  SinkDispatcherOptions options;
  options.max_queue = 2;
  SinkDispatcher dispatcher(*dlq_, clock_, options);
  dispatcher.configure(feeds());
  sink_->hold(true);
  dispatcher.submit(sample_record(1'795'000'000'000));
  ASSERT_TRUE(sink_->wait_for_entered(1));
  // One is being delivered (held), two wait; the rest overflow.
  for (int i = 1; i < 6; ++i) dispatcher.submit(sample_record(1'795'000'000'000 + 2000 * i));
  EXPECT_GE(*dlq_->depth(), 2);
  auto messages = dlq_->list();
  EXPECT_THAT(messages->back().error, HasSubstr("queue is full"));
  sink_->hold(false);
  dispatcher.stop();
  EXPECT_EQ(static_cast<int64_t>(sink_->delivered().size()) + *dlq_->depth(), 6);
}

}  // namespace
}  // namespace metronome
