// The real daemon against a real local HTTP server and real commands: good values are published,
// every failing source (HTML, slow past the deadline, 500s, quorum not met, a hanging or garbage
// command, a value outside the sanity bounds) fails its slots into the DLQ with its reason and
// publishes nothing, and the daemon keeps running.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <thread>

#include "support/harness.h"

namespace metronome::itest {
namespace {

using namespace std::chrono_literals;

class PriceServer {
 public:
  PriceServer() {
    server_.Get("/good", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"data": {"price": "2001.25"}})", "application/json");
    });
    server_.Get("/a", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"v": 1.0005e2})", "application/json");
    });
    server_.Get("/b", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"v": "101"})", "application/json");
    });
    server_.Get("/html", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("<html><body>maintenance</body></html>", "text/html");
    });
    server_.Get("/slow", [](const httplib::Request&, httplib::Response& res) {
      std::this_thread::sleep_for(700ms);
      res.set_content(R"({"v": 1})", "application/json");
    });
    server_.Get("/error", [](const httplib::Request&, httplib::Response& res) {
      res.status = 500;
      res.set_content("upstream down", "text/plain");
    });
    // One worker per kept-alive connection: every source keeps its connection open.
    server_.new_task_queue = [] { return new httplib::ThreadPool(32); };
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::yield();
  }
  ~PriceServer() {
    server_.stop();
    thread_.join();
  }
  std::string url(std::string_view path) const {
    return fmt::format("http://127.0.0.1:{}{}", port_, path);
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

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

std::string feed(std::string_view id, std::string_view source, std::string_view extra = "") {
  return fmt::format(R"(
[[feeds]]
id = "{}"
every = "500ms"
window = "5s"
retries = 1
decimals = 2
secret = "oracle_key"
{}
source = {}
)",
                     id, extra, source);
}

TEST(Sources, FailingSourcesGoToTheDlqWithTheirReasonAndTheDaemonKeepsPublishing) {
  PriceServer server;
  const std::string down = fmt::format("http://127.0.0.1:{}/v", closed_port());
  TempDir dir("sources");
  std::string config = R"(
[service]
data_dir = "var"
listen = "127.0.0.1:0"
[store]
path = "var/metronome.db"
[secrets.oracle_key]
file = "secrets/oracle_key"
[alarms]
dlq_depth = 1000000
missed_slots = 1000000
)";
  config +=
      feed("good", fmt::format(R"({{ kind = "http_json", url = "{}", pointer = "/data/price" }})",
                               server.url("/good")));
  config +=
      feed("median", fmt::format(R"({{ kind = "median", quorum = 2, max_spread_pct = 5, sources = [
  {{ name = "a", kind = "http_json", url = "{}", pointer = "/v" }},
  {{ name = "b", kind = "http_json", url = "{}", pointer = "/v" }},
  {{ name = "down", kind = "http_json", url = "{}", pointer = "/v" }} ] }})",
                                 server.url("/a"), server.url("/b"), down));
  config += feed("html", fmt::format(R"({{ kind = "http_json", url = "{}", pointer = "/v" }})",
                                     server.url("/html")));
  config += feed("slow", fmt::format(R"({{ kind = "http_json", url = "{}", pointer = "/v" }})",
                                     server.url("/slow")));
  config += feed("errors", fmt::format(R"({{ kind = "http_json", url = "{}", pointer = "/v" }})",
                                       server.url("/error")));
  config += feed("quorum", fmt::format(R"({{ kind = "median", quorum = 2, sources = [
  {{ name = "a", kind = "http_json", url = "{}", pointer = "/v" }},
  {{ name = "html", kind = "http_json", url = "{}", pointer = "/v" }},
  {{ name = "down", kind = "http_json", url = "{}", pointer = "/v" }} ] }})",
                                       server.url("/a"), server.url("/html"), down));
  config += feed("hang", R"({ kind = "command", argv = ["/bin/sleep", "10"] })");
  config += feed("garbage", R"({ kind = "command", argv = ["/bin/echo", "price unavailable"] })");
  config += feed("bounds",
                 fmt::format(R"({{ kind = "http_json", url = "{}", pointer = "/data/price" }})",
                             server.url("/good")),
                 "max_value = \"2000\"");
  dir.write("metronome.toml", config);
  dir.write("secrets/oracle_key", std::string(64, 'a') + "\n");
  chmod((dir / "secrets/oracle_key").c_str(), 0600);

  Daemon d(dir.path(), {"--config", "metronome.toml"});
  d.start();
  ASSERT_TRUE(d.wait_for_log("metronome running", 10s)) << d.log();
  sleep_ms(2600);
  ASSERT_TRUE(d.running()) << d.log();

  auto values = [&](const std::string& id) {
    auto r =
        run({"--config", "metronome.toml", "values", "--feed", id, "--format", "json"}, dir.path());
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return json_of(r);
  };
  auto good = values("good");
  ASSERT_GE(good.size(), 3u) << d.log();
  EXPECT_EQ(good[0]["value"], "2001.25");
  auto median = values("median");
  ASSERT_GE(median.size(), 3u) << d.log();
  EXPECT_EQ(median[0]["value"], "101");  // answers 100.05 and 101: the upper middle one
  ASSERT_TRUE(median[0].contains("sources")) << median[0].dump();
  EXPECT_EQ(median[0]["sources"].size(), 2u);
  EXPECT_EQ(median[0]["sources"][0]["source"], "a");
  EXPECT_EQ(median[0]["sources"][0]["value"], "100.05");

  auto dlq = run({"--config", "metronome.toml", "dlq", "list", "--format", "json"}, dir.path());
  ASSERT_EQ(dlq.exit_code, 0) << dlq.err;
  // feed -> its DLQ errors. On a loaded machine (CI runs tests in parallel) a slot may also
  // fail by its deadline before its source's own failure shows; the expected reason must be
  // among the feed's messages.
  std::map<std::string, std::string> reason;
  for (const auto& m : json_of(dlq)) {
    reason[m["feed"].get<std::string>()] += m["error"].get<std::string>() + "\n";
  }
  const std::map<std::string, std::string> expected = {
      {"html", "not JSON"},
      {"slow", "no answer by the slot's deadline"},
      {"errors", "HTTP 500"},
      {"quorum", "quorum not met: 1 of 3 sources answered"},
      {"hang", "still running at the slot's deadline"},
      {"garbage", "'price unavailable' is not a decimal number"},
      {"bounds", "value 2001.25 is above the feed's max_value 2000"},
  };
  for (const auto& [id, text] : expected) {
    ASSERT_TRUE(reason.contains(id)) << id << " has nothing on the DLQ\n" << dlq.out;
    EXPECT_NE(reason[id].find(text), std::string::npos) << id << ": " << reason[id];
    EXPECT_TRUE(values(id).empty()) << id << " published something";
  }
  // good and median may have lost a slot to a loaded machine (ASan, 2 shared cores); that they
  // published is checked above and below.

  // Still running and still publishing the good feeds.
  size_t before = good.size();
  sleep_ms(1100);
  EXPECT_GT(values("good").size(), before);
  EXPECT_EQ(d.stop(), 0) << d.log();
}

}  // namespace
}  // namespace metronome::itest
