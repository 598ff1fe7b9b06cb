// Scheduler: runs every feed's executions, one window after another, firing each slot on time.
//
// One timer thread owns a min-heap with the next due slot of every feed and sleeps on the Clock
// to the earliest (an absolute wall-clock deadline). It does no I/O: at a deadline it hands the
// due slots to the worker pool and sleeps again. Never a thread or a timer per feed.
//
//   timer:   pop due slots ──▶ in flight? record skipped : hand to a worker
//   worker:  publish the slot (Publisher) ──▶ record the outcome ──▶ last slot? finish the
//   execution planning the next window is a worker task queued when a window's last slot is handed
//   over, so the next execution is persisted (with its planned slots) before its first slot is due.
//
// Start-up recovers what a previous run left: slots whose time passed without an outcome are
// recorded `missed`, windows that passed with no execution get one whose slots are all missed,
// executions cut short are `interrupted`, and the current window resumes at its next slot.
//
// Invariants:
//  - A feed has at most one slot being observed at a time (FeedState::in_flight); a slot due
//    while the previous one is still observed (source or signing) is recorded `skipped`. A slot
//    observed and signed releases the feed before its commit: a store slower than the interval
//    (a disk stall) delays values instead of skipping them, up to 4 commits waiting per feed,
//    beyond which the next slot is skipped.
//  - A slot is handed to a worker shortly before its time (handoff_lead, plus the feed's
//    observe_lead), and the worker sleeps on the Clock until its time has come (a clock stepped
//    back waits again): never early.
//  - The heap holds at most one entry per live execution (its next slot).
//
// Replicas (docs/ha.md): with an `ownership` hook, every process runs every feed's timer but a
// slot is this process's only if the hook answers a lease for it at fire time (asked in the
// worker; the hook does no I/O). A slot that is not ours is neither observed nor published, and
// gets no outcome from this process (its holder records it). Our slots commit under the lease
// (SlotCommit.fence); one whose lease was lost by the commit records nothing. At the first slot
// of a lease (start-up, takeover, or a lease back after a gap), the feed's slots before it that
// still have no outcome are recorded missed, under the lease: the previous holder's gap is never
// silent, and a slot with an outcome is never touched. Start-up recovery records missed slots
// only for the feeds this process holds then. An execution's final state is decided from the
// store by whichever process fires its last slot, and stop() leaves shared executions running
// for the replicas that go on.
//
// Thread-safety: start() and stop() from one owner thread; everything else is internal.
// Shutdown order (stop()): timer thread first (no new slot fires), then the worker pool drains
// (slots in flight finish within their deadlines), then started executions are marked
// interrupted.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <span>
#include <stop_token>
#include <thread>
#include <vector>

#include "clock/clock.h"
#include "dlq/dead_letter_queue.h"
#include "publish/publisher.h"
#include "schedule/window.h"
#include "store/store.h"
#include "workflow/worker_pool.h"

