// lateness: how close to the beat the real slot path fires and publishes (issue 5).
//
// SystemClock → Scheduler (timer thread + worker pool) → Publisher (random_int, EIP-712 signature
// with a freshly generated key) → SqliteStore (WAL, synchronous=FULL) in a temp dir, K feeds at
// interval I, until N slots per feed have an outcome. Then it reads the executions and values back
// from the store and prints one JSON object:
//   fire_lateness_us    fired_at − slot, from the stored fired_at_ns (task start on the worker;
//                       the stored lateness_us is clamped at 0, so early fires are counted from
//                       fired_at itself)
//   publish_latency_us  durable commit end − slot (TimingStore notes when commit_slots returned)
//   published_at_latency_us  values.published_at − slot (when the commit started)
//   commit_us           durable commit end − published_at (the SQLite transaction + fsync)
//
//   lateness [--slots N=1000] [--interval-ms I=100] [--feeds K=1] [--load] [--realtime]
//            [--fifo] [--mlock]
//            [--workers W=0 (one per core, at least 2)] [--log-level warn] [--keep]
//
// --load spins one thread per core at normal priority meanwhile. --fifo runs every Metronome
// thread (timer and workers; the load threads stay SCHED_OTHER) at SCHED_FIFO 10, --mlock locks
// memory (the approximation used before the daemon had it). --realtime is the daemon's own
// `[service] realtime = true`: SchedulerOptions::realtime (timer SCHED_FIFO 50, workers 40) and
// mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT).
#include <algorithm>
#include <map>

#include "bench_util.h"
#include "clock/system_clock.h"
#include "dlq/dead_letter_queue.h"
#include "publish/publisher.h"
#include "source/random_int_source.h"
#include "store/sqlite_store.h"
#include "workflow/scheduler.h"

