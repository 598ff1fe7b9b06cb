#include "api/metrics.h"

#include <prometheus/client_metric.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace metronome {
namespace {

constexpr SlotOutcome kReportedOutcomes[] = {SlotOutcome::kPublished, SlotOutcome::kFailed,
                                             SlotOutcome::kMissed, SlotOutcome::kSkipped};

double seconds(Nanos d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

AtomicHistogram::AtomicHistogram(std::span<const double> bounds)
    : bounds_(bounds.begin(), bounds.end()),
      counts_(std::make_unique<std::atomic<uint64_t>[]>(bounds.size() + 1)) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void AtomicHistogram::observe(double value) {
  // Prometheus buckets are "less than or equal": the first bound >= value.
  auto index = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) -
                                   bounds_.begin());
  counts_[index].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

prometheus::ClientMetric AtomicHistogram::collect(
    const std::vector<std::pair<std::string, std::string>>& labels) const {
  prometheus::ClientMetric metric;
  for (const auto& [name, value] : labels) metric.label.push_back({name, value});
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i].load(std::memory_order_relaxed);
    prometheus::ClientMetric::Bucket bucket;
    bucket.cumulative_count = cumulative;
    bucket.upper_bound = i < bounds_.size() ? bounds_[i] : std::numeric_limits<double>::infinity();
    metric.histogram.bucket.push_back(bucket);
  }
  metric.histogram.sample_count = cumulative;
  metric.histogram.sample_sum = sum_.load(std::memory_order_relaxed);
  return metric;
}

Metrics::Metrics(std::string_view version)
    : registry_(std::make_shared<prometheus::Registry>()),
      slots_family_(prometheus::BuildCounter()
                        .Name("metronome_slots_total")
                        .Help("Slot outcomes by feed and outcome.")
                        .Register(*registry_)),
      alarm_family_(prometheus::BuildGauge()
                        .Name("metronome_alarm_state")
                        .Help("Alarm state: 0 OK, 1 ALARM.")
                        .Register(*registry_)),
      dlq_depth_(prometheus::BuildGauge()
                     .Name("metronome_dlq_depth")
                     .Help("Messages on the dead-letter queue.")
                     .Register(*registry_)
                     .Add({})),
      clock_steps_(prometheus::BuildCounter()
                       .Name("metronome_clock_steps_total")
                       .Help("Wall-clock steps noticed by the scheduler.")
                       .Register(*registry_)
                       .Add({})) {
  prometheus::BuildGauge()
      .Name("metronome_build_info")
      .Help("Build information; always 1.")
      .Register(*registry_)
      .Add({{"version", std::string(version)}})
      .Set(1);
  for (const char* alarm : {"dlq_not_empty", "missed_slots"}) {
    alarm_gauges_[alarm] = &alarm_family_.Add({{"alarm", alarm}});
  }
}

Metrics::~Metrics() = default;

std::unique_ptr<Metrics::FeedMetrics> Metrics::make_feed(const FeedId& feed) {
  auto m = std::make_unique<FeedMetrics>();
  for (SlotOutcome o : kReportedOutcomes) {
    m->slots[static_cast<size_t>(o)] =
        &slots_family_.Add({{"feed", feed.str()}, {"outcome", std::string(to_string(o))}});
  }
  m->fire_lateness = std::make_unique<AtomicHistogram>(kBuckets);
  m->publish_latency = std::make_unique<AtomicHistogram>(kBuckets);
  return m;
}

void Metrics::set_feeds(const std::vector<FeedId>& feeds) {
  for (const auto& feed : feeds) {
    if (feeds_.contains(feed)) continue;
    feeds_.emplace(feed, make_feed(feed));
    feed_order_.push_back(feed);
  }
}

