/*
 * unwind.c - the frame-pointer walker (see unwind.h). It reads other
 * goroutines' stacks on purpose, so it is not instrumented by sanitizers.
 */
#include "runtime/unwind.h"

#define MAX_FRAME (1u << 20)

GORO__NO_SANITIZE uint32_t goro__unwind_fp(uintptr_t fp, uintptr_t lo, uintptr_t hi,
                                           uintptr_t *pcs, uintptr_t *fps, uint32_t max)
{
    uint32_t n = 0;
    while (n < max) {
        if (fp < lo || fp + 16 > hi || (fp & 15))
            break;
        const uintptr_t *f = (const uintptr_t *)fp;
        uintptr_t pc = f[1], next = f[0];
        if (pc < 4096)
            break;
        pcs[n] = pc;
        if (fps)
            fps[n] = next;
        n++;
        if (next <= fp || next - fp > MAX_FRAME)
            break;
        fp = next;
    }
    return n;
}

GORO__NO_SANITIZE uint32_t goro__unwind_ctx(uintptr_t sp, uintptr_t lo, uintptr_t hi,
                                            uintptr_t *pcs, uintptr_t *fps, uint32_t max)
{
    if (max == 0 || sp < lo || sp + 8 * (GORO__CTX_RET + 1) > hi || (sp & 7))
        return 0;
    const uintptr_t *s = (const uintptr_t *)sp;
    uintptr_t pc = s[GORO__CTX_RET], fp = s[GORO__CTX_RBP];
    if (pc < 4096)
        return 0;
    pcs[0] = pc;
    if (fps)
        fps[0] = fp;
    return 1 + goro__unwind_fp(fp, lo, hi, pcs + 1, fps ? fps + 1 : NULL, max - 1);
}
