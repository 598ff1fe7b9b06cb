#include "config/config.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <string_view>
#include <system_error>

#include "aws/aws_region.h"

namespace metronome {
namespace {

// Chain ids are JSON numbers in wallets; keep them exact in a double (EIP-155 practice).
constexpr int64_t kMaxChainId = (int64_t{1} << 53) - 1;

namespace fs = std::filesystem;

constexpr Millis kMinInterval{10};
constexpr Millis kDefaultInterval{2000};
constexpr Millis kDefaultWindow{60'000};
constexpr std::string_view kSupportedSources = "random_int, http_json, command, file, median";

// Feed ids and secret names: [A-Za-z0-9_.-]{1,64}.
bool is_valid_name(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  });
}

std::string_view type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

// "host:port" with a port in 0..65535; an IPv6 host is bracketed ("[::1]:8080").
bool is_valid_listen(std::string_view s, std::string& why) {
  size_t colon = s.rfind(':');
  if (colon == std::string_view::npos) {
    why = "expected host:port";
    return false;
  }
  std::string_view host = s.substr(0, colon);
  std::string_view port = s.substr(colon + 1);
  if (host.empty()) {
    why = "missing host";
    return false;
  }
  if (host.find(':') != std::string_view::npos &&
      (host.front() != '[' || host.back() != ']' || host.size() < 3)) {
    why = "an IPv6 host must be in brackets, e.g. [::1]:8080";
    return false;
  }
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() || value > 65535) {
    why = fmt::format("port '{}' is not a number in 0..65535", port);
    return false;
  }
  return true;
}

bool is_valid_url(std::string_view s) {
  for (std::string_view scheme : {"http://", "https://"}) {
    if (s.starts_with(scheme) && s.size() > scheme.size() && s[scheme.size()] != '/') {
      return std::none_of(s.begin(), s.end(),
                          [](char c) { return std::isspace(static_cast<unsigned char>(c)); });
    }
  }
  return false;
}

fs::path default_dlq_path(const fs::path& db) {
  std::string s = db.string();
  if (s.ends_with(".db")) return s.substr(0, s.size() - 3) + ".dlq.db";
  return s + ".dlq.db";
}

// A PostgreSQL URL with the password of its user info (if any) replaced, for printing.
std::string redact_url_password(const std::string& url) {
  const size_t authority = url.find("://");
  if (authority == std::string::npos) return url;
  const size_t end = url.find_first_of("/?", authority + 3);
  const size_t at = url.rfind('@', end == std::string::npos ? std::string::npos : end);
  const size_t colon = url.find(':', authority + 3);
  std::string out = url;
  if (at != std::string::npos && at > authority && colon != std::string::npos && colon < at) {
    out = url.substr(0, colon + 1) + "REDACTED" + url.substr(at);
  }
  // libpq also takes the password as a query parameter.
  for (size_t q = out.find('?'); q != std::string::npos; q = out.find('&', q + 1)) {
    if (out.compare(q + 1, 9, "password=") != 0) continue;
    const size_t value = q + 10;
    out.replace(value,
                out.find('&', value) == std::string::npos ? std::string::npos
                                                          : out.find('&', value) - value,
                "REDACTED");
  }
  return out;
}

fs::path absolute_or_self(const fs::path& p) {
  std::error_code ec;
  fs::path abs = fs::absolute(p, ec);
  return ec ? p : abs.lexically_normal();
}

// Walks one parsed TOML document into a Config. Every error names the file, the line and the full
// key ("feeds[0].source.min"); the first error ends the walk.
class Loader {
 public:
  Loader(std::string file_label, fs::path base_dir)
      : file_(std::move(file_label)), base_dir_(std::move(base_dir)) {}
  // The file's text, for reading floats exactly as written (see get_decimal()).
  void keep_text(std::string_view text) { text_ = text; }

  Status load(const toml::table& root, Config& c) {
    METRONOME_RETURN_IF_ERROR(
        check_keys(root, "", {"service", "store", "secrets", "feeds", "alarms"}));
    const toml::table* service = nullptr;
    const toml::table* store = nullptr;
    const toml::table* secrets = nullptr;
    const toml::table* alarms = nullptr;
    METRONOME_RETURN_IF_ERROR(get_table(root, "", "service", service));
    METRONOME_RETURN_IF_ERROR(get_table(root, "", "store", store));
    METRONOME_RETURN_IF_ERROR(get_table(root, "", "secrets", secrets));
    METRONOME_RETURN_IF_ERROR(get_table(root, "", "alarms", alarms));
    METRONOME_RETURN_IF_ERROR(parse_service(service, c.service));
    METRONOME_RETURN_IF_ERROR(parse_store(store, c.service, c.store));
    if (secrets != nullptr) METRONOME_RETURN_IF_ERROR(parse_secrets(*secrets, c.secrets));
    secrets_ = &c.secrets;  // for the evm sink's sender_secret
    METRONOME_RETURN_IF_ERROR(parse_feeds(root, c));
    if (!c.store.password_secret.empty() && !c.secrets.contains(c.store.password_secret)) {
      return error(*store->get("password_secret"), "store.password_secret",
                   fmt::format("unknown secret '{}' (define it as [secrets.{}])",
                               c.store.password_secret.str(), c.store.password_secret.str()));
    }
    if (!c.service.admin_token_secret.empty() &&
        !c.secrets.contains(c.service.admin_token_secret)) {
      const toml::node* n = service->get("admin_token_secret");
      return error(
          *n, "service.admin_token_secret",
          fmt::format("unknown secret '{}' (define it as [secrets.{}])",
                      c.service.admin_token_secret.str(), c.service.admin_token_secret.str()));
    }
    if (alarms != nullptr) METRONOME_RETURN_IF_ERROR(parse_alarms(*alarms, c.alarms));
    return Status::Ok();
  }

 private:
  static std::string join(std::string_view prefix, std::string_view key) {
    return prefix.empty() ? std::string(key) : fmt::format("{}.{}", prefix, key);
  }

  static uint32_t line_of(const toml::node& n) { return n.source().begin.line; }

  Status error(uint32_t line, std::string_view key, std::string_view what) const {
    return Status::InvalidArgument(fmt::format("{}:{}: {}: {}", file_, line, key, what));
  }
  Status error(const toml::node& n, std::string_view key, std::string_view what) const {
    return error(line_of(n), key, what);
  }

  Status check_keys(const toml::table& t, std::string_view prefix,
                    std::initializer_list<std::string_view> known) const {
    for (const auto& [key, node] : t) {
      if (std::find(known.begin(), known.end(), key.str()) != known.end()) continue;
      uint32_t line = key.source().begin.line != 0 ? key.source().begin.line : line_of(node);
      return error(line, join(prefix, key.str()),
                   fmt::format("unknown key (expected one of: {})", fmt::join(known, ", ")));
    }
    return Status::Ok();
  }

  // Each getter leaves `out` unchanged when the key is absent.
  Status get_table(const toml::table& t, std::string_view prefix, std::string_view key,
                   const toml::table*& out) const {
    const toml::node* n = t.get(key);
    if (n == nullptr) return Status::Ok();
    if (!n->is_table()) {
      return error(*n, join(prefix, key), fmt::format("expected a table, got {}", type_name(*n)));
    }
    out = n->as_table();
    return Status::Ok();
  }

  Status get_string(const toml::table& t, std::string_view prefix, std::string_view key,
                    std::string& out) const {
    const toml::node* n = t.get(key);
    if (n == nullptr) return Status::Ok();
    if (!n->is_string()) {
      return error(*n, join(prefix, key), fmt::format("expected a string, got {}", type_name(*n)));
    }
    out = n->as_string()->get();
    return Status::Ok();
  }

  Status get_int(const toml::table& t, std::string_view prefix, std::string_view key, int64_t min,
                 int64_t max, int64_t& out) const {
    const toml::node* n = t.get(key);
    if (n == nullptr) return Status::Ok();
    if (!n->is_integer()) {
      return error(*n, join(prefix, key),
                   fmt::format("expected an integer, got {}", type_name(*n)));
    }
    int64_t v = n->as_integer()->get();
    if (v < min || v > max) {
      return error(*n, join(prefix, key), fmt::format("{} is out of range {}..{}", v, min, max));
    }
    out = v;
    return Status::Ok();
  }

