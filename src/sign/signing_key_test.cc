#include "sign/signing_key.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace metronome {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const SecretName kSecret("feed_key");
// The secp256k1 group order n.
constexpr std::string_view kOrderHex =
    "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141";

void ExpectRefused(std::string_view text) {
  Result<SigningKey> key = SigningKey::FromHex(kSecret, text);
  ASSERT_FALSE(key.ok()) << "accepted a bad key";
  EXPECT_EQ(key.status().code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(key.status().message(), HasSubstr("secret 'feed_key'"));
  if (text.size() >= 4) {
    // The message never quotes the key text (nor its hex body).
    std::string_view body = text.starts_with("0x") ? text.substr(2) : text;
    EXPECT_THAT(key.status().message(), Not(HasSubstr(std::string(body))));
  }
}

TEST(SigningKey, RefusesMalformedText) {
  ExpectRefused("");
  ExpectRefused("0x");
  ExpectRefused("abc");
  ExpectRefused(std::string(63, 'a'));
  ExpectRefused(std::string(65, 'a'));
  ExpectRefused(std::string(66, 'a'));
  ExpectRefused("0x" + std::string(62, '1'));
  ExpectRefused(std::string(63, '1') + "g");
  ExpectRefused("0x" + std::string(63, '1') + "z");
  ExpectRefused(std::string(32, '1') + " " + std::string(31, '1'));
}

TEST(SigningKey, RefusesZeroAndOrderAndAbove) {
  ExpectRefused(std::string(64, '0'));
  ExpectRefused("0x" + std::string(64, '0'));
  ExpectRefused(kOrderHex);                                          // n
  ExpectRefused("0x" + std::string(kOrderHex.substr(0, 63)) + "2");  // n + 1
  ExpectRefused(std::string(64, 'f'));

  EXPECT_THAT(SigningKey::FromHex(kSecret, std::string(64, '0')).status().message(),
              HasSubstr("zero"));
  EXPECT_THAT(SigningKey::FromHex(kSecret, kOrderHex).status().message(), HasSubstr("group order"));
}

TEST(SigningKey, AcceptsOneAndOrderMinusOne) {
  Result<SigningKey> one = SigningKey::FromHex(kSecret, std::string(63, '0') + "1");
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  // ethers: new Wallet(1).address
  EXPECT_EQ(to_checksum_address(one->address()), "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf");

  Result<SigningKey> n_minus_1 =
      SigningKey::FromHex(kSecret, "0x" + std::string(kOrderHex.substr(0, 63)) + "0");
  ASSERT_TRUE(n_minus_1.ok()) << n_minus_1.status().ToString();
  EXPECT_EQ(n_minus_1->secret_name(), kSecret);
}

TEST(SigningKey, AcceptsPrefixCaseAndSurroundingWhitespace) {
  // The key from web3.js's documentation, with its well-known address.
  const std::string hex = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
  const std::vector<std::string> texts = {
      hex, "0x" + hex, "0X" + hex, "  0x" + hex + "\n",
      "4C0883A69102937D6231471B5DBB6204FE5129617082792AE468D01A3F362318"};
  for (const std::string& text : texts) {
    Result<SigningKey> key = SigningKey::FromHex(kSecret, text);
    ASSERT_TRUE(key.ok()) << key.status().ToString();
    EXPECT_EQ(to_checksum_address(key->address()), "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23");
  }
}

TEST(SigningKey, MoveWipesTheSource) {
  Result<SigningKey> key = SigningKey::FromHex(kSecret, std::string(63, '0') + "7");
  ASSERT_TRUE(key.ok());
  SigningKey moved = std::move(*key);
  EXPECT_EQ(moved.secret_bytes()[31], 7);
  std::array<uint8_t, 32> zero{};
  EXPECT_EQ(key->secret_bytes(), zero);  // NOLINT(bugprone-use-after-move): checking the wipe
}

// The examples of EIP-55 (https://eips.ethereum.org/EIPS/eip-55).
const char* const kEip55Examples[] = {
    "0x52908400098527886E0F7030069857D2E4169EE7", "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
    "0xde709f2102306220921060314715629080e2fb77", "0x27b1fdb04752bbc536007a920d24acb045561c26",
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB", "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
};

TEST(Address, FormatsEip55Examples) {
  for (std::string_view example : kEip55Examples) {
    std::string lower(example);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    Result<Address> address = parse_address(lower);
    ASSERT_TRUE(address.ok()) << address.status().ToString();
    EXPECT_EQ(to_checksum_address(*address), example);
    EXPECT_EQ(fmt::format("{}", *address), example);
  }
}

TEST(Address, ParsesSingleCaseAndCorrectChecksumOnly) {
  EXPECT_TRUE(parse_address("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed").ok());
  EXPECT_TRUE(parse_address("0x5AAEB6053F3E94C9B9A09F33669435E7EF1BEAED").ok());
  Result<Address> wrong = parse_address("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD");
  ASSERT_FALSE(wrong.ok());
  EXPECT_THAT(wrong.status().message(), HasSubstr("checksum"));
  EXPECT_FALSE(parse_address("5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed").ok());
  EXPECT_FALSE(parse_address("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeA").ok());
  EXPECT_FALSE(parse_address("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeg").ok());
}

TEST(GenerateSigningKey, ProducesDistinctValidKeys) {
  std::set<std::string> seen;
  for (int i = 0; i < 20; ++i) {
    Result<std::string> hex = generate_signing_key_hex();
    ASSERT_TRUE(hex.ok()) << hex.status().ToString();
    EXPECT_EQ(hex->size(), 64u);
    EXPECT_EQ(hex->find_first_not_of("0123456789abcdef"), std::string::npos);
    EXPECT_TRUE(SigningKey::FromHex(kSecret, *hex).ok());
    seen.insert(*hex);
  }
  EXPECT_EQ(seen.size(), 20u);
}

}  // namespace
}  // namespace metronome
