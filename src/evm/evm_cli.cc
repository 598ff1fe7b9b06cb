#include "evm/evm_cli.h"

#include <fmt/format.h>

#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/hex.h"
#include "evm/abi.h"
#include "evm/eth_tx.h"
#include "evm/evm_state.h"
#include "evm/json_rpc.h"
#include "evm/metronome_feed_contract.h"
#include "evm/tx_manager.h"
#include "secret/secret_registry.h"

namespace metronome {
namespace {

struct EvmFeed {
  const FeedConfig* feed;
  const EvmSinkConfig* sink;
};

std::vector<EvmFeed> evm_feeds(const Config& config, const std::string& only) {
  std::vector<EvmFeed> out;
  for (const FeedConfig& f : config.feeds) {
    if (!only.empty() && f.id.str() != only) continue;
    for (const SinkConfig& s : f.sinks) {
      if (const auto* e = std::get_if<EvmSinkConfig>(&s)) out.push_back({&f, e});
    }
  }
  return out;
}

Result<SigningKey> key_of(const SecretRegistry& secrets, const SecretName& name) {
  METRONOME_ASSIGN_OR_RETURN(SecretValue v, secrets.read(name));
  return SigningKey::FromHex(name, v.reveal());
}

uint64_t gwei_to_wei(const Decimal& gwei) {
  Result<Word256> w = scale_to_int256(gwei.to_string(), 9);
  if (!w.ok()) return 0;
  Result<uint64_t> v = u256_to_u64(*w);
  return v.ok() ? *v : UINT64_MAX;
}

// Sends one transaction from `signer` and waits for its receipt; a revert is an error naming
// `what`.
Result<nlohmann::json> send_and_wait(JsonRpcClient& rpc, const Signer& signer, TxManager& fees_from,
                                     uint64_t chain_id, std::optional<Address> to,
                                     const Bytes& data, Clock& clock, Millis wait,
                                     std::string_view what) {
  const std::string from = to_checksum_address(signer.address());
  METRONOME_ASSIGN_OR_RETURN(nlohmann::json count,
                             rpc.call("eth_getTransactionCount", {from, "pending"}));
  METRONOME_ASSIGN_OR_RETURN(uint64_t nonce, parse_quantity_u64(count.get<std::string>()));
  nlohmann::json call = {{"from", from}, {"data", to_hex_0x(data)}};
  if (to) call["to"] = to_checksum_address(*to);
  METRONOME_ASSIGN_OR_RETURN(nlohmann::json gas,
                             rpc.call("eth_estimateGas", nlohmann::json::array({call})));
  METRONOME_ASSIGN_OR_RETURN(uint64_t gas_limit, parse_quantity_u64(gas.get<std::string>()));
  METRONOME_ASSIGN_OR_RETURN(Fees fees, fees_from.current_fees());
  Eip1559Tx tx;
  tx.chain_id = chain_id;
  tx.nonce = nonce;
  tx.max_fee_per_gas = fees.max_fee;
  tx.max_priority_fee_per_gas = fees.priority_fee;
  tx.gas_limit = gas_limit + gas_limit / 4 + 10'000;
  tx.to = to;
  tx.data = data;
  SignedTx signed_tx = sign_transaction(tx, signer);
  METRONOME_ASSIGN_OR_RETURN(
      nlohmann::json sent,
      rpc.call("eth_sendRawTransaction", nlohmann::json::array({to_hex_0x(signed_tx.raw)})));
  const std::string hash = to_hex_0x(signed_tx.hash);
  const WallTime until = clock.now() + wait;
  while (clock.now() < until) {
    METRONOME_ASSIGN_OR_RETURN(nlohmann::json receipt, rpc.call("eth_getTransactionReceipt",
                                                                nlohmann::json::array({hash})));
    if (!receipt.is_null() && receipt.contains("blockNumber") &&
        !receipt["blockNumber"].is_null()) {
      if (receipt.value("status", std::string("0x1")) != "0x1") {
        return Status::InvalidArgument(fmt::format("{}: transaction {} reverted", what, hash));
      }
      return receipt;
    }
    clock.sleep_for(std::chrono::milliseconds(250), {});
  }
  return Status::DeadlineExceeded(
      fmt::format("{}: transaction {} not mined within {}", what, hash, format_duration(wait)));
}

JsonRpcOptions rpc_options(const EvmSinkConfig& e) {
  JsonRpcOptions o;
  o.urls = e.rpc_urls;
  o.chain_id = e.chain_id;
  o.timeout = e.rpc_timeout;
  o.max_head_lag = static_cast<uint64_t>(e.max_head_lag);
  return o;
}

}  // namespace

Result<std::string> evm_deploy(const Config& config, const EvmDeployOptions& options, Clock& clock,
                               std::FILE* out) {
  std::vector<EvmFeed> feeds = evm_feeds(config, options.feed);
  if (feeds.empty()) {
    return Status::NotFound(options.feed.empty()
                                ? std::string("no feed has an evm sink")
                                : fmt::format("feed '{}' has no evm sink", options.feed));
  }
  METRONOME_ASSIGN_OR_RETURN(SecretRegistry secrets,
                             SecretRegistry::from_config(config.secrets, clock));
  // Contracts deployed by this run, by chain, sender and URLs (feeds sharing them share one).
  std::map<std::string, Address> deployed;
  std::string last;
  for (const EvmFeed& ef : feeds) {
    const FeedConfig& f = *ef.feed;
    const EvmSinkConfig& e = *ef.sink;
    if (f.secret.empty()) {
      return Status::InvalidArgument(fmt::format(
          "feed {} has no signing secret; the contract accepts only signed values", f.id.str()));
    }
    METRONOME_ASSIGN_OR_RETURN(SigningKey feed_key, key_of(secrets, f.secret));
    METRONOME_ASSIGN_OR_RETURN(SigningKey sender_key, key_of(secrets, e.sender_secret));
    if (feed_key.address() == sender_key.address()) {
      return Status::InvalidArgument(fmt::format(
          "feed {}: sender_secret '{}' holds the feed's signing key; use a separate key",
          f.id.str(), e.sender_secret.str()));
    }
    const Address signer_address = feed_key.address();
    METRONOME_ASSIGN_OR_RETURN(Signer sender, Signer::Create(std::move(sender_key)));
    JsonRpcClient rpc(rpc_options(e));
    Status health = rpc.health_check();
    if (!health.ok()) return health.With(fmt::format("feed {}", f.id.str()));
    TxManagerOptions to;
    to.chain_id = e.chain_id;
    to.max_fee_wei = gwei_to_wei(e.max_fee_gwei);
    METRONOME_ASSIGN_OR_RETURN(std::unique_ptr<EvmState> state,
                               EvmState::Open(config.service.data_dir / "evm.db"));
    Address contract;
    std::string how;
    const std::string key = fmt::format(
        "{}|{}|{}", e.chain_id, to_checksum_address(sender.address()), fmt::join(e.rpc_urls, ","));
    if (!e.contract.empty()) {
      METRONOME_ASSIGN_OR_RETURN(contract, parse_address(e.contract));
      how = "configured";
    } else if (auto it = deployed.find(key); it != deployed.end()) {
      contract = it->second;
      how = "deployed above";
    } else {
      to.contract = Address{};
      TxManager fees(rpc, sender, *state, to, clock);
      METRONOME_ASSIGN_OR_RETURN(Bytes code, parse_data_hex(kMetronomeFeedBytecode));
      Bytes args = abi::encode_constructor(options.max_future_ms);
      code.insert(code.end(), args.begin(), args.end());
      METRONOME_ASSIGN_OR_RETURN(nlohmann::json receipt,
                                 send_and_wait(rpc, sender, fees, e.chain_id, std::nullopt, code,
                                               clock, options.wait, "deploying MetronomeFeed"));
      METRONOME_ASSIGN_OR_RETURN(contract,
                                 parse_address(receipt.value("contractAddress", std::string())));
      deployed[key] = contract;
      how = fmt::format("deployed in block {}", receipt.value("blockNumber", std::string("?")));
    }
    to.contract = contract;
    TxManager tm(rpc, sender, *state, to, clock);
    const Hash32 feed_id = keccak256(f.id.str());
    METRONOME_RETURN_IF_ERROR(send_and_wait(rpc, sender, tm, e.chain_id, contract,
                                            abi::encode_set_signer(signer_address, true), clock,
                                            options.wait, "setSigner")
                                  .status());
    Result<Bytes> known = tm.call(abi::encode_feed_call(abi::kDecimals, feed_id));
    if (!known.ok()) {
      METRONOME_RETURN_IF_ERROR(
          send_and_wait(
              rpc, sender, tm, e.chain_id, contract,
              abi::encode_configure_feed(feed_id, static_cast<uint8_t>(f.decimals), f.id.str()),
              clock, options.wait, "configureFeed")
              .status());
    }
    last = to_checksum_address(contract);
    std::fprintf(out, "feed %s: contract %s (chain %llu, %s; signer %s authorised)\n",
                 f.id.str().c_str(), last.c_str(), static_cast<unsigned long long>(e.chain_id),
                 how.c_str(), to_checksum_address(signer_address).c_str());
  }
  return last;
}

Status evm_status(const Config& config, const std::string& feed, Clock& clock, std::FILE* out) {
  std::vector<EvmFeed> feeds = evm_feeds(config, feed);
  if (feeds.empty()) {
    return Status::NotFound(feed.empty() ? std::string("no feed has an evm sink")
                                         : fmt::format("feed '{}' has no evm sink", feed));
  }
  METRONOME_ASSIGN_OR_RETURN(SecretRegistry secrets,
                             SecretRegistry::from_config(config.secrets, clock));
  METRONOME_ASSIGN_OR_RETURN(std::unique_ptr<EvmState> state,
                             EvmState::Open(config.service.data_dir / "evm.db"));
  const int64_t now_ms = to_unix_ms(std::chrono::time_point_cast<Millis>(clock.now()));
  for (const EvmFeed& ef : feeds) {
    const EvmSinkConfig& e = *ef.sink;
    nlohmann::json j = {
        {"feed", ef.feed->id.str()}, {"chain_id", e.chain_id}, {"contract", e.contract}};
    METRONOME_ASSIGN_OR_RETURN(SigningKey sender_key, key_of(secrets, e.sender_secret));
    const std::string sender = to_checksum_address(sender_key.address());
    j["sender"] = sender;
    JsonRpcClient rpc(rpc_options(e));
    Status health = rpc.health_check();
    j["rpc_url"] = rpc.active_url();
    if (!health.ok()) j["error"] = health.message();
    if (!e.contract.empty() && health.ok()) {
      METRONOME_ASSIGN_OR_RETURN(Address contract, parse_address(e.contract));
      nlohmann::json call = {{"to", to_checksum_address(contract)},
                             {"data", to_hex_0x(abi::encode_feed_call(
                                          abi::kLatestObservation, keccak256(ef.feed->id.str())))}};
      Result<RpcAnswer> a = rpc.request("eth_call", {call, "latest"});
      if (a.ok() && a->result) {
        Result<Bytes> data = parse_data_hex(a->result->get<std::string>());
        Result<abi::LatestObservation> o = data.ok()
                                               ? abi::decode_latest_observation(*data)
                                               : Result<abi::LatestObservation>(data.status());
        if (o.ok()) {
          j["onchain_round"] = o->round;
          j["onchain_value"] = abi::int256_to_decimal_text(o->value, ef.feed->decimals);
          j["onchain_timestamp_ms"] = o->timestamp_ms;
          j["onchain_age_ms"] = now_ms - static_cast<int64_t>(o->timestamp_ms);
        }
      } else if (a.ok() && a->error) {
        j["onchain"] = a->error->message;  // "no data" before the first submission
      }
      Result<nlohmann::json> n = rpc.call("eth_getTransactionCount", {sender, "pending"});
      if (n.ok()) j["next_nonce"] = *parse_quantity_u64(n->get<std::string>());
      Result<nlohmann::json> b = rpc.call("eth_getBalance", {sender, "latest"});
      if (b.ok()) {
        Result<U256> wei = parse_quantity(b->get<std::string>());
        if (wei.ok()) {
          j["balance_wei"] = u256_decimal(*wei);
          j["balance_eth"] = u256_to_double(*wei) / 1e18;
        }
      }
    }
    METRONOME_ASSIGN_OR_RETURN(std::vector<TxRecord> rows, state->txs(e.chain_id, sender));
    nlohmann::json pending = nlohmann::json::array();
    for (const TxRecord& r : rows) {
      pending.push_back({{"tx_hash", r.tx_hash},
                         {"nonce", r.nonce},
                         {"feed", r.feed},
                         {"round", r.round},
                         {"max_fee_wei", r.max_fee},
                         {"priority_fee_wei", r.priority_fee},
                         {"mined_block", r.mined_block ? nlohmann::json(*r.mined_block) : nullptr},
                         {"age_ms", now_ms - r.first_sent_ms}});
    }
    j["in_flight"] = pending;
    std::fprintf(out, "%s\n", j.dump().c_str());
  }
  return Status::Ok();
}

}  // namespace metronome
