// Tests of the real sources against real things: HTTP servers on 127.0.0.1 and free ports,
// real child processes, real files. They run in real time, with short deadlines.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
// PkgConfig::CPPHTTPLIB defines the CPPHTTPLIB_*_SUPPORT macros Debian's library is built with.
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "clock/system_clock.h"
#include "common/libcurl.h"
#include "source/command_source.h"
#include "source/file_source.h"
#include "source/http_json_source.h"
#include "source/make_source.h"
#include "source/median_source.h"
#include "testing/manual_clock.h"

namespace metronome {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

class CurlEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { ASSERT_TRUE(curl::load().ok()) << curl::load().ToString(); }
};
const auto* const kCurl = ::testing::AddGlobalTestEnvironment(new CurlEnvironment);

// An HTTP server on 127.0.0.1 and a free port, serving on its own thread.
class TestServer {
 public:
  TestServer() {
    server_.Get("/good", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"price": 1234.5, "other": 1})", "application/json");
    });
    server_.Get("/nested", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"data": {"rates": [{"usd": "42.25"}, {"usd": "1"}], "a/b": {"~x": 7}}})",
                      "application/json");
    });
    server_.Get("/string", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"price": " 0.000123 "})", "application/json");
    });
    server_.Get("/exponent", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"price": 1.2345e3, "precise": 123456789.123456789123})",
                      "application/json");
    });
    server_.Get("/nan", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"price": "NaN", "flag": true, "big": 1e70})", "application/json");
    });
    server_.Get("/slow", [](const httplib::Request&, httplib::Response& res) {
      std::this_thread::sleep_for(std::chrono::milliseconds(800));
      res.set_content(R"({"price": 1, "v": 2})", "application/json");
    });
    server_.Get("/html", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("<html><body><h1>Service Unavailable</h1></body></html>", "text/html");
    });
    server_.Get("/huge", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(std::string(10 * 1024 * 1024, ' ') + "1", "application/json");
    });
    server_.Get("/huge-chunked", [](const httplib::Request&, httplib::Response& res) {
      res.set_chunked_content_provider("application/json",
                                       [](size_t offset, httplib::DataSink& sink) {
                                         static const std::string chunk(64 * 1024, ' ');
                                         if (offset >= 10u * 1024 * 1024) {
                                           sink.done();
                                         } else {
                                           sink.write(chunk.data(), chunk.size());
                                         }
                                         return true;
                                       });
    });
    server_.Get("/error", [](const httplib::Request&, httplib::Response& res) {
      res.status = 500;
      res.set_content("internal error", "text/plain");
    });
    server_.Get("/missing", [](const httplib::Request&, httplib::Response& res) {
      res.status = 404;
      res.set_content("no such thing", "text/plain");
    });
    server_.Get("/loop",
                [](const httplib::Request&, httplib::Response& res) { res.set_redirect("/loop"); });
    server_.Get("/redirected",
                [](const httplib::Request&, httplib::Response& res) { res.set_redirect("/good"); });
    server_.Get("/auth", [this](const httplib::Request& req, httplib::Response& res) {
      remote_ports_.push_back(req.remote_port);
      if (req.get_header_value("X-Api-Key") != "Bearer k3y") {
        res.status = 401;
        res.set_content("unauthorized", "text/plain");
        return;
      }
      res.set_content(R"({"v": 5})", "application/json");
    });
    server_.Get(R"(/value/(\w+))", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu_);
      res.set_content(fmt::format(R"({{"v": "{}"}})", values_[req.matches[1]]), "application/json");
    });
    // One worker per kept-alive connection: every source keeps its connection open.
    server_.new_task_queue = [] { return new httplib::ThreadPool(32); };
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::yield();
  }
  ~TestServer() {
    server_.stop();
    thread_.join();
  }

  std::string url(std::string_view path) const {
    return fmt::format("http://127.0.0.1:{}{}", port_, path);
  }
  void set_value(const std::string& name, const std::string& v) {
    std::lock_guard lock(mu_);
    values_[name] = v;
  }
  std::vector<int> remote_ports() const { return remote_ports_; }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::mutex mu_;
  std::map<std::string, std::string> values_;  // guarded by mu_
  std::vector<int> remote_ports_;              // written by one handler at a time in these tests
  std::thread thread_;
};

