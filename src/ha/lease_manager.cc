#include "ha/lease_manager.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <pqxx/pqxx>
#include <random>
#include <set>

namespace metronome {
namespace {

// FNV-1a, then a splitmix64 finaliser so that near-equal names still spread: the same number
// in every process and build (std::hash promises neither).
uint64_t stable_hash(std::string_view a, std::string_view b) {
  uint64_t h = 1469598103934665603ULL;
  auto mix = [&](std::string_view s) {
    for (unsigned char ch : s) {
      h ^= ch;
      h *= 1099511628211ULL;
    }
  };
  mix(a);
  mix(std::string_view("\0", 1));
  mix(b);
  h += 0x9e3779b97f4a7c15ULL;
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
  return h ^ (h >> 31);
}

std::string text_array(const std::vector<std::string>& items) {
  std::string out = "{";
  for (const std::string& item : items) {
    if (out.size() > 1) out += ',';
    out += '"';
    for (char ch : item) {
      if (ch == '"' || ch == '\\') out += '\\';
      out += ch;
    }
    out += '"';
  }
  return out + "}";
}

constexpr const char* kHeartbeat =
    "INSERT INTO replicas(id, last_seen) VALUES ($1, clock_timestamp())"
    " ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen";
// The live replicas, each with the seconds left before it stops being live if it is silent.
constexpr const char* kLiveReplicas =
    "SELECT id, extract(epoch FROM last_seen + make_interval(secs => $1) - clock_timestamp())"
    " FROM replicas WHERE last_seen > clock_timestamp() - make_interval(secs => $1)"
    " ORDER BY id";
// The seconds left on the earliest unexpired lease another replica holds on a feed of $2.
constexpr const char* kWantedExpiry =
    "SELECT extract(epoch FROM min(expires_at) - clock_timestamp()) FROM leases"
    " WHERE feed = ANY($2::text[]) AND holder <> $1 AND expires_at > clock_timestamp()";
// Takes or renews the leases of the feeds in $2 for replica $1: only when free, expired or
// already ours; a change of holder increments the epoch.
constexpr const char* kAcquire = R"sql(
INSERT INTO leases(feed, holder, epoch, expires_at)
SELECT f, $1, 1, clock_timestamp() + make_interval(secs => $3) FROM unnest($2::text[]) AS f
ON CONFLICT (feed) DO UPDATE SET
  holder = excluded.holder,
  epoch = CASE WHEN leases.holder = excluded.holder THEN leases.epoch ELSE leases.epoch + 1 END,
  expires_at = excluded.expires_at
WHERE leases.holder = excluded.holder OR leases.expires_at < clock_timestamp()
RETURNING feed, epoch)sql";
// Expires now the leases replica $1 holds on feeds outside $2.
constexpr const char* kRelease =
    "UPDATE leases SET expires_at = clock_timestamp()"
    " WHERE holder = $1 AND expires_at > clock_timestamp() AND NOT (feed = ANY($2::text[]))";
constexpr const char* kDbTime = "SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint";

// How long after a heartbeat or lease runs out (by the database's clock) the early tick comes:
// the wait is measured before the sleep starts, so this only has to cover rounding.
constexpr Nanos kAfterRunOut = Millis(2);

}  // namespace

std::string make_replica_id() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  std::random_device random;
  return fmt::format("{}-{}-{:04x}", host[0] != '\0' ? host : "replica", ::getpid(),
                     random() & 0xffff);
}

std::string rendezvous_owner(const FeedId& feed, const std::vector<std::string>& live) {
  std::string best;
  uint64_t best_weight = 0;
  for (const std::string& replica : live) {
    const uint64_t w = stable_hash(feed.str(), replica);
    if (best.empty() || w > best_weight || (w == best_weight && replica < best)) {
      best = replica;
      best_weight = w;
    }
  }
  return best;
}

struct LeaseManager::Connection {
  std::string conninfo;
  std::unique_ptr<pqxx::connection> c;

  pqxx::connection& get() {
    if (c) {
      // A server that went away is found without a round trip (reading what is pending sees
      // its goodbye or EOF): executing on the broken connection would leak libpqxx 6's result.
      c->get_notifs();
      if (!c->is_open()) {
        c.reset();
        throw pqxx::broken_connection("the server closed the connection");
      }
    }
    if (!c) c = std::make_unique<pqxx::connection>(conninfo);
    return *c;
  }
};

LeaseManager::LeaseManager(PostgresStoreOptions database, LeaseOptions options, Clock& clock)
    : database_(std::move(database)),
      options_(std::move(options)),
      clock_(clock),
      next_tick_in_(options_.renew) {}

