/*
 * heapprof.h - the sampling heap profiler's internal interface
 * (heapprof.c). The profile writers read the sampled stacks ("buckets")
 * through goro__heapprof_snapshot; counts are raw (not yet unbiased).
 */
#ifndef GORO_PROF_HEAPPROF_H
#define GORO_PROF_HEAPPROF_H

#include "runtime/internal.h"

typedef struct goro__heap_bucket {
    struct goro__heap_bucket *next;
    uint64_t hash;
    _Atomic int64_t alloc_objects, alloc_bytes; /* sampled, cumulative */
    _Atomic int64_t free_objects, free_bytes;
    uint32_t npc;
    uintptr_t pcs[]; /* return addresses, allocation site first */
} goro__heap_bucket;

typedef void (*goro__heap_bucket_fn)(const goro__heap_bucket *b, void *arg);

/* Check (once) that goro's malloc is the one in use. */
void goro__heapprof_init(void);

/* False (and *why, a static string) when no heap profile can be taken:
 * built with a sanitizer, or another allocator replaced goro's malloc. */
bool goro__heapprof_available(const char **why);

/* Was p served from the profiler's sample region (page-granular blocks
 * with no allocator neighbours)? */
bool goro__heapprof_owns(const void *p);

/* The sampled block containing p ([*lo, *hi) user bytes); false if p is
 * not inside one. No locks (usable with the world stopped). */
bool goro__heapprof_block(const void *p, uintptr_t *lo, uintptr_t *hi);

/* The sample region in use: [*lo, *hi) (false when there is none). Racy
 * while the world runs; exact once it is stopped. */
bool goro__heapprof_region(uintptr_t *lo, uintptr_t *hi);

/* The region's block starting at page pg: its page count, and its user
 * bytes [*lo, *hi) when live (*lo = 0 when free). False when pg does not
 * start a block. No locks (the leak scan, world stopped). */
bool goro__heapprof_block_at(uintptr_t pg, uintptr_t *lo, uintptr_t *hi, size_t *pages);

/* Call fn for every bucket; -ENOTSUP when unavailable. */
int goro__heapprof_snapshot(goro__heap_bucket_fn fn, void *arg);

/* pthread_atfork handlers' part (fork.c): hold the profiler's locks across
 * fork() so that malloc/free in the child cannot find them held. */
void goro__heapprof_fork_prepare(void);
void goro__heapprof_fork_parent(void);
void goro__heapprof_fork_child(void);

#endif /* GORO_PROF_HEAPPROF_H */
