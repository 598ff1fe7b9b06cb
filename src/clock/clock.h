// Clock: the one way Metronome reads time and waits for it.
//
// Wall time (UTC, CLOCK_REALTIME) decides when a slot is due; monotonic time measures how long
// things take. Every component that needs the time or must wait takes a Clock&; only SystemClock
// touches the operating system's clocks, and tests use testing::ManualClock.
//
// Thread-safety: all methods may be called from any thread concurrently.
#pragma once

#include <stop_token>

#include "common/time.h"

namespace metronome {

class Clock {
 public:
  virtual ~Clock() = default;

  // The current wall-clock time (UTC).
  virtual WallTime now() const = 0;
  // The current monotonic time; only differences between two readings mean anything.
  virtual MonoTime monotonic_now() const = 0;

  enum class Wake {
    kDeadline,   // now() >= deadline: the caller may act.
    kStopped,    // the stop token was triggered before the deadline.
    kClockStep,  // the wall clock was stepped (set) by more than kStepThreshold while waiting;
                 // the caller should re-plan (chrony's sched.c does the same) and sleep again.
  };
  struct SleepResult {
    Wake wake;
    Nanos step{0};  // for kClockStep: how far wall time moved against monotonic time
  };

  // The wall clock moving against the monotonic clock by more than this is a step.
  static constexpr Nanos kStepThreshold = std::chrono::seconds(1);

  // Blocks until now() >= deadline, `stop` is triggered, or the wall clock is stepped.
  // Never returns kDeadline before the deadline: an early or spurious wake-up sleeps again.
  virtual SleepResult sleep_until(WallTime deadline, std::stop_token stop) = 0;

  // Sleeps for a duration measured on the monotonic clock (retry backoff, timeouts).
  // Returns false when `stop` was triggered first.
  virtual bool sleep_for(Nanos duration, std::stop_token stop) = 0;
};

}  // namespace metronome
