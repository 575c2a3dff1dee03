#!/bin/sh
# check.sh - the whole test suite, as `make check` and CI run it:
#   1. gcc, RelWithDebInfo           (build/)       full suite
#   2. gcc, ASan+UBSan               (build-asan/)  full suite
#   3. clang, TSan                   (build-tsan/)  full suite
#   4. clang, RelWithDebInfo         (build-clang/) compile only (-Werror on both compilers)
#   5. clang, libFuzzer + ASan/UBSan (build-fuzz/)  the HTTP parser fuzzed for
#      GORO_FUZZ_SECONDS (default 60) on a copy of fuzz/corpus/http
# Exits non-zero on the first failing stage.
set -eu
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)

stage() { printf '\n==== %s ====\n' "$*"; }

configure() { # dir compiler sanitize
    cmake -S . -B "$1" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_C_COMPILER="$2" -DGORO_SANITIZE="$3" >/dev/null
    cmake --build "$1" -j "$jobs"
}

run_tests() { # dir
    ctest --test-dir "$1" --output-on-failure --no-tests=error --timeout 600
}

stage "build (gcc)"
configure build gcc ""
stage "tests (plain)"
run_tests build

stage "build (clang, -Werror)"
configure build-clang clang ""

stage "build (gcc, ASan+UBSan)"
configure build-asan gcc "address,undefined"
stage "tests (ASan+UBSan)"
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    run_tests build-asan

stage "build (clang, TSan)"
configure build-tsan clang "thread"
stage "tests (TSan)"
TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1} run_tests build-tsan

stage "fuzz: HTTP request parser (clang libFuzzer, ${GORO_FUZZ_SECONDS:-60} s)"
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang -DGORO_FUZZ=ON >/dev/null
cmake --build build-fuzz -j "$jobs" --target fuzz_http_parse
# Work on a copy: libFuzzer adds what it finds to its corpus directory.
rm -rf build-fuzz/corpus-http
mkdir -p build-fuzz/corpus-http
cp fuzz/corpus/http/* build-fuzz/corpus-http/
build-fuzz/fuzz/fuzz_http_parse -max_total_time="${GORO_FUZZ_SECONDS:-60}" -print_final_stats=1 \
    -dict=fuzz/http.dict -artifact_prefix=build-fuzz/ build-fuzz/corpus-http

printf '\nmake check: all stages passed\n'
