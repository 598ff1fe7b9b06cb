// Schedule: when a feed's slots are. Either every fixed interval, aligned to the Unix epoch
// (so "every 2s" falls on even seconds), or a cron expression with seconds (UTC).
// Immutable value type; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <variant>

#include "common/result.h"
#include "common/time.h"
#include "schedule/cron.h"

namespace metronome {

class Schedule {
 public:
  // REQUIRES: interval >= 1ms.
  static Schedule every(Millis interval);
  static Schedule cron(CronExpr expr);

  // The first slot strictly after `t`. nullopt only for a cron that never matches again.
  std::optional<SlotTime> next_after(WallTime t) const;

  // The round number of a slot: slot_ms / interval_ms for interval schedules, slot_ms / 1000 for
  // cron schedules. Deterministic, so every replica computes the same round for the same slot.
  int64_t round_of(SlotTime slot) const;

  bool is_interval() const { return std::holds_alternative<Millis>(rule_); }
  // REQUIRES: is_interval().
  Millis interval() const { return std::get<Millis>(rule_); }
  // "every 2s" or "cron */2 * * * * *".
  std::string describe() const;

 private:
  explicit Schedule(std::variant<Millis, CronExpr> rule) : rule_(std::move(rule)) {}
  std::variant<Millis, CronExpr> rule_;
};

}  // namespace metronome
