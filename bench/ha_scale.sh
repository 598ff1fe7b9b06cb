#!/usr/bin/env bash
# ha_scale: issue 8's benchmark. K feeds (default 10,000) of random_int every 2 s, served by R
# replicas (default 2) of `metronome run` sharing one PostgreSQL 15 started here (throwaway
# cluster, fsync on). After start-up and a warm-up, measures a window of --seconds and prints
# one JSON object on stdout (progress goes to stderr):
#   slots due / published / missed / failed / skipped / without outcome, duplicates (must be 0),
#   publish latency p50/p99/max (two definitions, below), fire lateness, leases per replica,
#   statements/s in total and of the lease manager (pg_stat_statements), transactions/s and WAL
#   (pg_stat_database, pg_stat_wal), PostgreSQL's CPU, each replica's CPU and RSS, the machine.
#
#   bench/ha_scale.sh [--feeds K] [--replicas R] [--seconds S] [--warmup W] [--every 2s]
#                     [--binary PATH] [--grace G] [--start-timeout T] [--lease-ttl D]
#                     [--lease-renew D] [--pg-bindir DIR] [--pg-option NAME=VALUE]... [--keep]
#
# The binary is --binary, else $METRONOME_BIN, else build/src/metronome. Run as root, the
# PostgreSQL server runs as the `postgres` user (it refuses root).
#
# Definitions (all figures are over the slots whose time is in the measured window [m0, m1)):
# - latency_commit_ts: pg_xact_commit_timestamp(xmin) of the value's row - slot time: when the
#   inserting transaction's commit record was written (track_commit_timestamp = on), i.e. after
#   the statement ran and just before its WAL flush (the fsync itself and the reply's way back
#   to the daemon are not included). Same host, same clock as the daemon.
# - latency_published_at: values.published_at_ns - slot time: the daemon's clock when it sent the
#   commit (the commit's start; includes signing and any wait for the feed's previous commit).
# - statements: pg_stat_statements (top-level, utility statements included) of the benchmark's
#   database, reset at m0 and read at m1. "lease" = the LeaseManager's statements (heartbeat,
#   live replicas, take/renew, release, database clock); commit_slots also reads the leases table
#   (fencing) and is counted apart.
# - cpu: utime+stime from /proc/PID/stat, in % of one core over the window. PostgreSQL's is the
#   postmaster (incl. cutime+cstime of its exited children: autovacuum workers, …) plus every live
#   child, so processes that come and go in the window are counted.
# - replicas[].boundary_log: the replica's own per-boundary summary lines for the window's slots
#   (a cross-check of the database's counts; "all outcomes recorded N us after the slot" includes
#   the fsync and the reply, as a per-boundary maximum). log_warnings_*: warning lines other than
#   those summaries; log_warning_samples: the most frequent ones, digits folded to N.
# --keep leaves the temp dir (configs, daemon logs, PostgreSQL data) for a look afterwards.
# Not a test: nothing is asserted. Needs an otherwise idle machine for figures worth quoting.
set -euo pipefail

feeds=10000
replicas=2
seconds=60
warmup=20
every="2s"
grace=""
start_timeout=900
lease_ttl=""
lease_renew=""
keep=0
pg_bindir=/usr/lib/postgresql/15/bin
pg_options=()
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
binary="${METRONOME_BIN:-$here/../build/src/metronome}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --feeds) feeds="$2"; shift 2 ;;
    --replicas) replicas="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --every) every="$2"; shift 2 ;;
    --binary) binary="$2"; shift 2 ;;
    --grace) grace="$2"; shift 2 ;;
    --start-timeout) start_timeout="$2"; shift 2 ;;
    --lease-ttl) lease_ttl="$2"; shift 2 ;;
    --lease-renew) lease_renew="$2"; shift 2 ;;
    --pg-bindir) pg_bindir="$2"; shift 2 ;;
    --pg-option) pg_options+=("$2"); shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/!p}' "$0"; exit 0 ;;
    *) echo "ha_scale.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

die() { echo "ha_scale.sh: $*" >&2; exit 1; }
log() { printf '[ha_scale %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }
for v in feeds replicas seconds warmup start_timeout; do
  is_uint "${!v}" || die "--${v//_/-} must be a whole number (got '${!v}')"
done
((feeds >= 1 && replicas >= 1 && seconds >= 1)) || die "--feeds, --replicas and --seconds must be >= 1"
case "$every" in
  *ms) interval_ms="${every%ms}" ;;
  *s) interval_ms=$((${every%s} * 1000)) ;;
  *) die "--every: give milliseconds or seconds (500ms, 2s)" ;;
