/*
 * census.c - parked goroutines counted by wait group (the protocol, its
 * race windows and the invariants that close them are in census.h).
 *
 * The group table and the `cnt` counters belong to sysmon (it alone
 * creates groups and counts parks); goroutines reach a group only through
 * the mark sysmon published for their park, to add to `res` when they wake
 * (atomic adds: only long waits ever get there). Counters come in chunks of
 * CHUNK groups, allocated by sysmon before the first mark that names one of
 * their groups (the mark's CAS publishes them).
 */
#include "runtime/census.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/sched.h"

#define HASH_SLOTS (2 * GORO__CENSUS_MAX)
#define CHUNK 64

_Atomic uint32_t goro__census_mask = GORO__WAIT_PRIMITIVE_MASK;

typedef struct counters {
    _Atomic uint32_t cnt[GORO__CENSUS_RING];  /* written by sysmon only */
    _Atomic uint32_t res[GORO__CENSUS_RING];  /* wake-ups */
} counters;

static struct {
    goro__census_key keys[GORO__CENSUS_MAX];
    uint16_t hash[HASH_SLOTS]; /* group index, 0 = empty */
    _Atomic uint32_t n;        /* groups 1 .. n exist (written by sysmon) */
    counters *chunk[GORO__CENSUS_MAX / CHUNK];
    struct {
        _Atomic uint64_t logged, counted, walks, overflow;
    } st;
} C;

