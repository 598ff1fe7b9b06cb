#include "dlq/alarms.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <nlohmann/json.hpp>

#include "dlq/dead_letter_queue.h"
#include "dlq/dlq_test_support.h"
#include "testing/manual_clock.h"

namespace metronome {
namespace {

using dlq_testing::FlakyStore;
using dlq_testing::LogCapture;
using dlq_testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const FeedId kFeed("random_int");

// ---- evaluate_alarms (pure) ----

TEST(EvaluateAlarmsTest, DlqDepthThreshold) {
  AlarmConfig config;
  config.dlq_depth = 2;
  auto below = evaluate_alarms(config, {.dlq_depth = 1, .missed_in_window = 0});
  ASSERT_EQ(below.size(), 2u);
  EXPECT_EQ(below[0].name, "dlq_not_empty");
  EXPECT_EQ(below[0].status, AlarmStatus::kOk);
  EXPECT_EQ(below[0].reason, "DLQ depth 1 < 2");
  auto at = evaluate_alarms(config, {.dlq_depth = 3, .missed_in_window = 0});
  EXPECT_EQ(at[0].status, AlarmStatus::kAlarm);
  EXPECT_EQ(at[0].reason, "DLQ depth 3 >= 2");
}

TEST(EvaluateAlarmsTest, MissedSlotsThreshold) {
  AlarmConfig config;  // missed_slots 1 in 10m
  auto none = evaluate_alarms(config, {.dlq_depth = 0, .missed_in_window = 0});
  ASSERT_EQ(none.size(), 2u);
  EXPECT_EQ(none[1].name, "missed_slots");
  EXPECT_EQ(none[1].status, AlarmStatus::kOk);
  EXPECT_EQ(none[1].reason, "0 slots missed in the last 10m (threshold 1)");
  auto two = evaluate_alarms(config, {.dlq_depth = 0, .missed_in_window = 2});
  EXPECT_EQ(two[1].status, AlarmStatus::kAlarm);
  EXPECT_EQ(two[1].reason, "2 slots missed in the last 10m (threshold 1)");
  auto one = evaluate_alarms(config, {.dlq_depth = 0, .missed_in_window = 1});
  EXPECT_EQ(one[1].reason, "1 slot missed in the last 10m (threshold 1)");
}

TEST(EvaluateAlarmsTest, ZeroThresholdDisablesAnAlarm) {
  AlarmConfig config;
  config.dlq_depth = 0;
  config.missed_slots = 0;
  for (const AlarmDecision& d : evaluate_alarms(config, {.dlq_depth = 9, .missed_in_window = 9})) {
    EXPECT_EQ(d.status, AlarmStatus::kOk) << d.name;
    EXPECT_THAT(d.reason, HasSubstr("disabled"));
  }
}

TEST(AlarmEventJsonTest, CarriesTheTransition) {
  AlarmState state{.name = "dlq_not_empty",
                   .status = AlarmStatus::kAlarm,
                   .since = WallTime(Seconds(1'795'000'000)) + Micros(250),
                   .reason = "DLQ depth 3 >= 1",
                   .previous = AlarmStatus::kOk,
                   .actions_pending = true};
  auto json = nlohmann::json::parse(alarm_event_json(state, AlarmStatus::kOk));
  EXPECT_EQ(json["alarm"], "dlq_not_empty");
  EXPECT_EQ(json["state"], "ALARM");
  EXPECT_EQ(json["previous"], "OK");
  EXPECT_EQ(json["reason"], "DLQ depth 3 >= 1");
  EXPECT_EQ(json["at"], format_iso_us(state.since));
  EXPECT_EQ(json["service"], "metronome");
}

// ---- AlarmManager ----

// Records every fire() call; can be told to fail.
class RecordingActions final : public AlarmActions {
 public:
  struct Fired {
    std::string name;
    AlarmStatus status;
    AlarmStatus previous;
    friend bool operator==(const Fired&, const Fired&) = default;
  };

  Status fire(const AlarmState& state, AlarmStatus previous) override {
    std::lock_guard lock(mu_);
    fired_.push_back({state.name, state.status, previous});
    EXPECT_TRUE(state.actions_pending) << "actions run only for a transition persisted as pending";
    cv_.notify_all();
    return result_;
  }

  std::vector<Fired> fired() {
    std::lock_guard lock(mu_);
    return fired_;
  }
  void set_result(Status s) {
    std::lock_guard lock(mu_);
    result_ = std::move(s);
  }
  // Waits (bounded in real time, so a broken test fails instead of hanging) for n calls.
  bool wait_for(size_t n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return fired_.size() >= n; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Fired> fired_;
  Status result_;
};

std::ostream& operator<<(std::ostream& os, const RecordingActions::Fired& f) {
  return os << f.name << " " << to_string(f.previous) << "->" << to_string(f.status);
}

using Fired = RecordingActions::Fired;
const Fired kDlqAlarm{"dlq_not_empty", AlarmStatus::kAlarm, AlarmStatus::kOk};
const Fired kDlqOk{"dlq_not_empty", AlarmStatus::kOk, AlarmStatus::kAlarm};
const Fired kMissedAlarm{"missed_slots", AlarmStatus::kAlarm, AlarmStatus::kOk};
const Fired kMissedOk{"missed_slots", AlarmStatus::kOk, AlarmStatus::kAlarm};

class AlarmManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = dlq_testing::open_store(dir_);
    ASSERT_NE(store_, nullptr);
    flaky_ = std::make_unique<FlakyStore>(*store_);
    dlq_ = std::make_unique<DeadLetterQueue>(*flaky_, clock_);
  }

  AlarmManager& make_manager(Nanos period = Seconds(5)) {
    auto actions = std::make_unique<RecordingActions>();
    actions_ = actions.get();
    manager_ = std::make_unique<AlarmManager>(*flaky_, clock_, config_, std::move(actions), period);
    return *manager_;
  }

  void push_failure(int i, bool with_record = true) {
    SlotTime slot = slot_from_unix_ms(1'795'000'020'000 + 2000 * i);
    DlqMessage m;
    m.feed = kFeed;
    m.slot = slot;
    m.execution = make_execution_id(kFeed, slot_from_unix_ms(1'795'000'020'000));
    m.stage = "publish";
    m.error = "io_error: disk I/O error";
    m.attempts = 3;
    if (with_record) {
      ValueRecord r;
      r.feed = kFeed;
      r.slot = slot;
      r.round = to_unix_ms(slot) / 2000;
      r.value = "1";
      r.execution = m.execution;
      m.record = r;
    }
    ASSERT_TRUE(dlq_->push(m).ok());
  }

  // Records `n` missed slots just before the current time.
  void record_missed(int n) {
    const SlotTime now = std::chrono::floor<Millis>(clock_.now());
    std::vector<SlotCommit> commits;
    for (int i = 0; i < n; ++i) {
      SlotTime slot = now - Millis(2000 * (i + 1));
      SlotCommit commit;
      commit.execution = make_execution_id(kFeed, now - Millis(60'000));
      commit.feed = kFeed;
      commit.slot.slot = slot;
      commit.slot.outcome = SlotOutcome::kMissed;
      commits.push_back(std::move(commit));
    }
    ASSERT_TRUE(store_->commit_slots(commits).ok());
  }

  std::vector<AlarmState> evaluate() {
    auto r = manager_->evaluate_once();
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : std::vector<AlarmState>{};
  }

  std::optional<AlarmState> persisted(const std::string& name) {
    auto r = store_->alarm_state(name);
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : std::nullopt;
  }

  TempDir dir_;
  testing::ManualClock clock_;
  AlarmConfig config_;
  std::unique_ptr<SqliteStore> store_;
  std::unique_ptr<FlakyStore> flaky_;
  std::unique_ptr<DeadLetterQueue> dlq_;
  RecordingActions* actions_ = nullptr;
  std::unique_ptr<AlarmManager> manager_;  // last: stopped before what it uses
};

TEST_F(AlarmManagerTest, NoStateAndNothingWrongFiresNothing) {
  make_manager();
  EXPECT_TRUE(evaluate().empty());
  EXPECT_TRUE(actions_->fired().empty());
  EXPECT_FALSE(persisted("dlq_not_empty").has_value());  // missing means OK, never fired
}

TEST_F(AlarmManagerTest, TwentyFailuresFireOneAlarmAndRedriveFiresOneOk) {
  make_manager();
  for (int i = 0; i < 20; ++i) {
    push_failure(i);
    manager_->evaluate_once().value();
  }
  EXPECT_THAT(actions_->fired(), ElementsAre(kDlqAlarm));
  auto state = persisted("dlq_not_empty");
  ASSERT_TRUE(state.has_value());
  EXPECT_EQ(state->status, AlarmStatus::kAlarm);
  EXPECT_EQ(state->previous, AlarmStatus::kOk);
  EXPECT_EQ(state->since, clock_.now());
  EXPECT_EQ(state->reason, "DLQ depth 1 >= 1");
  EXPECT_FALSE(state->actions_pending);

  clock_.advance(Seconds(30));
  RedriveSummary summary = dlq_->redrive_all();
  EXPECT_EQ(summary.redriven, 20);
  auto transitions = evaluate();
  ASSERT_EQ(transitions.size(), 1u);
  EXPECT_EQ(transitions[0].status, AlarmStatus::kOk);
  evaluate();
  EXPECT_THAT(actions_->fired(), ElementsAre(kDlqAlarm, kDlqOk));
  state = persisted("dlq_not_empty");
  ASSERT_TRUE(state.has_value());
  EXPECT_EQ(state->status, AlarmStatus::kOk);
  EXPECT_EQ(state->previous, AlarmStatus::kAlarm);
  EXPECT_EQ(state->since, clock_.now());
  EXPECT_FALSE(state->actions_pending);
}

TEST_F(AlarmManagerTest, MissedSlotsLeaveTheWindow) {
  config_.missed_window = Millis(60'000);
  make_manager();
  record_missed(2);
  auto transitions = evaluate();
  ASSERT_EQ(transitions.size(), 1u);
  EXPECT_EQ(transitions[0].name, "missed_slots");
  EXPECT_EQ(transitions[0].reason, "2 slots missed in the last 1m (threshold 1)");

  clock_.advance(Seconds(30));
  EXPECT_TRUE(evaluate().empty());  // still inside the window
  clock_.advance(Seconds(31));
  transitions = evaluate();
  ASSERT_EQ(transitions.size(), 1u);
  EXPECT_EQ(transitions[0].status, AlarmStatus::kOk);
  EXPECT_THAT(actions_->fired(), ElementsAre(kMissedAlarm, kMissedOk));
}

TEST_F(AlarmManagerTest, ClockSkewFiresOnceAndOnlyTheHostThatRaisedItClearsIt) {
  ClockCheck a{.host = "a", .ok = false, .skew = Millis(200), .max_skew = Millis(50)};
  make_manager().set_clock_check([&a] { return a; });
  auto transitions = evaluate();
  ASSERT_EQ(transitions.size(), 1u);
  EXPECT_EQ(transitions[0].name, "clock_skew");
  EXPECT_EQ(transitions[0].status, AlarmStatus::kAlarm);
  EXPECT_EQ(transitions[0].reason,
            "host a: clock 200000 us off the database's (max_clock_skew 50 ms); this replica "
            "publishes nothing");
  EXPECT_TRUE(evaluate().empty());  // still skewed: fired once

  // Another replica, on host b with a good clock, shares the alarm row: it does not clear it.
  AlarmManager other(*flaky_, clock_, config_, nullptr);
  other.set_clock_check([] { return ClockCheck{.host = "b", .skew = Micros(300)}; });
  auto from_b = other.evaluate_once();
  ASSERT_TRUE(from_b.ok());
  EXPECT_TRUE(from_b->empty());
  EXPECT_EQ(persisted("clock_skew")->status, AlarmStatus::kAlarm);

  a.ok = true;
  a.skew = Micros(-800);
  transitions = evaluate();
  ASSERT_EQ(transitions.size(), 1u);
  EXPECT_EQ(transitions[0].status, AlarmStatus::kOk);
  EXPECT_EQ(transitions[0].reason, "host a: clock within 50 ms of the database's (offset -800 us)");
  const Fired alarm{"clock_skew", AlarmStatus::kAlarm, AlarmStatus::kOk};
  const Fired ok{"clock_skew", AlarmStatus::kOk, AlarmStatus::kAlarm};
  EXPECT_THAT(actions_->fired(), ElementsAre(alarm, ok));
}

TEST_F(AlarmManagerTest, PendingActionsRunOnceAfterACrash) {
  // The previous process persisted the transition, then died before its actions ran.
  push_failure(1);
  ASSERT_TRUE(store_
                  ->put_alarm_state({.name = "dlq_not_empty",
                                     .status = AlarmStatus::kAlarm,
                                     .since = clock_.now() - Seconds(10),
                                     .reason = "DLQ depth 1 >= 1",
                                     .previous = AlarmStatus::kOk,
                                     .actions_pending = true})
                  .ok());
  make_manager();
  EXPECT_TRUE(evaluate().empty());  // no new transition
  EXPECT_THAT(actions_->fired(), ElementsAre(kDlqAlarm));
  auto state = persisted("dlq_not_empty");
  ASSERT_TRUE(state.has_value());
  EXPECT_FALSE(state->actions_pending);
  EXPECT_EQ(state->since, clock_.now() - Seconds(10));  // still the original transition

  evaluate();
  EXPECT_THAT(actions_->fired(), ElementsAre(kDlqAlarm));
}

TEST_F(AlarmManagerTest, PendingActionsRunBeforeTheNextTransition) {
  // Pending ALARM, but the DLQ was emptied while the daemon was down: ALARM then OK, in order.
  ASSERT_TRUE(store_
                  ->put_alarm_state({.name = "dlq_not_empty",
                                     .status = AlarmStatus::kAlarm,
                                     .since = clock_.now() - Seconds(10),
                                     .reason = "DLQ depth 1 >= 1",
                                     .previous = AlarmStatus::kOk,
                                     .actions_pending = true})
                  .ok());
  make_manager();
  EXPECT_EQ(evaluate().size(), 1u);
  EXPECT_THAT(actions_->fired(), ElementsAre(kDlqAlarm, kDlqOk));
}

TEST_F(AlarmManagerTest, FailedActionsAreNotRepeated) {
  make_manager();
  actions_->set_result(Status::Unavailable("webhook http://x/: HTTP 500 (after 4 attempts)"));
  push_failure(1);
  LogCapture log;
  evaluate();
  evaluate();
  EXPECT_THAT(actions_->fired(), ElementsAre(kDlqAlarm));
  EXPECT_EQ(log.count("HTTP 500"), 1) << log.text();
  auto state = persisted("dlq_not_empty");
  ASSERT_TRUE(state.has_value());
  EXPECT_FALSE(state->actions_pending);
}

TEST_F(AlarmManagerTest, StoreErrorsFireNothingAndAreRetried) {
  make_manager();
  push_failure(1);
  flaky_->fail_dlq_depth = true;
  auto r = manager_->evaluate_once();
  EXPECT_EQ(r.status().code(), Status::Code::kIOError);
  EXPECT_TRUE(actions_->fired().empty());

  flaky_->fail_dlq_depth = false;
  flaky_->fail_put_alarm = true;  // the transition cannot be persisted: no action either
  r = manager_->evaluate_once();
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(actions_->fired().empty());

  flaky_->fail_put_alarm = false;
  EXPECT_EQ(evaluate().size(), 1u);
  EXPECT_THAT(actions_->fired(), ElementsAre(kDlqAlarm));
}

TEST_F(AlarmManagerTest, ThreadEvaluatesWhenPoked) {
  AlarmManager& manager = make_manager();
  dlq_->set_on_change([&] { manager.poke(); });
  manager.start();
  push_failure(1);
  ASSERT_TRUE(actions_->wait_for(1));
  ASSERT_TRUE(dlq_->purge_all().ok());
  ASSERT_TRUE(actions_->wait_for(2));
  EXPECT_THAT(actions_->fired(), ElementsAre(kDlqAlarm, kDlqOk));
}

TEST_F(AlarmManagerTest, ThreadEvaluatesEveryPeriodOnTheClock) {
  AlarmManager& manager = make_manager(Seconds(5));
  manager.start();
  ASSERT_TRUE(clock_.wait_for_sleepers(1));  // first evaluation done, waiting for the period
  push_failure(1);                           // no poke: only the period notices
  clock_.advance(Seconds(5));
  ASSERT_TRUE(actions_->wait_for(1));
  EXPECT_THAT(actions_->fired(), ElementsAre(kDlqAlarm));
}

TEST_F(AlarmManagerTest, ThreadLogsEachDistinctStoreErrorOnce) {
  LogCapture log;
  AlarmManager& manager = make_manager(Seconds(5));
  // Waits until the thread has made n evaluations and sleeps again.
  auto evaluated = [&](int n) {
    for (int spins = 0; flaky_->dlq_depth_calls < n; ++spins) {
      if (spins > 10'000'000) return false;
      std::this_thread::yield();
    }
    return clock_.wait_for_sleepers(1);
  };
  flaky_->fail_dlq_depth = true;
  manager.start();
  ASSERT_TRUE(evaluated(1));
  for (int n = 2; n <= 5; ++n) {
    clock_.advance(Seconds(5));
    ASSERT_TRUE(evaluated(n));
  }
  EXPECT_EQ(log.count("alarm evaluation failed"), 1) << log.text();

  flaky_->error = Status::Unavailable("store: locked (injected)");  // the thread sleeps
  clock_.advance(Seconds(5));
  ASSERT_TRUE(evaluated(6));
  clock_.advance(Seconds(5));
  ASSERT_TRUE(evaluated(7));
  EXPECT_EQ(log.count("alarm evaluation failed"), 2) << log.text();

  flaky_->fail_dlq_depth = false;
  push_failure(1);
  clock_.advance(Seconds(5));
  ASSERT_TRUE(actions_->wait_for(1));
  EXPECT_THAT(actions_->fired(), ElementsAre(kDlqAlarm));
  manager_.reset();  // joins: no more logging (and destroys actions_)
  EXPECT_EQ(log.count("alarm evaluation works again"), 1) << log.text();
}

TEST_F(AlarmManagerTest, DestructorStopsASleepingThread) {
  AlarmManager& manager = make_manager(std::chrono::hours(1));
  manager.start();
  ASSERT_TRUE(clock_.wait_for_sleepers(1));
  manager_.reset();  // returns although the ManualClock never reaches the period
  EXPECT_EQ(clock_.sleepers(), 0);
}

}  // namespace
}  // namespace metronome
