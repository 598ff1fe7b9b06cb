#include "api/event_hub.h"

#include <utility>

#include "api/views.h"

namespace metronome {

using Json = nlohmann::json;

EventHub::EventHub(size_t capacity) : capacity_(std::max<size_t>(capacity, 1)) {
  ring_.resize(capacity_);
}

void EventHub::publish(std::string type, const Json& data) {
  if (subscribers_.load() == 0) return;  // nobody listens: not even rendered
  auto event = std::make_shared<Event>();
  event->type = std::move(type);
  event->data = data.dump(-1, ' ', false, Json::error_handler_t::replace);
  {
    std::lock_guard lock(mu_);
    event->seq = ++last_seq_;
    ring_[event->seq % capacity_] = std::move(event);
  }
  cv_.notify_all();
}

void EventHub::on_record(const ValueRecord& record) {
  if (subscribers_.load() == 0) return;
  publish("record", to_json(record));
}

void EventHub::on_slot(const FeedId& feed, const SlotRecord& slot) {
  if (subscribers_.load() == 0) return;
  Json j = to_json(slot);
  j["feed"] = feed.str();
  publish("slot", j);
}

void EventHub::on_dlq_change() {
  publish("dlq", Json::object());
}

void EventHub::on_alarm(const AlarmState& state) {
  if (subscribers_.load() == 0) return;
  publish("alarm", to_json(state));
}

EventHub::Subscription::Subscription(EventHub& hub) : hub_(hub) {
  hub_.subscribers_.fetch_add(1);
}

EventHub::Subscription::~Subscription() {
  hub_.subscribers_.fetch_sub(1);
}

EventHub::Batch EventHub::next(uint64_t after, std::chrono::milliseconds timeout,
                               const std::atomic<bool>& stop) {
  Batch batch;
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return stop.load() || last_seq_ > after; });
  if (stop.load()) {
    batch.stopped = true;
    return batch;
  }
  if (last_seq_ <= after) return batch;
  // The oldest event still in the ring.
  uint64_t oldest = last_seq_ >= capacity_ ? last_seq_ - capacity_ + 1 : 1;
  uint64_t from = after + 1;
  if (from < oldest) {
    batch.lost = true;
    from = oldest;
  }
  for (uint64_t seq = from; seq <= last_seq_; ++seq) {
    const auto& e = ring_[seq % capacity_];
    // A slot filled before any subscriber existed may be empty or older; skip it.
    if (e && e->seq == seq) batch.events.push_back(e);
  }
  return batch;
}

void EventHub::wake_all() {
  { std::lock_guard lock(mu_); }  // a reader between its check and its wait gets the notify
  cv_.notify_all();
}

namespace {
class EventAlarmActions final : public AlarmActions {
 public:
  EventAlarmActions(std::unique_ptr<AlarmActions> inner, EventHub& hub)
      : inner_(std::move(inner)), hub_(hub) {}
  Status fire(const AlarmState& state, AlarmStatus previous) override {
    hub_.on_alarm(state);  // the transition is persisted before its actions fire
    return inner_ ? inner_->fire(state, previous) : Status::Ok();
  }

 private:
  std::unique_ptr<AlarmActions> inner_;
  EventHub& hub_;
};
}  // namespace

std::unique_ptr<AlarmActions> with_alarm_events(std::unique_ptr<AlarmActions> inner,
                                                EventHub& hub) {
  return std::make_unique<EventAlarmActions>(std::move(inner), hub);
}

uint64_t EventHub::last_seq() const {
  std::lock_guard lock(mu_);
  return last_seq_;
}

}  // namespace metronome
