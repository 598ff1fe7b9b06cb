#include "common/libcurl.h"

#include <dlfcn.h>
#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace metronome::curl {
namespace {

constexpr const char* kLibrary = "libcurl.so.4";

struct Loaded {
  Lib lib;
  Status status = Status::Ok();
};

template <typename F>
bool resolve(void* handle, const char* name, F& out, std::string& missing) {
  out = reinterpret_cast<F>(dlsym(handle, name));
  if (out == nullptr) missing = name;
  return out != nullptr;
}

Loaded load_once() {
  Loaded l;
  // Never closed: libcurl stays loaded for the life of the process, as if it were linked.
  void* handle = dlopen(kLibrary, RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    l.status = Status::Unavailable(
        fmt::format("cannot load {} (Debian package libcurl4), needed for HTTP: {}", kLibrary,
                    why != nullptr ? why : "unknown error"));
    return l;
  }
  std::string missing;
  Lib& f = l.lib;
  bool ok = resolve(handle, "curl_global_init", f.global_init, missing) &&
            resolve(handle, "curl_easy_init", f.easy_init, missing) &&
            resolve(handle, "curl_easy_setopt", f.easy_setopt, missing) &&
            resolve(handle, "curl_easy_perform", f.easy_perform, missing) &&
            resolve(handle, "curl_easy_getinfo", f.easy_getinfo, missing) &&
            resolve(handle, "curl_easy_reset", f.easy_reset, missing) &&
            resolve(handle, "curl_easy_cleanup", f.easy_cleanup, missing) &&
            resolve(handle, "curl_easy_strerror", f.easy_strerror, missing) &&
            resolve(handle, "curl_slist_append", f.slist_append, missing) &&
            resolve(handle, "curl_slist_free_all", f.slist_free_all, missing) &&
            resolve(handle, "curl_url", f.url, missing) &&
            resolve(handle, "curl_url_set", f.url_set, missing) &&
            resolve(handle, "curl_url_get", f.url_get, missing) &&
            resolve(handle, "curl_url_cleanup", f.url_cleanup, missing) &&
            resolve(handle, "curl_free", f.free, missing);
  if (!ok) {
    l.status = Status::Unavailable(
        fmt::format("{} lacks {} (libcurl 7.80 or newer is needed)", kLibrary, missing));
    return l;
  }
  if (CURLcode rc = f.global_init(CURL_GLOBAL_DEFAULT); rc != CURLE_OK) {
    l.status = Status::Unavailable(fmt::format("curl_global_init failed: {}", f.easy_strerror(rc)));
  }
  return l;
}

const Loaded& loaded() {
  static const Loaded l = load_once();  // thread-safe initialisation, once
  return l;
}

}  // namespace

Status load() {
  return loaded().status;
}

const Lib& lib() {
  const Loaded& l = loaded();
  if (!l.status.ok()) {
    std::fprintf(stderr, "libcurl used without a successful curl::load(): %s\n",
                 l.status.ToString().c_str());
    std::abort();
  }
  return l.lib;
}

}  // namespace metronome::curl
