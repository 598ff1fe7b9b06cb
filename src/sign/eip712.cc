#include "sign/eip712.h"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <cstring>

namespace metronome {
namespace {

// 256-bit unsigned magnitude in four 64-bit limbs, least significant first.
struct U256 {
  std::array<uint64_t, 4> limb{};

  // this = this * 10 + digit; false when the result does not fit in 256 bits.
  bool mul10_add(unsigned digit) {
    unsigned __int128 carry = digit;
    for (uint64_t& l : limb) {
      unsigned __int128 t = static_cast<unsigned __int128>(l) * 10 + carry;
      l = static_cast<uint64_t>(t);
      carry = t >> 64;
    }
    return carry == 0;
  }
  bool is_zero() const { return (limb[0] | limb[1] | limb[2] | limb[3]) == 0; }
  bool top_bit() const { return (limb[3] >> 63) != 0; }
  bool is_two_pow_255() const {
    return limb[3] == (uint64_t{1} << 63) && (limb[0] | limb[1] | limb[2]) == 0;
  }
  void negate() {  // two's complement: ~x + 1
    unsigned __int128 carry = 1;
    for (uint64_t& l : limb) {
      unsigned __int128 t = static_cast<unsigned __int128>(~l) + carry;
      l = static_cast<uint64_t>(t);
      carry = t >> 64;
    }
  }
  Word256 to_word() const {
    Word256 w;
    for (size_t i = 0; i < 4; ++i) {
      uint64_t l = limb[3 - i];
      for (size_t b = 0; b < 8; ++b) w[8 * i + b] = static_cast<uint8_t>(l >> (56 - 8 * b));
    }
    return w;
  }
};

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

Status not_a_number(std::string_view text) {
  return Status::InvalidArgument(fmt::format(
      "value '{}' is not a decimal number (digits, optional '-' and optional '.' fraction)", text));
}

Status out_of_range(std::string_view text, int decimals) {
  return Status::InvalidArgument(
      fmt::format("value '{}' scaled by 10^{} is outside the int256 range", text, decimals));
}

Hash32 compute_domain_separator(uint64_t chain_id) {
  static const Hash32 kTypeHash = keccak256(kEip712DomainType);
  static const Hash32 kNameHash = keccak256(kDomainName);
  static const Hash32 kVersionHash = keccak256(kDomainVersion);
  std::array<uint8_t, 4 * 32> buf;
  Word256 chain = uint256_word(chain_id);
  std::memcpy(buf.data(), kTypeHash.data(), 32);
  std::memcpy(buf.data() + 32, kNameHash.data(), 32);
  std::memcpy(buf.data() + 64, kVersionHash.data(), 32);
  std::memcpy(buf.data() + 96, chain.data(), 32);
  return keccak256(buf);
}

}  // namespace

Word256 uint256_word(uint64_t v) {
  Word256 w{};
  for (size_t b = 0; b < 8; ++b) w[31 - b] = static_cast<uint8_t>(v >> (8 * b));
  return w;
}

Result<Word256> scale_to_int256(std::string_view text, int decimals) {
  if (decimals < 0) {
    return Status::InvalidArgument(fmt::format("decimals {} is negative", decimals));
  }
  std::string_view rest = text;
  bool negative = false;
  if (!rest.empty() && rest.front() == '-') {
    negative = true;
    rest.remove_prefix(1);
  }
  size_t dot = rest.find('.');
  std::string_view integer = rest.substr(0, dot);
  std::string_view fraction =
      dot == std::string_view::npos ? std::string_view() : rest.substr(dot + 1);
  if (integer.empty() || !std::all_of(integer.begin(), integer.end(), is_digit) ||
      (dot != std::string_view::npos && fraction.empty()) ||
      !std::all_of(fraction.begin(), fraction.end(), is_digit)) {
    return not_a_number(text);
  }

  U256 magnitude;
  for (char c : integer) {
    if (!magnitude.mul10_add(static_cast<unsigned>(c - '0'))) return out_of_range(text, decimals);
  }
  size_t kept = std::min(fraction.size(), static_cast<size_t>(decimals));
  for (char c : fraction.substr(0, kept)) {
    if (!magnitude.mul10_add(static_cast<unsigned>(c - '0'))) return out_of_range(text, decimals);
  }
  std::string_view dropped = fraction.substr(kept);
  if (std::any_of(dropped.begin(), dropped.end(), [](char c) { return c != '0'; })) {
    return Status::InvalidArgument(fmt::format(
        "value '{}' has more fractional digits than the feed's {} decimals", text, decimals));
  }
  // Pad with zeros up to `decimals` fraction digits; a nonzero magnitude overflows within 78 steps,
  // so a large `decimals` ends the loop early.
  if (!magnitude.is_zero()) {
    for (size_t i = kept; i < static_cast<size_t>(decimals); ++i) {
      if (!magnitude.mul10_add(0)) return out_of_range(text, decimals);
    }
  }
  if (magnitude.top_bit() && !(negative && magnitude.is_two_pow_255())) {
    return out_of_range(text, decimals);
  }
  if (negative) magnitude.negate();
  return magnitude.to_word();
}

const Hash32& observation_type_hash() {
  static const Hash32 kHash = keccak256(kObservationType);
  return kHash;
}

ObservationDomain::ObservationDomain(uint64_t chain_id)
    : chain_id_(chain_id), separator_(compute_domain_separator(chain_id)) {}

Result<Observation> observation_from_record(const ValueRecord& record, const Hash32* feed_id_hash) {
  if (record.round < 0) {
    return Status::InvalidArgument(fmt::format("round {} is negative", record.round));
  }
  int64_t slot_ms = to_unix_ms(record.slot);
  if (slot_ms < 0) {
    return Status::InvalidArgument(fmt::format("slot {} ms is before 1970", slot_ms));
  }
  Observation o;
  assert(feed_id_hash == nullptr ||
         *feed_id_hash == keccak256(std::string_view(record.feed.str())));
  o.feed_id =
      feed_id_hash != nullptr ? *feed_id_hash : keccak256(std::string_view(record.feed.str()));
  o.round = static_cast<uint64_t>(record.round);
  o.timestamp_ms = static_cast<uint64_t>(slot_ms);
  METRONOME_ASSIGN_OR_RETURN(o.value, scale_to_int256(record.value, record.decimals));
  return o;
}

Hash32 observation_struct_hash(const Observation& o) {
  std::array<uint8_t, 5 * 32> buf;
  Word256 round = uint256_word(o.round);
  Word256 timestamp = uint256_word(o.timestamp_ms);
  std::memcpy(buf.data(), observation_type_hash().data(), 32);
  std::memcpy(buf.data() + 32, o.feed_id.data(), 32);
  std::memcpy(buf.data() + 64, round.data(), 32);
  std::memcpy(buf.data() + 96, timestamp.data(), 32);
  std::memcpy(buf.data() + 128, o.value.data(), 32);
  return keccak256(buf);
}

Hash32 observation_digest(const ObservationDomain& domain, const Observation& observation) {
  std::array<uint8_t, 2 + 32 + 32> buf;
  Hash32 struct_hash = observation_struct_hash(observation);
  buf[0] = 0x19;
  buf[1] = 0x01;
  std::memcpy(buf.data() + 2, domain.separator().data(), 32);
  std::memcpy(buf.data() + 34, struct_hash.data(), 32);
  return keccak256(buf);
}

Result<Hash32> record_digest(const ObservationDomain& domain, const ValueRecord& record) {
  METRONOME_ASSIGN_OR_RETURN(Observation o, observation_from_record(record));
  return observation_digest(domain, o);
}

}  // namespace metronome
