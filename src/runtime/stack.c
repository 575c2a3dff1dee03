/*
 * stack.c - goroutine stacks.
 *
 * Owns: stack memory and the G records that live at the top of each stack.
 *
 * Constraints measured on this kind of machine (docs/constraints.md):
 * a PROT_NONE guard page per stack splits VMAs and stops at ~32k stacks
 * under the default vm.max_map_count; page faults are expensive (~2 us).
 * So stacks are fixed-size slots carved from 1 GiB MAP_NORESERVE regions
 * (MADV_NOHUGEPAGE, so a touched stack costs 4 KiB, not 2 MiB). A slot,
 * from low to high addresses: one guard page, the stack (it grows down),
 * the G record. An overflow runs away from the goroutine's own record,
 * towards the record and outermost frames of the slot below: that is what
 * the guard page is for (docs/stacks.md).
 *  - guards, in layers: MADV_GUARD_INSTALL (Linux 6.13+; no VMA split,
 *    survives MADV_DONTNEED) when the kernel has it; else mprotect guards
 *    while a VMA budget derived from max_map_count lasts (~24k stacks by
 *    default); else the guard page stays ordinary memory (a 4 KiB dead zone)
 *    and a canary word at the stack's low end is checked at every switch
 *    away from the goroutine. The first canary-only stack prints a warning.
 *    Each region also has a guard page below its first slot (+1 VMA per
 *    1 GiB region with mprotect, none with MADV_GUARD_INSTALL), so a runaway
 *    overflow of a canary-only stack faults there at the latest instead of
 *    running on into unrelated mappings (thread stacks, heap).
 *    A fault in a guard is reported by the SIGSEGV handler (signals.c) as
 *    "goroutine N (created at FILE:LINE) overflowed its stack"; the handler
 *    blames the running goroutine whose stack pointer is below its stack
 *    (goro__stack_fault_culprit), not the owner of the page that was hit.
 *  - GORO_STACK_GUARD (parse_guard_env, docs/stacks.md) selects the layers:
 *    "strict" never hands out a stack without a guard page (the allocation
 *    fails instead: a fatal error), "mprotect" skips MADV_GUARD_INSTALL,
 *    "canary" installs no per-stack guard, "max=N" caps the guarded stacks.
 *  - recycling: each P caches up to 64 free stacks (hot: their top page is
 *    resident, so the next goroutine starts without a page fault); the rest
 *    go back to per-region bitmaps: `dirty` (free, maybe resident) and
 *    `clean` (free, returned to the OS). Allocation prefers dirty slots.
 *    A slot keeps its guard (or its lack of one) for the life of the region.
 *  - returning memory: sysmon calls goro__stack_scavenge, which hands all
 *    but GORO__STACK_KEEP dirty slots to the OS with MADV_DONTNEED, in runs
 *    of adjacent slots (one call per run), without holding the lock while
 *    the kernel works. RSS falls back after a burst of goroutines exits.
 *
 * Locking: st.lock (futex mutex) protects the region table, the dirty/clean
 * bitmaps and counters, and guard reservations (st.budget is decremented
 * only under it). `guarded`/`canary` bits are set with atomic OR by the
 * thread that owns the slot. Per-P caches are owner-only.
 */
#define GORO__MUTEX_RANK GORO__RANK_ALLOC
#include "runtime/sched.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "runtime/fork.h"
#include "runtime/sanitizer.h"
#include "runtime/vg.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#define REGION_BYTES (1ull << 30)
#define MAX_REGIONS 4096
#define REFILL 32
#define GORO__STACK_KEEP 1024
#define CANARY 0x676f726f2d73746bull /* "goro-stk"; also in sched.h */

/* How per-stack guards are made. */
enum { GUARD_MADV = 0, GUARD_MPROTECT = 1, GUARD_NONE = 2 };

typedef struct region {
    char *base;       /* first slot; a guard page lies just below it */
    uint32_t nslots;
    uint32_t nwords;
    uint64_t *dirty;
    uint64_t *clean;
    _Atomic uint64_t *guarded; /* slot described (and guarded if possible) */
    _Atomic uint64_t *canary;  /* slot has no guard page: canary checked */
    unsigned *vg_ids;
} region;

