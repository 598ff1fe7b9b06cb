// Known-answer tests against ethers 6 (npm, pinned in package-lock.json): EIP-1559 transactions
// signed byte for byte as ethers' Wallet.signTransaction serialises them, and MetronomeFeed
// calldata as ethers' Interface.encodeFunctionData encodes it.
//
// Needs `node` on PATH and the repository's node_modules (scripts/setup.sh --test); when either
// is missing the test fails and says so, it is never skipped.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/hex.h"
#include "evm/abi.h"
#include "evm/eth_tx.h"
#include "sign/eip712.h"

namespace metronome {
namespace {

namespace fs = std::filesystem;

constexpr int kVectorCount = 600;

fs::path SourceDir() {
  const char* env = std::getenv("METRONOME_SOURCE_DIR");
  return env && *env ? fs::path(env) : fs::current_path();
}

std::string Generate(int seed, int count, int& exit_code) {
  fs::path dir = SourceDir();
  std::string cmd = "cd '" + dir.string() + "' && node tests/tools/evm_tx_vectors.mjs " +
                    std::to_string(seed) + " " + std::to_string(count);
  std::string out;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return out;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  int status = pclose(pipe);
  exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

U256 Q(const nlohmann::json& v) {
  Result<U256> q = parse_quantity(v.get<std::string>());
  EXPECT_TRUE(q.ok()) << v;
  return q.ok() ? *q : U256{};
}
uint64_t Q64(const nlohmann::json& v) {
  Result<uint64_t> q = parse_quantity_u64(v.get<std::string>());
  EXPECT_TRUE(q.ok()) << v;
  return q.ok() ? *q : 0;
}
Bytes D(const nlohmann::json& v) {
  Result<Bytes> b = parse_data_hex(v.get<std::string>());
  EXPECT_TRUE(b.ok()) << v;
  return b.ok() ? *b : Bytes{};
}

abi::Submission SubmissionOf(const nlohmann::json& j) {
  abi::Submission s;
  Bytes feed = D(j.at("feed_id"));
  EXPECT_EQ(feed.size(), 32u);
  std::copy(feed.begin(), feed.end(), s.feed_id.begin());
  s.round = Q64(j.at("round"));
  s.timestamp_ms = Q64(j.at("timestamp_ms"));
  Result<Word256> v = scale_to_int256(j.at("value").get<std::string>(), 0);
  EXPECT_TRUE(v.ok()) << j;
  if (v.ok()) s.value = *v;
  s.signature = D(j.at("signature"));
  return s;
}

TEST(EthersTxTest, TransactionsAndCalldataMatchEthersByteForByte) {
  ASSERT_EQ(std::system("command -v node >/dev/null 2>&1"), 0)
      << "node is not on PATH; install nodejs (scripts/setup.sh --test)";
  ASSERT_TRUE(fs::exists(SourceDir() / "node_modules/ethers/package.json"))
      << "ethers is not installed under " << SourceDir() << "; run scripts/setup.sh --test";
  int exit_code = -1;
  std::string out = Generate(20261128, kVectorCount, exit_code);
  ASSERT_EQ(exit_code, 0) << out.substr(0, 2000);

  int txs = 0, creations = 0, empty_data = 0, long_data = 0, submits = 0, batches = 0,
      batch_items = 0;
  size_t start = 0;
  while (start < out.size()) {
    size_t end = out.find('\n', start);
    if (end == std::string::npos) end = out.size();
    nlohmann::json v = nlohmann::json::parse(out.substr(start, end - start));
    start = end + 1;
    SCOPED_TRACE(v.dump().substr(0, 600));
    const std::string kind = v.at("kind").get<std::string>();
    if (kind == "tx") {
      Result<SigningKey> key =
          SigningKey::FromHex(SecretName("vector"), v.at("key").get<std::string>());
      ASSERT_TRUE(key.ok()) << key.status().ToString();
      ASSERT_EQ(to_checksum_address(key->address()), v.at("from").get<std::string>());
      const Address from = key->address();
      Result<Signer> signer = Signer::Create(std::move(*key));
      ASSERT_TRUE(signer.ok());
      Eip1559Tx tx;
      tx.chain_id = Q64(v.at("chain_id"));
      tx.nonce = Q64(v.at("nonce"));
      tx.max_priority_fee_per_gas = Q64(v.at("max_priority_fee_per_gas"));
      tx.max_fee_per_gas = Q64(v.at("max_fee_per_gas"));
      tx.gas_limit = Q64(v.at("gas_limit"));
      if (!v.at("to").is_null()) {
        Result<Address> to = parse_address(v.at("to").get<std::string>());
        ASSERT_TRUE(to.ok());
        tx.to = *to;
      } else {
        ++creations;
      }
      tx.value = Q(v.at("value"));
      tx.data = D(v.at("data"));
      empty_data += tx.data.empty();
      long_data += tx.data.size() > 255;
      SignedTx signed_tx = sign_transaction(tx, *signer);
      EXPECT_EQ(to_hex_0x(signed_tx.raw), v.at("serialized").get<std::string>());
      EXPECT_EQ(to_hex_0x(signed_tx.hash), to_hex_0x(keccak256(D(v.at("serialized")))));
      EXPECT_EQ(to_checksum_address(contract_address(from, tx.nonce)),
                v.at("create_address").get<std::string>());
      ++txs;
    } else if (kind == "submit") {
      EXPECT_EQ(to_hex_0x(abi::encode_submit(SubmissionOf(v.at("item")))),
                v.at("calldata").get<std::string>());
      ++submits;
    } else if (kind == "submitBatch") {
      std::vector<abi::Submission> items;
      for (const auto& item : v.at("items")) items.push_back(SubmissionOf(item));
      batch_items += static_cast<int>(items.size());
      EXPECT_EQ(to_hex_0x(abi::encode_submit_batch(items)), v.at("calldata").get<std::string>());
      ++batches;
    } else {
      FAIL() << "unknown vector kind " << kind;
    }
  }
  EXPECT_EQ(txs, kVectorCount);
  EXPECT_EQ(submits, kVectorCount);
  EXPECT_EQ(batches, kVectorCount);
  // The generator covers what matters; make sure it still does.
  EXPECT_GT(creations, 20);
  EXPECT_GT(empty_data, 50);
  EXPECT_GT(long_data, 50);
  EXPECT_GT(batch_items, 1000);
}

}  // namespace
}  // namespace metronome
