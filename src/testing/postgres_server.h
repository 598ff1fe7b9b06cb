// PostgresServer: a throwaway PostgreSQL cluster for tests, started and stopped by the test itself.
//
// start() runs the Debian PostgreSQL binaries (initdb, then pg_ctl) on a fresh folder under the
// system temp folder, listening on 127.0.0.1 at a free port and on a unix socket in that folder,
// with trust authentication for the superuser "metronome". As root, initdb and pg_ctl run as the
// `postgres` system user (PostgreSQL refuses to run as root); the folder is handed to that user.
// Durability is off (fsync=off): it is a test server.
//
// The binaries come from METRONOME_PG_BINDIR if set, else the newest /usr/lib/postgresql/*/bin.
//
// Thread-safety: create_database() may be called from any thread; start/stop/restart and the
// destructor from one thread while no other call runs.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace metronome::testing {

// The `postgres` system user's ids, which the tools run as when the test runs as root.
struct PostgresRunAs {
  uid_t uid = 0;
  gid_t gid = 0;
};

class PostgresServer {
 public:
  // Initialises and starts a cluster. Unavailable (naming what is missing) when PostgreSQL is
  // not installed; IOError with the server's log when it does not start.
  // With `watchdog`, a child process stops the server should this process die without doing so.
  static Result<std::unique_ptr<PostgresServer>> start(bool watchdog = true);
  // Stops the server (immediate mode) and removes its folder.
  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  // One server shared by the test processes running at a time (ctest runs each test in its own
  // process): started by the first that needs it, stopped (about half a second) after the last
  // of them exits, however it exits. Tests on it use databases of their own (create_database())
  // and must not stop or reconfigure it. nullptr (after ADD_FAILURE with the reason) when it
  // cannot start.
  static PostgresServer* shared();

  int port() const { return port_; }
  // "postgresql://metronome@127.0.0.1:PORT/DATABASE"
  std::string url(const std::string& database = "postgres") const;

  // Creates a new empty database with a unique name; returns its URL.
  Result<std::string> create_database();

  // Stops the server (pg_ctl stop -m `mode`: "fast" or "immediate") / starts it again on the
  // same port and data: for outage tests.
  Status stop(const std::string& mode = "fast");
  Status start_again();

  // Runs SQL as the superuser on `database` (for tests that inspect or tamper with a schema).
  Status execute(const std::string& database, const std::string& sql);

  const std::filesystem::path& dir() const { return dir_; }

 private:
  PostgresServer() = default;
  Status run_tool(const std::vector<std::string>& argv) const;
  Status pg_ctl_start();
  Status init_data(const std::optional<PostgresRunAs>& account);
  static Result<std::unique_ptr<PostgresServer>> attach_shared();
  void start_watchdog(const std::optional<PostgresRunAs>& account);

  std::filesystem::path bindir_;
  std::filesystem::path dir_;  // data/, the socket and server.log live here
  int port_ = 0;
  bool running_ = false;
  bool as_postgres_user_ = false;
  int watchdog_fd_ = -1;  // write end of the watchdog's pipe
  int watchdog_pid_ = -1;
  std::mutex mu_;
  int databases_ = 0;  // guarded by mu_
};

}  // namespace metronome::testing
