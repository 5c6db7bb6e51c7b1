#!/bin/sh
# Fuzz arbor with libFuzzer: build the targets of tests/fuzz with clang
# (-DARBOR_FUZZ=ON, in build-fuzz), then run each for SECONDS (default 60)
# on a scratch copy of its seed corpus, with its regressions and its
# dictionary. Exits non-zero if any target crashed, leaked, hung or broke
# a check; the input that did it is copied to tests/fuzz/regressions/TARGET/
# (commit it, and ctest's fuzz.replay.TARGET replays it from then on).
#
#   tests/fuzz/run.sh [SECONDS [TARGET...]]      TARGET: unit values control notify envelope
#
# ARBOR_FUZZ_BUILD overrides the build directory, ARBOR_FUZZ_TMPDIR where
# the scratch files go (default /dev/shm, else $TMPDIR); ARBOR_FUZZ_KEEP=DIR keeps
# each target's grown corpus in DIR/TARGET (to merge good inputs into the
# seeds by hand, or to measure coverage).
set -eu
seconds=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-unit values control notify envelope}
fuzz_dir=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$fuzz_dir/../.." && pwd)
build=${ARBOR_FUZZ_BUILD:-$root/build-fuzz}

if ! command -v clang >/dev/null; then
    echo "run.sh: clang is missing: apt-get install clang libclang-rt-14-dev llvm" >&2
    exit 2
fi
cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang -DARBOR_FUZZ=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j2 --target $(for t in $targets; do printf 'fuzz-%s ' "$t"; done)

# fuzz_unit writes and removes files for every input: on tmpfs that is
# fast, on ext4 it is most of the time spent.
tmp=${ARBOR_FUZZ_TMPDIR:-${TMPDIR:-/tmp}}
[ -z "${ARBOR_FUZZ_TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ] && tmp=/dev/shm
scratch=$(mktemp -d "$tmp/arbor-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT INT TERM
# The targets make their own scratch directories (unit files, sockets)
# under $TMPDIR: here, so that a crashed one leaves nothing behind.
export TMPDIR="$scratch"
# Bugs already reported (regressions-pending/) would be found again in
# seconds and end every run: the checks that catch them let them pass.
export FUZZ_TOLERATE_PENDING=1
export ASAN_OPTIONS="${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}abort_on_error=0:detect_leaks=1"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-}${UBSAN_OPTIONS:+:}print_stacktrace=1"

# "stat::name: value" of libFuzzer's final stats, or "?".
stat() {
    sed -n "s/^stat::$1: *//p" "$2" | tail -n 1 | grep . || echo "?"
}

failed=""
for t in $targets; do
    work=$scratch/$t
    mkdir -p "$work/corpus" "$work/artifacts"
    cp "$fuzz_dir/corpus/$t/"* "$work/corpus/"
    set -- "$work/corpus"
    [ -d "$fuzz_dir/regressions/$t" ] && set -- "$@" "$fuzz_dir/regressions/$t"
    dict=""
    [ -f "$fuzz_dir/dict/$t.dict" ] && dict="-dict=$fuzz_dir/dict/$t.dict"
    seeds=$(ls "$work/corpus" | wc -l)
    echo "--- fuzz-$t: $seconds s, $seeds seeds"
    status=0
    "$build/tests/fuzz/fuzz-$t" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$work/artifacts/" $dict "$@" \
        >"$work/log" 2>&1 || status=$?

    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$work/log" | tail -n 1 || true)
    [ -n "$done_line" ] || done_line=$(grep -E '^#[0-9]+[[:space:]]' "$work/log" | tail -n 1 || true)
    echo "    $(stat number_of_executed_units "$work/log") inputs," \
        "$(stat average_exec_per_sec "$work/log")/s," \
        "$(stat new_units_added "$work/log") new," \
        "peak rss $(stat peak_rss_mb "$work/log") MB"
    echo "    ${done_line:-no progress line}"

    found=$(ls "$work/artifacts" 2>/dev/null || true)
    if [ "$status" -ne 0 ] || [ -n "$found" ]; then
        failed="$failed $t"
        echo "=== fuzz-$t FAILED (exit $status); the end of its log:"
        tail -n 80 "$work/log"
        mkdir -p "$fuzz_dir/regressions/$t"
        for a in $found; do
            keep=1
            for old in "$fuzz_dir/regressions/$t/"* "$fuzz_dir/regressions-pending/$t/"*; do
                [ -f "$old" ] && cmp -s "$old" "$work/artifacts/$a" && keep=0
            done
            if [ "$keep" = 1 ]; then
                cp "$work/artifacts/$a" "$fuzz_dir/regressions/$t/$a"
                echo "=== saved tests/fuzz/regressions/$t/$a"
            else
                echo "=== $a is already a regression input"
            fi
        done
    fi
    if [ -n "${ARBOR_FUZZ_KEEP:-}" ]; then
        mkdir -p "$ARBOR_FUZZ_KEEP/$t"
        cp "$work/corpus/"* "$ARBOR_FUZZ_KEEP/$t/"
    fi
    rm -rf "$work" # /dev/shm is small in a container
done

if [ -n "$failed" ]; then
    echo "fuzz: FAILED:$failed"
    exit 1
fi
echo "fuzz: $(echo $targets | wc -w) targets, $seconds s each, no crash"
