/*
 * heapprof.c - the sampling heap profiler: goro's malloc interposition.
 *
 * Owns: the process's malloc family (malloc free calloc realloc
 * reallocarray memalign posix_memalign aligned_alloc valloc pvalloc), which
 * forward to glibc's exported __libc_* functions (glibc's hooks are gone
 * since 2.34; no dlsym bootstrap needed), and the table of sampled
 * allocation stacks ("buckets").
 *
 * Sampling (docs/formats.md §6): each thread counts down the bytes until
 * its next sample; the distance between samples is exponential with mean
 * `rate` (GORO_MEMPROFILE_RATE, default 512 KiB; 0 = off, 1 = every
 * allocation). The fast path is one thread-local subtraction and a tail call
 * into glibc. A sampled allocation is unwound (frame pointers, bounded by the
 * current stack), counted in its bucket, and served from goro's own sample
 * region instead of glibc's heap.
 *
 * The sample region: a reserved MAP_NORESERVE range where each sampled block
 * gets whole pages: [header][... back pointer, fake chunk header][user data].
 * free() recognises a sampled block with one range check on the pointer, so
 * unsampled frees pay nothing else. The 16 bytes before the user pointer
 * look like glibc's header of an mmapped chunk, so malloc_usable_size (not
 * overridden) still answers correctly for sampled blocks.
 *
 * Re-entrancy: the slow path sets a thread-local flag; allocations made
 * while it is set (by the unwinder, pthread_getattr_np, ...) go straight to
 * glibc. Buckets and the region's bookkeeping live in mmapped memory, never
 * in the malloc heap. Locking: one spinlock for the region's free lists, one
 * for the bucket table; counters are atomics.
 *
 * Not built under ASan/TSan (their allocators must own malloc) and inactive
 * when another allocator wins at run time (valgrind replaces malloc
 * everywhere): the heap profile then says "heap profile unavailable".
 */
#define GORO__LOCK_RANK GORO__RANK_PROF /* lock.h */
#define GORO__MUTEX_RANK GORO__RANK_PROF
#include "prof/heapprof.h"

#include <dlfcn.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "runtime/vg.h"

#include "runtime/lock.h"
#include "runtime/sched.h"
#include "runtime/unwind.h"

#define DEFAULT_RATE (512 * 1024)

static _Atomic int64_t hp_rate = DEFAULT_RATE;

long goro_memprofile_rate(void) { return (long)atomic_load(&hp_rate); }

int goro_set_memprofile_rate(long rate)
{
    if (rate < 0)
        return -EINVAL;
    atomic_store(&hp_rate, rate);
    return 0;
}

#if GORO__ASAN || GORO__TSAN || defined(GORO_NO_HEAP_PROFILER)

bool goro__heapprof_available(const char **why)
{
    if (why)
        *why = GORO__ASAN   ? "AddressSanitizer owns malloc in this build"
               : GORO__TSAN ? "ThreadSanitizer owns malloc in this build"
                            : "goro was built without its heap profiler (GORO_HEAP_PROFILER=OFF)";
    return false;
}
void goro__heapprof_init(void) {}
void goro__heapprof_fork_prepare(void) {}
void goro__heapprof_fork_parent(void) {}
void goro__heapprof_fork_child(void) {}
bool goro__heapprof_owns(const void *p)
{
    (void)p;
    return false;
}
bool goro__heapprof_block(const void *p, uintptr_t *lo, uintptr_t *hi)
{
    (void)p;
    (void)lo;
    (void)hi;
    return false;
}
bool goro__heapprof_region(uintptr_t *lo, uintptr_t *hi)
{
    (void)lo;
    (void)hi;
    return false;
}
bool goro__heapprof_block_at(uintptr_t pg, uintptr_t *lo, uintptr_t *hi, size_t *pages)
{
    (void)pg;
    (void)lo;
    (void)hi;
    (void)pages;
    return false;
}
int goro__heapprof_snapshot(goro__heap_bucket_fn fn, void *arg)
{
    (void)fn;
    (void)arg;
    return -ENOTSUP;
}

#else /* the real profiler */

extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);

#define PAGE 4096u
#define REGION_BYTES (64ull << 30)
#define HDR_MAGIC 0x676f726f68656170ull /* "goroheap" */
#define MAX_DEPTH 64
#define IS_MMAPPED 0x2u

