#!/usr/bin/env bash
# sd_notify, as systemd's Type=notify + WatchdogSec= see it: the daemon, run with NOTIFY_SOCKET
# pointing at a datagram socket this test listens on and WATCHDOG_USEC=400000, sends READY=1
# (after its first execution is planned), then WATCHDOG=1 about every 200 ms, and STOPPING=1 on
# SIGTERM before exiting 0. Without WATCHDOG_USEC it sends no WATCHDOG=1.
source "$(dirname "$0")/lib.sh"
need python3 python3
write_config "$WORK/data/metronome.toml" "$(feed_toml tick 1s 10s)"

python3 - "$METRONOME" "$WORK/data/metronome.toml" "$WORK/notify" "$WORK/daemon.log" <<'PY' ||
import os, signal, socket, subprocess, sys, time
binary, config, sock_path, log_path = sys.argv[1:]

def run(watchdog_usec, watch_for):
    if os.path.exists(sock_path):
        os.unlink(sock_path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    env = dict(os.environ, NOTIFY_SOCKET=sock_path)
    env.pop("WATCHDOG_USEC", None); env.pop("WATCHDOG_PID", None)
    if watchdog_usec:
        env["WATCHDOG_USEC"] = str(watchdog_usec)
    log = open(log_path, "a")
    proc = subprocess.Popen([binary, "run", "--config", config], env=env, stdout=log, stderr=log)
    messages = []  # (monotonic time, set of KEY=VALUE lines)
    sock.settimeout(0.1)
    end = time.monotonic() + watch_for
    ready_at = None
    try:
        while time.monotonic() < end and proc.poll() is None:
            try:
                data = sock.recv(4096)
            except socket.timeout:
                continue
            lines = set(data.decode().splitlines())
            messages.append((time.monotonic(), lines))
            if "READY=1" in lines and ready_at is None:
                ready_at = time.monotonic()
                end = ready_at + 1.5  # watch the watchdog for 1.5 s after READY
        if proc.poll() is not None:
            sys.exit(f"the daemon exited {proc.returncode} early; see {log_path}")
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=10)
        sock.settimeout(0.5)
        try:
            while True:
                messages.append((time.monotonic(), set(sock.recv(4096).decode().splitlines())))
        except socket.timeout:
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
    if rc != 0:
        sys.exit(f"exit code {rc} on SIGTERM")
    if ready_at is None:
        sys.exit(f"no READY=1 within {watch_for} s; got {[sorted(m) for _, m in messages]}")
    pings = [t for t, m in messages if "WATCHDOG=1" in m and t >= ready_at]
    if not any("STOPPING=1" in m for _, m in messages):
        sys.exit("no STOPPING=1 on SIGTERM")
    return pings

pings = run(400_000, 20)
if len(pings) < 4:
    sys.exit(f"expected WATCHDOG=1 about every 200 ms for 1.5 s after READY=1, got {len(pings)}")
gaps = [b - a for a, b in zip(pings, pings[1:])]
if max(gaps) > 0.4:
    sys.exit(f"a gap between WATCHDOG=1 pings of {max(gaps):.3f} s exceeds WATCHDOG_USEC (0.4 s)")
pings = run(0, 20)
if pings:
    sys.exit(f"WATCHDOG=1 sent without WATCHDOG_USEC ({len(pings)} times)")
PY
  fail "see above; daemon log: $(tail -20 "$WORK/daemon.log")"
pass
