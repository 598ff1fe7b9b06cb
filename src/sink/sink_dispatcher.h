// SinkDispatcher: hands each published record to its feed's sinks, off the slot path.
//
// The publisher's outcome callback calls submit() after the record is durable in the store;
// submit() only queues. Each sink has its own lane (a queue and a thread), so a slow or failing
// sink delays neither the slots nor the other sinks. A lane delivers with the slot's deadline
// (retries inside it); a record it cannot deliver goes to the DLQ with stage "sink:<kind>" and the
// record, and redrive() delivers it later. The slot stays published.
//
// Queued records live in memory: a crash loses the deliveries not yet made (the records are in the
// store); see docs/adr. A full lane (max_queue) and a stop that outlasts drain_budget send records
// to the DLQ instead, so none is dropped silently.
//
// Thread-safety: submit() and redrive() may be called from any thread; configure() and stop()
// from one thread at a time. Shutdown: stop() (or the destructor) lets every lane drain.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "aws/aws_credentials.h"
#include "clock/clock.h"
#include "config/config.h"
#include "dlq/dead_letter_queue.h"
#include "sink/sink.h"

namespace metronome {

// The sinks of one feed, and when its slots' deadlines fall.
struct FeedSinks {
  FeedId feed;
  std::function<WallTime(SlotTime)> deadline_of;
  std::vector<std::shared_ptr<Sink>> sinks;
};

// The deadline of a slot of `feed`, as the publisher computes it: slot + deadline, or the next
// slot.
WallTime sink_deadline(const FeedConfig& feed, SlotTime slot);

// One sink per entry of each feed's `sinks` (no I/O: nothing is checked or connected).
std::vector<FeedSinks> make_feed_sinks(const Config& config, Clock& clock,
                                       EnvLookup env = process_env);

// Runs every sink's check(). Configuration problems (no credentials, no table) are returned;
// an unreachable destination only logs a warning (deliveries will retry or go to the DLQ).
Status check_feed_sinks(const std::vector<FeedSinks>& feeds);

struct SinkDispatcherOptions {
  size_t max_queue = 10'000;                     // per lane; more goes straight to the DLQ
  Nanos drain_budget = std::chrono::seconds(5);  // how long stop() keeps delivering
  Nanos redrive_timeout = std::chrono::seconds(10);
};

class SinkDispatcher {
 public:
  SinkDispatcher(DeadLetterQueue& dlq, Clock& clock, SinkDispatcherOptions options = {});
  ~SinkDispatcher();  // stop()
  SinkDispatcher(const SinkDispatcher&) = delete;
  SinkDispatcher& operator=(const SinkDispatcher&) = delete;

  // Replaces the sinks (at start, and on reload): the new lanes start, the old ones drain and
  // stop (this waits for them).
  void configure(std::vector<FeedSinks> feeds);
  // Queues `record` for each sink of its feed. Never waits for I/O.
  void submit(const ValueRecord& record);
  // Delivers a DLQ message's record to every sink of its feed whose stage is the message's
  // (idempotent, so a sink that has it already counts as delivered). Synchronous.
  Status redrive(const DlqMessage& message);
  // Drains every lane (at most drain_budget) and stops them.
  void stop();

  // Every stage a configured sink can fail with ("sink:dynamodb"), for DLQ redrivers.
  static std::vector<std::string> stages();

 private:
  class Lane;

  DeadLetterQueue& dlq_;
  Clock& clock_;
  SinkDispatcherOptions options_;
  mutable std::mutex mu_;
  std::vector<FeedSinks> feeds_;                        // guarded by mu_
  std::multimap<FeedId, std::shared_ptr<Lane>> lanes_;  // guarded by mu_
};

}  // namespace metronome