// A port on 127.0.0.1 where nothing listens.
int closed_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

class FixedSecret final : public SecretProvider {
 public:
  explicit FixedSecret(std::string value) : value_(std::move(value)) {}
  Result<SecretValue> read() override { return SecretValue(value_); }
  std::string describe() const override { return "fixed"; }

 private:
  std::string value_;
};

class SourcesTest : public ::testing::Test {
 protected:
  ObserveContext context(Millis budget = Millis(2000)) {
    return ObserveContext{
        FeedId("f"), std::chrono::floor<Millis>(clock_.now()), clock_.now() + budget, {}};
  }

  std::unique_ptr<HttpJsonSource> http(std::string path, std::string pointer, int decimals = 2,
                                       std::optional<Millis> timeout = std::nullopt) {
    HttpJsonSourceConfig c;
    c.url = server_.url(path);
    c.pointer = std::move(pointer);
    c.timeout = timeout;
    auto s = HttpJsonSource::create(c, decimals, nullptr, clock_);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return std::move(s).value();
  }

  Result<SourceValue> observe_http(std::string path, std::string pointer, int decimals = 2) {
    return http(std::move(path), std::move(pointer), decimals)->observe(context());
  }

  SystemClock clock_;
  TestServer server_;
};

// ---- http_json ----

TEST_F(SourcesTest, HttpJsonReadsAGoodValue) {
  auto v = observe_http("/good", "/price");
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->value, "1234.5");
  EXPECT_TRUE(v->answers.empty());
}

TEST_F(SourcesTest, HttpJsonFollowsANestedPointerWithEscapes) {
  auto v = observe_http("/nested", "/data/rates/0/usd");
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->value, "42.25");
  auto escaped = observe_http("/nested", "/data/a~1b/~0x", 0);
  ASSERT_TRUE(escaped.ok()) << escaped.status().ToString();
  EXPECT_EQ(escaped->value, "7");
  auto missing = observe_http("/nested", "/data/rates/5/usd");
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("nothing at JSON pointer '/data/rates/5/usd'"));
  auto object = observe_http("/nested", "/data");
  ASSERT_FALSE(object.ok());
  EXPECT_THAT(object.status().message(), HasSubstr("is an object"));
}

TEST_F(SourcesTest, HttpJsonTakesValuesAsStringsAndNumbersWithExponentExactly) {
  auto s = observe_http("/string", "/price", 6);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->value, "0.000123");
  auto e = observe_http("/exponent", "/price", 1);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->value, "1234.5");
  // A double would make this 123456789.12345679.
  auto p = observe_http("/exponent", "/precise", 12);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->value, "123456789.123456789123");
  // More fractional digits than the feed keeps: refused, never rounded.
  auto rounded = observe_http("/exponent", "/precise", 2);
  ASSERT_FALSE(rounded.ok());
  EXPECT_THAT(rounded.status().message(), HasSubstr("more fractional digits than the feed's 2"));
}

