#!/usr/bin/env bash
# The example Prometheus alert rules: `promtool check rules` (syntax, PromQL, templates), then
# `promtool test rules` with metronome-alerts_test.yml (each alert fires on the series the daemon
# exports and stays quiet where it should). Without promtool (Debian package prometheus): a YAML
# check with python3-yaml that every rule names an alert, an expr and only known metrics.
source "$(dirname "$0")/lib.sh"
rules="$SOURCE_DIR/packaging/prometheus/metronome-alerts.yml"
need python3 python3
python3 -c 'import yaml' 2>/dev/null || skip "python3-yaml not installed"

# Every metric the rules use is one the daemon exports (or Prometheus's `up`).
python3 - "$rules" "$WORK/rules-no-annotations.yml" <<'PY' || fail "the rules file"
import re, sys, yaml
known = {"up", "metronome_slots_total", "metronome_slot_fire_lateness_seconds_bucket",
         "metronome_publish_latency_seconds_bucket", "metronome_dlq_depth",
         "metronome_alarm_state", "metronome_clock_steps_total",
         "metronome_evm_pending_tx_age_seconds"}
doc = yaml.safe_load(open(sys.argv[1]))
names = []
for group in doc["groups"]:
    for rule in group["rules"]:
        assert rule.get("alert") and rule.get("expr"), f"rule without alert/expr: {rule}"
        names.append(rule["alert"])
        used = set(re.findall(r"\b(up|metronome_[a-z_]+)\b", rule["expr"]))
        assert used and used <= known, f"{rule['alert']}: unknown metric(s) {used - known}"
        rule.pop("annotations", None)
assert len(names) == len(set(names)), f"duplicate alert names: {names}"
for want in ["MetronomeDown", "MetronomeSlotsFailed", "MetronomeSlotsMissed",
             "MetronomeFireLatenessHigh", "MetronomeDLQNotEmpty", "MetronomeAlarm",
             "MetronomeClockStepped"]:
    assert want in names, f"missing alert {want}"
yaml.safe_dump(doc, open(sys.argv[2], "w"))
PY

if ! command -v promtool >/dev/null; then
  pass "YAML only (promtool not found: Debian package prometheus)"
fi
out=$(promtool check rules "$rules" 2>&1) || fail "promtool check rules: $out"
sed "s|RULES_FILE|$WORK/rules-no-annotations.yml|" "$(dirname "$0")/metronome-alerts_test.yml" \
  >"$WORK/test.yml"
out=$(promtool test rules "$WORK/test.yml" 2>&1) || fail "promtool test rules: $out"
pass "promtool check + test rules"
