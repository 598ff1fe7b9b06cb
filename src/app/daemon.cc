#include "app/daemon.h"

#include <malloc.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <variant>

#include "api/event_hub.h"
#include "api/http_server.h"
#include "api/metrics.h"
#include "api/slot_reporter.h"
#include "api/status_board.h"
#include "app/postgres_plugin_loader.h"
#include "app/store_factory.h"
#include "app/systemd_notify.h"
#include "dlq/alarms.h"
#include "dlq/dead_letter_queue.h"
#include "evm/evm_sink.h"
#include "publish/publisher.h"
#include "secret/file_secret.h"
#include "secret/secret_registry.h"
#include "sign/presign.h"
#include "sign/signing_key.h"
#include "sink/sink_dispatcher.h"
#include "source/make_source.h"
#include "workflow/scheduler.h"

namespace metronome {
namespace {

bool has_evm_sink(const FeedConfig& feed) {
  return std::any_of(feed.sinks.begin(), feed.sinks.end(),
                     [](const SinkConfig& s) { return std::holds_alternative<EvmSinkConfig>(s); });
}

// The runtimes of `config`'s feeds: sources built, signing keys read and checked.
Result<std::vector<std::unique_ptr<FeedRuntime>>> make_runtimes(
    const Config& config, const SecretRegistry& secrets, Clock& clock,
    const std::shared_ptr<PresignPool>& presign) {
  std::vector<std::unique_ptr<FeedRuntime>> out;
  for (const auto& feed : config.feeds) {
    auto rt = std::make_unique<FeedRuntime>();
    rt->id = feed.id;
    rt->schedule = feed.schedule;
    rt->window = feed.window;
    rt->deadline = feed.deadline;
    rt->observe_lead = feed.observe_lead;
    rt->retries = feed.retries;
    rt->decimals = feed.decimals;
    rt->bounds = SanityBounds{feed.min_value, feed.max_value, feed.max_change_pct};
    auto source = make_source(feed.source, feed.decimals, &secrets, clock);
    if (!source) return source.status().With(fmt::format("feed {}: source", feed.id));
    rt->source = std::move(*source);
    if (!feed.secret.empty()) {
      METRONOME_ASSIGN_OR_RETURN(
          rt->signer, FeedSigner::create(feed.id, feed.secret, secrets, feed.chain_id, presign));
    }
    // MetronomeFeed checks signatures over single observations (ADR 0006 and 0018).
    rt->batch_signatures = config.service.sign_batch > 1 && !has_evm_sink(feed);
    out.push_back(std::move(rt));
  }
  return out;
}

}  // namespace

struct Daemon::Parts {
  Clock* clock = nullptr;
  std::shared_ptr<PresignPool> presign;  // [service] presign > 0; shared by every Signer
  std::string listen;
  std::unique_ptr<Store> store;
  SpoolingStore* spool = nullptr;    // PostgreSQL: `store` itself, spooling during outages
  std::unique_ptr<Store> api_store;  // the API's own read-only connection
  std::unique_ptr<StatusBoard> board;
  std::unique_ptr<Metrics> metrics;
  std::unique_ptr<EventHub> events;  // the dashboard's live events (GET /v1/events)
  std::unique_ptr<SlotReporter> reporter;
  std::unique_ptr<ApiServer> api;
  Config config;  // the configuration in force
  std::atomic<bool> scheduler_started{false};
  std::unique_ptr<SecretRegistry> secrets;
  // Every generation of feeds and secrets since start: executions planned before a reload keep
  // pointing at the runtimes they were planned with, so none is ever freed while running.
  std::vector<std::unique_ptr<FeedRuntime>> retired_feeds;
  std::vector<std::unique_ptr<SecretRegistry>> retired_secrets;
  std::vector<std::unique_ptr<FeedRuntime>> feeds;
  std::unique_ptr<DeadLetterQueue> dlq;
  std::unique_ptr<SinkDispatcher>
      sinks;  // after the store: records go on from the outcome callback
  std::unique_ptr<Publisher> publisher;
  std::unique_ptr<AlarmManager> alarms;
  // Replicas on PostgreSQL (docs/ha.md): which feeds this process publishes. After the store
  // (it stops before the store closes) and before the scheduler (whose hook asks it).
  std::unique_ptr<ReplicaLeases> leases;
  std::unique_ptr<Scheduler> scheduler;
};

namespace {

std::vector<FeedId> feed_ids(const Config& config) {
  std::vector<FeedId> ids;
  for (const auto& feed : config.feeds) ids.push_back(feed.id);
  return ids;
}

// The host part of a replica id "HOST-PID-RANDOM".
std::string host_of(const std::string& replica_id) {
  size_t last = replica_id.rfind('-');
  size_t pid = last == std::string::npos || last == 0 ? last : replica_id.rfind('-', last - 1);
  return pid == std::string::npos ? replica_id : replica_id.substr(0, pid);
}

// PostgreSQL: the replica's leases (their own connection), and the scheduler's hook on them.
Result<std::unique_ptr<ReplicaLeases>> open_leases(const Config& config,
                                                   const SecretRegistry& secrets, Clock& clock,
                                                   SchedulerOptions& options) {
  if (config.store.kind != "postgres") return std::unique_ptr<ReplicaLeases>();
  PostgresStoreOptions db;
  db.url = config.store.url;
  if (!config.store.password_secret.empty()) {
    auto password = secrets.read(config.store.password_secret);
    if (!password.ok()) return password.status().With("store password ([store] password_secret)");
    db.password = std::string(password->reveal());
  }
  LeaseOptions lease_options{.replica_id = "",  // the backend makes one: HOST-PID-RANDOM
                             .ttl = config.store.lease_ttl,
                             .renew = config.store.lease_renew,
                             .max_clock_skew = config.store.max_clock_skew};
  METRONOME_ASSIGN_OR_RETURN(const PostgresBackend* postgres, load_postgres_backend());
  METRONOME_ASSIGN_OR_RETURN(std::unique_ptr<ReplicaLeases> leases,
                             postgres->open_leases(db, lease_options, clock));
  options.ownership = [m = leases.get()](const FeedId& feed,
                                         WallTime at) -> std::optional<SlotFence> {
    std::optional<int64_t> epoch = m->owns(feed, at);
    if (!epoch) return std::nullopt;
    return SlotFence{m->replica_id(), *epoch};
  };
  return leases;
}

}  // namespace

void limit_malloc_arenas() {
  if (mallopt(M_ARENA_MAX, 2) != 1) spdlog::warn("could not limit malloc arenas (M_ARENA_MAX)");
}

Status ensure_default_secret(const Config& config) {
  if (!config.is_builtin_default()) return Status::Ok();
  for (const auto& [name, secret] : config.secrets) {
    if (!secret.file || std::filesystem::exists(*secret.file)) continue;
    // The default feed signs with this secret, so it is a signing key.
    METRONOME_ASSIGN_OR_RETURN(std::string key, generate_signing_key_hex());
    SecretValue value(std::move(key));
    METRONOME_RETURN_IF_ERROR(FileSecret::create(*secret.file, value));
    METRONOME_ASSIGN_OR_RETURN(SigningKey signing_key, SigningKey::FromHex(name, value.reveal()));
    spdlog::info("created signing key {} at {} (mode 0600), address {}", name,
                 secret.file->string(), to_checksum_address(signing_key.address()));
  }
  return Status::Ok();
}

Daemon::Daemon(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}
Daemon::~Daemon() = default;

Result<std::unique_ptr<Daemon>> Daemon::create(const Config& config, Clock& clock) {
  auto parts = std::make_unique<Parts>();
  parts->clock = &clock;
  METRONOME_RETURN_IF_ERROR(ensure_default_secret(config));

  METRONOME_ASSIGN_OR_RETURN(SecretRegistry secrets,
                             SecretRegistry::from_config(config.secrets, clock));
  parts->secrets = std::make_unique<SecretRegistry>(std::move(secrets));
  METRONOME_ASSIGN_OR_RETURN(parts->store,
                             open_daemon_store(config, *parts->secrets, clock, &parts->spool));

  if (config.service.presign > 0) {
    METRONOME_ASSIGN_OR_RETURN(
        parts->presign,
        PresignPool::Create(PresignPool::Options{.capacity = config.service.presign}));
    spdlog::info("signing with presignatures: {} kept ready by an idle-priority thread",
                 config.service.presign);
  }
  METRONOME_ASSIGN_OR_RETURN(parts->feeds,
                             make_runtimes(config, *parts->secrets, clock, parts->presign));
  std::vector<const FeedRuntime*> runtimes;
  for (const auto& rt : parts->feeds) runtimes.push_back(rt.get());
  parts->config = config;

  // The API reads through its own read-only connection, so HTTP never waits on the writer.
  METRONOME_ASSIGN_OR_RETURN(parts->api_store,
                             open_store(config, StoreUse::kDaemonApi, *parts->secrets));
  parts->board = std::make_unique<StatusBoard>();
  parts->metrics = std::make_unique<Metrics>(METRONOME_VERSION);
  if (SpoolingStore* spool = parts->spool) {
    Metrics* metrics = parts->metrics.get();
    metrics->set_spool_depth(spool->stats().depth);
    spool->set_on_depth([metrics](int64_t depth) { metrics->set_spool_depth(depth); });
    spool->start();
  }
  parts->events = std::make_unique<EventHub>();
  parts->reporter =
      std::make_unique<SlotReporter>(*parts->board, *parts->metrics, parts->events.get());
  {
    std::vector<FeedSummary> summaries;
    std::vector<FeedId> ids;
    for (size_t i = 0; i < config.feeds.size(); ++i) {
      summaries.push_back(summarize_feed(config.feeds[i], parts->feeds[i]->source->describe()));
      ids.push_back(config.feeds[i].id);
    }
    parts->board->set_feeds(std::move(summaries));
    // The latest value survives a restart: seed the snapshots from the store.
    for (size_t i = 0; i < config.feeds.size(); ++i) {
      auto latest = parts->store->latest_value(config.feeds[i].id);
      if (latest.ok() && *latest) parts->board->on_published(**latest);
    }
    parts->metrics->set_feeds(ids);
  }

  parts->dlq = std::make_unique<DeadLetterQueue>(*parts->store, clock);
  parts->publisher = std::make_unique<Publisher>(*parts->store, *parts->dlq, clock);
  {
    // Missing credentials or a missing table stop the start; an unreachable endpoint does not.
    std::vector<FeedSinks> sinks = make_feed_sinks(config, clock);
    METRONOME_RETURN_IF_ERROR(check_feed_sinks(sinks));
    parts->sinks = std::make_unique<SinkDispatcher>(*parts->dlq, clock);
    parts->sinks->configure(std::move(sinks));
    for (const std::string& stage : SinkDispatcher::stages()) {
      parts->dlq->set_stage_redriver(
          stage, [d = parts->sinks.get()](const DlqMessage& m) { return d->redrive(m); });
    }
    parts->dlq->set_on_record_stored(
        [d = parts->sinks.get()](const ValueRecord& r) { d->submit(r); });
  }
  parts->alarms = std::make_unique<AlarmManager>(
      *parts->store, clock, config.alarms,
      with_alarm_events(make_alarm_actions(config.alarms, clock), *parts->events));
  if (parts->presign) {
    // The pool's gauges, refreshed at each evaluation (every 5 s); no alarm of its own.
    parts->alarms->add_check(
        [metrics = parts->metrics.get(), pool = parts->presign]() -> std::vector<AlarmDecision> {
          metrics->set_presign(pool->ready(), pool->taken(), pool->missed());
          return {};
        });
  }
  // The evm sinks: their alarms, and their gauges refreshed at each evaluation (every 5 s) from
  // the same cached statuses.
  parts->alarms->add_check([&clock, metrics = parts->metrics.get()] {
    std::vector<EvmSinkGauges> gauges;
    for (const EvmSinkReading& r : evm_sink_readings(clock)) {
      gauges.push_back({r.feed, r.onchain_staleness, r.pending_tx_age, r.sender_balance_eth});
    }
    metrics->set_evm_sinks(gauges);
    return evm_alarm_decisions(clock);
  });
  SchedulerOptions options;
  options.realtime = config.service.realtime;
  options.presign = parts->presign;
  options.sign_batch = config.service.sign_batch;
  if (config.service.sign_batch > 1) {
    const auto alone = std::count_if(config.feeds.begin(), config.feeds.end(), has_evm_sink);
    spdlog::info(
        "batch signatures: up to {} records a worker publishes in a row share one signature; {} "
        "feed(s) with an evm sink are signed one by one",
        config.service.sign_batch, alone);
  }
  // Page faults on the slot path would undo the priority. MCL_ONFAULT locks pages once touched
  // instead of populating every mapping (256 worker stacks of 8 MB would otherwise be resident).
  // Refused (no CAP_IPC_LOCK and a low RLIMIT_MEMLOCK): one warning, the daemon runs unlocked.
  if (config.service.realtime && ::mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0) {
    spdlog::warn("realtime = true, but mlockall was refused ({}); memory stays pageable",
                 std::strerror(errno));
  }
  // systemd's watchdog (WatchdogSec=): the timer thread pings it at half the interval, so a
  // stuck timer gets the service restarted. Not under systemd: no heartbeat.
  if (std::optional<std::chrono::microseconds> watchdog = systemd::watchdog_interval()) {
    options.heartbeat_period = *watchdog / 2;
    options.heartbeat = [failed = false]() mutable {
      Status s = systemd::notify("WATCHDOG=1");
      if (!s.ok() && !failed) spdlog::error("watchdog ping failed: {}", s.message());
      failed = !s.ok();
    };
    spdlog::info("systemd watchdog every {} ms",
                 std::chrono::duration_cast<std::chrono::milliseconds>(*watchdog).count());
  }
  options.on_clock_step = [reporter = parts->reporter.get()](WallTime at, Nanos step) {
    reporter->on_clock_step(at, step);
  };
  METRONOME_ASSIGN_OR_RETURN(parts->leases, open_leases(config, *parts->secrets, clock, options));
  parts->scheduler = std::make_unique<Scheduler>(clock, *parts->store, *parts->dlq,
                                                 *parts->publisher, runtimes, options);
  AlarmManager* alarms = parts->alarms.get();
  SlotReporter* reporter = parts->reporter.get();
  EventHub* events = parts->events.get();
  parts->dlq->set_on_change([alarms, events] {
    alarms->poke();
    events->on_dlq_change();
  });
  SinkDispatcher* sinks = parts->sinks.get();
  parts->publisher->set_on_outcome([alarms, reporter, sinks](const FeedId& feed,
                                                             const SlotRecord& slot,
                                                             const ValueRecord* record) {
    reporter->on_slot(feed, slot, record);
    if (record != nullptr) sinks->submit(*record);  // queued: never delays the slot
    if (slot.outcome != SlotOutcome::kPublished) alarms->poke();
  });
  parts->publisher->set_on_store_write(
      [reporter](const Status& s) { reporter->on_store_write(s); });

  ApiDeps deps{*parts->api_store,
               *parts->dlq,
               *parts->board,
               *parts->metrics,
               clock,
               {},
               METRONOME_VERSION,
               [reporter](const ValueRecord& r) { reporter->on_redriven(r); },
               parts->events.get()};
  if (SpoolingStore* spool = parts->spool) {
    deps.spool_depth = [spool] { return spool->stats().depth; };
  }
  if (!config.service.admin_token_secret.empty()) {
    SecretRegistry* secrets = parts->secrets.get();
    SecretName name = config.service.admin_token_secret;
    deps.admin_token = [secrets, name] { return secrets->read(name); };
  }
  if (ReplicaLeases* leases = parts->leases.get()) {
    // Replicas: readiness and the clock_skew alarm follow the clock discipline; metrics follow
    // every renewal.
    const std::string host = host_of(leases->replica_id());
    const Millis max_skew = config.store.max_clock_skew;
    deps.replica_problem = [leases, max_skew]() -> std::string {
      if (leases->clock_ok()) return "";
      return fmt::format(
          "clock {} us off the database's (max_clock_skew {} ms): publishing nothing",
          std::chrono::duration_cast<std::chrono::microseconds>(leases->last_skew()).count(),
          max_skew.count());
    };
    deps.holds_feed = [leases, clock = &clock](const FeedId& feed) {
      return leases->owns(feed, clock->now()).has_value();
    };
    parts->alarms->set_clock_check([leases, host, max_skew] {
      return ClockCheck{.host = host,
                        .ok = leases->clock_ok(),
                        .skew = leases->last_skew(),
                        .max_skew = max_skew};
    });
    Metrics* metrics = parts->metrics.get();
    leases->set_on_tick([leases, metrics, alarms,
                         was_ok = std::make_shared<std::atomic<bool>>(true)](const Status& s) {
      metrics->on_lease_renewal(!s.ok(), leases->held().size(), leases->last_skew());
      if (was_ok->exchange(leases->clock_ok()) != leases->clock_ok()) alarms->poke();
    });
  }
  parts->api = std::make_unique<ApiServer>(std::move(deps));
  parts->listen = config.service.listen;
  return std::unique_ptr<Daemon>(new Daemon(std::move(parts)));
}

Status Daemon::reload() {
  Parts& p = *parts_;
  if (!p.scheduler_started.load()) {
    return Status::Unavailable("the daemon is still starting; send SIGHUP again in a moment");
  }
  if (p.config.is_builtin_default()) {
    spdlog::info("SIGHUP: running on the built-in default config; nothing to reload");
    return Status::Ok();
  }
  auto config = load_config(p.config.file);
  if (!config.ok()) return config.status();
  if (config->store.kind != p.config.store.kind || config->store.path != p.config.store.path ||
      config->store.dlq_path != p.config.store.dlq_path ||
      config->store.url != p.config.store.url ||
      config->store.password_secret != p.config.store.password_secret ||
      config->service.listen != p.config.service.listen) {
    return Status::InvalidArgument(
        "[store] and [service] listen cannot change by reload; restart the daemon for them");
  }
  METRONOME_ASSIGN_OR_RETURN(SecretRegistry secrets,
                             SecretRegistry::from_config(config->secrets, *p.clock));
  std::vector<FeedSinks> sinks = make_feed_sinks(*config, *p.clock);
  METRONOME_RETURN_IF_ERROR(check_feed_sinks(sinks));
  auto registry = std::make_unique<SecretRegistry>(std::move(secrets));
  if (config->service.presign != p.config.service.presign) {
    spdlog::warn("[service] presign changed from {} to {}: it takes effect at the next restart",
                 p.config.service.presign, config->service.presign);
    config->service.presign = p.config.service.presign;
  }
  if (config->service.sign_batch != p.config.service.sign_batch) {
    spdlog::warn("[service] sign_batch changed from {} to {}: it takes effect at the next restart",
                 p.config.service.sign_batch, config->service.sign_batch);
    config->service.sign_batch = p.config.service.sign_batch;
  }
  METRONOME_ASSIGN_OR_RETURN(auto feeds, make_runtimes(*config, *registry, *p.clock, p.presign));

  std::vector<const FeedRuntime*> runtimes;
  std::vector<FeedSummary> summaries;
  for (size_t i = 0; i < feeds.size(); ++i) {
    runtimes.push_back(feeds[i].get());
    summaries.push_back(summarize_feed(config->feeds[i], feeds[i]->source->describe()));
  }
  p.scheduler->reconfigure(runtimes);
  if (p.leases) p.leases->start(feed_ids(*config));  // renews the new feed list's leases
  p.sinks->configure(std::move(sinks));
  p.board->set_feeds(std::move(summaries));
  for (auto& rt : p.feeds) p.retired_feeds.push_back(std::move(rt));
  p.feeds = std::move(feeds);
  p.retired_secrets.push_back(std::move(p.secrets));
  p.secrets = std::move(registry);
  p.config = std::move(*config);
  spdlog::info("reloaded {}: {} feeds", p.config.file.string(), p.feeds.size());
  return Status::Ok();
}

Status Daemon::run(std::stop_token stop) {
  Parts& p = *parts_;
  for (const auto& feed : p.feeds) {
    spdlog::info("feed={} {} window={} source={}", feed->id, feed->schedule.describe(),
                 format_duration(feed->window), feed->source->describe());
  }
  METRONOME_RETURN_IF_ERROR(p.api->start(p.listen));
  spdlog::info("API listening on {}:{}", p.listen.substr(0, p.listen.rfind(':')), p.api->port());
  if (p.leases) {
    // One renewal before recovery, so that it knows the feeds this replica holds.
    Status first = p.leases->tick(feed_ids(p.config));
    if (!first.ok()) spdlog::warn("{}", first.message());
    p.leases->start(feed_ids(p.config));
  }
  METRONOME_RETURN_IF_ERROR(p.scheduler->start());
  p.scheduler_started.store(true);
  p.alarms->start();
  p.alarms->poke();  // missed slots recorded by recovery
  // Every feed's first execution is planned: tell systemd (Type=notify) we are ready.
  if (Status s = systemd::notify("READY=1\nSTATUS=publishing"); !s.ok()) {
    spdlog::error("could not tell systemd the daemon is ready: {}", s.message());
  }
  spdlog::info("metronome running");

  std::mutex mu;
  std::condition_variable_any cv;
  std::unique_lock lock(mu);
  cv.wait(lock, stop, [] { return false; });

  if (Status s = systemd::notify("STOPPING=1"); !s.ok()) {
    spdlog::warn("could not tell systemd the daemon is stopping: {}", s.message());
  }
  spdlog::info("stopping: no new slots; waiting for slots in flight");
  p.scheduler->stop();
  if (p.leases) {
    // Hand the feeds over now rather than after the TTL.
    p.leases->stop();
    Status resigned = p.leases->resign();
    if (!resigned.ok()) spdlog::warn("{}", resigned.message());
  }
  p.sinks->stop();  // after the last slot: its records still reach the sinks (or the DLQ)
  p.api->stop();
  (void)p.alarms->evaluate_once();
  p.alarms.reset();
  if (p.presign) {
    spdlog::info(
        "presignatures: {} signatures used one, {} found none ready and were signed the "
        "usual way",
        p.presign->taken(), p.presign->missed());
  }
  spdlog::info("stopped");
  return Status::Ok();
}

}  // namespace metronome
