// Metrics: the daemon's Prometheus metrics, and their text exposition for GET /metrics.
//
//   metronome_slots_total{feed,outcome}                 counter
//   metronome_slot_fire_lateness_seconds{feed}          histogram, 10 µs … 1 s (fired_at - slot)
//   metronome_publish_latency_seconds{feed}             histogram, 10 µs … 1 s (slot -> commit)
//   metronome_dlq_depth                                 gauge
//   metronome_spool_depth                               gauge, PostgreSQL only: writes waiting in
//                                                       the outage spool (store/spooling_store.h)
//   metronome_leases_held                               gauge, replicas on PostgreSQL: feeds whose
//                                                       lease this replica holds
//   metronome_clock_skew_seconds                        gauge, replicas: this clock minus the
//                                                       database's, at the last renewal
//   metronome_lease_renew_failures_total                counter, replicas: failed lease renewals
//   metronome_evm_onchain_staleness_seconds{feed}       gauge, evm sinks: now minus the timestamp
//                                                       of the chain's last value for the feed
//                                                       (absent until the chain has one)
//   metronome_evm_pending_tx_age_seconds{feed}          gauge, evm sinks: age of the oldest unmined
//                                                       transaction since its first send; 0: none
//   metronome_evm_sender_balance_eth{feed}              gauge, evm sinks: the sender's balance
//                                                       (absent until read once)
//   metronome_alarm_state{alarm}                        gauge, 0 OK / 1 ALARM
//   metronome_clock_steps_total                         counter
//   metronome_build_info{version}                       gauge, always 1
//
// Counters and gauges are prometheus-cpp core metrics; their updates are lock-free (an atomic
// compare-and-swap). prometheus-cpp's Histogram takes a mutex in Observe() that a scrape also
// takes, so the histograms here are our own (fixed buckets of atomic counters) and are turned
// into prometheus-cpp ClientMetrics at scrape time, then serialised by its TextSerializer.
//
// The slot path never inserts into a map: set_feeds() resolves every per-feed metric up front
// (prometheus-cpp's Family::Add() takes a mutex: start-up only). A feed not given to set_feeds()
// still works, through a slower path under a mutex that only such feeds and scrapes take.
//
// Thread-safety: every method may be called from any thread, except set_feeds(): REQUIRES: it is
// called once, before any other thread uses the object.
#pragma once

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/ids.h"
#include "common/time.h"
#include "store/records.h"

namespace prometheus {
class Counter;
class Gauge;
template <typename T>
class Family;
class Registry;
struct ClientMetric;
}  // namespace prometheus

namespace metronome {

// A histogram with fixed bucket bounds whose observe() is a few atomic increments (no lock).
// A scrape reads the buckets one by one, so it may see an observation in the count and not yet
// in the sum; the next scrape is consistent again.
class AtomicHistogram {
 public:
  explicit AtomicHistogram(std::span<const double> bounds);
  void observe(double value);
  // With `labels`, as prometheus-cpp's Histogram::Collect() would produce it.
  prometheus::ClientMetric collect(
      const std::vector<std::pair<std::string, std::string>>& labels) const;

 private:
  std::vector<double> bounds_;                       // ascending upper bounds
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // per bucket, not cumulative; +Inf last
  std::atomic<double> sum_{0};
};

// One evm sink's gauges (evm/evm_sink.h reads them from the sink's last status).
struct EvmSinkGauges {
  FeedId feed;
  std::optional<Nanos> onchain_staleness;    // absent: the chain has no value for the feed (yet)
  Nanos pending_tx_age{0};                   // 0: no unmined transaction
  std::optional<double> sender_balance_eth;  // absent: not read yet
};

class Metrics {
 public:
  // The bucket upper bounds of both histograms, in seconds: 10 µs … 1 s.
  static constexpr std::array<double, 16> kBuckets = {
      10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3,   2.5e-3,
      5e-3,  10e-3, 25e-3, 50e-3,  100e-3, 250e-3, 500e-3, 1};

