#include "sign/merkle.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "common/hex.h"

namespace metronome {

Hash32 hash_sorted_pair(const Hash32& a, const Hash32& b) {
  std::array<uint8_t, 64> buf;
  const bool a_first = !(b < a);
  std::memcpy(buf.data(), (a_first ? a : b).data(), 32);
  std::memcpy(buf.data() + 32, (a_first ? b : a).data(), 32);
  return keccak256(buf);
}

Hash32 batch_digest(const ObservationDomain& domain, const Hash32& root) {
  static const Hash32 kTypeHash = keccak256(kObservationBatchType);
  std::array<uint8_t, 64> typed;
  std::memcpy(typed.data(), kTypeHash.data(), 32);
  std::memcpy(typed.data() + 32, root.data(), 32);
  const Hash32 struct_hash = keccak256(typed);
  std::array<uint8_t, 2 + 32 + 32> buf;
  buf[0] = 0x19;
  buf[1] = 0x01;
  std::memcpy(buf.data() + 2, domain.separator().data(), 32);
  std::memcpy(buf.data() + 34, struct_hash.data(), 32);
  return keccak256(buf);
}

MerkleTree::MerkleTree(std::span<const Hash32> leaves) : leaves_(leaves.size()) {
  nodes_.reserve(merkle_node_count(leaves.size()));
  nodes_.assign(leaves.begin(), leaves.end());
  for (size_t level_start = 0, level = leaves.size(); level > 1;
       level_start += level, level = (level + 1) / 2) {
    for (size_t i = 0; i + 1 < level; i += 2) {
      nodes_.push_back(hash_sorted_pair(nodes_[level_start + i], nodes_[level_start + i + 1]));
    }
    if (level % 2 == 1) nodes_.push_back(nodes_[level_start + level - 1]);  // carried up
  }
}

Result<std::vector<Hash32>> parse_proof(std::string_view text) {
  std::vector<Hash32> proof;
  if (text.empty()) return proof;
  std::string_view digits = text;
  if (digits.starts_with("0x") || digits.starts_with("0X")) digits.remove_prefix(2);
  if (digits.empty() || digits.size() % 2 != 0) {
    return Status::InvalidArgument("malformed proof hex");
  }
  const size_t bytes = digits.size() / 2;
  if (bytes % 32 != 0) {
    return Status::InvalidArgument(fmt::format("proof is {} bytes, not a multiple of 32", bytes));
  }
  if (bytes / 32 > kMaxProofLevels) {
    return Status::InvalidArgument(
        fmt::format("proof has {} levels, more than {}", bytes / 32, kMaxProofLevels));
  }
  proof.resize(bytes / 32);
  for (size_t l = 0; l < proof.size(); ++l) {
    if (parse_hex(digits.substr(64 * l, 64), proof[l]) != HexParse::kOk) {
      return Status::InvalidArgument("malformed proof hex");
    }
  }
  return proof;
}

Hash32 fold_proof(const Hash32& leaf, std::span<const Hash32> proof) {
  Hash32 node = leaf;
  for (const Hash32& sibling : proof) node = hash_sorted_pair(node, sibling);
  return node;
}

}  // namespace metronome
