// GroupCommitQueue: many threads' writes, written in groups by one of them at a time.
//
// A durable commit costs a disk flush (SQLite: an fsync of the WAL; PostgreSQL: a WAL flush and a
// round trip), so one commit per record caps a store at a few hundred records a second, far below
// a boundary of thousands of feeds. Writers therefore queue their request; the first one to find
// no group being written becomes the leader, takes everything queued, writes it as one group
// (`write`), and hands every writer its own answer. Followers wait for their answer. A lone writer
// pays nothing extra; under load the group grows while the previous one is being written.
//
// Each writer waits on its own condition variable and is woken once: when its group is done, or
// to lead the next group (one shared notify_all woke every queued writer at every commit: with
// 256 workers at a 10,000-feed boundary that was ~15% of bench/scale's CPU in futex wake-ups).
// The leader wakes its group after releasing the queue's mutex, so that a woken writer does not
// block at once on the mutex the leader still holds; a writer's entry is shared with the leader so
// that it outlives a writer that returns before the leader's notify reaches it.
//
//   GroupCommitQueue<Op, Status> queue;
//   Status s = queue.submit(op, [&](const std::vector<const Op*>& group) {
//     return write_in_one_transaction(group);  // one answer per request, in order
//   });
//
// Thread-safety: submit() may be called from any number of threads; `write` runs on one of them at
// a time, without the queue's mutex held.
#pragma once

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

namespace metronome {

template <typename Request, typename Answer>
class GroupCommitQueue {
 public:
  // Answers `group` (the requests of one group, in arrival order): one answer per request.
  using WriteGroup = std::function<std::vector<Answer>(const std::vector<const Request*>& group)>;

  // Queues `request` (which must stay valid until submit returns) and returns its answer, once the
  // group it joined has been written by `write` (on this thread, if it leads the group).
  Answer submit(const Request& request, const WriteGroup& write) {
    auto me = std::make_shared<Pending>();
    me->request = &request;
    std::unique_lock q(mu_);
    queue_.push_back(me);
    me->cv.wait(q, [&] { return me->answer.has_value() || !leading_; });
    if (me->answer) return std::move(*me->answer);
    leading_ = true;
    std::vector<std::shared_ptr<Pending>> group;
    group.swap(queue_);
    q.unlock();

    std::vector<const Request*> requests;
    requests.reserve(group.size());
    for (const auto& p : group) requests.push_back(p->request);
    std::vector<Answer> answers = write(requests);
    if (answers.size() != group.size()) {
      std::fprintf(stderr, "GroupCommitQueue: %zu answers for a group of %zu\n", answers.size(),
                   group.size());
      std::abort();  // a bug in `write`: nobody could be told what happened to their write
    }

    q.lock();
    for (size_t i = 0; i < group.size(); ++i) group[i]->answer = std::move(answers[i]);
    leading_ = false;
    // The writers who queued meanwhile: the first leads the next group, with all of them in it.
    std::shared_ptr<Pending> next = queue_.empty() ? nullptr : queue_.front();
    Answer mine = std::move(*me->answer);
    q.unlock();
    for (const auto& p : group) {
      if (p != me) p->cv.notify_one();
    }
    if (next) next->cv.notify_one();
    return mine;
  }

 private:
  struct Pending {
    const Request* request = nullptr;
    std::optional<Answer> answer;  // guarded by mu_: set when its group was written
    std::condition_variable cv;    // this writer's wake-up (with mu_)
  };

  std::mutex mu_;
  std::vector<std::shared_ptr<Pending>> queue_;  // guarded by mu_
  bool leading_ = false;                         // guarded by mu_: a group is being written
};

}  // namespace metronome
