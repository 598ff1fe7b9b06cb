// CommitBatcher: one thread that writes the slot commits queued by many publishing tasks in one
// Store::commit_slots() call, and hands each commit's answer back to its task's continuation.
//
// Why: with a commit that blocks the worker that made it, a boundary of many feeds needs as
// many workers waiting at once as records it wants to share a transaction, and each wait costs
// a sleep and a wake-up. At 10,000 feeds that capped a group commit at a few hundred records and
// most of the CPU went to thread switches and to the same B-tree pages written again by every
// small transaction (docs/performance.md, "Session 7"). A worker now queues its signed record
// and goes on with the next slot; everything queued while the previous batch was being written
// is the next batch.
//
// A batch is one commit_slots() call: one durable transaction. When a batch of more than one
// commit fails, each commit is answered "not written" (nullopt) and its caller commits it
// again on its own, with its own retries and errors, so one bad commit never fails the others.
//
// The answers run on a second thread ("metronome-done"), a batch at a time in the order the
// batches were written, while the writer goes on with the next batch. Run on the writer's
// thread, a 10,000-feed boundary's 10,000 callbacks and record frees left the store idle for
// 12-20 ms after each batch of 4,096 (docs/performance.md, "Session 9").
//
// Execution states go through run_when_idle(): the writer runs them between batches, once no
// commit waits, so that a boundary's values do not share a transaction with them. At 10,000
// feeds, the windows' start and end each wrote 10,000 execution states, and the values of those
// boundaries were durable up to 50 ms later (docs/performance.md, "Session 12"). Planned windows
// are not chores: an overloaded writer (100,000 feeds) then planned too late, and slots were
// missed.
//
// Thread-safety: submit() may be called from any thread. `done` runs on the answering thread
// and must not block: it hands the continuation to a worker.
// Shutdown: the destructor writes what is queued, runs its callbacks, then joins.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "store/store.h"

namespace metronome {

class CommitBatcher {
 public:
  // Answer for one commit: whether its value was inserted (Store::commit_slots), or the error
  // of its batch of one, or nullopt when its batch of several failed (see above). `commit` is the
  // commit submitted, handed back: the callback may move from it (it is freed afterwards).
  using Done = std::function<void(std::optional<Result<bool>> inserted, SlotCommit& commit)>;

  // `max_batch`: at most this many commits per transaction (a bound on the latency of the
  // commits queued behind a batch). `max_queued`: at most this many commits wait for a batch;
  // submit() blocks until there is room. That is the back-pressure of a store slower than the
  // slots: workers stop observing instead of piling up signed records (at 10,000 feeds, a
  // boundary's records all queued at once took the peak RSS past 150 MB; at 100,000 feeds an
  // unbounded queue held gigabytes).
  explicit CommitBatcher(Store& store, size_t max_batch = 2048, size_t max_queued = 2048);
  ~CommitBatcher();
  CommitBatcher(const CommitBatcher&) = delete;
  CommitBatcher& operator=(const CommitBatcher&) = delete;

  // Blocks while max_queued commits wait (never on the batcher's own threads: nothing there
  // submits).
  void submit(SlotCommit commit, Done done);
  // submit() for several commits (moved from; done[i] answers commits[i]) under one lock and one
  // wake-up of the writer: a batch signature's records (SignBatch). Waits while max_queued
  // commits wait, then queues them all, so the queue may pass max_queued by fewer than
  // commits.size().
  void submit_all(std::vector<SlotCommit>& commits, std::vector<Done>& done);
  // Runs `setup` on the batcher's two threads (the writer's before its next batch, the
  // answering thread's before its next answers), e.g. to give them the realtime priority of the
  // workers whose commits they now make.
  void run_on_thread(std::function<void()> setup);
  // Runs `chore` on the writer's thread once no commit waits, and returns when it has run (its
  // exception, if any, is rethrown here). A queue that never empties (an overloaded daemon)
  // still lets one chore through after every kBatchesPerChore batches, so bookkeeping goes on.
  // Chores run in the order they came. On the writer's own thread, or once the batcher is
  // stopping, the chore runs at once. The answering thread should not call it, since it blocks
  // the answers meanwhile (the scheduler does only at shutdown, once its workers have stopped);
  // the writer never waits for that thread, so it cannot deadlock.
  void run_when_idle(const std::function<void()>& chore);
  static constexpr int kBatchesPerChore = 4;

  // Batches written and commits in them since construction (for tests and benchmarks).
  uint64_t batches() const;
  uint64_t commits() const;
  // Commits waiting for a batch (not counting the batch being written).
  size_t queued() const;
  // Chores waiting for the writer (run_when_idle()). For tests.
  size_t chores_waiting() const;
  // Blocks (real time, bounded) until at least n commits wait. For tests.
  bool wait_for_queued(size_t n, std::chrono::milliseconds timeout) const;

 private:
  // Queued commits and their callbacks, side by side: a batch is the whole queue, taken by a
  // swap (the writer moves no commit) and written as it is (commits is contiguous). Once
  // answered, a batch's emptied vectors come back as the next queue, with their capacity.
  struct Batch {
    std::vector<SlotCommit> commits;
    std::vector<Done> done;
    size_t size() const { return commits.size(); }
  };
  // A written batch on its way to its callbacks (and to being freed, off the writer's thread).
  struct Answered {
    Batch batch;
    Result<std::vector<bool>> written;
  };
  void run(std::stop_token stop);
  void answer(std::stop_token stop);

  Store& store_;
  const size_t max_batch_;
  const size_t max_queued_;
  mutable std::mutex mu_;
  std::condition_variable_any cv_;                 // wakes the batcher's thread
  std::condition_variable space_cv_;               // wakes a submit() waiting for room
  mutable std::condition_variable_any queued_cv_;  // wakes wait_for_queued()
  Batch queue_;                                    // guarded by mu_
  std::vector<Batch> spare_;                       // guarded by mu_: answered, emptied batches
  std::function<void()> setup_;                    // guarded by mu_: run_on_thread()
  std::deque<std::function<void()>> chores_;       // guarded by mu_: run_when_idle()
  int batches_since_chore_ = 0;                    // guarded by mu_
  bool stopping_ = false;                          // guarded by mu_
  uint64_t batches_ = 0;                           // guarded by mu_
  uint64_t commits_ = 0;                           // guarded by mu_
  std::mutex answer_mu_;
  std::condition_variable_any answer_cv_;  // wakes the answering thread
  std::deque<Answered> answered_;          // guarded by answer_mu_
  std::function<void()> answer_setup_;     // guarded by answer_mu_: run_on_thread()
  // Last: started after, and joined (the writer first) before, the members above go.
  std::jthread answer_thread_;
  std::jthread thread_;
};

}  // namespace metronome