namespace metronome {

class PresignPool;

struct SchedulerOptions {
  // 0: one per feed, at least one per core (and 2), at most kMaxWorkers. Workers observe and
  // sign; the commit is the commit batcher's (ADR 0013), so they wait only for sources that
  // block, and 64 of those may wait at once. More threads cost CPU in switches and in malloc:
  // bench/scale at 10,000 feeds used 31 % of a core with 256 workers, 26 % with 64.
  size_t workers = 0;
  static constexpr size_t kMaxWorkers = 64;
  // SCHED_FIFO for the timer thread (priority 50) and the workers (40), so a busy machine does
  // not delay a slot. Refused (no CAP_SYS_NICE / RLIMIT_RTPRIO): one warning, normal priority.
  bool realtime = false;
  // The timer hands a slot to a worker this long before its time; the worker then sleeps to the
  // slot itself. At the slot only that worker wakes (one wake-up instead of timer, then worker),
  // which is what separates Metronome's lateness from a bare clock_nanosleep loop.
  Nanos handoff_lead = std::chrono::milliseconds(2);
  // Up to this many feeds every published slot is logged at info; beyond, slots are logged at
  // debug and the timer logs one summary per boundary.
  size_t log_each_slot_up_to = 16;
  // Upper bound on the missed slots recorded for windows that passed while the daemon was down;
  // beyond it the gap is logged (with its size) but not itemised.
  size_t max_gap_slots = 100'000;
  // Called from the timer thread at least every heartbeat_period (e.g. the systemd watchdog), so
  // a stuck timer thread is noticed. Zero: no heartbeat. The callback must not block.
  Nanos heartbeat_period{0};
  std::function<void()> heartbeat;
  // Called from the timer thread when the wall clock was stepped (by `step`). Must not block.
  std::function<void(WallTime at, Nanos step)> on_clock_step;
  // Replicas: the lease under which this process may run `feed`'s slot at local time `at`
  // (LeaseManager::owns with this replica's id), or nullopt when the slot is not ours. Called
  // from workers on every slot: must be cheap and do no I/O. Null: a single writer, every slot
  // is ours and commits are unfenced.
  std::function<std::optional<SlotFence>(const FeedId& feed, WallTime at)> ownership;
  // The signers' presignature pool, if any: its maker is held (PresignPool::hold) through each
  // boundary that it has enough presignatures ready for, and resumes once the boundary's slots
  // are all finished. Only with the boundary summaries (more than log_each_slot_up_to feeds).
  std::shared_ptr<PresignPool> presign;
  // Batch signatures ([service] sign_batch, ADR 0018): the slots that a worker runs in a row
  // (a chunk of up to 64 non-blocking feeds) share one signature per key for up to this many
  // records (SignBatch). 1: every record is signed alone.
  size_t sign_batch = 1;
};

class Scheduler {
 public:
  // `feeds` must outlive the scheduler.
  Scheduler(Clock& clock, Store& store, DeadLetterQueue& dlq, Publisher& publisher,
            std::vector<const FeedRuntime*> feeds, SchedulerOptions options = {});
  ~Scheduler();

  // Recovers, plans each feed's current window and starts the threads. Errors only when the
  // store cannot even be read; a window that cannot be persisted goes to the DLQ and runs anyway.
  Status start();
  void stop();

  // Applies a new set of feeds (a reloaded config): a feed still present with changed settings
  // uses them from its next window (the current window finishes as planned); a removed feed
  // finishes its current window and plans no other; an added feed starts at its next window.
  // Runtimes are matched by id and must outlive the scheduler. REQUIRES: start() succeeded.
  void reconfigure(std::vector<const FeedRuntime*> feeds);

  // Slot outcomes handled since start (published, failed, skipped, missed at wake-up).
  uint64_t outcomes_handled() const { return outcomes_.load(); }
  // Blocks (real time, bounded) until at least n outcomes were handled. For tests.
  bool wait_for_outcomes(uint64_t n, std::chrono::milliseconds timeout);
  uint64_t clock_steps() const { return clock_steps_.load(); }
  // Next windows planned (persisted and queued) since start, by the window-end planning task.
  uint64_t windows_planned() const { return windows_planned_.load(); }
  // Blocks (real time, bounded) until at least n next windows were planned. For tests: planning
  // runs on a worker, concurrently with the window's last slot.
  bool wait_for_windows_planned(uint64_t n, std::chrono::milliseconds timeout);

 private:
  struct FeedState;
  struct ExecState;
  struct Entry {
    WallTime due;
    uint32_t order;  // FeedState::order: entries due together are handed over in feed order
    uint64_t seq;
    std::shared_ptr<ExecState> exec;
    size_t index;  // into exec->run
    bool operator>(const Entry& o) const {
      if (due != o.due) return due > o.due;
      return order != o.order ? order > o.order : seq > o.seq;
    }
  };

