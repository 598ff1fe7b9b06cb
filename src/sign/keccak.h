// Keccak-256 as Ethereum uses it: the original Keccak padding (0x01), not FIPS-202 SHA3-256 (0x06).
//
// Every hash in an EIP-712 digest, an address and an EIP-55 checksum is this function. Pure,
// thread-safe, and it does not allocate (the sponge state lives on the stack).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

namespace metronome {

// 32 bytes, big-endian as printed: a hash, a digest, an EVM word.
using Hash32 = std::array<uint8_t, 32>;

Hash32 keccak256(std::span<const uint8_t> data);
// The bytes of `text` as they are (UTF-8 for feed ids); no terminator.
Hash32 keccak256(std::string_view text);

}  // namespace metronome
