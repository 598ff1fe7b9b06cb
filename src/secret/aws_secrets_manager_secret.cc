#include "secret/aws_secrets_manager_secret.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <string.h>

namespace metronome {
namespace {

constexpr Millis kTimeout{5000};

}  // namespace

AwsSecretsManagerSecret::AwsSecretsManagerSecret(SecretName name, AwsSecretsManagerConfig config,
                                                 Clock& clock, EnvLookup env)
    : name_(std::move(name)),
      config_(std::move(config)),
      clock_(clock),
      client_(AwsServiceConfig{"secretsmanager", "secretsmanager", "application/x-amz-json-1.1",
                               config_.region, config_.endpoint},
              std::move(env)) {}

std::string AwsSecretsManagerSecret::describe() const {
  std::string what = fmt::format("AWS Secrets Manager secret '{}' ({}, {})", config_.secret_id,
                                 config_.region, client_.endpoint());
  if (!config_.json_key.empty()) what += fmt::format(", key '{}'", config_.json_key);
  return what;
}

Result<SecretValue> AwsSecretsManagerSecret::read() {
  std::lock_guard lock(mu_);
  const MonoTime now = clock_.monotonic_now();
  if (cached_ && now - fetched_at_ < config_.refresh) return *cached_;
  Result<SecretValue> fresh = fetch();
  if (!fresh.ok()) {
    if (!cached_) return fresh.status();
    if (!stale_warned_) {
      spdlog::warn("secret {}: refresh failed, keeping the value read earlier: {}", name_.str(),
                   fresh.status().message());
      stale_warned_ = true;
    }
    return *cached_;
  }
  if (cached_ && !(*cached_ == *fresh)) {
    spdlog::info("secret {}: {} changed; using its new value", name_.str(), describe());
  }
  stale_warned_ = false;
  cached_ = std::move(*fresh);
  fetched_at_ = now;
  return *cached_;
}

Result<SecretValue> AwsSecretsManagerSecret::fetch() {
  auto context = [&] { return fmt::format("secret {}: {}", name_.str(), describe()); };
  Result<AwsResponse> r =
      client_.call("GetSecretValue", {{"SecretId", config_.secret_id}}, kTimeout);
  if (!r.ok()) return r.status().With(context());
  if (!r->ok()) {
    std::string what = fmt::format("{}: GetSecretValue: {}", context(), r->describe());
    if (r->retryable()) return Status::Unavailable(what);
    if (r->error_type == "ResourceNotFoundException") return Status::NotFound(what);
    if (r->http_status == 403 || r->error_type == "AccessDeniedException") {
      return Status::PermissionDenied(what);
    }
    return Status::InvalidArgument(what);
  }
  auto it = r->body.is_object() ? r->body.find("SecretString") : r->body.end();
  if (!r->body.is_object() || it == r->body.end() || !it->is_string()) {
    return Status::InvalidArgument(fmt::format(
        "{}: the answer has no SecretString (a binary secret is not supported)", context()));
  }
  std::string text = it->get<std::string>();
  explicit_bzero(it->get_ptr<std::string*>()->data(), it->get_ptr<std::string*>()->size());
  if (config_.json_key.empty()) {
    if (text.empty()) return Status::InvalidArgument(fmt::format("{}: is empty", context()));
    SecretValue value(std::move(text));
    return value;
  }
  // Never put the parser's message in the error: it quotes the text, which is the secret.
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  explicit_bzero(text.data(), text.size());
  if (doc.is_discarded() || !doc.is_object()) {
    return Status::InvalidArgument(
        fmt::format("{}: json_key '{}' is set but the secret is not a JSON object", context(),
                    config_.json_key));
  }
  auto key = doc.find(config_.json_key);
  if (key == doc.end()) {
    return Status::NotFound(
        fmt::format("{}: the JSON secret has no key '{}'", context(), config_.json_key));
  }
  if (!key->is_string()) {
    return Status::InvalidArgument(fmt::format("{}: key '{}' of the JSON secret is not a string",
                                               context(), config_.json_key));
  }
  SecretValue value(key->get<std::string>());
  std::string* held = key->get_ptr<std::string*>();
  explicit_bzero(held->data(), held->size());
  return value;
}

}  // namespace metronome
