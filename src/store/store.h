// Store: where Metronome keeps everything durable: values, executions with their slots' outcomes,
// the dead-letter queue and alarm states.
//
// Exactly-once lives here: commit_slots() inserts a value only if (feed, slot) is absent and says
// whether it inserted, in the same transaction that records the slot's outcome. A slot committed
// twice (a retry after an ambiguous failure, a redrive, a second replica) keeps the first value.
//
// The dead-letter queue and alarm states must stay writable when the values cannot be written
// (that is when the DLQ is needed most), so a backend keeps them apart from the values: the SQLite
// backend uses a second database file (see docs/adr/0001-dlq-in-its-own-file.md).
//
// Thread-safety: every method may be called from any thread; implementations serialise
// internally. Other processes (the CLI) may read concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "store/records.h"
#include "store/signature_batch.h"

namespace metronome {

// The lease a replica writes a feed's slots under (docs/ha.md): a fenced commit lands only
// while `holder` still holds the feed's lease at `epoch`.
struct SlotFence {
  std::string holder;  // the replica id
  int64_t epoch = 0;

  friend bool operator==(const SlotFence&, const SlotFence&) = default;
};

// What to record for one slot: its outcome and, when published, its value.
struct SlotCommit {
  ExecutionId execution;
  FeedId feed;
  SlotRecord slot;                    // outcome, fired_at, lateness, error, attempts
  std::optional<ValueRecord> record;  // REQUIRES: present iff slot.outcome == kPublished
  // Replicas on PostgreSQL: when set, the commit writes nothing at all (no value, no outcome;
  // reported as not inserted) unless `fence->holder` holds the feed's lease at that epoch at
  // commit time. Backends with a single writer (SQLite) ignore it.
  std::optional<SlotFence> fence{};
  // A batch-signed record (ADR 0018): its batch, and its leaf in it. A store may keep the batch
  // once and the record's leaf index instead of its signature, digest and proof texts (SQLite
  // does), and must then read back exactly the texts the record carries. A commit whose record
  // does not carry the batch's signature, or whose leaf the batch lacks, is stored in full.
  std::shared_ptr<const SignatureBatch> batch{};
  uint32_t batch_leaf = 0;
};

// One execution's new state (set_execution_states()).
struct ExecutionStateChange {
  ExecutionId id;
  ExecutionState state;
  std::optional<WallTime> finished_at;
};

struct ValueQuery {
  std::optional<FeedId> feed{};
  std::optional<SlotTime> since{};   // slot >= since
  std::optional<SlotTime> before{};  // slot < before (paging cursor)
  int limit = 100;
};

struct ExecutionQuery {
  std::optional<FeedId> feed{};
  std::optional<SlotTime> before{};  // window_start < before (paging cursor)
  int limit = 20;
};

class Store {
 public:
  virtual ~Store() = default;

  // ---- executions ----
  // Persists an execution and its planned slots. Creating an execution that already exists is
  // not an error and changes nothing (a restart re-plans the same window).
  virtual Status create_execution(const Execution& execution) = 0;
  // Several create_execution() calls; one status per execution, in order. A backend may make
  // them one durable transaction (SQLite does; when that transaction fails, each execution gets
  // its error). This default makes them one by one.
  virtual std::vector<Status> create_executions(std::span<const Execution> executions) {
    std::vector<Status> out;
    out.reserve(executions.size());
    for (const Execution& e : executions) out.push_back(create_execution(e));
    return out;
  }
  virtual Result<std::optional<Execution>> get_execution(const ExecutionId& id) = 0;
  // Newest window first, each with its slots.
  virtual Result<std::vector<Execution>> list_executions(const ExecutionQuery& query) = 0;
  // Executions not in a final state, oldest first (what a restart must recover).
  virtual Result<std::vector<Execution>> unfinished_executions() = 0;
  virtual Status set_execution_state(const ExecutionId& id, ExecutionState state,
                                     std::optional<WallTime> finished_at) = 0;
  // Several set_execution_state() calls, in order; one status per change. A backend may make
  // them one durable transaction (SQLite does: 10,000 executions that start or end at the same
  // boundary are one write, not 10,000). This default makes them one by one.
  virtual std::vector<Status> set_execution_states(std::span<const ExecutionStateChange> changes) {
    std::vector<Status> out;
    out.reserve(changes.size());
    for (const ExecutionStateChange& c : changes) {
      out.push_back(set_execution_state(c.id, c.state, c.finished_at));
    }
    return out;
  }

  // ---- slots and values ----
  // Records each slot's outcome and inserts its value if (feed, slot) is absent, all in one
  // durable transaction. Returns, per commit, whether its value was inserted by this call
  // (false for commits without a record, or when a value for the slot already existed; the
  // outcome is then still recorded as published, since the slot does have its value).
  virtual Result<std::vector<bool>> commit_slots(std::span<const SlotCommit> commits) = 0;
  // Newest first.
  virtual Result<std::vector<ValueRecord>> list_values(const ValueQuery& query) = 0;
  virtual Result<std::optional<ValueRecord>> get_value(const FeedId& feed, SlotTime slot) = 0;
  virtual Result<std::optional<ValueRecord>> latest_value(const FeedId& feed) = 0;
  // How many slots (of any feed) have `outcome` with slot time >= since.
  virtual Result<int64_t> count_outcomes(SlotOutcome outcome, SlotTime since) = 0;

  // ---- dead-letter queue ----
  // Appends a message; returns its id (ids grow).
  virtual Result<int64_t> dlq_push(const DlqMessage& message) = 0;
  // Oldest first.
  virtual Result<std::vector<DlqMessage>> dlq_list(int limit) = 0;
  virtual Result<std::optional<DlqMessage>> dlq_get(int64_t id) = 0;
  // NotFound when there is no such message.
  virtual Status dlq_delete(int64_t id) = 0;
  virtual Result<int64_t> dlq_depth() = 0;

  // ---- alarms ----
  virtual Result<std::vector<AlarmState>> alarm_states() = 0;
  virtual Result<std::optional<AlarmState>> alarm_state(const std::string& name) = 0;
  virtual Status put_alarm_state(const AlarmState& state) = 0;

  // ---- deferred work ----
  // Called when no write is waiting (the commit batcher between batches): a backend may do
  // maintenance it deferred to keep commits small. Returns quickly when there is none.
  virtual void run_deferred_work() {}

  // ---- health ----
  // A cheap round trip that proves the store answers (for readiness).
  virtual Status ping() = 0;
};

}  // namespace metronome
