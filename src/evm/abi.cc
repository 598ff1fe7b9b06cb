#include "evm/abi.h"

#include <fmt/format.h>

#include <algorithm>

namespace metronome::abi {
namespace {

void append_word(Bytes& out, const U256& w) {
  out.insert(out.end(), w.begin(), w.end());
}
void append_u64(Bytes& out, uint64_t v) {
  append_word(out, u256(v));
}
// Length word, then the bytes padded with zeros to a multiple of 32.
void append_bytes_tail(Bytes& out, std::span<const uint8_t> b) {
  append_u64(out, b.size());
  out.insert(out.end(), b.begin(), b.end());
  out.insert(out.end(), (32 - b.size() % 32) % 32, 0);
}
Bytes with_selector(std::string_view signature) {
  const Hash32 h = keccak256(signature);
  Bytes out;
  out.reserve(4 + 32 * 8);
  for (size_t i = 0; i < 4; ++i) out.push_back(h[i]);
  return out;
}
// The tuple (bytes32,uint64,uint64,int256,bytes): five head words, the bytes at offset 0xa0.
void append_submission(Bytes& out, const Submission& s) {
  append_word(out, s.feed_id);
  append_u64(out, s.round);
  append_u64(out, s.timestamp_ms);
  append_word(out, s.value);
  append_u64(out, 5 * 32);
  append_bytes_tail(out, s.signature);
}
Result<uint64_t> word_u64(const U256& w, std::string_view what) {
  Result<uint64_t> v = u256_to_u64(w);
  if (!v.ok()) return v.status().With(what);
  return v;
}

}  // namespace

std::array<uint8_t, 4> selector(std::string_view signature) {
  Hash32 h = keccak256(signature);
  return {h[0], h[1], h[2], h[3]};
}

Bytes encode_submit(const Submission& s) {
  Bytes out = with_selector(kSubmit);
  append_submission(out, s);
  return out;
}

Bytes encode_submit_batch(std::span<const Submission> items) {
  Bytes out = with_selector(kSubmitBatch);
  append_u64(out, 32);  // offset of the array
  append_u64(out, items.size());
  std::vector<Bytes> encoded;
  encoded.reserve(items.size());
  for (const Submission& s : items) {
    Bytes e;
    append_submission(e, s);
    encoded.push_back(std::move(e));
  }
  // Offsets of the elements, relative to the start of the offsets area.
  uint64_t offset = 32 * items.size();
  for (const Bytes& e : encoded) {
    append_u64(out, offset);
    offset += e.size();
  }
  for (const Bytes& e : encoded) out.insert(out.end(), e.begin(), e.end());
  return out;
}

Bytes encode_set_signer(const Address& signer, bool allowed) {
  Bytes out = with_selector(kSetSigner);
  U256 w{};
  std::copy(signer.bytes.begin(), signer.bytes.end(), w.begin() + 12);
  append_word(out, w);
  append_u64(out, allowed ? 1 : 0);
  return out;
}

Bytes encode_configure_feed(const Hash32& feed_id, uint8_t decimals, std::string_view description) {
  Bytes out = with_selector(kConfigureFeed);
  append_word(out, feed_id);
  append_u64(out, decimals);
  append_u64(out, 3 * 32);
  append_bytes_tail(out,
                    std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(description.data()),
                                             description.size()));
  return out;
}

Bytes encode_feed_call(std::string_view signature, const Hash32& feed_id) {
  Bytes out = with_selector(signature);
  append_word(out, feed_id);
  return out;
}

Bytes encode_constructor(uint64_t max_future_ms) {
  Bytes out;
  append_u64(out, max_future_ms);
  return out;
}

Result<std::vector<U256>> words(std::span<const uint8_t> data) {
  if (data.size() % 32 != 0) {
    return Status::InvalidArgument(
        fmt::format("return data of {} bytes is not a whole number of 32-byte words", data.size()));
  }
  std::vector<U256> out(data.size() / 32);
  for (size_t i = 0; i < out.size(); ++i) {
    std::copy(data.begin() + static_cast<std::ptrdiff_t>(32 * i),
              data.begin() + static_cast<std::ptrdiff_t>(32 * i + 32), out[i].begin());
  }
  return out;
}

