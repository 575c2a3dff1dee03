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
#                  buffered select parked parallel http profile dump
#                  heapprof watchdog leakscan story)
#   BENCH_OUT      directory where raw BENCH lines and tables are appended
#                  (default: bench-out, in the repository root)
#   BENCH_TIMEOUT  seconds one benchmark process may run (default 60)
#   HTTP_DURATION  seconds of each wrk measurement of the http benchmark
#                  (default 10)
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
all_benches="spawn pingpong buffered select parked parallel http profile dump heapprof watchdog leakscan story"
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

# build_go_twin OUT PKG: build a Go twin when it is missing or older than the
# Go sources. Same environment as the go-twin CMake target: offline,
# standard library only, caches under the build tree.
build_go_twin() {
    if [ ! -x "$1" ] || [ -n "$(find "$here/go" -type f \( -name '*.go' -o -name go.mod \) -newer "$1")" ]; then
        command -v go >/dev/null 2>&1 ||
            die "go not found: apt-get install golang-go (or scripts/deps.sh bench)"
        say "building the Go twin $1"
        (
            cd "$here/go"
            unset GOTOOLCHAIN
            GOENV=off GOCACHE=$BUILD/bench/go-env/cache GOPATH=$BUILD/bench/go-env/path
            GOFLAGS=-mod=mod GO111MODULE=on GOPROXY=off CGO_ENABLED=0
            export GOENV GOCACHE GOPATH GOFLAGS GO111MODULE GOPROXY CGO_ENABLED
            go build -o "$1" "$2"
        ) || die "building the Go twin $1 failed"
    fi
}

build_go_twin "$go_bin" .

# http, heapprof: the goro hello server (examples/hello) and its Go twin,
# driven by wrk. story: examples/leaky-service and its Go twin, driven by
# examples/loadgen.
hello_bin=$BUILD/examples/hello
go_httpd_bin=$BUILD/bench/go-httpd
leaky_bin=$BUILD/examples/leaky-service
loadgen_bin=$BUILD/examples/loadgen
go_leaky_bin=$BUILD/bench/go-leaky
if selected http || selected heapprof; then
    command -v wrk >/dev/null 2>&1 || die "wrk not found: apt-get install wrk (or scripts/deps.sh bench)"
    if [ -f "$BUILD/CMakeCache.txt" ]; then
        cmake --build "$BUILD" --target hello >&2 || die "building examples/hello failed"
    fi
    [ -x "$hello_bin" ] || die "$hello_bin not found: build first"
    selected http && build_go_twin "$go_httpd_bin" ./httpd
fi
if selected story; then
    command -v curl >/dev/null 2>&1 || die "curl not found: apt-get install curl"
    if [ -f "$BUILD/CMakeCache.txt" ]; then
        cmake --build "$BUILD" --target leaky-service loadgen >&2 || die "building the leaky service failed"
    fi
    [ -x "$leaky_bin" ] && [ -x "$loadgen_bin" ] || die "$leaky_bin or $loadgen_bin not found: build first"
    build_go_twin "$go_leaky_bin" ./leaky
fi

# ---------------------------------------------------------------------------
# Process handling: every benchmark runs in the background so that a signal
# to this script can stop it; nothing is left running when the script ends.

tmp=$(mktemp -d "${TMPDIR:-/tmp}/goro-bench.XXXXXX")
child=""
# shellcheck disable=SC2317 # called from the traps
cleanup() {
    if [ -n "${server:-}" ]; then
        kill -TERM "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
        server=""
    fi
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
# http: each server (GORO_PROCS / GOMAXPROCS = 2; wrk shares the same cores)
# on 127.0.0.1 port 0, driven by wrk with identical parameters:
#   hello  wrk -t2 -c64 --latency, GET /            (target: req/s ratio >= 2,
#                                                    p99 ratio <= 1)
#   echo   wrk -t2 -c1000 --latency, POST /echo, 512-byte body (reported)
# Run r starts goro first when r is odd and Go first when r is even.

HTTP_DURATION=${HTTP_DURATION:-10}
case $HTTP_DURATION in '' | *[!0-9]* | 0) say "HTTP_DURATION must be a positive integer (seconds)"; exit 2 ;; esac
server=""
server_addr=""

