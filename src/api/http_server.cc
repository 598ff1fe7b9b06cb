#include "api/http_server.h"

#include <httplib.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <deque>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <unordered_map>

#include "api/views.h"
#include "api/web_assets.h"

namespace metronome {
namespace {

using Json = nlohmann::json;
using httplib::Request;
using httplib::Response;

constexpr int kHttpThreadNiceIncrement = 5;
constexpr int kValuesDefaultLimit = 100;
constexpr int kValuesMaxLimit = 1000;
constexpr int kExecutionsDefaultLimit = 20;
constexpr int kExecutionsMaxLimit = 100;
constexpr int kDlqDefaultLimit = 100;
constexpr int kDlqMaxLimit = 1000;

// The request threads: a fixed pool like httplib::ThreadPool, whose threads lower their own
// scheduling priority so that under HTTP load the slot path still gets the CPU first.
// Invariants: jobs_ and shutdown_ are guarded by mu_; after shutdown() no thread is left.
class NicedThreadPool final : public httplib::TaskQueue {
 public:
  explicit NicedThreadPool(size_t threads) {
    for (size_t i = 0; i < std::max<size_t>(threads, 1); ++i)
      threads_.emplace_back([this] { run(); });
  }
  ~NicedThreadPool() override { shutdown(); }

  void enqueue(std::function<void()> job) override {
    {
      std::lock_guard lock(mu_);
      jobs_.push_back(std::move(job));
    }
    cv_.notify_one();
  }

  void shutdown() override {
    {
      std::lock_guard lock(mu_);
      shutdown_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

 private:
  void run() {
    pthread_setname_np(pthread_self(), "metronome-http");
    // Per-thread on Linux; failure (a sandbox refusing it) only costs the priority hint.
    auto tid = static_cast<id_t>(gettid());
    errno = 0;
    int nice = getpriority(PRIO_PROCESS, tid);
    if (errno == 0) (void)setpriority(PRIO_PROCESS, tid, nice + kHttpThreadNiceIncrement);
    while (true) {
      std::function<void()> job;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return shutdown_ || !jobs_.empty(); });
        if (jobs_.empty()) return;  // shutdown_, and nothing left to do
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;  // guarded by mu_
  bool shutdown_ = false;                   // guarded by mu_
  std::vector<std::thread> threads_;
};

std::string_view error_kind(int status) {
  switch (status) {
    case 400:
      return "bad_request";
    case 401:
      return "unauthorized";
    case 403:
      return "forbidden";
    case 404:
      return "not_found";
    case 405:
      return "method_not_allowed";
    case 408:
      return "request_timeout";
    case 409:
      return "conflict";
    case 413:
      return "payload_too_large";
    case 414:
      return "uri_too_long";
    case 416:
      return "range_not_satisfiable";
    case 500:
      return "internal";
    case 503:
      return "unavailable";
    default:
      return status >= 500 ? "internal" : "bad_request";
  }
}

std::string dump(const Json& j) {
  // Replaces invalid UTF-8 (an error text from a library) instead of throwing.
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

void send_json(Response& res, int status, const Json& body) {
  res.status = status;
  res.set_content(dump(body), "application/json");
}

void send_error(Response& res, int status, std::string_view detail) {
  send_json(res, status, Json{{"error", error_kind(status)}, {"detail", detail}});
}

// A store or DLQ error as an HTTP answer. Status messages name things, never secret values.
void send_status(Response& res, const Status& status) {
  switch (status.code()) {
    case Status::Code::kNotFound:
      send_error(res, 404, status.message());
      return;
    case Status::Code::kInvalidArgument:
      send_error(res, 400, status.message());
      return;
    case Status::Code::kIOError:
    case Status::Code::kUnavailable:
    case Status::Code::kDeadlineExceeded:
      send_error(res, 503, status.ToString());
      return;
    default:
      send_error(res, 500, status.ToString());
      return;
  }
}

std::optional<int64_t> parse_int(std::string_view text) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return v;
}

constexpr std::string_view kBase64Url =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string base64url_encode(std::string_view in) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kBase64Url[(acc >> bits) & 63];
    }
  }
  if (bits > 0) out += kBase64Url[(acc << (6 - bits)) & 63];
  return out;
}

std::optional<std::string> base64url_decode(std::string_view in) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    auto pos = kBase64Url.find(c);
    if (pos == std::string_view::npos) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(pos);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

// The opaque paging cursor: base64url of the decimal slot (or window start) in unix ms.
std::string make_cursor(SlotTime t) {
  return base64url_encode(std::to_string(to_unix_ms(t)));
}

// The query parameters of one request, checked: unknown or repeated parameters are errors.
class Params {
 public:
  static Result<Params> of(const Request& req, std::initializer_list<std::string_view> known) {
    for (const auto& [name, value] : req.params) {
      if (std::find(known.begin(), known.end(), name) == known.end()) {
        return Status::InvalidArgument(fmt::format("{}: unknown parameter", name));
      }
      if (req.params.count(name) > 1) {
        return Status::InvalidArgument(fmt::format("{}: given more than once", name));
      }
    }
    return Params(req);
  }

