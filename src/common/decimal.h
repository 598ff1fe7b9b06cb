// Decimal: an exact decimal number, for feed values, bounds and percentages.
//
// Values come from the world as text ("1234.5", "1.2345e3", "-0.07") and are signed as integers
// scaled by the feed's `decimals`; binary floating point would silently change them, so nothing
// here ever uses it. A Decimal is sign × digits × 10^exponent with arbitrary precision (inputs are
// bounded by kMaxTextLength and kMaxExponent, so arithmetic on them stays small).
// Pure values: thread-compatible, cheap to copy.
#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace metronome {

class Decimal {
 public:
  // Longest text parse() accepts, and the largest |exponent| it accepts ("1e1001" is refused).
  static constexpr size_t kMaxTextLength = 256;
  static constexpr int64_t kMaxExponent = 1000;

  Decimal() = default;  // zero

  // Parses "[+-]DIGITS[.DIGITS][(e|E)[+-]DIGITS]" (".5" and "5." too), ignoring surrounding
  // ASCII whitespace. InvalidArgument naming the text (cut to 64 characters) for anything else:
  // empty, "NaN", "Infinity", "0x10", "1,5", more than kMaxTextLength characters, an exponent
  // beyond kMaxExponent.
  static Result<Decimal> parse(std::string_view text);
  static Decimal from_int(int64_t v);

  [[nodiscard]] bool is_zero() const { return digits_.empty(); }
  [[nodiscard]] bool negative() const { return negative_; }
  // Digits after the decimal point in to_string(): 0 for integers.
  [[nodiscard]] int64_t fraction_digits() const;

  // Plain notation without exponent or trailing fraction zeros: "1500", "-0.025", "0".
  [[nodiscard]] std::string to_string() const;

  // Whether the value × 10^decimals is an integer in the int256 range [-2^255, 2^255 - 1], as a
  // signed record needs. InvalidArgument naming the value otherwise. REQUIRES: decimals >= 0.
  [[nodiscard]] Status check_fits_int256(int decimals) const;

  [[nodiscard]] Decimal abs() const;
  friend Decimal operator-(const Decimal& a, const Decimal& b);
  friend Decimal operator*(const Decimal& a, const Decimal& b);
  friend std::strong_ordering operator<=>(const Decimal& a, const Decimal& b);
  friend bool operator==(const Decimal& a, const Decimal& b) = default;

 private:
  bool negative_ = false;  // never true for zero
  std::string digits_;     // significant digits, no leading or trailing zeros; empty for zero
  int64_t exponent_ = 0;   // value = digits × 10^exponent; 0 for zero
};

inline std::string format_as(const Decimal& d) {
  return d.to_string();
}

// Whether |a - b| is more than `pct` percent of |reference|: |a - b| × 100 > pct × |reference|,
// exactly. With a zero reference any difference is more.
bool differs_by_more_than_pct(const Decimal& a, const Decimal& b, const Decimal& reference,
                              const Decimal& pct);

// `text` cut to `max` characters with "…" when longer, for error messages quoting what a source
// returned; control characters are shown as '?'.
std::string truncate_for_message(std::string_view text, size_t max = 64);

}  // namespace metronome
