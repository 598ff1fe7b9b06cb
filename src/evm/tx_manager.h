// TxManager: sends one sender's transactions to one contract and sees them through.
//
// Nonces are durable and gap-free: every transaction is written to EvmState (evm.db) before it
// is sent, the next nonce is one past the last one written, and start() reconciles with
// eth_getTransactionCount(pending): a transaction written but not known to the node is re-sent
// (the same signed bytes), a nonce the chain has consumed is not reused.
//
// At most one transaction is unmined at a time. send() while one is unmined REPLACES it: same
// nonce, fees raised by at least bump_pct (nodes require >= 10 %), never a second queued one.
// tick() (called every few hundred ms by the sink) follows receipts: an unmined transaction whose
// age reaches bump_after_blocks is re-signed with fees raised by bump_pct (capped by max_fee); a
// mined one is followed to `confirmations` blocks and then forgotten; a mined one whose receipt
// disappears or whose block hash changes (a reorg) is marked unmined and sent again.
//
// Fees: eth_feeHistory over the last 5 blocks: priority = the median reward (at least 1 gwei),
// max fee = 2 * next base fee + priority; both capped by max_fee (a cap below the base fee leaves
// the transaction waiting until the cap is raised or the base fee falls).
//
// Thread-safe: one mutex serialises send() and tick().
#pragma once

#include <mutex>
#include <optional>
#include <string>

#include "clock/clock.h"
#include "evm/abi.h"
#include "evm/eth_tx.h"
#include "evm/evm_state.h"
#include "evm/json_rpc.h"
#include "sign/signer.h"

namespace metronome {

struct TxManagerOptions {
  uint64_t chain_id = 1;
  Address contract;
  uint64_t max_fee_wei = 100'000'000'000;  // 100 gwei
  int bump_pct = 12;
  uint64_t bump_after_blocks = 3;
  uint64_t confirmations = 1;
};

// What a transaction carries, for the state file and messages.
struct TxMeta {
  std::string feed;
  int64_t round = 0;
  int64_t slot_ms = 0;
  std::string value;
};

struct SentTx {
  std::string tx_hash;
  uint64_t nonce = 0;
  bool replaced = false;  // replaced an unmined transaction (same nonce)
};

struct Fees {
  uint64_t max_fee = 0;
  uint64_t priority_fee = 0;
};

class TxManager {
 public:
  TxManager(JsonRpcClient& rpc, const Signer& sender, EvmState& state, TxManagerOptions options,
            Clock& clock);

  // Health check of the RPC URLs and nonce reconciliation (see above).
  Status start();
  // Sends `calldata` to the contract, or replaces the unmined transaction with it. An
  // eth_estimateGas revert is returned as kInvalidArgument "reverted: REASON" (nothing sent).
  Result<SentTx> send(const Bytes& calldata, const TxMeta& meta);
  // Follows the transactions in flight (see above).
  Status tick();

  // eth_call to the contract at the latest block. A revert is kInvalidArgument with its reason.
  Result<Bytes> call(const Bytes& calldata);
  Result<U256> balance();
  Result<uint64_t> head();
  Result<Fees> current_fees();

  // The unmined transaction, if any; every row in flight.
  std::optional<TxRecord> unmined();
  Result<std::vector<TxRecord>> in_flight();
  uint64_t next_nonce();
  const Address& sender() const { return sender_.address(); }
  std::string sender_text() const { return to_checksum_address(sender_.address()); }
  JsonRpcClient& rpc() { return rpc_; }
  void set_max_fee_wei(uint64_t wei);

 private:
  Result<uint64_t> transaction_count(const char* block);
  Result<uint64_t> estimate_gas(const Bytes& calldata);
  // Signs and sends tx for `rec` (fees, nonce, data filled), writing rec first.
  Status sign_persist_send(TxRecord& rec, const Bytes& calldata, const TxRecord* replaced);
  Status rebroadcast(const TxRecord& rec);
  Fees bumped(const TxRecord& rec, const Fees& fresh) const;

  JsonRpcClient& rpc_;
  const Signer& sender_;
  EvmState& state_;
  TxManagerOptions options_;
  Clock& clock_;
  std::mutex mu_;
  uint64_t next_nonce_ = 0;  // guarded by mu_
  bool started_ = false;     // guarded by mu_
};

// True when a node's error for eth_sendRawTransaction means it has this transaction already.
bool is_already_known(std::string_view message);

}  // namespace metronome