Metrics::FeedMetrics& Metrics::feed_metrics(const FeedId& feed) {
  if (auto it = feeds_.find(feed); it != feeds_.end()) return *it->second;
  std::lock_guard lock(late_mu_);
  auto& slot = late_feeds_[feed];
  if (!slot) slot = make_feed(feed);
  return *slot;
}

void Metrics::on_slot(const FeedId& feed, SlotOutcome outcome, std::optional<Nanos> fire_lateness,
                      std::optional<Nanos> publish_latency) {
  FeedMetrics& m = feed_metrics(feed);
  if (auto* counter = m.slots[static_cast<size_t>(outcome)]) counter->Increment();
  if (fire_lateness) m.fire_lateness->observe(seconds(std::max(*fire_lateness, Nanos(0))));
  if (publish_latency) m.publish_latency->observe(seconds(std::max(*publish_latency, Nanos(0))));
}

void Metrics::set_dlq_depth(int64_t depth) {
  dlq_depth_.Set(static_cast<double>(depth));
}

void Metrics::set_spool_depth(int64_t depth) {
  std::lock_guard lock(late_mu_);
  if (spool_depth_ == nullptr) {
    spool_depth_ = &prometheus::BuildGauge()
                        .Name("metronome_spool_depth")
                        .Help("Writes waiting in the outage spool for PostgreSQL to answer again.")
                        .Register(*registry_)
                        .Add({});
  }
  spool_depth_->Set(static_cast<double>(depth));
}

void Metrics::set_presign(size_t ready, uint64_t taken, uint64_t missed) {
  std::lock_guard lock(late_mu_);
  if (presign_ready_ == nullptr) {
    presign_ready_ = &prometheus::BuildGauge()
                          .Name("metronome_presign_ready")
                          .Help("Presignatures made ahead and not used yet ([service] presign).")
                          .Register(*registry_)
                          .Add({});
    presign_taken_ = &prometheus::BuildCounter()
                          .Name("metronome_presign_taken_total")
                          .Help("Signatures made with a presignature.")
                          .Register(*registry_)
                          .Add({});
    presign_missed_ = &prometheus::BuildCounter()
                           .Name("metronome_presign_missed_total")
                           .Help(
                               "Signatures that found no presignature ready and were signed "
                               "the usual way (RFC 6979, ~20 us more each).")
                           .Register(*registry_)
                           .Add({});
  }
  presign_ready_->Set(static_cast<double>(ready));
  // Counters only go up: add what is new since the last reading.
  auto advance = [](prometheus::Counter& c, uint64_t total) {
    const double now = static_cast<double>(total);
    if (now > c.Value()) c.Increment(now - c.Value());
  };
  advance(*presign_taken_, taken);
  advance(*presign_missed_, missed);
}

void Metrics::on_lease_renewal(bool failed, size_t leases_held, Nanos clock_skew) {
  std::lock_guard lock(late_mu_);
  if (leases_held_ == nullptr) {
    leases_held_ = &prometheus::BuildGauge()
                        .Name("metronome_leases_held")
                        .Help("Feeds whose lease this replica holds.")
                        .Register(*registry_)
                        .Add({});
    clock_skew_ = &prometheus::BuildGauge()
                       .Name("metronome_clock_skew_seconds")
                       .Help("This replica's clock minus the database's, at the last renewal.")
                       .Register(*registry_)
                       .Add({});
    renew_failures_ = &prometheus::BuildCounter()
                           .Name("metronome_lease_renew_failures_total")
                           .Help("Lease renewals that failed.")
                           .Register(*registry_)
                           .Add({});
  }
  if (failed) renew_failures_->Increment();
  leases_held_->Set(static_cast<double>(leases_held));
  clock_skew_->Set(std::chrono::duration<double>(clock_skew).count());
}

void Metrics::set_alarm_state(const std::string& alarm, AlarmStatus status) {
  prometheus::Gauge* gauge = nullptr;
  {
    std::lock_guard lock(late_mu_);
    auto& slot = alarm_gauges_[alarm];
    if (!slot) slot = &alarm_family_.Add({{"alarm", alarm}});
    gauge = slot;
  }
  gauge->Set(status == AlarmStatus::kAlarm ? 1 : 0);
}

