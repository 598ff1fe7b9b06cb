// AwsJsonClient: calls one AWS JSON-protocol service (DynamoDB, Secrets Manager) in one region.
//
// Each call is an HTTPS (or, for a local endpoint, HTTP) POST of a JSON body with the
// X-Amz-Target header "<target_prefix>.<Operation>", signed with AWS Signature Version 4 by
// libcurl itself (CURLOPT_AWS_SIGV4 "aws:amz:<region>:<service>"); a session token goes in the
// x-amz-security-token header, which libcurl signs with the others. Credentials are loaded on
// every call (cheap), so rotated ones in the shared file are picked up.
//
// Thread-safety: call() may be called concurrently (one curl handle per call).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "aws/aws_credentials.h"
#include "common/result.h"
#include "common/time.h"

namespace metronome {

struct AwsServiceConfig {
  std::string service;        // SigV4 service name: "dynamodb", "secretsmanager"
  std::string target_prefix;  // "DynamoDB_20120810", "secretsmanager"
  std::string content_type;   // "application/x-amz-json-1.0" or "-1.1"
  std::string region;         // "us-east-1"
  std::string endpoint;       // empty: https://<service>.<region>.amazonaws.com
};

// An answer from the service (any HTTP status).
struct AwsResponse {
  long http_status = 0;
  nlohmann::json body;     // the parsed body (null when empty or not JSON)
  std::string error_type;  // "ConditionalCheckFailedException" (after '#' in __type); empty: none
  std::string message;     // the error's message, if any

  bool ok() const { return http_status >= 200 && http_status < 300; }
  // Throttling and server errors: worth another attempt.
  bool retryable() const;
  // "HTTP 400 ResourceNotFoundException: Requested resource not found"
  std::string describe() const;
};

class AwsJsonClient {
 public:
  // REQUIRES: config.region is a valid region name (see aws_region.h).
  AwsJsonClient(AwsServiceConfig config, EnvLookup env = process_env);

  // Calls `operation` with `request`. Unavailable when the service could not be reached or did
  // not answer within `timeout` (the request may or may not have been executed); NotFound /
  // InvalidArgument when there are no usable credentials. Any HTTP answer is a response.
  Result<AwsResponse> call(std::string_view operation, const nlohmann::json& request,
                           Millis timeout) const;

  // Checks that credentials can be found now; the error names what is missing.
  Status check_credentials() const;

  const std::string& endpoint() const { return endpoint_; }
  const AwsServiceConfig& config() const { return config_; }

 private:
  AwsServiceConfig config_;
  EnvLookup env_;
  std::string endpoint_;
};

}  // namespace metronome
