#!/usr/bin/env bash
# Runs the mediasoup conformance suite (tests/mediasoup_suite/, one test
# target per upstream file, each test in two modes) and prints how many of
# mediasoup's upstream tests pass in both modes, against the list of
# upstream tests in docs/compat.md ("| file | test | status |" rows).
# Fails when a test of the suite is missing from that list, or a row marked
# `pass` has no passing test in both modes.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
trim() { sed 's/^[[:space:]]*//; s/[[:space:]]*$//' <<< "$1"; }
targets=$(sed -n 's/^name = "ms_\([a-z_]*\)"$/\1/p' Cargo.toml)
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# "test <module>::<mode> ... ok" lines, one test target (upstream file) at
# a time so that each line is known to belong to its file.
declare -A ok1 ok2 seen
status=0
for file in $targets; do
    $CARGO test --workspace --offline --test "ms_$file" -- --test-threads 2 > "$out" 2>&1 || status=1
    grep -E "^test result|FAILED|panicked" "$out" | sed "s/^/[$file] /" || true
    while IFS= read -r line; do
        if [[ $line =~ ^test\ ([a-z0-9_]+)::(one_worker|two_workers)\ \.\.\.\ (ok|FAILED) ]]; then
            key="$file/${BASH_REMATCH[1]}"
            seen[$key]=1
            if [[ ${BASH_REMATCH[3]} == ok ]]; then
                if [[ ${BASH_REMATCH[2]} == one_worker ]]; then ok1[$key]=1; else ok2[$key]=1; fi
            fi
        fi
    done < "$out"
done

# Tests of our own beside the upstream ones ("| file | test | extra: ... |").
declare -A extra
while IFS='|' read -r _ f t _; do
    f=$(trim "$f"); t=$(trim "$t" | tr -d '`')
    [[ -n $f ]] && extra["$f/$t"]=1
done < <(sed -n '/^<!-- extra tests -->/,/^<!-- end extra -->/p' docs/compat.md | grep '^| [a-z]')

total=0; both=0; one=0; two=0; excluded=0; failing=0; bad=0
declare -A listed
while IFS='|' read -r _ f t status _; do
    f=$(trim "$f"); t=$(trim "$t" | tr -d '`'); status=$(trim "$status")
    [[ -z $f || $f == file || $f == ---* ]] && continue
    total=$((total + 1))
    key="$f/$t"
    listed[$key]=1
    [[ -n ${ok1[$key]:-} ]] && one=$((one + 1))
    [[ -n ${ok2[$key]:-} ]] && two=$((two + 1))
    if [[ -n ${ok1[$key]:-} && -n ${ok2[$key]:-} ]]; then both=$((both + 1)); fi
    case $status in
        pass*)
            if [[ -z ${ok1[$key]:-} || -z ${ok2[$key]:-} ]]; then
                echo "docs/compat.md says $key passes, but it does not pass in both modes"; bad=1
            fi ;;
        excluded*) excluded=$((excluded + 1)) ;;
        *) failing=$((failing + 1)) ;;
    esac
done < <(sed -n '/^<!-- upstream tests -->/,/^<!-- end -->/p' docs/compat.md | grep '^|')

for key in "${!seen[@]}"; do
    if [[ -z ${listed[$key]:-} && -z ${extra[$key]:-} ]]; then
        echo "$key is in the suite but not in docs/compat.md's list of upstream tests"; bad=1
    fi
done
pct=$(awk -v a="$both" -v b="$total" 'BEGIN { if (b) printf "%.1f", 100 * a / b; else print 0 }')
echo "== mediasoup conformance: $both of $total upstream tests pass in both modes ($pct%);" \
     "one worker: $one, two workers (every consumer piped): $two; excluded: $excluded, known failures: $failing"
exit $((bad | status))