  Status get_int(const toml::table& t, std::string_view prefix, std::string_view key, int64_t min,
                 int64_t max, int& out) const {
    int64_t v = out;
    METRONOME_RETURN_IF_ERROR(get_int(t, prefix, key, min, max, v));
    out = static_cast<int>(v);
    return Status::Ok();
  }

  // A duration string ("2s"), whole milliseconds, > 0.
  Status get_duration(const toml::table& t, std::string_view prefix, std::string_view key,
                      std::optional<Millis>& out) const {
    const toml::node* n = t.get(key);
    if (n == nullptr) return Status::Ok();
    std::string full = join(prefix, key);
    if (!n->is_string()) {
      return error(*n, full,
                   fmt::format("expected a duration string such as \"2s\", got {}", type_name(*n)));
    }
    const std::string& text = n->as_string()->get();
    Result<Nanos> d = parse_duration(text);
    if (!d) return error(*n, full, d.status().message());
    if (*d % Millis(1) != Nanos(0)) {
      return error(*n, full, fmt::format("'{}' is not a whole number of milliseconds", text));
    }
    if (*d <= Nanos(0)) return error(*n, full, fmt::format("'{}' must be greater than 0", text));
    out = std::chrono::duration_cast<Millis>(*d);
    return Status::Ok();
  }

  Status get_duration(const toml::table& t, std::string_view prefix, std::string_view key,
                      Millis& out) const {
    std::optional<Millis> v;
    METRONOME_RETURN_IF_ERROR(get_duration(t, prefix, key, v));
    if (v) out = *v;
    return Status::Ok();
  }

  // A non-empty path, resolved against the config file's folder.
  Status get_path(const toml::table& t, std::string_view prefix, std::string_view key,
                  fs::path& out) const {
    const toml::node* n = t.get(key);
    if (n == nullptr) return Status::Ok();
    std::string text;
    METRONOME_RETURN_IF_ERROR(get_string(t, prefix, key, text));
    if (text.empty()) return error(*n, join(prefix, key), "must not be empty");
    out = resolve(text);
    return Status::Ok();
  }

  fs::path resolve(const fs::path& p) const {
    return p.is_absolute() ? p.lexically_normal() : (base_dir_ / p).lexically_normal();
  }

  Status parse_service(const toml::table* t, ServiceConfig& s) const {
    s.data_dir = resolve("var");
    if (t == nullptr) return Status::Ok();
    constexpr std::string_view p = "service";
    METRONOME_RETURN_IF_ERROR(
        check_keys(*t, p,
                   {"data_dir", "listen", "log_level", "log_format", "chain_id",
                    "admin_token_secret", "realtime", "presign", "sign_batch"}));
    METRONOME_RETURN_IF_ERROR(get_path(*t, p, "data_dir", s.data_dir));
    METRONOME_RETURN_IF_ERROR(get_string(*t, p, "listen", s.listen));
    if (std::string why; !is_valid_listen(s.listen, why)) {
      return error(*t->get("listen"), "service.listen",
                   fmt::format("invalid address '{}' ({})", s.listen, why));
    }
    METRONOME_RETURN_IF_ERROR(get_string(*t, p, "log_level", s.log_level));
    static constexpr std::string_view kLevels[] = {"trace", "debug", "info", "warn", "error"};
    if (std::find(std::begin(kLevels), std::end(kLevels), s.log_level) == std::end(kLevels)) {
      return error(*t->get("log_level"), "service.log_level",
                   fmt::format("unknown level '{}' (expected one of: {})", s.log_level,
                               fmt::join(kLevels, ", ")));
    }
    METRONOME_RETURN_IF_ERROR(get_string(*t, p, "log_format", s.log_format));
    if (s.log_format != "text" && s.log_format != "json") {
      return error(*t->get("log_format"), "service.log_format",
                   fmt::format("unknown format '{}' (expected text or json)", s.log_format));
    }
    int64_t chain_id = static_cast<int64_t>(s.chain_id);
    METRONOME_RETURN_IF_ERROR(get_int(*t, p, "chain_id", 1, kMaxChainId, chain_id));
    s.chain_id = static_cast<uint64_t>(chain_id);
    std::string token;
    METRONOME_RETURN_IF_ERROR(get_string(*t, p, "admin_token_secret", token));
    s.admin_token_secret = SecretName(token);
    if (const toml::node* n = t->get("realtime")) {
      if (!n->is_boolean()) {
        return error(*n, "service.realtime",
                     fmt::format("expected true or false, got {}", type_name(*n)));
      }
      s.realtime = n->as_boolean()->get();
    }
    // 68 bytes each, up to 1.5 × N alive at once: the upper bound is about 100 MB.
    int64_t presign = static_cast<int64_t>(s.presign);
    METRONOME_RETURN_IF_ERROR(get_int(*t, p, "presign", 0, 1'000'000, presign));
    s.presign = static_cast<size_t>(presign);
    // 64: a batch never spans more than the slots one worker runs in a row (a chunk).
    int64_t sign_batch = static_cast<int64_t>(s.sign_batch);
    METRONOME_RETURN_IF_ERROR(get_int(*t, p, "sign_batch", 1, 64, sign_batch));
    s.sign_batch = static_cast<size_t>(sign_batch);
    return Status::Ok();
  }

  Status parse_store(const toml::table* t, const ServiceConfig& service, StoreConfig& s) const {
    s.path.clear();
    s.dlq_path.clear();
    if (t != nullptr) {
      constexpr std::string_view p = "store";
      METRONOME_RETURN_IF_ERROR(check_keys(*t, p,
                                           {"kind", "path", "dlq_path", "url", "password_secret",
                                            "lease_ttl", "lease_renew", "max_clock_skew"}));
      METRONOME_RETURN_IF_ERROR(get_string(*t, p, "kind", s.kind));
      if (s.kind != "sqlite" && s.kind != "postgres") {
        return error(
            *t->get("kind"), "store.kind",
            fmt::format("unsupported store kind '{}' (supported: sqlite, postgres)", s.kind));
      }
      // Each kind's keys only: a key the kind ignores is a mistake, not a default.
      for (std::string_view key :
           s.kind == "sqlite" ? std::vector<std::string_view>{"url", "password_secret", "lease_ttl",
                                                              "lease_renew", "max_clock_skew"}
                              : std::vector<std::string_view>{"path", "dlq_path"}) {
        if (const toml::node* n = t->get(key)) {
          return error(*n, join(p, key), fmt::format("not a setting of store kind '{}'", s.kind));
        }
      }
      METRONOME_RETURN_IF_ERROR(get_path(*t, p, "path", s.path));
      METRONOME_RETURN_IF_ERROR(get_path(*t, p, "dlq_path", s.dlq_path));
      METRONOME_RETURN_IF_ERROR(get_string(*t, p, "url", s.url));
      std::string password_secret;
      METRONOME_RETURN_IF_ERROR(get_string(*t, p, "password_secret", password_secret));
      s.password_secret = SecretName(password_secret);
      if (s.kind == "postgres") {
        if (s.url.empty()) {
          const toml::node* n = t->get("url");
          return error(n != nullptr ? line_of(*n) : line_of(*t), "store.url",
                       "store kind 'postgres' needs url = \"postgresql://USER@HOST:PORT/DB\"");
        }
        if (!s.url.starts_with("postgresql://") && !s.url.starts_with("postgres://")) {
          return error(*t->get("url"), "store.url",
                       "must be a PostgreSQL URL: postgresql://USER@HOST:PORT/DB");
        }
        METRONOME_RETURN_IF_ERROR(get_duration(*t, p, "lease_ttl", s.lease_ttl));
        METRONOME_RETURN_IF_ERROR(get_duration(*t, p, "lease_renew", s.lease_renew));
        METRONOME_RETURN_IF_ERROR(get_duration(*t, p, "max_clock_skew", s.max_clock_skew));
        if (s.lease_renew >= s.lease_ttl) {
          const toml::node* n = t->get("lease_renew");
          return error(n != nullptr ? *n : *t->get("lease_ttl"),
                       n != nullptr ? "store.lease_renew" : "store.lease_ttl",
                       fmt::format("lease_renew ({}) must be shorter than lease_ttl ({})",
                                   format_duration(s.lease_renew), format_duration(s.lease_ttl)));
        }
        if (s.max_clock_skew >= s.lease_ttl) {
          return error(
              *t->get("max_clock_skew"), "store.max_clock_skew",
              fmt::format("max_clock_skew ({}) must be shorter than lease_ttl ({})",
                          format_duration(s.max_clock_skew), format_duration(s.lease_ttl)));
        }
      }
    }
    if (s.path.empty()) s.path = service.data_dir / "metronome.db";
    if (s.dlq_path.empty()) s.dlq_path = default_dlq_path(s.path);
    if (t != nullptr && s.dlq_path == s.path) {
      const toml::node* n = t->get("dlq_path");
      return error(n != nullptr ? line_of(*n) : line_of(*t), "store.dlq_path",
                   "must differ from store.path");
    }
    return Status::Ok();
  }

