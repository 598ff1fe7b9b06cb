// A secret in AWS Secrets Manager, read with GetSecretValue (SigV4-signed by libcurl, see
// aws/aws_json_client.h). The value is the secret's SecretString, or one key of it when json_key
// is set and the string is a JSON object ({"my_secret": "..."}). It is cached and fetched again
// once `refresh` has passed, so a rotated secret is picked up without a restart; when that fetch
// fails the cached value is kept (one warning) until a fetch succeeds.
#pragma once

#include <mutex>
#include <optional>

#include "aws/aws_json_client.h"
#include "clock/clock.h"
#include "config/config.h"
#include "secret/secret.h"

namespace metronome {

class AwsSecretsManagerSecret final : public SecretProvider {
 public:
  AwsSecretsManagerSecret(SecretName name, AwsSecretsManagerConfig config, Clock& clock,
                          EnvLookup env = process_env);

  // Errors name the secret, its id and region, never the value: NotFound / InvalidArgument for
  // missing credentials, an unknown secret, a non-JSON secret with json_key or a missing key;
  // Unavailable when the service cannot be reached.
  Result<SecretValue> read() override;
  std::string describe() const override;

 private:
  Result<SecretValue> fetch();

  SecretName name_;
  AwsSecretsManagerConfig config_;
  Clock& clock_;
  AwsJsonClient client_;
  std::mutex mu_;
  std::optional<SecretValue> cached_;  // guarded by mu_
  MonoTime fetched_at_{};              // guarded by mu_
  bool stale_warned_ = false;          // guarded by mu_
};

}  // namespace metronome
