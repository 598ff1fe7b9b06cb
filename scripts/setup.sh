#!/usr/bin/env bash
# Installs what Metronome needs to build and test on Debian 12, and nothing that is already there.
# Runs apt-get through sudo when not root. Fast (a dpkg query) when everything is installed.
set -euo pipefail

packages=(
  build-essential cmake pkg-config clang-format
  libtomlplusplus-dev libcli11-dev libspdlog-dev libfmt-dev nlohmann-json3-dev
  libsqlite3-dev libsqlitecpp-dev sqlite3 libcurl4-openssl-dev ca-certificates
  libgtest-dev libgmock-dev libbenchmark-dev
  libsecp256k1-dev libcrypto++-dev libcpp-httplib-dev prometheus-cpp-dev
  libpqxx-dev e2fsprogs
  help2man  # every configure: packaging/ generates the man page
  nodejs npm  # every build: the dashboard embeds uPlot from node_modules (npm ci, pinned)
)
if [[ "${1:-}" == "--test" ]]; then
  # packaging tests: dpkg-dev (dpkg-shlibdeps for cpack), systemd (systemd-analyze),
  # prometheus (promtool for the alert rules), python3-yaml (their fallback check)
  # postgresql: the PostgreSQL store's tests start their own throwaway cluster (initdb, pg_ctl)
  # chromium: the dashboard's end-to-end test (tests/e2e, headless, driven by playwright-core)
  packages+=(wrk dpkg-dev systemd prometheus python3-yaml postgresql chromium)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# nodejs may come from another Debian-compatible source that ships npm inside it.
if [[ " ${missing[*]-} " == *" npm "* ]] && command -v npm >/dev/null 2>&1; then
  missing=("${missing[@]/npm/}")
fi
# Drop empty entries left by the substitution above.
filtered=()
for p in "${missing[@]-}"; do [[ -n "$p" ]] && filtered+=("$p"); done

if ((${#filtered[@]})); then
  echo "setup: installing ${filtered[*]}" >&2
  sudo_cmd=()
  if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${filtered[@]}"
fi

if [[ -f package.json ]]; then
  if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules ]]; then
    npm ci --no-audit --no-fund --loglevel=error
  fi
fi
