// A secret in an environment variable of the daemon's process.
#pragma once

#include <string>

#include "secret/secret.h"

namespace metronome {

class EnvSecret final : public SecretProvider {
 public:
  EnvSecret(SecretName name, std::string variable);
  // NotFound naming the variable when it is unset or empty.
  Result<SecretValue> read() override;
  std::string describe() const override;

 private:
  SecretName name_;
  std::string variable_;
};

}  // namespace metronome
