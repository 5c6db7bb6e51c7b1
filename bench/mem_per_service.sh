#!/bin/sh
# arbord's memory per supervised service: anonymous memory, RSS and PSS
# (smaps_rollup) with N `sleep` services, minus the same with one service.
#   bench/mem_per_service.sh BUILD_DIR [N] [arbord options, e.g. --no-cgroups]
set -eu
build=${1:-build}
n=${2:-1000}
shift 2 2>/dev/null || shift $#
measure() {
    count=$1
    shift
    dir=$(mktemp -d /tmp/arbor-mem.XXXXXX)
    mkdir "$dir/u"
    i=0
    while [ "$i" -lt "$count" ]; do
        printf '[Service]\nExecStart=/bin/sleep 100000\n' > "$dir/u/s$i.service"
        i=$((i + 1))
    done
    "$build/arbord" -u "$dir/u" -r "$dir/r" "$@" > "$dir/log" 2>&1 &
    pid=$!
    until grep -q "root: running" "$dir/log"; do
        kill -0 "$pid" 2>/dev/null || { cat "$dir/log" >&2; exit 1; }
        sleep 0.2
    done
    sleep 1
    awk '/^Rss:|^Pss:|^Anonymous:/ {v[$1] = $2} END {print v["Anonymous:"], v["Rss:"], v["Pss:"]}' \
        "/proc/$pid/smaps_rollup"
    kill "$pid"
    wait "$pid" || true
    rm -rf "$dir"
}
n_opts="$*"
set -- $(measure 1 $n_opts) $(measure "$n" $n_opts)
awk -v n="$n" -v a1="$1" -v r1="$2" -v p1="$3" -v an="$4" -v rn="$5" -v pn="$6" 'BEGIN {
    d = n - 1
    printf "per service over a one-service baseline, %d services: anon %.2f KiB, RSS %.2f KiB, PSS %.2f KiB\n",
        n, (an - a1) / d, (rn - r1) / d, (pn - p1) / d
}'
