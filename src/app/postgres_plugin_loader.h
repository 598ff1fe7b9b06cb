// Loads the PostgreSQL backend plugin (ha/postgres_backend.h) on first use: the daemon and the
// CLI call it only when the configuration says [store] kind = "postgres", so a daemon on SQLite
// never maps libpqxx, libpq and their dependencies.
//
// Where: metronome-postgres.so beside the running binary (a build tree), then
// ../lib/metronome/metronome-postgres.so relative to it (an installed /usr/bin/metronome finds
// /usr/lib/metronome/). A plugin from another build is refused.
//
// Thread-safety: may be called from any thread; the library is loaded once and stays loaded.
#pragma once

#include <filesystem>
#include <vector>

#include "common/result.h"
#include "ha/postgres_backend.h"

namespace metronome {

// The backend, or an error that names every path tried and why each failed.
Result<const PostgresBackend*> load_postgres_backend();

// Tries `candidates` in order, uncached: the first that exists is loaded, or its error returned.
Result<const PostgresBackend*> load_postgres_backend_from(
    const std::vector<std::filesystem::path>& candidates);

}  // namespace metronome
