#include "api/http_server.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "api/web_assets.h"
#include "store/sqlite_store.h"
#include "testing/manual_clock.h"
#include "testing/store_conformance.h"

namespace metronome {
namespace {

using Json = nlohmann::json;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

const FeedId kFast("fast");
const FeedId kIdle("idle");
constexpr std::string_view kToken = "s3cret-admin-token";

FeedSummary summary(const FeedId& id) {
  return FeedSummary{.id = id,
                     .schedule = Schedule::every(Millis(100)),
                     .schedule_text = "every 100ms",
                     .window = Millis(1000),
                     .deadline = std::nullopt,
                     .source = "random_int 0..1000",
                     .decimals = 0};
}

ValueRecord value_at(SlotTime slot) {
  ValueRecord r;
  r.feed = kFast;
  r.round = to_unix_ms(slot) / 100;
  r.slot = slot;
  r.value = std::to_string(to_unix_ms(slot) / 100 % 1000);
  r.observed_at = WallTime(slot) + Micros(30);
  r.published_at = WallTime(slot) + Micros(400);
  r.execution = make_execution_id(kFast, std::chrono::floor<std::chrono::seconds>(slot));
  return r;
}

struct Reply {
  int status = 0;
  Json body;
  httplib::Headers headers;
  std::string text;
};

// A real SqliteStore in a temp dir holding three 1 s windows of the 100 ms feed `fast` (30
// published values), a DLQ with a message with a record and one without, and an alarm; the
// server reads it through a second, read-only connection, as in the daemon.
class ApiServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store =
        SqliteStore::open({.path = dir_.path() / "m.db", .dlq_path = dir_.path() / "d.db"});
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    board_.set_feeds({summary(kFast), summary(kIdle)});
    metrics_.set_feeds({kFast, kIdle});
    seed();
    auto read = SqliteStore::open(
        {.path = dir_.path() / "m.db", .dlq_path = dir_.path() / "d.db", .read_only = true});
    ASSERT_TRUE(read.ok()) << read.status().ToString();
    read_store_ = std::move(*read);
    dlq_ = std::make_unique<DeadLetterQueue>(*store_, clock_);
  }

  void seed() {
    for (int w = 0; w < 3; ++w) {
      Execution e;
      e.feed = kFast;
      e.window_start = window0_ + Millis(1000 * w);
      e.window_end = e.window_start + Millis(1000);
      e.id = make_execution_id(kFast, e.window_start);
      e.state = ExecutionState::kRunning;
      e.created_at = WallTime(e.window_start) - Millis(500);
      for (int i = 0; i < 10; ++i)
        e.slots.push_back(SlotRecord{.slot = e.window_start + Millis(100 * i)});
      ASSERT_TRUE(store_->create_execution(e).ok());
      std::vector<SlotCommit> commits;
      for (const auto& s : e.slots) {
        SlotCommit c{.execution = e.id, .feed = kFast, .slot = s, .record = value_at(s.slot)};
        c.slot.outcome = SlotOutcome::kPublished;
        c.slot.fired_at = WallTime(s.slot) + Micros(20);
        c.slot.lateness_us = 20;
        c.slot.attempts = 1;
        commits.push_back(c);
      }
      ASSERT_TRUE(store_->commit_slots(commits).ok());
    }
    DlqMessage with_record;
    with_record.feed = kFast;
    with_record.slot = window0_ + Millis(3000);
    with_record.execution = make_execution_id(kFast, window0_ + Millis(3000));
    with_record.stage = "publish";
    with_record.error = "io_error: disk full";
    with_record.attempts = 3;
    with_record.first_failure = with_record.last_failure = clock_.now();
    with_record.record = value_at(*with_record.slot);
    auto id = store_->dlq_push(with_record);
    ASSERT_TRUE(id.ok());
    redrivable_id_ = *id;
    DlqMessage without = with_record;
    without.record.reset();
    without.stage = "sink:test";
    id = store_->dlq_push(without);
    ASSERT_TRUE(id.ok());
    plain_id_ = *id;
    ASSERT_TRUE(store_
                    ->put_alarm_state(AlarmState{.name = "dlq_not_empty",
                                                 .status = AlarmStatus::kAlarm,
                                                 .since = clock_.now(),
                                                 .reason = "DLQ depth 2 >= 1",
                                                 .previous = AlarmStatus::kOk,
                                                 .actions_pending = false})
                    .ok());
  }

  void start(std::function<Result<SecretValue>()> token = {}, ApiOptions options = {}) {
    server_ = std::make_unique<ApiServer>(
        ApiDeps{.store = *read_store_,
                .dlq = *dlq_,
                .board = board_,
                .metrics = metrics_,
                .clock = clock_,
                .admin_token = std::move(token),
                .version = "9.9.9",
                .on_redriven = [this](const ValueRecord& r) { redriven_.push_back(r); },
                .events = &events_,
                .spool_depth = spool_depth_,
                .replica_problem = replica_problem_,
                .holds_feed = holds_feed_},
        options);
    ASSERT_TRUE(server_->start("127.0.0.1:0").ok());
    ASSERT_GT(server_->port(), 0);
  }
  void start_with_token() {
    start([] { return Result<SecretValue>(SecretValue(std::string(kToken))); });
  }

  httplib::Client client() {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_read_timeout(10s);
    return c;
  }

