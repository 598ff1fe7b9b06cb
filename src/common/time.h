// Time types shared by every module, and their text forms.
//
// Wall time (CLOCK_REALTIME, UTC) places slots; monotonic time measures durations. Slot times are
// whole milliseconds since the Unix epoch. Reading the current time is the Clock's job (clock/);
// this header only names, formats and parses times. All functions are pure and thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace metronome {

using Nanos = std::chrono::nanoseconds;
using Micros = std::chrono::microseconds;
using Millis = std::chrono::milliseconds;
using Seconds = std::chrono::seconds;

using WallTime = std::chrono::sys_time<Nanos>;           // a point in UTC, nanosecond resolution
using SlotTime = std::chrono::sys_time<Millis>;          // a slot's time, whole milliseconds
using MonoTime = std::chrono::steady_clock::time_point;  // for durations only

inline int64_t to_unix_ms(SlotTime t) {
  return t.time_since_epoch().count();
}
inline SlotTime slot_from_unix_ms(int64_t ms) {
  return SlotTime(Millis(ms));
}

// "2026-11-27T21:16:02.000Z" (milliseconds).
std::string format_iso_ms(SlotTime t);
// "2026-11-27T21:16:02.123456Z" (microseconds).
std::string format_iso_us(WallTime t);
// "2026-11-27T21:16:00Z" (seconds, truncated).
std::string format_iso_s(SlotTime t);

// Parses "2026-11-27T21:16:02Z", with optional fraction after the seconds (up to 9 digits), "Z" or
// "+hh:mm"/"-hh:mm" offset, and a space instead of "T"; also a bare date "2026-11-27" (midnight
// UTC). Times a WallTime cannot hold (before 1677-09-21 or after 2262-04-11) are InvalidArgument.
Result<WallTime> parse_iso(std::string_view text);

// Parses a duration: a non-negative integer and a unit among ns, us, ms, s, m, h, d
// ("2s", "100ms", "1m"), or several such terms concatenated ("1m30s").
Result<Nanos> parse_duration(std::string_view text);
// The shortest exact text form: 2s -> "2s", 1500ms -> "1500ms", 60s -> "1m".
std::string format_duration(Nanos d);

}  // namespace metronome
