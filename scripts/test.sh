#!/usr/bin/env bash
# Runs every check and test: formatting, vet, and the whole test suite with
# the race detector, including the tests against a real PostgreSQL and a real
# Synapse (see scripts/install-synapse.sh). With CI=true a missing PostgreSQL
# or Synapse fails the run instead of skipping those tests.
set -euo pipefail
cd "$(dirname "$0")/.."

unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
    echo "gofmt wants to change:" >&2
    echo "$unformatted" >&2
    exit 1
fi
go vet ./...
go test -race -count=1 -timeout 40m "$@" ./...
