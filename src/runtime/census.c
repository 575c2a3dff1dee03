/*
 * census.c - parked goroutines counted by wait group at park and wake-up,
 * so that the leak watchdog's pass costs O(groups), not O(goroutines).
 * The counters and their reading rule are described in census.h.
 *
 * Groups live in one table of GORO__CENSUS_MAX entries, found through an
 * open-addressing hash of their key. Lookups are lock-free: an entry is
 * written completely, then its index is published in the hash slot with a
 * release store; readers load the slot with acquire. Insertion (a new
 * (creation site, wait site, reason) triple: rare) takes `ins_lock`, which
 * may be taken while a channel or sync lock is held (goro__park runs under
 * the lock its commit function releases): rank ALLOC. The first group of a
 * chunk allocates the chunk's cells for every P at once, so a wake-up on
 * another P never allocates. When the table (or memory) runs out, parks go
 * uncounted and `overflow` says how many.
 *
 * Per goroutine, the last group is cached in the G (census_key/_idx/
 * _idx): a goroutine that parks again and again at one call (a worker's
 * loop) skips the hash.
 *
 * Race windows: (1) a reader sums while a goroutine parks on one P and
 * resumes on another: res is read before park (census.h), so the sum is
 * never short of a member and never negative for a slot; (2) an insertion
 * races a lookup of the same key: the lookup misses, takes ins_lock and
 * finds the entry the other inserted (re-checked under the lock);
 * (3) chunk pointers are published (release) before the group index
 * that needs them, and a P's cells are reached only through that index.
 */
#define GORO__LOCK_RANK GORO__RANK_ALLOC
#include "runtime/census.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/lock.h"
#include "runtime/sched.h"

#define HASH_SLOTS (2 * GORO__CENSUS_MAX)

/* chan send/recv, select, select {}, mutex, rwmutex, waitgroup, cond,
 * once, context: the primitives (goro__wait_reason_is_primitive). */
#define PRIMITIVES                                                                             \
    ((1u << GORO__WAIT_CHAN_SEND) | (1u << GORO__WAIT_CHAN_RECV) | (1u << GORO__WAIT_SELECT) | \
     (1u << GORO__WAIT_SELECT_NO_CASES) | (1u << GORO__WAIT_MUTEX) |                          \
     (1u << GORO__WAIT_RWMUTEX_RLOCK) | (1u << GORO__WAIT_RWMUTEX_LOCK) |                     \
     (1u << GORO__WAIT_WAITGROUP) | (1u << GORO__WAIT_COND) | (1u << GORO__WAIT_ONCE) |       \
     (1u << GORO__WAIT_CTX))
_Static_assert(GORO__WAIT_COUNT <= 32, "wait reasons fit the mask");

_Atomic uint32_t goro__census_mask = PRIMITIVES;

void goro__census_enable(bool on)
{
    atomic_store_explicit(&goro__census_mask, on ? PRIMITIVES : 0, memory_order_relaxed);
}

static struct {
    goro__census_key keys[GORO__CENSUS_MAX];
    _Atomic uint16_t hash[HASH_SLOTS]; /* group index, 0 = empty */
    _Atomic uint32_t n;                /* groups 1 .. n exist */
    _Atomic uint64_t overflow;
    goro__spinlock ins_lock;
} C;

static inline uintptr_t site_of(const goro__g *g)
{
    return g->info.npc ? g->info.pc[0] : (uintptr_t)g->info.fn;
}

static inline uint32_t hash_key(uintptr_t site, uintptr_t wpc, unsigned reason)
{
    uint64_t h = (uint64_t)site * 0x9e3779b97f4a7c15ull;
    h ^= (uint64_t)wpc + 0x632be59bd9b4e019ull + (h << 6) + (h >> 2);
    h ^= reason;
    h *= 0xff51afd7ed558ccdull;
    return (uint32_t)(h >> 40) & (HASH_SLOTS - 1);
}

static uint32_t lookup(uintptr_t site, uintptr_t wpc, unsigned reason)
{
    for (uint32_t i = hash_key(site, wpc, reason), k = 0; k < HASH_SLOTS;
         i = (i + 1) & (HASH_SLOTS - 1), k++) {
        uint32_t idx = atomic_load_explicit(&C.hash[i], memory_order_acquire);
        if (!idx)
            return 0;
        const goro__census_key *e = &C.keys[idx];
        if (e->site == site && e->wait_pc == wpc && e->reason == reason)
            return idx;
    }
    return 0;
}

/* The P array is fixed while goroutines run (nprocs Ps, all allocated). */
static bool alloc_chunk(uint32_t chunk)
{
    uint32_t np = goro__sched_.nprocs;
    goro__census_cell *cells[GORO__MAX_PROCS];
    for (uint32_t i = 0; i < np; i++) {
        cells[i] = calloc(GORO__CENSUS_CHUNK, sizeof(goro__census_cell));
        if (!cells[i]) {
            while (i--)
                free(cells[i]);
            return false;
        }
    }
    for (uint32_t i = 0; i < np; i++) {
        goro__census_p *cp = &goro__sched_.allp[i]->census;
        atomic_store_explicit(&cp->chunk[chunk], cells[i], memory_order_release);
    }
    return true;
}

