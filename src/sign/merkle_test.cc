#include "sign/merkle.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include "common/hex.h"

namespace metronome {
namespace {

using ::testing::HasSubstr;

std::vector<Hash32> Leaves(size_t n) {
  std::vector<Hash32> leaves;
  for (size_t i = 0; i < n; ++i) leaves.push_back(keccak256("leaf " + std::to_string(i)));
  return leaves;
}

TEST(MerkleTest, EveryLeafsProofFoldsIntoTheRootForEveryBatchSize) {
  for (size_t n = 1; n <= 70; ++n) {
    SCOPED_TRACE("leaves " + std::to_string(n));
    const std::vector<Hash32> leaves = Leaves(n);
    const MerkleTree tree(leaves);
    ASSERT_EQ(tree.leaves(), n);
    size_t longest = 0;
    for (size_t i = 0; i < n; ++i) {
      std::string hex;
      tree.proof_hex(i, hex);
      Result<std::vector<Hash32>> proof = parse_proof(hex);
      ASSERT_TRUE(proof.ok()) << proof.status().ToString();
      longest = std::max(longest, proof->size());
      EXPECT_EQ(fold_proof(leaves[i], *proof), tree.root()) << "leaf " << i;
      // Another leaf with this leaf's proof folds elsewhere.
      if (n > 1) {
        EXPECT_NE(fold_proof(leaves[(i + 1) % n], *proof), tree.root()) << "leaf " << i;
      }
    }
    size_t levels = 0;
    while ((size_t{1} << levels) < n) ++levels;
    EXPECT_EQ(longest, levels);  // ceil(log2 n): a carried-up node adds no level to its proof
  }
}

TEST(MerkleTest, TheRootIsTheSortedPairHashOfItsChildren) {
  const std::vector<Hash32> leaves = Leaves(3);
  // Level 1: h(l0, l1) and l2 carried up; the root hashes those two.
  std::array<uint8_t, 64> pair;
  std::copy_n(std::min(leaves[0], leaves[1]).begin(), 32, pair.begin());
  std::copy_n(std::max(leaves[0], leaves[1]).begin(), 32, pair.begin() + 32);
  const Hash32 left = keccak256(pair);
  EXPECT_EQ(hash_sorted_pair(leaves[0], leaves[1]), left);
  EXPECT_EQ(hash_sorted_pair(leaves[1], leaves[0]), left);
  EXPECT_EQ(MerkleTree(leaves).root(), hash_sorted_pair(left, leaves[2]));
  EXPECT_EQ(MerkleTree(std::vector<Hash32>{leaves[0]}).root(), leaves[0]);
}

TEST(MerkleTest, TheBatchDigestIsSeparateFromTheRootAndTheChain) {
  const Hash32 root = keccak256("root");
  EXPECT_NE(batch_digest(ObservationDomain(1), root), root);
  EXPECT_NE(batch_digest(ObservationDomain(1), root), batch_digest(ObservationDomain(5), root));
}

TEST(MerkleTest, ParseProofNamesWhatIsWrong) {
  EXPECT_TRUE(parse_proof("").ok());
  EXPECT_TRUE(parse_proof("").value().empty());
  const std::string one = to_hex_0x(keccak256("x"));
  ASSERT_EQ(parse_proof(one).value().size(), 1u);
  EXPECT_EQ(parse_proof(one + one.substr(2)).value().size(), 2u);
  EXPECT_THAT(parse_proof("0x").status().message(), HasSubstr("malformed proof hex"));
  EXPECT_THAT(parse_proof("0xabc").status().message(), HasSubstr("malformed proof hex"));
  EXPECT_THAT(parse_proof("0x" + std::string(64, 'g')).status().message(),
              HasSubstr("malformed proof hex"));
  EXPECT_THAT(parse_proof("0x" + std::string(62, 'a')).status().message(),
              HasSubstr("proof is 31 bytes, not a multiple of 32"));
  EXPECT_THAT(parse_proof("0x" + std::string(64 * 33, 'a')).status().message(),
              HasSubstr("proof has 33 levels, more than 32"));
}

}  // namespace
}  // namespace metronome