LeaseManager::~LeaseManager() {
  stop();
}

Result<std::unique_ptr<LeaseManager>> LeaseManager::open(const PostgresStoreOptions& database,
                                                         LeaseOptions options, Clock& clock) {
  if (options.replica_id.empty()) options.replica_id = make_replica_id();
  if (options.ttl <= options.renew || options.renew <= Millis(0)) {
    return Status::InvalidArgument(
        fmt::format("leases: the TTL ({} ms) must be longer than the renew interval ({} ms)",
                    options.ttl.count(), options.renew.count()));
  }
  PostgresStoreOptions db = database;
  db.application_name = "metronome-leases";
  auto m = std::unique_ptr<LeaseManager>(new LeaseManager(db, std::move(options), clock));
  m->connection_ = std::make_unique<Connection>();
  m->connection_->conninfo = postgres_conninfo(db);
  try {
    pqxx::connection& c = m->connection_->get();
    pqxx::nontransaction n(c);
    if (n.exec("SELECT to_regclass('leases') IS NULL")[0][0].as<bool>()) {
      return Status::InvalidArgument(
          fmt::format("leases: {} has no leases table; run `metronome migrate --config FILE`",
                      PostgresStore::redact_url(db.url)));
    }
  } catch (const std::exception& e) {
    return Status::Unavailable(
        fmt::format("leases: {}: {}", PostgresStore::redact_url(db.url), e.what()));
  }
  return m;
}

Status LeaseManager::measure_clock() {
  pqxx::nontransaction n(connection_->get());
  const WallTime before = clock_.now();
  const int64_t db_us = n.exec(kDbTime)[0][0].as<int64_t>();
  const WallTime after = clock_.now();
  const WallTime local_mid = before + (after - before) / 2;
  const Nanos skew = local_mid - WallTime(std::chrono::microseconds(db_us));
  last_skew_ns_.store(skew.count());
  const bool ok = std::chrono::abs(skew) <= options_.max_clock_skew;
  if (ok != clock_ok_.exchange(ok)) {
    if (ok) {
      spdlog::info("leases: clock back within {} ms of the database's (offset {} us)",
                   options_.max_clock_skew.count(),
                   std::chrono::duration_cast<std::chrono::microseconds>(skew).count());
    } else {
      spdlog::error(
          "leases: this replica's clock is {} us off the database's (max_clock_skew {} ms): "
          "publishing nothing until it is back",
          std::chrono::duration_cast<std::chrono::microseconds>(skew).count(),
          options_.max_clock_skew.count());
    }
  }
  return Status::Ok();
}

Status LeaseManager::give_up_everything() {
  {
    std::lock_guard lock(mu_);
    held_.clear();
  }
  pqxx::nontransaction n(connection_->get());
  n.exec_params("DELETE FROM replicas WHERE id = $1", options_.replica_id);
  n.exec_params(kRelease, options_.replica_id, std::string("{}"));
  return Status::Ok();
}

