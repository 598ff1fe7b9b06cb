// High availability (docs/ha.md, issue 8): three real `metronome run` replicas on one real
// PostgreSQL (testing/postgres_server), 20 feeds every 200 ms, default lease settings (TTL 2 s,
// renewed every 500 ms). The replica holding the most leases is SIGKILLed three times at random
// moments (and restarted), one replica is SIGSTOPped for 3 s. Then, for every feed and every
// slot of the observed span: no duplicate; a value, or an outcome recorded missed / failed
// (never silent); and no more slots without a value than ceil(TTL / interval) + 1 per takeover
// of that feed (a takeover is a change of the lease's holder: its epoch grows by one).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <map>
#include <pqxx/pqxx>
#include <random>
#include <set>

#include "support/harness.h"
#include "testing/postgres_server.h"

namespace metronome::itest {
namespace {

using namespace std::chrono_literals;
using testing::PostgresServer;

constexpr int kFeeds = 20;
constexpr int64_t kIntervalMs = 200;
constexpr int64_t kTtlMs = 2000;
constexpr int64_t kPerTakeover = (kTtlMs + kIntervalMs - 1) / kIntervalMs + 1;  // 11

std::string config(const std::string& url) {
  std::string c = R"(
[service]
data_dir = "var"
listen = "127.0.0.1:0"
[store]
kind = "postgres"
url = ")" + url + R"("
[secrets.oracle_key]
file = "secrets/oracle_key"
)";
  for (int i = 0; i < kFeeds; ++i) {
    c += fmt::format(R"(
[[feeds]]
id = "f{:02}"
every = "200ms"
window = "4s"
secret = "oracle_key"
source = {{ kind = "random_int", min = 0, max = 1000 }}
)",
                     i);
  }
  return c;
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class HighAvailability : public ::testing::Test {
 protected:
  void SetUp() override {
    PostgresServer* server = PostgresServer::shared();
    ASSERT_NE(server, nullptr);
    auto url = server->create_database();
    ASSERT_TRUE(url.ok()) << url.status().ToString();
    url_ = *url;
  }

  pqxx::result query(const std::string& sql) {
    pqxx::connection c(url_);
    pqxx::nontransaction n(c);
    return n.exec(sql);
  }

  std::map<std::string, int64_t> epochs() {
    std::map<std::string, int64_t> out;
    for (const auto& row : query("SELECT feed, epoch FROM leases")) {
      out[row[0].as<std::string>()] = row[1].as<int64_t>();
    }
    return out;
  }

  // The pid of the replica holding the most valid leases, and how many it holds.
  std::pair<pid_t, int64_t> busiest() {
    auto r = query(
        "SELECT holder, count(*) FROM leases WHERE expires_at > clock_timestamp() "
        "GROUP BY holder ORDER BY 2 DESC, 1 LIMIT 1");
    if (r.empty()) return {-1, 0};
    // A replica id is HOST-PID-RANDOM.
    std::string id = r[0][0].as<std::string>();
    id = id.substr(0, id.rfind('-'));
    return {static_cast<pid_t>(std::stol(id.substr(id.rfind('-') + 1))), r[0][1].as<int64_t>()};
  }

  std::string url_;
};

TEST_F(HighAvailability, ThreeReplicasKilledAndStoppedKeepOneValuePerSlotAndRecordEveryGap) {
  std::vector<std::unique_ptr<TempDir>> dirs;
  std::vector<std::unique_ptr<Daemon>> replicas;
  for (int i = 0; i < 3; ++i) {
    dirs.push_back(std::make_unique<TempDir>(fmt::format("ha-{}", i)));
    dirs[i]->write("metronome.toml", config(url_));
    dirs[i]->write("secrets/oracle_key", std::string(64, 'a') + "\n");
    chmod((*dirs[i] / "secrets/oracle_key").c_str(), 0600);
  }
  auto migrated = run({"--config", "metronome.toml", "migrate"}, dirs[0]->path());
  ASSERT_EQ(migrated.exit_code, 0) << migrated.err;
  for (int i = 0; i < 3; ++i) {
    replicas.push_back(std::make_unique<Daemon>(
        dirs[i]->path(), std::vector<std::string>{"--config", "metronome.toml"}));
    replicas[i]->start();
  }
  for (auto& r : replicas) ASSERT_TRUE(r->wait_for_log("metronome running", 15s)) << r->log();
  auto index_of = [&](pid_t pid) {
    for (size_t i = 0; i < replicas.size(); ++i) {
      if (replicas[i]->pid() == pid) return static_cast<int>(i);
    }
    return -1;
  };

  // Settle (the three joined at slightly different times), then observe.
  sleep_ms(2000);
  const int64_t t0 = now_ms();
  const auto epochs_at_t0 = epochs();
  ASSERT_EQ(epochs_at_t0.size(), static_cast<size_t>(kFeeds));

  const unsigned seed = std::random_device{}();
  std::mt19937 random(seed);
  std::printf("[ha] seed %u\n", seed);
  // Three kills at random moments in [1 s, 4 s) of three 5 s periods, then a 3 s SIGSTOP.
  for (int k = 0; k < 3; ++k) {
    const int before = std::uniform_int_distribution<int>(1000, 3999)(random);
    sleep_ms(before);
    auto [pid, held] = busiest();
    const int victim = index_of(pid);
    ASSERT_GE(victim, 0) << "no replica holds a lease";
    std::printf("[ha] +%lld ms: SIGKILL replica %d (pid %d, %lld leases); restarted\n",
                static_cast<long long>(now_ms() - t0), victim, pid, static_cast<long long>(held));
    replicas[victim]->kill9();
    replicas[victim]->start();
    sleep_ms(5000 - before);
  }
  {
    const int victim = std::uniform_int_distribution<int>(0, 2)(random);
    std::printf("[ha] +%lld ms: SIGSTOP replica %d for 3 s\n",
                static_cast<long long>(now_ms() - t0), victim);
    replicas[victim]->signal(SIGSTOP);
    sleep_ms(3000);
    replicas[victim]->signal(SIGCONT);
  }
  sleep_ms(4000);  // the last takeovers complete and record their gaps
  const int64_t t1 = now_ms() - 1000;
  for (auto& r : replicas) {
    ASSERT_TRUE(r->running()) << r->log();
    EXPECT_EQ(r->stop(SIGTERM), 0) << r->log();
  }

  // ---- the figures ----
  const int64_t first = (t0 + kIntervalMs - 1) / kIntervalMs * kIntervalMs;
  const int64_t last = t1 / kIntervalMs * kIntervalMs;
  const int64_t slots_per_feed = (last - first) / kIntervalMs + 1;
  const auto epochs_at_end = epochs();

  const std::string span = fmt::format("slot_ms BETWEEN {} AND {}", first, last);
  EXPECT_EQ(query("SELECT count(*) - count(DISTINCT (feed, slot_ms)) FROM \"values\"")[0][0]
                .as<int64_t>(),
            0);
  std::map<std::string, std::set<int64_t>> values;
  for (const auto& row : query("SELECT feed, slot_ms FROM \"values\" WHERE " + span)) {
    values[row[0].as<std::string>()].insert(row[1].as<int64_t>());
  }
  std::map<std::pair<std::string, int64_t>, std::string> outcomes;
  for (const auto& row : query("SELECT feed, slot_ms, outcome FROM slots WHERE " + span)) {
    outcomes[{row[0].as<std::string>(), row[1].as<int64_t>()}] = row[2].as<std::string>();
  }

  int64_t total_values = 0, missed = 0, failed = 0, skipped = 0, silent = 0, takeovers = 0;
  for (int i = 0; i < kFeeds; ++i) {
    const std::string feed = fmt::format("f{:02}", i);
    const int64_t feed_takeovers = epochs_at_end.at(feed) - epochs_at_t0.at(feed);
    takeovers += feed_takeovers;
    int64_t feed_gaps = 0;
    for (int64_t s = first; s <= last; s += kIntervalMs) {
      auto outcome = outcomes.find({feed, s});
      if (values[feed].contains(s)) {
        ++total_values;
        EXPECT_TRUE(outcome == outcomes.end() || outcome->second == "published")
            << feed << " " << s << " has a value but outcome " << outcome->second;
        continue;
      }
      ++feed_gaps;
      const std::string o = outcome == outcomes.end() ? "(none)" : outcome->second;
      if (o == "missed") {
        ++missed;
      } else if (o == "failed") {
        ++failed;
      } else if (o == "skipped") {
        ++skipped;
      } else {
        ++silent;
        ADD_FAILURE() << "silent gap: feed " << feed << " slot " << s << " outcome " << o;
      }
    }
    EXPECT_LE(feed_gaps, feed_takeovers * kPerTakeover)
        << feed << ": " << feed_gaps << " slots without a value, " << feed_takeovers
        << " takeovers";
  }
  std::printf(
      "[ha] %d feeds x %lld slots = %lld; values %lld; gaps: missed %lld, failed %lld, "
      "skipped %lld, silent %lld; takeovers %lld (at most %lld slots each); duplicates 0\n",
      kFeeds, static_cast<long long>(slots_per_feed),
      static_cast<long long>(slots_per_feed * kFeeds), static_cast<long long>(total_values),
      static_cast<long long>(missed), static_cast<long long>(failed),
      static_cast<long long>(skipped), static_cast<long long>(silent),
      static_cast<long long>(takeovers), static_cast<long long>(kPerTakeover));
  EXPECT_EQ(silent, 0);
  EXPECT_GT(takeovers, 0) << "the kills moved no lease";
  EXPECT_GT(total_values, slots_per_feed * kFeeds * 7 / 10);
}

}  // namespace
}  // namespace metronome::itest
