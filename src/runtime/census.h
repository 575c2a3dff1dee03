/*
 * census.h - parked goroutines counted by wait group, so that the leak
 * watchdog's pass costs O(groups), not O(goroutines) (census.c).
 *
 * A wait group is (creation site, wait site, wait reason): the spawner's
 * return address (or the goroutine function), the return address of the
 * public blocking call, and the wait reason. Only waits on goro primitives
 * without a deadline are counted (the ones that can last forever), and only
 * once they have lasted past the end of the census epoch (67 ms) they began
 * in: a leak is a long wait, and the millions of short ones a busy program
 * makes per second must cost next to nothing.
 *
 * The goroutine's part (inline below, in goro__park):
 *  - park: when its park epoch differs from the one it last logged, it
 *    appends (registry slot, epoch) to its P's census log (single writer,
 *    the P's owner). A goroutine parking again and again within an epoch
 *    (a ping-pong) is logged once per epoch: one compare per park.
 *  - wake-up: when sysmon counted this very park (census_mark carries the
 *    park's status sequence), it takes the mark back and counts the
 *    wake-up. Otherwise one load and a branch.
 * sysmon's part (goro__census_collect, every tick): it reads the logs up to
 * the entries of the current epoch; for each logged goroutine still parked
 * in a wait that began in or before the logged epoch, it computes the group
 * (reading the parked goroutine's record and wait frame, re-checking its
 * status after) and publishes the mark with a CAS; then counts the park in
 * the group's counter for the park's epoch. The per-group counters are
 * indexed by park epoch modulo GORO__CENSUS_RING: `cnt` (sysmon only) and
 * `res` (wake-ups, atomic adds by goroutines); cnt - res is, per slot, the
 * number of counted goroutines still parked whose park began in an epoch
 * of that slot: their age is at least that of the newest such epoch (ages
 * are lower bounds, exact to one epoch below the ring's 8.6 s).
 *
 * Race windows and what closes each:
 *  (1) the goroutine wakes between sysmon's reads and its CAS: the CAS
 *      expects the mark it read with the status; sysmon re-reads the status
 *      after the CAS (seq_cst fence between): still the same park -> the
 *      wake-up is later and sees the mark (the waker's status store comes
 *      after sysmon's read in coherence order, and the woken goroutine reads
 *      the mark after that store: x86-TSO, and ARMv8's multi-copy
 *      atomicity with the fence); changed -> sysmon undoes its CAS, and
 *      when the undo fails the goroutine already took the mark and counted
 *      its wake-up, so sysmon counts the park too (the pair cancels).
 *  (2) a mark of an older park met at wake-up (sysmon between its CAS and
 *      undo): the sequence differs; the goroutine leaves it to sysmon.
 *  (3) registry slots are reused: the slot's current occupant is examined,
 *      its record re-checked by status sequence (the sequence grows across
 *      reuse); a parked occupant whose wait began after the logged epoch
 *      is left to its own (later) log entry.
 *  (4) a P logs faster than sysmon reads (more distinct goroutines parking
 *      per tick than the log holds): the overwritten entries are replaced
 *      by one walk over the whole registry (`lapped`, counted in
 *      goro__census_stats).
 *  (5) the goroutine logs its park before its status becomes WAITING (the
 *      store comes after the switch); when the epoch ends in between,
 *      sysmon finds it RUNNING with the counted wait reason set: it keeps
 *      the entry and looks again at the next tick (a retry list; when that
 *      overflows, a registry walk).
 */
#ifndef GORO_RUNTIME_CENSUS_H
#define GORO_RUNTIME_CENSUS_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/g.h"

#define GORO__CENSUS_SHIFT 26  /* epoch: 2^26 ns = 67 ms */
#define GORO__CENSUS_RING 128  /* epochs kept apart: 8.6 s */
#define GORO__CENSUS_MAX 4096  /* groups (index 0 is "none") */
#define GORO__CENSUS_LOG 8192  /* entries per P */

/* The census's words live in memory the leak scan reads conservatively
 * (P records, goroutine records): bit 63 is set in every log entry and
 * every mark, so that none can ever look like a user-space pointer. */
#define GORO__CENSUS_TAG (1ull << 63)
#define GORO__CENSUS_SEQ_MASK ((1ull << 43) - 1)

