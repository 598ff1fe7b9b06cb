#include "api/metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <sstream>
#include <thread>

#include "api/slot_reporter.h"

namespace metronome {
namespace {

using ::testing::HasSubstr;

// Parses the Prometheus text format: "name{labels} value" lines, comments skipped.
std::map<std::string, double> parse_samples(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    auto space = line.rfind(' ');
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

TEST(Metrics, CountersGaugesAndBuildInfo) {
  Metrics m("1.2.3");
  m.set_feeds({FeedId("fast")});
  m.on_slot(FeedId("fast"), SlotOutcome::kPublished, std::nullopt, std::nullopt);
  m.on_slot(FeedId("fast"), SlotOutcome::kPublished, std::nullopt, std::nullopt);
  m.on_slot(FeedId("fast"), SlotOutcome::kMissed, std::nullopt, std::nullopt);
  m.on_slot(FeedId("fast"), SlotOutcome::kPlanned, std::nullopt, std::nullopt);  // not counted
  m.set_dlq_depth(3);
  m.set_alarm_state("dlq_not_empty", AlarmStatus::kAlarm);
  m.set_alarm_state("custom", AlarmStatus::kOk);
  m.on_clock_step();
  std::string text = m.serialize();
  auto s = parse_samples(text);
  EXPECT_EQ(s["metronome_slots_total{feed=\"fast\",outcome=\"published\"}"], 2);
  EXPECT_EQ(s["metronome_slots_total{feed=\"fast\",outcome=\"missed\"}"], 1);
  EXPECT_EQ(s["metronome_slots_total{feed=\"fast\",outcome=\"failed\"}"], 0);
  EXPECT_EQ(s["metronome_slots_total{feed=\"fast\",outcome=\"skipped\"}"], 0);
  EXPECT_EQ(s["metronome_dlq_depth"], 3);
  EXPECT_EQ(s["metronome_alarm_state{alarm=\"dlq_not_empty\"}"], 1);
  EXPECT_EQ(s["metronome_alarm_state{alarm=\"missed_slots\"}"], 0);
  EXPECT_EQ(s.count("metronome_alarm_state{alarm=\"custom\"}"), 1u);
  EXPECT_EQ(s["metronome_clock_steps_total"], 1);
  EXPECT_EQ(s["metronome_build_info{version=\"1.2.3\"}"], 1);
  EXPECT_THAT(text, HasSubstr("# TYPE metronome_slot_fire_lateness_seconds histogram"));
  EXPECT_THAT(text, HasSubstr("# TYPE metronome_slots_total counter"));
}

TEST(Metrics, SpoolDepthGaugeAppearsWithItsFirstValue) {
  Metrics m("1");
  EXPECT_EQ(parse_samples(m.serialize()).count("metronome_spool_depth"), 0u);  // SQLite daemons
  m.set_spool_depth(12);
  EXPECT_EQ(parse_samples(m.serialize())["metronome_spool_depth"], 12);
  m.set_spool_depth(0);
  EXPECT_EQ(parse_samples(m.serialize())["metronome_spool_depth"], 0);
}

TEST(Metrics, PresignMetricsAppearWithTheFirstReading) {
  Metrics m("1");
  EXPECT_EQ(parse_samples(m.serialize()).count("metronome_presign_ready"), 0u);  // presign = 0
  m.set_presign(5000, 120, 3);
  auto samples = parse_samples(m.serialize());
  EXPECT_EQ(samples["metronome_presign_ready"], 5000);
  EXPECT_EQ(samples["metronome_presign_taken_total"], 120);
  EXPECT_EQ(samples["metronome_presign_missed_total"], 3);
  m.set_presign(4000, 1120, 3);
  samples = parse_samples(m.serialize());
  EXPECT_EQ(samples["metronome_presign_ready"], 4000);
  EXPECT_EQ(samples["metronome_presign_taken_total"], 1120);
  EXPECT_EQ(samples["metronome_presign_missed_total"], 3);
}

TEST(Metrics, LeaseMetricsAppearWithTheFirstRenewal) {
  Metrics m("1");
  EXPECT_EQ(parse_samples(m.serialize()).count("metronome_leases_held"), 0u);  // no replicas
  m.on_lease_renewal(false, 7, std::chrono::microseconds(-1500));
  auto samples = parse_samples(m.serialize());
  EXPECT_EQ(samples["metronome_leases_held"], 7);
  EXPECT_DOUBLE_EQ(samples["metronome_clock_skew_seconds"], -0.0015);
  EXPECT_EQ(samples["metronome_lease_renew_failures_total"], 0);
  m.on_lease_renewal(true, 7, std::chrono::microseconds(0));
  m.on_lease_renewal(true, 0, std::chrono::microseconds(0));
  samples = parse_samples(m.serialize());
  EXPECT_EQ(samples["metronome_lease_renew_failures_total"], 2);
  EXPECT_EQ(samples["metronome_leases_held"], 0);
}

TEST(Metrics, EvmSinkGaugesFollowTheLiveSinks) {
  using namespace std::chrono_literals;
  Metrics m("1");
  m.set_evm_sinks({});  // no evm sink: no evm families at all
  EXPECT_THAT(m.serialize(), ::testing::Not(HasSubstr("metronome_evm_")));

  m.set_evm_sinks({{FeedId("eth_usd"), Nanos(4500ms), Nanos(2s), 999.5},
                   {FeedId("btc_usd"), std::nullopt, Nanos(0), std::nullopt}});
  std::string text = m.serialize();
  auto s = parse_samples(text);
  EXPECT_DOUBLE_EQ(s["metronome_evm_onchain_staleness_seconds{feed=\"eth_usd\"}"], 4.5);
  EXPECT_DOUBLE_EQ(s["metronome_evm_pending_tx_age_seconds{feed=\"eth_usd\"}"], 2);
  EXPECT_DOUBLE_EQ(s["metronome_evm_sender_balance_eth{feed=\"eth_usd\"}"], 999.5);
  // btc_usd: no chain value and no balance yet, no pending transaction.
  EXPECT_EQ(s.count("metronome_evm_onchain_staleness_seconds{feed=\"btc_usd\"}"), 0u);
  EXPECT_EQ(s.count("metronome_evm_sender_balance_eth{feed=\"btc_usd\"}"), 0u);
  EXPECT_EQ(s.at("metronome_evm_pending_tx_age_seconds{feed=\"btc_usd\"}"), 0);
  EXPECT_THAT(text, HasSubstr("# TYPE metronome_evm_onchain_staleness_seconds gauge"));

  // The next reading replaces the values; btc_usd's sink is gone (a reload removed it).
  m.set_evm_sinks({{FeedId("eth_usd"), Nanos(500ms), Nanos(0), 999.25}});
  s = parse_samples(m.serialize());
  EXPECT_DOUBLE_EQ(s["metronome_evm_onchain_staleness_seconds{feed=\"eth_usd\"}"], 0.5);
  EXPECT_EQ(s.at("metronome_evm_pending_tx_age_seconds{feed=\"eth_usd\"}"), 0);
  EXPECT_DOUBLE_EQ(s["metronome_evm_sender_balance_eth{feed=\"eth_usd\"}"], 999.25);
  EXPECT_EQ(s.count("metronome_evm_pending_tx_age_seconds{feed=\"btc_usd\"}"), 0u);

  // Every sink gone: no samples left.
  m.set_evm_sinks({});
  for (const auto& [name, value] : parse_samples(m.serialize())) {
    EXPECT_FALSE(name.starts_with("metronome_evm_")) << name;
  }
}

TEST(Metrics, HistogramBucketsCountAndSum) {
  Metrics m("1");
  m.set_feeds({FeedId("fast")});
  m.on_slot(FeedId("fast"), SlotOutcome::kPublished, Micros(5), Micros(900));
  m.on_slot(FeedId("fast"), SlotOutcome::kPublished, Micros(10), Millis(2));
  m.on_slot(FeedId("fast"), SlotOutcome::kFailed, Millis(30), std::nullopt);
  m.on_slot(FeedId("fast"), SlotOutcome::kPublished, std::chrono::seconds(3), Millis(1));
  auto s = parse_samples(m.serialize());
  const std::string l = "metronome_slot_fire_lateness_seconds";
  EXPECT_EQ(s[l + "_bucket{feed=\"fast\",le=\"1e-05\"}"], 2);  // 5 µs and exactly 10 µs
  EXPECT_EQ(s[l + "_bucket{feed=\"fast\",le=\"0.025\"}"], 2);
  EXPECT_EQ(s[l + "_bucket{feed=\"fast\",le=\"0.05\"}"], 3);
  EXPECT_EQ(s[l + "_bucket{feed=\"fast\",le=\"1\"}"], 3);
  EXPECT_EQ(s[l + "_bucket{feed=\"fast\",le=\"+Inf\"}"], 4);
  EXPECT_EQ(s[l + "_count{feed=\"fast\"}"], 4);
  EXPECT_NEAR(s[l + "_sum{feed=\"fast\"}"], 3.030015, 1e-9);
  const std::string p = "metronome_publish_latency_seconds";
  EXPECT_EQ(s[p + "_count{feed=\"fast\"}"], 3);
  EXPECT_EQ(s[p + "_bucket{feed=\"fast\",le=\"0.001\"}"], 2);
  EXPECT_EQ(s[p + "_bucket{feed=\"fast\",le=\"0.0025\"}"], 3);
  // Sixteen finite buckets and +Inf per histogram and feed.
  int buckets = 0;
  for (const auto& [name, v] : s) buckets += name.starts_with(l + "_bucket{feed=\"fast\"");
  EXPECT_EQ(buckets, 17);
}

TEST(Metrics, FeedNotGivenToSetFeedsStillCounts) {
  Metrics m("1");
  m.on_slot(FeedId("late"), SlotOutcome::kSkipped, Micros(1), std::nullopt);
  auto s = parse_samples(m.serialize());
  EXPECT_EQ(s["metronome_slots_total{feed=\"late\",outcome=\"skipped\"}"], 1);
  EXPECT_EQ(s["metronome_slot_fire_lateness_seconds_count{feed=\"late\"}"], 1);
}

TEST(Metrics, ConcurrentSlotsAndScrapesLoseNothing) {
  Metrics m("1");
  m.set_feeds({FeedId("a"), FeedId("b")});
  constexpr int kPerThread = 20000;
  std::atomic<bool> done{false};
  std::thread scraper([&] {
    while (!done) (void)m.serialize();
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&, t] {
      FeedId feed(t % 2 ? "a" : "b");
      for (int i = 0; i < kPerThread; ++i) {
        m.on_slot(feed, SlotOutcome::kPublished, Micros(i % 2000), Micros(50));
      }
    });
  }
  for (auto& w : writers) w.join();
  done = true;
  scraper.join();
  auto s = parse_samples(m.serialize());
  EXPECT_EQ(s["metronome_slots_total{feed=\"a\",outcome=\"published\"}"], 2 * kPerThread);
  EXPECT_EQ(s["metronome_slot_fire_lateness_seconds_count{feed=\"a\"}"], 2 * kPerThread);
  EXPECT_EQ(s["metronome_publish_latency_seconds_count{feed=\"b\"}"], 2 * kPerThread);
}

TEST(SlotReporter, UpdatesBoardAndMetricsTogether) {
  StatusBoard board;
  board.set_feeds({FeedSummary{.id = FeedId("fast"),
                               .schedule = Schedule::every(Millis(100)),
                               .schedule_text = "every 100ms",
                               .window = Millis(1000),
                               .deadline = std::nullopt,
                               .source = "random_int 0..1000",
                               .decimals = 0}});
  Metrics metrics("1");
  metrics.set_feeds({FeedId("fast")});
  SlotReporter reporter(board, metrics);

  SlotTime slot = slot_from_unix_ms(1'795'000'000'100);
  ValueRecord record;
  record.feed = FeedId("fast");
  record.slot = slot;
  record.published_at = WallTime(slot) + Micros(700);
  SlotRecord s;
  s.slot = slot;
  s.outcome = SlotOutcome::kPublished;
  s.fired_at = WallTime(slot) + Micros(40);
  reporter.on_slot(FeedId("fast"), s, &record, WallTime(slot) + Micros(1500));
  reporter.on_clock_step(WallTime(slot), std::chrono::seconds(2));

  EXPECT_EQ(board.latest(FeedId("fast"))->slot, slot);
  EXPECT_TRUE(board.clock_step()->unresolved);
  auto samples = parse_samples(metrics.serialize());
  EXPECT_EQ(samples["metronome_slots_total{feed=\"fast\",outcome=\"published\"}"], 1);
  EXPECT_NEAR(samples["metronome_slot_fire_lateness_seconds_sum{feed=\"fast\"}"], 40e-6, 1e-12);
  EXPECT_NEAR(samples["metronome_publish_latency_seconds_sum{feed=\"fast\"}"], 1500e-6, 1e-12);
  EXPECT_EQ(samples["metronome_clock_steps_total"], 1);
}

}  // namespace
}  // namespace metronome