  static Reply reply_of(const httplib::Result& r) {
    Reply out;
    if (!r) {
      ADD_FAILURE() << "request failed: " << httplib::to_string(r.error());
      return out;
    }
    out.status = r->status;
    out.headers = r->headers;
    out.text = r->body;
    if (r->get_header_value("Content-Type") == "application/json") {
      out.body = Json::parse(r->body);
    }
    return out;
  }
  Reply get(const std::string& path, httplib::Headers headers = {}) {
    auto c = client();
    return reply_of(c.Get(path, headers));
  }
  Reply post(const std::string& path, httplib::Headers headers = {}, std::string body = "") {
    auto c = client();
    return reply_of(c.Post(path, headers, body, "application/json"));
  }
  Reply del(const std::string& path, httplib::Headers headers = {}) {
    auto c = client();
    return reply_of(c.Delete(path, headers));
  }
  static httplib::Headers bearer(std::string_view token) {
    return {{"Authorization", "Bearer " + std::string(token)}};
  }

  // Asserts a JSON error with `status` whose detail contains `detail`.
  static void expect_error(const Reply& r, int status, const std::string& detail) {
    EXPECT_EQ(r.status, status) << r.text;
    EXPECT_TRUE(r.body.is_object() && r.body.contains("error") && r.body.contains("detail"))
        << r.text;
    if (r.body.is_object() && r.body.contains("detail")) {
      EXPECT_THAT(r.body["detail"].get<std::string>(), HasSubstr(detail));
    }
  }

  testing::TempDir dir_;
  testing::ManualClock clock_;
  SlotTime window0_ =
      std::chrono::floor<std::chrono::seconds>(std::chrono::floor<Millis>(clock_.now())) -
      Millis(3000);
  std::unique_ptr<SqliteStore> store_;
  std::unique_ptr<SqliteStore> read_store_;
  std::unique_ptr<DeadLetterQueue> dlq_;
  StatusBoard board_;
  Metrics metrics_{"9.9.9"};
  std::vector<ValueRecord> redriven_;
  int64_t redrivable_id_ = 0;
  int64_t plain_id_ = 0;
  EventHub events_{8};                    // small, so that a slow stream loses events quickly
  std::function<int64_t()> spool_depth_;  // ApiDeps::spool_depth of the next start()
  std::function<std::string()> replica_problem_;   // ApiDeps::replica_problem, likewise
  std::function<bool(const FeedId&)> holds_feed_;  // ApiDeps::holds_feed, likewise
  std::unique_ptr<ApiServer> server_;
};

SlotTime slot_of(const Json& v) {
  return slot_from_unix_ms(std::stoll(v["slot_ms"].get<std::string>()));
}

TEST_F(ApiServerTest, Healthz) {
  start();
  auto r = get("/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body["status"], "ok");
  EXPECT_EQ(r.body["version"], "9.9.9");
  EXPECT_EQ(r.body["admin"], false);
}

TEST_F(ApiServerTest, FeedsListsSummariesWithLatestFromBoardOrStore) {
  start();
  auto r = get("/v1/feeds");
  ASSERT_EQ(r.status, 200) << r.text;
  ASSERT_EQ(r.body["feeds"].size(), 2u);
  const auto& fast = r.body["feeds"][0];
  EXPECT_EQ(fast["id"], "fast");
  EXPECT_EQ(fast["schedule"], "every 100ms");
  EXPECT_EQ(fast["window"], "1s");
  EXPECT_EQ(fast["deadline"], nullptr);
  EXPECT_EQ(fast["source"], "random_int 0..1000");
  EXPECT_EQ(fast["decimals"], 0);
  EXPECT_EQ(slot_of(fast["latest"]), window0_ + Millis(2900));  // from the store
  EXPECT_EQ(fast["last_slot"], nullptr);
  EXPECT_EQ(r.body["feeds"][1]["latest"], nullptr);

  ValueRecord fresh = value_at(window0_ + Millis(3000));
  board_.on_published(fresh);
  board_.on_outcome(kFast, SlotRecord{.slot = fresh.slot, .outcome = SlotOutcome::kPublished});
  r = get("/v1/feeds");
  EXPECT_EQ(slot_of(r.body["feeds"][0]["latest"]), fresh.slot);  // from the board
  EXPECT_EQ(r.body["feeds"][0]["last_slot"]["outcome"], "published");
  EXPECT_EQ(r.body["feeds"][0]["last_slot"]["reason"], "");
}

TEST_F(ApiServerTest, LatestFromBoardThenStoreElse404) {
  start();
  auto r = get("/v1/feeds/fast/latest");
  ASSERT_EQ(r.status, 200) << r.text;
  EXPECT_EQ(slot_of(r.body), window0_ + Millis(2900));
  EXPECT_EQ(r.body["feed"], "fast");
  EXPECT_EQ(r.body["round"], std::to_string(to_unix_ms(window0_ + Millis(2900)) / 100));

  ValueRecord fresh = value_at(window0_ + Millis(3000));
  board_.on_published(fresh);
  for (int i = 0; i < 2; ++i) {  // the second answer comes from the rendered cache
    r = get("/v1/feeds/fast/latest");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(slot_of(r.body), fresh.slot);
    EXPECT_EQ(r.body["value"], fresh.value);
  }
  expect_error(get("/v1/feeds/idle/latest"), 404, "feed 'idle' has no value yet");
  expect_error(get("/v1/feeds/nope/latest"), 404, "unknown feed 'nope'");
  expect_error(get("/v1/feeds/fast/latest?x=1"), 400, "x: unknown parameter");
}

TEST_F(ApiServerTest, ValuesPageNewestFirstThroughTheCursor) {
  start();
  std::vector<SlotTime> seen;
  std::string path = "/v1/feeds/fast/values?limit=7";
  int pages = 0;
  while (true) {
    auto r = get(path);
    ASSERT_EQ(r.status, 200) << r.text;
    ++pages;
    for (const auto& v : r.body["values"]) seen.push_back(slot_of(v));
    if (r.body["next_cursor"].is_null()) break;
    path = "/v1/feeds/fast/values?limit=7&cursor=" + r.body["next_cursor"].get<std::string>();
    ASSERT_LT(pages, 10);
  }
  EXPECT_EQ(pages, 5);
  ASSERT_EQ(seen.size(), 30u);
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], window0_ + Millis(2900 - 100 * i));

  auto all = get("/v1/feeds/fast/values");
  EXPECT_EQ(all.body["values"].size(), 30u);
  EXPECT_TRUE(all.body["next_cursor"].is_null());
}

