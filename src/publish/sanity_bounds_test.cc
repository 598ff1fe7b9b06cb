// Sanity bounds: the pure check, and the publisher failing a slot into the DLQ with the reason
// (and publishing nothing) when a value is outside them.
#include "publish/sanity_bounds.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "publish/publisher.h"
#include "store/sqlite_store.h"
#include "testing/manual_clock.h"
#include "testing/store_conformance.h"

namespace metronome {
namespace {

using ::testing::HasSubstr;

Decimal dec(std::string_view text) {
  return Decimal::parse(text).value();
}

TEST(SanityBoundsTest, MinMaxAndChangeAgainstThePreviousValue) {
  SanityBounds b{dec("10"), dec("20.5"), dec("5")};
  EXPECT_TRUE(check_sanity_bounds(b, dec("10"), std::nullopt).ok());
  EXPECT_TRUE(check_sanity_bounds(b, dec("20.5"), std::nullopt).ok());
  EXPECT_THAT(check_sanity_bounds(b, dec("9.999"), std::nullopt).message(),
              HasSubstr("value 9.999 is below the feed's min_value 10"));
  EXPECT_THAT(check_sanity_bounds(b, dec("20.51"), std::nullopt).message(),
              HasSubstr("value 20.51 is above the feed's max_value 20.5"));
  EXPECT_TRUE(check_sanity_bounds(b, dec("15.75"), dec("15")).ok());  // exactly 5 %
  Status moved = check_sanity_bounds(b, dec("15.76"), dec("15"));
  EXPECT_EQ(moved.code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(moved.message(),
              HasSubstr("value 15.76 moved more than max_change_pct 5 % from the previous "
                        "published value 15"));
  EXPECT_TRUE(check_sanity_bounds(SanityBounds{}, dec("-1e70"), dec("1")).ok());
}

// A source that returns what the test sets.
class SetSource final : public Source {
 public:
  Result<SourceValue> observe(const ObserveContext&) override { return value; }
  std::string describe() const override { return "set"; }
  SourceValue value;
};

class SanityPublishTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SqliteStoreOptions o;
    o.path = dir_.path() / "metronome.db";
    o.dlq_path = dir_.path() / "metronome.dlq.db";
    store_ = std::move(*SqliteStore::open(o));
    dlq_ = std::make_unique<DeadLetterQueue>(*store_, clock_);
    publisher_ = std::make_unique<Publisher>(*store_, *dlq_, clock_);
    feed_.id = FeedId("eth_usd");
    feed_.schedule = Schedule::every(Millis(2000));
    feed_.decimals = 2;
    feed_.bounds = SanityBounds{dec("1"), dec("5000"), dec("10")};
    auto source = std::make_unique<SetSource>();
    source_ = source.get();
    feed_.source = std::move(source);
  }

  SlotResult publish(std::string value, int slot_index) {
    source_->value.value = std::move(value);
    SlotTime slot = slot_from_unix_ms(1'795'000'000'000 + 2000 * int64_t{slot_index});
    clock_.set(WallTime(slot));
    SlotJob job;
    job.execution = make_execution_id(feed_.id, slot);
    job.slot = slot;
    job.fired_at = WallTime(slot);
    job.deadline = feed_.deadline_of(slot);
    return publisher_->publish_slot(feed_, job, std::stop_token());
  }

  testing::TempDir dir_{"sanity"};
  testing::ManualClock clock_;
  std::unique_ptr<SqliteStore> store_;
  std::unique_ptr<DeadLetterQueue> dlq_;
  std::unique_ptr<Publisher> publisher_;
  FeedRuntime feed_;
  SetSource* source_ = nullptr;
};

TEST_F(SanityPublishTest, ValueOutsideTheBoundsFailsIntoTheDlqAndPublishesNothing) {
  SlotResult first = publish("3000.5", 0);
  ASSERT_EQ(first.slot.outcome, SlotOutcome::kPublished) << first.slot.error;

  SlotResult high = publish("6000", 1);
  EXPECT_EQ(high.slot.outcome, SlotOutcome::kFailed);
  EXPECT_THAT(high.slot.error, HasSubstr("value 6000 is above the feed's max_value 5000"));
  EXPECT_FALSE(high.record.has_value());
  SlotResult jump = publish("3400", 2);  // +13.3 % from 3000.5
  EXPECT_EQ(jump.slot.outcome, SlotOutcome::kFailed);
  EXPECT_THAT(jump.slot.error, HasSubstr("moved more than max_change_pct 10 %"));
  SlotResult ok = publish("3200", 3);  // +6.6 %
  EXPECT_EQ(ok.slot.outcome, SlotOutcome::kPublished) << ok.slot.error;

  auto values = store_->list_values(ValueQuery{.feed = feed_.id});
  ASSERT_TRUE(values.ok());
  ASSERT_EQ(values->size(), 2u);  // only the two in bounds
  EXPECT_EQ((*values)[0].value, "3200");
  EXPECT_EQ((*values)[1].value, "3000.5");

  auto dlq = dlq_->list();
  ASSERT_TRUE(dlq.ok());
  ASSERT_EQ(dlq->size(), 2u);
  for (const DlqMessage& m : *dlq) {
    EXPECT_EQ(m.stage, "sanity");
    EXPECT_FALSE(m.record.has_value()) << "a rejected value must not be redriven";
  }
  EXPECT_THAT((*dlq)[0].error, HasSubstr("max_value 5000"));
  EXPECT_THAT((*dlq)[1].error, HasSubstr("max_change_pct"));
}

TEST_F(SanityPublishTest, RecordKeepsTheSourcesThatAnswered) {
  source_->value.answers = {{"a", "100"}, {"c", "101.5"}};
  SlotResult r = publish("101.5", 0);
  ASSERT_EQ(r.slot.outcome, SlotOutcome::kPublished) << r.slot.error;
  auto stored = store_->get_value(feed_.id, r.slot.slot);
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ((*stored)->sources, (std::vector<SourceAnswer>{{"a", "100"}, {"c", "101.5"}}));
}

}  // namespace
}  // namespace metronome