typedef struct tstate {
    int64_t left;   /* bytes until the next sample */
    uint32_t busy;  /* in the slow path: allocate straight from glibc */
    uint32_t init;  /* left was drawn (a new thread starts at 0) */
    uint32_t fork_owner; /* forking: this thread holds both locks (fork.c) */
    uint64_t rng;
    uintptr_t stack_lo, stack_hi; /* foreign threads' stack bounds (cached) */
} tstate;

static __thread tstate ts __attribute__((tls_model("initial-exec")));

/* The sample region. */
static char *region;
static _Atomic uintptr_t region_base; /* 0 until reserved */
static uintptr_t region_len;
static goro__spinlock region_lock;
static size_t region_used; /* bump offset */
#define NCLASS 65          /* free lists for 1..64 pages; [0]: larger blocks */
static struct freeblk {
    struct freeblk *next;
    size_t pages;
    bool resident; /* counted in cached_pages */
} *freelist[NCLASS];
static size_t cached_pages; /* resident free pages (region_lock) */

typedef struct blk_hdr {
    uint64_t magic;
    size_t size;      /* requested bytes */
    size_t pages;
    struct goro__heap_bucket *bucket;
} blk_hdr;

/* Buckets: stacks of sampled allocations. */
static goro__spinlock bucket_lock;
static goro__heap_bucket **btable;
static size_t btable_cap, nbuckets;
static char *barena;
static size_t barena_used, barena_cap;

static _Atomic int hp_state; /* 0 unknown, 1 active, -1 unavailable */

/* The two locks. A thread that is forking holds both from its atfork
 * prepare handler to its parent/child handler (goro__heapprof_fork_*):
 * whatever it does in between (other libraries' atfork handlers) uses
 * them as already its own. */
static inline void hp_lock(goro__spinlock *l)
{
    if (GORO__LIKELY(!ts.fork_owner))
        goro__spin_lock(l);
}
static inline void hp_unlock(goro__spinlock *l)
{
    if (GORO__LIKELY(!ts.fork_owner))
        goro__spin_unlock(l);
}
static _Atomic uint32_t seen_malloc;

/* ---- rate and randomness ---------------------------------------------------- */

static uint64_t rng_next(void)
{
    if (ts.rng == 0)
        ts.rng = ((uint64_t)(uintptr_t)&ts * 0x9E3779B97F4A7C15ull) ^ (uint64_t)goro__nanotime();
    ts.rng ^= ts.rng << 13;
    ts.rng ^= ts.rng >> 7;
    ts.rng ^= ts.rng << 17;
    return ts.rng;
}

/* Distance to the next sample: exponential with mean `rate`. With rate 0
 * the thread still comes back every 64 MiB so a later rate change applies. */
static int64_t next_distance(void)
{
    int64_t rate = atomic_load_explicit(&hp_rate, memory_order_relaxed);
    if (rate <= 0)
        return 64ll << 20;
    if (rate == 1)
        return 0;
    double u = ((double)(rng_next() >> 11) + 1.0) / 9007199254740993.0; /* (0,1] */
    double d = -log(u) * (double)rate;
    return d > 4e18 ? INT64_MAX / 2 : (int64_t)d;
}

/* ---- the sample region --------------------------------------------------------- */

