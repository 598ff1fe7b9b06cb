// Retry backoff: exponential with jitter, and whether another attempt still fits in a deadline.
// Pure functions; the caller supplies the random draw and the time.
#pragma once

#include <algorithm>
#include <cmath>

#include "common/time.h"

namespace metronome {

struct BackoffPolicy {
  Nanos initial = std::chrono::milliseconds(20);
  double multiplier = 2.0;
  Nanos max = std::chrono::milliseconds(1000);
};

// The delay before retry number `retry` (1 = the first retry): "equal jitter", half of the
// exponential step fixed and half drawn, so retries of many feeds spread out but never collapse
// to zero. REQUIRES: retry >= 1, 0 <= uniform01 < 1.
inline Nanos backoff_delay(const BackoffPolicy& policy, int retry, double uniform01) {
  double step = static_cast<double>(policy.initial.count()) *
                std::pow(policy.multiplier, static_cast<double>(retry - 1));
  step = std::min(step, static_cast<double>(policy.max.count()));
  return Nanos(static_cast<int64_t>(step / 2 + uniform01 * step / 2));
}

// Whether a retry after `delay` can still start before `deadline`, leaving `reserve` for the
// attempt itself.
inline bool retry_fits(WallTime now, Nanos delay, Nanos reserve, WallTime deadline) {
  return now + delay + reserve < deadline;
}

}  // namespace metronome
