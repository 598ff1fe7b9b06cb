// Whole-daemon tests of the HTTP API: the real binary with a 100 ms feed, over real HTTP.
//
// NEEDS THE WIRING: these tests run only once src/app/daemon.cc starts the ApiServer on
// [service] listen and config accepts [service] admin_token_secret (see src/api/http_server.h).
// Until then the daemon refuses the config (unknown key) and every test here fails at start.
//
// The HTTP client is a small blocking HTTP/1.1 client on POSIX sockets (keep-alive, responses
// with Content-Length), so this test needs no HTTP library.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "support/harness.h"

namespace metronome::itest {
namespace {

using namespace std::chrono_literals;
constexpr const char* kToken = "integration-admin-token-0123456789";

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

struct HttpReply {
  int status = 0;                              // 0: no answer (connection failed)
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  nlohmann::json json() const { return nlohmann::json::parse(body); }
};

// One keep-alive connection to 127.0.0.1:port; reconnects when the server closed it.
class HttpClient {
 public:
  explicit HttpClient(int port) : port_(port) {}
  ~HttpClient() { disconnect(); }

  HttpReply request(const std::string& method, const std::string& target,
                    const std::vector<std::string>& headers = {}, const std::string& body = "") {
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (fd_ < 0 && !connect_now()) return {};
      std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
      for (const auto& h : headers) req += h + "\r\n";
      if (!body.empty() || method == "POST") {
        req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
      }
      req += "\r\n" + body;
      if (send_all(req)) {
        HttpReply reply;
        if (read_reply(reply)) return reply;
      }
      disconnect();  // a keep-alive connection the server closed: try once on a new one
    }
    return {};
  }
  HttpReply get(const std::string& target) { return request("GET", target); }

 private:
  bool connect_now() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    timeval tv{.tv_sec = 10, .tv_usec = 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      disconnect();
      return false;
    }
    buffer_.clear();
    return true;
  }
  void disconnect() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  bool send_all(const std::string& data) {
    size_t sent = 0;
    while (sent < data.size()) {
      ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }
  bool fill() {
    char buf[16384];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return false;
    buffer_.append(buf, static_cast<size_t>(n));
    return true;
  }
  bool read_reply(HttpReply& reply) {
    size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) return false;
    }
    std::istringstream head(buffer_.substr(0, end));
    buffer_.erase(0, end + 4);
    std::string line;
    std::getline(head, line);
    if (line.size() < 12) return false;
    reply.status = std::stoi(line.substr(9, 3));
    while (std::getline(head, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = line.substr(0, colon);
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      reply.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
    }
    size_t length =
        reply.headers.contains("content-length") ? std::stoul(reply.headers["content-length"]) : 0;
    while (buffer_.size() < length) {
      if (!fill()) return false;
    }
    reply.body = buffer_.substr(0, length);
    buffer_.erase(0, length);
    if (reply.headers["connection"] == "close") disconnect();
    return true;
  }

  int port_;
  int fd_ = -1;
  std::string buffer_;
};

std::string config(int port) {
  return R"(
[service]
data_dir = "var"
log_level = "info"
listen = "127.0.0.1:)" +
         std::to_string(port) + R"("
admin_token_secret = "admin"
[store]
path = "var/metronome.db"
[secrets.oracle_key]
file = "secrets/oracle_key"
[secrets.admin]
file = "secrets/admin"
[[feeds]]
id = "fast"
every = "100ms"
window = "1s"
retries = 2
secret = "oracle_key"
source = { kind = "random_int", min = 0, max = 1000 }
)";
}

class ApiDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = free_port();
    dir_.write("metronome.toml", config(port_));
    dir_.write("secrets/oracle_key", std::string(64, 'a') + "\n");
    chmod((dir_ / "secrets/oracle_key").c_str(), 0600);
    dir_.write("secrets/admin", std::string(kToken));
    chmod((dir_ / "secrets/admin").c_str(), 0600);
    daemon_ = std::make_unique<Daemon>(dir_.path(),
                                       std::vector<std::string>{"--config", "metronome.toml"});
    daemon_->start();
    ASSERT_TRUE(daemon_->wait_for_log("metronome running", 10s)) << daemon_->log();
    // Wait until the API answers.
    HttpClient c(port_);
    for (int i = 0; i < 100 && c.get("/healthz").status != 200; ++i) sleep_ms(50);
    ASSERT_EQ(c.get("/healthz").status, 200) << daemon_->log();
  }
  void TearDown() override {
    if (daemon_ && daemon_->running()) {
      EXPECT_EQ(daemon_->stop(SIGTERM), 0) << daemon_->log();
    }
  }

  TempDir dir_{"api"};
  int port_ = 0;
  std::unique_ptr<Daemon> daemon_;
};

