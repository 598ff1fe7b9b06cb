#include "testing/postgres_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <pqxx/pqxx>
#include <random>
#include <sstream>

namespace metronome::testing {
namespace {

namespace fs = std::filesystem;

// The newest installed PostgreSQL's bin folder (Debian: /usr/lib/postgresql/<major>/bin).
Result<fs::path> find_bindir() {
  if (const char* env = std::getenv("METRONOME_PG_BINDIR"); env != nullptr && *env != '\0') {
    fs::path dir(env);
    if (!fs::exists(dir / "initdb")) {
      return Status::Unavailable(
          fmt::format("METRONOME_PG_BINDIR={}: no initdb there", dir.string()));
    }
    return dir;
  }
  std::error_code ec;
  int best = -1;
  fs::path found;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    if (!fs::exists(entry.path() / "bin" / "initdb")) continue;
    if (int major = std::stoi(name); major > best) {
      best = major;
      found = entry.path() / "bin";
    }
  }
  if (best < 0) {
    return Status::Unavailable(
        "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): run "
        "scripts/setup.sh --test, or set METRONOME_PG_BINDIR");
  }
  return found;
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

Result<PostgresRunAs> postgres_account() {
  struct passwd pw {};
  struct passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (::getpwnam_r("postgres", &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr) {
    return Status::Unavailable(
        "running as root, and there is no `postgres` user to run PostgreSQL as (PostgreSQL "
        "refuses to run as root): install the postgresql package");
  }
  return PostgresRunAs{pw.pw_uid, pw.pw_gid};
}

// Forks and execs argv (as `account` when given), stdout and stderr appended to `log`; waits.
// Returns the exit code, or -1 when the program could not run.
int run_and_wait(const std::vector<std::string>& argv, const std::optional<PostgresRunAs>& account,
                 const fs::path& log) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out < 0) return -1;
  if (account) (void)::fchown(out, account->uid, account->gid);
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(out);
    return -1;
  }
  if (pid == 0) {
    ::dup2(out, STDOUT_FILENO);
    ::dup2(out, STDERR_FILENO);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    ::setpgid(0, 0);  // a Ctrl-C of the test run must not also hit the server first
    if (account) {
      if (::setgroups(0, nullptr) != 0 || ::setgid(account->gid) != 0 ||
          ::setuid(account->uid) != 0) {
        _exit(126);
      }
    }
    ::execv(args[0], args.data());
    _exit(127);
  }
  ::close(out);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

Result<std::unique_ptr<PostgresServer>> PostgresServer::start(bool watchdog) {
  auto server = std::unique_ptr<PostgresServer>(new PostgresServer());
  METRONOME_ASSIGN_OR_RETURN(server->bindir_, find_bindir());
  server->as_postgres_user_ = ::geteuid() == 0;
  std::optional<PostgresRunAs> account;
  if (server->as_postgres_user_) {
    METRONOME_ASSIGN_OR_RETURN(PostgresRunAs a, postgres_account());
    account = a;
  }

  std::random_device random;
  const fs::path base = fs::temp_directory_path();
  for (int attempt = 0;; ++attempt) {
    server->dir_ = base / fmt::format("metronome-pg-{}-{:08x}", ::getpid(), random());
    std::error_code ec;
    if (fs::create_directory(server->dir_, ec)) break;
    if (attempt == 100) {
      return Status::IOError(
          fmt::format("cannot create a folder under {}: {}", base.string(), ec.message()));
    }
  }
  if (account && ::chown(server->dir_.c_str(), account->uid, account->gid) != 0) {
    return Status::IOError(fmt::format("cannot hand {} to the postgres user: {}",
                                       server->dir_.string(), std::strerror(errno)));
  }

  METRONOME_RETURN_IF_ERROR(server->init_data(account));
  // Another process may take the free port between the probe and the server's bind: retry.
  Status started = Status::Ok();
  for (int attempt = 0; attempt < 5; ++attempt) {
    server->port_ = free_port();
    started = server->pg_ctl_start();
    if (started.ok()) {
      if (watchdog) server->start_watchdog(account);
      return server;
    }
  }
  return started;
}

// A child process that outlives nothing: it waits on a pipe whose write end only this process
// holds, and when the pipe closes without the "stopped" byte (this process died, say a crashed
// or killed test), it stops the server and removes its folder, so no orphan server keeps running.
void PostgresServer::start_watchdog(const std::optional<PostgresRunAs>& account) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return;
  const std::string script =
      fmt::format("'{}' -D '{}' -m immediate -w stop; rm -rf '{}'", (bindir_ / "pg_ctl").string(),
                  (dir_ / "data").string(), dir_.string());
  const char* argv[] = {"/bin/sh", "-c", script.c_str(), nullptr};
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return;
  }
  if (pid == 0) {
    ::close(fds[1]);
    ::setpgid(0, 0);
    char byte = 0;
    ssize_t n;
    while ((n = ::read(fds[0], &byte, 1)) < 0 && errno == EINTR) {
    }
    if (n == 1) _exit(0);
    if (account && (::setgroups(0, nullptr) != 0 || ::setgid(account->gid) != 0 ||
                    ::setuid(account->uid) != 0)) {
      _exit(126);
    }
    ::execv(argv[0], const_cast<char* const*>(argv));
    _exit(127);
  }
  ::close(fds[0]);
  watchdog_fd_ = fds[1];
  watchdog_pid_ = pid;
}

