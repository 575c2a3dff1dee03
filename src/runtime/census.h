/*
 * census.h - counts of parked goroutines by wait group, kept at park and
 * wake-up (census.c), read by the leak watchdog.
 *
 * A wait group is (creation site, wait site, wait reason): the spawner's
 * return address (or the goroutine function), the return address of the
 * public blocking call, and the wait reason. Only waits on goro primitives
 * without a deadline are counted (the ones that can last forever).
 *
 * Per group and per P, two arrays of counters indexed by the park's epoch
 * modulo GORO__CENSUS_RING (epoch = wait_since >> GORO__CENSUS_SHIFT,
 * 67 ms): `park` moves when a goroutine parks, `res` when it runs again.
 * Only the P's owner writes its counters (plain stores); the counters only
 * grow (modulo 2^32). park - res summed over the Ps is, per ring slot, the
 * number of goroutines still parked whose park epoch falls in that slot.
 * A slot holds members of epochs E, E - RING, E - 2 RING, ...; their age is
 * at least that of the newest epoch E that maps to the slot: the census
 * reports ages as lower bounds, exact to one epoch for waits shorter than
 * the ring (8.6 s).
 *
 * Readers read every P's `res` before any `park`: a goroutine that resumed
 * before the read of res parked before it, so a slot's sum never counts a
 * resume without its park (the sum is never below the true count at the
 * start of the read; it may count a park that happened during the read).
 */
#ifndef GORO_RUNTIME_CENSUS_H
#define GORO_RUNTIME_CENSUS_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/g.h"

#define GORO__CENSUS_SHIFT 26 /* epoch: 2^26 ns = 67 ms */
#define GORO__CENSUS_RING 128 /* epochs kept apart: 8.6 s */
#define GORO__CENSUS_MAX 4096 /* groups (index 0 is "none") */
#define GORO__CENSUS_CHUNK 64 /* groups per allocation */

struct goro__p;

/* park and res of one slot side by side: a park and its wake-up in the
 * same epoch touch one cache line. */
typedef struct goro__census_ctr {
    _Atomic uint32_t park, res;
} goro__census_ctr;
typedef struct goro__census_cell {
    goro__census_ctr s[GORO__CENSUS_RING];
} goro__census_cell;

/* Per P: cells of GORO__CENSUS_CHUNK groups each, allocated for every P
 * when the chunk's first group is created. */
typedef struct goro__census_p {
    _Atomic(goro__census_cell *) chunk[GORO__CENSUS_MAX / GORO__CENSUS_CHUNK];
} goro__census_p;

/* What a group is; immutable once created (code addresses and string
 * literals of goro_go's call site). */
typedef struct goro__census_key {
    uintptr_t site;    /* creation pc[0], or the goroutine function */
    uintptr_t wait_pc; /* return address of the public blocking call */
    uint8_t reason;
    /* From the first member (same for every member of the group). */
    goro_fn fn;
    const char *file, *func;
    int line;
    uint16_t npc;
    uintptr_t pc[GORO__CREATE_DEPTH];
} goro__census_key;

/* The wait reasons counted (bit per reason), 0 when the watchdog is off
 * (goro__census_enable). */
extern _Atomic uint32_t goro__census_mask;
void goro__census_enable(bool on);

/* Slow paths: a park at another call or on another P than the
 * goroutine's last one (hash lookup, maybe a new group); a wake-up on
 * another P than the park's. */
bool goro__census_park_slow(goro__census_p *cp, goro__g *g, unsigned reason, uintptr_t wpc);
void goro__census_resume_slow(goro__census_p *cp, goro__g *g);

static inline goro__census_cell *goro__census_cell_of(goro__census_p *cp, uint32_t idx)
{
    goro__census_cell *c = atomic_load_explicit(&cp->chunk[idx / GORO__CENSUS_CHUNK],
                                                memory_order_acquire);
    return c + idx % GORO__CENSUS_CHUNK;
}

static inline uint32_t goro__census_slot(int64_t wait_since)
{
    return (uint32_t)((uint64_t)wait_since >> GORO__CENSUS_SHIFT) & (GORO__CENSUS_RING - 1);
}

/* Owner-only counter: a plain increment, atomic for readers. */
static inline void goro__census_bump(_Atomic uint32_t *v)
{
    atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* The hooks in goro__park, run by the goroutine itself with its current
 * P's counters cp. park returns whether the wait is counted; resume (only
 * then) counts the wake-up in the same group and slot. The G caches its
 * last group, that group's cell on the P it parked on, and the slot the
 * park went to: a goroutine parking again and again at one call on one P
 * (a worker's loop) does a few loads and two increments. */
static inline uintptr_t goro__census_gkey(uintptr_t wpc, unsigned reason)
{
    return wpc ^ ((uintptr_t)reason << 56); /* user-space pcs are below 2^56 */
}

static inline bool goro__census_park(goro__census_p *cp, goro__g *g, unsigned reason)
{
    const uintptr_t *fp = (const uintptr_t *)g->wait_fp;
    if (__builtin_expect(!fp, 0))
        return false;
    uintptr_t wpc = fp[1];
    if (__builtin_expect(g->census_key != goro__census_gkey(wpc, reason) || g->census_cp != cp, 0))
        return goro__census_park_slow(cp, g, reason, wpc);
    goro__census_ctr *c = &g->census_cell->s[goro__census_slot(g->wait_since)];
    g->census_ctr = c;
    goro__census_bump(&c->park);
    return true;
}

static inline void goro__census_resume(goro__census_p *cp, goro__g *g)
{
    if (__builtin_expect(cp == g->census_cp, 1))
        goro__census_bump(&g->census_ctr->res);
    else
        goro__census_resume_slow(cp, g);
}

static inline bool goro__census_counts(unsigned reason, int64_t deadline)
{
    return ((atomic_load_explicit(&goro__census_mask, memory_order_relaxed) >> reason) & 1) &&
           deadline == INT64_MAX;
}

/* ---- readers (the watchdog, any thread) ---- */

/* Groups created so far: indices 1 .. n. */
uint32_t goro__census_ngroups(void);
/* Parks not counted because the group table was full. */
uint64_t goro__census_overflow(void);
void goro__census_key_of(uint32_t idx, goro__census_key *out);
/* Still-parked members of group idx by ring slot (out[GORO__CENSUS_RING]);
 * returns their total. */
uint64_t goro__census_read(uint32_t idx, uint32_t *out);
/* Lower bound of the age at `now` of the members counted in ring slot s. */
int64_t goro__census_slot_age(uint32_t s, int64_t now);

/* ---- lifetime (sched.c) ---- */
void goro__census_p_free(struct goro__p *p);
/* At teardown, every other thread stopped: forget the groups. */
void goro__census_reset(void);

#endif /* GORO_RUNTIME_CENSUS_H */
