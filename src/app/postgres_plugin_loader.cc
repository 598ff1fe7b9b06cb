#include "app/postgres_plugin_loader.h"

#include <dlfcn.h>
#include <fmt/format.h>

#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

namespace metronome {
namespace {

constexpr const char* kPluginFile = "metronome-postgres.so";

Result<const PostgresBackend*> load_from(const std::filesystem::path& path) {
  // RTLD_LOCAL: the plugin's libraries (libpqxx, libpq) stay out of the global namespace.
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = ::dlerror();
    return Status::NotFound(why != nullptr ? why : "dlopen failed");
  }
  using Entry = const PostgresBackend* (*)();
  auto entry = reinterpret_cast<Entry>(::dlsym(handle, kPostgresBackendSymbol));
  if (entry == nullptr) {
    return Status::InvalidArgument(
        fmt::format("{} has no symbol {}", path.string(), kPostgresBackendSymbol));
  }
  const PostgresBackend* backend = entry();
  if (backend == nullptr || std::strcmp(backend->version, METRONOME_VERSION) != 0 ||
      backend->layout != postgres_backend_layout()) {
    return Status::InvalidArgument(fmt::format(
        "{} is from another build (version {}, this binary {}); install the plugin of this "
        "build",
        path.string(), backend != nullptr ? backend->version : "?", METRONOME_VERSION));
  }
  return backend;  // never dlclose()d: the process uses it until it exits
}

Result<const PostgresBackend*> load() {
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return Status::IOError(fmt::format("/proc/self/exe: {}", ec.message()));
  const std::filesystem::path dir = exe.parent_path();
  return load_postgres_backend_from(
      {dir / kPluginFile, (dir / ".." / "lib" / "metronome" / kPluginFile).lexically_normal()});
}

}  // namespace

Result<const PostgresBackend*> load_postgres_backend_from(
    const std::vector<std::filesystem::path>& candidates) {
  std::error_code ec;
  std::string tried;
  for (const auto& path : candidates) {
    if (!std::filesystem::exists(path, ec)) {
      tried += fmt::format("; {}: no such file", path.string());
      continue;
    }
    auto backend = load_from(path);
    if (backend.ok()) return backend;
    // A plugin that exists but cannot be loaded is the answer: do not look further.
    return backend.status().With(
        "the PostgreSQL backend ([store] kind = \"postgres\") could not be loaded");
  }
  return Status::NotFound(
      fmt::format("the PostgreSQL backend ([store] kind = \"postgres\") is not installed: "
                  "{} not found (tried{})",
                  kPluginFile, tried.substr(1)));
}

Result<const PostgresBackend*> load_postgres_backend() {
  static std::once_flag once;
  static Result<const PostgresBackend*> loaded = Status::Internal("not loaded");
  std::call_once(once, [] { loaded = load(); });
  return loaded;
}

}  // namespace metronome
