#!/usr/bin/env bash
# The systemd unit alone: `systemd-analyze verify` accepts it with no warning at all (an unknown
# or misspelt directive is only a warning, exit 0, so any output fails the test), its sandbox
# scores "OK" in `systemd-analyze security --offline`, and it sets what the service needs.
#
# No running systemd is needed (this works in a container): verify checks that ExecStart's
# binary exists and is executable, so the unit is copied to a temp dir with ExecStart pointed
# at the built binary; --man=no because the man page is not installed on the host (deb_test
# checks the unit as packaged, man page included, with --root).
source "$(dirname "$0")/lib.sh"
need systemd-analyze systemd

unit="$SOURCE_DIR/packaging/metronome.service"
copy="$WORK/metronome.service"
sed "s|^ExecStart=/usr/bin/metronome |ExecStart=$METRONOME |" "$unit" >"$copy"
grep -q "^ExecStart=$METRONOME run --config /etc/metronome/metronome.toml\$" "$copy" ||
  fail "ExecStart is not '/usr/bin/metronome run --config /etc/metronome/metronome.toml'"

out=$(systemd-analyze verify --man=no "$copy" 2>&1) || fail "systemd-analyze verify: $out"
[[ -z "$out" ]] || fail "systemd-analyze verify warned: $out"

# --threshold is in tenths of the printed exposure level (0..100): 30 is "3.0", still "OK".
out=$(systemd-analyze security --offline=true --threshold=30 "$copy" 2>&1) ||
  fail "systemd-analyze security: exposure above 3.0: $(tail -1 <<<"$out")"
exposure=$(grep -o 'Overall exposure level.*' <<<"$out")

# What the service needs, exactly as specified (a directive given twice would be caught too).
for want in \
  Type=notify NotifyAccess=main 'ExecReload=/bin/kill -HUP $MAINPID' WatchdogSec=10 \
  User=metronome Group=metronome StateDirectory=metronome StateDirectoryMode=0700 \
  WorkingDirectory=/var/lib/metronome Restart=on-failure RestartSec=1 \
  ProtectSystem=strict ProtectHome=yes PrivateTmp=yes NoNewPrivileges=yes \
  CapabilityBoundingSet=CAP_SYS_NICE AmbientCapabilities=CAP_SYS_NICE \
  LimitRTPRIO=99 LimitMEMLOCK=infinity PrivateDevices=yes ProtectKernelTunables=yes \
  ProtectControlGroups=yes 'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6' \
  SystemCallArchitectures=native LockPersonality=yes MemoryDenyWriteExecute=yes \
  WantedBy=multi-user.target; do
  n=$(grep -cxF -- "$want" "$unit" || true)
  [[ $n -eq 1 ]] || fail "expected the line '$want' once in metronome.service, found $n"
done
# Realtime scheduling is wanted (realtime = true): RestrictRealtime would forbid it.
! grep -q '^RestrictRealtime=' "$unit" || fail "RestrictRealtime= must not be set"
# The service is never run as root nor given more than CAP_SYS_NICE.
[[ $(grep -c '^CapabilityBoundingSet=' "$unit") -eq 1 ]] || fail "one CapabilityBoundingSet= only"

pass "$exposure"