Status LeaseManager::tick(const std::vector<FeedId>& feeds) {
  next_tick_in_ = options_.renew;
  try {
    METRONOME_RETURN_IF_ERROR(measure_clock());
    if (!clock_ok()) return give_up_everything();

    const double ttl_s = std::chrono::duration<double>(options_.ttl).count();
    pqxx::nontransaction n(connection_->get());
    n.exec_params(kHeartbeat, options_.replica_id);
    std::vector<std::string> live;
    // The next tick comes sooner than `renew` when something this replica may take runs out
    // before then: another replica's heartbeat (its feeds become ours) or a lease we want.
    Nanos wait = options_.renew;
    auto run_out_in = [&wait](double seconds) {
      if (seconds < 0) return;
      wait =
          std::min(wait, std::chrono::duration_cast<Nanos>(std::chrono::duration<double>(seconds)) +
                             kAfterRunOut);
    };
    for (const pqxx::row& row : n.exec_params(kLiveReplicas, ttl_s)) {
      live.push_back(row[0].as<std::string>());
      if (live.back() != options_.replica_id) run_out_in(row[1].as<double>());
    }
    std::vector<std::string> mine;
    for (const FeedId& feed : feeds) {
      if (rendezvous_owner(feed, live) == options_.replica_id) mine.push_back(feed.str());
    }
    const std::string mine_array = text_array(mine);
    // Release first: a feed handed to a new replica is free for it at its next tick.
    n.exec_params(kRelease, options_.replica_id, mine_array);

    const WallTime sent = clock_.now();
    std::map<FeedId, Held> now_held;
    for (const pqxx::row& row : n.exec_params(kAcquire, options_.replica_id, mine_array, ttl_s)) {
      now_held[FeedId(row[0].as<std::string>())] =
          Held{row[1].as<int64_t>(), sent + options_.ttl - options_.max_clock_skew};
    }
    if (now_held.size() < mine.size()) {
      // Some of our share is still under another replica's lease (it has not noticed, or it
      // is gone): take it when that lease runs out, not up to `renew` later.
      const pqxx::row row = n.exec_params(kWantedExpiry, options_.replica_id, mine_array)[0];
      if (!row[0].is_null()) run_out_in(row[0].as<double>());
    }
    next_tick_in_ = wait;
    {
      std::lock_guard lock(mu_);
      for (const auto& [feed, h] : now_held) {
        auto it = held_.find(feed);
        if (it == held_.end() || it->second.epoch != h.epoch) {
          spdlog::info("leases: took feed {} (epoch {})", feed.str(), h.epoch);
        }
      }
      for (const auto& [feed, h] : held_) {
        if (!now_held.contains(feed)) spdlog::info("leases: gave up feed {}", feed.str());
      }
      held_ = std::move(now_held);
    }
    const bool standby = held().empty();
    if (standby && !was_standby_) {
      spdlog::info("leases: standby: this replica holds no lease ({} live replicas)", live.size());
    } else if (standby && was_standby_ && !feeds.empty()) {
      spdlog::debug("leases: standby ({} live replicas)", live.size());
    }
    was_standby_ = standby;
    if (!reachable_.exchange(true)) {
      spdlog::info("leases: the database answers again; {} leases held", held().size());
    }
    return Status::Ok();
  } catch (const pqxx::broken_connection& e) {
    return renewal_failed(e.what(), true);
  } catch (const pqxx::sql_error& e) {
    // Class 08 (connection exception) and 57P01..57P03 (the server shutting down or starting):
    // the database is unreachable, not refusing this statement.
    const std::string& state = e.sqlstate();
    return renewal_failed(e.what(), state.starts_with("08") || state.starts_with("57P0"));
  } catch (const std::exception& e) {
    return renewal_failed(e.what(), false);
  }
}

Status LeaseManager::renewal_failed(std::string what, bool unreachable) {
  connection_->c.reset();  // reconnect at the next tick
  ++renew_failures_;
  if (unreachable && reachable_.exchange(false)) {
    std::lock_guard lock(mu_);
    spdlog::warn(
        "leases: the database is unreachable; keeping the {} leases held at the last renewal "
        "until it answers (commits go to the spool)",
        held_.size());
  }
  while (!what.empty() && (what.back() == '\n' || what.back() == ' ')) what.pop_back();
  return Status::Unavailable(
      fmt::format("leases: {}: {}", PostgresStore::redact_url(database_.url), what));
}

std::optional<int64_t> LeaseManager::owns(const FeedId& feed, WallTime at) const {
  if (!clock_ok()) return std::nullopt;
  std::lock_guard lock(mu_);
  auto it = held_.find(feed);
  if (it == held_.end()) return std::nullopt;
  // In an outage the leases of the last renewal stand until the database answers again.
  if (at >= it->second.valid_until && reachable_.load()) return std::nullopt;
  return it->second.epoch;
}

std::vector<FeedId> LeaseManager::held() const {
  std::lock_guard lock(mu_);
  std::vector<FeedId> out;
  for (const auto& [feed, h] : held_) out.push_back(feed);
  return out;
}

void LeaseManager::start(std::vector<FeedId> feeds) {
  stop();
  spdlog::info("leases: replica {} (TTL {} ms, renewed every {} ms, max clock skew {} ms)",
               options_.replica_id, options_.ttl.count(), options_.renew.count(),
               options_.max_clock_skew.count());
  thread_ = std::jthread([this, feeds = std::move(feeds)](std::stop_token stop) {
    while (!stop.stop_requested()) {
      Status s = tick(feeds);
      if (!s.ok()) {
        // In an outage the state change was logged once; each failed renewal is debug.
        spdlog::log(database_reachable() ? spdlog::level::warn : spdlog::level::debug, "{}",
                    s.message());
      }
      if (on_tick_) on_tick_(s);
      if (!clock_.sleep_for(next_tick_in_, stop)) break;
    }
  });
}

Status LeaseManager::resign() {
  try {
    return give_up_everything();
  } catch (const std::exception& e) {
    return renewal_failed(e.what(), false);
  }
}

void LeaseManager::stop() {
  if (!thread_.joinable()) return;
  thread_.request_stop();
  thread_.join();
}

}  // namespace metronome
