#include "testing/faulty_store.h"

#include <cstdio>
#include <cstdlib>

namespace metronome::testing {
namespace {

// Injecting an OK status is a bug in the test (a Result cannot carry one): fail loudly.
const Status& require_error(const Status& status) {
  if (status.ok()) {
    std::fprintf(stderr, "FaultyStore: a failure to inject must not be OK\n");
    std::abort();
  }
  return status;
}

}  // namespace

FaultyStore::Counts FaultyStore::counts() const {
  std::lock_guard lock(mu_);
  return counts_;
}

void FaultyStore::fail_next_commits(int n, Status status) {
  std::lock_guard lock(mu_);
  next_commit_failures_ = n;
  next_commit_status_ = require_error(status);
}

void FaultyStore::fail_next_commits_after_applying(int n, Status status) {
  std::lock_guard lock(mu_);
  next_commit_failures_after_applying_ = n;
  after_applying_status_ = require_error(status);
}

void FaultyStore::fail_commits_always(Status status) {
  std::lock_guard lock(mu_);
  commits_always_ = require_error(status);
}

void FaultyStore::fail_dlq(Status status) {
  std::lock_guard lock(mu_);
  dlq_ = require_error(status);
}

void FaultyStore::fail_executions(Status status) {
  std::lock_guard lock(mu_);
  executions_ = require_error(status);
}

void FaultyStore::fail_alarms(Status status) {
  std::lock_guard lock(mu_);
  alarms_ = require_error(status);
}

void FaultyStore::fail_everything(Status status) {
  std::lock_guard lock(mu_);
  everything_ = require_error(status);
}

void FaultyStore::clear_faults() {
  std::lock_guard lock(mu_);
  next_commit_failures_ = 0;
  next_commit_status_.reset();
  next_commit_failures_after_applying_ = 0;
  after_applying_status_.reset();
  commits_always_.reset();
  dlq_.reset();
  executions_.reset();
  alarms_.reset();
  everything_.reset();
}

std::optional<Status> FaultyStore::on_read() {
  std::lock_guard lock(mu_);
  ++counts_.read_calls;
  return everything_;
}

std::optional<Status> FaultyStore::on_write(int64_t Counts::*counter,
                                            const std::optional<Status>& fault) {
  std::lock_guard lock(mu_);
  ++(counts_.*counter);
  if (everything_) return everything_;
  return fault;
}

// ---- executions ----

Status FaultyStore::create_execution(const Execution& execution) {
  if (auto fault = on_write(&Counts::execution_calls, executions_)) return *fault;
  return target_.create_execution(execution);
}

Result<std::optional<Execution>> FaultyStore::get_execution(const ExecutionId& id) {
  if (auto fault = on_read()) return *fault;
  return target_.get_execution(id);
}

Result<std::vector<Execution>> FaultyStore::list_executions(const ExecutionQuery& query) {
  if (auto fault = on_read()) return *fault;
  return target_.list_executions(query);
}

Result<std::vector<Execution>> FaultyStore::unfinished_executions() {
  if (auto fault = on_read()) return *fault;
  return target_.unfinished_executions();
}

Status FaultyStore::set_execution_state(const ExecutionId& id, ExecutionState state,
                                        std::optional<WallTime> finished_at) {
  if (auto fault = on_write(&Counts::execution_calls, executions_)) return *fault;
  return target_.set_execution_state(id, state, finished_at);
}

void FaultyStore::hold_commits() {
  std::lock_guard lock(mu_);
  hold_commits_ = true;
}

void FaultyStore::release_commits() {
  std::lock_guard lock(mu_);
  hold_commits_ = false;
  held_cv_.notify_all();
}

bool FaultyStore::wait_for_held_commits(int n, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return held_cv_.wait_for(lock, timeout, [&] { return held_commits_ >= n; });
}

// ---- slots and values ----

Result<std::vector<bool>> FaultyStore::commit_slots(std::span<const SlotCommit> commits) {
  std::optional<Status> fail_before;
  std::optional<Status> fail_after;
  {
    std::unique_lock lock(mu_);
    ++counts_.commit_calls;
    if (hold_commits_) {
      ++held_commits_;
      held_cv_.notify_all();
      held_cv_.wait(lock, [&] { return !hold_commits_; });
      --held_commits_;
    }
    if (everything_) {
      fail_before = everything_;
    } else if (commits_always_) {
      fail_before = commits_always_;
    } else if (next_commit_failures_ > 0) {
      --next_commit_failures_;
      fail_before = next_commit_status_;
    } else if (next_commit_failures_after_applying_ > 0) {
      --next_commit_failures_after_applying_;
      fail_after = after_applying_status_;
    }
    if (fail_before || fail_after) ++counts_.commits_failed;
  }
  if (fail_before) return *fail_before;
  auto result = target_.commit_slots(commits);
  if (fail_after && result.ok()) return *fail_after;
  return result;
}

Result<std::vector<ValueRecord>> FaultyStore::list_values(const ValueQuery& query) {
  if (auto fault = on_read()) return *fault;
  return target_.list_values(query);
}

Result<std::optional<ValueRecord>> FaultyStore::get_value(const FeedId& feed, SlotTime slot) {
  if (auto fault = on_read()) return *fault;
  return target_.get_value(feed, slot);
}

Result<std::optional<ValueRecord>> FaultyStore::latest_value(const FeedId& feed) {
  if (auto fault = on_read()) return *fault;
  return target_.latest_value(feed);
}

Result<int64_t> FaultyStore::count_outcomes(SlotOutcome outcome, SlotTime since) {
  if (auto fault = on_read()) return *fault;
  return target_.count_outcomes(outcome, since);
}

// ---- dead-letter queue ----

Result<int64_t> FaultyStore::dlq_push(const DlqMessage& message) {
  if (auto fault = on_write(&Counts::dlq_push_calls, dlq_)) return *fault;
  return target_.dlq_push(message);
}

Result<std::vector<DlqMessage>> FaultyStore::dlq_list(int limit) {
  if (auto fault = on_read()) return *fault;
  return target_.dlq_list(limit);
}

Result<std::optional<DlqMessage>> FaultyStore::dlq_get(int64_t id) {
  if (auto fault = on_read()) return *fault;
  return target_.dlq_get(id);
}

Status FaultyStore::dlq_delete(int64_t id) {
  if (auto fault = on_write(&Counts::dlq_delete_calls, dlq_)) return *fault;
  return target_.dlq_delete(id);
}

Result<int64_t> FaultyStore::dlq_depth() {
  if (auto fault = on_read()) return *fault;
  return target_.dlq_depth();
}

// ---- alarms ----

Result<std::vector<AlarmState>> FaultyStore::alarm_states() {
  if (auto fault = on_read()) return *fault;
  return target_.alarm_states();
}

Result<std::optional<AlarmState>> FaultyStore::alarm_state(const std::string& name) {
  if (auto fault = on_read()) return *fault;
  return target_.alarm_state(name);
}

Status FaultyStore::put_alarm_state(const AlarmState& state) {
  if (auto fault = on_write(&Counts::alarm_put_calls, alarms_)) return *fault;
  return target_.put_alarm_state(state);
}

void FaultyStore::run_deferred_work() {
  {
    std::lock_guard lock(mu_);
    ++counts_.deferred_work_calls;
  }
  target_.run_deferred_work();
}

Status FaultyStore::ping() {
  if (auto fault = on_read()) return *fault;
  return target_.ping();
}

}  // namespace metronome::testing
