// RLP (Recursive Length Prefix), the serialisation of Ethereum transactions (Yellow Paper,
// appendix B).
//
// Debian 12 packages no RLP library, so this is written here, deliberately small: only the encoder
// (Metronome builds transactions; it never needs to parse one), and every encoding is
// cross-checked byte for byte against ethers (evm/ethers_tx_test.cc).
//
//   a byte string s:  one byte < 0x80            -> itself
//                     0..55 bytes                -> 0x80 + len, s
//                     more                       -> 0xb7 + len(len), len (big-endian), s
//   a list of items:  payload (the concatenated encodings) of 0..55 bytes -> 0xc0 + len, payload
//                     more                       -> 0xf7 + len(len), len, payload
//   an integer:       its big-endian bytes without leading zeros (zero is the empty string)
//
// Pure and thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

namespace metronome::rlp {

using Bytes = std::vector<uint8_t>;

// Appends the encoding of the byte string `s` to out.
void append_string(Bytes& out, std::span<const uint8_t> s);
// Appends the encoding of an unsigned integer (minimal big-endian bytes).
void append_uint(Bytes& out, uint64_t v);
// Appends the encoding of a 256-bit unsigned integer given big-endian (leading zeros dropped).
void append_uint256(Bytes& out, const std::array<uint8_t, 32>& big_endian);
// Appends a list header and then `payload` (the concatenated encodings of the list's items).
void append_list(Bytes& out, std::span<const uint8_t> payload);

// The integer's minimal big-endian bytes (empty for zero).
Bytes minimal_bytes(uint64_t v);
Bytes minimal_bytes(std::span<const uint8_t> big_endian);

}  // namespace metronome::rlp
