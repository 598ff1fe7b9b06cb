#!/usr/bin/env bash
# The generated man page (BUILD_DIR/packaging/metronome.1.gz) renders without roff warnings and
# documents every subcommand the binary lists, nested ones (dlq list, config check) included.
source "$(dirname "$0")/lib.sh"
page="$BUILD_DIR/packaging/metronome.1.gz"
[[ -f "$page" ]] || fail "$page was not generated (target metronome_manpage)"
need man man-db
warnings=$(MANWIDTH=100 man --warnings -l "$page" 2>&1 >"$WORK/page.txt") ||
  fail "man -l: $warnings"
[[ -z "$warnings" ]] || fail "roff warnings: $warnings"
subs() { "$METRONOME" "$@" --help | awk '/^Subcommands:/{on=1;next} on&&/^  [a-z]/{print $1} on&&/^[^ ]/{on=0}'; }
for sub in $(subs); do
  grep -q "^   metronome $sub\$" "$WORK/page.txt" || fail "no section for 'metronome $sub'"
  for sub2 in $(subs "$sub"); do
    grep -q "^   metronome $sub $sub2\$" "$WORK/page.txt" || fail "no section for 'metronome $sub $sub2'"
  done
done
for section in NAME SYNOPSIS DESCRIPTION OPTIONS COMMANDS FILES "SEE ALSO"; do
  grep -q "^$section" "$WORK/page.txt" || fail "no $section section"
done
grep -q "metronome $("$METRONOME" --version | awk '{print $2}')" "$WORK/page.txt" ||
  fail "the page does not carry the binary's version"
pass
