// Running a program to completion, bounded in time: what a `command` source (its stdout is the
// value) and an alarm's `command` action (the alarm's JSON on its stdin) both need.
//
// The child is started with posix_spawnp in its own process group, with an empty signal mask and
// the default dispositions of the signals a daemon may ignore (SIG_IGN survives exec). Its stdin
// is `input` written through a socket (a child that exits without reading gives us EPIPE, never a
// SIGPIPE for the whole daemon) or /dev/null; its stdout is captured up to a limit or discarded;
// the first `stderr_kept` bytes of its stderr are kept for error messages. At `until` (monotonic
// time on the given Clock) or when stdout goes over its limit, the whole group is killed with
// SIGKILL (a shell script's children too) and reaped. It is checked every millisecond, sleeping
// on the Clock in between (so a ManualClock drives the time limit in tests).
//
// Thread-safety: run_child() may be called from several threads at once.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "clock/clock.h"
#include "common/result.h"

namespace metronome {

struct ChildSpec {
  std::vector<std::string> argv;          // argv[0] is looked up in PATH; must not be empty
  std::optional<std::string_view> input;  // written to stdin, then EOF; nullopt: /dev/null
  std::optional<size_t> stdout_limit;     // bytes captured; nullopt: stdout to /dev/null
  size_t stderr_kept = 4096;
};

struct ChildExit {
  enum class End {
    kExited,         // it ended by itself (wait_status says how)
    kTimedOut,       // still running at `until`: killed
    kStdoutTooLong,  // printed more than stdout_limit: killed
  };
  End end = End::kExited;
  int wait_status = 0;
  std::string out;  // at most stdout_limit bytes
  std::string err;  // at most stderr_kept bytes

  // Exited with status 0.
  bool succeeded() const;
  // "exited with status 3", "was killed by signal 9 (SIGKILL)"; plus " (stderr: <first line>)"
  // when it wrote anything there.
  std::string describe() const;
};

// Runs `spec` until it exits, `until` passes or its stdout is over the limit. An error only when
// it could not be started (InvalidArgument naming the reason, e.g. "cannot start: No such file or
// directory") or the system refused a pipe/socket (Unavailable).
Result<ChildExit> run_child(const ChildSpec& spec, MonoTime until, Clock& clock);

}  // namespace metronome
