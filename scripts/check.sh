#!/bin/sh
# check.sh [STAGE...] - the whole test suite, as `make check` and CI run it
# (docs/testing.md says what each stage is for and how to replay one):
#   plain       gcc, RelWithDebInfo           (build/)            full suite
#   clang       clang, RelWithDebInfo         (build-clang/)      compile only (-Werror on both compilers)
#   asan        gcc, ASan+UBSan               (build-asan/)       full suite
#   tsan        clang, TSan                   (build-tsan/)       full suite
#   chaos       gcc, GORO_CHAOS=ON            (build-chaos/)      the concurrency groups
#   chaos-tsan  clang, TSan + GORO_CHAOS=ON   (build-chaos-tsan/) the concurrency groups
#   valgrind    memcheck on build/'s tests    (build/)            a subset, zero errors
#   fuzz        clang, libFuzzer + ASan/UBSan (build-fuzz/)       the HTTP parser fuzzed for
#               GORO_FUZZ_SECONDS (default 60) on a copy of fuzz/corpus/http
# With no STAGE, all of them in this order. Exits non-zero on the first
# failing stage.
#
# Environment:
#   GORO_CHAOS_SEED    seed of both chaos stages (default: from the clock;
#                      printed, so that a failure can be replayed)
#   GORO_CHAOS_RATE    per-mille rate of the perturbations (runtime default 50)
#   GORO_BUILD_PREFIX  build trees are PREFIX, PREFIX-asan, ... (default
#                      "build"), e.g. to keep a second set apart
set -eu
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
prefix=${GORO_BUILD_PREFIX:-build}

# The CTest labels of the groups that exercise the runtime's wait/wake
# protocols (channels, select, sync, contexts, stress, the poller, leaks):
# the ones the chaos stages run.
chaos_labels='^(chan|select|sync|ctx|stress|net|leak)$'

# The valgrind subset: groups that do not re-execute themselves (under
# valgrind /proc/self/exe is valgrind's own tool binary, so the child-process
# tests cannot run there: test_crash, test_net, test_leakscan, ...), that
# finish in reasonable time under memcheck (test_parked's million goroutines
# and test_pprof/test_profile's timing checks do not) and that do not need
# threads to run in parallel (memcheck runs one thread at a time:
# test_sched's parallel-progress check cannot pass there).
vg_tests="test_chan test_select test_sync test_ctx test_stress test_badinput test_leak test_http"
vg_timeout=${GORO_VALGRIND_TIMEOUT:-900} # seconds per group

stage() { printf '\n==== %s ====\n' "$*"; }

configure() { # dir compiler sanitize [cmake args...]
    dir=$1 cc=$2 san=$3
    shift 3
    case "$cc" in clang) cxx=clang++ ;; *) cxx=g++ ;; esac # test_cxx, same runtime
    cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" -DGORO_SANITIZE="$san" "$@" >/dev/null
    cmake --build "$dir" -j "$jobs"
}

run_tests() { # dir [ctest args...]
    dir=$1
    shift
    ctest --test-dir "$dir" --output-on-failure --no-tests=error --timeout 600 "$@"
}

tsan_options=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}

# Wall-clock time of each stage, printed at the end (also when a stage
# fails: then the failing stage is the last line).
timings=""
t_stage=0
t_all=$(date +%s)
stage_begin() { # name
    stage "$1"
    t_stage=$(date +%s)
}
stage_end() { # name
    timings="$timings$(printf '  %-12s %5d s' "$1" $(($(date +%s) - t_stage)))
"
}
print_timings() {
    printf '\nstage times:\n%s  %-12s %5d s\n' "$timings" total $(($(date +%s) - t_all))
}
cur=""
trap 'rc=$?; [ -z "$cur" ] || stage_end "$cur (failed)"; [ "$t_stage" -eq 0 ] || print_timings; exit $rc' EXIT

chaos_seed() {
    if [ -z "${GORO_CHAOS_SEED:-}" ]; then
        GORO_CHAOS_SEED=$(date +%s)
    fi
    export GORO_CHAOS_SEED
    echo "chaos seed: $GORO_CHAOS_SEED${GORO_CHAOS_RATE:+, rate $GORO_CHAOS_RATE/1000}"
    echo "(replay: GORO_CHAOS_SEED=$GORO_CHAOS_SEED${GORO_CHAOS_RATE:+ GORO_CHAOS_RATE=$GORO_CHAOS_RATE} scripts/check.sh $1)"
}

chaos_failed() { # stage
    echo "check.sh: stage $1 failed with GORO_CHAOS_SEED=$GORO_CHAOS_SEED" >&2
    echo "  replay: GORO_CHAOS_SEED=$GORO_CHAOS_SEED${GORO_CHAOS_RATE:+ GORO_CHAOS_RATE=$GORO_CHAOS_RATE} scripts/check.sh $1" >&2
    exit 1
}

do_plain() {
    stage_begin "plain: build (gcc) and tests"
    configure "$prefix" gcc ""
    run_tests "$prefix"
    stage_end plain
}

do_clang() {
    stage_begin "clang: build (clang, -Werror)"
    configure "$prefix-clang" clang ""
    stage_end clang
}

