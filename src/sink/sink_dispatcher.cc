#include "sink/sink_dispatcher.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "evm/evm_sink.h"
#include "sink/dynamodb_sink.h"

namespace metronome {

WallTime sink_deadline(const FeedConfig& feed, SlotTime slot) {
  if (feed.deadline) return WallTime(slot) + *feed.deadline;
  if (feed.schedule.is_interval()) return WallTime(slot) + feed.schedule.interval();
  auto next = feed.schedule.next_after(WallTime(slot));
  return next ? WallTime(*next) : WallTime(slot) + feed.window;
}

std::vector<FeedSinks> make_feed_sinks(const Config& config, Clock& clock, EnvLookup env) {
  std::vector<FeedSinks> out;
  for (const FeedConfig& feed : config.feeds) {
    if (feed.sinks.empty()) continue;
    FeedSinks fs;
    fs.feed = feed.id;
    fs.deadline_of = [feed](SlotTime slot) { return sink_deadline(feed, slot); };
    for (const SinkConfig& sink : feed.sinks) {
      std::visit(
          [&](const auto& c) {
            using T = std::decay_t<decltype(c)>;
            if constexpr (std::is_same_v<T, DynamoDbSinkConfig>) {
              fs.sinks.push_back(std::make_shared<DynamoDbSink>(feed.id, c, clock, env));
            } else if constexpr (std::is_same_v<T, EvmSinkConfig>) {
              fs.sinks.push_back(std::make_shared<EvmSink>(feed, c, config.secrets,
                                                           config.service.data_dir, clock));
            }
          },
          sink);
    }
    out.push_back(std::move(fs));
  }
  return out;
}

Status check_feed_sinks(const std::vector<FeedSinks>& feeds) {
  for (const FeedSinks& fs : feeds) {
    for (const auto& sink : fs.sinks) {
      Status st = sink->check();
      if (st.ok()) continue;
      if (st.retryable()) {
        spdlog::warn(
            "feed {}: sink {} is not reachable now ({}); deliveries will retry and go "
            "to the DLQ while it is not",
            fs.feed.str(), sink->describe(), st.message());
        continue;
      }
      return st.With(fmt::format("feed {}", fs.feed.str()));
    }
  }
  return Status::Ok();
}

// One sink's queue and the thread that delivers from it.
class SinkDispatcher::Lane {
 public:
  Lane(FeedId feed, std::shared_ptr<Sink> sink, std::function<WallTime(SlotTime)> deadline_of,
       DeadLetterQueue& dlq, Clock& clock, const SinkDispatcherOptions& options)
      : feed_(std::move(feed)),
        sink_(std::move(sink)),
        deadline_of_(std::move(deadline_of)),
        dlq_(dlq),
        clock_(clock),
        options_(options),
        thread_([this](std::stop_token stop) { run(stop); }) {}
  ~Lane() { stop(); }

  const std::shared_ptr<Sink>& sink() const { return sink_; }

  void submit(const ValueRecord& record) {
    bool stopping;
    {
      std::lock_guard lock(mu_);
      stopping = stopping_;
      if (!stopping && queue_.size() < options_.max_queue) {
        queue_.push_back(record);
        cv_.notify_one();
        return;
      }
    }
    to_dlq(record,
           stopping ? Status::Cancelled("the sink was stopped (daemon stopping or reloading)")
                    : Status::Unavailable(
                          fmt::format("queue is full ({} records waiting)", options_.max_queue)),
           0, clock_.now());
  }

  // Lets the queue drain (bounded by the drain budget) and joins the thread. Idempotent.
  void stop() {
    {
      std::lock_guard lock(mu_);
      if (!stopping_) {
        stopping_ = true;
        drain_end_ = clock_.now() + options_.drain_budget;
      }
    }
    thread_.request_stop();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void run(std::stop_token stop) {
    while (true) {
      ValueRecord record;
      bool draining = false;
      WallTime drain_end;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, stop, [&] { return !queue_.empty(); });
        if (queue_.empty()) return;  // stopped and drained
        record = std::move(queue_.front());
        queue_.pop_front();
        draining = stopping_;
        drain_end = drain_end_;
      }
      WallTime deadline = deadline_of_(record.slot);
      const WallTime started = clock_.now();
      if (draining) {
        if (started >= drain_end) {
          to_dlq(record, Status::Cancelled("the daemon stopped before the sink delivery"), 0,
                 started);
          continue;
        }
        deadline = std::min(deadline, drain_end);
      }
      // No stop token: the deadline (and the drain budget) bound a delivery.
      Delivery d = sink_->deliver(record, deadline, {});
      if (d.status.ok()) {
        if (failing_) {
          spdlog::info("feed {}: sink {} delivers again", feed_.str(), sink_->describe());
          failing_ = false;
        }
        continue;
      }
      failing_ = true;
      to_dlq(record, d.status, d.attempts, started);
    }
  }

