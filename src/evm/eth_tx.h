// EIP-1559 (type 2) transactions: built, RLP-encoded and signed in-process.
//
//   unsigned:  0x02 ‖ rlp([chainId, nonce, maxPriorityFeePerGas, maxFeePerGas, gasLimit, to,
//                          value, data, accessList])
//   signed:    0x02 ‖ rlp([... the same nine ..., yParity, r, s])
//   sighash = keccak256(unsigned); hash = keccak256(signed)
//
// The signature is libsecp256k1's (sign/signer.h): deterministic (RFC 6979) and low-s, so the
// same transaction signed twice is the same bytes — re-sending it is idempotent. Pure and
// thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "sign/keccak.h"
#include "sign/signer.h"
#include "sign/signing_key.h"

namespace metronome {

using Bytes = std::vector<uint8_t>;
// A 256-bit unsigned integer, big-endian (an EVM word).
using U256 = std::array<uint8_t, 32>;

U256 u256(uint64_t v);
// The low 64 bits; kInvalidArgument when the value does not fit.
Result<uint64_t> u256_to_u64(const U256& v);
// An approximation for metrics and messages (balances in ether).
double u256_to_double(const U256& v);
// "0x1a" (JSON-RPC quantity: no leading zeros; zero is "0x0").
std::string quantity_hex(const U256& v);
std::string quantity_hex(uint64_t v);
// Parses a JSON-RPC quantity "0x..." (up to 64 digits). kInvalidArgument naming the text.
Result<U256> parse_quantity(std::string_view text);
Result<uint64_t> parse_quantity_u64(std::string_view text);
// Parses "0x" + even number of hex digits ("0x" alone is empty data).
Result<Bytes> parse_data_hex(std::string_view text);
// Decimal text of a U256 ("1000000000").
std::string u256_decimal(const U256& v);
// Parses unsigned decimal text into a U256; kInvalidArgument when malformed or too large.
Result<U256> parse_u256_decimal(std::string_view text);

struct Eip1559Tx {
  uint64_t chain_id = 1;
  uint64_t nonce = 0;
  uint64_t max_priority_fee_per_gas = 0;  // wei
  uint64_t max_fee_per_gas = 0;           // wei
  uint64_t gas_limit = 0;
  std::optional<Address> to;  // none: contract creation
  U256 value{};
  Bytes data;
};

// The unsigned serialisation (what is hashed for the signature).
Bytes unsigned_payload(const Eip1559Tx& tx);

struct SignedTx {
  Bytes raw;    // 0x02 ‖ rlp(...), what eth_sendRawTransaction takes
  Hash32 hash;  // keccak256(raw), the transaction hash
};

// Signs with `signer`'s key (v of its 65-byte signature becomes yParity = v - 27).
SignedTx sign_transaction(const Eip1559Tx& tx, const Signer& signer);

// The address of the contract that `sender` creates with transaction nonce `nonce`:
// keccak256(rlp([sender, nonce]))[12:].
Address contract_address(const Address& sender, uint64_t nonce);

}  // namespace metronome
