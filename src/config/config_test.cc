#include "config/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>
#include <string>

namespace metronome {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Each test gets its own temporary directory, removed afterwards.
class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "metronome_config_test_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write(const fs::path& name, std::string_view text) {
    fs::path p = dir_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p;
  }

  Config load_ok(std::string_view text) {
    fs::path p = write("m.toml", text);
    Result<Config> c = load_config(p);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? *c : Config{};
  }

  // Loads `text` from a file and expects InvalidArgument starting with "FILE:LINE: KEY: " and
  // containing `what`.
  void expect_error(std::string_view text, int line, std::string_view key,
                    std::string_view what = "") {
    fs::path p = write("m.toml", text);
    Result<Config> c = load_config(p);
    ASSERT_FALSE(c.ok()) << "accepted:\n" << text;
    EXPECT_EQ(c.status().code(), Status::Code::kInvalidArgument);
    EXPECT_THAT(c.status().message(), StartsWith(fmt::format("{}:{}: {}: ", p.string(), line, key)))
        << text;
    EXPECT_THAT(c.status().message(), HasSubstr(what));
  }

  fs::path dir_;
};

constexpr std::string_view kFeed = "[[feeds]]\nid = \"a\"\n";

TEST_F(ConfigTest, SyntaxErrorNamesFileAndLine) {
  expect_error("[service]\nlisten = \"127.0.0.1:1\"\nlog_level = \n", 3, "syntax error");
  expect_error("[[feeds]]\nid = \"a\"\n[service\n", 3, "syntax error");
}

TEST_F(ConfigTest, UnknownKeysAreErrors) {
  expect_error("[servce]\n", 1, "servce", "unknown key");
  expect_error("[service]\nlisten = \"127.0.0.1:1\"\nlsten = \"x\"\n", 3, "service.lsten",
               "unknown key (expected one of: data_dir, listen, log_level, log_format, chain_id, "
               "admin_token_secret, realtime, presign, sign_batch)");
  expect_error("[store]\nkind = \"sqlite\"\nfile = \"x\"\n", 3, "store.file");
  expect_error("[secrets.k]\nfile = \"k\"\npath = \"x\"\n", 3, "secrets.k.path");
  expect_error("[[feeds]]\nid = \"a\"\nevry = \"2s\"\n", 3, "feeds[0].evry");
  expect_error("[[feeds]]\nid = \"a\"\nsource = { kind = \"random_int\", mn = 1 }\n", 3,
               "feeds[0].source.mn");
  expect_error("[[feeds]]\nid = \"a\"\n[feeds.source]\nkind = \"random_int\"\n\nmaxx = 3\n", 6,
               "feeds[0].source.maxx");
  expect_error(std::string(kFeed) + "[alarms]\ndlq_deph = 1\n", 4, "alarms.dlq_deph");
}

TEST_F(ConfigTest, WrongTypes) {
  expect_error("[[feeds]]\nid = \"a\"\nretries = \"3\"\n", 3, "feeds[0].retries",
               "expected an integer, got a string");
  expect_error("[[feeds]]\nid = 7\n", 2, "feeds[0].id", "expected a string, got an integer");
  expect_error("service = 3\n", 1, "service", "expected a table");
  expect_error("[[feeds]]\nid = \"a\"\nevery = 2\n", 3, "feeds[0].every",
               "expected a duration string");
  expect_error("[[feeds]]\nid = \"a\"\nsource = 5\n", 3, "feeds[0].source", "expected a table");
  expect_error("feeds = 1\n", 1, "feeds", "expected an array of tables");
  expect_error(std::string(kFeed) + "[alarms]\ncommand = \"/bin/true\"\n", 4, "alarms.command",
               "expected an array");
  expect_error(std::string(kFeed) + "[alarms]\ncommand = [\"/bin/echo\", 3]\n", 4,
               "alarms.command[1]", "expected a string");
}

