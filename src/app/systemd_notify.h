// The daemon's side of systemd's service notification protocol (sd_notify(3)): READY=1,
// STOPPING=1 and the watchdog's WATCHDOG=1, sent as one datagram to the AF_UNIX socket named by
// $NOTIFY_SOCKET; the watchdog interval comes from $WATCHDOG_USEC (and $WATCHDOG_PID).
//
// Why not libsystemd's sd_notify(): linking libsystemd maps it and its compression and crypto
// libraries (libgcrypt, libgpg-error, liblz4, libzstd, liblzma, libcap) into every process at
// start, 0.9 MB of the default daemon's 15 MB budget (issue 5), to send one datagram. The
// protocol is one of systemd's documented stable interfaces, and its manual page says services
// may implement it themselves; this file is that, and nothing more.
//
// Thread-safety: both functions may be called from any thread; they read the environment, which
// the daemon does not change after start.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

#include "common/status.h"

namespace metronome::systemd {

// Sends `state` (e.g. "READY=1\nSTATUS=publishing") to the service manager. Not under a
// service manager ($NOTIFY_SOCKET unset or empty): does nothing and returns ok. An error names
// the socket and why the datagram could not be sent.
Status notify(std::string_view state);

// The watchdog interval when systemd expects WATCHDOG=1 pings from this process (WatchdogSec=):
// $WATCHDOG_USEC, if $WATCHDOG_PID is unset or is this process. nullopt otherwise, and when
// $WATCHDOG_USEC is not a positive number.
std::optional<std::chrono::microseconds> watchdog_interval();

}  // namespace metronome::systemd
