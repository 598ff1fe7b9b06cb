// PostgresBackend: what the daemon and the CLI use of the PostgreSQL backend (the store and the
// replicas' leases), as one table of entry points.
//
// The backend is built twice: into the static libraries the tests link, and as the plugin
// metronome-postgres.so (src/postgres_plugin.cc), which the metronome binary loads with dlopen
// only when the configuration says [store] kind = "postgres" (src/app/postgres_plugin_loader.h).
// libpqxx and libpq bring Kerberos, LDAP and GnuTLS with them: 3.8 MB of a default daemon's
// 15 MB budget that a daemon on SQLite never uses (docs/adr/0012-postgres-backend-plugin.md).
//
// The table's types are C++ types shared by the binary and the plugin, so the two must come
// from the same build: the version and the layout of the types that cross are checked before
// anything is called.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "clock/clock.h"
#include "common/result.h"
#include "ha/replica_leases.h"
#include "store/postgres_store.h"
#include "store/store.h"

namespace metronome {

// The sizes of the types that cross the boundary, folded into one number: a plugin from
// another build (or another compiler's standard library) is refused instead of misread.
constexpr uint64_t postgres_backend_layout() {
  uint64_t h = 1469598103934665603ULL;
  for (uint64_t size :
       {sizeof(std::string), sizeof(Status), sizeof(PostgresStoreOptions), sizeof(SchemaMigration),
        sizeof(LeaseOptions), sizeof(Execution), sizeof(ValueRecord), sizeof(SlotCommit),
        sizeof(DlqMessage), sizeof(AlarmState), sizeof(Result<std::unique_ptr<Store>>)}) {
    h = (h ^ size) * 1099511628211ULL;
  }
  return h;
}

struct PostgresBackend {
  const char* version;  // METRONOME_VERSION of the plugin's build
  uint64_t layout;      // postgres_backend_layout() of the plugin's build
  // PostgresStore::open, ::migrate and ::redact_url (store/postgres_store.h).
  Result<std::unique_ptr<Store>> (*open_store)(const PostgresStoreOptions& options);
  Result<SchemaMigration> (*migrate)(const PostgresStoreOptions& options);
  std::string (*redact_url)(const std::string& url);
  // LeaseManager::open (ha/lease_manager.h).
  Result<std::unique_ptr<ReplicaLeases>> (*open_leases)(const PostgresStoreOptions& database,
                                                        LeaseOptions options, Clock& clock);
};

// The plugin's one exported symbol: extern "C" const PostgresBackend* <this name>().
inline constexpr const char* kPostgresBackendSymbol = "metronome_postgres_backend_v1";

}  // namespace metronome