static struct {
    goro__mutex lock;
    region *regions[MAX_REGIONS];
    _Atomic uint32_t nregions;
    size_t stack_size;
    size_t gsize;   /* G record, rounded to a cache line */
    size_t guard;   /* guard bytes at the low end of a slot */
    uint32_t per_region;
    uint32_t ndirty, nclean;
    uint32_t hint;  /* first region that may have dirty slots */
    int mode;       /* GUARD_* */
    bool have_madv; /* MADV_GUARD_INSTALL works (also used for region guards) */
    bool strict;    /* never hand out a stack without a guard page */
    _Atomic long budget;            /* guards still allowed; LONG_MAX: no cap */
    _Atomic long nguarded, ncanary; /* slots described with / without a guard */
    size_t page;
} st;

static bool probe_guard_install(void)
{
    size_t pg = st.page;
    void *p = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED)
        return false;
    bool ok = madvise(p, pg, MADV_GUARD_INSTALL) == 0;
    munmap(p, 2 * pg);
    return ok;
}

static long vma_budget(void)
{
    long max = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    if (f) {
        if (fscanf(f, "%ld", &max) != 1)
            max = 65530;
        fclose(f);
    }
    long cur = 0;
    f = fopen("/proc/self/maps", "r");
    if (f) {
        int c;
        while ((c = fgetc(f)) != EOF)
            cur += (c == '\n');
        fclose(f);
    }
    /* Each guard in the middle of a region adds two VMAs; keep a quarter of
     * the limit for the program's own mappings. */
    long budget = (max * 3 / 4 - cur) / 2;
    return budget > 0 ? budget : 0;
}

/* GORO_STACK_GUARD: comma-separated words (docs/stacks.md):
 *   auto      the default layers (MADV_GUARD_INSTALL, else mprotect while
 *             the VMA budget lasts, else a canary)
 *   mprotect  skip MADV_GUARD_INSTALL (behave as on a kernel before 6.13)
 *   canary    no per-stack guard pages at all (testing; weakest detection)
 *   strict    never hand out a stack without a guard page: once none can be
 *             installed, allocating a stack fails (a fatal error)
 *   max=N     at most N stacks get a guard page (to test the fallbacks)
 * Sets *mode, *strict and *max (left alone when not given); -EINVAL, with a
 * message on stderr, for anything else. */
static int parse_guard_env(int *mode, bool *strict, long *max)
{
    const char *v = getenv("GORO_STACK_GUARD");
    if (!v || !*v)
        return 0;
    char buf[128];
    if (strlen(v) >= sizeof buf)
        goto bad;
    strcpy(buf, v);
    for (char *save = NULL, *w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
        if (strcmp(w, "auto") == 0) {
            /* the default */
        } else if (strcmp(w, "mprotect") == 0) {
            *mode = GUARD_MPROTECT;
        } else if (strcmp(w, "canary") == 0) {
            *mode = GUARD_NONE;
        } else if (strcmp(w, "strict") == 0) {
            *strict = true;
        } else if (strncmp(w, "max=", 4) == 0 && w[4] >= '0' && w[4] <= '9') {
            char *end;
            errno = 0;
            long long n = strtoll(w + 4, &end, 10);
            if (errno || *end || n > LONG_MAX / 2)
                goto bad;
            *max = (long)n;
        } else {
            goto bad;
        }
    }
    if (*strict && *mode == GUARD_NONE)
        goto bad;
    return 0;
bad:
    fprintf(stderr, "goro: GORO_STACK_GUARD must be a comma-separated list of auto, mprotect, "
                    "canary, strict and max=N (not both canary and strict), not '%s'\n",
            v);
    return -EINVAL;
}

