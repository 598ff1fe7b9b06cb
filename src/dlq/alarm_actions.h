// The alarm actions make_alarm_actions() combines, one function each, for its tests. Private to
// src/dlq/: other modules use make_alarm_actions() from dlq/alarms.h.
//
// Both block the calling thread until the action is done or has timed out; the Clock measures
// the timeout and backoff. Thread-safety: may be called from several threads at once.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "clock/clock.h"
#include "common/result.h"
#include "common/time.h"

namespace metronome {

// Runs argv directly (no shell; argv[0] is looked up in PATH when it has no '/'), in its own
// process group, with `input` on its stdin (a socket: a child that does not read it is fine),
// stdout discarded and stderr captured (the first 4 KiB; its first line goes into the error).
// Signal mask and dispositions are reset to the defaults in the child.
// Past `timeout` the process group is killed with SIGKILL and reaped: DeadlineExceeded.
// Exit status other than 0: Unavailable naming argv[0] and the status. REQUIRES: !argv.empty().
Status run_command_action(const std::vector<std::string>& argv, std::string_view input,
                          Millis timeout, Clock& clock);

// POSTs `body` as application/json to `url`, each attempt bounded by `timeout` (libcurl's own
// timer: the one place time is not read through the Clock), retrying up to `retries` times with
// exponential backoff (250 ms, 500 ms, ... at most 5 s, slept on the Clock) after a transport
// error, HTTP 408, 429 or 5xx. 2xx is success; any other status is not retried.
// Errors name the URL without its user info and query (they may hold credentials).
// libcurl is loaded on first use (common/libcurl.h); a webhook reports it when it cannot be.
Status post_webhook_action(const std::string& url, std::string_view body, Millis timeout,
                           int retries, Clock& clock);

// The backoff before retry number `retry` (1-based).
Millis webhook_backoff(int retry);

}  // namespace metronome
