#include "dlq/alarm_actions.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
// Debian's libcpp-httplib.so is built with these (see its cpp-httplib.pc); the header must be
// compiled with the same ones, or its classes' layout differs from the library's.
#define CPPHTTPLIB_OPENSSL_SUPPORT
#define CPPHTTPLIB_ZLIB_SUPPORT
#define CPPHTTPLIB_BROTLI_SUPPORT
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <atomic>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <sstream>

#include "clock/system_clock.h"
#include "common/libcurl.h"
#include "dlq/alarms.h"
#include "dlq/dlq_test_support.h"
#include "testing/manual_clock.h"

namespace metronome {
namespace {

using dlq_testing::LogCapture;
using dlq_testing::TempDir;
using ::testing::HasSubstr;
using ::testing::Not;

// libcurl is loaded (and its global state set up) once per process, as on first use in the daemon.
class CurlEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { ASSERT_TRUE(curl::load().ok()) << curl::load().ToString(); }
};
[[maybe_unused]] ::testing::Environment* const kCurlEnvironment =
    ::testing::AddGlobalTestEnvironment(new CurlEnvironment);

AlarmState alarm_state(AlarmStatus status = AlarmStatus::kAlarm) {
  return {.name = "dlq_not_empty",
          .status = status,
          .since = WallTime(Seconds(1'795'000'000)),
          .reason = "DLQ depth 3 >= 1",
          .previous = status == AlarmStatus::kAlarm ? AlarmStatus::kOk : AlarmStatus::kAlarm,
          .actions_pending = true};
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::filesystem::path write_script(const TempDir& dir, const std::string& name,
                                   const std::string& body) {
  std::filesystem::path path = dir.path() / name;
  std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
  std::filesystem::permissions(path, std::filesystem::perms::owner_all);
  return path;
}

// ---- log line ----

TEST(AlarmActionsTest, LogsEveryTransition) {
  LogCapture log;
  testing::ManualClock clock;
  auto actions = make_alarm_actions(AlarmConfig{}, clock);  // no command, no webhook
  EXPECT_TRUE(actions->fire(alarm_state(AlarmStatus::kAlarm), AlarmStatus::kOk).ok());
  EXPECT_TRUE(actions->fire(alarm_state(AlarmStatus::kOk), AlarmStatus::kAlarm).ok());
  auto lines = log.lines();
  ASSERT_EQ(lines.size(), 2u) << log.text();
  EXPECT_EQ(lines[0], "warning alarm dlq_not_empty: OK -> ALARM: DLQ depth 3 >= 1");
  EXPECT_EQ(lines[1], "info alarm dlq_not_empty: ALARM -> OK: DLQ depth 3 >= 1");
}

// ---- command ----

TEST(CommandActionTest, GetsTheAlarmJsonOnStdin) {
  TempDir dir;
  auto script = write_script(dir, "on_alarm.sh", "cat > \"$1\"");
  auto out = dir.path() / "event.json";
  SystemClock clock;
  AlarmConfig config;
  config.command = {script.string(), out.string()};
  AlarmState state = alarm_state();
  ASSERT_TRUE(make_alarm_actions(config, clock)->fire(state, AlarmStatus::kOk).ok());

  std::string written = read_file(out);
  EXPECT_EQ(written, alarm_event_json(state, AlarmStatus::kOk));
  auto json = nlohmann::json::parse(written);
  EXPECT_EQ(json["alarm"], "dlq_not_empty");
  EXPECT_EQ(json["state"], "ALARM");
  EXPECT_EQ(json["previous"], "OK");
}

TEST(CommandActionTest, ArgvIsNotInterpretedByAShell) {
  TempDir dir;
  auto out = dir.path() / "args";
  auto script = write_script(dir, "args.sh", "printf '%s|' \"$@\" > \"$1\"");
  SystemClock clock;
  ASSERT_TRUE(run_command_action({script.string(), out.string(), "$HOME; echo hi", "a b"}, "",
                                 Seconds(10), clock)
                  .ok());
  EXPECT_EQ(read_file(out), out.string() + "|$HOME; echo hi|a b|");
}

TEST(CommandActionTest, ChildThatIgnoresStdinIsFine) {
  SystemClock clock;
  std::string big(1 << 20, 'x');  // more than a socket buffer: the write must not block
  EXPECT_TRUE(run_command_action({"/bin/true"}, big, Seconds(10), clock).ok());
}

TEST(CommandActionTest, NonZeroExitIsAnErrorNamingTheCommand) {
  TempDir dir;
  auto script = write_script(dir, "fails.sh", "echo 'boom: no route' >&2\nexit 3");
  SystemClock clock;
  Status status = run_command_action({script.string()}, "{}", Seconds(10), clock);
  EXPECT_EQ(status.code(), Status::Code::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr(script.string()));
  EXPECT_THAT(status.message(), HasSubstr("exited with status 3"));
  EXPECT_THAT(status.message(), HasSubstr("boom: no route"));
}

TEST(CommandActionTest, MissingProgramIsAnError) {
  SystemClock clock;
  Status status = run_command_action({"/nonexistent/alarm-hook"}, "{}", Seconds(10), clock);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("/nonexistent/alarm-hook"));
  EXPECT_THAT(status.message(), HasSubstr("No such file"));
}

TEST(CommandActionTest, TimeoutKillsTheChild) {
  TempDir dir;
  auto pid_file = dir.path() / "pid";
  auto script = write_script(dir, "hangs.sh", "echo $$ > \"$1\"\nsleep 30");
  SystemClock clock;  // real time on purpose: a real process has to be killed
  const MonoTime start = clock.monotonic_now();
  Status status =
      run_command_action({script.string(), pid_file.string()}, "{}", Millis(300), clock);
  const Nanos took = clock.monotonic_now() - start;
  EXPECT_EQ(status.code(), Status::Code::kDeadlineExceeded);
  EXPECT_THAT(status.message(), HasSubstr(script.string()));
  EXPECT_THAT(status.message(), HasSubstr("300ms"));
  EXPECT_GE(took, Millis(300));
  EXPECT_LT(took, Seconds(1));
  pid_t pid = std::stoi(read_file(pid_file));
  EXPECT_EQ(::kill(pid, 0), -1);  // killed and reaped
  EXPECT_EQ(errno, ESRCH);
}

TEST(CommandActionTest, TimeoutIsMeasuredOnTheClock) {
  testing::ManualClock clock;
  auto result = std::async(std::launch::async, [&] {
    return run_command_action({"/bin/sleep", "30"}, "", Seconds(10), clock);
  });
  while (result.wait_for(std::chrono::milliseconds(0)) != std::future_status::ready) {
    if (clock.wait_for_sleepers(1, Millis(100))) clock.advance(Seconds(1));
  }
  EXPECT_EQ(result.get().code(), Status::Code::kDeadlineExceeded);
  EXPECT_GE(clock.monotonic_now().time_since_epoch(), Seconds(10));
}

// ---- webhook ----

// An HTTP server on 127.0.0.1 and a free port, serving on its own thread.
class TestServer {
 public:
  explicit TestServer(std::function<int(const httplib::Request&)> status_for)
      : status_for_(std::move(status_for)) {
    server_.Post("/alarm", [this](const httplib::Request& req, httplib::Response& res) {
      {
        std::lock_guard lock(mu_);
        bodies_.push_back(req.body);
        content_types_.push_back(req.get_header_value("Content-Type"));
      }
      res.status = status_for_(req);
      res.set_content("{}", "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // stop() is a no-op before the server runs, so the destructor needs it running.
    while (!server_.is_running()) std::this_thread::yield();
  }
  ~TestServer() {
    server_.stop();
    thread_.join();
  }

  std::string url() const { return fmt::format("http://127.0.0.1:{}/alarm", port_); }
  std::vector<std::string> bodies() {
    std::lock_guard lock(mu_);
    return bodies_;
  }
  std::vector<std::string> content_types() {
    std::lock_guard lock(mu_);
    return content_types_;
  }

 private:
  std::function<int(const httplib::Request&)> status_for_;
  httplib::Server server_;
  int port_ = 0;
  std::mutex mu_;
  std::vector<std::string> bodies_;
  std::vector<std::string> content_types_;
  std::thread thread_;
};

// Runs `action` on another thread and moves the ManualClock whenever it sleeps (backoff).
Status run_advancing(testing::ManualClock& clock, std::function<Status()> action) {
  auto result = std::async(std::launch::async, std::move(action));
  while (result.wait_for(std::chrono::milliseconds(1)) != std::future_status::ready) {
    if (clock.wait_for_sleepers(1, Millis(10))) clock.advance(Seconds(5));
  }
  return result.get();
}

TEST(WebhookActionTest, PostsTheAlarmJson) {
  TestServer server([](const httplib::Request&) { return 200; });
  testing::ManualClock clock;
  AlarmConfig config;
  config.webhook = server.url();
  AlarmState state = alarm_state();
  ASSERT_TRUE(make_alarm_actions(config, clock)->fire(state, AlarmStatus::kOk).ok());

  auto bodies = server.bodies();
  ASSERT_EQ(bodies.size(), 1u);
  EXPECT_EQ(server.content_types()[0], "application/json");
  auto json = nlohmann::json::parse(bodies[0]);
  EXPECT_EQ(json["alarm"], "dlq_not_empty");
  EXPECT_EQ(json["state"], "ALARM");
  EXPECT_EQ(json["previous"], "OK");
  EXPECT_EQ(json["reason"], "DLQ depth 3 >= 1");
  EXPECT_EQ(json["service"], "metronome");
}

TEST(WebhookActionTest, RetriesUntilTheServerAnswers) {
  std::atomic<int> requests{0};
  TestServer server([&](const httplib::Request&) { return ++requests <= 2 ? 500 : 200; });
  testing::ManualClock clock;
  Status status = run_advancing(clock, [&] {
    return post_webhook_action(server.url(), "{}", Seconds(5), /*retries=*/3, clock);
  });
  EXPECT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(requests, 3);
}

TEST(WebhookActionTest, GivesUpAfterTheRetries) {
  TestServer server([](const httplib::Request&) { return 503; });
  testing::ManualClock clock;
  Status status = run_advancing(clock, [&] {
    return post_webhook_action(server.url(), "{}", Seconds(5), /*retries=*/2, clock);
  });
  EXPECT_EQ(status.code(), Status::Code::kUnavailable);
  EXPECT_EQ(status.message(), "webhook " + server.url() + ": HTTP 503 (after 3 attempts)");
  EXPECT_EQ(server.bodies().size(), 3u);
}

TEST(WebhookActionTest, ClientErrorIsNotRetried) {
  TestServer server([](const httplib::Request&) { return 404; });
  testing::ManualClock clock;
  Status status = post_webhook_action(server.url(), "{}", Seconds(5), 3, clock);
  EXPECT_THAT(status.message(), HasSubstr("HTTP 404 (after 1 attempt)"));
  EXPECT_EQ(server.bodies().size(), 1u);
}

// A port nobody listens on: bound, never listened on, so nothing else takes it meanwhile.
class ClosedPort {
 public:
  ClosedPort() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~ClosedPort() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST(WebhookActionTest, ClosedPortIsAnErrorNamingTheUrl) {
  ClosedPort closed;
  const std::string url = fmt::format("http://127.0.0.1:{}/alarm", closed.port());
  testing::ManualClock clock;
  Status status = run_advancing(
      clock, [&] { return post_webhook_action(url, "{}", Seconds(5), /*retries=*/1, clock); });
  EXPECT_EQ(status.code(), Status::Code::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr("webhook " + url + ": "));
  EXPECT_THAT(status.message(), HasSubstr("(after 2 attempts)"));
}

TEST(WebhookActionTest, ErrorsDoNotShowCredentialsInTheUrl) {
  ClosedPort closed;
  const std::string url =
      fmt::format("http://alice:s3cret@127.0.0.1:{}/alarm?token=t0ken", closed.port());
  testing::ManualClock clock;
  Status status = post_webhook_action(url, "{}", Seconds(5), /*retries=*/0, clock);
  EXPECT_THAT(status.message(), HasSubstr(fmt::format("127.0.0.1:{}/alarm", closed.port())));
  EXPECT_THAT(status.message(), Not(HasSubstr("s3cret")));
  EXPECT_THAT(status.message(), Not(HasSubstr("t0ken")));
}

TEST(WebhookActionTest, BackoffDoublesUpToFiveSeconds) {
  EXPECT_EQ(webhook_backoff(1), Millis(250));
  EXPECT_EQ(webhook_backoff(2), Millis(500));
  EXPECT_EQ(webhook_backoff(3), Millis(1000));
  EXPECT_EQ(webhook_backoff(5), Millis(4000));
  EXPECT_EQ(webhook_backoff(6), Millis(5000));
  EXPECT_EQ(webhook_backoff(60), Millis(5000));
}

// ---- both ----

TEST(AlarmActionsTest, EveryActionIsAttemptedAndTheFirstErrorReturned) {
  TempDir dir;
  TestServer server([](const httplib::Request&) { return 200; });
  testing::ManualClock clock;
  AlarmConfig config;
  config.command = {"/nonexistent/hook"};
  config.webhook = server.url();
  LogCapture log;
  Status status = make_alarm_actions(config, clock)->fire(alarm_state(), AlarmStatus::kOk);
  EXPECT_THAT(status.message(), HasSubstr("/nonexistent/hook"));
  EXPECT_EQ(server.bodies().size(), 1u);  // the webhook ran although the command failed
  EXPECT_EQ(log.count("command action failed"), 1) << log.text();
}

}  // namespace
}  // namespace metronome
