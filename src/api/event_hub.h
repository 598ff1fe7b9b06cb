// EventHub: the daemon's live events (new record, slot outcome, DLQ change, alarm transition) for
// the Server-Sent Events endpoint GET /v1/events and the dashboard.
//
// Publishers are the slot path (SlotReporter), the DLQ's on_change and the alarm thread; readers
// are HTTP threads, one per open event stream. The slot path must never wait for HTTP, so events
// go into a bounded ring buffer with sequence numbers: publish() renders the event, takes the
// mutex for a push (O(1), no allocation under the lock beyond the ring's fixed slots) and wakes
// the readers. A reader copies the shared pointers of the events after its own sequence number
// under the same mutex and writes them to its socket with no lock held. A reader that falls more
// than `capacity` events behind has lost events: next() tells it (Batch::lost), and the stream
// ends — a slow client is dropped, never waited for. With no reader subscribed, publish() does
// not even render the event.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "dlq/alarms.h"
#include "store/records.h"

namespace metronome {

struct Event {
  uint64_t seq = 0;  // 1, 2, ... in publication order
  std::string type;  // "record" | "slot" | "dlq" | "alarm"
  std::string data;  // one line of JSON
};

class EventHub {
 public:
  explicit EventHub(size_t capacity = 1024);
  EventHub(const EventHub&) = delete;
  EventHub& operator=(const EventHub&) = delete;

  // ---- publishers (any thread; never blocks on a reader) ----
  void publish(std::string type, const nlohmann::json& data);
  // A stored value (a slot's or a redrive's).
  void on_record(const ValueRecord& record);
  // A slot's outcome (published, failed, missed, skipped).
  void on_slot(const FeedId& feed, const SlotRecord& slot);
  // The DLQ changed (push, redrive, purge): readers fetch it again.
  void on_dlq_change();
  // An alarm's transition, as persisted.
  void on_alarm(const AlarmState& state);

  // ---- readers ----
  // A reader's registration: while one exists, publish() renders and keeps events.
  class Subscription {
   public:
    explicit Subscription(EventHub& hub);
    ~Subscription();
    Subscription(const Subscription&) = delete;
    Subscription& operator=(const Subscription&) = delete;

   private:
    EventHub& hub_;
  };

  struct Batch {
    std::vector<std::shared_ptr<const Event>> events;  // seq > after, in order
    bool lost = false;     // events after `after` were overwritten before they were read
    bool stopped = false;  // `stop` was set (see wake_all())
  };
  // Waits until there are events after `after`, `stop` is set, or `timeout` passed (real time:
  // a heartbeat period for idle streams), and returns them.
  Batch next(uint64_t after, std::chrono::milliseconds timeout, const std::atomic<bool>& stop);
  // Wakes every waiting reader so that it re-checks its `stop` flag.
  void wake_all();

  uint64_t last_seq() const;  // 0 before the first event
  size_t subscribers() const { return subscribers_.load(); }

 private:
  const size_t capacity_;
  std::atomic<size_t> subscribers_{0};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::shared_ptr<const Event>> ring_;  // guarded by mu_; slot seq % capacity_
  uint64_t last_seq_ = 0;                           // guarded by mu_
};

// `inner` (may be null) wrapped so that every alarm transition is also published to `hub`.
// REQUIRES: hub outlives the result.
std::unique_ptr<AlarmActions> with_alarm_events(std::unique_ptr<AlarmActions> inner, EventHub& hub);

}  // namespace metronome
