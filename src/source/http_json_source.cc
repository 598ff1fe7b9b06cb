#include "source/http_json_source.h"

#include <fmt/format.h>
#include <strings.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/decimal.h"
#include "source/value_text.h"

namespace metronome {
namespace {

using json = nlohmann::json;

// Builds a DOM like nlohmann's own parser, except that every non-integer number is kept as the
// text it was written as (a JSON string), so "0.1" stays 0.1 and not 0.1000000000000000055...
// Integers are exact in int64/uint64; larger ones arrive as non-integers, with their text.
class ExactDomBuilder {
 public:
  bool null() { return add(nullptr) != nullptr; }
  bool boolean(bool v) { return add(v) != nullptr; }
  bool number_integer(json::number_integer_t v) { return add(v) != nullptr; }
  bool number_unsigned(json::number_unsigned_t v) { return add(v) != nullptr; }
  bool number_float(json::number_float_t, const json::string_t& text) {
    return add(text) != nullptr;
  }
  bool string(json::string_t& v) { return add(std::move(v)) != nullptr; }
  bool binary(json::binary_t&) { return false; }  // not JSON text
  bool start_object(std::size_t) {
    stack_.push_back(add(json::object()));
    return true;
  }
  bool key(json::string_t& k) {
    member_ = &(*stack_.back())[k];
    return true;
  }
  bool end_object() {
    stack_.pop_back();
    return true;
  }
  bool start_array(std::size_t) {
    stack_.push_back(add(json::array()));
    return true;
  }
  bool end_array() {
    stack_.pop_back();
    return true;
  }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception&) {
    error_position_ = position;
    return false;
  }

  json& root() { return root_; }
  size_t error_position() const { return error_position_; }

 private:
  // Invariant: stack_ holds the open containers; only the innermost one grows, so pointers to
  // the outer ones stay valid (object members live in map nodes, which never move).
  json* add(json v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    json& top = *stack_.back();
    if (top.is_array()) {
      top.push_back(std::move(v));
      return &top.back();
    }
    *member_ = std::move(v);
    return member_;
  }

