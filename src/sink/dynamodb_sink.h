// DynamoDbSink: writes each published record of a feed to a DynamoDB table, once.
//
// Two item layouts (DynamoDbSinkConfig::Layout):
//   seed    the replaced system's items, so its readers keep working: partition key
//           datetime_utc (S, the slot in UTC as "YYYY-MM-DD HH:MM:SS") and random_int (N, the
//           value's exact decimal text). One item per second: feeds with whole-second slots only.
//   record  the whole signed record: partition key feed (S), sort key slot_ms (N), and round,
//           slot, value, decimals, observed_at_ns, published_at_ns, execution, signer, signature,
//           digest (the last three only when the record is signed).
// Every PutItem carries ConditionExpression attribute_not_exists(<partition key>): a slot is
// written once, and ConditionalCheckFailed means it was delivered already (success).
//
// Requests go through AwsJsonClient (SigV4 by libcurl). Throttling, 5xx and unreachable
// endpoints are retried with backoff (publish/backoff.h) inside the delivery's deadline.
//
// Thread-safety: all methods may be called concurrently.
#pragma once

#include <mutex>
#include <nlohmann/json.hpp>
#include <random>

#include "aws/aws_json_client.h"
#include "clock/clock.h"
#include "config/config.h"
#include "publish/backoff.h"
#include "sink/sink.h"

namespace metronome {

// "2026-11-28 01:02:03": the slot's second in UTC (milliseconds dropped).
std::string datetime_utc(SlotTime slot);
// The item of `record` in `layout` (DynamoDB attribute-value JSON).
nlohmann::json dynamodb_item(const ValueRecord& record, DynamoDbSinkConfig::Layout layout);
// The record of a `record`-layout item. InvalidArgument naming the missing or malformed attribute.
Result<ValueRecord> record_from_dynamodb_item(const nlohmann::json& item);
// The partition key attribute of `layout`: "datetime_utc" or "feed".
std::string_view dynamodb_partition_key(DynamoDbSinkConfig::Layout layout);

class DynamoDbSink final : public Sink {
 public:
  DynamoDbSink(FeedId feed, DynamoDbSinkConfig config, Clock& clock, EnvLookup env = process_env,
               BackoffPolicy backoff = {});

  std::string_view kind() const override { return "dynamodb"; }
  std::string describe() const override;
  Status check() override;
  Delivery deliver(const ValueRecord& record, WallTime deadline, std::stop_token stop) override;

  // Creates the table for this sink's layout with on-demand billing (PAY_PER_REQUEST) and waits
  // (at most `wait`) until it is ACTIVE. AlreadyExists when the table is there.
  Status create_table(Millis wait);

  const DynamoDbSinkConfig& config() const { return config_; }

 private:
  // NotFound naming the table, for ResourceNotFoundException.
  Status table_missing() const;

  FeedId feed_;
  DynamoDbSinkConfig config_;
  Clock& clock_;
  AwsJsonClient client_;
  BackoffPolicy backoff_;
  std::mutex jitter_mu_;
  std::mt19937_64 jitter_;  // guarded by jitter_mu_
};

}  // namespace metronome
