// ManualClock: a Clock that only moves when a test moves it.
//
// Sleepers block until a test calls advance()/set() past their deadline, or steps the clock
// (step() wakes sleep_until() with kClockStep, as a real clock step does). wait_for_sleepers(n)
// lets a test wait until n threads are blocked in sleep_until()/sleep_for(), so a test can drive
// a threaded component deterministically: "wait until the timer sleeps, advance 2 s, repeat".
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <condition_variable>
#include <mutex>

#include "clock/clock.h"

namespace metronome::testing {

class ManualClock final : public Clock {
 public:
  explicit ManualClock(WallTime start = WallTime(std::chrono::seconds(1'795'000'000)));

  WallTime now() const override;
  MonoTime monotonic_now() const override;
  SleepResult sleep_until(WallTime deadline, std::stop_token stop) override;
  bool sleep_for(Nanos duration, std::stop_token stop) override;

  // Moves wall and monotonic time forward together.
  void advance(Nanos d);
  // Moves both clocks to `t` (must not be earlier than now()).
  void set(WallTime t);
  // Steps the wall clock alone (a clock being set), by a positive or negative amount.
  void step(Nanos d);
  // Blocks until at least n threads are sleeping in this clock, or a real-time timeout expires.
  // Returns whether they are.
  bool wait_for_sleepers(int n, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  int sleepers() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable_any cv_;
  WallTime wall_;
  Nanos mono_{0};
  uint64_t step_generation_ = 0;
  Nanos last_step_{0};
  int sleepers_ = 0;
};

}  // namespace metronome::testing
