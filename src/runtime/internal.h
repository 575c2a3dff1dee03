/*
 * internal.h - definitions shared by every goro module.
 *
 * Owns: the internal naming (goro__ for non-static symbols), small helpers
 * (likely/unlikely, alignment, atomics shorthands), the internal assert and
 * panic, the sanitizer-detection macros, and the clocks. No state lives
 * here.
 */
#ifndef GORO_INTERNAL_H
#define GORO_INTERNAL_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "goro.h"

#define GORO__LIKELY(x) __builtin_expect(!!(x), 1)
#define GORO__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define GORO__NOINLINE __attribute__((noinline))
#define GORO__NORETURN __attribute__((noreturn))
#define GORO__UNUSED __attribute__((unused))
#define GORO__CACHELINE 64
#define GORO__ALIGN_UP(x, a) (((x) + ((a)-1)) & ~((uintptr_t)(a)-1))
#define GORO__CONTAINER_OF(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))
#define GORO__ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Relaxed / acquire / release shorthands. */
#define goro__load_relaxed(p) atomic_load_explicit((p), memory_order_relaxed)
#define goro__load_acquire(p) atomic_load_explicit((p), memory_order_acquire)
#define goro__store_relaxed(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)
#define goro__store_release(p, v) atomic_store_explicit((p), (v), memory_order_release)

/* ---- sanitizers and tools ------------------------------------------------ */
#if defined(__SANITIZE_ADDRESS__)
#define GORO__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GORO__ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define GORO__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GORO__TSAN 1
#endif
#endif
#ifndef GORO__ASAN
#define GORO__ASAN 0
#endif
#ifndef GORO__TSAN
#define GORO__TSAN 0
#endif

/* A full (store-load) barrier for the Dekker handshakes (wakep against the
 * idle side, sysmon's deep sleep). On x86-64 a locked RMW on the stack top
 * orders like mfence for ordinary memory and costs less (mfence also waits
 * for non-temporal stores and executes serially): with mfence, bench/ab.sh
 * against the build before the barrier existed showed select --procs 2
 * about 5% slower; with the locked RMW, within noise. TSan does not model
 * inline assembly, so its builds keep the C11 fence it understands. */
static inline __attribute__((always_inline)) void goro__full_barrier(void)
{
#if defined(__x86_64__) && !GORO__TSAN
    __asm__ volatile("lock orq $0, (%%rsp)" ::: "memory", "cc");
#else
    atomic_thread_fence(memory_order_seq_cst);
#endif
}

/* Functions that read other goroutines' stacks or racy snapshot fields on
 * purpose (validated afterwards by a sequence number) are not instrumented. */
#if defined(__clang__)
#define GORO__NO_SANITIZE __attribute__((no_sanitize("address", "thread", "undefined")))
#else
#define GORO__NO_SANITIZE                                                      \
    __attribute__((no_sanitize_address, no_sanitize_thread, no_sanitize_undefined))
#endif

/* ---- panic and assert ---------------------------------------------------- */

/* Print "goro: fatal: <msg> (goroutine N, FILE:LINE)" and abort. Used for
 * broken runtime invariants, never for bad user input. */
GORO__NORETURN void goro__panic_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define goro__panic(...) goro__panic_at(__FILE__, __LINE__, __VA_ARGS__)
#define GORO__ASSERT(cond)                                                     \
    do {                                                                       \
        if (GORO__UNLIKELY(!(cond)))                                           \
            goro__panic_at(__FILE__, __LINE__, "assertion failed: %s", #cond); \
    } while (0)

/* Write a whole buffer to fd, async-signal-safe; returns 0 or -errno. */
int goro__write_all(int fd, const void *buf, size_t len);
/* Decimal digits of v at buf (at least 20 bytes), no terminator; returns
 * their count. Async-signal-safe (fault handlers, dumps). */
size_t goro__fmt_u64(char *buf, uint64_t v);

/* ---- clocks -------------------------------------------------------------- */

/* goro_now(): CLOCK_MONOTONIC nanoseconds. */
int64_t goro__nanotime(void);

/* A coarse clock (a few ms old at worst while any goroutine runs): what
 * parking goroutines stamp as their wait start, so parking does not pay for
 * a clock read. Updated by sysmon and by threads waking from sleep. */
extern _Atomic int64_t goro__coarse_now;

/* Threads of goro's own besides the Ms and sysmon (the watchdog's
 * confirmation thread): counted up before such a thread is created and
 * down after it is joined, so that the deadlock check (sched.c) does not
 * take them for the program's threads. */
extern _Atomic int goro__aux_threads;
/* &errno of the calling thread, through a call the compiler cannot fold
 * (see net.c): for code that reads errno after a goroutine switch. */
int *goro__errno_location(void);

/* Free a runtime record after wiping it: the leak scan treats the whole
 * malloc heap, freed chunks included, as roots, and a stale channel pointer
 * left in a freed record would keep a leaked goroutine looking alive in the
 * next goro_run. explicit_bzero is not optimised away like memset. */
static inline void goro__free_wiped(void *ptr, size_t size)
{
    if (ptr) {
        explicit_bzero(ptr, size);
        free(ptr);
    }
}

static inline int64_t goro__coarsetime(void) { return goro__load_relaxed(&goro__coarse_now); }
static inline void goro__coarse_update(int64_t now) { goro__store_relaxed(&goro__coarse_now, now); }

#endif /* GORO_INTERNAL_H */
