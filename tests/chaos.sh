#!/bin/sh
# The chaos run of issue 7 (tests/integration/test_chaos.py) on its own,
# for longer than ctest gives it:
#
#   tests/chaos.sh [BUILD_DIR [SECONDS [SEED]]]
#
# BUILD_DIR is a configured and built tree (default: build); SECONDS the
# length of the chaos (default 60); SEED replays the choices of an earlier
# run (each run prints its seed first). Exit status: unittest's, 0 when
# every check passed. ARBOR_TEST_SHOW_LOG=0 keeps arbord's log out of a
# failure's report.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
case "${1:-}" in
-h | --help)
    sed -n '2,11s/^# \{0,1\}//p' "$0"
    exit 0
    ;;
esac
build=${1:-$here/../build}
seconds=${2:-60}
seed=${3:-}
case "$seconds" in
'' | *[!0-9.]*)
    echo "chaos.sh: SECONDS must be a number, not '$seconds'" >&2
    exit 2
    ;;
esac
if [ ! -x "$build/arbord" ] || [ ! -x "$build/arborctl" ]; then
    echo "chaos.sh: no arbord and arborctl in $build: build it first" \
        "(cmake -S . -B $build && cmake --build $build)" >&2
    exit 2
fi
build=$(cd "$build" && pwd)
export ARBORD="$build/arbord" ARBORCTL="$build/arborctl"
export NOTIFY_CLIENT="$build/tests/notify_client" # a Python stand-in if absent
export ARBOR_CHAOS_SECONDS="$seconds" PYTHONDONTWRITEBYTECODE=1
if [ -n "$seed" ]; then
    export ARBOR_CHAOS_SEED="$seed"
fi
cd "$here/integration"
exec python3 -m unittest -v test_chaos
