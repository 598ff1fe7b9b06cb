// LeaseManager: which feeds this replica may publish, when several replicas share one PostgreSQL
// store (docs/ha.md).
//
// Every `renew` interval, tick():
//   1. measures the clock: the database's clock_timestamp() against this replica's Clock, half
//      the round trip subtracted. Beyond `max_clock_skew` the replica must publish nothing: it
//      withdraws its heartbeat, gives up its leases and reports clock_ok() == false until a
//      later measurement is within bounds again;
//   2. refreshes this replica's heartbeat (table replicas) and reads the live replicas (seen
//      within `ttl`);
//   3. computes, by rendezvous hashing over the live replicas, the feeds this replica should
//      hold, and in one statement takes or renews their leases (table leases): a lease is taken
//      only when free, expired or already ours; its epoch grows on every change of holder;
//   4. releases (expires now) the leases it holds but should not, so their new owner takes them
//      at its next tick.
// The next tick comes `renew` later, or sooner: just after the moment another replica's
// heartbeat runs out (if it stays silent, its feeds become ours) or a lease on a feed of our
// share runs out. So a replica that dies or stops is replaced at the first slot after its
// leases expire (at most ceil(TTL / interval) + 1 slots lost), not up to `renew` later.
// owns(feed, at) is the hook the scheduler asks before publishing a slot: the lease's epoch if
// this replica holds the feed's lease and the lease is still valid at local time `at`, judged
// conservatively (valid until the renewal's send time + ttl - max_clock_skew). It does no I/O.
//
// Database outage (docs/ha.md): when a renewal fails because the database cannot be reached
// (connection refused or lost: Status unavailable), the replica enters the "outage" state
// (logged once, database_reachable() == false) and owns() keeps answering for the feeds it held
// at its last successful renewal, whatever their local expiry, so that slots keep being observed
// and signed while their commits wait in the local spool (src/store/spooling_store.h), replayed
// unfenced and insert-if-absent when the database is back. The first successful renewal ends the
// outage and answers with what the database says: a lease lost meanwhile stops at once. Any
// other renewal error (a statement refused) leaves the leases valid only until their expiry.
//
// Thread-safety: tick() from one thread at a time (the owner thread of start(), or a test);
// owns(), clock_ok(), held() from any thread.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "clock/clock.h"
#include "common/ids.h"
#include "common/result.h"
#include "common/time.h"
#include "ha/replica_leases.h"
#include "store/postgres_store.h"

namespace metronome {

// "HOST-PID-RANDOM": a replica id unique to this process.
std::string make_replica_id();

// The replica that should hold `feed` among `live` (rendezvous / highest-random-weight hashing:
// each replica's weight is a hash of (feed, replica); the highest wins, so a replica joining or
// leaving moves only the feeds it wins or held). Empty when `live` is empty. Deterministic
// across processes and builds.
std::string rendezvous_owner(const FeedId& feed, const std::vector<std::string>& live);

class LeaseManager final : public ReplicaLeases {
 public:
  // Connects (its own connection). REQUIRES: the database migrated to a schema with leases.
  static Result<std::unique_ptr<LeaseManager>> open(const PostgresStoreOptions& database,
                                                    LeaseOptions options, Clock& clock);
  ~LeaseManager() override;

  // One round (see the header comment) for the configured `feeds`. An error (database down)
  // leaves the leases held so far valid only until their local expiry.
  Status tick(const std::vector<FeedId>& feeds) override;

  // The hook: the epoch of this replica's lease on `feed` if the lease is valid at local time
  // `at`; nullopt otherwise (another replica's feed, an expired lease, a bad clock).
  std::optional<int64_t> owns(const FeedId& feed, WallTime at) const override;

  bool clock_ok() const override { return clock_ok_.load(); }
  // False from a renewal that failed because the database was unreachable until the next
  // renewal that succeeds (see "Database outage" above).
  bool database_reachable() const { return reachable_.load(); }
  // Renewals (tick()) that failed, since open().
  uint64_t renew_failures() const { return renew_failures_.load(); }
  // The last measured offset: this replica's clock minus the database's.
  Nanos last_skew() const override { return Nanos(last_skew_ns_.load()); }
  // The feeds whose lease this replica holds now (may be stale by up to one renew interval).
  std::vector<FeedId> held() const override;
  const std::string& replica_id() const override { return options_.replica_id; }
  // How long start()'s thread waits after the last tick() before the next one (see the header
  // comment): `renew`, or less. REQUIRES: the thread that calls tick().
  Nanos next_tick_in() const { return next_tick_in_; }

  // Called on the renewal thread after each tick() with its status (metrics, alarms). Must not
  // block. REQUIRES: set before start().
  void set_on_tick(std::function<void(const Status&)> callback) override {
    on_tick_ = std::move(callback);
  }

  // Runs tick() every `renew` on an owned thread until stop() (or destruction). Logs at info
  // when the replica becomes a standby (no lease) or takes / loses leases. Calling it again
  // (a reloaded config) restarts the thread with the new feeds; leases held so far stay.
  void start(std::vector<FeedId> feeds) override;
  void stop() override;
  // A replica shutting down (after stop()): withdraws its heartbeat and expires its leases, so
  // the others take its feeds at their next renewal instead of after the TTL. Best effort.
  Status resign() override;

 private:
  struct Held {
    int64_t epoch;
    WallTime valid_until;  // local time
  };
  LeaseManager(PostgresStoreOptions database, LeaseOptions options, Clock& clock);
  Status measure_clock();
  Status give_up_everything();
  // Records a failed renewal; `unreachable`: the database could not be reached (outage state).
  Status renewal_failed(std::string what, bool unreachable);

  const PostgresStoreOptions database_;
  const LeaseOptions options_;
  Clock& clock_;
  struct Connection;
  std::unique_ptr<Connection> connection_;  // used by tick() only

  mutable std::mutex mu_;
  std::map<FeedId, Held> held_;  // guarded by mu_
  std::atomic<bool> clock_ok_{true};
  std::atomic<int64_t> last_skew_ns_{0};
  std::atomic<bool> reachable_{true};
  std::atomic<uint64_t> renew_failures_{0};
  std::function<void(const Status&)> on_tick_;
  bool was_standby_ = false;  // tick() only: for the "standby" log line on change
  Nanos next_tick_in_{0};     // tick() only: set by each tick()
  std::jthread thread_;
};

}  // namespace metronome
