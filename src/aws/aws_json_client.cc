#include "aws/aws_json_client.h"

#include <fmt/format.h>
#include <string.h>

#include <algorithm>
#include <memory>

#include "common/libcurl.h"

namespace metronome {
namespace {

size_t append_body(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

bool is_throttling(std::string_view type) {
  return type == "ProvisionedThroughputExceededException" || type == "ThrottlingException" ||
         type == "RequestLimitExceeded" || type == "Throttling" ||
         type == "TooManyRequestsException" || type == "LimitExceededException";
}

}  // namespace

bool AwsResponse::retryable() const {
  return http_status >= 500 || http_status == 429 || is_throttling(error_type);
}

std::string AwsResponse::describe() const {
  if (error_type.empty() && message.empty()) return fmt::format("HTTP {}", http_status);
  return fmt::format("HTTP {} {}: {}", http_status, error_type.empty() ? "error" : error_type,
                     message);
}

AwsJsonClient::AwsJsonClient(AwsServiceConfig config, EnvLookup env)
    : config_(std::move(config)), env_(std::move(env)) {
  endpoint_ = config_.endpoint.empty()
                  ? fmt::format("https://{}.{}.amazonaws.com", config_.service, config_.region)
                  : config_.endpoint;
  while (endpoint_.size() > 1 && endpoint_.back() == '/') endpoint_.pop_back();
}

Status AwsJsonClient::check_credentials() const {
  return load_aws_credentials(env_).status();
}

Result<AwsResponse> AwsJsonClient::call(std::string_view operation, const nlohmann::json& request,
                                        Millis timeout) const {
  METRONOME_ASSIGN_OR_RETURN(AwsCredentials credentials, load_aws_credentials(env_));
  const std::string url = endpoint_ + "/";
  const std::string body = request.dump();
  const std::string sigv4 = fmt::format("aws:amz:{}:{}", config_.region, config_.service);

  METRONOME_RETURN_IF_ERROR(curl::load());
  std::unique_ptr<CURL, curl::EasyDeleter> easy(curl::lib().easy_init());
  if (!easy) return Status::Internal("curl_easy_init failed");
  std::unique_ptr<curl_slist, curl::SlistDeleter> headers(nullptr);
  auto add_header = [&](const std::string& h) {
    headers.reset(curl::lib().slist_append(headers.release(), h.c_str()));
  };
  add_header("Content-Type: " + config_.content_type);
  add_header(fmt::format("X-Amz-Target: {}.{}", config_.target_prefix, operation));
  if (!credentials.session_token.empty()) {
    std::string token_header = "x-amz-security-token: " + credentials.session_token;
    add_header(token_header);
    explicit_bzero(token_header.data(), token_header.size());
  }

  std::string response_body;
  char error_buffer[CURL_ERROR_SIZE] = {0};
  CURL* h = easy.get();
  curl::lib().easy_setopt(h, CURLOPT_URL, url.c_str());
  curl::lib().easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl::lib().easy_setopt(h, CURLOPT_POST, 1L);
  curl::lib().easy_setopt(h, CURLOPT_POSTFIELDS, body.data());  // not copied: `body` outlives `h`
  curl::lib().easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl::lib().easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
  curl::lib().easy_setopt(h, CURLOPT_USERAGENT, "metronome");
  curl::lib().easy_setopt(h, CURLOPT_AWS_SIGV4, sigv4.c_str());
  curl::lib().easy_setopt(h, CURLOPT_USERNAME, credentials.access_key_id.c_str());
  curl::lib().easy_setopt(h, CURLOPT_PASSWORD, credentials.secret_access_key.c_str());
  curl::lib().easy_setopt(h, CURLOPT_TIMEOUT_MS,
                          static_cast<long>(std::max<int64_t>(timeout.count(), 1)));
  curl::lib().easy_setopt(h, CURLOPT_NOSIGNAL, 1L);  // no SIGALRM in a threaded daemon
  curl::lib().easy_setopt(h, CURLOPT_WRITEFUNCTION, &append_body);
  curl::lib().easy_setopt(h, CURLOPT_WRITEDATA, &response_body);
  curl::lib().easy_setopt(h, CURLOPT_ERRORBUFFER, error_buffer);

  CURLcode rc = curl::lib().easy_perform(h);
  if (rc != CURLE_OK) {
    return Status::Unavailable(
        fmt::format("{} {} at {}: {}", config_.service, operation, endpoint_,
                    error_buffer[0] != '\0' ? error_buffer : curl::lib().easy_strerror(rc)));
  }
  AwsResponse response;
  curl::lib().easy_getinfo(h, CURLINFO_RESPONSE_CODE, &response.http_status);
  response.body = nlohmann::json::parse(response_body, nullptr, /*allow_exceptions=*/false);
  if (response.body.is_discarded()) response.body = nullptr;
  if (!response.ok()) {
    if (response.body.is_object()) {
      auto text = [&](const char* key) -> std::string {
        auto it = response.body.find(key);
        return it != response.body.end() && it->is_string() ? it->get<std::string>() : "";
      };
      std::string type = text("__type");
      size_t hash = type.rfind('#');
      response.error_type = hash == std::string::npos ? type : type.substr(hash + 1);
      response.message = text("message").empty() ? text("Message") : text("message");
    } else {
      // Not an AWS JSON error (a proxy, a wrong endpoint): show a little of what came back.
      response.message = response_body.substr(0, 200);
    }
  }
  return response;
}

}  // namespace metronome
