// JsonRpcClient: Ethereum JSON-RPC over HTTP (libcurl), with several endpoints and failover.
//
// Requests go to the active URL. A transport failure — connection refused, a timeout (a node
// that accepts the connection and never answers), HTTP 5xx or a body that is not JSON-RPC —
// makes the next URL active and the same request is tried there, each URL at most once per call.
// An answer with a JSON-RPC `error` is the node's verdict, not a transport failure: it is
// returned (RpcError) and does not fail over.
//
// health_check() asks every URL for eth_chainId and eth_blockNumber: a URL on another chain is
// never used (its error is kept for status), and one whose head lags the best by more than
// max_head_lag blocks is tried only after the healthy ones.
//
// Requests are idempotent at this level (reads, and eth_sendRawTransaction of a signed
// transaction: the same bytes twice are one transaction), so retrying one on another URL never
// duplicates anything. Thread-safe.
#pragma once

#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/time.h"

namespace metronome {

struct JsonRpcOptions {
  std::vector<std::string> urls;
  uint64_t chain_id = 1;
  Millis timeout{2000};  // per request and URL
  uint64_t max_head_lag = 5;
};

// A JSON-RPC error answer.
struct RpcError {
  int64_t code = 0;
  std::string message;
  std::string data;  // "0x..." revert data when the node gives it
};

struct RpcAnswer {
  std::optional<nlohmann::json> result;
  std::optional<RpcError> error;
  std::string url;  // which endpoint answered
};

struct EndpointHealth {
  std::string url;
  bool usable = false;  // right chain and answering
  uint64_t head = 0;
  std::string problem;  // why not usable / lagging
};

class JsonRpcClient {
 public:
  explicit JsonRpcClient(JsonRpcOptions options);

  // The answer of the first URL that answers; Unavailable naming every URL's failure when none
  // does.
  Result<RpcAnswer> request(const std::string& method, const nlohmann::json& params);
  // request(), with a JSON-RPC error turned into kInvalidArgument "METHOD: MESSAGE".
  Result<nlohmann::json> call(const std::string& method, const nlohmann::json& params);

  // Checks every URL (see above) and orders them. Ok when at least one is usable; NotFound
  // (configuration) when every answering URL is on another chain; Unavailable when none answers.
  Status health_check();
  std::vector<EndpointHealth> health() const;
  std::string active_url() const;
  const JsonRpcOptions& options() const { return options_; }

  // Counts of transport failures that moved to the next URL (for tests and metrics).
  uint64_t failovers() const;

 private:
  // One HTTP POST; Unavailable on a transport failure.
  Result<nlohmann::json> post(const std::string& url, const std::string& body) const;

  const JsonRpcOptions options_;
  mutable std::mutex mu_;
  std::vector<size_t> order_;           // guarded by mu_: URL indexes, preferred first
  std::vector<bool> excluded_;          // guarded by mu_: wrong chain
  std::vector<EndpointHealth> health_;  // guarded by mu_
  uint64_t failovers_ = 0;              // guarded by mu_
  uint64_t next_id_ = 1;                // guarded by mu_
};

}  // namespace metronome
