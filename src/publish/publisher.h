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
#include "publish/commit_batcher.h"
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
  // Its records may share a batch signature (SlotJob::batch; ADR 0018). False for a feed with an
  // evm sink: MetronomeFeed checks signatures over single observations.
  bool batch_signatures = false;

  // When the slot must be published by: slot + deadline, or the next slot.
  WallTime deadline_of(SlotTime slot) const;
};

class SignBatch;

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
  // Batch signatures: a record of a feed with batch_signatures waits in `batch` and is signed
  // with the batch's other records (one signature over their Merkle root) when the batch is full
  // or closed, then goes to its commit. Null: signed alone, at once.
  SignBatch* batch = nullptr;
};

struct SlotResult {
  SlotRecord slot;                    // the outcome as recorded (or to be recorded)
  std::optional<ValueRecord> record;  // the record, when one was produced
  bool inserted = false;              // this call stored the value (false: it was there already)
  bool outcome_persisted = false;     // the outcome is in the store
  // The record went to its commit, after SlotJob::observed was called (when set).
  bool observed = false;
  // Fenced jobs: the lease was lost before the commit; nothing was recorded for the slot.
  bool lease_lost = false;
};

class Publisher {
 public:
  Publisher(Store& store, DeadLetterQueue& dlq, Clock& clock, BackoffPolicy backoff = {});
  ~Publisher();  // writes the commits queued by publish_slot_async() and runs their `done`

  // Whether every published slot gets an info log line (the default); when false they are at
  // debug level, for daemons with many feeds that log a summary instead.
  void set_log_each_slot(bool on) { log_each_slot_ = on; }

  // Signs at once: job.batch is not used here (see publish_slot_async).
  SlotResult publish_slot(const FeedRuntime& feed, const SlotJob& job, std::stop_token stop);

  // Runs a continuation on a worker; false when it cannot (shutting down): the caller then
  // runs it itself.
  using Executor = std::function<bool(std::function<void()>)>;
  // publish_slot() without waiting for the store: the observed and signed record is queued to
  // the commit batcher (one transaction for everything queued; see CommitBatcher) and this
  // returns. When its batch was written, `done` runs with the slot's result on the batcher's
  // thread, and must not block (hand store writes and other I/O to a worker). When it was not,
  // the retries, the DLQ and `done` run on `executor`, as publish_slot() would run them. A slot
  // that fails before its commit calls `done` on this thread before returning. With job.batch
  // (and a feed with batch_signatures), the record waits there for its signature (SignBatch).
  // REQUIRES: `feed` outlives `done`'s call.
  void publish_slot_async(const FeedRuntime& feed, SlotJob job, std::stop_token stop,
                          const Executor& executor, std::function<void(SlotResult)> done);

  // Records an outcome that needs no publishing (skipped, missed). If the store cannot be written
  // the commit is kept and retried by the next successful commit (flush_pending()).
  // With a fence, the outcome is recorded only under that lease.
  void record_outcome(const FeedId& feed, const ExecutionId& execution, const SlotRecord& slot,
                      std::optional<SlotFence> fence = std::nullopt);
  // record_outcome() through the commit batcher: the outcome shares a batch's transaction with
  // the values (at 100,000 feeds an overloaded daemon made every skip a write of its own), and
  // waits for room in its queue like them. `done` runs once it is written, on the batcher's
  // answering thread (it must not block); when its batch failed, after record_outcome() made it
  // on its own on `executor` (or on the answering thread if the executor refuses).
  void record_outcome_async(const FeedId& feed, const ExecutionId& execution,
                            const SlotRecord& slot, std::optional<SlotFence> fence,
                            const Executor& executor, std::function<void()> done);

  // Runs `setup` on the commit batcher's two threads (writer, answers).
  void run_on_commit_thread(std::function<void()> setup) {
    batcher_->run_on_thread(std::move(setup));
  }
  // Runs a bookkeeping write between the commit batcher's batches of values, once none waits
  // (CommitBatcher::run_when_idle()), and returns when it has run.
  void run_when_store_idle(const std::function<void()>& chore) { batcher_->run_when_idle(chore); }
  // Signs the records waiting in `batch` (grouped by key and chain) and queues their commits.
  // SignBatch calls it when full and when destroyed.
  void sign_and_submit(SignBatch& batch);

