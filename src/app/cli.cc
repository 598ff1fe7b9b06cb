#include "app/cli.h"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <thread>

#include "api/views.h"
#include "app/daemon.h"
#include "app/logging.h"
#include "app/store_factory.h"
#include "clock/system_clock.h"
#include "config/config.h"
#include "dlq/dead_letter_queue.h"
#include "evm/evm_cli.h"
#include "schedule/window.h"
#include "secret/file_secret.h"
#include "sign/signer.h"
#include "sign/signing_key.h"
#include "sink/dynamodb_sink.h"
#include "sink/sink_dispatcher.h"
#include "store/sqlite_store.h"

namespace metronome {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitRuntime = 1;
constexpr int kExitUsage = 2;

int fail(const Status& status, int code) {
  std::fprintf(stderr, "metronome: %s\n", status.message().c_str());
  return code;
}

bool is_config_error(const Status& s) {
  using C = Status::Code;
  return s.code() == C::kInvalidArgument || s.code() == C::kPermissionDenied ||
         s.code() == C::kNotFound || s.code() == C::kAlreadyExists;
}

struct Common {
  std::string config_path;
  std::string format = "table";
};

Result<Config> load(const Common& common) {
  if (common.config_path.empty()) {
    return builtin_default_config(std::filesystem::current_path());
  }
  return load_config(common.config_path);
}

// The secrets the store needs to open (the PostgreSQL password), and nothing else: a command
// must not fail over a secret it does not use.
Result<SecretRegistry> store_secrets(const Config& config) {
  std::map<SecretName, SecretConfig> needed;
  if (!config.store.password_secret.empty()) {
    needed.emplace(config.store.password_secret, config.secrets.at(config.store.password_secret));
  }
  return SecretRegistry::from_config(needed);
}

// The configured store (SQLite or PostgreSQL) for a reading or a writing command.
Result<std::unique_ptr<Store>> open_store(const Config& config, bool read_only) {
  METRONOME_ASSIGN_OR_RETURN(SecretRegistry secrets, store_secrets(config));
  return metronome::open_store(config, read_only ? StoreUse::kCliRead : StoreUse::kCliWrite,
                               secrets);
}

std::string slot_text(SlotTime t) {
  return to_unix_ms(t) % 1000 == 0 ? format_iso_s(t) : format_iso_ms(t);
}

int cmd_run(const Common& common) {
  auto config = load(common);
  if (!config.ok()) return fail(config.status(), kExitUsage);
  Status logging = setup_logging(config->service.log_level, config->service.log_format);
  if (!logging.ok()) return fail(logging, kExitUsage);

  // Signals are taken by sigwait() on this thread only: block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR1);  // the daemon thread ended on its own
  sigaddset(&signals, SIGHUP);   // reload the config
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  limit_malloc_arenas();
  if (Status sqlite = configure_sqlite_process(); !sqlite.ok()) {
    spdlog::warn("{}", sqlite.message());
  }

  SystemClock clock;
  spdlog::info("metronome {} starting with {}", METRONOME_VERSION,
               config->is_builtin_default() ? std::string("the built-in default config")
                                            : config->file.string());
  auto daemon = Daemon::create(*config, clock);
  if (!daemon.ok()) {
    spdlog::error("cannot start: {}", daemon.status().message());
    return is_config_error(daemon.status()) ? kExitUsage : kExitRuntime;
  }

  std::stop_source stop;
  Status result;
  std::thread worker([&] {
    result = (*daemon)->run(stop.get_token());
    kill(getpid(), SIGUSR1);
  });
  int sig = 0;
  for (;;) {
    sigwait(&signals, &sig);
    if (sig == SIGUSR1) break;
    if (sig == SIGHUP) {
      spdlog::info("received SIGHUP: reloading the config");
      Status reloaded = (*daemon)->reload();
      if (!reloaded.ok()) {
        spdlog::error("reload refused, keeping the running config: {}", reloaded.message());
      }
      continue;
    }
    spdlog::info("received {}", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    stop.request_stop();
  }
  worker.join();
  if (!result.ok()) {
    spdlog::error("{}", result.message());
    return kExitRuntime;
  }
  return kExitOk;
}

int cmd_plan(const Common& common, const std::string& feed) {
  auto config = load(common);
  if (!config.ok()) return fail(config.status(), kExitUsage);
  SystemClock clock;
  const WallTime now = clock.now();
  bool found = false;
  for (const auto& f : config->feeds) {
    if (!feed.empty() && f.id.str() != feed) continue;
    found = true;
    WindowPlan plan = plan_window(f.schedule, f.window, now);
    nlohmann::json times = nlohmann::json::array();
    for (SlotTime s : plan.slots) times.push_back(slot_text(s));
    nlohmann::ordered_json out = {{"feed", f.id.str()},
                                  {"next_minute", slot_text(plan.start)},
                                  {"invocation_times", std::move(times)}};
    std::cout << out.dump() << "\n";
  }
  if (!found) return fail(Status::NotFound("no feed '" + feed + "' in the config"), kExitUsage);
  return kExitOk;
}

int cmd_values(const Common& common, const std::string& feed, const std::string& since, int limit) {
  auto config = load(common);
  if (!config.ok()) return fail(config.status(), kExitUsage);
  ValueQuery q;
  if (!feed.empty()) {
    if (!config->find_feed(FeedId(feed))) {
      return fail(Status::NotFound("no feed '" + feed + "' in the config"), kExitUsage);
    }
    q.feed = FeedId(feed);
  }
  if (!since.empty()) {
    auto t = parse_iso(since);
    if (!t.ok()) return fail(t.status().With("--since"), kExitUsage);
    q.since = std::chrono::ceil<Millis>(*t);
  }
  q.limit = limit;
  auto store = open_store(*config, true);
  if (!store.ok()) return fail(store.status(), kExitRuntime);
  auto values = (*store)->list_values(q);
  if (!values.ok()) return fail(values.status(), kExitRuntime);
  if (common.format == "json") {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& v : *values) out.push_back(to_json(v));
    std::cout << out.dump(2) << "\n";
  } else {
    std::cout << values_table(*values);
  }
  return kExitOk;
}

int cmd_executions(const Common& common, const std::string& feed, int limit) {
  auto config = load(common);
  if (!config.ok()) return fail(config.status(), kExitUsage);
  ExecutionQuery q;
  if (!feed.empty()) q.feed = FeedId(feed);
  q.limit = limit;
  auto store = open_store(*config, true);
  if (!store.ok()) return fail(store.status(), kExitRuntime);
  auto executions = (*store)->list_executions(q);
  if (!executions.ok()) return fail(executions.status(), kExitRuntime);
  if (common.format == "json") {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& e : *executions) out.push_back(to_json(e));
    std::cout << out.dump(2) << "\n";
  } else {
    std::cout << executions_table(*executions);
  }
  return kExitOk;
}

