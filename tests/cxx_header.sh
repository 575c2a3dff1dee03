#!/bin/sh
# cxx_header.sh SRCDIR - goro.h compiles as C++ with g++ and clang++ at
# -std=c++11, c++17 and c++20, -Wall -Wextra -Werror, including its macros
# (goro_go, goro_go_named, the *_INIT initializers). Both compilers are
# required (make check installs them: scripts/deps.sh check).
set -eu
src=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/t.cc" <<'CC'
#include <goro.h>
static goro_mutex m = GORO_MUTEX_INIT;
static goro_rwmutex rw = GORO_RWMUTEX_INIT;
static goro_waitgroup wg = GORO_WAITGROUP_INIT;
static goro_once once = GORO_ONCE_INIT;
static goro_cond cv = GORO_COND_INIT;
static void fn(void *arg) { (void)arg; }
int start(void);
int start(void)
{
    (void)m; (void)rw; (void)wg; (void)once; (void)cv;
    int a = goro_go(fn, nullptr);
    int b = goro_go_named(fn, nullptr, "x");
    return a + b;
}
CC
fail=0
for cxx in g++ clang++; do
    command -v "$cxx" >/dev/null || { echo "cxx_header.sh: $cxx not found (scripts/deps.sh check)"; exit 1; }
    for std in c++11 c++17 c++20; do
        if "$cxx" -std=$std -Wall -Wextra -Werror -I"$src/include" -c "$tmp/t.cc" -o "$tmp/t.o"; then
            echo "ok   $cxx -std=$std"
        else
            echo "FAIL $cxx -std=$std"
            fail=1
        fi
    done
done
exit $fail
