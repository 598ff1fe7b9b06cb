// Sink: somewhere a published record goes after it is durable in the store (a DynamoDB table;
// later an EVM chain). The store stays the record of truth: a sink that fails puts the record on
// the dead-letter queue with stage "sink:<kind>", and `dlq redrive` delivers that exact record to
// the sink again. The slot itself stays published.
//
// A delivery must be idempotent: delivering a record the sink already has is success (DynamoDB:
// a conditional put refused because the item exists), so a redrive or a retry after an ambiguous
// failure never writes a slot twice.
//
// Thread-safety: every method may be called concurrently (the sink's lane and a redrive).
#pragma once

#include <stop_token>
#include <string>
#include <string_view>

#include "common/result.h"
#include "common/time.h"
#include "store/records.h"

namespace metronome {

struct Delivery {
  Status status;     // Ok: delivered, or found delivered already
  int attempts = 0;  // requests made
};

class Sink {
 public:
  virtual ~Sink() = default;

  // "dynamodb"; the DLQ stage of its failures is "sink:" + kind().
  virtual std::string_view kind() const = 0;
  std::string stage() const { return "sink:" + std::string(kind()); }
  // For messages: "dynamodb table RandomIntegers (us-east-1, layout seed)".
  virtual std::string describe() const = 0;

  // Start-up check of what would make every delivery fail: missing credentials, a missing table
  // (NotFound / InvalidArgument naming what is missing). Unavailable when the destination cannot
  // be reached right now, which is not fatal: deliveries retry and go to the DLQ.
  virtual Status check() = 0;

  // Delivers one record, retrying throttling and transient failures with backoff while another
  // attempt fits before `deadline`; always makes at least one attempt.
  virtual Delivery deliver(const ValueRecord& record, WallTime deadline, std::stop_token stop) = 0;
  // A DLQ redrive of `record`. Default: deliver(). A sink may decide differently for a record
  // that is no longer the newest (evm: submitted only if still newer than the chain's value).
  virtual Delivery redeliver(const ValueRecord& record, WallTime deadline) {
    return deliver(record, deadline, {});
  }
};

}  // namespace metronome
