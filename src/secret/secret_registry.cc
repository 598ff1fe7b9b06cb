#include "secret/secret_registry.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <vector>

#include "secret/env_secret.h"
#include "secret/file_secret.h"

namespace metronome {

Result<SecretRegistry> SecretRegistry::from_config(
    const std::map<SecretName, SecretConfig>& secrets) {
  std::map<SecretName, std::unique_ptr<SecretProvider>> providers;
  for (const auto& [name, config] : secrets) {
    if (config.file.has_value() == config.env.has_value()) {
      return Status::InvalidArgument(
          fmt::format("secret {}: set exactly one of file or env", name.str()));
    }
    if (config.file) {
      providers[name] = std::make_unique<FileSecret>(name, *config.file);
    } else {
      providers[name] = std::make_unique<EnvSecret>(name, *config.env);
    }
  }
  return from_providers(std::move(providers));
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