  Status parse_secrets(const toml::table& t, std::map<SecretName, SecretConfig>& out) const {
    for (const auto& [key, node] : t) {
      std::string name(key.str());
      std::string full = fmt::format("secrets.{}", name);
      if (!is_valid_name(name)) {
        return error(node, full, "secret name must match [A-Za-z0-9_.-]{1,64}");
      }
      if (!node.is_table()) {
        return error(node, full,
                     fmt::format("expected a table with 'file' or 'env', got {}", type_name(node)));
      }
      const toml::table& st = *node.as_table();
      METRONOME_RETURN_IF_ERROR(check_keys(st, full, {"file", "env", "aws_secrets_manager"}));
      SecretConfig sc;
      sc.name = SecretName(name);
      if (st.contains("file")) {
        fs::path file;
        METRONOME_RETURN_IF_ERROR(get_path(st, full, "file", file));
        sc.file = file;
      }
      if (st.contains("env")) {
        std::string env;
        METRONOME_RETURN_IF_ERROR(get_string(st, full, "env", env));
        if (env.empty()) return error(*st.get("env"), join(full, "env"), "must not be empty");
        sc.env = env;
      }
      const toml::table* aws = nullptr;
      METRONOME_RETURN_IF_ERROR(get_table(st, full, "aws_secrets_manager", aws));
      if (aws != nullptr) {
        AwsSecretsManagerConfig a;
        METRONOME_RETURN_IF_ERROR(parse_aws_secret(*aws, join(full, "aws_secrets_manager"), a));
        sc.aws_secrets_manager = std::move(a);
      }
      int kinds = int{sc.file.has_value()} + int{sc.env.has_value()} +
                  int{sc.aws_secrets_manager.has_value()};
      if (kinds != 1) {
        return error(
            st, full,
            fmt::format("set exactly one of 'file', 'env' or 'aws_secrets_manager' (got {})",
                        kinds == 0 ? "none" : "several"));
      }
      out.emplace(sc.name, std::move(sc));
    }
    return Status::Ok();
  }

  // A required, non-empty string.
  Status get_required_string(const toml::table& t, std::string_view prefix, std::string_view key,
                             std::string& out) const {
    const toml::node* n = t.get(key);
    if (n == nullptr) return error(t, join(prefix, key), "missing");
    METRONOME_RETURN_IF_ERROR(get_string(t, prefix, key, out));
    if (out.empty()) return error(*n, join(prefix, key), "must not be empty");
    return Status::Ok();
  }

  Status get_region(const toml::table& t, std::string_view prefix, std::string& out) const {
    METRONOME_RETURN_IF_ERROR(get_required_string(t, prefix, "region", out));
    if (!is_valid_aws_region(out)) {
      return error(*t.get("region"), join(prefix, "region"),
                   fmt::format("unknown region format '{}' (expected e.g. us-east-1)", out));
    }
    return Status::Ok();
  }

  Status get_endpoint(const toml::table& t, std::string_view prefix, std::string& out) const {
    METRONOME_RETURN_IF_ERROR(get_string(t, prefix, "endpoint", out));
    if (t.contains("endpoint") && !is_valid_url(out)) {
      return error(
          *t.get("endpoint"), join(prefix, "endpoint"),
          fmt::format("invalid URL '{}' (expected http://host:port or https://host)", out));
    }
    return Status::Ok();
  }

  Status parse_aws_secret(const toml::table& t, const std::string& p,
                          AwsSecretsManagerConfig& a) const {
    METRONOME_RETURN_IF_ERROR(
        check_keys(t, p, {"secret_id", "region", "endpoint", "json_key", "refresh"}));
    METRONOME_RETURN_IF_ERROR(get_required_string(t, p, "secret_id", a.secret_id));
    METRONOME_RETURN_IF_ERROR(get_region(t, p, a.region));
    METRONOME_RETURN_IF_ERROR(get_endpoint(t, p, a.endpoint));
    METRONOME_RETURN_IF_ERROR(get_string(t, p, "json_key", a.json_key));
    if (t.contains("json_key") && a.json_key.empty()) {
      return error(*t.get("json_key"), join(p, "json_key"), "must not be empty");
    }
    METRONOME_RETURN_IF_ERROR(get_duration(t, p, "refresh", a.refresh));
    return Status::Ok();
  }

  Status parse_sinks(const toml::table& feed, const std::string& p, const FeedConfig& f,
                     std::vector<SinkConfig>& out) const {
    const toml::node* n = feed.get("sinks");
    if (n == nullptr) return Status::Ok();
    if (!n->is_array_of_tables() && !(n->is_array() && n->as_array()->empty())) {
      return error(
          *n, join(p, "sinks"),
          fmt::format("expected an array of tables, e.g. [{{ kind = \"dynamodb\", ... }}], "
                      "got {}",
                      type_name(*n)));
    }
    const toml::array& sinks = *n->as_array();
    for (size_t i = 0; i < sinks.size(); ++i) {
      const toml::table& t = *sinks[i].as_table();
      std::string sp = fmt::format("{}.sinks[{}]", p, i);
      std::string kind;
      METRONOME_RETURN_IF_ERROR(get_required_string(t, sp, "kind", kind));
      if (kind == "evm") {
        METRONOME_RETURN_IF_ERROR(parse_evm_sink(t, sp, f, out));
        continue;
      }
      if (kind != "dynamodb") {
        return error(*t.get("kind"), join(sp, "kind"),
                     fmt::format("unknown sink kind '{}' (supported: dynamodb, evm)", kind));
      }
      METRONOME_RETURN_IF_ERROR(
          check_keys(t, sp, {"kind", "table", "region", "endpoint", "layout"}));
      DynamoDbSinkConfig d;
      METRONOME_RETURN_IF_ERROR(get_required_string(t, sp, "table", d.table));
      METRONOME_RETURN_IF_ERROR(get_region(t, sp, d.region));
      METRONOME_RETURN_IF_ERROR(get_endpoint(t, sp, d.endpoint));
      std::string layout = "seed";
      METRONOME_RETURN_IF_ERROR(get_string(t, sp, "layout", layout));
      if (layout == "seed") {
        d.layout = DynamoDbSinkConfig::Layout::kSeed;
      } else if (layout == "record") {
        d.layout = DynamoDbSinkConfig::Layout::kRecord;
      } else {
        return error(*t.get("layout"), join(sp, "layout"),
                     fmt::format("unknown layout '{}' (expected seed or record)", layout));
      }
      // The seed layout keys items by the second: a feed with sub-second slots would write
      // several slots to one item (all but the first refused as already delivered).
      if (d.layout == DynamoDbSinkConfig::Layout::kSeed && f.schedule.is_interval() &&
          f.schedule.interval() % Seconds(1) != Millis(0)) {
        const toml::node* ln = t.get("layout");
        return error(ln != nullptr ? *ln : t, join(sp, "layout"),
                     fmt::format("layout seed keys items by the second (datetime_utc), but the "
                                 "feed's interval {} is not a whole number of seconds; use "
                                 "layout = \"record\"",
                                 format_duration(f.schedule.interval())));
      }
      for (size_t j = 0; j < out.size(); ++j) {
        if (!std::holds_alternative<DynamoDbSinkConfig>(out[j])) continue;
        const auto& other = std::get<DynamoDbSinkConfig>(out[j]);
        if (other.table == d.table && other.region == d.region && other.endpoint == d.endpoint) {
          return error(
              *t.get("table"), join(sp, "table"),
              fmt::format("table '{}' is already a sink of this feed (sinks[{}])", d.table, j));
        }
      }
      out.emplace_back(std::in_place_type<DynamoDbSinkConfig>, std::move(d));
    }
    return Status::Ok();
  }

