#include "dlq/alarm_actions.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <memory>
#include <utility>

#include "common/libcurl.h"
#include "dlq/alarms.h"
#include "process/child.h"

namespace metronome {

namespace {

// Drops the user info and the query, which may carry credentials.
std::string url_for_messages(const std::string& url) {
  if (!curl::load().ok()) return "(webhook URL)";
  CURLU* parsed = curl::lib().url();
  if (parsed == nullptr) return "(webhook URL)";
  std::string shown = "(unparsable webhook URL)";
  if (curl::lib().url_set(parsed, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    curl::lib().url_set(parsed, CURLUPART_USER, nullptr, 0);
    curl::lib().url_set(parsed, CURLUPART_PASSWORD, nullptr, 0);
    curl::lib().url_set(parsed, CURLUPART_QUERY, nullptr, 0);
    char* text = nullptr;
    if (curl::lib().url_get(parsed, CURLUPART_URL, &text, 0) == CURLUE_OK) {
      shown = text;
      curl::lib().free(text);
    }
  }
  curl::lib().url_cleanup(parsed);
  return shown;
}

size_t discard_body(char*, size_t size, size_t count, void*) {
  return size * count;
}

class RealAlarmActions final : public AlarmActions {
 public:
  RealAlarmActions(const AlarmConfig& config, Clock& clock) : config_(config), clock_(clock) {}

  Status fire(const AlarmState& state, AlarmStatus previous) override {
    if (state.status == AlarmStatus::kAlarm) {
      spdlog::warn("alarm {}: {} -> {}: {}", state.name, to_string(previous),
                   to_string(state.status), state.reason);
    } else {
      spdlog::info("alarm {}: {} -> {}: {}", state.name, to_string(previous),
                   to_string(state.status), state.reason);
    }
    const std::string event = alarm_event_json(state, previous);
    Status first_error;
    auto note = [&](std::string_view action, Status status) {
      if (status.ok()) return;
      spdlog::warn("alarm {}: {} action failed: {}", state.name, action, status.ToString());
      if (first_error.ok()) first_error = std::move(status);
    };
    if (!config_.command.empty()) {
      note("command", run_command_action(config_.command, event, config_.action_timeout, clock_));
    }
    if (!config_.webhook.empty()) {
      note("webhook", post_webhook_action(config_.webhook, event, config_.action_timeout,
                                          config_.webhook_retries, clock_));
    }
    return first_error;
  }

 private:
  const AlarmConfig config_;
  Clock& clock_;
};

}  // namespace

Status run_command_action(const std::vector<std::string>& argv, std::string_view input,
                          Millis timeout, Clock& clock) {
  if (argv.empty() || argv[0].empty()) {
    return Status::InvalidArgument("alarm command: empty argv");
  }
  const std::string& name = argv[0];
  auto failed = [&](std::string what) {
    return Status::Unavailable(fmt::format("alarm command {}: {}", name, what));
  };

  ChildSpec spec;
  spec.argv = argv;
  spec.input = input;  // the alarm as JSON; stdout is discarded
  Result<ChildExit> exit = run_child(spec, clock.monotonic_now() + timeout, clock);
  if (!exit) return failed(exit.status().message());
  if (exit->end == ChildExit::End::kTimedOut) {
    return Status::DeadlineExceeded(
        fmt::format("alarm command {}: still running after {}; killed (SIGKILL)", name,
                    format_duration(timeout)));
  }
  if (exit->succeeded()) return Status::Ok();
  return failed(exit->describe());
}

Millis webhook_backoff(int retry) {
  constexpr Millis kFirst{250};
  constexpr Millis kMax{5000};
  Millis backoff = kFirst;
  for (int i = 1; i < retry && backoff < kMax; ++i) backoff *= 2;
  return std::min(backoff, kMax);
}

Status post_webhook_action(const std::string& url, std::string_view body, Millis timeout,
                           int retries, Clock& clock) {
  const std::string shown = url_for_messages(url);
  METRONOME_RETURN_IF_ERROR(curl::load());
  std::unique_ptr<CURL, curl::EasyDeleter> easy(curl::lib().easy_init());
  if (!easy) return Status::Internal(fmt::format("webhook {}: curl_easy_init failed", shown));
  std::unique_ptr<curl_slist, curl::SlistDeleter> headers(
      curl::lib().slist_append(nullptr, "Content-Type: application/json"));
  char error_buffer[CURL_ERROR_SIZE] = {};

  CURL* h = easy.get();
  curl::lib().easy_setopt(h, CURLOPT_URL, url.c_str());
  curl::lib().easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl::lib().easy_setopt(h, CURLOPT_POST, 1L);
  curl::lib().easy_setopt(h, CURLOPT_POSTFIELDS, body.data());  // not copied: `body` outlives `h`
  curl::lib().easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl::lib().easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
  curl::lib().easy_setopt(h, CURLOPT_USERAGENT, "metronome");
  curl::lib().easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl::lib().easy_setopt(h, CURLOPT_NOSIGNAL, 1L);  // no SIGALRM in a threaded daemon
  curl::lib().easy_setopt(h, CURLOPT_WRITEFUNCTION, &discard_body);
  curl::lib().easy_setopt(h, CURLOPT_ERRORBUFFER, error_buffer);

  std::string last_error;
  const int attempts = 1 + std::max(0, retries);
  int attempt = 0;
  while (attempt < attempts) {
    if (attempt > 0) clock.sleep_for(webhook_backoff(attempt), std::stop_token());
    ++attempt;
    error_buffer[0] = '\0';
    CURLcode rc = curl::lib().easy_perform(h);
    bool retryable = true;
    if (rc != CURLE_OK) {
      last_error = error_buffer[0] != '\0' ? error_buffer : curl::lib().easy_strerror(rc);
    } else {
      long code = 0;
      curl::lib().easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
      if (code >= 200 && code < 300) return Status::Ok();
      last_error = fmt::format("HTTP {}", code);
      retryable = code >= 500 || code == 408 || code == 429;
    }
    if (!retryable) break;
  }
  return Status::Unavailable(fmt::format("webhook {}: {} (after {} attempt{})", shown, last_error,
                                         attempt, attempt == 1 ? "" : "s"));
}

std::unique_ptr<AlarmActions> make_alarm_actions(const AlarmConfig& config, Clock& clock) {
  return std::make_unique<RealAlarmActions>(config, clock);
}

}  // namespace metronome