/* census_mark: tag, the park's status sequence (low 43 bits), group, slot. */
#define GORO__CENSUS_MARK(seq, idx, slot)                                                 \
    (GORO__CENSUS_TAG | (((uint64_t)(seq) & GORO__CENSUS_SEQ_MASK) << 20) |              \
     ((uint64_t)(idx) << 7) | (uint64_t)(slot))
#define GORO__CENSUS_MARK_SEQ(m) (((m) >> 20) & GORO__CENSUS_SEQ_MASK)
#define GORO__CENSUS_MARK_IDX(m) ((uint32_t)((m) >> 7) & (GORO__CENSUS_MAX - 1))
#define GORO__CENSUS_MARK_SLOT(m) ((uint32_t)(m) & (GORO__CENSUS_RING - 1))

/* A P's log: written by the P's owner, read by sysmon. */
typedef struct goro__census_log {
    _Atomic uint32_t head;
    uint32_t tail; /* sysmon's */
    _Atomic uint64_t ent[GORO__CENSUS_LOG]; /* tag | slot (28 bits) << 32 | epoch */
} goro__census_log;

/* What a group is; immutable once created (code addresses and string
 * literals of goro_go's call site). */
typedef struct goro__census_key {
    uintptr_t site;    /* creation pc[0], or the goroutine function */
    uintptr_t wait_pc; /* return address of the public blocking call */
    uint8_t reason;
    /* From the first member counted (the same for every member). */
    goro_fn fn;
    const char *file, *func;
    int line;
    uint16_t npc;
    uintptr_t pc[GORO__CREATE_DEPTH];
} goro__census_key;

/* The wait reasons counted (bit per reason), 0 when the watchdog is off. */
extern _Atomic uint32_t goro__census_mask;
void goro__census_enable(bool on);

static inline bool goro__census_counts(unsigned reason, int64_t deadline)
{
    return ((atomic_load_explicit(&goro__census_mask, memory_order_relaxed) >> reason) & 1) &&
           deadline == INT64_MAX;
}

static inline uint32_t goro__census_epoch(int64_t t)
{
    return (uint32_t)((uint64_t)t >> GORO__CENSUS_SHIFT);
}

void goro__census_log_push(goro__census_log *l, goro__g *g, uint32_t epoch);
void goro__census_woke(goro__g *g);

/* goro__park, before the switch: g's wait_since is set (coarse clock). */
static inline void goro__census_park(goro__census_log *l, goro__g *g)
{
    uint32_t e = goro__census_epoch(g->wait_since);
    if (__builtin_expect(g->census_epoch != e, 0))
        goro__census_log_push(l, g, e);
}

/* goro__park, after the switch (every park, counted reason or not). */
static inline void goro__census_resume(goro__g *g)
{
    if (__builtin_expect(atomic_load_explicit(&g->census_mark, memory_order_relaxed) != 0, 0))
        goro__census_woke(g);
}

/* ---- sysmon ---- */

/* Read the logs (and count the parks that outlived their epoch). */
void goro__census_collect(int64_t now);

/* ---- readers (the watchdog, on sysmon's thread after collect) ---- */

/* Groups created so far: indices 1 .. n. */
uint32_t goro__census_ngroups(void);
void goro__census_key_of(uint32_t idx, goro__census_key *out);
/* Counted members of group idx still parked, by ring slot
 * (out[GORO__CENSUS_RING]); returns their total. */
uint64_t goro__census_read(uint32_t idx, uint32_t *out);
/* Lower bound of the age at `now` of the members counted in ring slot s. */
int64_t goro__census_slot_age(uint32_t s, int64_t now);

typedef struct goro__census_stats {
    uint64_t logged;   /* log entries read */
    uint64_t counted;  /* parks counted */
    uint64_t walks;    /* registry walks after a lapped log */
    uint64_t overflow; /* parks not counted: the group table was full */
} goro__census_stats;
void goro__census_stats_get(goro__census_stats *out);

/* ---- lifetime (sched.c) ---- */
int goro__census_p_init(struct goro__p *p);
void goro__census_p_free(struct goro__p *p);
/* At teardown, every other thread stopped: forget the groups. */
void goro__census_reset(void);

#endif /* GORO_RUNTIME_CENSUS_H */
