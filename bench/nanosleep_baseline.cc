// nanosleep_baseline: the machine's floor for waking on the beat, to read lateness against.
//
// A bare loop of clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME) to the next multiple of the
// interval (aligned to the Unix epoch, as slots are), N times; lateness = clock_gettime after the
// wake-up − the boundary. No Metronome code on the path. Prints one JSON object in the shape of
// `lateness` (fire_lateness_us, early_fires).
//
//   nanosleep_baseline [--wakeups N=1000] [--interval-ms I=100] [--load] [--fifo] [--mlock]
//                      [--slack-ns S (default: the kernel's, 50 µs; Metronome sets 1)]
#include <sys/prctl.h>
#include <time.h>

#include "bench_util.h"

namespace metronome::bench {
namespace {

int64_t realtime_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

int run(int argc, char** argv) {
  Flags flags(argc, argv);
  const int64_t wakeups = flags.get_int("wakeups", 1000);
  const int64_t interval_ms = flags.get_int("interval-ms", 100);
  const bool load = flags.get_bool("load");
  const bool fifo = flags.get_bool("fifo");
  const bool mlock = flags.get_bool("mlock");
  const int64_t slack_ns = flags.get_int("slack-ns", -1);
  flags.finish();
  if (wakeups < 1 || interval_ms < 1) die("values must be positive");

  const std::string machine = machine_json();
  BusyLoad busy(load);
  const std::string priority = make_realtime(fifo, mlock);
  if (slack_ns > 0) prctl(PR_SET_TIMERSLACK, static_cast<unsigned long>(slack_ns), 0, 0, 0);
  const long slack = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);

  const int64_t step = interval_ms * 1'000'000;
  std::vector<double> late;
  late.reserve(static_cast<size_t>(wakeups));
  int64_t early = 0;
  int64_t boundary = (realtime_ns() / step + 1) * step;
  for (int64_t i = 0; i < wakeups; ++i, boundary += step) {
    timespec ts{static_cast<time_t>(boundary / 1'000'000'000), boundary % 1'000'000'000};
    while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
    }
    const int64_t d = realtime_ns() - boundary;
    if (d < 0) ++early;
    late.push_back(static_cast<double>(d) / 1000.0);
  }

  fmt::print(R"({{"bench":"nanosleep_baseline","wakeups":{},"interval_ms":{},"load":{},)"
             R"("load_threads":{},"priority":"{}","timer_slack_ns":{},"machine":{},)"
             R"("loadavg_at_end":"{}","early_fires":{},"fire_lateness_us":{}}})"
             "\n",
             wakeups, interval_ms, load, busy.threads(), json_escape(priority), slack, machine,
             loadavg(), early, to_json(summarize(late)));
  return 0;
}

}  // namespace
}  // namespace metronome::bench

int main(int argc, char** argv) {
  return metronome::bench::run(argc, argv);
}
