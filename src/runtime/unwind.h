/*
 * unwind.h - bounded frame-pointer unwinding.
 *
 * Every step is checked against the stack's known range, 16-byte frame
 * alignment, strictly increasing frame addresses and a maximum frame size,
 * so a corrupt or foreign frame ends the walk instead of faulting. Works on
 * the current stack, on a parked goroutine's stack from its saved context
 * (switch.S layout) and inside signal handlers (no locks, no allocation).
 */
#ifndef GORO_UNWIND_H
#define GORO_UNWIND_H

#include "runtime/internal.h"

/* Saved-context layout of switch.S: word offsets from the saved sp. */
#define GORO__CTX_RBP 5
#define GORO__CTX_RET 6

/* Walk from frame `fp` (a frame pointer value) within [lo, hi). pcs[i] is a
 * return address; fps[i] (optional) the frame of the function it returns
 * into. Returns the number of frames stored. */
uint32_t goro__unwind_fp(uintptr_t fp, uintptr_t lo, uintptr_t hi, uintptr_t *pcs,
                         uintptr_t *fps, uint32_t max);

/* Walk a suspended context whose saved stack pointer is sp. */
uint32_t goro__unwind_ctx(uintptr_t sp, uintptr_t lo, uintptr_t hi, uintptr_t *pcs,
                          uintptr_t *fps, uint32_t max);

#endif /* GORO_UNWIND_H */
