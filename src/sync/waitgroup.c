/*
 * waitgroup.c - goro_waitgroup (Go's sync.WaitGroup).
 *
 * State: one 64-bit atomic word, counter in the high half, and in the low
 * half the number of registered waiters plus a WAKING bit. Add/Done update
 * it with CAS (a bad delta leaves it unchanged) and never take a lock. The
 * Add that brings the counter to zero while waiters are registered clears
 * them and sets WAKING in that same CAS, so it alone owns the wake-up: it
 * pops the queue under sq.lock, clears WAKING and only then readies the
 * waiters - after clearing WAKING it never touches the WaitGroup again, and
 * an Add that sees no waiters does not touch it at all after its CAS (a
 * waiter that returned may already have freed it, as Go allows).
 *
 * Waiters register (waiters+1, only while the counter is positive) under
 * sq.lock before parking. A waiter that times out unregisters itself if
 * the counter is still positive; if the counter reached zero meanwhile,
 * the zeroing Add took over its registration, and the waiter waits for
 * WAKING to clear before returning (so the Add is done with the memory),
 * reporting success. Waits that find the counter at zero return at once,
 * after WAKING clears.
 */
#define GORO__LOCK_RANK GORO__RANK_SYNC /* lock.h */
#include "sync/syncq.h"

#define WG_WAKING (1ull << 31)
#define WG_WAITERS 0x7fffffffull
#define WG_COUNTER(s) ((int32_t)(uint32_t)((s) >> 32))

typedef struct wg_impl {
    _Atomic uint64_t state;
    goro__syncq sq;
} wg_impl;

_Static_assert(sizeof(wg_impl) <= sizeof(goro_waitgroup), "goro_waitgroup too small");

static inline wg_impl *impl(goro_waitgroup *wg) { return (wg_impl *)(void *)wg; }

int goro_waitgroup_add(goro_waitgroup *wg, int delta)
{
    if (!wg)
        return -EINVAL;
    wg_impl *w = impl(wg);
    uint64_t old = atomic_load(&w->state), nw;
    bool wake;
    do {
        int64_t n = (int64_t)WG_COUNTER(old) + delta;
        if (n < 0 || n > INT32_MAX)
            return -EINVAL;
        wake = n == 0 && (old & WG_WAITERS) != 0;
        nw = wake ? WG_WAKING : ((uint64_t)(uint32_t)n << 32) | (old & 0xffffffffull);
    } while (!atomic_compare_exchange_weak(&w->state, &old, nw));
    if (!wake)
        return 0;
    goro__spin_lock(&w->sq.lock);
    goro__waiter *list = goro__syncq_pop_all(&w->sq, 0);
    goro__spin_unlock(&w->sq.lock);
    atomic_fetch_and(&w->state, ~WG_WAKING); /* the last touch of *w */
    goro__syncq_ready_list(list);
    return 0;
}

int goro_waitgroup_done(goro_waitgroup *wg) { return goro_waitgroup_add(wg, -1); }

/* The counter is zero: wait out a wake-up in progress, then return. */
static int wait_woken(wg_impl *w)
{
    while (atomic_load(&w->state) & WG_WAKING)
        goro_yield();
    return 0;
}

GORO__NOINLINE static int wg_wait(wg_impl *w, int64_t deadline)
{
    uint64_t s = atomic_load(&w->state);
    if (WG_COUNTER(s) == 0)
        return wait_woken(w);
    goro__g *g = goro__getg();
    if (!g)
        return -EPERM;
    goro__spin_lock(&w->sq.lock);
    /* Register while the counter is positive. */
    s = atomic_load(&w->state);
    do {
        if (WG_COUNTER(s) == 0) {
            goro__spin_unlock(&w->sq.lock);
            return wait_woken(w);
        }
    } while (!atomic_compare_exchange_weak(&w->state, &s, s + 1));
    if (deadline != GORO_NO_DEADLINE && deadline <= goro__nanotime()) {
        goro__spin_unlock(&w->sq.lock);
        goto timed_out;
    }
    goro__waiter me;
    me.t = 0;
    me.arg = 0;
    if (goro__syncq_park(&w->sq, g, &me, GORO__WAIT_WAITGROUP, w, deadline, false) !=
        GORO__WAKE_TIMEOUT)
        return 0; /* the zeroing Add cleared our registration */
timed_out:
    s = atomic_load(&w->state);
    do {
        if (WG_COUNTER(s) == 0) /* zeroed meanwhile: it owns our registration */
            return wait_woken(w);
    } while (!atomic_compare_exchange_weak(&w->state, &s, s - 1));
    return -ETIMEDOUT;
}

int goro_waitgroup_wait(goro_waitgroup *wg)
{
    if (!wg)
        return -EINVAL;
    goro__g *g = goro__getg();
    if (g)
        GORO__WAIT_FRAME(g);
    return wg_wait(impl(wg), GORO_NO_DEADLINE);
}

int goro_waitgroup_wait_until(goro_waitgroup *wg, int64_t deadline)
{
    if (!wg)
        return -EINVAL;
    goro__g *g = goro__getg();
    if (g)
        GORO__WAIT_FRAME(g);
    return wg_wait(impl(wg), deadline);
}
