/*
 * leakscan.h - the reachability leak scan (leakscan.c): which goroutines
 * are blocked on primitives that nothing live can reach any more.
 */
#ifndef GORO_DEBUG_LEAKSCAN_H
#define GORO_DEBUG_LEAKSCAN_H

#include "runtime/internal.h"

/* What the scan found about one leaked goroutine. */
typedef struct goro__scan_leak {
    uint64_t id;        /* first: sorted by id (cmp_id) */
    /* Heap bytes reachable from its stack and from no root: reached first
     * from it in the retained pass (a block two leaked goroutines share
     * counts once, for the one with the lower candidate index). */
    uint64_t retained;
    /* The first object it waits on, when that is a channel: where
     * goro_chan_make was called, its capacity, its buffered count and its
     * reference count (retain/release; none of them from live memory). */
    uintptr_t chan_made_at; /* 0: not a channel */
    uint32_t chan_cap, chan_count, chan_refs;
} goro__scan_leak;

typedef struct goro__scan_result {
    uint64_t *leaked;   /* ids of leaked goroutines (malloc'd, sorted) */
    goro__scan_leak *info; /* parallel to leaked (malloc'd) */
    size_t nleaked;
    size_t nblocked;    /* goroutines judged (blocked on primitives) */
    size_t ngoroutines;
    size_t nthreads;    /* threads stopped */
    size_t nunstopped;  /* threads goro does not own, left running or blocked */
    uint64_t heap_bytes;  /* memory scanned as heap */
    uint64_t root_bytes;  /* all memory scanned */
    int64_t pause_ns;     /* time the world was stopped */
    int64_t total_ns;
    const char *incomplete; /* non-NULL: why no goroutine may be judged */
} goro__scan_result;

/* Run one scan from a goroutine. fp: where the roots on the calling
 * goroutine's stack start, from GORO__SCAN_BASE in the public call (its
 * callers' frames and registers are roots; the scanner's own frames are
 * not). Returns 0 (see result->incomplete) or -errno. */
int goro__leakscan(uintptr_t fp, goro__scan_result *result);
/* Run one scan from goro's confirmation thread (leakconfirm.c), not a
 * goroutine nor a scheduler thread (-EPERM otherwise); [stack_lo,
 * stack_hi) is the calling thread's stack, which holds runtime frames only
 * and is not scanned. */
int goro__leakscan_thread(uintptr_t stack_lo, uintptr_t stack_hi, goro__scan_result *result);
void goro__scan_result_free(goro__scan_result *r);

/* In the public function that starts a scan (noinline): spill every
 * callee-saved register into its frame (__builtin_unwind_init, as
 * conservative collectors do) - the caller may keep its only pointer to a
 * channel in rbx or r12-r15 - and name the lowest address to scan from:
 * below both the spill slots (pushed just under the frame pointer) and the
 * function's locals. */
#define GORO__SCAN_BASE(var)                                                   \
    __builtin_unwind_init();                                                   \
    volatile uintptr_t var##_marker = 0;                                       \
    uintptr_t var = (uintptr_t)__builtin_frame_address(0) - 64;               \
    if ((uintptr_t)&var##_marker < var)                                        \
        var = (uintptr_t)&var##_marker & ~(uintptr_t)7

/* Whether a scan can be trusted in this build (not under sanitizers). */
bool goro__leakscan_supported(const char **why);

#endif /* GORO_DEBUG_LEAKSCAN_H */
