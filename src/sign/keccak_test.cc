#include "sign/keccak.h"

#include <gtest/gtest.h>

#include <string>

#include "common/hex.h"

namespace metronome {
namespace {

std::string keccak_hex(std::string_view text) {
  return to_hex_0x(keccak256(text));
}

TEST(Keccak256, KnownAnswers) {
  EXPECT_EQ(keccak_hex(""), "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470");
  EXPECT_EQ(keccak_hex("abc"),
            "0x4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45");
  // The EIP-712 domain type hash that every Solidity EIP712 contract hard-codes.
  EXPECT_EQ(keccak_hex("EIP712Domain(string name,string version,uint256 chainId,address "
                       "verifyingContract)"),
            "0x8b73c3c69bb8fe3d512ecc4cf759cc79239f7b179b0ffacaa9a75d522b39400f");
}

TEST(Keccak256, IsNotSha3_256) {
  // SHA3-256("") is a7ffc6f8...; Ethereum's Keccak differs only in padding.
  EXPECT_NE(keccak_hex(""), "0xa7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a");
}

TEST(Keccak256, BytesAndTextAgree) {
  std::string text(1000, 'x');  // several 136-byte blocks
  std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(text.data()), text.size());
  EXPECT_EQ(keccak256(bytes), keccak256(std::string_view(text)));
}

TEST(Hex, FormatsLowercaseWithPrefix) {
  std::array<uint8_t, 3> bytes = {0x00, 0xab, 0xFF};
  EXPECT_EQ(to_hex_0x(bytes), "0x00abff");
  std::array<char, 8> fixed = hex_0x_array(bytes);
  EXPECT_EQ(std::string_view(fixed.data(), fixed.size()), "0x00abff");
  EXPECT_EQ(to_hex_0x(std::span<const uint8_t>()), "0x");
}

TEST(Hex, ParsesExactLengthAndReportsWhatIsWrong) {
  std::array<uint8_t, 2> out{};
  EXPECT_EQ(parse_hex("0xABcd", out), HexParse::kOk);
  EXPECT_EQ(out[0], 0xab);
  EXPECT_EQ(out[1], 0xcd);
  EXPECT_EQ(parse_hex("abcd", out), HexParse::kOk);
  EXPECT_EQ(parse_hex("0Xabcd", out), HexParse::kOk);
  EXPECT_EQ(parse_hex("0xabc", out), HexParse::kMalformed);
  EXPECT_EQ(parse_hex("0xabcg", out), HexParse::kMalformed);
  EXPECT_EQ(parse_hex("0x", out), HexParse::kMalformed);
  EXPECT_EQ(parse_hex("", out), HexParse::kMalformed);
  EXPECT_EQ(parse_hex(" abcd", out), HexParse::kMalformed);
  EXPECT_EQ(parse_hex("0xabcdef", out), HexParse::kWrongLength);
  EXPECT_EQ(parse_hex("0xab", out), HexParse::kWrongLength);
}

}  // namespace
}  // namespace metronome