// Parses "name{labels} value" lines of the Prometheus text format.
std::map<std::string, double> samples(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    auto space = line.rfind(' ');
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

TEST_F(ApiDaemonTest, EveryEndpointHappyPathAndErrors) {
  sleep_ms(1500);
  HttpClient c(port_);
  auto feeds = c.get("/v1/feeds");
  ASSERT_EQ(feeds.status, 200) << feeds.body;
  ASSERT_EQ(feeds.json()["feeds"].size(), 1u);
  EXPECT_EQ(feeds.json()["feeds"][0]["id"], "fast");
  EXPECT_TRUE(feeds.json()["feeds"][0]["latest"].is_object());

  auto latest = c.get("/v1/feeds/fast/latest");
  ASSERT_EQ(latest.status, 200);
  EXPECT_EQ(latest.headers["content-type"], "application/json");
  auto round = latest.json()["round"].get<std::string>();
  EXPECT_EQ(std::stoll(round), std::stoll(latest.json()["slot_ms"].get<std::string>()) / 100);
  EXPECT_FALSE(latest.json()["signature"].get<std::string>().empty());

  auto values = c.get("/v1/feeds/fast/values?limit=5");
  ASSERT_EQ(values.status, 200);
  EXPECT_EQ(values.json()["values"].size(), 5u);
  auto next = c.get("/v1/feeds/fast/values?limit=5&cursor=" +
                    values.json()["next_cursor"].get<std::string>());
  ASSERT_EQ(next.status, 200);
  EXPECT_LT(std::stoll(next.json()["values"][0]["slot_ms"].get<std::string>()),
            std::stoll(values.json()["values"][4]["slot_ms"].get<std::string>()));

  EXPECT_EQ(c.get("/v1/feeds/fast/rounds/" + round).status, 200);
  auto executions = c.get("/v1/executions?feed=fast&limit=1");
  ASSERT_EQ(executions.status, 200);
  ASSERT_EQ(executions.json()["executions"].size(), 1u);
  auto id = executions.json()["executions"][0]["id"].get<std::string>();
  auto one = c.get("/v1/executions/" + id);
  ASSERT_EQ(one.status, 200);
  EXPECT_EQ(one.json()["slots"].size(), 10u);
  auto dlq = c.get("/v1/dlq");
  ASSERT_EQ(dlq.status, 200);
  EXPECT_EQ(dlq.json()["depth"], 0);
  EXPECT_EQ(c.get("/v1/alarms").status, 200);
  auto ready = c.get("/readyz");
  EXPECT_EQ(ready.status, 200) << ready.body;
  auto metrics = c.get("/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_EQ(metrics.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");

  // Errors.
  EXPECT_EQ(c.get("/v1/feeds/nope/latest").status, 404);
  EXPECT_EQ(c.get("/v1/feeds/fast/rounds/1").status, 404);
  EXPECT_EQ(c.get("/v1/executions/fast@2000-01-01T00:00:00Z").status, 404);
  auto bad = c.get("/v1/feeds/fast/values?limit=0");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.json()["detail"].get<std::string>().find("limit"), std::string::npos);
  auto wrong_method = c.request("POST", "/v1/feeds");
  EXPECT_EQ(wrong_method.status, 405);
  EXPECT_EQ(wrong_method.headers["allow"], "GET");
  auto unauthorized = c.request("POST", "/v1/dlq/1/redrive");
  EXPECT_EQ(unauthorized.status, 401);
  EXPECT_TRUE(unauthorized.headers.contains("www-authenticate"));
  EXPECT_EQ(c.request("DELETE", "/v1/dlq/1", {"Authorization: Bearer wrong"}).status, 401);
  std::string auth = std::string("Authorization: Bearer ") + kToken;
  EXPECT_EQ(c.request("POST", "/v1/dlq/424242/redrive", {auth}).status, 404);
  EXPECT_EQ(c.request("DELETE", "/v1/dlq/424242", {auth}).status, 404);
  EXPECT_EQ(c.request("POST", "/v1/dlq/1/redrive", {auth}, std::string(70 * 1024, 'x')).status,
            413);
  EXPECT_EQ(c.get("/v1/feeds/" + std::string(9000, 'a') + "/latest").status, 414);
  EXPECT_EQ(c.get("/healthz").status, 200);
}