  Status recover_feed(FeedState& feed, WallTime now, const std::vector<Execution>& unfinished);
  // The in-memory state of `execution`; it fires the planned slots after `only_after` (all of
  // them when absent).
  std::shared_ptr<ExecState> make_exec(FeedState& feed, const Execution& execution,
                                       std::optional<WallTime> only_after);
  void persist_new_execution(ExecState& exec);
  // The same for several executions, with one store write.
  void persist_new_executions(std::span<const std::shared_ptr<ExecState>> execs);
  // An execution that could not be persisted: logged, on the DLQ once, retried later.
  void report_plan_failure(ExecState& exec, const Execution& snapshot, const Status& st);
  // Persists executions whose planning failed (the store was down), once it answers again.
  void retry_unpersisted();
  void plan_next(FeedState& feed, SlotTime previous_end);
  // Plans the next window of each feed (after its previous window's end), persisting them all
  // with one store write (at 10,000 feeds, ~333 windows at each boundary).
  void plan_next(std::span<const std::pair<FeedState*, SlotTime>> feeds);
  // A removed feed: executions planned ahead (with many feeds) that have not started are
  // dropped and marked interrupted.
  void cancel_future_windows(FeedState& feed, WallTime now);
  void push_next_entry(const std::shared_ptr<ExecState>& exec, size_t index);
  // The heap entry of exec's slot `index` (its seq is given when it is pushed).
  Entry entry_of(std::shared_ptr<ExecState> exec, size_t index) const;
  // Pushes entries under one lock and one wake-up (a boundary's or a planning's next entries).
  void push_entries(std::span<Entry> entries);
  void timer_loop(std::stop_token stop);
  void dispatch_due(WallTime now);
  // Queues a chunk of slots whose sources never block; at most max_chunk_runners_ workers run
  // chunks at once, each taking the next chunk (in order) until none is left.
  void submit_chunk(std::function<void()> chunk);
  void run_chunks();
  struct Boundary;
  // The shared pointers are taken by reference: a boundary's is shared by all its slots, and each
  // count change moves its cache line between the cores.
  // `batch`: the chunk's batch signature, or null (SlotJob::batch).
  void run_slot(const std::shared_ptr<ExecState>& exec, size_t index,
                const std::shared_ptr<Boundary>& boundary, SignBatch* batch = nullptr);
  // A slot whose feed was busy at dispatch: at the slot, runs it if the feed is free, else
  // records it skipped.
  void run_or_skip(const std::shared_ptr<ExecState>& exec, size_t index,
                   const std::shared_ptr<Boundary>& boundary, SignBatch* batch = nullptr);
  // The rest of run_slot() once the publisher has the slot's result (on a worker).
  void after_publish(ExecState& exec, SlotTime slot, const std::optional<SlotFence>& fence,
                     bool mark_running, const std::shared_ptr<Boundary>& boundary,
                     const SlotResult& result);
  // Whether after_publish() may read or write the store (then it runs on a worker, not on the
  // commit batcher's answering thread).
  bool after_publish_needs_store(ExecState& exec, const std::optional<SlotFence>& fence,
                                 const SlotResult& result);
  // Records a slot that was not published (skipped, missed) and finishes it: through the commit
  // batcher, sharing a transaction with the values (replicas: at once, see the .cc).
  void record_unpublished(const std::shared_ptr<ExecState>& exec, SlotRecord outcome,
                          const std::optional<SlotFence>& lease,
                          const std::shared_ptr<Boundary>& boundary);
  // Counts a slot's outcome into its boundary's summary; the last one logs it.
  void tally(const std::shared_ptr<Boundary>& boundary, const SlotRecord& outcome);
  // An execution's state to write (marked running, or its final state).
  struct StateChange {
    std::shared_ptr<ExecState> exec;
    ExecutionStateChange change;
    bool counts_outcome = false;  // the slot outcome it completes is counted once it is written
  };
  // Records a slot's outcome in its execution, and queues `changes` plus the execution's final
  // state when this was its last outcome; the outcome is counted once they are written.
  void finish_slot(ExecState& exec, const SlotRecord& outcome,
                   std::vector<StateChange> changes = {});
  // State changes are written in order by one worker task at a time, all that are queued in one
  // Store::set_execution_states(): at 100,000 feeds, the executions ending and starting at one
  // boundary were 200,000 single writes, each blocking a worker (docs/performance.md).
  void queue_state_changes(std::vector<StateChange> changes);
  void write_state_changes();
  // Replicas: the slot's lease, nullopt when it is not ours (then the slot is finished here
  // without an outcome). Always a lease-less "ours" without the ownership hook.
  std::optional<std::optional<SlotFence>> claim(ExecState& exec, SlotTime slot,
                                                const std::shared_ptr<Boundary>& boundary);
  // Replicas: records missed the slots of `feed` before `slot` that have no outcome yet.
  void catch_up(const FeedRuntime& rt, SlotTime slot, const SlotFence& fence);
  // Replicas: sets an execution's final state from the store once every slot has an outcome.
  void finalize_from_store(const ExecutionId& id);
  void count_outcome();
  // A slot handed to the publisher has finished: the last one wakes stop().
  void slot_finished();