TEST_F(ConfigTest, BadDurations) {
  expect_error("[[feeds]]\nid = \"a\"\nevery = \"2x\"\n", 3, "feeds[0].every",
               "invalid duration '2x' (unknown unit 'x')");
  expect_error("[[feeds]]\nid = \"a\"\nwindow = \"\"\n", 3, "feeds[0].window", "empty");
  expect_error("[[feeds]]\nid = \"a\"\nevery = \"1500us\"\n", 3, "feeds[0].every",
               "whole number of milliseconds");
  expect_error("[[feeds]]\nid = \"a\"\ndeadline = \"0s\"\n", 3, "feeds[0].deadline",
               "greater than 0");
  expect_error(std::string(kFeed) + "[alarms]\nmissed_window = \"10 m\"\n", 4,
               "alarms.missed_window", "invalid duration");
}

TEST_F(ConfigTest, IntervalUnderTenMilliseconds) {
  expect_error("[[feeds]]\nid = \"a\"\nevery = \"5ms\"\nwindow = \"10ms\"\n", 3, "feeds[0].every",
               "under the minimum of 10ms");
  Config c = load_ok("[[feeds]]\nid = \"a\"\nevery = \"10ms\"\n");
  EXPECT_EQ(c.feeds[0].schedule.interval(), Millis(10));
}

TEST_F(ConfigTest, WindowMustBeAMultipleOfTheInterval) {
  expect_error("[[feeds]]\nid = \"a\"\nevery = \"7s\"\nwindow = \"1m\"\n", 4, "feeds[0].window",
               "window 1m is not a multiple of the interval 7s");
  // The default window names the feed's table line, and says it is the default.
  expect_error("\n[[feeds]]\nid = \"a\"\nevery = \"7s\"\n", 2, "feeds[0].window",
               "window 1m (the default) is not a multiple");
  expect_error("[[feeds]]\nid = \"a\"\ncron = \"* * * * * *\"\nwindow = \"1500ms\"\n", 4,
               "feeds[0].window", "whole number of seconds");
}

TEST_F(ConfigTest, DeadlineLongerThanWindow) {
  expect_error("[[feeds]]\nid = \"a\"\nevery = \"1s\"\nwindow = \"2s\"\ndeadline = \"3s\"\n", 5,
               "feeds[0].deadline", "longer than the window");
}

TEST_F(ConfigTest, ObserveLeadMustBeShorterThanTheInterval) {
  expect_error("[[feeds]]\nid = \"a\"\nevery = \"1s\"\nobserve_lead = \"1s\"\n", 4,
               "feeds[0].observe_lead", "observe_lead 1s must be shorter than the interval 1s");
  expect_error("[[feeds]]\nid = \"a\"\nobserve_lead = 150\n", 3, "feeds[0].observe_lead",
               "expected a duration string");
  Config c = load_ok("[[feeds]]\nid = \"a\"\nevery = \"1s\"\nobserve_lead = \"150ms\"\n");
  EXPECT_EQ(c.feeds[0].observe_lead, Millis(150));
  EXPECT_EQ(load_ok(std::string(kFeed)).feeds[0].observe_lead, Millis(0));
}

TEST_F(ConfigTest, RealtimeIsABoolean) {
  expect_error("[service]\nrealtime = \"yes\"\n", 2, "service.realtime",
               "expected true or false, got a string");
  EXPECT_TRUE(load_ok("[service]\nrealtime = true\n" + std::string(kFeed)).service.realtime);
  EXPECT_FALSE(load_ok(std::string(kFeed)).service.realtime);
}

TEST_F(ConfigTest, PresignIsACountOffByDefault) {
  EXPECT_EQ(load_ok(std::string(kFeed)).service.presign, 0u);
  Config c = load_ok("[service]\npresign = 20000\n" + std::string(kFeed));
  EXPECT_EQ(c.service.presign, 20000u);
  EXPECT_THAT(dump_config(c), HasSubstr("presign = 20000\n"));
  expect_error("[service]\npresign = -1\n", 2, "service.presign", "-1 is out of range 0..1000000");
  expect_error("[service]\npresign = 2000000\n", 2, "service.presign", "out of range");
  expect_error("[service]\npresign = true\n", 2, "service.presign",
               "expected an integer, got a boolean");
}

