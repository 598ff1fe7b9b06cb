// group_commit: what one durable SQLite transaction costs, by the number of signed records it
// holds. The evidence behind the group-commit proposal in docs/performance.md: today every slot
// is its own transaction (Publisher::publish_slot → commit_slots of one record), so the store's
// throughput is bounded by the fsync rate of the disk.
//
// SqliteStore (WAL, synchronous=FULL) in a temp dir; for each batch size B, commits `records`
// signed random_int records (distinct feeds, one slot) in batches of B through commit_slots() —
// exactly the statements the daemon runs — and reports the batch latency and records per second.
//
// --boundaries K repeats that K times, each at the next 2 s slot of the same feeds, so that the
// figure is the steady state of a growing file (the daemon's case) rather than a fresh one.
//
//   group_commit [--records N=2000] [--batches 1,10,100,1000,10000] [--boundaries K=1]
#include <sstream>

#include "bench_util.h"
#include "clock/system_clock.h"
#include "sign/eip712.h"
#include "sign/signer.h"
#include "store/sqlite_store.h"

namespace metronome::bench {
namespace {

int run(int argc, char** argv) {
  Flags flags(argc, argv);
  const int64_t records = flags.get_int("records", 2000);
  const std::string batch_list = flags.get_string("batches", "1,10,100,1000,10000");
  const int64_t boundaries = flags.get_int("boundaries", 1);
  flags.finish();
  quiet_logs("warn");
  (void)configure_sqlite_process();  // as `metronome run` does
  std::vector<int64_t> batches;
  {
    std::stringstream ss(batch_list);
    for (std::string item; std::getline(ss, item, ',');) batches.push_back(std::stoll(item));
  }

  const std::string machine = machine_json();
  TempDir dir("metronome-group-commit");
  SqliteStoreOptions store_options;
  store_options.path = dir.path() / "metronome.db";
  store_options.dlq_path = dir.path() / "metronome.dlq.db";
  auto store = value_or_die(SqliteStore::open(store_options), "opening SQLite");
  SystemClock clock;

  auto key = value_or_die(
      SigningKey::FromHex(SecretName("k"), value_or_die(generate_signing_key_hex(), "key")), "key");
  auto signer = value_or_die(Signer::Create(std::move(key)), "signer");
  ObservationDomain domain(1);

  std::string rows;
  int64_t slot_ms = 1'800'000'000'000;
  for (int64_t b : batches) {
    if (b < 1) die("batch sizes must be positive");
    if (boundaries < 1) die("--boundaries must be positive");
    std::vector<double> latency_us;
    double secs = 0;
    int64_t committed = 0;
    for (int64_t k = 0; k < boundaries; ++k) {
      slot_ms += 2000;
      std::vector<SlotCommit> all;
      all.reserve(static_cast<size_t>(std::max(records, b)));
      const int64_t n = std::max(records, b);
      for (int64_t i = 0; i < n; ++i) {
        ValueRecord r;
        r.feed = FeedId(fmt::format("feed_{:06}", i));
        r.slot = slot_from_unix_ms(slot_ms);
        r.round = slot_ms / 2000;
        r.value = std::to_string(i % 1001);
        r.execution = make_execution_id(r.feed, slot_from_unix_ms(slot_ms / 60000 * 60000));
        r.observed_at = r.published_at = clock.now();
        ok_or_die(signer.sign_record(r, domain), "signing");
        SlotRecord s;
        s.slot = r.slot;
        s.outcome = SlotOutcome::kPublished;
        s.fired_at = clock.now();
        s.lateness_us = 0;
        s.attempts = 1;
        all.push_back(SlotCommit{r.execution, r.feed, s, std::move(r)});
      }
      const MonoTime t0 = clock.monotonic_now();
      for (int64_t i = 0; i < n; i += b) {
        const size_t len = static_cast<size_t>(std::min(b, n - i));
        const MonoTime c0 = clock.monotonic_now();
        auto r = store->commit_slots(std::span<const SlotCommit>(all.data() + i, len));
        latency_us.push_back(micros(clock.monotonic_now() - c0));
        if (!r.ok()) die(r.status().ToString());
      }
      secs += micros(clock.monotonic_now() - t0) / 1e6;
      committed += n;
    }
    if (!rows.empty()) rows += ",";
    rows += fmt::format(R"({{"batch":{},"records":{},"seconds":{:.3f},"records_per_s":{:.0f},)"
                        R"("commit_latency_us":{}}})",
                        b, committed, secs, static_cast<double>(committed) / secs,
                        to_json(summarize(std::move(latency_us))));
  }
  fmt::print(R"({{"bench":"group_commit","machine":{},"loadavg_at_end":"{}","runs":[{}]}})"
             "\n",
             machine, loadavg(), rows);
  return 0;
}

}  // namespace
}  // namespace metronome::bench

int main(int argc, char** argv) {
  return metronome::bench::run(argc, argv);
}
