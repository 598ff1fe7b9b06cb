#include "support/harness.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace metronome::itest {
namespace {

std::vector<char*> c_argv(std::vector<std::string>& argv) {
  std::vector<char*> out;
  for (auto& a : argv) out.push_back(a.data());
  out.push_back(nullptr);
  return out;
}

std::string slurp_fd(int fd) {
  std::string s;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) s.append(buf, static_cast<size_t>(n));
  return s;
}

}  // namespace

std::string binary() {
  // METRONOME_BINARY overrides the binary this test was built with (e.g. an installed one).
  const char* b = std::getenv("METRONOME_BINARY");
  return b ? b : METRONOME_BINARY_PATH;
}

void sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

CommandResult run_program(const std::vector<std::string>& argv_in, const std::filesystem::path& cwd,
                          std::chrono::milliseconds timeout, const std::string& stdin_text) {
  auto dir = std::filesystem::temp_directory_path();
  std::string tag = std::to_string(::getpid()) + "-" + std::to_string(std::rand());
  auto out_path = dir / ("metronome-out-" + tag);
  auto err_path = dir / ("metronome-err-" + tag);
  auto in_path = dir / ("metronome-in-" + tag);
  {
    std::ofstream in(in_path);
    in << stdin_text;
  }
  std::vector<std::string> argv = argv_in;
  pid_t pid = fork();
  if (pid == 0) {
    if (chdir(cwd.c_str()) != 0) _exit(127);
    int in = open(in_path.c_str(), O_RDONLY);
    int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    auto args = c_argv(argv);
    execv(args[0], args.data());
    _exit(127);
  }
  CommandResult r;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  for (;;) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      r.err = "(timed out)\n";
      break;
    }
    sleep_ms(5);
  }
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  int fd = open(out_path.c_str(), O_RDONLY);
  r.out = slurp_fd(fd);
  close(fd);
  fd = open(err_path.c_str(), O_RDONLY);
  r.err += slurp_fd(fd);
  close(fd);
  std::filesystem::remove(out_path);
  std::filesystem::remove(err_path);
  std::filesystem::remove(in_path);
  return r;
}

CommandResult run(const std::vector<std::string>& args, const std::filesystem::path& cwd,
                  std::chrono::milliseconds timeout) {
  std::vector<std::string> argv{binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_program(argv, cwd, timeout);
}

TempDir::TempDir(const std::string& label) {
  std::string tmpl =
      (std::filesystem::temp_directory_path() / ("metronome-it-" + label + "-XXXXXX"));
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  for (auto& e : std::filesystem::recursive_directory_iterator(path_, ec)) {
    if (e.is_regular_file()) set_immutable(e.path(), false);
  }
  std::filesystem::remove_all(path_, ec);
}

void TempDir::write(const std::string& name, const std::string& content) const {
  std::filesystem::create_directories((path_ / name).parent_path());
  std::ofstream f(path_ / name);
  f << content;
}

std::string TempDir::read(const std::string& name) const {
  std::ifstream f(path_ / name);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

Daemon::Daemon(const std::filesystem::path& cwd, std::vector<std::string> args,
               std::vector<std::pair<std::string, std::string>> env)
    : cwd_(cwd), args_(std::move(args)), env_(std::move(env)), log_path_(cwd / "daemon.log") {
  std::error_code ec;
  const auto size = std::filesystem::file_size(log_path_, ec);
  if (!ec) log_offset_ = size;
}

Daemon::~Daemon() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

void Daemon::start() {
  ++starts_;
  std::vector<std::string> argv{binary(), "run"};
  argv.insert(argv.end(), args_.begin(), args_.end());
  pid_ = fork();
  if (pid_ == 0) {
    if (chdir(cwd_.c_str()) != 0) _exit(127);
    for (const auto& [k, v] : env_) setenv(k.c_str(), v.c_str(), 1);
    int log = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    dup2(log, 1);
    dup2(log, 2);
    auto args = c_argv(argv);
    execv(args[0], args.data());
    _exit(127);
  }
}

int Daemon::stop(int sig, std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  kill(pid_, sig);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  for (;;) {
    pid_t w = waitpid(pid_, &status, WNOHANG);
    if (w == pid_) break;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      pid_ = -1;
      return -2;
    }
    sleep_ms(5);
  }
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void Daemon::kill9() {
  stop(SIGKILL);
}

void Daemon::signal(int sig) {
  if (pid_ > 0) kill(pid_, sig);
}

bool Daemon::running() {
  if (pid_ <= 0) return false;
  int status;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

std::string Daemon::log() const {
  std::ifstream f(log_path_);
  f.seekg(static_cast<std::streamoff>(log_offset_));
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

bool Daemon::wait_for_log(const std::string& text, std::chrono::milliseconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (log().find(text) != std::string::npos) return true;
    sleep_ms(20);
  }
  return false;
}

nlohmann::json json_of(const CommandResult& r) {
  try {
    return nlohmann::json::parse(r.out);
  } catch (const std::exception& e) {
    throw std::runtime_error("not JSON (" + std::string(e.what()) + "): " + r.out + r.err);
  }
}

bool can_make_immutable(const std::filesystem::path& dir) {
  auto probe = dir / ".immutable-probe";
  { std::ofstream(probe) << "x"; }
  auto r = run_program({"/usr/bin/chattr", "+i", probe.string()}, dir);
  if (r.exit_code != 0) {
    std::filesystem::remove(probe);
    return false;
  }
  run_program({"/usr/bin/chattr", "-i", probe.string()}, dir);
  std::filesystem::remove(probe);
  return true;
}

void set_immutable(const std::filesystem::path& file, bool on) {
  if (!std::filesystem::exists(file)) return;
  run_program({"/usr/bin/chattr", on ? "+i" : "-i", file.string()}, file.parent_path());
}

}  // namespace metronome::itest
