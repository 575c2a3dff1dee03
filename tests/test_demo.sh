#!/bin/sh
# test_demo.sh BUILD_DIR [SANITIZERS] - the story, shortened: runs
# scripts/demo.sh for a few seconds per mode against this build tree and
# lets it check its own claims (the watchdog names the blocked send's
# file:line, within the time bound, in leak mode and never in fixed mode;
# leaked goroutines stay, memory grows in leak mode and stays flat in fixed
# mode). The watchdog is made faster through its environment knobs so that
# a few seconds suffice.
set -eu
build=$1
san=${2:-}
here=$(cd "$(dirname "$0")/.." && pwd)
out=$(mktemp -d "${TMPDIR:-/tmp}/goro-demo-test.XXXXXX")
trap 'rm -rf "$out"' EXIT
check_memory=1
[ -n "$san" ] && check_memory=0 # ASan's quarantine and TSan's shadow grow on their own
export BUILD="$build" DEMO_OUT="$out" DEMO_QUIET=1 DEMO_LOAD=loadgen DEMO_SECONDS=6 DEMO_RATE=500 \
    DEMO_MAX_DETECT=5 DEMO_CHECK_MEMORY=$check_memory \
    GORO_WATCHDOG_PERIOD_MS=500 GORO_WATCHDOG_MIN_AGE_MS=1500
sh "$here/scripts/demo.sh"
cat "$out/summary.txt"
