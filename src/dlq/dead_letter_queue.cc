#include "dlq/dead_letter_queue.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <set>
#include <utility>

namespace metronome {

namespace {

// How many messages one dlq_list() call fetches when going over the whole queue.
constexpr int kPage = 500;

std::string describe_slot(const std::optional<SlotTime>& slot) {
  return slot ? format_iso_ms(*slot) : std::string("-");
}

Status not_found(int64_t id) {
  return Status::NotFound(fmt::format("DLQ message {} not found", id));
}

}  // namespace

DeadLetterQueue::DeadLetterQueue(Store& store, Clock& clock) : store_(store), clock_(clock) {}

Result<int64_t> DeadLetterQueue::push(DlqMessage message) {
  // A caller that did not time the failure gets "now" rather than the epoch.
  if (message.last_failure == WallTime{}) message.last_failure = clock_.now();
  if (message.first_failure == WallTime{}) message.first_failure = message.last_failure;
  METRONOME_ASSIGN_OR_RETURN(int64_t id, store_.dlq_push(message));
  // The error text comes from the failing component, which never puts secret values in it; the
  // record (value, signature) is public data and is not logged here.
  spdlog::warn("DLQ message {}: feed {} slot {} stage {} failed after {} attempts: {}", id,
               message.feed.str(), describe_slot(message.slot), message.stage, message.attempts,
               message.error);
  if (on_change_) on_change_();
  return id;
}

Result<std::vector<DlqMessage>> DeadLetterQueue::list(int limit) {
  return store_.dlq_list(limit);
}

Result<DlqMessage> DeadLetterQueue::get(int64_t id) {
  METRONOME_ASSIGN_OR_RETURN(std::optional<DlqMessage> message, store_.dlq_get(id));
  if (!message) return not_found(id);
  return std::move(*message);
}

Status DeadLetterQueue::redrive(int64_t id) {
  METRONOME_ASSIGN_OR_RETURN(DlqMessage message, get(id));
  Status status = redrive_message(message);
  if (status.ok() && on_change_) on_change_();
  return status;
}

Status DeadLetterQueue::redrive_message(const DlqMessage& message) {
  if (message.stage == "plan") return redrive_plan(message);
  if (!message.record) {
    return Status::InvalidArgument(
        fmt::format("DLQ message {} has no record (stage {}: {}); it can only be purged",
                    message.id, message.stage, message.error));
  }
  if (message.stage.starts_with("sink:")) return redrive_to_stage(message);
  const ValueRecord& record = *message.record;
  SlotCommit commit;
  commit.execution = message.execution.empty() ? record.execution : message.execution;
  commit.feed = record.feed;  // the store requires the record's feed and slot to match
  commit.slot.slot = record.slot;
  commit.slot.outcome = SlotOutcome::kPublished;
  // The slot fired when it first failed, not now, so fired_at and lateness_us are never "now".
  // They are carried over from the slot's recorded outcome rather than left empty: the
  // assumption that a commit without them keeps the stored ones does not hold for SqliteStore,
  // whose upsert overwrites them. An execution that is gone leaves them empty.
  METRONOME_ASSIGN_OR_RETURN(std::optional<Execution> execution,
                             store_.get_execution(commit.execution));
  if (execution) {
    for (const SlotRecord& slot : execution->slots) {
      if (slot.slot != record.slot) continue;
      commit.slot.fired_at = slot.fired_at;
      commit.slot.lateness_us = slot.lateness_us;
    }
  }
  commit.slot.error =
      fmt::format("redriven from DLQ message {}; first failure: {}", message.id, message.error);
  commit.slot.attempts = message.attempts;
  commit.record = record;

  // commit_slots() inserts only if (feed, slot) is absent, so redriving a slot that already has
  // a value (a second redrive, a replica that published it) keeps the first value: delivered.
  METRONOME_ASSIGN_OR_RETURN(std::vector<bool> inserted,
                             store_.commit_slots(std::span<const SlotCommit>(&commit, 1)));
  const bool was_inserted = !inserted.empty() && inserted.front();
  Status deleted = store_.dlq_delete(message.id);
  // NotFound: a concurrent redrive or purge removed it first; the value is delivered either way.
  if (!deleted.ok() && deleted.code() != Status::Code::kNotFound) {
    return deleted.With(fmt::format("DLQ message {} delivered but not removed", message.id));
  }
  spdlog::info("DLQ message {} redriven: feed {} slot {} {}", message.id, commit.feed.str(),
               format_iso_ms(record.slot),
               was_inserted ? "published" : "already had a value (kept)");
  if (was_inserted && on_record_stored_) on_record_stored_(record);
  return Status::Ok();
}

RedriveSummary DeadLetterQueue::redrive_all() {
  RedriveSummary summary;
  // Messages that stay on the queue come back in the next page, so the already seen ids are
  // skipped and each page asks for that many more. Messages pushed meanwhile are redriven too.
  std::set<int64_t> seen;
  int left_on_queue = 0;
  while (true) {
    const int limit = left_on_queue + kPage;
    Result<std::vector<DlqMessage>> page = store_.dlq_list(limit);
    if (!page) {
      ++summary.failed;
      summary.errors.push_back(page.status().With("list DLQ").ToString());
      break;
    }
    bool progressed = false;
    for (const DlqMessage& message : *page) {
      if (!seen.insert(message.id).second) continue;
      progressed = true;
      Status status = redrive_message(message);
      if (status.ok()) {
        ++summary.redriven;
        continue;
      }
      ++left_on_queue;
      if (status.code() == Status::Code::kInvalidArgument) {
        ++summary.not_redrivable;
      } else {
        ++summary.failed;
      }
      summary.errors.push_back(fmt::format("message {}: {}", message.id, status.ToString()));
    }
    if (!progressed || static_cast<int>(page->size()) < limit) break;
  }
  if (summary.redriven > 0 && on_change_) on_change_();
  return summary;
}

// The record is in the store already; what failed is a delivery after it (a sink). The store is
// not touched: the registered redriver delivers the record to the sink again.
Status DeadLetterQueue::redrive_to_stage(const DlqMessage& message) {
  auto it = stage_redrivers_.find(message.stage);
  if (it == stage_redrivers_.end()) {
    return Status::Unavailable(fmt::format(
        "DLQ message {}: no {} is configured for feed {} (stage {}); restore the sink in the "
        "config, or purge the message",
        message.id, message.stage.substr(5) + " sink", message.feed.str(), message.stage));
  }
  Status delivered = it->second(message);
  if (!delivered.ok()) {
    return delivered.With(fmt::format("DLQ message {} ({})", message.id, message.stage));
  }
  Status deleted = store_.dlq_delete(message.id);
  if (!deleted.ok() && deleted.code() != Status::Code::kNotFound) {
    return deleted.With(fmt::format("DLQ message {} delivered but not removed", message.id));
  }
  spdlog::info("DLQ message {} redriven: feed {} slot {} delivered to {}", message.id,
               message.feed.str(), format_iso_ms(message.record->slot), message.stage);
  return Status::Ok();
}

// A planning failure carries no record: what was lost is the execution's row. The daemon keeps
// running such an execution and persists it at a later slot, so redriving it means checking that
// this has happened; it never invents the execution itself.
Status DeadLetterQueue::redrive_plan(const DlqMessage& message) {
  METRONOME_ASSIGN_OR_RETURN(std::optional<Execution> execution,
                             store_.get_execution(message.execution));
  if (!execution) {
    return Status::Unavailable(fmt::format(
        "DLQ message {}: execution {} is still not in the store (the daemon persists it when it "
        "next fires one of its slots); purge the message to give up on it",
        message.id, message.execution));
  }
  Status deleted = store_.dlq_delete(message.id);
  if (!deleted.ok() && deleted.code() != Status::Code::kNotFound) return deleted;
  spdlog::info("DLQ message {} resolved: execution {} is in the store", message.id,
               message.execution);
  return Status::Ok();
}

Status DeadLetterQueue::purge(int64_t id) {
  Status status = store_.dlq_delete(id);
  if (status.code() == Status::Code::kNotFound) return not_found(id);
  METRONOME_RETURN_IF_ERROR(status);
  spdlog::info("DLQ message {} purged", id);
  if (on_change_) on_change_();
  return Status::Ok();
}

Result<int> DeadLetterQueue::purge_all() {
  int purged = 0;
  std::set<int64_t> seen;
  Status error;
  while (error.ok()) {
    Result<std::vector<DlqMessage>> page = store_.dlq_list(kPage);
    if (!page) {
      error = page.status().With("list DLQ");
      break;
    }
    if (page->empty()) break;
    for (const DlqMessage& message : *page) {
      if (!seen.insert(message.id).second) {
        // The store listed a message it said it deleted: stop rather than loop forever.
        error =
            Status::Internal(fmt::format("DLQ message {} still listed after delete", message.id));
        break;
      }
      Status status = store_.dlq_delete(message.id);
      if (status.ok()) {
        ++purged;
      } else if (status.code() != Status::Code::kNotFound) {  // NotFound: removed meanwhile
        error = status.With(fmt::format("purge DLQ message {}", message.id));
        break;
      }
    }
  }
  if (purged > 0) {
    spdlog::info("DLQ purged: {} messages", purged);
    if (on_change_) on_change_();
  }
  METRONOME_RETURN_IF_ERROR(error);
  return purged;
}

Result<int64_t> DeadLetterQueue::depth() {
  return store_.dlq_depth();
}

}  // namespace metronome
