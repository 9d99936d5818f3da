#!/usr/bin/env bash
# Runs every check and test:
#   1. gofmt, `go mod tidy -diff`, `go vet`, and every fuzz target for a
#      bounded time (scripts/fuzz.sh; FUZZTIME per target, default 20s);
#   2. the whole test suite with the race detector on the newest pinned
#      Synapse (internal/harness/synapse-versions);
#   3. the packages whose tests start a Synapse again, on the oldest pinned
#      Synapse.
# With SYNAPSE_VERSION set, step 2 uses that release and step 3 is skipped.
# Extra arguments go to `go test` (e.g. -run TestX). The tests need a real
# PostgreSQL, the Synapse venvs of scripts/install-synapse.sh, Chromium and
# promtool (scripts/install-deps.sh installs them all); without them those
# tests are skipped, with CI=true they fail. The last line says how many
# tests ran, passed, failed and were skipped, and why
# (internal/cmd/testsummary reads `go test -json`).
set -euo pipefail
cd "$(dirname "$0")/.."
. internal/harness/synapse-versions

step() { printf '\n=== %s\n' "$*"; }

work=$(mktemp -d)
# summarize ends every run that got as far as the tests, also a failed one,
# with the summary line.
summarize() {
    local rc=$?
    if compgen -G "$work/pass-*.json" >/dev/null; then
        "$work/testsummary" -report "$work"/pass-*.json || true
    fi
    rm -rf "$work"
    exit "$rc"
}
trap summarize EXIT
go build -o "$work/testsummary" ./internal/cmd/testsummary

# go_files lists the Go files git tracks or would track, as they are now.
go_files() {
    git ls-files --cached --others --exclude-standard --deduplicate "${1:-*.go}" |
        while IFS= read -r f; do if [ -e "$f" ]; then printf '%s\n' "$f"; fi; done
}

step "gofmt"
unformatted=$(go_files | xargs -r gofmt -l)
if [ -n "$unformatted" ]; then
    echo "gofmt wants to change:" >&2
    echo "$unformatted" >&2
    exit 1
fi

step "go mod tidy -diff"
if ! tidy_diff=$(go mod tidy -diff); then
    echo "go.mod/go.sum are not tidy: run 'go mod tidy' and commit the result. It would change:" >&2
    printf '%s\n' "$tidy_diff" >&2
    exit 1
fi

step "go vet"
go vet ./...

step "TypeScript client (clients/typescript)"
scripts/check-clients.sh

step "fuzz targets, ${FUZZTIME:-20s} each"
scripts/fuzz.sh

# The alert rules, early: a broken rule file fails in seconds. The metric
# names they use are checked against a running bridge by go test ./deploy/.
step "promtool check rules, test rules (deploy/prometheus)"
if command -v promtool >/dev/null 2>&1; then
    promtool check rules deploy/prometheus/openmeet-bridge.rules.yml
    (cd deploy/prometheus && promtool test rules openmeet-bridge.rules.test.yml)
elif [ "${CI:-}" = true ]; then
    echo "promtool is not installed (Debian package prometheus; scripts/install-deps.sh)" >&2
    exit 1
else
    echo "promtool is not installed: skipped (scripts/install-deps.sh installs it)"
fi

# synapse_packages lists the packages whose tests start a real Synapse.
synapse_packages() {
    go_files '*_test.go' | xargs -r grep -lE '\b(SharedSynapse|StartSynapse)\(' |
        xargs -r -n1 dirname | sort -u | sed 's|^|./|; s|$|/|'
}

# run_pass VERSION LABEL PACKAGES... runs go test with SYNAPSE_VERSION=VERSION.
passes=0
run_pass() {
    local version="$1" label="$2" start=$SECONDS
    shift 2
    passes=$((passes + 1))
    step "go test -race, $label, on Synapse $version: $*"
    SYNAPSE_VERSION="$version" go test -json -race -count=1 -timeout 40m "${test_args[@]}" "$@" |
        "$work/testsummary" -save "$work/pass-$passes.json" "${summary_args[@]}"
    echo "=== Synapse $version pass took $((SECONDS - start)) s"
}

test_args=("$@")
summary_args=()
for arg in "$@"; do
    case "$arg" in -v | -test.v | -v=true) summary_args=(-v) ;; esac
done
if [ -n "${SYNAPSE_VERSION:-}" ]; then
    run_pass "$SYNAPSE_VERSION" "every package" ./...
    exit 0
fi
run_pass "$SYNAPSE_NEWEST" "every package (newest pinned Synapse)" ./...
mapfile -t packages < <(synapse_packages)
if [ "${#packages[@]}" -eq 0 ]; then
    echo "found no tests that start a Synapse" >&2
    exit 1
fi
run_pass "$SYNAPSE_OLDEST" "the Synapse-backed packages (oldest pinned Synapse)" "${packages[@]}"
