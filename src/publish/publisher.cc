#include "publish/publisher.h"

#include <spdlog/spdlog.h>

namespace metronome {
namespace {

int64_t micros_between(WallTime from, WallTime to) {
  return std::chrono::duration_cast<Micros>(to - from).count();
}

}  // namespace

WallTime FeedRuntime::deadline_of(SlotTime slot) const {
  if (deadline) return WallTime(slot) + *deadline;
  if (schedule.is_interval()) return WallTime(slot) + schedule.interval();
  auto next = schedule.next_after(WallTime(slot));
  return next ? WallTime(*next) : WallTime(slot) + window;
}

Publisher::Publisher(Store& store, DeadLetterQueue& dlq, Clock& clock, BackoffPolicy backoff)
    : store_(store),
      dlq_(dlq),
      clock_(clock),
      backoff_(backoff),
      jitter_engine_(std::random_device{}()),
      batcher_(std::make_unique<CommitBatcher>(store)) {}

Publisher::~Publisher() = default;

double Publisher::draw_jitter() {
  std::lock_guard lock(jitter_mu_);
  return std::uniform_real_distribution<double>(0.0, 1.0)(jitter_engine_);
}

Publisher::Attempt Publisher::observe_and_sign(const FeedRuntime& feed, const SlotJob& job,
                                               std::stop_token stop, bool may_batch) {
  Attempt a;
  SlotResult& result = a.result;
  std::optional<WallTime>& first_failure = a.first_failure;
  std::string& stage = a.stage;
  Status& failure = a.failure;
  int& attempts = a.attempts;
  result.slot.slot = job.slot;
  result.slot.fired_at = job.fired_at;
  result.slot.lateness_us = std::max<int64_t>(0, micros_between(WallTime(job.slot), job.fired_at));

  // Retries keep going through a shutdown: the slot in flight finishes within its deadline.
  const std::stop_token no_stop;

  // Observe.
  std::optional<SourceValue> observation;
  for (;;) {
    ++attempts;
    Status status;
    auto observed = feed.source->observe(ObserveContext{feed.id, job.slot, job.deadline, stop});
    if (observed.ok()) {
      observation = std::move(*observed);
      break;
    }
    status = observed.status().With(feed.source->describe());
    stage = "observe";
    if (!first_failure) first_failure = clock_.now();
    failure = status;
    if (!status.retryable() || attempts > feed.retries) break;
    Nanos delay = backoff_delay(backoff_, attempts, draw_jitter());
    if (!retry_fits(clock_.now(), delay, Nanos(0), job.deadline)) {
      failure = Status::DeadlineExceeded(
          fmt::format("deadline_exceeded: {} (after {} attempts)", status.ToString(), attempts));
      break;
    }
    clock_.sleep_for(delay, no_stop);
  }

  if (Status sane = observation
                        ? check_sanity_bounds(feed.bounds, observation->value, feed.id, store_)
                        : Status::Ok();
      !sane.ok()) {
    if (!first_failure) first_failure = clock_.now();
    stage = "sanity";
    failure = std::move(sane);
    observation.reset();  // never published, nor redriven
  }

  if (observation) {
    ValueRecord record;
    record.feed = feed.id;
    record.round = feed.schedule.round_of(job.slot);
    record.slot = job.slot;
    record.value = std::move(observation->value);
    record.sources = std::move(observation->answers);
    record.decimals = feed.decimals;
    record.observed_at = clock_.now();
    record.execution = job.execution;
    Status signed_ok = Status::Ok();
    if (job.signer && may_batch && job.batch && feed.batch_signatures) {
      // Signed with its batch (sign_and_submit); only its digest now, which checks its form.
      Result<Hash32> leaf = job.signer->prepare_for_batch(record, feed.signer->domain(),
                                                          &feed.signer->feed_id_hash());
      if (leaf) {
        a.leaf = *leaf;
      } else {
        signed_ok = leaf.status();
      }
    } else if (job.signer) {
      signed_ok =
          job.signer->sign_record(record, feed.signer->domain(), &feed.signer->feed_id_hash());
    }
    if (signed_ok.ok()) {
      result.record = std::move(record);
    } else {
      // Not retryable: the same value would fail again. Nothing unsigned is ever stored.
      if (!first_failure) first_failure = clock_.now();
      stage = "sign";
      failure = signed_ok.With(fmt::format("signing value '{}'", record.value.substr(0, 80)));
    }
  }

  if (result.record && feed.observe_lead > Millis(0)) {
    // Observed ahead of the slot: never published before it. The slot "fires" now.
    while (clock_.now() < WallTime(job.slot)) {
      (void)clock_.sleep_until(WallTime(job.slot), no_stop);
    }
    result.slot.fired_at = clock_.now();
    result.slot.lateness_us = micros_between(WallTime(job.slot), *result.slot.fired_at);
  }
  return a;
}

SlotCommit Publisher::commit_of(const FeedRuntime& feed, const SlotJob& job, Attempt& a,
                                int commit_attempts) {
  a.result.record->published_at = clock_.now();
  a.result.slot.outcome = SlotOutcome::kPublished;
  a.result.slot.attempts = a.attempts + commit_attempts - 1;
  return SlotCommit{job.execution, feed.id, a.result.slot, std::move(a.result.record), job.fence};
}

void Publisher::commit_record(const FeedRuntime& feed, const SlotJob& job, Attempt& a,
                              std::optional<Result<bool>> first) {
  // Write: the same record on every attempt, so a retry after an ambiguous failure stores
  // exactly the observed value (the store keeps the first one if the slot already has it).
  const std::stop_token no_stop;  // retries keep going through a shutdown (see publish_slot)
  int commit_attempts = 0;
  for (;;) {
    ++commit_attempts;
    Result<bool> committed = false;
    if (commit_attempts == 1 && first) {
      committed = std::move(*first);  // made by the commit batcher
    } else {
      SlotCommit commit = commit_of(feed, job, a, commit_attempts);
      auto r = store_.commit_slots(std::span<const SlotCommit>(&commit, 1));
      a.result.record = std::move(commit.record);
      committed = r.ok() ? Result<bool>((*r)[0]) : Result<bool>(r.status());
    }
    if (on_store_write_) on_store_write_(committed.ok() ? Status::Ok() : committed.status());
    if (committed.ok()) {
      a.result.inserted = *committed;
      a.result.outcome_persisted = true;
      a.failure = Status::Ok();
      break;
    }
    if (!a.first_failure) a.first_failure = clock_.now();
    a.stage = "publish";
    a.failure = committed.status();
    if (!a.failure.retryable() || commit_attempts > feed.retries) break;
    Nanos delay = backoff_delay(backoff_, commit_attempts, draw_jitter());
    if (!retry_fits(clock_.now(), delay, Nanos(0), job.deadline)) {
      a.failure = Status::DeadlineExceeded(fmt::format("deadline_exceeded: {} (after {} attempts)",
                                                       a.failure.ToString(), commit_attempts));
      break;
    }
    clock_.sleep_for(delay, no_stop);
  }
  a.attempts += commit_attempts - 1;
}

SlotResult Publisher::publish_slot(const FeedRuntime& feed, const SlotJob& job,
                                   std::stop_token stop) {
  Attempt a = observe_and_sign(feed, job, stop, /*may_batch=*/false);
  if (a.result.record) {
    if (job.observed) job.observed();
    a.result.observed = true;
    commit_record(feed, job, a, std::nullopt);
  }
  return finish(feed, job, std::move(a));
}

void Publisher::publish_slot_async(const FeedRuntime& feed, SlotJob job, std::stop_token stop,
                                   const Executor& executor, std::function<void(SlotResult)> done) {
  auto f = std::make_shared<InFlight>();
  f->job = std::move(job);
  f->attempt = observe_and_sign(feed, f->job, stop, /*may_batch=*/true);
  if (!f->attempt.result.record) {
    done(finish(feed, f->job, std::move(f->attempt)));
    return;
  }
  if (f->job.observed) f->job.observed();
  f->attempt.result.observed = true;
  SlotCommit commit = commit_of(feed, f->job, f->attempt, 1);
  if (f->attempt.leaf) {
    SignBatch& batch = *f->job.batch;
    f->job.batch = nullptr;  // not used after this; the batch lives only as long as its chunk
    const Hash32 leaf = *f->attempt.leaf;
    std::shared_ptr<const Signer> signer = f->job.signer;
    batch.pending_.push_back(
        SignBatch::Pending{std::move(signer), &feed.signer->domain(), leaf, std::move(commit),
                           on_first_commit(feed, std::move(f), executor, std::move(done))});
    if (batch.pending_.size() >= batch.max_records_) sign_and_submit(batch);
    return;
  }
  batcher_->submit(std::move(commit),
                   on_first_commit(feed, std::move(f), executor, std::move(done)));
}

void Publisher::sign_and_submit(SignBatch& batch) {
  std::vector<SignBatch::Pending>& pending = batch.pending_;
  if (pending.empty()) return;
  // One signature per key and chain (usually one for the whole batch), in the batch's order. A
  // key is known by its address: each feed has its own Signer, even for a shared secret.
  std::vector<bool> taken(pending.size(), false);
  std::vector<size_t> members;
  std::vector<Hash32> leaves;
  std::vector<ValueRecord*> records;
  for (size_t i = 0; i < pending.size(); ++i) {
    if (taken[i]) continue;
    members.clear();
    leaves.clear();
    records.clear();
    for (size_t j = i; j < pending.size(); ++j) {
      if (taken[j] || pending[j].signer->address() != pending[i].signer->address() ||
          pending[j].domain->chain_id() != pending[i].domain->chain_id()) {
        continue;
      }
      taken[j] = true;
      members.push_back(j);
      leaves.push_back(pending[j].leaf);
      records.push_back(&*pending[j].commit.record);
    }
    std::shared_ptr<const SignatureBatch> signed_batch =
        pending[i].signer->sign_batch(*pending[i].domain, leaves, records);
    for (size_t leaf = 0; signed_batch && leaf < members.size(); ++leaf) {
      pending[members[leaf]].commit.batch = signed_batch;
      pending[members[leaf]].commit.batch_leaf = static_cast<uint32_t>(leaf);
    }
  }
  const WallTime now = clock_.now();
  std::vector<SlotCommit> commits;
  std::vector<CommitBatcher::Done> done;
  commits.reserve(pending.size());
  done.reserve(pending.size());
  for (SignBatch::Pending& p : pending) {
    p.commit.record->published_at = now;  // handed to its commit now, not when observed
    commits.push_back(std::move(p.commit));
    done.push_back(std::move(p.done));
  }
  pending.clear();
  batcher_->submit_all(commits, done);
}

SignBatch::SignBatch(Publisher& publisher, size_t max_records)
    : publisher_(publisher), max_records_(std::max<size_t>(1, max_records)) {
  pending_.reserve(max_records_);
}

SignBatch::~SignBatch() {
  publisher_.sign_and_submit(*this);
}

CommitBatcher::Done Publisher::on_first_commit(const FeedRuntime& feed, std::shared_ptr<InFlight> f,
                                               const Executor& executor,
                                               std::function<void(SlotResult)> done) {
  // The batcher calls this once: its captures are moved on, not copied (a std::function and a
  // shared pointer per slot, freed on the batcher's answering thread). The record comes back
  // with the commit.
  return [this, &feed, f = std::move(f), executor, done = std::move(done)](
             std::optional<Result<bool>> first, SlotCommit& written_commit) mutable {
    f->attempt.result.record = std::move(written_commit.record);
    const bool written = first && first->ok();
    auto rest = [this, &feed, f = std::move(f), first = std::move(first), done = std::move(done)] {
      commit_record(feed, f->job, f->attempt, first);
      done(finish(feed, f->job, std::move(f->attempt)));
    };
    // Written: what is left does not block (logs, callbacks), so it runs here rather than waking
    // a worker per slot. Retries and the DLQ block: a worker's.
    if (written || !executor) {
      rest();
      return;
    }
    std::function<void()> task = std::move(rest);
    if (!executor(task)) task();
  };
}

SlotResult Publisher::finish(const FeedRuntime& feed, const SlotJob& job, Attempt&& a) {
  SlotResult& result = a.result;  // moved out at the end: a copy would copy the signed record
  const std::optional<WallTime>& first_failure = a.first_failure;
  const std::string& stage = a.stage;
  const Status& failure = a.failure;
  const int attempts = a.attempts;
  if (failure.ok() && job.fence && !result.inserted) {
    // Fenced and not inserted: either the slot already had its value (kept, exactly once) or
    // the store refused the commit because the lease is gone. Only the second leaves no value.
    auto stored = store_.get_value(feed.id, job.slot);
    if (stored.ok() && !stored->has_value()) {
      result.lease_lost = true;
      result.outcome_persisted = false;
      spdlog::warn(
          "feed={} slot={}: lease lost (epoch {}) before the commit; not published, the feed's "
          "new holder records the slot",
          feed.id, format_iso_ms(job.slot), job.fence->epoch);
      return std::move(result);
    }
  }

  if (failure.ok()) {
    const auto level = log_each_slot_ ? spdlog::level::info : spdlog::level::debug;
    if (result.inserted) {
      // Checked first: the slot's time would be formatted even for a line that is not logged.
      if (spdlog::should_log(level)) {
        spdlog::log(level, "published feed={} slot={} round={} value={} lateness_us={}", feed.id,
                    format_iso_ms(job.slot), result.record->round, result.record->value,
                    *result.slot.lateness_us);
      }
    } else {
      spdlog::warn("feed={} slot={} already had a value; kept it (exactly once)", feed.id,
                   format_iso_ms(job.slot));
    }
    flush_pending();
    if (on_outcome_) on_outcome_(feed.id, result.slot, &*result.record);
    return std::move(result);
  }

  // Failed: record the outcome, and put what we have on the dead-letter queue.
  result.slot.outcome = SlotOutcome::kFailed;
  result.slot.attempts = attempts;
  result.slot.error = failure.ToString();
  spdlog::error("failed feed={} slot={} stage={} attempts={} error={}", feed.id,
                format_iso_ms(job.slot), stage, attempts, result.slot.error);
  SlotCommit outcome{job.execution, feed.id, result.slot, std::nullopt, job.fence};
  auto committed = store_.commit_slots(std::span<const SlotCommit>(&outcome, 1));
  if (committed.ok()) {
    result.outcome_persisted = true;
  } else {
    keep_pending(std::move(outcome));
  }

  DlqMessage message;
  message.feed = feed.id;
  message.slot = job.slot;
  message.execution = job.execution;
  message.stage = stage;
  message.error = result.slot.error;
  message.attempts = attempts;
  message.first_failure = first_failure.value_or(clock_.now());
  message.last_failure = clock_.now();
  message.record = result.record;
  auto pushed = dlq_.push(std::move(message));
  if (!pushed.ok()) {
    // Nowhere durable is left: the log line is the last trace of this slot's value.
    spdlog::critical("feed={} slot={} could not be put on the DLQ: {}; value was {}", feed.id,
                     format_iso_ms(job.slot), pushed.status().ToString(),
                     result.record ? result.record->value : std::string("(none observed)"));
  }
  if (on_outcome_) on_outcome_(feed.id, result.slot, nullptr);
  return std::move(result);
}

void Publisher::record_outcome(const FeedId& feed, const ExecutionId& execution,
                               const SlotRecord& slot, std::optional<SlotFence> fence) {
  SlotCommit commit{execution, feed, slot, std::nullopt, std::move(fence)};
  auto committed = store_.commit_slots(std::span<const SlotCommit>(&commit, 1));
  if (!committed.ok()) {
    spdlog::warn("feed={} slot={}: could not record outcome {} yet: {}", feed,
                 format_iso_ms(slot.slot), slot.outcome, committed.status().ToString());
    keep_pending(std::move(commit));
  }
  if (on_outcome_) on_outcome_(feed, slot, nullptr);
}

void Publisher::record_outcome_async(const FeedId& feed, const ExecutionId& execution,
                                     const SlotRecord& slot, std::optional<SlotFence> fence,
                                     const Executor& executor, std::function<void()> done) {
  SlotCommit commit{execution, feed, slot, std::nullopt, std::move(fence)};
  // The callback reads the commit it is handed back: nothing of it is copied into the capture.
  batcher_->submit(std::move(commit), [this, executor, done = std::move(done)](
                                          std::optional<Result<bool>> a, SlotCommit& c) mutable {
    if (a && a->ok()) {
      if (on_outcome_) on_outcome_(c.feed, c.slot, nullptr);
      done();
      return;
    }
    std::function<void()> alone = [this, c = std::move(c), done = std::move(done)] {
      record_outcome(c.feed, c.execution, c.slot, c.fence);
      done();
    };
    if (!executor || !executor(alone)) alone();
  });
}

void Publisher::keep_pending(SlotCommit commit) {
  std::lock_guard lock(pending_mu_);
  // Bounded: a store that stays down for long loses the oldest outcomes from memory only; the
  // DLQ and the log still hold them, and a restart marks unrecorded past slots missed.
  constexpr size_t kMaxPending = 100'000;
  if (pending_.size() >= kMaxPending) pending_.erase(pending_.begin());
  pending_.push_back(std::move(commit));
}

size_t Publisher::flush_pending() {
  std::vector<SlotCommit> batch;
  {
    std::lock_guard lock(pending_mu_);
    if (pending_.empty()) return 0;
    batch.swap(pending_);
  }
  auto committed = store_.commit_slots(batch);
  std::lock_guard lock(pending_mu_);
  if (!committed.ok()) {
    batch.insert(batch.end(), std::make_move_iterator(pending_.begin()),
                 std::make_move_iterator(pending_.end()));
    pending_.swap(batch);
  } else {
    spdlog::info("recorded {} slot outcomes that had been waiting for the store", batch.size());
  }
  return pending_.size();
}

size_t Publisher::pending_outcomes() const {
  std::lock_guard lock(pending_mu_);
  return pending_.size();
}

}  // namespace metronome
