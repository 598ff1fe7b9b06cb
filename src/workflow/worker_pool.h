// WorkerPool: a fixed set of threads that run submitted tasks in order of submission.
//
// The timer thread hands due slots here and goes back to sleep; tasks do the I/O. Shutdown:
// stop() lets the tasks already queued run to completion, then joins the threads (a slot handed
// over before shutdown is in flight and finishes within its deadline).
// Thread-safety: submit() may be called from any thread.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace metronome {

class WorkerPool {
 public:
  // `init` runs first on every thread (e.g. to set its scheduling policy).
  explicit WorkerPool(size_t threads, std::function<void()> init = {});
  ~WorkerPool();  // stop()

  // Returns false (and drops the task) once stop() has begun.
  bool submit(std::function<void()> task);
  // Runs what is queued, then joins. Idempotent.
  void stop();
  size_t size() const { return threads_.size(); }

 private:
  void run();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;  // guarded by mu_
  bool stopping_ = false;                    // guarded by mu_
  std::vector<std::jthread> threads_;
};

}  // namespace metronome
