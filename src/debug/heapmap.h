/*
 * heapmap.h - the malloc heap's live blocks, as the leak scan's mark phase
 * needs them (heapmap.c): which block a word points into, and one mark bit
 * per block. Planned while the world runs (memory sized and mapped then),
 * built and used while it is stopped (no allocation, no locks).
 */
#ifndef GORO_DEBUG_HEAPMAP_H
#define GORO_DEBUG_HEAPMAP_H

#include "runtime/internal.h"

/* One line of /proc/self/maps. */
enum {
    GORO__VMA_R = 1,
    GORO__VMA_W = 2,
    GORO__VMA_SHARED = 4,
    GORO__VMA_FILE = 8,    /* backed by a file (inode != 0) */
    GORO__VMA_HEAP = 16,   /* [heap] */
    GORO__VMA_SPECIAL = 32 /* another [name]: [stack], [vvar], [vdso], ... */
};
typedef struct goro__vma {
    uintptr_t lo, hi;
    uint32_t flags;
} goro__vma;

enum { GORO__HSEG_ARENA, GORO__HSEG_MMAP, GORO__HSEG_SAMPLE };

/* A stretch of memory whose blocks are known: a glibc arena heap (chunks),
 * one glibc mmapped chunk, or the heap profiler's sample region (pages). */
typedef struct goro__hseg {
    uintptr_t lo, hi;    /* blocks lie in [lo, hi) once built */
    uintptr_t cap;       /* bitmaps cover [lo, cap) */
    uint8_t kind;
    bool valid;          /* built and consistent */
    bool marked;         /* GORO__HSEG_MMAP: its one block */
    uint64_t *start;     /* bit per granule: a live block's data starts here */
    uint64_t *mark;      /* bit per granule: that block is marked */
} goro__hseg;

typedef struct goro__heapmap {
    goro__hseg *segs;    /* sorted by lo once built */
    size_t nsegs, capsegs;
    uintptr_t tcache_key; /* glibc's key in free tcache entries (0: unknown) */
    uintptr_t start_brk;  /* where the main arena's chunks begin (0: unknown) */
    uintptr_t lo, hi;     /* bounds of all valid segments */
    uint64_t nblocks, bytes; /* live blocks and their bytes (built) */
} goro__heapmap;

/* A block found by goro__heapmap_find. */
typedef struct goro__hblk {
    uintptr_t lo, hi;    /* user bytes */
    uint32_t seg;
    uint64_t bit;        /* granule index in the segment */
} goro__hblk;

/* World running. Learn what the walk needs (glibc's tcache key, the main
 * arena's start) once per process; then plan segments for the mappings in
 * maps[0..n): fills h->segs (capsegs entries, provided by the caller) and
 * returns the bitmap bytes goro__heapmap_attach needs. When more than
 * capsegs segments are needed, h->nsegs says how many: plan again. */
void goro__heapmap_probe(goro__heapmap *h);
size_t goro__heapmap_plan(goro__heapmap *h, const goro__vma *maps, size_t n);
/* Hand the planned segments their bitmaps (zeroed memory of the size
 * goro__heapmap_plan returned). */
void goro__heapmap_attach(goro__heapmap *h, void *mem);

/* World stopped: check every planned segment against the current maps
 * and walk its blocks. A segment that does not check out is not valid:
 * the caller scans its memory as a root instead (never less safe). */
void goro__heapmap_build(goro__heapmap *h, const goro__vma *maps, size_t n);

/* The live block containing address a (its user bytes), if any. */
bool goro__heapmap_find(const goro__heapmap *h, uintptr_t a, goro__hblk *b);

/* Set b's mark bit; returns whether it was clear. */
bool goro__heapmap_mark(goro__heapmap *h, const goro__hblk *b);

/* Call fn for every marked block (rescans after a mark-stack overflow). */
void goro__heapmap_each_marked(const goro__heapmap *h, void (*fn)(uintptr_t lo, uintptr_t hi, void *arg),
                               void *arg);

#endif /* GORO_DEBUG_HEAPMAP_H */
