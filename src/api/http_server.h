// ApiServer: the HTTP JSON API, health endpoints and Prometheus metrics (docs/api.md), on
// cpp-httplib, in the daemon's process.
//
// It must never disturb slot timing, so it only touches what the slot path does not wait on: the
// StatusBoard's snapshots (latest values, last outcomes, clock step), its own read-only Store
// connection for history, the Metrics (lock-free for the slot path), and the DeadLetterQueue
// (its own store handle) for redrive and purge. Its threads run at a lower scheduling priority
// (nice +5) than the slot path.
//
// Requests are served by a fixed pool of threads, one connection at a time per thread. A stalled
// client holds a thread at most read_timeout (its request is then answered 400) plus
// keep_alive_timeout (idle keep-alive); keep-alive connections are also closed after
// keep_alive_max_count requests.
//
// It also serves the dashboard (GET /, its files under /assets/, embedded in the binary) and the
// live event stream GET /v1/events (Server-Sent Events from the EventHub). An event stream holds
// one of the few request threads for as long as it is open, so at most max_event_streams are
// open at a time (more: 503); stop() ends them at once.
//
// Errors are JSON {"error": "<kind>", "detail": "<what>"}: 400 bad parameter (named), 401/403,
// 404, 405 (with Allow), 409, 413 (body over max_body), 414 (target over max_uri), 500, 503.
// A handler that throws answers 500 without the exception text (it is logged instead), so no
// request can leak a secret or crash the process.
//
// Thread-safety: start() and stop() from the owner thread; the handlers run on the pool.
// REQUIRES: every dependency outlives the server (stop() or the destructor joins all threads).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "api/event_hub.h"
#include "api/metrics.h"
#include "api/status_board.h"
#include "clock/clock.h"
#include "common/result.h"
#include "dlq/dead_letter_queue.h"
#include "secret/secret.h"
#include "store/store.h"

namespace metronome {

struct ApiDeps {
  Store& store;          // reads; give it its own (read-only) connection
  DeadLetterQueue& dlq;  // redrive and purge
  const StatusBoard& board;
  Metrics& metrics;
  Clock& clock;  // readiness: is a feed's last outcome overdue?
  // Reads the admin token for POST/DELETE; empty function: mutating endpoints answer 403.
  std::function<Result<SecretValue>()> admin_token;
  std::string version;
  // Called after a successful redrive with the stored record (e.g. SlotReporter::on_redriven).
  std::function<void(const ValueRecord&)> on_redriven = {};
  // The live events for GET /v1/events; null: that endpoint answers 404.
  EventHub* events = nullptr;
  // PostgreSQL: how many writes wait in the outage spool (store/spooling_store.h), shown by
  // /readyz as checks.spool (informational: the store check says whether the database answers).
  // Empty function: no spool (SQLite), no such check.
  std::function<int64_t()> spool_depth = {};
  // Replicas (docs/ha.md): why this replica must not publish now, e.g. its clock is too far off
  // the database's; "" when it may. Shown as checks.replica; not ready while non-empty. Empty
  // function: a single writer, no such check.
  std::function<std::string()> replica_problem = {};
  // Replicas: whether this replica holds `feed` now; a feed held by another replica is not
  // checked for overdue outcomes here (its holder publishes it). Empty function: all are ours.
  std::function<bool(const FeedId&)> holds_feed = {};
};

struct ApiOptions {
  // Few threads, at lower priority, so HTTP load cannot starve the slot workers. cpp-httplib
  // serves a connection per thread and a keep-alive connection keeps its thread: the small
  // keep_alive_max_count below makes busy connections take turns, so more clients than threads
  // are all served without long waits.
  size_t threads = 8;
  std::chrono::milliseconds read_timeout{5000};
  std::chrono::milliseconds write_timeout{5000};
  std::chrono::seconds keep_alive_timeout{2};
  size_t keep_alive_max_count = 100;
  size_t max_body = 64 * 1024;  // larger bodies: 413
  size_t max_uri = 8 * 1024;    // longer request targets: 414
  // A feed is not ready when no outcome arrived this long after its next slot's deadline.
  std::chrono::milliseconds overdue_grace{1000};
  // Open GET /v1/events streams at most (each holds a thread): half the threads by default.
  size_t max_event_streams = 4;
  // An idle event stream gets a comment line this often; a closed client is noticed then.
  std::chrono::milliseconds event_heartbeat{5000};
};

// Whether two strings are equal, in time that depends only on the length of `expected`.
// Hand-written (a XOR-OR loop, as OpenSSL's CRYPTO_memcmp): libsodium is not available, and
// OpenSSL is only a private dependency of cpp-httplib, not one of ours.
bool constant_time_equal(std::string_view given, std::string_view expected);

class ApiServer {
 public:
  explicit ApiServer(ApiDeps deps, ApiOptions options = {});
  ~ApiServer();  // stop()
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Binds "host:port" (port 0: any free port, see port()) and starts serving on a thread.
  // InvalidArgument for a malformed address, Unavailable when it cannot be bound.
  Status start(const std::string& listen);
  // Stops accepting, finishes requests in flight, joins the threads. Idempotent.
  void stop();
  // The bound port. REQUIRES: start() succeeded.
  int port() const { return port_; }

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
  std::jthread listener_;
  int port_ = 0;
};

}  // namespace metronome