struct DlqArgs {
  std::string action;  // list | show | redrive | purge
  int64_t id = -1;
  bool all = false;
};

int cmd_dlq(const Common& common, const DlqArgs& args) {
  auto config = load(common);
  if (!config.ok()) return fail(config.status(), kExitUsage);
  bool writes = args.action == "redrive" || args.action == "purge";
  if (writes && (args.id < 0) == !args.all) {
    return fail(Status::InvalidArgument("dlq " + args.action + " takes a message ID or --all"),
                kExitUsage);
  }
  auto store = open_store(*config, !writes);
  if (!store.ok()) return fail(store.status(), kExitRuntime);
  SystemClock clock;
  DeadLetterQueue dlq(**store, clock);
  // Messages of a sink stage are delivered to the feed's sinks from the config, not the store.
  SinkDispatcher sinks(dlq, clock);
  if (args.action == "redrive") {
    sinks.configure(make_feed_sinks(*config, clock));
    for (const std::string& stage : SinkDispatcher::stages()) {
      dlq.set_stage_redriver(stage, [&sinks](const DlqMessage& m) { return sinks.redrive(m); });
    }
    // A record stored by the redrive goes on to the sinks (drained, or to the DLQ, at exit).
    dlq.set_on_record_stored([&sinks](const ValueRecord& r) { sinks.submit(r); });
  }
  if (args.action == "list") {
    auto messages = dlq.list(1000);
    if (!messages.ok()) return fail(messages.status(), kExitRuntime);
    if (common.format == "json") {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& m : *messages) out.push_back(to_json(m));
      std::cout << out.dump(2) << "\n";
    } else {
      std::cout << dlq_table(*messages);
    }
    return kExitOk;
  }
  if (args.action == "show") {
    auto m = dlq.get(args.id);
    if (!m.ok()) return fail(m.status(), kExitRuntime);
    std::cout << to_json(*m).dump(2) << "\n";
    return kExitOk;
  }
  if (args.action == "redrive") {
    if (args.all) {
      RedriveSummary s = dlq.redrive_all();
      for (const auto& e : s.errors) std::fprintf(stderr, "metronome: %s\n", e.c_str());
      std::printf("redriven %d, not redrivable %d, failed %d\n", s.redriven, s.not_redrivable,
                  s.failed);
      return s.failed == 0 && s.not_redrivable == 0 ? kExitOk : kExitRuntime;
    }
    Status st = dlq.redrive(args.id);
    if (!st.ok()) return fail(st, kExitRuntime);
    std::printf("redriven %lld\n", static_cast<long long>(args.id));
    return kExitOk;
  }
  // purge
  if (args.all) {
    auto n = dlq.purge_all();
    if (!n.ok()) return fail(n.status(), kExitRuntime);
    std::printf("purged %d\n", *n);
    return kExitOk;
  }
  Status st = dlq.purge(args.id);
  if (!st.ok()) return fail(st, kExitRuntime);
  std::printf("purged %lld\n", static_cast<long long>(args.id));
  return kExitOk;
}