  explicit Metrics(std::string_view version);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  void set_feeds(const std::vector<FeedId>& feeds);

  // One slot outcome; fire lateness = fired_at - slot, publish latency = slot -> durable commit
  // (absent when the slot was not fired or not published).
  void on_slot(const FeedId& feed, SlotOutcome outcome, std::optional<Nanos> fire_lateness,
               std::optional<Nanos> publish_latency);
  void set_dlq_depth(int64_t depth);
  // The outage spool's depth; the gauge exists from the first call (daemons on PostgreSQL).
  void set_spool_depth(int64_t depth);
  void set_alarm_state(const std::string& alarm, AlarmStatus status);
  // Replicas (ha/lease_manager.h), after each lease renewal; the metrics exist from the first
  // call. `failed`: the renewal failed (counted).
  void on_lease_renewal(bool failed, size_t leases_held, Nanos clock_skew);
  void on_clock_step();
  // The presignature pool ([service] presign), read every few seconds; the metrics exist from
  // the first call. `taken` and `missed` are the pool's running totals (PresignPool::taken(),
  // missed()): a missed signature found the pool empty and was signed the usual way.
  void set_presign(size_t ready, uint64_t taken, uint64_t missed);
  // The gauges of every live evm sink; the families exist from the first call with a sink. The
  // gauges of a feed missing from `sinks` (its sink removed by a reload) are removed, as is a
  // gauge whose value is absent.
  void set_evm_sinks(const std::vector<EvmSinkGauges>& sinks);

  // The Prometheus text exposition format, version 0.0.4.
  std::string serialize() const;

 private:
  struct FeedMetrics {
    std::array<prometheus::Counter*, 5> slots{};  // by SlotOutcome; kPlanned stays null
    std::unique_ptr<AtomicHistogram> fire_lateness;
    std::unique_ptr<AtomicHistogram> publish_latency;
  };
  std::unique_ptr<FeedMetrics> make_feed(const FeedId& feed);
  FeedMetrics& feed_metrics(const FeedId& feed);

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& slots_family_;
  prometheus::Family<prometheus::Gauge>& alarm_family_;
  prometheus::Gauge& dlq_depth_;
  prometheus::Counter& clock_steps_;

  // Immutable after set_feeds(): read without a lock.
  std::unordered_map<FeedId, std::unique_ptr<FeedMetrics>> feeds_;
  std::vector<FeedId> feed_order_;

  mutable std::mutex late_mu_;  // feeds not given to set_feeds(), and alarm gauges
  std::map<FeedId, std::unique_ptr<FeedMetrics>> late_feeds_;  // guarded by late_mu_
  std::map<std::string, prometheus::Gauge*> alarm_gauges_;     // guarded by late_mu_
  prometheus::Gauge* spool_depth_ = nullptr;                   // guarded by late_mu_
  prometheus::Gauge* leases_held_ = nullptr;                   // guarded by late_mu_
  prometheus::Gauge* clock_skew_ = nullptr;                    // guarded by late_mu_
  prometheus::Counter* renew_failures_ = nullptr;              // guarded by late_mu_
  prometheus::Gauge* presign_ready_ = nullptr;                 // guarded by late_mu_
  prometheus::Counter* presign_taken_ = nullptr;               // guarded by late_mu_
  prometheus::Counter* presign_missed_ = nullptr;              // guarded by late_mu_
  struct EvmGauges {
    prometheus::Gauge* staleness = nullptr;  // null while absent
    prometheus::Gauge* pending_age = nullptr;
    prometheus::Gauge* balance = nullptr;  // null while absent
  };
  prometheus::Family<prometheus::Gauge>* evm_staleness_family_ = nullptr;  // guarded by late_mu_
  prometheus::Family<prometheus::Gauge>* evm_pending_family_ = nullptr;    // guarded by late_mu_
  prometheus::Family<prometheus::Gauge>* evm_balance_family_ = nullptr;    // guarded by late_mu_
  std::map<FeedId, EvmGauges> evm_gauges_;                                 // guarded by late_mu_
};

}  // namespace metronome
