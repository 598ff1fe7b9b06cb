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

namespace metronome {
namespace {

// Chain ids are JSON numbers in wallets; keep them exact in a double (EIP-155 practice).
constexpr int64_t kMaxChainId = (int64_t{1} << 53) - 1;

namespace fs = std::filesystem;

constexpr Millis kMinInterval{10};
constexpr Millis kDefaultInterval{2000};
constexpr Millis kDefaultWindow{60'000};
constexpr std::string_view kSupportedSources = "random_int";

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
    METRONOME_RETURN_IF_ERROR(check_keys(
        *t, p,
        {"data_dir", "listen", "log_level", "log_format", "chain_id", "admin_token_secret"}));
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
    return Status::Ok();
  }

  Status parse_store(const toml::table* t, const ServiceConfig& service, StoreConfig& s) const {
    s.path.clear();
    s.dlq_path.clear();
    if (t != nullptr) {
      constexpr std::string_view p = "store";
      METRONOME_RETURN_IF_ERROR(
          check_keys(*t, p, {"kind", "path", "dlq_path", "url", "password_secret"}));
      METRONOME_RETURN_IF_ERROR(get_string(*t, p, "kind", s.kind));
      if (s.kind != "sqlite" && s.kind != "postgres") {
        return error(
            *t->get("kind"), "store.kind",
            fmt::format("unsupported store kind '{}' (supported: sqlite, postgres)", s.kind));
      }
      // Each kind's keys only: a key the kind ignores is a mistake, not a default.
      for (std::string_view key : s.kind == "sqlite"
                                      ? std::vector<std::string_view>{"url", "password_secret"}
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
      METRONOME_RETURN_IF_ERROR(check_keys(st, full, {"file", "env"}));
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
      if (sc.file.has_value() == sc.env.has_value()) {
        return error(st, full,
                     fmt::format("set exactly one of 'file' or 'env' (got {})",
                                 sc.file ? "both" : "neither"));
      }
      out.emplace(sc.name, std::move(sc));
    }
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
    METRONOME_RETURN_IF_ERROR(check_keys(t, p,
                                         {"id", "every", "cron", "window", "deadline", "retries",
                                          "secret", "decimals", "source", "chain_id"}));
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

    METRONOME_RETURN_IF_ERROR(get_int(t, p, "retries", 0, 100, f.retries));
    METRONOME_RETURN_IF_ERROR(get_int(t, p, "decimals", 0, 36, f.decimals));
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
      METRONOME_RETURN_IF_ERROR(parse_source(*source, join(p, "source"), f.source));
    }
    return Status::Ok();
  }

  Status parse_source(const toml::table& t, const std::string& p, SourceConfig& out) const {
    std::string kind = "random_int";
    METRONOME_RETURN_IF_ERROR(get_string(t, p, "kind", kind));
    if (kind == "random_int") {
      METRONOME_RETURN_IF_ERROR(check_keys(t, p, {"kind", "min", "max"}));
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

}  // namespace

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
  } else {
    line("path", quote(c.store.path.string()));
    line("dlq_path", quote(c.store.dlq_path.string()));
  }

  for (const auto& [name, s] : c.secrets) {
    out += fmt::format("\n[secrets.{}]\n", toml_key(name.str()));
    if (s.file) line("file", quote(s.file->string()));
    if (s.env) line("env", quote(*s.env));
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
    line("retries", std::to_string(f.retries));
    if (!f.secret.empty()) line("secret", quote(f.secret.str()));
    line("decimals", std::to_string(f.decimals));
    line("chain_id", std::to_string(f.chain_id));
    std::visit(
        [&](const RandomIntSourceConfig& r) {
          line("source",
               fmt::format("{{ kind = \"random_int\", min = {}, max = {} }}", r.min, r.max));
        },
        f.source);
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
