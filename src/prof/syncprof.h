/*
 * syncprof.h - block and mutex profiles (syncprof.c): where goroutines wait
 * on goro's primitives and for how long. Off by default, like Go.
 */
#ifndef GORO_PROF_SYNCPROF_H
#define GORO_PROF_SYNCPROF_H

#include "runtime/internal.h"

extern _Atomic int64_t goro__blockprof_rate;   /* ns; 0 = off */
extern _Atomic int64_t goro__mutexprof_fraction; /* 1/N of events; 0 = off */

/* A goroutine blocked `delay` ns on a primitive; fp: the frame of the
 * public blocking call (its caller is the site). */
void goro__blockprof_record(int64_t delay, uintptr_t fp);
/* A contended mutex was unlocked; the woken waiter waited `delay` ns. */
void goro__mutexprof_record(int64_t delay, uintptr_t fp);

typedef struct goro__syncrec {
    struct goro__syncrec *next;
    uint64_t hash;
    double count, delay; /* unbiased */
    uint32_t npc;
    uintptr_t pcs[];
} goro__syncrec;

typedef void (*goro__syncrec_fn)(const goro__syncrec *r, void *arg);
/* Visit the block (which = 0) or mutex (which = 1) records. */
void goro__syncprof_foreach(int which, goro__syncrec_fn fn, void *arg);

#endif /* GORO_PROF_SYNCPROF_H */