  std::optional<std::string> get(const std::string& name) const {
    auto it = req_->params.find(name);
    if (it == req_->params.end()) return std::nullopt;
    return it->second;
  }

  Result<int> limit(int fallback, int max) const {
    auto text = get("limit");
    if (!text) return fallback;
    auto v = parse_int(*text);
    if (!v || *v < 1 || *v > max) {
      return Status::InvalidArgument(
          fmt::format("limit: must be an integer from 1 to {}, got '{}'", max, *text));
    }
    return static_cast<int>(*v);
  }

  // An ISO 8601 time ("2026-11-27T21:16:02Z") or unix milliseconds.
  Result<std::optional<WallTime>> time(const std::string& name) const {
    auto text = get(name);
    if (!text) return std::optional<WallTime>();
    if (auto ms = parse_int(*text)) {
      if (*ms < 0 || *ms > 9'000'000'000'000) {
        return Status::InvalidArgument(fmt::format("{}: unix milliseconds out of range", name));
      }
      return std::optional<WallTime>(WallTime(Millis(*ms)));
    }
    auto t = parse_iso(*text);
    if (!t.ok()) {
      return Status::InvalidArgument(
          fmt::format("{}: not an ISO 8601 time or unix milliseconds: '{}'", name, *text));
    }
    return std::optional<WallTime>(*t);
  }

  Result<std::optional<SlotTime>> cursor() const {
    auto text = get("cursor");
    if (!text) return std::optional<SlotTime>();
    auto decoded = base64url_decode(*text);
    std::optional<int64_t> ms;
    if (decoded) ms = parse_int(*decoded);
    if (!ms || *ms < 0) return Status::InvalidArgument("cursor: not a cursor from this API");
    return std::optional<SlotTime>(slot_from_unix_ms(*ms));
  }

 private:
  explicit Params(const Request& req) : req_(&req) {}
  const Request* req_;
};

enum class Route {
  kFeeds,
  kLatest,
  kValues,
  kRound,
  kExecutions,
  kExecution,
  kDlq,
  kDlqMessage,
  kRedrive,
  kAlarms,
  kHealthz,
  kReadyz,
  kMetrics,
  kEvents,
  kAsset,
};

struct Matched {
  Route route;
  std::string_view allow;  // the methods this path answers
  std::vector<std::string> args;
};

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> out;
  if (path.empty() || path[0] != '/') return out;
  size_t start = 1;
  while (true) {
    size_t slash = path.find('/', start);
    out.push_back(
        path.substr(start, slash == std::string::npos ? std::string::npos : slash - start));
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return out;
}

std::optional<Matched> match_route(const std::string& path) {
  if (path == "/" || path == "/index.html") return Matched{Route::kAsset, "GET", {"index.html"}};
  auto s = split_path(path);
  if (std::any_of(s.begin(), s.end(), [](const auto& p) { return p.empty(); })) return {};
  auto is = [&](std::initializer_list<std::string_view> shape) {
    if (s.size() != shape.size()) return false;
    size_t i = 0;
    for (auto part : shape) {
      if (part != "*" && s[i] != part) return false;
      ++i;
    }
    return true;
  };
  if (is({"healthz"})) return Matched{Route::kHealthz, "GET", {}};
  if (is({"readyz"})) return Matched{Route::kReadyz, "GET", {}};
  if (is({"metrics"})) return Matched{Route::kMetrics, "GET", {}};
  if (is({"assets", "*"})) return Matched{Route::kAsset, "GET", {s[1]}};
  if (s.empty() || s[0] != "v1") return {};
  if (is({"v1", "feeds"})) return Matched{Route::kFeeds, "GET", {}};
  if (is({"v1", "feeds", "*", "latest"})) return Matched{Route::kLatest, "GET", {s[2]}};
  if (is({"v1", "feeds", "*", "values"})) return Matched{Route::kValues, "GET", {s[2]}};
  if (is({"v1", "feeds", "*", "rounds", "*"})) return Matched{Route::kRound, "GET", {s[2], s[4]}};
  if (is({"v1", "executions"})) return Matched{Route::kExecutions, "GET", {}};
  if (is({"v1", "executions", "*"})) return Matched{Route::kExecution, "GET", {s[2]}};
  if (is({"v1", "dlq"})) return Matched{Route::kDlq, "GET", {}};
  if (is({"v1", "dlq", "*"})) return Matched{Route::kDlqMessage, "GET, DELETE", {s[2]}};
  if (is({"v1", "dlq", "*", "redrive"})) return Matched{Route::kRedrive, "POST", {s[2]}};
  if (is({"v1", "alarms"})) return Matched{Route::kAlarms, "GET", {}};
  if (is({"v1", "events"})) return Matched{Route::kEvents, "GET", {}};
  return {};
}

bool method_allowed(std::string_view method, std::string_view allow) {
  if (method == "HEAD") method = "GET";
  size_t start = 0;
  while (start < allow.size()) {
    size_t comma = allow.find(',', start);
    auto item = allow.substr(start, comma == std::string_view::npos ? allow.npos : comma - start);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    if (item == method) return true;
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return false;
}

Json duration_json(std::optional<Millis> d) {
  return d ? Json(format_duration(*d)) : Json(nullptr);
}

Json slot_status_json(const SlotStatus& s) {
  Json j = to_json(s.slot);
  j["reason"] = s.reason;
  return j;
}

}  // namespace

bool constant_time_equal(std::string_view given, std::string_view expected) {
  // Every byte of `expected` is visited whatever `given` holds; the only branch depends on the
  // length of `given`, which the caller knows anyway. volatile keeps the compiler from turning
  // the accumulation into an early exit.
  volatile unsigned char diff = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    unsigned char g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    diff = diff | (g ^ static_cast<unsigned char>(expected[i]));
  }
  return diff == 0;
}

