#!/usr/bin/env bash
# Installs Synapse releases into the virtualenvs the test harness and the dev
# stack use, one per release:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/openmeet-bridge/synapse-<version>
# Which releases: the arguments, else $SYNAPSE_VERSION, else both pinned
# releases (internal/harness/synapse-versions). Idempotent: a venv that
# already holds its release is kept.
#
#   ./scripts/install-synapse.sh                          # both pins
#   SYNAPSE_VERSION=1.160.0 ./scripts/install-synapse.sh  # another release
set -euo pipefail
cd "$(dirname "$0")/.."
. internal/harness/synapse-versions

if [ "$#" -gt 0 ]; then
    versions=("$@")
elif [ -n "${SYNAPSE_VERSION:-}" ]; then
    versions=("$SYNAPSE_VERSION")
else
    versions=("$SYNAPSE_NEWEST" "$SYNAPSE_OLDEST")
fi

cache="${XDG_CACHE_HOME:-$HOME/.cache}/openmeet-bridge"

install_synapse() {
    local version="$1" venv="$cache/synapse-$1"
    if [ -x "$venv/bin/python" ] &&
        "$venv/bin/python" -c 'import sys, synapse; sys.exit(synapse.__version__ != sys.argv[1])' "$version" 2>/dev/null; then
        echo "Synapse $version already installed in $venv"
        return
    fi
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
        { echo "Synapse needs Python >= 3.10" >&2; return 1; }
    rm -rf "$venv"
    mkdir -p "$cache"
    python3 -m venv "$venv"
    if ! "$venv/bin/pip" install --quiet --disable-pip-version-check "matrix-synapse==$version"; then
        rm -rf "$venv"
        echo "Failed to install Synapse $version" >&2
        return 1
    fi
    echo "Installed Synapse $version into $venv"
}

for version in "${versions[@]}"; do
    install_synapse "$version"
done
