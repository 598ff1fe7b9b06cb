#include "store/signature_batch.h"

#include <cassert>
#include <cstring>

#include "common/hex.h"

namespace metronome {

size_t merkle_node_count(size_t leaves) {
  assert(leaves > 0);
  size_t total = 0;
  for (size_t level = leaves; level > 1; level = (level + 1) / 2) total += level;
  return total + 1;
}

void merkle_proof_hex(std::span<const MerkleNode> nodes, size_t leaves, size_t leaf,
                      std::string& out) {
  assert(nodes.size() == merkle_node_count(leaves) && leaf < leaves);
  out.clear();
  // First pass counts the siblings (the text is sized once), the second writes them.
  for (int pass = 0; pass < 2; ++pass) {
    size_t written = 0;
    size_t level_start = 0;
    for (size_t level = leaves, at = leaf; level > 1;
         level_start += level, level = (level + 1) / 2, at /= 2) {
      const size_t sibling = at ^ 1;
      if (sibling >= level) continue;  // carried up: no sibling on this level
      if (pass == 1) {
        std::array<char, hex_0x_size(32)> hex = hex_0x_array(nodes[level_start + sibling]);
        std::memcpy(out.data() + 2 + 64 * written, hex.data() + 2, 64);
      }
      ++written;
    }
    if (written == 0) return;
    if (pass == 0) {
      out.assign(hex_0x_size(32 * written), '0');
      out[1] = 'x';
    }
  }
}

}  // namespace metronome
