// Batch signatures: one secp256k1 signature over the Merkle root of several records' digests
// (ADR 0018, `[service] sign_batch`).
//
//   leaf      = the record's EIP-712 Observation digest (eip712.h), what `digest` already holds
//   node      = keccak256(min(a, b) ‖ max(a, b))   (sorted pair: OpenZeppelin's MerkleProof)
//   root      = the node above every leaf; a level with an odd count carries its last node up
//   signed    = keccak256(0x19 0x01 ‖ domainSeparator ‖ keccak256(typeHash ‖ root)),
//               typeHash = keccak256("ObservationBatch(bytes32 root)"), the same domain as the
//               records': the EIP-712 digest of an ObservationBatch, so a signature over a root
//               is never a signature over an observation, and the reverse.
//   proof     = the sibling hashes from the leaf up (a level where the node had none adds none)
//
// A record with an empty `proof` is signed alone (its signature is over its digest). A record
// with a proof is checked by folding its digest with the proof into the root and recovering the
// signer from the ObservationBatch digest of that root; a contract does the same with
// `MerkleProof.processProof` and `ecrecover`. Pure and thread-safe.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "sign/eip712.h"
#include "sign/keccak.h"
#include "store/signature_batch.h"

namespace metronome {

inline constexpr std::string_view kObservationBatchType = "ObservationBatch(bytes32 root)";

// Proofs longer than this are refused when parsed: 32 levels hold 2^32 leaves, far more than a
// batch ever has.
inline constexpr size_t kMaxProofLevels = 32;

// keccak256 of the two hashes in ascending byte order.
Hash32 hash_sorted_pair(const Hash32& a, const Hash32& b);

// The EIP-712 digest of ObservationBatch(root) in `domain`: what a batch's signature signs.
Hash32 batch_digest(const ObservationDomain& domain, const Hash32& root);

// The tree over `leaves`, every node kept (store/signature_batch.h's layout), so that each
// leaf's proof is read without hashing.
class MerkleTree {
 public:
  // REQUIRES: !leaves.empty().
  explicit MerkleTree(std::span<const Hash32> leaves);

  [[nodiscard]] const Hash32& root() const { return nodes_.back(); }
  [[nodiscard]] size_t leaves() const { return leaves_; }
  // Every node, leaves first and the root last (SignatureBatch::nodes).
  [[nodiscard]] const std::vector<Hash32>& nodes() const { return nodes_; }
  // Leaf i's proof as "0x" + 64 hex digits per sibling hash (empty text for a single leaf).
  // REQUIRES: i < leaves().
  void proof_hex(size_t i, std::string& out) const { merkle_proof_hex(nodes_, leaves_, i, out); }

 private:
  size_t leaves_;
  std::vector<Hash32> nodes_;
};

// Parses a proof's text ("0x" + 64 hex digits per hash; "" is no proof). kInvalidArgument naming
// what is wrong: "malformed proof hex", "proof is N bytes, not a multiple of 32", or "proof has N
// levels, more than 32".
Result<std::vector<Hash32>> parse_proof(std::string_view text);

// The root that `leaf` and `proof` fold into.
Hash32 fold_proof(const Hash32& leaf, std::span<const Hash32> proof);

}  // namespace metronome