# wait_addr SED_RE: wait (10 s at most) until $tmp/server.out has a line
# matching SED_RE, whose \1 is the address; sets server_addr. On failure
# stops $server.
wait_addr() {
    wa_i=0
    while [ "$wa_i" -lt 100 ]; do
        server_addr=$(sed -n "s#^.*$1#\\1#p" "$tmp/server.out" | head -n 1)
        [ -n "$server_addr" ] && return 0
        kill -0 "$server" 2>/dev/null || break
        sleep 0.1
        wa_i=$((wa_i + 1))
    done
    say "FAILED: the server did not start"
    sed 's/^/    /' "$tmp/server.err" >&2
    stop_server
    return 1
}

# start_server IMPL: start it in the background, wait for its address.
start_server() {
    : >"$tmp/server.out"
    case $1 in
        goro) GORO_PROCS=2 "$hello_bin" --listen 127.0.0.1:0 --procs 2 >"$tmp/server.out" 2>"$tmp/server.err" </dev/null & ;;
        *) GOMAXPROCS=2 "$go_httpd_bin" --listen 127.0.0.1:0 --procs 2 >"$tmp/server.out" 2>"$tmp/server.err" </dev/null & ;;
    esac
    server=$!
    ss_i=0
    while [ "$ss_i" -lt 100 ]; do
        server_addr=$(sed -n 's#^listening on http://\(.*\)/$#\1#p' "$tmp/server.out")
        [ -n "$server_addr" ] && return 0
        kill -0 "$server" 2>/dev/null || break
        sleep 0.1
        ss_i=$((ss_i + 1))
    done
    say "FAILED: the $1 HTTP server did not start"
    sed 's/^/    /' "$tmp/server.err" >&2
    stop_server
    return 1
}

stop_server() {
    if [ -n "$server" ]; then
        kill -TERM "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
        server=""
    fi
}

# run_wrk LABEL ARGS...: run wrk in the background (so the traps can stop
# it), log its output, leave "req/s p99_ms MB/s errors" in $tmp/val.
run_wrk() {
    rw_label=$1
    shift
    printf '# %s: wrk %s\n' "$rw_label" "$*" >>"$raw"
    rw_rc=0
    # shellcheck disable=SC2086 # timeout_cmd is meant to be split
    ${timeout_cmd:+timeout -k 5 $((HTTP_DURATION + 30))} wrk "$@" >"$tmp/wrk.out" 2>&1 </dev/null &
    child=$!
    wait "$child" || rw_rc=$?
    child=""
    sed 's/^/#   /' "$tmp/wrk.out" >>"$raw"
    if [ "$rw_rc" -ne 0 ]; then
        say "FAILED (wrk exit status $rw_rc): $rw_label"
        tail -n 5 "$tmp/wrk.out" | sed 's/^/    /' >&2
        return 1
    fi
    # Latency "99%  1.23ms" (us, ms or s); "Transfer/sec: 1.2MB" (B, KB,
    # MB, GB; 1024-based, as wrk prints them); Non-2xx answers are errors.
    if ! awk '
        function ms(v) {
            if (v ~ /us$/) return v * 0.001
            if (v ~ /ms$/) return v + 0
            if (v ~ /m$/) return v * 60000
            if (v ~ /s$/) return v * 1000
            return -1
        }
        function mb(v) {
            if (v ~ /GB$/) return v * 1024
            if (v ~ /MB$/) return v + 0
            if (v ~ /KB$/) return v / 1024
            if (v ~ /B$/) return v / 1048576
            return -1
        }
        $1 == "99%" { p99 = ms($2) }
        $1 == "Requests/sec:" { rps = $2 + 0 }
        $1 == "Transfer/sec:" { tx = mb($2) }
        /Non-2xx or 3xx responses:/ { bad += $NF }
        /Socket errors:/ { gsub(/,/, ""); errs += $4 + $6 + $8 + $10 }
        END {
            if (rps <= 0 || p99 < 0 || tx < 0 || bad > 0) exit 1
            printf "%s %s %s %d\n", rps, p99, tx, errs
        }' "$tmp/wrk.out" >"$tmp/val"; then
        say "FAILED (no result or non-2xx answers): $rw_label"
        tail -n 12 "$tmp/wrk.out" | sed 's/^/    /' >&2
        return 1
    fi
}

