#!/bin/sh
# demo.sh - `make demo`: run goro's examples (the leaky-service story will
# replace this once the HTTP server and the profiles exist).
set -eu
cd "$(dirname "$0")/.."
B=${BUILD:-build}
printf '\n== the concurrent prime sieve: a chain of goroutines over unbuffered channels ==\n'
"$B/examples/sieve" 15 | tr '\n' ' '
printf '\n\n== a worker pool with a deadline, then a leaked goroutine and the dump that shows it ==\n'
"$B/examples/workers" 20000 8
