#include "common/hex.h"

#include <cstdio>
#include <cstdlib>

namespace metronome {
namespace {

int hex_digit_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

void write_hex_0x(std::span<const uint8_t> bytes, std::span<char> out) {
  static constexpr char kDigits[] = "0123456789abcdef";
  if (out.size() != hex_0x_size(bytes.size())) {
    std::fprintf(stderr, "write_hex_0x: buffer of %zu chars for %zu bytes\n", out.size(),
                 bytes.size());
    std::abort();
  }
  out[0] = '0';
  out[1] = 'x';
  for (size_t i = 0; i < bytes.size(); ++i) {
    out[2 + 2 * i] = kDigits[bytes[i] >> 4];
    out[3 + 2 * i] = kDigits[bytes[i] & 0x0f];
  }
}

std::string to_hex_0x(std::span<const uint8_t> bytes) {
  std::string out(hex_0x_size(bytes.size()), '\0');
  write_hex_0x(bytes, out);
  return out;
}

HexParse parse_hex(std::string_view text, std::span<uint8_t> out) {
  if (text.size() >= 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    text.remove_prefix(2);
  }
  if (text.empty() || text.size() % 2 != 0) return HexParse::kMalformed;
  for (char c : text) {
    if (hex_digit_value(c) < 0) return HexParse::kMalformed;
  }
  if (text.size() / 2 != out.size()) return HexParse::kWrongLength;
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] =
        static_cast<uint8_t>(hex_digit_value(text[2 * i]) << 4 | hex_digit_value(text[2 * i + 1]));
  }
  return HexParse::kOk;
}

}  // namespace metronome
