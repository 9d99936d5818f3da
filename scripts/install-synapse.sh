#!/usr/bin/env bash
# Installs the pinned Synapse into a virtualenv that the test harness and the
# dev stack use. Idempotent: an existing, working venv is kept.
set -euo pipefail

version="${SYNAPSE_VERSION:-1.157.0}"
venv="${OPENMEET_SYNAPSE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/openmeet-bridge/synapse-$version}"

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import synapse, sys; sys.exit(synapse.__version__ != '$version')" 2>/dev/null; then
    echo "Synapse $version already installed in $venv"
    exit 0
fi
python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { echo "Synapse needs Python >= 3.10" >&2; exit 1; }
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "matrix-synapse==$version"
echo "Installed Synapse $version into $venv"
