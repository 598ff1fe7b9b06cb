#!/usr/bin/env bash
# `metronome backup --out F` while the daemon writes (a feed every 100 ms): both copies (F and
# F's .dlq.db) pass SQLite's integrity check, the CLI reads values and executions from them, the
# daemon keeps publishing across the backup, and an existing file is never overwritten (exit 2).
source "$(dirname "$0")/lib.sh"
need python3 python3
config="$WORK/data/metronome.toml"
write_config "$config" "$(feed_toml fast 100ms 1s)"
start_daemon "$config" "$WORK/daemon.log"
has_values() { [[ $(count_values "$config" fast 2>/dev/null || echo 0) -ge 5 ]]; }
wait_for 15 has_values || fail "no values from the daemon; log: $(tail -20 "$WORK/daemon.log")"

mkdir -p "$WORK/backup"
out=$("$METRONOME" backup --config "$config" --out "$WORK/backup/copy.db" 2>&1) ||
  fail "metronome backup: $out"
for f in copy.db copy.dlq.db; do
  [[ -f "$WORK/backup/$f" ]] || fail "backup did not write $f; it said: $out"
  grep -q "$WORK/backup/$f" <<<"$out" || fail "backup did not print $f: $out"
  if command -v sqlite3 >/dev/null; then
    check=$(sqlite3 "$WORK/backup/$f" 'PRAGMA integrity_check') || fail "sqlite3 $f"
    [[ $check == ok ]] || fail "$f integrity: $check"
  fi
done
before=$(count_values "$config" fast)
more_values() { [[ $(count_values "$config" fast) -ge $((before + 5)) ]]; }
wait_for 10 more_values || fail "the daemon stopped publishing after the backup"

# A second backup to the same file is refused, the copy untouched.
sum=$(md5sum <"$WORK/backup/copy.db")
rc=0
"$METRONOME" backup --config "$config" --out "$WORK/backup/copy.db" >/dev/null 2>&1 || rc=$?
[[ $rc -eq 2 ]] || fail "backup over an existing file: exit $rc, expected 2"
[[ $(md5sum <"$WORK/backup/copy.db") == "$sum" ]] || fail "an existing backup was overwritten"
stop_daemon

# Read the copy with the CLI, as a restore would: a config whose store points at the copies.
restored="$WORK/restored/metronome.toml"
mkdir -p "$WORK/restored"
cp "$WORK/backup/copy.db" "$WORK/restored/metronome.db"
cp "$WORK/backup/copy.dlq.db" "$WORK/restored/metronome.dlq.db"
cp -a "$WORK/data/secrets" "$WORK/restored/"
write_config "$restored" "$(feed_toml fast 100ms 1s)"
n=$(count_values "$restored" fast) || fail "values from the copy"
[[ $n -ge 5 ]] || fail "the copy has $n values, expected at least 5"
"$METRONOME" executions --config "$restored" --limit 3 --format json >/dev/null ||
  fail "executions from the copy"
"$METRONOME" dlq list --config "$restored" >/dev/null || fail "dlq list from the copy"
"$METRONOME" values --config "$restored" --feed fast --limit 20 --format json |
  "$METRONOME" verify --config "$restored" >/dev/null || fail "the copy's records do not verify"
pass "$n values in the copy"
