/*
 * heapmap.c - the malloc heap's live blocks for the leak scan's mark phase.
 *
 * Why walk the allocator: the mark phase must know where each heap block
 * begins and ends (a word pointing into a block marks the block, and only a
 * marked block's contents are scanned). goro's malloc interposer forwards
 * to glibc, so the blocks are glibc's chunks plus the heap profiler's
 * sampled blocks. Tracking every live block in the interposer would put a
 * hash-table update on every malloc and free (the hot path today is one
 * thread-local subtraction); replacing the allocator (mimalloc) would
 * change every user's malloc for the sake of a diagnostic. Walking glibc's
 * chunk headers costs nothing until a scan runs, and the scan stops the
 * world anyway. What glibc's layout gives (2.36, x86-64):
 *  - a chunk is [prev_size][size | flags][user data...]; the next chunk
 *    follows at chunk + size; a chunk is in use when the next chunk's
 *    PREV_INUSE bit is set. Chunks sit in the main arena ([heap], from
 *    start_brk in /proc/self/stat), in 64 MiB-aligned heaps of the other
 *    arenas (heap_info first, then chunks up to heap_info.size; fenceposts
 *    of 16 and 0 bytes end a heap that was extended by a new one), or alone
 *    in a mapping of their own (IS_MMAPPED, prev_size 0 at the mapping's
 *    start);
 *  - chunks in the tcache look in use (PREV_INUSE stays set) but carry
 *    glibc's per-process tcache key in their second word; the key is learnt
 *    once by freeing two probe blocks of different sizes and reading it
 *    back (only when goro's malloc is really glibc's: under valgrind or
 *    another allocator nothing is probed). Fastbin chunks cannot be told
 *    from live ones: they count as live, so a stale pointer in one can only
 *    hide a leak, never invent one.
 * Every segment is validated when built with the world stopped (the chunk
 * chain must stay inside its mapping and, for arena heaps, end exactly at
 * the heap's end); a segment that does not check out, a heap that grew
 * past the bitmaps planned for it, and anything unrecognised are not
 * segments: the scan treats that memory as a root, which can only make it
 * miss a leak.
 *
 * Memory: two bits per 16-byte granule of arena heap (start, mark): 16 MiB
 * per GiB, mapped by the scan before the world stops; untouched pages cost
 * nothing.
 */
#include "debug/heapmap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "prof/heapprof.h"

#define GRAN_SHIFT 4           /* arena granule: 16 bytes */
#define PAGE_SHIFT 12          /* sample region granule: a page */
#define HEAP_MAX (64ul << 20)  /* glibc's HEAP_MAX_SIZE on 64-bit */
#define CHUNK_MIN 32
#define HEAP_INFO_SIZE 48      /* sizeof(heap_info), glibc 2.35+ */
#define MALLOC_STATE_SIZE 2200 /* sizeof(struct malloc_state), glibc 2.26+ */

extern void *__libc_malloc(size_t);
extern void __libc_free(void *);

static unsigned gran_shift(const goro__hseg *s)
{
    return s->kind == GORO__HSEG_SAMPLE ? PAGE_SHIFT : GRAN_SHIFT;
}

static size_t bitmap_words(const goro__hseg *s)
{
    if (s->kind == GORO__HSEG_MMAP)
        return 0;
    return (((s->cap - s->lo) >> gran_shift(s)) + 64) / 64;
}

static inline bool bit_get(const uint64_t *m, uint64_t i) { return m[i >> 6] >> (i & 63) & 1; }
static inline void bit_set(uint64_t *m, uint64_t i) { m[i >> 6] |= 1ull << (i & 63); }

/* ---- probing (world running) ---------------------------------------------------- */

static uintptr_t read_start_brk(void)
{
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char buf[1024];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (!p)
        return 0;
    /* Fields after ')' start with field 3 (state); start_brk is field 47. */
    int field = 2;
    unsigned long long v = 0;
    for (p++; *p; p++) {
        if (*p == ' ') {
            field++;
            if (field == 47) {
                v = strtoull(p + 1, NULL, 10);
                break;
            }
        }
    }
    return (uintptr_t)v;
}