void Metrics::set_evm_sinks(const std::vector<EvmSinkGauges>& sinks) {
  std::lock_guard lock(late_mu_);
  if (evm_staleness_family_ == nullptr) {
    if (sinks.empty()) return;
    evm_staleness_family_ =
        &prometheus::BuildGauge()
             .Name("metronome_evm_onchain_staleness_seconds")
             .Help("Evm sinks: now minus the timestamp of the chain's last value for the feed.")
             .Register(*registry_);
    evm_pending_family_ = &prometheus::BuildGauge()
                               .Name("metronome_evm_pending_tx_age_seconds")
                               .Help("Evm sinks: age of the oldest unmined transaction (0: none).")
                               .Register(*registry_);
    evm_balance_family_ = &prometheus::BuildGauge()
                               .Name("metronome_evm_sender_balance_eth")
                               .Help("Evm sinks: the balance of the sink's sender, in ether.")
                               .Register(*registry_);
  }
  // Sets, adds or removes one optional gauge of `feed`.
  auto set = [](prometheus::Family<prometheus::Gauge>& family, prometheus::Gauge*& gauge,
                const FeedId& feed, std::optional<double> value) {
    if (!value) {
      if (gauge != nullptr) family.Remove(gauge);
      gauge = nullptr;
      return;
    }
    if (gauge == nullptr) gauge = &family.Add({{"feed", feed.str()}});
    gauge->Set(*value);
  };
  std::map<FeedId, EvmGauges> next;
  for (const EvmSinkGauges& s : sinks) {
    EvmGauges g{};
    if (auto it = evm_gauges_.find(s.feed); it != evm_gauges_.end()) {
      g = it->second;
      evm_gauges_.erase(it);
    }
    std::optional<double> staleness;
    if (s.onchain_staleness) staleness = seconds(*s.onchain_staleness);
    set(*evm_staleness_family_, g.staleness, s.feed, staleness);
    set(*evm_pending_family_, g.pending_age, s.feed, seconds(std::max(s.pending_tx_age, Nanos(0))));
    set(*evm_balance_family_, g.balance, s.feed, s.sender_balance_eth);
    next[s.feed] = g;
  }
  for (auto& [feed, g] : evm_gauges_) {  // sinks gone
    set(*evm_staleness_family_, g.staleness, feed, std::nullopt);
    set(*evm_pending_family_, g.pending_age, feed, std::nullopt);
    set(*evm_balance_family_, g.balance, feed, std::nullopt);
  }
  evm_gauges_ = std::move(next);
}

void Metrics::on_clock_step() {
  clock_steps_.Increment();
}

std::string Metrics::serialize() const {
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  prometheus::MetricFamily lateness{.name = "metronome_slot_fire_lateness_seconds",
                                    .help = "How long after its slot time each slot was fired.",
                                    .type = prometheus::MetricType::Histogram,
                                    .metric = {}};
  prometheus::MetricFamily latency{.name = "metronome_publish_latency_seconds",
                                   .help = "From slot time to the durable commit of its value.",
                                   .type = prometheus::MetricType::Histogram,
                                   .metric = {}};
  auto add = [&](const FeedId& id, const FeedMetrics& m) {
    lateness.metric.push_back(m.fire_lateness->collect({{"feed", id.str()}}));
    latency.metric.push_back(m.publish_latency->collect({{"feed", id.str()}}));
  };
  for (const auto& id : feed_order_) add(id, *feeds_.at(id));
  {
    std::lock_guard lock(late_mu_);
    for (const auto& [id, m] : late_feeds_) add(id, *m);
  }
  families.push_back(std::move(lateness));
  families.push_back(std::move(latency));
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace metronome
