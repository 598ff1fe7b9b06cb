#!/usr/bin/env bash
# HTTP benchmark: starts the daemon with a 100 ms feed on a free port, lets it run idle for
# DURATION, then runs
#   wrk -t2 -c32 -dDURATION --latency http://127.0.0.1:PORT/v1/feeds/fast/latest
# and prints {"requests_per_s", "p99_ms", "idle_lateness_p99_us", "load_lateness_p99_us", ...} as
# JSON on stdout: wrk's figures, and the fire lateness of the feed's published slots in the idle
# phase and during the wrk phase (from the daemon's own execution history). The daemon's log and
# wrk's report go to stderr. Needs wrk (scripts/setup.sh --test).
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

now_ms() { date +%s%3N; }
idle_from=$(now_ms)
sleep "${duration%s}"
load_from=$(now_ms)
report=$(wrk -t2 -c32 -d"$duration" --latency "$url")
load_to=$(now_ms)
echo "$report" >&2
lateness=$(curl -sf "http://127.0.0.1:$port/v1/executions?feed=fast&limit=100" |
  python3 -c '
import json, sys
idle_from, load_from, load_to = map(int, sys.argv[1:4])
from datetime import datetime
def ms(iso): return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)
def p(xs, q):
  xs = sorted(xs); return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else None
idle, load = [], []
for e in json.load(sys.stdin)["executions"]:
  for s in e["slots"]:
    if s["outcome"] != "published" or s["lateness_us"] is None: continue
    t = ms(s["slot"])
    if idle_from <= t < load_from: idle.append(s["lateness_us"])
    elif load_from <= t < load_to: load.append(s["lateness_us"])
print(json.dumps({"idle_slots": len(idle), "idle_lateness_p50_us": p(idle, .5),
  "idle_lateness_p99_us": p(idle, .99), "load_slots": len(load),
  "load_lateness_p50_us": p(load, .5), "load_lateness_p99_us": p(load, .99)})[1:-1])
' "$idle_from" "$load_from" "$load_to")

# wrk prints "Requests/sec:  23456.78" and, with --latency, "     99%    1.23ms" (us, ms or s).
rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$report")
p99=$(awk '$1 == "99%" {
  v = $2; unit = v; sub(/[0-9.]+/, "", unit); sub(/[a-z]+$/, "", v);
  if (unit == "us") v /= 1000; else if (unit == "s") v *= 1000; else if (unit == "m") v *= 60000;
  printf "%.3f", v }' <<<"$report")
printf '{"requests_per_s": %s, "p99_ms": %s, %s}\n' "${rps:-null}" "${p99:-null}" "$lateness"