TEST_F(ConfigTest, SignBatchIsOneByDefaultAndAtMost64) {
  EXPECT_EQ(load_ok(std::string(kFeed)).service.sign_batch, 1u);
  EXPECT_THAT(dump_config(load_ok(std::string(kFeed))), HasSubstr("sign_batch = 1\n"));
  Config c = load_ok("[service]\nsign_batch = 64\n" + std::string(kFeed));
  EXPECT_EQ(c.service.sign_batch, 64u);
  EXPECT_THAT(dump_config(c), HasSubstr("sign_batch = 64\n"));
  expect_error("[service]\nsign_batch = 0\n", 2, "service.sign_batch", "0 is out of range 1..64");
  expect_error("[service]\nsign_batch = 65\n", 2, "service.sign_batch", "65 is out of range 1..64");
  expect_error("[service]\nsign_batch = \"64\"\n", 2, "service.sign_batch",
               "expected an integer, got a string");
}

TEST_F(ConfigTest, MinGreaterThanMax) {
  expect_error("[[feeds]]\nid = \"a\"\nsource = { kind = \"random_int\", min = 10, max = 5 }\n", 3,
               "feeds[0].source.min", "min 10 is greater than max 5");
  expect_error("[[feeds]]\nid = \"a\"\nsource = { max = -1 }\n", 3, "feeds[0].source.min",
               "min 0 is greater than max -1");
}

TEST_F(ConfigTest, UnknownSourceKind) {
  expect_error("[[feeds]]\nid = \"a\"\nsource = { kind = \"coin\" }\n", 3, "feeds[0].source.kind",
               "unknown source kind 'coin'");
}

TEST_F(ConfigTest, FeedIds) {
  expect_error("[[feeds]]\nid = \"a\"\n[[feeds]]\nid = \"b\"\n[[feeds]]\nid = \"a\"\n", 6,
               "feeds[2].id", "duplicate feed id 'a' (also feeds[0])");
  expect_error("[[feeds]]\nid = \"a b\"\n", 2, "feeds[0].id", "invalid feed id");
  expect_error("[[feeds]]\nid = \"\"\n", 2, "feeds[0].id", "invalid feed id");
  expect_error(fmt::format("[[feeds]]\nid = \"{}\"\n", std::string(65, 'x')), 2, "feeds[0].id");
  expect_error("[[feeds]]\nid = \"a\"\n[[feeds]]\nevery = \"1s\"\n", 3, "feeds[1].id", "missing");
}

TEST_F(ConfigTest, UnknownSecret) {
  expect_error("[secrets.k]\nenv = \"K\"\n[[feeds]]\nid = \"a\"\nsecret = \"oracle_key\"\n", 5,
               "feeds[0].secret", "unknown secret 'oracle_key' (configured: k)");
}

TEST_F(ConfigTest, BadCronUsesTheCronMessage) {
  Result<CronExpr> expected = CronExpr::parse("*/0 * * * * *");
  ASSERT_FALSE(expected.ok());
  expect_error("[[feeds]]\nid = \"a\"\ncron = \"*/0 * * * * *\"\n", 3, "feeds[0].cron",
               expected.status().message());
  expect_error("[[feeds]]\nid = \"a\"\nevery = \"1s\"\ncron = \"* * * * * *\"\n", 4,
               "feeds[0].cron", "exactly one of 'every' or 'cron'");
}

TEST_F(ConfigTest, SecretNeedsExactlyOneOfFileAndEnv) {
  expect_error("[secrets.k]\nfile = \"k\"\nenv = \"K\"\n", 1, "secrets.k",
               "set exactly one of 'file', 'env' or 'aws_secrets_manager' (got several)");
  expect_error("[[feeds]]\nid = \"a\"\n\n[secrets.k]\n", 4, "secrets.k", "(got none)");
  expect_error("[secrets.k]\nenv = \"\"\n", 2, "secrets.k.env", "must not be empty");
  expect_error("[secrets]\nk = \"x\"\n", 2, "secrets.k", "expected a table");
}

