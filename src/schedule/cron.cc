#include "schedule/cron.h"

#include <fmt/format.h>

#include <array>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <vector>

namespace metronome {
namespace {

// One of the six fields. Values are parsed into the range [min, max]; '*' and "a/n" cover
// [min, star_max] (day-of-week accepts 7 for Sunday but '*' stops at Saturday = 6).
struct FieldSpec {
  const char* name;
  int min;
  int max;
  int star_max;
  // Three-letter names, case-insensitive; names[i] has the value name_base + i.
  const std::string_view* names = nullptr;
  int name_count = 0;
  int name_base = 0;
  bool is_day_of_week = false;  // 7 is also Sunday; a range may end at the name SUN
};

constexpr std::string_view kMonthNames[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                            "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr std::string_view kDayNames[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

constexpr FieldSpec kSecond{"second", 0, 59, 59};
constexpr FieldSpec kMinute{"minute", 0, 59, 59};
constexpr FieldSpec kHour{"hour", 0, 23, 23};
constexpr FieldSpec kDayOfMonth{"day-of-month", 1, 31, 31};
constexpr FieldSpec kMonth{"month", 1, 12, 12, kMonthNames, 12, 1};
constexpr FieldSpec kDayOfWeek{"day-of-week", 0, 7, 6, kDayNames, 7, 0, true};

bool is_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::toupper(static_cast<unsigned char>(a[i])) != static_cast<unsigned char>(b[i])) {
      return false;
    }
  }
  return true;
}

// A single value: a number in [min, max] or, where the field has them, a name.
// Errors carry only the reason; the caller names the expression and the field.
Result<int> parse_value(const FieldSpec& f, std::string_view s) {
  if (s.empty()) return Status::InvalidArgument("missing value");
  if (is_digits(s)) {
    int v = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || v < f.min || v > f.max) {
      return Status::InvalidArgument(fmt::format("value {} out of range {}-{}", s, f.min, f.max));
    }
    return v;
  }
  for (int i = 0; i < f.name_count; ++i) {
    if (iequals(s, f.names[i])) return f.name_base + i;
  }
  if (f.name_count > 0) {
    return Status::InvalidArgument(fmt::format("unknown name '{}' (expected {}-{}, or {}..{})", s,
                                               f.min, f.max, f.names[0],
                                               f.names[f.name_count - 1]));
  }
  return Status::InvalidArgument(fmt::format("'{}' is not a number", s));
}

// One list item: "*", "a", "a-b", each optionally followed by "/step". Returns its values as
// bits of a mask (bit v set for value v).
Result<uint64_t> parse_item(const FieldSpec& f, std::string_view item) {
  if (item.empty()) return Status::InvalidArgument("empty list item");
  std::string_view base = item;
  int step = 1;
  bool has_step = false;
  if (size_t slash = item.find('/'); slash != std::string_view::npos) {
    base = item.substr(0, slash);
    std::string_view step_text = item.substr(slash + 1);
    if (base.empty()) return Status::InvalidArgument("missing value before '/'");
    if (step_text.empty()) return Status::InvalidArgument("missing step after '/'");
    if (!is_digits(step_text)) {
      return Status::InvalidArgument(fmt::format("step '{}' is not a number", step_text));
    }
    auto [ptr, ec] = std::from_chars(step_text.data(), step_text.data() + step_text.size(), step);
    if (ec != std::errc()) {
      return Status::InvalidArgument(fmt::format("step '{}' is too large", step_text));
    }
    if (step < 1) return Status::InvalidArgument("step must be at least 1");
    has_step = true;
  }

  int lo, hi;
  if (base == "*") {
    lo = f.min;
    hi = f.star_max;
  } else if (size_t dash = base.find('-'); dash != std::string_view::npos) {
    std::string_view lo_text = base.substr(0, dash);
    std::string_view hi_text = base.substr(dash + 1);
    METRONOME_ASSIGN_OR_RETURN(lo, parse_value(f, lo_text));
    METRONOME_ASSIGN_OR_RETURN(hi, parse_value(f, hi_text));
    // "MON-SUN": a range that ends at the name SUN runs to the end of the week.
    if (f.is_day_of_week && hi == 0 && !is_digits(hi_text)) hi = 7;
    if (hi < lo) {
      return Status::InvalidArgument(fmt::format("range {} is reversed", base));
    }
  } else {
    METRONOME_ASSIGN_OR_RETURN(lo, parse_value(f, base));
    hi = lo;
    if (has_step) {
      if (f.is_day_of_week && lo == 7) lo = 0;
      hi = f.star_max;
    }
  }

  uint64_t mask = 0;
  for (int64_t v = lo; v <= hi; v += step) mask |= uint64_t{1} << v;  // int64: step may be huge
  return mask;
}

