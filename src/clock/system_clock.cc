#include "clock/system_clock.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "common/fd.h"

namespace metronome {
namespace {

Nanos read_clock(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return Nanos(int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec);
}

// Timer slack is per thread: set it once for each thread that sleeps here.
void ensure_fine_timer_slack() {
  thread_local bool done = false;
  if (!done) {
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    done = true;
  }
}

[[noreturn]] void die(const char* what) {
  // Running out of descriptors for a sleep is not something the daemon can work around.
  std::fprintf(stderr, "metronome: %s failed: %s\n", what, std::strerror(errno));
  std::abort();
}

}  // namespace

SystemClock::SystemClock() : reference_offset_ns_(wall_minus_mono().count()) {}

WallTime SystemClock::now() const {
  return WallTime(read_clock(CLOCK_REALTIME));
}

MonoTime SystemClock::monotonic_now() const {
  return std::chrono::steady_clock::now();
}

Nanos SystemClock::wall_minus_mono() const {
  return read_clock(CLOCK_REALTIME) - read_clock(CLOCK_MONOTONIC);
}

Clock::SleepResult SystemClock::sleep_until(WallTime deadline, std::stop_token stop) {
  ensure_fine_timer_slack();
  Fd timer(timerfd_create(CLOCK_REALTIME, TFD_CLOEXEC | TFD_NONBLOCK));
  if (timer.get() < 0) die("timerfd_create");
  Fd wake(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (wake.get() < 0) die("eventfd");
  std::stop_callback on_stop(stop, [fd = wake.get()] {
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(fd, &one, sizeof one);
  });

  const int64_t ns = deadline.time_since_epoch().count();
  itimerspec spec{};
  spec.it_value.tv_sec = ns / 1'000'000'000;
  spec.it_value.tv_nsec = ns % 1'000'000'000;
  if (spec.it_value.tv_sec == 0 && spec.it_value.tv_nsec == 0) spec.it_value.tv_nsec = 1;

  for (;;) {
    if (stop.stop_requested()) return {Wake::kStopped, Nanos(0)};
    // A step that happened since the last sleep (or while we were busy) counts too.
    Nanos offset = wall_minus_mono();
    Nanos moved = offset - Nanos(reference_offset_ns_.load(std::memory_order_relaxed));
    if (moved > kStepThreshold || moved < -kStepThreshold) {
      reference_offset_ns_.store(offset.count(), std::memory_order_relaxed);
      clock_steps_.fetch_add(1, std::memory_order_relaxed);
      return {Wake::kClockStep, moved};
    }
    // Follow slow slewing (NTP) so that only real steps are reported.
    reference_offset_ns_.store(offset.count(), std::memory_order_relaxed);
    if (now() >= deadline) return {Wake::kDeadline, Nanos(0)};

    if (timerfd_settime(timer.get(), TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &spec, nullptr) !=
        0) {
      if (errno == ECANCELED) continue;  // the clock was set just now: re-check above
      die("timerfd_settime");
    }
    pollfd fds[2] = {{timer.get(), POLLIN, 0}, {wake.get(), POLLIN, 0}};
    int rc = ::poll(fds, 2, -1);
    if (rc < 0) {
      if (errno == EINTR) continue;
      die("poll");
    }
    if (fds[0].revents & POLLIN) {
      uint64_t expirations;
      // ECANCELED here means the clock was set; the loop re-checks the offset.
      [[maybe_unused]] auto n = ::read(timer.get(), &expirations, sizeof expirations);
    }
    // Loop: re-check stop, step and the deadline. An early wake-up sleeps again.
  }
}

bool SystemClock::sleep_for(Nanos duration, std::stop_token stop) {
  ensure_fine_timer_slack();
  if (duration <= Nanos(0)) return !stop.stop_requested();
  Fd timer(timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  if (timer.get() < 0) die("timerfd_create");
  Fd wake(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (wake.get() < 0) die("eventfd");
  std::stop_callback on_stop(stop, [fd = wake.get()] {
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(fd, &one, sizeof one);
  });
  itimerspec spec{};
  spec.it_value.tv_sec = duration.count() / 1'000'000'000;
  spec.it_value.tv_nsec = duration.count() % 1'000'000'000;
  if (timerfd_settime(timer.get(), 0, &spec, nullptr) != 0) die("timerfd_settime");
  for (;;) {
    if (stop.stop_requested()) return false;
    pollfd fds[2] = {{timer.get(), POLLIN, 0}, {wake.get(), POLLIN, 0}};
    int rc = ::poll(fds, 2, -1);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) die("poll");
    if (fds[0].revents & POLLIN) return !stop.stop_requested();
  }
}

}  // namespace metronome
