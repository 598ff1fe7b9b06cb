#include "testing/manual_clock.h"

namespace metronome::testing {

ManualClock::ManualClock(WallTime start) : wall_(start) {}

WallTime ManualClock::now() const {
  std::lock_guard lock(mu_);
  return wall_;
}

MonoTime ManualClock::monotonic_now() const {
  std::lock_guard lock(mu_);
  return MonoTime(std::chrono::duration_cast<MonoTime::duration>(mono_));
}

Clock::SleepResult ManualClock::sleep_until(WallTime deadline, std::stop_token stop) {
  std::unique_lock lock(mu_);
  const uint64_t generation = step_generation_;
  ++sleepers_;
  cv_.notify_all();
  cv_.wait(lock, stop, [&] { return wall_ >= deadline || step_generation_ != generation; });
  --sleepers_;
  if (step_generation_ != generation) return {Wake::kClockStep, last_step_};
  if (wall_ >= deadline) return {Wake::kDeadline, Nanos(0)};
  return {Wake::kStopped, Nanos(0)};
}

bool ManualClock::sleep_for(Nanos duration, std::stop_token stop) {
  std::unique_lock lock(mu_);
  const Nanos until = mono_ + duration;
  ++sleepers_;
  cv_.notify_all();
  bool reached = cv_.wait(lock, stop, [&] { return mono_ >= until; });
  --sleepers_;
  return reached;
}

void ManualClock::advance(Nanos d) {
  std::lock_guard lock(mu_);
  wall_ += d;
  mono_ += d;
  cv_.notify_all();
}

void ManualClock::set(WallTime t) {
  std::lock_guard lock(mu_);
  if (t > wall_) {
    mono_ += t - wall_;
    wall_ = t;
  }
  cv_.notify_all();
}

void ManualClock::step(Nanos d) {
  std::lock_guard lock(mu_);
  wall_ += d;
  last_step_ = d;
  ++step_generation_;
  cv_.notify_all();
}

bool ManualClock::wait_for_sleepers(int n, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  // Real time on purpose: this bounds how long a broken test hangs, it does not drive the test.
  return cv_.wait_for(lock, timeout, [&] { return sleepers_ >= n; });
}

int ManualClock::sleepers() const {
  std::lock_guard lock(mu_);
  return sleepers_;
}

}  // namespace metronome::testing
