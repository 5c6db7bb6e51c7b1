#!/bin/sh
# run.sh: arbor side by side with s6, runit and supervisord, and with the
# machine's own limits, in one run; prints a Markdown table (issue 6; the
# figures and what limits each are in BENCHMARKS.md).
#
#   bench/run.sh [--build DIR] [side_by_side.py options]
#       Installs what it needs from Debian if missing (arbor's build and
#       test dependencies, which include s6, runit, supervisor and strace;
#       and linux-perf), builds arbor in DIR (default build-bench,
#       RelWithDebInfo) and runs everything: about half an hour on 2 cores.
#   bench/run.sh --smoke [--build DIR]
#       A few services, one iteration, short windows, with whichever peers
#       are installed; installs and builds nothing (DIR, default build, must
#       be built). Checks only that every measurement produced a number;
#       under a minute. This is the ctest bench.smoke.
#
# Options after these go to bench/side_by_side.py, e.g. --systems arbor,s6,
# --skip storm,mailbox, --set respawn_samples=5, --json FILE.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
smoke=0
build=""
for arg in "$@"; do
    case $arg in
    --smoke) smoke=1 ;;
    esac
done
# --build DIR is ours; everything else goes through.
n=$#
i=0
while [ $i -lt $n ]; do
    arg=$1
    shift
    i=$((i + 1))
    case $arg in
    --build)
        build=$1
        shift
        i=$((i + 1))
        ;;
    --build=*) build=${arg#--build=} ;;
    *) set -- "$@" "$arg" ;;
    esac
done

if [ $smoke -eq 1 ]; then
    build=${build:-$repo/build}
    for f in arbord arborctl bench/bench_svc bench/spawn_floor bench/mailbox_bench; do
        if [ ! -x "$build/$f" ]; then
            echo "run.sh --smoke: $build/$f is missing; build arbor first" >&2
            exit 1
        fi
    done
else
    build=${build:-$repo/build-bench}
    . "$repo/scripts/deps.sh"
    # shellcheck disable=SC2086 # one word per package
    arbor_install $ARBOR_BUILD_DEPS $ARBOR_TEST_DEPS linux-perf
    cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$build" -j2 >/dev/null
fi

exec python3 "$repo/bench/side_by_side.py" --build "$build" "$@"
