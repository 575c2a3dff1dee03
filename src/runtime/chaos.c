/*
 * chaos.c - the perturbation engine behind chaos.h (GORO_CHAOS builds only).
 *
 * Per-thread xorshift state seeded from the global seed and a thread
 * counter; no locks, no allocation, safe in any context the marks sit in
 * (spinlock held, scheduler context, signal-free paths). Sleeping while a
 * spinlock is held is intended: it is what makes other threads hit the
 * window.
 */
#ifdef GORO_CHAOS
#include "runtime/chaos.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "runtime/sched.h"

static unsigned long long seed;
static unsigned rate = 50;
static _Atomic unsigned threads;
static __thread unsigned long long st;

__attribute__((constructor)) static void chaos_init(void)
{
    const char *s = getenv("GORO_CHAOS_SEED");
    if (s && *s)
        seed = strtoull(s, NULL, 10);
    else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (unsigned long long)ts.tv_nsec ^ ((unsigned long long)ts.tv_sec << 20);
    }
    if (!seed)
        seed = 1;
    const char *r = getenv("GORO_CHAOS_RATE");
    if (r && *r) {
        long v = strtol(r, NULL, 10);
        if (v >= 1 && v <= 1000)
            rate = (unsigned)v;
    }
}

unsigned long long goro__chaos_seed(void) { return seed; }

void goro__chaos_print_seed(void)
{
    fprintf(stderr, "goro: chaos seed %llu (replay: GORO_CHAOS_SEED=%llu)\n", seed, seed);
}

static unsigned long long next(void)
{
    if (!st) {
        st = seed * 0x9e3779b97f4a7c15ull + atomic_fetch_add(&threads, 1) + 1;
        if (!st)
            st = 1;
    }
    st ^= st << 13;
    st ^= st >> 7;
    st ^= st << 17;
    return st;
}

void goro__chaos(unsigned site)
{
    (void)site;
    unsigned long long r = next();
    if (r % 1000 >= rate)
        return;
    switch ((r >> 10) % 8) {
    case 0:
    case 1:
    case 2:
    case 3:
        for (unsigned i = (unsigned)((r >> 16) % 200); i > 0; i--)
            goro__cpu_relax();
        break;
    case 4:
    case 5:
        sched_yield();
        break;
    default: {
        struct timespec ts = {0, (long)(1000 + (r >> 20) % 49000)};
        nanosleep(&ts, NULL);
    }
    }
}

void goro__chaos_g(unsigned site)
{
    unsigned long long r = next();
    if (r % 1000 < rate / 2 && goro__getg()) {
        goro_yield();
        return;
    }
    goro__chaos(site);
}
#endif