TEST_F(ApiServerTest, ValuesTimeRangeIsInclusive) {
  start();
  auto from = std::to_string(to_unix_ms(window0_ + Millis(1000)));
  auto to = format_iso_ms(window0_ + Millis(1500));
  auto r = get("/v1/feeds/fast/values?from=" + from + "&to=" + to);
  ASSERT_EQ(r.status, 200) << r.text;
  ASSERT_EQ(r.body["values"].size(), 6u);
  EXPECT_EQ(slot_of(r.body["values"][0]), window0_ + Millis(1500));
  EXPECT_EQ(slot_of(r.body["values"][5]), window0_ + Millis(1000));
}

TEST_F(ApiServerTest, ValuesBadParametersAre400NamingThem) {
  start();
  expect_error(get("/v1/feeds/fast/values?limit=0"), 400, "limit:");
  expect_error(get("/v1/feeds/fast/values?limit=1001"), 400,
               "limit: must be an integer from 1 to 1000");
  expect_error(get("/v1/feeds/fast/values?limit=ten"), 400, "limit:");
  expect_error(get("/v1/feeds/fast/values?from=yesterday"), 400, "from:");
  expect_error(get("/v1/feeds/fast/values?to=2026-13-01"), 400, "to:");
  expect_error(get("/v1/feeds/fast/values?cursor=***"), 400, "cursor:");
  expect_error(get("/v1/feeds/fast/values?cursor=YWJj"), 400, "cursor:");  // "abc"
  expect_error(get("/v1/feeds/fast/values?limit=1&limit=2"), 400, "limit: given more than once");
  expect_error(get("/v1/feeds/fast/values?page=2"), 400, "page: unknown parameter");
  expect_error(get("/v1/feeds/fast/values?from=2026-01-02&to=2026-01-01"), 400, "from:");
  expect_error(get("/v1/feeds/nope/values"), 404, "unknown feed");
}

TEST_F(ApiServerTest, Rounds) {
  start();
  SlotTime slot = window0_ + Millis(1200);
  auto round = std::to_string(to_unix_ms(slot) / 100);
  auto r = get("/v1/feeds/fast/rounds/" + round);
  ASSERT_EQ(r.status, 200) << r.text;
  EXPECT_EQ(slot_of(r.body), slot);
  EXPECT_EQ(r.body["round"], round);
  expect_error(get("/v1/feeds/fast/rounds/5"), 404, "has no round 5");
  expect_error(get("/v1/feeds/fast/rounds/99999999999999999"), 404, "has no round");
  expect_error(get("/v1/feeds/fast/rounds/-1"), 400, "round:");
  expect_error(get("/v1/feeds/fast/rounds/abc"), 400, "round:");
  expect_error(get("/v1/feeds/nope/rounds/1"), 404, "unknown feed");
}

TEST_F(ApiServerTest, ExecutionsListPagesAndGetById) {
  start();
  auto r = get("/v1/executions?feed=fast&limit=2");
  ASSERT_EQ(r.status, 200) << r.text;
  ASSERT_EQ(r.body["executions"].size(), 2u);
  EXPECT_EQ(r.body["executions"][0]["id"], make_execution_id(kFast, window0_ + Millis(2000)).str());
  EXPECT_EQ(r.body["executions"][0]["slots"].size(), 10u);
  EXPECT_EQ(r.body["executions"][0]["slots"][0]["outcome"], "published");
  EXPECT_EQ(r.body["executions"][0]["slots"][0]["lateness_us"], 20);
  ASSERT_TRUE(r.body["next_cursor"].is_string());
  auto next = get("/v1/executions?limit=2&cursor=" + r.body["next_cursor"].get<std::string>());
  ASSERT_EQ(next.status, 200);
  ASSERT_EQ(next.body["executions"].size(), 1u);
  EXPECT_EQ(next.body["executions"][0]["id"], make_execution_id(kFast, window0_).str());
  EXPECT_TRUE(next.body["next_cursor"].is_null());

  auto id = make_execution_id(kFast, window0_).str();
  auto one = get("/v1/executions/" + id);
  ASSERT_EQ(one.status, 200) << one.text;
  EXPECT_EQ(one.body["id"], id);
  auto encoded = get("/v1/executions/fast%40" + id.substr(5));
  EXPECT_EQ(encoded.status, 200) << encoded.text;

  expect_error(get("/v1/executions/fast@2000-01-01T00:00:00Z"), 404, "unknown execution");
  expect_error(get("/v1/executions?feed=nope"), 404, "unknown feed");
  expect_error(get("/v1/executions?limit=101"), 400, "limit:");
  expect_error(get("/v1/executions?cursor=%%"), 400, "");
}

