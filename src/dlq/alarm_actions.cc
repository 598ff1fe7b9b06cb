#include "dlq/alarm_actions.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <utility>

#include "dlq/alarms.h"

extern char** environ;

namespace metronome {

namespace {

// How much of a command's stderr is kept for the error message.
constexpr size_t kStderrKept = 4096;
// How often a running command is checked (on the Clock).
constexpr Millis kCommandPollStep{5};

// Closes a descriptor once; -1 means closed.
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

std::string errno_text(int err) {
  return std::strerror(err);
}

std::string describe_exit(int wait_status) {
  if (WIFEXITED(wait_status)) return fmt::format("exited with status {}", WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status)) {
    const char* name = sigabbrev_np(WTERMSIG(wait_status));
    return fmt::format("was killed by signal {} (SIG{})", WTERMSIG(wait_status), name ? name : "?");
  }
  return fmt::format("ended with wait status {}", wait_status);
}

std::string first_line(std::string_view text) {
  size_t start = text.find_first_not_of(" \t\r\n");
  if (start == std::string_view::npos) return "";
  text.remove_prefix(start);
  return std::string(text.substr(0, text.find('\n')));
}

// Reads what is available without blocking; keeps up to kStderrKept bytes, drops the rest.
void drain(int fd, std::string& kept) {
  char buffer[1024];
  while (true) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n > 0) {
      size_t room = kStderrKept - std::min(kStderrKept, kept.size());
      kept.append(buffer, std::min(room, static_cast<size_t>(n)));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return;  // EOF, EAGAIN or an error: nothing more for now
  }
}

// Starts argv with stdin = `child_stdin`, stdout = /dev/null, stderr = `child_stderr`.
Result<pid_t> spawn(const std::vector<std::string>& argv, int child_stdin, int child_stderr) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  // Every descriptor we made is O_CLOEXEC; dup2 onto 0 and 2 clears that for the child's copies.
  posix_spawn_file_actions_adddup2(&actions, child_stdin, STDIN_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, child_stderr, STDERR_FILENO);

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);  // our threads may block signals; the child must not
  sigset_t defaults;  // signals the daemon may ignore (SIG_IGN survives exec)
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2, SIGALRM}) {
    sigaddset(&defaults, sig);
  }
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);  // its own group, so a timeout kills its children too
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);

  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);

  pid_t pid = -1;
  // glibc's posix_spawnp reports a failed exec (ENOENT, EACCES) as its return value.
  int rc = posix_spawnp(&pid, argv[0].c_str(), &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return Status::Unavailable(fmt::format("cannot start: {}", errno_text(rc)));
  return pid;
}

pid_t wait_blocking(pid_t pid, int* wait_status) {
  pid_t r;
  do {
    r = ::waitpid(pid, wait_status, 0);
  } while (r < 0 && errno == EINTR);
  return r;
}

// Drops the user info and the query, which may carry credentials.
std::string url_for_messages(const std::string& url) {
  CURLU* parsed = curl_url();
  if (parsed == nullptr) return "(webhook URL)";
  std::string shown = "(unparsable webhook URL)";
  if (curl_url_set(parsed, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    curl_url_set(parsed, CURLUPART_USER, nullptr, 0);
    curl_url_set(parsed, CURLUPART_PASSWORD, nullptr, 0);
    curl_url_set(parsed, CURLUPART_QUERY, nullptr, 0);
    char* text = nullptr;
    if (curl_url_get(parsed, CURLUPART_URL, &text, 0) == CURLUE_OK) {
      shown = text;
      curl_free(text);
    }
  }
  curl_url_cleanup(parsed);
  return shown;
}

size_t discard_body(char*, size_t size, size_t count, void*) {
  return size * count;
}

class RealAlarmActions final : public AlarmActions {
 public:
  RealAlarmActions(const AlarmConfig& config, Clock& clock) : config_(config), clock_(clock) {}

  Status fire(const AlarmState& state, AlarmStatus previous) override {
    if (state.status == AlarmStatus::kAlarm) {
      spdlog::warn("alarm {}: {} -> {}: {}", state.name, to_string(previous),
                   to_string(state.status), state.reason);
    } else {
      spdlog::info("alarm {}: {} -> {}: {}", state.name, to_string(previous),
                   to_string(state.status), state.reason);
    }
    const std::string event = alarm_event_json(state, previous);
    Status first_error;
    auto note = [&](std::string_view action, Status status) {
      if (status.ok()) return;
      spdlog::warn("alarm {}: {} action failed: {}", state.name, action, status.ToString());
      if (first_error.ok()) first_error = std::move(status);
    };
    if (!config_.command.empty()) {
      note("command", run_command_action(config_.command, event, config_.action_timeout, clock_));
    }
    if (!config_.webhook.empty()) {
      note("webhook", post_webhook_action(config_.webhook, event, config_.action_timeout,
                                          config_.webhook_retries, clock_));
    }
    return first_error;
  }

 private:
  const AlarmConfig config_;
  Clock& clock_;
};

}  // namespace