class ApiServer::Impl {
 public:
  Impl(ApiDeps deps, ApiOptions options)
      : deps_(std::move(deps)), options_(options), started_at_(deps_.clock.now()) {
    configure();
  }

  httplib::Server& server() { return server_; }
  // Ends every open event stream (at its next wake-up, which this triggers) and refuses new ones.
  void stop_streams() {
    stopping_ = true;
    if (deps_.events != nullptr) deps_.events->wake_all();
  }

 private:
  void configure();
  void route(const Request& req, Response& res);
  void handle(const Matched& m, const Request& req, Response& res);
  bool authorize(const Request& req, Response& res);

  Json feed_json(const FeedSnapshot& feed);
  void feeds(const Request& req, Response& res);
  void latest(const FeedId& feed, const Request& req, Response& res);
  void values(const FeedId& feed, const Request& req, Response& res);
  void round(const FeedId& feed, const std::string& round, const Request& req, Response& res);
  void executions(const Request& req, Response& res);
  void execution(const std::string& id, const Request& req, Response& res);
  void dlq(const Request& req, Response& res);
  void dlq_message(const std::string& id, const Request& req, Response& res);
  void redrive(const std::string& id, const Request& req, Response& res);
  void purge(const std::string& id, const Request& req, Response& res);
  void alarms(const Request& req, Response& res);
  void readyz(const Request& req, Response& res);
  void metrics(const Request& req, Response& res);
  void events(const Request& req, Response& res);
  void asset(const std::string& name, const Request& req, Response& res);
  // The feed's latest value as JSON text, rendered once per published value.
  std::optional<std::string> latest_body(const FeedId& feed);

  ApiDeps deps_;
  ApiOptions options_;
  WallTime started_at_;
  httplib::Server server_;

  struct Rendered {
    std::shared_ptr<const ValueRecord> record;
    std::string body;
  };
  std::mutex rendered_mu_;  // HTTP threads only; the slot path never takes it
  std::unordered_map<FeedId, Rendered> rendered_;  // guarded by rendered_mu_

  std::atomic<bool> stopping_{false};    // set by stop_streams()
  std::atomic<size_t> open_streams_{0};  // GET /v1/events streams being served
};

