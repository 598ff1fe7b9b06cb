// What a source returned, made into the exact decimal text a record keeps.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"

namespace metronome {

// Parses `returned` as an exact decimal number (see common/decimal.h) and checks that it scales by
// 10^decimals into an int256, as signing needs. Returns it in plain notation ("1.5e3" -> "1500").
// InvalidArgument quoting what was returned (truncated) when it is empty, not a number (NaN,
// Infinity, HTML, ...), has more fractional digits than `decimals`, or is out of range.
Result<std::string> exact_value_text(std::string_view returned, int decimals);

// Removes ASCII whitespace at both ends.
std::string_view trim_ascii(std::string_view text);

}  // namespace metronome