# http_one IMPL RUN: one server start, hello then echo.
http_one() {
    ho_impl=$1 ho_run=$2
    start_server "$ho_impl" || return 1
    printf '# %s http server on %s, run %s/%s\n' "$ho_impl" "$server_addr" "$ho_run" "$BENCH_RUNS" >>"$raw"
    # Warm-up, not recorded.
    wrk -t2 -c64 -d1s "http://$server_addr/" >/dev/null 2>&1 || true
    if ! run_wrk "$ho_impl hello" -t2 -c64 -d"${HTTP_DURATION}s" --latency "http://$server_addr/"; then
        stop_server
        return 1
    fi
    set -- $(cat "$tmp/val")
    echo "$1" >>"$tmp/http_rps.$ho_impl"
    echo "$2" >>"$tmp/http_p99.$ho_impl"
    ho_line="hello $ho_impl $1 req/s p99 $2 ms"
    if ! run_wrk "$ho_impl echo" -t2 -c1000 -d"${HTTP_DURATION}s" --latency -s "$tmp/echo.lua" \
        "http://$server_addr/echo"; then
        stop_server
        return 1
    fi
    set -- $(cat "$tmp/val")
    echo "$1" >>"$tmp/echo_rps.$ho_impl"
    echo "$2" >>"$tmp/echo_p99.$ho_impl"
    echo "$3" >>"$tmp/echo_mbps.$ho_impl"
    echo "$4" >>"$tmp/echo_errs.$ho_impl"
    stop_server
    say "http run $ho_run/$BENCH_RUNS: $ho_line; echo $ho_impl $1 req/s $3 MB/s p99 $2 ms ($4 socket errors)"
}

if selected http; then
    cat >"$tmp/echo.lua" <<'EOF'
-- POST /echo with a 512-byte body (wrk adds Content-Length)
wrk.method = "POST"
wrk.body = string.rep("x", 512)
wrk.headers["Content-Type"] = "application/octet-stream"
EOF
    r=1
    while [ "$r" -le "$BENCH_RUNS" ]; do
        if [ $((r % 2)) -eq 1 ]; then order="goro go"; else order="go goro"; fi
        for impl in $order; do
            if ! http_one "$impl" "$r"; then
                touch "$tmp/http.failed"
                failures=$((failures + 1))
                break 2
            fi
        done
        r=$((r + 1))
    done
fi

# ---------------------------------------------------------------------------
# Diagnostics and the story. Every process runs with 2 Ps (GORO_PROCS /
# GOMAXPROCS, as the parked and http benchmarks at procs 2); the order of
# the two sides alternates between runs.

# run_multi LABEL ENV... -- CMD...: run one process (ENV: VAR=value words,
# may be none) and keep its well-formed BENCH lines in $tmp/multi.
run_multi() {
    rm_label=$1
    shift
    rm_env=""
    while [ "$1" != "--" ]; do
        rm_env="$rm_env $1"
        shift
    done
    shift
    printf '# %s:%s %s\n' "$rm_label" "$rm_env" "$*" >>"$raw"
    rm_rc=0
    # shellcheck disable=SC2086 # timeout_cmd and rm_env are meant to be split
    $timeout_cmd env $rm_env "$@" >"$tmp/out" 2>"$tmp/err" </dev/null &
    child=$!
    wait "$child" || rm_rc=$?
    child=""
    cat "$tmp/out" >>"$raw"
    sed 's/^/# stderr: /' "$tmp/err" >>"$raw"
    if [ "$rm_rc" -ne 0 ]; then
        say "FAILED (exit status $rm_rc): $rm_label:$rm_env $*"
        tail -n 20 "$tmp/err" | sed 's/^/    /' >&2
        return 1
    fi
    if ! awk '$0 !~ /^BENCH [^ ]+ -?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)? [^ ]+$/ { bad = 1 } END { exit bad }' "$tmp/out"; then
        say "FAILED (malformed output): $rm_label"
        head -n 20 "$tmp/out" | sed 's/^/    /' >&2
        return 1
    fi
    cp "$tmp/out" "$tmp/multi"
}

