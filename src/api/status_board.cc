#include "api/status_board.h"

#include <fmt/format.h>

namespace metronome {
namespace {

// Replaces `slot` by `next` unless it holds a snapshot for a later slot than `next` does.
template <typename T, typename SlotOf>
void store_if_not_older(std::atomic<std::shared_ptr<const T>>& slot, std::shared_ptr<const T> next,
                        SlotOf slot_of) {
  auto current = slot.load();
  while (!current || slot_of(*current) <= slot_of(*next)) {
    if (slot.compare_exchange_weak(current, next)) return;
  }
}

}  // namespace

FeedSummary summarize_feed(const FeedConfig& feed, std::string source) {
  return FeedSummary{
      .id = feed.id,
      .schedule = feed.schedule,
      .schedule_text = feed.schedule.describe(),
      .window = feed.window,
      .deadline = feed.deadline,
      .source = std::move(source),
      .decimals = feed.decimals,
  };
}

StatusBoard::StatusBoard()
    : feeds_(std::make_shared<const Feeds>()),
      clock_step_(std::make_shared<const ClockStepStatus>()),
      store_(std::make_shared<const StoreStatus>()) {}

void StatusBoard::set_feeds(std::vector<FeedSummary> feeds) {
  auto old = feeds_.load();
  auto next = std::make_shared<Feeds>();
  for (auto& summary : feeds) {
    auto c = std::make_shared<Cell>();
    if (auto it = old->by_id.find(summary.id); it != old->by_id.end()) {
      c->latest.store(it->second->latest.load());
      c->last_slot.store(it->second->last_slot.load());
    }
    FeedId id = summary.id;
    c->summary = std::make_shared<const FeedSummary>(std::move(summary));
    next->cells.push_back(c);
    next->by_id.emplace(std::move(id), std::move(c));
  }
  feeds_.store(std::move(next));
}

std::shared_ptr<StatusBoard::Cell> StatusBoard::cell(const FeedId& feed) const {
  auto feeds = feeds_.load();
  auto it = feeds->by_id.find(feed);
  return it == feeds->by_id.end() ? nullptr : it->second;
}

void StatusBoard::on_published(const ValueRecord& record) {
  auto c = cell(record.feed);
  if (!c) return;
  store_if_not_older(c->latest, std::make_shared<const ValueRecord>(record),
                     [](const ValueRecord& r) { return r.slot; });
}

void StatusBoard::on_outcome(const FeedId& feed, const SlotRecord& slot) {
  if (slot.outcome == SlotOutcome::kPlanned) return;
  auto c = cell(feed);
  if (!c) return;
  auto status = std::make_shared<SlotStatus>();
  status->slot = slot;
  if (slot.outcome != SlotOutcome::kPublished) {
    status->reason = fmt::format("slot {} {}", format_iso_ms(slot.slot), slot.outcome);
    if (!slot.error.empty()) status->reason += ": " + slot.error;
  }
  store_if_not_older(c->last_slot, std::shared_ptr<const SlotStatus>(std::move(status)),
                     [](const SlotStatus& s) { return s.slot.slot; });

  if (slot.outcome != SlotOutcome::kPublished) return;
  auto step = clock_step_.load();
  while (step->unresolved && WallTime(slot.slot) >= step->at) {
    auto resolved = std::make_shared<ClockStepStatus>(*step);
    resolved->unresolved = false;
    if (clock_step_.compare_exchange_weak(step, std::move(resolved))) break;
  }
}

void StatusBoard::on_clock_step(WallTime at, Nanos step) {
  auto current = clock_step_.load();
  while (true) {
    auto next = std::make_shared<ClockStepStatus>();
    next->unresolved = true;
    next->at = at;
    next->step = step;
    next->total = current->total + 1;
    if (clock_step_.compare_exchange_weak(current, std::move(next))) return;
  }
}

void StatusBoard::set_store_reachable(bool reachable, std::string reason) {
  auto current = store_.load();
  if (current->reachable == reachable && current->reason == reason) return;  // no allocation
  store_.store(std::make_shared<const StoreStatus>(StoreStatus{reachable, std::move(reason)}));
}

bool StatusBoard::has_feed(const FeedId& feed) const {
  return cell(feed) != nullptr;
}

FeedSnapshot StatusBoard::snapshot_of(const Cell& c) {
  return FeedSnapshot{
      .summary = c.summary, .latest = c.latest.load(), .last_slot = c.last_slot.load()};
}

std::optional<FeedSnapshot> StatusBoard::feed(const FeedId& feed) const {
  auto c = cell(feed);
  if (!c) return std::nullopt;
  return snapshot_of(*c);
}

std::vector<FeedSnapshot> StatusBoard::feeds() const {
  auto feeds = feeds_.load();
  std::vector<FeedSnapshot> out;
  out.reserve(feeds->cells.size());
  for (const auto& c : feeds->cells) out.push_back(snapshot_of(*c));
  return out;
}

std::shared_ptr<const ValueRecord> StatusBoard::latest(const FeedId& feed) const {
  auto c = cell(feed);
  return c ? c->latest.load() : nullptr;
}

std::shared_ptr<const ClockStepStatus> StatusBoard::clock_step() const {
  return clock_step_.load();
}

std::shared_ptr<const StoreStatus> StatusBoard::store_status() const {
  return store_.load();
}

}  // namespace metronome