// initdb takes most of a start (about a second); a test binary runs once per test under ctest.
// So the first start of a machine (per PostgreSQL and user) keeps an initialised cluster as a
// template under the temp folder, made under a file lock, and later starts copy it.
Status PostgresServer::init_data(const std::optional<PostgresRunAs>& account) {
  const std::vector<std::string> initdb_args = {
      "-A",   "trust",       "-U",        "metronome",         "-E",
      "UTF8", "--no-locale", "--no-sync", "--no-instructions", "--wal-segsize=1"};
  auto initdb = [&](const fs::path& data) {
    std::vector<std::string> argv = {(bindir_ / "initdb").string(), "-D", data.string()};
    argv.insert(argv.end(), initdb_args.begin(), initdb_args.end());
    return run_tool(argv);
  };
  const uid_t owner = account ? account->uid : ::geteuid();
  const fs::path base = dir_.parent_path();
  const fs::path tmpl =
      base /
      fmt::format("metronome-pg-template-{}-{:x}", owner,
                  std::hash<std::string>()(bindir_.string() + fmt::format("{}", initdb_args)));
  const fs::path ready = tmpl / "ready";

  int lock = ::open((base / fmt::format("metronome-pg-template-{}.lock", owner)).c_str(),
                    O_CREAT | O_RDWR | O_CLOEXEC, 0600);
  if (lock < 0) return initdb(dir_ / "data");
  ::flock(lock, LOCK_EX);
  struct stat st {};
  bool usable = ::stat(tmpl.c_str(), &st) == 0 && st.st_uid == owner && fs::exists(ready);
  if (!usable) {
    std::error_code ec;
    fs::remove_all(tmpl, ec);
    if (fs::create_directory(tmpl, ec) &&
        (!account || ::chown(tmpl.c_str(), account->uid, account->gid) == 0) &&
        initdb(tmpl / "data").ok()) {
      std::ofstream(ready) << "initdb " << fmt::format("{}", initdb_args) << "\n";
      usable = true;
    }
  }
  ::flock(lock, LOCK_UN);
  ::close(lock);
  if (!usable) return initdb(dir_ / "data");
  return run_tool({"/bin/cp", "-a", (tmpl / "data").string(), (dir_ / "data").string()});
}

