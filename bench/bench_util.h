// Helpers shared by the real-time benchmarks (lateness, scale, nanosleep_baseline): percentile
// summaries printed as JSON, command-line flags, CPU-burning load threads, realtime priority, a
// temp dir, the signed-feed set-up and TimingStore, a Store decorator that notes when each
// durable commit returned. Header-only on purpose: bench/CMakeLists.txt builds each bench/*.cc
// into its own executable.
//
// Benchmarks are not tests: nothing here asserts a time.
#pragma once

#include <fmt/format.h>
#include <sched.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "clock/clock.h"
#include "common/time.h"
#include "publish/feed_signer.h"
#include "secret/file_secret.h"
#include "secret/secret_registry.h"
#include "sign/signing_key.h"
#include "store/store.h"

namespace metronome::bench {

[[noreturn]] inline void die(std::string_view what) {
  std::fprintf(stderr, "bench: %.*s\n", static_cast<int>(what.size()), what.data());
  std::exit(1);
}

template <typename T>
T value_or_die(Result<T> r, std::string_view what) {
  if (!r.ok()) die(fmt::format("{}: {}", what, r.status().ToString()));
  return std::move(*r);
}

inline void ok_or_die(const Status& st, std::string_view what) {
  if (!st.ok()) die(fmt::format("{}: {}", what, st.ToString()));
}

// ---- flags: --name value / --name=value / --flag ----
class Flags {
 public:
  Flags(int argc, char** argv) : args_(argv + 1, argv + argc) {}

  int64_t get_int(std::string_view name, int64_t fallback) {
    auto v = find(name, true);
    if (!v) return fallback;
    char* end = nullptr;
    long long n = std::strtoll(v->c_str(), &end, 10);
    if (end == v->c_str() || *end != '\0') die(fmt::format("--{}: not an integer: {}", name, *v));
    return n;
  }
  std::string get_string(std::string_view name, std::string fallback) {
    auto v = find(name, true);
    return v ? *v : fallback;
  }
  bool get_bool(std::string_view name) { return find(name, false).has_value(); }
  // Fails on anything not consumed by get_*.
  void finish() {
    for (size_t i = 0; i < args_.size(); ++i) {
      if (!used_[i]) die(fmt::format("unknown argument: {}", args_[i]));
    }
  }

 private:
  std::optional<std::string> find(std::string_view name, bool takes_value) {
    used_.resize(args_.size(), false);
    const std::string flag = fmt::format("--{}", name);
    for (size_t i = 0; i < args_.size(); ++i) {
      if (args_[i] == flag) {
        used_[i] = true;
        if (!takes_value) return std::string();
        if (i + 1 >= args_.size()) die(fmt::format("{} needs a value", flag));
        used_[i + 1] = true;
        return args_[i + 1];
      }
      if (takes_value && args_[i].starts_with(flag + "=")) {
        used_[i] = true;
        return args_[i].substr(flag.size() + 1);
      }
    }
    return std::nullopt;
  }
  std::vector<std::string> args_;
  std::vector<bool> used_;
};

// ---- statistics ----
// Nearest-rank percentiles over a sample, in the unit it was given (µs here).
struct Summary {
  size_t count = 0;
  double min = 0, p50 = 0, p99 = 0, p999 = 0, max = 0, mean = 0;
};

inline Summary summarize(std::vector<double> v) {
  Summary s;
  s.count = v.size();
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  auto rank = [&](double p) {
    size_t i = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size())));
    return v[std::min(v.size() - 1, i == 0 ? 0 : i - 1)];
  };
  s.min = v.front();
  s.max = v.back();
  s.p50 = rank(0.50);
  s.p99 = rank(0.99);
  s.p999 = rank(0.999);
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / static_cast<double>(v.size());
  return s;
}

inline std::string to_json(const Summary& s) {
  return fmt::format(
      R"({{"count":{},"min":{:.1f},"p50":{:.1f},"p99":{:.1f},"p99.9":{:.1f},"max":{:.1f},"mean":{:.1f}}})",
      s.count, s.min, s.p50, s.p99, s.p999, s.max, s.mean);
}