TEST_F(ApiDaemonTest, SlotCountersGrowAndHistogramCountsEqualPublishedSlots) {
  HttpClient c(port_);
  sleep_ms(1000);
  const std::string published = "metronome_slots_total{feed=\"fast\",outcome=\"published\"}";
  const std::string latency_count = "metronome_publish_latency_seconds_count{feed=\"fast\"}";
  const std::string lateness_count = "metronome_slot_fire_lateness_seconds_count{feed=\"fast\"}";
  auto first = samples(c.get("/metrics").body);
  sleep_ms(1500);
  auto second = samples(c.get("/metrics").body);
  EXPECT_GE(second[published] - first[published], 10) << "100 ms slots for 1.5 s";
  // One scrape may fall between a slot's counter and its histogram: allow one in flight.
  EXPECT_NEAR(second[latency_count], second[published], 1);
  EXPECT_GE(second[lateness_count], second[published] - 1);
  EXPECT_EQ(second["metronome_build_info{version=\"0.1.0\"}"], 1);
  EXPECT_EQ(second["metronome_dlq_depth"], 0);
  ASSERT_EQ(daemon_->stop(SIGTERM), 0);

  // Everything counted as published is in the store (the daemon may publish a few more after).
  auto r = run({"--config", "metronome.toml", "values", "--limit", "100000", "--format", "json"},
               dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_GE(static_cast<double>(json_of(r).size()), second[published]);
}

TEST_F(ApiDaemonTest, ThirtyTwoClientsTimesFiveHundredWhileTheFeedRunsPublishEverySlotOnce) {
  // /latest answers 404 until the first slot is published; start the load after it.
  ASSERT_TRUE(daemon_->wait_for_log("published feed=fast", 10s)) << daemon_->log();
  const auto first_published = std::chrono::steady_clock::now();
  const std::vector<std::string> targets = {"/v1/feeds/fast/latest",
                                            "/v1/feeds",
                                            "/v1/feeds/fast/values?limit=20",
                                            "/metrics",
                                            "/v1/executions?limit=2",
                                            "/healthz",
                                            "/readyz"};
  std::atomic<int> ok{0}, failed{0};
  std::mutex first_failure_mu;
  std::string first_failure;
  std::vector<std::thread> clients;
  for (int t = 0; t < 32; ++t) {
    clients.emplace_back([&, t] {
      HttpClient c(port_);
      for (int i = 0; i < 500; ++i) {
        auto r = c.get(targets[static_cast<size_t>(t + i) % targets.size()]);
        if (r.status == 200 ||
            (r.status == 503 && r.headers["content-type"] == "application/json")) {
          ++ok;
        } else {
          ++failed;
          std::lock_guard lock(first_failure_mu);
          if (first_failure.empty()) {
            first_failure = fmt::format("{} {}: {}", r.status,
                                        targets[static_cast<size_t>(t + i) % targets.size()],
                                        r.body.substr(0, 300));
          }
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), 32 * 500);
  EXPECT_EQ(failed.load(), 0) << "first failure: " << first_failure;
  // At least 1.3 s of 100 ms slots since the first (the requests alone can take under 1 s on a
  // fast machine), so that at least 10 values are expected below.
  std::this_thread::sleep_until(first_published + 1300ms);
  ASSERT_EQ(daemon_->stop(SIGTERM), 0) << daemon_->log();

  auto r = run({"--config", "metronome.toml", "values", "--limit", "100000", "--format", "json"},
               dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto vals = json_of(r);
  ASSERT_GE(vals.size(), 10u);
  std::set<int64_t> seen;
  for (const auto& v : vals) {
    EXPECT_TRUE(seen.insert(std::stoll(v["slot_ms"].get<std::string>())).second)
        << "published twice: " << v.dump();
  }
  // Contiguous: every slot between the first and the last has exactly one value.
  EXPECT_EQ(static_cast<int64_t>(vals.size()), (*seen.rbegin() - *seen.begin()) / 100 + 1);

  auto ex =
      run({"--config", "metronome.toml", "executions", "--limit", "10000", "--format", "json"},
          dir_.path());
  ASSERT_EQ(ex.exit_code, 0) << ex.err;
  int published = 0;
  for (const auto& e : json_of(ex)) {
    for (const auto& s : e["slots"]) {
      if (s["outcome"] == "published") ++published;
      EXPECT_NE(s["outcome"], "skipped") << "slot skipped under HTTP load: " << s.dump();
    }
  }
  EXPECT_EQ(published, static_cast<int>(vals.size()));
}

}  // namespace
}  // namespace metronome::itest