PostgresServer::~PostgresServer() {
  if (running_) (void)stop("immediate");
  if (watchdog_fd_ >= 0) {
    const char stopped = 'x';
    (void)!::write(watchdog_fd_, &stopped, 1);
    ::close(watchdog_fd_);
    int status = 0;
    while (::waitpid(watchdog_pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  std::error_code ec;
  if (!dir_.empty()) fs::remove_all(dir_, ec);
}

// The shared server outlives the process that started it, so that the next test process (ctest
// runs each test in its own) finds it running instead of paying for a start. Its lifetime is
// held by file locks in temp/metronome-pg-shared-UID/: every process using it holds a shared
// lock on "users" for its lifetime; a monitor process, started with the server, takes "start"
// then tries an exclusive lock on "users" every half second, and when no process holds it any
// more (all exited, however they died) stops the server and removes its folder. A process that
// wants the server takes "start" (so it never races the monitor), its shared "users" lock, then
// reuses the server named in "server" or starts one.
Result<std::unique_ptr<PostgresServer>> PostgresServer::attach_shared() {
  std::optional<PostgresRunAs> account;
  if (::geteuid() == 0) {
    METRONOME_ASSIGN_OR_RETURN(PostgresRunAs a, postgres_account());
    account = a;
  }
  const fs::path shared =
      fs::temp_directory_path() / fmt::format("metronome-pg-shared-{}", ::geteuid());
  std::error_code ec;
  fs::create_directories(shared, ec);
  struct stat st {};
  if (::lstat(shared.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::geteuid()) {
    return Status::PermissionDenied(
        fmt::format("{} is not a folder of this user; remove it", shared.string()));
  }
  const int start_lock =
      ::open((shared / "start").c_str(), O_CREAT | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0600);
  const int users_lock = ::open((shared / "users").c_str(), O_CREAT | O_RDWR | O_NOFOLLOW, 0600);
  if (start_lock < 0 || users_lock < 0) {
    return Status::IOError(fmt::format("cannot open the lock files in {}", shared.string()));
  }
  ::flock(start_lock, LOCK_EX);
  ::flock(users_lock, LOCK_SH);  // held (this fd stays open) until this process exits
  (void)::fcntl(users_lock, F_SETFD, FD_CLOEXEC);
  auto unlock = [&] { ::close(start_lock); };

  // A running server from an earlier process?
  {
    std::ifstream in(shared / "server");
    int port = 0;
    std::string dir;
    if (in >> port >> dir) {
      auto server = std::unique_ptr<PostgresServer>(new PostgresServer());
      server->port_ = port;
      try {
        pqxx::connection c(server->url() + "?connect_timeout=2");
        unlock();
        return server;  // not running_: this process never stops it
      } catch (const std::exception&) {
        // gone (its monitor was killed): start another
      }
    }
  }
  auto started = start(/*watchdog=*/false);
  if (!started.ok()) {
    unlock();
    return started.status();
  }
  std::unique_ptr<PostgresServer> server = std::move(started).value();
  {
    std::ofstream out(shared / "server", std::ios::trunc);
    out << server->port_ << " " << server->dir_.string() << "\n";
  }
  // The monitor.
  const std::string script =
      fmt::format("'{}' -D '{}' -m immediate -w stop >/dev/null 2>&1; rm -rf '{}'",
                  (server->bindir_ / "pg_ctl").string(), (server->dir_ / "data").string(),
                  server->dir_.string());
  const std::string server_file = (shared / "server").string();
  const char* argv[] = {"/bin/sh", "-c", script.c_str(), nullptr};
  pid_t pid = ::fork();
  const std::string users_path = (shared / "users").string();
  const std::string start_path = (shared / "start").string();
  if (pid == 0) {
    ::setsid();
    // Keep no descriptor of the test process: not its locks (a lock belongs to the open file,
    // which a copy here would keep alive), not ctest's output pipes (ctest would wait for them).
    const int devnull = ::open("/dev/null", O_RDWR);
    for (int fd = 0; fd < 3; ++fd) ::dup2(devnull, fd);
    for (int fd = 3; fd < 65536; ++fd) ::close(fd);
    const int users = ::open(users_path.c_str(), O_RDWR);
    const int start = ::open(start_path.c_str(), O_RDWR);
    if (users < 0 || start < 0) _exit(1);
    for (;;) {
      struct timespec half = {0, 500'000'000};
      ::nanosleep(&half, nullptr);
      ::flock(start, LOCK_EX);
      if (::flock(users, LOCK_EX | LOCK_NB) == 0) break;
      ::flock(start, LOCK_UN);
    }
    // Holding both locks (inherited by the shell) until the server is stopped and removed.
    ::unlink(server_file.c_str());
    if (account && (::setgroups(0, nullptr) != 0 || ::setgid(account->gid) != 0 ||
                    ::setuid(account->uid) != 0)) {
      _exit(126);
    }
    ::execv(argv[0], const_cast<char* const*>(argv));
    _exit(127);
  }
  // The monitor owns the server now: this process's object must neither stop nor remove it.
  server->running_ = false;
  server->dir_.clear();
  unlock();
  if (pid < 0) return Status::IOError("cannot fork the test PostgreSQL monitor");
  return server;
}

PostgresServer* PostgresServer::shared() {
  static std::once_flag once;
  static std::unique_ptr<PostgresServer> server;
  static std::string error;
  std::call_once(once, [] {
    auto attached = attach_shared();
    if (attached.ok()) {
      server = std::move(attached).value();
    } else {
      error = attached.status().ToString();
    }
  });
  if (!server) ADD_FAILURE() << "cannot start the test PostgreSQL server: " << error;
  return server.get();
}

std::string PostgresServer::url(const std::string& database) const {
  return fmt::format("postgresql://metronome@127.0.0.1:{}/{}", port_, database);
}

Result<std::string> PostgresServer::create_database() {
  std::string name;
  {
    std::lock_guard lock(mu_);
    name = fmt::format("test_{}_{}", ::getpid(), ++databases_);
  }
  METRONOME_RETURN_IF_ERROR(execute("postgres", fmt::format("CREATE DATABASE {}", name)));
  return url(name);
}

Status PostgresServer::execute(const std::string& database, const std::string& sql) {
  try {
    pqxx::connection c(url(database));
    pqxx::nontransaction n(c);
    n.exec(sql);
    return Status::Ok();
  } catch (const std::exception& e) {
    return Status::IOError(fmt::format("test PostgreSQL {}: {}: {}", url(database), sql, e.what()));
  }
}

Status PostgresServer::stop(const std::string& mode) {
  Status s = run_tool({(bindir_ / "pg_ctl").string(), "-D", (dir_ / "data").string(), "-m", mode,
                       "-w", "-t", "30", "stop"});
  if (s.ok()) running_ = false;
  return s;
}

Status PostgresServer::start_again() {
  return pg_ctl_start();
}

Status PostgresServer::pg_ctl_start() {
  const std::string options = fmt::format(
      "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off "
      "-c wal_level=minimal -c max_wal_senders=0 -c max_connections=200 -c shared_buffers=16MB",
      port_, dir_.string());
  Status s = run_tool({(bindir_ / "pg_ctl").string(), "-D", (dir_ / "data").string(), "-l",
                       (dir_ / "server.log").string(), "-o", options, "-w", "-t", "30", "start"});
  if (s.ok()) running_ = true;
  return s;
}

Status PostgresServer::run_tool(const std::vector<std::string>& argv) const {
  std::optional<PostgresRunAs> account;
  if (as_postgres_user_) {
    METRONOME_ASSIGN_OR_RETURN(PostgresRunAs a, postgres_account());
    account = a;
  }
  const fs::path log = dir_ / "tools.log";
  int code = run_and_wait(argv, account, log);
  if (code == 0) return Status::Ok();
  return Status::IOError(fmt::format("test PostgreSQL: {} exited with {}; its output:\n{}\n{}",
                                     argv[0], code, read_file(log),
                                     read_file(dir_ / "server.log")));
}

}  // namespace metronome::testing
