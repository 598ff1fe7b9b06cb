#include "process/child.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stop_token>

#include "common/decimal.h"

extern char** environ;

namespace metronome {
namespace {

// How often a running child is checked (output, input, exit), sleeping on the Clock in between
// (so a test's ManualClock drives the time limit): a value printed by a `command` source is
// read at most this late.
constexpr Millis kPollStep{1};

// Closes a descriptor once; -1 means closed.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  [[nodiscard]] int get() const { return fd_; }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

// Reads what is there without blocking, keeping up to `limit` bytes (`over` when more came);
// true at EOF or on an error.
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
    return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
  }
}

void kill_and_reap(pid_t pid, int* wait_status) {
  ::kill(-pid, SIGKILL);  // the whole group
  while (::waitpid(pid, wait_status, 0) < 0 && errno == EINTR) {
  }
}

Status system_error(const char* what) {
  return Status::Unavailable(fmt::format("{}: {}", what, std::strerror(errno)));
}

}  // namespace

bool ChildExit::succeeded() const {
  return end == End::kExited && WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0;
}

std::string ChildExit::describe() const {
  std::string text;
  if (WIFEXITED(wait_status)) {
    text = fmt::format("exited with status {}", WEXITSTATUS(wait_status));
  } else if (WIFSIGNALED(wait_status)) {
    const char* name = sigabbrev_np(WTERMSIG(wait_status));
    text = fmt::format("was killed by signal {} (SIG{})", WTERMSIG(wait_status), name ? name : "?");
  } else {
    text = fmt::format("ended with wait status {}", wait_status);
  }
  std::string_view first = err;
  size_t start = first.find_first_not_of(" \t\r\n");
  first = start == std::string_view::npos ? std::string_view() : first.substr(start);
  first = first.substr(0, first.find('\n'));
  while (!first.empty() && (first.back() == '\r' || first.back() == ' ')) first.remove_suffix(1);
  if (!first.empty()) text += fmt::format(" (stderr: {})", truncate_for_message(first, 200));
  return text;
}

Result<ChildExit> run_child(const ChildSpec& spec, MonoTime until, Clock& clock) {
  if (spec.argv.empty() || spec.argv[0].empty()) {
    return Status::InvalidArgument("cannot start: empty argv");
  }
  Fd in_ours, in_child, out_ours, out_child, err_ours, err_child;
  if (spec.input) {
    int sockets[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sockets) != 0) {
      return system_error("socketpair");
    }
    in_ours.reset(sockets[0]);
    in_child.reset(sockets[1]);
    ::shutdown(in_ours.get(), SHUT_RD);
    ::fcntl(in_ours.get(), F_SETFL, O_NONBLOCK);
  }
  int fds[2];
  if (spec.stdout_limit) {
    if (::pipe2(fds, O_CLOEXEC) != 0) return system_error("pipe");
    out_ours.reset(fds[0]);
    out_child.reset(fds[1]);
    ::fcntl(out_ours.get(), F_SETFL, O_NONBLOCK);
  }
  if (::pipe2(fds, O_CLOEXEC) != 0) return system_error("pipe");
  err_ours.reset(fds[0]);
  err_child.reset(fds[1]);
  ::fcntl(err_ours.get(), F_SETFL, O_NONBLOCK);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  // Every descriptor made here is O_CLOEXEC; dup2 onto 0..2 clears that for the child's copies.
  if (spec.input) {
    posix_spawn_file_actions_adddup2(&actions, in_child.get(), STDIN_FILENO);
  } else {
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  }
  if (spec.stdout_limit) {
    posix_spawn_file_actions_adddup2(&actions, out_child.get(), STDOUT_FILENO);
  } else {
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  }
  posix_spawn_file_actions_adddup2(&actions, err_child.get(), STDERR_FILENO);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);  // our threads may block signals; the child must not
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2, SIGALRM}) {
    sigaddset(&defaults, sig);
  }
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);  // its own group, so a kill reaches its children too
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  std::vector<char*> args;
  for (const std::string& arg : spec.argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  // glibc's posix_spawnp reports a failed exec (ENOENT, EACCES) as its return value.
  int rc = posix_spawnp(&pid, spec.argv[0].c_str(), &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  in_child.reset();
  out_child.reset();
  err_child.reset();
  if (rc != 0) return Status::InvalidArgument(fmt::format("cannot start: {}", std::strerror(rc)));

  ChildExit exit;
  size_t written = 0;
  bool out_eof = !spec.stdout_limit, err_eof = false;
  bool out_over = false, err_over = false;
  for (;;) {
    if (in_ours.get() >= 0) {
      const std::string_view input = *spec.input;
      bool blocked = false;
      while (written < input.size()) {
        ssize_t n = ::send(in_ours.get(), input.data() + written, input.size() - written,
                           MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
          written += static_cast<size_t>(n);
        } else if (n < 0 && errno == EINTR) {
          continue;
        } else {
          blocked = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
          break;
        }
      }
      // All written, or the child stopped reading (EPIPE): either way it gets EOF now.
      if (!blocked) in_ours.reset();
    }
    if (!out_eof) out_eof = drain(out_ours.get(), exit.out, *spec.stdout_limit, out_over);
    if (!err_eof) err_eof = drain(err_ours.get(), exit.err, spec.stderr_kept, err_over);
    if (out_over) {
      kill_and_reap(pid, &exit.wait_status);
      exit.end = ChildExit::End::kStdoutTooLong;
      return exit;
    }
    pid_t r = ::waitpid(pid, &exit.wait_status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) {
      Status failed = system_error("waitpid");
      kill_and_reap(pid, &exit.wait_status);
      return failed;
    }
    const MonoTime now = clock.monotonic_now();
    if (now >= until) {
      kill_and_reap(pid, &exit.wait_status);
      exit.end = ChildExit::End::kTimedOut;
      return exit;
    }
    clock.sleep_for(std::min<Nanos>(until - now, kPollStep), std::stop_token());
  }
  // Exited. Its stdout is complete only at EOF: a process it left in the background may still
  // hold the pipe (and is killed with the group if it does not close it by `until`).
  if (!err_eof) drain(err_ours.get(), exit.err, spec.stderr_kept, err_over);
  while (!out_eof) {
    out_eof = drain(out_ours.get(), exit.out, *spec.stdout_limit, out_over);
    if (out_over || (!out_eof && clock.monotonic_now() >= until)) {
      ::kill(-pid, SIGKILL);  // the group outlives its leader while a member lives
      exit.end = out_over ? ChildExit::End::kStdoutTooLong : ChildExit::End::kTimedOut;
      return exit;
    }
    if (!out_eof) {
      clock.sleep_for(std::min<Nanos>(until - clock.monotonic_now(), kPollStep), std::stop_token());
    }
  }
  return exit;
}

}  // namespace metronome
