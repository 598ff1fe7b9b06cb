#include "source/command_source.h"

#include <fmt/format.h>

#include "common/decimal.h"
#include "process/child.h"
#include "source/value_text.h"

namespace metronome {

CommandSource::CommandSource(std::vector<std::string> argv, std::optional<Millis> timeout,
                             int decimals, Clock& clock)
    : argv_(std::move(argv)), timeout_(timeout), decimals_(decimals), clock_(clock) {}

Result<SourceValue> CommandSource::observe(const ObserveContext& ctx) {
  const WallTime start = clock_.now();
  if (start >= ctx.deadline) {
    return Status::DeadlineExceeded("no time left before the slot's deadline");
  }
  const bool bounded_by_deadline = !timeout_ || start + *timeout_ >= ctx.deadline;
  const WallTime end = bounded_by_deadline ? ctx.deadline : start + *timeout_;

  ChildSpec spec;
  spec.argv = argv_;
  spec.stdout_limit = kMaxOutputBytes;
  METRONOME_ASSIGN_OR_RETURN(ChildExit exit,
                             run_child(spec, clock_.monotonic_now() + (end - start), clock_));
  switch (exit.end) {
    case ChildExit::End::kStdoutTooLong:
      return Status::InvalidArgument(fmt::format("printed more than {} KiB on stdout (starts '{}')",
                                                 kMaxOutputBytes / 1024,
                                                 truncate_for_message(exit.out)));
    case ChildExit::End::kTimedOut:
      if (bounded_by_deadline) {
        return Status::DeadlineExceeded(
            fmt::format("still running at the slot's deadline, after {}; killed (SIGKILL)",
                        format_duration(std::chrono::duration_cast<Millis>(clock_.now() - start))));
      }
      return Status::Unavailable(fmt::format(
          "still running after its timeout of {}; killed (SIGKILL)", format_duration(*timeout_)));
    case ChildExit::End::kExited:
      break;
  }
  if (!exit.succeeded()) return Status::Unavailable(exit.describe());
  METRONOME_ASSIGN_OR_RETURN(std::string value, exact_value_text(trim_ascii(exit.out), decimals_));
  return SourceValue{std::move(value)};
}

std::string CommandSource::describe() const {
  return fmt::format("command {}", argv_[0]);
}

}  // namespace metronome
