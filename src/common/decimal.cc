#include "common/decimal.h"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

namespace metronome {
namespace {

// 2^255: the magnitude limit of int256 (exclusive for positive values, inclusive for negative).
constexpr std::string_view kTwoPow255 =
    "57896044618658097711785492504343953926634992332820282019728792003956564819968";

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// An unsigned integer of any size in base 10^9 limbs, least significant first, no high zero limbs.
class BigUint {
 public:
  static constexpr uint32_t kBase = 1'000'000'000;

  // `digits` followed by `zeros` zeros. REQUIRES: digits are '0'..'9'.
  static BigUint from_digits(std::string_view digits, size_t zeros) {
    std::string text(digits);
    text.append(zeros, '0');
    BigUint out;
    for (size_t end = text.size(); end > 0;) {
      size_t begin = end >= 9 ? end - 9 : 0;
      uint32_t limb = 0;
      for (size_t i = begin; i < end; ++i) limb = limb * 10 + static_cast<uint32_t>(text[i] - '0');
      out.limbs_.push_back(limb);
      end = begin;
    }
    out.trim();
    return out;
  }

  std::string to_digits() const {  // "" for zero
    if (limbs_.empty()) return "";
    std::string out = std::to_string(limbs_.back());
    for (size_t i = limbs_.size() - 1; i-- > 0;) out += fmt::format("{:09}", limbs_[i]);
    return out;
  }

  friend std::strong_ordering operator<=>(const BigUint& a, const BigUint& b) {
    if (a.limbs_.size() != b.limbs_.size()) return a.limbs_.size() <=> b.limbs_.size();
    for (size_t i = a.limbs_.size(); i-- > 0;) {
      if (a.limbs_[i] != b.limbs_[i]) return a.limbs_[i] <=> b.limbs_[i];
    }
    return std::strong_ordering::equal;
  }
  friend bool operator==(const BigUint& a, const BigUint& b) { return a.limbs_ == b.limbs_; }

  friend BigUint operator+(const BigUint& a, const BigUint& b) {
    BigUint out;
    uint64_t carry = 0;
    for (size_t i = 0; i < std::max(a.limbs_.size(), b.limbs_.size()) || carry != 0; ++i) {
      uint64_t sum = carry + a.limb(i) + b.limb(i);
      out.limbs_.push_back(static_cast<uint32_t>(sum % kBase));
      carry = sum / kBase;
    }
    out.trim();
    return out;
  }

  // REQUIRES: a >= b.
  friend BigUint operator-(const BigUint& a, const BigUint& b) {
    BigUint out;
    int64_t borrow = 0;
    for (size_t i = 0; i < a.limbs_.size(); ++i) {
      int64_t d = static_cast<int64_t>(a.limbs_[i]) - b.limb(i) - borrow;
      borrow = d < 0 ? 1 : 0;
      out.limbs_.push_back(static_cast<uint32_t>(d + borrow * kBase));
    }
    out.trim();
    return out;
  }

  friend BigUint operator*(const BigUint& a, const BigUint& b) {
    BigUint out;
    if (a.limbs_.empty() || b.limbs_.empty()) return out;
    std::vector<uint64_t> acc(a.limbs_.size() + b.limbs_.size() + 1, 0);
    for (size_t i = 0; i < a.limbs_.size(); ++i) {
      uint64_t carry = 0;
      for (size_t j = 0; j < b.limbs_.size() || carry != 0; ++j) {
        uint64_t cur =
            acc[i + j] + carry + (j < b.limbs_.size() ? uint64_t{a.limbs_[i]} * b.limbs_[j] : 0);
        acc[i + j] = cur % kBase;
        carry = cur / kBase;
      }
    }
    for (uint64_t limb : acc) out.limbs_.push_back(static_cast<uint32_t>(limb));
    out.trim();
    return out;
  }

 private:
  uint32_t limb(size_t i) const { return i < limbs_.size() ? limbs_[i] : 0; }
  void trim() {
    while (!limbs_.empty() && limbs_.back() == 0) limbs_.pop_back();
  }

