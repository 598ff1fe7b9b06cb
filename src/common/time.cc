#include "common/time.h"

#include <fmt/format.h>

#include <cctype>
#include <charconv>
#include <limits>

namespace metronome {
namespace {

using std::chrono::days;
using std::chrono::floor;

struct Civil {
  int year;
  unsigned month, day;
  int64_t hour, minute, second;
  int64_t subsec_ns;
};

// Templated on the precision so that a SlotTime (milliseconds) is never converted to WallTime
// (nanoseconds), which overflows outside about 1678..2261. The time is split into whole seconds
// and a non-negative remainder by integer arithmetic: flooring to days or seconds and converting
// back to `Duration` would overflow near Duration's limits (e.g. WallTime::min()).
template <typename Duration>
Civil to_civil(std::chrono::sys_time<Duration> t) {
  using Period = typename Duration::period;
  static_assert(Period::num == 1 && 1'000'000'000 % Period::den == 0, "sub-second precision");
  constexpr int64_t kPerSecond = Period::den;
  int64_t secs = t.time_since_epoch().count() / kPerSecond;
  int64_t sub = t.time_since_epoch().count() % kPerSecond;
  if (sub < 0) {
    sub += kPerSecond;
    --secs;
  }
  const std::chrono::sys_seconds s{Seconds(secs)};
  const auto day_point = floor<days>(s);
  const std::chrono::year_month_day ymd{day_point};
  const int64_t second_of_day = (s - day_point).count();
  Civil c{};
  c.year = static_cast<int>(ymd.year());
  c.month = static_cast<unsigned>(ymd.month());
  c.day = static_cast<unsigned>(ymd.day());
  c.hour = second_of_day / 3600;
  c.minute = second_of_day / 60 % 60;
  c.second = second_of_day % 60;
  c.subsec_ns = sub * (1'000'000'000 / kPerSecond);
  return c;
}

}  // namespace

std::string format_iso_ms(SlotTime t) {
  Civil c = to_civil(t);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", c.year, c.month, c.day, c.hour,
                     c.minute, c.second, c.subsec_ns / 1'000'000);
}

std::string format_iso_us(WallTime t) {
  Civil c = to_civil(t);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z", c.year, c.month, c.day, c.hour,
                     c.minute, c.second, c.subsec_ns / 1'000);
}

std::string format_iso_s(SlotTime t) {
  Civil c = to_civil(t);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", c.year, c.month, c.day, c.hour,
                     c.minute, c.second);
}

namespace {

class Cursor {
 public:
  explicit Cursor(std::string_view s) : s_(s) {}
  bool done() const { return i_ >= s_.size(); }
  char peek() const { return done() ? '\0' : s_[i_]; }
  bool eat(char c) {
    if (peek() != c) return false;
    ++i_;
    return true;
  }
  // Reads exactly n digits.
  bool digits(int n, int64_t& out) {
    out = 0;
    for (int k = 0; k < n; ++k) {
      if (done() || !std::isdigit(static_cast<unsigned char>(s_[i_]))) return false;
      out = out * 10 + (s_[i_++] - '0');
    }
    return true;
  }

