// TxManager against a real chain: ganache (npm, pinned) started on a free port with 1 s blocks.
// A transaction whose max fee is capped below the base fee stays unmined; once the cap is
// raised, tick() replaces it (same nonce, fees raised by bump_pct) and it is mined.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "clock/system_clock.h"
#include "common/hex.h"
#include "evm/tx_manager.h"

namespace metronome {
namespace {

namespace fs = std::filesystem;
constexpr const char* kSenderKey =
    "0x8f2a55949038a9610f50fb23b5883af3b4ecb3c3bb792cbcefbd1542c692be63";

fs::path SourceDir() {
  const char* env = std::getenv("METRONOME_SOURCE_DIR");
  return env && *env ? fs::path(env) : fs::current_path();
}

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

class GanacheTxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(SourceDir() / "node_modules/ganache/package.json"))
        << "ganache is not installed; run scripts/setup.sh --test";
    port_ = FreePort();
    pid_ = fork();
    if (pid_ == 0) {
      int null = ::open("/dev/null", O_WRONLY);
      dup2(null, 1);
      dup2(null, 2);
      std::string cli = (SourceDir() / "node_modules/ganache/dist/node/cli.js").string();
      std::string account = std::string(kSenderKey) + ",1000000000000000000000";
      execlp("node", "node", cli.c_str(), "--server.host", "127.0.0.1", "--server.port",
             std::to_string(port_).c_str(), "--chain.chainId", "31337", "--miner.blockTime", "1",
             "--wallet.accounts", account.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    JsonRpcOptions o;
    o.urls = {"http://127.0.0.1:" + std::to_string(port_)};
    o.chain_id = 31337;
    rpc_ = std::make_unique<JsonRpcClient>(o);
    for (int i = 0; i < 400; ++i) {
      if (rpc_->health_check().ok()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_TRUE(rpc_->health_check().ok()) << "ganache did not start";
    dir_ = fs::temp_directory_path() / ("metronome_evm_tx_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    fs::remove_all(dir_);
  }
  nlohmann::json Receipt(const std::string& hash) {
    return *rpc_->call("eth_getTransactionReceipt", nlohmann::json::array({hash}));
  }

  int port_ = 0;
  pid_t pid_ = -1;
  std::unique_ptr<JsonRpcClient> rpc_;
  fs::path dir_;
};

TEST_F(GanacheTxTest, StuckTransactionIsReplacedWithTheSameNonceAndMined) {
  SystemClock clock;
  auto state = EvmState::Open(dir_ / "evm.db");
  ASSERT_TRUE(state.ok()) << state.status().ToString();
  auto signer = Signer::Create(*SigningKey::FromHex(SecretName("sender"), kSenderKey));
  ASSERT_TRUE(signer.ok());
  TxManagerOptions options;
  options.chain_id = 31337;
  options.contract = *parse_address("0x00000000000000000000000000000000000000aa");
  options.max_fee_wei = 1;  // far below ganache's base fee: never mined
  options.bump_pct = 20;
  options.bump_after_blocks = 2;
  TxManager tm(*rpc_, *signer, **state, options, clock);
  ASSERT_TRUE(tm.start().ok());
  EXPECT_EQ(tm.next_nonce(), 0u);

  Result<SentTx> first = tm.send(Bytes{1, 2, 3}, {"feed", 1, 1000, "1"});
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->nonce, 0u);
  EXPECT_FALSE(first->replaced);

  // A newer value while it is unmined would replace it, but the cap leaves no room: refused,
  // saying why, and nothing else is queued.
  Result<SentTx> blocked = tm.send(Bytes{4, 5, 6}, {"feed", 2, 2000, "2"});
  ASSERT_FALSE(blocked.ok());
  EXPECT_NE(blocked.status().message().find("fee cap"), std::string::npos)
      << blocked.status().ToString();

  // Four blocks later it is still unmined.
  const uint64_t start = *tm.head();
  while (*tm.head() < start + 4) {
    ASSERT_TRUE(tm.tick().ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_TRUE(Receipt(first->tx_hash).is_null());
  ASSERT_TRUE(tm.unmined().has_value());
  EXPECT_EQ(tm.unmined()->tx_hash, first->tx_hash);

  // The cap is raised: a newer value replaces it (same nonce, higher fees) ...
  tm.set_max_fee_wei(50'000'000'000);
  Result<SentTx> replacement = tm.send(Bytes{7, 8, 9}, {"feed", 3, 3000, "3"});
  ASSERT_TRUE(replacement.ok()) << replacement.status().ToString();
  EXPECT_EQ(replacement->nonce, 0u);
  EXPECT_TRUE(replacement->replaced);
  EXPECT_NE(replacement->tx_hash, first->tx_hash);

  // ... and it is mined; the stuck version never is.
  std::optional<TxRecord> mined;
  for (int i = 0; i < 60 && !mined; ++i) {
    ASSERT_TRUE(tm.tick().ok());
    auto rows = tm.in_flight();
    ASSERT_TRUE(rows.ok());
    if (rows->empty()) break;  // confirmed already
    if ((*rows)[0].mined_block) mined = (*rows)[0];
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  nlohmann::json receipt = Receipt(replacement->tx_hash);
  ASSERT_FALSE(receipt.is_null()) << "the replacement was not mined";
  EXPECT_EQ(receipt["status"], "0x1");
  EXPECT_TRUE(Receipt(first->tx_hash).is_null());
  nlohmann::json tx =
      *rpc_->call("eth_getTransactionByHash", nlohmann::json::array({replacement->tx_hash}));
  EXPECT_EQ(tx["nonce"], "0x0");
  EXPECT_EQ(tx["input"], "0x070809");
  EXPECT_EQ(tm.next_nonce(), 1u);
}

TEST_F(GanacheTxTest, UnminedTransactionIsBumpedAfterBlocksAndMined) {
  SystemClock clock;
  auto state = EvmState::Open(dir_ / "evm.db");
  ASSERT_TRUE(state.ok());
  auto signer = Signer::Create(*SigningKey::FromHex(SecretName("sender"), kSenderKey));
  ASSERT_TRUE(signer.ok());
  TxManagerOptions options;
  options.chain_id = 31337;
  options.contract = *parse_address("0x00000000000000000000000000000000000000aa");
  options.max_fee_wei = 1;
  options.bump_after_blocks = 2;
  TxManager tm(*rpc_, *signer, **state, options, clock);
  ASSERT_TRUE(tm.start().ok());
  Result<SentTx> sent = tm.send(Bytes{1}, {"feed", 1, 1000, "1"});
  ASSERT_TRUE(sent.ok()) << sent.status().ToString();
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(tm.tick().ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_TRUE(Receipt(sent->tx_hash).is_null());
  tm.set_max_fee_wei(50'000'000'000);  // e.g. the operator raised max_fee_gwei
  std::string final_hash;
  for (int i = 0; i < 60; ++i) {
    ASSERT_TRUE(tm.tick().ok());
    auto rows = tm.in_flight();
    ASSERT_TRUE(rows.ok());
    if (!rows->empty() && (*rows)[0].mined_block) {
      final_hash = (*rows)[0].tx_hash;
      EXPECT_EQ((*rows)[0].nonce, 0u);
      EXPECT_NE((*rows)[0].prior_hashes.find(sent->tx_hash), std::string::npos);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_FALSE(final_hash.empty()) << "the bumped transaction was not mined";
  EXPECT_NE(final_hash, sent->tx_hash);
  EXPECT_FALSE(Receipt(final_hash).is_null());
}

}  // namespace
}  // namespace metronome

namespace metronome {
namespace {

TEST_F(GanacheTxTest, MinedTransactionThatLeavesTheChainIsSentAgain) {
  SystemClock clock;
  auto state = EvmState::Open(dir_ / "evm.db");
  ASSERT_TRUE(state.ok());
  auto signer = Signer::Create(*SigningKey::FromHex(SecretName("sender"), kSenderKey));
  ASSERT_TRUE(signer.ok());
  TxManagerOptions options;
  options.chain_id = 31337;
  options.contract = *parse_address("0x00000000000000000000000000000000000000aa");
  options.confirmations = 100;  // followed long enough to see the reorg
  TxManager tm(*rpc_, *signer, **state, options, clock);
  ASSERT_TRUE(tm.start().ok());
  // ganache's evm_snapshot / evm_revert stand in for a reorg: the blocks after the snapshot go.
  nlohmann::json snapshot = *rpc_->call("evm_snapshot", nlohmann::json::array());
  Result<SentTx> sent = tm.send(Bytes{0x42}, {"feed", 1, 1000, "1"});
  ASSERT_TRUE(sent.ok()) << sent.status().ToString();
  auto mined_block = [&]() -> std::optional<uint64_t> {
    auto rows = tm.in_flight();
    if (!rows.ok() || rows->empty()) return std::nullopt;
    return (*rows)[0].mined_block;
  };
  for (int i = 0; i < 40 && !mined_block(); ++i) {
    ASSERT_TRUE(tm.tick().ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_TRUE(mined_block().has_value()) << "not mined";
  ASSERT_EQ(*rpc_->call("evm_revert", nlohmann::json::array({snapshot})), true);
  ASSERT_TRUE(Receipt(sent->tx_hash).is_null()) << "the revert did not drop the block";
  ASSERT_TRUE(tm.tick().ok());  // sees the receipt gone: unmined again, re-sent
  EXPECT_FALSE(mined_block().has_value());
  for (int i = 0; i < 40 && !mined_block(); ++i) {
    ASSERT_TRUE(tm.tick().ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_TRUE(mined_block().has_value()) << "not mined again after the reorg";
  EXPECT_FALSE(Receipt(sent->tx_hash).is_null());  // the same transaction (same hash)
  EXPECT_EQ(tm.next_nonce(), 1u);
}

}  // namespace
}  // namespace metronome