  std::vector<uint32_t> limbs_;
};

// The magnitude of `digits` × 10^(exponent - base_exponent). REQUIRES: exponent >= base_exponent.
BigUint scaled(const std::string& digits, int64_t exponent, int64_t base_exponent) {
  return BigUint::from_digits(digits, static_cast<size_t>(exponent - base_exponent));
}

Status not_a_number(std::string_view text, std::string_view why) {
  return Status::InvalidArgument(
      fmt::format("'{}' is not a decimal number ({})", truncate_for_message(text), why));
}

}  // namespace

std::string truncate_for_message(std::string_view text, size_t max) {
  std::string out;
  size_t shown = std::min(text.size(), max);
  out.reserve(shown + 3);
  for (size_t i = 0; i < shown; ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    out += (c < 0x20 || c == 0x7f) ? '?' : text[i];
  }
  if (text.size() > max) out += "…";
  return out;
}

Result<Decimal> Decimal::parse(std::string_view text) {
  std::string_view s = text;
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  if (s.empty()) return not_a_number(text, "empty");
  if (s.size() > kMaxTextLength) {
    return not_a_number(text, fmt::format("longer than {} characters", kMaxTextLength));
  }
  Decimal d;
  size_t i = 0;
  if (s[i] == '+' || s[i] == '-') d.negative_ = s[i++] == '-';
  std::string all_digits;  // integer and fraction digits
  int64_t fraction = 0;
  size_t integer_start = i;
  while (i < s.size() && is_digit(s[i])) all_digits += s[i++];
  bool any_digit = i > integer_start;
  if (i < s.size() && s[i] == '.') {
    ++i;
    size_t fraction_start = i;
    while (i < s.size() && is_digit(s[i])) all_digits += s[i++];
    fraction = static_cast<int64_t>(i - fraction_start);
    any_digit = any_digit || fraction > 0;
  }
  if (!any_digit) return not_a_number(text, "no digits");
  int64_t exponent = 0;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    bool exp_negative = false;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) exp_negative = s[i++] == '-';
    size_t exp_start = i;
    while (i < s.size() && is_digit(s[i])) {
      exponent = exponent * 10 + (s[i++] - '0');
      if (exponent > kMaxExponent) {
        return not_a_number(text, fmt::format("exponent beyond ±{}", kMaxExponent));
      }
    }
    if (i == exp_start) return not_a_number(text, "exponent without digits");
    if (exp_negative) exponent = -exponent;
  }
  if (i != s.size()) {
    return not_a_number(text, fmt::format("unexpected '{}'", truncate_for_message(s.substr(i), 1)));
  }
  size_t first = all_digits.find_first_not_of('0');
  if (first == std::string::npos) return Decimal();  // zero, whatever its sign or exponent
  size_t last = all_digits.find_last_not_of('0');
  d.digits_ = all_digits.substr(first, last - first + 1);
  // value = all_digits × 10^(exponent - fraction); dropping trailing zeros raises the exponent.
  d.exponent_ = exponent - fraction + static_cast<int64_t>(all_digits.size() - 1 - last);
  return d;
}

Decimal Decimal::from_int(int64_t v) {
  // Cannot fail: the text of an int64 is a decimal number.
  return parse(std::to_string(v)).value();
}

int64_t Decimal::fraction_digits() const {
  return exponent_ < 0 ? -exponent_ : 0;
}

std::string Decimal::to_string() const {
  if (is_zero()) return "0";
  std::string out = negative_ ? "-" : "";
  if (exponent_ >= 0) {
    out += digits_;
    out.append(static_cast<size_t>(exponent_), '0');
    return out;
  }
  auto fraction = static_cast<size_t>(-exponent_);
  if (fraction >= digits_.size()) {
    out += "0.";
    out.append(fraction - digits_.size(), '0');
    out += digits_;
  } else {
    out += digits_.substr(0, digits_.size() - fraction);
    out += '.';
    out += digits_.substr(digits_.size() - fraction);
  }
  return out;
}

