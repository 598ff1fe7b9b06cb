// make_source(): the Source a feed's config describes.
#pragma once

#include <memory>

#include "clock/clock.h"
#include "config/config.h"
#include "secret/secret_registry.h"
#include "source/source.h"

namespace metronome {

// `secrets` and `clock` must outlive the source. InvalidArgument naming the source when it cannot
// be built (load_config() already refuses what it can see).
Result<std::unique_ptr<Source>> make_source(const SourceConfig& config, int decimals,
                                            const SecretRegistry* secrets, Clock& clock);

}  // namespace metronome
