// Config: the daemon's whole configuration, from one TOML file or the built-in default.
//
// load_config() reads and validates a file; every error names the file, line and key:
//   "metronome.toml:12: feeds[0].every: invalid duration '2x' (unknown unit 'x'); ..."
// Unknown keys are errors (a typo must not silently become a default). Relative paths are
// resolved against the file's folder (for the built-in default: the working directory).
// The result is an immutable value; share it by const reference.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/decimal.h"
#include "common/ids.h"
#include "common/result.h"
#include "common/time.h"
#include "schedule/schedule.h"

namespace metronome {

struct ServiceConfig {
  std::filesystem::path data_dir;  // default "./var"
  std::string listen = "127.0.0.1:8080";
  std::string log_level = "info";   // trace|debug|info|warn|error
  std::string log_format = "text";  // text|json
  uint64_t chain_id = 1;            // EIP-712 domain chainId of every feed without its own
  SecretName admin_token_secret;    // bearer token for the API's mutating endpoints; empty: none
  // SCHED_FIFO for the timer and worker threads and mlockall(); refused (no CAP_SYS_NICE /
  // RLIMIT_RTPRIO): one warning, normal priority.
  bool realtime = false;
  // Presignatures kept ready (sign/presign.h, ADR 0014): the nonce half of each signature made
  // ahead by an idle-priority thread, so a slot's signature takes under a microsecond instead
  // of ~21 µs. Random nonces instead of RFC 6979's. 0 (default): off. For many feeds, about
  // twice the number of signed slots due at one boundary.
  size_t presign = 0;
  // Batch signatures (sign/merkle.h, ADR 0018): up to this many records that one worker
  // publishes in a row (at most 64) share one signature over the Merkle root of their digests;
  // each record carries its Merkle proof. Feeds with an evm sink are always signed one by one.
  // 1 (default): every record signed alone.
  size_t sign_batch = 1;
};

struct StoreConfig {
  std::string kind = "sqlite";     // sqlite | postgres
  std::filesystem::path path;      // sqlite: default data_dir/metronome.db
  std::filesystem::path dlq_path;  // sqlite: default: path with ".db" replaced by ".dlq.db"
  std::string url{};               // postgres: "postgresql://USER@HOST:PORT/DATABASE?..."
  SecretName password_secret{};    // postgres: the password; empty: the URL's or libpq's own
  // postgres (replicas, docs/ha.md): a feed's lease lasts lease_ttl, is renewed every
  // lease_renew; a replica whose clock is further than max_clock_skew off the database's
  // publishes nothing.
  Millis lease_ttl{2000};
  Millis lease_renew{500};
  Millis max_clock_skew{50};
};

// A secret in AWS Secrets Manager: the secret's string, or one key of it when it is a JSON object
// (the replaced system kept {"my_secret": "..."}). Re-read every `refresh`.
struct AwsSecretsManagerConfig {
  std::string secret_id;  // name or ARN
  std::string region;     // "us-east-1"
  std::string endpoint;   // empty: https://secretsmanager.<region>.amazonaws.com
  std::string json_key;   // empty: the whole SecretString
  Millis refresh{5 * 60'000};
};

// Where one named secret lives: exactly one of file / env / aws_secrets_manager.
struct SecretConfig {
  SecretName name;
  std::optional<std::filesystem::path> file;
  std::optional<std::string> env;
  std::optional<AwsSecretsManagerConfig> aws_secrets_manager{};
};

struct RandomIntSourceConfig {
  int64_t min = 0;
  int64_t max = 1000;
};
// GET (or POST) a URL and take the number at an RFC 6901 JSON pointer (a JSON number or string).
struct HttpJsonSourceConfig {
  std::string url;             // http:// or https://
  std::string pointer;         // "/data/price"; "" is the whole document
  std::string method = "GET";  // GET|POST
  // Header values may hold ${secret:NAME} references, resolved at each request.
  std::vector<std::pair<std::string, std::string>> headers{};
  std::string body{};               // POST only
  std::optional<Millis> timeout{};  // default: the slot's deadline alone bounds it
};
// Runs argv without a shell; the value is its trimmed stdout.
struct CommandSourceConfig {
  std::vector<std::string> argv;
  std::optional<Millis> timeout{};
};
// The number in a file (e.g. written by another process).
struct FileSourceConfig {
  std::filesystem::path path;
};
struct MedianMember;
// The median of several sources observed concurrently (see source/median_source.h).
struct MedianSourceConfig {
  std::vector<MedianMember> sources;
  int quorum = 1;
  std::optional<Decimal> max_spread_pct{};
};
// One alternative per source kind.
using SourceConfig = std::variant<RandomIntSourceConfig, HttpJsonSourceConfig, CommandSourceConfig,
                                  FileSourceConfig, MedianSourceConfig>;
struct MedianMember {
  std::string name;  // unique within the median; default "KIND#INDEX" ("http_json#0")
  SourceConfig source;
};

// A DynamoDB table that receives every published record of a feed (see src/sink/).
struct DynamoDbSinkConfig {
  enum class Layout {
    kSeed,  // the replaced system's items: datetime_utc (S, "YYYY-MM-DD HH:MM:SS"), random_int (N)
    kRecord,  // the whole signed record: feed (S, partition key), slot_ms (N, sort key), ...
  };
  std::string table;
  std::string region;    // "us-east-1"
  std::string endpoint;  // empty: https://dynamodb.<region>.amazonaws.com
  Layout layout = Layout::kSeed;
};
std::string_view to_string(DynamoDbSinkConfig::Layout layout);
// An EVM chain that receives a feed's values through MetronomeFeed (see src/evm/, docs/evm.md):
// submitted when the value moved by deviation_pct or the chain's value is older than heartbeat.
struct EvmSinkConfig {
  std::vector<std::string> rpc_urls;  // tried in order, failing over
  uint64_t chain_id = 1;              // must be the feed's chain_id (the EIP-712 domain)
  std::string contract;               // "0x" + 40 hex digits; empty until `metronome evm deploy`
  SecretName sender_secret;           // the key paying for transactions, not the feed's secret
  Decimal deviation_pct = Decimal::from_int(1);
  Millis heartbeat{3'600'000};
  Decimal max_fee_gwei = Decimal::from_int(100);
  int bump_pct = 12;  // >= 10: nodes refuse smaller replacement bumps
  int bump_after_blocks = 3;
  int confirmations = 1;
  Millis rpc_timeout{2000};    // per request and URL
  int max_head_lag = 5;        // blocks behind the best URL before a URL is demoted
  Millis stale_grace{30'000};  // onchain_stale alarm: chain value older than heartbeat + this
  Decimal low_balance_eth = Decimal::from_int(0);  // low_balance alarm below this; 0: none
};
// One alternative per sink kind.
using SinkConfig = std::variant<DynamoDbSinkConfig, EvmSinkConfig>;

struct FeedConfig {
  FeedId id;
  Schedule schedule = Schedule::every(Millis(2000));
  std::string schedule_text;  // as written: "2s" or the cron expression
  Millis window{60'000};
  std::optional<Millis> deadline;  // default: the interval (cron: up to the next slot)
  // Observation starts this long before the slot (a slow source is ready at the slot); the record
  // is still never published before its slot. Zero: at the slot.
  Millis observe_lead{0};
  int retries = 3;
  SecretName secret;  // may be empty: the feed uses no secret
  SourceConfig source = RandomIntSourceConfig{};
  int decimals = 0;
  uint64_t chain_id = 1;  // EIP-712 domain chainId (default: service.chain_id)
  // Sanity bounds (Chainlink's minAnswer/maxAnswer): a value outside fails its slot into the DLQ.
  std::optional<Decimal> min_value{};
  std::optional<Decimal> max_value{};
  std::optional<Decimal> max_change_pct{};  // against the previous published value
  std::vector<SinkConfig> sinks{};          // where published records also go, after the store
};

struct AlarmConfig {
  int64_t dlq_depth = 1;
  int64_t missed_slots = 1;
  Millis missed_window{10 * 60'000};
  std::vector<std::string> command;  // argv; empty: no command action
  std::string webhook;               // URL; empty: no webhook action
  Millis action_timeout{10'000};     // for command and each webhook attempt
  int webhook_retries = 3;
};

struct Config {
  std::filesystem::path file;  // empty for the built-in default
  ServiceConfig service;
  StoreConfig store;
  std::map<SecretName, SecretConfig> secrets;
  std::vector<FeedConfig> feeds;
  AlarmConfig alarms;

  const FeedConfig* find_feed(const FeedId& id) const;
  bool is_builtin_default() const { return file.empty(); }
};

// Reads and validates `path`. InvalidArgument with "FILE:LINE: KEY: what" on any error;
// NotFound / IOError when the file cannot be read.
Result<Config> load_config(const std::filesystem::path& path);
// Parses TOML text as if it were the file `path` (for messages and relative paths).
Result<Config> parse_config(std::string_view toml_text, const std::filesystem::path& path);
// The built-in default: the replaced system (feed random_int, every 2s, window 1m, 0..1000,
// secret oracle_key in ./var/secrets/oracle_key, SQLite at ./var/metronome.db), with relative
// paths resolved against `base_dir`.
Config builtin_default_config(const std::filesystem::path& base_dir);
// The effective configuration as TOML (all defaults filled in; no secret values, only where each
// secret lives).
std::string dump_config(const Config& config);

}  // namespace metronome
