#include "api/event_hub.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "api/slot_reporter.h"

namespace metronome {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

const FeedId kFeed("fast");
const std::atomic<bool> kNoStop{false};

std::vector<uint64_t> seqs(const EventHub::Batch& b) {
  std::vector<uint64_t> out;
  for (const auto& e : b.events) out.push_back(e->seq);
  return out;
}

ValueRecord record_at(int64_t ms) {
  ValueRecord r;
  r.feed = kFeed;
  r.slot = slot_from_unix_ms(ms);
  r.round = ms / 200;
  r.value = "42";
  r.observed_at = r.published_at = WallTime(r.slot);
  r.execution = make_execution_id(kFeed, r.slot);
  return r;
}

AlarmState alarm(std::string name, std::string reason = "") {
  AlarmState a;
  a.name = std::move(name);
  a.status = AlarmStatus::kAlarm;
  a.reason = std::move(reason);
  return a;
}

TEST(EventHub, KeepsNothingWhileNobodyListens) {
  EventHub hub(4);
  hub.on_dlq_change();
  hub.on_record(record_at(1000));
  EXPECT_EQ(hub.last_seq(), 0u);
  EventHub::Subscription sub(hub);
  EXPECT_EQ(hub.subscribers(), 1u);
  hub.on_dlq_change();
  EXPECT_EQ(hub.last_seq(), 1u);
}

TEST(EventHub, DeliversEventsAfterASequenceNumberInOrder) {
  EventHub hub(8);
  EventHub::Subscription sub(hub);
  hub.on_record(record_at(1000));
  hub.on_slot(kFeed, SlotRecord{.slot = slot_from_unix_ms(1000),
                                .outcome = SlotOutcome::kPublished,
                                .lateness_us = 120});
  hub.on_alarm(alarm("missed_slots"));
  auto all = hub.next(0, 0ms, kNoStop);
  EXPECT_FALSE(all.lost);
  EXPECT_EQ(seqs(all), (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(all.events[0]->type, "record");
  EXPECT_THAT(all.events[0]->data, HasSubstr(R"("value":"42")"));
  EXPECT_EQ(all.events[1]->type, "slot");
  EXPECT_THAT(all.events[1]->data, HasSubstr(R"("feed":"fast")"));
  EXPECT_THAT(all.events[1]->data, HasSubstr(R"("lateness_us":120)"));
  EXPECT_EQ(all.events[2]->type, "alarm");
  EXPECT_THAT(all.events[2]->data, HasSubstr(R"("alarm":"missed_slots")"));
  EXPECT_EQ(seqs(hub.next(2, 0ms, kNoStop)), (std::vector<uint64_t>{3}));
  // Nothing new: an empty batch once the (short) wait ends.
  auto none = hub.next(3, 10ms, kNoStop);
  EXPECT_TRUE(none.events.empty());
  EXPECT_FALSE(none.lost || none.stopped);
}

TEST(EventHub, AReaderTooFarBehindIsToldItLostEvents) {
  EventHub hub(4);
  EventHub::Subscription sub(hub);
  for (int i = 0; i < 10; ++i) hub.on_dlq_change();
  auto b = hub.next(2, 0ms, kNoStop);
  EXPECT_TRUE(b.lost);
  EXPECT_EQ(seqs(b), (std::vector<uint64_t>{7, 8, 9, 10}));  // what the ring still holds
  auto fine = hub.next(7, 0ms, kNoStop);
  EXPECT_FALSE(fine.lost);
  EXPECT_EQ(seqs(fine), (std::vector<uint64_t>{8, 9, 10}));
}

TEST(EventHub, PublishingNeverWaitsForAReader) {
  // A reader that never reads: publishing 100,000 events through a ring of 16 still returns.
  EventHub hub(16);
  EventHub::Subscription sub(hub);
  for (int i = 0; i < 100000; ++i) hub.on_dlq_change();
  EXPECT_EQ(hub.last_seq(), 100000u);
  EXPECT_TRUE(hub.next(0, 0ms, kNoStop).lost);
}

TEST(EventHub, AWaitingReaderWakesForAnEventAndForStop) {
  EventHub hub(8);
  EventHub::Subscription sub(hub);
  std::atomic<bool> stop{false};
  EventHub::Batch got;
  std::thread reader([&] { got = hub.next(0, 30s, stop); });
  std::this_thread::sleep_for(20ms);
  hub.on_dlq_change();
  reader.join();  // would take 30 s if the event did not wake it
  EXPECT_EQ(seqs(got), (std::vector<uint64_t>{1}));

  auto begin = std::chrono::steady_clock::now();
  std::thread waiter([&] { got = hub.next(1, 30s, stop); });
  std::this_thread::sleep_for(20ms);
  stop = true;
  hub.wake_all();
  waiter.join();
  EXPECT_TRUE(got.stopped);
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 10s);
}

TEST(EventHub, SlotReporterPublishesRecordsSlotsAndRedrives) {
  StatusBoard board;
  Metrics metrics("test");
  FeedSummary summary;
  summary.id = kFeed;
  board.set_feeds({summary});
  metrics.set_feeds({kFeed});
  EventHub hub(16);
  EventHub::Subscription sub(hub);
  SlotReporter reporter(board, metrics, &hub);
  ValueRecord r = record_at(2000);
  SlotRecord published{.slot = r.slot, .outcome = SlotOutcome::kPublished};
  reporter.on_slot(kFeed, published, &r);
  reporter.on_slot(kFeed,
                   SlotRecord{.slot = slot_from_unix_ms(2200), .outcome = SlotOutcome::kSkipped});
  reporter.on_redriven(record_at(1800));
  auto b = hub.next(0, 0ms, kNoStop);
  ASSERT_EQ(b.events.size(), 4u);
  EXPECT_EQ(b.events[0]->type, "record");
  EXPECT_EQ(b.events[1]->type, "slot");
  EXPECT_THAT(b.events[1]->data, HasSubstr(R"("outcome":"published")"));
  EXPECT_EQ(b.events[2]->type, "slot");
  EXPECT_THAT(b.events[2]->data, HasSubstr(R"("outcome":"skipped")"));
  EXPECT_EQ(b.events[3]->type, "record");
  EXPECT_THAT(b.events[3]->data, HasSubstr(R"("slot_ms":"1800")"));
}

class CountingActions final : public AlarmActions {
 public:
  Status fire(const AlarmState&, AlarmStatus) override {
    ++fired;
    return Status::Ok();
  }
  int fired = 0;
};

TEST(EventHub, AlarmTransitionsArePublishedAndTheActionsStillRun) {
  EventHub hub(8);
  EventHub::Subscription sub(hub);
  auto inner = std::make_unique<CountingActions>();
  CountingActions* counting = inner.get();
  auto actions = with_alarm_events(std::move(inner), hub);
  AlarmState state = alarm("dlq_not_empty", "DLQ depth 1 >= 1");
  EXPECT_TRUE(actions->fire(state, AlarmStatus::kOk).ok());
  EXPECT_EQ(counting->fired, 1);
  auto b = hub.next(0, 0ms, kNoStop);
  ASSERT_EQ(b.events.size(), 1u);
  EXPECT_EQ(b.events[0]->type, "alarm");
  EXPECT_THAT(b.events[0]->data, HasSubstr(R"("state":"ALARM")"));
  EXPECT_THAT(b.events[0]->data, HasSubstr("DLQ depth 1 >= 1"));
  // No inner actions (none configured): still published.
  auto bare = with_alarm_events(nullptr, hub);
  EXPECT_TRUE(bare->fire(state, AlarmStatus::kOk).ok());
  EXPECT_EQ(hub.last_seq(), 2u);
}

}  // namespace
}  // namespace metronome
