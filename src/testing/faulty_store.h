// FaultyStore: a Store that forwards to another Store and fails on demand, for testing the
// failure paths of the modules that use a store (STYLE.md: like leveldb's SpecialEnv).
//
//   auto sqlite = SqliteStore::open(...);
//   FaultyStore store(**sqlite);
//   store.fail_next_commits(2, Status::IOError("disk full"));
//   ... the publisher retries; the third commit reaches SQLite ...
//   EXPECT_EQ(store.counts().commit_calls, 3);
//
// An injected failure returns its Status without calling the wrapped store, except for
// fail_next_commits_after_applying(), which models an ambiguous failure (a timeout after the
// database committed): the commit lands, the caller still sees the error.
//
// Thread-safety: all methods may be called from any thread, concurrently with the store's
// methods. The wrapped store must outlive this object.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>

#include "store/store.h"

namespace metronome::testing {

class FaultyStore final : public Store {
 public:
  explicit FaultyStore(Store& target) : target_(target) {}

  // How often each kind of method was called (including calls that failed by injection).
  struct Counts {
    int64_t commit_calls = 0;
    int64_t commits_failed = 0;   // commit_slots() calls that returned an injected error
    int64_t execution_calls = 0;  // create_execution() and set_execution_state()
    int64_t dlq_push_calls = 0;
    int64_t dlq_delete_calls = 0;
    int64_t alarm_put_calls = 0;
    int64_t read_calls = 0;           // every other method
    int64_t deferred_work_calls = 0;  // run_deferred_work()
  };
  Counts counts() const;

  // The next n commit_slots() calls fail with `status` without reaching the store.
  void fail_next_commits(int n, Status status);
  // The next n commit_slots() calls are applied to the store, then fail with `status`.
  void fail_next_commits_after_applying(int n, Status status);
  // Every commit_slots() call fails with `status` until clear_faults().
  void fail_commits_always(Status status);
  // dlq_push() and dlq_delete() fail with `status` until clear_faults().
  void fail_dlq(Status status);
  // create_execution() and set_execution_state() fail with `status` until clear_faults().
  void fail_executions(Status status);
  // put_alarm_state() fails with `status` until clear_faults().
  void fail_alarms(Status status);
  // Every method, ping() included, fails with `status` until clear_faults(): the store is down.
  void fail_everything(Status status);
  // Removes every injected failure (counts are kept).
  void clear_faults();

  // A stalled disk: commit_slots() calls wait, before reaching the store, until
  // release_commits(). wait_for_held_commits() returns whether `n` calls are waiting in time.
  void hold_commits();
  void release_commits();
  bool wait_for_held_commits(int n, std::chrono::milliseconds timeout);

  Status create_execution(const Execution& execution) override;
  Result<std::optional<Execution>> get_execution(const ExecutionId& id) override;
  Result<std::vector<Execution>> list_executions(const ExecutionQuery& query) override;
  Result<std::vector<Execution>> unfinished_executions() override;
  Status set_execution_state(const ExecutionId& id, ExecutionState state,
                             std::optional<WallTime> finished_at) override;

  Result<std::vector<bool>> commit_slots(std::span<const SlotCommit> commits) override;
  Result<std::vector<ValueRecord>> list_values(const ValueQuery& query) override;
  Result<std::optional<ValueRecord>> get_value(const FeedId& feed, SlotTime slot) override;
  Result<std::optional<ValueRecord>> latest_value(const FeedId& feed) override;
  Result<int64_t> count_outcomes(SlotOutcome outcome, SlotTime since) override;

  Result<int64_t> dlq_push(const DlqMessage& message) override;
  Result<std::vector<DlqMessage>> dlq_list(int limit) override;
  Result<std::optional<DlqMessage>> dlq_get(int64_t id) override;
  Status dlq_delete(int64_t id) override;
  Result<int64_t> dlq_depth() override;

  Result<std::vector<AlarmState>> alarm_states() override;
  Result<std::optional<AlarmState>> alarm_state(const std::string& name) override;
  Status put_alarm_state(const AlarmState& state) override;

  Status ping() override;
  void run_deferred_work() override;

 private:
  // Counts a read call; returns the "everything" failure if one is set.
  std::optional<Status> on_read();
  // Counts a call in `counter`; returns the failure to inject, if any.
  std::optional<Status> on_write(int64_t Counts::*counter, const std::optional<Status>& fault);

  Store& target_;
  mutable std::mutex mu_;
  // Invariants: a fault is set iff it is injected; next_commit_failures_ > 0 implies
  // next_commit_status_ is set, and the same for the "after applying" pair.
  Counts counts_;
  int next_commit_failures_ = 0;
  std::optional<Status> next_commit_status_;
  int next_commit_failures_after_applying_ = 0;
  std::optional<Status> after_applying_status_;
  std::optional<Status> commits_always_;
  std::optional<Status> dlq_;
  std::optional<Status> executions_;
  std::optional<Status> alarms_;
  std::optional<Status> everything_;
  bool hold_commits_ = false;
  int held_commits_ = 0;  // commit_slots() calls waiting for release_commits()
  std::condition_variable held_cv_;
};

}  // namespace metronome::testing
