// Opens the configured Store ([store] kind = "sqlite" or "postgres") for one kind of user, and
// applies schema migrations on request (`metronome migrate`).
//
// SQLite migrates its files when the daemon (or a writing command) opens them. PostgreSQL is
// shared by replicas and usually owned by someone else, so nothing but migrate_store() changes
// its schema (docs/adr/0004-postgres-schema-and-explicit-migrations.md): opening an unmigrated
// database is an error that says to run `metronome migrate`.
#pragma once

#include <memory>
#include <string>

#include "clock/clock.h"
#include "common/result.h"
#include "config/config.h"
#include "secret/secret_registry.h"
#include "store/spooling_store.h"
#include "store/store.h"

namespace metronome {

enum class StoreUse {
  kDaemon,     // the daemon's writer: short busy waits (a slot's deadline bounds them anyway)
  kDaemonApi,  // the daemon's HTTP API: read-only, its own connections
  kCliRead,    // a reading command: read-only, never creates or migrates
  kCliWrite,   // a writing command (dlq redrive / purge)
};

// `secrets` resolves [store] password_secret (PostgreSQL).
Result<std::unique_ptr<Store>> open_store(const Config& config, StoreUse use,
                                          const SecretRegistry& secrets);

// The daemon's writing store. On PostgreSQL it is a SpoolingStore (store/spooling_store.h) over
// the PostgresStore, spooling to `<data_dir>/spool.db` what cannot be written during an outage;
// a spool left by an earlier run is written to the database before this returns. `*spool` is set
// to it (nullptr for SQLite). The caller starts its drainer (SpoolingStore::start()).
Result<std::unique_ptr<Store>> open_daemon_store(const Config& config,
                                                 const SecretRegistry& secrets, Clock& clock,
                                                 SpoolingStore** spool);

// Brings the store's schema to this build's version. Returns what was done, e.g.
// "postgresql://m@db/oracle: schema version 0 -> 1".
Result<std::string> migrate_store(const Config& config, const SecretRegistry& secrets);

}  // namespace metronome
