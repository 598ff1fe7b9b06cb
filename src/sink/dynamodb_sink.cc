#include "sink/dynamodb_sink.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>

namespace metronome {
namespace {

constexpr Millis kMinAttemptTimeout{500};  // even a late delivery gets a real chance
constexpr Millis kMaxAttemptTimeout{10'000};
constexpr Nanos kAttemptReserve = std::chrono::milliseconds(25);
constexpr Millis kCheckTimeout{3000};

nlohmann::json s(const std::string& v) {
  return {{"S", v}};
}
nlohmann::json n(int64_t v) {
  return {{"N", std::to_string(v)}};
}
int64_t to_ns(WallTime t) {
  return t.time_since_epoch().count();
}

Millis attempt_timeout(WallTime now, WallTime deadline) {
  auto left = std::chrono::duration_cast<Millis>(deadline - now);
  return std::clamp(left, kMinAttemptTimeout, kMaxAttemptTimeout);
}

}  // namespace

std::string datetime_utc(SlotTime slot) {
  // format_iso_s: "2026-11-28T01:02:03Z".
  std::string iso = format_iso_s(slot);
  iso[10] = ' ';
  iso.pop_back();
  return iso;
}

std::string_view dynamodb_partition_key(DynamoDbSinkConfig::Layout layout) {
  return layout == DynamoDbSinkConfig::Layout::kSeed ? "datetime_utc" : "feed";
}

nlohmann::json dynamodb_item(const ValueRecord& r, DynamoDbSinkConfig::Layout layout) {
  if (layout == DynamoDbSinkConfig::Layout::kSeed) {
    return {{"datetime_utc", s(datetime_utc(r.slot))}, {"random_int", {{"N", r.value}}}};
  }
  nlohmann::json item = {
      {"feed", s(r.feed.str())},
      {"slot_ms", n(to_unix_ms(r.slot))},
      {"round", n(r.round)},
      {"slot", s(format_iso_ms(r.slot))},
      {"value", s(r.value)},
      {"decimals", n(r.decimals)},
      {"observed_at_ns", n(to_ns(r.observed_at))},
      {"published_at_ns", n(to_ns(r.published_at))},
      {"execution", s(r.execution.str())},
  };
  if (!r.signer.empty()) item["signer"] = s(r.signer);
  if (!r.signature.empty()) item["signature"] = s(r.signature);
  if (!r.digest.empty()) item["digest"] = s(r.digest);
  if (!r.proof.empty()) item["proof"] = s(r.proof);
  return item;
}

Result<ValueRecord> record_from_dynamodb_item(const nlohmann::json& item) {
  auto attr = [&](const char* name, const char* type, bool required) -> Result<std::string> {
    auto it = item.find(name);
    if (it == item.end()) {
      if (!required) return std::string();
      return Status::InvalidArgument(fmt::format("DynamoDB item: missing attribute '{}'", name));
    }
    auto v = it->find(type);
    if (v == it->end() || !v->is_string()) {
      return Status::InvalidArgument(
          fmt::format("DynamoDB item: attribute '{}' is not of type {}", name, type));
    }
    return v->get<std::string>();
  };
  auto number = [&](const char* name) -> Result<int64_t> {
    METRONOME_ASSIGN_OR_RETURN(std::string text, attr(name, "N", true));
    int64_t v = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || ptr != text.data() + text.size()) {
      return Status::InvalidArgument(
          fmt::format("DynamoDB item: attribute '{}' is not an integer: '{}'", name, text));
    }
    return v;
  };
  ValueRecord r;
  METRONOME_ASSIGN_OR_RETURN(std::string feed, attr("feed", "S", true));
  r.feed = FeedId(feed);
  METRONOME_ASSIGN_OR_RETURN(int64_t slot_ms, number("slot_ms"));
  r.slot = slot_from_unix_ms(slot_ms);
  METRONOME_ASSIGN_OR_RETURN(r.round, number("round"));
  METRONOME_ASSIGN_OR_RETURN(r.value, attr("value", "S", true));
  METRONOME_ASSIGN_OR_RETURN(int64_t decimals, number("decimals"));
  r.decimals = static_cast<int>(decimals);
  METRONOME_ASSIGN_OR_RETURN(int64_t observed, number("observed_at_ns"));
  r.observed_at = WallTime(Nanos(observed));
  METRONOME_ASSIGN_OR_RETURN(int64_t published, number("published_at_ns"));
  r.published_at = WallTime(Nanos(published));
  METRONOME_ASSIGN_OR_RETURN(std::string execution, attr("execution", "S", true));
  r.execution = ExecutionId(execution);
  METRONOME_ASSIGN_OR_RETURN(r.signer, attr("signer", "S", false));
  METRONOME_ASSIGN_OR_RETURN(r.signature, attr("signature", "S", false));
  METRONOME_ASSIGN_OR_RETURN(r.digest, attr("digest", "S", false));
  METRONOME_ASSIGN_OR_RETURN(r.proof, attr("proof", "S", false));
  return r;
}

DynamoDbSink::DynamoDbSink(FeedId feed, DynamoDbSinkConfig config, Clock& clock, EnvLookup env,
                           BackoffPolicy backoff)
    : feed_(std::move(feed)),
      config_(std::move(config)),
      clock_(clock),
      client_(AwsServiceConfig{"dynamodb", "DynamoDB_20120810", "application/x-amz-json-1.0",
                               config_.region, config_.endpoint},
              std::move(env)),
      backoff_(backoff),
      jitter_(std::random_device{}()) {}

std::string DynamoDbSink::describe() const {
  return fmt::format("dynamodb table {} ({}, {}, layout {})", config_.table, config_.region,
                     client_.endpoint(), to_string(config_.layout));
}

Status DynamoDbSink::table_missing() const {
  return Status::NotFound(fmt::format(
      "DynamoDB table '{}' does not exist (region {}, endpoint {}); create it with `metronome "
      "dynamodb create-table --config FILE --feed {}`",
      config_.table, config_.region, client_.endpoint(), feed_.str()));
}

Status DynamoDbSink::check() {
  Status credentials = client_.check_credentials();
  if (!credentials.ok()) {
    return credentials.With(
        fmt::format("feed {} sink dynamodb table {}", feed_.str(), config_.table));
  }
  METRONOME_ASSIGN_OR_RETURN(
      AwsResponse r, client_.call("DescribeTable", {{"TableName", config_.table}}, kCheckTimeout));
  if (r.ok()) return Status::Ok();
  if (r.error_type == "ResourceNotFoundException") return table_missing();
  return Status::Unavailable(
      fmt::format("DynamoDB DescribeTable {}: {}", config_.table, r.describe()));
}

Delivery DynamoDbSink::deliver(const ValueRecord& record, WallTime deadline, std::stop_token stop) {
  const std::string key(dynamodb_partition_key(config_.layout));
  const nlohmann::json request = {
      {"TableName", config_.table},
      {"Item", dynamodb_item(record, config_.layout)},
      {"ConditionExpression", fmt::format("attribute_not_exists({})", key)},
  };
  Delivery d;
  Status last;
  while (true) {
    ++d.attempts;
    Result<AwsResponse> r =
        client_.call("PutItem", request, attempt_timeout(clock_.now(), deadline));
    if (r.ok()) {
      // ConditionalCheckFailed: the item exists, from an earlier attempt whose answer was lost
      // or an earlier redrive: delivered.
      if (r->ok() || r->error_type == "ConditionalCheckFailedException") {
        d.status = Status::Ok();
        return d;
      }
      if (r->error_type == "ResourceNotFoundException") {
        d.status = table_missing();
        return d;
      }
      last =
          Status::Unavailable(fmt::format("DynamoDB PutItem {}: {}", config_.table, r->describe()));
      if (!r->retryable()) {
        d.status = Status::InvalidArgument(last.message());
        return d;
      }
    } else {
      last = r.status();
      // No credentials is not going to change by retrying.
      if (!last.retryable()) {
        d.status = last.With(fmt::format("DynamoDB PutItem {}", config_.table));
        return d;
      }
    }
    double u;
    {
      std::lock_guard lock(jitter_mu_);
      u = std::uniform_real_distribution<double>(0.0, 1.0)(jitter_);
    }
    Nanos delay = backoff_delay(backoff_, d.attempts, u);
    if (!retry_fits(clock_.now(), delay, kAttemptReserve, deadline) ||
        !clock_.sleep_for(delay, stop)) {
      d.status = last;
      return d;
    }
  }
}

Status DynamoDbSink::create_table(Millis wait) {
  const bool seed = config_.layout == DynamoDbSinkConfig::Layout::kSeed;
  nlohmann::json attributes = nlohmann::json::array();
  nlohmann::json keys = nlohmann::json::array();
  if (seed) {
    attributes.push_back({{"AttributeName", "datetime_utc"}, {"AttributeType", "S"}});
    keys.push_back({{"AttributeName", "datetime_utc"}, {"KeyType", "HASH"}});
  } else {
    attributes.push_back({{"AttributeName", "feed"}, {"AttributeType", "S"}});
    attributes.push_back({{"AttributeName", "slot_ms"}, {"AttributeType", "N"}});
    keys.push_back({{"AttributeName", "feed"}, {"KeyType", "HASH"}});
    keys.push_back({{"AttributeName", "slot_ms"}, {"KeyType", "RANGE"}});
  }
  nlohmann::json request = {{"TableName", config_.table},
                            {"AttributeDefinitions", attributes},
                            {"KeySchema", keys},
                            {"BillingMode", "PAY_PER_REQUEST"}};
  METRONOME_ASSIGN_OR_RETURN(AwsResponse r,
                             client_.call("CreateTable", request, kMaxAttemptTimeout));
  if (r.error_type == "ResourceInUseException") {
    return Status::AlreadyExists(fmt::format("DynamoDB table '{}' already exists", config_.table));
  }
  if (!r.ok()) {
    return Status::InvalidArgument(
        fmt::format("DynamoDB CreateTable {}: {}", config_.table, r.describe()));
  }
  const MonoTime until = clock_.monotonic_now() + wait;
  while (true) {
    METRONOME_ASSIGN_OR_RETURN(
        AwsResponse d,
        client_.call("DescribeTable", {{"TableName", config_.table}}, kCheckTimeout));
    if (d.ok() && d.body.is_object() &&
        d.body.value("/Table/TableStatus"_json_pointer, std::string()) == "ACTIVE") {
      return Status::Ok();
    }
    if (clock_.monotonic_now() >= until) {
      return Status::DeadlineExceeded(
          fmt::format("DynamoDB table '{}' created but not ACTIVE after {}", config_.table,
                      format_duration(wait)));
    }
    clock_.sleep_for(std::chrono::milliseconds(100), {});
  }
}

}  // namespace metronome
