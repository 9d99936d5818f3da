#!/usr/bin/env bash
# Runs every native Go fuzz target of the repository (each `func FuzzX(f
# *testing.F)` in a _test.go file git tracks or would track) for a bounded
# time, one after another: Go fuzzes one target per run. Fails if any
# target fails; the input that broke it is then in the package's
# testdata/fuzz/FuzzX/ (commit it, so it stays a regression test).
#
#   FUZZTIME   time per target (default 20s)
#
# The seed corpora alone run with every `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime="${FUZZTIME:-20s}"

# targets prints "directory name" for every fuzz target.
targets() {
    git ls-files --cached --others --exclude-standard --deduplicate '*_test.go' |
        while IFS= read -r f; do
            if [ -e "$f" ]; then
                sed -nE 's/^func (Fuzz[A-Za-z0-9_]*)\([A-Za-z0-9_]+ \*testing\.F\).*/\1/p' "$f" |
                    while IFS= read -r name; do printf '%s %s\n' "$(dirname "$f")" "$name"; done
            fi
        done | sort -u
}

mapfile -t found < <(targets)
if [ "${#found[@]}" -eq 0 ]; then
    echo "found no fuzz targets" >&2
    exit 1
fi
echo "fuzzing ${#found[@]} targets for $fuzztime each"
failed=()
for target in "${found[@]}"; do
    dir="${target% *}" name="${target#* }"
    start=$SECONDS
    echo "--- $name in ./$dir"
    # Go 1.26's fuzz coordinator can fail a target with a bare "context
    # deadline exceeded" at the -fuzztime boundary when the machine is busy,
    # writing no failing input (go.dev/issue/75804, fixed in Go 1.27). Such
    # a run is fuzzed once more; a run that writes an input always fails.
    corpus="$dir/testdata/fuzz/$name"
    attempt=1
    while :; do
        before="$(ls "$corpus" 2>/dev/null | sort || true)"
        out="$(mktemp)"
        if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -timeout 10m "./$dir" 2>&1 | tee "$out"; then
            ok=1
        else
            ok=0
        fi
        after="$(ls "$corpus" 2>/dev/null | sort || true)"
        if [ "$ok" = 0 ] && [ "$attempt" = 1 ] && [ "$before" = "$after" ] &&
            grep -q '^    context deadline exceeded$' "$out"; then
            echo "--- $name: the fuzz coordinator's deadline race (go.dev/issue/75804), no failing input written; fuzzing it again"
            rm -f "$out"
            attempt=2
            continue
        fi
        rm -f "$out"
        break
    done
    if [ "$ok" = 1 ]; then
        echo "--- $name passed ($((SECONDS - start)) s)"
    else
        echo "--- $name FAILED ($((SECONDS - start)) s); its failing input is under ./$dir/testdata/fuzz/$name/" >&2
        failed+=("./$dir $name")
    fi
done
if [ "${#failed[@]}" -gt 0 ]; then
    printf 'fuzz targets that failed:\n' >&2
    printf '  %s\n' "${failed[@]}" >&2
    exit 1
fi
