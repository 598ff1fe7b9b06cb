#include "evm/eth_tx.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/hex.h"
#include "evm/rlp.h"

namespace metronome {
namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Multiplies v by m and adds a (both small); false on overflow.
bool mul_add(U256& v, uint32_t m, uint32_t a) {
  uint64_t carry = a;
  for (int i = 31; i >= 0; --i) {
    uint64_t x = uint64_t{v[static_cast<size_t>(i)]} * m + carry;
    v[static_cast<size_t>(i)] = static_cast<uint8_t>(x);
    carry = x >> 8;
  }
  return carry == 0;
}

void payload_fields(rlp::Bytes& p, const Eip1559Tx& tx) {
  rlp::append_uint(p, tx.chain_id);
  rlp::append_uint(p, tx.nonce);
  rlp::append_uint(p, tx.max_priority_fee_per_gas);
  rlp::append_uint(p, tx.max_fee_per_gas);
  rlp::append_uint(p, tx.gas_limit);
  if (tx.to) {
    rlp::append_string(p, tx.to->bytes);
  } else {
    rlp::append_string(p, {});
  }
  rlp::append_uint256(p, tx.value);
  rlp::append_string(p, tx.data);
  rlp::append_list(p, {});  // empty access list
}

}  // namespace

U256 u256(uint64_t v) {
  U256 out{};
  for (int i = 0; i < 8; ++i) out[31 - static_cast<size_t>(i)] = static_cast<uint8_t>(v >> (8 * i));
  return out;
}

Result<uint64_t> u256_to_u64(const U256& v) {
  if (std::any_of(v.begin(), v.begin() + 24, [](uint8_t b) { return b != 0; })) {
    return Status::InvalidArgument(fmt::format("{} does not fit in 64 bits", quantity_hex(v)));
  }
  uint64_t out = 0;
  for (size_t i = 24; i < 32; ++i) out = (out << 8) | v[i];
  return out;
}

double u256_to_double(const U256& v) {
  double out = 0;
  for (uint8_t b : v) out = out * 256.0 + b;
  return out;
}

std::string quantity_hex(const U256& v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out = "0x";
  bool started = false;
  for (uint8_t b : v) {
    for (int nibble : {b >> 4, b & 0xf}) {
      if (!started && nibble == 0) continue;
      started = true;
      out.push_back(kDigits[nibble]);
    }
  }
  if (!started) out.push_back('0');
  return out;
}

std::string quantity_hex(uint64_t v) {
  return fmt::format("0x{:x}", v);
}

Result<U256> parse_quantity(std::string_view text) {
  std::string_view digits = text;
  if (digits.starts_with("0x") || digits.starts_with("0X")) digits.remove_prefix(2);
  if (digits.empty() || digits.size() > 64 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return hex_digit(c) >= 0; })) {
    return Status::InvalidArgument(
        fmt::format("'{}' is not a hex quantity (0x and 1..64 hex digits)", text.substr(0, 80)));
  }
  U256 out{};
  for (char c : digits) mul_add(out, 16, static_cast<uint32_t>(hex_digit(c)));
  return out;
}

Result<uint64_t> parse_quantity_u64(std::string_view text) {
  METRONOME_ASSIGN_OR_RETURN(U256 v, parse_quantity(text));
  return u256_to_u64(v);
}

Result<Bytes> parse_data_hex(std::string_view text) {
  std::string_view digits = text;
  if (digits.starts_with("0x") || digits.starts_with("0X")) digits.remove_prefix(2);
  if (digits.size() % 2 != 0 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return hex_digit(c) >= 0; })) {
    return Status::InvalidArgument(
        fmt::format("'{}' is not hex data (0x and an even number of "
                    "hex digits)",
                    text.substr(0, 80)));
  }
  Bytes out(digits.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<uint8_t>(hex_digit(digits[2 * i]) * 16 + hex_digit(digits[2 * i + 1]));
  }
  return out;
}

std::string u256_decimal(const U256& v) {
  U256 x = v;
  std::string out;
  while (std::any_of(x.begin(), x.end(), [](uint8_t b) { return b != 0; })) {
    uint32_t rem = 0;
    for (uint8_t& b : x) {
      uint32_t cur = (rem << 8) | b;
      b = static_cast<uint8_t>(cur / 10);
      rem = cur % 10;
    }
    out.push_back(static_cast<char>('0' + rem));
  }
  if (out.empty()) return "0";
  std::reverse(out.begin(), out.end());
  return out;
}

Result<U256> parse_u256_decimal(std::string_view text) {
  if (text.empty() ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return Status::InvalidArgument(
        fmt::format("'{}' is not an unsigned decimal integer", text.substr(0, 80)));
  }
  U256 out{};
  for (char c : text) {
    if (!mul_add(out, 10, static_cast<uint32_t>(c - '0'))) {
      return Status::InvalidArgument(fmt::format("'{}' exceeds 2^256 - 1", text.substr(0, 80)));
    }
  }
  return out;
}

Bytes unsigned_payload(const Eip1559Tx& tx) {
  rlp::Bytes fields;
  payload_fields(fields, tx);
  Bytes out{0x02};
  rlp::append_list(out, fields);
  return out;
}

SignedTx sign_transaction(const Eip1559Tx& tx, const Signer& signer) {
  const Hash32 sighash = keccak256(unsigned_payload(tx));
  const Signature sig = signer.sign_digest(sighash);
  rlp::Bytes fields;
  payload_fields(fields, tx);
  rlp::append_uint(fields, static_cast<uint64_t>(sig[64] - 27));
  rlp::append_string(fields, rlp::minimal_bytes(std::span<const uint8_t>(sig.data(), 32)));
  rlp::append_string(fields, rlp::minimal_bytes(std::span<const uint8_t>(sig.data() + 32, 32)));
  SignedTx out;
  out.raw = {0x02};
  rlp::append_list(out.raw, fields);
  out.hash = keccak256(out.raw);
  return out;
}

Address contract_address(const Address& sender, uint64_t nonce) {
  rlp::Bytes fields;
  rlp::append_string(fields, sender.bytes);
  rlp::append_uint(fields, nonce);
  rlp::Bytes list;
  rlp::append_list(list, fields);
  Hash32 h = keccak256(list);
  Address a;
  std::copy(h.begin() + 12, h.end(), a.bytes.begin());
  return a;
}

}  // namespace metronome