int cmd_backup(const Common& common, const std::string& out) {
  auto config = load(common);
  if (!config.ok()) return fail(config.status(), kExitUsage);
  std::filesystem::path values_out = out;
  std::filesystem::path dlq_out = values_out;
  std::filesystem::path evm_out = values_out;
  if (values_out.extension() == ".db") {
    dlq_out.replace_extension(".dlq.db");
    evm_out.replace_extension(".evm.db");
  } else {
    dlq_out += ".dlq.db";
    evm_out += ".evm.db";
  }
  if (config->store.kind != "sqlite") {
    return fail(Status::InvalidArgument(
                    "backup copies the SQLite files; back up a PostgreSQL store with pg_dump or "
                    "the database's own snapshots"),
                kExitUsage);
  }
  SqliteStoreOptions options;
  options.path = config->store.path;
  options.dlq_path = config->store.dlq_path;
  options.read_only = true;
  // The evm sinks' nonces and transactions in flight (evm/evm_state.h), when they exist:
  // restoring without them would forget an unmined transaction and reuse its nonce.
  const std::filesystem::path evm_db = config->service.data_dir / "evm.db";
  const bool with_evm = std::filesystem::exists(evm_db);
  for (const auto& f : {values_out, dlq_out, evm_out}) {
    if ((with_evm || f != evm_out) && std::filesystem::exists(f)) {
      return fail(Status::AlreadyExists(fmt::format(
                      "backup {}: the file exists; it is never overwritten", f.string())),
                  kExitUsage);
    }
  }
  auto store = SqliteStore::open(options);
  if (!store.ok()) return fail(store.status(), kExitRuntime);
  Status st = (*store)->backup(values_out, dlq_out);
  if (st.ok() && with_evm) st = backup_sqlite_file(evm_db, evm_out);
  if (!st.ok())
    return fail(st, st.code() == Status::Code::kAlreadyExists ? kExitUsage : kExitRuntime);
  std::printf("%s\n%s\n", values_out.c_str(), dlq_out.c_str());
  if (with_evm) std::printf("%s\n", evm_out.c_str());
  return kExitOk;
}