TEST_F(ApiServerTest, DlqAndAlarms) {
  start();
  auto r = get("/v1/dlq");
  ASSERT_EQ(r.status, 200) << r.text;
  EXPECT_EQ(r.body["depth"], 2);
  ASSERT_EQ(r.body["messages"].size(), 2u);
  EXPECT_EQ(r.body["messages"][0]["id"], redrivable_id_);
  EXPECT_EQ(r.body["messages"][0]["error"], "io_error: disk full");
  EXPECT_TRUE(r.body["messages"][0]["record"].is_object());
  EXPECT_TRUE(r.body["messages"][1]["record"].is_null());

  auto one = get("/v1/dlq/" + std::to_string(plain_id_));
  EXPECT_EQ(one.status, 200);
  EXPECT_EQ(one.body["stage"], "sink:test");
  expect_error(get("/v1/dlq/12345"), 404, "no DLQ message 12345");
  expect_error(get("/v1/dlq/abc"), 400, "id:");

  auto alarms = get("/v1/alarms");
  ASSERT_EQ(alarms.status, 200);
  ASSERT_EQ(alarms.body["alarms"].size(), 1u);
  EXPECT_EQ(alarms.body["alarms"][0]["alarm"], "dlq_not_empty");
  EXPECT_EQ(alarms.body["alarms"][0]["state"], "ALARM");
}

TEST_F(ApiServerTest, MutatingEndpointsWithoutATokenConfiguredAre403) {
  start();
  expect_error(post("/v1/dlq/" + std::to_string(redrivable_id_) + "/redrive", bearer(kToken)), 403,
               "admin_token_secret");
  expect_error(del("/v1/dlq/" + std::to_string(plain_id_), bearer(kToken)), 403, "");
  EXPECT_EQ(*store_->dlq_depth(), 2);
}

TEST_F(ApiServerTest, MutatingEndpointsNeedTheBearerToken) {
  start_with_token();
  auto path = "/v1/dlq/" + std::to_string(redrivable_id_) + "/redrive";
  auto missing = post(path);
  expect_error(missing, 401, "Authorization");
  EXPECT_THAT(missing.headers.find("WWW-Authenticate")->second, HasSubstr("Bearer"));
  auto wrong = post(path, bearer("s3cret-admin-tokeN"));
  expect_error(wrong, 401, "invalid token");
  EXPECT_THAT(wrong.headers.find("WWW-Authenticate")->second, HasSubstr("invalid_token"));
  expect_error(post(path, bearer("")), 401, "");
  expect_error(post(path, bearer(std::string(kToken) + "x")), 401, "");
  expect_error(post(path, {{"Authorization", "Basic " + std::string(kToken)}}), 401, "");
  expect_error(del("/v1/dlq/" + std::to_string(plain_id_), bearer("nope")), 401, "");
  EXPECT_EQ(*store_->dlq_depth(), 2);
  EXPECT_THAT(missing.text, ::testing::Not(HasSubstr(std::string(kToken))));
}

TEST_F(ApiServerTest, RedriveAndPurgeWithTheToken) {
  start_with_token();
  SlotTime slot = window0_ + Millis(3000);
  ASSERT_FALSE(*store_->get_value(kFast, slot));
  auto r = post("/v1/dlq/" + std::to_string(redrivable_id_) + "/redrive", bearer(kToken));
  ASSERT_EQ(r.status, 200) << r.text;
  EXPECT_EQ(r.body["redriven"], redrivable_id_);
  auto stored = store_->get_value(kFast, slot);
  ASSERT_TRUE(stored.ok() && *stored);
  EXPECT_EQ((*stored)->value, value_at(slot).value);
  ASSERT_EQ(redriven_.size(), 1u);
  EXPECT_EQ(redriven_[0].slot, slot);
  expect_error(post("/v1/dlq/" + std::to_string(redrivable_id_) + "/redrive", bearer(kToken)), 404,
               "");

  expect_error(post("/v1/dlq/" + std::to_string(plain_id_) + "/redrive", bearer(kToken)), 409, "");
  auto purged = del("/v1/dlq/" + std::to_string(plain_id_), bearer(kToken));
  ASSERT_EQ(purged.status, 200) << purged.text;
  EXPECT_EQ(purged.body["purged"], plain_id_);
  expect_error(del("/v1/dlq/" + std::to_string(plain_id_), bearer(kToken)), 404, "");
  EXPECT_EQ(*store_->dlq_depth(), 0);
}

TEST_F(ApiServerTest, TokenProviderErrorsAndExceptionsLeakNothing) {
  start([]() -> Result<SecretValue> { throw std::runtime_error("boom s3cret-admin-token"); });
  auto r = post("/v1/dlq/1/redrive", bearer(kToken));
  expect_error(r, 500, "internal error");
  EXPECT_THAT(r.text, ::testing::Not(HasSubstr("s3cret")));
  for (const auto& [k, v] : r.headers) EXPECT_THAT(v, ::testing::Not(HasSubstr("s3cret")));
  server_.reset();
  start([]() -> Result<SecretValue> { return Status::NotFound("secret admin: file /x missing"); });
  expect_error(post("/v1/dlq/1/redrive", bearer(kToken)), 503, "admin token cannot be read");
}