TEST_F(ConfigTest, NoFeedsConfigured) {
  expect_error("[service]\nlog_level = \"debug\"\n", 1, "feeds", "no feeds configured");
  expect_error("", 1, "feeds", "no feeds configured");
  expect_error("\nfeeds = []\n", 2, "feeds", "no feeds configured");
}

TEST_F(ConfigTest, ServiceValues) {
  expect_error("[service]\nlog_level = \"verbose\"\n", 2, "service.log_level",
               "unknown level 'verbose'");
  expect_error("[service]\nlog_format = \"xml\"\n", 2, "service.log_format",
               "unknown format 'xml'");
  expect_error("[service]\nlisten = \"localhost\"\n", 2, "service.listen", "expected host:port");
  expect_error("[service]\nlisten = \"localhost:65536\"\n", 2, "service.listen",
               "port '65536' is not a number in 0..65535");
  expect_error("[service]\nlisten = \"localhost:\"\n", 2, "service.listen", "port ''");
  expect_error("[service]\nlisten = \":80\"\n", 2, "service.listen", "missing host");
  expect_error("[service]\nlisten = \"::1:80\"\n", 2, "service.listen", "brackets");
  expect_error("[service]\ndata_dir = \"\"\n", 2, "service.data_dir", "must not be empty");
  Config c = load_ok(std::string("[service]\nlisten = \"[::1]:0\"\n") + std::string(kFeed));
  EXPECT_EQ(c.service.listen, "[::1]:0");
}

TEST_F(ConfigTest, StoreKinds) {
  expect_error("[store]\nkind = \"mysql\"\n", 2, "store.kind",
               "unsupported store kind 'mysql' (supported: sqlite, postgres)");
  expect_error("[store]\npath = \"a.db\"\ndlq_path = \"a.db\"\n", 3, "store.dlq_path",
               "must differ");
  expect_error("[store]\nkind = \"postgres\"\n", 1, "store.url", "needs url");
  expect_error("[store]\nkind = \"postgres\"\nurl = \"mysql://h/d\"\n", 3, "store.url",
               "must be a PostgreSQL URL");
  expect_error("[store]\nkind = \"postgres\"\nurl = \"postgresql://h/d\"\npath = \"a.db\"\n", 4,
               "store.path", "not a setting of store kind 'postgres'");
  expect_error("[store]\nurl = \"postgresql://h/d\"\n", 2, "store.url",
               "not a setting of store kind 'sqlite'");
  expect_error(std::string("[store]\nkind = \"postgres\"\nurl = \"postgresql://h/d\"\n"
                           "password_secret = \"pg\"\n") +
                   std::string(kFeed),
               4, "store.password_secret", "unknown secret 'pg'");

  Config c = load_ok(
      std::string("[store]\nkind = \"postgres\"\n"
                  "url = \"postgresql://oracle:inline@db:5432/m?sslmode=require&password=q\"\n"
                  "password_secret = \"pg\"\n[secrets.pg]\nenv = \"PGPASS\"\n") +
      std::string(kFeed));
  EXPECT_EQ(c.store.kind, "postgres");
  EXPECT_EQ(c.store.url, "postgresql://oracle:inline@db:5432/m?sslmode=require&password=q");
  EXPECT_EQ(c.store.password_secret, SecretName("pg"));
  // The dump never shows a password, and still parses.
  std::string dumped = dump_config(c);
  EXPECT_THAT(dumped, HasSubstr("url = \"postgresql://oracle:REDACTED@db:5432/"
                                "m?sslmode=require&password=REDACTED\"\n"));
  EXPECT_THAT(dumped, ::testing::Not(HasSubstr("inline")));
  EXPECT_THAT(dumped, HasSubstr("password_secret = \"pg\"\n"));
  Result<Config> again = parse_config(dumped, c.file);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->store.password_secret, SecretName("pg"));
  EXPECT_EQ(again->store.lease_ttl, Millis(2000));
  EXPECT_EQ(again->store.lease_renew, Millis(500));
  EXPECT_EQ(again->store.max_clock_skew, Millis(50));
}