  Status parse_evm_sink(const toml::table& t, const std::string& sp, const FeedConfig& f,
                        std::vector<SinkConfig>& out) const {
    METRONOME_RETURN_IF_ERROR(
        check_keys(t, sp,
                   {"kind", "rpc_urls", "chain_id", "contract", "sender_secret", "deviation_pct",
                    "heartbeat", "max_fee_gwei", "bump_pct", "bump_after_blocks", "confirmations",
                    "rpc_timeout", "max_head_lag", "stale_grace", "low_balance_eth"}));
    EvmSinkConfig e;
    const toml::node* urls = t.get("rpc_urls");
    if (urls == nullptr || !urls->is_array() || urls->as_array()->empty()) {
      return error(urls != nullptr ? *urls : t, join(sp, "rpc_urls"),
                   "expected a non-empty array of http(s) URLs, e.g. [\"http://127.0.0.1:8545\"]");
    }
    for (const toml::node& u : *urls->as_array()) {
      if (!u.is_string() || !is_valid_url(u.as_string()->get())) {
        return error(u, join(sp, "rpc_urls"),
                     fmt::format("'{}' is not an http:// or https:// URL",
                                 u.is_string() ? u.as_string()->get() : std::string(type_name(u))));
      }
      e.rpc_urls.push_back(u.as_string()->get());
    }
    int64_t chain_id = static_cast<int64_t>(f.chain_id);
    METRONOME_RETURN_IF_ERROR(get_int(t, sp, "chain_id", 1, kMaxChainId, chain_id));
    e.chain_id = static_cast<uint64_t>(chain_id);
    if (e.chain_id != f.chain_id) {
      return error(*t.get("chain_id"), join(sp, "chain_id"),
                   fmt::format("chain {} differs from the feed's chain_id {}: the contract checks "
                               "signatures in the EIP-712 domain of its own chain",
                               e.chain_id, f.chain_id));
    }
    METRONOME_RETURN_IF_ERROR(get_string(t, sp, "contract", e.contract));
    if (!e.contract.empty()) {
      bool ok = e.contract.size() == 42 && e.contract.starts_with("0x") &&
                std::all_of(e.contract.begin() + 2, e.contract.end(),
                            [](char ch) { return std::isxdigit(static_cast<unsigned char>(ch)); });
      if (!ok) {
        return error(*t.get("contract"), join(sp, "contract"),
                     fmt::format("'{}' is not an address (0x and 40 hex digits)", e.contract));
      }
    }
    std::string sender;
    METRONOME_RETURN_IF_ERROR(get_required_string(t, sp, "sender_secret", sender));
    if (!secrets_->contains(SecretName(sender))) {
      return error(*t.get("sender_secret"), join(sp, "sender_secret"),
                   fmt::format("unknown secret '{}'; add a [secrets.{}] table", sender, sender));
    }
    if (SecretName(sender) == f.secret) {
      return error(*t.get("sender_secret"), join(sp, "sender_secret"),
                   fmt::format("'{}' is the feed's signing secret; the transaction sender must "
                               "be a different key (it holds funds and is online)",
                               sender));
    }
    e.sender_secret = SecretName(sender);
    std::optional<Decimal> d;
    METRONOME_RETURN_IF_ERROR(get_decimal(t, sp, "deviation_pct", d));
    if (d) {
      if (d->negative())
        return error(*t.get("deviation_pct"), join(sp, "deviation_pct"), "must be >= 0");
      e.deviation_pct = *d;
    }
    d.reset();
    METRONOME_RETURN_IF_ERROR(get_decimal(t, sp, "max_fee_gwei", d));
    if (d) {
      if (d->negative() || d->is_zero()) {
        return error(*t.get("max_fee_gwei"), join(sp, "max_fee_gwei"), "must be > 0");
      }
      e.max_fee_gwei = *d;
    }
    d.reset();
    METRONOME_RETURN_IF_ERROR(get_decimal(t, sp, "low_balance_eth", d));
    if (d) {
      if (d->negative())
        return error(*t.get("low_balance_eth"), join(sp, "low_balance_eth"), "must be >= 0");
      e.low_balance_eth = *d;
    }
    METRONOME_RETURN_IF_ERROR(get_duration(t, sp, "heartbeat", e.heartbeat));
    METRONOME_RETURN_IF_ERROR(get_duration(t, sp, "rpc_timeout", e.rpc_timeout));
    METRONOME_RETURN_IF_ERROR(get_duration(t, sp, "stale_grace", e.stale_grace));
    METRONOME_RETURN_IF_ERROR(get_int(t, sp, "bump_pct", 10, 1000, e.bump_pct));
    METRONOME_RETURN_IF_ERROR(get_int(t, sp, "bump_after_blocks", 1, 10'000, e.bump_after_blocks));
    METRONOME_RETURN_IF_ERROR(get_int(t, sp, "confirmations", 1, 1'000, e.confirmations));
    METRONOME_RETURN_IF_ERROR(get_int(t, sp, "max_head_lag", 0, 1'000'000, e.max_head_lag));
    for (const SinkConfig& other : out) {
      if (std::holds_alternative<EvmSinkConfig>(other)) {
        return error(*t.get("kind"), join(sp, "kind"), "the feed already has an evm sink");
      }
    }
    // One transaction manager per sender and chain: two would hand out the same nonces.
    auto [it, fresh] =
        evm_senders_.emplace(fmt::format("{}|{}", e.sender_secret.str(), e.chain_id), f.id.str());
    if (!fresh) {
      return error(*t.get("sender_secret"), join(sp, "sender_secret"),
                   fmt::format("'{}' already sends feed {}'s transactions on chain {}; each evm "
                               "sink needs its own sender key (nonces)",
                               e.sender_secret.str(), it->second, e.chain_id));
    }
    out.push_back(std::move(e));
    return Status::Ok();
  }

  Status parse_feeds(const toml::table& root, Config& c) const {
    const toml::node* n = root.get("feeds");
    if (n == nullptr || (n->is_array() && n->as_array()->empty())) {
      return error(n != nullptr ? line_of(*n) : 1, "feeds",
                   "no feeds configured; add a [[feeds]] table");
    }
    if (!n->is_array_of_tables()) {
      return error(*n, "feeds",
                   fmt::format("expected an array of tables ([[feeds]]), got {}", type_name(*n)));
    }
    const toml::array& feeds = *n->as_array();
    for (size_t i = 0; i < feeds.size(); ++i) {
      FeedConfig f;
      METRONOME_RETURN_IF_ERROR(parse_feed(*feeds[i].as_table(), i, c, f));
      c.feeds.push_back(std::move(f));
    }
    return Status::Ok();
  }

  Status parse_feed(const toml::table& t, size_t index, const Config& c, FeedConfig& f) const {
    std::string p = fmt::format("feeds[{}]", index);
    METRONOME_RETURN_IF_ERROR(check_keys(
        t, p,
        {"id", "every", "cron", "window", "deadline", "observe_lead", "retries", "secret",
         "decimals", "source", "chain_id", "sinks", "min_value", "max_value", "max_change_pct"}));
    const toml::node* id_node = t.get("id");
    if (id_node == nullptr) return error(t, join(p, "id"), "missing (every feed needs an id)");
    std::string id;
    METRONOME_RETURN_IF_ERROR(get_string(t, p, "id", id));
    if (!is_valid_name(id)) {
      return error(*id_node, join(p, "id"),
                   fmt::format("invalid feed id '{}' (must match [A-Za-z0-9_.-]{{1,64}})", id));
    }
    for (size_t j = 0; j < c.feeds.size(); ++j) {
      if (c.feeds[j].id.str() == id) {
        return error(*id_node, join(p, "id"),
                     fmt::format("duplicate feed id '{}' (also feeds[{}])", id, j));
      }
    }
    f.id = FeedId(id);

    const toml::node* every_node = t.get("every");
    const toml::node* cron_node = t.get("cron");
    if (every_node != nullptr && cron_node != nullptr) {
      return error(*cron_node, join(p, "cron"), "set exactly one of 'every' or 'cron', not both");
    }
    bool is_interval = cron_node == nullptr;
    Millis interval = kDefaultInterval;
    if (every_node != nullptr) {
      std::optional<Millis> every;
      METRONOME_RETURN_IF_ERROR(get_duration(t, p, "every", every));
      if (*every < kMinInterval) {
        return error(*every_node, join(p, "every"),
                     fmt::format("interval {} is under the minimum of {}", format_duration(*every),
                                 format_duration(kMinInterval)));
      }
      interval = *every;
      f.schedule_text = every_node->as_string()->get();
    } else if (cron_node != nullptr) {
      std::string text;
      METRONOME_RETURN_IF_ERROR(get_string(t, p, "cron", text));
      Result<CronExpr> expr = CronExpr::parse(text);
      if (!expr) return error(*cron_node, join(p, "cron"), expr.status().message());
      f.schedule = Schedule::cron(std::move(*expr));
      f.schedule_text = text;
    } else {
      f.schedule_text = format_duration(interval);
    }
    if (is_interval) f.schedule = Schedule::every(interval);

    const toml::node* window_node = t.get("window");
    f.window = kDefaultWindow;
    METRONOME_RETURN_IF_ERROR(get_duration(t, p, "window", f.window));
    uint32_t window_line = window_node != nullptr ? line_of(*window_node) : line_of(t);
    std::string_view defaulted = window_node != nullptr ? "" : " (the default)";
    if (is_interval && f.window % interval != Millis(0)) {
      return error(window_line, join(p, "window"),
                   fmt::format("window {}{} is not a multiple of the interval {}",
                               format_duration(f.window), defaulted, format_duration(interval)));
    }
    if (!is_interval && f.window % Seconds(1) != Millis(0)) {
      return error(window_line, join(p, "window"),
                   fmt::format("window {} of a cron feed must be a whole number of seconds",
                               format_duration(f.window)));
    }

    const toml::node* deadline_node = t.get("deadline");
    METRONOME_RETURN_IF_ERROR(get_duration(t, p, "deadline", f.deadline));
    if (f.deadline && *f.deadline > f.window) {
      return error(*deadline_node, join(p, "deadline"),
                   fmt::format("deadline {} is longer than the window {}",
                               format_duration(*f.deadline), format_duration(f.window)));
    }
    if (!f.deadline && is_interval) f.deadline = interval;

    if (const toml::node* lead_node = t.get("observe_lead")) {
      std::optional<Millis> lead;
      METRONOME_RETURN_IF_ERROR(get_duration(t, p, "observe_lead", lead));
      // Longer would start a slot's observation before the previous slot's time.
      const Millis limit = is_interval ? interval : f.deadline.value_or(Seconds(1));
      if (*lead >= limit) {
        return error(
            *lead_node, join(p, "observe_lead"),
            fmt::format("observe_lead {} must be shorter than the {} {}", format_duration(*lead),
                        is_interval ? "interval" : "deadline", format_duration(limit)));
      }
      f.observe_lead = *lead;
    }

    METRONOME_RETURN_IF_ERROR(get_int(t, p, "retries", 0, 100, f.retries));
    METRONOME_RETURN_IF_ERROR(get_int(t, p, "decimals", 0, 36, f.decimals));
    METRONOME_RETURN_IF_ERROR(parse_bounds(t, p, f));
    int64_t chain_id = static_cast<int64_t>(c.service.chain_id);
    METRONOME_RETURN_IF_ERROR(get_int(t, p, "chain_id", 1, kMaxChainId, chain_id));
    f.chain_id = static_cast<uint64_t>(chain_id);

    if (const toml::node* secret_node = t.get("secret")) {
      std::string secret;
      METRONOME_RETURN_IF_ERROR(get_string(t, p, "secret", secret));
      if (!c.secrets.contains(SecretName(secret))) {
        std::vector<std::string> known;
        for (const auto& [name, sc] : c.secrets) known.push_back(name.str());
        return error(
            *secret_node, join(p, "secret"),
            fmt::format("unknown secret '{}' (configured: {}); add a [secrets.{}] table", secret,
                        known.empty() ? "none" : fmt::format("{}", fmt::join(known, ", ")),
                        secret));
      }
      f.secret = SecretName(secret);
    }

    const toml::table* source = nullptr;
    METRONOME_RETURN_IF_ERROR(get_table(t, p, "source", source));
    if (source != nullptr) {
      METRONOME_RETURN_IF_ERROR(parse_source(*source, join(p, "source"), c, f.source));
    }
    METRONOME_RETURN_IF_ERROR(parse_sinks(t, p, f, f.sinks));
    return Status::Ok();
  }

  Status parse_source(const toml::table& t, const std::string& p, const Config& c,
                      SourceConfig& out, bool member = false) const {
    std::string kind = "random_int";
    METRONOME_RETURN_IF_ERROR(get_string(t, p, "kind", kind));
    if (kind != "random_int") return parse_other_source(t, p, kind, c, member, out);
    if (kind == "random_int") {
      METRONOME_RETURN_IF_ERROR(check_keys(t, p, {"kind", "min", "max"}, member));
      RandomIntSourceConfig r;
      constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
      constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
      METRONOME_RETURN_IF_ERROR(get_int(t, p, "min", kMin, kMax, r.min));
      METRONOME_RETURN_IF_ERROR(get_int(t, p, "max", kMin, kMax, r.max));
      if (r.min > r.max) {
        const toml::node* n = t.get("min") != nullptr ? t.get("min") : t.get("max");
        return error(*n, join(p, "min"),
                     fmt::format("min {} is greater than max {}", r.min, r.max));
      }
      out = r;
      return Status::Ok();
    }
    return error(*t.get("kind"), join(p, "kind"),
                 fmt::format("unknown source kind '{}' (supported: {})", kind, kSupportedSources));
  }

  // A number kept exact: a TOML integer, a float (read from its text in the file, never through
  // a double) or a string holding a decimal number ("0.5", "1e3").
  Status get_decimal(const toml::table& t, std::string_view prefix, std::string_view key,
                     std::optional<Decimal>& out) const {
    const toml::node* n = t.get(key);
    if (n == nullptr) return Status::Ok();
    std::string full = join(prefix, key);
    std::string text;
    if (n->is_integer()) {
      text = std::to_string(n->as_integer()->get());
    } else if (n->is_string()) {
      text = n->as_string()->get();
    } else if (n->is_floating_point()) {
      text = source_text_of(*n);
      std::erase(text, '_');
      if (text.empty()) return error(*n, full, "write this number as a string, e.g. \"0.5\"");
    } else {
      return error(*n, full,
                   fmt::format("expected a number or a decimal string, got {}", type_name(*n)));
    }
    Result<Decimal> d = Decimal::parse(text);
    if (!d) return error(*n, full, d.status().message());
    out = *d;
    return Status::Ok();
  }

  // The text of `n` as written in the file (one line), or "" when unknown.
  std::string source_text_of(const toml::node& n) const {
    const toml::source_region& r = n.source();
    if (text_.empty() || r.begin.line == 0 || r.begin.line != r.end.line ||
        r.end.column <= r.begin.column) {
      return "";
    }
    size_t start = 0;
    for (uint32_t line = 1; line < r.begin.line; ++line) {
      start = text_.find('\n', start);
      if (start == std::string_view::npos) return "";
      ++start;
    }
    size_t from = start + r.begin.column - 1;
    size_t count = r.end.column - r.begin.column;
    if (from + count > text_.size()) return "";
    return std::string(text_.substr(from, count));
  }

  Status check_keys(const toml::table& t, std::string_view prefix,
                    std::initializer_list<std::string_view> known, bool member) const {
    if (!member) return check_keys(t, prefix, known);
    std::vector<std::string_view> all(known);
    all.push_back("name");
    for (const auto& [key, node] : t) {
      if (std::find(all.begin(), all.end(), key.str()) != all.end()) continue;
      uint32_t line = key.source().begin.line != 0 ? key.source().begin.line : line_of(node);
      return error(line, join(prefix, key.str()),
                   fmt::format("unknown key (expected one of: {})", fmt::join(all, ", ")));
    }
    return Status::Ok();
  }

  Status get_argv(const toml::table& t, std::string_view prefix, std::string_view key,
                  std::vector<std::string>& out) const {
    const toml::node* n = t.get(key);
    std::string full = join(prefix, key);
    if (n == nullptr) return error(t, full, "missing (the command and its arguments)");
    if (!n->is_array() || n->as_array()->empty()) {
      return error(*n, full,
                   fmt::format("expected a non-empty array of strings, got {}",
                               n->is_array() ? "an empty array" : type_name(*n)));
    }
    const toml::array& argv = *n->as_array();
    for (size_t i = 0; i < argv.size(); ++i) {
      const toml::node& arg = argv[i];
      std::string item = fmt::format("{}[{}]", full, i);
      uint32_t line = line_of(arg) != 0 ? line_of(arg) : line_of(*n);
      if (!arg.is_string()) {
        return error(line, item, fmt::format("expected a string, got {}", type_name(arg)));
      }
      if (i == 0 && arg.as_string()->get().empty()) return error(line, item, "must not be empty");
      out.push_back(arg.as_string()->get());
    }
    return Status::Ok();
  }

  // RFC 6901: "" or "/token/token...", where '~' is only "~0" or "~1".
  static bool is_valid_json_pointer(std::string_view s, std::string& why) {
    if (!s.empty() && s.front() != '/') {
      why = "must be empty or start with '/'";
      return false;
    }
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '~' && (i + 1 == s.size() || (s[i + 1] != '0' && s[i + 1] != '1'))) {
        why = "'~' must be followed by 0 or 1 (~0 is '~', ~1 is '/')";
        return false;
      }
    }
    return true;
  }

  static bool is_header_name(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) ||
             std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    });
  }

  // Header values: text with ${secret:NAME} references to configured secrets.
  Status check_header_value(const toml::node& n, const std::string& key, std::string_view value,
                            const Config& c) const {
    if (value.find_first_of("\r\n") != std::string_view::npos || value.find('\0') != value.npos) {
      return error(n, key, "must not contain CR, LF or NUL");
    }
    for (size_t at = value.find("${"); at != std::string_view::npos;
         at = value.find("${", at + 2)) {
      constexpr std::string_view kPrefix = "${secret:";
      size_t close = value.find('}', at);
      if (value.substr(at, kPrefix.size()) != kPrefix || close == std::string_view::npos) {
        return error(
            n, key, "unsupported '${' (the only reference is ${secret:NAME}, a configured secret)");
      }
      std::string name(value.substr(at + kPrefix.size(), close - at - kPrefix.size()));
      if (!c.secrets.contains(SecretName(name))) {
        return error(n, key,
                     fmt::format("unknown secret '{}' in ${{secret:{}}}; add a [secrets.{}] table",
                                 name, name, name));
      }
    }
    return Status::Ok();
  }

  Status parse_http_json(const toml::table& t, const std::string& p, const Config& c, bool member,
                         SourceConfig& out) const {
    METRONOME_RETURN_IF_ERROR(check_keys(
        t, p, {"kind", "url", "pointer", "method", "headers", "body", "timeout"}, member));
    HttpJsonSourceConfig h;
    const toml::node* url = t.get("url");
    if (url == nullptr) return error(t, join(p, "url"), "missing (the URL to GET)");
    METRONOME_RETURN_IF_ERROR(get_string(t, p, "url", h.url));
    if (!is_valid_url(h.url)) {
      return error(
          *url, join(p, "url"),
          fmt::format("invalid URL '{}' (expected http://host/... or https://host/...)", h.url));
    }
    METRONOME_RETURN_IF_ERROR(get_string(t, p, "pointer", h.pointer));
    if (std::string why; !is_valid_json_pointer(h.pointer, why)) {
      return error(*t.get("pointer"), join(p, "pointer"),
                   fmt::format("invalid JSON pointer '{}' ({})", h.pointer, why));
    }
    METRONOME_RETURN_IF_ERROR(get_string(t, p, "method", h.method));
    if (h.method != "GET" && h.method != "POST") {
      return error(*t.get("method"), join(p, "method"),
                   fmt::format("unsupported method '{}' (expected GET or POST)", h.method));
    }
    METRONOME_RETURN_IF_ERROR(get_string(t, p, "body", h.body));
    if (t.contains("body") && h.method != "POST") {
      return error(*t.get("body"), join(p, "body"), "a body needs method = \"POST\"");
    }
    const toml::table* headers = nullptr;
    METRONOME_RETURN_IF_ERROR(get_table(t, p, "headers", headers));
    if (headers != nullptr) {
      for (const auto& [name, value] : *headers) {
        std::string key = fmt::format("{}.headers.{}", p, name.str());
        if (!is_header_name(name.str())) {
          return error(value, key, fmt::format("invalid header name '{}'", name.str()));
        }
        if (!value.is_string()) {
          return error(value, key, fmt::format("expected a string, got {}", type_name(value)));
        }
        const std::string& text = value.as_string()->get();
        METRONOME_RETURN_IF_ERROR(check_header_value(value, key, text, c));
        h.headers.emplace_back(name.str(), text);
      }
    }
    METRONOME_RETURN_IF_ERROR(get_duration(t, p, "timeout", h.timeout));
    out = std::move(h);
    return Status::Ok();
  }

  Status parse_other_source(const toml::table& t, const std::string& p, const std::string& kind,
                            const Config& c, bool member, SourceConfig& out) const {
    if (kind == "http_json") return parse_http_json(t, p, c, member, out);
    if (kind == "command") {
      METRONOME_RETURN_IF_ERROR(check_keys(t, p, {"kind", "argv", "timeout"}, member));
      CommandSourceConfig cmd;
      METRONOME_RETURN_IF_ERROR(get_argv(t, p, "argv", cmd.argv));
      METRONOME_RETURN_IF_ERROR(get_duration(t, p, "timeout", cmd.timeout));
      out = std::move(cmd);
      return Status::Ok();
    }
    if (kind == "file") {
      METRONOME_RETURN_IF_ERROR(check_keys(t, p, {"kind", "path"}, member));
      FileSourceConfig file;
      if (!t.contains("path")) return error(t, join(p, "path"), "missing (the file to read)");
      METRONOME_RETURN_IF_ERROR(get_path(t, p, "path", file.path));
      out = std::move(file);
      return Status::Ok();
    }
    if (kind == "median" && member) {
      return error(*t.get("kind"), join(p, "kind"), "a median's sources cannot be medians");
    }
    if (kind == "median") return parse_median(t, p, c, out);
    return error(*t.get("kind"), join(p, "kind"),
                 fmt::format("unknown source kind '{}' (supported: {})", kind, kSupportedSources));
  }

  Status parse_median(const toml::table& t, const std::string& p, const Config& c,
                      SourceConfig& out) const {
    METRONOME_RETURN_IF_ERROR(check_keys(t, p, {"kind", "sources", "quorum", "max_spread_pct"}));
    MedianSourceConfig m;
    const toml::node* sources = t.get("sources");
    std::string key = join(p, "sources");
    if (sources == nullptr) return error(t, key, "missing (the sources to take the median of)");
    if (!sources->is_array() || sources->as_array()->empty()) {
      return error(*sources, key,
                   fmt::format("expected a non-empty array of source tables, got {}",
                               sources->is_array() ? "an empty array" : type_name(*sources)));
    }
    const toml::array& list = *sources->as_array();
    for (size_t i = 0; i < list.size(); ++i) {
      std::string item = fmt::format("{}[{}]", key, i);
      if (!list[i].is_table()) {
        return error(line_of(list[i]) != 0 ? line_of(list[i]) : line_of(*sources), item,
                     fmt::format("expected a source table, got {}", type_name(list[i])));
      }
      const toml::table& member = *list[i].as_table();
      MedianMember mm;
      METRONOME_RETURN_IF_ERROR(parse_source(member, item, c, mm.source, true));
      std::string kind = "random_int";
      METRONOME_RETURN_IF_ERROR(get_string(member, item, "kind", kind));
      mm.name = fmt::format("{}#{}", kind, i);
      if (const toml::node* name = member.get("name")) {
        METRONOME_RETURN_IF_ERROR(get_string(member, item, "name", mm.name));
        if (!is_valid_name(mm.name)) {
          return error(
              *name, join(item, "name"),
              fmt::format("invalid name '{}' (must match [A-Za-z0-9_.-]{{1,64}})", mm.name));
        }
      }
      for (size_t j = 0; j < m.sources.size(); ++j) {
        if (m.sources[j].name == mm.name) {
          return error(line_of(member), join(item, "name"),
                       fmt::format("duplicate name '{}' (also {}[{}])", mm.name, key, j));
        }
      }
      m.sources.push_back(std::move(mm));
    }
    const int64_t n = static_cast<int64_t>(m.sources.size());
    int64_t quorum = n / 2 + 1;
    METRONOME_RETURN_IF_ERROR(get_int(t, p, "quorum", 1, n, quorum));
    m.quorum = static_cast<int>(quorum);
    METRONOME_RETURN_IF_ERROR(get_decimal(t, p, "max_spread_pct", m.max_spread_pct));
    if (m.max_spread_pct && *m.max_spread_pct <= Decimal()) {
      return error(*t.get("max_spread_pct"), join(p, "max_spread_pct"), "must be greater than 0");
    }
    out = std::move(m);
    return Status::Ok();
  }

  // The sanity bounds of a feed: min_value <= max_value, max_change_pct > 0.
  Status parse_bounds(const toml::table& t, const std::string& p, FeedConfig& f) const {
    METRONOME_RETURN_IF_ERROR(get_decimal(t, p, "min_value", f.min_value));
    METRONOME_RETURN_IF_ERROR(get_decimal(t, p, "max_value", f.max_value));
    METRONOME_RETURN_IF_ERROR(get_decimal(t, p, "max_change_pct", f.max_change_pct));
    if (f.min_value && f.max_value && *f.min_value > *f.max_value) {
      return error(
          *t.get("min_value"), join(p, "min_value"),
          fmt::format("min_value {} is greater than max_value {}", *f.min_value, *f.max_value));
    }
    if (f.max_change_pct && *f.max_change_pct <= Decimal()) {
      return error(*t.get("max_change_pct"), join(p, "max_change_pct"), "must be greater than 0");
    }
    return Status::Ok();
  }

  Status parse_alarms(const toml::table& t, AlarmConfig& a) const {
    constexpr std::string_view p = "alarms";
    METRONOME_RETURN_IF_ERROR(check_keys(t, p,
                                         {"dlq_depth", "missed_slots", "missed_window", "command",
                                          "webhook", "action_timeout", "webhook_retries"}));
    constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
    METRONOME_RETURN_IF_ERROR(get_int(t, p, "dlq_depth", 1, kMax, a.dlq_depth));
    METRONOME_RETURN_IF_ERROR(get_int(t, p, "missed_slots", 1, kMax, a.missed_slots));
    METRONOME_RETURN_IF_ERROR(get_duration(t, p, "missed_window", a.missed_window));
    if (const toml::node* n = t.get("command")) {
      if (!n->is_array()) {
        return error(*n, "alarms.command",
                     fmt::format("expected an array of strings (argv), got {}", type_name(*n)));
      }
      const toml::array& argv = *n->as_array();
      a.command.clear();
      for (size_t i = 0; i < argv.size(); ++i) {
        const toml::node& arg = argv[i];
        std::string key = fmt::format("alarms.command[{}]", i);
        uint32_t line = line_of(arg) != 0 ? line_of(arg) : line_of(*n);
        if (!arg.is_string()) {
          return error(line, key, fmt::format("expected a string, got {}", type_name(arg)));
        }
        if (arg.as_string()->get().empty()) return error(line, key, "must not be empty");
        a.command.push_back(arg.as_string()->get());
      }
    }
    METRONOME_RETURN_IF_ERROR(get_string(t, p, "webhook", a.webhook));
    if (t.contains("webhook") && !is_valid_url(a.webhook)) {
      return error(*t.get("webhook"), "alarms.webhook",
                   fmt::format("invalid URL '{}' (expected http://host/... or https://host/...)",
                               a.webhook));
    }
    METRONOME_RETURN_IF_ERROR(get_duration(t, p, "action_timeout", a.action_timeout));
    METRONOME_RETURN_IF_ERROR(get_int(t, p, "webhook_retries", 0, 100, a.webhook_retries));
    return Status::Ok();
  }

  std::string file_;
  fs::path base_dir_;
  std::string_view text_;
  const std::map<SecretName, SecretConfig>* secrets_ = nullptr;  // set by load()
  mutable std::map<std::string, std::string> evm_senders_;       // "secret|chain" -> feed id
};

