#include "evm/evm_sink.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <set>

#include "common/hex.h"
#include "evm/abi.h"
#include "sign/eip712.h"

namespace metronome {
namespace {

constexpr std::chrono::milliseconds kFollowPeriod{500};
constexpr int kStatusEveryTicks = 4;

uint64_t gwei_to_wei(const Decimal& gwei) {
  Result<Word256> w = scale_to_int256(gwei.to_string(), 9);
  if (!w.ok()) return 0;
  Result<uint64_t> v = u256_to_u64(*w);
  return v.ok() ? *v : UINT64_MAX;
}

std::mutex live_mu;
std::set<EvmSink*> live_sinks;  // guarded by live_mu: started and not destroyed

}  // namespace

EvmSinkReading evm_sink_reading(const FeedId& feed, const EvmFeedStatus& status, int64_t now_ms) {
  EvmSinkReading r{feed, std::nullopt, Millis(0), std::nullopt};
  // A chain timestamp ahead of this clock (within the contract's maxFutureMs) is fresh: 0.
  if (status.has_value) {
    r.onchain_staleness = Millis(std::max<int64_t>(0, now_ms - status.chain_timestamp_ms));
  }
  if (status.pending && status.pending->first_sent_ms > 0) {
    r.pending_tx_age = Millis(std::max<int64_t>(0, now_ms - status.pending->first_sent_ms));
  }
  if (status.balance_known) r.sender_balance_eth = status.balance_eth;
  return r;
}

std::vector<EvmSinkReading> evm_sink_readings(Clock& clock) {
  const int64_t now_ms = to_unix_ms(std::chrono::time_point_cast<Millis>(clock.now()));
  std::vector<EvmSinkReading> out;
  std::lock_guard lock(live_mu);
  for (EvmSink* sink : live_sinks) {
    out.push_back(evm_sink_reading(sink->feed(), sink->cached_status(), now_ms));
  }
  return out;
}

std::vector<AlarmDecision> evm_alarm_decisions(Clock& clock) {
  const int64_t now_ms = to_unix_ms(std::chrono::time_point_cast<Millis>(clock.now()));
  std::vector<std::string> stale, low;
  {
    std::lock_guard lock(live_mu);
    for (EvmSink* sink : live_sinks) {
      const EvmFeedStatus s = sink->cached_status();
      const EvmSinkConfig& c = sink->config();
      if (s.has_value) {
        const Millis age(now_ms - s.chain_timestamp_ms);
        if (age > c.heartbeat + c.stale_grace) {
          stale.push_back(fmt::format("{} ({} old, heartbeat {} + grace {})", sink->feed().str(),
                                      format_duration(age), format_duration(c.heartbeat),
                                      format_duration(c.stale_grace)));
        }
      }
      if (s.balance_known && !c.low_balance_eth.is_zero()) {
        Result<Decimal> threshold = Decimal::parse(c.low_balance_eth.to_string());
        if (threshold.ok() && s.balance_eth < std::stod(threshold->to_string())) {
          low.push_back(fmt::format("{} sender {} has {} ETH (threshold {})", sink->feed().str(),
                                    s.sender, s.balance_eth, c.low_balance_eth.to_string()));
        }
      }
    }
  }
  std::vector<AlarmDecision> out;
  out.push_back({"onchain_stale", stale.empty() ? AlarmStatus::kOk : AlarmStatus::kAlarm,
                 stale.empty() ? std::string("every evm feed's chain value is fresh")
                               : fmt::format("on-chain value stale: {}", fmt::join(stale, "; "))});
  out.push_back({"low_balance", low.empty() ? AlarmStatus::kOk : AlarmStatus::kAlarm,
                 low.empty() ? std::string("every evm sender's balance is above its threshold")
                             : fmt::format("low balance: {}", fmt::join(low, "; "))});
  return out;
}

EvmPolicyDecision evm_policy(const EvmSinkConfig& config, int64_t slot_ms, const Decimal& value,
                             bool chain_has_value, int64_t chain_timestamp_ms,
                             const Decimal& chain_value) {
  if (!chain_has_value) return {"submit", "first"};
  if (slot_ms <= chain_timestamp_ms) {
    return {"superseded", fmt::format("the chain's value (slot {}) is not older",
                                      format_iso_ms(slot_from_unix_ms(chain_timestamp_ms)))};
  }
  // |v - c| * 100 >= deviation_pct * |c|, exactly (no division, no floating point).
  const Decimal moved = (value - chain_value).abs() * Decimal::from_int(100);
  // (A chain value of zero: any change is a deviation, no change is none.)
  const bool deviates =
      chain_value.is_zero() ? !moved.is_zero() : moved >= config.deviation_pct * chain_value.abs();
  if (deviates) return {"submit", "deviation"};
  if (Millis(slot_ms - chain_timestamp_ms) >= config.heartbeat) return {"submit", "heartbeat"};
  return {"skip", "within deviation and heartbeat"};
}

EvmSink::EvmSink(const FeedConfig& feed, EvmSinkConfig config,
                 std::map<SecretName, SecretConfig> secrets, std::filesystem::path data_dir,
                 Clock& clock)
    : feed_(feed.id),
      feed_secret_(feed.secret),
      decimals_(feed.decimals),
      config_(std::move(config)),
      secrets_(std::move(secrets)),
      data_dir_(std::move(data_dir)),
      clock_(clock) {}

EvmSink::~EvmSink() {
  {
    std::lock_guard lock(live_mu);
    live_sinks.erase(this);
  }
  follower_.request_stop();
  if (follower_.joinable()) follower_.join();
}

std::string EvmSink::describe() const {
  return fmt::format("evm chain {} contract {}", config_.chain_id,
                     config_.contract.empty() ? "(not deployed)" : config_.contract);
}

Status EvmSink::ensure_started() {
  if (started_.load()) return Status::Ok();
  std::lock_guard lock(start_mu_);
  if (started_.load()) return Status::Ok();
  if (config_.contract.empty()) {
    return Status::InvalidArgument(fmt::format(
        "feed {}: the evm sink has no contract; run `metronome evm deploy --config FILE --feed "
        "{}` and set its address as the sink's `contract`",
        feed_.str(), feed_.str()));
  }
  if (!tx_) {
    Result<Address> contract = parse_address(config_.contract);
    if (!contract.ok()) return contract.status().With("evm sink contract");
    std::map<SecretName, SecretConfig> needed;
    needed.emplace(config_.sender_secret, secrets_.at(config_.sender_secret));
    if (!feed_secret_.empty() && secrets_.contains(feed_secret_)) {
      needed.emplace(feed_secret_, secrets_.at(feed_secret_));
    }
    METRONOME_ASSIGN_OR_RETURN(SecretRegistry registry,
                               SecretRegistry::from_config(needed, clock_));
    METRONOME_ASSIGN_OR_RETURN(SecretValue sender_text, registry.read(config_.sender_secret));
    METRONOME_ASSIGN_OR_RETURN(SigningKey key,
                               SigningKey::FromHex(config_.sender_secret, sender_text.reveal()));
    if (!feed_secret_.empty()) {
      Result<SecretValue> feed_text = registry.read(feed_secret_);
      if (feed_text.ok()) {
        Result<SigningKey> feed_key = SigningKey::FromHex(feed_secret_, feed_text->reveal());
        if (feed_key.ok() && feed_key->address() == key.address()) {
          return Status::InvalidArgument(fmt::format(
              "feed {}: the evm sink's sender_secret '{}' holds the same key as the feed's "
              "signing secret '{}' ({}); use a separate key to pay for transactions",
              feed_.str(), config_.sender_secret.str(), feed_secret_.str(),
              to_checksum_address(key.address())));
        }
      }
    }
    METRONOME_ASSIGN_OR_RETURN(Signer signer, Signer::Create(std::move(key)));
    METRONOME_ASSIGN_OR_RETURN(state_, EvmState::Open(data_dir_ / "evm.db"));
    sender_ = std::make_unique<Signer>(std::move(signer));
    JsonRpcOptions ro;
    ro.urls = config_.rpc_urls;
    ro.chain_id = config_.chain_id;
    ro.timeout = config_.rpc_timeout;
    ro.max_head_lag = static_cast<uint64_t>(config_.max_head_lag);
    rpc_ = std::make_unique<JsonRpcClient>(ro);
    TxManagerOptions to;
    to.chain_id = config_.chain_id;
    to.contract = *contract;
    to.max_fee_wei = gwei_to_wei(config_.max_fee_gwei);
    to.bump_pct = config_.bump_pct;
    to.bump_after_blocks = static_cast<uint64_t>(config_.bump_after_blocks);
    to.confirmations = static_cast<uint64_t>(config_.confirmations);
    tx_ = std::make_unique<TxManager>(*rpc_, *sender_, *state_, to, clock_);
  }
  METRONOME_RETURN_IF_ERROR(tx_->start());
  // The feed must be configured in the contract (decimals readable).
  Result<Bytes> dec = tx_->call(abi::encode_feed_call(abi::kDecimals, keccak256(feed_.str())));
  if (!dec.ok()) {
    if (dec.status().code() == Status::Code::kInvalidArgument) {
      return Status::InvalidArgument(
          fmt::format("feed {}: contract {} does not know the feed ({}); run `metronome evm "
                      "deploy` or configureFeed",
                      feed_.str(), config_.contract, dec.status().message()));
    }
    return dec.status();
  }
  started_ = true;
  {
    std::lock_guard lock(live_mu);
    live_sinks.insert(this);
  }
  follower_ = std::jthread([this](std::stop_token stop) { follow(stop); });
  spdlog::info("feed {}: evm sink ready ({}, sender {}, via {})", feed_.str(), describe(),
               tx_->sender_text(), rpc_->active_url());
  return Status::Ok();
}

Status EvmSink::check() {
  return ensure_started();
}

void EvmSink::follow(std::stop_token stop) {
  int n = 0;
  while (!stop.stop_requested()) {
    Status st = tx_->tick();
    if (!st.ok()) spdlog::debug("feed {}: evm follow: {}", feed_.str(), st.message());
    if (n++ % kStatusEveryTicks == 0) (void)status();
    if (n % 20 == 0) (void)rpc_->health_check();
    if (!clock_.sleep_for(kFollowPeriod, stop)) break;
  }
}

EvmFeedStatus EvmSink::status() {
  EvmFeedStatus s;
  if (!started_.load()) {
    s.error = "not started";
    return s;
  }
  s.sender = tx_->sender_text();
  s.rpc_url = rpc_->active_url();
  s.next_nonce = tx_->next_nonce();
  s.pending = tx_->unmined();
  Result<Bytes> obs =
      tx_->call(abi::encode_feed_call(abi::kLatestObservation, keccak256(feed_.str())));
  if (obs.ok()) {
    Result<abi::LatestObservation> o = abi::decode_latest_observation(*obs);
    if (o.ok()) {
      s.known = true;
      s.has_value = o->timestamp_ms != 0;
      s.chain_round = o->round;
      s.chain_timestamp_ms = static_cast<int64_t>(o->timestamp_ms);
      s.chain_value = abi::int256_to_decimal_text(o->value, decimals_);
    } else {
      s.error = o.status().message();
    }
  } else if (obs.status().message().find("no data") != std::string::npos) {
    s.known = true;
  } else {
    s.error = obs.status().message();
  }
  Result<U256> bal = tx_->balance();
  if (bal.ok()) {
    s.balance_known = true;
    s.balance_eth = u256_to_double(*bal) / 1e18;
  }
  std::lock_guard lock(status_mu_);
  // The chain could not be read: its last value read stays, and ages (see EvmFeedStatus).
  if (!s.known && status_.has_value) {
    s.has_value = true;
    s.chain_round = status_.chain_round;
    s.chain_value = status_.chain_value;
    s.chain_timestamp_ms = status_.chain_timestamp_ms;
  }
  if (!bal.ok() && status_.balance_known) {
    s.balance_known = true;
    s.balance_eth = status_.balance_eth;
  }
  status_ = s;
  return s;
}

EvmFeedStatus EvmSink::cached_status() {
  std::lock_guard lock(status_mu_);
  return status_;
}

Delivery EvmSink::deliver(const ValueRecord& record, WallTime, std::stop_token) {
  return deliver_impl(record, false);
}

Delivery EvmSink::redeliver(const ValueRecord& record, WallTime) {
  return deliver_impl(record, true);
}

Delivery EvmSink::deliver_impl(const ValueRecord& record, bool redrive) {
  Delivery d;
  d.attempts = 1;
  d.status = ensure_started();
  if (!d.status.ok()) return d;
  if (record.signature.empty()) {
    d.status = Status::InvalidArgument(
        "the record is not signed; the evm sink needs a feed with a signing secret");
    return d;
  }
  if (!record.proof.empty()) {
    // MetronomeFeed checks a signature over the observation itself (ADR 0006); a batch
    // signature signs a Merkle root (ADR 0018), which the daemon never uses for such a feed.
    d.status = Status::InvalidArgument(
        "the record has a batch signature (a Merkle proof); MetronomeFeed accepts only records "
        "signed alone, so a feed with an evm sink is never batch-signed");
    return d;
  }
  Result<Observation> obs = observation_from_record(record);
  if (!obs.ok()) {
    d.status = obs.status();
    return d;
  }
  Result<Bytes> sig = parse_data_hex(record.signature);
  if (!sig.ok()) {
    d.status = sig.status().With("record signature");
    return d;
  }
  Result<Decimal> value = Decimal::parse(record.value);
  if (!value.ok()) {
    d.status = value.status();
    return d;
  }
  // The chain's value now.
  Result<Bytes> chain = tx_->call(abi::encode_feed_call(abi::kLatestObservation, obs->feed_id));
  bool chain_has_value = false;
  abi::LatestObservation latest;
  if (chain.ok()) {
    Result<abi::LatestObservation> o = abi::decode_latest_observation(*chain);
    if (!o.ok()) {
      d.status = o.status();
      return d;
    }
    latest = *o;
    chain_has_value = latest.timestamp_ms != 0;
  } else if (chain.status().message().find("no data") == std::string::npos) {
    d.status = chain.status().With("reading latestObservation");
    return d;
  }
  const std::string chain_text =
      chain_has_value ? abi::int256_to_decimal_text(latest.value, decimals_) : "";
  Decimal chain_value;
  if (chain_has_value) {
    Result<Decimal> cv = Decimal::parse(chain_text);
    if (cv.ok()) chain_value = *cv;
  }
  const int64_t slot_ms = to_unix_ms(record.slot);
  EvmPolicyDecision decision = evm_policy(config_, slot_ms, *value, chain_has_value,
                                          static_cast<int64_t>(latest.timestamp_ms), chain_value);
  if (redrive && decision.decision == "skip") decision = {"submit", "redrive (still newer)"};
  Decision row;
  row.feed = feed_.str();
  row.round = record.round;
  row.slot_ms = slot_ms;
  row.value = record.value;
  row.chain_round = static_cast<int64_t>(latest.round);
  row.chain_timestamp_ms = static_cast<int64_t>(latest.timestamp_ms);
  row.chain_value = chain_text;
  row.decision = decision.decision;
  row.reason = decision.reason;
  row.decided_ms = to_unix_ms(std::chrono::time_point_cast<Millis>(clock_.now()));
  if (decision.decision == "submit") {
    abi::Submission s;
    s.feed_id = obs->feed_id;
    s.round = obs->round;
    s.timestamp_ms = obs->timestamp_ms;
    s.value = obs->value;
    s.signature = *sig;
    Result<SentTx> sent =
        tx_->send(abi::encode_submit(s), {feed_.str(), record.round, slot_ms, record.value});
    if (!sent.ok()) {
      if (sent.status().message().find("not newer") != std::string::npos) {
        row.decision = "superseded";
        row.reason = "the contract has a newer value (not newer)";
      } else {
        row.decision = "failed";
        row.reason = sent.status().message();
        d.status = sent.status();
      }
    } else {
      row.tx_hash = sent->tx_hash;
      if (sent->replaced) row.reason += ", replaces the unmined transaction";
      spdlog::debug("feed {} round {}: evm submit ({}) tx {} nonce {}", feed_.str(), record.round,
                    row.reason, sent->tx_hash, sent->nonce);
    }
  }
  if (row.decision == "superseded" && redrive) {
    spdlog::info("feed {} slot {}: DLQ message closed as superseded: {} (chain round {})",
                 feed_.str(), format_iso_ms(record.slot), row.reason, latest.round);
  }
  Status st = state_->add_decision(row);
  if (!st.ok()) spdlog::warn("feed {}: {}", feed_.str(), st.message());
  return d;
}

}  // namespace metronome