void goro__heapmap_probe(goro__heapmap *h)
{
    static uintptr_t key;
    static bool probed;
    h->start_brk = read_start_brk();
    if (!probed && goro__heapprof_available(NULL)) {
        /* Two sizes in two tcache bins: both freed blocks carry the key
         * at word 1 when they went into the tcache; a full bin (fastbin
         * or unsorted instead) gives two different values, so no key. The
         * read after free is deliberate: this is glibc's memory, read
         * before anyone can allocate it again (this thread's tcache). */
        void *a = __libc_malloc(200), *b = __libc_malloc(440);
        if (a && b) {
            __libc_free(a);
            __libc_free(b);
            uintptr_t ka = ((volatile uintptr_t *)a)[1], kb = ((volatile uintptr_t *)b)[1];
            if (ka == kb && ka)
                key = ka;
        } else {
            __libc_free(a);
            __libc_free(b);
        }
        probed = true;
    }
    h->tcache_key = key;
}

/* ---- planning (world running) --------------------------------------------------- */

/* Copy n bytes at a into buf, or false if they are not mapped. The plan
 * runs while the world still runs: a mapping listed a moment ago may be
 * gone (another thread's munmap), and a plain read would fault. */
GORO__NO_SANITIZE static bool safe_read(uintptr_t a, void *buf, size_t n)
{
    struct iovec local = {buf, n}, remote = {(void *)a, n};
    ssize_t r = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
    if (r == (ssize_t)n)
        return true;
    if (r < 0 && (errno == ENOSYS || errno == EPERM)) { /* a seccomp filter */
        memcpy(buf, (const void *)a, n);
        return true;
    }
    return false;
}

static bool looks_mmapped(uintptr_t c, uintptr_t end)
{
    if (c + 4096 > end)
        return false;
    size_t w[2];
    if (!safe_read(c, w, sizeof w))
        return false;
    size_t size = w[1] & ~(size_t)7;
    return w[0] == 0 && (w[1] & 7) == 2 && size >= 4096 && (size & 4095) == 0 && c + size <= end;
}

static bool looks_heap_info(uintptr_t a, uintptr_t end)
{
    if (a + 4096 > end)
        return false;
    uintptr_t w[4];
    if (!safe_read(a, w, sizeof w))
        return false;
    uintptr_t ar = w[0], prev = w[1];
    size_t size = w[2], mprot = w[3];
    return ar && !(ar & 7) && !(prev & (HEAP_MAX - 1)) && size >= 4096 && size <= HEAP_MAX &&
           !(size & 4095) && mprot >= size && mprot <= HEAP_MAX;
}

static void plan_add(goro__heapmap *h, uintptr_t lo, uintptr_t cap, uint8_t kind)
{
    if (h->nsegs < h->capsegs)
        h->segs[h->nsegs] = (goro__hseg){.lo = lo, .hi = lo, .cap = cap, .kind = kind};
    h->nsegs++; /* counted also past capsegs: the caller plans again */
}