TEST_F(ConfigTest, LeaseSettings) {
  const std::string pg = "[store]\nkind = \"postgres\"\nurl = \"postgresql://h/d\"\n";
  Config c =
      load_ok(pg + "lease_ttl = \"3s\"\nlease_renew = \"250ms\"\nmax_clock_skew = \"20ms\"\n" +
              std::string(kFeed));
  EXPECT_EQ(c.store.lease_ttl, Millis(3000));
  EXPECT_EQ(c.store.lease_renew, Millis(250));
  EXPECT_EQ(c.store.max_clock_skew, Millis(20));
  std::string dumped = dump_config(c);
  EXPECT_THAT(dumped, HasSubstr("lease_ttl = \"3s\"\n"));
  Result<Config> again = parse_config(dumped, c.file);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->store.lease_renew, Millis(250));

  expect_error("[store]\nlease_ttl = \"2s\"\n", 2, "store.lease_ttl",
               "not a setting of store kind 'sqlite'");
  expect_error("[store]\nmax_clock_skew = \"10ms\"\n", 2, "store.max_clock_skew",
               "not a setting of store kind 'sqlite'");
  expect_error(pg + "lease_ttl = 2\n", 4, "store.lease_ttl", "expected a duration string");
  expect_error(pg + "lease_renew = \"0s\"\n", 4, "store.lease_renew", "must be greater than 0");
  expect_error(pg + "lease_ttl = \"1s\"\nlease_renew = \"1s\"\n", 5, "store.lease_renew",
               "must be shorter than lease_ttl");
  expect_error(pg + "lease_ttl = \"400ms\"\n", 4, "store.lease_ttl",
               "must be shorter than lease_ttl (400ms)");
  expect_error(pg + "max_clock_skew = \"2s\"\n", 4, "store.max_clock_skew",
               "must be shorter than lease_ttl");
}

TEST_F(ConfigTest, RangesOfIntegers) {
  expect_error("[[feeds]]\nid = \"a\"\nretries = 101\n", 3, "feeds[0].retries",
               "101 is out of range 0..100");
  expect_error("[[feeds]]\nid = \"a\"\ndecimals = 37\n", 3, "feeds[0].decimals",
               "out of range 0..36");
  expect_error("[[feeds]]\nid = \"a\"\ndecimals = -1\n", 3, "feeds[0].decimals");
  expect_error(std::string(kFeed) + "[alarms]\ndlq_depth = 0\n", 4, "alarms.dlq_depth");
  expect_error(std::string(kFeed) + "[alarms]\nwebhook_retries = 1000\n", 4,
               "alarms.webhook_retries");
}

TEST_F(ConfigTest, AlarmActions) {
  expect_error(std::string(kFeed) + "[alarms]\ncommand = [\"/bin/echo\", \"\"]\n", 4,
               "alarms.command[1]", "must not be empty");
  expect_error(std::string(kFeed) + "[alarms]\nwebhook = \"ftp://x/y\"\n", 4, "alarms.webhook",
               "invalid URL 'ftp://x/y'");
  expect_error(std::string(kFeed) + "[alarms]\nwebhook = \"http://\"\n", 4, "alarms.webhook");
  Config c = load_ok(std::string(kFeed) +
                     "[alarms]\ncommand = [\"/usr/bin/logger\", \"-t\", \"metronome\"]\n"
                     "webhook = \"https://example.com/alarm\"\naction_timeout = \"3s\"\n");
  EXPECT_EQ(c.alarms.command, (std::vector<std::string>{"/usr/bin/logger", "-t", "metronome"}));
  EXPECT_EQ(c.alarms.webhook, "https://example.com/alarm");
  EXPECT_EQ(c.alarms.action_timeout, Millis(3000));
}

