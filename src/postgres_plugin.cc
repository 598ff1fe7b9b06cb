// metronome-postgres.so: the PostgreSQL backend as a plugin (ha/postgres_backend.h). Built from
// the same libraries the tests link; exports nothing but the table below.
#include "ha/lease_manager.h"
#include "ha/postgres_backend.h"
#include "store/postgres_store.h"

namespace metronome {
namespace {

Result<std::unique_ptr<Store>> open_store(const PostgresStoreOptions& options) {
  METRONOME_ASSIGN_OR_RETURN(std::unique_ptr<PostgresStore> store, PostgresStore::open(options));
  return std::unique_ptr<Store>(std::move(store));
}

Result<std::unique_ptr<ReplicaLeases>> open_leases(const PostgresStoreOptions& database,
                                                   LeaseOptions options, Clock& clock) {
  METRONOME_ASSIGN_OR_RETURN(std::unique_ptr<LeaseManager> leases,
                             LeaseManager::open(database, std::move(options), clock));
  return std::unique_ptr<ReplicaLeases>(std::move(leases));
}

constexpr PostgresBackend kBackend{
    .version = METRONOME_VERSION,
    .layout = postgres_backend_layout(),
    .open_store = &open_store,
    .migrate = &PostgresStore::migrate,
    .redact_url = &PostgresStore::redact_url,
    .open_leases = &open_leases,
};

}  // namespace
}  // namespace metronome

extern "C" __attribute__((visibility("default"))) const metronome::PostgresBackend*
metronome_postgres_backend_v1() {
  return &metronome::kBackend;
}