Result<uint64_t> parse_field(const FieldSpec& f, std::string_view text) {
  uint64_t mask = 0;
  size_t pos = 0;
  while (true) {
    size_t comma = text.find(',', pos);
    std::string_view item =
        text.substr(pos, comma == std::string_view::npos ? text.npos : comma - pos);
    METRONOME_ASSIGN_OR_RETURN(uint64_t bits, parse_item(f, item));
    mask |= bits;
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return mask;
}

template <size_t N>
std::bitset<N> to_bits(uint64_t mask) {
  std::bitset<N> bits;
  for (size_t i = 0; i < N; ++i) bits[i] = (mask >> i) & 1;
  return bits;
}

// The first set bit at index >= from, or -1.
template <size_t N>
int next_set(const std::bitset<N>& bits, int from) {
  for (size_t i = static_cast<size_t>(from); i < N; ++i) {
    if (bits[i]) return static_cast<int>(i);
  }
  return -1;
}

}  // namespace

Result<CronExpr> CronExpr::parse(std::string_view text) {
  std::vector<std::string_view> fields;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    size_t start = i;
    while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i > start) fields.push_back(text.substr(start, i - start));
  }
  if (fields.size() != 6) {
    return Status::InvalidArgument(fmt::format(
        "cron '{}': expected 6 fields (second minute hour day-of-month month day-of-week), got {}",
        text, fields.size()));
  }

  static constexpr const FieldSpec* kSpecs[] = {&kSecond,     &kMinute, &kHour,
                                                &kDayOfMonth, &kMonth,  &kDayOfWeek};
  std::array<uint64_t, 6> masks{};
  for (size_t k = 0; k < 6; ++k) {
    Result<uint64_t> mask = parse_field(*kSpecs[k], fields[k]);
    if (!mask) {
      return Status::InvalidArgument(fmt::format("cron '{}': {} field '{}': {}", text,
                                                 kSpecs[k]->name, fields[k],
                                                 mask.status().message()));
    }
    masks[k] = *mask;
  }

  CronExpr e;
  e.text_ = std::string(text);
  e.seconds_ = to_bits<60>(masks[0]);
  e.minutes_ = to_bits<60>(masks[1]);
  e.hours_ = to_bits<24>(masks[2]);
  e.days_of_month_ = to_bits<32>(masks[3]);
  e.months_ = to_bits<13>(masks[4]);
  uint64_t dow = masks[5];
  if (dow & (uint64_t{1} << 7)) dow |= 1;  // 7 is Sunday too
  e.days_of_week_ = to_bits<7>(dow);
  // Vixie cron: a field counts as restricted unless it starts with '*' (so "*/2" is not).
  e.dom_restricted_ = fields[3].front() != '*';
  e.dow_restricted_ = fields[5].front() != '*';
  return e;
}

std::optional<SlotTime> CronExpr::next_after(WallTime t) const {
  using std::chrono::days;
  using std::chrono::hours;
  using std::chrono::minutes;
  using std::chrono::sys_days;
  using std::chrono::sys_seconds;

  sys_seconds cand = std::chrono::floor<Seconds>(t) + Seconds(1);
  const sys_seconds limit = cand + std::chrono::duration_cast<Seconds>(std::chrono::years(5));

  // Each step either returns a match or moves `cand` forward to the first time that the failing
  // unit (month, day, hour, minute, second) could match, with all smaller units at zero.
  while (cand <= limit) {
    const sys_days day = std::chrono::floor<days>(cand);
    const std::chrono::year_month_day ymd{day};

    const int month = static_cast<int>(static_cast<unsigned>(ymd.month()));
    if (!months_[month]) {
      std::chrono::year y = ymd.year();
      int next = next_set(months_, month + 1);
      if (next < 0) {
        y += std::chrono::years(1);
        next = next_set(months_, 1);
        if (next < 0) return std::nullopt;
      }
      cand = sys_days(y / std::chrono::month(static_cast<unsigned>(next)) / 1);
      continue;
    }

    const bool dom_match = days_of_month_[static_cast<unsigned>(ymd.day())];
    const bool dow_match = days_of_week_[std::chrono::weekday(day).c_encoding()];
    const bool day_match =
        (dom_restricted_ && dow_restricted_) ? (dom_match || dow_match) : (dom_match && dow_match);
    if (!day_match) {
      cand = day + days(1);
      continue;
    }

    const std::chrono::hh_mm_ss tod{cand - day};
    const int h = static_cast<int>(tod.hours().count());
    const int m = static_cast<int>(tod.minutes().count());
    const int s = static_cast<int>(tod.seconds().count());
    if (!hours_[h]) {
      int next = next_set(hours_, h + 1);
      cand = next < 0 ? day + days(1) : day + hours(next);
      continue;
    }
    if (!minutes_[m]) {
      int next = next_set(minutes_, m + 1);
      cand = next < 0 ? day + hours(h + 1) : day + hours(h) + minutes(next);
      continue;
    }
    if (!seconds_[s]) {
      int next = next_set(seconds_, s + 1);
      cand =
          next < 0 ? day + hours(h) + minutes(m + 1) : day + hours(h) + minutes(m) + Seconds(next);
      continue;
    }
    return SlotTime(cand);
  }
  return std::nullopt;
}

}  // namespace metronome
