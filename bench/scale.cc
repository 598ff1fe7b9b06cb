// scale: K feeds, all every 2 s, through the real slot path, for S seconds (issue 5).
//
// SystemClock → Scheduler → Publisher (random_int, signed with one generated key) → SqliteStore
// (WAL, synchronous=FULL) in a temp dir: what `metronome run` does with K feeds, without the
// HTTP API. After S seconds it reads the slot outcomes back from the store and prints one JSON
// object: slots due, published / failed / missed / skipped, backlog (due but without an outcome
// yet), publish latency (durable commit end − slot, noted by TimingStore) overall and at each
// boundary, CPU seconds (getrusage, start-up included and excluded), peak RSS (ru_maxrss).
// S counts from the end of Scheduler::start(); start_s says how long start() took.
//
//   scale [--feeds K=1000] [--seconds S=60] [--interval-ms I=2000] [--workers W=0]
//         [--presign N=0] [--sign-batch B=1] [--realtime] [--log-level warn] [--drain] [--keep]
//
// --presign N: as `[service] presign = N` (sign/presign.h): N presignatures kept ready by an
// idle-priority thread. The JSON then says how many signatures used one ("taken") and how many
// found the pool empty and signed the usual way ("missed").
//
// --sign-batch B: as `[service] sign_batch = B` (ADR 0018): up to B records that a worker
// publishes in a row share one signature over their Merkle root. To show the records are right,
// the JSON's "verified" counts the records of the first boundary, up to 1,000, that
// verify_record() accepts.
//
// --realtime: as `[service] realtime = true` (SCHED_FIFO for the timer, workers and commit
// threads; needs CAP_SYS_NICE, else one warning and normal priority).
//
// By default the process exits right after printing, without Scheduler::stop(): with a backlog,
// stop() would publish every queued slot first (late), which can take minutes. --drain stops
// cleanly and reports how long that took.
#include <algorithm>
#include <map>

#include "app/daemon.h"
#include "bench_util.h"
#include "clock/system_clock.h"
#include "dlq/dead_letter_queue.h"
#include "publish/publisher.h"
#include "sign/presign.h"
#include "sign/signer.h"
#include "source/random_int_source.h"
#include "store/sqlite_store.h"
#include "workflow/scheduler.h"

