#include "source/command_source.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/decimal.h"
#include "source/value_text.h"

extern char** environ;

namespace metronome {
namespace {

constexpr size_t kStderrKept = 4096;
// How often a child whose output is closed is checked for its exit.
constexpr Millis kPollStep{5};

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  [[nodiscard]] int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

std::string describe_exit(int wait_status) {
  if (WIFEXITED(wait_status)) return fmt::format("exited with status {}", WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status)) {
    const char* name = sigabbrev_np(WTERMSIG(wait_status));
    return fmt::format("was killed by signal {} (SIG{})", WTERMSIG(wait_status), name ? name : "?");
  }
  return fmt::format("ended with wait status {}", wait_status);
}

// Reads what is there without blocking, up to `limit` bytes kept; true at EOF (or an error).
bool drain(int fd, std::string& kept, size_t limit, bool& over) {
  char buffer[8192];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n > 0) {
      size_t room = limit - std::min(limit, kept.size());
      if (static_cast<size_t>(n) > room) over = true;
      kept.append(buffer, std::min(room, static_cast<size_t>(n)));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
    return true;
  }
}

void kill_and_reap(pid_t pid) {
  ::kill(-pid, SIGKILL);  // the whole group: a script's children too
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

}  // namespace

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

  int out_fds[2];
  int err_fds[2];
  if (::pipe2(out_fds, O_CLOEXEC) != 0) {
    return Status::Unavailable(fmt::format("pipe: {}", std::strerror(errno)));
  }
  Fd out_ours(out_fds[0]), out_child(out_fds[1]);
  if (::pipe2(err_fds, O_CLOEXEC) != 0) {
    return Status::Unavailable(fmt::format("pipe: {}", std::strerror(errno)));
  }
  Fd err_ours(err_fds[0]), err_child(err_fds[1]);
  ::fcntl(out_ours.get(), F_SETFL, O_NONBLOCK);
  ::fcntl(err_ours.get(), F_SETFL, O_NONBLOCK);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_child.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_child.get(), STDERR_FILENO);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigset_t defaults;  // SIG_IGN survives exec: give the child the defaults
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2, SIGALRM}) {
    sigaddset(&defaults, sig);
  }
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  std::vector<char*> args;
  for (const std::string& arg : argv_) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, argv_[0].c_str(), &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  out_child.reset();
  err_child.reset();
  if (rc != 0) return Status::InvalidArgument(fmt::format("cannot start: {}", std::strerror(rc)));

  std::string out, err;
  bool out_over = false, err_over = false;
  bool out_eof = false, err_eof = false;
  int wait_status = 0;
  for (;;) {
    if (!out_eof) out_eof = drain(out_ours.get(), out, kMaxOutputBytes, out_over);
    if (!err_eof) err_eof = drain(err_ours.get(), err, kStderrKept, err_over);
    if (out_over) {
      kill_and_reap(pid);
      return Status::InvalidArgument(fmt::format("printed more than {} KiB on stdout (starts '{}')",
                                                 kMaxOutputBytes / 1024,
                                                 truncate_for_message(out)));
    }
    if (out_eof && err_eof) {
      pid_t r = ::waitpid(pid, &wait_status, WNOHANG);
      if (r == pid) break;
      if (r < 0 && errno != EINTR) {
        kill_and_reap(pid);
        return Status::Internal(fmt::format("waitpid: {}", std::strerror(errno)));
      }
    }
    const WallTime now = clock_.now();
    if (now >= end) {
      kill_and_reap(pid);
      if (bounded_by_deadline) {
        return Status::DeadlineExceeded(
            fmt::format("still running at the slot's deadline, after {}; killed (SIGKILL)",
                        format_duration(std::chrono::duration_cast<Millis>(now - start))));
      }
      return Status::Unavailable(fmt::format(
          "still running after its timeout of {}; killed (SIGKILL)", format_duration(*timeout_)));
    }
    Nanos wait = end - now;
    if (out_eof && err_eof) wait = std::min<Nanos>(wait, kPollStep);
    pollfd fds[2] = {{out_eof ? -1 : out_ours.get(), POLLIN, 0},
                     {err_eof ? -1 : err_ours.get(), POLLIN, 0}};
    auto ms = std::chrono::ceil<Millis>(wait).count();
    ::poll(fds, 2, static_cast<int>(std::max<int64_t>(1, ms)));
  }

  if (!(WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0)) {
    std::string message = describe_exit(wait_status);
    std::string_view first = trim_ascii(err);
    first = first.substr(0, first.find('\n'));
    if (!first.empty()) message += fmt::format(" (stderr: {})", truncate_for_message(first, 200));
    return Status::Unavailable(std::move(message));
  }
  METRONOME_ASSIGN_OR_RETURN(std::string value, exact_value_text(trim_ascii(out), decimals_));
  return SourceValue{std::move(value)};
}

std::string CommandSource::describe() const {
  return fmt::format("command {}", argv_[0]);
}

}  // namespace metronome
