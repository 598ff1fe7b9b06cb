// Operator-facing lifecycle: systemd readiness and watchdog notifications, online backups.
#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "support/harness.h"

namespace metronome::itest {
namespace {

using namespace std::chrono_literals;

std::string config() {
  return R"(
[service]
listen = "127.0.0.1:0"
[store]
path = "var/metronome.db"
[secrets.oracle_key]
file = "secrets/oracle_key"
[[feeds]]
id = "fast"
every = "100ms"
window = "1s"
secret = "oracle_key"
)";
}

void write_key(const TempDir& dir) {
  ASSERT_EQ(run({"keygen", "--out", "secrets/oracle_key"}, dir.path()).exit_code, 0);
}

TEST(Lifecycle, TellsSystemdItIsReadyAndPingsTheWatchdog) {
  TempDir dir("notify");
  dir.write("metronome.toml", config());
  write_key(dir);
  std::string socket_path = (dir / "notify.sock").string();
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket_path.c_str());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);

  Daemon d(dir.path(), {"--config", "metronome.toml"},
           {{"NOTIFY_SOCKET", socket_path}, {"WATCHDOG_USEC", "200000"}});
  d.start();
  std::vector<std::string> messages;
  auto deadline = std::chrono::steady_clock::now() + 3s;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    char buf[512];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n > 0) messages.emplace_back(buf, static_cast<size_t>(n));
  }
  EXPECT_EQ(d.stop(), 0);
  close(fd);
  int ready = 0, watchdog = 0;
  for (const auto& m : messages) {
    ready += m.find("READY=1") != std::string::npos;
    watchdog += m.find("WATCHDOG=1") != std::string::npos;
  }
  EXPECT_EQ(ready, 1);
  EXPECT_GE(watchdog, 8) << "expected a WATCHDOG=1 about every 100 ms for 3 s";
  // READY=1 only once the first execution is planned: it is in the store. (The log has no line
  // for a plan; an "execution fast@... interrupted" line depends on where the stop falls.)
  auto executions =
      run({"--config", "metronome.toml", "executions", "--format", "json"}, dir.path());
  ASSERT_EQ(executions.exit_code, 0) << executions.err;
  auto planned = json_of(executions);
  ASSERT_FALSE(planned.empty()) << d.log();
  EXPECT_EQ(planned[0]["feed"], "fast");
}

TEST(Lifecycle, BackupWhileTheDaemonWritesIsConsistentAndReadable) {
  TempDir dir("backup");
  dir.write("metronome.toml", config());
  write_key(dir);
  Daemon d(dir.path(), {"--config", "metronome.toml"});
  d.start();
  ASSERT_TRUE(d.wait_for_log("published", 10s)) << d.log();
  // <data_dir>/evm.db, the evm sinks' nonces, as a writer leaves it: WAL mode, its last commit
  // still in the WAL only (no checkpoint), the connection open. A file copy would miss the row.
  SQLite::Database evm((dir / "var/evm.db").string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
  evm.exec("PRAGMA journal_mode = WAL");
  evm.exec("PRAGMA wal_autocheckpoint = 0");
  evm.exec("CREATE TABLE txs (chain_id INTEGER, sender TEXT, nonce INTEGER)");
  evm.exec("INSERT INTO txs VALUES (31337, '0xC0A2a2E3fC5Ee4D6BAb0b01F1c6A2D1a2Bc3bCc8', 41)");
  ASSERT_GT(std::filesystem::file_size(dir / "var/evm.db-wal"), 0u);
  sleep_ms(500);
  auto b = run({"--config", "metronome.toml", "backup", "--out", "backup/copy.db"}, dir.path());
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(b.out, "backup/copy.db\nbackup/copy.dlq.db\nbackup/copy.evm.db\n");
  sleep_ms(300);
  EXPECT_EQ(d.stop(), 0);
  // Refuses to overwrite.
  EXPECT_EQ(run({"--config", "metronome.toml", "backup", "--out", "backup/copy.db"}, dir.path())
                .exit_code,
            2);

  // The copy is a database the CLI reads, consistent: every published slot has its value.
  dir.write("copy.toml",
            "[store]\npath = \"backup/copy.db\"\n[[feeds]]\nid = \"fast\"\n"
            "every = \"100ms\"\nwindow = \"1s\"\n");
  auto values =
      run({"--config", "copy.toml", "values", "--limit", "1000", "--format", "json"}, dir.path());
  ASSERT_EQ(values.exit_code, 0) << values.err;
  auto v = json_of(values);
  EXPECT_GE(v.size(), 4u);
  auto executions = run(
      {"--config", "copy.toml", "executions", "--limit", "100", "--format", "json"}, dir.path());
  ASSERT_EQ(executions.exit_code, 0) << executions.err;
  int published = 0;
  for (const auto& e : json_of(executions)) {
    for (const auto& s : e["slots"]) published += s["outcome"] == "published";
  }
  EXPECT_EQ(published, static_cast<int>(v.size()));
  auto integrity =
      run_program({"/usr/bin/sqlite3", (dir / "backup/copy.db").string(), "PRAGMA integrity_check"},
                  dir.path());
  EXPECT_EQ(integrity.out, "ok\n");
  EXPECT_TRUE(std::filesystem::exists(dir / "backup/copy.dlq.db"));
  // evm.db's copy holds the committed nonce.
  auto nonce = run_program(
      {"/usr/bin/sqlite3", (dir / "backup/copy.evm.db").string(), "SELECT nonce FROM txs"},
      dir.path());
  EXPECT_EQ(nonce.out, "41\n") << nonce.err;
  EXPECT_EQ(run_program({"/usr/bin/sqlite3", (dir / "backup/copy.evm.db").string(),
                         "PRAGMA integrity_check"},
                        dir.path())
                .out,
            "ok\n");
}

TEST(Lifecycle, BackupWithoutAnEvmSinkCopiesTheTwoDatabases) {
  TempDir dir("backup_no_evm");
  dir.write("metronome.toml", config());
  write_key(dir);
  Daemon d(dir.path(), {"--config", "metronome.toml"});
  d.start();
  ASSERT_TRUE(d.wait_for_log("published", 10s)) << d.log();
  auto b = run({"--config", "metronome.toml", "backup", "--out", "copy"}, dir.path());
  EXPECT_EQ(d.stop(), 0);
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(b.out, "copy\ncopy.dlq.db\n");
  EXPECT_FALSE(std::filesystem::exists(dir / "copy.evm.db"));
}

}  // namespace
}  // namespace metronome::itest
