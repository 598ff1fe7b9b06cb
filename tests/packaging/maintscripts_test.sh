#!/usr/bin/env bash
# postinst/prerm/postrm, run against stub commands that log their arguments (nothing on this
# machine changes): a fresh install creates the user, the state dirs and the key as `metronome`;
# a reinstall with an existing user and key touches neither; systemctl is only called when
# /run/systemd/system exists (here: never, the scripts see the host's), and never to start.
source "$(dirname "$0")/lib.sh"
scripts="$SOURCE_DIR/packaging/debian"
stubs="$WORK/stubs"
log="$WORK/calls"
mkdir -p "$stubs"
stub() {  # stub NAME [SHELL-BODY]
  printf '#!/bin/sh\necho "%s $*" >>"%s"\n%s\n' "$1" "$log" "${2:-exit 0}" >"$stubs/$1"
  chmod +x "$stubs/$1"
}
stub adduser
stub install
stub systemctl
stub runuser 'echo 0x0000000000000000000000000000000000000001'
stub getent 'exit ${GETENT_RC:-2}'

# The key path is fixed in the script; run it against a copy that points into WORK.
key_dir="$WORK/var/lib/metronome/secrets"
sed "s|^STATE_DIR=/var/lib/metronome|STATE_DIR=$WORK/var/lib/metronome|" "$scripts/postinst" \
  >"$WORK/postinst"

run() { PATH="$stubs:$PATH" sh "$@"; }

# Fresh install.
: >"$log"
out=$(run "$WORK/postinst" configure "") || fail "postinst configure exited $?"
grep -qx 'adduser --system --group --home /var/lib/metronome --quiet metronome' "$log" ||
  fail "no adduser call: $(cat "$log")"
grep -qx "install -d -o metronome -g metronome -m 0700 $WORK/var/lib/metronome/secrets" "$log" ||
  fail "secrets dir not created 0700: $(cat "$log")"
grep -qx "runuser -u metronome -- /usr/bin/metronome keygen --out $key_dir/oracle_key" "$log" ||
  fail "key not created as metronome: $(cat "$log")"
grep -q 'signer address 0x0000000000000000000000000000000000000001' <<<"$out" ||
  fail "the new key's address is not printed: $out"
if [[ ! -d /run/systemd/system ]]; then
  ! grep -q '^systemctl' "$log" || fail "systemctl called without a running systemd: $(cat "$log")"
fi
! grep -Eq '^systemctl (start|enable|restart)' "$log" || fail "the service must not be started"

# Reinstall: the user and the key exist.
mkdir -p "$key_dir" && touch "$key_dir/oracle_key"
: >"$log"
GETENT_RC=0 run "$WORK/postinst" configure 0.0.9 >/dev/null || fail "postinst upgrade exited $?"
! grep -q '^adduser' "$log" || fail "adduser called for an existing user"
! grep -q '^runuser' "$log" || fail "keygen called with an existing key"

# Removal and purge never fail and never delete the data.
run "$scripts/prerm" remove || fail "prerm remove"
run "$scripts/prerm" upgrade 0.2.0 || fail "prerm upgrade"
run "$scripts/postrm" remove || fail "postrm remove"
run "$scripts/postrm" purge >/dev/null || fail "postrm purge"
! grep -Eq '(^|[[:space:];])rm -' "$scripts/postrm" || fail "postrm must not delete data"
run "$scripts/postinst" bogus 2>/dev/null && fail "postinst accepted an unknown action"
pass
