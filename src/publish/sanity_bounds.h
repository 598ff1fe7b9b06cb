// Sanity bounds of a feed, as Chainlink's minAnswer/maxAnswer: a value outside them is not
// published; its slot fails (stage "sanity") into the dead-letter queue with the reason.
//
//   min_value <= value <= max_value
//   |value - previous| <= max_change_pct % of |previous|, previous = the feed's latest published
//   value (none yet: no change check; a previous 0 allows no change at all)
//
// A legitimate move beyond max_change_pct keeps failing until an operator raises the bound (the
// DLQ alarm says so): it is a circuit breaker, not a filter. Pure functions; thread-safe.
#pragma once

#include <optional>
#include <string_view>

#include "common/decimal.h"
#include "common/ids.h"
#include "common/result.h"
#include "store/store.h"

namespace metronome {

struct SanityBounds {
  std::optional<Decimal> min_value;
  std::optional<Decimal> max_value;
  std::optional<Decimal> max_change_pct;

  [[nodiscard]] bool empty() const { return !min_value && !max_value && !max_change_pct; }
};

// InvalidArgument naming the bound and both numbers when `value` is outside `bounds`.
Status check_sanity_bounds(const SanityBounds& bounds, const Decimal& value,
                           const std::optional<Decimal>& previous);

// The same for a feed's observed value text, reading the previous value from `store` only when
// max_change_pct is set. Errors reading the store are returned as they are.
Status check_sanity_bounds(const SanityBounds& bounds, std::string_view value, const FeedId& feed,
                           Store& store);

}  // namespace metronome
