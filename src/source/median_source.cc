#include "source/median_source.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <thread>

namespace metronome {

MedianSource::MedianSource(std::vector<Member> members, int quorum,
                           std::optional<Decimal> max_spread_pct)
    : members_(std::move(members)), quorum_(quorum), max_spread_pct_(std::move(max_spread_pct)) {}

Result<SourceValue> MedianSource::observe(const ObserveContext& ctx) {
  std::vector<std::optional<Result<SourceValue>>> results(members_.size());
  {
    std::vector<std::jthread> threads;
    threads.reserve(members_.size());
    for (size_t i = 1; i < members_.size(); ++i) {
      threads.emplace_back(
          [this, &results, &ctx, i] { results[i] = members_[i].source->observe(ctx); });
    }
    results[0] = members_[0].source->observe(ctx);
  }  // joined: every member returned (each is bounded by ctx.deadline)

  struct Answer {
    size_t member;
    Decimal value;
  };
  std::vector<Answer> answers;
  std::vector<std::string> failures;
  SourceValue out;
  for (size_t i = 0; i < members_.size(); ++i) {
    const Result<SourceValue>& r = *results[i];
    if (!r.ok()) {
      failures.push_back(fmt::format("{} ({}): {}", members_[i].name,
                                     members_[i].source->describe(), r.status().ToString()));
      continue;
    }
    auto value = Decimal::parse(r->value);
    if (!value) {
      failures.push_back(fmt::format("{}: {}", members_[i].name, value.status().ToString()));
      continue;
    }
    answers.push_back({i, *value});
    out.answers.push_back({members_[i].name, r->value});
  }
  if (static_cast<int>(answers.size()) < quorum_) {
    return Status::Unavailable(
        fmt::format("quorum not met: {} of {} sources answered, quorum {}; {}", answers.size(),
                    members_.size(), quorum_, fmt::join(failures, "; ")));
  }
  std::stable_sort(answers.begin(), answers.end(),
                   [](const Answer& a, const Answer& b) { return a.value < b.value; });
  const Answer& median = answers[answers.size() / 2];
  if (max_spread_pct_) {
    const Answer& low = answers.front();
    const Answer& high = answers.back();
    if (differs_by_more_than_pct(high.value, low.value, median.value, *max_spread_pct_)) {
      return Status::InvalidArgument(fmt::format(
          "answers spread more than max_spread_pct {} % of the median {}: from {} ({}) to {} ({})",
          *max_spread_pct_, median.value, low.value, members_[low.member].name, high.value,
          members_[high.member].name));
    }
  }
  out.value = median.value.to_string();
  return out;
}

std::string MedianSource::describe() const {
  std::vector<std::string> names;
  for (const Member& m : members_) names.push_back(m.name);
  return fmt::format("median of {} (quorum {})", fmt::join(names, ", "), quorum_);
}

}  // namespace metronome
