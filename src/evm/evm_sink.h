// EvmSink: publishes a feed's signed records to MetronomeFeed on an EVM chain (docs/evm.md).
//
// Every slot is still signed and stored; this sink decides per record, against the chain's
// latestObservation: submit when the chain has no value ("first"), when |value - chain value| >=
// deviation_pct % of |chain value| ("deviation"), or when the chain's value is older than
// `heartbeat` at the record's slot ("heartbeat"); otherwise "skip". A record not newer than the
// chain's value is "superseded" (nothing to send). Each decision is a row in evm.db
// (EvmState::decisions). Submissions go through the TxManager: while a transaction is unmined, a
// newer value replaces it (same nonce, higher fees).
//
// A DLQ redrive (redeliver) submits the record if it is still newer than the chain's value,
// whatever the deviation; otherwise the message is closed as superseded (logged with the chain's
// round and time).
//
// A thread follows the transactions (TxManager::tick) every 500 ms and refreshes status()
// (chain value and age, pending transaction, balance) every few seconds.
//
// Thread-safety: all methods may be called concurrently.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "clock/clock.h"
#include "config/config.h"
#include "dlq/alarms.h"
#include "evm/evm_state.h"
#include "evm/json_rpc.h"
#include "evm/tx_manager.h"
#include "secret/secret_registry.h"
#include "sign/signer.h"
#include "sink/sink.h"

namespace metronome {

// A sink's view of its feed on the chain. When a refresh cannot read the chain (RPC down), the
// last value read stays (has_value, chain_*) with known = false and `error` set, so that its age
// keeps growing (the onchain_stale alarm and the staleness gauge); likewise the last balance.
struct EvmFeedStatus {
  bool known = false;  // the chain answered this refresh
  bool has_value = false;
  uint64_t chain_round = 0;
  std::string chain_value;
  int64_t chain_timestamp_ms = 0;
  std::optional<TxRecord> pending;  // unmined transaction
  uint64_t next_nonce = 0;
  bool balance_known = false;  // balance_eth was read (this refresh or an earlier one)
  double balance_eth = 0;
  std::string sender;
  std::string rpc_url;
  std::string error;
};

// What the policy decides for one record against the chain's value.
struct EvmPolicyDecision {
  std::string decision;  // submit | skip | superseded
  std::string reason;    // first | deviation | heartbeat | within deviation and heartbeat | ...
};
EvmPolicyDecision evm_policy(const EvmSinkConfig& config, int64_t slot_ms, const Decimal& value,
                             bool chain_has_value, int64_t chain_timestamp_ms,
                             const Decimal& chain_value);

// What the metrics show of one evm sink (api/metrics.h EvmSinkGauges), from its status at
// `now_ms` (unix ms).
struct EvmSinkReading {
  FeedId feed;
  std::optional<Millis> onchain_staleness;   // absent: the chain has no value for the feed (yet)
  Millis pending_tx_age{0};                  // since the first send of its nonce; 0: none pending
  std::optional<double> sender_balance_eth;  // absent: never read
};
EvmSinkReading evm_sink_reading(const FeedId& feed, const EvmFeedStatus& status, int64_t now_ms);
// The readings of every live evm sink of this process, from their last status (no I/O).
std::vector<EvmSinkReading> evm_sink_readings(Clock& clock);

// The alarms of every live evm sink of this process, from their last status (refreshed every
// 2 s): `onchain_stale` (a feed's chain value older than heartbeat + stale_grace) and
// `low_balance` (a sender's balance below low_balance_eth), one decision each, naming the feeds.
// For AlarmManager::add_check.
std::vector<AlarmDecision> evm_alarm_decisions(Clock& clock);

class EvmSink final : public Sink {
 public:
  EvmSink(const FeedConfig& feed, EvmSinkConfig config, std::map<SecretName, SecretConfig> secrets,
          std::filesystem::path data_dir, Clock& clock);
  ~EvmSink() override;

  std::string_view kind() const override { return "evm"; }
  std::string describe() const override;
  Status check() override;
  Delivery deliver(const ValueRecord& record, WallTime deadline, std::stop_token stop) override;
  Delivery redeliver(const ValueRecord& record, WallTime deadline) override;

  EvmFeedStatus status();
  // The status refreshed by the follower thread last (no I/O).
  EvmFeedStatus cached_status();
  const FeedId& feed() const { return feed_; }
  const EvmSinkConfig& config() const { return config_; }

 private:
  // Opens the state, reads the keys, starts the TxManager and the follower thread (once).
  Status ensure_started();
  Delivery deliver_impl(const ValueRecord& record, bool redrive);
  void follow(std::stop_token stop);

  const FeedId feed_;
  const SecretName feed_secret_;
  const int decimals_;
  const EvmSinkConfig config_;
  const std::map<SecretName, SecretConfig> secrets_;
  const std::filesystem::path data_dir_;
  Clock& clock_;

  std::mutex start_mu_;
  std::unique_ptr<EvmState> state_;     // set once under start_mu_
  std::unique_ptr<Signer> sender_;      // "
  std::unique_ptr<JsonRpcClient> rpc_;  // "
  std::unique_ptr<TxManager> tx_;       // "
  std::atomic<bool> started_{false};
  std::mutex status_mu_;
  EvmFeedStatus status_;  // guarded by status_mu_
  std::jthread follower_;
};

}  // namespace metronome
