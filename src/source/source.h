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
  // False when observe() only computes (no I/O, no waiting): the scheduler then runs several
  // feeds' slots due at the same time one after another on one worker, instead of handing each
  // to a worker of its own (a wake-up and a switch per slot). A source that may wait (the
  // network, a file, a child process) answers true, so that it never delays another feed.
  virtual bool may_block() const { return true; }
};

}  // namespace metronome
