// random_int: the replaced system's value, a uniformly drawn integer in [min, max].
// Draws from a std::mt19937_64 seeded from std::random_device; safe for concurrent callers.
#pragma once

#include <cstdint>
#include <mutex>
#include <random>

#include "source/source.h"

namespace metronome {

class RandomIntSource final : public Source {
 public:
  // REQUIRES: min <= max (the config rejects anything else).
  RandomIntSource(int64_t min, int64_t max);
  Result<SourceValue> observe(const ObserveContext& ctx) override;
  std::string describe() const override;
  bool may_block() const override { return false; }

 private:
  std::mutex mu_;
  std::mt19937_64 engine_;  // guarded by mu_
  std::uniform_int_distribution<int64_t> dist_;
};

}  // namespace metronome
