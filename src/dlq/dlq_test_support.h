// Test helpers shared by the dlq/ tests (never linked into the daemon): a real SqliteStore in a
// fresh temporary folder, a Store wrapper whose chosen methods fail on demand, and a log capture.
#pragma once

#include <gtest/gtest.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "store/sqlite_store.h"

namespace metronome::dlq_testing {

// A fresh folder under the test temp dir, removed at destruction.
class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::path(::testing::TempDir()) / "dlq_test.XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp " << pattern;
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline std::unique_ptr<SqliteStore> open_store(const TempDir& dir) {
  SqliteStoreOptions options;
  options.path = dir.path() / "metronome.db";
  options.dlq_path = dir.path() / "metronome.dlq.db";
  auto store = SqliteStore::open(options);
  if (!store) {
    ADD_FAILURE() << store.status().ToString();
    return nullptr;
  }
  return std::move(*store);
}

// Forwards to a real store; the methods named by the flags fail with `error` while set.
class FlakyStore final : public Store {
 public:
  explicit FlakyStore(Store& inner) : inner_(inner) {}

  std::atomic<bool> fail_commit{false};
  std::atomic<bool> fail_dlq_depth{false};
  std::atomic<bool> fail_put_alarm{false};
  std::atomic<int> dlq_depth_calls{0};  // one per alarm evaluation
  // REQUIRES: changed only while no other thread uses the store.
  Status error = Status::IOError("store test.db: disk I/O error (injected)");

  Status create_execution(const Execution& e) override { return inner_.create_execution(e); }
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
  Result<std::vector<bool>> commit_slots(std::span<const SlotCommit> commits) override {
    if (fail_commit) return error;
    return inner_.commit_slots(commits);
  }
  Result<std::vector<ValueRecord>> list_values(const ValueQuery& q) override {
    return inner_.list_values(q);
  }
  Result<std::optional<ValueRecord>> get_value(const FeedId& feed, SlotTime slot) override {
    return inner_.get_value(feed, slot);
  }
  Result<std::optional<ValueRecord>> latest_value(const FeedId& feed) override {
    return inner_.latest_value(feed);
  }
  Result<int64_t> count_outcomes(SlotOutcome outcome, SlotTime since) override {
    return inner_.count_outcomes(outcome, since);
  }
  Result<int64_t> dlq_push(const DlqMessage& m) override { return inner_.dlq_push(m); }
  Result<std::vector<DlqMessage>> dlq_list(int limit) override { return inner_.dlq_list(limit); }
  Result<std::optional<DlqMessage>> dlq_get(int64_t id) override { return inner_.dlq_get(id); }
  Status dlq_delete(int64_t id) override { return inner_.dlq_delete(id); }
  Result<int64_t> dlq_depth() override {
    ++dlq_depth_calls;
    if (fail_dlq_depth) return error;
    return inner_.dlq_depth();
  }
  Result<std::vector<AlarmState>> alarm_states() override { return inner_.alarm_states(); }
  Result<std::optional<AlarmState>> alarm_state(const std::string& name) override {
    return inner_.alarm_state(name);
  }
  Status put_alarm_state(const AlarmState& state) override {
    if (fail_put_alarm) return error;
    return inner_.put_alarm_state(state);
  }
  Status ping() override { return inner_.ping(); }
  void run_deferred_work() override { inner_.run_deferred_work(); }

 private:
  Store& inner_;
};

// Keeps every formatted log line; safe to read while other threads log.
class LineSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::vector<std::string> lines() {
    std::lock_guard lock(mutex_);
    return lines_;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t formatted;
    formatter_->format(msg, formatted);
    std::string line(formatted.data(), formatted.size());
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    lines_.push_back(std::move(line));
  }
  void flush_() override {}

 private:
  std::vector<std::string> lines_;
};

// Sends spdlog's default logger to a LineSink for the lifetime of this object.
class LogCapture {
 public:
  LogCapture() : previous_(spdlog::default_logger()), sink_(std::make_shared<LineSink>()) {
    sink_->set_pattern("%l %v");
    auto logger = std::make_shared<spdlog::logger>("capture", sink_);
    logger->set_level(spdlog::level::trace);
    spdlog::set_default_logger(logger);
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }

  std::vector<std::string> lines() { return sink_->lines(); }
  std::string text() {
    std::string all;
    for (const std::string& line : lines()) all += line + "\n";
    return all;
  }
  // How many lines contain `needle`.
  int count(const std::string& needle) {
    int n = 0;
    for (const std::string& line : lines()) n += line.find(needle) != std::string::npos;
    return n;
  }

 private:
  std::shared_ptr<spdlog::logger> previous_;
  std::shared_ptr<LineSink> sink_;
};

}  // namespace metronome::dlq_testing
