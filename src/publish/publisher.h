// Publisher: the replaced system's "publishing function", for one slot of one feed:
// observe the value (source) → sign it with the feed's key (its secret, read when the window was
// planned; see FeedSigner) → write the record to the store in one durable transaction, retrying
// retryable errors with backoff inside the slot's deadline. A slot not published by its deadline is
// failed, and goes to the dead-letter queue with the record if one was produced, so a redrive
// delivers exactly the value observed at that slot.
//
// Replicas (docs/ha.md): a job with a fence commits under the feed's lease; a commit the store
// refuses because the lease is no longer this replica's (not inserted, and the slot has no value)
// is a lost lease: nothing recorded, not published, not on the DLQ (the feed's new holder records
// the slot).
//
// Thread-safety: publish_slot() may run concurrently for different feeds. The caller guarantees
// that one feed never has two slots observing at once; after SlotJob::observed, the commits of a
// feed's consecutive slots may overlap (each slot is its own row; readers keep the newest).
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stop_token>
#include <vector>

#include "clock/clock.h"
#include "common/ids.h"
#include "dlq/dead_letter_queue.h"
#include "publish/backoff.h"
#include "publish/feed_signer.h"
#include "publish/sanity_bounds.h"
#include "schedule/schedule.h"
#include "source/source.h"
#include "store/store.h"

namespace metronome {

// What the publisher needs to know about a feed; built once from its config.
struct FeedRuntime {
  FeedId id;
  Schedule schedule = Schedule::every(Millis(2000));
  Millis window{60'000};
  std::optional<Millis> deadline;  // default: until the next slot
  // The slot's task starts this long before the slot, so a slow source is ready at the slot;
  // the record is committed no earlier than the slot, and fired_at is that moment.
  Millis observe_lead{0};
  int retries = 3;
  int decimals = 0;
  SanityBounds bounds;  // checked between observing and signing
  std::unique_ptr<Source> source;
  std::unique_ptr<FeedSigner> signer;  // null: the feed's records are not signed

  // When the slot must be published by: slot + deadline, or the next slot.
  WallTime deadline_of(SlotTime slot) const;
};

struct SlotJob {
  ExecutionId execution;
  SlotTime slot;
  WallTime fired_at;  // when the task started; >= slot - observe_lead
  WallTime deadline;
  std::shared_ptr<const Signer> signer;  // the window's key; null: unsigned
  // Replicas: the lease every commit of this slot is made under. Absent: a single writer.
  std::optional<SlotFence> fence{};
  // Called once the value is observed and signed, just before its commit (not called when there
  // is nothing to commit): from then on the feed's next slot may be observed while this one
  // waits for the store.
  std::function<void()> observed{};
};

struct SlotResult {
  SlotRecord slot;                    // the outcome as recorded (or to be recorded)
  std::optional<ValueRecord> record;  // the record, when one was produced
  bool inserted = false;              // this call stored the value (false: it was there already)
  bool outcome_persisted = false;     // the outcome is in the store
  // Fenced jobs: the lease was lost before the commit; nothing was recorded for the slot.
  bool lease_lost = false;
};

class Publisher {
 public:
  Publisher(Store& store, DeadLetterQueue& dlq, Clock& clock, BackoffPolicy backoff = {});

  // Whether every published slot gets an info log line (the default); when false they are at
  // debug level, for daemons with many feeds that log a summary instead.
  void set_log_each_slot(bool on) { log_each_slot_ = on; }

  SlotResult publish_slot(const FeedRuntime& feed, const SlotJob& job, std::stop_token stop);

  // Records an outcome that needs no publishing (skipped, missed). If the store cannot be written
  // the commit is kept and retried by the next successful commit (flush_pending()).
  // With a fence, the outcome is recorded only under that lease.
  void record_outcome(const FeedId& feed, const ExecutionId& execution, const SlotRecord& slot,
                      std::optional<SlotFence> fence = std::nullopt);

  // Retries outcomes that could not be written earlier. Returns how many are still pending.
  size_t flush_pending();
  size_t pending_outcomes() const;

  // Called on the worker after each slot outcome, with the stored record when published (e.g. to
  // evaluate alarms, update metrics and the API's snapshots). REQUIRES: set before slots run.
  using OutcomeCallback =
      std::function<void(const FeedId&, const SlotRecord&, const ValueRecord* record)>;
  void set_on_outcome(OutcomeCallback callback) { on_outcome_ = std::move(callback); }
  // Called after each store write of a slot, with its status (store reachability).
  void set_on_store_write(std::function<void(const Status&)> callback) {
    on_store_write_ = std::move(callback);
  }

 private:
  double draw_jitter();
  void keep_pending(SlotCommit commit);

  Store& store_;
  DeadLetterQueue& dlq_;
  Clock& clock_;
  BackoffPolicy backoff_;
  OutcomeCallback on_outcome_;
  std::function<void(const Status&)> on_store_write_;
  bool log_each_slot_ = true;

  std::mutex jitter_mu_;
  std::mt19937_64 jitter_engine_;  // guarded by jitter_mu_

  mutable std::mutex pending_mu_;
  std::vector<SlotCommit> pending_;  // guarded by pending_mu_: outcomes not yet in the store
};

}  // namespace metronome
