#include "evm/rlp.h"

namespace metronome::rlp {
namespace {

// The header of a string (offset 0x80) or list (offset 0xc0) whose payload is `len` bytes.
void append_header(Bytes& out, size_t len, uint8_t offset) {
  if (len <= 55) {
    out.push_back(static_cast<uint8_t>(offset + len));
    return;
  }
  Bytes len_bytes = minimal_bytes(static_cast<uint64_t>(len));
  out.push_back(static_cast<uint8_t>(offset + 55 + len_bytes.size()));
  out.insert(out.end(), len_bytes.begin(), len_bytes.end());
}

}  // namespace

Bytes minimal_bytes(uint64_t v) {
  Bytes b;
  for (int shift = 56; shift >= 0; shift -= 8) {
    uint8_t byte = static_cast<uint8_t>(v >> shift);
    if (b.empty() && byte == 0) continue;
    b.push_back(byte);
  }
  return b;
}

Bytes minimal_bytes(std::span<const uint8_t> big_endian) {
  size_t i = 0;
  while (i < big_endian.size() && big_endian[i] == 0) ++i;
  return Bytes(big_endian.begin() + static_cast<std::ptrdiff_t>(i), big_endian.end());
}

void append_string(Bytes& out, std::span<const uint8_t> s) {
  if (s.size() == 1 && s[0] < 0x80) {
    out.push_back(s[0]);
    return;
  }
  append_header(out, s.size(), 0x80);
  out.insert(out.end(), s.begin(), s.end());
}

void append_uint(Bytes& out, uint64_t v) {
  append_string(out, minimal_bytes(v));
}

void append_uint256(Bytes& out, const std::array<uint8_t, 32>& big_endian) {
  append_string(out, minimal_bytes(big_endian));
}

void append_list(Bytes& out, std::span<const uint8_t> payload) {
  append_header(out, payload.size(), 0xc0);
  out.insert(out.end(), payload.begin(), payload.end());
}

}  // namespace metronome::rlp
