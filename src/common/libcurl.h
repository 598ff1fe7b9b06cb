// libcurl, loaded when a feature first needs it rather than when the process starts.
//
// Why not simply link it: Debian's libcurl pulls about thirty shared libraries into every process
// that links it (GnuTLS through libldap and librtmp, Kerberos, libssh2, nghttp2, libidn2, ...),
// and the dynamic loader maps and relocates all of them at start-up: about 5 MB of the default
// daemon's resident memory (docs/performance.md, "Default daemon"), for a daemon whose default
// config (random_int, SQLite, the API) never makes an HTTP request. HTTP sources, webhooks,
// the AWS clients and the EVM sink call curl::load() first; it opens libcurl.so.4 once (dlopen),
// resolves the functions below and runs curl_global_init. This is a table of libcurl's own
// functions, not a replacement for any of them.
//
//   METRONOME_RETURN_IF_ERROR(curl::load());
//   const curl::Lib& c = curl::lib();
//   CURL* h = c.easy_init();
//   c.easy_setopt(h, CURLOPT_URL, url.c_str());
//
// Thread-safety: load() and lib() may be called from any thread; the first load() does the work.
#pragma once

#include <curl/curl.h>

#include "common/status.h"

namespace metronome::curl {

struct Lib {
  decltype(&::curl_global_init) global_init = nullptr;
  decltype(&::curl_easy_init) easy_init = nullptr;
  decltype(&::curl_easy_setopt) easy_setopt = nullptr;
  decltype(&::curl_easy_perform) easy_perform = nullptr;
  decltype(&::curl_easy_getinfo) easy_getinfo = nullptr;
  decltype(&::curl_easy_reset) easy_reset = nullptr;
  decltype(&::curl_easy_cleanup) easy_cleanup = nullptr;
  decltype(&::curl_easy_strerror) easy_strerror = nullptr;
  decltype(&::curl_slist_append) slist_append = nullptr;
  decltype(&::curl_slist_free_all) slist_free_all = nullptr;
  decltype(&::curl_url) url = nullptr;
  decltype(&::curl_url_set) url_set = nullptr;
  decltype(&::curl_url_get) url_get = nullptr;
  decltype(&::curl_url_cleanup) url_cleanup = nullptr;
  decltype(&::curl_free) free = nullptr;
};

// Loads libcurl once; Unavailable naming the library (and what the loader said) when it cannot
// be loaded or lacks a function, and every later call returns the same error.
Status load();

// The loaded library. REQUIRES: load() returned OK (aborts with a message otherwise: a caller
// that skipped load() is a bug).
const Lib& lib();

// Deleters for std::unique_ptr, calling the loaded library.
struct EasyDeleter {
  void operator()(CURL* h) const { lib().easy_cleanup(h); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { lib().slist_free_all(l); }
};

}  // namespace metronome::curl