TEST_F(SourcesTest, HttpJsonRefusesWhatIsNotANumberNamingIt) {
  auto nan = observe_http("/nan", "/price");
  ASSERT_FALSE(nan.ok());
  EXPECT_EQ(nan.status().code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(nan.status().message(), AllOf(HasSubstr("'/price'"), HasSubstr("'NaN'")));
  auto flag = observe_http("/nan", "/flag");
  ASSERT_FALSE(flag.ok());
  EXPECT_THAT(flag.status().message(), HasSubstr("is a boolean: 'true'"));
  auto big = observe_http("/nan", "/big", 18);
  ASSERT_FALSE(big.ok());
  EXPECT_THAT(big.status().message(), HasSubstr("too many digits for int256"));
}

TEST_F(SourcesTest, HttpJsonRefusesHtml) {
  auto v = observe_http("/html", "/price");
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(v.status().message(),
              AllOf(HasSubstr("not JSON"), HasSubstr("'<html><body><h1>Service Unavailable")));
}

TEST_F(SourcesTest, HttpJsonStopsAtTheSlotsDeadline) {
  auto source = http("/slow", "/price");
  auto start = std::chrono::steady_clock::now();
  auto v = source->observe(context(Millis(200)));
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), Status::Code::kDeadlineExceeded);
  EXPECT_THAT(v.status().message(), HasSubstr("no answer by the slot's deadline"));
  EXPECT_LT(took, std::chrono::milliseconds(600));
  // Its own, shorter timeout: retryable within the deadline.
  auto timed = http("/slow", "/price", 2, Millis(100))->observe(context(Millis(2000)));
  ASSERT_FALSE(timed.ok());
  EXPECT_EQ(timed.status().code(), Status::Code::kUnavailable);
  EXPECT_THAT(timed.status().message(), HasSubstr("within its timeout of 100ms"));
  // No time left at all: not even a request.
  testing::ManualClock manual;
  HttpJsonSourceConfig c;
  c.url = server_.url("/good");
  c.pointer = "/price";
  auto late = HttpJsonSource::create(c, 2, nullptr, manual)
                  .value()
                  ->observe(ObserveContext{FeedId("f"), SlotTime(), manual.now() - Millis(1), {}});
  EXPECT_EQ(late.status().code(), Status::Code::kDeadlineExceeded);
}

TEST_F(SourcesTest, HttpJsonCapsTheBodyAt1MiB) {
  for (const char* path : {"/huge", "/huge-chunked"}) {
    auto v = observe_http(path, "");
    ASSERT_FALSE(v.ok()) << path;
    EXPECT_EQ(v.status().code(), Status::Code::kInvalidArgument) << path;
    EXPECT_THAT(v.status().message(), HasSubstr("larger than 1024 KiB")) << path;
  }
}

TEST_F(SourcesTest, HttpJsonServerErrorsAreRetryableClientErrorsAreNot) {
  auto e = observe_http("/error", "/price");
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), Status::Code::kUnavailable);
  EXPECT_THAT(e.status().message(), HasSubstr("HTTP 500 (body starts 'internal error')"));
  auto m = observe_http("/missing", "/price");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(m.status().message(), HasSubstr("HTTP 404"));
  HttpJsonSourceConfig c;
  c.url = fmt::format("http://127.0.0.1:{}/x?key=secret", closed_port());
  auto down = HttpJsonSource::create(c, 0, nullptr, clock_).value();
  auto d = down->observe(context());
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), Status::Code::kUnavailable);
  EXPECT_THAT(down->describe(), Not(HasSubstr("secret")));
}

TEST_F(SourcesTest, HttpJsonFollowsAFewRedirectsButNotALoop) {
  auto ok = observe_http("/redirected", "/price");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->value, "1234.5");
  auto loop = observe_http("/loop", "/price");
  ASSERT_FALSE(loop.ok());
  EXPECT_EQ(loop.status().code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(loop.status().message(), HasSubstr("more than 5 redirects"));
}

