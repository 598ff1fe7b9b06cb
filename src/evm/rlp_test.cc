#include "evm/rlp.h"

#include <gtest/gtest.h>

#include <string>

#include "common/hex.h"
#include "evm/abi.h"
#include "evm/eth_tx.h"

namespace metronome {
namespace {

std::string Str(std::string_view s) {
  rlp::Bytes out;
  rlp::append_string(
      out, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
  return to_hex_0x(out);
}
std::string Uint(uint64_t v) {
  rlp::Bytes out;
  rlp::append_uint(out, v);
  return to_hex_0x(out);
}

// The examples of the Ethereum wiki's RLP page.
TEST(RlpTest, WikiExamples) {
  EXPECT_EQ(Str("dog"), "0x83646f67");
  EXPECT_EQ(Str(""), "0x80");
  EXPECT_EQ(Str("\x0f"), "0x0f");
  EXPECT_EQ(Str("\x7f"), "0x7f");
  EXPECT_EQ(Str("\x80"), "0x8180");
  EXPECT_EQ(Uint(0), "0x80");
  EXPECT_EQ(Uint(15), "0x0f");
  EXPECT_EQ(Uint(1024), "0x820400");
  EXPECT_EQ(Str("Lorem ipsum dolor sit amet, consectetur adipisicing elit"),
            "0xb8384c6f72656d20697073756d20646f6c6f722073697420616d65742c20636f6e7365637465747572"
            "206164697069736963696e6720656c6974");
  rlp::Bytes items, list;
  rlp::append_string(items, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>("cat"), 3));
  rlp::append_string(items, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>("dog"), 3));
  rlp::append_list(list, items);
  EXPECT_EQ(to_hex_0x(list), "0xc88363617483646f67");
  rlp::Bytes empty;
  rlp::append_list(empty, {});
  EXPECT_EQ(to_hex_0x(empty), "0xc0");
}

TEST(RlpTest, LongListHeader) {
  rlp::Bytes payload(1024, 0x01), out;
  rlp::append_list(out, payload);
  ASSERT_EQ(out.size(), 1027u);
  EXPECT_EQ(out[0], 0xf9);
  EXPECT_EQ(out[1], 0x04);
  EXPECT_EQ(out[2], 0x00);
}

TEST(QuantityTest, RoundTripsAndRefusesBadText) {
  EXPECT_EQ(quantity_hex(u256(0)), "0x0");
  EXPECT_EQ(quantity_hex(u256(0x1a2b)), "0x1a2b");
  EXPECT_EQ(*parse_quantity_u64("0x1a2b"), 0x1a2bu);
  EXPECT_FALSE(parse_quantity("0x").ok());
  EXPECT_FALSE(parse_quantity("0xzz").ok());
  EXPECT_FALSE(parse_quantity_u64("0x10000000000000000").ok());
  EXPECT_EQ(u256_decimal(*parse_u256_decimal("1000000000000000000000")), "1000000000000000000000");
  EXPECT_FALSE(parse_u256_decimal("-1").ok());
  EXPECT_EQ(parse_data_hex("0x").value().size(), 0u);
  EXPECT_FALSE(parse_data_hex("0x123").ok());
}

TEST(AbiTest, DecimalTextOfInt256) {
  U256 minus_one;
  minus_one.fill(0xff);
  EXPECT_EQ(abi::int256_to_decimal_text(minus_one, 0), "-1");
  EXPECT_EQ(abi::int256_to_decimal_text(minus_one, 2), "-0.01");
  EXPECT_EQ(abi::int256_to_decimal_text(u256(1250), 2), "12.5");
  EXPECT_EQ(abi::int256_to_decimal_text(u256(0), 18), "0");
  EXPECT_EQ(abi::int256_to_decimal_text(u256(1), 18), "0.000000000000000001");
}

TEST(AbiTest, DecodesObservationAndRevertReason) {
  Bytes data;
  for (uint64_t v : {7ull, 1700000000000ull, 537ull, 1700000001ull}) {
    U256 w = u256(v);
    data.insert(data.end(), w.begin(), w.end());
  }
  Result<abi::LatestObservation> o = abi::decode_latest_observation(data);
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->round, 7u);
  EXPECT_EQ(o->timestamp_ms, 1700000000000u);
  EXPECT_EQ(abi::int256_to_decimal_text(o->value, 0), "537");
  data.pop_back();
  EXPECT_FALSE(abi::decode_latest_observation(data).ok());

  // Error("not newer") as solc emits it.
  Bytes revert = *parse_data_hex(
      "0x08c379a000000000000000000000000000000000000000000000000000000000000000200000000000000000"
      "0000000000000000000000000000000000000000000000096e6f74206e657765720000000000000000000000"
      "000000000000000000000000");
  EXPECT_EQ(abi::revert_reason(revert), "not newer");
  EXPECT_EQ(abi::revert_reason(Bytes{1, 2, 3}), "");
}

}  // namespace
}  // namespace metronome
