// The EIP-712 digest that Metronome signs for a published value.
//
//   domain: EIP712Domain(string name,string version,uint256 chainId)
//           {name: "Metronome", version: "1", chainId}            (no verifyingContract, no salt)
//   type:   Observation(bytes32 feedId,uint64 round,uint64 timestampMs,int256 value)
//           feedId      = keccak256(UTF-8 bytes of the feed id)
//           round       = the record's round
//           timestampMs = the slot time, milliseconds since the Unix epoch
//           value       = the record's decimal text scaled by 10^decimals, exactly
//   digest  = keccak256(0x19 0x01 ‖ domainSeparator ‖ hashStruct(observation))
//
// This is what ethers' TypedDataEncoder.hash computes for the same domain, types and values, and
// what a contract recomputes before `ecrecover`. The type hash is computed once per process; a
// domain separator once per ObservationDomain (keep one per chain id, e.g. per feed). Everything
// here is pure and thread-safe, and computing a digest does not allocate (only errors do).
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "common/ids.h"
#include "common/result.h"
#include "sign/keccak.h"
#include "store/records.h"

namespace metronome {

inline constexpr std::string_view kEip712DomainType =
    "EIP712Domain(string name,string version,uint256 chainId)";
inline constexpr std::string_view kObservationType =
    "Observation(bytes32 feedId,uint64 round,uint64 timestampMs,int256 value)";
inline constexpr std::string_view kDomainName = "Metronome";
inline constexpr std::string_view kDomainVersion = "1";

// One 32-byte EVM word, big-endian; signed values are two's complement.
using Word256 = std::array<uint8_t, 32>;

// The word of an unsigned integer (uint64, uint256 with a small value).
Word256 uint256_word(uint64_t v);

// Scales decimal text by 10^decimals into an int256, exactly (no floating point anywhere):
// ("12.5", 2) -> 1250, ("-1", 0) -> 0xff..ff, ("0.000000000000000001", 18) -> 1.
// Accepted text: an optional '-', one or more digits, optionally '.' and one or more digits.
// Fraction digits beyond `decimals` must be zeros ("12.50" with decimals 1 is 125; "12.55" is an
// error: a value is never rounded). kInvalidArgument, naming the text, when the text is not such a
// number, decimals < 0, a nonzero digit lies beyond `decimals`, or the result is outside
// [-2^255, 2^255 - 1].
Result<Word256> scale_to_int256(std::string_view text, int decimals);

// keccak256(kObservationType), computed on first use.
const Hash32& observation_type_hash();

// The EIP-712 domain {name: "Metronome", version: "1", chainId}, with its separator precomputed.
class ObservationDomain {
 public:
  explicit ObservationDomain(uint64_t chain_id);

  [[nodiscard]] uint64_t chain_id() const { return chain_id_; }
  [[nodiscard]] const Hash32& separator() const { return separator_; }

 private:
  uint64_t chain_id_;
  Hash32 separator_;
};

// The typed values of one Observation, ready to hash.
struct Observation {
  Hash32 feed_id{};  // keccak256 of the feed id's UTF-8 bytes
  uint64_t round = 0;
  uint64_t timestamp_ms = 0;
  Word256 value{};  // int256, two's complement

  friend bool operator==(const Observation&, const Observation&) = default;
};

// The Observation a record stands for: feed, round, slot, value and decimals of the record.
// kInvalidArgument naming the field when round or slot is negative, or the value does not scale
// (see scale_to_int256). `feed_id_hash`: keccak256 of record.feed when the caller keeps it
// (a feed's FeedSigner does), so that it is not hashed again for every record; null computes it.
Result<Observation> observation_from_record(const ValueRecord& record,
                                            const Hash32* feed_id_hash = nullptr);

// hashStruct(observation) = keccak256(typeHash ‖ feedId ‖ round ‖ timestampMs ‖ value).
Hash32 observation_struct_hash(const Observation& observation);
// The digest that is signed.
Hash32 observation_digest(const ObservationDomain& domain, const Observation& observation);
// observation_digest(domain, observation_from_record(record)).
Result<Hash32> record_digest(const ObservationDomain& domain, const ValueRecord& record);

}  // namespace metronome