Status run_command_action(const std::vector<std::string>& argv, std::string_view input,
                          Millis timeout, Clock& clock) {
  if (argv.empty() || argv[0].empty()) {
    return Status::InvalidArgument("alarm command: empty argv");
  }
  const std::string& name = argv[0];
  auto failed = [&](std::string what) {
    return Status::Unavailable(fmt::format("alarm command {}: {}", name, what));
  };

  // stdin is a socket rather than a pipe so that writing to a child that exited without
  // reading gives EPIPE from send(MSG_NOSIGNAL) instead of a SIGPIPE for the whole daemon.
  int sockets[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sockets) != 0) {
    return failed(fmt::format("socketpair: {}", errno_text(errno)));
  }
  Fd stdin_ours(sockets[0]), stdin_child(sockets[1]);
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return failed(fmt::format("pipe: {}", errno_text(errno)));
  Fd stderr_ours(pipe_fds[0]), stderr_child(pipe_fds[1]);
  ::fcntl(stdin_ours.get(), F_SETFL, O_NONBLOCK);
  ::fcntl(stderr_ours.get(), F_SETFL, O_NONBLOCK);

  Result<pid_t> spawned = spawn(argv, stdin_child.get(), stderr_child.get());
  stdin_child.reset();
  stderr_child.reset();
  if (!spawned) return spawned.status().With(fmt::format("alarm command {}", name));
  const pid_t pid = *spawned;

  const MonoTime deadline = clock.monotonic_now() + timeout;
  size_t written = 0;
  std::string stderr_text;
  int wait_status = 0;
  while (true) {
    if (stdin_ours.get() >= 0) {
      while (written < input.size()) {
        ssize_t n = ::send(stdin_ours.get(), input.data() + written, input.size() - written,
                           MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
          written += static_cast<size_t>(n);
        } else if (n < 0 && errno == EINTR) {
          continue;
        } else {
          break;
        }
      }
      // All written, or the child stopped reading (EPIPE): either way it gets EOF now.
      if (written == input.size() || (errno != EAGAIN && errno != EWOULDBLOCK)) stdin_ours.reset();
    }
    drain(stderr_ours.get(), stderr_text);

    pid_t r = ::waitpid(pid, &wait_status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) {
      return Status::Internal(
          fmt::format("alarm command {}: waitpid: {}", name, errno_text(errno)));
    }
    const MonoTime now = clock.monotonic_now();
    if (now >= deadline) {
      ::kill(-pid, SIGKILL);  // the whole group: a shell script's children too
      wait_blocking(pid, &wait_status);
      return Status::DeadlineExceeded(
          fmt::format("alarm command {}: still running after {}; killed (SIGKILL)", name,
                      format_duration(timeout)));
    }
    clock.sleep_for(std::min<Nanos>(kCommandPollStep, deadline - now), std::stop_token());
  }
  drain(stderr_ours.get(), stderr_text);

  if (WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0) return Status::Ok();
  std::string message = describe_exit(wait_status);
  std::string detail = first_line(stderr_text);
  if (!detail.empty()) message += fmt::format(" (stderr: {})", detail);
  return failed(std::move(message));
}

Millis webhook_backoff(int retry) {
  constexpr Millis kFirst{250};
  constexpr Millis kMax{5000};
  Millis backoff = kFirst;
  for (int i = 1; i < retry && backoff < kMax; ++i) backoff *= 2;
  return std::min(backoff, kMax);
}

Status post_webhook_action(const std::string& url, std::string_view body, Millis timeout,
                           int retries, Clock& clock) {
  const std::string shown = url_for_messages(url);
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), &curl_easy_cleanup);
  if (!curl) return Status::Internal(fmt::format("webhook {}: curl_easy_init failed", shown));
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> headers(
      curl_slist_append(nullptr, "Content-Type: application/json"), &curl_slist_free_all);
  char error_buffer[CURL_ERROR_SIZE] = {};

  CURL* h = curl.get();
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_POST, 1L);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());  // not copied: `body` outlives `h`
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(h, CURLOPT_USERAGENT, "metronome");
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);  // no SIGALRM in a threaded daemon
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &discard_body);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error_buffer);

  std::string last_error;
  const int attempts = 1 + std::max(0, retries);
  int attempt = 0;
  while (attempt < attempts) {
    if (attempt > 0) clock.sleep_for(webhook_backoff(attempt), std::stop_token());
    ++attempt;
    error_buffer[0] = '\0';
    CURLcode rc = curl_easy_perform(h);
    bool retryable = true;
    if (rc != CURLE_OK) {
      last_error = error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(rc);
    } else {
      long code = 0;
      curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
      if (code >= 200 && code < 300) return Status::Ok();
      last_error = fmt::format("HTTP {}", code);
      retryable = code >= 500 || code == 408 || code == 429;
    }
    if (!retryable) break;
  }
  return Status::Unavailable(fmt::format("webhook {}: {} (after {} attempt{})", shown, last_error,
                                         attempt, attempt == 1 ? "" : "s"));
}

std::unique_ptr<AlarmActions> make_alarm_actions(const AlarmConfig& config, Clock& clock) {
  return std::make_unique<RealAlarmActions>(config, clock);
}

}  // namespace metronome
