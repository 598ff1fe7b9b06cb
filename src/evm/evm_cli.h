// `metronome evm deploy` and `metronome evm status` (see docs/evm.md).
#pragma once

#include <cstdio>
#include <string>

#include "clock/clock.h"
#include "common/result.h"
#include "config/config.h"

namespace metronome {

struct EvmDeployOptions {
  std::string feed;  // empty: every feed with an evm sink
  uint64_t max_future_ms = 60'000;
  Millis wait{120'000};  // for each transaction's receipt
};

// For the selected feeds' evm sinks: deploys MetronomeFeed (the embedded bytecode) from the
// sink's sender when the sink has no `contract` (one contract per chain, sender and RPC URLs),
// then authorises each feed's signer and configures its decimals and description (the feed id).
// Prints one line per feed: "feed ID: contract 0x... (chain N)". Returns the address of the last
// contract used.
Result<std::string> evm_deploy(const Config& config, const EvmDeployOptions& options, Clock& clock,
                               std::FILE* out);

// Per feed with an evm sink, one JSON line: on-chain round, value, timestamp and age; the unmined
// transaction (hash, nonce, fees, age) from evm.db; the sender's next nonce and balance.
Status evm_status(const Config& config, const std::string& feed, Clock& clock, std::FILE* out);

}  // namespace metronome
