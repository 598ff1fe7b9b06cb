// Alarms: the states that need a person, and the actions that tell them.
//
// Two alarms: `dlq_not_empty` (DLQ depth >= alarms.dlq_depth) and `missed_slots` (at least
// alarms.missed_slots slots recorded missed within the last alarms.missed_window), and for replicas
// on PostgreSQL a third, `clock_skew` (this replica's clock is further than max_clock_skew off the
// database's, so it publishes nothing; see docs/ha.md). Deciding the
// state is pure (evaluate_alarms); AlarmManager persists each alarm's OK/ALARM state in the Store
// and fires the actions of every transition exactly once: a log line always, then the optional
// command (argv, the alarm as JSON on stdin, bounded by action_timeout) and the optional webhook
// (HTTP POST of the same JSON with libcurl, timeout, retries with backoff).
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "clock/clock.h"
#include "config/config.h"
#include "store/store.h"

namespace metronome {

// Replicas: this replica's clock against the database's (ha/lease_manager.h).
struct ClockCheck {
  std::string host;  // the replica's host: a clock_skew alarm is cleared by the host that raised it
  bool ok = true;
  Nanos skew{0};  // this clock minus the database's
  Millis max_skew{50};
};

struct AlarmInputs {
  int64_t dlq_depth = 0;
  int64_t missed_in_window = 0;
  std::optional<ClockCheck> clock{};  // absent: no clock_skew alarm (a single writer)
};

struct AlarmDecision {
  std::string name;  // "dlq_not_empty" | "missed_slots" | "clock_skew"
  AlarmStatus status = AlarmStatus::kOk;
  std::string reason;  // "DLQ depth 3 >= 1", "2 slots missed in the last 10m (threshold 1)"
};

// Pure: the state each alarm should be in.
std::vector<AlarmDecision> evaluate_alarms(const AlarmConfig& config, const AlarmInputs& inputs);

// The JSON an action receives: {"alarm":..., "state":"ALARM"|"OK", "previous":..., "reason":...,
// "at":"<iso time>", "service":"metronome"}.
std::string alarm_event_json(const AlarmState& now, AlarmStatus previous);

// Runs the actions of one transition. Thread-safety: called from one thread at a time.
class AlarmActions {
 public:
  virtual ~AlarmActions() = default;
  // Runs every configured action; returns the first error (each action is attempted anyway).
  virtual Status fire(const AlarmState& state, AlarmStatus previous) = 0;
};

// The real actions: log line, command, webhook, as configured.
std::unique_ptr<AlarmActions> make_alarm_actions(const AlarmConfig& config, Clock& clock);

// Keeps alarm states in the store in step with the decisions, on its own thread so that slow
// actions never delay a slot. poke() asks for an evaluation soon; it also evaluates every
// `period` on its own.
//
// Exactly once: a transition is persisted with actions pending, then the actions run, then the
// pending mark is cleared; a restart finds a pending transition and runs its actions then. A
// missing state is OK (never fired). Actions that fail are logged and not repeated (the command
// may have worked where the webhook did not); only a crash, or a store error while clearing the
// mark, runs them again. Store errors fire nothing and are retried at the next evaluation; the
// thread logs each distinct error once.
//
// Thread-safety: poke() and evaluate_once() may be called from any thread (evaluations are
// serialised); start() once, from the owner. REQUIRES: store, clock and actions outlive it.
class AlarmManager {
 public:
  AlarmManager(Store& store, Clock& clock, AlarmConfig config,
               std::unique_ptr<AlarmActions> actions, Nanos period = std::chrono::seconds(5));
  ~AlarmManager();  // stops the thread; an evaluation in progress finishes first

  // Replicas: evaluates the clock_skew alarm too. The alarm is shared by the replicas (one row),
  // so a replica whose clock is fine clears it only if its host raised it: replicas with good
  // clocks do not flap it against the one with a bad clock. REQUIRES: called before start().
  void set_clock_check(std::function<ClockCheck()> check) { clock_check_ = std::move(check); }
  // More alarms decided elsewhere (e.g. the evm sinks' onchain_stale and low_balance), evaluated
  // with the others. The function may be called from the manager's thread at any time.
  // REQUIRES: called before start().
  void add_check(std::function<std::vector<AlarmDecision>()> check) {
    checks_.push_back(std::move(check));
  }

  void start();
  void poke();  // cheap and non-blocking: safe from the slot path and DLQ on_change
  // Evaluates now on the caller's thread (for tests and the CLI); returns the transitions made.
  Result<std::vector<AlarmState>> evaluate_once();

 private:
  void run(std::stop_token stop);
  // Runs the actions of a persisted transition, then clears its pending mark.
  Status run_actions(AlarmState state);

  Store& store_;
  Clock& clock_;
  AlarmConfig config_;
  std::unique_ptr<AlarmActions> actions_;
  Nanos period_;
  std::vector<std::function<std::vector<AlarmDecision>()>> checks_;
  std::function<ClockCheck()> clock_check_;

  // Waking the thread: the thread waits in clock_.sleep_for(period_, wake_->get_token()), since
  // only the Clock may measure the period; poke() and stop both request_stop() on wake_.
  // Invariants: poked_ and wake_ are read and written under mu_ only; wake_ is set only while
  // the thread is (about to be) in that sleep; poke() sets poked_ before waking it, and the
  // thread clears poked_ only right before an evaluation, so no poke is ever lost.
  std::mutex mu_;
  bool poked_ = false;                    // guarded by mu_
  std::optional<std::stop_source> wake_;  // guarded by mu_

  std::mutex evaluate_mu_;         // one evaluation at a time
  std::string last_error_logged_;  // run() only: each distinct evaluation error is logged once
  std::jthread thread_;            // last member: stopped and joined first
};

}  // namespace metronome
