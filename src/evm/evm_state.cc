#include "evm/evm_state.h"

#include <fmt/format.h>

namespace metronome {

Result<std::unique_ptr<EvmState>> EvmState::Open(const std::filesystem::path& file) {
  try {
    if (file.has_parent_path()) std::filesystem::create_directories(file.parent_path());
    auto db = std::make_unique<SQLite::Database>(
        file.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE, 5000);
    db->exec("PRAGMA journal_mode = WAL");
    db->exec("PRAGMA synchronous = FULL");
    db->exec(R"sql(
      CREATE TABLE IF NOT EXISTS txs (
        chain_id INTEGER NOT NULL, sender TEXT NOT NULL, nonce INTEGER NOT NULL,
        feed TEXT NOT NULL, round INTEGER NOT NULL, slot_ms INTEGER NOT NULL, value TEXT NOT NULL,
        tx_hash TEXT NOT NULL, raw TEXT NOT NULL, data TEXT NOT NULL, contract TEXT NOT NULL,
        gas_limit INTEGER NOT NULL, max_fee INTEGER NOT NULL, priority_fee INTEGER NOT NULL,
        sent_block INTEGER NOT NULL, first_sent_ms INTEGER NOT NULL, prior_hashes TEXT NOT NULL,
        mined_block INTEGER, mined_block_hash TEXT NOT NULL DEFAULT '',
        reverted INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (chain_id, sender, nonce));
      CREATE TABLE IF NOT EXISTS decisions (
        id INTEGER PRIMARY KEY AUTOINCREMENT, feed TEXT NOT NULL, round INTEGER NOT NULL,
        slot_ms INTEGER NOT NULL, value TEXT NOT NULL, chain_round INTEGER NOT NULL,
        chain_timestamp_ms INTEGER NOT NULL, chain_value TEXT NOT NULL, decision TEXT NOT NULL,
        reason TEXT NOT NULL, tx_hash TEXT NOT NULL, decided_ms INTEGER NOT NULL);
      CREATE INDEX IF NOT EXISTS decisions_feed ON decisions (feed, id);
    )sql");
    return std::unique_ptr<EvmState>(new EvmState(file, std::move(db)));
  } catch (const std::exception& e) {
    return Status::IOError(fmt::format("EVM state file {}: {}", file.string(), e.what()));
  }
}

Result<std::vector<TxRecord>> EvmState::txs(uint64_t chain_id, const std::string& sender) {
  std::lock_guard lock(mu_);
  try {
    SQLite::Statement q(*db_,
                        "SELECT nonce, feed, round, slot_ms, value, tx_hash, raw, data, contract, "
                        "gas_limit, max_fee, priority_fee, sent_block, first_sent_ms, "
                        "prior_hashes, mined_block, mined_block_hash, reverted FROM txs "
                        "WHERE chain_id = ? AND sender = ? ORDER BY nonce");
    q.bind(1, static_cast<int64_t>(chain_id));
    q.bind(2, sender);
    std::vector<TxRecord> out;
    while (q.executeStep()) {
      TxRecord t;
      t.chain_id = chain_id;
      t.sender = sender;
      t.nonce = static_cast<uint64_t>(q.getColumn(0).getInt64());
      t.feed = q.getColumn(1).getString();
      t.round = q.getColumn(2).getInt64();
      t.slot_ms = q.getColumn(3).getInt64();
      t.value = q.getColumn(4).getString();
      t.tx_hash = q.getColumn(5).getString();
      t.raw = q.getColumn(6).getString();
      t.data = q.getColumn(7).getString();
      t.contract = q.getColumn(8).getString();
      t.gas_limit = static_cast<uint64_t>(q.getColumn(9).getInt64());
      t.max_fee = static_cast<uint64_t>(q.getColumn(10).getInt64());
      t.priority_fee = static_cast<uint64_t>(q.getColumn(11).getInt64());
      t.sent_block = static_cast<uint64_t>(q.getColumn(12).getInt64());
      t.first_sent_ms = q.getColumn(13).getInt64();
      t.prior_hashes = q.getColumn(14).getString();
      if (!q.getColumn(15).isNull()) {
        t.mined_block = static_cast<uint64_t>(q.getColumn(15).getInt64());
      }
      t.mined_block_hash = q.getColumn(16).getString();
      t.reverted = q.getColumn(17).getInt() != 0;
      out.push_back(std::move(t));
    }
    return out;
  } catch (const std::exception& e) {
    return Status::IOError(fmt::format("EVM state file {}: {}", file_.string(), e.what()));
  }
}

Status EvmState::put_tx(const TxRecord& t) {
  std::lock_guard lock(mu_);
  try {
    SQLite::Statement q(*db_,
                        "INSERT OR REPLACE INTO txs (chain_id, sender, nonce, feed, round, "
                        "slot_ms, value, tx_hash, raw, data, contract, gas_limit, max_fee, "
                        "priority_fee, sent_block, first_sent_ms, prior_hashes, mined_block, "
                        "mined_block_hash, reverted) VALUES "
                        "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
    q.bind(1, static_cast<int64_t>(t.chain_id));
    q.bind(2, t.sender);
    q.bind(3, static_cast<int64_t>(t.nonce));
    q.bind(4, t.feed);
    q.bind(5, t.round);
    q.bind(6, t.slot_ms);
    q.bind(7, t.value);
    q.bind(8, t.tx_hash);
    q.bind(9, t.raw);
    q.bind(10, t.data);
    q.bind(11, t.contract);
    q.bind(12, static_cast<int64_t>(t.gas_limit));
    q.bind(13, static_cast<int64_t>(t.max_fee));
    q.bind(14, static_cast<int64_t>(t.priority_fee));
    q.bind(15, static_cast<int64_t>(t.sent_block));
    q.bind(16, t.first_sent_ms);
    q.bind(17, t.prior_hashes);
    if (t.mined_block) {
      q.bind(18, static_cast<int64_t>(*t.mined_block));
    } else {
      q.bind(18);
    }
    q.bind(19, t.mined_block_hash);
    q.bind(20, t.reverted ? 1 : 0);
    q.exec();
    return Status::Ok();
  } catch (const std::exception& e) {
    return Status::IOError(fmt::format("EVM state file {}: {}", file_.string(), e.what()));
  }
}

Status EvmState::delete_tx(uint64_t chain_id, const std::string& sender, uint64_t nonce) {
  std::lock_guard lock(mu_);
  try {
    SQLite::Statement q(*db_, "DELETE FROM txs WHERE chain_id = ? AND sender = ? AND nonce = ?");
    q.bind(1, static_cast<int64_t>(chain_id));
    q.bind(2, sender);
    q.bind(3, static_cast<int64_t>(nonce));
    q.exec();
    return Status::Ok();
  } catch (const std::exception& e) {
    return Status::IOError(fmt::format("EVM state file {}: {}", file_.string(), e.what()));
  }
}

Status EvmState::add_decision(const Decision& d) {
  std::lock_guard lock(mu_);
  try {
    SQLite::Statement q(*db_,
                        "INSERT INTO decisions (feed, round, slot_ms, value, chain_round, "
                        "chain_timestamp_ms, chain_value, decision, reason, tx_hash, decided_ms) "
                        "VALUES (?,?,?,?,?,?,?,?,?,?,?)");
    q.bind(1, d.feed);
    q.bind(2, d.round);
    q.bind(3, d.slot_ms);
    q.bind(4, d.value);
    q.bind(5, d.chain_round);
    q.bind(6, d.chain_timestamp_ms);
    q.bind(7, d.chain_value);
    q.bind(8, d.decision);
    q.bind(9, d.reason);
    q.bind(10, d.tx_hash);
    q.bind(11, d.decided_ms);
    q.exec();
    return Status::Ok();
  } catch (const std::exception& e) {
    return Status::IOError(fmt::format("EVM state file {}: {}", file_.string(), e.what()));
  }
}

Result<std::vector<Decision>> EvmState::decisions(const std::string& feed, int limit) {
  std::lock_guard lock(mu_);
  try {
    SQLite::Statement q(*db_,
                        "SELECT round, slot_ms, value, chain_round, chain_timestamp_ms, "
                        "chain_value, decision, reason, tx_hash, decided_ms FROM decisions "
                        "WHERE feed = ? ORDER BY id LIMIT ?");
    q.bind(1, feed);
    q.bind(2, limit);
    std::vector<Decision> out;
    while (q.executeStep()) {
      Decision d;
      d.feed = feed;
      d.round = q.getColumn(0).getInt64();
      d.slot_ms = q.getColumn(1).getInt64();
      d.value = q.getColumn(2).getString();
      d.chain_round = q.getColumn(3).getInt64();
      d.chain_timestamp_ms = q.getColumn(4).getInt64();
      d.chain_value = q.getColumn(5).getString();
      d.decision = q.getColumn(6).getString();
      d.reason = q.getColumn(7).getString();
      d.tx_hash = q.getColumn(8).getString();
      d.decided_ms = q.getColumn(9).getInt64();
      out.push_back(std::move(d));
    }
    return out;
  } catch (const std::exception& e) {
    return Status::IOError(fmt::format("EVM state file {}: {}", file_.string(), e.what()));
  }
}

}  // namespace metronome
