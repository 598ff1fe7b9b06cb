// Makes every Metronome type that has a `format_as(const T&)` (found by ADL) printable with fmt
// and spdlog. fmt 10 does this by itself; Debian 12 ships fmt 9, which needs a formatter.
#pragma once

#include <fmt/format.h>

#include <string_view>

namespace metronome {
template <typename T>
concept HasFormatAs = requires(const T& t) {
  {format_as(t)};
};
}  // namespace metronome

template <typename T>
requires metronome::HasFormatAs<T>
struct fmt::formatter<T, char, void> : fmt::formatter<std::string_view> {
  template <typename FormatContext>
  auto format(const T& value, FormatContext& ctx) const -> decltype(ctx.out()) {
    const auto& text = format_as(value);
    return fmt::formatter<std::string_view>::format(std::string_view(text), ctx);
  }
};
