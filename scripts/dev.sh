#!/usr/bin/env bash
# Brings up a local Synapse with the bridge registered and running on
# 127.0.0.1. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-synapse.sh
exec go run ./internal/cmd/devstack "$@"
