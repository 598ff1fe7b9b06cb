// Whole-daemon tests: the real binary, real time, real SQLite files. Kept few and short (100 ms
// slots); the logic is covered by unit tests on the ManualClock.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <set>
#include <sstream>

#include "support/harness.h"

namespace metronome::itest {
namespace {

using namespace std::chrono_literals;

std::string config_100ms(const std::string& extra_alarms = "", const std::string& window = "1s") {
  return R"(
[service]
data_dir = "var"
listen = "127.0.0.1:0"
log_level = "info"
[store]
path = "var/metronome.db"
[secrets.oracle_key]
file = "secrets/oracle_key"
[[feeds]]
id = "fast"
every = "100ms"
window = ")" +
         window + R"("
retries = 2
secret = "oracle_key"
source = { kind = "random_int", min = 0, max = 1000 }
[alarms]
dlq_depth = 1
missed_slots = 1
missed_window = "10m"
)" + extra_alarms;
}

void write_secret(const TempDir& dir) {
  dir.write("secrets/oracle_key", std::string(64, 'a') + "\n");
  chmod((dir / "secrets/oracle_key").c_str(), 0600);
}

// All slots of all executions, oldest first, as (slot_ms, slot json).
std::vector<nlohmann::json> all_slots(const TempDir& dir) {
  auto r = run({"--config", "metronome.toml", "executions", "--limit", "10000", "--format", "json"},
               dir.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::vector<nlohmann::json> slots;
  auto executions = json_of(r);
  for (auto it = executions.rbegin(); it != executions.rend(); ++it) {
    for (const auto& s : (*it)["slots"]) slots.push_back(s);
  }
  std::sort(slots.begin(), slots.end(), [](const auto& a, const auto& b) {
    return std::stoll(a["slot_ms"].template get<std::string>()) <
           std::stoll(b["slot_ms"].template get<std::string>());
  });
  return slots;
}

nlohmann::json values(const TempDir& dir) {
  auto r = run({"--config", "metronome.toml", "values", "--limit", "100000", "--format", "json"},
               dir.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return json_of(r);
}

int64_t slot_ms(const nlohmann::json& j) {
  return std::stoll(j["slot_ms"].get<std::string>());
}

TEST(Daemon, HundredMillisecondFeedPublishesEverySlotOnceInOrderNeverEarly) {
  TempDir dir("fast");
  dir.write("metronome.toml", config_100ms());
  write_secret(dir);
  Daemon d(dir.path(), {"--config", "metronome.toml"});
  d.start();
  ASSERT_TRUE(d.wait_for_log("metronome running", 10s)) << d.log();
  sleep_ms(3000);
  EXPECT_EQ(d.stop(SIGTERM), 0) << d.log();

  auto vals = values(dir);
  ASSERT_GE(vals.size(), 25u) << d.log();
  std::set<int64_t> seen;
  for (const auto& v : vals) {
    EXPECT_TRUE(seen.insert(slot_ms(v)).second) << "published twice: " << v.dump();
    EXPECT_EQ(slot_ms(v) % 100, 0);
    EXPECT_EQ(std::stoll(v["round"].get<std::string>()), slot_ms(v) / 100);
  }
  // Newest first, contiguous: every slot between the first and the last has its value.
  EXPECT_EQ(static_cast<int64_t>(vals.size()), (*seen.rbegin() - *seen.begin()) / 100 + 1);
  for (size_t i = 1; i < vals.size(); ++i) EXPECT_GT(slot_ms(vals[i - 1]), slot_ms(vals[i]));

  int published = 0;
  for (const auto& s : all_slots(dir)) {
    if (s["outcome"] != "published") continue;
    ++published;
    EXPECT_GE(s["lateness_us"].get<int64_t>(), 0) << s.dump();  // fired_at >= slot
  }
  EXPECT_EQ(published, static_cast<int>(vals.size()));
}

TEST(Daemon, Kill9MidWindowThenRestartRecordsTheGapAsMissedAndPublishesNothingTwice) {
  TempDir dir("kill9");
  dir.write("metronome.toml", config_100ms());
  write_secret(dir);
  Daemon d(dir.path(), {"--config", "metronome.toml"});
  d.start();
  ASSERT_TRUE(d.wait_for_log("metronome running", 10s)) << d.log();
  sleep_ms(1000);
  d.kill9();
  auto before = values(dir);
  sleep_ms(700);  // about 7 slots pass with nobody running
  d.start();
  ASSERT_TRUE(d.wait_for_log("slots missed while the daemon was not running", 10s)) << d.log();
  sleep_ms(1000);
  EXPECT_EQ(d.stop(SIGTERM), 0);

  auto after = values(dir);
  std::set<int64_t> seen;
  for (const auto& v : after) EXPECT_TRUE(seen.insert(slot_ms(v)).second) << v.dump();
  // What was published before the crash is unchanged.
  for (const auto& v : before) {
    auto it = std::find_if(after.begin(), after.end(),
                           [&](const auto& a) { return slot_ms(a) == slot_ms(v); });
    ASSERT_NE(it, after.end());
    EXPECT_EQ((*it)["value"], v["value"]);
  }
  // Every slot from the first to the last has exactly one outcome; the gap is missed.
  auto slots = all_slots(dir);
  int missed = 0;
  int64_t first = slot_ms(slots.front()), last = -1;
  std::set<int64_t> slot_set;
  for (const auto& s : slots) {
    if (s["outcome"] == "planned") continue;
    EXPECT_TRUE(slot_set.insert(slot_ms(s)).second);
    last = slot_ms(s);
    if (s["outcome"] == "missed") {
      ++missed;
      EXPECT_FALSE(seen.count(slot_ms(s))) << "a missed slot has a value";
    } else {
      EXPECT_EQ(s["outcome"], "published") << s.dump();
    }
  }
  EXPECT_GE(missed, 4);
  EXPECT_EQ(static_cast<int64_t>(slot_set.size()), (last - first) / 100 + 1)
      << "a slot without any outcome";
  // Publishing resumed after the gap.
  EXPECT_GT(*seen.rbegin(), slot_ms(before.front()) + 700);
}

TEST(Daemon, SigtermExitsZeroWithTheExecutionInterrupted) {
  TempDir dir("sigterm");
  // A one-minute window, so the signal lands inside a window, not between two.
  dir.write("metronome.toml", config_100ms("", "1m"));
  write_secret(dir);
  Daemon d(dir.path(), {"--config", "metronome.toml"});
  d.start();
  ASSERT_TRUE(d.wait_for_log("published", 10s)) << d.log();
  sleep_ms(250);
  EXPECT_EQ(d.stop(SIGTERM), 0) << d.log();
  auto r = run({"--config", "metronome.toml", "executions", "--limit", "100", "--format", "json"},
               dir.path());
  auto executions = json_of(r);
  ASSERT_FALSE(executions.empty());
  int interrupted = 0;
  for (const auto& e : executions) interrupted += e["state"] == "interrupted";
  EXPECT_EQ(interrupted, 1) << r.out;
}

TEST(Daemon, JsonLogsAreOneObjectPerLine) {
  TempDir dir("jsonlog");
  std::string config = config_100ms();
  config.replace(config.find("log_level = \"info\""), 18, "log_format = \"json\"");
  dir.write("metronome.toml", config);
  write_secret(dir);
  Daemon d(dir.path(), {"--config", "metronome.toml"});
  d.start();
  ASSERT_TRUE(d.wait_for_log("published feed=fast", 10s)) << d.log();
  EXPECT_EQ(d.stop(SIGTERM), 0);
  std::istringstream lines(d.log());
  int n = 0;
  for (std::string line; std::getline(lines, line); ++n) {
    auto j = nlohmann::json::parse(line);  // throws (and fails the test) on a non-JSON line
    EXPECT_TRUE(j.contains("time") && j.contains("level") && j.contains("msg")) << line;
  }
  EXPECT_GT(n, 3);
}

TEST(Daemon, BadConfigExitsTwoNamingFileLineAndKey) {
  TempDir dir("badconfig");
  dir.write("metronome.toml", "[[feeds]]\nid = \"x\"\nevery = \"2x\"\n");
  auto r = run({"run", "--config", "metronome.toml"}, dir.path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("metronome.toml:3"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("every"), std::string::npos) << r.err;
}

TEST(Daemon, TooOpenSecretFileIsRefusedNamingFileAndMode) {
  TempDir dir("openkey");
  dir.write("metronome.toml", config_100ms());
  dir.write("secrets/oracle_key", std::string(64, 'b'));
  chmod((dir / "secrets/oracle_key").c_str(), 0644);
  auto r = run({"run", "--config", "metronome.toml"}, dir.path(), 20s);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("oracle_key"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("0644"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(std::string(64, 'b')), std::string::npos) << "the secret leaked";
}

TEST(Daemon, DefaultConfigCreatesItsSecretAndPlansTheNextMinute) {
  TempDir dir("default");
  auto plan = run({"plan"}, dir.path());
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  auto p = json_of(plan);
  EXPECT_EQ(p["feed"], "random_int");
  ASSERT_EQ(p["invocation_times"].size(), 30u);
  EXPECT_EQ(p["invocation_times"][0], p["next_minute"]);
  std::string t = p["next_minute"];
  EXPECT_EQ(t.substr(t.size() - 4), ":00Z") << t;

  Daemon d(dir.path(), {});
  d.start();
  ASSERT_TRUE(d.wait_for_log("metronome running", 10s)) << d.log();
  EXPECT_EQ(d.stop(SIGTERM), 0);
  struct stat st {};
  ASSERT_EQ(stat((dir / "var/secrets/oracle_key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat((dir / "var/secrets").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  std::string key = dir.read("var/secrets/oracle_key");
  EXPECT_EQ(d.log().find(key.substr(0, 64)), std::string::npos) << "the secret was logged";
}

TEST(Daemon, UnwritableDatabaseFailsSlotsIntoTheDlqAlarmsOnceAndRedriveEmptiesIt) {
  TempDir dir("readonly");
  if (!can_make_immutable(dir.path())) {
    GTEST_SKIP() << "needs root with CAP_LINUX_IMMUTABLE (chattr +i) to make the database "
                    "unwritable under a running daemon; CI runs as root";
  }
  std::string alarm_cmd = R"(command = ["/bin/sh", "-c", "cat >> )" +
                          (dir / "alarms.log").string() + R"(; echo >> )" +
                          (dir / "alarms.log").string() + R"("]
)";
  dir.write("metronome.toml", config_100ms(alarm_cmd));
  write_secret(dir);
  Daemon d(dir.path(), {"--config", "metronome.toml"});
  d.start();
  ASSERT_TRUE(d.wait_for_log("published", 10s)) << d.log();
  sleep_ms(300);

  set_immutable(dir / "var/metronome.db", true);
  set_immutable(dir / "var/metronome.db-wal", true);
  ASSERT_TRUE(d.wait_for_log("failed feed=fast", 10s)) << d.log();
  sleep_ms(1000);
  set_immutable(dir / "var/metronome.db", false);
  set_immutable(dir / "var/metronome.db-wal", false);
  sleep_ms(500);

  auto dlq = run({"--config", "metronome.toml", "dlq", "list", "--format", "json"}, dir.path());
  ASSERT_EQ(dlq.exit_code, 0) << dlq.err;
  auto messages = json_of(dlq);
  ASSERT_GE(messages.size(), 3u) << d.log();
  int with_record = 0;
  for (const auto& m : messages) with_record += !m["record"].is_null();
  EXPECT_GE(with_record, 3);

  auto redrive = run({"--config", "metronome.toml", "dlq", "redrive", "--all"}, dir.path());
  EXPECT_EQ(redrive.exit_code, 0) << redrive.out << redrive.err;
  auto after =
      json_of(run({"--config", "metronome.toml", "dlq", "list", "--format", "json"}, dir.path()));
  EXPECT_TRUE(after.empty()) << after.dump();
  sleep_ms(300);
  EXPECT_EQ(d.stop(SIGTERM), 0);

  // Every redriven record is now a value, exactly once, with the value first observed.
  auto vals = values(dir);
  std::set<int64_t> seen;
  for (const auto& v : vals) EXPECT_TRUE(seen.insert(slot_ms(v)).second);
  for (const auto& m : messages) {
    if (m["record"].is_null()) continue;
    auto it = std::find_if(vals.begin(), vals.end(),
                           [&](const auto& v) { return v["slot"] == m["record"]["slot"]; });
    ASSERT_NE(it, vals.end()) << m.dump();
    EXPECT_EQ((*it)["value"], m["record"]["value"]);
  }
  // The dlq_not_empty ALARM transition ran the command exactly once, however many slots failed.
  int dlq_alarm = 0, dlq_ok = 0;
  std::istringstream lines(dir.read("alarms.log"));
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) continue;
    auto event = nlohmann::json::parse(line);
    if (event["alarm"] != "dlq_not_empty") continue;
    dlq_alarm += event["state"] == "ALARM";
    dlq_ok += event["state"] == "OK";
  }
  EXPECT_EQ(dlq_alarm, 1) << dir.read("alarms.log");
  EXPECT_EQ(dlq_ok, 1) << "the OK transition fires once, at the latest when the daemon stops";
}

}  // namespace
}  // namespace metronome::itest
