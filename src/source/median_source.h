// median: observes several sources concurrently and publishes their median.
//
// Each member is observed on its own thread (the first on the caller's), all bounded by the same
// slot deadline. Failed members are dropped. Fewer than `quorum` answers: Unavailable, naming each
// member's error. With max_spread_pct, answers spreading more than that percentage of the median
// (max - min > pct % of |median|): InvalidArgument naming the extremes. The median of an odd count
// is the middle answer; of an even count the upper of the two middle ones (as Chainlink's OCR
// median, observations[n/2]), so a published value is always one that a source returned, never
// rounded (docs/adr/0002-exact-values-and-median-of-answers.md). The value keeps the members that
// answered. Thread-safety: one caller at a time (a feed observes one slot at a time).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/decimal.h"
#include "source/source.h"

namespace metronome {

class MedianSource final : public Source {
 public:
  struct Member {
    std::string name;
    std::unique_ptr<Source> source;
  };

  // REQUIRES: 1 <= quorum <= members.size(); every member's values are exact decimal text.
  MedianSource(std::vector<Member> members, int quorum, std::optional<Decimal> max_spread_pct);

  Result<SourceValue> observe(const ObserveContext& ctx) override;
  std::string describe() const override;

 private:
  std::vector<Member> members_;
  const int quorum_;
  const std::optional<Decimal> max_spread_pct_;
};

}  // namespace metronome