Result<LatestObservation> decode_latest_observation(std::span<const uint8_t> data) {
  METRONOME_ASSIGN_OR_RETURN(std::vector<U256> w, words(data));
  if (w.size() != 4) {
    return Status::InvalidArgument(fmt::format(
        "latestObservation returned {} words, expected 4 (is the address a MetronomeFeed?)",
        w.size()));
  }
  LatestObservation o;
  METRONOME_ASSIGN_OR_RETURN(o.round, word_u64(w[0], "round"));
  METRONOME_ASSIGN_OR_RETURN(o.timestamp_ms, word_u64(w[1], "timestampMs"));
  o.value = w[2];
  METRONOME_ASSIGN_OR_RETURN(o.updated_at, word_u64(w[3], "updatedAt"));
  return o;
}

Result<RoundData> decode_round_data(std::span<const uint8_t> data) {
  METRONOME_ASSIGN_OR_RETURN(std::vector<U256> w, words(data));
  if (w.size() != 5) {
    return Status::InvalidArgument(fmt::format(
        "latestRoundData returned {} words, expected 5 (is the address a MetronomeFeed?)",
        w.size()));
  }
  RoundData r;
  METRONOME_ASSIGN_OR_RETURN(r.round_id, word_u64(w[0], "roundId"));
  r.answer = w[1];
  METRONOME_ASSIGN_OR_RETURN(r.started_at, word_u64(w[2], "startedAt"));
  METRONOME_ASSIGN_OR_RETURN(r.updated_at, word_u64(w[3], "updatedAt"));
  METRONOME_ASSIGN_OR_RETURN(r.answered_in_round, word_u64(w[4], "answeredInRound"));
  return r;
}

Result<std::string> decode_string(std::span<const uint8_t> data) {
  METRONOME_ASSIGN_OR_RETURN(std::vector<U256> w, words(data.subspan(0, data.size() / 32 * 32)));
  if (w.size() < 2) return Status::InvalidArgument("returned string is shorter than 64 bytes");
  METRONOME_ASSIGN_OR_RETURN(uint64_t offset, word_u64(w[0], "string offset"));
  if (offset % 32 != 0 || offset / 32 >= w.size()) {
    return Status::InvalidArgument("returned string's offset is out of range");
  }
  METRONOME_ASSIGN_OR_RETURN(uint64_t len, word_u64(w[offset / 32], "string length"));
  if (offset + 32 + len > data.size()) {
    return Status::InvalidArgument("returned string's length is out of range");
  }
  return std::string(reinterpret_cast<const char*>(data.data()) + offset + 32, len);
}

std::string revert_reason(std::span<const uint8_t> data) {
  static const auto kError = selector("Error(string)");
  if (data.size() < 4 || !std::equal(kError.begin(), kError.end(), data.begin())) return "";
  Result<std::string> s = decode_string(data.subspan(4));
  return s.ok() ? *s : "";
}

std::string int256_to_decimal_text(const U256& word, int decimals) {
  const bool negative = (word[0] & 0x80) != 0;
  U256 mag = word;
  if (negative) {  // two's complement: invert and add one
    for (uint8_t& b : mag) b = static_cast<uint8_t>(~b);
    for (int i = 31; i >= 0; --i) {
      if (++mag[static_cast<size_t>(i)] != 0) break;
    }
  }
  const std::string digits = u256_decimal(mag);
  std::string out = negative && digits != "0" ? "-" : "";
  const size_t d = static_cast<size_t>(std::max(decimals, 0));
  if (d == 0) return out + digits;
  // Integer part and a fraction of exactly d digits, then trailing zeros dropped.
  std::string fraction(d, '0');
  std::string integer = "0";
  if (digits.size() > d) {
    integer = digits.substr(0, digits.size() - d);
    fraction = digits.substr(digits.size() - d);
  } else {
    fraction.replace(d - digits.size(), digits.size(), digits);
  }
  while (!fraction.empty() && fraction.back() == '0') fraction.pop_back();
  out += integer;
  if (!fraction.empty()) out += "." + fraction;
  return out;
}

}  // namespace metronome::abi
