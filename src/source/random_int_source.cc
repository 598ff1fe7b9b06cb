#include "source/random_int_source.h"

#include <fmt/format.h>

namespace metronome {

RandomIntSource::RandomIntSource(int64_t min, int64_t max)
    : engine_(std::random_device{}()), dist_(min, max) {}

Result<SourceValue> RandomIntSource::observe(const ObserveContext&) {
  std::lock_guard lock(mu_);
  return SourceValue{std::to_string(dist_(engine_))};
}

std::string RandomIntSource::describe() const {
  return fmt::format("random_int {}..{}", dist_.min(), dist_.max());
}

}  // namespace metronome