size_t goro__heapmap_plan(goro__heapmap *h, const goro__vma *maps, size_t n)
{
    h->nsegs = 0;
    uintptr_t slo = 0, shi = 0;
    if (goro__heapprof_region(&slo, &shi) && shi > slo)
        plan_add(h, slo, shi + (64ul << 20), GORO__HSEG_SAMPLE);
    for (size_t i = 0; i < n; i++) {
        const goro__vma *v = &maps[i];
        if ((v->flags & (GORO__VMA_R | GORO__VMA_W | GORO__VMA_SHARED | GORO__VMA_FILE)) !=
                (GORO__VMA_R | GORO__VMA_W) ||
            (v->flags & GORO__VMA_SPECIAL))
            continue;
        if (slo && v->lo < shi + (64ul << 20) && v->hi > slo)
            continue; /* the sample region */
        if (v->flags & GORO__VMA_HEAP) {
            uintptr_t lo = h->start_brk >= v->lo && h->start_brk < v->hi ? h->start_brk : v->lo;
            lo = GORO__ALIGN_UP(lo, 16);
            size_t slack = (v->hi - lo) / 4 > (64ul << 20) ? (v->hi - lo) / 4 : (64ul << 20);
            plan_add(h, lo, v->hi + slack, GORO__HSEG_ARENA);
            continue;
        }
        /* Arena heaps at 64 MiB boundaries inside the mapping (a heap's
         * mapping may have merged with a neighbour). */
        bool heap_seen = false;
        for (uintptr_t a = GORO__ALIGN_UP(v->lo, HEAP_MAX); a + 4096 <= v->hi; a += HEAP_MAX)
            if (looks_heap_info(a, v->hi)) {
                plan_add(h, a, a + HEAP_MAX, GORO__HSEG_ARENA);
                heap_seen = true;
            }
        if (heap_seen)
            continue;
        /* mmapped chunks, one after another from the mapping's start. */
        size_t hdr[2];
        for (uintptr_t c = v->lo; looks_mmapped(c, v->hi) && safe_read(c, hdr, sizeof hdr);) {
            size_t size = hdr[1] & ~(size_t)7;
            if (!size)
                break;
            plan_add(h, c, c + size, GORO__HSEG_MMAP);
            c += size;
        }
    }
    if (h->nsegs > h->capsegs)
        return 0;
    size_t bytes = 0;
    for (size_t i = 0; i < h->nsegs; i++)
        bytes += 2 * bitmap_words(&h->segs[i]) * 8;
    return bytes;
}

void goro__heapmap_attach(goro__heapmap *h, void *mem)
{
    uint64_t *m = mem;
    for (size_t i = 0; i < h->nsegs; i++) {
        goro__hseg *s = &h->segs[i];
        size_t w = bitmap_words(s);
        if (!w)
            continue;
        s->start = m;
        s->mark = m + w;
        m += 2 * w;
    }
}

/* ---- building (world stopped) --------------------------------------------------- */

