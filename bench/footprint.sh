#!/usr/bin/env bash
# footprint: the default daemon's resident memory and CPU use (issue 5: RSS <= 15 MB, idle CPU
# <= 0.2% of one core). Runs `metronome run` on its built-in default (no config file) in a fresh
# temp dir for --seconds (default 300), samples /proc/PID/status VmRSS and /proc/PID/stat
# utime+stime once a second, stops it with SIGTERM and prints one JSON object on stdout.
#
#   bench/footprint.sh [--seconds N] [--binary PATH] [--warmup N]
#
# cpu_percent is (utime+stime) over wall time for the whole run, start-up included;
# cpu_percent_steady leaves out the first --warmup seconds (default 5: start-up, key generation,
# schema creation), which is the "idle between slots" figure. Not a test: nothing is asserted.
set -euo pipefail

seconds=300
warmup=5
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
binary="${METRONOME_BIN:-$here/../build/src/metronome}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --binary) binary="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "footprint.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
binary="$(realpath "$binary")"
[[ -x "$binary" ]] || { echo "footprint.sh: no metronome binary at $binary" >&2; exit 2; }
(( warmup < seconds )) || warmup=0

dir="$(mktemp -d /tmp/metronome-footprint.XXXXXX)"
pid=""
cleanup() {
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT

hz="$(getconf CLK_TCK)"
now_ns() { date +%s%N; }
# utime + stime in clock ticks (fields 14 and 15; the command name in field 2 has no spaces here).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
threads() { awk '/^Threads:/ {print $2}' "/proc/$1/status"; }
# Run time in ns summed over the live threads (schedstat is exact; stat's ticks are sampled).
sched_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%d", s}'; }

cd "$dir"
start_ns="$(now_ns)"
"$binary" run >"$dir/daemon.log" 2>&1 &
pid=$!

max_rss=0
min_rss=0
sum_rss=0
samples=0
steady_ticks0=""
steady_ns0=""
last_ticks=0
last_sched=0
steady_sched0=0
last_ns="$start_ns"
max_threads=0
for ((t = 1; t <= seconds; ++t)); do
  # Sleep to absolute one-second marks after the start, so sampling does not drift.
  target=$((start_ns + t * 1000000000))
  wait_ns=$((target - $(now_ns)))
  if ((wait_ns > 0)); then sleep "$(printf '%d.%09d' $((wait_ns / 1000000000)) $((wait_ns % 1000000000)))"; fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "footprint.sh: the daemon exited early; its log:" >&2
    tail -20 "$dir/daemon.log" >&2
    exit 1
  fi
  rss="$(rss_kb "$pid")"
  last_ticks="$(cpu_ticks "$pid")"
  last_sched="$(sched_ns "$pid")"
  last_ns="$(now_ns)"
  th="$(threads "$pid")"
  ((th > max_threads)) && max_threads=$th
  ((rss > max_rss)) && max_rss=$rss
  ((min_rss == 0 || rss < min_rss)) && min_rss=$rss
  sum_rss=$((sum_rss + rss))
  samples=$((samples + 1))
  if ((t == warmup)) || { ((warmup == 0)) && ((t == 1)); }; then
    steady_ticks0=$last_ticks
    steady_ns0=$last_ns
    steady_sched0=$last_sched
  fi
done
hwm="$(hwm_kb "$pid")"
published="$(grep -c 'published feed=' "$dir/daemon.log" || true)"
kill -TERM "$pid"
wait "$pid" || true
pid=""

awk -v seconds="$seconds" -v warmup="$warmup" -v hz="$hz" \
  -v start_ns="$start_ns" -v last_ns="$last_ns" -v last_ticks="$last_ticks" \
  -v s_ns="$steady_ns0" -v s_ticks="$steady_ticks0" -v last_sched="$last_sched" -v s_sched="$steady_sched0" \
  -v max_rss="$max_rss" -v min_rss="$min_rss" -v sum_rss="$sum_rss" -v samples="$samples" \
  -v hwm="$hwm" -v threads="$max_threads" -v published="$published" -v binary="$binary" \
  -v load="$(cut -d' ' -f1-3 /proc/loadavg)" 'BEGIN {
  wall = (last_ns - start_ns) / 1e9
  cpu = last_ticks / hz
  swall = (last_ns - s_ns) / 1e9
  scpu = (last_ticks - s_ticks) / hz
  printf "{\"bench\":\"footprint\",\"binary\":\"%s\",\"config\":\"built-in default\",", binary
  printf "\"seconds\":%d,\"warmup_s\":%d,\"samples\":%d,", seconds, warmup, samples
  printf "\"rss_kb\":{\"max\":%d,\"min\":%d,\"mean\":%d,\"vmhwm\":%d},", max_rss, min_rss, sum_rss / samples, hwm
  printf "\"rss_mb_max\":%.2f,", max_rss / 1024
  printf "\"cpu_seconds\":%.2f,\"wall_seconds\":%.2f,\"cpu_percent\":%.4f,", cpu, wall, 100 * cpu / wall
  printf "\"cpu_percent_steady\":%.4f,\"clock_ticks_per_s\":%d,", (swall > 0 ? 100 * scpu / swall : 0), hz
  printf "\"cpu_percent_steady_schedstat\":%.4f,", (swall > 0 ? 100 * (last_sched - s_sched) / 1e9 / swall : 0)
  printf "\"threads\":%d,\"slots_published\":%d,\"loadavg\":\"%s\"}\n", threads, published, load
}'
