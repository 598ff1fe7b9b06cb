// EvmState: the transaction manager's durable state, in its own SQLite file <data_dir>/evm.db
// (see docs/adr/0008-evm-state-file.md for why it is not in the Store).
//
//   txs        one row per nonce in flight of a (chain, sender): the signed transaction (raw bytes,
//              hash, fees), what it carries (feed, round, slot, value), the block it was sent at,
//              and once mined the block number and hash (followed to `confirmations`, then the
//              row is deleted). A row is written BEFORE its transaction is sent, so a crash
//              between the two re-sends the very same bytes at the next start (idempotent).
//   decisions  every slot the evm sink looked at: the on-chain value it compared with and what
//              it decided (submit by deviation/heartbeat/first, skip, superseded), for audits
//              and the integration test.
//
// Thread-safe (one connection, a mutex; SQLite's busy timeout covers other processes).
#pragma once

#include <SQLiteCpp/SQLiteCpp.h>

#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace metronome {

struct TxRecord {
  uint64_t chain_id = 0;
  std::string sender;  // EIP-55 address
  uint64_t nonce = 0;
  std::string feed;
  int64_t round = 0;
  int64_t slot_ms = 0;
  std::string value;
  std::string tx_hash;   // 0x...
  std::string raw;       // 0x... signed transaction
  std::string data;      // 0x... calldata (to re-sign with other fees)
  std::string contract;  // 0x... the `to`
  uint64_t gas_limit = 0;
  uint64_t max_fee = 0;       // wei per gas
  uint64_t priority_fee = 0;  // wei per gas
  uint64_t sent_block = 0;    // head when (re)sent
  int64_t first_sent_ms = 0;  // unix ms of the first send of this nonce
  std::string prior_hashes;   // hashes of replaced versions, comma-separated
  std::optional<uint64_t> mined_block;
  std::string mined_block_hash;
  bool reverted = false;
};

struct Decision {
  std::string feed;
  int64_t round = 0;
  int64_t slot_ms = 0;
  std::string value;
  int64_t chain_round = 0;
  int64_t chain_timestamp_ms = 0;
  std::string chain_value;
  std::string decision;  // submit | skip | superseded
  std::string reason;    // first | deviation | heartbeat | replaces-pending | ...
  std::string tx_hash;
  int64_t decided_ms = 0;
};

class EvmState {
 public:
  static Result<std::unique_ptr<EvmState>> Open(const std::filesystem::path& file);

  Result<std::vector<TxRecord>> txs(uint64_t chain_id, const std::string& sender);
  Status put_tx(const TxRecord& tx);  // insert or replace by (chain_id, sender, nonce)
  Status delete_tx(uint64_t chain_id, const std::string& sender, uint64_t nonce);
  Status add_decision(const Decision& d);
  Result<std::vector<Decision>> decisions(const std::string& feed, int limit = 100000);
  const std::filesystem::path& file() const { return file_; }

 private:
  EvmState(std::filesystem::path file, std::unique_ptr<SQLite::Database> db)
      : file_(std::move(file)), db_(std::move(db)) {}
  std::filesystem::path file_;
  std::mutex mu_;
  std::unique_ptr<SQLite::Database> db_;  // guarded by mu_
};

}  // namespace metronome