static uint32_t insert(const goro__g *g, uintptr_t site, uintptr_t wpc, unsigned reason)
{
    goro__spin_lock(&C.ins_lock);
    uint32_t idx = lookup(site, wpc, reason);
    if (idx)
        goto out;
    uint32_t n = atomic_load_explicit(&C.n, memory_order_relaxed);
    if (n + 1 >= GORO__CENSUS_MAX)
        goto out;
    /* Chunk c holds indices c*CHUNK .. c*CHUNK+CHUNK-1 (index 0 unused). */
    uint32_t c = (n + 1) / GORO__CENSUS_CHUNK;
    if (!atomic_load_explicit(&goro__sched_.allp[0]->census.chunk[c], memory_order_relaxed) &&
        !alloc_chunk(c))
        goto out;
    idx = n + 1;
    goro__census_key *e = &C.keys[idx];
    memset(e, 0, sizeof *e);
    e->site = site;
    e->wait_pc = wpc;
    e->reason = (uint8_t)reason;
    e->fn = g->info.fn;
    e->file = g->info.file;
    e->func = g->info.func;
    e->line = g->info.line;
    e->npc = (uint16_t)g->info.npc;
    memcpy(e->pc, g->info.pc, sizeof e->pc);
    atomic_store_explicit(&C.n, idx, memory_order_release);
    uint32_t i = hash_key(site, wpc, reason);
    while (atomic_load_explicit(&C.hash[i], memory_order_relaxed))
        i = (i + 1) & (HASH_SLOTS - 1);
    atomic_store_explicit(&C.hash[i], (uint16_t)idx, memory_order_release);
out:
    goro__spin_unlock(&C.ins_lock);
    return idx;
}

bool goro__census_park_slow(goro__census_p *cp, goro__g *g, unsigned reason, uintptr_t wpc)
{
    uintptr_t fp = (uintptr_t)g->wait_fp;
    if (fp < g->stack_lo || fp + 16 > g->stack_hi || (fp & 7))
        return false;
    uint32_t idx = g->census_idx;
    if (!idx || g->census_key != goro__census_gkey(wpc, reason)) {
        uintptr_t site = site_of(g);
        idx = lookup(site, wpc, reason);
        if (!idx)
            idx = insert(g, site, wpc, reason);
        if (!idx) {
            atomic_fetch_add_explicit(&C.overflow, 1, memory_order_relaxed);
            return false;
        }
    }
    g->census_key = goro__census_gkey(wpc, reason);
    g->census_idx = (uint16_t)idx;
    g->census_cp = cp;
    g->census_cell = goro__census_cell_of(cp, idx);
    g->census_ctr = &g->census_cell->s[goro__census_slot(g->wait_since)];
    goro__census_bump(&g->census_ctr->park);
    return true;
}

void goro__census_resume_slow(goro__census_p *cp, goro__g *g)
{
    goro__census_bump(&goro__census_cell_of(cp, g->census_idx)->s[goro__census_slot(g->wait_since)].res);
}

uint32_t goro__census_ngroups(void) { return atomic_load_explicit(&C.n, memory_order_acquire); }

uint64_t goro__census_overflow(void) { return atomic_load_explicit(&C.overflow, memory_order_relaxed); }

void goro__census_key_of(uint32_t idx, goro__census_key *out) { *out = C.keys[idx]; }

uint64_t goro__census_read(uint32_t idx, uint32_t *out)
{
    uint32_t np = goro__sched_.nprocs;
    uint32_t res[GORO__CENSUS_RING] = {0};
    for (uint32_t i = 0; i < np; i++) {
        goro__census_cell *c = goro__census_cell_of(&goro__sched_.allp[i]->census, idx);
        for (uint32_t s = 0; s < GORO__CENSUS_RING; s++)
            res[s] += atomic_load_explicit(&c->s[s].res, memory_order_relaxed);
    }
    atomic_thread_fence(memory_order_acquire);
    for (uint32_t s = 0; s < GORO__CENSUS_RING; s++)
        out[s] = 0;
    for (uint32_t i = 0; i < np; i++) {
        goro__census_cell *c = goro__census_cell_of(&goro__sched_.allp[i]->census, idx);
        for (uint32_t s = 0; s < GORO__CENSUS_RING; s++)
            out[s] += atomic_load_explicit(&c->s[s].park, memory_order_relaxed);
    }
    uint64_t total = 0;
    for (uint32_t s = 0; s < GORO__CENSUS_RING; s++) {
        int32_t d = (int32_t)(out[s] - res[s]);
        out[s] = d > 0 ? (uint32_t)d : 0;
        total += out[s];
    }
    return total;
}

int64_t goro__census_slot_age(uint32_t s, int64_t now)
{
    uint64_t e = (uint64_t)now >> GORO__CENSUS_SHIFT;
    uint64_t newest = e - ((e - s) & (GORO__CENSUS_RING - 1)); /* newest epoch in slot s */
    int64_t age = now - (int64_t)((newest + 1) << GORO__CENSUS_SHIFT);
    return age > 0 ? age : 0;
}

void goro__census_p_free(struct goro__p *p)
{
    for (uint32_t c = 0; c < GORO__CENSUS_MAX / GORO__CENSUS_CHUNK; c++) {
        free(atomic_load_explicit(&p->census.chunk[c], memory_order_relaxed));
        atomic_store_explicit(&p->census.chunk[c], NULL, memory_order_relaxed);
    }
}

void goro__census_reset(void)
{
    for (uint32_t i = 0; i < HASH_SLOTS; i++)
        atomic_store_explicit(&C.hash[i], 0, memory_order_relaxed);
    atomic_store_explicit(&C.n, 0, memory_order_release);
    atomic_store_explicit(&C.overflow, 0, memory_order_relaxed);
}
