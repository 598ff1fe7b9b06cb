// The daemon: the one place that wires the modules together for `metronome run`.
//
// Construction order (and the reverse on shutdown): store → secrets → feeds → DLQ → publisher →
// alarms → scheduler. Shutdown (SIGTERM/SIGINT): the scheduler stops firing, lets the slots in
// flight finish within their deadlines and marks running executions interrupted; then the alarm
// manager runs a last evaluation and stops; the store closes last.
#pragma once

#include <memory>
#include <stop_token>

#include "clock/clock.h"
#include "common/result.h"
#include "config/config.h"

namespace metronome {

class Daemon {
 public:
  // Opens the store, checks every secret and source; errors name what was wrong.
  // Status codes: InvalidArgument / PermissionDenied / NotFound for configuration problems
  // (exit 2), others for runtime failures (exit 1).
  static Result<std::unique_ptr<Daemon>> create(const Config& config, Clock& clock);
  ~Daemon();

  // Recovers, starts publishing, and blocks until `stop` is requested; then shuts down.
  Status run(std::stop_token stop);

  // Re-reads the config file (SIGHUP): feeds added, removed or changed take effect at their next
  // window. An invalid config is refused with its error and the running one is kept.
  // REQUIRES: run() has started the scheduler; called from one thread at a time.
  Status reload();

 private:
  struct Parts;
  explicit Daemon(std::unique_ptr<Parts> parts);
  std::unique_ptr<Parts> parts_;
};

// Caps glibc's malloc arenas at 2 for the process. A boundary of many feeds allocates each
// record on one of many worker threads and frees it on the commit batcher's answering thread; with
// an arena per thread (glibc's default allows 8 per core) the freed memory stayed spread over them:
// the 10,000-feed benchmark's peak RSS went from 156 to 127 MB with the cap, and its CPU did not
// rise. Called by `metronome run` before any thread starts (and by bench/scale, which runs the
// same slot path).
void limit_malloc_arenas();

// Creates the default secret file when the built-in default config is used and it is missing.
Status ensure_default_secret(const Config& config);

}  // namespace metronome
