// Secrets: values the daemon needs (a signing key, an API key) and must never show.
//
// A SecretProvider reads one secret from where it lives (a file, an environment variable, later a
// cloud secret manager). A SecretValue holds the bytes and deliberately cannot be formatted or
// logged: the only way to the text is reveal(), which makes every use visible in review.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/ids.h"
#include "common/result.h"

namespace metronome {

class SecretValue {
 public:
  SecretValue() = default;
  explicit SecretValue(std::string value) : value_(std::move(value)) {}
  SecretValue(const SecretValue&) = default;
  SecretValue& operator=(const SecretValue&) = default;
  ~SecretValue();  // wipes the bytes

  // The secret's text. Never log, format or put it in an error.
  [[nodiscard]] std::string_view reveal() const { return value_; }
  [[nodiscard]] bool empty() const { return value_.empty(); }
  friend bool operator==(const SecretValue& a, const SecretValue& b) {
    return a.value_ == b.value_;
  }

 private:
  std::string value_;
};

// Reads one secret. Thread-safety: read() may be called concurrently.
class SecretProvider {
 public:
  virtual ~SecretProvider() = default;
  // The current value. A provider may cache; a changed source must be picked up by a later read().
  // Errors name the secret and where it lives, never the value.
  virtual Result<SecretValue> read() = 0;
  // Where the secret lives, for messages: "file /var/lib/metronome/secrets/oracle_key".
  virtual std::string describe() const = 0;
};

}  // namespace metronome