namespace metronome::bench {
namespace {

int run(int argc, char** argv) {
  Flags flags(argc, argv);
  const int64_t feeds = flags.get_int("feeds", 1000);
  const int64_t seconds = flags.get_int("seconds", 60);
  const int64_t interval_ms = flags.get_int("interval-ms", 2000);
  const int64_t workers = flags.get_int("workers", 0);
  const int64_t presign = flags.get_int("presign", 0);
  const int64_t sign_batch = flags.get_int("sign-batch", 1);
  const std::string log_level = flags.get_string("log-level", "warn");
  const bool drain = flags.get_bool("drain");
  const bool realtime = flags.get_bool("realtime");
  const bool keep = flags.get_bool("keep");
  flags.finish();
  if (feeds < 1 || seconds < 1 || interval_ms < 1 || workers < 0 || presign < 0) {
    die("values must be positive");
  }
  if (sign_batch < 1 || sign_batch > 64) die("--sign-batch must be between 1 and 64");
  quiet_logs(log_level);
  limit_malloc_arenas();             // as `metronome run` does
  (void)configure_sqlite_process();  // as `metronome run` does

  const std::string machine = machine_json();
  TempDir dir("metronome-scale");
  if (keep) dir.keep();
  const SecretName key_name("oracle_key");
  SecretRegistry secrets = make_key_registry(dir.path(), key_name);

  SqliteStoreOptions store_options;
  store_options.path = dir.path() / "metronome.db";
  store_options.dlq_path = dir.path() / "metronome.dlq.db";
  store_options.busy_timeout = std::chrono::milliseconds(250);  // as the daemon sets it
  store_options.cache_kib = sqlite_cache_kib_for(static_cast<size_t>(feeds));
  auto sqlite = value_or_die(SqliteStore::open(store_options), "opening SQLite");

  SystemClock clock;
  TimingStore store(*sqlite, clock);
  DeadLetterQueue dlq(store, clock);
  Publisher publisher(store, dlq, clock);

  std::shared_ptr<PresignPool> pool;
  if (presign > 0) {
    pool = value_or_die(
        PresignPool::Create(PresignPool::Options{.capacity = static_cast<size_t>(presign)}),
        "presignature pool");
  }

  const Millis interval(interval_ms);
  std::vector<std::unique_ptr<FeedRuntime>> runtimes;
  std::vector<const FeedRuntime*> feed_ptrs;
  for (int64_t k = 0; k < feeds; ++k) {
    auto rt = std::make_unique<FeedRuntime>();
    rt->id = FeedId(fmt::format("feed_{:06}", k));
    rt->schedule = Schedule::every(interval);
    rt->window = Millis(60'000);
    rt->source = std::make_unique<RandomIntSource>(0, 1000);
    rt->signer =
        value_or_die(FeedSigner::create(rt->id, key_name, secrets, 1, pool), "feed signer");
    rt->batch_signatures = sign_batch > 1;
    feed_ptrs.push_back(rt.get());
    runtimes.push_back(std::move(rt));
  }
  const size_t expected_records =
      static_cast<size_t>(feeds) * static_cast<size_t>(seconds * 1000 / interval_ms + 2);
  store.reserve(expected_records);
  const size_t bookkeeping_bytes = expected_records * sizeof(TimingStore::Commit);
  const long rss_before_start_kb = current_rss_kb();

  SchedulerOptions options;
  options.workers = static_cast<size_t>(workers);
  options.realtime = realtime;
  options.presign = pool;  // as the daemon does
  options.sign_batch = static_cast<size_t>(sign_batch);
  Scheduler scheduler(clock, store, dlq, publisher, feed_ptrs, options);
  const auto usage0 = cpu_usage();
  const WallTime start_wall = clock.now();
  const MonoTime t0 = clock.monotonic_now();
  ok_or_die(scheduler.start(), "starting the scheduler");
  const MonoTime t_started = clock.monotonic_now();
  const auto usage_started = cpu_usage();
  // S seconds of running after start(), whose own time (recovery and planning every feed's
  // first window, one transaction each) is reported as start_s.
  (void)clock.sleep_for(std::chrono::seconds(seconds), std::stop_token());
  const WallTime end_wall = clock.now();
  const MonoTime t_end = clock.monotonic_now();
  const auto usage1 = cpu_usage();
  const uint64_t handled = scheduler.outcomes_handled();
  auto commits = store.take_commits();

  // Slots due in (start_wall, end_wall]: every feed shares the boundaries.
  const int64_t first_boundary =
      (start_wall.time_since_epoch().count() / 1'000'000 / interval_ms + 1) * interval_ms;
  const int64_t end_ms = end_wall.time_since_epoch().count() / 1'000'000;
  const int64_t boundaries =
      end_ms >= first_boundary ? (end_ms - first_boundary) / interval_ms + 1 : 0;
  const int64_t due = boundaries * feeds;

  std::map<std::string, int64_t> outcomes;
  for (SlotOutcome o : {SlotOutcome::kPublished, SlotOutcome::kFailed, SlotOutcome::kMissed,
                        SlotOutcome::kSkipped}) {
    outcomes[std::string(to_string(o))] =
        value_or_die(store.count_outcomes(o, slot_from_unix_ms(0)), "counting outcomes");
  }
  int64_t with_outcome = 0;
  for (const auto& [name, n] : outcomes) with_outcome += n;

  std::vector<double> all;
  std::map<SlotTime, std::vector<double>> by_boundary;
  all.reserve(commits.size());
  for (const auto& c : commits) {
    const double us = micros(c.committed - WallTime(c.slot));
    all.push_back(us);
    by_boundary[c.slot].push_back(us);
  }
  std::string per_boundary;
  for (auto& [slot, v] : by_boundary) {
    Summary s = summarize(std::move(v));
    if (!per_boundary.empty()) per_boundary += ",";
    per_boundary +=
        fmt::format(R"({{"slot":"{}","published":{},"p50_ms":{:.1f},)"
                    R"("p99_ms":{:.1f},"max_ms":{:.1f}}})",
                    format_iso_ms(slot), s.count, s.p50 / 1000, s.p99 / 1000, s.max / 1000);
  }
  Summary lat = summarize(std::move(all));

  // The first boundary's records, read back and checked as a client would.
  int64_t checked = 0, verified = 0;
  if (!by_boundary.empty()) {
    const SlotTime first = by_boundary.begin()->first;
    const ObservationDomain domain(1);
    for (const auto& rt : runtimes) {
      if (checked == 1000) break;
      auto stored = sqlite->get_value(rt->id, first);
      if (!stored.ok() || !stored->has_value()) continue;
      ++checked;
      verified += verify_record(**stored, domain).ok();
    }
  }

  const double wall_s = micros(t_end - t0) / 1e6;
  const double run_s = micros(t_end - t_started) / 1e6;
  const double cpu_total = (usage1.user_s + usage1.sys_s) - (usage0.user_s + usage0.sys_s);
  const double cpu_run =
      (usage1.user_s + usage1.sys_s) - (usage_started.user_s + usage_started.sys_s);
  std::string outcome_json;
  for (const char* name : {"published", "failed", "missed", "skipped"}) {
    if (!outcome_json.empty()) outcome_json += ",";
    outcome_json += fmt::format(R"("{}":{})", name, outcomes[name]);
  }

  std::string drain_json;
  if (drain) {
    const MonoTime d0 = clock.monotonic_now();
    scheduler.stop();
    drain_json = fmt::format(R"(,"drain_s":{:.2f})", micros(clock.monotonic_now() - d0) / 1e6);
  }

  fmt::print(
      R"({{"bench":"scale","feeds":{},"seconds":{},"interval_ms":{},"workers":{},"realtime":{},)"
      R"("machine":{},"loadavg_at_end":"{}","start_s":{:.2f},"wall_s":{:.2f},)"
      R"("boundaries":{},"slots_due":{},"outcomes":{{{}}},"slots_with_outcome":{},)"
      R"("backlog":{},"outcomes_handled":{},"commit_calls":{},)"
      R"("publish_latency_us":{},"publish_latency_basis":"durable commit end (commit_slots returned) - slot",)"
      R"("cpu_s":{{"total":{:.2f},"user":{:.2f},"sys":{:.2f},"after_start":{:.2f}}},)"
      R"("cpu_percent_of_one_core":{{"total":{:.1f},"after_start":{:.1f}}},)"
      R"("peak_rss_kb":{},"rss_before_start_kb":{},"bench_bookkeeping_kb":{},)"
      R"("presign":{{"capacity":{},"taken":{},"missed":{}}},"sign_batch":{},)"
      R"("verified":{{"checked":{},"ok":{}}},"per_boundary":[{}]{}}})"
      "\n",
      feeds, seconds, interval_ms,
      workers == 0 ? std::clamp<size_t>(static_cast<size_t>(feeds),
                                        std::max<size_t>(2, std::thread::hardware_concurrency()),
                                        SchedulerOptions::kMaxWorkers)
                   : static_cast<size_t>(workers),
      realtime, machine, loadavg(), micros(t_started - t0) / 1e6, wall_s, boundaries, due,
      outcome_json, with_outcome, due - with_outcome, handled, store.commit_calls(), to_json(lat),
      cpu_total, usage1.user_s - usage0.user_s, usage1.sys_s - usage0.sys_s, cpu_run,
      100 * cpu_total / wall_s, 100 * cpu_run / run_s, usage1.max_rss_kb, rss_before_start_kb,
      bookkeeping_bytes / 1024, presign, pool ? pool->taken() : 0, pool ? pool->missed() : 0,
      sign_batch, checked, verified, per_boundary, drain_json);
  std::fflush(stdout);
  if (!drain) {
    // See the header: do not publish the backlog late on the way out. The files are unlinked
    // under the open connections, which Linux allows.
    std::error_code ec;
    if (!keep) std::filesystem::remove_all(dir.path(), ec);
    std::_Exit(0);
  }
  return 0;
}

}  // namespace
}  // namespace metronome::bench

int main(int argc, char** argv) {
  return metronome::bench::run(argc, argv);
}
