// Test harness for whole-daemon tests: a temporary directory with a config, the real
// `metronome` binary started as a child process, and CLI commands run to completion.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace metronome::itest {

// The path of the metronome binary under test: the one built beside the test, unless
// METRONOME_BINARY names another.
std::string binary();

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs `metronome args...` in `cwd` to completion (at most `timeout`).
CommandResult run(const std::vector<std::string>& args, const std::filesystem::path& cwd,
                  std::chrono::milliseconds timeout = std::chrono::seconds(30));
// Runs any program.
CommandResult run_program(const std::vector<std::string>& argv, const std::filesystem::path& cwd,
                          std::chrono::milliseconds timeout = std::chrono::seconds(30),
                          const std::string& stdin_text = "");

// A directory under the system temp dir, removed (after chattr -i) when destroyed.
class TempDir {
 public:
  explicit TempDir(const std::string& label);
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }
  void write(const std::string& name, const std::string& content) const;
  std::string read(const std::string& name) const;

 private:
  std::filesystem::path path_;
};

// `metronome run` as a child process; stderr goes to a log file in the temp dir (daemon.log,
// appended to). log() and wait_for_log() see only what this object's runs wrote: a second Daemon
// in the same folder never matches the first one's lines.
class Daemon {
 public:
  Daemon(const std::filesystem::path& cwd, std::vector<std::string> args,
         std::vector<std::pair<std::string, std::string>> env = {});
  ~Daemon();  // SIGKILL if still running

  void start();
  // Sends `sig` and waits (bounded) for the exit; returns the exit code, or 128+signal.
  int stop(int sig = 15, std::chrono::milliseconds timeout = std::chrono::seconds(15));
  void kill9();
  // Sends `sig` without waiting (SIGSTOP / SIGCONT).
  void signal(int sig);
  pid_t pid() const { return pid_; }
  bool running();
  std::string log() const;
  // Waits until the log contains `text` (bounded). Returns whether it does.
  bool wait_for_log(const std::string& text, std::chrono::milliseconds timeout) const;

 private:
  std::filesystem::path cwd_;
  std::vector<std::string> args_;
  std::vector<std::pair<std::string, std::string>> env_;
  std::filesystem::path log_path_;
  std::uintmax_t log_offset_ = 0;  // the log's size when this object was made
  pid_t pid_ = -1;
  int starts_ = 0;
};

// `metronome ... --format json` parsed.
nlohmann::json json_of(const CommandResult& r);

// Whether this process may use `chattr +i` (root with CAP_LINUX_IMMUTABLE on a supporting fs).
bool can_make_immutable(const std::filesystem::path& dir);
void set_immutable(const std::filesystem::path& file, bool on);

// Real-time waiting, bounded, for integration tests only (unit tests use the ManualClock).
void sleep_ms(int ms);

}  // namespace metronome::itest