do_asan() {
    stage_begin "asan: build (gcc, ASan+UBSan) and tests"
    configure "$prefix-asan" gcc "address,undefined"
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
        run_tests "$prefix-asan"
    stage_end asan
}

do_tsan() {
    stage_begin "tsan: build (clang, TSan) and tests"
    configure "$prefix-tsan" clang "thread"
    TSAN_OPTIONS=$tsan_options run_tests "$prefix-tsan"
    stage_end tsan
}

do_chaos() {
    stage_begin "chaos: build (gcc, GORO_CHAOS=ON) and the concurrency groups"
    chaos_seed chaos
    configure "$prefix-chaos" gcc "" -DGORO_CHAOS=ON
    run_tests "$prefix-chaos" -L "$chaos_labels" || chaos_failed chaos
    stage_end chaos
}

do_chaos_tsan() {
    stage_begin "chaos-tsan: build (clang, TSan + GORO_CHAOS=ON) and the concurrency groups"
    chaos_seed chaos-tsan
    configure "$prefix-chaos-tsan" clang "thread" -DGORO_CHAOS=ON
    TSAN_OPTIONS=$tsan_options run_tests "$prefix-chaos-tsan" -L "$chaos_labels" ||
        chaos_failed chaos-tsan
    stage_end chaos-tsan
}

do_valgrind() {
    stage_begin "valgrind: memcheck on a subset of build/'s tests"
    command -v valgrind >/dev/null || {
        echo "check.sh: valgrind not found (Debian package valgrind: scripts/deps.sh check)" >&2
        exit 1
    }
    configure "$prefix" gcc ""
    logs="$prefix/valgrind"
    mkdir -p "$logs"
    supp=""
    [ -f tests/valgrind.supp ] && supp="--suppressions=tests/valgrind.supp"
    failed=""
    for t in $vg_tests; do
        t0=$(date +%s)
        # Errors of any kind, and definite leaks, fail the group; goro's own
        # code must be clean (a suppression is only for third-party code).
        # Timing bounds stretch by gt_slow()'s valgrind factor (the tests
        # detect memcheck with RUNNING_ON_VALGRIND): memcheck slows
        # computation, so a wait that ends when another thread has computed
        # something (an HTTP request, a first symbolization) takes longer.
        # --fair-sched: memcheck runs one thread at a time, and by default
        # a thread that keeps running can starve a woken one for seconds
        # (seen in test_sync's starvation check: 2.8 s).
        rc=0
        timeout -k 10 "$vg_timeout" valgrind -q --fair-sched=yes --error-exitcode=99 --leak-check=full \
            --show-leak-kinds=definite --errors-for-leak-kinds=definite $supp \
            "$prefix/tests/$t" >"$logs/$t.log" 2>&1 || rc=$?
        printf '  %-14s %4d s  ' "$t" $(($(date +%s) - t0))
        tests_failed=""
        grep -q '^\[  FAILED  \]' "$logs/$t.log" && tests_failed=" (and tests failed)"
        case $rc in
        0) echo ok ;;
        99) echo "memcheck errors or definite leaks$tests_failed"; failed="$failed $t" ;;
        124|137) echo "timed out after $vg_timeout s"; failed="$failed $t" ;;
        *) echo "failed, exit status $rc$tests_failed"; failed="$failed $t" ;;
        esac
        if [ "$rc" -ne 0 ]; then
            echo "---- $logs/$t.log (last 60 lines) ----"
            tail -n 60 "$logs/$t.log"
            echo "----"
        fi
    done
    [ -z "$failed" ] || { echo "check.sh: valgrind stage failed:$failed" >&2; exit 1; }
    stage_end valgrind
}

do_fuzz() {
    stage_begin "fuzz: HTTP request parser (clang libFuzzer, ${GORO_FUZZ_SECONDS:-60} s)"
    cmake -S . -B "$prefix-fuzz" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_C_COMPILER=clang -DGORO_FUZZ=ON >/dev/null
    cmake --build "$prefix-fuzz" -j "$jobs" --target fuzz_http_parse
    # Work on a copy: libFuzzer adds what it finds to its corpus directory.
    rm -rf "$prefix-fuzz/corpus-http"
    mkdir -p "$prefix-fuzz/corpus-http"
    cp fuzz/corpus/http/* "$prefix-fuzz/corpus-http/"
    "$prefix-fuzz/fuzz/fuzz_http_parse" -max_total_time="${GORO_FUZZ_SECONDS:-60}" -print_final_stats=1 \
        -dict=fuzz/http.dict -artifact_prefix="$prefix-fuzz/" "$prefix-fuzz/corpus-http"
    stage_end fuzz
}

all="plain clang asan tsan chaos chaos-tsan valgrind fuzz"
[ $# -gt 0 ] || set -- $all
for s in "$@"; do
    case " $all " in
    *" $s "*) ;;
    *) echo "check.sh: unknown stage '$s' (stages: $all)" >&2; exit 2 ;;
    esac
done
t_all=$(date +%s)
for s in "$@"; do
    cur=$s
    case $s in
    chaos-tsan) do_chaos_tsan ;;
    *) "do_$s" ;;
    esac
done
cur=""
printf '\nmake check: all stages passed (%s)\n' "$*"