esac
is_uint "$interval_ms" && ((interval_ms > 0)) || die "--every: bad duration '$every'"
# Long enough for the window's last slot to reach its deadline (the next slot) and commit.
[[ -n "$grace" ]] || grace=$(((interval_ms + 999) / 1000 + 3))
is_uint "$grace" || die "--grace must be whole seconds"
[[ -x "$binary" ]] || die "no metronome binary at $binary (build it, or give --binary / METRONOME_BIN)"
binary="$(realpath "$binary")"
[[ -x "$pg_bindir/initdb" && -x "$pg_bindir/pg_ctl" ]] || die "no PostgreSQL in $pg_bindir (apt-get install postgresql-15)"
pg_major="$("$pg_bindir/pg_ctl" --version | sed -n 's/.* \([0-9][0-9]*\)\..*/\1/p')"
[[ -f "$("$pg_bindir/pg_config" --pkglibdir 2>/dev/null || echo "/usr/lib/postgresql/$pg_major/lib")/pg_stat_statements.so" ]] ||
  die "pg_stat_statements is not installed (it is in the postgresql-$pg_major package)"
psql_bin="$pg_bindir/psql"
[[ -x "$psql_bin" ]] || psql_bin="$(command -v psql)" || die "no psql"

# ---- state for the cleanup ----
tmp="$(mktemp -d /tmp/metronome-ha-scale.XXXXXX)"
chmod 0711 "$tmp"
pgdir="$tmp/pg"
pgdata="$pgdir/data"
pg_started=0
rpids=()
cleaned=0

as_pg() {
  if ((EUID == 0)); then runuser -u postgres -- "$@"; else "$@"; fi
}

