// The evm sink with the real daemon against ganache (npm, pinned in package-lock.json) on a free
// port with 1 s blocks: `metronome evm deploy`, a 500 ms feed (deviation 0.5 %, heartbeat 3 s)
// whose first RPC URLs are a closed port and a socket that never answers, every decision checked
// against the policy and every on-chain update against the stored records, then kill -9 while a
// transaction is in flight and a restart: no nonce gap, no round twice.
#include <SQLiteCpp/SQLiteCpp.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <httplib.h>  // PkgConfig::CPPHTTPLIB defines the library's CPPHTTPLIB_* options
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <regex>
#include <sstream>

#include "support/harness.h"

namespace metronome::itest {
namespace {

using namespace std::chrono_literals;

constexpr const char* kSenderKey =
    "0x8f2a55949038a9610f50fb23b5883af3b4ecb3c3bb792cbcefbd1542c692be63";
constexpr const char* kSenderAddress = "0xC0A2a2E3fC5Ee4D6BAb0b01F1c6A2D1a2Bc3bCc8";  // unused
constexpr const char* kFeedKey = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
constexpr uint64_t kChainId = 31337;

std::string source_dir() {
  const char* d = std::getenv("METRONOME_SOURCE_DIR");
  return d ? d : ".";
}

int free_port() {
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

// A listening socket that never accepts: connections succeed (kernel backlog), no answer comes.
class HangingServer {
 public:
  HangingServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(fd_, 64);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~HangingServer() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

class Ganache {
 public:
  explicit Ganache(int port) : port_(port) {}
  ~Ganache() { stop(); }
  void start() {
    std::string cli = source_dir() + "/node_modules/ganache/dist/node/cli.js";
    pid_ = fork();
    if (pid_ == 0) {
      int null = ::open("/dev/null", O_WRONLY);
      dup2(null, 1);
      dup2(null, 2);
      std::string account = std::string(kSenderKey) + ",1000000000000000000000";
      execlp("node", "node", cli.c_str(), "--server.host", "127.0.0.1", "--server.port",
             std::to_string(port_).c_str(), "--chain.chainId", std::to_string(kChainId).c_str(),
             "--miner.blockTime", "1", "--wallet.accounts", account.c_str(), "--logging.quiet",
             static_cast<char*>(nullptr));
      _exit(127);
    }
    for (int i = 0; i < 400; ++i) {
      if (rpc("eth_chainId", nlohmann::json::array()).is_string()) return;
      sleep_ms(50);
    }
    ADD_FAILURE() << "ganache did not start on port " << port_;
  }
  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  nlohmann::json rpc(const std::string& method, const nlohmann::json& params) const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(10, 0);
    nlohmann::json body = {{"jsonrpc", "2.0"}, {"id", 1}, {"method", method}, {"params", params}};
    auto r = c.Post("/", body.dump(), "application/json");
    if (!r) return nullptr;
    nlohmann::json j = nlohmann::json::parse(r->body, nullptr, false);
    if (j.is_discarded() || !j.contains("result")) return nullptr;
    return j["result"];
  }

 private:
  int port_;
  pid_t pid_ = -1;
};

uint64_t q(const nlohmann::json& v) {
  return std::stoull(v.get<std::string>(), nullptr, 16);
}

// `tuning`: the sink's heartbeat, fee cap and alarm settings.
constexpr const char* kDefaultTuning = R"(heartbeat = "3s"
max_fee_gwei = "50"
low_balance_eth = "5000")";

std::string config_text(const std::string& urls, const std::string& contract,
                        const std::string& tuning = kDefaultTuning) {
  return fmt::format(R"(
[service]
listen = "127.0.0.1:0"
chain_id = {0}

[secrets.feed_key]
file = "feed_key"
[secrets.sender_key]
file = "sender_key"

[[feeds]]
id = "eth_usd"
every = "500ms"
window = "10s"
secret = "feed_key"
decimals = 2
source = {{ kind = "random_int", min = 100000, max = 101500 }}
[[feeds.sinks]]
kind = "evm"
rpc_urls = [{1}]
contract = "{2}"
sender_secret = "sender_key"
deviation_pct = "0.5"
bump_pct = 15
bump_after_blocks = 3
confirmations = 1
rpc_timeout = "2s"
{3}
)",
                     kChainId, urls, contract, tuning);
}

// The API port, from the daemon's "API listening on 127.0.0.1:PORT" line.
int api_port(const Daemon& daemon) {
  std::smatch m;
  const std::string log = daemon.log();
  if (!std::regex_search(log, m, std::regex(R"(API listening on [0-9.]+:(\d+))"))) return 0;
  return std::stoi(m[1]);
}

// GET /metrics: "name{labels}" -> value (comments skipped).
std::map<std::string, double> scrape(int port) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(5, 0);
  auto r = c.Get("/metrics");
  std::map<std::string, double> out;
  if (!r || r->status != 200) return out;
  std::istringstream in(r->body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto space = line.rfind(' ');
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

constexpr const char* kStaleness = R"(metronome_evm_onchain_staleness_seconds{feed="eth_usd"})";
constexpr const char* kPendingAge = R"(metronome_evm_pending_tx_age_seconds{feed="eth_usd"})";
constexpr const char* kBalance = R"(metronome_evm_sender_balance_eth{feed="eth_usd"})";

void write_keys(const TempDir& dir) {
  dir.write("feed_key", std::string(kFeedKey) + "\n");
  dir.write("sender_key", std::string(kSenderKey) + "\n");
  for (const char* f : {"feed_key", "sender_key"}) {
    std::filesystem::permissions(
        dir / f, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  }
}

struct DecisionRow {
  int64_t round, slot_ms, chain_ts;
  std::string value, chain_value, decision, reason, tx;
};

std::vector<DecisionRow> decisions(const std::filesystem::path& db) {
  std::vector<DecisionRow> out;
  SQLite::Database d(db.string(), SQLite::OPEN_READONLY, 5000);
  SQLite::Statement s(d,
                      "SELECT round, slot_ms, chain_timestamp_ms, value, chain_value, decision, "
                      "reason, tx_hash FROM decisions ORDER BY id");
  while (s.executeStep()) {
    out.push_back({s.getColumn(0).getInt64(), s.getColumn(1).getInt64(), s.getColumn(2).getInt64(),
                   s.getColumn(3).getString(), s.getColumn(4).getString(),
                   s.getColumn(5).getString(), s.getColumn(6).getString(),
                   s.getColumn(7).getString()});
  }
  return out;
}

int64_t unmined_rows(const std::filesystem::path& db) {
  SQLite::Database d(db.string(), SQLite::OPEN_READONLY, 5000);
  return d.execAndGet("SELECT COUNT(*) FROM txs WHERE mined_block IS NULL").getInt64();
}

TEST(EvmIntegrationTest, DeployPublishFailoverKillAndRestart) {
  ASSERT_TRUE(std::filesystem::exists(source_dir() + "/node_modules/ganache/package.json"))
      << "ganache is not installed; run scripts/setup.sh --test";
  TempDir dir("evm");
  dir.write("feed_key", std::string(kFeedKey) + "\n");
  dir.write("sender_key", std::string(kSenderKey) + "\n");
  std::filesystem::permissions(
      dir / "feed_key", std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  std::filesystem::permissions(
      dir / "sender_key", std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  Ganache ganache(free_port());
  ganache.start();
  HangingServer hanging;
  const std::string urls = fmt::format(R"("http://127.0.0.1:{}", "http://127.0.0.1:{}", "{}")",
                                       free_port(), hanging.port(), ganache.url());
  dir.write("metronome.toml", config_text(urls, ""));

  // Deploy through the dead and the hanging URL.
  CommandResult deploy = run({"--config", "metronome.toml", "evm", "deploy"}, dir.path(), 90s);
  ASSERT_EQ(deploy.exit_code, 0) << deploy.out << deploy.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(deploy.out, m, std::regex("contract (0x[0-9a-fA-F]{40})")))
      << deploy.out;
  const std::string contract = m[1];
  dir.write("metronome.toml", config_text(urls, contract));

  // Phase 1: ~14 s of publishing.
  Daemon daemon(dir.path(), {"--config", "metronome.toml"});
  daemon.start();
  ASSERT_TRUE(daemon.wait_for_log("evm sink ready", 30s)) << daemon.log();
  sleep_ms(14000);
  // The sender has 1000 ETH, under the 5000 threshold: the low_balance alarm fired.
  EXPECT_TRUE(daemon.wait_for_log("alarm low_balance: OK -> ALARM", 5s)) << daemon.log();
  {
    // The evm gauges (refreshed at each alarm evaluation, every 5 s): the chain's value is
    // younger than the heartbeat plus a few blocks, a transaction is unmined for a few blocks at
    // most, the sender holds what ganache gave it minus the gas spent.
    const int port = api_port(daemon);
    ASSERT_GT(port, 0) << daemon.log();
    auto metrics = scrape(port);
    ASSERT_TRUE(metrics.contains(kStaleness))
        << "no staleness gauge; " << metrics.size() << " samples";
    EXPECT_GE(metrics[kStaleness], 0);
    EXPECT_LT(metrics[kStaleness], 15);
    ASSERT_TRUE(metrics.contains(kPendingAge));
    EXPECT_GE(metrics[kPendingAge], 0);
    EXPECT_LT(metrics[kPendingAge], 15);
    ASSERT_TRUE(metrics.contains(kBalance));
    EXPECT_GT(metrics[kBalance], 900);
    EXPECT_LT(metrics[kBalance], 1000);  // gas was paid
  }

  // Phase 2: kill -9 while a transaction is in flight, restart.
  bool killed_in_flight = false;
  for (int i = 0; i < 200 && !killed_in_flight; ++i) {
    if (unmined_rows(dir / "var/evm.db") > 0) {
      daemon.kill9();
      killed_in_flight = true;
      break;
    }
    sleep_ms(20);
  }
  if (!killed_in_flight) daemon.kill9();
  EXPECT_TRUE(killed_in_flight) << "no transaction was in flight to kill the daemon during";
  daemon.start();
  ASSERT_TRUE(daemon.wait_for_log("evm sink ready", 30s)) << daemon.log();
  sleep_ms(6000);
  EXPECT_EQ(daemon.stop(), 0) << daemon.log();
  sleep_ms(2500);  // the last transaction is mined

  // Every decision follows the policy: deviation 0.5 %, heartbeat 3 s.
  std::vector<DecisionRow> rows = decisions(dir / "var/evm.db");
  ASSERT_GT(rows.size(), 30u);
  int submits = 0, skips = 0, by_heartbeat = 0, by_deviation = 0, unanswered = 0;
  for (const DecisionRow& r : rows) {
    SCOPED_TRACE(fmt::format("round {} value {} chain {} at {} -> {} ({})", r.round, r.value,
                             r.chain_value, r.chain_ts, r.decision, r.reason));
    // No policy decision: ganache did not answer within rpc_timeout (2 s) while the other tests
    // loaded both cores (seen once in CI-like runs, at the first transaction). The next round is
    // decided again; more than one such round is a failure below.
    if (r.decision == "failed" && r.reason.find("no RPC endpoint answered") != std::string::npos) {
      ++unanswered;
      continue;
    }
    if (r.chain_value.empty()) {
      EXPECT_EQ(r.decision, "submit");
      continue;
    }
    const double v = std::stod(r.value), c = std::stod(r.chain_value);
    std::string expected;
    if (r.slot_ms <= r.chain_ts) {
      expected = "superseded";
    } else if (std::abs(v - c) * 100 >= 0.5 * std::abs(c) - 1e-9) {
      expected = "submit";
      EXPECT_TRUE(r.reason.starts_with("deviation"));
      ++by_deviation;
    } else if (r.slot_ms - r.chain_ts >= 3000) {
      expected = "submit";
      EXPECT_TRUE(r.reason.starts_with("heartbeat"));
      ++by_heartbeat;
    } else {
      expected = "skip";
      ++skips;
    }
    EXPECT_EQ(r.decision, expected);
    if (r.decision == "submit") {
      ++submits;
      EXPECT_FALSE(r.tx.empty());
    }
  }
  EXPECT_LE(unanswered, 1);
  EXPECT_GT(submits, 5);
  EXPECT_GT(skips, 3);
  // Values span 1.5 % (100000..101500), so about 4 in 10 deviate 0.5 % from the chain's value;
  // with a 0.9 % span a 30-decision run had 2 or fewer 1 time in 11.
  EXPECT_GT(by_deviation, 2);

  // The chain: Observed events with strictly increasing rounds, each equal to a stored record.
  CommandResult values = run({"--config", "metronome.toml", "values", "--feed", "eth_usd",
                              "--limit", "1000", "--format", "json"},
                             dir.path());
  ASSERT_EQ(values.exit_code, 0) << values.err;
  nlohmann::json stored = json_of(values);
  std::map<int64_t, nlohmann::json> by_round;
  for (const auto& v : stored) {
    const nlohmann::json& r = v.at("round");
    by_round[r.is_string() ? std::stoll(r.get<std::string>()) : r.get<int64_t>()] = v;
  }
  nlohmann::json logs = ganache.rpc(
      "eth_getLogs", {{{"address", contract}, {"fromBlock", "0x0"}, {"toBlock", "latest"}}});
  ASSERT_TRUE(logs.is_array());
  // Observed(bytes32 indexed, uint64, uint64, int256, address): topic0 is its keccak.
  int observed = 0;
  int64_t last_round = -1;
  for (const auto& log : logs) {
    const std::string data = log.at("data").get<std::string>();
    // keccak256("Observed(bytes32,uint64,uint64,int256,address)"), from ethers.id().
    if (log.at("topics")[0] !=
        "0x6bd2b29003efdee120232087df65d0802ae4676405ffadca1fa0e30d0e2e83ad") {
      continue;
    }
    // The signer (last word) is the feed's key: 0x2c7536E3605D9C16a7a3D7b1898e529396a65c23.
    EXPECT_EQ(data.substr(2 + 64 * 3 + 24), "2c7536e3605d9c16a7a3d7b1898e529396a65c23");
    const int64_t round = static_cast<int64_t>(std::stoull(data.substr(2, 64), nullptr, 16));
    const int64_t ts = static_cast<int64_t>(std::stoull(data.substr(2 + 64, 64), nullptr, 16));
    EXPECT_GT(round, last_round);
    last_round = round;
    ++observed;
    ASSERT_TRUE(by_round.contains(round)) << "on-chain round " << round << " is not stored";
    const nlohmann::json& rec = by_round[round];
    const std::string value = rec.at("value").get<std::string>();
    const int64_t scaled = static_cast<int64_t>(std::llround(std::stod(value) * 100));
    EXPECT_EQ(static_cast<int64_t>(std::stoull(data.substr(2 + 128, 64), nullptr, 16)), scaled);
    (void)ts;
  }
  EXPECT_GT(observed, 5);

  // latestRoundData equals the newest submitted record.
  int64_t newest_submitted = -1;
  for (const DecisionRow& r : rows) {
    if (r.decision == "submit") newest_submitted = std::max(newest_submitted, r.round);
  }
  EXPECT_EQ(last_round, newest_submitted);
  // latestRoundData(keccak256("eth_usd")) (selector and id from ethers.id()): roundId, answer,
  // startedAt (observation time, s) equal the newest submitted record.
  nlohmann::json rd = ganache.rpc(
      "eth_call",
      {{{"to", contract},
        {"data", "0x427aac35ff6133c5a6ad6449e6c69144a082a7a5a5bc5764a75ee67f65534a39ebf6e938"}},
       "latest"});
  ASSERT_TRUE(rd.is_string());
  const std::string words = rd.get<std::string>().substr(2);
  ASSERT_EQ(words.size(), 64u * 5);
  EXPECT_EQ(static_cast<int64_t>(std::stoull(words.substr(0, 64), nullptr, 16)), newest_submitted);
  ASSERT_TRUE(by_round.contains(newest_submitted));
  const nlohmann::json& newest = by_round[newest_submitted];
  EXPECT_EQ(
      static_cast<int64_t>(std::stoull(words.substr(64, 64), nullptr, 16)),
      static_cast<int64_t>(std::llround(std::stod(newest.at("value").get<std::string>()) * 100)));

  // No nonce gap and no round twice: every sender transaction is deploy, setSigner,
  // configureFeed or one Observed event (a duplicate round would revert and use a nonce).
  nlohmann::json accounts = ganache.rpc("eth_accounts", nlohmann::json::array());
  ASSERT_TRUE(accounts.is_array() && !accounts.empty());
  const std::string sender = accounts[0].get<std::string>();
  const uint64_t mined = q(ganache.rpc("eth_getTransactionCount", {sender, "latest"}));
  const uint64_t pending = q(ganache.rpc("eth_getTransactionCount", {sender, "pending"}));
  EXPECT_EQ(pending, mined);
  EXPECT_EQ(mined, static_cast<uint64_t>(observed) + 3);

  // Failover happened (the dead and hanging URLs are first).
  CommandResult status = run({"--config", "metronome.toml", "evm", "status"}, dir.path(), 30s);
  ASSERT_EQ(status.exit_code, 0) << status.err;
  nlohmann::json st = nlohmann::json::parse(status.out);
  EXPECT_EQ(st.at("rpc_url").get<std::string>(), ganache.url());
  EXPECT_EQ(st.at("onchain_round").get<int64_t>(), last_round);
  EXPECT_GT(st.at("balance_eth").get<double>(), 900.0);
  (void)kSenderAddress;

  // The backup copies evm.db (the nonces) beside the two store files, consistent.
  CommandResult backup =
      run({"--config", "metronome.toml", "backup", "--out", "backup/copy.db"}, dir.path());
  ASSERT_EQ(backup.exit_code, 0) << backup.err;
  EXPECT_EQ(decisions(dir / "backup/copy.evm.db").size(), decisions(dir / "var/evm.db").size());
}

// onchain_stale: ganache stops mining (miner_stop), so the submitted values stay unmined and the
// chain's value ages past heartbeat (1 s) + stale_grace (5 s): ALARM, the staleness and pending
// age gauges growing; mining resumes (miner_start): the pending value is mined, OK again.
TEST(EvmIntegrationTest, OnchainStaleAlarmWhenMiningStopsAndOkWhenItResumes) {
  ASSERT_TRUE(std::filesystem::exists(source_dir() + "/node_modules/ganache/package.json"))
      << "ganache is not installed; run scripts/setup.sh --test";
  TempDir dir("evm_stale");
  write_keys(dir);
  Ganache ganache(free_port());
  ganache.start();
  const std::string urls = fmt::format(R"("{}")", ganache.url());
  // A high fee cap: values replace the unmined transaction every slot while mining is stopped.
  const std::string tuning = R"(heartbeat = "1s"
stale_grace = "5s"
max_fee_gwei = "1000")";
  dir.write("metronome.toml", config_text(urls, "", tuning));
  CommandResult deploy = run({"--config", "metronome.toml", "evm", "deploy"}, dir.path(), 60s);
  ASSERT_EQ(deploy.exit_code, 0) << deploy.out << deploy.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(deploy.out, m, std::regex("contract (0x[0-9a-fA-F]{40})")))
      << deploy.out;
  dir.write("metronome.toml", config_text(urls, m[1], tuning));

  Daemon daemon(dir.path(), {"--config", "metronome.toml"});
  daemon.start();
  ASSERT_TRUE(daemon.wait_for_log("evm sink ready", 30s)) << daemon.log();
  // The sink is ready while the daemon is created, before the API listens.
  ASSERT_TRUE(daemon.wait_for_log("API listening", 10s)) << daemon.log();
  const int port = api_port(daemon);
  ASSERT_GT(port, 0) << daemon.log();
  // The chain has the feed's value (the gauge appears with the first evaluation that sees it).
  bool fresh = false;
  for (int i = 0; i < 200 && !fresh; ++i) {
    auto metrics = scrape(port);
    fresh = metrics.contains(kStaleness) && metrics[kStaleness] < 6;
    if (!fresh) sleep_ms(100);
  }
  ASSERT_TRUE(fresh) << daemon.log();
  EXPECT_EQ(daemon.log().find("alarm onchain_stale: OK -> ALARM"), std::string::npos);

  ASSERT_EQ(ganache.rpc("miner_stop", nlohmann::json::array()), true);
  ASSERT_TRUE(daemon.wait_for_log("alarm onchain_stale: OK -> ALARM", 20s)) << daemon.log();
  auto stale = scrape(port);
  EXPECT_GT(stale[kStaleness], 6);  // the evaluation that raised the alarm set the gauges
  EXPECT_GT(stale[kPendingAge], 0);

  ASSERT_EQ(ganache.rpc("miner_start", nlohmann::json::array()), true);
  ASSERT_TRUE(daemon.wait_for_log("alarm onchain_stale: ALARM -> OK", 15s)) << daemon.log();
  EXPECT_LT(scrape(port)[kStaleness], 6);
  EXPECT_EQ(daemon.stop(), 0) << daemon.log();
}

}  // namespace
}  // namespace metronome::itest
