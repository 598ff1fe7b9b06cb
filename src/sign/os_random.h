// Bytes from the kernel's CSPRNG (getrandom(2)), for keys and for blinding signing contexts.
// Thread-safe; blocks only until the kernel's pool is first initialised at boot.
#pragma once

#include <cstdint>
#include <span>

#include "common/status.h"

namespace metronome {

// Fills `out` entirely (retrying short reads and EINTR). kIOError naming errno otherwise.
Status fill_os_random(std::span<uint8_t> out);

}  // namespace metronome
