/*
 * g.c - goroutine records: spawn, the registry, newborn records, and
 * consistent snapshots for diagnostics. The record layout and the status
 * protocol are described in g.h.
 *
 * Registry: a directory of 64 Ki-slot chunks of atomic pointers, mmapped on
 * demand and never freed while the runtime runs. Slot indices come from
 * per-P caches refilled in batches from a global free list (or by bumping
 * the high-water mark) under reg.lock.
 *
 * Newborn records come from 2 MiB chunks (transparent huge pages when the
 * kernel gives them, so a million spawns cost a few hundred page faults, not
 * forty thousand) inside one reserved region. Each P bump-allocates from its
 * own current chunk. A chunk is recycled as a whole once every record in it
 * has been freed (a live count biased while the chunk is still being
 * filled), so a burst of spawns gives its memory back: chunks beyond a small
 * reserve are returned to the OS with MADV_DONTNEED.
 */
#define GORO__MUTEX_RANK GORO__RANK_ALLOC
#include "runtime/g.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "runtime/sanitizer.h"
#include "runtime/sched.h"
#include "runtime/unwind.h"

/* ---- wait reasons ---------------------------------------------------------- */

static const char *const wait_reason_str[GORO__WAIT_COUNT] = {
    [GORO__WAIT_NONE] = "",
    [GORO__WAIT_CHAN_SEND] = "chan send",
    [GORO__WAIT_CHAN_RECV] = "chan receive",
    [GORO__WAIT_SELECT] = "select",
    [GORO__WAIT_SELECT_NO_CASES] = "select (no cases)",
    [GORO__WAIT_SLEEP] = "sleep",
    [GORO__WAIT_MUTEX] = "sync.Mutex.Lock",
    [GORO__WAIT_RWMUTEX_RLOCK] = "sync.RWMutex.RLock",
    [GORO__WAIT_RWMUTEX_LOCK] = "sync.RWMutex.Lock",
    [GORO__WAIT_WAITGROUP] = "sync.WaitGroup.Wait",
    [GORO__WAIT_COND] = "sync.Cond.Wait",
    [GORO__WAIT_ONCE] = "sync.Once.Do",
    [GORO__WAIT_IO] = "IO wait",
    [GORO__WAIT_CTX] = "chan receive",
};

const char *goro__wait_reason_str(unsigned reason)
{
    return reason < GORO__WAIT_COUNT ? wait_reason_str[reason] : "waiting";
}

_Static_assert(GORO__WAIT_COUNT <= 32, "wait reasons fit GORO__WAIT_PRIMITIVE_MASK");

bool goro__wait_reason_is_primitive(unsigned reason)
{
    return reason < 32 && ((GORO__WAIT_PRIMITIVE_MASK >> reason) & 1);
}

/* ---- registry -------------------------------------------------------------- */

#define REG_CHUNK_SHIFT 16
#define REG_CHUNK (1u << REG_CHUNK_SHIFT)
#define REG_MAX_CHUNKS 4096
#define REG_BATCH 32

static struct {
    goro__mutex lock;
    _Atomic(_Atomic(goro__gbase *) *) chunks[REG_MAX_CHUNKS];
    _Atomic uint32_t limit; /* slots handed out so far (high-water mark) */
    uint32_t *free;         /* global free list (under lock) */
    uint32_t nfree, cap;
} reg;

uint32_t goro__reg_limit(void) { return goro__load_acquire(&reg.limit); }

goro__gbase *goro__reg_get(uint32_t i)
{
    _Atomic(goro__gbase *) *c = goro__load_acquire(&reg.chunks[i >> REG_CHUNK_SHIFT]);
    return c ? goro__load_acquire(&c[i & (REG_CHUNK - 1)]) : NULL;
}

void goro__reg_set(uint32_t i, goro__gbase *g)
{
    _Atomic(goro__gbase *) *c = goro__load_relaxed(&reg.chunks[i >> REG_CHUNK_SHIFT]);
    goro__store_release(&c[i & (REG_CHUNK - 1)], g);
}

