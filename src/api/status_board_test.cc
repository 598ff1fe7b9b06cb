#include "api/status_board.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace metronome {
namespace {

const SlotTime kBase = slot_from_unix_ms(1'795'000'000'000);

FeedSummary summary(const std::string& id) {
  return FeedSummary{.id = FeedId(id),
                     .schedule = Schedule::every(Millis(100)),
                     .schedule_text = "every 100ms",
                     .window = Millis(1000),
                     .deadline = std::nullopt,
                     .source = "random_int 0..1000",
                     .decimals = 0};
}

ValueRecord value(const std::string& feed, SlotTime slot) {
  ValueRecord r;
  r.feed = FeedId(feed);
  r.slot = slot;
  r.round = to_unix_ms(slot) / 100;
  r.value = std::to_string(to_unix_ms(slot) % 1000);
  return r;
}

SlotRecord outcome(SlotTime slot, SlotOutcome o, std::string error = {}) {
  SlotRecord s;
  s.slot = slot;
  s.outcome = o;
  s.error = std::move(error);
  return s;
}

TEST(StatusBoard, KnowsOnlyTheConfiguredFeeds) {
  StatusBoard board;
  board.set_feeds({summary("a"), summary("b")});
  EXPECT_TRUE(board.has_feed(FeedId("a")));
  EXPECT_FALSE(board.has_feed(FeedId("zzz")));
  board.on_published(value("zzz", kBase));  // ignored
  EXPECT_EQ(board.latest(FeedId("zzz")), nullptr);
  auto feeds = board.feeds();
  ASSERT_EQ(feeds.size(), 2u);
  EXPECT_EQ(feeds[0].summary->id, FeedId("a"));
  EXPECT_EQ(feeds[1].summary->id, FeedId("b"));
  EXPECT_EQ(feeds[0].latest, nullptr);
  EXPECT_EQ(feeds[0].last_slot, nullptr);
}

TEST(StatusBoard, LatestValueAndOutcomeOnlyMoveForward) {
  StatusBoard board;
  board.set_feeds({summary("a")});
  board.on_published(value("a", kBase + Millis(200)));
  board.on_published(value("a", kBase + Millis(100)));  // a redrive of an older slot
  EXPECT_EQ(board.latest(FeedId("a"))->slot, kBase + Millis(200));

  board.on_outcome(FeedId("a"), outcome(kBase + Millis(300), SlotOutcome::kSkipped, "busy"));
  board.on_outcome(FeedId("a"), outcome(kBase + Millis(200), SlotOutcome::kPublished));
  auto f = board.feed(FeedId("a"));
  ASSERT_TRUE(f && f->last_slot);
  EXPECT_EQ(f->last_slot->slot.slot, kBase + Millis(300));
  EXPECT_EQ(f->last_slot->reason, "slot 2026-11-18T11:06:40.300Z skipped: busy");
}

TEST(StatusBoard, PublishedOutcomeHasNoReason) {
  StatusBoard board;
  board.set_feeds({summary("a")});
  board.on_outcome(FeedId("a"), outcome(kBase, SlotOutcome::kPublished));
  EXPECT_EQ(board.feed(FeedId("a"))->last_slot->reason, "");
  board.on_outcome(FeedId("a"), outcome(kBase, SlotOutcome::kPlanned));  // not an outcome
  EXPECT_EQ(board.feed(FeedId("a"))->last_slot->slot.outcome, SlotOutcome::kPublished);
}

TEST(StatusBoard, ClockStepIsResolvedByASlotPublishedAfterIt) {
  StatusBoard board;
  board.set_feeds({summary("a")});
  EXPECT_FALSE(board.clock_step()->unresolved);
  board.on_clock_step(WallTime(kBase + Millis(1000)), std::chrono::seconds(-5));
  EXPECT_TRUE(board.clock_step()->unresolved);
  EXPECT_EQ(board.clock_step()->total, 1u);
  board.on_outcome(FeedId("a"), outcome(kBase + Millis(900), SlotOutcome::kPublished));
  EXPECT_TRUE(board.clock_step()->unresolved);  // before the step
  board.on_outcome(FeedId("a"), outcome(kBase + Millis(1100), SlotOutcome::kFailed, "x"));
  EXPECT_TRUE(board.clock_step()->unresolved);  // not published
  board.on_outcome(FeedId("a"), outcome(kBase + Millis(1200), SlotOutcome::kPublished));
  EXPECT_FALSE(board.clock_step()->unresolved);
  EXPECT_EQ(board.clock_step()->step, std::chrono::seconds(-5));
}

TEST(StatusBoard, StoreReachability) {
  StatusBoard board;
  EXPECT_TRUE(board.store_status()->reachable);
  board.set_store_reachable(false, "io_error: disk full");
  EXPECT_FALSE(board.store_status()->reachable);
  EXPECT_EQ(board.store_status()->reason, "io_error: disk full");
  board.set_store_reachable(true);
  EXPECT_TRUE(board.store_status()->reachable);
}

TEST(StatusBoard, SetFeedsAgainKeepsTheStateOfFeedsThatStay) {
  StatusBoard board;
  board.set_feeds({summary("a"), summary("b")});
  board.on_published(value("a", kBase));
  board.set_feeds({summary("a"), summary("c")});
  EXPECT_EQ(board.latest(FeedId("a"))->slot, kBase);
  EXPECT_FALSE(board.has_feed(FeedId("b")));
  EXPECT_TRUE(board.has_feed(FeedId("c")));
}

// Writers for several feeds (two per feed, out of order, as a worker and the timer thread can
// be) while readers load snapshots: readers always see a complete record whose slot never goes
// back, and the final state is the newest slot. Run under TSan/ASan it also checks the races.
TEST(StatusBoard, ConcurrentWritersAndReaders) {
  StatusBoard board;
  std::vector<FeedSummary> feeds;
  for (int f = 0; f < 4; ++f) feeds.push_back(summary("f" + std::to_string(f)));
  board.set_feeds(feeds);
  constexpr int kSlots = 5000;
  std::atomic<bool> done{false};
  std::vector<std::thread> writers;
  for (int f = 0; f < 4; ++f) {
    for (int parity = 0; parity < 2; ++parity) {
      writers.emplace_back([&, f, parity] {
        std::string id = "f" + std::to_string(f);
        for (int i = parity; i < kSlots; i += 2) {
          SlotTime slot = kBase + Millis(100 * i);
          board.on_published(value(id, slot));
          board.on_outcome(FeedId(id), outcome(slot, SlotOutcome::kPublished));
        }
      });
    }
  }
  std::atomic<int> bad{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 4; ++r) {
    readers.emplace_back([&] {
      std::vector<SlotTime> last(4, kBase - Millis(1));
      while (!done.load()) {
        auto snapshot = board.feeds();
        for (size_t f = 0; f < snapshot.size(); ++f) {
          const auto& latest = snapshot[f].latest;
          if (!latest) continue;
          if (latest->slot < last[f]) ++bad;
          if (latest->value != std::to_string(to_unix_ms(latest->slot) % 1000)) ++bad;
          if (latest->feed != snapshot[f].summary->id) ++bad;
          last[f] = latest->slot;
        }
      }
    });
  }
  for (auto& w : writers) w.join();
  done = true;
  for (auto& r : readers) r.join();
  EXPECT_EQ(bad.load(), 0);
  for (const auto& f : board.feeds()) {
    EXPECT_EQ(f.latest->slot, kBase + Millis(100 * (kSlots - 1)));
    EXPECT_EQ(f.last_slot->slot.slot, kBase + Millis(100 * (kSlots - 1)));
  }
}

}  // namespace
}  // namespace metronome
