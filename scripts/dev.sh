#!/usr/bin/env bash
# Brings up a local Synapse with the bridge registered and running on
# 127.0.0.1. Ctrl-C stops both. Synapse is the newest pinned release, or
# $SYNAPSE_VERSION. Nothing is written into the repository: Synapse's and
# the bridge's files live in temporary directories that are removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. internal/harness/synapse-versions
export SYNAPSE_VERSION="${SYNAPSE_VERSION:-$SYNAPSE_NEWEST}"
./scripts/install-synapse.sh "$SYNAPSE_VERSION"
exec go run ./internal/cmd/devstack "$@"
