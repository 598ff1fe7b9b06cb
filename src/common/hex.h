// Hex text of byte strings, as Ethereum tools print it: "0x" and lowercase digits.
//
// Formatting into a caller's fixed buffer never allocates, which keeps signing off the heap (see
// signer.h). Pure and thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace metronome {

// The text length of `bytes` bytes with its "0x" prefix.
constexpr size_t hex_0x_size(size_t bytes) {
  return 2 + 2 * bytes;
}

// Writes "0x" and 2 * bytes.size() lowercase digits to out.
// REQUIRES: out.size() == hex_0x_size(bytes.size()).
void write_hex_0x(std::span<const uint8_t> bytes, std::span<char> out);

// The same into a fixed array, for N known at compile time (no allocation).
template <size_t N>
std::array<char, hex_0x_size(N)> hex_0x_array(const std::array<uint8_t, N>& bytes) {
  std::array<char, hex_0x_size(N)> out;
  write_hex_0x(bytes, out);
  return out;
}

// Allocating convenience for logs, tests and the CLI.
std::string to_hex_0x(std::span<const uint8_t> bytes);

enum class HexParse {
  kOk,
  kMalformed,    // empty after the prefix, an odd number of digits, or a non-hex character
  kWrongLength,  // well-formed hex of a byte count other than out.size()
};
// Parses hex text of exactly out.size() bytes, with an optional "0x"/"0X" prefix and digits of
// either case. On anything but kOk the contents of out are unspecified.
HexParse parse_hex(std::string_view text, std::span<uint8_t> out);

}  // namespace metronome