# bval NAME UNIT: the value of "BENCH NAME value UNIT" in $tmp/multi.
bval() {
    awk -v n="$1" -v u="$2" '$2 == n && $4 == u { v = $3; c++ } END { if (c != 1) exit 1; print v }' "$tmp/multi" || {
        say "FAILED: no single 'BENCH $1 ... $2' line"
        return 1
    }
}

# keep KEY VALUE: append a value to $tmp/KEY.
keep() { echo "$2" >>"$tmp/$1"; }

# fail_key KEY: mark KEY failed.
fail_key() {
    touch "$tmp/$1.failed"
    failures=$((failures + 1))
}

# order R A B: "A B" on odd runs, "B A" on even ones.
order() { if [ $(($1 % 2)) -eq 1 ]; then echo "$2 $3"; else echo "$3 $2"; fi; }

# compare RUNS SIDES OFFENV VALUES -- ARGS...: RUNS runs of one process per
# side, the order alternating. SIDES is "goro go" (goro-bench against its Go
# twin) or "on off" (goro-bench, with OFFENV set for off). VALUES lists
# NAME:UNIT:FILE; each value goes to $tmp/FILE.SIDE. A failure marks every
# FILE failed and ends the comparison.
compare() {
    cf_runs=$1 cf_sides=$2 cf_off=$3 cf_vals=$4
    shift 5
    r=1
    while [ "$r" -le "$cf_runs" ]; do
        # shellcheck disable=SC2086 # cf_sides is meant to be split
        for side in $(order "$r" $cf_sides); do
            case $side in
                go) cf_bin=$go_bin cf_env=GOMAXPROCS=2 ;;
                off) cf_bin=$goro_bin cf_env="GORO_PROCS=2 $cf_off" ;;
                *) cf_bin=$goro_bin cf_env=GORO_PROCS=2 ;;
            esac
            cf_ok=yes cf_line=""
            # shellcheck disable=SC2086 # cf_env is meant to be split
            if run_multi "$1 $side run $r" $cf_env -- "$cf_bin" "$@" --procs 2; then
                for v in $cf_vals; do
                    cf_n=${v%%:*} cf_rest=${v#*:}
                    cf_u=${cf_rest%%:*} cf_f=${cf_rest#*:}
                    if cf_x=$(bval "$cf_n" "$cf_u"); then
                        keep "$cf_f.$side" "$cf_x"
                        cf_line="$cf_line $cf_n $cf_x $cf_u"
                    else
                        cf_ok=no
                    fi
                done
            else
                cf_ok=no
            fi
            if [ "$cf_ok" = no ]; then
                for v in $cf_vals; do touch "$tmp/${v##*:}.failed"; done
                failures=$((failures + 1))
                return 0
            fi
            say "$1 run $r/$cf_runs, $side:$cf_line"
        done
        r=$((r + 1))
    done
}

# --- profile, dump: goroutine profiles of parked goroutines, goro vs Go ---
selected profile && compare "$BENCH_RUNS" "goro go" "" \
    "goroutine_profile_debug0:ms:profile0 goroutine_profile_debug1:ms:profile1" -- goroutine_profile --n 100000
if selected dump; then
    # Go takes ~15 s per debug=2 dump of 1M goroutines here (4 per process).
    dump_saved_timeout=$timeout_cmd
    [ -n "$timeout_cmd" ] && [ "$BENCH_TIMEOUT" -lt 300 ] && timeout_cmd="timeout -k 5 300"
    compare "$runs_1m" "goro go" "" "goroutine_dump:ms:dump" -- goroutine_dump --n 1000000
    timeout_cmd=$dump_saved_timeout
fi

# --- heapprof: the heap profiler at its default rate, on vs off -----------
if selected heapprof; then
    compare "$BENCH_RUNS" "on off" GORO_MEMPROFILE_RATE=0 "malloc:ms:malloc" -- malloc
    r=1
    while [ "$r" -le "$BENCH_RUNS" ]; do
        for side in $(order "$r" on off); do
            : >"$tmp/server.out"
            if [ "$side" = on ]; then
                GORO_PROCS=2 "$hello_bin" --listen 127.0.0.1:0 --procs 2 >"$tmp/server.out" 2>"$tmp/server.err" </dev/null &
            else
                GORO_PROCS=2 GORO_MEMPROFILE_RATE=0 "$hello_bin" --listen 127.0.0.1:0 --procs 2 >"$tmp/server.out" 2>"$tmp/server.err" </dev/null &
            fi
            server=$!
            if ! wait_addr 'listening on http://\([^/]*\)/$'; then
                fail_key hellohp
                break 2
            fi
            printf '# hello, heap profiler %s, on %s, run %s/%s\n' "$side" "$server_addr" "$r" "$BENCH_RUNS" >>"$raw"
            wrk -t2 -c64 -d1s "http://$server_addr/" >/dev/null 2>&1 || true
            if ! run_wrk "hello heap profiler $side" -t2 -c64 -d"${HTTP_DURATION}s" --latency "http://$server_addr/"; then
                stop_server
                fail_key hellohp
                break 2
            fi
            stop_server
            set -- $(cat "$tmp/val")
            keep "hellohp.$side" "$1"
            say "http hello, heap profiler $side, run $r/$BENCH_RUNS: $1 req/s"
        done
        r=$((r + 1))
    done
fi

# --- watchdog: spawn and pingpong with 100k parked goroutines, on vs off ---
selected watchdog && compare "$BENCH_RUNS" "on off" GORO_WATCHDOG=0 \
    "watchdog_spawn:ns/goroutine:wdspawn watchdog_pingpong:ns/roundtrip:wdpp" -- watchdog --n 100000

# --- leakscan: 100k parked goroutines (half leaked) and 1 GiB of heap ------
if selected leakscan; then
    r=1
    while [ "$r" -le "$BENCH_RUNS" ]; do
        if ! run_multi "leakscan run $r" GORO_PROCS=2 -- "$goro_bin" leakscan --procs 2 --n 100000; then
            fail_key leakscan
            break
        fi
        t=$(bval leakscan_total ms) && pz=$(bval leakscan_pause ms) && h=$(bval leakscan_heap MiB) || {
            fail_key leakscan
            break
        }
        keep leakscan.total "$t"
        keep leakscan.pause "$pz"
        keep leakscan.heap "$h"
        say "leak scan of 100k goroutines and $h MiB, run $r/$BENCH_RUNS: $t ms ($pz ms stopped)"
        r=$((r + 1))
    done
fi

# --- story: the leaky service, goro vs its Go twin ------------------------
# For each mode, a fresh server; loadgen (goro's, identical for both) sends
# 100,000 requests as fast as the server answers on 32 keep-alive
# connections. In leak mode each request leaves one goroutine parked: the
# resident growth over the goroutines added gives bytes per leaked goroutine.
# Then (goro only: Go has no detector) the time from load start until the
# watchdog reports the leak, at the demo's 2,000 requests/s and at full load.
STORY_REQUESTS=${STORY_REQUESTS:-100000}

# rss_of PID: VmRSS in bytes
rss_of() { awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$1/status" 2>/dev/null; }
# goroutines_of ADDR: go_goroutines from /metrics
goroutines_of() { curl -fsS --max-time 5 "http://$1/metrics" | awk '$1 == "go_goroutines" { print $2 }'; }

# start_leaky IMPL MODE: start the service; sets server, server_addr.
start_leaky() {
    : >"$tmp/server.out"
    if [ "$1" = goro ]; then
        GORO_PROCS=2 "$leaky_bin" --listen 127.0.0.1:0 --mode "$2" >"$tmp/server.out" 2>"$tmp/server.err" </dev/null &
    else
        GOMAXPROCS=2 "$go_leaky_bin" --listen 127.0.0.1:0 --mode "$2" --procs 2 >"$tmp/server.out" 2>"$tmp/server.err" </dev/null &
    fi
    server=$!
    wait_addr 'listening on http://\([^/ ]*\).*$'
}

# loadgen ARGS...: run examples/loadgen in the background (the traps stop
# it); its output in $tmp/lg.out.
run_loadgen() {
    printf '# loadgen %s\n' "$*" >>"$raw"
    lg_rc=0
    # shellcheck disable=SC2086 # timeout_cmd is meant to be split
    $timeout_cmd env GORO_PROCS=2 "$loadgen_bin" "$@" >"$tmp/lg.out" 2>&1 </dev/null &
    child=$!
    wait "$child" || lg_rc=$?
    child=""
    sed 's/^/#   /' "$tmp/lg.out" >>"$raw"
    [ "$lg_rc" -eq 0 ] || { say "FAILED (loadgen exit status $lg_rc): $*"; tail -n 5 "$tmp/lg.out" | sed 's/^/    /' >&2; }
    return "$lg_rc"
}

# kv KEY: KEY=value from the summary line of $tmp/lg.out
kv() { sed -n 's/^summary .*[ ]'"$1"'=\([^ ]*\).*/\1/p' "$tmp/lg.out" | tail -n 1; }

story_one() { # IMPL MODE RUN
    so_impl=$1 so_mode=$2
    start_leaky "$so_impl" "$so_mode" || return 1
    printf '# story %s --mode %s on %s, run %s\n' "$so_impl" "$so_mode" "$server_addr" "$3" >>"$raw"
    so_rss0=$(rss_of "$server")
    so_g0=$(goroutines_of "$server_addr")
    if ! run_loadgen "$server_addr" --conns 32 --rate -1 --requests "$STORY_REQUESTS" --duration 60 --label "$so_impl-$so_mode"; then
        stop_server
        return 1
    fi
    sleep 0.5 # let the last handlers' goroutines park
    so_rss1=$(rss_of "$server")
    so_g1=$(goroutines_of "$server_addr")
    stop_server
    so_rps=$(kv rps)
    so_ok=$(kv sent_ok)
    so_err=$(kv sent_err)
    if [ -z "$so_rps" ] || [ "${so_ok:-0}" -lt "$STORY_REQUESTS" ] || [ "${so_err:-1}" -ne 0 ] || [ -z "$so_rss0" ] || [ -z "$so_rss1" ] || [ -z "$so_g0" ] || [ -z "$so_g1" ]; then
        say "FAILED: story $so_impl $so_mode: rps '$so_rps', answers ${so_ok:-?} ok ${so_err:-?} failed (want >= $STORY_REQUESTS ok), rss '$so_rss0' -> '$so_rss1', goroutines '$so_g0' -> '$so_g1'"
        return 1
    fi
    keep "story.$so_mode.rps.$so_impl" "$so_rps"
    so_note=""
    if [ "$so_mode" = leak ]; then
        so_leaked=$((so_g1 - so_g0))
        if [ "$so_leaked" -lt $((STORY_REQUESTS * 9 / 10)) ]; then
            say "FAILED: story $so_impl leak: only $so_leaked goroutines added for $STORY_REQUESTS requests"
            return 1
        fi
        so_bpg=$(awk -v a="$so_rss0" -v b="$so_rss1" -v n="$so_leaked" 'BEGIN { printf "%.0f", (b - a) / n }')
        keep "story.bpg.$so_impl" "$so_bpg"
        so_note=", $so_leaked goroutines leaked, $so_bpg resident bytes each"
    fi
    say "story run $3: $so_impl --mode $so_mode: $so_rps req/s$so_note"
}

# detect_one KEY WHAT LOADGEN-ARGS...: one leak-mode service under that load
# for 12 s; keeps the watchdog's time to first report as story.KEY (99 when
# it did not report).
detect_one() {
    do_key=$1 do_what=$2
    shift 2
    if ! start_leaky goro leak; then
        fail_key story
        return 1
    fi
    if ! run_loadgen "$server_addr" "$@" --duration 12 --monitor --pid "$server" --label "$do_key"; then
        stop_server
        fail_key story
        return 1
    fi
    stop_server
    d=$(kv detect_seconds)
    case $d in
        '' | -*) say "story: $do_what: the watchdog did not report the leak within 12 s (run $r)"; keep "story.$do_key" 99 ;;
        *) keep "story.$do_key" "$d"; say "story: $do_what: leak reported ${d}s after load start at $(kv rps) req/s (run $r/$runs_1m)" ;;
    esac
}

