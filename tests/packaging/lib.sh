# Shared by the packaging tests (sourced). Each test: bash X_test.sh METRONOME_BINARY BUILD_DIR.
# Exit 0 pass, 1 fail, 77 skipped (ctest SKIP_RETURN_CODE).
set -euo pipefail

METRONOME=${1:?usage: $0 METRONOME_BINARY BUILD_DIR}
BUILD_DIR=${2:-}
SOURCE_DIR=${METRONOME_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
TEST_NAME=$(basename "$0" .sh)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/metronome-$TEST_NAME.XXXXXX")
DAEMON_PID=
cleanup() {
  if [[ -n "$DAEMON_PID" ]] && kill -0 "$DAEMON_PID" 2>/dev/null; then
    kill -KILL "$DAEMON_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() { echo "FAIL ($TEST_NAME): $*" >&2; exit 1; }
skip() { echo "SKIP ($TEST_NAME): $*" >&2; exit 77; }
pass() { echo "PASS ($TEST_NAME)${1:+: $1}"; exit 0; }
need() { command -v "$1" >/dev/null 2>&1 || skip "$1 not found (Debian package ${2:-$1})"; }

# write_config FILE FEEDS_TOML: a config with its data under FILE's folder, the API on a free port
# (port 0), text logs, a signing key created now; FEEDS_TOML is the [[feeds]] part.
write_config() {
  local file=$1 feeds=$2 dir
  dir=$(dirname "$file")
  mkdir -p "$dir"
  if [[ ! -e "$dir/secrets/key" ]]; then
    "$METRONOME" keygen --out "$dir/secrets/key" >/dev/null 2>&1 || fail "keygen"
  fi
  cat >"$file" <<TOML
[service]
data_dir = "$dir"
listen = "127.0.0.1:0"
log_level = "debug"
[store]
path = "$dir/metronome.db"
dlq_path = "$dir/metronome.dlq.db"
[secrets.key]
file = "$dir/secrets/key"
$feeds
TOML
}

# feed_toml ID EVERY WINDOW
feed_toml() {
  printf '[[feeds]]\nid = "%s"\nevery = "%s"\nwindow = "%s"\nsecret = "key"\nsource = { kind = "random_int", min = 0, max = 1000 }\n' \
    "$1" "$2" "$3"
}

# start_daemon CONFIG LOG: runs `metronome run` in the background, DAEMON_PID set.
start_daemon() {
  "$METRONOME" run --config "$1" >"$2" 2>&1 &
  DAEMON_PID=$!
}

# stop_daemon: SIGTERM, expects exit 0 within 10 s.
stop_daemon() {
  kill -TERM "$DAEMON_PID"
  local rc=0
  timeout 10 tail --pid="$DAEMON_PID" -f /dev/null || fail "the daemon did not stop within 10 s of SIGTERM"
  wait "$DAEMON_PID" || rc=$?
  DAEMON_PID=
  [[ $rc -eq 0 ]] || fail "the daemon exited $rc on SIGTERM"
}

# count_values CONFIG FEED: how many values of FEED the CLI shows.
count_values() {
  "$METRONOME" values --config "$1" --feed "$2" --limit 100000 --format json |
    python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'
}

# wait_for SECONDS COMMAND...: polls COMMAND every 0.1 s until it succeeds.
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}