// A TOML basic string.
std::string quote(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (ch) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += fmt::format("\\u{:04X}", c);
        } else {
          out += ch;
        }
    }
  }
  out += '"';
  return out;
}

// A table key: bare when it may be, quoted otherwise.
std::string toml_key(std::string_view s) {
  bool bare = !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
  return bare ? std::string(s) : quote(s);
}

std::string duration_text(Millis d) {
  return quote(format_duration(d));
}

// A source as one TOML inline table.
std::string source_text(const SourceConfig& source, std::string_view name = "") {
  std::string fields;
  auto add = [&fields](std::string_view key, std::string_view value) {
    fields += fmt::format("{}{} = {}", fields.empty() ? "" : ", ", key, value);
  };
  auto strings = [](const std::vector<std::string>& list) {
    std::vector<std::string> quoted;
    for (const std::string& s : list) quoted.push_back(quote(s));
    return fmt::format("[{}]", fmt::join(quoted, ", "));
  };
  if (!name.empty()) add("name", quote(name));
  std::visit(
      [&](const auto& c) {
        using T = std::decay_t<decltype(c)>;
        if constexpr (std::is_same_v<T, RandomIntSourceConfig>) {
          add("kind", "\"random_int\"");
          add("min", std::to_string(c.min));
          add("max", std::to_string(c.max));
        } else if constexpr (std::is_same_v<T, HttpJsonSourceConfig>) {
          add("kind", "\"http_json\"");
          add("url", quote(c.url));
          add("pointer", quote(c.pointer));
          add("method", quote(c.method));
          if (!c.headers.empty()) {
            std::vector<std::string> headers;
            for (const auto& [k, v] : c.headers) {
              headers.push_back(fmt::format("{} = {}", toml_key(k), quote(v)));
            }
            add("headers", fmt::format("{{ {} }}", fmt::join(headers, ", ")));
          }
          if (!c.body.empty()) add("body", quote(c.body));
          if (c.timeout) add("timeout", duration_text(*c.timeout));
        } else if constexpr (std::is_same_v<T, CommandSourceConfig>) {
          add("kind", "\"command\"");
          add("argv", strings(c.argv));
          if (c.timeout) add("timeout", duration_text(*c.timeout));
        } else if constexpr (std::is_same_v<T, FileSourceConfig>) {
          add("kind", "\"file\"");
          add("path", quote(c.path.string()));
        } else {
          add("kind", "\"median\"");
          std::vector<std::string> members;
          for (const MedianMember& m : c.sources) members.push_back(source_text(m.source, m.name));
          add("sources", fmt::format("[{}]", fmt::join(members, ", ")));
          add("quorum", std::to_string(c.quorum));
          if (c.max_spread_pct) add("max_spread_pct", quote(c.max_spread_pct->to_string()));
        }
      },
      source);
  return fmt::format("{{ {} }}", fields);
}

}  // namespace

