// OffsetClock: the system clock's wall time shifted by a fixed offset, for a replica whose
// clock is wrong (tests of clock discipline against a real database's clock). Monotonic time
// and sleeping durations are the system clock's.
//
// Thread-safety: as the system clock; the offset is fixed at construction.
#pragma once

#include "clock/system_clock.h"

namespace metronome::testing {

class OffsetClock final : public Clock {
 public:
  explicit OffsetClock(Nanos offset) : offset_(offset) {}

  WallTime now() const override { return base_.now() + offset_; }
  MonoTime monotonic_now() const override { return base_.monotonic_now(); }
  SleepResult sleep_until(WallTime deadline, std::stop_token stop) override {
    return base_.sleep_until(deadline - offset_, stop);
  }
  bool sleep_for(Nanos duration, std::stop_token stop) override {
    return base_.sleep_for(duration, stop);
  }

 private:
  SystemClock base_;
  const Nanos offset_;
};

}  // namespace metronome::testing