  // Records observed and signed that wait for their batch (publish_slot_async()).
  size_t commits_waiting() const { return batcher_->queued(); }
  // Blocks (real time, bounded) until at least n records wait for their batch. For tests.
  bool wait_for_commits_waiting(size_t n, std::chrono::milliseconds timeout) const {
    return batcher_->wait_for_queued(n, timeout);
  }

  // Retries outcomes that could not be written earlier. Returns how many are still pending.
  size_t flush_pending();
  size_t pending_outcomes() const;

  // Called after each slot outcome, with the stored record when published (e.g. to evaluate
  // alarms, update metrics and the API's snapshots). It runs on the worker, or, for a slot of
  // publish_slot_async() written at once, on the commit batcher's answering thread: it must not
  // block. REQUIRES: set before slots run.
  using OutcomeCallback =
      std::function<void(const FeedId&, const SlotRecord&, const ValueRecord* record)>;
  void set_on_outcome(OutcomeCallback callback) { on_outcome_ = std::move(callback); }
  // Called after each store write of a slot, with its status (store reachability).
  void set_on_store_write(std::function<void(const Status&)> callback) {
    on_store_write_ = std::move(callback);
  }

 private:
  // A slot's state from its observation to its outcome.
  struct Attempt {
    SlotResult result;
    std::optional<WallTime> first_failure;
    std::string stage;  // where it failed: observe, sanity, sign, publish
    Status failure;
    int attempts = 0;
    // The record's digest, when it waits for a batch signature (SlotJob::batch).
    std::optional<Hash32> leaf;
  };
  // A slot of publish_slot_async() while its record waits for its batch: one allocation, shared
  // by the batcher's callback (a std::function, so copyable) until it runs.
  struct InFlight {
    SlotJob job;
    Attempt attempt;
  };
  // Observes (with retries), checks the sanity bounds, signs, and waits for the slot when
  // observed ahead of it. a.result.record is set when there is something to commit. With
  // `may_batch` (and job.batch, and a feed with batch_signatures), the record is not signed
  // yet: a.leaf is its digest, for its batch.
  Attempt observe_and_sign(const FeedRuntime& feed, const SlotJob& job, std::stop_token stop,
                           bool may_batch);
  // The commit of a.result.record for its attempt number `commit_attempts` (from 1). The record
  // moves into the commit (it is not copied); the caller moves it back once the commit is done.
  SlotCommit commit_of(const FeedRuntime& feed, const SlotJob& job, Attempt& a,
                       int commit_attempts);
  // The batcher's callback for the first commit of an async slot (publish_slot_async()).
  CommitBatcher::Done on_first_commit(const FeedRuntime& feed, std::shared_ptr<InFlight> f,
                                      const Executor& executor,
                                      std::function<void(SlotResult)> done);
  // Commits with retries inside the deadline. `first`: the answer of a first attempt already
  // made by the batcher (nullopt: none made, or its batch failed).
  void commit_record(const FeedRuntime& feed, const SlotJob& job, Attempt& a,
                     std::optional<Result<bool>> first);
  // After the commit: lease-lost check, logs, on_outcome; a failure is recorded and goes to
  // the DLQ.
  SlotResult finish(const FeedRuntime& feed, const SlotJob& job, Attempt&& a);
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

  // Last: destroyed first, so that its thread's callbacks still find the members above.
  std::unique_ptr<CommitBatcher> batcher_;
};

// The records of the slots that one worker runs in a row (a chunk of the scheduler's), signed
// together: one signature per key and chain over the Merkle root of their digests (ADR 0018)
// instead of one per record. At most `max_records` wait; the one that fills the batch signs it.
// The destructor signs and queues what is left, so no record is lost by an early exit.
// Not thread-safe: one worker fills and closes it.
class SignBatch {
 public:
  SignBatch(Publisher& publisher, size_t max_records);
  ~SignBatch();
  SignBatch(const SignBatch&) = delete;
  SignBatch& operator=(const SignBatch&) = delete;

  size_t waiting() const { return pending_.size(); }

 private:
  friend class Publisher;
  struct Pending {
    std::shared_ptr<const Signer> signer;
    const ObservationDomain* domain;  // the feed's (FeedRuntime outlives its slots)
    Hash32 leaf;
    SlotCommit commit;
    CommitBatcher::Done done;
  };
  Publisher& publisher_;
  const size_t max_records_;
  std::vector<Pending> pending_;
};

}  // namespace metronome