static const goro__vma *vma_of(const goro__vma *maps, size_t n, uintptr_t a)
{
    size_t lo = 0, hi = n;
    while (lo < hi) { /* /proc/self/maps is sorted by address */
        size_t mid = (lo + hi) / 2;
        if (maps[mid].hi <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && maps[lo].lo <= a && a < maps[lo].hi ? &maps[lo] : NULL;
}

/* Walk glibc chunks from `first` up to `end` (at most the bitmap's cap):
 * sets start bits of the live ones. Returns where the walk ended cleanly
 * (end, or the start of the first chunk past the cap), or 0 when the chain
 * is broken. */
GORO__NO_SANITIZE static uintptr_t walk_chunks(goro__heapmap *h, goro__hseg *s, uintptr_t first,
                                               uintptr_t end)
{
    uintptr_t c = first;
    while (c < end) {
        if (c + 16 > end)
            return 0;
        size_t size = ((const size_t *)c)[1] & ~(size_t)7;
        if (size == 0) /* the last fencepost of an extended heap */
            return c + 16 <= end ? end : 0;
        if (size == 16) { /* a fencepost */
            c += 16;
            continue;
        }
        if (size < CHUNK_MIN || (size & 15) || c + size > end)
            return 0;
        uintptr_t next = c + size;
        if (c + 16 >= s->cap)
            return c; /* the heap grew past the bitmaps: the rest is a root */
        bool inuse = next + 16 <= end ? (((const size_t *)next)[1] & 1) != 0 : false;
        if (inuse && h->tcache_key && size >= 32 && ((const uintptr_t *)c)[3] == h->tcache_key)
            inuse = false; /* a tcache entry (the key is user word 1) */
        if (inuse) {
            bit_set(s->start, (c + 16 - s->lo) >> GRAN_SHIFT);
            h->nblocks++;
            h->bytes += size - 16;
        }
        c = next;
    }
    return c == end ? end : 0;
}

/* Does the chunk chain from `first` end exactly at `end`? */
GORO__NO_SANITIZE static bool chain_ends_at(uintptr_t first, uintptr_t end)
{
    uintptr_t c = first;
    for (size_t steps = 0; steps < (1u << 24); steps++) {
        if (c == end)
            return true;
        if (c + 16 > end)
            return false;
        size_t size = ((const size_t *)c)[1] & ~(size_t)7;
        if (size == 0)
            return c + 16 <= end;
        if (size == 16) {
            c += 16;
            continue;
        }
        if (size < CHUNK_MIN || (size & 15) || c + size > end)
            return false;
        c += size;
    }
    return false;
}

GORO__NO_SANITIZE static void build_seg(goro__heapmap *h, goro__hseg *s, const goro__vma *maps, size_t n)
{
    s->valid = false;
    const goro__vma *v = vma_of(maps, n, s->lo);
    if (!v || (v->flags & (GORO__VMA_R | GORO__VMA_W)) != (GORO__VMA_R | GORO__VMA_W))
        return;
    switch (s->kind) {
    case GORO__HSEG_MMAP:
        if (!looks_mmapped(s->lo, v->hi) ||
            s->lo + (((const size_t *)s->lo)[1] & ~(size_t)7) != s->cap)
            return;
        s->hi = s->cap;
        s->valid = true;
        h->nblocks++;
        h->bytes += s->hi - s->lo - 16;
        return;
    case GORO__HSEG_SAMPLE: {
        uintptr_t slo = 0, shi = 0;
        if (!goro__heapprof_region(&slo, &shi) || slo != s->lo)
            return;
        uintptr_t end = shi < s->cap ? shi : s->cap;
        for (uintptr_t pg = s->lo; pg < end;) {
            uintptr_t ulo, uhi;
            size_t pages = 0;
            if (!goro__heapprof_block_at(pg, &ulo, &uhi, &pages) || pages == 0)
                return;
            if (ulo) {
                bit_set(s->start, (pg - s->lo) >> PAGE_SHIFT);
                h->nblocks++;
                h->bytes += uhi - ulo;
            }
            if (pg + pages * 4096 > end) {
                end = pg;
                break;
            }
            pg += pages * 4096;
        }
        s->hi = end;
        s->valid = true;
        return;
    }
    default:
        break;
    }
    /* An arena heap. */
    uintptr_t first, end;
    if (v->flags & GORO__VMA_HEAP) {
        first = s->lo;
        end = v->hi; /* walk_chunks checks the chain */
    } else {
        if (!looks_heap_info(s->lo, v->hi))
            return;
        end = s->lo + ((const size_t *)s->lo)[2];
        if (end > v->hi)
            return;
        /* Where glibc puts the first chunk: after heap_info (48 bytes),
         * and in an arena's first heap after its malloc_state (2200
         * bytes) too, moved so that the user data is 16-aligned. Searching
         * for any offset whose chain ends at `end` is not safe: a word of
         * malloc_state can start a chain that jumps over real chunks. */
        uintptr_t ptr = s->lo + HEAP_INFO_SIZE;
        if (((const uintptr_t *)s->lo)[0] == ptr)
            ptr += MALLOC_STATE_SIZE;
        first = GORO__ALIGN_UP(ptr + 16, 16) - 16;
        if (!chain_ends_at(first, end))
            return;
    }
    uint64_t nb = h->nblocks, by = h->bytes;
    uintptr_t stop = walk_chunks(h, s, first, end);
    if (!stop) {
        memset(s->start, 0, bitmap_words(s) * 8);
        h->nblocks = nb;
        h->bytes = by;
        return;
    }
    s->lo = first < s->lo ? first : s->lo;
    s->hi = stop;
    s->valid = true;
}

static int cmp_seg(const void *a, const void *b)
{
    const goro__hseg *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

void goro__heapmap_build(goro__heapmap *h, const goro__vma *maps, size_t n)
{
    h->nblocks = h->bytes = 0;
    h->lo = UINTPTR_MAX;
    h->hi = 0;
    for (size_t i = 0; i < h->nsegs; i++) {
        goro__hseg *s = &h->segs[i];
        build_seg(h, s, maps, n);
        if (s->valid && s->hi > s->lo) {
            h->lo = s->lo < h->lo ? s->lo : h->lo;
            h->hi = s->hi > h->hi ? s->hi : h->hi;
        } else {
            s->valid = false;
        }
    }
    qsort(h->segs, h->nsegs, sizeof *h->segs, cmp_seg);
}

/* ---- lookups (world stopped) ------------------------------------------------------ */

/* The highest set bit <= i in m, or -1. */
static int64_t bit_prev(const uint64_t *m, uint64_t i)
{
    uint64_t w = i >> 6;
    uint64_t x = m[w] & (~0ull >> (63 - (i & 63)));
    for (;;) {
        if (x)
            return (int64_t)(w * 64 + 63 - (uint64_t)__builtin_clzll(x));
        if (w == 0)
            return -1;
        x = m[--w];
    }
}

/* The block whose data starts at granule k of s (a start bit). */
GORO__NO_SANITIZE static bool block_of_bit(const goro__hseg *s, uint64_t k, uintptr_t *lo, uintptr_t *hi)
{
    if (s->kind == GORO__HSEG_SAMPLE) {
        size_t pages;
        return goro__heapprof_block_at(s->lo + ((uintptr_t)k << PAGE_SHIFT), lo, hi, &pages) && *lo;
    }
    uintptr_t user = s->lo + ((uintptr_t)k << GRAN_SHIFT), c = user - 16;
    /* The next chunk's prev_size overlaps the last 8 usable bytes and
     * allocator lists point at that chunk's start: end the block there. */
    *lo = user;
    *hi = c + (((const size_t *)c)[1] & ~(size_t)7);
    return true;
}

GORO__NO_SANITIZE bool goro__heapmap_find(const goro__heapmap *h, uintptr_t a, goro__hblk *b)
{
    if (a < h->lo || a >= h->hi)
        return false;
    size_t lo = 0, hi = h->nsegs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (h->segs[mid].lo <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return false;
    const goro__hseg *s = &h->segs[lo - 1];
    if (!s->valid || a >= s->hi)
        return false;
    b->seg = (uint32_t)(lo - 1);
    switch (s->kind) {
    case GORO__HSEG_MMAP:
        b->lo = s->lo + 16;
        b->hi = s->hi;
        b->bit = 0;
        return a >= b->lo;
    default: {
        int64_t k = bit_prev(s->start, (a - s->lo) >> gran_shift(s));
        if (k < 0 || !block_of_bit(s, (uint64_t)k, &b->lo, &b->hi))
            return false;
        b->bit = (uint64_t)k;
        return a >= b->lo && a < b->hi;
    }
    }
}

bool goro__heapmap_mark(goro__heapmap *h, const goro__hblk *b)
{
    goro__hseg *s = &h->segs[b->seg];
    if (s->kind == GORO__HSEG_MMAP) {
        bool was = s->marked;
        s->marked = true;
        return !was;
    }
    if (bit_get(s->mark, b->bit))
        return false;
    bit_set(s->mark, b->bit);
    return true;
}

void goro__heapmap_each_marked(const goro__heapmap *h, void (*fn)(uintptr_t lo, uintptr_t hi, void *arg),
                               void *arg)
{
    for (size_t i = 0; i < h->nsegs; i++) {
        const goro__hseg *s = &h->segs[i];
        if (!s->valid)
            continue;
        if (s->kind == GORO__HSEG_MMAP) {
            if (s->marked)
                fn(s->lo + 16, s->hi, arg);
            continue;
        }
        size_t nw = ((s->hi - s->lo) >> gran_shift(s)) / 64 + 1;
        for (size_t w = 0; w < nw; w++)
            for (uint64_t x = s->mark[w]; x; x &= x - 1) {
                uint64_t k = w * 64 + (uint64_t)__builtin_ctzll(x);
                uintptr_t lo, hi;
                if (block_of_bit(s, k, &lo, &hi))
                    fn(lo, hi, arg);
            }
    }
}
