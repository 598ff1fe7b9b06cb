#include "publish/commit_batcher.h"

#include <fmt/format.h>
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cassert>
#include <future>

namespace metronome {

CommitBatcher::CommitBatcher(Store& store, size_t max_batch, size_t max_queued)
    : store_(store),
      max_batch_(std::max<size_t>(1, max_batch)),
      max_queued_(std::max<size_t>(1, max_queued)) {
  answer_thread_ = std::jthread([this](std::stop_token stop) {
    pthread_setname_np(pthread_self(), "metronome-done");
    answer(stop);
  });
  thread_ = std::jthread([this](std::stop_token stop) {
    pthread_setname_np(pthread_self(), "metronome-write");
    run(stop);
  });
}

CommitBatcher::~CommitBatcher() {
  // The writer drains the queue and the chores first; its last answers are then drained by the
  // other thread.
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  thread_.request_stop();
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  answer_thread_.request_stop();
  answer_cv_.notify_all();
  if (answer_thread_.joinable()) answer_thread_.join();
}

void CommitBatcher::submit(SlotCommit commit, Done done) {
  {
    std::unique_lock lock(mu_);
    space_cv_.wait(lock, [&] { return queue_.size() < max_queued_; });
    queue_.commits.push_back(std::move(commit));
    queue_.done.push_back(std::move(done));
  }
  cv_.notify_one();
  queued_cv_.notify_all();
}

void CommitBatcher::submit_all(std::vector<SlotCommit>& commits, std::vector<Done>& done) {
  assert(commits.size() == done.size());
  if (commits.empty()) return;
  {
    std::unique_lock lock(mu_);
    space_cv_.wait(lock, [&] { return queue_.size() < max_queued_; });
    for (size_t i = 0; i < commits.size(); ++i) {
      queue_.commits.push_back(std::move(commits[i]));
      queue_.done.push_back(std::move(done[i]));
    }
  }
  cv_.notify_one();
  queued_cv_.notify_all();
}

void CommitBatcher::run_when_idle(const std::function<void()>& chore) {
  std::promise<void> ran;
  std::future<void> done = ran.get_future();
  {
    std::lock_guard lock(mu_);
    if (stopping_ || std::this_thread::get_id() == thread_.get_id()) {
      done = {};  // stopping, or the writer itself: at once, below
    } else {
      chores_.push_back([&chore, &ran] {
        try {
          chore();
          ran.set_value();
        } catch (...) {
          ran.set_exception(std::current_exception());
        }
      });
    }
  }
  if (!done.valid()) {
    chore();
    return;
  }
  cv_.notify_one();
  done.get();
}

void CommitBatcher::run_on_thread(std::function<void()> setup) {
  {
    std::lock_guard lock(answer_mu_);
    answer_setup_ = setup;
  }
  answer_cv_.notify_one();
  {
    std::lock_guard lock(mu_);
    setup_ = std::move(setup);
  }
  cv_.notify_one();
}

size_t CommitBatcher::queued() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

bool CommitBatcher::wait_for_queued(size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return queued_cv_.wait_for(lock, timeout, [&] { return queue_.size() >= n; });
}

size_t CommitBatcher::chores_waiting() const {
  std::lock_guard lock(mu_);
  return chores_.size();
}

uint64_t CommitBatcher::batches() const {
  std::lock_guard lock(mu_);
  return batches_;
}

uint64_t CommitBatcher::commits() const {
  std::lock_guard lock(mu_);
  return commits_;
}

void CommitBatcher::run(std::stop_token stop) {
  for (;;) {
    Batch batch;
    std::function<void()> setup;
    std::function<void()> chore;
    {
      std::unique_lock lock(mu_);
      // Stopping still drains: a commit handed over before shutdown is written and answered,
      // and a chore handed over is run.
      cv_.wait(lock, stop, [&] { return !queue_.commits.empty() || setup_ || !chores_.empty(); });
      setup.swap(setup_);
    }
    if (setup) setup();
    {
      std::unique_lock lock(mu_);
      if (!chores_.empty() &&
          (queue_.commits.empty() || batches_since_chore_ >= kBatchesPerChore)) {
        chore = std::move(chores_.front());
        chores_.pop_front();
        batches_since_chore_ = 0;
      } else if (queue_.commits.empty()) {
        if (stop.stop_requested()) return;
        continue;
      }
    }
    if (chore) {
      chore();
      continue;
    }
    {
      std::unique_lock lock(mu_);
      if (!chores_.empty()) ++batches_since_chore_;
      Batch next;
      if (!spare_.empty()) {
        next = std::move(spare_.back());
        spare_.pop_back();
      }
      const size_t n = std::min(queue_.size(), max_batch_);
      if (n == queue_.size()) {
        std::swap(batch, queue_);
        std::swap(queue_, next);
      } else {  // only when max_queued > max_batch: the oldest max_batch commits
        batch = std::move(next);
        batch.commits.assign(std::make_move_iterator(queue_.commits.begin()),
                             std::make_move_iterator(queue_.commits.begin() + n));
        batch.done.assign(std::make_move_iterator(queue_.done.begin()),
                          std::make_move_iterator(queue_.done.begin() + n));
        queue_.commits.erase(queue_.commits.begin(), queue_.commits.begin() + n);
        queue_.done.erase(queue_.done.begin(), queue_.done.begin() + n);
      }
      ++batches_;
      commits_ += n;
    }
    space_cv_.notify_all();
    auto written = store_.commit_slots(batch.commits);
    if (written.ok() && written->size() != batch.size()) {
      written = Status::Internal(
          fmt::format("commit_slots answered {} of {} commits", written->size(), batch.size()));
    }
    if (!written.ok() && batch.size() > 1) {
      spdlog::warn("a batch of {} slot commits failed ({}); each is committed again on its own",
                   batch.size(), written.status());
    }
    {
      std::lock_guard lock(answer_mu_);
      answered_.push_back(Answered{std::move(batch), std::move(written)});
    }
    answer_cv_.notify_one();
    bool idle;
    {
      std::lock_guard lock(mu_);
      idle = queue_.commits.empty();
    }
    // Nothing waits now: the store may do the work it deferred (SQLite: its per-feed index).
    if (idle) store_.run_deferred_work();
  }
}

void CommitBatcher::answer(std::stop_token stop) {
  for (;;) {
    std::optional<Answered> next;
    std::function<void()> setup;
    {
      std::unique_lock lock(answer_mu_);
      // Stopped only after the writer (see the destructor): every written batch is answered.
      answer_cv_.wait(lock, stop, [&] { return !answered_.empty() || answer_setup_; });
      setup.swap(answer_setup_);
      if (!answered_.empty()) {
        next.emplace(std::move(answered_.front()));
        answered_.pop_front();
      }
    }
    if (setup) setup();
    if (!next) {
      if (stop.stop_requested()) return;
      continue;
    }
    Batch& batch = next->batch;
    const auto& written = next->written;
    for (size_t i = 0; i < batch.size(); ++i) {
      if (written.ok()) {
        batch.done[i](Result<bool>(static_cast<bool>((*written)[i])), batch.commits[i]);
      } else if (batch.size() > 1) {
        batch.done[i](std::nullopt, batch.commits[i]);
      } else {
        batch.done[i](Result<bool>(written.status()), batch.commits[i]);
      }
    }
    // Freed here, not on the writer's thread; the capacity is kept for a later queue.
    batch.commits.clear();
    batch.done.clear();
    std::lock_guard lock(mu_);
    if (spare_.size() < 2) spare_.push_back(std::move(batch));
  }
}

}  // namespace metronome
