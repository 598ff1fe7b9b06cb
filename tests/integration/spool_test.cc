// The PostgreSQL outage spool, whole daemon: the real binary on a throwaway PostgreSQL cluster
// that the test stops and starts again (testing/postgres_server). Every slot the daemon reports
// published must be in the database once the server is back, exactly once, with its signature.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <pqxx/pqxx>
#include <regex>
#include <set>

#include "support/harness.h"
#include "testing/postgres_server.h"

namespace metronome::itest {
namespace {

using namespace std::chrono_literals;
using testing::PostgresServer;

constexpr int64_t kIntervalMs = 200;

std::string config(const std::string& url) {
  return R"(
[service]
data_dir = "var"
listen = "127.0.0.1:0"
[store]
kind = "postgres"
url = ")" +
         url + R"("
[secrets.oracle_key]
file = "secrets/oracle_key"
[[feeds]]
id = "fast"
every = "200ms"
window = "2s"
secret = "oracle_key"
source = { kind = "random_int", min = 0, max = 1000 }
)";
}

// The rounds the daemon logged as published ("published feed=fast slot=... round=N ...").
std::set<int64_t> published_rounds(const std::string& log) {
  std::set<int64_t> rounds;
  static const std::regex line(R"(published feed=fast slot=\S+ round=(\d+))");
  for (auto it = std::sregex_iterator(log.begin(), log.end(), line); it != std::sregex_iterator();
       ++it) {
    rounds.insert(std::stoll((*it)[1].str()));
  }
  return rounds;
}

// The first "spool drained: N entries written" figure in the log, or -1.
int64_t drained_written(const std::string& log) {
  static const std::regex line(R"(spool drained: (\d+) entries written)");
  std::smatch m;
  return std::regex_search(log, m, line) ? std::stoll(m[1].str()) : -1;
}

class SpoolDaemon : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto server = PostgresServer::start();
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value().release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    auto url = server_->create_database();
    ASSERT_TRUE(url.ok()) << url.status().ToString();
    url_ = *url;
    dir_.write("metronome.toml", config(url_));
    dir_.write("secrets/oracle_key", std::string(64, 'b') + "\n");
    chmod((dir_ / "secrets/oracle_key").c_str(), 0600);
    auto migrated = run({"--config", "metronome.toml", "migrate"}, dir_.path());
    ASSERT_EQ(migrated.exit_code, 0) << migrated.err;
  }

  int64_t count(const std::string& sql) {
    pqxx::connection c(url_);
    pqxx::nontransaction n(c);
    return n.exec(sql)[0][0].as<int64_t>();
  }

  // Every value in the database: one per slot, no gap between the first and the last, each
  // slot recorded published, every signature valid, and every round in `rounds` among them.
  void expect_complete(const std::set<int64_t>& rounds, const std::string& log) {
    auto r = run({"--config", "metronome.toml", "values", "--limit", "100000", "--format", "json"},
                 dir_.path());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    nlohmann::json values = json_of(r);
    std::set<int64_t> stored;
    for (const auto& v : values) {
      EXPECT_TRUE(stored.insert(std::stoll(v["round"].get<std::string>())).second)
          << "published twice: " << v.dump();
    }
    ASSERT_FALSE(stored.empty());
    EXPECT_EQ(static_cast<int64_t>(stored.size()), *stored.rbegin() - *stored.begin() + 1)
        << "a slot between the first and the last has no value\n"
        << log;
    for (int64_t round : rounds) {
      EXPECT_TRUE(stored.contains(round)) << "round " << round << " published but not stored";
    }
    EXPECT_EQ(count("SELECT count(*) FROM \"values\""), static_cast<int64_t>(stored.size()));
    EXPECT_EQ(count("SELECT count(*) FROM slots WHERE outcome = 'published'"),
              static_cast<int64_t>(stored.size()));
    EXPECT_EQ(count("SELECT count(*) FROM slots s LEFT JOIN executions e ON e.id = s.execution "
                    "WHERE e.id IS NULL"),
              0);

    dir_.write("values.json", values.dump());
    auto verified =
        run({"--config", "metronome.toml", "verify", "--file", "values.json"}, dir_.path());
    EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
    EXPECT_NE(verified.out.find(" 0 failed"), std::string::npos) << verified.out;
  }

  static PostgresServer* server_;
  std::string url_;
  TempDir dir_{"pg-spool"};
};