int goro__stack_init(size_t stack_size)
{
    /* goro_run's first fallible step: in the child of a fork made while the
     * runtime ran, refuse before touching anything (fork.c). */
    if (goro__fork_in_child())
        return -ECHILD;
    memset(&st, 0, sizeof st);
    st.page = (size_t)sysconf(_SC_PAGESIZE);
    st.stack_size = stack_size;
    st.gsize = GORO__ALIGN_UP(sizeof(goro__g), GORO__CACHELINE);
    st.guard = st.page;
    st.per_region = (uint32_t)(REGION_BYTES / stack_size);
    int mode = GUARD_MADV;
    long max = -1;
    int rc = parse_guard_env(&mode, &st.strict, &max);
    if (rc)
        return rc;
    st.have_madv = !RUNNING_ON_VALGRIND && probe_guard_install();
    if (mode == GUARD_MADV && !st.have_madv)
        mode = GUARD_MPROTECT;
    st.mode = mode;
    long budget = mode == GUARD_MPROTECT ? vma_budget() : mode == GUARD_MADV ? LONG_MAX : 0;
    if (max >= 0 && max < budget)
        budget = max;
    atomic_store(&st.budget, budget);
    return 0;
}

void goro__stack_fini(void)
{
    uint32_t n = atomic_load(&st.nregions);
    for (uint32_t i = 0; i < n; i++) {
        region *r = st.regions[i];
        if (r->vg_ids) {
            for (uint32_t j = 0; j < r->nslots; j++)
                if (r->vg_ids[j])
                    VALGRIND_STACK_DEREGISTER(r->vg_ids[j]);
            free(r->vg_ids);
        }
        goro__san_unmap_reset(r->base - st.page, (size_t)r->nslots * st.stack_size + st.page);
        munmap(r->base - st.page, (size_t)r->nslots * st.stack_size + st.page);
        size_t nwords = ((size_t)st.per_region + 63) / 64 * 8;
        goro__free_wiped(r->dirty, nwords);
        goro__free_wiped(r->clean, nwords);
        goro__free_wiped((void *)r->guarded, nwords);
        goro__free_wiped((void *)r->canary, nwords);
        goro__free_wiped(r, sizeof *r);
        st.regions[i] = NULL;
    }
    atomic_store(&st.nregions, 0);
}

