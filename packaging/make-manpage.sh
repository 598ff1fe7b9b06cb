#!/usr/bin/env bash
# Writes the metronome(1) man page, gzipped, from the binary's own help: help2man turns
# `metronome --help` and `--version` into the page, and every subcommand's --help (found by
# walking the "Subcommands:" lists, so new subcommands appear without editing this) becomes a
# COMMANDS section. Static sections (FILES, ENVIRONMENT, EXIT STATUS, SEE ALSO) come from here.
# Usage: make-manpage.sh HELP2MAN METRONOME_BINARY OUT.1.gz
set -euo pipefail

help2man=$1
binary=$2
out=$3

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Names listed under "Subcommands:" in a help text, one per line.
subcommands() {
  awk '/^Subcommands:/ { on = 1; next } on && /^  [a-z]/ { print $1 } on && /^[^ ]/ { on = 0 }'
}

# Escapes help text for roff: backslashes, and lines that would start a request.
roff_escape() {
  sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"
}

# Appends "metronome PATH... --help" to the include file, then each of its subcommands.
describe() {
  local text
  text=$("$binary" "$@" --help)
  {
    printf '.SS "metronome %s"\n.nf\n' "$*"
    printf '%s\n' "$text" | roff_escape
    printf '.fi\n'
  } >>"$work/include"
  local sub
  for sub in $(printf '%s\n' "$text" | subcommands); do
    describe "$@" "$sub"
  done
}

: >"$work/include"
printf '[COMMANDS]\nEvery command takes \\fB\\-\\-config\\fR \\fIPATH\\fR (a TOML file; without it, the built-in default).\n' \
  >>"$work/include"
for sub in $("$binary" --help | subcommands); do
  describe "$sub"
done

cat >>"$work/include" <<'EOF'
[DESCRIPTION]
.B metronome
is an oracle daemon: every feed it serves publishes one signed value per slot (by default every
2 seconds, aligned to the wall clock), never before the slot, exactly once per slot, into a durable
history, with a dead-letter queue for what failed and alarms for what needs a person. The other
commands read and repair that history while the daemon runs.

[EXIT STATUS]
0 ok, 2 usage or configuration error, 1 runtime failure.

[ENVIRONMENT]
.TP
.B NOTIFY_SOCKET
Set by systemd for Type=notify services: \fBmetronome run\fR sends READY=1 once every feed's first
execution is planned.
.TP
.B WATCHDOG_USEC
Set by systemd's WatchdogSec=: the timer thread sends WATCHDOG=1 at half this interval.
.PP
A secret configured with \fBenv = "NAME"\fR is read from the environment variable NAME.

[SIGNALS]
.TP
.B SIGTERM, SIGINT
Stop: no new slots; the slot in flight finishes; exit 0.
.TP
.B SIGHUP
Reload the configuration file: feeds added, removed or changed take effect at their next window;
an invalid file is refused with its error and the running configuration is kept.

[FILES]
.TP
.I /etc/metronome/metronome.toml
The configuration of the packaged service.
.TP
.I /var/lib/metronome/
The service's data: \fImetronome.db\fR (values, executions, slot outcomes),
\fImetronome.dlq.db\fR (dead-letter queue and alarm states), \fIsecrets/oracle_key\fR (mode 0600).
.TP
.I /lib/systemd/system/metronome.service
The systemd unit.
.TP
.I /usr/share/doc/metronome/examples/metronome-alerts.yml
Prometheus alert rules.

[SEE ALSO]
.BR systemctl (1),
.BR journalctl (1),
/usr/share/doc/metronome/operations.md,
/usr/share/doc/metronome/README.md
EOF

"$help2man" --no-info --no-discard-stderr \
  --name "publishes a signed value for every slot, on the beat, exactly once" \
  --section 1 --manual "User Commands" \
  --include "$work/include" --output "$work/metronome.1" "$binary"
gzip -9n <"$work/metronome.1" >"$out.tmp"
mv "$out.tmp" "$out"
