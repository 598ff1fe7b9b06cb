#include "secret/secret_registry.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <vector>

#include "secret/aws_secrets_manager_secret.h"
#include "secret/env_secret.h"
#include "secret/file_secret.h"

namespace metronome {

namespace {

Result<SecretRegistry> build(const std::map<SecretName, SecretConfig>& secrets, Clock* clock) {
  std::map<SecretName, std::unique_ptr<SecretProvider>> providers;
  for (const auto& [name, config] : secrets) {
    int kinds = int{config.file.has_value()} + int{config.env.has_value()} +
                int{config.aws_secrets_manager.has_value()};
    if (kinds != 1) {
      return Status::InvalidArgument(fmt::format(
          "secret {}: set exactly one of file, env or aws_secrets_manager", name.str()));
    }
    if (config.aws_secrets_manager) {
      if (clock == nullptr) {
        return Status::Internal(
            fmt::format("secret {}: an AWS Secrets Manager secret needs a clock", name.str()));
      }
      providers[name] =
          std::make_unique<AwsSecretsManagerSecret>(name, *config.aws_secrets_manager, *clock);
    } else if (config.file) {
      providers[name] = std::make_unique<FileSecret>(name, *config.file);
    } else {
      providers[name] = std::make_unique<EnvSecret>(name, *config.env);
    }
  }
  return SecretRegistry::from_providers(std::move(providers));
}

}  // namespace

Result<SecretRegistry> SecretRegistry::from_config(
    const std::map<SecretName, SecretConfig>& secrets, Clock& clock) {
  return build(secrets, &clock);
}

Result<SecretRegistry> SecretRegistry::from_config(
    const std::map<SecretName, SecretConfig>& secrets) {
  return build(secrets, nullptr);
}

SecretRegistry SecretRegistry::from_providers(
    std::map<SecretName, std::unique_ptr<SecretProvider>> providers) {
  SecretRegistry registry;
  registry.providers_ = std::move(providers);
  return registry;
}

Result<SecretValue> SecretRegistry::read(const SecretName& name) const {
  auto it = providers_.find(name);
  if (it == providers_.end()) {
    std::vector<std::string> known;
    for (const auto& [n, p] : providers_) known.push_back(n.str());
    return Status::NotFound(
        fmt::format("unknown secret '{}' (configured: {})", name.str(),
                    known.empty() ? "none" : fmt::to_string(fmt::join(known, ", "))));
  }
  return it->second->read();
}

std::string SecretRegistry::describe(const SecretName& name) const {
  auto it = providers_.find(name);
  if (it == providers_.end()) return fmt::format("unknown secret '{}'", name.str());
  return fmt::format("secret {}: {}", name.str(), it->second->describe());
}

}  // namespace metronome
