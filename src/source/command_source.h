// command: runs a program (no shell) and takes its trimmed stdout as the value.
//
// argv[0] is looked up in PATH when it has no '/'. The child gets /dev/null on stdin, its own
// process group, default signal dispositions and an empty signal mask. It must exit 0 within
// min(timeout, the slot's deadline) and print at most kMaxOutputBytes on stdout; otherwise its
// whole process group is killed (SIGKILL) and reaped, and the observation fails.
// Thread-safety: observe() may be called concurrently (each call runs its own child).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "clock/clock.h"
#include "source/source.h"

namespace metronome {

class CommandSource final : public Source {
 public:
  static constexpr size_t kMaxOutputBytes = 64 * 1024;

  // REQUIRES: !argv.empty() and argv[0] is not empty (the config refuses anything else).
  CommandSource(std::vector<std::string> argv, std::optional<Millis> timeout, int decimals,
                Clock& clock);

  // Errors: DeadlineExceeded (still running at the slot's deadline), Unavailable (its own timeout,
  // a non-zero exit or a signal, with the first line of its stderr), InvalidArgument (cannot be
  // started, output over kMaxOutputBytes, or not a usable number).
  Result<SourceValue> observe(const ObserveContext& ctx) override;
  std::string describe() const override;

 private:
  const std::vector<std::string> argv_;
  const std::optional<Millis> timeout_;
  const int decimals_;
  Clock& clock_;
};

}  // namespace metronome
