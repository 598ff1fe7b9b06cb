#include "evm/tx_manager.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>

#include "common/hex.h"

namespace metronome {
namespace {

constexpr uint64_t kGwei = 1'000'000'000;

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

uint64_t raise(uint64_t v, int pct) {
  // ceil(v * (100 + pct) / 100) without overflow for realistic fees.
  const unsigned __int128 x = static_cast<unsigned __int128>(v) * static_cast<unsigned>(100 + pct);
  return static_cast<uint64_t>((x + 99) / 100);
}

std::vector<std::string> split_hashes(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < s.size()) {
    size_t end = s.find(',', start);
    if (end == std::string::npos) end = s.size();
    if (end > start) out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// geth: "nonce too low"; ganache: "the tx doesn't have the correct nonce. account has nonce of:
// 4 tx has nonce of: 3" (sent only for a nonce below the account's: ours are never ahead).
bool is_nonce_too_low(const std::string& lower_message) {
  return lower_message.find("nonce too low") != std::string::npos ||
         lower_message.find("correct nonce") != std::string::npos ||
         // ganache, replacing a transaction in the block being mined: it is mined meanwhile.
         lower_message.find("mining has already started") != std::string::npos;
}

}  // namespace

bool is_already_known(std::string_view message) {
  const std::string m = lower(message);
  return m.find("already known") != std::string::npos ||
         m.find("known transaction") != std::string::npos ||
         m.find("already imported") != std::string::npos ||
         m.find("already exists") != std::string::npos;
}

TxManager::TxManager(JsonRpcClient& rpc, const Signer& sender, EvmState& state,
                     TxManagerOptions options, Clock& clock)
    : rpc_(rpc), sender_(sender), state_(state), options_(options), clock_(clock) {}

void TxManager::set_max_fee_wei(uint64_t wei) {
  std::lock_guard lock(mu_);
  options_.max_fee_wei = wei;
}

Result<uint64_t> TxManager::transaction_count(const char* block) {
  METRONOME_ASSIGN_OR_RETURN(nlohmann::json r,
                             rpc_.call("eth_getTransactionCount", {sender_text(), block}));
  if (!r.is_string()) return Status::Unavailable("eth_getTransactionCount: not a quantity");
  return parse_quantity_u64(r.get<std::string>());
}

Result<uint64_t> TxManager::head() {
  METRONOME_ASSIGN_OR_RETURN(nlohmann::json r,
                             rpc_.call("eth_blockNumber", nlohmann::json::array()));
  if (!r.is_string()) return Status::Unavailable("eth_blockNumber: not a quantity");
  return parse_quantity_u64(r.get<std::string>());
}

Result<U256> TxManager::balance() {
  METRONOME_ASSIGN_OR_RETURN(nlohmann::json r,
                             rpc_.call("eth_getBalance", {sender_text(), "latest"}));
  if (!r.is_string()) return Status::Unavailable("eth_getBalance: not a quantity");
  return parse_quantity(r.get<std::string>());
}

Result<Bytes> TxManager::call(const Bytes& calldata) {
  nlohmann::json tx = {{"to", to_checksum_address(options_.contract)},
                       {"data", to_hex_0x(calldata)}};
  METRONOME_ASSIGN_OR_RETURN(RpcAnswer a, rpc_.request("eth_call", {tx, "latest"}));
  if (a.error) {
    Result<Bytes> data = parse_data_hex(a.error->data);
    std::string reason = data.ok() ? abi::revert_reason(*data) : "";
    return Status::InvalidArgument(
        fmt::format("eth_call reverted: {}", reason.empty() ? a.error->message : reason));
  }
  if (!a.result->is_string()) return Status::Unavailable("eth_call: result is not hex data");
  return parse_data_hex(a.result->get<std::string>());
}

Result<uint64_t> TxManager::estimate_gas(const Bytes& calldata) {
  nlohmann::json tx = {{"from", sender_text()},
                       {"to", to_checksum_address(options_.contract)},
                       {"data", to_hex_0x(calldata)}};
  METRONOME_ASSIGN_OR_RETURN(RpcAnswer a,
                             rpc_.request("eth_estimateGas", nlohmann::json::array({tx})));
  if (a.error) {
    Result<Bytes> data = parse_data_hex(a.error->data);
    std::string reason = data.ok() ? abi::revert_reason(*data) : "";
    if (reason.empty()) {
      // ganache: "VM Exception while processing transaction: revert not newer"
      const std::string& m = a.error->message;
      size_t at = m.find("revert ");
      reason = at != std::string::npos ? m.substr(at + 7) : m;
    }
    return Status::InvalidArgument(fmt::format("reverted: {}", reason));
  }
  if (!a.result->is_string()) return Status::Unavailable("eth_estimateGas: not a quantity");
  return parse_quantity_u64(a.result->get<std::string>());
}

Result<Fees> TxManager::current_fees() {
  uint64_t cap;
  {
    // options_.max_fee_wei may change (tests, reload); read it under the lock's protection of
    // writers only when not already held by this thread: callers hold mu_ (see send/tick).
    cap = options_.max_fee_wei;
  }
  METRONOME_ASSIGN_OR_RETURN(nlohmann::json r,
                             rpc_.call("eth_feeHistory", {"0x5", "latest", {50}}));
  uint64_t base = 0;
  if (r.contains("baseFeePerGas") && r["baseFeePerGas"].is_array() && !r["baseFeePerGas"].empty()) {
    METRONOME_ASSIGN_OR_RETURN(base,
                               parse_quantity_u64(r["baseFeePerGas"].back().get<std::string>()));
  }
  std::vector<uint64_t> rewards;
  if (r.contains("reward") && r["reward"].is_array()) {
    for (const auto& row : r["reward"]) {
      if (row.is_array() && !row.empty() && row[0].is_string()) {
        Result<uint64_t> v = parse_quantity_u64(row[0].get<std::string>());
        if (v.ok()) rewards.push_back(*v);
      }
    }
  }
  uint64_t priority = kGwei;
  if (!rewards.empty()) {
    std::sort(rewards.begin(), rewards.end());
    priority = std::max(priority, rewards[rewards.size() / 2]);
  }
  Fees f;
  f.max_fee = std::min(cap, 2 * base + priority);
  f.priority_fee = std::min(priority, f.max_fee);
  return f;
}

Fees TxManager::bumped(const TxRecord& rec, const Fees& fresh) const {
  Fees f;
  f.max_fee = std::min(options_.max_fee_wei,
                       std::max(fresh.max_fee, raise(rec.max_fee, options_.bump_pct)));
  f.priority_fee =
      std::min(f.max_fee, std::max(fresh.priority_fee, raise(rec.priority_fee, options_.bump_pct)));
  return f;
}

Status TxManager::start() {
  std::lock_guard lock(mu_);
  Status health = rpc_.health_check();
  if (!health.ok()) return health;
  METRONOME_ASSIGN_OR_RETURN(uint64_t latest, transaction_count("latest"));
  METRONOME_ASSIGN_OR_RETURN(uint64_t pending, transaction_count("pending"));
  METRONOME_ASSIGN_OR_RETURN(std::vector<TxRecord> rows,
                             state_.txs(options_.chain_id, sender_text()));
  uint64_t next = pending;
  for (TxRecord& rec : rows) {
    if (rec.mined_block) {
      next = std::max(next, rec.nonce + 1);
      continue;  // tick() follows it to its confirmations (or a reorg)
    }
    if (rec.nonce < latest) {
      // The nonce is used: by this transaction or a replaced version of it. tick() finds which.
      next = std::max(next, rec.nonce + 1);
      continue;
    }
    // Written (maybe sent) before a stop: send the very same bytes again.
    spdlog::info(
        "evm {}: re-sending transaction {} (nonce {}, feed {} round {}) from before the "
        "restart",
        sender_text(), rec.tx_hash, rec.nonce, rec.feed, rec.round);
    Status st = rebroadcast(rec);
    if (!st.ok()) spdlog::warn("evm {}: re-send failed: {}", sender_text(), st.message());
    next = std::max(next, rec.nonce + 1);
  }
  if (next > pending && rows.empty()) {
    spdlog::warn(
        "evm {}: the node counts {} pending transactions but the state file expected more; "
        "using the node's count (no gap)",
        sender_text(), pending);
  }
  next_nonce_ = next;
  started_ = true;
  spdlog::info("evm {}: next nonce {} (chain: {} mined, {} with pending)", sender_text(),
               next_nonce_, latest, pending);
  return Status::Ok();
}

Status TxManager::rebroadcast(const TxRecord& rec) {
  METRONOME_ASSIGN_OR_RETURN(
      RpcAnswer a, rpc_.request("eth_sendRawTransaction", nlohmann::json::array({rec.raw})));
  if (a.error && !is_already_known(a.error->message)) {
    return Status::Unavailable(
        fmt::format("eth_sendRawTransaction via {}: {}", a.url, a.error->message));
  }
  return Status::Ok();
}

Status TxManager::sign_persist_send(TxRecord& rec, const Bytes& calldata,
                                    const TxRecord* replaced) {
  Eip1559Tx tx;
  tx.chain_id = options_.chain_id;
  tx.nonce = rec.nonce;
  tx.max_fee_per_gas = rec.max_fee;
  tx.max_priority_fee_per_gas = rec.priority_fee;
  tx.gas_limit = rec.gas_limit;
  tx.to = options_.contract;
  tx.data = calldata;
  SignedTx signed_tx = sign_transaction(tx, sender_);
  rec.raw = to_hex_0x(signed_tx.raw);
  rec.tx_hash = to_hex_0x(signed_tx.hash);
  rec.data = to_hex_0x(calldata);
  rec.contract = to_checksum_address(options_.contract);
  // Written before it is sent: a crash after the send re-sends these bytes, never a new nonce.
  METRONOME_RETURN_IF_ERROR(state_.put_tx(rec));
  Result<RpcAnswer> a = rpc_.request("eth_sendRawTransaction", nlohmann::json::array({rec.raw}));
  if (!a.ok()) {
    // No node answered: the transaction is durable and tick() sends it again.
    spdlog::warn("evm {}: transaction {} (nonce {}) not sent yet: {}", sender_text(), rec.tx_hash,
                 rec.nonce, a.status().message());
    return Status::Ok();
  }
  if (a->error && !is_already_known(a->error->message)) {
    // Refused: undo the write (restore what it replaced) so the nonce stays gap-free.
    if (replaced != nullptr) {
      METRONOME_RETURN_IF_ERROR(state_.put_tx(*replaced));
    } else {
      METRONOME_RETURN_IF_ERROR(state_.delete_tx(rec.chain_id, rec.sender, rec.nonce));
    }
    const std::string m = lower(a->error->message);
    if (is_nonce_too_low(m)) {
      Result<uint64_t> pending = transaction_count("pending");
      if (pending.ok()) next_nonce_ = std::max(next_nonce_, *pending);
    }
    return Status::Unavailable(fmt::format("eth_sendRawTransaction via {} refused nonce {}: {}",
                                           a->url, rec.nonce, a->error->message));
  }
  return Status::Ok();
}

Result<SentTx> TxManager::send(const Bytes& calldata, const TxMeta& meta) {
  std::lock_guard lock(mu_);
  if (!started_) METRONOME_RETURN_IF_ERROR(Status::Unavailable("transaction manager not started"));
  METRONOME_ASSIGN_OR_RETURN(uint64_t gas, estimate_gas(calldata));
  METRONOME_ASSIGN_OR_RETURN(Fees fresh, current_fees());
  METRONOME_ASSIGN_OR_RETURN(uint64_t block, head());
  METRONOME_ASSIGN_OR_RETURN(std::vector<TxRecord> rows,
                             state_.txs(options_.chain_id, sender_text()));
  std::optional<TxRecord> old;
  for (const TxRecord& r : rows) {
    if (!r.mined_block) old = r;
  }
  TxRecord rec;
  rec.chain_id = options_.chain_id;
  rec.sender = sender_text();
  rec.feed = meta.feed;
  rec.round = meta.round;
  rec.slot_ms = meta.slot_ms;
  rec.value = meta.value;
  rec.gas_limit = gas + gas / 4 + 10'000;
  rec.sent_block = block;
  rec.first_sent_ms = to_unix_ms(std::chrono::time_point_cast<Millis>(clock_.now()));
  if (old) {
    Fees f = bumped(*old, fresh);
    if (f.max_fee <= old->max_fee || f.priority_fee <= old->priority_fee) {
      return Status::Unavailable(fmt::format(
          "transaction {} (nonce {}) is unmined at the fee cap max_fee_gwei ({} wei); a "
          "replacement needs higher fees",
          old->tx_hash, old->nonce, options_.max_fee_wei));
    }
    rec.nonce = old->nonce;
    rec.max_fee = f.max_fee;
    rec.priority_fee = f.priority_fee;
    rec.first_sent_ms = old->first_sent_ms;
    rec.prior_hashes =
        old->prior_hashes.empty() ? old->tx_hash : old->prior_hashes + "," + old->tx_hash;
  } else {
    rec.nonce = next_nonce_;
    rec.max_fee = fresh.max_fee;
    rec.priority_fee = fresh.priority_fee;
  }
  Status st = sign_persist_send(rec, calldata, old ? &*old : nullptr);
  if (!st.ok() && old && is_nonce_too_low(lower(st.message()))) {
    // The transaction being replaced was mined meanwhile (tick() will find its receipt): this
    // value goes in a new transaction with the next nonce.
    rec.nonce = std::max(next_nonce_, old->nonce + 1);
    rec.max_fee = fresh.max_fee;
    rec.priority_fee = fresh.priority_fee;
    rec.prior_hashes.clear();
    rec.first_sent_ms = to_unix_ms(std::chrono::time_point_cast<Millis>(clock_.now()));
    old.reset();
    st = sign_persist_send(rec, calldata, nullptr);
  }
  METRONOME_RETURN_IF_ERROR(st);
  next_nonce_ = std::max(next_nonce_, rec.nonce + 1);
  return SentTx{rec.tx_hash, rec.nonce, old.has_value()};
}

Status TxManager::tick() {
  std::lock_guard lock(mu_);
  if (!started_) return Status::Unavailable("transaction manager not started");
  METRONOME_ASSIGN_OR_RETURN(std::vector<TxRecord> rows,
                             state_.txs(options_.chain_id, sender_text()));
  if (rows.empty()) return Status::Ok();
  METRONOME_ASSIGN_OR_RETURN(uint64_t block, head());
  for (TxRecord& rec : rows) {
    if (rec.mined_block) {
      METRONOME_ASSIGN_OR_RETURN(
          nlohmann::json receipt,
          rpc_.call("eth_getTransactionReceipt", nlohmann::json::array({rec.tx_hash})));
      const bool gone = receipt.is_null() || !receipt.contains("blockHash") ||
                        receipt["blockHash"].get<std::string>() != rec.mined_block_hash;
      if (gone) {
        spdlog::warn(
            "evm {}: transaction {} (nonce {}, feed {} round {}) left block {} (reorg); "
            "sending it again",
            sender_text(), rec.tx_hash, rec.nonce, rec.feed, rec.round, *rec.mined_block);
        rec.mined_block.reset();
        rec.mined_block_hash.clear();
        rec.sent_block = block;
        METRONOME_RETURN_IF_ERROR(state_.put_tx(rec));
        Status st = rebroadcast(rec);
        if (!st.ok()) spdlog::warn("evm {}: {}", sender_text(), st.message());
        continue;
      }
      if (block + 1 >= *rec.mined_block + options_.confirmations) {
        METRONOME_RETURN_IF_ERROR(state_.delete_tx(rec.chain_id, rec.sender, rec.nonce));
      }
      continue;
    }
    // Unmined: did this version or a replaced one land?
    std::vector<std::string> hashes = split_hashes(rec.prior_hashes);
    hashes.insert(hashes.begin(), rec.tx_hash);
    bool mined = false;
    for (const std::string& h : hashes) {
      METRONOME_ASSIGN_OR_RETURN(nlohmann::json receipt, rpc_.call("eth_getTransactionReceipt",
                                                                   nlohmann::json::array({h})));
      if (receipt.is_null() || !receipt.contains("blockNumber") ||
          receipt["blockNumber"].is_null()) {
        continue;
      }
      METRONOME_ASSIGN_OR_RETURN(uint64_t n,
                                 parse_quantity_u64(receipt["blockNumber"].get<std::string>()));
      rec.mined_block = n;
      rec.mined_block_hash = receipt["blockHash"].get<std::string>();
      rec.reverted = receipt.value("status", std::string("0x1")) == "0x0";
      if (h != rec.tx_hash) {
        spdlog::info("evm {}: nonce {} was mined as replaced version {}", sender_text(), rec.nonce,
                     h);
        rec.tx_hash = h;
      }
      if (rec.reverted) {
        spdlog::warn("evm {}: transaction {} (feed {} round {}) reverted in block {}",
                     sender_text(), h, rec.feed, rec.round, n);
      }
      METRONOME_RETURN_IF_ERROR(state_.put_tx(rec));
      mined = true;
      break;
    }
    if (mined) continue;
    if (block >= rec.sent_block + options_.bump_after_blocks) {
      METRONOME_ASSIGN_OR_RETURN(uint64_t latest, transaction_count("latest"));
      if (latest > rec.nonce) {
        // The nonce was consumed by none of our versions' receipts (a node forgot them?).
        spdlog::warn(
            "evm {}: nonce {} is used on chain by a transaction not in the state file; "
            "dropping {}",
            sender_text(), rec.nonce, rec.tx_hash);
        METRONOME_RETURN_IF_ERROR(state_.delete_tx(rec.chain_id, rec.sender, rec.nonce));
        continue;
      }
      METRONOME_ASSIGN_OR_RETURN(Fees fresh, current_fees());
      Fees f = bumped(rec, fresh);
      if (f.max_fee > rec.max_fee && f.priority_fee > rec.priority_fee) {
        TxRecord before = rec;
        rec.max_fee = f.max_fee;
        rec.priority_fee = f.priority_fee;
        rec.sent_block = block;
        rec.prior_hashes =
            rec.prior_hashes.empty() ? rec.tx_hash : rec.prior_hashes + "," + rec.tx_hash;
        METRONOME_ASSIGN_OR_RETURN(Bytes calldata, parse_data_hex(rec.data));
        spdlog::info(
            "evm {}: transaction {} (nonce {}) not mined after {} blocks; replacing it "
            "with max fee {} wei (was {})",
            sender_text(), before.tx_hash, rec.nonce, block - before.sent_block, rec.max_fee,
            before.max_fee);
        Status st = sign_persist_send(rec, calldata, &before);
        if (!st.ok()) spdlog::warn("evm {}: bump failed: {}", sender_text(), st.message());
      } else {
        rec.sent_block = block;  // at the cap: wait another bump_after_blocks, re-send as is
        METRONOME_RETURN_IF_ERROR(state_.put_tx(rec));
        Status st = rebroadcast(rec);
        if (!st.ok()) spdlog::warn("evm {}: {}", sender_text(), st.message());
      }
    } else if (block > rec.sent_block) {
      // Harmless when the node has it; needed when a failover reached a node that never saw it.
      Status st = rebroadcast(rec);
      if (!st.ok()) spdlog::debug("evm {}: {}", sender_text(), st.message());
    }
  }
  return Status::Ok();
}

std::optional<TxRecord> TxManager::unmined() {
  Result<std::vector<TxRecord>> rows = state_.txs(options_.chain_id, sender_text());
  if (!rows.ok()) return std::nullopt;
  for (const TxRecord& r : *rows) {
    if (!r.mined_block) return r;
  }
  return std::nullopt;
}

Result<std::vector<TxRecord>> TxManager::in_flight() {
  return state_.txs(options_.chain_id, sender_text());
}

uint64_t TxManager::next_nonce() {
  std::lock_guard lock(mu_);
  return next_nonce_;
}

}  // namespace metronome
