#!/usr/bin/env bash
# Brings up a local Synapse with the bridge registered and running, both on
# 127.0.0.1: Synapse on port 8008 (-synapse-port), the bridge on 29340
# (-bridge-port). Ctrl-C, or SIGINT/SIGTERM to this script's process,
# stops both. Synapse is the newest pinned release, or $SYNAPSE_VERSION.
# Nothing is written into the repository: Synapse's and the bridge's files
# live in temporary directories that are removed on exit.
#
#   ./scripts/dev.sh [-synapse-port N] [-bridge-port N]
set -euo pipefail
cd "$(dirname "$0")/.."
. internal/harness/synapse-versions
export SYNAPSE_VERSION="${SYNAPSE_VERSION:-$SYNAPSE_NEWEST}"
./scripts/install-synapse.sh "$SYNAPSE_VERSION"
# Built, then exec'd, so that this process becomes the dev stack: a signal
# to this PID reaches it (`go run` would stay in between and leave it
# running on SIGTERM).
bin="${XDG_CACHE_HOME:-$HOME/.cache}/openmeet-bridge/devstack"
mkdir -p "$(dirname "$bin")"
go build -o "$bin" ./internal/cmd/devstack
exec "$bin" "$@"
