#!/usr/bin/env bash
# HTTP benchmark: starts the daemon with a 100 ms feed on a free port, runs
#   wrk -t2 -c32 -d15s --latency http://127.0.0.1:PORT/v1/feeds/fast/latest
# and prints {"requests_per_s": N, "p99_ms": N} as JSON on stdout (the daemon's log and wrk's
# report go to stderr). Needs the API wired into the daemon, and wrk (scripts/setup.sh --test).
#   bench/http_latest.sh [path/to/metronome]     default: build/src/metronome
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
binary=${1:-$root/build/src/metronome}
duration=${DURATION:-15s}
[[ -x "$binary" ]] || { echo "http_latest: no binary at $binary (make build)" >&2; exit 2; }
command -v wrk >/dev/null || { echo "http_latest: wrk is not installed" >&2; exit 2; }

work=$(mktemp -d)
daemon_pid=
cleanup() {
  if [[ -n "$daemon_pid" ]] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill -TERM "$daemon_pid"
    wait "$daemon_pid" || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
mkdir -p "$work/secrets"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/secrets/oracle_key"
chmod 600 "$work/secrets/oracle_key"
cat > "$work/metronome.toml" <<TOML
[service]
data_dir = "var"
listen = "127.0.0.1:$port"
log_level = "warn"
[store]
path = "var/metronome.db"
[secrets.oracle_key]
file = "secrets/oracle_key"
[[feeds]]
id = "fast"
every = "100ms"
window = "1s"
secret = "oracle_key"
source = { kind = "random_int", min = 0, max = 1000 }
TOML

(cd "$work" && exec "$binary" run --config metronome.toml 2>"$work/daemon.log") &
daemon_pid=$!
url="http://127.0.0.1:$port/v1/feeds/fast/latest"
for _ in $(seq 100); do
  if curl -sf "$url" >/dev/null 2>&1; then break; fi
  sleep 0.1
done
curl -sf "$url" >/dev/null || { echo "http_latest: the API did not answer" >&2; cat "$work/daemon.log" >&2; exit 1; }

report=$(wrk -t2 -c32 -d"$duration" --latency "$url")
echo "$report" >&2

# wrk prints "Requests/sec:  23456.78" and, with --latency, "     99%    1.23ms" (us, ms or s).
rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$report")
p99=$(awk '$1 == "99%" {
  v = $2; unit = v; sub(/[0-9.]+/, "", unit); sub(/[a-z]+$/, "", v);
  if (unit == "us") v /= 1000; else if (unit == "s") v *= 1000; else if (unit == "m") v *= 60000;
  printf "%.3f", v }' <<<"$report")
printf '{"requests_per_s": %s, "p99_ms": %s}\n' "${rps:-null}" "${p99:-null}"
