#!/bin/sh
# Run integration test files with arbord under valgrind's memcheck (issue 7
# part 1) and report, per file, the tests' outcome and what memcheck found.
#
#   tests/valgrind.sh [-b BUILD_DIR] [-o OUT_DIR] [TEST ...]
#
# BUILD_DIR  a plain build (not -DARBOR_SANITIZE=ON: ASan and valgrind do not
#            mix); default "build". Configured and built if needed.
# OUT_DIR    where each file's unittest output and the per-run memcheck
#            summary go; default a new directory under /tmp.
# TEST       test files or classes, as test_control, test_control.py or
#            test_notify.Readiness; default a representative subset that takes
#            about ten minutes (test_mailbox.Crashes alone takes five, and
#            test_notify.MainPid fails: valgrind has no pidfd_open(2)).
#
# The harness (tests/integration/harness.py) does the work when
# ARBOR_VALGRIND=1: it starts arbord under memcheck (--leak-check=full,
# errors for definite and indirect leaks), ends it with SIGTERM rather than
# SIGKILL, and fails a test whose arbord had an error or a leak. Deadlines
# are scaled through ARBOR_TEST_TIMEOUT (default here 150 s, ten times the
# usual 15 s); tests that start arbord their own way run it without valgrind.
# Exit status: 0 if every file passed with nothing found, 1 otherwise.
set -u
cd "$(dirname "$0")/.."
root=$(pwd)

build=build
out=
while getopts b:o:h opt; do
    case $opt in
    b) build=$OPTARG ;;
    o) out=$OPTARG ;;
    h) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))

if ! command -v valgrind >/dev/null 2>&1; then
    echo "valgrind.sh: valgrind is not installed (apt-get install valgrind)" >&2
    exit 2
fi
case $build in /*) ;; *) build=$root/$build ;; esac
if [ -f "$build/CMakeCache.txt" ] && grep -q '^ARBOR_SANITIZE:BOOL=ON' "$build/CMakeCache.txt"; then
    echo "valgrind.sh: $build is a sanitizer build; valgrind needs a plain one" >&2
    exit 2
fi
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null &&
    cmake --build "$build" -j2 >/dev/null || {
    echo "valgrind.sh: building $build failed" >&2
    exit 2
}

if [ $# -eq 0 ]; then
    set -- test_strategies test_intensity test_autoshutdown test_shutdown test_control \
        test_notify.Readiness test_notify.StatusAndStopping test_notify.Watchdog \
        test_notify.Attribution test_reload test_mailbox.Basics test_mailbox.StopStart \
        test_mailbox.Reload test_mailbox.Permissions test_mailbox.Handover \
        test_faults.Floods test_faults.StoppedAndContinued test_faults.OutputFlood \
        test_faults.ForkFailing test_faults.RuntimeDirectory
fi
[ -n "$out" ] || out=$(mktemp -d /tmp/arbor-valgrind.XXXXXX)
mkdir -p "$out"

: "${ARBOR_TEST_TIMEOUT:=150}"
export ARBOR_TEST_TIMEOUT ARBOR_VALGRIND=1 PYTHONDONTWRITEBYTECODE=1
export ARBORD="$build/arbord" ARBORCTL="$build/arborctl" NOTIFY_CLIENT="$build/tests/notify_client"
[ -x "$NOTIFY_CLIENT" ] || NOTIFY_CLIENT="$build/notify_client"

status=0
printf '%-30s %-24s %6s %6s %6s %6s\n' FILE TESTS RUNS ERRORS LEAKS KILLED
for t in "$@"; do
    name=$(basename "$t" .py)  # a file, or module.Class
    report=$out/$name.report
    : >"$report"
    start=$(date +%s)
    (cd "$root/tests/integration" &&
        ARBOR_VALGRIND_REPORT=$report python3 -m unittest -v "$name") >"$out/$name.log" 2>&1
    rc=$?
    secs=$(($(date +%s) - start))
    outcome=$(grep -E '^(OK|FAILED)' "$out/$name.log" | tail -1)
    ran=$(sed -n 's/^Ran \([0-9]*\) tests\{0,1\} in.*/\1/p' "$out/$name.log" | tail -1)
    runs=$(grep -c . "$report")
    errors=$(grep -c ': [1-9][0-9]* errors,' "$report")
    leaks=$(grep -Ec ' [1-9][0-9]* bytes (definitely|indirectly)' "$report")
    killed=$(grep -c 'killed, no leak check' "$report")
    printf '%-30s %-24s %6s %6s %6s %6s  (%ss)\n' "$name" "${ran:-?} ${outcome:-no result}" \
        "$runs" "$errors" "$leaks" "$killed" "$secs"
    if [ $rc -ne 0 ] || [ "$errors" -ne 0 ] || [ "$leaks" -ne 0 ]; then
        status=1
    fi
done
echo "RUNS: arbord runs under memcheck; ERRORS, LEAKS: runs with memory errors or"
echo "definite/indirect leaks; KILLED: runs ended by SIGKILL, so without a leak check."
echo "Details: $out/<file>.log (unittest output, memcheck logs of failing runs) and"
echo "$out/<file>.report (one line per arbord run)."
exit $status