if selected story; then
    r=1
    while [ "$r" -le "$BENCH_RUNS" ]; do
        for mode in leak fixed wait; do
            for impl in $(order "$r" goro go); do
                if ! story_one "$impl" "$mode" "$r/$BENCH_RUNS"; then
                    fail_key story
                    break 3
                fi
            done
        done
        r=$((r + 1))
    done
    # Time to detect, with the monitor reading /debug/goro/leaks (12 s at
    # most): the demo's load (2,000 req/s, 8 connections), then the story's
    # real rate (as fast as the service answers, 32 connections: the leak
    # grows by tens of thousands a second).
    r=1
    while [ "$r" -le "$runs_1m" ] && [ ! -e "$tmp/story.failed" ]; do
        detect_one detect "2,000 req/s" --conns 8 --rate 2000 || break
        detect_one detectfull "full load" --conns 32 --rate -1 || break
        r=$((r + 1))
    done
fi

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

if selected http; then
    # hrow LABEL FILE UNIT OP TARGET: procs 2 only.
    hrow() {
        hr_label=$1 hr_file=$2 hr_unit=$3 hr_op=$4 hr_target=$5
        hr_tgt=${hr_op:+$hr_op $hr_target}
        if [ -e "$tmp/http.failed" ] || [ ! -s "$tmp/$hr_file.goro" ] || [ ! -s "$tmp/$hr_file.go" ]; then
            echo "| $hr_label | 2 | ERROR | ERROR | $hr_unit | - | ${hr_tgt:--} | ${hr_op:+FAIL }(benchmark failed) |" >>"$table"
            [ -n "$hr_op" ] && count FAIL
            return 0
        fi
        hr_g=$(median "$tmp/$hr_file.goro")
        hr_o=$(median "$tmp/$hr_file.go")
        hr_r=$(ratio "$hr_g" "$hr_o")
        if [ -n "$hr_op" ]; then
            hr_v=$(verdict "$hr_r" "$hr_op" "$hr_target")
            count "$hr_v"
            echo "| $hr_label | 2 | $(fmtnum "$hr_g") | $(fmtnum "$hr_o") | $hr_unit | $hr_r | $hr_tgt | $hr_v |" >>"$table"
        else
            echo "| $hr_label | 2 | $(fmtnum "$hr_g") | $(fmtnum "$hr_o") | $hr_unit | $hr_r | - | - |" >>"$table"
        fi
    }
    hrow "http hello (wrk -t2 -c64)" http_rps req/s ">=" 2.0
    hrow "http hello p99 latency" http_p99 ms "<=" 1.0
    hrow "http echo 512 B (wrk -t2 -c1000)" echo_rps req/s "" ""
    hrow "http echo transfer" echo_mbps MB/s "" ""
    hrow "http echo p99 latency" echo_p99 ms "" ""