  void to_dlq(const ValueRecord& record, const Status& error, int attempts,
              WallTime first_failure) {
    DlqMessage m;
    m.feed = record.feed;
    m.slot = record.slot;
    m.execution = record.execution;
    m.stage = sink_->stage();
    m.error = fmt::format("{}: {}", sink_->describe(), error.message());
    m.attempts = attempts;
    m.first_failure = first_failure;
    m.last_failure = clock_.now();
    m.record = record;
    auto pushed = dlq_.push(std::move(m));
    if (!pushed.ok()) {
      spdlog::error("feed {} slot {}: sink {} failed ({}) and the DLQ cannot be written: {}",
                    record.feed.str(), format_iso_ms(record.slot), sink_->describe(),
                    error.message(), pushed.status().message());
    }
  }

  const FeedId feed_;
  const std::shared_ptr<Sink> sink_;
  const std::function<WallTime(SlotTime)> deadline_of_;
  DeadLetterQueue& dlq_;
  Clock& clock_;
  const SinkDispatcherOptions options_;
  bool failing_ = false;  // only the lane's thread uses it

  std::mutex mu_;
  std::condition_variable_any cv_;
  std::deque<ValueRecord> queue_;  // guarded by mu_
  bool stopping_ = false;          // guarded by mu_
  WallTime drain_end_;             // guarded by mu_
  std::jthread thread_;            // last: starts after every other member exists
};

SinkDispatcher::SinkDispatcher(DeadLetterQueue& dlq, Clock& clock, SinkDispatcherOptions options)
    : dlq_(dlq), clock_(clock), options_(options) {}

SinkDispatcher::~SinkDispatcher() {
  stop();
}

std::vector<std::string> SinkDispatcher::stages() {
  return {"sink:dynamodb", "sink:evm"};
}

void SinkDispatcher::configure(std::vector<FeedSinks> feeds) {
  std::multimap<FeedId, std::shared_ptr<Lane>> lanes;
  for (const FeedSinks& fs : feeds) {
    for (const auto& sink : fs.sinks) {
      lanes.emplace(fs.feed,
                    std::make_shared<Lane>(fs.feed, sink, fs.deadline_of, dlq_, clock_, options_));
    }
  }
  std::multimap<FeedId, std::shared_ptr<Lane>> old;
  {
    std::lock_guard lock(mu_);
    old.swap(lanes_);
    lanes_ = std::move(lanes);
    feeds_ = std::move(feeds);
  }
  for (auto& [feed, lane] : old) lane->stop();
}

void SinkDispatcher::submit(const ValueRecord& record) {
  std::lock_guard lock(mu_);
  auto [begin, end] = lanes_.equal_range(record.feed);
  for (auto it = begin; it != end; ++it) it->second->submit(record);
}

Status SinkDispatcher::redrive(const DlqMessage& message) {
  if (!message.record) {
    return Status::InvalidArgument(fmt::format("DLQ message {} has no record", message.id));
  }
  std::vector<std::shared_ptr<Sink>> sinks;
  {
    std::lock_guard lock(mu_);
    for (const FeedSinks& fs : feeds_) {
      if (fs.feed != message.record->feed) continue;
      for (const auto& sink : fs.sinks) {
        if (sink->stage() == message.stage) sinks.push_back(sink);
      }
    }
  }
  if (sinks.empty()) {
    return Status::Unavailable(
        fmt::format("feed {} has no {} sink in the config; restore it, or purge the message",
                    message.record->feed.str(), message.stage.substr(message.stage.find(':') + 1)));
  }
  const WallTime deadline = clock_.now() + options_.redrive_timeout;
  for (const auto& sink : sinks) {
    Delivery d = sink->redeliver(*message.record, deadline);
    if (!d.status.ok()) return d.status.With(sink->describe());
  }
  return Status::Ok();
}

void SinkDispatcher::stop() {
  std::multimap<FeedId, std::shared_ptr<Lane>> lanes;
  {
    std::lock_guard lock(mu_);
    lanes = lanes_;
  }
  for (auto& [feed, lane] : lanes) lane->stop();
}

}  // namespace metronome
