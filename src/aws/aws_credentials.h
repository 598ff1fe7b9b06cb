// AWS credentials, found where the AWS CLI and SDKs look, in the same order:
//   1. the environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (optional);
//   2. the shared credentials file (AWS_SHARED_CREDENTIALS_FILE, default ~/.aws/credentials),
//      profile AWS_PROFILE (default "default"): aws_access_key_id, aws_secret_access_key,
//      aws_session_token.
// Errors name what is missing and where it was looked for, never a secret.
//
// The environment is read through an injected lookup so tests need not change the process's.
// Thread-safety: load_aws_credentials() may be called concurrently (with the process lookup,
// as long as nobody calls setenv meanwhile).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace metronome {

struct AwsCredentials {
  AwsCredentials() = default;
  AwsCredentials(const AwsCredentials&) = default;
  AwsCredentials& operator=(const AwsCredentials&) = default;
  ~AwsCredentials();  // wipes the secret key and the token

  std::string access_key_id;
  std::string secret_access_key;  // never log
  std::string session_token;      // empty: none; never log
  std::string source;             // "environment" or "shared credentials file F, profile P"
};

// Looks up an environment variable; nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(std::string_view name)>;
// The process environment.
std::optional<std::string> process_env(std::string_view name);

// NotFound naming the variables and the file looked at when there are no credentials;
// InvalidArgument when they are incomplete (e.g. a key id without its secret key).
Result<AwsCredentials> load_aws_credentials(const EnvLookup& env = process_env);

}  // namespace metronome
