// A batch signature as the stores keep it (ADR 0018): one signature, and every node of the
// Merkle tree over the batch's record digests, so that a record's digest and proof are read back
// from its leaf index without hashing. sign/merkle.h builds the tree (it has the hash); this is
// its layout, shared by the signer that writes it and the stores that read it.
//
// Layout: the nodes level by level, leaves first and the root last. Each level pairs the nodes
// below it in order; a level with an odd count carries its last node up as it is. A leaf's proof
// is its sibling on each level from the leaf up, skipping a level where it was carried up.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace metronome {

using MerkleNode = std::array<uint8_t, 32>;

// How many nodes a tree over `leaves` leaves has (2 * leaves - 1 at most). REQUIRES: leaves > 0.
size_t merkle_node_count(size_t leaves);

// Leaf i's proof as "0x" + 64 hex digits per sibling node; empty text when it has none (one leaf).
// REQUIRES: nodes.size() == merkle_node_count(leaves), leaf < leaves.
void merkle_proof_hex(std::span<const MerkleNode> nodes, size_t leaves, size_t leaf,
                      std::string& out);

struct SignatureBatch {
  std::string signature;          // "0x" + 130 hex digits: r, s, v over the root's digest
  size_t leaves = 0;              // the records' digests are nodes[0 .. leaves)
  std::vector<MerkleNode> nodes;  // merkle_node_count(leaves) nodes; nodes.back() is the root

  const MerkleNode& root() const { return nodes.back(); }
};

}  // namespace metronome
