/*
 * stack.c - goroutine stacks.
 *
 * Owns: stack memory and the G records that live at the top of each stack.
 *
 * Constraints measured on this kind of machine (ARCHITECTURE.md section 3):
 * a PROT_NONE guard page per stack splits VMAs and stops at ~32k stacks
 * under the default vm.max_map_count; page faults are expensive (~2 us).
 * So stacks are fixed-size slots carved from 1 GiB MAP_NORESERVE regions
 * (MADV_NOHUGEPAGE, so a touched stack costs 4 KiB, not 2 MiB), and:
 *  - guards, in layers: MADV_GUARD_INSTALL (Linux 6.13+; no VMA split,
 *    survives MADV_DONTNEED) when the kernel has it; else mprotect guards
 *    while a VMA budget derived from max_map_count lasts; else a canary word
 *    at the low end, checked at every switch away from the goroutine. A fault
 *    in a guard is reported by the SIGSEGV handler (signals.c) as
 *    "goroutine N (created at FILE:LINE) overflowed its stack".
 *  - recycling: each P caches up to 64 free stacks (hot: their top page is
 *    resident, so the next goroutine starts without a page fault); the rest
 *    go back to per-region bitmaps: `dirty` (free, maybe resident) and
 *    `clean` (free, returned to the OS). Allocation prefers dirty slots.
 *  - returning memory: sysmon calls goro__stack_scavenge, which hands all
 *    but GORO__STACK_KEEP dirty slots to the OS with MADV_DONTNEED, in runs
 *    of adjacent slots (one call per run), without holding the lock while
 *    the kernel works. RSS falls back after a burst of goroutines exits.
 *
 * Locking: st.lock (futex mutex) protects the region table and the
 * dirty/clean bitmaps and counters. `guarded` bits are set with atomic OR by
 * the thread that owns the slot. Per-P caches are owner-only.
 */
#include "runtime/sched.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "runtime/vg.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#define REGION_BYTES (1ull << 30)
#define MAX_REGIONS 4096
#define REFILL 32
#define GORO__STACK_KEEP 1024
#define CANARY 0x676f726f2d73746bull /* "goro-stk"; also in sched.h */

enum { GUARD_MADV = 0, GUARD_MPROTECT = 1 };

typedef struct region {
    char *base;
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
    int mode;
    _Atomic long mprotect_budget;
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

int goro__stack_init(size_t stack_size)
{
    memset(&st, 0, sizeof st);
    st.page = (size_t)sysconf(_SC_PAGESIZE);
    st.stack_size = stack_size;
    st.gsize = GORO__ALIGN_UP(sizeof(goro__g), GORO__CACHELINE);
    st.guard = st.page;
    st.per_region = (uint32_t)(REGION_BYTES / stack_size);
    if (RUNNING_ON_VALGRIND || !probe_guard_install()) {
        st.mode = GUARD_MPROTECT;
        atomic_store(&st.mprotect_budget, vma_budget());
    } else {
        st.mode = GUARD_MADV;
    }
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
        munmap(r->base, (size_t)r->nslots * st.stack_size);
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
    char *base = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED)
        return NULL;
    madvise(base, bytes, MADV_NOHUGEPAGE);
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
        munmap(base, bytes);
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

/* Locked: take one slot out of `bits` (dirty or clean) of some region. */
static bool take_from(bool dirty, uint32_t *ri, uint32_t *si)
{
    uint32_t n = goro__load_relaxed(&st.nregions);
    for (uint32_t k = dirty ? st.hint : 0; k < n; k++) {
        region *r = st.regions[k];
        uint64_t *bits = dirty ? r->dirty : r->clean;
        for (uint32_t w = 0; w < r->nwords; w++) {
            if (bits[w]) {
                int b = __builtin_ctzll(bits[w]);
                bits[w] &= bits[w] - 1;
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

/* First use of a slot by its new owner: guard it and describe it. */
static goro__g *prepare_slot(uint32_t ri, uint32_t idx)
{
    region *r = st.regions[ri];
    char *lo = r->base + (size_t)idx * st.stack_size;
    goro__g *g = slot_g(r, idx);
    uint64_t bit = 1ull << (idx % 64);
    if (!(goro__load_relaxed(&r->guarded[idx / 64]) & bit)) {
        bool canary = false;
        if (st.mode == GUARD_MADV) {
            if (madvise(lo, st.guard, MADV_GUARD_INSTALL) != 0)
                canary = true;
        } else if (atomic_fetch_sub(&st.mprotect_budget, 1) > 0) {
            if (mprotect(lo, st.guard, PROT_NONE) != 0)
                canary = true;
        } else {
            canary = true;
        }
        if (canary)
            atomic_fetch_or(&r->canary[idx / 64], bit);
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
    goro__mutex_lock(&st.lock);
    while (n < REFILL) {
        if (st.ndirty && take_from(true, &ri[n], &si[n])) {
            n++;
            continue;
        }
        if (!st.nclean && !new_region())
            break;
        if (!take_from(false, &ri[n], &si[n]))
            break;
        n++;
    }
    goro__mutex_unlock(&st.lock);
    for (uint32_t i = 0; i < n; i++)
        p->scache[p->nscache++] = prepare_slot(ri[i], si[i]);
    return n;
}

goro__g *goro__stack_alloc(goro__p *p)
{
    if (GORO__UNLIKELY(p->nscache == 0) && refill(p) == 0)
        return NULL;
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
        fn((uintptr_t)r->base, (uintptr_t)r->base + (uintptr_t)r->nslots * st.stack_size, arg);
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


static size_t fmt_u64(char *buf, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    return n;
}

static size_t append(char *buf, size_t at, size_t cap, const char *s)
{
    while (*s && at < cap)
        buf[at++] = *s++;
    return at;
}

/* Async-signal-safe: called from the SIGSEGV handler. */
void goro__stack_overflow_report(goro__g *g)
{
    char buf[512], num[24];
    size_t n = 0, cap = sizeof buf;
    n = append(buf, n, cap, "goroutine ");
    num[fmt_u64(num, g->base.id)] = 0;
    n = append(buf, n, cap, num);
    n = append(buf, n, cap, " (created at ");
    if (g->info.file) {
        n = append(buf, n, cap, g->info.file);
        n = append(buf, n, cap, ":");
        num[fmt_u64(num, (uint64_t)(g->info.line > 0 ? g->info.line : 0))] = 0;
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
    num[fmt_u64(num, (uint64_t)(g->stack_hi - g->stack_lo))] = 0;
    n = append(buf, n, cap, num);
    n = append(buf, n, cap, " bytes\nfatal error: stack overflow\n");
    goro__write_all(2, buf, n);
    _exit(2);
}