std::string_view to_string(DynamoDbSinkConfig::Layout layout) {
  return layout == DynamoDbSinkConfig::Layout::kSeed ? "seed" : "record";
}

const FeedConfig* Config::find_feed(const FeedId& id) const {
  for (const FeedConfig& f : feeds) {
    if (f.id == id) return &f;
  }
  return nullptr;
}

Result<Config> parse_config(std::string_view toml_text, const std::filesystem::path& path) {
  std::string label = path.string();
  toml::table root;
  try {
    root = toml::parse(toml_text, label);
  } catch (const toml::parse_error& e) {
    return Status::InvalidArgument(fmt::format("{}:{}: syntax error: {} (column {})", label,
                                               e.source().begin.line, e.description(),
                                               e.source().begin.column));
  }
  Config c;
  c.file = path;
  Loader loader(label, absolute_or_self(path).parent_path());
  loader.keep_text(toml_text);
  METRONOME_RETURN_IF_ERROR(loader.load(root, c));
  return c;
}

Result<Config> load_config(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) {
      return Status::NotFound(fmt::format("config file {} does not exist", path.string()));
    }
    return Status::IOError(
        fmt::format("config file {}: cannot open: {}", path.string(), std::strerror(err)));
  }
  std::string text;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return Status::IOError(
          fmt::format("config file {}: cannot read: {}", path.string(), std::strerror(err)));
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return parse_config(text, path);
}