static bool region_reserve(void)
{
    if (atomic_load_explicit(&region_base, memory_order_acquire))
        return true;
    hp_lock(&region_lock);
    if (!region) {
        void *r = mmap(NULL, REGION_BYTES, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (r != MAP_FAILED) {
            region = r;
            region_len = REGION_BYTES;
            madvise(r, REGION_BYTES, MADV_NOHUGEPAGE);
            atomic_store_explicit(&region_base, (uintptr_t)r, memory_order_release);
        }
    }
    hp_unlock(&region_lock);
    return region != NULL;
}

static char *region_alloc(size_t pages)
{
    size_t cls = pages < NCLASS ? pages : 0;
    char *p = NULL;
    hp_lock(&region_lock);
    struct freeblk **pp = &freelist[cls];
    while (*pp) {
        if ((*pp)->pages == pages) {
            p = (char *)*pp;
            if ((*pp)->resident)
                cached_pages -= pages;
            *pp = (*pp)->next;
            break;
        }
        pp = &(*pp)->next;
    }
    if (!p && region_used + pages * PAGE <= region_len) {
        p = region + region_used;
        region_used += pages * PAGE;
    }
    hp_unlock(&region_lock);
    return p;
}

/* Freed blocks of at most CACHE_BLOCK_PAGES stay resident, zeroed, while the
 * resident free pages total at most CACHE_PAGES; the rest are given back
 * with madvise. (madvise per free cost a TLB shootdown on every CPU: at the
 * default rate that doubled the time of a malloc-heavy loop.) Zeroing keeps
 * the region's invariants: a free page reads as zeroes (calloc) and holds
 * no stale pointer for the leak scan. */
#define CACHE_PAGES 512
#define CACHE_BLOCK_PAGES 4

static void region_free(char *p, size_t pages)
{
    bool keep = false;
    if (pages <= CACHE_BLOCK_PAGES) {
        hp_lock(&region_lock);
        if (cached_pages + pages <= CACHE_PAGES) {
            cached_pages += pages;
            keep = true;
        }
        hp_unlock(&region_lock);
    }
    if (keep)
        memset(p, 0, pages * PAGE);
    else /* give the memory back; the pages stay mapped (read as zeroes) */
        madvise(p, pages * PAGE, MADV_DONTNEED);
    struct freeblk *f = (struct freeblk *)p;
    f->pages = pages;
    f->resident = keep;
    size_t cls = pages < NCLASS ? pages : 0;
    hp_lock(&region_lock);
    f->next = freelist[cls];
    freelist[cls] = f;
    hp_unlock(&region_lock);
}

/* Before the region exists nothing is in it (base 0 would otherwise make
 * NULL and small values look inside). The acquire pairs with the release in
 * region_reserve, so region_len is set whenever base is seen. */
static inline bool in_region(const void *p)
{
    uintptr_t base = atomic_load_explicit(&region_base, memory_order_acquire);
    return base && (uintptr_t)p - base < region_len;
}

static inline blk_hdr *hdr_of(void *user) { return ((blk_hdr **)user)[-3]; }

bool goro__heapprof_owns(const void *p) { return in_region(p); }

bool goro__heapprof_region(uintptr_t *lo, uintptr_t *hi)
{
    uintptr_t base = atomic_load_explicit(&region_base, memory_order_acquire);
    if (!base)
        return false;
    *lo = base;
    *hi = base + *(volatile size_t *)&region_used; /* racy hint unless stopped */
    return true;
}

GORO__NO_SANITIZE bool goro__heapprof_block_at(uintptr_t pg, uintptr_t *lo, uintptr_t *hi, size_t *pages)
{
    uintptr_t base = atomic_load_explicit(&region_base, memory_order_acquire);
    if (!base || pg < base || pg >= base + region_used || (pg & (PAGE - 1)))
        return false;
    const blk_hdr *h = (const blk_hdr *)pg;
    if (h->magic == HDR_MAGIC) {
        *pages = h->pages;
        *lo = pg + GORO__ALIGN_UP(sizeof(blk_hdr) + 24, 16);
        *hi = *lo + h->size;
        return h->pages > 0 && pg + h->pages * PAGE <= base + region_used;
    }
    const struct freeblk *f = (const struct freeblk *)pg;
    *pages = f->pages;
    *lo = *hi = 0;
    return f->pages > 0 && pg + f->pages * PAGE <= base + region_used;
}

GORO__NO_SANITIZE bool goro__heapprof_block(const void *p, uintptr_t *lo, uintptr_t *hi)
{
    if (!in_region(p))
        return false;
    /* Blocks start on page boundaries with a header: walk back to it. */
    uintptr_t a = (uintptr_t)p, base = atomic_load(&region_base);
    for (uintptr_t pg = a & ~(uintptr_t)(PAGE - 1); pg >= base; pg -= PAGE) {
        const blk_hdr *h = (const blk_hdr *)pg;
        if (h->magic == HDR_MAGIC) {
            if (a >= pg + h->pages * PAGE)
                return false;
            const char *user = (const char *)pg + GORO__ALIGN_UP(sizeof(blk_hdr) + 24, 16);
            *lo = (uintptr_t)user;
            *hi = (uintptr_t)user + h->size;
            return a >= *lo && a < *hi;
        }
        if (a - pg > (1u << 30))
            break;
    }
    return false;
}

/* ---- buckets ------------------------------------------------------------------ */

static void *arena_alloc(size_t n)
{
    n = GORO__ALIGN_UP(n, 16);
    if (barena_used + n > barena_cap) {
        size_t cap = n > (1u << 20) ? n : (1u << 20);
        void *a = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (a == MAP_FAILED)
            return NULL;
        barena = a;
        barena_used = 0;
        barena_cap = cap;
    }
    void *r = barena + barena_used;
    barena_used += n;
    return r;
}

static uint64_t hash_stack(const uintptr_t *pcs, uint32_t n)
{
    uint64_t h = 0xcbf29ce484222325ull ^ n;
    for (uint32_t i = 0; i < n; i++) {
        h ^= pcs[i];
        h *= 0x100000001b3ull;
        h ^= h >> 29;
    }
    return h;
}

/* Locked. */
static bool btable_grow(void)
{
    size_t ncap = btable_cap ? btable_cap * 2 : 4096;
    goro__heap_bucket **nt = mmap(NULL, ncap * sizeof *nt, PROT_READ | PROT_WRITE,
                                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (nt == MAP_FAILED)
        return false;
    for (size_t i = 0; i < btable_cap; i++) {
        goro__heap_bucket *b = btable[i];
        while (b) {
            goro__heap_bucket *next = b->next;
            size_t j = b->hash & (ncap - 1);
            b->next = nt[j];
            nt[j] = b;
            b = next;
        }
    }
    if (btable)
        munmap(btable, btable_cap * sizeof *btable);
    btable = nt;
    btable_cap = ncap;
    return true;
}

static goro__heap_bucket *bucket_get(const uintptr_t *pcs, uint32_t n)
{
    uint64_t h = hash_stack(pcs, n);
    hp_lock(&bucket_lock);
    if (!btable || nbuckets * 2 >= btable_cap) {
        if (!btable_grow() && !btable) {
            hp_unlock(&bucket_lock);
            return NULL;
        }
    }
    size_t j = h & (btable_cap - 1);
    for (goro__heap_bucket *b = btable[j]; b; b = b->next)
        if (b->hash == h && b->npc == n && memcmp(b->pcs, pcs, n * sizeof *pcs) == 0) {
            hp_unlock(&bucket_lock);
            return b;
        }
    goro__heap_bucket *b = arena_alloc(sizeof *b + n * sizeof *pcs);
    if (b) {
        memset(b, 0, sizeof *b);
        b->hash = h;
        b->npc = n;
        memcpy(b->pcs, pcs, n * sizeof *pcs);
        b->next = btable[j];
        btable[j] = b;
        nbuckets++;
    }
    hp_unlock(&bucket_lock);
    return b;
}

/* ---- sampling ------------------------------------------------------------------- */

/* Stack bounds around frame fp: the goroutine's stack, the runtime
 * thread's own stack (scheduler, goro_blocking calls) or, for other
 * threads, their pthread stack (looked up once). */
static void stack_bounds(uintptr_t fp, uintptr_t *lo, uintptr_t *hi)
{
    goro__m *m = goro__getm();
    if (m) {
        goro__g *g = m->curg;
        if (g && fp >= g->stack_lo && fp < g->stack_hi) {
            *lo = g->stack_lo;
            *hi = g->stack_hi;
        } else {
            *lo = m->g0_lo;
            *hi = m->g0_hi;
        }
        return;
    }
    if (!ts.stack_hi) {
        pthread_attr_t attr;
        void *addr;
        size_t size;
        if (pthread_getattr_np(pthread_self(), &attr) == 0) {
            if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
                ts.stack_lo = (uintptr_t)addr;
                ts.stack_hi = (uintptr_t)addr + size;
            }
            pthread_attr_destroy(&attr);
        }
    }
    *lo = ts.stack_lo;
    *hi = ts.stack_hi;
}

/* Serve a sampled allocation of `size` bytes aligned to `align` (a power of
 * two >= 16) from the region; record it. NULL when the region is full (the
 * caller falls back to glibc). */
GORO__NOINLINE static void *sample_alloc(size_t size, size_t align, uintptr_t fp)
{
    if (!region_reserve())
        return NULL;
    /* user = start + off: room for the header, the back pointer and the
     * fake 16-byte chunk header, then aligned. */
    size_t off = GORO__ALIGN_UP(sizeof(blk_hdr) + 24, align);
    if (size > REGION_BYTES / 4)
        return NULL;
    size_t usable = GORO__ALIGN_UP(size ? size : 1, 16);
    size_t pages = (off + usable + PAGE - 1) / PAGE;
    char *start = region_alloc(pages);
    if (!start)
        return NULL;
    usable = pages * PAGE - off;
    usable &= ~(size_t)15;
    char *user = start + off;
    blk_hdr *h = (blk_hdr *)start;
    h->magic = HDR_MAGIC;
    h->size = size;
    h->pages = pages;
    ((blk_hdr **)user)[-3] = h;
    ((size_t *)user)[-2] = off - 16;                       /* prev_size */
    ((size_t *)user)[-1] = (usable + 16) | IS_MMAPPED;     /* size | flags */

    uintptr_t lo, hi, pcs[MAX_DEPTH];
    stack_bounds(fp, &lo, &hi);
    uint32_t n = goro__unwind_fp(fp, lo, hi, pcs, NULL, MAX_DEPTH);
    goro__heap_bucket *b = bucket_get(pcs, n);
    h->bucket = b;
    if (b) {
        atomic_fetch_add_explicit(&b->alloc_objects, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&b->alloc_bytes, (int64_t)size, memory_order_relaxed);
    }
    return user;
}

static void sample_free(void *user)
{
    blk_hdr *h = hdr_of(user);
    if (h->magic != HDR_MAGIC)
        goro__panic("free(%p): not a block from goro's sample region (double free?)", user);
    h->magic = 0;
    goro__heap_bucket *b = h->bucket;
    if (b) {
        atomic_fetch_add_explicit(&b->free_objects, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&b->free_bytes, (int64_t)h->size, memory_order_relaxed);
    }
    region_free((char *)h, h->pages);
}

/* The countdown ran out: maybe sample this allocation. Returns the sampled
 * block, or NULL to let glibc serve it. */
GORO__NOINLINE static void *slow(size_t size, size_t align, uintptr_t fp)
{
    if (ts.busy)
        return NULL;
    ts.busy = 1;
    atomic_store_explicit(&seen_malloc, 1, memory_order_relaxed);
    void *p = NULL;
    if (GORO__UNLIKELY(!ts.init)) {
        /* A new thread: draw its first distance instead of sampling its
         * first allocation. */
        ts.init = 1;
        ts.left = next_distance() - (int64_t)size;
        if (ts.left > 0) {
            ts.busy = 0;
            return NULL;
        }
    }
    ts.left = next_distance();
    /* With rate 0 the countdown only brings us here to re-read the rate. */
    if (atomic_load_explicit(&hp_rate, memory_order_relaxed) > 0)
        p = sample_alloc(size, align, fp);
    ts.busy = 0;
    return p;
}

#define FP() ((uintptr_t)__builtin_frame_address(0))

void *malloc(size_t size)
{
    if (GORO__LIKELY((ts.left -= (int64_t)size) > 0))
        return __libc_malloc(size);
    void *p = slow(size, 16, FP());
    return p ? p : __libc_malloc(size);
}

void free(void *p)
{
    if (GORO__UNLIKELY(in_region(p))) {
        sample_free(p);
        return;
    }
    __libc_free(p);
}

void *calloc(size_t n, size_t m)
{
    size_t size;
    if (__builtin_mul_overflow(n, m, &size)) {
        errno = ENOMEM;
        return NULL;
    }
    if (GORO__LIKELY((ts.left -= (int64_t)size) > 0))
        return __libc_calloc(n, m);
    void *p = slow(size, 16, FP());
    if (p) {
        memset(p, 0, size);
        return p;
    }
    return __libc_calloc(n, m);
}

void *realloc(void *old, size_t size)
{
    if (!old)
        return malloc(size);
    if (in_region(old)) {
        if (size == 0) {
            sample_free(old);
            return NULL;
        }
        size_t oldsize = hdr_of(old)->size;
        ts.left -= (int64_t)size;
        void *p = ts.left > 0 ? NULL : slow(size, 16, FP());
        if (!p)
            p = __libc_malloc(size);
        if (!p)
            return NULL;
        memcpy(p, old, oldsize < size ? oldsize : size);
        sample_free(old);
        return p;
    }
    if (GORO__LIKELY((ts.left -= (int64_t)size) > 0) || size == 0)
        return __libc_realloc(old, size);
    void *p = slow(size, 16, FP());
    if (!p)
        return __libc_realloc(old, size);
    size_t oldsize = malloc_usable_size(old);
    memcpy(p, old, oldsize < size ? oldsize : size);
    __libc_free(old);
    return p;
}

void *reallocarray(void *old, size_t n, size_t m)
{
    size_t size;
    if (__builtin_mul_overflow(n, m, &size)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(old, size);
}

static void *aligned(size_t align, size_t size, uintptr_t fp)
{
    if (align < 16)
        align = 16;
    if (GORO__LIKELY((ts.left -= (int64_t)size) > 0) || align > 1u << 20)
        return align == 16 ? __libc_malloc(size) : __libc_memalign(align, size);
    void *p = slow(size, align, fp);
    return p ? p : (align == 16 ? __libc_malloc(size) : __libc_memalign(align, size));
}

void *memalign(size_t align, size_t size)
{
    if (align == 0 || (align & (align - 1))) {
        errno = EINVAL;
        return NULL;
    }
    return aligned(align, size, FP());
}

int posix_memalign(void **out, size_t align, size_t size)
{
    if (align < sizeof(void *) || (align & (align - 1)))
        return EINVAL;
    void *p = aligned(align, size, FP());
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

void *aligned_alloc(size_t align, size_t size)
{
    if (align == 0 || (align & (align - 1))) {
        errno = EINVAL;
        return NULL;
    }
    return aligned(align, size, FP());
}

void *valloc(size_t size) { return aligned(PAGE, size, FP()); }

void *pvalloc(size_t size)
{
    size_t rounded;
    if (__builtin_add_overflow(size, PAGE - 1, &rounded)) {
        errno = ENOMEM;
        return NULL;
    }
    return aligned(PAGE, rounded & ~(size_t)(PAGE - 1), FP());
}

/* ---- availability and snapshots --------------------------------------------------- */

__attribute__((constructor(101))) static void read_env(void)
{
    const char *v = getenv("GORO_MEMPROFILE_RATE");
    if (v && *v) {
        char *end;
        long r = strtol(v, &end, 10);
        if (*end == 0 && r >= 0)
            atomic_store(&hp_rate, r);
    }
}

void goro__heapprof_init(void)
{
    if (atomic_load(&hp_state) != 0)
        return;
    /* Does our malloc actually run? valgrind, for one, replaces malloc in
     * the executable too; another allocator may have been linked first. */
    void *self = dlsym(RTLD_DEFAULT, "malloc");
    int64_t saved = ts.left;
    uint32_t saved_init = ts.init;
    ts.left = 0; /* force the slow path once (without sampling) */
    ts.init = 0;
    void *volatile probe = malloc(8);
    free(probe);
    ts.left = saved;
    ts.init = saved_init;
    bool ok = self == (void *)malloc && atomic_load(&seen_malloc) && !RUNNING_ON_VALGRIND;
    atomic_store(&hp_state, ok ? 1 : -1);
}

bool goro__heapprof_available(const char **why)
{
    goro__heapprof_init();
    if (atomic_load(&hp_state) > 0)
        return true;
    if (why)
        *why = RUNNING_ON_VALGRIND ? "valgrind replaced malloc"
                                   : "another allocator replaced goro's malloc";
    return false;
}

int goro__heapprof_snapshot(goro__heap_bucket_fn fn, void *arg)
{
    if (!goro__heapprof_available(NULL))
        return -ENOTSUP;
    /* Buckets are never freed or moved (the table is), so walk a copy of
     * the table's pointers taken under the lock, then call out unlocked. */
    hp_lock(&bucket_lock);
    size_t n = nbuckets, k = 0;
    goro__heap_bucket **copy = n ? mmap(NULL, n * sizeof *copy, PROT_READ | PROT_WRITE,
                                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                                 : NULL;
    if (copy == MAP_FAILED) {
        hp_unlock(&bucket_lock);
        return -ENOMEM;
    }
    for (size_t i = 0; i < btable_cap && k < n; i++)
        for (goro__heap_bucket *b = btable[i]; b && k < n; b = b->next)
            copy[k++] = b;
    hp_unlock(&bucket_lock);
    for (size_t i = 0; i < k; i++)
        fn(copy[i], arg);
    if (copy)
        munmap(copy, n * sizeof *copy);
    return 0;
}

/* ---- fork (fork.c) ------------------------------------------------------------- */

/* Hold both locks across fork() so that the child finds them free and what
 * they protect consistent: malloc and free in a forked child (safe with
 * glibc's allocator, which does the same for its arenas) must not deadlock
 * on a lock held by a thread that does not exist there. The two locks are
 * never nested elsewhere, so taking both cannot deadlock. Meanwhile the
 * forking thread's allocations skip sampling (busy). */
void goro__heapprof_fork_prepare(void)
{
    goro__spin_lock(&region_lock);
    goro__spin_lock(&bucket_lock);
    ts.fork_owner = 1;
    ts.busy++;
}

void goro__heapprof_fork_parent(void)
{
    ts.busy--;
    ts.fork_owner = 0;
    goro__spin_unlock(&bucket_lock);
    goro__spin_unlock(&region_lock);
}

void goro__heapprof_fork_child(void) { goro__heapprof_fork_parent(); }

#endif /* the real profiler */