rexit=()
stop_replicas() {
  local pid i r
  for pid in "${rpids[@]}"; do
    kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null || true
  done
  for ((r = 0; r < ${#rpids[@]}; ++r)); do
    pid="${rpids[r]}"
    [[ -n "$pid" ]] || continue
    for ((i = 0; i < 600; ++i)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "ha_scale.sh: replica $r (pid $pid) still running 60 s after SIGTERM: SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rexit[r]=0
    wait "$pid" 2>/dev/null || rexit[r]=$?
    rpids[r]=""
  done
}

cleanup() {
  local code=$?
  ((cleaned)) && return
  cleaned=1
  trap "" INT TERM  # a second Ctrl-C must not leave the server running
  stop_replicas
  if ((pg_started)); then
    as_pg "$pg_bindir/pg_ctl" -D "$pgdata" -m fast -w -t 60 stop >/dev/null 2>&1 ||
      as_pg "$pg_bindir/pg_ctl" -D "$pgdata" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
  fi
  if ((keep)); then
    echo "ha_scale.sh: kept $tmp (logs, configs, PostgreSQL data)" >&2
  else
    rm -rf "$tmp"
  fi
  exit "$code"
}
trap cleanup EXIT
trap 'echo "ha_scale.sh: interrupted" >&2; exit 130' INT
trap 'echo "ha_scale.sh: terminated" >&2; exit 143' TERM

now_ns() { date +%s%N; }
hz="$(getconf CLK_TCK)"
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
load_start="$(loadavg)"

# ---- PostgreSQL ----
# testing/postgres_server.cc's cluster (trust, user metronome, UTF8, no locale, loopback only,
# wal_level minimal, 200 connections), but durable: fsync and full_page_writes stay on, the WAL
# segments and shared_buffers keep their defaults (16 MB, 128 MB).
mkdir -p "$pgdir"
((EUID == 0)) && chown postgres:postgres "$pgdir"
log "initdb (PostgreSQL $pg_major) in $pgdir"
as_pg "$pg_bindir/initdb" -D "$pgdata" -A trust -U metronome -E UTF8 --no-locale --no-sync \
  --no-instructions >"$tmp/initdb.log" 2>&1 || { cat "$tmp/initdb.log" >&2; die "initdb failed"; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
    echo $((20000 + RANDOM % 40000))
}
pg_settings=(
  "listen_addresses=127.0.0.1" "wal_level=minimal" "max_wal_senders=0" "max_connections=200"
  "shared_preload_libraries=pg_stat_statements" "pg_stat_statements.max=1000"
  "track_commit_timestamp=on" "track_wal_io_timing=on" "fsync=on" "synchronous_commit=on" "full_page_writes=on"
)
pg_settings+=("${pg_options[@]}")
opts=""
for s in "${pg_settings[@]}"; do opts+=" -c $s"; done
for attempt in 1 2 3 4 5; do
  port="$(free_port)"
  if as_pg "$pg_bindir/pg_ctl" -D "$pgdata" -l "$pgdir/server.log" \
      -o "-p $port -k $pgdir$opts" -w -t 60 start >"$tmp/pg_ctl.log" 2>&1; then
    pg_started=1
    break
  fi
  ((attempt == 5)) && { cat "$tmp/pg_ctl.log" "$pgdir/server.log" >&2; die "PostgreSQL did not start"; }
done
psql_at() {  # database, SQL: unaligned, tuples only
  "$psql_bin" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U metronome -d "$1" -c "$2"
}
db=metronome_bench
psql_at postgres "CREATE DATABASE $db" >/dev/null
# The extension's views live in `postgres`; they see every database (filtered by dbid below), and
# the benchmark's database keeps exactly Metronome's schema.
psql_at postgres "CREATE EXTENSION pg_stat_statements" >/dev/null
db_oid="$(psql_at postgres "SELECT oid FROM pg_database WHERE datname = '$db'")"
url="postgresql://metronome@127.0.0.1:$port/$db"
log "PostgreSQL on 127.0.0.1:$port (pid $(head -1 "$pgdata/postmaster.pid"))"

# ---- config, key, schema ----
mkdir -p "$tmp/secrets"
"$binary" keygen --out "$tmp/secrets/oracle_key" >"$tmp/keygen.log" 2>&1 ||
  { cat "$tmp/keygen.log" >&2; die "metronome keygen failed"; }
chmod 0600 "$tmp/secrets/oracle_key"
feeds_toml="$tmp/feeds.toml"
awk -v n="$feeds" -v every="$every" 'BEGIN {
  for (i = 0; i < n; ++i) {
    printf "\n[[feeds]]\nid = \"f%05d\"\nevery = \"%s\"\nsecret = \"oracle_key\"\n", i, every
    printf "source = { kind = \"random_int\", min = 0, max = 1000 }\n"
  }
}' >"$feeds_toml"
for ((r = 0; r < replicas; ++r)); do
  mkdir -p "$tmp/r$r"
  {
    printf '[service]\ndata_dir = "var"\nlisten = "127.0.0.1:0"\n\n'
    printf '[store]\nkind = "postgres"\nurl = "%s"\n' "$url"
    [[ -n "$lease_ttl" ]] && printf 'lease_ttl = "%s"\n' "$lease_ttl"
    [[ -n "$lease_renew" ]] && printf 'lease_renew = "%s"\n' "$lease_renew"
    printf '\n[secrets.oracle_key]\nfile = "%s"\n' "$tmp/secrets/oracle_key"
    cat "$feeds_toml"
  } >"$tmp/r$r/metronome.toml"
done
log "config: $feeds feeds every $every, $replicas replicas ($(du -k "$tmp/r0/metronome.toml" | cut -f1) kB each)"
"$binary" migrate --config "$tmp/r0/metronome.toml" >"$tmp/migrate.log" 2>&1 ||
  { cat "$tmp/migrate.log" >&2; die "metronome migrate failed"; }

# ---- replicas ----
start_ns="$(now_ns)"
for ((r = 0; r < replicas; ++r)); do
  (cd "$tmp/r$r" && exec "$binary" run --config metronome.toml >daemon.log 2>&1) &
  rpids+=("$!")
done
log "started $replicas replicas (pids ${rpids[*]}); waiting for 'metronome running' (at most ${start_timeout} s)"
startup_s=()
api_ports=()
for ((r = 0; r < replicas; ++r)); do startup_s+=(""); api_ports+=(""); done
# Start-up = the time of the "metronome running" log line (UTC, µs) minus the start of the first.
pending=$replicas
while ((pending > 0)); do
  pending=0
  for ((r = 0; r < replicas; ++r)); do
    [[ -n "${startup_s[r]}" ]] && continue
    line="$(grep -m1 'metronome running' "$tmp/r$r/daemon.log" 2>/dev/null || true)"
    if [[ -n "$line" ]]; then
      at_ns="$(date -u -d "${line%% *}" +%s%N 2>/dev/null || now_ns)"
      startup_s[r]="$(awk -v a="$start_ns" -v b="$at_ns" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')"
      api_ports[r]="$(sed -n 's/.*API listening on [0-9.]*:\([0-9]*\).*/\1/p' "$tmp/r$r/daemon.log" | head -1)"
      log "replica $r running after ${startup_s[r]} s"
      continue
    fi
    pending=$((pending + 1))
    kill -0 "${rpids[r]}" 2>/dev/null || { tail -30 "$tmp/r$r/daemon.log" >&2; die "replica $r exited during start-up"; }
    (($(now_ns) - start_ns < start_timeout * 1000000000)) ||
      { tail -30 "$tmp/r$r/daemon.log" >&2; die "replica $r not running after ${start_timeout} s"; }
  done
  ((pending == 0)) || sleep 0.2
done
log "all running; warm-up ${warmup} s"

check_alive() {
  local r
  for ((r = 0; r < replicas; ++r)); do
    kill -0 "${rpids[r]}" 2>/dev/null || { tail -30 "$tmp/r$r/daemon.log" >&2; die "replica $r exited"; }
  done
}
for ((t = 0; t < warmup; ++t)); do sleep 1; check_alive; done

# ---- measurement ----
# utime+stime (+cutime+cstime with $2 = 1) in ticks. Fields after the command name "(...)".
ticks_of() { awk -v c="${2:-0}" '{ sub(/^.*\) /, ""); t = $12 + $13; if (c) t += $14 + $15; print t }' "/proc/$1/stat" 2>/dev/null || echo 0; }
pg_ticks() {
  local pm total child
  pm="$(head -1 "$pgdata/postmaster.pid")"
  total="$(ticks_of "$pm" 1)"
  for child in $(pgrep -P "$pm" || true); do total=$((total + $(ticks_of "$child"))); done
  echo "$total"
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

lease_counts_sql="SELECT coalesce(json_object_agg(holder, n), '{}') FROM (SELECT holder, count(*) AS n
  FROM leases WHERE expires_at > clock_timestamp() GROUP BY holder) l"
leases_m0="$(psql_at "$db" "$lease_counts_sql")"
epochs_m0="$(psql_at "$db" "SELECT coalesce(sum(epoch), 0) FROM leases")"
db_stats_sql="SELECT xact_commit || ' ' || xact_rollback || ' ' || tup_inserted || ' ' || tup_updated
  FROM pg_stat_database WHERE datname = '$db'"
psql_at postgres "SELECT pg_stat_statements_reset()" >/dev/null
psql_at postgres "SELECT pg_stat_reset_shared('wal')" >/dev/null
read -r xact0 rollback0 ins0 upd0 <<<"$(psql_at postgres "$db_stats_sql")"
pg_ticks0="$(pg_ticks)"
r_ticks0=()
max_rss=()
for ((r = 0; r < replicas; ++r)); do r_ticks0+=("$(ticks_of "${rpids[r]}")"); max_rss+=(0); done
m0_ns="$(now_ns)"
load_m0="$(loadavg)"
log "measuring ${seconds} s (leases at m0: $leases_m0)"

for ((t = 1; t <= seconds; ++t)); do
  target=$((m0_ns + t * 1000000000))
  wait_ns=$((target - $(now_ns)))
  if ((wait_ns > 0)); then sleep "$(printf '%d.%09d' $((wait_ns / 1000000000)) $((wait_ns % 1000000000)))"; fi
  check_alive
  for ((r = 0; r < replicas; ++r)); do
    rss="$(rss_kb "${rpids[r]}")"
    ((rss > max_rss[r])) && max_rss[r]=$rss
  done
  ((t % 10 == 0 || t == seconds)) && log "  ${t}/${seconds} s, replicas' RSS kB: ${max_rss[*]}"
done

m1_ns="$(now_ns)"
pg_ticks1="$(pg_ticks)"
r_ticks1=()
for ((r = 0; r < replicas; ++r)); do r_ticks1+=("$(ticks_of "${rpids[r]}")"); done
read -r xact1 rollback1 ins1 upd1 <<<"$(psql_at postgres "$db_stats_sql")"
# Statements by kind, then the 10 most frequent (query text cut at 120 characters).
statements_json="$(psql_at postgres "
WITH s AS (
  SELECT query, calls, total_exec_time, rows, wal_bytes,
    CASE
      WHEN query ILIKE '%INSERT INTO \"values\"%' THEN 'commit_slots'
      WHEN query ~* '^\\s*(BEGIN|COMMIT|ROLLBACK|START|SAVEPOINT|RELEASE|SET|SHOW|DEALLOCATE|DISCARD)' THEN 'transaction_control'
      WHEN query ILIKE '%leases%' OR query ILIKE '%replicas%'
        OR query ILIKE '%extract(% FROM clock_timestamp())%' THEN 'lease'
      ELSE 'other' END AS kind
  FROM pg_stat_statements WHERE dbid = $db_oid
), k AS (
  SELECT kind, sum(calls) AS calls, sum(total_exec_time) AS ms, sum(rows) AS rows,
         sum(wal_bytes) AS wal_bytes FROM s GROUP BY kind
), top AS (
  SELECT kind, left(regexp_replace(query, '\\s+', ' ', 'g'), 120) AS query, calls, rows,
         round(total_exec_time::numeric / greatest(calls, 1), 3) AS mean_ms, wal_bytes
  FROM s ORDER BY calls DESC LIMIT 10
)
SELECT json_build_object(
  'calls', (SELECT coalesce(sum(calls), 0) FROM s),
  'exec_ms', (SELECT round(coalesce(sum(total_exec_time), 0)::numeric, 1) FROM s),
  'by_kind', (SELECT coalesce(json_object_agg(kind, json_build_object('calls', calls,
                      'rows', rows, 'exec_ms', round(ms::numeric, 1), 'wal_bytes', wal_bytes)), '{}') FROM k),
  'top', (SELECT coalesce(json_agg(top ORDER BY calls DESC), '[]') FROM top))")"
wal_json="$(psql_at postgres "SELECT json_build_object('records', wal_records, 'bytes', wal_bytes,
  'writes', wal_write, 'syncs', wal_sync, 'sync_ms', wal_sync_time, 'buffers_full', wal_buffers_full)
  FROM pg_stat_wal")"
leases_m1="$(psql_at "$db" "$lease_counts_sql")"
epochs_m1="$(psql_at "$db" "SELECT coalesce(sum(epoch), 0) FROM leases")"
hwm=()
for ((r = 0; r < replicas; ++r)); do hwm+=("$(hwm_kb "${rpids[r]}")"); done
load_m1="$(loadavg)"
log "window over (leases at m1: $leases_m1); grace ${grace} s for its last slots to commit"
for ((t = 0; t < grace; ++t)); do sleep 1; check_alive; done

# ---- slots of the window, from the database ----
m0_ms=$((m0_ns / 1000000))
m1_ms=$((m1_ns / 1000000))
first_slot=$(((m0_ms + interval_ms - 1) / interval_ms * interval_ms))
last_slot=$(((m1_ms - 1) / interval_ms * interval_ms))
slots_json="$(psql_at "$db" "
WITH due AS (
  SELECT format('f%s', lpad(i::text, greatest(5, length(i::text)), '0')) COLLATE \"C\" AS feed, s AS slot_ms
  FROM generate_series(0, $feeds - 1) AS i, generate_series($first_slot, $last_slot, $interval_ms) AS s
), v AS (
  SELECT feed, slot_ms, published_at_ns, pg_xact_commit_timestamp(xmin) AS committed
  FROM \"values\" WHERE slot_ms BETWEEN $first_slot AND $last_slot
), o AS (
  SELECT feed, slot_ms, min(outcome) AS outcome, count(*) AS n,
         min(lateness_us) FILTER (WHERE outcome = 'published') AS lateness_us
  FROM slots WHERE slot_ms BETWEEN $first_slot AND $last_slot GROUP BY feed, slot_ms
), j AS (
  SELECT d.feed, d.slot_ms, v.feed IS NOT NULL AS has_value, o.outcome, o.n,
         (v.published_at_ns - d.slot_ms * 1000000) / 1e6 AS published_at_ms,
         extract(epoch FROM v.committed) * 1000 - d.slot_ms AS commit_ts_ms, o.lateness_us
  FROM due d LEFT JOIN v USING (feed, slot_ms) LEFT JOIN o USING (feed, slot_ms)
), pv AS (SELECT * FROM j WHERE has_value)
SELECT json_build_object(
  'first_slot_ms', $first_slot, 'last_slot_ms', $last_slot,
  'slots_per_feed', ($last_slot - $first_slot) / $interval_ms + 1,
  'due', (SELECT count(*) FROM j),
  'published', (SELECT count(*) FROM pv),
  'missed', (SELECT count(*) FROM j WHERE NOT has_value AND outcome = 'missed'),
  'failed', (SELECT count(*) FROM j WHERE NOT has_value AND outcome = 'failed'),
  'skipped', (SELECT count(*) FROM j WHERE NOT has_value AND outcome = 'skipped'),
  'no_outcome', (SELECT count(*) FROM j WHERE NOT has_value AND (outcome IS NULL OR outcome = 'planned')),
  'value_without_published_outcome', (SELECT count(*) FROM pv WHERE outcome IS DISTINCT FROM 'published'),
  'duplicates', json_build_object(
     'values', (SELECT count(*) - count(DISTINCT (feed, slot_ms)) FROM v),
     'slot_rows', (SELECT coalesce(sum(n - 1), 0) FROM o WHERE n > 1)),
  'latency_commit_ts_ms', (SELECT json_build_object(
     'p50', round(percentile_cont(0.5) WITHIN GROUP (ORDER BY commit_ts_ms)::numeric, 1),
     'p99', round(percentile_cont(0.99) WITHIN GROUP (ORDER BY commit_ts_ms)::numeric, 1),
     'max', round(max(commit_ts_ms)::numeric, 1), 'samples', count(commit_ts_ms)) FROM pv),
  'latency_published_at_ms', (SELECT json_build_object(
     'p50', round(percentile_cont(0.5) WITHIN GROUP (ORDER BY published_at_ms)::numeric, 1),
     'p99', round(percentile_cont(0.99) WITHIN GROUP (ORDER BY published_at_ms)::numeric, 1),
     'max', round(max(published_at_ms)::numeric, 1)) FROM pv),
  'fire_lateness_ms', (SELECT json_build_object(
     'p50', round((percentile_cont(0.5) WITHIN GROUP (ORDER BY lateness_us) / 1000)::numeric, 2),
     'p99', round((percentile_cont(0.99) WITHIN GROUP (ORDER BY lateness_us) / 1000)::numeric, 2),
     'max', round((max(lateness_us) / 1000.0)::numeric, 2)) FROM pv))")"
dlq_depth="$(psql_at "$db" "SELECT count(*) FROM dlq")"

# ---- stop the replicas (timed), then assemble the JSON ----
stop_ns="$(now_ns)"
all_pids=("${rpids[@]}")
stop_replicas
stop_s="$(awk -v a="$stop_ns" -v b="$(now_ns)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')"
iso_ms() { date -u -d "@$(($1 / 1000))" +%Y-%m-%dT%H:%M:%S.$(printf '%03d' $(($1 % 1000)))Z; }
first_iso="$(iso_ms "$first_slot")"
m0_iso="$(iso_ms "$m0_ms")"
m1_iso="$(iso_ms "$m1_ms")"
last_iso="$(iso_ms "$last_slot")"
replicas_json="["
for ((r = 0; r < replicas; ++r)); do
  pid="${all_pids[r]}"
  lg="$tmp/r$r/daemon.log"
  # A replica id is HOST-PID-RANDOM.
  held() { jq -n --argjson m "$1" --arg p "$pid" '[$m | to_entries[] | select(.key | split("-") | .[-2] == $p) | .value] | add // 0'; }
  held0="$(held "$leases_m0")"
  held1="$(held "$leases_m1")"
  warns="$(awk '$2 ~ /^warn/ && $3 != "boundary"' "$lg" | wc -l)"
  errors="$(awk '$2 == "error" || $2 == "critical"' "$lg" | wc -l)"
  # The 3 most frequent warning/error messages (digits folded to N), for a look at what went wrong.
  samples="$(awk '($2 ~ /^warn/ && $3 != "boundary") || $2 == "error" || $2 == "critical" {
      $1 = ""; print substr($0, 2, 200) }' "$lg" | sed 's/[0-9][0-9]*/N/g' | sort | uniq -c |
    sort -rn | head -3 | sed 's/^ *//' | jq -R -s -c 'split("\n") | map(select(length > 0))')"
  # In the measured window only (log times are UTC ISO, compared as text).
  warns_window="$(awk -v a="$m0_iso" -v b="$m1_iso" '$1 >= a && $1 < b && $2 ~ /^warn/ && $3 != "boundary"' "$lg" | wc -l)"
  lost_window="$(awk -v a="$m0_iso" -v b="$m1_iso" '$1 >= a && $1 < b && /lease lost/' "$lg" | wc -l)"
  lost="$(grep -ci 'lost lease\|lost its lease\|lease lost\|lost the lease' "$lg" || true)"
  # The replica's own per-boundary summary lines (logged beyond 16 feeds) for the window's slots:
  # a cross-check of the database's counts, and "all outcomes recorded N us after the slot".
  boundaries="$(awk -v a="$first_iso" -v b="$last_iso" '
    $3 == "boundary" {
      at = $4; sub(/:$/, "", at)
      if (at < a || at > b) next
      lines++
      if (!(at in seen)) { seen[at] = 1; n++ }
      slots = 0
      for (k = 5; k <= NF; ++k) {
        w = $(k + 1); sub(/[,;]$/, "", w)
        if (w == "slots") slots = $k
        else if (w == "published") pub += $k
        else if (w == "failed") fail += $k
        else if (w == "skipped") skip += $k
        else if (w == "missed") miss += $k
        if ($k == "recorded" && slots > 0 && $(k + 1) / 1000 > worst[at]) worst[at] = $(k + 1) / 1000
      }
    }
    END {
      if (n == 0) { printf "null"; exit }
      m = 0
      for (at in worst) d[++m] = worst[at]
      for (i = 2; i <= m; ++i) { v = d[i]; for (j = i - 1; j >= 1 && d[j] > v; --j) d[j + 1] = d[j]; d[j + 1] = v }
      printf "{\"boundaries\":%d,\"lines\":%d,\"published\":%d,\"failed\":%d,\"skipped\":%d,\"missed\":%d,", n, lines, pub, fail, skip, miss
      if (m > 0) printf "\"all_recorded_after_ms\":{\"p50\":%.1f,\"max\":%.1f}}", d[int((m + 1) / 2)], d[m]
      else printf "\"all_recorded_after_ms\":null}"
    }' "$lg")"
  ((r > 0)) && replicas_json+=","
  replicas_json+="$(WS="$samples" awk -v r="$r" -v pid="$pid" -v t0="${r_ticks0[r]}" -v t1="${r_ticks1[r]}" \
    -v hz="$hz" -v m0="$m0_ns" -v m1="$m1_ns" -v rss="${max_rss[r]}" -v hwm="${hwm[r]}" \
    -v up="${startup_s[r]}" -v port="${api_ports[r]}" -v h0="$held0" -v h1="$held1" \
    -v w="$warns" -v e="$errors" -v l="$lost" -v x="${rexit[r]:-null}" -v bl="$boundaries" -v ww="$warns_window" -v lw="$lost_window" 'BEGIN {
    printf "{\"replica\":%d,\"pid\":%d,\"api_port\":%s,\"startup_s\":%s,", r, pid, (port == "" ? "null" : port), up
    printf "\"leases_at_m0\":%d,\"leases_at_m1\":%d,", h0, h1
    printf "\"cpu_percent\":%.1f,\"rss_mb_max_in_window\":%.1f,\"vmhwm_mb\":%.1f,", 100 * (t1 - t0) / hz / ((m1 - m0) / 1e9), rss / 1024, hwm / 1024
    printf "\"log_warnings_in_window\":%d,\"log_lease_lost_in_window\":%d,", ww, lw
    printf "\"log_warnings_whole_run\":%d,\"log_errors_whole_run\":%d,\"log_lease_lost_whole_run\":%d,\"exit_code_after_sigterm\":%s,", w, e, l, x
    printf "\"log_warning_samples\":%s,\"boundary_log\":%s}", ENVIRON["WS"], bl
  }')"