  Clock& clock_;
  Store& store_;
  DeadLetterQueue& dlq_;
  Publisher& publisher_;
  SchedulerOptions options_;
  std::mutex reconfigure_mu_;  // one reconfigure() at a time; feeds_ only grows, under it
  std::vector<std::unique_ptr<FeedState>> feeds_;

  std::mutex mu_;
  // A min-heap whose top can be moved out (std::priority_queue's top() is const): a boundary
  // pops every feed's entry, and copying each one's shared pointer touched its count's cache line.
  struct EntryHeap : std::priority_queue<Entry, std::vector<Entry>, std::greater<>> {
    Entry pop_top() {
      std::pop_heap(c.begin(), c.end(), comp);
      Entry top = std::move(c.back());
      c.pop_back();
      return top;
    }
  };
  EntryHeap heap_;                                   // guarded by mu_
  uint64_t next_seq_ = 0;                            // guarded by mu_
  std::optional<std::stop_source> sleep_interrupt_;  // guarded by mu_: wakes the timer early
  std::optional<WallTime> sleeping_until_;           // guarded by mu_
  std::condition_variable_any heap_cv_;
  std::map<ExecutionId, std::shared_ptr<ExecState>> live_;  // guarded by mu_
  std::vector<std::shared_ptr<ExecState>> unpersisted_;     // guarded by mu_
  std::atomic<bool> has_unpersisted_{false};

  std::mutex states_mu_;
  std::vector<StateChange> states_;  // guarded by states_mu_
  bool states_writing_ = false;      // guarded by states_mu_: a write_state_changes() task runs

  std::atomic<uint64_t> outcomes_{0};
  std::atomic<uint64_t> clock_steps_{0};
  std::atomic<uint64_t> windows_planned_{0};  // written under outcomes_mu_ (it shares the cv)
  std::mutex outcomes_mu_;
  std::condition_variable outcomes_cv_;

  std::unique_ptr<WorkerPool> pool_;
  std::mutex chunks_mu_;
  std::deque<std::function<void()>> chunks_;  // guarded by chunks_mu_
  size_t chunk_runners_ = 0;                  // guarded by chunks_mu_: workers running chunks
  size_t max_chunk_runners_ = 1;              // the cores (set by start())
  Publisher::Executor executor_;              // runs a slot's continuation on pool_
  // Slots handed to publish_slot_async() whose continuation has not finished (stop() waits).
  // Atomic, not under slots_mu_: it changes twice per slot, on the workers and the answering
  // thread; the mutex only orders stop()'s wait with the last decrement's notify.
  std::mutex slots_mu_;
  std::condition_variable slots_cv_;
  std::atomic<size_t> slots_in_flight_{0};
  std::jthread timer_;
  bool started_ = false;
  bool stopped_ = false;
  bool summarize_boundaries_ = false;  // many feeds: one log line per boundary
};

}  // namespace metronome
