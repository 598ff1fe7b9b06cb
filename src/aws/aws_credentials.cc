#include "aws/aws_credentials.h"

#include <fmt/format.h>
#include <string.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace metronome {
namespace {

void wipe(std::string& s) {
  if (!s.empty()) explicit_bzero(s.data(), s.size());
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

std::optional<std::string> non_empty(const EnvLookup& env, std::string_view name) {
  std::optional<std::string> v = env(name);
  if (v && v->empty()) return std::nullopt;
  return v;
}

}  // namespace

AwsCredentials::~AwsCredentials() {
  wipe(secret_access_key);
  wipe(session_token);
}

std::optional<std::string> process_env(std::string_view name) {
  const char* v = std::getenv(std::string(name).c_str());
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

Result<AwsCredentials> load_aws_credentials(const EnvLookup& env) {
  std::optional<std::string> key_id = non_empty(env, "AWS_ACCESS_KEY_ID");
  std::optional<std::string> secret = non_empty(env, "AWS_SECRET_ACCESS_KEY");
  if (key_id || secret) {
    if (!key_id || !secret) {
      return Status::InvalidArgument(
          fmt::format("AWS credentials: {} is set in the environment but {} is not",
                      key_id ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
                      key_id ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID"));
    }
    AwsCredentials c;
    c.access_key_id = std::move(*key_id);
    c.secret_access_key = std::move(*secret);
    wipe(*secret);
    c.session_token = non_empty(env, "AWS_SESSION_TOKEN").value_or("");
    c.source = "environment";
    return c;
  }

  std::string file;
  if (auto f = non_empty(env, "AWS_SHARED_CREDENTIALS_FILE")) {
    file = *f;
  } else if (auto home = non_empty(env, "HOME")) {
    file = *home + "/.aws/credentials";
  }
  const std::string profile = non_empty(env, "AWS_PROFILE").value_or("default");
  const std::string env_missing =
      "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set in the environment";
  if (file.empty()) {
    return Status::NotFound(fmt::format(
        "no AWS credentials: {}, and neither AWS_SHARED_CREDENTIALS_FILE nor HOME is set",
        env_missing));
  }
  std::ifstream in(file);
  if (!in) {
    return Status::NotFound(fmt::format(
        "no AWS credentials: {}, and the shared credentials file {} cannot be read ({})",
        env_missing, file, errno != 0 ? strerror(errno) : "unknown error"));
  }
  AwsCredentials c;
  bool in_profile = false;
  bool profile_found = false;
  std::string line;
  while (std::getline(in, line)) {
    std::string_view l = trim(line);
    if (l.empty() || l.front() == '#' || l.front() == ';') continue;
    if (l.front() == '[') {
      in_profile = l.back() == ']' && trim(l.substr(1, l.size() - 2)) == profile;
      profile_found = profile_found || in_profile;
      continue;
    }
    if (!in_profile) continue;
    size_t eq = l.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view key = trim(l.substr(0, eq));
    std::string_view value = trim(l.substr(eq + 1));
    if (key == "aws_access_key_id") c.access_key_id = value;
    if (key == "aws_secret_access_key") c.secret_access_key = value;
    if (key == "aws_session_token") c.session_token = value;
  }
  wipe(line);
  if (!profile_found) {
    return Status::NotFound(
        fmt::format("no AWS credentials: {}, and the shared credentials file {} has no profile "
                    "[{}] (AWS_PROFILE chooses the profile)",
                    env_missing, file, profile));
  }
  if (c.access_key_id.empty() || c.secret_access_key.empty()) {
    return Status::InvalidArgument(
        fmt::format("AWS credentials: profile [{}] of {} has no {}", profile, file,
                    c.access_key_id.empty() ? "aws_access_key_id" : "aws_secret_access_key"));
  }
  c.source = fmt::format("shared credentials file {}, profile {}", file, profile);
  return c;
}

}  // namespace metronome
