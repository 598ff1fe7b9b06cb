// Whole-daemon tests on the PostgreSQL store: a throwaway cluster started by the test
// (testing/postgres_server), the real binary, real time. Kept short (100 ms slots).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <pqxx/pqxx>
#include <set>

#include "support/harness.h"
#include "testing/postgres_server.h"

namespace metronome::itest {
namespace {

using namespace std::chrono_literals;
using testing::PostgresServer;

std::string config(const std::string& url, const std::string& listen = "127.0.0.1:0") {
  return R"(
[service]
data_dir = "var"
listen = ")" +
         listen +
         R"("
[store]
kind = "postgres"
url = ")" +
         url + R"("
[secrets.oracle_key]
file = "secrets/oracle_key"
[[feeds]]
id = "fast"
every = "100ms"
window = "1s"
secret = "oracle_key"
source = { kind = "random_int", min = 0, max = 1000 }
)";
}

void write_secret(const TempDir& dir) {
  dir.write("secrets/oracle_key", std::string(64, 'a') + "\n");
  chmod((dir / "secrets/oracle_key").c_str(), 0600);
}

int64_t slot_ms(const nlohmann::json& j) {
  return std::stoll(j["slot_ms"].get<std::string>());
}

class PostgresDaemon : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = PostgresServer::shared();
    ASSERT_NE(server_, nullptr);
    auto url = server_->create_database();
    ASSERT_TRUE(url.ok()) << url.status().ToString();
    url_ = *url;
  }
  nlohmann::json values(const TempDir& dir) {
    auto r = run({"--config", "metronome.toml", "values", "--limit", "100000", "--format", "json"},
                 dir.path());
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return json_of(r);
  }
  int64_t count(const std::string& sql) {
    pqxx::connection c(url_);
    pqxx::nontransaction n(c);
    return n.exec(sql)[0][0].as<int64_t>();
  }

  PostgresServer* server_ = nullptr;
  std::string url_;
};

TEST_F(PostgresDaemon, RunNeedsMigrateThenPublishesEverySlotOnce) {
  TempDir dir("pg-run");
  dir.write("metronome.toml", config(url_));
  write_secret(dir);

  auto refused = run({"--config", "metronome.toml", "run"}, dir.path());
  EXPECT_EQ(refused.exit_code, 2) << refused.err;
  EXPECT_NE(refused.err.find("metronome migrate"), std::string::npos) << refused.err;

  auto migrated = run({"--config", "metronome.toml", "migrate"}, dir.path());
  ASSERT_EQ(migrated.exit_code, 0) << migrated.err;
  EXPECT_NE(migrated.out.find("schema version 0 -> 4"), std::string::npos) << migrated.out;

  Daemon d(dir.path(), {"--config", "metronome.toml"});
  d.start();
  ASSERT_TRUE(d.wait_for_log("metronome running", 10s)) << d.log();
  sleep_ms(2000);
  EXPECT_EQ(d.stop(SIGTERM), 0) << d.log();

  auto vals = values(dir);
  ASSERT_GE(vals.size(), 15u) << d.log();
  std::set<int64_t> seen;
  for (const auto& v : vals) {
    EXPECT_TRUE(seen.insert(slot_ms(v)).second) << "published twice: " << v.dump();
    EXPECT_FALSE(v["signature"].get<std::string>().empty());
  }
  EXPECT_EQ(static_cast<int64_t>(vals.size()), (*seen.rbegin() - *seen.begin()) / 100 + 1)
      << "a slot between the first and the last has no value";
  EXPECT_EQ(count("SELECT count(*) FROM slots WHERE outcome = 'published'"),
            static_cast<int64_t>(vals.size()));
}

// Two replicas share the feed through its lease (docs/ha.md): exactly one value per slot, and
// no slot failed for lack of its value.
TEST_F(PostgresDaemon, TwoReplicasOnOneDatabaseKeepExactlyOneValuePerSlot) {
  TempDir a("pg-replica-a"), b("pg-replica-b");
  for (const TempDir* dir : {&a, &b}) {
    dir->write("metronome.toml", config(url_));
    write_secret(*dir);
  }
  ASSERT_EQ(run({"--config", "metronome.toml", "migrate"}, a.path()).exit_code, 0);
  Daemon da(a.path(), {"--config", "metronome.toml"});
  Daemon db(b.path(), {"--config", "metronome.toml"});
  da.start();
  db.start();
  ASSERT_TRUE(da.wait_for_log("metronome running", 10s)) << da.log();
  ASSERT_TRUE(db.wait_for_log("metronome running", 10s)) << db.log();
  sleep_ms(2000);
  EXPECT_EQ(da.stop(SIGTERM), 0) << da.log();
  EXPECT_EQ(db.stop(SIGTERM), 0) << db.log();

  const int64_t values_n = count("SELECT count(*) FROM \"values\"");
  EXPECT_GE(values_n, 15);
  EXPECT_EQ(count("SELECT count(DISTINCT slot_ms) FROM \"values\""), values_n);
  // Both replicas ran the same slots: no slot of either is failed for lack of its value.
  EXPECT_EQ(count("SELECT count(*) FROM slots WHERE outcome = 'failed'"), 0);
}

}  // namespace
}  // namespace metronome::itest
