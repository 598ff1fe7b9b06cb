// Logging set-up: spdlog to stderr, UTC timestamps, as text or as JSON lines.
#pragma once

#include <string>

#include "common/status.h"

namespace metronome {

// level: trace|debug|info|warn|error; format: text|json. InvalidArgument on anything else.
Status setup_logging(const std::string& level, const std::string& format);

}  // namespace metronome