TEST_F(SourcesTest, HttpJsonSendsSecretHeadersAndReusesItsConnection) {
  std::map<SecretName, std::unique_ptr<SecretProvider>> providers;
  providers[SecretName("api_key")] = std::make_unique<FixedSecret>("k3y");
  SecretRegistry secrets = SecretRegistry::from_providers(std::move(providers));
  HttpJsonSourceConfig c;
  c.url = server_.url("/auth");
  c.pointer = "/v";
  c.headers = {{"X-Api-Key", "Bearer ${secret:api_key}"}};
  auto source = HttpJsonSource::create(c, 0, &secrets, clock_).value();
  for (int i = 0; i < 2; ++i) {
    auto v = source->observe(context());
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    EXPECT_EQ(v->value, "5");
  }
  auto ports = server_.remote_ports();
  ASSERT_EQ(ports.size(), 2u);
  EXPECT_EQ(ports[0], ports[1]) << "the second request should reuse the first one's connection";

  std::map<SecretName, std::unique_ptr<SecretProvider>> bad;
  bad[SecretName("api_key")] = std::make_unique<FixedSecret>("k3y\r\nX-Injected: 1");
  SecretRegistry bad_secrets = SecretRegistry::from_providers(std::move(bad));
  auto injected = HttpJsonSource::create(c, 0, &bad_secrets, clock_).value()->observe(context());
  ASSERT_FALSE(injected.ok());
  EXPECT_THAT(injected.status().message(), HasSubstr("secret 'api_key' holds a line break"));
  EXPECT_THAT(injected.status().message(), Not(HasSubstr("k3y")));

  c.headers = {{"X-Api-Key", "${secret:nope}"}};
  auto unknown = HttpJsonSource::create(c, 0, &secrets, clock_);
  ASSERT_FALSE(unknown.ok());
  EXPECT_THAT(unknown.status().message(), HasSubstr("unknown secret 'nope'"));
}

// ---- command ----

Result<SourceValue> run_command(std::vector<std::string> argv, Clock& clock,
                                std::optional<Millis> timeout = std::nullopt,
                                Millis budget = Millis(2000), int decimals = 2) {
  CommandSource source(std::move(argv), timeout, decimals, clock);
  return source.observe(ObserveContext{FeedId("f"), SlotTime(), clock.now() + budget, {}});
}

TEST_F(SourcesTest, CommandValueIsItsTrimmedStdout) {
  auto v = run_command({"printf", "  42.50\n"}, clock_);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->value, "42.5");
}

TEST_F(SourcesTest, CommandRunsWithoutAShell) {
  auto v = run_command({"/bin/echo", "$((1+1))"}, clock_);
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(v.status().message(), HasSubstr("'$((1+1))' is not a decimal number"));
}

TEST_F(SourcesTest, CommandThatFailsNamesItsExitAndStderr) {
  auto v =
      run_command({"/bin/sh", "-c", "echo 12; echo 'no route to upstream' >&2; exit 3"}, clock_);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), Status::Code::kUnavailable);
  EXPECT_THAT(v.status().message(),
              HasSubstr("exited with status 3 (stderr: no route to upstream)"));
  auto missing = run_command({"/nonexistent/price-tool"}, clock_);
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("cannot start"));
}

