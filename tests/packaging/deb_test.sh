#!/usr/bin/env bash
# The .deb: builds it with cpack from this build dir (into a scratch dir, so the build dir's own
# package is untouched), then checks what `dpkg-deb` sees: the files and their modes, the control
# fields (Depends from dpkg-shlibdeps), the conffiles and maintainer scripts, and, after
# `dpkg-deb -x` into a scratch root, the packaged unit with `systemd-analyze verify --root`
# (which resolves ExecStart= and the man page inside that root; no running systemd needed).
source "$(dirname "$0")/lib.sh"
need cpack cmake
need dpkg-deb dpkg
[[ -f "$BUILD_DIR/CPackConfig.cmake" ]] || fail "no CPackConfig.cmake in '$BUILD_DIR'"

version=$("$METRONOME" --version | awk '{print $2}')
cpack --config "$BUILD_DIR/CPackConfig.cmake" -G DEB -B "$WORK/out" >"$WORK/cpack.log" 2>&1 ||
  fail "cpack: $(cat "$WORK/cpack.log")"
deb=$(ls "$WORK"/out/metronome_"$version"_*.deb 2>/dev/null | head -1)
[[ -f "$deb" ]] || fail "no metronome_${version}_*.deb; cpack said: $(cat "$WORK/cpack.log")"

# --- contents ---
dpkg-deb --contents "$deb" >"$WORK/contents" || fail "dpkg-deb --contents"
has() {  # has MODE PATH: PATH is in the package with mode MODE, owned by root
  grep -qE "^$1 root/root .* \./${2#/}\$" "$WORK/contents" ||
    fail "expected $2 ($1 root/root) in the package; contents: $(cat "$WORK/contents")"
}
has -rwxr-xr-x /usr/bin/metronome
has -rw-r--r-- /usr/lib/metronome/metronome-postgres.so
has -rw-r--r-- /etc/metronome/metronome.toml
has -rw-r--r-- /lib/systemd/system/metronome.service
has -rw-r--r-- /usr/share/man/man1/metronome.1.gz
has -rw-r--r-- /usr/share/doc/metronome/examples/metronome-alerts.yml
has -rw-r--r-- /usr/share/doc/metronome/operations.md

# --- control ---
field() { dpkg-deb --field "$deb" "$1"; }
[[ $(field Package) == metronome ]] || fail "Package: $(field Package)"
[[ $(field Version) == "$version" ]] || fail "Version: $(field Version), expected $version"
[[ -n $(field Maintainer) ]] || fail "no Maintainer"
depends=$(field Depends)
# libpqxx: from the PostgreSQL plugin, which dpkg-shlibdeps reads like the binary.
for dep in adduser libc6 libsqlite3-0 libsecp256k1 libcurl4 libpqxx; do
  grep -q "$dep" <<<"$depends" || fail "Depends lacks $dep (dpkg-shlibdeps?): $depends"
done
dpkg-deb --control "$deb" "$WORK/control" || fail "dpkg-deb --control"
grep -qx /etc/metronome/metronome.toml "$WORK/control/conffiles" ||
  fail "conffiles does not list /etc/metronome/metronome.toml"
for script in postinst prerm postrm; do
  [[ -x "$WORK/control/$script" ]] || fail "no executable $script in the package"
  sh -n "$WORK/control/$script" || fail "$script: syntax error"
done
grep -q 'adduser --system --group --home /var/lib/metronome' "$WORK/control/postinst" ||
  fail "postinst does not create the system user"
! grep -Eq 'systemctl (start|enable|restart) ' "$WORK/control/postinst" ||
  fail "postinst must never start or enable the service"

# --- unpacked into a scratch root ---
root="$WORK/root"
dpkg-deb -x "$deb" "$root" || fail "dpkg-deb -x"
[[ $("$root/usr/bin/metronome" --version) == "metronome $version" ]] ||
  fail "the packaged binary does not run: $("$root/usr/bin/metronome" --version 2>&1)"
out=$("$root/usr/bin/metronome" config check --config "$root/etc/metronome/metronome.toml" 2>&1) ||
  fail "the packaged config is invalid: $out"
grep -q 'data_dir = "/var/lib/metronome"' <<<"$out" || fail "the packaged config's data_dir"
# The packaged binary finds the packaged PostgreSQL plugin (../lib/metronome/ from the binary):
# `migrate` against a closed port fails on the connection, not on loading the backend.
write_config "$WORK/pg/metronome.toml" "$(feed_toml tick 2s 1m)"
sed -i 's|^path = .*|kind = "postgres"\nurl = "postgresql://m@127.0.0.1:1/db?connect_timeout=2"|; /^dlq_path/d' \
  "$WORK/pg/metronome.toml"
out=$("$root/usr/bin/metronome" migrate --config "$WORK/pg/metronome.toml" 2>&1) &&
  fail "migrate against a closed port succeeded: $out"
grep -q "127.0.0.1" <<<"$out" && ! grep -qi "plugin\|backend" <<<"$out" ||
  fail "the packaged binary did not load its PostgreSQL plugin: $out"
zcat "$root/usr/share/man/man1/metronome.1.gz" | grep -q '^\.SH COMMANDS' ||
  fail "the man page has no COMMANDS section"

if command -v systemd-analyze >/dev/null; then
  # verify needs the units the service is ordered against and the ExecReload= binary in the root.
  cp /lib/systemd/system/*.target "$root/lib/systemd/system/"
  mkdir -p "$root/bin" && cp "$(type -P kill)" "$root/bin/kill"
  man=no
  command -v man >/dev/null && man=yes  # Documentation=man:metronome(1), found via MANPATH
  out=$(MANPATH="$root/usr/share/man" systemd-analyze verify --man=$man --root="$root" \
    /lib/systemd/system/metronome.service 2>&1) || fail "systemd-analyze verify: $out"
  [[ -z "$out" ]] || fail "systemd-analyze verify warned: $out"
else
  echo "note: systemd-analyze not found (Debian package systemd): the packaged unit was not verified"
fi

pass "$(basename "$deb"), $(wc -l <"$WORK/contents") entries"