Status Decimal::check_fits_int256(int decimals) const {
  if (is_zero()) return Status::Ok();
  if (fraction_digits() > decimals) {
    return Status::InvalidArgument(
        fmt::format("value {} has more fractional digits than the feed's {} decimals (it is "
                    "never rounded)",
                    truncate_for_message(to_string()), decimals));
  }
  int64_t shift = exponent_ + decimals;  // >= 0
  if (static_cast<int64_t>(digits_.size()) + shift > static_cast<int64_t>(kTwoPow255.size())) {
    return Status::InvalidArgument(
        fmt::format("value {} scaled by 10^{} has too many digits for int256",
                    truncate_for_message(to_string()), decimals));
  }
  BigUint magnitude = BigUint::from_digits(digits_, static_cast<size_t>(shift));
  BigUint limit = BigUint::from_digits(kTwoPow255, 0);
  if (magnitude > limit || (magnitude == limit && !negative_)) {
    return Status::InvalidArgument(
        fmt::format("value {} scaled by 10^{} is outside the int256 range",
                    truncate_for_message(to_string()), decimals));
  }
  return Status::Ok();
}

Decimal Decimal::abs() const {
  Decimal out = *this;
  out.negative_ = false;
  return out;
}

Decimal operator-(const Decimal& a, const Decimal& b) {
  if (b.is_zero()) return a;
  if (a.is_zero()) {
    Decimal out = b;
    out.negative_ = !b.negative_;
    return out;
  }
  int64_t base = std::min(a.exponent_, b.exponent_);
  BigUint ma = scaled(a.digits_, a.exponent_, base);
  BigUint mb = scaled(b.digits_, b.exponent_, base);
  BigUint magnitude;
  bool negative = false;
  if (a.negative_ != b.negative_) {  // a - (-|b|) = a + |b|, and -|a| - |b|
    magnitude = ma + mb;
    negative = a.negative_;
  } else if (ma >= mb) {
    magnitude = ma - mb;
    negative = a.negative_;
  } else {
    magnitude = mb - ma;
    negative = !a.negative_;
  }
  std::string digits = magnitude.to_digits();
  Decimal out;
  if (digits.empty()) return out;
  size_t last = digits.find_last_not_of('0');
  out.negative_ = negative;
  out.exponent_ = base + static_cast<int64_t>(digits.size() - 1 - last);
  out.digits_ = digits.substr(0, last + 1);
  return out;
}

Decimal operator*(const Decimal& a, const Decimal& b) {
  Decimal out;
  if (a.is_zero() || b.is_zero()) return out;
  std::string digits =
      (BigUint::from_digits(a.digits_, 0) * BigUint::from_digits(b.digits_, 0)).to_digits();
  size_t last = digits.find_last_not_of('0');
  out.negative_ = a.negative_ != b.negative_;
  out.exponent_ = a.exponent_ + b.exponent_ + static_cast<int64_t>(digits.size() - 1 - last);
  out.digits_ = digits.substr(0, last + 1);
  return out;
}

std::strong_ordering operator<=>(const Decimal& a, const Decimal& b) {
  auto sign = [](const Decimal& d) { return d.is_zero() ? 0 : (d.negative_ ? -1 : 1); };
  if (sign(a) != sign(b)) return sign(a) <=> sign(b);
  if (a.is_zero()) return std::strong_ordering::equal;
  // Same sign, both nonzero: compare magnitudes by the position of the leading digit, then digits.
  int64_t lead_a = a.exponent_ + static_cast<int64_t>(a.digits_.size());
  int64_t lead_b = b.exponent_ + static_cast<int64_t>(b.digits_.size());
  std::strong_ordering magnitude = lead_a <=> lead_b;
  if (magnitude == std::strong_ordering::equal) {
    int c = a.digits_.compare(b.digits_);  // no trailing zeros: a prefix is the smaller
    magnitude = c <=> 0;
  }
  if (a.negative_) return 0 <=> magnitude;
  return magnitude;
}

bool differs_by_more_than_pct(const Decimal& a, const Decimal& b, const Decimal& reference,
                              const Decimal& pct) {
  Decimal hundred = Decimal::from_int(100);
  return (a - b).abs() * hundred > pct.abs() * reference.abs();
}

}  // namespace metronome