fi

# prow FAILKEY KEY LABEL UNIT OP TARGET: goro vs Go at procs 2 from
# $tmp/KEY.goro and $tmp/KEY.go (the profile, dump and story rows).
prow() {
    pf=$1 pk=$2 pl=$3 pu=$4 pop=$5 pt=$6
    ptg=${pop:+$pop $pt}
    if [ -e "$tmp/$pf.failed" ] || [ ! -s "$tmp/$pk.goro" ] || [ ! -s "$tmp/$pk.go" ]; then
        echo "| $pl | 2 | ERROR | ERROR | $pu | - | ${ptg:--} | ${pop:+FAIL }(benchmark failed) |" >>"$table"
        [ -n "$pop" ] && count FAIL
        return 0
    fi
    pg=$(median "$tmp/$pk.goro")
    po=$(median "$tmp/$pk.go")
    pr=$(ratio "$pg" "$po")
    if [ -n "$pop" ]; then
        pv=$(verdict "$pr" "$pop" "$pt")
        count "$pv"
        echo "| $pl | 2 | $(fmtnum "$pg") | $(fmtnum "$po") | $pu | $pr | $ptg | $pv |" >>"$table"
    else
        echo "| $pl | 2 | $(fmtnum "$pg") | $(fmtnum "$po") | $pu | $pr | - | - |" >>"$table"
    fi
}
selected profile && prow profile0 profile0 "goroutine profile debug=0, 100k parked" ms "<=" 0.1
selected profile && prow profile1 profile1 "goroutine profile debug=1, 100k parked" ms "<=" 0.1
selected dump && prow dump dump "goroutine profile debug=2, 1M parked" ms "<=" 0.2
if selected story; then
    for m in leak fixed wait; do
        prow story "story.$m.rps" "story: leaky-service --mode $m (loadgen, 32 conns)" req/s "" ""
    done
    prow story story.bpg "story: resident bytes per leaked goroutine" bytes "" ""
    for dk in "detect:2,000 req/s:5" "detectfull:full load, 32 conns:10"; do
        key=${dk%%:*} rest=${dk#*:}
        what=${rest%%:*} lim=${rest#*:}
        if [ -e "$tmp/story.failed" ] || [ ! -s "$tmp/story.$key" ]; then
            echo "| story: leak reported after load start ($what) | 2 | ERROR | no detector | s | - | <= $lim s | FAIL (benchmark failed) |" >>"$table"
            count FAIL
        else
            sd=$(median "$tmp/story.$key")
            sv=$(verdict "$sd" "<=" "$lim")
            count "$sv"
            echo "| story: leak reported after load start ($what) | 2 | $(fmtnum "$sd") | never (Go has no detector) | s | - | <= $lim s | $sv |" >>"$table"
        fi
    done
fi

# Costs of the diagnostics, goro alone: the same work with the feature on
# (the default) and off, alternately in the same run.
if selected heapprof || selected watchdog || selected leakscan; then
    {
        echo
        echo "| diagnostics cost (goro alone) | procs | on (default) | off | unit | ratio on/off | target | result |"
        echo "|---|---|---|---|---|---|---|---|"
    } >>"$table"
    # orow KEY LABEL UNIT OP TARGET
    orow() {
        ok=$1 ol=$2 ou=$3 oop=$4 ot=$5
        if [ -e "$tmp/$ok.failed" ] || [ ! -s "$tmp/$ok.on" ] || [ ! -s "$tmp/$ok.off" ]; then
            echo "| $ol | 2 | ERROR | ERROR | $ou | - | $oop $ot | FAIL (benchmark failed) |" >>"$table"
            count FAIL
            return 0
        fi
        on=$(median "$tmp/$ok.on")
        off=$(median "$tmp/$ok.off")
        orr=$(ratio "$on" "$off")
        ov=$(verdict "$orr" "$oop" "$ot")
        count "$ov"
        echo "| $ol | 2 | $(fmtnum "$on") | $(fmtnum "$off") | $ou | $orr | $oop $ot | $ov |" >>"$table"
    }
    selected heapprof && orow malloc "heap profiler: malloc/free mix, 20M calls" ms "<=" 1.02
    selected heapprof && orow hellohp "heap profiler: http hello (wrk -t2 -c64)" req/s ">=" 0.98
    selected watchdog && orow wdspawn "leak watchdog: spawn, 100k parked" ns/goroutine "<=" 1.03
    selected watchdog && orow wdpp "leak watchdog: pingpong, 100k parked" ns/roundtrip "<=" 1.03
    if selected leakscan; then
        if [ -e "$tmp/leakscan.failed" ] || [ ! -s "$tmp/leakscan.total" ]; then
            echo "| leak scan: 100k goroutines, 1 GiB heap | 2 | ERROR | - | ms | - | <= 2000 ms | FAIL (benchmark failed) |" >>"$table"
            count FAIL
        else
            lt=$(median "$tmp/leakscan.total")
            lv=$(verdict "$lt" "<=" 2000)
            count "$lv"
            echo "| leak scan: 100k goroutines (half leaked, all found), $(fmtnum "$(median "$tmp/leakscan.heap")") MiB heap | 2 | $(fmtnum "$lt") (world stopped $(fmtnum "$(median "$tmp/leakscan.pause")")) | - | ms | - | <= 2000 ms | $lv |" >>"$table"
        fi
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
