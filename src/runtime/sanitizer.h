/*
 * sanitizer.h - ASan and TSan fiber annotations around context switches.
 *
 * Exactly the calls that were measured clean (docs/constraints.md):
 *  ASan: __sanitizer_start_switch_fiber(&fake, bottom, size) just before the
 *        switch (NULL fake when the departing goroutine is dying), and
 *        __sanitizer_finish_switch_fiber(fake, &old_bottom, &old_size) first
 *        thing on the new stack; old_* describe the previous fiber and are
 *        deliberately not stored anywhere.
 *  TSan: one fiber per goroutine (__tsan_create_fiber(0)), switched to with
 *        __tsan_switch_to_fiber(fiber, 0) immediately before each switch,
 *        destroyed after the goroutine's last switch away.
 * Without sanitizers every function here compiles to nothing.
 */
#ifndef GORO_SANITIZER_H
#define GORO_SANITIZER_H

#include "runtime/sched.h"

#if GORO__ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if GORO__TSAN
#include <sanitizer/tsan_interface.h>
#endif

/* A stack slot is being given to a new goroutine: forget the redzones the
 * previous owner's frames left in ASan's shadow (it never returned from
 * them). */
static inline void goro__san_stack_reset(goro__g *g)
{
#if GORO__ASAN
    __asan_unpoison_memory_region((void *)g->stack_lo, g->stack_hi - g->stack_lo);
#else
    (void)g;
#endif
}

/* Stack memory is about to be unmapped: clear what ASan's shadow says
 * about it (the redzones of frames never returned from: goroutines still
 * parked at shutdown, slots freed without a reuse). The shadow outlives
 * munmap, so a later mapping at the same addresses (libbacktrace's arena,
 * the next runtime's regions) would report a false stack-buffer-underflow
 * on its first write. */
static inline void goro__san_unmap_reset(void *lo, size_t len)
{
#if GORO__ASAN
    __asan_unpoison_memory_region(lo, len);
#else
    (void)lo;
    (void)len;
#endif
}

static inline void *goro__san_fiber_create(void)
{
#if GORO__TSAN
    return __tsan_create_fiber(0);
#else
    return NULL;
#endif
}

static inline void goro__san_fiber_destroy(void *fiber)
{
#if GORO__TSAN
    if (fiber)
        __tsan_destroy_fiber(fiber);
#else
    (void)fiber;
#endif
}

static inline void *goro__san_fiber_current(void)
{
#if GORO__TSAN
    return __tsan_get_current_fiber();
#else
    return NULL;
#endif
}

static inline void goro__san_switch_start(goro__m *m, goro__g *from, goro__g *to, bool dying)
{
#if GORO__ASAN
    void **fake = dying ? NULL : (from ? &from->asan_fake_stack : &m->g0_asan_fake);
    const void *bottom;
    size_t size;
    if (to) {
        bottom = (const void *)to->stack_lo;
        size = to->stack_hi - to->stack_lo;
    } else {
        bottom = (const void *)m->g0_lo;
        size = m->g0_hi - m->g0_lo;
    }
    __sanitizer_start_switch_fiber(fake, bottom, size);
#endif
#if GORO__TSAN
    __tsan_switch_to_fiber(to ? to->tsan_fiber : m->g0_tsan_fiber, 0);
#endif
    (void)m;
    (void)from;
    (void)to;
    (void)dying;
}

static inline void goro__san_switch_finish(goro__m *m)
{
#if GORO__ASAN
    goro__g *cur = m->curg;
    const void *old_bottom;
    size_t old_size;
    __sanitizer_finish_switch_fiber(cur ? cur->asan_fake_stack : m->g0_asan_fake, &old_bottom,
                                    &old_size);
#endif
    (void)m;
}

/* Happens-before edges TSan cannot see: a pointer handed through the kernel
 * (epoll's user data) is published with release before and taken with
 * acquire after. */
static inline void goro__san_release(void *addr)
{
#if GORO__TSAN
    __tsan_release(addr);
#else
    (void)addr;
#endif
}

static inline void goro__san_acquire(void *addr)
{
#if GORO__TSAN
    __tsan_acquire(addr);
#else
    (void)addr;
#endif
}

#endif /* GORO_SANITIZER_H */