TEST_F(ApiServerTest, WrongMethodIs405WithAllow) {
  start_with_token();
  auto r = post("/v1/feeds", bearer(kToken));
  expect_error(r, 405, "");
  EXPECT_EQ(r.headers.find("Allow")->second, "GET");
  auto c = client();
  auto put = reply_of(c.Put("/v1/dlq/1", "{}", "application/json"));
  expect_error(put, 405, "");
  EXPECT_EQ(put.headers.find("Allow")->second, "GET, DELETE");
  auto redrive = get("/v1/dlq/1/redrive");
  expect_error(redrive, 405, "");
  EXPECT_EQ(redrive.headers.find("Allow")->second, "POST");
  expect_error(del("/metrics", bearer(kToken)), 405, "");
  auto patch = reply_of(c.Patch("/healthz", "{}", "application/json"));
  expect_error(patch, 405, "");
  auto options = reply_of(c.Options("/v1/dlq/1"));
  EXPECT_EQ(options.status, 204);
  EXPECT_EQ(options.headers.find("Allow")->second, "GET, DELETE");
}

TEST_F(ApiServerTest, UnknownPathsAre404) {
  start();
  expect_error(get("/nope"), 404, "no such endpoint");
  expect_error(get("/assets/nope.js"), 404, "no such file");
  expect_error(get("/v1/feeds/"), 404, "");
  expect_error(get("/v2/feeds"), 404, "");
  expect_error(get("/v1/feeds/fast/latest/extra"), 404, "");
}

TEST_F(ApiServerTest, BodyOver64KiBIs413) {
  start_with_token();
  auto r = post("/v1/dlq/" + std::to_string(plain_id_) + "/redrive", bearer(kToken),
                std::string(100 * 1024, 'x'));
  expect_error(r, 413, "too large");
  EXPECT_EQ(*store_->dlq_depth(), 2);
  auto small = post("/v1/dlq/" + std::to_string(plain_id_) + "/redrive", bearer(kToken),
                    std::string(1024, 'x'));
  EXPECT_EQ(small.status, 409);  // a small body is accepted (and ignored)
}

TEST_F(ApiServerTest, TargetOver8KiBIs414) {
  start();
  expect_error(get("/v1/feeds/" + std::string(9000, 'a') + "/latest"), 414, "");
  expect_error(get("/v1/feeds/fast/values?from=" + std::string(8300, '1')), 414, "");
  EXPECT_EQ(get("/healthz").status, 200);  // still serving
}

TEST_F(ApiServerTest, MalformedRequestIs400Json) {
  ApiOptions options;
  options.read_timeout = 300ms;
  options.keep_alive_timeout = 1s;
  start({}, options);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(server_->port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  std::string garbage = "NONSENSE\r\n\r\n";
  ASSERT_EQ(write(fd, garbage.data(), garbage.size()), static_cast<ssize_t>(garbage.size()));
  char buf[4096];
  std::string answer;
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) answer.append(buf, static_cast<size_t>(n));
  close(fd);
  EXPECT_THAT(answer, HasSubstr("400"));
  EXPECT_THAT(answer, HasSubstr("\"error\":\"bad_request\""));
}

TEST_F(ApiServerTest, StalledClientTimesOut) {
  ApiOptions options;
  options.read_timeout = 300ms;
  options.keep_alive_timeout = 1s;
  start({}, options);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(server_->port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  std::string partial = "GET /healthz HTTP/1.1\r\nHost: x\r\n";  // never finished
  ASSERT_EQ(write(fd, partial.data(), partial.size()), static_cast<ssize_t>(partial.size()));
  auto begin = std::chrono::steady_clock::now();
  pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
  ASSERT_EQ(poll(&p, 1, 5000), 1) << "the server kept a stalled connection for 5 s";
  // The server gives up on the request: it answers 400 (incomplete request) and closes.
  std::string answer;
  char buf[256];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) answer.append(buf, static_cast<size_t>(n));
  EXPECT_EQ(n, 0);
  if (!answer.empty()) {
    EXPECT_THAT(answer, HasSubstr("HTTP/1.1 400")) << answer;
  }
  auto waited = std::chrono::steady_clock::now() - begin;
  EXPECT_GE(waited, 250ms);
  EXPECT_LT(waited, 3s);
  close(fd);
  EXPECT_EQ(get("/healthz").status, 200);
}

TEST_F(ApiServerTest, ReadyWhenEveryFeedPublishedOnTime) {
  start();
  SlotTime now_slot = std::chrono::floor<Millis>(clock_.now());
  board_.on_outcome(kFast, SlotRecord{.slot = now_slot, .outcome = SlotOutcome::kPublished});
  board_.on_outcome(kIdle, SlotRecord{.slot = now_slot, .outcome = SlotOutcome::kPublished});
  auto r = get("/readyz");
  EXPECT_EQ(r.status, 200) << r.text;
  EXPECT_EQ(r.body["ready"], true);
  EXPECT_EQ(r.body["checks"]["store"]["ok"], true);
  EXPECT_EQ(r.body["checks"]["feeds"].size(), 2u);
}

TEST_F(ApiServerTest, ReadyzShowsTheOutageSpoolDepthWhenThereIsOne) {
  start();
  EXPECT_FALSE(get("/readyz").body["checks"].contains("spool"));  // SQLite: no spool
  server_->stop();
  int64_t depth = 7;
  spool_depth_ = [&depth] { return depth; };
  start();
  SlotTime now_slot = std::chrono::floor<Millis>(clock_.now());
  board_.on_outcome(kFast, SlotRecord{.slot = now_slot, .outcome = SlotOutcome::kPublished});
  board_.on_outcome(kIdle, SlotRecord{.slot = now_slot, .outcome = SlotOutcome::kPublished});
  auto r = get("/readyz");
  EXPECT_EQ(r.status, 200) << r.text;  // writes are spooled, not lost: still ready
  EXPECT_EQ(r.body["checks"]["spool"]["depth"], 7);
  EXPECT_EQ(r.body["checks"]["spool"]["detail"], "7 writes waiting for the database");
  depth = 0;
  EXPECT_EQ(get("/readyz").body["checks"]["spool"]["detail"], "empty");
}

