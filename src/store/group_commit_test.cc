#include "store/group_commit.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <latch>
#include <mutex>
#include <thread>
#include <vector>

namespace metronome {
namespace {

using ::testing::ElementsAre;

TEST(GroupCommitQueueTest, ALoneWriterIsWrittenAloneAndGetsItsAnswer) {
  GroupCommitQueue<int, int> queue;
  std::vector<size_t> sizes;
  for (int i = 1; i <= 3; ++i) {
    int answer = queue.submit(i, [&](const std::vector<const int*>& group) {
      sizes.push_back(group.size());
      return std::vector<int>{*group[0] * 10};
    });
    EXPECT_EQ(answer, i * 10);
  }
  EXPECT_THAT(sizes, ElementsAre(1, 1, 1));
}

// While a group is being written, every writer that arrives queues; the next group takes them
// all, and each writer gets the answer to its own request, written exactly once.
TEST(GroupCommitQueueTest, WritersArrivingDuringAWriteFormOneGroupAndEachGetsItsOwnAnswer) {
  GroupCommitQueue<int, int> queue;
  std::mutex mu;
  std::vector<std::vector<int>> groups;  // guarded by mu
  std::latch first_group_started(1);
  std::latch release_first_group(1);
  std::atomic<bool> first{true};
  auto write = [&](const std::vector<const int*>& group) {
    if (first.exchange(false)) {
      first_group_started.count_down();
      release_first_group.wait();
    }
    std::vector<int> values, answers;
    for (const int* r : group) {
      values.push_back(*r);
      answers.push_back(*r * 10);
    }
    std::lock_guard lock(mu);
    groups.push_back(values);
    return answers;
  };

  int leader_answer = 0;
  std::thread leader([&] { leader_answer = queue.submit(0, write); });
  first_group_started.wait();
  constexpr int kFollowers = 16;
  std::latch queued(kFollowers);
  std::vector<int> requests(kFollowers), answers(kFollowers, -1);
  std::vector<std::thread> followers;
  for (int i = 0; i < kFollowers; ++i) {
    requests[i] = i + 1;
    followers.emplace_back([&, i] {
      queued.count_down();
      answers[i] = queue.submit(requests[i], write);
    });
  }
  queued.wait();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // into the queue
  release_first_group.count_down();
  leader.join();
  for (auto& t : followers) t.join();

  EXPECT_EQ(leader_answer, 0);
  for (int i = 0; i < kFollowers; ++i) EXPECT_EQ(answers[i], (i + 1) * 10) << i;
  std::vector<int> written;
  for (const auto& g : groups) written.insert(written.end(), g.begin(), g.end());
  std::sort(written.begin(), written.end());
  std::vector<int> expected(kFollowers + 1);
  for (int i = 0; i <= kFollowers; ++i) expected[i] = i;
  EXPECT_EQ(written, expected);  // every request once
  ASSERT_GE(groups.size(), 2u);
  EXPECT_THAT(groups[0], ElementsAre(0));
  EXPECT_LE(groups.size(), 3u);  // the leader's, then the queued ones (two if one was late)
  EXPECT_GE(groups[1].size(), static_cast<size_t>(kFollowers / 2));
}

}  // namespace
}  // namespace metronome
