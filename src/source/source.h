// Source: where a feed's value comes from at a slot.
//
// observe() is called on a worker thread at (or, with observe_lead, shortly before) the slot and
// must return by ctx.deadline. Values are exact decimal text ("537", "-12.5"); no binary floating
// point. Thread-safety: a feed never observes two slots at once, but different feeds may share
// nothing, so implementations need only be safe for one caller at a time unless documented.
#pragma once

#include <stop_token>
#include <string>
#include <vector>

#include "common/ids.h"
#include "common/result.h"
#include "common/time.h"
#include "store/records.h"

namespace metronome {

struct ObserveContext {
  FeedId feed;
  SlotTime slot;
  WallTime deadline;     // the observation must finish by then
  std::stop_token stop;  // shutdown
};

struct SourceValue {
  std::string value;                    // exact decimal text
  std::vector<SourceAnswer> answers{};  // a median's sources that answered; empty otherwise
};

class Source {
 public:
  virtual ~Source() = default;
  // Errors name the source and what went wrong; retryable() ones are retried within the deadline.
  virtual Result<SourceValue> observe(const ObserveContext& ctx) = 0;
  // "random_int 0..1000"
  virtual std::string describe() const = 0;
};

}  // namespace metronome
