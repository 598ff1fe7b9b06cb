// SecretRegistry: the configured secrets by name, one provider each ([secrets.NAME] in the config).
//
// Built once at start-up from the config; it never reads a secret until asked, so a missing file is
// reported by the first read(), naming the secret and where it lives. Providers cache, so read()
// is cheap and still picks up a rotated secret. Thread-safety: read() and describe() may be called
// concurrently; the registry itself is immutable after from_config(). Movable, not copyable.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "clock/clock.h"
#include "common/ids.h"
#include "common/result.h"
#include "config/config.h"
#include "secret/secret.h"

namespace metronome {

class SecretRegistry {
 public:
  // One FileSecret, EnvSecret or AwsSecretsManagerSecret per entry. InvalidArgument when an entry
  // has more or fewer than one of them (load_config() already refuses that). AWS Secrets Manager
  // secrets refresh on `clock`; the overload without a clock refuses them.
  static Result<SecretRegistry> from_config(const std::map<SecretName, SecretConfig>& secrets,
                                            Clock& clock);
  static Result<SecretRegistry> from_config(const std::map<SecretName, SecretConfig>& secrets);

  // A registry of the given providers, e.g. fakes in tests.
  static SecretRegistry from_providers(
      std::map<SecretName, std::unique_ptr<SecretProvider>> providers);

  SecretRegistry(SecretRegistry&&) noexcept = default;
  SecretRegistry& operator=(SecretRegistry&&) noexcept = default;
  SecretRegistry(const SecretRegistry&) = delete;
  SecretRegistry& operator=(const SecretRegistry&) = delete;

  // The current value of `name`. NotFound naming the secret when it is not configured; otherwise
  // whatever its provider returns.
  Result<SecretValue> read(const SecretName& name) const;
  // "secret oracle_key: file /var/lib/metronome/secrets/oracle_key", or "unknown secret 'x'".
  std::string describe(const SecretName& name) const;
  bool contains(const SecretName& name) const { return providers_.contains(name); }

 private:
  SecretRegistry() = default;

  std::map<SecretName, std::unique_ptr<SecretProvider>> providers_;
};

}  // namespace metronome
