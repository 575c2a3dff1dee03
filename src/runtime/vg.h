/*
 * vg.h - valgrind's client requests, or no-ops without its header.
 *
 * <valgrind/valgrind.h> (Debian package valgrind) lets goro register its
 * goroutine stacks and notice that valgrind replaced malloc. It only
 * matters when the program runs under valgrind; `make check` installs it,
 * a build without it (e.g. `make demo` on a fresh machine) just cannot tell
 * valgrind about its stacks.
 */
#ifndef GORO_VG_H
#define GORO_VG_H

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#define VALGRIND_STACK_REGISTER(lo, hi) ((void)(lo), (void)(hi), 0u)
#define VALGRIND_STACK_DEREGISTER(id) ((void)(id))
#endif

#endif /* GORO_VG_H */
