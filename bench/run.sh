#!/bin/sh
# run.sh - goro's benchmarks against their Go twins (see bench/README.md).
#
# For every benchmark and for procs 1 and 2, runs build/bench/goro-bench and
# build/bench/go-bench alternately (goro, Go, goro, Go, ...), takes the
# median of each side and prints a markdown table of the ratios against the
# acceptance targets, then "bench: N/M targets met".
#
# Environment:
#   BUILD          build directory (default: build, in the repository root)
#   BENCH_RUNS     runs per benchmark and procs value (default 5; parked at
#                  N=1M uses min(3, BENCH_RUNS))
#   BENCH_ONLY     subset, e.g. "spawn pingpong" (names: spawn pingpong
#                  buffered select parked parallel)
#   BENCH_OUT      directory where raw BENCH lines and tables are appended
#                  (default: bench-out, in the repository root)
#   BENCH_TIMEOUT  seconds one benchmark process may run (default 60)
#
# Exit status: 0 when every benchmark process succeeded (whether or not the
# targets were met: this is a measurement, not a test), 1 when one failed or
# could not be run, 2 on bad usage.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

say() { printf 'bench: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# Relative paths given by the user are relative to the current directory;
# the defaults are relative to the repository root.
abspath() { case $1 in /*) printf '%s\n' "$1" ;; *) printf '%s/%s\n' "$(pwd)" "$1" ;; esac; }
if [ -n "${BUILD:-}" ]; then BUILD=$(abspath "$BUILD"); else BUILD=$root/build; fi
if [ -n "${BENCH_OUT:-}" ]; then BENCH_OUT=$(abspath "$BENCH_OUT"); else BENCH_OUT=$root/bench-out; fi
BENCH_RUNS=${BENCH_RUNS:-5}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-60}
all_benches="spawn pingpong buffered select parked parallel"
BENCH_ONLY=${BENCH_ONLY:-$all_benches}

case $BENCH_RUNS in '' | *[!0-9]* | 0) say "BENCH_RUNS must be a positive integer"; exit 2 ;; esac
case $BENCH_TIMEOUT in '' | *[!0-9]* | 0) say "BENCH_TIMEOUT must be a positive integer (seconds)"; exit 2 ;; esac
for b in $BENCH_ONLY; do
    case " $all_benches " in *" $b "*) ;; *) say "unknown benchmark '$b' in BENCH_ONLY (known: $all_benches)"; exit 2 ;; esac
done
selected() { case " $BENCH_ONLY " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

runs_1m=$BENCH_RUNS
[ "$runs_1m" -gt 3 ] && runs_1m=3

# ---------------------------------------------------------------------------
# Binaries

goro_bin=$BUILD/bench/goro-bench
go_bin=$BUILD/bench/go-bench

if [ -f "$BUILD/CMakeCache.txt" ]; then
    cmake --build "$BUILD" --target goro-bench >&2 || die "building goro-bench failed"
fi
[ -x "$goro_bin" ] || die "$goro_bin not found: build first (make, or cmake --build $BUILD)"

go_stale=yes
if [ -x "$go_bin" ] && [ -z "$(find "$here/go" -type f \( -name '*.go' -o -name go.mod \) -newer "$go_bin")" ]; then
    go_stale=no
fi
if [ "$go_stale" = yes ]; then
    command -v go >/dev/null 2>&1 ||
        die "go not found: apt-get install golang-go (or scripts/deps.sh bench)"
    say "building the Go twin $go_bin"
    mkdir -p "$BUILD/bench"
    # Same environment as the go-twin CMake target: offline, standard
    # library only, caches under the build tree.
    (
        cd "$here/go"
        unset GOTOOLCHAIN
        GOENV=off GOCACHE=$BUILD/bench/go-env/cache GOPATH=$BUILD/bench/go-env/path
        GOFLAGS=-mod=mod GO111MODULE=on GOPROXY=off CGO_ENABLED=0
        export GOENV GOCACHE GOPATH GOFLAGS GO111MODULE GOPROXY CGO_ENABLED
        go build -o "$go_bin" .
    ) || die "building the Go twin failed"
fi

# ---------------------------------------------------------------------------
# Process handling: every benchmark runs in the background so that a signal
# to this script can stop it; nothing is left running when the script ends.

tmp=$(mktemp -d "${TMPDIR:-/tmp}/goro-bench.XXXXXX")
child=""
# shellcheck disable=SC2317 # called from the traps
cleanup() {
    if [ -n "$child" ]; then
        kill -TERM "$child" 2>/dev/null || true
        wait "$child" 2>/dev/null || true
        child=""
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
trap 'exit 141' PIPE

if command -v timeout >/dev/null 2>&1; then
    timeout_cmd="timeout -k 5 $BENCH_TIMEOUT"
else
    say "no timeout(1): benchmark processes run without a time limit"
    timeout_cmd=""
fi

mkdir -p "$BENCH_OUT" || die "cannot create $BENCH_OUT"
raw=$BENCH_OUT/bench-raw.log
tables=$BENCH_OUT/bench-tables.md
stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo none)
go_version=$(go version 2>/dev/null || echo "go version unknown")
# Runtime knobs that change what is measured: recorded with the results.
knobs=$(env | grep -E '^(GORO_[A-Z_]*|GOGC|GODEBUG|GOMEMLIMIT|GOMAXPROCS)=' | sort | tr '\n' ' ' || true)
header="## $stamp host=$(uname -n) cpus=$(nproc 2>/dev/null || echo '?') commit=$commit runs=$BENCH_RUNS only=\"$BENCH_ONLY\" ($go_version)${knobs:+ env: $knobs}"
printf '\n%s\n' "$header" >>"$raw"
say "$header"
say "raw results: $raw"

failures=0

# unit_of BENCH -> the unit both binaries must print
unit_of() {
    case $1 in
        spawn) echo ns/goroutine ;; pingpong) echo ns/roundtrip ;;
        buffered) echo items/s ;; select) echo ns/select ;;
        parked) echo bytes/goroutine ;; parallel) echo ms ;;
    esac
}

# run_one IMPL BENCH N PROCS RUN RUNS: run one benchmark process and leave
# its value in $tmp/val; fails (non-zero) if the process failed or its
# output is malformed. Runs in this shell (not in $(...)) so that the trap
# above knows the child to stop.
run_one() {
    ro_impl=$1 ro_bench=$2 ro_n=$3 ro_procs=$4 ro_run=$5 ro_runs=$6
    case $ro_impl in goro) ro_bin=$goro_bin ;; *) ro_bin=$go_bin ;; esac
    set -- "$ro_bin" "$ro_bench" --procs "$ro_procs"
    [ -n "$ro_n" ] && set -- "$@" --n "$ro_n"
    printf '# %s run %s/%s: %s\n' "$ro_impl" "$ro_run" "$ro_runs" "$*" >>"$raw"
    ro_rc=0
    # shellcheck disable=SC2086 # timeout_cmd is meant to be split
    $timeout_cmd "$@" >"$tmp/out" 2>"$tmp/err" </dev/null &
    child=$!
    wait "$child" || ro_rc=$?
    child=""
    cat "$tmp/out" >>"$raw"
    sed 's/^/# stderr: /' "$tmp/err" >>"$raw"
    if [ "$ro_rc" -ne 0 ]; then
        case $ro_rc in
            124 | 137) ro_why="timed out after ${BENCH_TIMEOUT}s (BENCH_TIMEOUT)" ;;
            *) ro_why="exit status $ro_rc" ;;
        esac
        say "FAILED ($ro_why): $*"
        tail -n 20 "$tmp/err" | sed 's/^/    /' >&2
        return 1
    fi
    # stdout must hold only well-formed BENCH lines, with exactly one line
    # for this benchmark in the expected unit (and parked_n = N for parked).
    if ! awk -v name="$ro_bench" -v unit="$(unit_of "$ro_bench")" -v n="$ro_n" '
        $0 !~ /^BENCH [^ ]+ -?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)? [^ ]+$/ { bad = 1; next }
        $2 == name { if ($4 != unit) bad = 1; v = $3; found++ }
        $2 == name "_n" { if ($3 != n) bad = 1; found_n++ }
        END {
            if (bad || found != 1 || (name == "parked" && found_n != 1)) exit 1
            print v
        }' "$tmp/out" >"$tmp/val"; then
        say "FAILED (malformed output): $*"
        head -n 20 "$tmp/out" | sed 's/^/    /' >&2
        return 1
    fi
}

# median FILE -> median of the numbers in FILE, one per line
median() {
    sort -n "$1" | awk '
        { v[NR] = $1 }
        END {
            if (NR == 0) exit 1
            if (NR % 2) printf "%s\n", v[(NR + 1) / 2]
            else printf "%.10g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2
        }'
}

# measure KEY BENCH N RUNS: alternate goro and Go RUNS times for procs 1
# and 2; values go to $tmp/KEY.IMPL.pPROCS. On a failure the remaining runs
# of KEY are skipped and KEY is marked failed.
measure() {
    key=$1 mb=$2 mn=$3 mruns=$4
    r=1
    while [ "$r" -le "$mruns" ]; do
        for p in 1 2; do
            line="$key procs=$p run $r/$mruns:"
            for impl in goro go; do
                if ! run_one "$impl" "$mb" "$mn" "$p" "$r" "$mruns"; then
                    touch "$tmp/$key.failed"
                    failures=$((failures + 1))
                    return 0
                fi
                val=$(cat "$tmp/val")
                echo "$val" >>"$tmp/$key.$impl.p$p"
                line="$line $impl $val"
            done
            say "$line"
        done
        r=$((r + 1))
    done
}

selected spawn && measure spawn spawn "" "$BENCH_RUNS"
selected pingpong && measure pingpong pingpong "" "$BENCH_RUNS"
selected buffered && measure buffered buffered "" "$BENCH_RUNS"
selected select && measure select select "" "$BENCH_RUNS"
selected parked && measure parked100k parked 100000 "$BENCH_RUNS"
selected parked && measure parked1m parked 1000000 "$runs_1m"
selected parallel && measure parallel parallel "" "$BENCH_RUNS"

# ---------------------------------------------------------------------------
# Table

met=0
total=0

fmtnum() {
    awk -v v="$1" 'BEGIN {
        a = v < 0 ? -v : v
        if (a >= 1000) printf "%.0f", v
        else if (a >= 10) printf "%.1f", v
        else printf "%.3f", v
    }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 <= 0 || a + 0 < 0) print "n/a"; else printf "%.3f", a / b }'; }
# verdict RATIO OP TARGET -> PASS or FAIL (OP is <= or >=)
verdict() {
    awk -v r="$1" -v op="$2" -v t="$3" 'BEGIN {
        if (r == "n/a") { print "FAIL"; exit }
        ok = (op == "<=") ? (r + 0 <= t + 0) : (r + 0 >= t + 0)
        print ok ? "PASS" : "FAIL"
    }'
}
count() { # PASS|FAIL
    total=$((total + 1))
    [ "$1" = PASS ] && met=$((met + 1))
    return 0
}

table=$tmp/table
{
    echo "| benchmark | procs | goro median | Go median | unit | ratio goro/Go | target | result |"
    echo "|---|---|---|---|---|---|---|---|"
} >"$table"

# row KEY LABEL UNIT OP TARGET: one row per procs value. OP empty = no target.
row() {
    key=$1 label=$2 unit=$3 op=$4 target=$5
    tgt=${op:+$op $target}
    for p in 1 2; do
        if [ -e "$tmp/$key.failed" ] || [ ! -s "$tmp/$key.goro.p$p" ] || [ ! -s "$tmp/$key.go.p$p" ]; then
            echo "| $label | $p | ERROR | ERROR | $unit | - | ${tgt:--} | ${op:+FAIL }(benchmark failed) |" >>"$table"
            [ -n "$op" ] && count FAIL
            continue
        fi
        gm=$(median "$tmp/$key.goro.p$p")
        om=$(median "$tmp/$key.go.p$p")
        rt=$(ratio "$gm" "$om")
        if [ -n "$op" ]; then
            v=$(verdict "$rt" "$op" "$target")
            count "$v"
            echo "| $label | $p | $(fmtnum "$gm") | $(fmtnum "$om") | $unit | $rt | $tgt | $v |" >>"$table"
        else
            echo "| $label | $p | $(fmtnum "$gm") | $(fmtnum "$om") | $unit | $rt | - | - |" >>"$table"
        fi
    done
}

selected spawn && row spawn spawn ns/goroutine "<=" 0.2
selected pingpong && row pingpong pingpong ns/roundtrip "<=" 0.3
selected buffered && row buffered buffered items/s ">=" 2.0
selected select && row select select ns/select "<=" 0.4
selected parked && row parked100k "parked (N=100k)" bytes/goroutine "<=" 1.5
selected parked && row parked1m "parked (N=1M)" bytes/goroutine "<=" 1.5
if selected parallel; then
    row parallel parallel ms "" ""
    f=$tmp/parallel
    if [ -e "$f.failed" ] || [ ! -s "$f.goro.p1" ] || [ ! -s "$f.goro.p2" ] || [ ! -s "$f.go.p1" ] || [ ! -s "$f.go.p2" ]; then
        echo "| parallel speedup p1/p2 | 1/2 | ERROR | ERROR | x | - | >= 0.95 | FAIL (benchmark failed) |" >>"$table"
        count FAIL
    else
        gs=$(ratio "$(median "$f.goro.p1")" "$(median "$f.goro.p2")")
        os=$(ratio "$(median "$f.go.p1")" "$(median "$f.go.p2")")
        if [ "$gs" = n/a ] || [ "$os" = n/a ]; then rt=n/a; else rt=$(ratio "$gs" "$os"); fi
        v=$(verdict "$rt" ">=" 0.95)
        count "$v"
        echo "| parallel speedup p1/p2 | 1/2 | $gs | $os | x | $rt | >= 0.95 | $v |" >>"$table"
    fi
fi

summary="bench: $met/$total targets met"
[ "$failures" -gt 0 ] && summary="$summary ($failures benchmark(s) failed to run)"

cat "$table"
echo
echo "$summary"
{
    printf '\n%s\n\n' "$header"
    cat "$table"
    printf '\n%s\n' "$summary"
} >>"$tables"

[ "$failures" -eq 0 ] || exit 1
exit 0
