#!/usr/bin/env bash
# [service] realtime = true, as an operator would check it:
#  - allowed (root, as systemd grants CAP_SYS_NICE): `ps -L` shows metronome-timer at SCHED_FIFO
#    50 and the metronome-work threads at SCHED_FIFO 40, memory is locked (VmLck > 0), no
#    refusal is logged, and values are published;
#  - refused (an unprivileged user: no CAP_SYS_NICE, RLIMIT_RTPRIO 0): exactly one warning names
#    what was refused, and the daemon still publishes at normal priority.
source "$(dirname "$0")/lib.sh"
need ps procps
need setpriv util-linux
[[ $(id -u) -eq 0 ]] || skip "needs root (to grant SCHED_FIFO, and to run the refused case as nobody)"

write_config "$WORK/data/metronome.toml" "$(feed_toml tick 100ms 1s)"
sed -i 's/^\[service\]$/[service]\nrealtime = true/' "$WORK/data/metronome.toml"
grep -q '^realtime = true$' "$WORK/data/metronome.toml" || fail "could not write the config"

# --- allowed ---
start_daemon "$WORK/data/metronome.toml" "$WORK/allowed.log"
wait_for 10 grep -q "published feed=tick" "$WORK/allowed.log" || fail "nothing published; $(cat "$WORK/allowed.log")"
threads=$(ps -L -o cls=,rtprio=,comm= -p "$DAEMON_PID")
grep -Eq '^ *FF +50 +metronome-timer$' <<<"$threads" || fail "timer thread not SCHED_FIFO 50:
$threads"
grep -Eq '^ *FF +40 +metronome-work$' <<<"$threads" || fail "worker threads not SCHED_FIFO 40:
$threads"
! grep -Eq '^ *FF +[0-9]+ +metronome-http$' <<<"$threads" || fail "HTTP threads must not be realtime"
locked=$(awk '/^VmLck:/ {print $2}' "/proc/$DAEMON_PID/status")
# AddressSanitizer intercepts mlockall and makes it a no-op that succeeds (its shadow memory
# could not be locked): memory checks only apply to a normal build.
asan=$(ldd "$METRONOME" | grep -c libasan || true)
if [[ $asan -eq 0 ]]; then
  [[ ${locked:-0} -gt 0 ]] || fail "memory not locked (VmLck ${locked:-?} kB)"
fi
stop_daemon
! grep -q "refused" "$WORK/allowed.log" || fail "a refusal was logged while allowed: $(grep refused "$WORK/allowed.log")"

# --- refused: the same config, run as nobody without capabilities ---
cp -r "$WORK/data" "$WORK/nobody"
sed -i "s|$WORK/data|$WORK/nobody|g" "$WORK/nobody/metronome.toml"
rm -f "$WORK"/nobody/metronome*.db*
chown -R 65534:65534 "$WORK/nobody"
chmod 755 "$WORK"
# A copy nobody can execute wherever the build tree is (CI may build under /root).
install -m 755 "$METRONOME" "$WORK/metronome"
setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all \
  prlimit --rtprio=0 --memlock=65536 -- \
  "$WORK/metronome" run --config "$WORK/nobody/metronome.toml" >"$WORK/refused.log" 2>&1 &
DAEMON_PID=$!
wait_for 10 grep -q "published feed=tick" "$WORK/refused.log" || fail "nothing published when refused; $(cat "$WORK/refused.log")"
sleep 1
stop_daemon
n=$(grep -c "SCHED_FIFO was refused" "$WORK/refused.log" || true)
[[ $n -eq 1 ]] || fail "expected exactly one SCHED_FIFO refusal warning, got $n:
$(grep -i refused "$WORK/refused.log")"
if [[ $asan -eq 0 ]]; then
  grep -q "mlockall was refused" "$WORK/refused.log" || fail "the mlockall refusal was not logged"
fi
pass "allowed: timer FF 50, workers FF 40, VmLck ${locked} kB; refused: one warning, still publishing"
