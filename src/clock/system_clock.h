// SystemClock: the Clock of the operating system.
//
// sleep_until() arms a timerfd on CLOCK_REALTIME with an absolute deadline and
// TFD_TIMER_CANCEL_ON_SET, so it wakes at the deadline (not a relative duration that drifts) and
// learns at once when someone sets the clock. It polls that timerfd together with an eventfd
// that the stop token signals. The calling thread's timer slack is set to 1 ns on first use so
// the kernel does not coalesce our wake-up with others (the default slack is 50 µs).
//
// Thread-safety: every method may be called concurrently; each sleep uses its own descriptors.
#pragma once

#include <atomic>

#include "clock/clock.h"

namespace metronome {

class SystemClock final : public Clock {
 public:
  SystemClock();

  WallTime now() const override;
  MonoTime monotonic_now() const override;
  SleepResult sleep_until(WallTime deadline, std::stop_token stop) override;
  bool sleep_for(Nanos duration, std::stop_token stop) override;

  // The number of clock steps observed so far (for metrics).
  uint64_t clock_steps() const { return clock_steps_.load(std::memory_order_relaxed); }

 private:
  // Wall minus monotonic time at the last check; a change beyond kStepThreshold is a step.
  Nanos wall_minus_mono() const;

  std::atomic<int64_t> reference_offset_ns_;
  std::atomic<uint64_t> clock_steps_{0};
};

}  // namespace metronome
