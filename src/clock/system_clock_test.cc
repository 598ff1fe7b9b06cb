// SystemClock against the real clocks: short real-time waits only (tens of milliseconds).
#include "clock/system_clock.h"

#include <gtest/gtest.h>
#include <sys/prctl.h>

#include <thread>

#include "testing/manual_clock.h"

namespace metronome {
namespace {

using namespace std::chrono_literals;

TEST(SystemClock, SleepUntilNeverReturnsBeforeTheDeadline) {
  SystemClock clock;
  for (int i = 0; i < 20; ++i) {
    WallTime deadline = clock.now() + 3ms;
    auto r = clock.sleep_until(deadline, std::stop_token());
    ASSERT_EQ(r.wake, Clock::Wake::kDeadline);
    EXPECT_GE(clock.now(), deadline);
  }
}

TEST(SystemClock, SleepUntilAPastDeadlineReturnsAtOnce) {
  SystemClock clock;
  auto r = clock.sleep_until(clock.now() - 1s, std::stop_token());
  EXPECT_EQ(r.wake, Clock::Wake::kDeadline);
}

TEST(SystemClock, StopTokenCancelsASleep) {
  SystemClock clock;
  std::stop_source stop;
  MonoTime start = clock.monotonic_now();
  std::thread stopper([&] {
    std::this_thread::sleep_for(20ms);
    stop.request_stop();
  });
  auto r = clock.sleep_until(clock.now() + 10s, stop.get_token());
  stopper.join();
  EXPECT_EQ(r.wake, Clock::Wake::kStopped);
  EXPECT_LT(clock.monotonic_now() - start, 5s);
  EXPECT_FALSE(clock.sleep_for(10s, stop.get_token()));  // already stopped
}

TEST(SystemClock, SleepForWaitsAtLeastTheDuration) {
  SystemClock clock;
  MonoTime start = clock.monotonic_now();
  EXPECT_TRUE(clock.sleep_for(5ms, std::stop_token()));
  EXPECT_GE(clock.monotonic_now() - start, 5ms);
}

TEST(SystemClock, SetsOneNanosecondTimerSlackOnTheSleepingThread) {
  SystemClock clock;
  (void)clock.sleep_until(clock.now(), std::stop_token());
  EXPECT_EQ(prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0), 1);
}

TEST(ManualClock, SleepersWakeOnlyWhenTheClockReachesTheirDeadline) {
  testing::ManualClock clock;
  WallTime deadline = clock.now() + 2s;
  std::atomic<bool> woke{false};
  std::thread sleeper([&] {
    EXPECT_EQ(clock.sleep_until(deadline, std::stop_token()).wake, Clock::Wake::kDeadline);
    woke = true;
  });
  ASSERT_TRUE(clock.wait_for_sleepers(1));
  clock.advance(1999ms);
  ASSERT_TRUE(clock.wait_for_sleepers(1));
  EXPECT_FALSE(woke);
  clock.advance(1ms);
  sleeper.join();
  EXPECT_TRUE(woke);
  EXPECT_EQ(clock.now(), deadline);
}

TEST(ManualClock, StepWakesSleepersWithTheStep) {
  testing::ManualClock clock;
  std::thread sleeper([&] {
    auto r = clock.sleep_until(clock.now() + 1h, std::stop_token());
    EXPECT_EQ(r.wake, Clock::Wake::kClockStep);
    EXPECT_EQ(r.step, -5s);
  });
  ASSERT_TRUE(clock.wait_for_sleepers(1));
  clock.step(-5s);
  sleeper.join();
}

}  // namespace
}  // namespace metronome
