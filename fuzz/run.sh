#!/usr/bin/env bash
# Builds every fuzz target once and fuzzes each for a fixed time.
#
#   fuzz/run.sh [SECONDS_PER_TARGET]        (default 60)
#
# Seeds come from the checked-in fuzz/corpus/<target>/, which is passed
# read-only after a scratch corpus directory, so new inputs land in scratch
# and the repository is never modified. Known crashers in
# fuzz/regressions/<target>/ are replayed first. Prints, per target, the
# number of executions and whether it crashed; exits non-zero if any target
# (or regression) crashed. Crash inputs are written to fuzz/artifacts/<target>/.
#
# Environment:
#   FUZZ_JOBS       targets fuzzed at once (default: number of cores, at most 2)
#   FUZZ_SANITIZER  cargo-fuzz sanitizer (default: none; the code under test is
#                   safe Rust, so ASan only halves the speed; debug assertions
#                   and overflow checks stay on either way)
#   FUZZ_WORK       scratch directory for corpora and logs (default: mktemp -d)
#   CARGO_TARGET_DIR  where to build (default: fuzz/target)
set -euo pipefail

cd "$(dirname "$0")"
secs=${1:-60}
[[ $secs =~ ^[0-9]+$ ]] || { echo "usage: $0 [SECONDS_PER_TARGET]" >&2; exit 2; }
sanitizer=${FUZZ_SANITIZER:-none}
cores=$(nproc 2>/dev/null || echo 1)
parallel=${FUZZ_JOBS:-$((cores < 2 ? cores : 2))}
work=${FUZZ_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/btestd-fuzz.XXXXXX")}
mkdir -p "$work"
start=$(date +%s)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi

echo "== building fuzz targets (sanitizer: $sanitizer)"
cargo +nightly fuzz build -s "$sanitizer"
built=$(date +%s)
triple=$(rustc +nightly -vV | sed -n 's/^host: //p')
bindir="${CARGO_TARGET_DIR:-$PWD/target}/$triple/release"
targets=()
for f in fuzz_targets/*.rs; do
    t=$(basename "$f" .rs)
    [[ -x $bindir/$t ]] || { echo "missing binary $bindir/$t" >&2; exit 1; }
    targets+=("$t")
done

failed=0
echo "== replaying known crashers in regressions/"
for t in "${targets[@]}"; do
    [[ -d regressions/$t ]] || continue
    for f in regressions/"$t"/*; do
        [[ -f $f ]] || continue
        if "$bindir/$t" "$f" >"$work/regression-$t-$(basename "$f").log" 2>&1; then
            echo "  $t/$(basename "$f"): passes (fixed; keep it as a regression test)"
        else
            echo "  $t/$(basename "$f"): STILL CRASHES: $(grep -m1 -A1 'panicked at' "$work/regression-$t-$(basename "$f").log" | tr '\n' ' ')"
            failed=1
        fi
    done
done

fuzz_one() {
    local t=$1
    mkdir -p "$work/corpus/$t" "artifacts/$t"
    # Scratch corpus first: libFuzzer writes new inputs only to the first dir.
    "$bindir/$t" "$work/corpus/$t" "corpus/$t" \
        -max_total_time="$secs" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" >"$work/$t.log" 2>&1
}

echo "== fuzzing ${#targets[@]} targets for ${secs}s each, $parallel at a time (logs in $work)"
declare -A status=()
declare -A pids=()
for t in "${targets[@]}"; do
    while (( $(jobs -rp | wc -l) >= parallel )); do
        wait -n || true
    done
    fuzz_one "$t" &
    pids[$t]=$!
done
for t in "${targets[@]}"; do
    if wait "${pids[$t]}"; then status[$t]=0; else status[$t]=$?; fi
done
end=$(date +%s)

echo "== results"
printf '%-16s %14s %8s  %s\n' target executions corpus result
for t in "${targets[@]}"; do
    log="$work/$t.log"
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    [[ -n $execs ]] || execs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n1)
    [[ -n $execs ]] || execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' "$log" | tail -n1)
    units=$(find "$work/corpus/$t" "corpus/$t" -type f | wc -l)
    if [[ ${status[$t]} -eq 0 ]] && grep -q '^Done [0-9]* runs' "$log"; then
        result=ok
    else
        failed=1
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n1)
        panic=$(grep -m1 -A1 'panicked at' "$log" | tr '\n' ' ')
        result="CRASHED (exit ${status[$t]}) ${artifact:+input: fuzz/$artifact }${panic:+-- $panic}"
        [[ -n $panic ]] || result+="-- see $log"
    fi
    printf '%-16s %14s %8s  %s\n' "$t" "${execs:-?}" "$units" "$result"
done
echo "== build $((built - start))s, fuzzing $((end - built))s, total $((end - start))s"
exit "$failed"