  json root_;
  std::vector<json*> stack_;
  json* member_ = nullptr;
  size_t error_position_ = 0;
};

std::string_view type_of(const json& j) {
  switch (j.type()) {
    case json::value_t::object:
      return "an object";
    case json::value_t::array:
      return "an array";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::null:
      return "null";
    default:
      return "a value";
  }
}

// Drops the user info and the query, which may carry credentials.
std::string url_for_messages(const std::string& url) {
  if (!curl::load().ok()) return "(URL)";
  CURLU* parsed = curl::lib().url();
  if (parsed == nullptr) return "(URL)";
  std::string shown = "(unparsable URL)";
  if (curl::lib().url_set(parsed, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    curl::lib().url_set(parsed, CURLUPART_USER, nullptr, 0);
    curl::lib().url_set(parsed, CURLUPART_PASSWORD, nullptr, 0);
    curl::lib().url_set(parsed, CURLUPART_QUERY, nullptr, 0);
    char* text = nullptr;
    if (curl::lib().url_get(parsed, CURLUPART_URL, &text, 0) == CURLUE_OK) {
      shown = text;
      curl::lib().free(text);
    }
  }
  curl::lib().url_cleanup(parsed);
  return shown;
}

struct BodySink {
  std::string body;
  bool over = false;
};

size_t write_body(char* data, size_t size, size_t count, void* user) {
  auto* sink = static_cast<BodySink*>(user);
  size_t n = size * count;
  if (sink->body.size() + n > HttpJsonSource::kMaxBodyBytes) {
    sink->over = true;
    return 0;  // aborts the transfer: CURLE_WRITE_ERROR
  }
  sink->body.append(data, n);
  return n;
}

}  // namespace

Result<std::string> value_at_pointer(std::string_view body, const std::string& pointer,
                                     int decimals) {
  ExactDomBuilder builder;
  bool parsed = false;
  try {
    parsed = json::sax_parse(body, &builder);
  } catch (const json::exception&) {
    parsed = false;
  }
  if (!parsed) {
    return Status::InvalidArgument(fmt::format("the response is not JSON (error at byte {}): '{}'",
                                               builder.error_position(),
                                               truncate_for_message(trim_ascii(body))));
  }
  const json* at = nullptr;
  try {
    at = &builder.root().at(json::json_pointer(pointer));
  } catch (const json::exception&) {
    return Status::InvalidArgument(fmt::format("nothing at JSON pointer '{}' in '{}'", pointer,
                                               truncate_for_message(trim_ascii(body))));
  }
  std::string text;
  if (at->is_number_integer()) {
    text = at->dump();  // int64 or uint64: exact
  } else if (at->is_string()) {
    text = at->get<std::string>();
  } else {
    return Status::InvalidArgument(fmt::format("the value at JSON pointer '{}' is {}: '{}'",
                                               pointer, type_of(*at),
                                               truncate_for_message(at->dump())));
  }
  auto value = exact_value_text(text, decimals);
  if (!value) return value.status().With(fmt::format("at JSON pointer '{}'", pointer));
  return value;
}

Result<std::unique_ptr<HttpJsonSource>> HttpJsonSource::create(HttpJsonSourceConfig config,
                                                               int decimals,
                                                               const SecretRegistry* secrets,
                                                               Clock& clock) {
  try {
    json::json_pointer check(config.pointer);
  } catch (const json::exception&) {
    return Status::InvalidArgument(fmt::format("invalid JSON pointer '{}'", config.pointer));
  }
  std::vector<Header> headers;
  for (const auto& [name, value] : config.headers) {
    Header h{name, {}};
    constexpr std::string_view kPrefix = "${secret:";
    std::string_view rest = value;
    while (!rest.empty()) {
      size_t at = rest.find(kPrefix);
      size_t close = at == std::string_view::npos ? at : rest.find('}', at);
      if (at == std::string_view::npos || close == std::string_view::npos) {
        h.parts.push_back({std::string(rest), false});
        break;
      }
      if (at > 0) h.parts.push_back({std::string(rest.substr(0, at)), false});
      std::string secret(rest.substr(at + kPrefix.size(), close - at - kPrefix.size()));
      if (secrets == nullptr || !secrets->contains(SecretName(secret))) {
        return Status::InvalidArgument(fmt::format("header {}: unknown secret '{}'", name, secret));
      }
      h.parts.push_back({std::move(secret), true});
      rest.remove_prefix(close + 1);
    }
    headers.push_back(std::move(h));
  }
  return std::unique_ptr<HttpJsonSource>(
      new HttpJsonSource(std::move(config), decimals, secrets, clock, std::move(headers)));
}

HttpJsonSource::HttpJsonSource(HttpJsonSourceConfig config, int decimals,
                               const SecretRegistry* secrets, Clock& clock,
                               std::vector<Header> headers)
    : config_(std::move(config)),
      decimals_(decimals),
      secrets_(secrets),
      clock_(clock),
      headers_(std::move(headers)),
      shown_url_(url_for_messages(config_.url)),
      handle_(curl::load().ok() ? curl::lib().easy_init() : nullptr) {}

Status HttpJsonSource::header_lines(std::vector<std::string>& out) const {
  bool accept = false;
  for (const Header& h : headers_) {
    std::string line = h.name + ": ";
    for (const HeaderPart& part : h.parts) {
      if (!part.secret) {
        line += part.text;
        continue;
      }
      auto value = secrets_->read(SecretName(part.text));
      if (!value) return value.status().With(fmt::format("header {}", h.name));
      if (value->reveal().find_first_of("\r\n") != std::string_view::npos) {
        return Status::InvalidArgument(
            fmt::format("header {}: secret '{}' holds a line break", h.name, part.text));
      }
      line += value->reveal();
    }
    accept = accept || strcasecmp(h.name.c_str(), "Accept") == 0;
    out.push_back(std::move(line));
  }
  if (!accept) out.push_back("Accept: application/json");
  return Status::Ok();
}

Result<SourceValue> HttpJsonSource::observe(const ObserveContext& ctx) {
  const WallTime start = clock_.now();
  if (start >= ctx.deadline) {
    return Status::DeadlineExceeded("no time left before the slot's deadline");
  }
  const Nanos remaining = ctx.deadline - start;
  const bool bounded_by_deadline = !config_.timeout || *config_.timeout >= remaining;
  const Nanos budget = bounded_by_deadline ? remaining : Nanos(*config_.timeout);
  const long budget_ms =
      static_cast<long>(std::max<int64_t>(1, std::chrono::ceil<Millis>(budget).count()));

  METRONOME_RETURN_IF_ERROR(curl::load());
  std::vector<std::string> lines;
  METRONOME_RETURN_IF_ERROR(header_lines(lines));
  std::unique_ptr<curl_slist, curl::SlistDeleter> headers(nullptr);
  for (const std::string& line : lines) {
    curl_slist* next = curl::lib().slist_append(headers.get(), line.c_str());
    if (next == nullptr) return Status::Internal("curl_slist_append failed");
    headers.release();
    headers.reset(next);
  }

  std::lock_guard lock(mu_);
  CURL* h = handle_.get();
  if (h == nullptr) return Status::Internal("curl_easy_init failed");
  curl::lib().easy_reset(h);  // keeps the connection cache: the next request reuses the connection
  BodySink sink;
  char error_buffer[CURL_ERROR_SIZE] = {};
  curl::lib().easy_setopt(h, CURLOPT_URL, config_.url.c_str());
  curl::lib().easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl::lib().easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl::lib().easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
  curl::lib().easy_setopt(h, CURLOPT_MAXREDIRS, kMaxRedirects);
  curl::lib().easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
  curl::lib().easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
  curl::lib().easy_setopt(h, CURLOPT_NOSIGNAL, 1L);  // no SIGALRM in a threaded daemon
  curl::lib().easy_setopt(h, CURLOPT_TIMEOUT_MS, budget_ms);
  curl::lib().easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, budget_ms);
  curl::lib().easy_setopt(h, CURLOPT_USERAGENT, "metronome");
  curl::lib().easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
  curl::lib().easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(kMaxBodyBytes));
  curl::lib().easy_setopt(h, CURLOPT_WRITEFUNCTION, &write_body);
  curl::lib().easy_setopt(h, CURLOPT_WRITEDATA, &sink);
  curl::lib().easy_setopt(h, CURLOPT_ERRORBUFFER, error_buffer);
  if (config_.method == "POST") {
    curl::lib().easy_setopt(h, CURLOPT_POSTFIELDS, config_.body.c_str());
    curl::lib().easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                            static_cast<curl_off_t>(config_.body.size()));
  } else {
    curl::lib().easy_setopt(h, CURLOPT_HTTPGET, 1L);
  }
  CURLcode rc = curl::lib().easy_perform(h);
  long status = 0;
  curl::lib().easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl::lib().easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);  // `headers` is freed on return

  if (rc == CURLE_OPERATION_TIMEDOUT) {
    const auto took = std::chrono::duration_cast<Millis>(clock_.now() - start);
    if (bounded_by_deadline) {
      return Status::DeadlineExceeded(
          fmt::format("no answer by the slot's deadline ({} after the request started)",
                      format_duration(took)));
    }
    return Status::Unavailable(
        fmt::format("no answer within its timeout of {}", format_duration(*config_.timeout)));
  }
  if (rc == CURLE_TOO_MANY_REDIRECTS) {
    return Status::InvalidArgument(
        fmt::format("more than {} redirects (a redirect loop?)", kMaxRedirects));
  }
  if (rc == CURLE_FILESIZE_EXCEEDED || (rc == CURLE_WRITE_ERROR && sink.over)) {
    return Status::InvalidArgument(
        fmt::format("the response body is larger than {} KiB", kMaxBodyBytes / 1024));
  }
  if (rc != CURLE_OK) {
    std::string detail = error_buffer[0] != '\0' ? error_buffer : curl::lib().easy_strerror(rc);
    return Status::Unavailable(fmt::format("request failed: {}", detail));
  }
  if (status < 200 || status > 299) {
    std::string message = fmt::format("HTTP {} (body starts '{}')", status,
                                      truncate_for_message(trim_ascii(sink.body)));
    if (status == 408 || status == 429 || status >= 500) return Status::Unavailable(message);
    return Status::InvalidArgument(message);
  }
  METRONOME_ASSIGN_OR_RETURN(std::string value,
                             value_at_pointer(sink.body, config_.pointer, decimals_));
  return SourceValue{std::move(value)};
}

std::string HttpJsonSource::describe() const {
  return fmt::format("http_json {} {}", config_.method, shown_url_);
}

}  // namespace metronome