done
replicas_json+="]"

window_s="$(awk -v a="$m0_ns" -v b="$m1_ns" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')"
settings_json="$(printf '%s\n' "${pg_settings[@]}" | jq -R 'split("=") | {(.[0]): (.[1:] | join("="))}' | jq -s add)"
jq -n -c \
  --arg binary "$binary" --argjson feeds "$feeds" --argjson replicas_n "$replicas" \
  --arg every "$every" --argjson seconds "$seconds" --argjson warmup "$warmup" \
  --argjson window_s "$window_s" --argjson grace "$grace" \
  --arg lease_ttl "${lease_ttl:-default}" --arg lease_renew "${lease_renew:-default}" \
  --argjson slots "$slots_json" --argjson statements "$statements_json" --argjson wal "$wal_json" \
  --argjson reps "$replicas_json" --argjson pg_settings "$settings_json" \
  --arg pg_version "$(psql_at postgres 'SHOW server_version' 2>/dev/null || echo "$pg_major")" \
  --argjson pg_t0 "$pg_ticks0" --argjson pg_t1 "$pg_ticks1" --argjson hz "$hz" \
  --argjson x0 "$xact0" --argjson x1 "$xact1" --argjson rb0 "$rollback0" --argjson rb1 "$rollback1" \
  --argjson i0 "$ins0" --argjson i1 "$ins1" --argjson u0 "$upd0" --argjson u1 "$upd1" \
  --argjson leases_m0 "$leases_m0" --argjson leases_m1 "$leases_m1" \
  --argjson e0 "$epochs_m0" --argjson e1 "$epochs_m1" --argjson dlq "$dlq_depth" \
  --argjson stop_s "$stop_s" --argjson nproc "$(nproc)" \
  --arg cpu_model "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)" \
  --arg kernel "$(uname -r)" --arg lend "$(loadavg)" --arg l0 "$load_start" --arg lm0 "$load_m0" --arg lm1 "$load_m1" \
  --arg started "$(date -u -d @$((start_ns / 1000000000)) +%FT%TZ)" '
  def r1: . * 10 | round / 10;
  {
    bench: "ha_scale", started: $started, binary: $binary,
    config: {feeds: $feeds, every: $every, replicas: $replicas_n, lease_ttl: $lease_ttl,
             lease_renew: $lease_renew, source: "random_int", warmup_s: $warmup,
             seconds: $seconds, grace_s: $grace},
    window_s: $window_s,
    publish_latency_ms: ($slots.latency_commit_ts_ms + {definition: "commit timestamp of the value row - slot (see latency_note)"}),
    slots: $slots,
    latency_note: "latency_commit_ts_ms: pg_xact_commit_timestamp(xmin) of the value row - slot (commit record written, before its WAL fsync); latency_published_at_ms: values.published_at_ns - slot (the daemon sent the commit)",
    leases: {at_m0: $leases_m0, at_m1: $leases_m1, holder_changes_in_window: ($e1 - $e0)},
    statements: ($statements + {per_s: ($statements.calls / $window_s | r1),
      lease_per_s: (($statements.by_kind.lease.calls // 0) / $window_s | r1),
      lease_rows_per_s: (($statements.by_kind.lease.rows // 0) / $window_s | r1),
      lease_exec_ms_per_s: (($statements.by_kind.lease.exec_ms // 0) / $window_s | r1),
      commit_slots_per_s: (($statements.by_kind.commit_slots.calls // 0) / $window_s | r1)}),
    transactions: {commits_per_s: (($x1 - $x0) / $window_s | r1), rollbacks: ($rb1 - $rb0),
                   rows_inserted_per_s: (($i1 - $i0) / $window_s | r1),
                   rows_updated_per_s: (($u1 - $u0) / $window_s | r1)},
    wal: ($wal + {syncs_per_s: ($wal.syncs / $window_s | r1),
                  mb_per_s: ($wal.bytes / 1048576 / $window_s * 100 | round / 100)}),
    db_cpu_percent: (100 * ($pg_t1 - $pg_t0) / $hz / $window_s | r1),
    replicas: $reps,
    replicas_cpu_percent_total: ([$reps[].cpu_percent] | add | r1),
    dlq_depth_at_end: $dlq, replicas_stop_s: $stop_s,
    postgres: {version: $pg_version, settings: $pg_settings},
    machine: {nproc: $nproc, cpu: $cpu_model, kernel: $kernel,
              loadavg_start: $l0, loadavg_m0: $lm0, loadavg_m1: $lm1,
              loadavg_end: $lend}
  }' 
log "done"
