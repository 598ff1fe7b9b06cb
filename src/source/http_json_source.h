// http_json: GETs (or POSTs) a URL and takes the number at an RFC 6901 JSON pointer.
//
// libcurl, one easy handle per source kept between observations (its connection is reused:
// keep-alive, TLS session), HTTPS verified against the system CAs, at most kMaxRedirects
// redirects (http and https only), a body over kMaxBodyBytes refused. Each request is bounded by
// min(timeout, the slot's deadline). Header values may hold ${secret:NAME}, read from the
// SecretRegistry at each request (a rotated API key is picked up); secret values never appear in
// messages. JSON numbers are taken from their text, never through a double.
//
// Errors: DeadlineExceeded (no answer by the slot's deadline); Unavailable (connection failed,
// its own timeout, HTTP 408, 429 or 5xx); InvalidArgument (other HTTP statuses, too many
// redirects, a body over the cap, not JSON, nothing at the pointer, not a usable number).
// Messages show the URL without user info and query (they may hold credentials).
//
// Thread-safety: observe() may be called concurrently; calls are serialised on the handle.
// libcurl is loaded on first use (common/libcurl.h); observe() reports it when it cannot be.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "clock/clock.h"
#include "common/libcurl.h"
#include "config/config.h"
#include "secret/secret_registry.h"
#include "source/source.h"

namespace metronome {

class HttpJsonSource final : public Source {
 public:
  static constexpr size_t kMaxBodyBytes = 1024 * 1024;
  static constexpr long kMaxRedirects = 5;

  // `secrets` must outlive the source (may be null when no header references a secret).
  static Result<std::unique_ptr<HttpJsonSource>> create(HttpJsonSourceConfig config, int decimals,
                                                        const SecretRegistry* secrets,
                                                        Clock& clock);

  Result<SourceValue> observe(const ObserveContext& ctx) override;
  std::string describe() const override;

 private:
  struct HeaderPart {
    std::string text;  // literal text, or the secret's name
    bool secret = false;
  };
  struct Header {
    std::string name;
    std::vector<HeaderPart> parts;
  };

  HttpJsonSource(HttpJsonSourceConfig config, int decimals, const SecretRegistry* secrets,
                 Clock& clock, std::vector<Header> headers);
  // The request's header lines, secrets resolved. Errors name the header and the secret.
  Status header_lines(std::vector<std::string>& out) const;

  const HttpJsonSourceConfig config_;
  const int decimals_;
  const SecretRegistry* secrets_;
  Clock& clock_;
  const std::vector<Header> headers_;
  const std::string shown_url_;  // without user info and query

  std::mutex mu_;
  std::unique_ptr<CURL, curl::EasyDeleter> handle_;  // guarded by mu_
};

// The value at `pointer` in the JSON document `body`, as exact decimal text scaled-checked for
// `decimals`. Exposed for tests. InvalidArgument when the body is not JSON, nothing is at the
// pointer, or the value there is not a number or a string holding one.
Result<std::string> value_at_pointer(std::string_view body, const std::string& pointer,
                                     int decimals);

}  // namespace metronome