 private:
  std::string_view s_;
  size_t i_ = 0;
};

}  // namespace

Result<WallTime> parse_iso(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return Status::InvalidArgument(
        fmt::format("invalid time '{}' ({}); expected e.g. 2026-11-27T21:16:02Z", text, why));
  };
  Cursor c(text);
  int64_t y, mo, d, h = 0, mi = 0, s = 0, frac_ns = 0;
  if (!c.digits(4, y) || !c.eat('-') || !c.digits(2, mo) || !c.eat('-') || !c.digits(2, d)) {
    return bad("date must be YYYY-MM-DD");
  }
  std::chrono::year_month_day ymd{std::chrono::year(static_cast<int>(y)),
                                  std::chrono::month(static_cast<unsigned>(mo)),
                                  std::chrono::day(static_cast<unsigned>(d))};
  if (!ymd.ok()) return bad("no such date");
  int64_t offset_s = 0;
  if (!c.done()) {
    if (!c.eat('T') && !c.eat('t') && !c.eat(' ')) return bad("expected 'T' after the date");
    if (!c.digits(2, h) || !c.eat(':') || !c.digits(2, mi)) return bad("time must be HH:MM[:SS]");
    const bool has_seconds = c.eat(':');
    if (has_seconds && !c.digits(2, s)) return bad("seconds must be two digits");
    if (h > 23 || mi > 59 || s > 59) return bad("hour, minute or second out of range");
    if (has_seconds && c.eat('.')) {
      int n = 0;
      while (std::isdigit(static_cast<unsigned char>(c.peek()))) {
        int64_t digit;
        c.digits(1, digit);
        if (++n > 9) return bad("more than 9 fractional digits");
        frac_ns = frac_ns * 10 + digit;
      }
      if (n == 0) return bad("empty fraction");
      for (; n < 9; ++n) frac_ns *= 10;
    }
    if (c.eat('Z') || c.eat('z')) {
    } else if (c.peek() == '+' || c.peek() == '-') {
      int sign = c.peek() == '-' ? -1 : 1;
      c.eat(c.peek());
      int64_t oh, om;
      if (!c.digits(2, oh) || !c.eat(':') || !c.digits(2, om) || oh > 23 || om > 59) {
        return bad("offset must be +HH:MM");
      }
      offset_s = sign * (oh * 3600 + om * 60);
    } else {
      return bad("missing 'Z' or offset (times are UTC)");
    }
    if (!c.done()) return bad("unexpected text after the time");
  }
  // Computed in seconds first: WallTime (int64 nanoseconds) only spans about 1678..2261.
  std::chrono::sys_seconds secs = std::chrono::sys_days(ymd) + std::chrono::hours(h) +
                                  std::chrono::minutes(mi) + Seconds(s) - Seconds(offset_s);
  constexpr auto kMin = std::chrono::ceil<Seconds>(WallTime::min());
  constexpr auto kMax = std::chrono::floor<Seconds>(WallTime::max()) - Seconds(1);
  if (secs < kMin || secs > kMax) return bad("outside the supported years 1678 to 2261");
  return WallTime(secs) + Nanos(frac_ns);
}

Result<Nanos> parse_duration(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return Status::InvalidArgument(fmt::format(
        "invalid duration '{}' ({}); expected e.g. \"2s\", \"100ms\", \"1m\"", text, why));
  };
  if (text.empty()) return bad("empty");
  Nanos total{0};
  size_t i = 0;
  while (i < text.size()) {
    size_t start = i;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
    if (i == start) return bad("expected a number");
    int64_t n = 0;
    auto [ptr, ec] = std::from_chars(text.data() + start, text.data() + i, n);
    if (ec != std::errc()) return bad("number too large");
    size_t unit_start = i;
    while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) ++i;
    std::string_view unit = text.substr(unit_start, i - unit_start);
    int64_t scale;
    if (unit == "ns")
      scale = 1;
    else if (unit == "us")
      scale = 1'000;
    else if (unit == "ms")
      scale = 1'000'000;
    else if (unit == "s")
      scale = 1'000'000'000;
    else if (unit == "m")
      scale = 60'000'000'000;
    else if (unit == "h")
      scale = 3'600'000'000'000;
    else if (unit == "d")
      scale = 86'400'000'000'000;
    else if (unit.empty())
      return bad("missing unit (ns, us, ms, s, m, h, d)");
    else
      return bad(fmt::format("unknown unit '{}'", unit));
    if (n > std::numeric_limits<int64_t>::max() / scale ||
        total.count() > std::numeric_limits<int64_t>::max() - n * scale) {
      return bad("too large");
    }
    total += Nanos(n * scale);
  }
  return total;
}

std::string format_duration(Nanos d) {
  struct Unit {
    int64_t ns;
    const char* name;
  };
  static constexpr Unit kUnits[] = {{86'400'000'000'000, "d"}, {3'600'000'000'000, "h"},
                                    {60'000'000'000, "m"},     {1'000'000'000, "s"},
                                    {1'000'000, "ms"},         {1'000, "us"}};
  int64_t n = d.count();
  if (n == 0) return "0s";
  for (const auto& u : kUnits) {
    if (n % u.ns == 0) return fmt::format("{}{}", n / u.ns, u.name);
  }
  return fmt::format("{}ns", n);
}

}  // namespace metronome
