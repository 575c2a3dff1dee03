/*
 * leakscan.h - the reachability leak scan (leakscan.c): which goroutines
 * are blocked on primitives that nothing live can reach any more.
 */
#ifndef GORO_DEBUG_LEAKSCAN_H
#define GORO_DEBUG_LEAKSCAN_H

#include "runtime/internal.h"

typedef struct goro__scan_result {
    uint64_t *leaked;   /* ids of leaked goroutines (malloc'd, sorted) */
    size_t nleaked;
    size_t nblocked;    /* goroutines judged (blocked on primitives) */
    size_t ngoroutines;
    size_t nthreads;    /* threads stopped */
    uint64_t heap_bytes;  /* memory scanned as heap */
    uint64_t root_bytes;  /* all memory scanned */
    int64_t pause_ns;     /* time the world was stopped */
    int64_t total_ns;
    const char *incomplete; /* non-NULL: why no goroutine may be judged */
} goro__scan_result;

/* Run one scan from a goroutine. fp: the frame of the public call (its
 * callers' frames are roots; the scanner's own are not). Returns 0 (see
 * result->incomplete) or -errno. */
int goro__leakscan(uintptr_t fp, goro__scan_result *result);
void goro__scan_result_free(goro__scan_result *r);

/* Whether a scan can be trusted in this build (not under sanitizers). */
bool goro__leakscan_supported(const char **why);

#endif /* GORO_DEBUG_LEAKSCAN_H */