TEST_F(SourcesTest, CommandThatHangsIsKilledAtItsTimeoutOrTheDeadline) {
  auto start = std::chrono::steady_clock::now();
  auto timed = run_command({"/bin/sh", "-c", "sleep 5 & sleep 5"}, clock_, Millis(100));
  ASSERT_FALSE(timed.ok());
  EXPECT_EQ(timed.status().code(), Status::Code::kUnavailable);
  EXPECT_THAT(timed.status().message(), HasSubstr("still running after its timeout of 100ms"));
  auto deadline = run_command({"/bin/sleep", "5"}, clock_, std::nullopt, Millis(150));
  ASSERT_FALSE(deadline.ok());
  EXPECT_EQ(deadline.status().code(), Status::Code::kDeadlineExceeded);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST_F(SourcesTest, CommandThatPrintsGarbageOrTooMuch) {
  auto garbage = run_command({"/bin/echo", "price: twelve"}, clock_);
  ASSERT_FALSE(garbage.ok());
  EXPECT_EQ(garbage.status().code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(garbage.status().message(), HasSubstr("'price: twelve' is not a decimal number"));
  auto empty = run_command({"/bin/true"}, clock_);
  ASSERT_FALSE(empty.ok());
  EXPECT_THAT(empty.status().message(), HasSubstr("(empty)"));
  auto flood = run_command({"/usr/bin/head", "-c", "1000000", "/dev/zero"}, clock_);
  ASSERT_FALSE(flood.ok());
  EXPECT_THAT(flood.status().message(), HasSubstr("printed more than 64 KiB"));
}

// ---- file ----

TEST_F(SourcesTest, FileSourceReadsTheNumberInTheFile) {
  auto path = std::filesystem::temp_directory_path() / fmt::format("metronome-file-{}", ::getpid());
  std::ofstream(path) << "1.5e2\n";
  FileSource source(path, 0);
  auto v = source.observe(context());
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->value, "150");
  std::ofstream(path) << "Infinity";
  auto inf = source.observe(context());
  ASSERT_FALSE(inf.ok());
  EXPECT_THAT(inf.status().message(), HasSubstr("'Infinity'"));
  std::filesystem::remove(path);
  auto gone = source.observe(context());
  EXPECT_EQ(gone.status().code(), Status::Code::kNotFound);
}

// ---- median ----

class MedianTest : public SourcesTest {
 protected:
  std::unique_ptr<Source> median(std::vector<std::string> urls, int quorum,
                                 std::optional<std::string> max_spread_pct) {
    MedianSourceConfig m;
    for (size_t i = 0; i < urls.size(); ++i) {
      HttpJsonSourceConfig h;
      h.url = urls[i];
      h.pointer = "/v";
      m.sources.push_back({fmt::format("s{}", i), h});
    }
    m.quorum = quorum;
    if (max_spread_pct) m.max_spread_pct = Decimal::parse(*max_spread_pct).value();
    auto s = make_source(m, 2, nullptr, clock_);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return std::move(s).value();
  }
};

TEST_F(MedianTest, MedianOfThreeIgnoresAnOutlierAndKeepsWhoAnswered) {
  server_.set_value("a", "100.10");
  server_.set_value("b", "1000");
  server_.set_value("c", "99.5");
  auto source =
      median({server_.url("/value/a"), server_.url("/value/b"), server_.url("/value/c")}, 2, {});
  auto v = source->observe(context());
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->value, "100.1");
  EXPECT_EQ(v->answers,
            (std::vector<SourceAnswer>{{"s0", "100.1"}, {"s1", "1000"}, {"s2", "99.5"}}));

  // With a spread limit the outlier fails the slot, naming the extremes.
  auto strict =
      median({server_.url("/value/a"), server_.url("/value/b"), server_.url("/value/c")}, 2, "5");
  auto refused = strict->observe(context());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), AllOf(HasSubstr("spread more than max_spread_pct 5 %"),
                                                HasSubstr("99.5 (s2)"), HasSubstr("1000 (s1)")));
}

TEST_F(MedianTest, OneSourceDownStillMeetsTheQuorum) {
  server_.set_value("a", "10");
  server_.set_value("c", "11");
  std::string down = fmt::format("http://127.0.0.1:{}/v", closed_port());
  auto source = median({server_.url("/value/a"), down, server_.url("/value/c")}, 2, "20");
  auto v = source->observe(context());
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->value, "11");  // even count: the upper middle answer, never an average
  EXPECT_EQ(v->answers, (std::vector<SourceAnswer>{{"s0", "10"}, {"s2", "11"}}));
}

TEST_F(MedianTest, QuorumNotMetNamesEveryFailure) {
  server_.set_value("a", "10");
  std::string down = fmt::format("http://127.0.0.1:{}/v", closed_port());
  auto source = median({server_.url("/value/a"), down, server_.url("/html")}, 2, {});
  auto v = source->observe(context());
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), Status::Code::kUnavailable);
  EXPECT_THAT(
      v.status().message(),
      AllOf(HasSubstr("quorum not met: 1 of 3 sources answered, quorum 2"),
            HasSubstr("s1 (http_json GET"), HasSubstr("s2 (http_json GET"), HasSubstr("not JSON")));
}

TEST_F(MedianTest, ObservesItsSourcesConcurrently) {
  // Three slow sources, each 800 ms: one after the other would take 2.4 s.
  auto source = median({server_.url("/slow"), server_.url("/slow"), server_.url("/slow")}, 3, {});
  auto start = std::chrono::steady_clock::now();
  auto v = source->observe(context(Millis(3000)));
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->value, "2");
  EXPECT_LT(took, std::chrono::milliseconds(2000));
}

}  // namespace
}  // namespace metronome