static inline void bump(_Atomic uint32_t *v) /* single writer */
{
    atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

static inline void bump64(_Atomic uint64_t *v)
{
    atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

void goro__census_enable(bool on)
{
    atomic_store_explicit(&goro__census_mask, on ? GORO__WAIT_PRIMITIVE_MASK : 0, memory_order_relaxed);
}

/* ---- the goroutine's side ---- */

void goro__census_log_push(goro__census_log *l, goro__g *g, uint32_t epoch)
{
    g->census_epoch = epoch;
    uint32_t h = atomic_load_explicit(&l->head, memory_order_relaxed);
    atomic_store_explicit(&l->ent[h & (GORO__CENSUS_LOG - 1)],
                          GORO__CENSUS_TAG | (uint64_t)g->base.slot << 32 | epoch,
                          memory_order_relaxed);
    atomic_store_explicit(&l->head, h + 1, memory_order_release);
}

static inline counters *counters_of(uint32_t idx)
{
    return &C.chunk[idx / CHUNK][idx % CHUNK];
}

void goro__census_woke(goro__g *g)
{
    uint64_t m = atomic_load_explicit(&g->census_mark, memory_order_acquire);
    uint64_t seq = GORO__GST_SEQ(goro__load_relaxed(&g->base.status)) & GORO__CENSUS_SEQ_MASK;
    if (GORO__CENSUS_MARK_SEQ(m) != seq)
        return; /* an older park's, being undone by sysmon (window 2) */
    if (!atomic_compare_exchange_strong_explicit(&g->census_mark, &m, 0, memory_order_acq_rel,
                                                 memory_order_relaxed))
        return; /* sysmon undid it: not counted */
    atomic_fetch_add_explicit(&counters_of(GORO__CENSUS_MARK_IDX(m))
                                   ->res[GORO__CENSUS_MARK_SLOT(m)],
                              1, memory_order_relaxed);
}

/* ---- sysmon's side ---- */

static inline uint32_t hash_key(uintptr_t site, uintptr_t wpc, unsigned reason)
{
    uint64_t h = (uint64_t)site * 0x9e3779b97f4a7c15ull;
    h ^= (uint64_t)wpc + 0x632be59bd9b4e019ull + (h << 6) + (h >> 2);
    h ^= reason;
    h *= 0xff51afd7ed558ccdull;
    return (uint32_t)(h >> 40) & (HASH_SLOTS - 1);
}

static uint32_t group_of(const goro__census_key *k)
{
    uint32_t i = hash_key(k->site, k->wait_pc, k->reason);
    for (uint32_t n = 0; n < HASH_SLOTS; n++, i = (i + 1) & (HASH_SLOTS - 1)) {
        uint32_t idx = C.hash[i];
        if (!idx)
            break;
        const goro__census_key *e = &C.keys[idx];
        if (e->site == k->site && e->wait_pc == k->wait_pc && e->reason == k->reason)
            return idx;
    }
    uint32_t n = atomic_load_explicit(&C.n, memory_order_relaxed);
    if (n + 1 >= GORO__CENSUS_MAX)
        return 0;
    uint32_t idx = n + 1;
    if (!C.chunk[idx / CHUNK] && !(C.chunk[idx / CHUNK] = calloc(CHUNK, sizeof(counters))))
        return 0;
    C.keys[idx] = *k;
    C.hash[i] = (uint16_t)idx;
    atomic_store_explicit(&C.n, idx, memory_order_release);
    return idx;
}

/* Count the goroutine in registry slot s if it is parked, in a counted
 * wait, since epoch `upto` or earlier, and not counted yet. Reads a record
 * that may change under it (re-checked by status). Returns false when the
 * goroutine is still on its way into that park (it logged the park, then
 * the epoch ended before its status became WAITING: window 5 of
 * census.h): the caller looks again later. */
GORO__NO_SANITIZE static bool examine(uint32_t s, uint32_t upto)
{
    goro__gbase *gb = goro__reg_get(s);
    if (!gb || gb->kind != GORO__KIND_G)
        return true;
    uint64_t st = goro__load_acquire(&gb->status);
    goro__g *g = (goro__g *)gb;
    unsigned reason = *(volatile uint8_t *)&g->wait_reason;
    int64_t since = *(volatile int64_t *)&g->wait_since;
    if (GORO__GST_STATE(st) != GORO__G_WAITING) {
        /* Running with a counted wait reason set: between the park's start
         * and its status store, or between the wake-up and the reason's
         * reset. Either way only a moment: look again. */
        return !(GORO__GST_STATE(st) == GORO__G_RUNNING && goro__wait_reason_is_primitive(reason) &&
                 goro__census_epoch(since) <= upto);
    }
    if (!goro__wait_reason_is_primitive(reason) || goro__census_epoch(since) > upto ||
        *(const volatile uint32_t *)&g->timer.state != GORO__TIMER_IDLE)
        return true;
    uintptr_t fp = (uintptr_t)*(void *const volatile *)&g->wait_fp;
    if (fp < g->stack_lo || fp + 16 > g->stack_hi || (fp & 7))
        return true;
    goro__census_key k;
    memset(&k, 0, sizeof k);
    k.wait_pc = ((const volatile uintptr_t *)fp)[1];
    k.reason = (uint8_t)reason;
    k.fn = g->info.fn;
    k.file = g->info.file;
    k.func = g->info.func;
    k.line = g->info.line;
    k.npc = (uint16_t)g->info.npc;
    memcpy(k.pc, g->info.pc, sizeof k.pc);
    k.site = k.npc ? k.pc[0] : (uintptr_t)k.fn;
    uint64_t m0 = atomic_load_explicit(&g->census_mark, memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    if (goro__load_relaxed(&gb->status) != st || goro__reg_get(s) != gb)
        return true; /* changed while read */
    uint64_t seq = GORO__GST_SEQ(st);
    if (GORO__CENSUS_MARK_SEQ(m0) == (seq & GORO__CENSUS_SEQ_MASK))
        return true; /* counted already */
    uint32_t idx = group_of(&k);
    if (!idx) {
        bump64(&C.st.overflow);
        return true;
    }
    uint32_t slot = goro__census_epoch(since) & (GORO__CENSUS_RING - 1);
    uint64_t mark = GORO__CENSUS_MARK(seq, idx, slot);
    if (!atomic_compare_exchange_strong_explicit(&g->census_mark, &m0, mark, memory_order_seq_cst,
                                                 memory_order_relaxed))
        return true;
    atomic_thread_fence(memory_order_seq_cst);
    counters *c = counters_of(idx);
    if (goro__load_acquire(&gb->status) != st) {
        /* Woke meanwhile (window 1): undo, unless it took the mark already
         * and counted its wake-up. */
        uint64_t exp = mark;
        if (atomic_compare_exchange_strong_explicit(&g->census_mark, &exp, m0,
                                                    memory_order_seq_cst, memory_order_relaxed))
            return true;
    }
    bump(&c->cnt[slot]);
    bump64(&C.st.counted);
    return true;
}

/* Entries to look at again (examine returned false), sysmon's. A goroutine
 * stays "on its way" for instructions, not ticks; an entry is dropped after
 * RETRY_TICKS tries all the same (a thread descheduled for that long). */
#define RETRY_MAX 1024
#define RETRY_TICKS 1000
static struct {
    uint64_t e[RETRY_MAX]; /* as log entries */
    uint16_t tries[RETRY_MAX];
    uint32_t n;
    bool full; /* an entry did not fit: walk the registry */
    /* Entries were lost (a lapped log, a full retry list) up to epoch
     * walk_epoch: walk the registry once that epoch has ended. */
    bool walk;
    uint32_t walk_epoch;
} R;

static void examine_or_retry(uint64_t e, uint16_t tries)
{
    if (examine((uint32_t)(e >> 32) & 0x0fffffff, (uint32_t)e) || tries >= RETRY_TICKS)
        return;
    if (R.n == RETRY_MAX) {
        R.full = true;
        return;
    }
    R.e[R.n] = e;
    R.tries[R.n++] = tries;
}

static void walk_all(uint32_t upto)
{
    bump64(&C.st.walks);
    uint32_t lim = goro__reg_limit();
    for (uint32_t s = 0; s < lim; s++)
        examine_or_retry(GORO__CENSUS_TAG | (uint64_t)s << 32 | upto, 0);
}

void goro__census_collect(int64_t now)
{
    if (!atomic_load_explicit(&goro__census_mask, memory_order_relaxed))
        return;
    uint32_t cur = goro__census_epoch(now);
    bool lapped = R.full;
    R.full = false;
    if (R.walk && (int32_t)(cur - R.walk_epoch) > 0) {
        R.walk = false;
        walk_all(cur - 1);
    }
    uint32_t nr = R.n;
    R.n = 0;
    for (uint32_t i = 0; i < nr; i++) /* appends at R.n <= i */
        examine_or_retry(R.e[i], (uint16_t)(R.tries[i] + 1));
    for (uint32_t i = 0; i < goro__sched_.nprocs; i++) {
        goro__census_log *l = goro__sched_.allp[i]->census_log;
        if (!l)
            continue;
        uint32_t h = atomic_load_explicit(&l->head, memory_order_acquire);
        if (h - l->tail > GORO__CENSUS_LOG) {
            lapped = true;
            l->tail = h;
            continue;
        }
        while (l->tail != h) {
            uint64_t e = atomic_load_explicit(&l->ent[l->tail & (GORO__CENSUS_LOG - 1)],
                                              memory_order_relaxed);
            uint32_t epoch = (uint32_t)e;
            if ((int32_t)(epoch - cur) >= 0)
                break; /* its epoch has not ended yet */
            /* Re-check that the P did not overwrite the entry meanwhile (it
             * may be writing entry head, which lands on tail once head -
             * tail reaches the log's size). */
            atomic_thread_fence(memory_order_acquire);
            if (atomic_load_explicit(&l->head, memory_order_relaxed) - l->tail >= GORO__CENSUS_LOG) {
                lapped = true;
                l->tail = atomic_load_explicit(&l->head, memory_order_acquire);
                break;
            }
            examine_or_retry(e, 0);
            bump64(&C.st.logged);
            l->tail++;
        }
    }
    if (lapped) {
        /* The lost entries may be of this epoch: walk once it has ended
         * (a walk now covers the parks of the epochs before). */
        walk_all(cur - 1);
        R.walk = true;
        R.walk_epoch = cur;
    }
}

/* ---- readers ---- */

uint32_t goro__census_ngroups(void) { return atomic_load_explicit(&C.n, memory_order_acquire); }

void goro__census_key_of(uint32_t idx, goro__census_key *out) { *out = C.keys[idx]; }

uint64_t goro__census_read(uint32_t idx, uint32_t *out)
{
    counters *c = counters_of(idx);
    uint64_t total = 0;
    for (uint32_t s = 0; s < GORO__CENSUS_RING; s++) {
        /* res after cnt: a wake-up is never counted without its park
         * (sysmon counts the park before the mark can be taken, or after
         * the goroutine took it: then both appear together, or res alone
         * for a moment, clamped to 0). */
        uint32_t cnt = atomic_load_explicit(&c->cnt[s], memory_order_relaxed);
        int32_t d = (int32_t)(cnt - atomic_load_explicit(&c->res[s], memory_order_acquire));
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

void goro__census_stats_get(goro__census_stats *out)
{
    out->logged = atomic_load_explicit(&C.st.logged, memory_order_relaxed);
    out->counted = atomic_load_explicit(&C.st.counted, memory_order_relaxed);
    out->walks = atomic_load_explicit(&C.st.walks, memory_order_relaxed);
    out->overflow = atomic_load_explicit(&C.st.overflow, memory_order_relaxed);
}

/* ---- lifetime ---- */

int goro__census_p_init(struct goro__p *p)
{
    p->census_log = calloc(1, sizeof *p->census_log);
    return p->census_log ? 0 : -ENOMEM;
}

void goro__census_p_free(struct goro__p *p)
{
    free(p->census_log);
    p->census_log = NULL;
}

void goro__census_reset(void)
{
    for (uint32_t c = 0; c < GORO__CENSUS_MAX / CHUNK; c++) {
        free(C.chunk[c]);
        C.chunk[c] = NULL;
    }
    memset(C.hash, 0, sizeof C.hash);
    R.n = 0;
    R.full = false;
    R.walk = false;
    atomic_store_explicit(&C.n, 0, memory_order_relaxed);
    atomic_store_explicit(&C.st.logged, 0, memory_order_relaxed);
    atomic_store_explicit(&C.st.counted, 0, memory_order_relaxed);
    atomic_store_explicit(&C.st.walks, 0, memory_order_relaxed);
    atomic_store_explicit(&C.st.overflow, 0, memory_order_relaxed);
}