/* Locked. */
static region *new_region(void)
{
    uint32_t n = goro__load_relaxed(&st.nregions);
    if (n == MAX_REGIONS)
        return NULL;
    size_t bytes = (size_t)st.per_region * st.stack_size;
    char *map = mmap(NULL, bytes + st.page, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (map == MAP_FAILED)
        return NULL;
    char *base = map + st.page;
    madvise(map, bytes + st.page, MADV_NOHUGEPAGE); /* all of it: one VMA */
    /* The region guard, whatever the slots have: an overflow that runs off
     * the bottom of the region faults here. */
    if (!(st.have_madv && madvise(map, st.page, MADV_GUARD_INSTALL) == 0) &&
        mprotect(map, st.page, PROT_NONE) != 0) {
        munmap(map, bytes + st.page);
        return NULL;
    }
    region *r = calloc(1, sizeof *r);
    uint32_t nwords = (st.per_region + 63) / 64;
    if (r) {
        r->dirty = calloc(nwords, 8);
        r->clean = calloc(nwords, 8);
        r->guarded = calloc(nwords, 8);
        r->canary = calloc(nwords, 8);
        if (RUNNING_ON_VALGRIND)
            r->vg_ids = calloc(st.per_region, sizeof(unsigned));
    }
    if (!r || !r->dirty || !r->clean || !r->guarded || !r->canary ||
        (RUNNING_ON_VALGRIND && !r->vg_ids)) {
        if (r) {
            free(r->dirty);
            free(r->clean);
            free((void *)r->guarded);
            free((void *)r->canary);
            free(r->vg_ids);
            free(r);
        }
        munmap(map, bytes + st.page);
        return NULL;
    }
    r->base = base;
    r->nslots = st.per_region;
    r->nwords = nwords;
    for (uint32_t i = 0; i < st.per_region; i++)
        r->clean[i / 64] |= 1ull << (i % 64);
    st.nclean += st.per_region;
    st.regions[n] = r;
    goro__store_release(&st.nregions, n + 1);
    return r;
}

/* Locked: take one slot out of `bits` (dirty or clean) of some region.
 * only_guarded: only a slot that has a guard page already (a clean slot that
 * was in use before). */
static bool take_from(bool dirty, bool only_guarded, uint32_t *ri, uint32_t *si)
{
    uint32_t n = goro__load_relaxed(&st.nregions);
    for (uint32_t k = dirty ? st.hint : 0; k < n; k++) {
        region *r = st.regions[k];
        uint64_t *bits = dirty ? r->dirty : r->clean;
        for (uint32_t w = 0; w < r->nwords; w++) {
            uint64_t avail = bits[w];
            if (only_guarded)
                avail &= goro__load_relaxed(&r->guarded[w]) & ~goro__load_relaxed(&r->canary[w]);
            if (avail) {
                int b = __builtin_ctzll(avail);
                bits[w] &= ~(1ull << b);
                *ri = k;
                *si = w * 64 + (uint32_t)b;
                if (dirty) {
                    st.ndirty--;
                    st.hint = k;
                } else {
                    st.nclean--;
                }
                return true;
            }
        }
        if (dirty && k == st.hint)
            st.hint = k + 1 < n ? k + 1 : 0;
    }
    return false;
}

static goro__g *slot_g(region *r, uint32_t idx)
{
    char *end = r->base + (size_t)(idx + 1) * st.stack_size;
    return (goro__g *)(end - st.gsize);
}

static void announce_canary(void)
{
    if (st.mode == GUARD_NONE)
        return; /* asked for with GORO_STACK_GUARD=canary */
    char buf[400];
    int n = snprintf(buf, sizeof buf,
                     "goro: no guard page left for another goroutine stack (%ld stacks have one; "
                     "the limit comes from vm.max_map_count or GORO_STACK_GUARD max=): further "
                     "stacks get only a canary, and an overflow of one may corrupt another "
                     "goroutine before it is reported (GORO_STACK_GUARD=strict refuses such "
                     "stacks instead; see docs/stacks.md)\n",
                     atomic_load(&st.nguarded));
    if (n > 0)
        goro__write_all(2, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* First use of a slot by its new owner: guard it (want_guard: refill
 * reserved a guard for it) and describe it. NULL only in strict mode when
 * the guard could not be installed: the slot then stays out of every free
 * list. */
static goro__g *prepare_slot(uint32_t ri, uint32_t idx, bool want_guard)
{
    region *r = st.regions[ri];
    char *lo = r->base + (size_t)idx * st.stack_size;
    goro__g *g = slot_g(r, idx);
    uint64_t bit = 1ull << (idx % 64);
    if (!(goro__load_relaxed(&r->guarded[idx / 64]) & bit)) {
        bool canary = !want_guard;
        if (want_guard) {
            int rc = st.mode == GUARD_MADV ? madvise(lo, st.guard, MADV_GUARD_INSTALL)
                                           : mprotect(lo, st.guard, PROT_NONE);
            if (rc != 0) {
                canary = true;
                if (st.mode == GUARD_MPROTECT)
                    atomic_store(&st.budget, 0); /* out of VMAs: stop trying */
            }
        }
        if (canary && st.strict)
            return NULL;
        if (canary) {
            atomic_fetch_or(&r->canary[idx / 64], bit);
            if (atomic_fetch_add(&st.ncanary, 1) == 0)
                announce_canary();
        } else {
            atomic_fetch_add(&st.nguarded, 1);
        }
        if (r->vg_ids)
            r->vg_ids[idx] = VALGRIND_STACK_REGISTER(lo + st.guard, (char *)g);
        atomic_fetch_or(&r->guarded[idx / 64], bit);
    }
    /* The slot description lives in the record; a scavenged slot reads back
     * as zeroes, so (re)write it whenever it is handed out. */
    if (g->stack_hi != (uintptr_t)g) {
        g->stack_lo = (uintptr_t)lo + st.guard;
        g->stack_hi = (uintptr_t)g;
        g->stack_region = ri;
        g->stack_index = idx;
        g->stack_canary = (goro__load_relaxed(&r->canary[idx / 64]) & bit) != 0;
    }
    if (g->stack_canary)
        *(volatile uint64_t *)g->stack_lo = CANARY;
    return g;
}

static uint32_t refill(goro__p *p)
{
    uint32_t ri[REFILL], si[REFILL], n = 0;
    bool guard[REFILL];
    goro__mutex_lock(&st.lock);
    while (n < REFILL) {
        if (st.ndirty && take_from(true, false, &ri[n], &si[n])) {
            guard[n++] = false; /* described before: keeps what it has */
            continue;
        }
        /* Strict with no guard left: only slots that have one already. */
        bool only_guarded = st.strict && atomic_load(&st.budget) <= 0;
        if (!only_guarded && !st.nclean && !new_region())
            break;
        if (!take_from(false, only_guarded, &ri[n], &si[n]))
            break;
        region *r = st.regions[ri[n]];
        uint64_t bit = 1ull << (si[n] % 64);
        bool fresh = !(goro__load_relaxed(&r->guarded[si[n] / 64]) & bit);
        long b = atomic_load(&st.budget);
        guard[n] = fresh && b > 0;
        if (guard[n] && b != LONG_MAX)
            atomic_fetch_sub(&st.budget, 1);
        if (fresh && !guard[n] && st.strict) { /* put it back; look again */
            r->clean[si[n] / 64] |= bit;
            st.nclean++;
            continue;
        }
        n++;
    }
    goro__mutex_unlock(&st.lock);
    uint32_t got = 0;
    for (uint32_t i = 0; i < n; i++) {
        goro__g *g = prepare_slot(ri[i], si[i], guard[i]);
        if (g) {
            p->scache[p->nscache++] = g;
            got++;
        }
    }
    return got;
}

goro__g *goro__stack_alloc(goro__p *p)
{
    if (GORO__UNLIKELY(p->nscache == 0) && refill(p) == 0) {
        if (st.strict) {
            char buf[320];
            int n = snprintf(buf, sizeof buf,
                             "goro: GORO_STACK_GUARD=strict: no free goroutine stack has a guard "
                             "page (%ld stacks have one; the limit comes from vm.max_map_count or "
                             "max=) and strict mode hands out no stack without one\n",
                             atomic_load(&st.nguarded));
            if (n > 0)
                goro__write_all(2, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
        }
        return NULL;
    }
    return p->scache[--p->nscache];
}

static void release_to_global(goro__g **gs, uint32_t n)
{
    goro__mutex_lock(&st.lock);
    for (uint32_t i = 0; i < n; i++) {
        goro__g *g = gs[i];
        region *r = st.regions[g->stack_region];
        r->dirty[g->stack_index / 64] |= 1ull << (g->stack_index % 64);
        if (g->stack_region < st.hint)
            st.hint = g->stack_region;
    }
    st.ndirty += n;
    goro__mutex_unlock(&st.lock);
}

void goro__stack_free(goro__p *p, goro__g *g)
{
    if (GORO__UNLIKELY(p->nscache == GORO__STACK_CACHE)) {
        uint32_t half = GORO__STACK_CACHE / 2;
        p->nscache -= half;
        release_to_global(&p->scache[p->nscache], half);
    }
    p->scache[p->nscache++] = g;
}

void goro__stack_flush_cache(goro__p *p)
{
    release_to_global(p->scache, p->nscache);
    p->nscache = 0;
}

void goro__stack_scavenge(void)
{
    enum { BATCH = 256 };
    struct { uint32_t r, w; uint64_t bits; } take[BATCH];
    for (;;) {
        uint32_t n = 0;
        goro__mutex_lock(&st.lock);
        uint32_t nr = goro__load_relaxed(&st.nregions);
        for (uint32_t k = 0; k < nr && n < BATCH && st.ndirty > GORO__STACK_KEEP; k++) {
            region *r = st.regions[k];
            for (uint32_t w = 0; w < r->nwords && n < BATCH && st.ndirty > GORO__STACK_KEEP; w++) {
                uint64_t b = r->dirty[w];
                if (!b)
                    continue;
                uint32_t cnt = (uint32_t)__builtin_popcountll(b);
                uint32_t excess = st.ndirty - GORO__STACK_KEEP;
                while (cnt > excess) { /* leave some bits dirty */
                    b &= b - 1;
                    cnt--;
                }
                r->dirty[w] &= ~b;
                st.ndirty -= cnt;
                take[n].r = k;
                take[n].w = w;
                take[n].bits = b;
                n++;
            }
        }
        goro__mutex_unlock(&st.lock);
        if (n == 0)
            return;
        for (uint32_t i = 0; i < n; i++) {
            region *r = st.regions[take[i].r];
            uint64_t b = take[i].bits;
            while (b) {
                uint32_t start = (uint32_t)__builtin_ctzll(b);
                uint64_t rest = b >> start;
                uint32_t len = (rest == ~0ull) ? 64 : (uint32_t)__builtin_ctzll(~rest);
                size_t first = (size_t)take[i].w * 64 + start;
                /* Keep the guard page's marker: MADV_DONTNEED preserves
                 * MADV_GUARD_INSTALL markers and PROT_NONE pages alike. */
                madvise(r->base + first * st.stack_size, (size_t)len * st.stack_size,
                        MADV_DONTNEED);
                b &= ~(len == 64 ? ~0ull : (((1ull << len) - 1) << start));
            }
        }
        goro__mutex_lock(&st.lock);
        for (uint32_t i = 0; i < n; i++) {
            region *r = st.regions[take[i].r];
            r->clean[take[i].w] |= take[i].bits;
            st.nclean += (uint32_t)__builtin_popcountll(take[i].bits);
        }
        goro__mutex_unlock(&st.lock);
    }
}

void goro__stack_regions(goro__range_fn fn, void *arg)
{
    uint32_t n = goro__load_acquire(&st.nregions);
    for (uint32_t k = 0; k < n; k++) {
        region *r = st.regions[k];
        /* With the region's guard page: it must not be read as heap. */
        fn((uintptr_t)r->base - st.page, (uintptr_t)r->base + (uintptr_t)r->nslots * st.stack_size,
           arg);
    }
}

goro__g *goro__stack_owner(uintptr_t addr)
{
    uint32_t n = goro__load_acquire(&st.nregions);
    for (uint32_t k = 0; k < n; k++) {
        region *r = st.regions[k];
        uintptr_t base = (uintptr_t)r->base;
        if (addr >= base && addr < base + (uintptr_t)r->nslots * st.stack_size)
            return slot_g(r, (uint32_t)((addr - base) / st.stack_size));
    }
    return NULL;
}

goro__g *goro__stack_overflow_owner(uintptr_t addr)
{
    uint32_t n = goro__load_acquire(&st.nregions);
    for (uint32_t k = 0; k < n; k++) {
        region *r = st.regions[k];
        uintptr_t base = (uintptr_t)r->base;
        if (addr < base || addr >= base + (uintptr_t)r->nslots * st.stack_size)
            continue;
        uint32_t idx = (uint32_t)((addr - base) / st.stack_size);
        uintptr_t lo = base + (uintptr_t)idx * st.stack_size;
        if (addr < lo + st.guard + st.page)
            return slot_g(r, idx);
        return NULL;
    }
    return NULL;
}

/* Async-signal-safe. The slot whose record is g, from the region table
 * alone (g's own fields may have been overwritten): false if g is not the
 * record of a slot. */
static bool slot_of(const goro__g *g, uint32_t *ri, uint32_t *idx)
{
    uintptr_t a = (uintptr_t)g;
    uint32_t n = goro__load_acquire(&st.nregions);
    for (uint32_t k = 0; k < n; k++) {
        region *r = st.regions[k];
        uintptr_t base = (uintptr_t)r->base;
        if (a < base || a >= base + (uintptr_t)r->nslots * st.stack_size)
            continue;
        uint32_t i = (uint32_t)((a - base) / st.stack_size);
        if (slot_g(r, i) != g)
            return false;
        *ri = k;
        *idx = i;
        return true;
    }
    return false;
}

/* Async-signal-safe (the SIGSEGV handler). Which goroutine overflowed its
 * stack, if the fault at addr, taken with stack pointer sp by the thread
 * that was running cur (NULL: none), is a stack overflow:
 *  - cur, if addr is in cur's guard page or lowest page, or if sp is below
 *    cur's stack (in its guard page, in a slot below after a canary-only
 *    stack ran over, or in the guard page below the region) but not
 *    further down than a stack's size below the region;
 *  - NULL if cur is on its stack and touched another stack's guard page:
 *    a wild pointer, not an overflow;
 *  - without cur (no goroutine on this thread): the owner of the guard page
 *    or lowest page that addr is in, if any.
 * Bounds come from the region table, not from cur's record (an overflow of
 * another stack may have overwritten it). The caller has ruled out that sp
 * is on the thread's own stack or the signal stack (goro_blocking runs C
 * code there while cur is set). */
goro__g *goro__stack_fault_culprit(goro__g *cur, uintptr_t sp, uintptr_t addr)
{
    goro__g *owner = goro__stack_overflow_owner(addr);
    uint32_t ri, idx;
    if (!cur || !slot_of(cur, &ri, &idx))
        return cur ? NULL : owner;
    if (owner == cur)
        return cur;
    uintptr_t base = (uintptr_t)st.regions[ri]->base;
    uintptr_t lo = base + (uintptr_t)idx * st.stack_size + st.guard;
    uintptr_t floor = base > st.page + st.stack_size ? base - st.page - st.stack_size : 0;
    return sp < lo && sp >= floor ? cur : NULL;
}

/* Async-signal-safe (the SIGSEGV handler, after a fault that is not an
 * overflow of the faulting goroutine): a goroutine running on some thread
 * whose canary-only stack has its canary overwritten, or NULL. Such a
 * goroutine is overflowing now, and the fault is likely damage it did to a
 * neighbouring stack or record. Only the region table is trusted. */
GORO__NO_SANITIZE goro__g *goro__stack_overrun_running(void)
{
    for (goro__m *m = goro__sched_.allm; m; m = m->alllink) {
        goro__g *g = *(goro__g *volatile *)&m->curg;
        uint32_t ri, idx;
        if (!g || !slot_of(g, &ri, &idx))
            continue;
        region *r = st.regions[ri];
        if (!(goro__load_relaxed(&r->canary[idx / 64]) & (1ull << (idx % 64))))
            continue; /* guarded: it faults in its own guard page first */
        uintptr_t lo = (uintptr_t)r->base + (uintptr_t)idx * st.stack_size + st.guard;
        if (*(volatile uint64_t *)lo != CANARY)
            return g;
    }
    return NULL;
}



static size_t append(char *buf, size_t at, size_t cap, const char *s)
{
    while (*s && at < cap)
        buf[at++] = *s++;
    return at;
}

/* Async-signal-safe: called from the SIGSEGV handler and from the switch
 * that found a canary overwritten. */
void goro__stack_overflow_report(goro__g *g)
{
    char buf[768], num[24];
    size_t n = 0, cap = sizeof buf;
    n = append(buf, n, cap, "goroutine ");
    num[goro__fmt_u64(num, g->base.id)] = 0;
    n = append(buf, n, cap, num);
    n = append(buf, n, cap, " (created at ");
    if (g->info.file) {
        n = append(buf, n, cap, g->info.file);
        n = append(buf, n, cap, ":");
        num[goro__fmt_u64(num, (uint64_t)(g->info.line > 0 ? g->info.line : 0))] = 0;
        n = append(buf, n, cap, num);
        if (g->info.func) {
            n = append(buf, n, cap, " in ");
            n = append(buf, n, cap, g->info.func);
        }
    } else {
        n = append(buf, n, cap, "pc 0x");
        uintptr_t pc = g->info.npc ? g->info.pc[0] : (uintptr_t)g->info.fn;
        char hex[17];
        for (int i = 15; i >= 0; i--) {
            hex[i] = "0123456789abcdef"[pc & 15];
            pc >>= 4;
        }
        hex[16] = 0;
        n = append(buf, n, cap, hex);
    }
    n = append(buf, n, cap, ") overflowed its stack of ");
    num[goro__fmt_u64(num, (uint64_t)(g->stack_hi - g->stack_lo))] = 0;
    n = append(buf, n, cap, num);
    n = append(buf, n, cap, " bytes\n");
    if (g->stack_canary)
        n = append(buf, n, cap,
                   "goro: this stack had no guard page, only a canary (see docs/stacks.md): "
                   "the memory below it, other goroutines' stacks and records, may have been "
                   "overwritten\n");
    n = append(buf, n, cap, "fatal error: stack overflow\n");
    goro__write_all(2, buf, n);
    _exit(2);
}
