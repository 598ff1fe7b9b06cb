#include "secret/env_secret.h"

#include <fmt/format.h>
#include <stdlib.h>

namespace metronome {

EnvSecret::EnvSecret(SecretName name, std::string variable)
    : name_(std::move(name)), variable_(std::move(variable)) {}

Result<SecretValue> EnvSecret::read() {
  const char* value = ::getenv(variable_.c_str());
  if (value == nullptr || *value == '\0') {
    return Status::NotFound(fmt::format("secret {}: environment variable {} is {}", name_.str(),
                                        variable_, value == nullptr ? "not set" : "empty"));
  }
  return SecretValue(std::string(value));
}

std::string EnvSecret::describe() const {
  return fmt::format("env {}", variable_);
}

}  // namespace metronome
