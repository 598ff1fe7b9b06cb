// ABI encoding of MetronomeFeed's calls (contracts/MetronomeFeed.sol) and decoding of what
// Metronome reads back. Only the types these calls use: bytes32, uint*, int256, bool, address,
// bytes, string and the dynamic tuple array of submitBatch. Cross-checked against ethers'
// Interface.encodeFunctionData (evm/ethers_tx_test.cc). Pure and thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "evm/eth_tx.h"
#include "sign/keccak.h"
#include "sign/signing_key.h"

namespace metronome::abi {

inline constexpr std::string_view kSubmit = "submit(bytes32,uint64,uint64,int256,bytes)";
inline constexpr std::string_view kSubmitBatch =
    "submitBatch((bytes32,uint64,uint64,int256,bytes)[])";
inline constexpr std::string_view kSetSigner = "setSigner(address,bool)";
inline constexpr std::string_view kConfigureFeed = "configureFeed(bytes32,uint8,string)";
inline constexpr std::string_view kLatestRoundData = "latestRoundData(bytes32)";
inline constexpr std::string_view kLatestObservation = "latestObservation(bytes32)";
inline constexpr std::string_view kDecimals = "decimals(bytes32)";
inline constexpr std::string_view kDescription = "description(bytes32)";

// The first 4 bytes of keccak256(signature).
std::array<uint8_t, 4> selector(std::string_view signature);

// One signed observation as submit() takes it.
struct Submission {
  Hash32 feed_id{};
  uint64_t round = 0;
  uint64_t timestamp_ms = 0;
  U256 value{};  // int256, two's complement
  Bytes signature;
};

Bytes encode_submit(const Submission& s);
Bytes encode_submit_batch(std::span<const Submission> items);
Bytes encode_set_signer(const Address& signer, bool allowed);
Bytes encode_configure_feed(const Hash32& feed_id, uint8_t decimals, std::string_view description);
// A view function taking one bytes32 (latestRoundData, latestObservation, decimals, description).
Bytes encode_feed_call(std::string_view signature, const Hash32& feed_id);
// The constructor's arguments, appended to the creation bytecode.
Bytes encode_constructor(uint64_t max_future_ms);

// The 32-byte words of return data; kInvalidArgument when its length is not a multiple of 32.
Result<std::vector<U256>> words(std::span<const uint8_t> data);

struct LatestObservation {
  uint64_t round = 0;
  uint64_t timestamp_ms = 0;
  U256 value{};             // int256
  uint64_t updated_at = 0;  // block time, seconds
};
Result<LatestObservation> decode_latest_observation(std::span<const uint8_t> data);

struct RoundData {
  uint64_t round_id = 0;
  U256 answer{};
  uint64_t started_at = 0;
  uint64_t updated_at = 0;
  uint64_t answered_in_round = 0;
};
Result<RoundData> decode_round_data(std::span<const uint8_t> data);
// A returned string (offset, length, bytes).
Result<std::string> decode_string(std::span<const uint8_t> data);
// "unauthorised signer" from Error(string) revert data; empty when it is not that form.
std::string revert_reason(std::span<const uint8_t> data);

// An int256 word as decimal text divided by 10^decimals: (0xff..ff, 0) -> "-1",
// (1250, 2) -> "12.5".
std::string int256_to_decimal_text(const U256& word, int decimals);

}  // namespace metronome::abi
