#include "sign/keccak.h"

#include <cryptopp/keccak.h>

namespace metronome {

Hash32 keccak256(std::span<const uint8_t> data) {
  static_assert(CryptoPP::Keccak_256::DIGESTSIZE == std::tuple_size_v<Hash32>);
  CryptoPP::Keccak_256 hash;
  Hash32 out;
  hash.CalculateDigest(out.data(), data.data(), data.size());
  return out;
}

Hash32 keccak256(std::string_view text) {
  return keccak256(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

}  // namespace metronome