Config builtin_default_config(const std::filesystem::path& base_dir) {
  std::filesystem::path base = absolute_or_self(base_dir);
  Config c;
  c.service.data_dir = base / "var";
  c.store.path = c.service.data_dir / "metronome.db";
  c.store.dlq_path = default_dlq_path(c.store.path);
  SecretName key("oracle_key");
  c.secrets[key] = SecretConfig{key, c.service.data_dir / "secrets" / "oracle_key", std::nullopt};
  FeedConfig f;
  f.id = FeedId("random_int");
  f.schedule = Schedule::every(kDefaultInterval);
  f.schedule_text = format_duration(kDefaultInterval);
  f.window = kDefaultWindow;
  f.deadline = kDefaultInterval;
  f.secret = key;
  f.source = RandomIntSourceConfig{0, 1000};
  c.feeds.push_back(std::move(f));
  return c;
}

std::string dump_config(const Config& c) {
  std::string out;
  auto line = [&out](std::string_view key, std::string_view value) {
    out += fmt::format("{} = {}\n", key, value);
  };
  out += fmt::format("# Effective Metronome configuration ({}); every default is filled in.\n",
                     c.is_builtin_default() ? "built-in default" : c.file.string());
  out += "# Secrets show where they live, never their value.\n\n";

  out += "[service]\n";
  line("data_dir", quote(c.service.data_dir.string()));
  line("listen", quote(c.service.listen));
  line("log_level", quote(c.service.log_level));
  line("log_format", quote(c.service.log_format));
  line("chain_id", std::to_string(c.service.chain_id));
  line("realtime", c.service.realtime ? "true" : "false");
  line("presign", std::to_string(c.service.presign));
  line("sign_batch", std::to_string(c.service.sign_batch));
  if (!c.service.admin_token_secret.empty()) {
    line("admin_token_secret", quote(c.service.admin_token_secret.str()));
  }

  out += "\n[store]\n";
  line("kind", quote(c.store.kind));
  if (c.store.kind == "postgres") {
    line("url", quote(redact_url_password(c.store.url)));
    if (!c.store.password_secret.empty()) {
      line("password_secret", quote(c.store.password_secret.str()));
    }
    line("lease_ttl", duration_text(c.store.lease_ttl));
    line("lease_renew", duration_text(c.store.lease_renew));
    line("max_clock_skew", duration_text(c.store.max_clock_skew));
  } else {
    line("path", quote(c.store.path.string()));
    line("dlq_path", quote(c.store.dlq_path.string()));
  }

  for (const auto& [name, s] : c.secrets) {
    out += fmt::format("\n[secrets.{}]\n", toml_key(name.str()));
    if (s.file) line("file", quote(s.file->string()));
    if (s.env) line("env", quote(*s.env));
    if (const auto& a = s.aws_secrets_manager) {
      std::string fields =
          fmt::format("secret_id = {}, region = {}", quote(a->secret_id), quote(a->region));
      if (!a->endpoint.empty()) fields += fmt::format(", endpoint = {}", quote(a->endpoint));
      if (!a->json_key.empty()) fields += fmt::format(", json_key = {}", quote(a->json_key));
      fields += fmt::format(", refresh = {}", duration_text(a->refresh));
      line("aws_secrets_manager", fmt::format("{{ {} }}", fields));
    }
  }

  for (const FeedConfig& f : c.feeds) {
    out += "\n[[feeds]]\n";
    line("id", quote(f.id.str()));
    if (f.schedule.is_interval()) {
      line("every", duration_text(f.schedule.interval()));
    } else {
      line("cron", quote(f.schedule_text));
    }
    line("window", duration_text(f.window));
    if (f.deadline) line("deadline", duration_text(*f.deadline));
    if (f.observe_lead > Millis(0)) line("observe_lead", duration_text(f.observe_lead));
    line("retries", std::to_string(f.retries));
    if (!f.secret.empty()) line("secret", quote(f.secret.str()));
    line("decimals", std::to_string(f.decimals));
    line("chain_id", std::to_string(f.chain_id));
    if (f.min_value) line("min_value", quote(f.min_value->to_string()));
    if (f.max_value) line("max_value", quote(f.max_value->to_string()));
    if (f.max_change_pct) line("max_change_pct", quote(f.max_change_pct->to_string()));
    line("source", source_text(f.source));
    if (!f.sinks.empty()) {
      std::vector<std::string> sinks;
      for (const SinkConfig& sink : f.sinks) {
        if (const auto* e = std::get_if<EvmSinkConfig>(&sink)) {
          std::vector<std::string> urls;
          for (const std::string& u : e->rpc_urls) urls.push_back(quote(u));
          sinks.push_back(fmt::format(
              "{{ kind = \"evm\", rpc_urls = [{}], chain_id = {}, contract = {}, sender_secret = "
              "{}, deviation_pct = {}, heartbeat = {}, max_fee_gwei = {}, bump_pct = {}, "
              "bump_after_blocks = {}, confirmations = {}, rpc_timeout = {}, max_head_lag = {}, "
              "stale_grace = {}, low_balance_eth = {} }}",
              fmt::join(urls, ", "), e->chain_id, quote(e->contract), quote(e->sender_secret.str()),
              quote(e->deviation_pct.to_string()), duration_text(e->heartbeat),
              quote(e->max_fee_gwei.to_string()), e->bump_pct, e->bump_after_blocks,
              e->confirmations, duration_text(e->rpc_timeout), e->max_head_lag,
              duration_text(e->stale_grace), quote(e->low_balance_eth.to_string())));
          continue;
        }
        const auto& d = std::get<DynamoDbSinkConfig>(sink);
        std::string fields = fmt::format("kind = \"dynamodb\", table = {}, region = {}",
                                         quote(d.table), quote(d.region));
        if (!d.endpoint.empty()) fields += fmt::format(", endpoint = {}", quote(d.endpoint));
        fields += fmt::format(", layout = {}", quote(to_string(d.layout)));
        sinks.push_back(fmt::format("{{ {} }}", fields));
      }
      line("sinks", fmt::format("[{}]", fmt::join(sinks, ", ")));
    }
  }

  const AlarmConfig& a = c.alarms;
  out += "\n[alarms]\n";
  line("dlq_depth", std::to_string(a.dlq_depth));
  line("missed_slots", std::to_string(a.missed_slots));
  line("missed_window", duration_text(a.missed_window));
  if (!a.command.empty()) {
    std::vector<std::string> argv;
    for (const std::string& arg : a.command) argv.push_back(quote(arg));
    line("command", fmt::format("[{}]", fmt::join(argv, ", ")));
  }
  if (!a.webhook.empty()) line("webhook", quote(a.webhook));
  line("action_timeout", duration_text(a.action_timeout));
  line("webhook_retries", std::to_string(a.webhook_retries));
  return out;
}

}  // namespace metronome