PostgresServer* SpoolDaemon::server_ = nullptr;

TEST_F(SpoolDaemon, PostgresRestartedMidRunLosesNothingAndDuplicatesNothing) {
  Daemon d(dir_.path(), {"--config", "metronome.toml"});
  d.start();
  ASSERT_TRUE(d.wait_for_log("metronome running", 10s)) << d.log();
  sleep_ms(1000);

  ASSERT_TRUE(server_->stop("fast").ok());
  const size_t before_outage = published_rounds(d.log()).size();
  sleep_ms(3000);
  const size_t during_outage = published_rounds(d.log()).size() - before_outage;
  ASSERT_TRUE(server_->start_again().ok());
  ASSERT_TRUE(d.wait_for_log("spool drained", 10s)) << d.log();
  sleep_ms(600);  // a few slots written straight to the database again
  EXPECT_EQ(d.stop(SIGTERM), 0) << d.log();

  const std::string log = d.log();
  EXPECT_NE(log.find("database unavailable"), std::string::npos) << log;
  // 3 s of 200 ms slots kept being published (into the spool): allow a loaded machine a few.
  EXPECT_GE(during_outage, 10u) << log;
  EXPECT_GE(drained_written(log), static_cast<int64_t>(during_outage)) << log;
  std::set<int64_t> rounds = published_rounds(log);
  expect_complete(rounds, log);
  std::printf(
      "slots published: %zu, of which during the 3 s outage: %zu; spool entries written "
      "after it: %lld\n",
      rounds.size(), during_outage, static_cast<long long>(drained_written(log)));
}

// The restarted daemon finds the first one's spool and writes it; every round either run logged
// as published is stored once (the kill-to-restart gap is recorded missed, not stored).
TEST_F(SpoolDaemon, SpoolOfADaemonKilledDuringTheOutageIsWrittenAtItsNextStart) {
  Daemon d(dir_.path(), {"--config", "metronome.toml"});
  d.start();
  ASSERT_TRUE(d.wait_for_log("metronome running", 10s)) << d.log();
  sleep_ms(600);
  ASSERT_TRUE(server_->stop("fast").ok());
  sleep_ms(1500);
  d.kill9();  // the spool file is all that is left of the outage's slots
  const std::string first_log = d.log();
  std::set<int64_t> rounds = published_rounds(first_log);
  ASSERT_TRUE(server_->start_again().ok());
  EXPECT_EQ(count("SELECT count(*) FROM \"values\"") < static_cast<int64_t>(rounds.size()), true);

  Daemon again(dir_.path(), {"--config", "metronome.toml"});
  again.start();
  ASSERT_TRUE(again.wait_for_log("metronome running", 10s)) << again.log();
  EXPECT_NE(again.log().find("from an earlier run"), std::string::npos) << again.log();
  EXPECT_EQ(again.stop(SIGTERM), 0) << again.log();
  // The slots between the kill and the restart are missed (recorded), the others all stored.
  for (int64_t round : published_rounds(again.log())) rounds.insert(round);
  auto r = run({"--config", "metronome.toml", "values", "--limit", "100000", "--format", "json"},
               dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::set<int64_t> stored;
  for (const auto& v : json_of(r)) {
    EXPECT_TRUE(stored.insert(std::stoll(v["round"].get<std::string>())).second) << v.dump();
  }
  for (int64_t round : rounds) {
    EXPECT_TRUE(stored.contains(round)) << "round " << round << " published but not stored\n"
                                        << first_log;
  }
  EXPECT_EQ(count("SELECT count(*) FROM \"values\""), static_cast<int64_t>(stored.size()));
}

}  // namespace
}  // namespace metronome::itest
