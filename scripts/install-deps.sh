#!/usr/bin/env bash
# Installs what the tests need, which scripts/test.sh otherwise skips (or,
# with CI=true, fails on). Keeps what is already there:
#
#   PostgreSQL server (initdb, pg_ctl)   Debian package postgresql
#   Chromium and Node.js                 Debian packages chromium, nodejs, npm
#   promtool (alert rules)               Debian package prometheus
#   git, Python venv                     Debian packages git, python3-venv
#   both pinned Synapse releases         scripts/install-synapse.sh (PyPI)
#   playwright-core (browser test)       npm ci in web/e2e
#
# Debian packages are installed with apt-get, through sudo unless run as
# root; Synapse and the npm packages as the user who runs this, since they
# go into that user's cache and the work tree. Debian ships promtool only
# in the prometheus package, which also installs a Prometheus server (on a
# machine with systemd, `sudo systemctl disable --now prometheus` stops
# it).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=()
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    packages+=(postgresql)
fi
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || packages+=(chromium)
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)
command -v promtool >/dev/null 2>&1 || packages+=(prometheus)
command -v git >/dev/null 2>&1 || packages+=(git)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || packages+=(python3-venv)

if [ "${#packages[@]}" -gt 0 ]; then
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        sudo=(sudo)
    fi
    echo "Installing Debian packages: ${packages[*]}"
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
fi

# Both pinned Synapse releases (or $SYNAPSE_VERSION), each in a cached
# virtualenv: scripts/test.sh runs the Synapse-backed tests on both.
./scripts/install-synapse.sh

# The browser test's driver library, from the lock file.
(cd web/e2e && npm ci --no-audit --no-fund --silent)