int cmd_keygen(const std::string& out) {
  auto key = generate_signing_key_hex();
  if (!key.ok()) return fail(key.status(), kExitRuntime);
  SecretValue value(std::move(*key));
  auto signing_key = SigningKey::FromHex(SecretName(out), value.reveal());
  if (!signing_key.ok()) return fail(signing_key.status(), kExitRuntime);
  Status st = FileSecret::create(out, value);
  if (!st.ok())
    return fail(st, st.code() == Status::Code::kAlreadyExists ? kExitUsage : kExitRuntime);
  std::printf("%s\n", to_checksum_address(signing_key->address()).c_str());
  std::fprintf(stderr, "metronome: wrote a new signing key to %s (mode 0600)\n", out.c_str());
  return kExitOk;
}

struct VerifyArgs {
  std::string file;  // empty: stdin
  std::string signer;
  int64_t chain_id = 0;  // 0: the feed's (config) chain id
};

int cmd_verify(const Common& common, const VerifyArgs& args) {
  auto config = load(common);
  if (!config.ok()) return fail(config.status(), kExitUsage);
  std::optional<Address> expected;
  if (!args.signer.empty()) {
    auto a = parse_address(args.signer);
    if (!a.ok()) return fail(a.status().With("--signer"), kExitUsage);
    expected = *a;
  }
  std::string text;
  if (args.file.empty()) {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    std::ifstream in(args.file);
    if (!in) return fail(Status::NotFound("cannot read " + args.file), kExitUsage);
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  nlohmann::json input;
  try {
    input = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    return fail(Status::InvalidArgument(std::string("input is not JSON: ") + e.what()), kExitUsage);
  }
  if (!input.is_array()) input = nlohmann::json::array({input});
  int bad = 0;
  for (size_t i = 0; i < input.size(); ++i) {
    std::string name = fmt::format("record {}", i);
    auto record = value_record_from_json(input[i]);
    if (!record.ok()) {
      std::printf("FAIL %s: %s\n", name.c_str(), record.status().message().c_str());
      ++bad;
      continue;
    }
    name = fmt::format("record {} ({} round {} slot {})", i, record->feed.str(), record->round,
                       format_iso_ms(record->slot));
    uint64_t chain_id = config->service.chain_id;
    if (const FeedConfig* f = config->find_feed(record->feed)) chain_id = f->chain_id;
    if (args.chain_id > 0) chain_id = static_cast<uint64_t>(args.chain_id);
    Status st = verify_record(*record, ObservationDomain(chain_id), expected);
    if (!st.ok()) {
      std::printf("FAIL %s: %s\n", name.c_str(), st.message().c_str());
      ++bad;
    }
  }
  std::printf("%zu records, %zu verified, %d failed\n", input.size(), input.size() - bad, bad);
  return bad == 0 ? kExitOk : kExitRuntime;
}

// Creates the DynamoDB table of each dynamodb sink of `feed` (on-demand billing).
int cmd_dynamodb_create_table(const Common& common, const std::string& feed) {
  auto config = load(common);
  if (!config.ok()) return fail(config.status(), kExitUsage);
  const FeedConfig* f = config->find_feed(FeedId(feed));
  if (f == nullptr)
    return fail(Status::NotFound("no feed '" + feed + "' in the config"), kExitUsage);
  SystemClock clock;
  int tables = 0;
  for (const SinkConfig& sink : f->sinks) {
    const auto* d = std::get_if<DynamoDbSinkConfig>(&sink);
    if (d == nullptr) continue;
    ++tables;
    DynamoDbSink dynamodb(f->id, *d, clock);
    Status st = dynamodb.create_table(std::chrono::seconds(60));
    if (st.code() == Status::Code::kAlreadyExists) {
      std::printf("table %s already exists\n", d->table.c_str());
      continue;
    }
    if (!st.ok()) return fail(st, is_config_error(st) ? kExitUsage : kExitRuntime);
    std::printf("created table %s (layout %s, on-demand billing)\n", d->table.c_str(),
                std::string(to_string(d->layout)).c_str());
  }
  if (tables == 0) {
    return fail(Status::NotFound("feed '" + feed + "' has no dynamodb sink"), kExitUsage);
  }
  return kExitOk;
}

int cmd_evm(const Common& common, bool deploy, const EvmDeployOptions& options) {
  auto config = load(common);
  if (!config.ok()) return fail(config.status(), kExitUsage);
  SystemClock clock;
  Status st = deploy ? evm_deploy(*config, options, clock, stdout).status()
                     : evm_status(*config, options.feed, clock, stdout);
  if (!st.ok()) return fail(st, is_config_error(st) ? kExitUsage : kExitRuntime);
  return kExitOk;
}

int cmd_migrate(const Common& common) {
  auto config = load(common);
  if (!config.ok()) return fail(config.status(), kExitUsage);
  auto secrets = store_secrets(*config);
  if (!secrets.ok()) return fail(secrets.status(), kExitUsage);
  auto done = migrate_store(*config, *secrets);
  if (!done.ok()) {
    return fail(done.status(),
                done.status().code() == Status::Code::kInvalidArgument ? kExitUsage : kExitRuntime);
  }
  std::printf("%s\n", done->c_str());
  return kExitOk;
}

int cmd_config_check(const Common& common) {
  auto config = load(common);
  if (!config.ok()) return fail(config.status(), kExitUsage);
  std::cout << dump_config(*config);
  std::fprintf(stderr, "metronome: config %s is valid\n",
               config->is_builtin_default() ? "(built-in default)" : config->file.c_str());
  return kExitOk;
}

}  // namespace