namespace metronome::bench {
namespace {

int run(int argc, char** argv) {
  Flags flags(argc, argv);
  const int64_t slots = flags.get_int("slots", 1000);
  const int64_t interval_ms = flags.get_int("interval-ms", 100);
  const int64_t feeds = flags.get_int("feeds", 1);
  const bool load = flags.get_bool("load");
  const bool fifo = flags.get_bool("fifo");
  const bool mlock = flags.get_bool("mlock");
  const bool realtime = flags.get_bool("realtime");
  const int64_t workers = flags.get_int("workers", 0);
  const std::string log_level = flags.get_string("log-level", "warn");
  const bool keep = flags.get_bool("keep");
  flags.finish();
  if (slots < 1 || interval_ms < 1 || feeds < 1 || workers < 0) die("values must be positive");
  quiet_logs(log_level);
  (void)configure_sqlite_process();  // as `metronome run` does

  const std::string machine = machine_json();
  TempDir dir("metronome-lateness");
  if (keep) dir.keep();
  const SecretName key_name("oracle_key");
  SecretRegistry secrets = make_key_registry(dir.path(), key_name);

  SqliteStoreOptions store_options;
  store_options.path = dir.path() / "metronome.db";
  store_options.dlq_path = dir.path() / "metronome.dlq.db";
  store_options.busy_timeout = std::chrono::milliseconds(250);  // as the daemon sets it
  auto sqlite = value_or_die(SqliteStore::open(store_options), "opening SQLite");

  SystemClock clock;
  TimingStore store(*sqlite, clock);
  DeadLetterQueue dlq(store, clock);
  Publisher publisher(store, dlq, clock);

  // A window of 600 slots (one minute at 100 ms) unless that does not divide evenly.
  const Millis interval(interval_ms);
  Millis window(60'000);
  if (window.count() % interval_ms != 0) window = interval * 600;
  std::vector<std::unique_ptr<FeedRuntime>> runtimes;
  std::vector<const FeedRuntime*> feed_ptrs;
  for (int64_t k = 0; k < feeds; ++k) {
    auto rt = std::make_unique<FeedRuntime>();
    rt->id = FeedId(feeds == 1 ? std::string("random_int") : fmt::format("random_int_{}", k));
    rt->schedule = Schedule::every(interval);
    rt->window = window;
    rt->source = std::make_unique<RandomIntSource>(0, 1000);
    rt->signer = value_or_die(FeedSigner::create(rt->id, key_name, secrets, 1), "feed signer");
    feed_ptrs.push_back(rt.get());
    runtimes.push_back(std::move(rt));
  }
  store.reserve(static_cast<size_t>(slots * feeds) + 1024);

  BusyLoad busy(load);
  // After the load threads exist, so only Metronome's threads inherit the priority.
  std::string priority = make_realtime(fifo, mlock);
  if (realtime) {
    priority = mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) == 0
                   ? "[service] realtime (timer FIFO 50, workers FIFO 40, mlockall onfault)"
                   : fmt::format("[service] realtime; mlockall refused: {}", std::strerror(errno));
  }

  SchedulerOptions options;
  options.workers = static_cast<size_t>(workers);
  options.realtime = realtime;
  Scheduler scheduler(clock, store, dlq, publisher, feed_ptrs, options);
  const auto usage0 = cpu_usage();
  const MonoTime t0 = clock.monotonic_now();
  ok_or_die(scheduler.start(), "starting the scheduler");
  const uint64_t want = static_cast<uint64_t>(slots * feeds);
  const auto timeout = std::chrono::milliseconds(slots * interval_ms * 2 + 30'000);
  const bool reached = scheduler.wait_for_outcomes(want, timeout);
  scheduler.stop();
  const double wall_s = micros(clock.monotonic_now() - t0) / 1e6;
  const auto usage1 = cpu_usage();

  // Read back what the store holds.
  std::vector<double> fire, published_at, commit_end, commit_us;
  std::map<std::string, int64_t> outcomes;
  int64_t early = 0;
  std::map<std::pair<std::string, int64_t>, WallTime> published_at_of;  // (feed, slot_ms)
  std::vector<std::pair<std::string, SlotTime>> order;
  for (const auto* rt : feed_ptrs) {
    ExecutionQuery q;
    q.feed = rt->id;
    q.limit = 1'000'000;
    auto executions = value_or_die(store.list_executions(q), "reading executions");
    for (const auto& e : executions) {
      for (const auto& s : e.slots) {
        if (s.outcome == SlotOutcome::kPlanned) continue;
        ++outcomes[std::string(to_string(s.outcome))];
        if (!s.fired_at) continue;
        const Nanos late = *s.fired_at - WallTime(s.slot);
        if (late < Nanos(0)) ++early;
        fire.push_back(micros(late));
      }
    }
    ValueQuery vq;
    vq.feed = rt->id;
    vq.limit = 1'000'000;
    auto values = value_or_die(store.list_values(vq), "reading values");
    for (const auto& v : values) {
      published_at.push_back(micros(v.published_at - WallTime(v.slot)));
      published_at_of[{rt->id.str(), to_unix_ms(v.slot)}] = v.published_at;
    }
  }
  // Commit ends: the TimingStore notes (slot, end) per record; match by slot (and feed when
  // there is one feed per slot time; with several feeds, every record of a slot time shares the
  // slot, so commit_us is matched only for one feed).
  for (const auto& c : store.take_commits()) {
    commit_end.push_back(micros(c.committed - WallTime(c.slot)));
    if (feeds == 1) {
      auto it = published_at_of.find({"random_int", to_unix_ms(c.slot)});
      if (it != published_at_of.end()) commit_us.push_back(micros(c.committed - it->second));
    }
  }

  std::string outcome_json;
  for (const char* name : {"published", "failed", "missed", "skipped"}) {
    if (!outcome_json.empty()) outcome_json += ",";
    outcome_json += fmt::format(R"("{}":{})", name, outcomes[name]);
  }
  fmt::print(
      R"({{"bench":"lateness","slots":{},"interval_ms":{},"feeds":{},"load":{},"load_threads":{},)"
      R"("priority":"{}","workers":{},"reached_all_slots":{},"wall_s":{:.2f},)"
      R"("cpu_s":{:.3f},"max_rss_kb":{},"machine":{},"loadavg_at_end":"{}",)"
      R"("outcomes":{{{}}},"early_fires":{},"fire_lateness_us":{},)"
      R"("publish_latency_us":{},"publish_latency_basis":"{}",)"
      R"("published_at_latency_us":{},"commit_us":{}}})"
      "\n",
      slots, interval_ms, feeds, load, busy.threads(), json_escape(priority),
      workers == 0 ? std::max<size_t>(2, std::thread::hardware_concurrency())
                   : static_cast<size_t>(workers),
      reached, wall_s, (usage1.user_s + usage1.sys_s) - (usage0.user_s + usage0.sys_s),
      usage1.max_rss_kb, machine, loadavg(), outcome_json, early, to_json(summarize(fire)),
      to_json(summarize(commit_end)),
      "durable commit end (SqliteStore::commit_slots returned, noted by the bench's TimingStore) "
      "- slot; published_at_latency_us is values.published_at (commit start) - slot",
      to_json(summarize(published_at)), to_json(summarize(commit_us)));
  return 0;
}

}  // namespace
}  // namespace metronome::bench

int main(int argc, char** argv) {
  return metronome::bench::run(argc, argv);
}
