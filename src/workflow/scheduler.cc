#include "workflow/scheduler.h"

#include <pthread.h>
#include <sched.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

#include "sign/presign.h"
#include "workflow/recovery.h"

namespace metronome {

struct Scheduler::FeedState {
  // The runtime that plans this feed's next windows; replaced by reconfigure(). An execution
  // keeps the runtime it was planned with, so a change takes effect at the next window.
  std::atomic<const FeedRuntime*> rt{nullptr};
  std::atomic<bool> removed{false};  // no further window is planned
  // A slot of this feed is being observed and signed (from its hand-off to its commit).
  std::atomic<bool> in_flight{false};
  // Slots of this feed observed and signed, waiting for (or in) their durable commit. The next
  // slot does not wait for them: a disk stall longer than the interval delays values, it does
  // not skip them, up to kMaxCommitsPerFeed.
  std::atomic<int> committing{0};
  // Replicas: the lease epoch of this feed's last slot run here; 0 when that slot was not ours.
  std::atomic<int64_t> owned_epoch{0};
  // Where this feed's slots go among the slots due at the same time: feed ids in ascending
  // order (feeds added by reconfigure() after the others). The store's rows of one boundary are
  // keyed by feed, so a commit batch of consecutive feeds writes a few neighbouring index pages
  // instead of one page per record (bench/scale, 10,000 feeds: p99 ~252 -> ~231 ms, ~24 -> ~21 %
  // of a core; docs/performance.md, "Session 9").
  uint32_t order = 0;
  // Where in its window this feed plans the next one, as a share of the window's slots (with
  // many feeds; see ExecState::plan_at): its rank in id order among the feeds configured at
  // start. Each boundary then plans a run of neighbouring ids, whose executions land on a few
  // neighbouring index pages, where a share spread by hash wrote a page per execution
  // (bench/scale at 100,000 feeds: 5.4 KiB of WAL per execution, now 0.8 KiB;
  // docs/performance.md, "Session 16"). A feed added by reconfigure() takes a share from its
  // id's hash.
  double plan_share = 0;
};

// One execution being run. `run` is fixed at creation; the rest is guarded by `mu`.
struct Scheduler::ExecState : std::enable_shared_from_this<ExecState> {
  FeedState* feed = nullptr;
  const FeedRuntime* rt = nullptr;       // the runtime this window was planned with
  std::vector<SlotTime> run;             // the slots this process fires, ascending
  std::shared_ptr<const Signer> signer;  // the key of this window (null: unsigned feed)
  std::mutex mu;
  Execution execution;                 // with every slot's outcome as far as known
  size_t remaining = 0;                // slots of `execution` still kPlanned
  bool persisted = false;              // the execution row exists in the store
  bool started = false;                // a slot fired
  bool running_recorded = false;       // the stored state says running
  bool finished = false;               // the final state was decided
  bool plan_failure_reported = false;  // a planning failure is on the DLQ (once per execution)
  bool cancelled = false;              // its feed was removed before it started
  // The index in `run` whose dispatch queues the next window's planning: the last slot, or
  // with many feeds the slot at the feed's plan_share, so that 10,000 feeds do not all plan (30
  // rows each) at the same boundary.
  size_t plan_at = 0;
};

namespace {

constexpr const char* kNotRunning = "the daemon was not running at the slot's time";
constexpr const char* kNotHeld =
    "no replica published it: the feed's lease was changing hands (takeover after a crash, a "
    "stall or a lost lease)";
constexpr size_t kCommitChunk = 1000;
// Slots of sources that never block (Source::may_block) that one worker task runs in a row:
// at a 10,000-feed boundary, 157 hand-offs instead of 10,000.
constexpr size_t kSlotsPerTask = 64;
// Execution states written per chore between batches of values (Publisher::run_when_store_idle).
constexpr size_t kBookkeepingChunk = 512;
// A feed's slots waiting for the store at once; beyond it the next slot is skipped (a store that
// stays stalled must not pile up observed values and workers without bound).
constexpr int kMaxCommitsPerFeed = 4;

// Starts a slot of `feed` if none is being observed and its commits are not piled up; otherwise
// returns why the slot cannot run now.
const char* try_begin_slot(std::atomic<bool>& in_flight, const std::atomic<int>& committing) {
  if (in_flight.exchange(true)) return "the previous slot of this feed was still running";
  if (committing.load() >= kMaxCommitsPerFeed) {
    in_flight.store(false);
    return "the feed's earlier slots were still waiting for the store";
  }
  return nullptr;
}

SlotTime window_start_of(WallTime now, Millis window) {
  int64_t now_ms = std::chrono::floor<Millis>(now).time_since_epoch().count();
  int64_t w = window.count();
  int64_t start = now_ms / w * w;
  if (now_ms < 0 && now_ms % w != 0) start -= w;
  return slot_from_unix_ms(start);
}

Execution execution_from_plan(const FeedId& feed, const WindowPlan& plan, WallTime now,
                              SlotTime first_after) {
  Execution e;
  e.id = make_execution_id(feed, plan.start);
  e.feed = feed;
  e.window_start = plan.start;
  e.window_end = plan.end;
  e.state = ExecutionState::kPlanned;
  e.created_at = now;
  for (SlotTime s : plan.slots) {
    if (s <= first_after) continue;
    SlotRecord r;
    r.slot = s;
    e.slots.push_back(std::move(r));
  }
  return e;
}

SlotRecord missed_record(SlotTime slot, std::string error) {
  SlotRecord r;
  r.slot = slot;
  r.outcome = SlotOutcome::kMissed;
  r.error = std::move(error);
  return r;
}

// Puts the calling thread in SCHED_FIFO at `priority`. The first refusal is logged once (by
// whichever thread meets it); later threads fail silently the same way.
void make_realtime(int priority, const char* what) {
  static std::atomic<bool> warned{false};
  sched_param param{};
  param.sched_priority = priority;
  int rc = pthread_setschedparam(pthread_self(), SCHED_FIFO, &param);
  if (rc != 0 && !warned.exchange(true)) {
    spdlog::warn(
        "realtime = true, but SCHED_FIFO was refused for the {} ({}); running at normal "
        "priority (grant CAP_SYS_NICE or LimitRTPRIO, see docs/operations.md)",
        what, std::strerror(rc));
  }
}

constexpr int kTimerPriority = 50;
constexpr int kWorkerPriority = 40;

}  // namespace

// The slots the timer handed over at one wake-up (a boundary): counted as they finish, and
// summarised in one log line when the last one does (only with many feeds).
// Its counters start a cache line of their own: the shared_ptr's counts before them are touched
// by the workers, the counters by the thread that answers commits.
struct Scheduler::Boundary {
  ~Boundary() {
    if (presign) presign->release();
  }
  WallTime slot;
  std::shared_ptr<PresignPool> presign;  // held (PresignPool::hold) until the last slot is done
  alignas(64) std::atomic<size_t> remaining{0};
  std::atomic<size_t> published{0}, failed{0}, skipped{0}, missed{0};
  std::atomic<size_t> elsewhere{0};  // replicas: slots held by another replica
  std::atomic<int64_t> max_lateness_us{0};
};

Scheduler::Scheduler(Clock& clock, Store& store, DeadLetterQueue& dlq, Publisher& publisher,
                     std::vector<const FeedRuntime*> feeds, SchedulerOptions options)
    : clock_(clock), store_(store), dlq_(dlq), publisher_(publisher), options_(options) {
  std::sort(feeds.begin(), feeds.end(),
            [](const FeedRuntime* a, const FeedRuntime* b) { return a->id < b->id; });
  for (const FeedRuntime* rt : feeds) {
    auto f = std::make_unique<FeedState>();
    f->rt = rt;
    f->order = static_cast<uint32_t>(feeds_.size());
    f->plan_share = static_cast<double>(feeds_.size()) / static_cast<double>(feeds.size());
    feeds_.push_back(std::move(f));
  }
}

Scheduler::~Scheduler() {
  stop();
}

Status Scheduler::start() {
  size_t workers = options_.workers;
  const size_t cores = std::max<size_t>(2, std::thread::hardware_concurrency());
  if (workers == 0) {
    workers = std::clamp(feeds_.size(), cores, std::max(cores, SchedulerOptions::kMaxWorkers));
  }
  max_chunk_runners_ = std::min(workers, cores);
  pool_ = std::make_unique<WorkerPool>(workers, [realtime = options_.realtime] {
    pthread_setname_np(pthread_self(), "metronome-work");
    if (realtime) make_realtime(kWorkerPriority, "worker threads");
  });
  executor_ = [this](std::function<void()> task) { return pool_->submit(std::move(task)); };
  if (options_.realtime) {
    // The commit thread makes the commits the workers used to make: the same priority.
    publisher_.run_on_commit_thread([] { make_realtime(kWorkerPriority, "commit thread"); });
  }
  summarize_boundaries_ = feeds_.size() > options_.log_each_slot_up_to;
  publisher_.set_log_each_slot(!summarize_boundaries_);

  auto unfinished = store_.unfinished_executions();
  if (!unfinished.ok()) return unfinished.status().With("reading unfinished executions");
  // The timer runs before recovery ends: a feed's first slot fires on time even while other
  // feeds are still being recovered.
  started_ = true;
  timer_ = std::jthread([this](std::stop_token stop) {
    pthread_setname_np(pthread_self(), "metronome-timer");
    if (options_.realtime) make_realtime(kTimerPriority, "timer thread");
    timer_loop(stop);
  });
  // Feeds are recovered concurrently, so that their writes share group commits (10,000 feeds
  // one after another cost one fsync each: 40 s on the dev machine). Each plans from its own
  // "now", taken when its recovery starts.
  Status recovery = Status::Ok();
  {
    std::mutex recovery_mu;
    WorkerPool recoverers(std::clamp<size_t>(feeds_.size(), 1, 64));
    for (auto& feed : feeds_) {
      recoverers.submit([&, f = feed.get()] {
        Status st = recover_feed(*f, clock_.now(), *unfinished);
        std::lock_guard lock(recovery_mu);
        if (!st.ok() && recovery.ok()) recovery = st;
      });
    }
    recoverers.stop();
  }
  if (!recovery.ok()) {
    stop();
    return recovery;
  }
  const WallTime now = clock_.now();
  // Executions of feeds no longer configured: close them so they do not stay "running".
  for (const auto& ex : *unfinished) {
    bool known = std::any_of(feeds_.begin(), feeds_.end(),
                             [&](const auto& f) { return f->rt.load()->id == ex.feed; });
    if (known) continue;
    std::vector<SlotCommit> commits;
    for (SlotTime s : missed_slots(ex, now)) {
      commits.push_back({ex.id, ex.feed, missed_record(s, kNotRunning), std::nullopt});
    }
    if (!commits.empty()) (void)store_.commit_slots(commits);
    (void)store_.set_execution_state(ex.id, ExecutionState::kInterrupted, now);
    spdlog::info("execution {} belongs to feed {} which is no longer configured; interrupted",
                 ex.id, ex.feed);
  }
  return Status::Ok();
}

Status Scheduler::recover_feed(FeedState& feed, WallTime now,
                               const std::vector<Execution>& unfinished) {
  const FeedRuntime& rt = *feed.rt.load();
  const SlotTime current_start = window_start_of(now, rt.window);
  const ExecutionId current_id = make_execution_id(rt.id, current_start);
  // Replicas: only the holder of the feed's lease records its missed slots (under the lease);
  // the others plan and run the current window, asking at each slot.
  std::optional<SlotFence> fence;
  if (options_.ownership) fence = options_.ownership(rt.id, now);
  const bool mine = !options_.ownership || fence.has_value();

  // Executions a previous run left unfinished, other than the current window's.
  for (const auto& ex : unfinished) {
    if (!mine) break;
    if (ex.feed != rt.id || ex.id == current_id || ex.window_start > current_start) continue;
    auto missed = missed_slots(ex, now);
    std::vector<SlotCommit> commits;
    for (SlotTime s : missed) {
      commits.push_back({ex.id, ex.feed, missed_record(s, kNotRunning), std::nullopt, fence});
    }
    if (!commits.empty()) {
      auto r = store_.commit_slots(commits);
      if (!r.ok()) return r.status().With(fmt::format("recording missed slots of {}", ex.id));
    }
    bool had_planned = std::any_of(ex.slots.begin(), ex.slots.end(), [](const SlotRecord& s) {
      return s.outcome == SlotOutcome::kPlanned;
    });
    ExecutionState state = had_planned ? ExecutionState::kInterrupted : final_state(ex.slots);
    METRONOME_RETURN_IF_ERROR(store_.set_execution_state(ex.id, state, now));
    if (!missed.empty()) {
      spdlog::warn("feed={} execution {}: {} slots missed while the daemon was not running; {}",
                   rt.id, ex.id, missed.size(), to_string(state));
    }
  }

  // Windows that passed with no execution at all.
  ExecutionQuery q;
  q.feed = rt.id;
  q.before = current_start;
  q.limit = 1;
  auto newest = store_.list_executions(q);
  if (!newest.ok()) return newest.status().With("reading executions");
  if (mine && !newest->empty() && newest->front().window_end < current_start) {
    auto gaps = gap_windows(rt.schedule, rt.window, newest->front().window_end, current_start,
                            options_.max_gap_slots);
    size_t slots = 0;
    for (const auto& g : gaps) {
      Execution e = execution_from_plan(rt.id, g, now, SlotTime::min());
      METRONOME_RETURN_IF_ERROR(store_.create_execution(e));
      std::vector<SlotCommit> commits;
      for (const auto& s : e.slots) {
        commits.push_back({e.id, rt.id, missed_record(s.slot, kNotRunning), std::nullopt, fence});
        if (commits.size() == kCommitChunk) {
          auto r = store_.commit_slots(commits);
          if (!r.ok()) return r.status();
          commits.clear();
        }
      }
      if (!commits.empty()) {
        auto r = store_.commit_slots(commits);
        if (!r.ok()) return r.status();
      }
      slots += e.slots.size();
      METRONOME_RETURN_IF_ERROR(store_.set_execution_state(e.id, ExecutionState::kFailed, now));
    }
    if (!gaps.empty()) {
      spdlog::warn(
          "feed={}: {} windows ({} slots) passed while the daemon was not running; "
          "recorded as missed",
          rt.id, gaps.size(), slots);
    }
  }

  // The current window: resume it, or start it at the next slot.
  auto existing = store_.get_execution(current_id);
  if (!existing.ok()) return existing.status().With("reading the current execution");
  std::shared_ptr<ExecState> exec;
  if (*existing) {
    Execution ex = std::move(**existing);
    auto missed = mine ? missed_slots(ex, now) : std::vector<SlotTime>{};
    if (!missed.empty()) {
      std::vector<SlotCommit> commits;
      for (SlotTime s : missed) {
        commits.push_back({ex.id, ex.feed, missed_record(s, kNotRunning), std::nullopt, fence});
      }
      auto r = store_.commit_slots(commits);
      if (!r.ok()) return r.status().With("recording missed slots");
      for (auto& s : ex.slots) {
        if (std::find(missed.begin(), missed.end(), s.slot) != missed.end()) {
          s = missed_record(s.slot, kNotRunning);
        }
      }
      spdlog::warn(
          "feed={} execution {}: {} slots missed while the daemon was not running; "
          "resuming at the next slot",
          rt.id, ex.id, missed.size());
    }
    exec = make_exec(feed, ex, now);
    {
      std::lock_guard lock(exec->mu);
      exec->persisted = true;
    }
  } else if (!newest->empty()) {
    // The daemon ran before: the slots of this window that passed while it was down are missed.
    WindowPlan plan = plan_window_at(rt.schedule, rt.window, current_start);
    if (!plan.slots.empty()) {
      Execution ex = execution_from_plan(rt.id, plan, now, SlotTime::min());
      std::vector<SlotCommit> commits;
      for (auto& s : ex.slots) {
        if (!mine || WallTime(s.slot) > now) continue;
        s = missed_record(s.slot, kNotRunning);
        commits.push_back({ex.id, ex.feed, s, std::nullopt, fence});
      }
      exec = make_exec(feed, ex, now);
      if (options_.ownership) {
        // The execution row is shared: plan it with every slot planned, then record the
        // missed ones under the lease (a replica without the lease records none).
        std::lock_guard lock(exec->mu);
        for (auto& s : exec->execution.slots) s = SlotRecord{.slot = s.slot};
      }
      persist_new_execution(*exec);
      if (!commits.empty()) {
        auto r = store_.commit_slots(commits);
        if (!r.ok()) return r.status().With("recording missed slots");
        spdlog::warn("feed={} execution {}: {} slots missed while the daemon was not running",
                     rt.id, ex.id, commits.size());
      }
    }
  } else {
    // First start: the window begins at the next slot.
    WindowPlan plan = plan_current_window(rt.schedule, rt.window, now);
    if (!plan.slots.empty()) {
      exec = make_exec(feed, execution_from_plan(rt.id, plan, now, SlotTime::min()), std::nullopt);
      persist_new_execution(*exec);
    }
  }

  if (exec && !exec->run.empty()) {
    {
      std::lock_guard lock(mu_);
      live_[exec->execution.id] = exec;
    }
    push_next_entry(exec, 0);
    spdlog::info("feed={} ({}) execution {}: {} slots from {}", rt.id, rt.schedule.describe(),
                 exec->execution.id, exec->run.size(), format_iso_ms(exec->run.front()));
  } else {
    if (exec) {
      // Nothing left to run in this window: close it if every slot has an outcome.
      std::lock_guard lock(exec->mu);
      if (exec->remaining == 0 && !exec->execution.slots.empty() &&
          !is_final(exec->execution.state)) {
        (void)store_.set_execution_state(exec->execution.id, final_state(exec->execution.slots),
                                         now);
      }
    }
    pool_->submit(
        [this, &feed, end = window_start_of(now, rt.window) + rt.window] { plan_next(feed, end); });
  }
  return Status::Ok();
}

std::shared_ptr<Scheduler::ExecState> Scheduler::make_exec(FeedState& feed,
                                                           const Execution& execution,
                                                           std::optional<WallTime> only_after) {
  auto exec = std::make_shared<ExecState>();
  exec->feed = &feed;
  exec->rt = feed.rt.load();
  // A rotated key takes effect here, at the window's planning.
  if (exec->rt->signer) exec->signer = exec->rt->signer->for_next_window();
  exec->execution = execution;
  for (const auto& s : execution.slots) {
    if (s.outcome != SlotOutcome::kPlanned) continue;
    ++exec->remaining;
    if (!only_after || WallTime(s.slot) > *only_after) exec->run.push_back(s.slot);
  }
  // Replicas: this process finishes with the slots it fires; the others are another replica's
  // or recorded by a takeover, and the final state is read from the store.
  if (options_.ownership) exec->remaining = exec->run.size();
  if (!exec->run.empty()) {
    const size_t last = exec->run.size() - 1;
    exec->plan_at = summarize_boundaries_
                        ? std::min(last, static_cast<size_t>(feed.plan_share *
                                                             static_cast<double>(exec->run.size())))
                        : last;
  }
  return exec;
}

void Scheduler::persist_new_execution(ExecState& exec) {
  {
    // Every slot calls this: once persisted, no vectors and no count change (2 allocations per
    // slot at 10,000 feeds otherwise).
    std::lock_guard lock(exec.mu);
    if (exec.persisted) return;
  }
  const std::shared_ptr<ExecState> one = exec.shared_from_this();
  persist_new_executions(std::span(&one, 1));
}

void Scheduler::persist_new_executions(std::span<const std::shared_ptr<ExecState>> execs) {
  std::vector<Execution> snapshots;
  std::vector<ExecState*> which;
  snapshots.reserve(execs.size());
  which.reserve(execs.size());
  for (const auto& exec : execs) {
    std::lock_guard lock(exec->mu);
    if (exec->persisted) continue;
    snapshots.push_back(exec->execution);
    which.push_back(exec.get());
  }
  if (snapshots.empty()) return;
  // Not a chore between batches (Publisher::run_when_store_idle): the window's slots need it in
  // time, and an overloaded writer (100,000 feeds) planned too late with it.
  std::vector<Status> written = store_.create_executions(snapshots);
  for (size_t i = 0; i < which.size(); ++i) {
    Status st = i < written.size() ? written[i] : Status::Internal("no answer from the store");
    if (st.ok()) {
      std::lock_guard lock(which[i]->mu);
      which[i]->persisted = true;
    } else {
      report_plan_failure(*which[i], snapshots[i], st);
    }
  }
}

void Scheduler::report_plan_failure(ExecState& exec, const Execution& snapshot, const Status& st) {
  {
    std::lock_guard lock(exec.mu);
    if (exec.plan_failure_reported) return;  // later slots retry quietly
    exec.plan_failure_reported = true;
  }
  {
    std::lock_guard lock(mu_);
    unpersisted_.push_back(exec.shared_from_this());
    has_unpersisted_.store(true);
  }
  spdlog::error(
      "feed={} execution {} could not be persisted: {}; running it anyway and "
      "persisting it at a later slot",
      snapshot.feed, snapshot.id, st.ToString());
  DlqMessage m;
  m.feed = snapshot.feed;
  m.execution = snapshot.id;
  m.stage = "plan";
  m.error = st.ToString();
  m.attempts = 1;
  m.first_failure = m.last_failure = clock_.now();
  auto pushed = dlq_.push(std::move(m));
  if (!pushed.ok()) {
    spdlog::critical("execution {}: could not put the planning failure on the DLQ either: {}",
                     snapshot.id, pushed.status().ToString());
  }
}

void Scheduler::retry_unpersisted() {
  std::vector<std::shared_ptr<ExecState>> pending;
  {
    std::lock_guard lock(mu_);
    pending.swap(unpersisted_);
    has_unpersisted_.store(false);
  }
  std::vector<std::shared_ptr<ExecState>> still;
  for (auto& exec : pending) {
    Execution snapshot;
    {
      std::lock_guard lock(exec->mu);
      if (exec->persisted) continue;
      snapshot = exec->execution;
    }
    if (!store_.create_execution(snapshot).ok()) {
      still.push_back(std::move(exec));
      continue;
    }
    bool finished;
    {
      std::lock_guard lock(exec->mu);
      exec->persisted = true;
      finished = exec->finished;
    }
    // An execution that ended while unpersisted gets its final state now.
    if (finished) (void)store_.set_execution_state(snapshot.id, snapshot.state, clock_.now());
    spdlog::info("execution {} persisted after its planning had failed", snapshot.id);
  }
  if (!still.empty()) {
    std::lock_guard lock(mu_);
    unpersisted_.insert(unpersisted_.end(), still.begin(), still.end());
    has_unpersisted_.store(true);
  }
}

void Scheduler::plan_next(FeedState& feed, SlotTime previous_end) {
  const std::pair<FeedState*, SlotTime> one{&feed, previous_end};
  plan_next(std::span(&one, 1));
}

void Scheduler::plan_next(std::span<const std::pair<FeedState*, SlotTime>> feeds) {
  std::vector<std::shared_ptr<ExecState>> planned;
  planned.reserve(feeds.size());
  for (const auto& [feed, previous_end] : feeds) {
    if (feed->removed.load()) {
      spdlog::info("feed={} was removed from the config; no further window", feed->rt.load()->id);
      continue;
    }
    const FeedRuntime& rt = *feed->rt.load();
    auto plan = next_window(rt.schedule, rt.window, previous_end);
    if (!plan) {
      spdlog::warn("feed={}: schedule {} has no further slot; the feed stops", rt.id,
                   rt.schedule.describe());
      continue;
    }
    // A fresh plan runs every slot; if planning was late, the timer decides late vs missed.
    planned.push_back(make_exec(
        *feed, execution_from_plan(rt.id, *plan, clock_.now(), SlotTime::min()), std::nullopt));
  }
  if (planned.empty()) return;
  // One store write for all the windows planned at this boundary.
  persist_new_executions(planned);
  {
    std::lock_guard lock(mu_);
    for (const auto& exec : planned) live_[exec->execution.id] = exec;
  }
  std::vector<Entry> first;
  first.reserve(planned.size());
  for (const auto& exec : planned) first.push_back(entry_of(exec, 0));
  push_entries(first);
  {
    std::lock_guard lock(outcomes_mu_);
    windows_planned_ += planned.size();
  }
  outcomes_cv_.notify_all();
}

void Scheduler::push_next_entry(const std::shared_ptr<ExecState>& exec, size_t index) {
  Entry entry = entry_of(exec, index);
  push_entries(std::span<Entry>(&entry, 1));
}

Scheduler::Entry Scheduler::entry_of(std::shared_ptr<ExecState> exec, size_t index) const {
  const WallTime due = WallTime(exec->run[index]) - exec->rt->observe_lead - options_.handoff_lead;
  const uint32_t order = exec->feed->order;
  return Entry{due, order, 0, std::move(exec), index};
}

void Scheduler::push_entries(std::span<Entry> entries) {
  if (entries.empty()) return;
  std::lock_guard lock(mu_);
  WallTime earliest = WallTime::max();
  for (Entry& entry : entries) {
    entry.seq = next_seq_++;
    earliest = std::min(earliest, entry.due);
    heap_.push(std::move(entry));
  }
  if (sleeping_until_ && earliest < *sleeping_until_ && sleep_interrupt_) {
    sleep_interrupt_->request_stop();
  }
  heap_cv_.notify_one();
}

void Scheduler::timer_loop(std::stop_token stop) {
  const bool heartbeat = options_.heartbeat && options_.heartbeat_period > Nanos(0);
  MonoTime next_heartbeat = clock_.monotonic_now();
  while (!stop.stop_requested()) {
    if (heartbeat && clock_.monotonic_now() >= next_heartbeat) {
      options_.heartbeat();
      next_heartbeat = clock_.monotonic_now() + options_.heartbeat_period;
    }
    WallTime due;
    std::stop_source interrupt;
    {
      std::unique_lock lock(mu_);
      if (!heartbeat) heap_cv_.wait(lock, stop, [&] { return !heap_.empty(); });
      if (stop.stop_requested()) return;
      // The heartbeat is measured on the monotonic clock; the sleep is to a wall time, so the
      // next heartbeat is placed on the wall clock relative to now.
      WallTime heartbeat_due = clock_.now() + (next_heartbeat - clock_.monotonic_now());
      if (heap_.empty()) {
        due = heartbeat_due;
      } else {
        due = heap_.top().due;
        if (heartbeat && heartbeat_due < due) due = heartbeat_due;
      }
      sleep_interrupt_ = interrupt;
      sleeping_until_ = due;
    }
    Clock::SleepResult slept;
    {
      std::stop_callback forward(stop, [&interrupt] { interrupt.request_stop(); });
      slept = clock_.sleep_until(due, interrupt.get_token());
    }
    {
      std::lock_guard lock(mu_);
      sleep_interrupt_.reset();
      sleeping_until_.reset();
    }
    switch (slept.wake) {
      case Clock::Wake::kClockStep:
        // Re-plan, as chrony does: the heap keeps absolute slot times, so the loop simply
        // sleeps to the earliest again. Slots now past their deadline are recorded missed at
        // dispatch instead of firing in a burst.
        ++clock_steps_;
        if (options_.on_clock_step) options_.on_clock_step(clock_.now(), slept.step);
        spdlog::warn("wall clock stepped by {} ms; re-planning timers",
                     std::chrono::duration_cast<Millis>(slept.step).count());
        dispatch_due(clock_.now());
        break;
      case Clock::Wake::kStopped:
        break;  // shutdown, or an earlier entry arrived
      case Clock::Wake::kDeadline:
        dispatch_due(clock_.now());
        break;
    }
  }
}

void Scheduler::dispatch_due(WallTime now) {
  std::vector<Entry> due;
  {
    std::lock_guard lock(mu_);
    while (!heap_.empty() && heap_.top().due <= now) due.push_back(heap_.pop_top());
  }
  if (due.empty()) return;
  std::shared_ptr<Boundary> boundary;
  if (summarize_boundaries_) {
    boundary = std::make_shared<Boundary>();
    boundary->slot = WallTime(due.front().exec->run[due.front().index]);
    boundary->remaining = due.size();
    if (options_.presign && options_.presign->ready() >= due.size()) {
      options_.presign->hold();
      boundary->presign = options_.presign;
    }
  }
  // Planning is queued after the boundary's slots: a value never waits behind bookkeeping.
  std::vector<std::pair<FeedState*, SlotTime>> plans;
  // Slots whose source never blocks, run kSlotsPerTask at a time by one worker (in feed order).
  struct ChunkSlot {
    std::shared_ptr<ExecState> exec;
    size_t index;
    bool busy;  // the feed was busy at dispatch: run_or_skip() decides at the slot
  };
  std::vector<ChunkSlot> chunk;
  auto submit_chunk = [&] {
    if (chunk.empty()) return;
    this->submit_chunk([this, slots = std::move(chunk), boundary] {
      // Closed (signed, its commits queued) when the chunk's last slot has run.
      std::optional<SignBatch> batch;
      if (options_.sign_batch > 1) batch.emplace(publisher_, options_.sign_batch);
      SignBatch* const b = batch ? &*batch : nullptr;
      for (const auto& [exec, index, busy] : slots) {
        if (busy) {
          run_or_skip(exec, index, boundary, b);
        } else {
          run_slot(exec, index, boundary, b);
        }
      }
    });
    chunk.clear();
    chunk.reserve(kSlotsPerTask);
  };
  // Each feed's next entry, pushed after the last chunk is handed over.
  std::vector<Entry> next;
  next.reserve(due.size());
  for (auto& e : due) {
    std::shared_ptr<ExecState>& exec = e.exec;
    FeedState& feed = *exec->feed;
    const SlotTime slot = exec->run[e.index];
    {
      std::lock_guard lock(exec->mu);
      if (exec->cancelled) {
        if (boundary) --boundary->remaining;
        continue;
      }
    }
    if (e.index + 1 < exec->run.size()) next.push_back(entry_of(exec, e.index + 1));
    if (e.index == exec->plan_at) plans.emplace_back(&feed, exec->execution.window_end);

    const WallTime deadline = exec->rt->deadline_of(slot);
    if (now >= deadline) {
      pool_->submit([this, exec, slot, now, boundary] {
        auto lease = claim(*exec, slot, boundary);
        if (!lease) return;
        SlotRecord r = missed_record(
            slot, fmt::format("the timer woke at {}, after the slot's deadline (clock step or "
                              "suspended process)",
                              format_iso_us(now)));
        record_unpublished(exec, std::move(r), *lease, boundary);
      });
    } else {
      // A busy feed's slot is decided at the slot (run_or_skip). A non-blocking feed's slot, busy
      // or not, waits in its chunk in feed order, so skips do not outrun the chunk runners; but
      // a busy slot that would hold its chunk past the others' observe lead waits on its own.
      const bool busy = try_begin_slot(feed.in_flight, feed.committing) != nullptr;
      if (!exec->rt->source->may_block() && !(busy && exec->rt->observe_lead > Nanos(0))) {
        chunk.push_back({std::move(exec), e.index, busy});
        if (chunk.size() == kSlotsPerTask) submit_chunk();
      } else if (busy) {
        pool_->submit(
            [this, exec, index = e.index, boundary] { run_or_skip(exec, index, boundary); });
      } else {
        pool_->submit([this, exec, index = e.index, boundary] { run_slot(exec, index, boundary); });
      }
    }
  }
  submit_chunk();
  push_entries(next);
  if (!plans.empty()) {
    pool_->submit([this, plans = std::move(plans)] { plan_next(plans); });
  }
}

// A slot whose feed was busy when it was dispatched: decide at the slot, not before it. A previous
// slot that finished meanwhile lets this one run; a skip is recorded at (never before) its time.
void Scheduler::run_or_skip(const std::shared_ptr<ExecState>& exec, size_t index,
                            const std::shared_ptr<Boundary>& boundary, SignBatch* batch) {
  const SlotTime slot = exec->run[index];
  while (clock_.now() < WallTime(slot)) {
    (void)clock_.sleep_until(WallTime(slot), std::stop_token());
  }
  const char* busy = try_begin_slot(exec->feed->in_flight, exec->feed->committing);
  if (busy == nullptr) {
    run_slot(exec, index, boundary, batch);
    return;
  }
  auto lease = claim(*exec, slot, boundary);
  if (!lease) return;
  SlotRecord r;
  r.slot = slot;
  r.outcome = SlotOutcome::kSkipped;
  r.fired_at = clock_.now();
  r.lateness_us = std::chrono::duration_cast<Micros>(*r.fired_at - WallTime(slot)).count();
  r.error = busy;
  const auto level = summarize_boundaries_ ? spdlog::level::debug : spdlog::level::warn;
  if (spdlog::should_log(level)) {
    spdlog::log(level, "skipped feed={} slot={}: {}", exec->rt->id, format_iso_ms(slot), r.error);
  }
  record_unpublished(exec, std::move(r), *lease, boundary);
}

// Why at most one runner per core: with a task per chunk, a 10,000-feed boundary woke up to 64
// workers at once on 2 cores; they took turns with the commit threads, and a tenth of the CPU
// went to waking and switching threads.
void Scheduler::submit_chunk(std::function<void()> chunk) {
  {
    std::lock_guard lock(chunks_mu_);
    chunks_.push_back(std::move(chunk));
    if (chunk_runners_ >= max_chunk_runners_) return;
    ++chunk_runners_;
  }
  if (!pool_->submit([this] { run_chunks(); })) {
    std::lock_guard lock(chunks_mu_);  // stopping: what is queued is dropped, as a task would be
    --chunk_runners_;
  }
}

void Scheduler::run_chunks() {
  for (;;) {
    std::function<void()> chunk;
    {
      std::lock_guard lock(chunks_mu_);
      if (chunks_.empty()) {
        --chunk_runners_;
        return;
      }
      chunk = std::move(chunks_.front());
      chunks_.pop_front();
    }
    chunk();
  }
}

void Scheduler::run_slot(const std::shared_ptr<ExecState>& exec, size_t index,
                         const std::shared_ptr<Boundary>& boundary, SignBatch* batch) {
  FeedState& feed = *exec->feed;
  const SlotTime slot = exec->run[index];
  // Never early: a clock stepped back after the timer woke makes us wait again. (With an
  // observe lead the task starts before the slot; the publisher holds the record until it.)
  const WallTime start_at = WallTime(slot) - exec->rt->observe_lead;
  while (clock_.now() < start_at) {
    (void)clock_.sleep_until(start_at, std::stop_token());
  }
  const WallTime fired_at = clock_.now();
  auto lease = claim(*exec, slot, boundary);
  if (!lease) {
    feed.in_flight.store(false);
    return;
  }

  persist_new_execution(*exec);  // no-op once persisted; retries a failed planning
  if (has_unpersisted_.load()) retry_unpersisted();
  bool mark_running = false;
  {
    std::lock_guard lock(exec->mu);
    exec->started = true;
    mark_running = exec->persisted && !exec->running_recorded;
    exec->running_recorded = mark_running || exec->running_recorded;
  }

  SlotJob job{exec->execution.id,          slot,         fired_at,
              exec->rt->deadline_of(slot), exec->signer, *lease};
  job.batch = batch;
  // Observed and signed: the next slot may start while this one waits for the disk. The
  // result says whether this ran (SlotResult::observed).
  job.observed = [&feed] {
    feed.committing.fetch_add(1);  // before in_flight is released: try_begin_slot counts it
    feed.in_flight.store(false);
  };
  // The worker goes on with other slots while the record waits for its batch (CommitBatcher);
  // the rest of the slot runs on a worker once it is written.
  slots_in_flight_.fetch_add(1);
  publisher_.publish_slot_async(
      *exec->rt, std::move(job), std::stop_token(), executor_,
      [this, exec, slot, fence = *lease, mark_running, boundary](SlotResult result) mutable {
        // Usually on the commit batcher's answering thread, which must not wait for the store: the
        // rest of a slot that writes or reads the store goes to a worker. Called once, so the
        // captures move on (a copy of a boundary's pointer is a count change on a shared line).
        auto rest = [this, exec = std::move(exec), slot, fence = std::move(fence), mark_running,
                     boundary = std::move(boundary), result = std::move(result)] {
          after_publish(*exec, slot, fence, mark_running, boundary, result);
          slot_finished();
        };
        if (!after_publish_needs_store(*exec, fence, result) || !executor_(rest)) {
          rest();
        }
      });
}

void Scheduler::record_unpublished(const std::shared_ptr<ExecState>& exec, SlotRecord outcome,
                                   const std::optional<SlotFence>& lease,
                                   const std::shared_ptr<Boundary>& boundary) {
  if (options_.ownership) {
    // Replicas: the execution's last outcome reads the store (finish_slot()), so not on the
    // batcher's answering thread.
    publisher_.record_outcome(exec->rt->id, exec->execution.id, outcome, lease);
    finish_slot(*exec, outcome);
    tally(boundary, outcome);
    return;
  }
  slots_in_flight_.fetch_add(1);
  publisher_.record_outcome_async(exec->rt->id, exec->execution.id, outcome, lease, executor_,
                                  [this, exec, outcome, boundary] {
                                    finish_slot(*exec, outcome);
                                    tally(boundary, outcome);
                                    slot_finished();
                                  });
}

bool Scheduler::after_publish_needs_store(ExecState& exec, const std::optional<SlotFence>& fence,
                                          const SlotResult& result) {
  if (result.lease_lost) return true;
  if (fence && exec.feed->owned_epoch.load() != fence->epoch) return true;  // catch_up()
  // State changes are queued (queue_state_changes()), except that replicas decide an
  // execution's final state from the store at its last outcome (finish_slot()).
  if (!options_.ownership) return false;
  std::lock_guard lock(exec.mu);
  return exec.remaining <= 1;
}

void Scheduler::after_publish(ExecState& exec, SlotTime slot, const std::optional<SlotFence>& fence,
                              bool mark_running, const std::shared_ptr<Boundary>& boundary,
                              const SlotResult& result) {
  FeedState& feed = *exec.feed;
  if (result.observed) {  // job.observed ran: counted in committing, in_flight released
    feed.committing.fetch_sub(1);
  } else {
    feed.in_flight.store(false);
  }
  if (result.lease_lost) {
    // Nothing recorded: the feed's new holder records this slot.
    feed.owned_epoch.store(0);
    SlotRecord elsewhere{.slot = slot};
    finish_slot(exec, elsewhere);
    if (boundary) ++boundary->elsewhere;
    tally(boundary, elsewhere);
    return;
  }
  if (fence && feed.owned_epoch.exchange(fence->epoch) != fence->epoch) {
    // The first slot of this lease: the slots before it without an outcome are recorded.
    catch_up(*exec.rt, slot, *fence);
  }
  // After the slot's own commit, not before it: bookkeeping never delays a value.
  std::vector<StateChange> changes;
  if (mark_running) {
    changes.push_back(StateChange{.exec = exec.shared_from_this(),
                                  .change = {exec.execution.id, ExecutionState::kRunning, {}}});
  }
  finish_slot(exec, result.slot, std::move(changes));
  tally(boundary, result.slot);
}

void Scheduler::tally(const std::shared_ptr<Boundary>& boundary, const SlotRecord& outcome) {
  if (!boundary) return;
  Boundary& b = *boundary;
  switch (outcome.outcome) {
    case SlotOutcome::kPlanned:
      break;  // another replica's slot (counted in `elsewhere`)
    case SlotOutcome::kPublished:
      ++b.published;
      break;
    case SlotOutcome::kSkipped:
      ++b.skipped;
      break;
    case SlotOutcome::kMissed:
      ++b.missed;
      break;
    default:
      ++b.failed;
      break;
  }
  if (outcome.lateness_us) {
    int64_t seen = b.max_lateness_us.load();
    while (*outcome.lateness_us > seen &&
           !b.max_lateness_us.compare_exchange_weak(seen, *outcome.lateness_us)) {
    }
  }
  if (b.remaining.fetch_sub(1) != 1) return;
  const int64_t done_us = std::chrono::duration_cast<Micros>(clock_.now() - b.slot).count();
  const size_t total = b.published + b.failed + b.skipped + b.missed;
  auto level = b.published == total ? spdlog::level::info : spdlog::level::warn;
  spdlog::log(level,
              "boundary {}: {} slots, {} published, {} failed, {} skipped, {} missed{}; fire "
              "lateness max {} us; all outcomes recorded {} us after the slot",
              format_iso_ms(std::chrono::floor<Millis>(b.slot)), total, b.published.load(),
              b.failed.load(), b.skipped.load(), b.missed.load(),
              b.elsewhere > 0 ? fmt::format(", {} held by other replicas", b.elsewhere.load())
                              : std::string(),
              b.max_lateness_us.load(), done_us);
}

void Scheduler::finish_slot(ExecState& exec, const SlotRecord& outcome,
                            std::vector<StateChange> changes) {
  std::optional<ExecutionState> final;
  ExecutionId id;
  {
    std::lock_guard lock(exec.mu);
    auto it =
        std::lower_bound(exec.execution.slots.begin(), exec.execution.slots.end(), outcome.slot,
                         [](const SlotRecord& s, SlotTime t) { return s.slot < t; });
    if (it != exec.execution.slots.end() && it->slot == outcome.slot) {
      if (it->outcome == SlotOutcome::kPlanned && exec.remaining > 0) --exec.remaining;
      *it = outcome;
    }
    if (exec.remaining == 0 && !exec.finished) {
      exec.finished = true;
      final = options_.ownership ? ExecutionState::kRunning  // decided from the store below
                                 : final_state(exec.execution.slots);
      exec.execution.state = *final;
    }
    id = exec.execution.id;
  }
  if (final && options_.ownership) {
    finalize_from_store(id);
    {
      std::lock_guard lock(mu_);
      live_.erase(id);
    }
  } else if (final) {
    changes.push_back(
        StateChange{.exec = exec.shared_from_this(), .change = {id, *final, clock_.now()}});
    std::lock_guard lock(mu_);
    live_.erase(id);
  }
  if (changes.empty()) {
    count_outcome();
    return;
  }
  changes.back().counts_outcome = true;
  queue_state_changes(std::move(changes));
}

void Scheduler::queue_state_changes(std::vector<StateChange> changes) {
  bool start;
  {
    std::lock_guard lock(states_mu_);
    states_.insert(states_.end(), std::make_move_iterator(changes.begin()),
                   std::make_move_iterator(changes.end()));
    start = !states_writing_;
    states_writing_ = true;
  }
  if (start && !pool_->submit([this] { write_state_changes(); })) write_state_changes();
}

void Scheduler::write_state_changes() {
  for (;;) {
    std::vector<StateChange> batch;
    {
      std::lock_guard lock(states_mu_);
      if (states_.empty()) {
        states_writing_ = false;
        return;
      }
      batch.swap(states_);
    }
    std::vector<ExecutionStateChange> changes;
    changes.reserve(batch.size());
    for (const StateChange& c : batch) changes.push_back(c.change);
    std::vector<Status> written;
    written.reserve(changes.size());
    for (size_t from = 0; from < changes.size(); from += kBookkeepingChunk) {
      const auto chunk =
          std::span(changes).subspan(from, std::min(kBookkeepingChunk, changes.size() - from));
      publisher_.run_when_store_idle([&] {
        std::vector<Status> part = store_.set_execution_states(chunk);
        written.insert(written.end(), part.begin(), part.end());
      });
    }
    for (size_t i = 0; i < batch.size(); ++i) {
      const ExecutionStateChange& c = batch[i].change;
      if (i < written.size() && written[i].ok()) {
        spdlog::debug("execution {} {}", c.id, to_string(c.state));
      } else if (c.state == ExecutionState::kRunning) {
        spdlog::warn("execution {}: could not mark running: {}", c.id,
                     i < written.size() ? written[i] : Status::Internal("no answer"));
        std::lock_guard lock(batch[i].exec->mu);
        batch[i].exec->running_recorded = false;  // try again at the next slot
      } else {
        spdlog::warn("execution {}: could not record final state: {}", c.id,
                     i < written.size() ? written[i] : Status::Internal("no answer"));
      }
    }
    for (const StateChange& c : batch) {
      if (c.counts_outcome) count_outcome();
    }
  }
}

std::optional<std::optional<SlotFence>> Scheduler::claim(
    ExecState& exec, SlotTime slot, const std::shared_ptr<Boundary>& boundary) {
  if (!options_.ownership) return std::optional<SlotFence>();
  std::optional<SlotFence> lease = options_.ownership(exec.rt->id, clock_.now());
  if (lease) return lease;
  exec.feed->owned_epoch.store(0);
  SlotRecord elsewhere{.slot = slot};
  finish_slot(exec, elsewhere);
  if (boundary) ++boundary->elsewhere;
  tally(boundary, elsewhere);
  return std::nullopt;
}

void Scheduler::catch_up(const FeedRuntime& rt, SlotTime slot, const SlotFence& fence) {
  // The previous holder's last outcome is at most a few windows back: its executions are
  // planned by every replica, so the slots it left have rows (planned).
  ExecutionQuery q;
  q.feed = rt.id;
  q.before = slot + Millis(1);
  q.limit = 4;
  auto executions = store_.list_executions(q);
  if (!executions.ok()) {
    spdlog::warn("feed={}: could not read its executions after taking its lease: {}", rt.id,
                 executions.status());
    return;
  }
  size_t recorded = 0;
  for (const Execution& ex : *executions) {
    std::vector<SlotCommit> commits;
    for (const SlotRecord& s : ex.slots) {
      if (s.outcome == SlotOutcome::kPlanned && s.slot < slot) {
        commits.push_back({ex.id, ex.feed, missed_record(s.slot, kNotHeld), std::nullopt, fence});
      }
    }
    if (commits.empty()) continue;
    auto r = store_.commit_slots(commits);
    if (!r.ok()) {
      spdlog::warn("feed={}: could not record {} slots missed before its lease: {}", rt.id,
                   commits.size(), r.status());
      continue;
    }
    recorded += commits.size();
    if (WallTime(ex.window_end) <= WallTime(slot)) finalize_from_store(ex.id);
  }
  if (recorded > 0) {
    spdlog::warn(
        "feed={}: took its lease (epoch {}) at slot {}: {} earlier slots had no outcome; "
        "recorded missed",
        rt.id, fence.epoch, format_iso_ms(slot), recorded);
  }
}

void Scheduler::finalize_from_store(const ExecutionId& id) {
  auto ex = store_.get_execution(id);
  if (!ex.ok() || !*ex) return;
  const Execution& e = **ex;
  if (e.state == ExecutionState::kSucceeded || e.state == ExecutionState::kFailed) return;
  for (const SlotRecord& s : e.slots) {
    if (s.outcome == SlotOutcome::kPlanned) return;  // another replica's slot is still to come
  }
  const ExecutionState state = final_state(e.slots);
  Status st = store_.set_execution_state(id, state, clock_.now());
  if (!st.ok()) spdlog::warn("execution {}: could not record final state: {}", id, st);
}

void Scheduler::reconfigure(std::vector<const FeedRuntime*> feeds) {
  std::lock_guard lock(reconfigure_mu_);
  const WallTime now = clock_.now();
  for (auto& f : feeds_) {
    const FeedRuntime* old = f->rt.load();
    auto it = std::find_if(feeds.begin(), feeds.end(),
                           [&](const FeedRuntime* rt) { return rt->id == old->id; });
    if (it == feeds.end()) {
      if (!f->removed.exchange(true)) {
        spdlog::info("feed={} removed: its current window finishes, no further one", old->id);
        cancel_future_windows(*f, now);
      }
      continue;
    }
    f->rt.store(*it);
    if (f->removed.exchange(false)) {
      // Removed, then configured again: it comes back at its next window.
      pool_->submit([this, feed = f.get(), now] {
        const FeedRuntime& rt = *feed->rt.load();
        plan_next(*feed, window_start_of(now, rt.window) + rt.window);
      });
    }
    feeds.erase(it);
  }
  for (const FeedRuntime* rt : feeds) {
    auto f = std::make_unique<FeedState>();
    f->rt.store(rt);
    f->order = static_cast<uint32_t>(feeds_.size());
    f->plan_share = static_cast<double>(std::hash<std::string>{}(rt->id.str()) % 1'000'000) / 1e6;
    FeedState* feed = f.get();
    feeds_.push_back(std::move(f));
    spdlog::info("feed={} added: it starts at its next window", rt->id);
    pool_->submit([this, feed, end = window_start_of(now, rt->window) + rt->window] {
      plan_next(*feed, end);
    });
  }
}

void Scheduler::cancel_future_windows(FeedState& feed, WallTime now) {
  std::vector<std::shared_ptr<ExecState>> cancelled;
  {
    std::lock_guard lock(mu_);
    for (auto it = live_.begin(); it != live_.end();) {
      ExecState& exec = *it->second;
      if (exec.feed == &feed && WallTime(exec.execution.window_start) > now) {
        cancelled.push_back(it->second);
        it = live_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& exec : cancelled) {
    {
      std::lock_guard lock(exec->mu);
      if (exec->started) continue;
      exec->cancelled = true;
    }
    Status st = store_.set_execution_state(exec->execution.id, ExecutionState::kInterrupted, now);
    spdlog::info("execution {} was planned ahead; its feed was removed, so it will not run{}",
                 exec->execution.id, st.ok() ? "" : fmt::format(" ({})", st.ToString()));
  }
}

void Scheduler::slot_finished() {
  if (slots_in_flight_.fetch_sub(1) != 1) return;
  // Under the mutex: stop() either sees 0 or is already waiting when this notifies.
  std::lock_guard lock(slots_mu_);
  slots_cv_.notify_all();
}

void Scheduler::count_outcome() {
  {
    std::lock_guard lock(outcomes_mu_);
    ++outcomes_;
  }
  outcomes_cv_.notify_all();
}

bool Scheduler::wait_for_outcomes(uint64_t n, std::chrono::milliseconds timeout) {
  std::unique_lock lock(outcomes_mu_);
  // Real time on purpose: it bounds a broken test, it does not drive the scheduler.
  return outcomes_cv_.wait_for(lock, timeout, [&] { return outcomes_.load() >= n; });
}

bool Scheduler::wait_for_windows_planned(uint64_t n, std::chrono::milliseconds timeout) {
  std::unique_lock lock(outcomes_mu_);
  return outcomes_cv_.wait_for(lock, timeout, [&] { return windows_planned_.load() >= n; });
}

void Scheduler::stop() {
  if (!started_ || stopped_) return;
  stopped_ = true;
  timer_.request_stop();
  heap_cv_.notify_all();
  if (timer_.joinable()) timer_.join();
  // Shutdown order: the timer (no new slot), then the workers finish what is queued (records
  // handed to the commit batcher meanwhile come back to no worker: the batcher's answering thread
  // runs the rest of their slot), then every slot handed to the batcher has finished.
  pool_->stop();
  {
    std::unique_lock lock(slots_mu_);
    slots_cv_.wait(lock, [&] { return slots_in_flight_.load() == 0; });
  }
  const WallTime now = clock_.now();
  std::map<ExecutionId, std::shared_ptr<ExecState>> live;
  {
    std::lock_guard lock(mu_);
    live.swap(live_);
  }
  for (auto& [id, exec] : live) {
    // Replicas: another replica goes on with the window (or a restart's recovery closes it).
    if (options_.ownership) break;
    bool interrupted;
    {
      std::lock_guard lock(exec->mu);
      interrupted = exec->started && !exec->finished;
    }
    if (!interrupted) continue;
    Status st = store_.set_execution_state(id, ExecutionState::kInterrupted, now);
    if (st.ok()) {
      spdlog::info("execution {} interrupted", id);
    } else {
      spdlog::warn("execution {}: could not mark interrupted: {}", id, st);
    }
  }
}

}  // namespace metronome