inline std::string json_escape(std::string_view in) {
  std::string out;
  for (char c : in) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", c);
    } else {
      out += c;
    }
  }
  return out;
}

// ---- the machine ----
inline std::string loadavg() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

inline std::string machine_json() {
  std::string model = "unknown";
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);) {
    if (line.starts_with("model name")) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  }
  utsname u{};
  uname(&u);
  return fmt::format(R"({{"nproc":{},"cpu":"{}","kernel":"{}","loadavg_at_start":"{}"}})",
                     std::thread::hardware_concurrency(), json_escape(model),
                     json_escape(u.release), loadavg());
}

struct CpuUsage {
  double user_s = 0, sys_s = 0;
  long max_rss_kb = 0;
};

inline CpuUsage cpu_usage() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto secs = [](const timeval& tv) { return tv.tv_sec + tv.tv_usec / 1e6; };
  return {secs(ru.ru_utime), secs(ru.ru_stime), ru.ru_maxrss};
}

inline long current_rss_kb() {
  std::ifstream f("/proc/self/status");
  for (std::string line; std::getline(f, line);) {
    if (line.starts_with("VmRSS:")) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return 0;
}

// ---- load and priority ----
// One spinning thread per core at normal priority (SCHED_OTHER, nice 0): the `--load` of issue 5.
class BusyLoad {
 public:
  explicit BusyLoad(bool enabled) {
    if (!enabled) return;
    unsigned n = std::max(1u, std::thread::hardware_concurrency());
    for (unsigned i = 0; i < n; ++i) {
      threads_.emplace_back([this](std::stop_token stop) {
        uint64_t x = 0;
        while (!stop.stop_requested()) {
          for (int j = 0; j < 1000; ++j) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
          sink_.fetch_add(x & 1, std::memory_order_relaxed);
        }
      });
    }
  }
  size_t threads() const { return threads_.size(); }

 private:
  std::atomic<uint64_t> sink_{0};
  std::vector<std::jthread> threads_;
};

// SCHED_FIFO for the calling thread; threads it creates afterwards inherit it (glibc's default is
// PTHREAD_INHERIT_SCHED). Returns a note for the JSON.
inline std::string make_realtime(bool fifo, bool lock_memory) {
  std::string note;
  if (fifo) {
    sched_param p{};
    p.sched_priority = 10;
    note += sched_setscheduler(0, SCHED_FIFO, &p) == 0
                ? "SCHED_FIFO priority 10"
                : fmt::format("SCHED_FIFO refused: {}", std::strerror(errno));
  }
  if (lock_memory) {
    if (!note.empty()) note += "; ";
    note += mlockall(MCL_CURRENT | MCL_FUTURE) == 0
                ? "mlockall"
                : fmt::format("mlockall refused: {}", std::strerror(errno));
  }
  return note.empty() ? "SCHED_OTHER" : note;
}

// Logs go to stderr (stdout carries the JSON), at `level` (default warn: the publisher logs every
// published slot at info, which is not what we measure).
inline void quiet_logs(const std::string& level) {
  auto logger = spdlog::stderr_logger_mt("bench");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
}

// ---- files ----
class TempDir {
 public:
  explicit TempDir(const char* prefix) {
    std::string tmpl = (std::filesystem::temp_directory_path() / prefix).string() + ".XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) die("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    if (!keep_) std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  void keep() { keep_ = true; }

 private:
  std::filesystem::path path_;
  bool keep_ = false;
};

// A fresh signing key in `dir`/secrets/oracle_key (0600) and a registry holding it.
inline SecretRegistry make_key_registry(const std::filesystem::path& dir, const SecretName& name) {
  const auto file = dir / "secrets" / name.str();
  std::string hex = value_or_die(generate_signing_key_hex(), "generating a signing key");
  ok_or_die(FileSecret::create(file, SecretValue(std::move(hex))), "writing the key file");
  std::map<SecretName, SecretConfig> config;
  config[name] = SecretConfig{name, file, std::nullopt};
  return value_or_die(SecretRegistry::from_config(config), "secret registry");
}

// ---- TimingStore ----
// Forwards everything to `inner`; after each commit_slots() that returns OK it notes, per
// published record in the batch, the wall time at which the durable commit returned (read from
// the Clock, i.e. SystemClock). That is the issue's "publish latency (durable commit − slot)":
// no stored field holds it (values.published_at is when the commit *started*).
class TimingStore final : public Store {
 public:
  struct Commit {
    SlotTime slot;
    WallTime committed;
  };

  TimingStore(Store& inner, Clock& clock) : inner_(inner), clock_(clock) {}

  std::vector<Commit> take_commits() {
    std::lock_guard lock(mu_);
    return std::move(commits_);
  }
  void reserve(size_t n) {
    std::lock_guard lock(mu_);
    commits_.reserve(n);
  }
  uint64_t commit_calls() const { return calls_.load(); }

  Status create_execution(const Execution& e) override { return inner_.create_execution(e); }
  std::vector<Status> create_executions(std::span<const Execution> executions) override {
    return inner_.create_executions(executions);
  }
  Result<std::optional<Execution>> get_execution(const ExecutionId& id) override {
    return inner_.get_execution(id);
  }
  Result<std::vector<Execution>> list_executions(const ExecutionQuery& q) override {
    return inner_.list_executions(q);
  }
  Result<std::vector<Execution>> unfinished_executions() override {
    return inner_.unfinished_executions();
  }
  Status set_execution_state(const ExecutionId& id, ExecutionState state,
                             std::optional<WallTime> finished_at) override {
    return inner_.set_execution_state(id, state, finished_at);
  }
  std::vector<Status> set_execution_states(std::span<const ExecutionStateChange> changes) override {
    return inner_.set_execution_states(changes);
  }
  Result<std::vector<bool>> commit_slots(std::span<const SlotCommit> commits) override {
    auto r = inner_.commit_slots(commits);
    calls_.fetch_add(1, std::memory_order_relaxed);
    if (r.ok()) {
      const WallTime done = clock_.now();
      std::lock_guard lock(mu_);
      for (const auto& c : commits) {
        if (c.record) commits_.push_back({c.slot.slot, done});
      }
    }
    return r;
  }
  Result<std::vector<ValueRecord>> list_values(const ValueQuery& q) override {
    return inner_.list_values(q);
  }
  Result<std::optional<ValueRecord>> get_value(const FeedId& f, SlotTime s) override {
    return inner_.get_value(f, s);
  }
  Result<std::optional<ValueRecord>> latest_value(const FeedId& f) override {
    return inner_.latest_value(f);
  }
  Result<int64_t> count_outcomes(SlotOutcome o, SlotTime since) override {
    return inner_.count_outcomes(o, since);
  }
  Result<int64_t> dlq_push(const DlqMessage& m) override { return inner_.dlq_push(m); }
  Result<std::vector<DlqMessage>> dlq_list(int limit) override { return inner_.dlq_list(limit); }
  Result<std::optional<DlqMessage>> dlq_get(int64_t id) override { return inner_.dlq_get(id); }
  Status dlq_delete(int64_t id) override { return inner_.dlq_delete(id); }
  Result<int64_t> dlq_depth() override { return inner_.dlq_depth(); }
  Result<std::vector<AlarmState>> alarm_states() override { return inner_.alarm_states(); }
  Result<std::optional<AlarmState>> alarm_state(const std::string& n) override {
    return inner_.alarm_state(n);
  }
  Status put_alarm_state(const AlarmState& s) override { return inner_.put_alarm_state(s); }
  Status ping() override { return inner_.ping(); }
  void run_deferred_work() override { inner_.run_deferred_work(); }

 private:
  Store& inner_;
  Clock& clock_;
  std::atomic<uint64_t> calls_{0};
  std::mutex mu_;
  std::vector<Commit> commits_;  // guarded by mu_
};

inline double micros(Nanos d) {
  return static_cast<double>(d.count()) / 1000.0;
}

}  // namespace metronome::bench
