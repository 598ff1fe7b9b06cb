// ReplicaLeases: which feeds this replica may publish when several replicas share one
// PostgreSQL store (docs/ha.md). The daemon and the scheduler's ownership hook see only this
// interface; its implementation (LeaseManager, ha/lease_manager.h) lives with the PostgreSQL
// backend, which the daemon loads only for [store] kind = "postgres" (ha/postgres_backend.h).
//
// Thread-safety: tick() from one thread at a time (the thread of start(), or a test); owns(),
// clock_ok(), last_skew(), held() and replica_id() from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/ids.h"
#include "common/status.h"
#include "common/time.h"

namespace metronome {

struct LeaseOptions {
  std::string replica_id;  // unique per running process; empty: "HOST-PID-RANDOM"
  Millis ttl{2000};
  Millis renew{500};
  Millis max_clock_skew{50};
};

class ReplicaLeases {
 public:
  virtual ~ReplicaLeases() = default;

  // One round: measure the clock against the database's, heartbeat, take or renew this
  // replica's share of `feeds`, release the rest.
  virtual Status tick(const std::vector<FeedId>& feeds) = 0;
  // The scheduler's hook: the epoch of this replica's lease on `feed` if it is valid at local
  // time `at`; nullopt otherwise (another replica's feed, an expired lease, a bad clock).
  virtual std::optional<int64_t> owns(const FeedId& feed, WallTime at) const = 0;
  // False while this replica's clock is beyond max_clock_skew of the database's.
  virtual bool clock_ok() const = 0;
  // The last measured offset: this replica's clock minus the database's.
  virtual Nanos last_skew() const = 0;
  // The feeds whose lease this replica holds now.
  virtual std::vector<FeedId> held() const = 0;
  virtual const std::string& replica_id() const = 0;

  // Called on the renewal thread after each tick() with its status. Must not block.
  // REQUIRES: set before start().
  virtual void set_on_tick(std::function<void(const Status&)> callback) = 0;
  // Runs tick() on an owned thread until stop(); called again, restarts it with new feeds.
  virtual void start(std::vector<FeedId> feeds) = 0;
  virtual void stop() = 0;
  // After stop(): withdraws the heartbeat and expires the leases held, so the other replicas
  // take them at once. Best effort.
  virtual Status resign() = 0;
};

}  // namespace metronome