TEST_F(ApiServerTest, AReplicaIsNotReadyWithABadClockAndDoesNotAnswerForOthersFeeds) {
  std::string problem = "clock 200000 us off the database's (max_clock_skew 50 ms)";
  replica_problem_ = [&problem] { return problem; };
  holds_feed_ = [](const FeedId& feed) { return feed == kFast; };
  start();
  SlotTime now_slot = std::chrono::floor<Millis>(clock_.now());
  board_.on_outcome(kFast, SlotRecord{.slot = now_slot, .outcome = SlotOutcome::kPublished});
  auto r = get("/readyz");
  EXPECT_EQ(r.status, 503) << r.text;
  EXPECT_THAT(r.body["reason"].get<std::string>(), HasSubstr("replica: clock 200000 us off"));
  EXPECT_EQ(r.body["checks"]["replica"]["ok"], false);
  problem.clear();
  // kIdle has no outcome here and is overdue, but another replica holds it.
  clock_.advance(5s);
  board_.on_outcome(kFast, SlotRecord{.slot = std::chrono::floor<Millis>(clock_.now()),
                                      .outcome = SlotOutcome::kPublished});
  r = get("/readyz");
  EXPECT_EQ(r.status, 200) << r.text;
  EXPECT_EQ(r.body["checks"]["replica"]["detail"], "ok");
  EXPECT_EQ(r.body["checks"]["feeds"][1]["detail"], "held by another replica");
}

TEST_F(ApiServerTest, NotReadyWithAReason) {
  start();
  SlotTime now_slot = std::chrono::floor<Millis>(clock_.now());
  board_.on_outcome(kFast, SlotRecord{.slot = now_slot,
                                      .outcome = SlotOutcome::kFailed,
                                      .error = "deadline_exceeded: source timed out"});
  board_.on_outcome(kIdle, SlotRecord{.slot = now_slot, .outcome = SlotOutcome::kPublished});
  auto r = get("/readyz");
  EXPECT_EQ(r.status, 503) << r.text;
  EXPECT_EQ(r.body["ready"], false);
  EXPECT_THAT(r.body["reason"].get<std::string>(), HasSubstr("feed fast: slot"));
  EXPECT_THAT(r.body["reason"].get<std::string>(), HasSubstr("failed: deadline_exceeded"));

  // Published again, then a clock step: not ready until a slot after the step is published.
  board_.on_outcome(kFast,
                    SlotRecord{.slot = now_slot + Millis(100), .outcome = SlotOutcome::kPublished});
  EXPECT_EQ(get("/readyz").status, 200);
  board_.on_clock_step(clock_.now(), 3s);
  r = get("/readyz");
  EXPECT_EQ(r.status, 503);
  EXPECT_THAT(r.body["reason"].get<std::string>(),
              HasSubstr("clock: wall clock stepped by 3000 ms"));
  board_.on_outcome(kFast,
                    SlotRecord{.slot = now_slot + Millis(200), .outcome = SlotOutcome::kPublished});
  EXPECT_EQ(get("/readyz").status, 200);

  // Nothing happens for a while: the next slots are overdue.
  clock_.advance(5s);
  r = get("/readyz");
  EXPECT_EQ(r.status, 503);
  EXPECT_THAT(r.body["reason"].get<std::string>(), HasSubstr("no outcome for slot"));

  board_.set_store_reachable(false, "io_error: disk full");
  r = get("/readyz");
  EXPECT_THAT(r.body["reason"].get<std::string>(), HasSubstr("store: last write failed"));
}

TEST_F(ApiServerTest, MetricsInPrometheusTextFormat) {
  start();
  metrics_.on_slot(kFast, SlotOutcome::kPublished, Micros(30), Micros(900));
  auto c = client();
  auto r = c.Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_THAT(r->body, HasSubstr("metronome_slots_total{feed=\"fast\",outcome=\"published\"} 1"));
  EXPECT_THAT(r->body, HasSubstr("metronome_dlq_depth 2"));  // refreshed from the store
  EXPECT_THAT(r->body, HasSubstr("metronome_alarm_state{alarm=\"dlq_not_empty\"} 1"));
  EXPECT_THAT(r->body, HasSubstr("metronome_build_info{version=\"9.9.9\"} 1"));
  EXPECT_THAT(r->body, HasSubstr("metronome_slot_fire_lateness_seconds_count{feed=\"fast\"} 1"));
}