static int reg_refill(goro__p *p)
{
    goro__mutex_lock(&reg.lock);
    while (p->nslot < REG_BATCH && reg.nfree)
        p->slotcache[p->nslot++] = reg.free[--reg.nfree];
    if (p->nslot == 0) {
        uint32_t lim = goro__load_relaxed(&reg.limit);
        uint32_t ci = lim >> REG_CHUNK_SHIFT;
        if (ci >= REG_MAX_CHUNKS) {
            goro__mutex_unlock(&reg.lock);
            return -ENOMEM;
        }
        if (!goro__load_relaxed(&reg.chunks[ci])) {
            void *mem = mmap(NULL, REG_CHUNK * sizeof(void *), PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (mem == MAP_FAILED) {
                goro__mutex_unlock(&reg.lock);
                return -ENOMEM;
            }
            goro__store_release(&reg.chunks[ci], mem);
        }
        /* Chunks hold a multiple of REG_BATCH slots: a batch never spans two. */
        for (uint32_t i = 0; i < REG_BATCH; i++)
            p->slotcache[p->nslot++] = lim + REG_BATCH - 1 - i;
        goro__store_release(&reg.limit, lim + REG_BATCH);
    }
    goro__mutex_unlock(&reg.lock);
    return 0;
}

int goro__reg_alloc(goro__p *p, uint32_t *slot)
{
    if (GORO__UNLIKELY(p->nslot == 0)) {
        int rc = reg_refill(p);
        if (rc)
            return rc;
    }
    *slot = p->slotcache[--p->nslot];
    return 0;
}

void goro__reg_free(goro__p *p, uint32_t slot)
{
    goro__reg_set(slot, NULL);
    if (GORO__UNLIKELY(p->nslot == GORO__SLOT_CACHE)) {
        goro__mutex_lock(&reg.lock);
        uint32_t half = GORO__SLOT_CACHE / 2;
        if (reg.nfree + half > reg.cap) {
            uint32_t ncap = reg.cap ? reg.cap * 2 : 1024;
            uint32_t *nf = realloc(reg.free, ncap * sizeof *nf);
            if (!nf) {
                /* Cannot grow the list: leak these indices (never reused). */
                goro__mutex_unlock(&reg.lock);
                p->nslot -= half;
                p->slotcache[p->nslot++] = slot;
                return;
            }
            /* The new tail zeroed (the leak scan reads it: reg is a global). */
            memset(nf + reg.cap, 0, (size_t)(ncap - reg.cap) * sizeof *nf);
            reg.free = nf;
            reg.cap = ncap;
        }
        for (uint32_t i = 0; i < half; i++)
            reg.free[reg.nfree++] = p->slotcache[--p->nslot];
        goro__mutex_unlock(&reg.lock);
    }
    p->slotcache[p->nslot++] = slot;
}

/* ---- newborn records --------------------------------------------------------- */

#define NB_CHUNK (2u << 20)
#define NB_REGION (16ull << 30)
#define NB_NCHUNKS ((uint32_t)(NB_REGION / NB_CHUNK))
#define NB_HDR 64
#define NB_SIZE GORO__ALIGN_UP(sizeof(goro__newborn), 32)
_Static_assert(sizeof(goro__newborn) <= 128, "newborn records are budgeted at 128 bytes");
#define NB_PER_CHUNK ((NB_CHUNK - NB_HDR) / NB_SIZE)
#define NB_BIAS ((int64_t)1 << 40)
#define NB_KEEP 1

typedef struct nb_chunk {
    _Atomic int64_t live;
} nb_chunk;

/* Free chunks are tracked by index, outside the chunks: writing a link
 * into a chunk we just returned to the OS would fault it back in. */
static struct {
    goro__mutex lock;
    char *region;   /* reserved, 2 MiB aligned */
    char *mapping;  /* what to munmap */
    size_t mapping_len;
    uint32_t used;  /* chunks of the region handed out so far */
    uint16_t warm[NB_KEEP];    /* free, still resident */
    uint32_t nwarm;
    uint16_t *cold;            /* free, returned to the OS */
    uint32_t ncold;
} nb;

static int nb_init(void)
{
    size_t len = NB_REGION + NB_CHUNK;
    char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (m == MAP_FAILED)
        return -ENOMEM;
    /* Zeroed: the slots past ncold are read by the leak scan (nb is a
     * global), and malloc's garbage there could hide a leak. */
    nb.cold = calloc(NB_NCHUNKS, sizeof *nb.cold);
    if (!nb.cold) {
        munmap(m, len);
        return -ENOMEM;
    }
    nb.mapping = m;
    nb.mapping_len = len;
    nb.region = (char *)GORO__ALIGN_UP((uintptr_t)m, NB_CHUNK);
    madvise(nb.region, NB_REGION, MADV_HUGEPAGE);
    return 0;
}

static void nb_chunk_release(nb_chunk *c)
{
    uint16_t idx = (uint16_t)(((char *)c - nb.region) / NB_CHUNK);
    goro__mutex_lock(&nb.lock);
    if (nb.nwarm < NB_KEEP) {
        nb.warm[nb.nwarm++] = idx;
        goro__mutex_unlock(&nb.lock);
        return;
    }
    goro__mutex_unlock(&nb.lock);
    madvise(c, NB_CHUNK, MADV_DONTNEED);
    goro__mutex_lock(&nb.lock);
    nb.cold[nb.ncold++] = idx;
    goro__mutex_unlock(&nb.lock);
}

void goro__newborn_scavenge(void)
{
    goro__mutex_lock(&nb.lock);
    uint32_t n = nb.nwarm;
    uint16_t idx[NB_KEEP];
    for (uint32_t i = 0; i < n; i++)
        idx[i] = nb.warm[i];
    nb.nwarm = 0;
    goro__mutex_unlock(&nb.lock);
    for (uint32_t i = 0; i < n; i++)
        madvise(nb.region + (size_t)idx[i] * NB_CHUNK, NB_CHUNK, MADV_DONTNEED);
    goro__mutex_lock(&nb.lock);
    for (uint32_t i = 0; i < n; i++)
        nb.cold[nb.ncold++] = idx[i];
    goro__mutex_unlock(&nb.lock);
}

static nb_chunk *nb_chunk_get(void)
{
    goro__mutex_lock(&nb.lock);
    if (!nb.region) {
        if (nb_init() != 0) {
            goro__mutex_unlock(&nb.lock);
            return NULL;
        }
    }
    char *c = NULL;
    if (nb.nwarm)
        c = nb.region + (size_t)nb.warm[--nb.nwarm] * NB_CHUNK;
    else if (nb.ncold)
        c = nb.region + (size_t)nb.cold[--nb.ncold] * NB_CHUNK;
    else if (nb.used < NB_NCHUNKS)
        c = nb.region + (size_t)nb.used++ * NB_CHUNK;
    goro__mutex_unlock(&nb.lock);
    if (c)
        atomic_store_explicit(&((nb_chunk *)c)->live, NB_BIAS, memory_order_relaxed);
    return (nb_chunk *)c;
}

static void nb_seal(char *chunk, uint32_t used)
{
    nb_chunk *c = (nb_chunk *)chunk;
    int64_t d = NB_BIAS - (int64_t)used;
    if (atomic_fetch_sub_explicit(&c->live, d, memory_order_acq_rel) == d)
        nb_chunk_release(c);
}

goro__newborn *goro__newborn_alloc(goro__p *p)
{
    if (GORO__UNLIKELY(!p->nb_chunk || p->nb_used == NB_PER_CHUNK)) {
        nb_chunk *c = nb_chunk_get();
        if (!c)
            return NULL;
        if (p->nb_chunk)
            nb_seal(p->nb_chunk, p->nb_used);
        p->nb_chunk = (char *)c;
        p->nb_used = 0;
    }
    return (goro__newborn *)(p->nb_chunk + NB_HDR + (size_t)p->nb_used++ * NB_SIZE);
}

void goro__newborn_free(goro__newborn *n)
{
    nb_chunk *c = (nb_chunk *)((uintptr_t)n & ~(uintptr_t)(NB_CHUNK - 1));
    if (atomic_fetch_sub_explicit(&c->live, 1, memory_order_acq_rel) == 1)
        nb_chunk_release(c);
}

/* ---- spawn ------------------------------------------------------------------- */

int goro_spawn(goro_fn fn, void *arg, const goro_spawn_opts *opts, uint64_t *id_out)
{
    if (!fn)
        return -EINVAL;
    if (opts && opts->name && strnlen(opts->name, GORO_NAME_MAX) >= GORO_NAME_MAX)
        return -ENAMETOOLONG;
    goro__m *m = goro__getm();
    if (!m || !m->curg)
        return -EPERM;
    goro__g *parent = m->curg;
    goro__p *p = m->p;
    uint32_t slot;
    int rc = goro__reg_alloc(p, &slot);
    if (rc)
        return rc;
    goro__newborn *n = goro__newborn_alloc(p);
    if (!n) {
        goro__reg_free(p, slot);
        return -ENOMEM;
    }
    if (GORO__UNLIKELY(p->id_next == p->id_end)) {
        p->id_next = atomic_fetch_add_explicit(&goro__sched_.next_id, 16, memory_order_relaxed);
        p->id_end = p->id_next + 16;
    }
    uint64_t id = p->id_next++;
    goro__spawn_info *in = &n->info;
    in->fn = fn;
    in->arg = arg;
    in->parent_id = parent->base.id;
    in->scope = parent->cur_scope;
    n->name = NULL;
    if (opts) {
        in->file = opts->file;
        in->func = opts->func;
        in->line = opts->line > 0 && opts->line < (1 << 23) ? opts->line : 0;
        if (opts->name && !(n->name = strdup(opts->name))) {
            goro__newborn_free(n);
            goro__reg_free(p, slot);
            return -ENOMEM;
        }
    } else {
        in->file = in->func = NULL;
        in->line = 0;
    }
    in->npc = (uint8_t)goro__unwind_fp((uintptr_t)__builtin_frame_address(0), parent->stack_lo,
                                        parent->stack_hi, in->pc, NULL, GORO__CREATE_DEPTH);
    n->base.id = id;
    n->base.slot = slot;
    n->base.kind = GORO__KIND_NEWBORN;
    uint64_t old = goro__load_relaxed(&n->base.status);
    goro__store_release(&n->base.status, GORO__GST(GORO__GST_SEQ(old) + 1, GORO__G_RUNNABLE));
    goro__reg_set(slot, &n->base);
    goro__store_relaxed(&p->nspawned, goro__load_relaxed(&p->nspawned) + 1);
    goro__ready_new(&n->base);
    if (id_out)
        *id_out = id;
    return 0;
}

size_t goro__count_goroutines(void)
{
    uint64_t spawned = 0, exited = 0;
    for (uint32_t i = 0; i < goro__sched_.nprocs; i++) {
        goro__p *p = goro__sched_.allp[i];
        if (!p)
            continue;
        exited += goro__load_relaxed(&p->nexited);
        spawned += goro__load_relaxed(&p->nspawned);
    }
    return spawned > exited ? (size_t)(spawned - exited) : 0;
}

/* ---- snapshots ------------------------------------------------------------------ */

GORO__NO_SANITIZE static void snap_copy(goro__gbase *gb, uint64_t status, goro__gsnap *o)
{
    o->id = gb->id;
    o->state = GORO__GST_STATE(status);
    o->npc = 0;
    if (gb->kind == GORO__KIND_NEWBORN) {
        goro__newborn *n = (goro__newborn *)gb;
        o->newborn = true;
        o->wait_reason = GORO__WAIT_NONE;
        o->wait_since = 0;
        o->info = n->info;
        o->info.arg = NULL;
        o->stack_bytes = sizeof(goro__newborn);
        o->name[0] = 0;
        const char *nm = n->name;
        if (nm)
            for (size_t k = 0; k < GORO_NAME_MAX && (o->name[k] = nm[k]); k++)
                ;
        o->name[GORO_NAME_MAX - 1] = 0;
        return;
    }
    goro__g *g = (goro__g *)gb;
    o->newborn = false;
    o->wait_reason = g->wait_reason;
    o->wait_since = g->wait_since;
    o->info = g->info;
    o->info.arg = NULL;
    memcpy(o->name, g->name, GORO_NAME_MAX);
    o->stack_bytes = goro__g_stack_bytes(g, o->state);
    if (o->state == GORO__G_SYSCALL && g->wait_fp) {
        /* Frozen at goro_blocking while the call runs on the thread's
         * stack: its callers are stable. */
        o->npc = goro__unwind_fp((uintptr_t)g->wait_fp, g->stack_lo, g->stack_hi, o->pc, NULL,
                                 GORO__ARRAY_LEN(o->pc));
        return;
    }
    if (o->state == GORO__G_WAITING || o->state == GORO__G_RUNNABLE) {
        uintptr_t fps[GORO__ARRAY_LEN(o->pc)];
        uint32_t n = goro__unwind_ctx((uintptr_t)g->sp, g->stack_lo, g->stack_hi, o->pc, fps,
                                      GORO__ARRAY_LEN(o->pc));
        /* Start at the public blocking call (hide the runtime's frames). */
        uintptr_t wfp = (uintptr_t)g->wait_fp;
        uint32_t skip = 0;
        if (wfp) {
            for (uint32_t i = 0; i < n; i++)
                if (fps[i] == wfp) {
                    skip = i;
                    break;
                }
        }
        memmove(o->pc, o->pc + skip, (n - skip) * sizeof o->pc[0]);
        o->npc = n - skip;
    }
}

/* Pages from the saved stack pointer to the top (the G record shares the
 * top page); a running goroutine's depth is unknown: one page. */
GORO__NO_SANITIZE uint64_t goro__g_stack_bytes(const goro__g *g, unsigned state)
{
    uintptr_t top = GORO__ALIGN_UP(g->stack_hi + sizeof(goro__g), 4096);
    uintptr_t sp = (uintptr_t)g->sp;
    if (state != GORO__G_RUNNING && state != GORO__G_SYSCALL && sp >= g->stack_lo &&
        sp < g->stack_hi)
        return top - (sp & ~(uintptr_t)4095);
    return 4096;
}

GORO__NO_SANITIZE static void peek_copy(goro__gbase *gb, uint64_t status, goro__gpeek *o)
{
    o->id = gb->id;
    o->state = GORO__GST_STATE(status);
    o->newborn = gb->kind == GORO__KIND_NEWBORN;
    o->wait_pc = 0;
    o->timed = false;
    if (o->newborn) {
        o->wait_reason = GORO__WAIT_NONE;
        o->wait_since = 0;
        o->info = ((goro__newborn *)gb)->info;
        o->info.arg = NULL;
        o->stack_bytes = sizeof(goro__newborn);
        return;
    }
    goro__g *g = (goro__g *)gb;
    o->wait_reason = g->wait_reason;
    o->wait_since = g->wait_since;
    o->info = g->info;
    o->info.arg = NULL;
    o->stack_bytes = goro__g_stack_bytes(g, o->state);
    /* A plain read: TSan instruments atomics even here, and this copy may
     * race with the record being recycled (the status re-check discards it). */
    o->timed = *(const volatile uint32_t *)&g->timer.state != GORO__TIMER_IDLE;
    uintptr_t fp = (uintptr_t)g->wait_fp;
    if (fp >= g->stack_lo && fp + 16 <= g->stack_hi && !(fp & 7))
        o->wait_pc = ((const uintptr_t *)fp)[1];
}

bool goro__gpeek_take(uint32_t i, goro__gpeek *out)
{
    for (int attempt = 0; attempt < 100; attempt++) {
        goro__gbase *gb = goro__reg_get(i);
        if (!gb)
            return false;
        uint64_t s1 = goro__load_acquire(&gb->status);
        unsigned st = GORO__GST_STATE(s1);
        if (st == GORO__G_FREE || st == GORO__G_DEAD)
            continue;
        peek_copy(gb, s1, out);
        atomic_thread_fence(memory_order_acquire);
        if (goro__load_relaxed(&gb->status) == s1 && goro__reg_get(i) == gb)
            return true;
    }
    return false;
}

/* Iterating over 100k+ goroutines is bound by memory latency: every record
 * and the stack below it sit on their own page. Two stages, issued ahead of
 * the iteration: the record first, then (once it is cached) the saved
 * context and the wait frame it points to. Only hints: racy reads of a
 * record being recycled do no harm. */
GORO__NO_SANITIZE void goro__gsnap_prefetch(uint32_t i, int stage)
{
    goro__gbase *gb = goro__reg_get(i);
    if (!gb)
        return;
    if (stage == 0) {
        for (size_t off = 0; off < sizeof(goro__g); off += 64)
            __builtin_prefetch((const char *)gb + off);
        return;
    }
    if (gb->kind != GORO__KIND_G)
        return;
    const goro__g *g = (const goro__g *)gb;
    uintptr_t sp = (uintptr_t)*(void *const volatile *)&g->sp;
    uintptr_t fp = (uintptr_t)*(void *const volatile *)&g->wait_fp;
    uintptr_t lo = g->stack_lo, hi = g->stack_hi;
    /* The frames from the saved context up to the record (a parked
     * goroutine is usually shallow: a few hundred bytes to a few KiB). */
    if (sp >= lo && sp < hi) {
        uintptr_t end = hi - sp > 64 * 64 ? sp + 64 * 64 : hi;
        for (uintptr_t a = sp & ~(uintptr_t)63; a < end; a += 64)
            __builtin_prefetch((const void *)a);
    }
    if (fp >= lo && fp + 16 <= hi)
        __builtin_prefetch((const void *)fp);
}

bool goro__gsnap_take(uint32_t i, goro__gsnap *out)
{
    for (int attempt = 0; attempt < 1000; attempt++) {
        goro__gbase *gb = goro__reg_get(i);
        if (!gb)
            return false;
        uint64_t s1 = goro__load_acquire(&gb->status);
        unsigned st = GORO__GST_STATE(s1);
        if (st == GORO__G_FREE || st == GORO__G_DEAD)
            continue; /* in transition: the slot will be updated */
        snap_copy(gb, s1, out);
        atomic_thread_fence(memory_order_acquire);
        uint64_t s2 = goro__load_relaxed(&gb->status);
        if (s1 == s2 && goro__reg_get(i) == gb)
            return true;
        goro__cpu_relax();
    }
    return false;
}

void goro__g_regions(goro__range_fn fn, void *arg)
{
    for (uint32_t c = 0; c < REG_MAX_CHUNKS; c++) {
        void *mem = goro__load_relaxed(&reg.chunks[c]);
        if (mem)
            fn((uintptr_t)mem, (uintptr_t)mem + REG_CHUNK * sizeof(void *), arg);
    }
    if (nb.mapping)
        fn((uintptr_t)nb.mapping, (uintptr_t)nb.mapping + nb.mapping_len, arg);
}

/* ---- teardown ------------------------------------------------------------------- */

/* Runtime shutdown, single-threaded: detach abandoned goroutines from the
 * primitives they wait on (so a later run never finds stale waiters) and
 * drop the channel references their waits hold. */
void goro__g_teardown_all(void)
{
    uint32_t lim = goro__reg_limit();
    for (uint32_t i = 0; i < lim; i++) {
        goro__gbase *gb = goro__reg_get(i);
        if (!gb || gb->kind != GORO__KIND_G)
            continue;
        goro__g *g = (goro__g *)gb;
        /* Waiting goroutines, and goroutines woken but never run again (a
         * select woken by one case still has its other waiters queued:
         * only their owner removes those, chan_internal.h). A waiter its
         * waker already unqueued is not touched: its object may be gone. */
        for (uint32_t k = 0; k < g->nwaiting; k++) {
            goro__waiter *w = &g->waiting[k];
            if (!w->q || !w->lock)
                continue;
            goro__spin_lock(w->lock);
            bool queued = w->q != NULL;
            if (queued)
                goro__waitq_remove(w->q, w);
            goro__spin_unlock(w->lock);
            if (queued && w->drop)
                w->drop(w);
        }
        goro__san_fiber_destroy(g->tsan_fiber);
        g->tsan_fiber = NULL;
    }
}

void goro__g_subsystem_fini(void)
{
    for (uint32_t c = 0; c < REG_MAX_CHUNKS; c++) {
        void *mem = goro__load_relaxed(&reg.chunks[c]);
        if (mem)
            munmap(mem, REG_CHUNK * sizeof(void *));
    }
    free(reg.free);
    free(nb.cold);
    if (nb.mapping)
        munmap(nb.mapping, nb.mapping_len);
    memset(&reg, 0, sizeof reg);
    memset(&nb, 0, sizeof nb);
}