TEST_F(ConfigTest, MissingFileIsNotFound) {
  Result<Config> c = load_config(dir_ / "absent.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Status::Code::kNotFound);
  EXPECT_THAT(c.status().message(), HasSubstr((dir_ / "absent.toml").string()));
  Result<Config> d = load_config(dir_);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), Status::Code::kIOError);
}

TEST_F(ConfigTest, Defaults) {
  Config c = load_ok(kFeed);
  EXPECT_EQ(c.file, dir_ / "m.toml");
  EXPECT_FALSE(c.is_builtin_default());
  EXPECT_EQ(c.service.data_dir, dir_ / "var");
  EXPECT_EQ(c.service.listen, "127.0.0.1:8080");
  EXPECT_EQ(c.service.log_level, "info");
  EXPECT_EQ(c.service.log_format, "text");
  EXPECT_EQ(c.store.kind, "sqlite");
  EXPECT_EQ(c.store.path, dir_ / "var" / "metronome.db");
  EXPECT_EQ(c.store.dlq_path, dir_ / "var" / "metronome.dlq.db");
  EXPECT_TRUE(c.secrets.empty());
  ASSERT_EQ(c.feeds.size(), 1u);
  const FeedConfig& f = c.feeds[0];
  EXPECT_EQ(f.id, FeedId("a"));
  ASSERT_TRUE(f.schedule.is_interval());
  EXPECT_EQ(f.schedule.interval(), Millis(2000));
  EXPECT_EQ(f.schedule_text, "2s");
  EXPECT_EQ(f.window, Millis(60'000));
  EXPECT_EQ(f.deadline, Millis(2000));
  EXPECT_EQ(f.retries, 3);
  EXPECT_TRUE(f.secret.empty());
  EXPECT_EQ(f.decimals, 0);
  ASSERT_TRUE(std::holds_alternative<RandomIntSourceConfig>(f.source));
  EXPECT_EQ(std::get<RandomIntSourceConfig>(f.source).min, 0);
  EXPECT_EQ(std::get<RandomIntSourceConfig>(f.source).max, 1000);
  EXPECT_EQ(c.alarms.dlq_depth, 1);
  EXPECT_EQ(c.alarms.missed_slots, 1);
  EXPECT_EQ(c.alarms.missed_window, Millis(600'000));
  EXPECT_TRUE(c.alarms.command.empty());
  EXPECT_TRUE(c.alarms.webhook.empty());
  EXPECT_EQ(c.alarms.action_timeout, Millis(10'000));
  EXPECT_EQ(c.alarms.webhook_retries, 3);
}

TEST_F(ConfigTest, DeadlineDefaultsToTheIntervalAndCronHasNone) {
  Config c = load_ok(
      "[[feeds]]\nid = \"a\"\nevery = \"500ms\"\nwindow = \"10s\"\n"
      "[[feeds]]\nid = \"b\"\ncron = \"*/5 * * * * *\"\n"
      "[[feeds]]\nid = \"c\"\nevery = \"1s\"\ndeadline = \"1500ms\"\n");
  EXPECT_EQ(c.feeds[0].deadline, Millis(500));
  EXPECT_EQ(c.feeds[0].schedule_text, "500ms");
  EXPECT_FALSE(c.feeds[1].schedule.is_interval());
  EXPECT_EQ(c.feeds[1].schedule_text, "*/5 * * * * *");
  EXPECT_EQ(c.feeds[1].deadline, std::nullopt);
  EXPECT_EQ(c.feeds[1].window, Millis(60'000));
  EXPECT_EQ(c.feeds[2].deadline, Millis(1500));
}

TEST_F(ConfigTest, RelativePathsResolveAgainstTheConfigFolder) {
  fs::path p = write("etc/m.toml",
                     "[service]\ndata_dir = \"data\"\n"
                     "[store]\npath = \"../db/x.sqlite\"\n"
                     "[secrets.rel]\nfile = \"./keys/k\"\n"
                     "[secrets.abs]\nfile = \"/run/keys/k\"\n"
                     "[[feeds]]\nid = \"a\"\n");
  Result<Config> c = load_config(p);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->service.data_dir, dir_ / "etc" / "data");
  EXPECT_EQ(c->store.path, dir_ / "db" / "x.sqlite");
  EXPECT_EQ(c->store.dlq_path, dir_ / "db" / "x.sqlite.dlq.db");
  EXPECT_EQ(c->secrets.at(SecretName("rel")).file, dir_ / "etc" / "keys" / "k");
  EXPECT_EQ(c->secrets.at(SecretName("abs")).file, fs::path("/run/keys/k"));

  // The store defaults to <data_dir>/metronome.db.
  Config d = load_ok("[service]\ndata_dir = \"/srv/m\"\n[[feeds]]\nid = \"a\"\n");
  EXPECT_EQ(d.store.path, fs::path("/srv/m/metronome.db"));
  EXPECT_EQ(d.store.dlq_path, fs::path("/srv/m/metronome.dlq.db"));
}

TEST_F(ConfigTest, RelativeConfigPathResolvesAgainstTheWorkingDirectory) {
  Result<Config> c = parse_config(kFeed, "conf/m.toml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->service.data_dir, fs::current_path() / "conf" / "var");
  Result<Config> e = parse_config("[[feeds]]\nid = 1\n", "conf/m.toml");
  ASSERT_FALSE(e.ok());
  EXPECT_THAT(e.status().message(), StartsWith("conf/m.toml:2: feeds[0].id: "));
}

TEST_F(ConfigTest, DumpRoundTrips) {
  Config c = load_ok(
      "[service]\ndata_dir = \"d\"\nlisten = \"0.0.0.0:9\"\nlog_level = \"debug\"\n"
      "log_format = \"json\"\n"
      "[store]\npath = \"s/x.db\"\ndlq_path = \"s/dlq.db\"\n"
      "[secrets.oracle_key]\nfile = \"keys/oracle\"\n"
      "[secrets.\"api.token\"]\nenv = \"API_TOKEN\"\n"
      "[[feeds]]\nid = \"btc.usd\"\nevery = \"250ms\"\nwindow = \"30s\"\ndeadline = \"200ms\"\n"
      "retries = 0\nsecret = \"api.token\"\ndecimals = 8\n"
      "source = { kind = \"random_int\", min = -5, max = 5 }\n"
      "[[feeds]]\nid = \"cron_feed\"\ncron = \"0 */5 9-17 * * MON-FRI\"\nwindow = \"1h\"\n"
      "[alarms]\ndlq_depth = 10\nmissed_slots = 3\nmissed_window = \"1h30m\"\n"
      "command = [\"/bin/sh\", \"-c\", \"echo \\\"$1\\\" \\\\ done\\t\"]\n"
      "webhook = \"http://127.0.0.1:9000/alarm\"\naction_timeout = \"2s\"\n"
      "webhook_retries = 0\n");
  std::string dumped = dump_config(c);
  Result<Config> again = parse_config(dumped, c.file);
  ASSERT_TRUE(again.ok()) << again.status().ToString() << "\n" << dumped;
  EXPECT_EQ(dump_config(*again), dumped);

  EXPECT_EQ(again->service.data_dir, dir_ / "d");
  EXPECT_EQ(again->store.dlq_path, dir_ / "s" / "dlq.db");
  EXPECT_EQ(again->secrets.at(SecretName("api.token")).env, "API_TOKEN");
  EXPECT_EQ(again->secrets.at(SecretName("oracle_key")).file, dir_ / "keys" / "oracle");
  EXPECT_EQ(again->feeds[0].schedule.interval(), Millis(250));
  EXPECT_EQ(again->feeds[0].deadline, Millis(200));
  EXPECT_EQ(again->feeds[0].decimals, 8);
  EXPECT_EQ(std::get<RandomIntSourceConfig>(again->feeds[0].source).min, -5);
  EXPECT_EQ(again->feeds[1].schedule_text, "0 */5 9-17 * * MON-FRI");
  EXPECT_EQ(again->feeds[1].window, Millis(3'600'000));
  EXPECT_EQ(again->alarms.command, c.alarms.command);
  EXPECT_EQ(again->alarms.command[2], "echo \"$1\" \\ done\t");
  EXPECT_EQ(again->alarms.missed_window, Millis(5'400'000));
  EXPECT_EQ(again->alarms.webhook_retries, 0);
}

TEST_F(ConfigTest, DumpShowsWhereSecretsLiveButNoValue) {
  fs::path key = write("keys/oracle", "super-secret-value\n");
  Config c = load_ok("[secrets.oracle_key]\nfile = \"keys/oracle\"\n[secrets.t]\nenv = \"T\"\n" +
                     std::string(kFeed));
  std::string dumped = dump_config(c);
  EXPECT_THAT(dumped,
              HasSubstr(fmt::format("[secrets.oracle_key]\nfile = \"{}\"\n", key.string())));
  EXPECT_THAT(dumped, HasSubstr("[secrets.t]\nenv = \"T\"\n"));
  EXPECT_THAT(dumped, ::testing::Not(HasSubstr("super-secret-value")));
}

TEST_F(ConfigTest, BuiltinDefault) {
  Config c = builtin_default_config(dir_);
  EXPECT_TRUE(c.is_builtin_default());
  EXPECT_EQ(c.service.data_dir, dir_ / "var");
  EXPECT_EQ(c.service.listen, "127.0.0.1:8080");
  EXPECT_EQ(c.store.path, dir_ / "var" / "metronome.db");
  EXPECT_EQ(c.store.dlq_path, dir_ / "var" / "metronome.dlq.db");
  ASSERT_EQ(c.secrets.size(), 1u);
  const SecretConfig& s = c.secrets.at(SecretName("oracle_key"));
  EXPECT_EQ(s.name, SecretName("oracle_key"));
  EXPECT_EQ(s.file, dir_ / "var" / "secrets" / "oracle_key");
  EXPECT_FALSE(s.env.has_value());
  ASSERT_EQ(c.feeds.size(), 1u);
  const FeedConfig& f = c.feeds[0];
  EXPECT_EQ(f.id, FeedId("random_int"));
  EXPECT_EQ(f.schedule.interval(), Millis(2000));
  EXPECT_EQ(f.window, Millis(60'000));
  EXPECT_EQ(f.deadline, Millis(2000));
  EXPECT_EQ(f.retries, 3);
  EXPECT_EQ(f.secret, SecretName("oracle_key"));
  EXPECT_EQ(std::get<RandomIntSourceConfig>(f.source).min, 0);
  EXPECT_EQ(std::get<RandomIntSourceConfig>(f.source).max, 1000);
  EXPECT_EQ(c.find_feed(FeedId("random_int")), &c.feeds[0]);
  EXPECT_EQ(c.find_feed(FeedId("other")), nullptr);
}

// The documented example file (without alarm actions) is exactly the built-in default.
TEST_F(ConfigTest, DocumentedExampleEqualsBuiltinDefault) {
  Config c = load_ok(R"([service]
data_dir = "./var"
listen = "127.0.0.1:8080"
log_level = "info"
log_format = "text"
[store]
kind = "sqlite"
path = "./var/metronome.db"
[secrets.oracle_key]
file = "./var/secrets/oracle_key"
[[feeds]]
id = "random_int"
every = "2s"
window = "1m"
deadline = "2s"
retries = 3
secret = "oracle_key"
decimals = 0
source = { kind = "random_int", min = 0, max = 1000 }
[alarms]
dlq_depth = 1
missed_slots = 1
missed_window = "10m"
action_timeout = "10s"
webhook_retries = 3
)");
  auto body = [](const std::string& dump) { return dump.substr(dump.find("\n[service]")); };
  EXPECT_EQ(body(dump_config(c)), body(dump_config(builtin_default_config(dir_))));
  Result<Config> again = parse_config(dump_config(builtin_default_config(dir_)), dir_ / "x.toml");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(body(dump_config(*again)), body(dump_config(c)));
}

}  // namespace
}  // namespace metronome