TEST_F(ApiServerTest, ListenAddressErrors) {
  auto make = [&] {
    return std::make_unique<ApiServer>(ApiDeps{.store = *read_store_,
                                               .dlq = *dlq_,
                                               .board = board_,
                                               .metrics = metrics_,
                                               .clock = clock_,
                                               .admin_token = {},
                                               .version = "1"});
  };
  EXPECT_EQ(make()->start("nonsense").code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(make()->start("127.0.0.1:99999").code(), Status::Code::kInvalidArgument);
  auto first = make();
  ASSERT_TRUE(first->start("127.0.0.1:0").ok());
  EXPECT_EQ(make()->start("127.0.0.1:" + std::to_string(first->port())).code(),
            Status::Code::kUnavailable);
}

// 32 clients × 200 requests over several endpoints while a writer keeps publishing to the
// board: every request answers 200 with a well-formed body.
TEST_F(ApiServerTest, ThirtyTwoClientsConcurrently) {
  start();
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; !stop; ++i) {
      ValueRecord v = value_at(window0_ + Millis(3000 + 100 * i));
      board_.on_published(v);
      board_.on_outcome(kFast, SlotRecord{.slot = v.slot, .outcome = SlotOutcome::kPublished});
      metrics_.on_slot(kFast, SlotOutcome::kPublished, Micros(20), Micros(300));
    }
  });
  const std::vector<std::string> paths = {"/v1/feeds/fast/latest",
                                          "/v1/feeds",
                                          "/v1/feeds/fast/values?limit=5",
                                          "/healthz",
                                          "/metrics",
                                          "/v1/executions?limit=1",
                                          "/v1/dlq"};
  std::atomic<int> ok{0}, bad{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 32; ++c) {
    clients.emplace_back([&, c] {
      httplib::Client cli("127.0.0.1", server_->port());
      cli.set_keep_alive(true);
      cli.set_read_timeout(20s);
      for (int i = 0; i < 200; ++i) {
        auto r = cli.Get(paths[static_cast<size_t>(c + i) % paths.size()]);
        if (r && r->status == 200 && !r->body.empty()) {
          ++ok;
        } else {
          ++bad;
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  stop = true;
  writer.join();
  EXPECT_EQ(ok.load(), 32 * 200);
  EXPECT_EQ(bad.load(), 0);
}

// A raw client of GET /v1/events: sends the request and reads the stream as it comes.
class SseClient {
 public:
  SseClient(int port, const std::string& extra_headers = "") {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    std::string request = "GET /v1/events HTTP/1.1\r\nHost: x\r\n" + extra_headers + "\r\n";
    if (connected_)
      connected_ =
          write(fd_, request.data(), request.size()) == static_cast<ssize_t>(request.size());
  }
  ~SseClient() { close(fd_); }
  bool connected() const { return connected_; }
  // Reads until the text holds `needle`, the peer closes, or `timeout` passes.
  bool read_until(const std::string& needle, std::chrono::milliseconds timeout) {
    auto end = std::chrono::steady_clock::now() + timeout;
    while (text.find(needle) == std::string::npos) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          end - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{.fd = fd_, .events = POLLIN, .revents = 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
      char buf[4096];
      ssize_t n = read(fd_, buf, sizeof buf);
      if (n <= 0) {
        closed = true;
        return text.find(needle) != std::string::npos;
      }
      text.append(buf, static_cast<size_t>(n));
    }
    return true;
  }
  std::string text;
  bool closed = false;

 private:
  int fd_ = -1;
  bool connected_ = false;
};

TEST_F(ApiServerTest, EventStreamSendsHelloThenEachEventWithItsId) {
  start();
  SseClient sse(server_->port());
  ASSERT_TRUE(sse.connected());
  ASSERT_TRUE(sse.read_until("event: hello", 5s)) << sse.text;
  EXPECT_THAT(sse.text, HasSubstr("HTTP/1.1 200"));
  EXPECT_THAT(sse.text, HasSubstr("Content-Type: text/event-stream"));
  EXPECT_THAT(sse.text, HasSubstr("retry: 2000"));
  // The subscription exists once hello is sent: events published now reach the stream.
  ASSERT_EQ(events_.subscribers(), 1u);
  ValueRecord r = value_at(window0_);
  events_.on_record(r);
  SlotRecord slot{.slot = window0_, .outcome = SlotOutcome::kFailed, .error = "boom"};
  events_.on_slot(kFast, slot);
  events_.on_dlq_change();
  AlarmState alarm;
  alarm.name = "dlq_not_empty";
  alarm.status = AlarmStatus::kAlarm;
  events_.on_alarm(alarm);
  ASSERT_TRUE(sse.read_until("event: alarm", 5s)) << sse.text;
  EXPECT_THAT(sse.text, HasSubstr("id: 1\nevent: record\ndata: {"));
  EXPECT_THAT(sse.text, HasSubstr("\"value\":\"" + r.value + "\""));
  EXPECT_THAT(sse.text, HasSubstr("id: 2\nevent: slot\ndata: {"));
  EXPECT_THAT(sse.text, HasSubstr("\"outcome\":\"failed\""));
  EXPECT_THAT(sse.text, HasSubstr("\"error\":\"boom\""));
  EXPECT_THAT(sse.text, HasSubstr("id: 3\nevent: dlq\ndata: {}"));
  EXPECT_THAT(sse.text, HasSubstr("id: 4\nevent: alarm\ndata: {"));
  EXPECT_THAT(sse.text, HasSubstr("\"state\":\"ALARM\""));
}

TEST_F(ApiServerTest, EventStreamResumesAfterLastEventId) {
  start();
  {
    EventHub::Subscription keep(events_);  // events are kept while someone listens
    for (int i = 0; i < 3; ++i) events_.on_dlq_change();
    SseClient sse(server_->port(), "Last-Event-ID: 1\r\n");
    ASSERT_TRUE(sse.read_until("id: 3\n", 5s)) << sse.text;
    EXPECT_THAT(sse.text, HasSubstr("event: hello"));
    EXPECT_THAT(sse.text, HasSubstr("id: 2\nevent: dlq"));
    EXPECT_EQ(sse.text.find("id: 1\nevent: dlq"), std::string::npos) << sse.text;
  }
  // An id this server never sent (another run's): start from now, and tell the client to resync.
  SseClient other(server_->port(), "Last-Event-ID: 999\r\n");
  ASSERT_TRUE(other.read_until("event: resync", 5s)) << other.text;
}

TEST_F(ApiServerTest, EventStreamThatFellBehindIsToldToResyncAndEnded) {
  start();
  EventHub::Subscription keep(events_);
  events_.on_dlq_change();
  // Resuming after event 1 when 20 more were published through a ring of 8: events were lost.
  for (int i = 0; i < 20; ++i) events_.on_dlq_change();
  SseClient sse(server_->port(), "Last-Event-ID: 1\r\n");
  ASSERT_TRUE(sse.read_until("event: resync", 5s)) << sse.text;
  EXPECT_THAT(sse.text, HasSubstr("id: 21\nevent: resync"));
  EXPECT_THAT(sse.text, HasSubstr("events lost"));
  // The stream ends (the chunked body's last chunk) instead of waiting for the client.
  EXPECT_TRUE(sse.read_until("\r\n0\r\n\r\n", 5s)) << sse.text;
}

TEST_F(ApiServerTest, EventStreamsAreCappedWith503) {
  ApiOptions options;
  options.max_event_streams = 2;
  start({}, options);
  SseClient a(server_->port());
  SseClient b(server_->port());
  ASSERT_TRUE(a.read_until("event: hello", 5s)) << a.text;
  ASSERT_TRUE(b.read_until("event: hello", 5s)) << b.text;
  auto r = get("/v1/events");
  expect_error(r, 503, "too many event streams open (the limit is 2");
  EXPECT_EQ(get("/healthz").status, 200);  // other requests still have threads
}

TEST_F(ApiServerTest, ClosedStreamFreesItsPlaceAtTheNextHeartbeat) {
  ApiOptions options;
  options.max_event_streams = 1;
  options.event_heartbeat = 100ms;
  start({}, options);
  {
    SseClient a(server_->port());
    ASSERT_TRUE(a.read_until("event: hello", 5s)) << a.text;
    ASSERT_TRUE(a.read_until(": keep-alive", 5s)) << a.text;
  }  // closed by the client
  // The next heartbeat write fails and ends the stream: the place is free again.
  bool got = false;
  for (int i = 0; i < 50 && !got; ++i) {
    SseClient c(server_->port());
    got = c.read_until("event: hello", 1s);
    if (!got) std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(got);
}

TEST_F(ApiServerTest, StopEndsOpenEventStreamsPromptly) {
  ApiOptions options;
  options.event_heartbeat = 60s;  // an idle stream would otherwise wait a minute
  start({}, options);
  SseClient a(server_->port());
  SseClient b(server_->port());
  ASSERT_TRUE(a.read_until("event: hello", 5s)) << a.text;
  ASSERT_TRUE(b.read_until("event: hello", 5s)) << b.text;
  auto begin = std::chrono::steady_clock::now();
  server_->stop();
  // Bounded well under the 5 s heartbeat (the stream does not wait for it); generous for ASan.
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 4s);
  a.read_until("never sent", 2s);
  EXPECT_TRUE(a.closed) << a.text;
  EXPECT_EQ(events_.subscribers(), 0u);
}

TEST_F(ApiServerTest, DashboardIsServedFromTheBinary) {
  start();
  auto index = get("/");
  EXPECT_EQ(index.status, 200);
  EXPECT_THAT(index.headers.find("Content-Type")->second, HasSubstr("text/html"));
  EXPECT_THAT(index.text, HasSubstr("<title>Metronome</title>"));
  EXPECT_THAT(index.text, HasSubstr("assets/uPlot.iife.min.js"));
  // Nothing from elsewhere: no absolute URL in the page, and a CSP that forbids it anyway.
  EXPECT_EQ(index.text.find("http://"), std::string::npos);
  EXPECT_EQ(index.text.find("https://"), std::string::npos);
  EXPECT_THAT(index.headers.find("Content-Security-Policy")->second,
              HasSubstr("default-src 'self'"));
  auto uplot = get("/assets/uPlot.iife.min.js");
  EXPECT_EQ(uplot.status, 200);
  EXPECT_THAT(uplot.headers.find("Content-Type")->second, HasSubstr("javascript"));
  EXPECT_THAT(uplot.text, HasSubstr("uPlot"));
  EXPECT_GT(uplot.text.size(), 20000u);
  auto js = get("/assets/dashboard.js");
  EXPECT_EQ(js.status, 200);
  EXPECT_THAT(js.text, HasSubstr("new EventSource('v1/events')"));
  EXPECT_EQ(get("/assets/dashboard.css").status, 200);
  EXPECT_EQ(get("/assets/uPlot.min.css").status, 200);
  // Every embedded file is exactly what is on disk.
  for (const auto& a : web_assets()) EXPECT_FALSE(a.body.empty()) << a.name;
}

TEST(ConstantTimeEqual, ComparesWholeStrings) {
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_TRUE(constant_time_equal("", ""));
  EXPECT_FALSE(constant_time_equal("abd", "abc"));
  EXPECT_FALSE(constant_time_equal("ab", "abc"));
  EXPECT_FALSE(constant_time_equal("abcd", "abc"));
  EXPECT_FALSE(constant_time_equal("", "abc"));
  EXPECT_FALSE(constant_time_equal(std::string_view("abc\0", 4), "abc"));
}

}  // namespace
}  // namespace metronome