void ApiServer::Impl::configure() {
  auto threads = options_.threads;
  server_.new_task_queue = [threads] { return new NicedThreadPool(threads); };
  server_.set_read_timeout(options_.read_timeout);
  server_.set_write_timeout(options_.write_timeout);
  server_.set_keep_alive_timeout(options_.keep_alive_timeout.count());
  server_.set_keep_alive_max_count(options_.keep_alive_max_count);
  server_.set_payload_max_length(options_.max_body);
  server_.set_tcp_nodelay(true);
  // httplib's default also sets SO_REUSEPORT, which would let a second daemon bind the same
  // port and silently share the traffic; a busy port must be an error instead.
  server_.set_socket_options([](int sock) {
    int yes = 1;
    (void)setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  server_.set_default_headers({{"Cache-Control", "no-store"}});

  auto handler = [this](const Request& req, Response& res) { route(req, res); };
  server_.Get(".*", handler);
  server_.Post(".*", handler);
  server_.Put(".*", handler);
  server_.Patch(".*", handler);
  server_.Delete(".*", handler);
  server_.Options(".*", handler);

  // Answers httplib's own errors (malformed request, 413, 414, unknown method) as JSON too.
  server_.set_error_handler(httplib::Server::HandlerWithResponse([](const Request&, Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string detail;
    switch (res.status) {
      case 413:
        detail = "request body too large";
        break;
      case 414:
        detail = "request target too long";
        break;
      case 400:
        detail = "malformed request";
        break;
      default:
        detail = std::string(error_kind(res.status));
        break;
    }
    send_error(res, res.status, detail);
    return httplib::Server::HandlerResponse::Handled;
  }));
  server_.set_exception_handler([](const Request& req, Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    spdlog::error("http: {} {}: handler failed: {}", req.method, req.path, what);
    send_error(res, 500, "internal error");
  });
}

void ApiServer::Impl::route(const Request& req, Response& res) {
  if (req.target.size() > options_.max_uri) {
    send_error(res, 414, fmt::format("request target longer than {} bytes", options_.max_uri));
    return;
  }
  auto m = match_route(req.path);
  if (!m) {
    send_error(res, 404, fmt::format("no such endpoint: {}", req.path));
    return;
  }
  if (req.method == "OPTIONS") {
    res.status = 204;
    res.set_header("Allow", std::string(m->allow));
    return;
  }
  if (!method_allowed(req.method, m->allow)) {
    res.set_header("Allow", std::string(m->allow));
    send_error(res, 405,
               fmt::format("{} does not answer {} (allowed: {})", req.path, req.method, m->allow));
    return;
  }
  handle(*m, req, res);
}

void ApiServer::Impl::handle(const Matched& m, const Request& req, Response& res) {
  auto known_feed = [&](const std::string& id) -> std::optional<FeedId> {
    FeedId feed(id);
    if (deps_.board.has_feed(feed)) return feed;
    send_error(res, 404, fmt::format("unknown feed '{}'", id));
    return std::nullopt;
  };
  switch (m.route) {
    case Route::kHealthz:
      send_json(res, 200,
                Json{{"status", "ok"},
                     {"version", deps_.version},
                     {"admin", static_cast<bool>(deps_.admin_token)}});
      return;
    case Route::kReadyz:
      readyz(req, res);
      return;
    case Route::kMetrics:
      metrics(req, res);
      return;
    case Route::kFeeds:
      feeds(req, res);
      return;
    case Route::kLatest:
      if (auto f = known_feed(m.args[0])) latest(*f, req, res);
      return;
    case Route::kValues:
      if (auto f = known_feed(m.args[0])) values(*f, req, res);
      return;
    case Route::kRound:
      if (auto f = known_feed(m.args[0])) round(*f, m.args[1], req, res);
      return;
    case Route::kExecutions:
      executions(req, res);
      return;
    case Route::kExecution:
      execution(m.args[0], req, res);
      return;
    case Route::kDlq:
      dlq(req, res);
      return;
    case Route::kDlqMessage:
      if (req.method == "DELETE") {
        if (authorize(req, res)) purge(m.args[0], req, res);
      } else {
        dlq_message(m.args[0], req, res);
      }
      return;
    case Route::kRedrive:
      if (authorize(req, res)) redrive(m.args[0], req, res);
      return;
    case Route::kAlarms:
      alarms(req, res);
      return;
    case Route::kEvents:
      events(req, res);
      return;
    case Route::kAsset:
      asset(m.args[0], req, res);
      return;
  }
}

bool ApiServer::Impl::authorize(const Request& req, Response& res) {
  if (!deps_.admin_token) {
    send_error(res, 403,
               "mutating endpoints are disabled: set [service] admin_token_secret to enable them");
    return false;
  }
  auto token = deps_.admin_token();
  if (!token.ok()) {
    // The error names the secret and where it lives, never its value.
    spdlog::error("http: admin token unavailable: {}", token.status());
    send_error(res, 503, "the admin token cannot be read; see the daemon's log");
    return false;
  }
  if (token->empty()) {
    send_error(res, 403, "mutating endpoints are disabled: the admin token is empty");
    return false;
  }
  constexpr std::string_view kBearer = "Bearer ";
  const std::string& header = req.get_header_value("Authorization");
  if (header.size() < kBearer.size() || header.compare(0, kBearer.size(), kBearer) != 0) {
    res.set_header("WWW-Authenticate", "Bearer realm=\"metronome\"");
    send_error(res, 401, "missing 'Authorization: Bearer <token>'");
    return false;
  }
  if (!constant_time_equal(std::string_view(header).substr(kBearer.size()), token->reveal())) {
    res.set_header("WWW-Authenticate", "Bearer realm=\"metronome\", error=\"invalid_token\"");
    send_error(res, 401, "invalid token");
    return false;
  }
  return true;
}

Json ApiServer::Impl::feed_json(const FeedSnapshot& f) {
  const FeedSummary& s = *f.summary;
  Json latest = nullptr;
  if (f.latest) {
    latest = to_json(*f.latest);
  } else if (auto stored = deps_.store.latest_value(s.id); stored.ok() && *stored) {
    latest = to_json(**stored);  // published before this start
  }
  return Json{
      {"id", s.id.str()},
      {"schedule", s.schedule_text},
      {"window", format_duration(s.window)},
      {"deadline", duration_json(s.deadline)},
      {"source", s.source},
      {"decimals", s.decimals},
      {"latest", std::move(latest)},
      {"last_slot", f.last_slot ? slot_status_json(*f.last_slot) : Json(nullptr)},
  };
}

void ApiServer::Impl::feeds(const Request& req, Response& res) {
  auto params = Params::of(req, {});
  if (!params.ok()) return send_error(res, 400, params.status().message());
  Json list = Json::array();
  for (const auto& f : deps_.board.feeds()) list.push_back(feed_json(f));
  send_json(res, 200, Json{{"feeds", std::move(list)}});
}

std::optional<std::string> ApiServer::Impl::latest_body(const FeedId& feed) {
  auto record = deps_.board.latest(feed);
  if (!record) return std::nullopt;
  {
    std::lock_guard lock(rendered_mu_);
    auto it = rendered_.find(feed);
    if (it != rendered_.end() && it->second.record == record) return it->second.body;
  }
  std::string body = dump(to_json(*record));
  std::lock_guard lock(rendered_mu_);
  rendered_[feed] = Rendered{record, body};
  return body;
}

void ApiServer::Impl::latest(const FeedId& feed, const Request& req, Response& res) {
  auto params = Params::of(req, {});
  if (!params.ok()) return send_error(res, 400, params.status().message());
  if (auto body = latest_body(feed)) {
    res.status = 200;
    res.set_content(std::move(*body), "application/json");
    return;
  }
  auto stored = deps_.store.latest_value(feed);  // nothing published since start
  if (!stored.ok()) return send_status(res, stored.status());
  if (!*stored) return send_error(res, 404, fmt::format("feed '{}' has no value yet", feed));
  send_json(res, 200, to_json(**stored));
}

void ApiServer::Impl::values(const FeedId& feed, const Request& req, Response& res) {
  auto params = Params::of(req, {"from", "to", "limit", "cursor"});
  if (!params.ok()) return send_error(res, 400, params.status().message());
  auto limit = params->limit(kValuesDefaultLimit, kValuesMaxLimit);
  if (!limit.ok()) return send_error(res, 400, limit.status().message());
  auto from = params->time("from");
  if (!from.ok()) return send_error(res, 400, from.status().message());
  auto to = params->time("to");
  if (!to.ok()) return send_error(res, 400, to.status().message());
  auto cursor = params->cursor();
  if (!cursor.ok()) return send_error(res, 400, cursor.status().message());

  ValueQuery q;
  q.feed = feed;
  q.limit = *limit + 1;  // one more tells whether there is a next page
  if (*from) q.since = std::chrono::ceil<Millis>(**from);
  if (*to) q.before = std::chrono::floor<Millis>(**to) + Millis(1);  // `to` is inclusive
  if (*cursor && (!q.before || **cursor < *q.before)) q.before = **cursor;
  if (*from && *to && **from > **to) return send_error(res, 400, "from: later than 'to'");

  auto found = deps_.store.list_values(q);
  if (!found.ok()) return send_status(res, found.status());
  Json next = nullptr;
  if (found->size() > static_cast<size_t>(*limit)) {
    found->resize(static_cast<size_t>(*limit));
    next = make_cursor(found->back().slot);
  }
  Json list = Json::array();
  for (const auto& v : *found) list.push_back(to_json(v));
  send_json(res, 200, Json{{"values", std::move(list)}, {"next_cursor", std::move(next)}});
}

void ApiServer::Impl::round(const FeedId& feed, const std::string& round_text, const Request& req,
                            Response& res) {
  auto params = Params::of(req, {});
  if (!params.ok()) return send_error(res, 400, params.status().message());
  auto round = parse_int(round_text);
  if (!round || *round < 0) {
    return send_error(res, 400,
                      fmt::format("round: must be a non-negative integer, got '{}'", round_text));
  }
  auto snapshot = deps_.board.feed(feed);
  if (!snapshot) return send_error(res, 404, fmt::format("unknown feed '{}'", feed));
  const Schedule& schedule = snapshot->summary->schedule;
  int64_t unit_ms = schedule.is_interval() ? schedule.interval().count() : 1000;
  if (*round > std::numeric_limits<int64_t>::max() / unit_ms / 1000) {
    return send_error(res, 404, fmt::format("feed '{}' has no round {}", feed, *round));
  }
  SlotTime slot = slot_from_unix_ms(*round * unit_ms);
  auto value = deps_.store.get_value(feed, slot);
  if (!value.ok()) return send_status(res, value.status());
  if (!*value) return send_error(res, 404, fmt::format("feed '{}' has no round {}", feed, *round));
  send_json(res, 200, to_json(**value));
}

void ApiServer::Impl::executions(const Request& req, Response& res) {
  auto params = Params::of(req, {"feed", "limit", "cursor"});
  if (!params.ok()) return send_error(res, 400, params.status().message());
  auto limit = params->limit(kExecutionsDefaultLimit, kExecutionsMaxLimit);
  if (!limit.ok()) return send_error(res, 400, limit.status().message());
  auto cursor = params->cursor();
  if (!cursor.ok()) return send_error(res, 400, cursor.status().message());
  ExecutionQuery q;
  if (auto feed = params->get("feed")) {
    q.feed = FeedId(*feed);
    if (!deps_.board.has_feed(*q.feed)) {
      return send_error(res, 404, fmt::format("unknown feed '{}'", *feed));
    }
  }
  q.before = *cursor;
  q.limit = *limit + 1;
  auto found = deps_.store.list_executions(q);
  if (!found.ok()) return send_status(res, found.status());
  Json next = nullptr;
  if (found->size() > static_cast<size_t>(*limit)) {
    found->resize(static_cast<size_t>(*limit));
    next = make_cursor(found->back().window_start);
  }
  Json list = Json::array();
  for (const auto& e : *found) list.push_back(to_json(e));
  send_json(res, 200, Json{{"executions", std::move(list)}, {"next_cursor", std::move(next)}});
}

void ApiServer::Impl::execution(const std::string& id, const Request& req, Response& res) {
  auto params = Params::of(req, {});
  if (!params.ok()) return send_error(res, 400, params.status().message());
  auto found = deps_.store.get_execution(ExecutionId(id));
  if (!found.ok()) return send_status(res, found.status());
  if (!*found) return send_error(res, 404, fmt::format("unknown execution '{}'", id));
  send_json(res, 200, to_json(**found));
}

void ApiServer::Impl::dlq(const Request& req, Response& res) {
  auto params = Params::of(req, {"limit"});
  if (!params.ok()) return send_error(res, 400, params.status().message());
  auto limit = params->limit(kDlqDefaultLimit, kDlqMaxLimit);
  if (!limit.ok()) return send_error(res, 400, limit.status().message());
  auto depth = deps_.store.dlq_depth();
  if (!depth.ok()) return send_status(res, depth.status());
  auto messages = deps_.store.dlq_list(*limit);
  if (!messages.ok()) return send_status(res, messages.status());
  Json list = Json::array();
  for (const auto& m : *messages) list.push_back(to_json(m));
  send_json(res, 200, Json{{"depth", *depth}, {"messages", std::move(list)}});
}

namespace {
std::optional<int64_t> dlq_id(const std::string& text, Response& res) {
  auto id = parse_int(text);
  if (!id || *id < 0) {
    send_error(res, 400, fmt::format("id: must be a message id (an integer), got '{}'", text));
    return std::nullopt;
  }
  return id;
}
}  // namespace

void ApiServer::Impl::dlq_message(const std::string& text, const Request& req, Response& res) {
  auto params = Params::of(req, {});
  if (!params.ok()) return send_error(res, 400, params.status().message());
  auto id = dlq_id(text, res);
  if (!id) return;
  auto found = deps_.store.dlq_get(*id);
  if (!found.ok()) return send_status(res, found.status());
  if (!*found) return send_error(res, 404, fmt::format("no DLQ message {}", *id));
  send_json(res, 200, to_json(**found));
}

void ApiServer::Impl::redrive(const std::string& text, const Request& req, Response& res) {
  auto params = Params::of(req, {});
  if (!params.ok()) return send_error(res, 400, params.status().message());
  auto id = dlq_id(text, res);
  if (!id) return;
  auto message = deps_.dlq.get(*id);
  if (!message.ok()) return send_status(res, message.status());
  Status st = deps_.dlq.redrive(*id);
  if (st.code() == Status::Code::kInvalidArgument) return send_error(res, 409, st.message());
  if (!st.ok()) return send_status(res, st);
  spdlog::info("http: DLQ message {} redriven", *id);
  if (message->record && deps_.on_redriven) deps_.on_redriven(*message->record);
  send_json(res, 200, Json{{"redriven", *id}});
}

void ApiServer::Impl::purge(const std::string& text, const Request& req, Response& res) {
  auto params = Params::of(req, {});
  if (!params.ok()) return send_error(res, 400, params.status().message());
  auto id = dlq_id(text, res);
  if (!id) return;
  Status st = deps_.dlq.purge(*id);
  if (!st.ok()) return send_status(res, st);
  spdlog::info("http: DLQ message {} purged", *id);
  send_json(res, 200, Json{{"purged", *id}});
}

void ApiServer::Impl::alarms(const Request& req, Response& res) {
  auto params = Params::of(req, {});
  if (!params.ok()) return send_error(res, 400, params.status().message());
  auto states = deps_.store.alarm_states();
  if (!states.ok()) return send_status(res, states.status());
  Json list = Json::array();
  for (const auto& a : *states) list.push_back(to_json(a));
  send_json(res, 200, Json{{"alarms", std::move(list)}});
}

void ApiServer::Impl::readyz(const Request&, Response& res) {
  std::vector<std::string> reasons;
  Json checks;

  Status ping = deps_.store.ping();
  auto store = deps_.board.store_status();
  bool store_ok = ping.ok() && store->reachable;
  std::string store_detail = !ping.ok()          ? ping.ToString()
                             : !store->reachable ? "last write failed: " + store->reason
                                                 : "ok";
  if (!store_ok) reasons.push_back("store: " + store_detail);
  checks["store"] = {{"ok", store_ok}, {"detail", store_detail}};

  WallTime now = deps_.clock.now();
  Json feeds = Json::array();
  for (const auto& f : deps_.board.feeds()) {
    const FeedSummary& s = *f.summary;
    if (deps_.holds_feed && !deps_.holds_feed(s.id)) {
      feeds.push_back({{"feed", s.id.str()}, {"ok", true}, {"detail", "held by another replica"}});
      continue;
    }
    bool ok = true;
    std::string detail = "no slot yet";
    if (f.last_slot && !f.last_slot->reason.empty()) {
      ok = false;
      detail = f.last_slot->reason;
    } else if (f.last_slot) {
      detail = fmt::format("slot {} published", format_iso_ms(f.last_slot->slot.slot));
    }
    // Overdue: the slot after the last outcome (or after start) should have one by now.
    WallTime base = f.last_slot ? WallTime(f.last_slot->slot.slot) : started_at_;
    if (ok) {
      if (auto next = s.schedule.next_after(base)) {
        WallTime due_by = WallTime(*next);
        if (s.deadline) {
          due_by += *s.deadline;
        } else if (auto after = s.schedule.next_after(WallTime(*next))) {
          due_by = WallTime(*after);
        }
        due_by += options_.overdue_grace;
        if (now > due_by) {
          ok = false;
          detail = fmt::format("no outcome for slot {}, due by {}", format_iso_ms(*next),
                               format_iso_us(due_by));
        }
      }
    }
    if (!ok) reasons.push_back(fmt::format("feed {}: {}", s.id, detail));
    feeds.push_back({{"feed", s.id.str()}, {"ok", ok}, {"detail", detail}});
  }
  checks["feeds"] = std::move(feeds);

  auto step = deps_.board.clock_step();
  std::string clock_detail = "ok";
  if (step->unresolved) {
    clock_detail = fmt::format(
        "wall clock stepped by {} ms at {}; waiting for a slot published after it",
        std::chrono::duration_cast<Millis>(step->step).count(), format_iso_us(step->at));
    reasons.push_back("clock: " + clock_detail);
  }
  checks["clock"] = {{"ok", !step->unresolved}, {"detail", clock_detail}};
  if (deps_.replica_problem) {
    std::string problem = deps_.replica_problem();
    if (!problem.empty()) reasons.push_back("replica: " + problem);
    checks["replica"] = {{"ok", problem.empty()}, {"detail", problem.empty() ? "ok" : problem}};
  }

  if (deps_.spool_depth) {
    const int64_t depth = deps_.spool_depth();
    checks["spool"] = {
        {"ok", true},
        {"depth", depth},
        {"detail", depth == 0 ? std::string("empty")
                              : fmt::format("{} writes waiting for the database", depth)}};
  }

  bool ready = reasons.empty();
  std::string reason = "ready";
  if (!ready) {
    reason.clear();
    for (const auto& r : reasons) reason += (reason.empty() ? "" : "; ") + r;
  }
  send_json(res, ready ? 200 : 503,
            Json{{"ready", ready}, {"reason", reason}, {"checks", std::move(checks)}});
}

void ApiServer::Impl::metrics(const Request& req, Response& res) {
  auto params = Params::of(req, {});
  if (!params.ok()) return send_error(res, 400, params.status().message());
  // Gauges that live in the store are refreshed at scrape time, from this server's connection.
  if (auto depth = deps_.store.dlq_depth(); depth.ok()) deps_.metrics.set_dlq_depth(*depth);
  if (auto states = deps_.store.alarm_states(); states.ok()) {
    for (const auto& a : *states) deps_.metrics.set_alarm_state(a.name, a.status);
  }
  res.status = 200;
  res.set_content(deps_.metrics.serialize(), "text/plain; version=0.0.4; charset=utf-8");
}

namespace {

// One open event stream: holds its place in the cap and its EventHub subscription for as long
// as httplib keeps the response's content provider.
class EventStream {
 public:
  EventStream(EventHub& hub, std::atomic<size_t>& open) : subscription_(hub), open_(open) {}
  ~EventStream() { open_.fetch_sub(1); }
  EventStream(const EventStream&) = delete;
  EventStream& operator=(const EventStream&) = delete;

 private:
  EventHub::Subscription subscription_;
  std::atomic<size_t>& open_;
};

std::string sse_event(uint64_t id, std::string_view type, std::string_view data) {
  return fmt::format("id: {}\nevent: {}\ndata: {}\n\n", id, type, data);
}

}  // namespace

void ApiServer::Impl::events(const Request& req, Response& res) {
  auto params = Params::of(req, {});
  if (!params.ok()) return send_error(res, 400, params.status().message());
  if (deps_.events == nullptr) return send_error(res, 404, "this server has no event stream");
  if (stopping_) return send_error(res, 503, "the server is stopping");
  const size_t max = options_.max_event_streams;
  if (open_streams_.fetch_add(1) >= max) {
    open_streams_.fetch_sub(1);
    return send_error(res, 503,
                      fmt::format("too many event streams open (the limit is {}, to keep request "
                                  "threads free); poll the API instead",
                                  max));
  }
  EventHub& hub = *deps_.events;
  auto stream = std::make_shared<EventStream>(hub, open_streams_);
  const uint64_t now = hub.last_seq();
  // EventSource sends the id of the last event it got when it reconnects: resume after it while
  // the events are still in the ring (next() reports them lost otherwise). An id from another
  // run of the daemon (larger than any here) cannot be resumed: start from now, with a resync.
  uint64_t after = now;
  bool resync = false;
  if (req.has_header("Last-Event-ID")) {
    auto last = parse_int(req.get_header_value("Last-Event-ID"));
    if (last && *last >= 0 && static_cast<uint64_t>(*last) <= now) {
      after = static_cast<uint64_t>(*last);
    } else {
      resync = true;
    }
  }
  res.status = 200;
  res.set_header("X-Accel-Buffering", "no");
  const auto heartbeat = options_.event_heartbeat;
  res.set_chunked_content_provider(
      "text/event-stream", [this, &hub, stream, after, heartbeat, first = true, resync](
                               size_t, httplib::DataSink& sink) mutable {
        std::string out;
        if (first) {
          first = false;
          // retry: how long EventSource waits before it reconnects.
          out = "retry: 2000\n\n";
          out += sse_event(after, resync ? "resync" : "hello",
                           dump(Json{{"seq", after}, {"version", deps_.version}}));
          return sink.write(out.data(), out.size());
        }
        EventHub::Batch batch = hub.next(after, heartbeat, stopping_);
        if (batch.stopped) {
          sink.done();
          return true;
        }
        if (batch.lost) {
          // Too slow: events were overwritten before this stream sent them. Tell the client to
          // fetch everything again (with the id to resume from), and end the stream.
          uint64_t last = batch.events.empty() ? after : batch.events.back()->seq;
          out = sse_event(last, "resync", dump(Json{{"seq", last}, {"reason", "events lost"}}));
          if (!sink.write(out.data(), out.size())) return false;
          sink.done();
          return true;
        }
        if (batch.events.empty()) {
          out = ": keep-alive\n\n";
        } else {
          for (const auto& e : batch.events) out += sse_event(e->seq, e->type, e->data);
          after = batch.events.back()->seq;
        }
        // A client that does not read blocks this write for at most write_timeout; then the
        // stream ends (and the slot path never noticed).
        return sink.write(out.data(), out.size());
      });
}

void ApiServer::Impl::asset(const std::string& name, const Request& req, Response& res) {
  auto params = Params::of(req, {});
  if (!params.ok()) return send_error(res, 400, params.status().message());
  const WebAsset* found = find_web_asset(name);
  if (found == nullptr) return send_error(res, 404, fmt::format("no such file: {}", req.path));
  res.status = 200;
  // Everything the page loads comes from this server: no CDN, no inline script.
  res.set_header("Content-Security-Policy",
                 "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:");
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_content(std::string(found->body), std::string(found->content_type));
}

ApiServer::ApiServer(ApiDeps deps, ApiOptions options)
    : impl_(std::make_unique<Impl>(std::move(deps), options)) {}

ApiServer::~ApiServer() {
  stop();
}

Status ApiServer::start(const std::string& listen) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return Status::InvalidArgument(fmt::format("listen: expected HOST:PORT, got '{}'", listen));
  }
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  auto port = parse_int(std::string_view(listen).substr(colon + 1));
  if (!port || *port < 0 || *port > 65535) {
    return Status::InvalidArgument(fmt::format("listen: bad port in '{}'", listen));
  }
  if (listener_.joinable()) return Status::Internal("api server: already started");
  auto& server = impl_->server();
  if (*port == 0) {
    port_ = server.bind_to_any_port(host);
    if (port_ < 0) {
      return Status::Unavailable(fmt::format("api server: cannot listen on {}", listen));
    }
  } else {
    if (!server.bind_to_port(host, static_cast<int>(*port))) {
      return Status::Unavailable(
          fmt::format("api server: cannot listen on {} (in use, or not a local address)", listen));
    }
    port_ = static_cast<int>(*port);
  }
  listener_ = std::jthread([&server] { server.listen_after_bind(); });
  // httplib's stop() does nothing until the listener thread is inside its accept loop, so a
  // stop() right after start() would leave the listener running and its join() hanging: wait
  // until it runs (bounded), so that stop() always ends it.
  // A thread start-up handshake, not a wait for time to pass: it polls in real time (the
  // injected Clock may be a test's manual clock that never moves).
  for (int i = 0; i < 5000 && !server.is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!server.is_running()) {
    server.stop();
    return Status::Unavailable(fmt::format("api server: {} did not start listening", listen));
  }
  spdlog::info("api listening on {}:{}", host, port_);
  return Status::Ok();
}

void ApiServer::stop() {
  if (!listener_.joinable()) return;
  impl_->stop_streams();
  impl_->server().stop();
  listener_.join();
}

}  // namespace metronome
