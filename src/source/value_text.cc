#include "source/value_text.h"

#include "common/decimal.h"

namespace metronome {

std::string_view trim_ascii(std::string_view text) {
  constexpr std::string_view kSpace = " \t\r\n\f\v";
  size_t begin = text.find_first_not_of(kSpace);
  if (begin == std::string_view::npos) return {};
  size_t end = text.find_last_not_of(kSpace);
  return text.substr(begin, end - begin + 1);
}

Result<std::string> exact_value_text(std::string_view returned, int decimals) {
  Result<Decimal> d = Decimal::parse(returned);
  if (!d) return d.status().With("returned a value that cannot be used");
  Status fits = d->check_fits_int256(decimals);
  if (!fits.ok()) return fits.With("returned a value that cannot be used");
  return d->to_string();
}

}  // namespace metronome
