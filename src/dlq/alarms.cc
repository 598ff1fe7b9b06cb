#include "dlq/alarms.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <utility>

namespace metronome {

namespace {

constexpr const char* kDlqNotEmpty = "dlq_not_empty";
constexpr const char* kMissedSlots = "missed_slots";
constexpr const char* kClockSkew = "clock_skew";

std::string host_prefix(const std::string& host) {
  return fmt::format("host {}: ", host);
}

std::string slots_text(int64_t n) {
  return fmt::format("{} slot{}", n, n == 1 ? "" : "s");
}

}  // namespace

std::vector<AlarmDecision> evaluate_alarms(const AlarmConfig& config, const AlarmInputs& inputs) {
  std::vector<AlarmDecision> decisions;

  // A threshold of 0 (or less) switches the alarm off rather than keeping it raised forever.
  AlarmDecision dlq{kDlqNotEmpty, AlarmStatus::kOk, ""};
  if (config.dlq_depth <= 0) {
    dlq.reason = "disabled (alarms.dlq_depth = 0)";
  } else if (inputs.dlq_depth >= config.dlq_depth) {
    dlq.status = AlarmStatus::kAlarm;
    dlq.reason = fmt::format("DLQ depth {} >= {}", inputs.dlq_depth, config.dlq_depth);
  } else {
    dlq.reason = fmt::format("DLQ depth {} < {}", inputs.dlq_depth, config.dlq_depth);
  }
  decisions.push_back(std::move(dlq));

  AlarmDecision missed{kMissedSlots, AlarmStatus::kOk, ""};
  if (config.missed_slots <= 0) {
    missed.reason = "disabled (alarms.missed_slots = 0)";
  } else {
    if (inputs.missed_in_window >= config.missed_slots) missed.status = AlarmStatus::kAlarm;
    missed.reason =
        fmt::format("{} missed in the last {} (threshold {})", slots_text(inputs.missed_in_window),
                    format_duration(config.missed_window), config.missed_slots);
  }
  decisions.push_back(std::move(missed));

  if (inputs.clock) {
    const ClockCheck& c = *inputs.clock;
    const auto skew_us = std::chrono::duration_cast<std::chrono::microseconds>(c.skew).count();
    AlarmDecision clock{kClockSkew, c.ok ? AlarmStatus::kOk : AlarmStatus::kAlarm, ""};
    clock.reason =
        c.ok ? fmt::format("{}clock within {} ms of the database's (offset {} us)",
                           host_prefix(c.host), c.max_skew.count(), skew_us)
             : fmt::format(
                   "{}clock {} us off the database's (max_clock_skew {} ms); this replica "
                   "publishes nothing",
                   host_prefix(c.host), skew_us, c.max_skew.count());
    decisions.push_back(std::move(clock));
  }
  return decisions;
}

std::string alarm_event_json(const AlarmState& now, AlarmStatus previous) {
  nlohmann::json event = {
      {"alarm", now.name},    {"state", to_string(now.status)}, {"previous", to_string(previous)},
      {"reason", now.reason}, {"at", format_iso_us(now.since)}, {"service", "metronome"},
  };
  return event.dump();
}

AlarmManager::AlarmManager(Store& store, Clock& clock, AlarmConfig config,
                           std::unique_ptr<AlarmActions> actions, Nanos period)
    : store_(store),
      clock_(clock),
      config_(std::move(config)),
      actions_(std::move(actions)),
      period_(period) {}

AlarmManager::~AlarmManager() {
  // Shutdown order: stop and join the thread (an evaluation in progress, with its actions,
  // finishes first) before the store, clock and actions it uses go away.
  if (thread_.joinable()) {
    thread_.request_stop();
    thread_.join();
  }
}

void AlarmManager::start() {
  thread_ = std::jthread([this](std::stop_token stop) { run(std::move(stop)); });
}

void AlarmManager::poke() {
  std::lock_guard lock(mu_);
  poked_ = true;
  if (wake_) wake_->request_stop();
}

void AlarmManager::run(std::stop_token stop) {
  while (!stop.stop_requested()) {
    {
      std::lock_guard lock(mu_);
      poked_ = false;  // this evaluation answers every poke made so far
    }
    Result<std::vector<AlarmState>> result = evaluate_once();
    if (!result) {
      std::string error = result.status().ToString();
      if (error != last_error_logged_) {
        spdlog::warn("alarm evaluation failed (retried every {}): {}", format_duration(period_),
                     error);
        last_error_logged_ = std::move(error);
      }
    } else if (!last_error_logged_.empty()) {
      spdlog::info("alarm evaluation works again");
      last_error_logged_.clear();
    }

    std::stop_source wake;
    {
      std::lock_guard lock(mu_);
      if (poked_) continue;  // poked during the evaluation: evaluate again at once
      wake_ = wake;
    }
    {
      // Stopping the thread interrupts the sleep too (runs at once if already stopped).
      std::stop_callback on_stop(stop, [wake]() mutable { wake.request_stop(); });
      clock_.sleep_for(period_, wake.get_token());
    }
    std::lock_guard lock(mu_);
    wake_.reset();
  }
}

Status AlarmManager::run_actions(AlarmState state) {
  Status fired = actions_ ? actions_->fire(state, state.previous) : Status::Ok();
  if (!fired.ok()) {
    // The actions were attempted (each with its own timeout and retries); firing them again on
    // every evaluation would repeat the ones that did work, so the transition is done anyway.
    spdlog::warn("alarm {} {} -> {}: an action failed: {}", state.name, to_string(state.previous),
                 to_string(state.status), fired.ToString());
  }
  state.actions_pending = false;
  return store_.put_alarm_state(state).With(
      fmt::format("alarm {}: clear pending actions", state.name));
}

Result<std::vector<AlarmState>> AlarmManager::evaluate_once() {
  std::lock_guard evaluating(evaluate_mu_);
  const WallTime now = clock_.now();
  METRONOME_ASSIGN_OR_RETURN(int64_t depth, store_.dlq_depth());
  const SlotTime since =
      std::chrono::floor<Millis>(now - std::chrono::duration_cast<Nanos>(config_.missed_window));
  METRONOME_ASSIGN_OR_RETURN(int64_t missed, store_.count_outcomes(SlotOutcome::kMissed, since));

  std::optional<ClockCheck> clock;
  if (clock_check_) clock = clock_check_();

  std::vector<AlarmDecision> decisions = evaluate_alarms(
      config_, AlarmInputs{.dlq_depth = depth, .missed_in_window = missed, .clock = clock});
  for (const auto& check : checks_) {
    for (AlarmDecision& d : check()) decisions.push_back(std::move(d));
  }
  std::vector<AlarmState> transitions;
  for (const AlarmDecision& decision : decisions) {
    METRONOME_ASSIGN_OR_RETURN(std::optional<AlarmState> persisted,
                               store_.alarm_state(decision.name));
    // Crash recovery: a transition persisted with its actions pending (the process stopped
    // between persisting it and clearing the mark) gets its actions now, once.
    if (persisted && persisted->actions_pending) {
      spdlog::info("alarm {}: running the pending actions of its transition to {} at {}",
                   persisted->name, to_string(persisted->status), format_iso_us(persisted->since));
      METRONOME_RETURN_IF_ERROR(run_actions(*persisted));
    }
    // No persisted state: the alarm has never fired, which is OK.
    const AlarmStatus current = persisted ? persisted->status : AlarmStatus::kOk;
    if (decision.status == current) continue;
    // Another host's clock raised it: only that host clears it.
    if (decision.name == kClockSkew && decision.status == AlarmStatus::kOk && persisted &&
        !persisted->reason.starts_with(host_prefix(clock->host))) {
      continue;
    }

    AlarmState state{.name = decision.name,
                     .status = decision.status,
                     .since = now,
                     .reason = decision.reason,
                     .previous = current,
                     .actions_pending = true};
    // Persisted before acting: if this fails nothing fires, and the next evaluation retries.
    METRONOME_RETURN_IF_ERROR(store_.put_alarm_state(state).With(
        fmt::format("alarm {}: persist transition", state.name)));
    // If clearing the mark fails, the next evaluation runs the actions again: exactly once as
    // long as the store works, at least once when it does not.
    METRONOME_RETURN_IF_ERROR(run_actions(state));
    state.actions_pending = false;
    transitions.push_back(std::move(state));
  }
  return transitions;
}

}  // namespace metronome
