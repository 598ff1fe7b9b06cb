#!/usr/bin/env bash
# SIGHUP reload (systemctl reload): a feed added to the file appears at its next window; a broken
# file is refused with its error and the running feeds keep publishing; across both reloads the
# first feed has every slot published exactly once (consecutive slots, none missed, none doubled).
source "$(dirname "$0")/lib.sh"
need python3 python3
config="$WORK/data/metronome.toml"
write_config "$config" "$(feed_toml a 200ms 1s)"
start_daemon "$config" "$WORK/daemon.log"
alive() { kill -0 "$DAEMON_PID" 2>/dev/null || fail "the daemon died; log: $(tail -20 "$WORK/daemon.log")"; }
values_at_least() { [[ $(count_values "$config" "$1" 2>/dev/null || echo 0) -ge $2 ]]; }
wait_for 15 values_at_least a 3 || fail "feed a publishes nothing; log: $(tail -20 "$WORK/daemon.log")"

# 1. Add feed b.
write_config "$config" "$(feed_toml a 200ms 1s; feed_toml b 200ms 1s)"
kill -HUP "$DAEMON_PID"
sleep 0.2
alive
wait_for 10 values_at_least b 2 || fail "feed b did not appear after SIGHUP; log: $(tail -20 "$WORK/daemon.log")"

# 2. A broken file is refused; a and b keep going.
cp "$config" "$WORK/good.toml"
sed -i 's/every = "200ms"/every = "2x"/' "$config"
n_a=$(count_values "$config" a 2>/dev/null || count_values "$WORK/good.toml" a)
kill -HUP "$DAEMON_PID"
# Polled: on a loaded machine (ctest -j2) the reload may take longer than a fixed pause.
wait_for 10 grep -q "2x" "$WORK/daemon.log" || fail "the refused config's error is not logged"
alive
n_a=$(count_values "$WORK/good.toml" a)
n_b=$(count_values "$WORK/good.toml" b)
sleep 1.5
alive
[[ $(count_values "$WORK/good.toml" a) -gt $n_a ]] || fail "feed a stopped after a refused reload"
[[ $(count_values "$WORK/good.toml" b) -gt $n_b ]] || fail "feed b stopped after a refused reload"
cp "$WORK/good.toml" "$config"
stop_daemon

# 3. Feed a: every slot from its first to its last value published exactly once.
"$METRONOME" values --config "$config" --feed a --limit 100000 --format json >"$WORK/a.json"
"$METRONOME" executions --config "$config" --feed a --limit 10000 --format json >"$WORK/a-exec.json"
python3 - "$WORK/a.json" "$WORK/a-exec.json" <<'PY' || fail "feed a across the reloads"
import json, sys
slots = sorted(int(v["slot_ms"]) for v in json.load(open(sys.argv[1])))
assert len(slots) == len(set(slots)), "a slot was published twice"
gaps = [(a, b) for a, b in zip(slots, slots[1:]) if b - a != 200]
assert not gaps, f"slots not consecutive (missed across a reload?): {gaps[:5]}"
bad = [s for e in json.load(open(sys.argv[2])) for s in e["slots"]
       if s["outcome"] in ("missed", "failed", "skipped")]
assert not bad, f"slots not published: {bad[:5]}"
PY
pass