int run_cli(int argc, char** argv) {
  CLI::App app{"metronome: publishes a signed value for every slot, on the beat, exactly once",
               "metronome"};
  app.set_version_flag("--version", std::string("metronome ") + METRONOME_VERSION);
  app.require_subcommand(1);
  app.fallthrough();
  Common common;
  app.add_option("--config", common.config_path,
                 "TOML config file (default: the built-in default: feed random_int every 2s)");

  auto add_format = [&](CLI::App* cmd) {
    cmd->add_option("--format", common.format, "table or json")
        ->check(CLI::IsMember({"table", "json"}));
  };

  auto* run = app.add_subcommand("run", "Run the daemon: publish every feed's slots");
  std::string plan_feed;
  auto* plan =
      app.add_subcommand("plan", "Print each feed's next window and its slot times (JSON)");
  plan->add_option("--feed", plan_feed, "Only this feed");

  std::string values_feed, values_since;
  int values_limit = 20;
  auto* values = app.add_subcommand("values", "Published values, newest first");
  values->add_option("--feed", values_feed, "Only this feed");
  values->add_option("--since", values_since, "Only slots at or after this time (ISO 8601, UTC)");
  values->add_option("--limit", values_limit, "At most this many")->check(CLI::Range(1, 100000));
  add_format(values);

  std::string exec_feed;
  int exec_limit = 10;
  auto* executions =
      app.add_subcommand("executions", "Executions (one per feed per window), newest first");
  executions->add_option("--feed", exec_feed, "Only this feed");
  executions->add_option("--limit", exec_limit, "At most this many")->check(CLI::Range(1, 10000));
  add_format(executions);

  DlqArgs dlq_args;
  auto* dlq = app.add_subcommand("dlq", "The dead-letter queue: list, show, redrive, purge");
  dlq->require_subcommand(1);
  auto* dlq_list = dlq->add_subcommand("list", "Messages, oldest first");
  add_format(dlq_list);
  auto* dlq_show = dlq->add_subcommand("show", "One message as JSON");
  dlq_show->add_option("id", dlq_args.id, "Message id")->required();
  auto* dlq_redrive =
      dlq->add_subcommand("redrive", "Deliver a message's stored record again (idempotent)");
  dlq_redrive->add_option("id", dlq_args.id, "Message id");
  dlq_redrive->add_flag("--all", dlq_args.all, "Every message");
  auto* dlq_purge = dlq->add_subcommand("purge", "Delete a message");
  dlq_purge->add_option("id", dlq_args.id, "Message id");
  dlq_purge->add_flag("--all", dlq_args.all, "Every message");

  std::string backup_out;
  auto* backup = app.add_subcommand(
      "backup",
      "Copy the databases (values, DLQ, and the evm sinks' evm.db if it exists) while the daemon "
      "runs, each consistent");
  backup
      ->add_option(
          "--out", backup_out,
          "Values database copy (the DLQ copy goes beside it as *.dlq.db, evm.db's as *.evm.db)")
      ->required();

  std::string keygen_out;
  auto* keygen = app.add_subcommand(
      "keygen", "Write a new secp256k1 signing key (hex, mode 0600) and print its address");
  keygen->add_option("--out", keygen_out, "Where to write the key (never overwritten)")->required();

  VerifyArgs verify_args;
  auto* verify = app.add_subcommand(
      "verify", "Check the signatures of records (JSON, one or a list, e.g. from `values`)");
  verify->add_option("--file", verify_args.file,
                     "Read the records from this file (default: stdin)");
  verify->add_option("--signer", verify_args.signer, "Also require this signer address");
  verify
      ->add_option("--chain-id", verify_args.chain_id,
                   "EIP-712 chainId (default: the feed's, from the config)")
      ->check(CLI::PositiveNumber);

  std::string dynamodb_feed;
  auto* dynamodb = app.add_subcommand("dynamodb", "DynamoDB sinks");
  dynamodb->require_subcommand(1);
  auto* create_table = dynamodb->add_subcommand(
      "create-table", "Create the table of each dynamodb sink of a feed (on-demand billing)");
  create_table->add_option("--feed", dynamodb_feed, "The feed whose sinks need tables")->required();

  EvmDeployOptions evm_options;
  auto* evm = app.add_subcommand("evm", "EVM chain sinks: deploy the feed contract, status");
  evm->require_subcommand(1);
  auto* evm_deploy_cmd = evm->add_subcommand(
      "deploy",
      "Deploy MetronomeFeed (when the sink has no contract), authorise the feed's signer, "
      "configure the feed; prints the address");
  evm_deploy_cmd->add_option("--feed", evm_options.feed,
                             "Only this feed (default: every evm sink)");
  evm_deploy_cmd->add_option("--max-future-ms", evm_options.max_future_ms,
                             "The contract's maxFutureMs (default 60000)");
  auto* evm_status_cmd = evm->add_subcommand(
      "status", "Per feed: on-chain round, value, age; transactions in flight; nonce; balance");
  evm_status_cmd->add_option("--feed", evm_options.feed, "Only this feed");

  auto* migrate = app.add_subcommand(
      "migrate", "Bring the store's schema to this version (PostgreSQL: required before run)");

  auto* config = app.add_subcommand("config", "Configuration");
  config->require_subcommand(1);
  auto* check = config->add_subcommand("check", "Validate and print the effective config");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }

  if (run->parsed()) return cmd_run(common);
  if (plan->parsed()) return cmd_plan(common, plan_feed);
  if (values->parsed()) return cmd_values(common, values_feed, values_since, values_limit);
  if (executions->parsed()) return cmd_executions(common, exec_feed, exec_limit);
  if (dlq->parsed()) {
    dlq_args.action = dlq_list->parsed()      ? "list"
                      : dlq_show->parsed()    ? "show"
                      : dlq_redrive->parsed() ? "redrive"
                                              : "purge";
    return cmd_dlq(common, dlq_args);
  }
  if (check->parsed()) return cmd_config_check(common);
  if (migrate->parsed()) return cmd_migrate(common);
  if (evm_deploy_cmd->parsed()) return cmd_evm(common, true, evm_options);
  if (evm_status_cmd->parsed()) return cmd_evm(common, false, evm_options);
  if (create_table->parsed()) return cmd_dynamodb_create_table(common, dynamodb_feed);
  if (keygen->parsed()) return cmd_keygen(keygen_out);
  if (backup->parsed()) return cmd_backup(common, backup_out);
  if (verify->parsed()) return cmd_verify(common, verify_args);
  return kExitUsage;
}

}  // namespace metronome
