#include "publish/sanity_bounds.h"

#include <fmt/format.h>

namespace metronome {

Status check_sanity_bounds(const SanityBounds& bounds, const Decimal& value,
                           const std::optional<Decimal>& previous) {
  if (bounds.min_value && value < *bounds.min_value) {
    return Status::InvalidArgument(
        fmt::format("value {} is below the feed's min_value {}", value, *bounds.min_value));
  }
  if (bounds.max_value && value > *bounds.max_value) {
    return Status::InvalidArgument(
        fmt::format("value {} is above the feed's max_value {}", value, *bounds.max_value));
  }
  if (bounds.max_change_pct && previous &&
      differs_by_more_than_pct(value, *previous, *previous, *bounds.max_change_pct)) {
    return Status::InvalidArgument(
        fmt::format("value {} moved more than max_change_pct {} % from the previous published "
                    "value {}",
                    value, *bounds.max_change_pct, *previous));
  }
  return Status::Ok();
}

Status check_sanity_bounds(const SanityBounds& bounds, std::string_view value, const FeedId& feed,
                           Store& store) {
  if (bounds.empty()) return Status::Ok();
  Result<Decimal> parsed = Decimal::parse(value);
  if (!parsed) return parsed.status().With("sanity bounds");
  std::optional<Decimal> previous;
  if (bounds.max_change_pct) {
    auto latest = store.latest_value(feed);
    if (!latest) return latest.status().With("sanity bounds: reading the previous value");
    if (*latest) {
      Result<Decimal> p = Decimal::parse((*latest)->value);
      if (!p) return p.status().With("sanity bounds: the previous published value");
      previous = *p;
    }
  }
  return check_sanity_bounds(bounds, *parsed, previous);
}

}  // namespace metronome
