#include "app/store_factory.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>

#include "app/postgres_plugin_loader.h"
#include "store/postgres_store.h"
#include "store/sqlite_store.h"

namespace metronome {
namespace {

Result<PostgresStoreOptions> postgres_options(const Config& config, StoreUse use,
                                              const SecretRegistry& secrets) {
  PostgresStoreOptions options;
  options.url = config.store.url;
  if (!config.store.password_secret.empty()) {
    auto password = secrets.read(config.store.password_secret);
    if (!password.ok()) return password.status().With("store password ([store] password_secret)");
    options.password = std::string(password->reveal());
  }
  switch (use) {
    case StoreUse::kDaemon:
      options.connections = 4;
      options.application_name = "metronome";
      break;
    case StoreUse::kDaemonApi:
      options.read_only = true;
      options.connections = 2;
      options.application_name = "metronome-api";
      break;
    case StoreUse::kCliRead:
      options.read_only = true;
      options.connections = 1;
      options.application_name = "metronome-cli";
      break;
    case StoreUse::kCliWrite:
      options.connections = 1;
      options.application_name = "metronome-cli";
      break;
  }
  return options;
}

SqliteStoreOptions sqlite_options(const Config& config, StoreUse use) {
  SqliteStoreOptions options;
  options.path = config.store.path;
  options.dlq_path = config.store.dlq_path;
  options.read_only = use == StoreUse::kDaemonApi || use == StoreUse::kCliRead;
  // A slot waits for a busy database only a little: its deadline bounds it anyway.
  if (use == StoreUse::kDaemon) options.busy_timeout = std::chrono::milliseconds(250);
  if (use == StoreUse::kDaemon) options.cache_kib = sqlite_cache_kib_for(config.feeds.size());
  return options;
}

}  // namespace

Result<std::unique_ptr<Store>> open_store(const Config& config, StoreUse use,
                                          const SecretRegistry& secrets) {
  if (config.store.kind == "postgres") {
    METRONOME_ASSIGN_OR_RETURN(PostgresStoreOptions options,
                               postgres_options(config, use, secrets));
    METRONOME_ASSIGN_OR_RETURN(const PostgresBackend* postgres, load_postgres_backend());
    return postgres->open_store(options);
  }
  if (config.store.kind != "sqlite") {
    return Status::InvalidArgument(fmt::format("unsupported store kind '{}'", config.store.kind));
  }
  METRONOME_ASSIGN_OR_RETURN(auto store, SqliteStore::open(sqlite_options(config, use)));
  return std::unique_ptr<Store>(std::move(store));
}

Result<std::unique_ptr<Store>> open_daemon_store(const Config& config,
                                                 const SecretRegistry& secrets, Clock& clock,
                                                 SpoolingStore** spool) {
  *spool = nullptr;
  METRONOME_ASSIGN_OR_RETURN(auto store, open_store(config, StoreUse::kDaemon, secrets));
  if (config.store.kind != "postgres") return store;
  METRONOME_ASSIGN_OR_RETURN(
      auto spooling,
      SpoolingStore::open(std::move(store), {.path = config.service.data_dir / "spool.db"}, clock));
  // Left by a crash during an outage: written before the daemon recovers or plans anything. If
  // the database goes away again meanwhile, the drainer finishes it.
  METRONOME_ASSIGN_OR_RETURN(int64_t left, spooling->drain_once());
  if (left > 0) {
    spdlog::warn("spool {}: {} entries still waiting for the database", spooling->path().string(),
                 left);
  }
  *spool = spooling.get();
  return std::unique_ptr<Store>(std::move(spooling));
}

Result<std::string> migrate_store(const Config& config, const SecretRegistry& secrets) {
  if (config.store.kind == "postgres") {
    METRONOME_ASSIGN_OR_RETURN(PostgresStoreOptions options,
                               postgres_options(config, StoreUse::kCliWrite, secrets));
    METRONOME_ASSIGN_OR_RETURN(const PostgresBackend* postgres, load_postgres_backend());
    METRONOME_ASSIGN_OR_RETURN(SchemaMigration m, postgres->migrate(options));
    return fmt::format("{}: schema version {} -> {}{}", postgres->redact_url(options.url), m.from,
                       m.to, m.from == m.to ? " (already current)" : "");
  }
  // SQLite migrates both files as it opens them for writing.
  METRONOME_ASSIGN_OR_RETURN(auto store,
                             SqliteStore::open(sqlite_options(config, StoreUse::kCliWrite)));
  return fmt::format("{} and {}: schema version {}", config.store.path.string(),
                     config.store.dlq_path.string(), SqliteStore::kSchemaVersion);
}

}  // namespace metronome
