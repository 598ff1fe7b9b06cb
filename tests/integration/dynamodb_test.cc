// The dynamodb sink against dynalite (a DynamoDB implementation in node, pinned in
// package-lock.json), with the real daemon: every slot written once in both layouts, an outage
// sent to the DLQ and redriven, and the start-up errors for bad sink configuration.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>  // PkgConfig::CPPHTTPLIB defines the library's CPPHTTPLIB_* options
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <regex>
#include <set>

#include "support/harness.h"

namespace metronome::itest {
namespace {

using namespace std::chrono_literals;

// Fake credentials: dynalite checks that requests are signed, not with which key.
const std::vector<std::string> kAwsEnv = {"AWS_ACCESS_KEY_ID=AKIDMETRONOMETEST",
                                          "AWS_SECRET_ACCESS_KEY=metronome/test/secret",
                                          "AWS_SHARED_CREDENTIALS_FILE=/nonexistent"};

std::string source_dir() {
  const char* d = std::getenv("METRONOME_SOURCE_DIR");
  return d ? d : ".";
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// `metronome args...` with the fake AWS credentials in its environment.
CommandResult run_aws(const std::vector<std::string>& args, const std::filesystem::path& cwd) {
  std::vector<std::string> argv{"/usr/bin/env", "-u", "AWS_PROFILE", "-u", "AWS_SESSION_TOKEN"};
  argv.insert(argv.end(), kAwsEnv.begin(), kAwsEnv.end());
  argv.push_back(binary());
  argv.insert(argv.end(), args.begin(), args.end());
  return run_program(argv, cwd, 60s);
}

// dynalite on 127.0.0.1:port, persisted in `path` so a restart keeps the tables.
class Dynalite {
 public:
  Dynalite(int port, std::filesystem::path path) : port_(port), path_(std::move(path)) {}
  ~Dynalite() { stop(); }

  void start() {
    std::string cli = source_dir() + "/node_modules/dynalite/cli.js";
    pid_ = fork();
    if (pid_ == 0) {
      int null = ::open("/dev/null", O_WRONLY);
      dup2(null, 1);
      execlp("node", "node", cli.c_str(), "--host", "127.0.0.1", "--port",
             std::to_string(port_).c_str(), "--path", path_.c_str(), "--createTableMs", "0",
             "--deleteTableMs", "0", static_cast<char*>(nullptr));
      _exit(127);
    }
    httplib::Client c("127.0.0.1", port_);
    for (int i = 0; i < 200; ++i) {
      if (c.Get("/")) return;
      sleep_ms(25);
    }
    ADD_FAILURE() << "dynalite did not start on port " << port_;
  }

  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // Every item of `table`, as DynamoDB attribute-value JSON.
  std::vector<nlohmann::json> scan(const std::string& table) const {
    httplib::Client c("127.0.0.1", port_);
    httplib::Headers headers = {
        {"X-Amz-Target", "DynamoDB_20120810.Scan"},
        {"X-Amz-Date", "20261128T000000Z"},
        {"Authorization",
         "AWS4-HMAC-SHA256 Credential=AKIDMETRONOMETEST/20261128/us-east-1/dynamodb/aws4_request, "
         "SignedHeaders=host;x-amz-date;x-amz-target, Signature=00"}};
    std::vector<nlohmann::json> items;
    nlohmann::json request = {{"TableName", table}};
    while (true) {
      auto res = c.Post("/", headers, request.dump(), "application/x-amz-json-1.0");
      if (!res || res->status != 200) {
        ADD_FAILURE() << "scan " << table << ": " << (res ? res->body : "no answer");
        return items;
      }
      auto body = nlohmann::json::parse(res->body);
      for (auto& item : body["Items"]) items.push_back(item);
      if (!body.contains("LastEvaluatedKey")) return items;
      request["ExclusiveStartKey"] = body["LastEvaluatedKey"];
    }
  }

 private:
  int port_;
  std::filesystem::path path_;
  pid_t pid_ = -1;
};

std::string config(const std::string& endpoint, bool with_seed_feed) {
  std::string c = R"(
[service]
listen = "127.0.0.1:0"
[store]
path = "var/metronome.db"
[secrets.oracle_key]
file = "oracle_key"
[[feeds]]
id = "fast"
every = "200ms"
secret = "oracle_key"
decimals = 2
source = { kind = "random_int", min = -100000, max = 100000 }
sinks = [{ kind = "dynamodb", table = "Records", region = "us-east-1", endpoint = ")" +
                  endpoint + R"(", layout = "record" }]
)";
  if (with_seed_feed) {
    c += R"(
[[feeds]]
id = "random_int"
every = "1s"
source = { kind = "random_int", min = 0, max = 1000 }
sinks = [{ kind = "dynamodb", table = "RandomIntegers", region = "us-east-1", endpoint = ")" +
         endpoint + R"(" }]
)";
  }
  return c;
}

void setup_dir(const TempDir& dir, const std::string& endpoint, bool with_seed_feed) {
  dir.write("metronome.toml", config(endpoint, with_seed_feed));
  auto keygen = run({"keygen", "--out", "oracle_key"}, dir.path());
  ASSERT_EQ(keygen.exit_code, 0) << keygen.err;
}

void create_table(const TempDir& dir, const std::string& feed) {
  auto r = run_aws({"--config", "metronome.toml", "dynamodb", "create-table", "--feed", feed},
                   dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("created table"), std::string::npos) << r.out;
}

nlohmann::json values(const TempDir& dir, const std::string& feed) {
  auto r = run({"--config", "metronome.toml", "values", "--feed", feed, "--limit", "10000",
                "--format", "json"},
               dir.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return json_of(r);
}

nlohmann::json dlq(const TempDir& dir) {
  auto r = run({"--config", "metronome.toml", "dlq", "list", "--format", "json"}, dir.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return json_of(r);
}

std::vector<std::pair<std::string, std::string>> daemon_env() {
  std::vector<std::pair<std::string, std::string>> env;
  for (const std::string& kv : kAwsEnv) {
    env.emplace_back(kv.substr(0, kv.find('=')), kv.substr(kv.find('=') + 1));
  }
  return env;
}

// The record-layout items by slot_ms, each checked to hold exactly the published record.
void expect_records_once(const std::vector<nlohmann::json>& items,
                         const nlohmann::json& published) {
  std::map<std::string, int> count;
  std::map<std::string, nlohmann::json> by_slot;
  for (const auto& item : items) {
    std::string slot_ms = item["slot_ms"]["N"];
    ++count[slot_ms];
    by_slot[slot_ms] = item;
  }
  ASSERT_FALSE(published.empty());
  EXPECT_EQ(items.size(), published.size());
  for (const auto& v : published) {
    std::string slot_ms = v["slot_ms"];
    ASSERT_EQ(count[slot_ms], 1) << "slot " << v["slot"] << " is in the table " << count[slot_ms]
                                 << " times";
    const auto& item = by_slot[slot_ms];
    EXPECT_EQ(item["feed"]["S"], v["feed"]);
    EXPECT_EQ(item["round"]["N"], v["round"]);
    EXPECT_EQ(item["slot"]["S"], v["slot"]);
    EXPECT_EQ(item["value"]["S"], v["value"]);
    EXPECT_EQ(item["decimals"]["N"], std::to_string(v["decimals"].get<int>()));
    EXPECT_EQ(item["execution"]["S"], v["execution"]);
    EXPECT_EQ(item["signer"]["S"], v["signer"]);
    EXPECT_EQ(item["signature"]["S"], v["signature"]);
    EXPECT_EQ(item["digest"]["S"], v["digest"]);
    // The API shows times in microseconds; the item keeps the stored nanoseconds.
    for (const char* t : {"observed_at", "published_at"}) {
      int64_t ns = std::stoll(item[std::string(t) + "_ns"]["N"].get<std::string>());
      std::string iso = v[t];  // "2026-11-28T01:02:03.123456Z"
      int64_t us_in_second = std::stoll(iso.substr(20, 6));
      EXPECT_EQ((ns / 1000) % 1'000'000, us_in_second) << t << " " << iso;
    }
    EXPECT_EQ(item.size(), 12u) << item.dump();
  }
}

TEST(DynamoDbSink, EverySlotOnceInBothLayouts) {
  TempDir dir("dynamodb");
  Dynalite dynalite(free_port(), dir / "dynalite");
  dynalite.start();
  setup_dir(dir, dynalite.endpoint(), true);
  create_table(dir, "fast");
  create_table(dir, "random_int");

  Daemon d(dir.path(), {"--config", "metronome.toml"}, daemon_env());
  d.start();
  ASSERT_TRUE(d.wait_for_log("metronome running", 10s)) << d.log();
  sleep_ms(3000);
  ASSERT_EQ(d.stop(), 0) << d.log();

  EXPECT_TRUE(dlq(dir).empty()) << dlq(dir).dump(2);
  nlohmann::json fast = values(dir, "fast");
  EXPECT_GE(fast.size(), 12u);
  expect_records_once(dynalite.scan("Records"), fast);

  // The replaced system's table: exactly datetime_utc (S) and random_int (N), one per slot.
  nlohmann::json seed = values(dir, "random_int");
  ASSERT_GE(seed.size(), 2u);
  auto items = dynalite.scan("RandomIntegers");
  ASSERT_EQ(items.size(), seed.size());
  std::map<std::string, std::string> by_time;
  const std::regex format(R"(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})");
  for (const auto& item : items) {
    ASSERT_EQ(item.size(), 2u) << item.dump();
    ASSERT_TRUE(item.contains("datetime_utc") && item["datetime_utc"].contains("S")) << item;
    ASSERT_TRUE(item.contains("random_int") && item["random_int"].contains("N")) << item;
    std::string t = item["datetime_utc"]["S"];
    EXPECT_TRUE(std::regex_match(t, format)) << t;
    by_time[t] = item["random_int"]["N"];
  }
  for (const auto& v : seed) {
    std::string slot = v["slot"];  // "2026-11-28T01:02:03.000Z"
    std::string key = slot.substr(0, 10) + " " + slot.substr(11, 8);
    ASSERT_TRUE(by_time.contains(key)) << key;
    EXPECT_EQ(by_time[key], v["value"]);
  }
}

TEST(DynamoDbSink, OutageGoesToTheDlqAndRedriveCompletesTheTable) {
  TempDir dir("dynamodb-outage");
  Dynalite dynalite(free_port(), dir / "dynalite");
  dynalite.start();
  setup_dir(dir, dynalite.endpoint(), false);
  create_table(dir, "fast");

  Daemon d(dir.path(), {"--config", "metronome.toml"}, daemon_env());
  d.start();
  ASSERT_TRUE(d.wait_for_log("metronome running", 10s)) << d.log();
  sleep_ms(800);
  dynalite.stop();
  sleep_ms(1200);
  // The deliveries failed: their records wait on the DLQ, and the daemon keeps publishing.
  nlohmann::json waiting = dlq(dir);
  ASSERT_GE(waiting.size(), 3u) << d.log();
  for (const auto& m : waiting) {
    EXPECT_EQ(m["stage"], "sink:dynamodb");
    EXPECT_TRUE(m.contains("record")) << m.dump();
    EXPECT_NE(m["error"].get<std::string>().find("Records"), std::string::npos) << m["error"];
  }
  dynalite.start();
  sleep_ms(1000);
  ASSERT_EQ(d.stop(), 0) << d.log();

  nlohmann::json published = values(dir, "fast");
  // No slot was lost to the outage: consecutive slots all the way.
  ASSERT_GE(published.size(), 12u);
  for (size_t i = 1; i < published.size(); ++i) {
    EXPECT_EQ(std::stoll(published[i - 1]["slot_ms"].get<std::string>()) -
                  std::stoll(published[i]["slot_ms"].get<std::string>()),
              200);
  }
  EXPECT_LT(dynalite.scan("Records").size(), published.size());

  auto redrive = run_aws({"--config", "metronome.toml", "dlq", "redrive", "--all"}, dir.path());
  ASSERT_EQ(redrive.exit_code, 0) << redrive.out << redrive.err;
  EXPECT_TRUE(dlq(dir).empty());
  expect_records_once(dynalite.scan("Records"), published);
  // A second redrive has nothing left; the store's values are untouched.
  EXPECT_EQ(values(dir, "fast"), published);
}

TEST(DynamoDbSink, StartRefusedWithoutCredentialsOrTable) {
  TempDir dir("dynamodb-bad");
  Dynalite dynalite(free_port(), dir / "dynalite");
  dynalite.start();
  setup_dir(dir, dynalite.endpoint(), false);

  // No credentials anywhere: the error names what is missing.
  auto r = run_program({"/usr/bin/env", "-u", "AWS_ACCESS_KEY_ID", "-u", "AWS_SECRET_ACCESS_KEY",
                        "-u", "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent/credentials",
                        binary(), "--config", "metronome.toml", "run"},
                       dir.path(), 20s);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("AWS_ACCESS_KEY_ID"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("/nonexistent/credentials"), std::string::npos) << r.err;

  // Credentials, but no table: the error names the table.
  std::vector<std::string> argv{"/usr/bin/env"};
  argv.insert(argv.end(), kAwsEnv.begin(), kAwsEnv.end());
  argv.insert(argv.end(), {binary(), "--config", "metronome.toml", "run"});
  r = run_program(argv, dir.path(), 20s);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("DynamoDB table 'Records' does not exist"), std::string::npos) << r.err;

  // A region that is not one.
  std::string text = config(dynalite.endpoint(), false);
  text.replace(text.find("us-east-1"), 9, "US_EAST");
  dir.write("metronome.toml", text);
  r = run({"--config", "metronome.toml", "config", "check"}, dir.path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("unknown region format 'US_EAST'"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace metronome::itest
