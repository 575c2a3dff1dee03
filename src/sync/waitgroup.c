/*
 * waitgroup.c - goro_waitgroup (Go's sync.WaitGroup).
 *
 * The counter is an atomic updated with CAS (so add/done never take a
 * lock and a bad delta leaves it unchanged); `nwait` counts goroutines that
 * are about to wait or waiting. The two form a Dekker pair (both seq_cst):
 * a waiter increments nwait and then re-reads the counter; an add that
 * brings the counter to zero then reads nwait and, if anyone may be
 * waiting, wakes the queue under its lock. Either the waiter sees zero and
 * leaves, or the adder sees the waiter and wakes it.
 */
#include "sync/syncq.h"

typedef struct wg_impl {
    _Atomic int32_t counter;
    _Atomic uint32_t nwait;
    goro__syncq sq;
} wg_impl;

_Static_assert(sizeof(wg_impl) <= sizeof(goro_waitgroup), "goro_waitgroup too small");

static inline wg_impl *impl(goro_waitgroup *wg) { return (wg_impl *)(void *)wg; }

int goro_waitgroup_add(goro_waitgroup *wg, int delta)
{
    if (!wg)
        return -EINVAL;
    wg_impl *w = impl(wg);
    int32_t c = atomic_load(&w->counter);
    int64_t n;
    do {
        n = (int64_t)c + delta;
        if (n < 0 || n > INT32_MAX)
            return -EINVAL;
    } while (!atomic_compare_exchange_weak(&w->counter, &c, (int32_t)n));
    if (n == 0 && atomic_load(&w->nwait) != 0) {
        goro__spin_lock(&w->sq.lock);
        goro__waiter *list = goro__syncq_pop_all(&w->sq, 0);
        goro__spin_unlock(&w->sq.lock);
        goro__syncq_ready_list(list);
    }
    return 0;
}

int goro_waitgroup_done(goro_waitgroup *wg) { return goro_waitgroup_add(wg, -1); }

GORO__NOINLINE static int wg_wait(wg_impl *w, int64_t deadline)
{
    if (atomic_load(&w->counter) == 0)
        return 0;
    goro__g *g = goro__getg();
    if (!g)
        return -EPERM;
    goro__spin_lock(&w->sq.lock);
    atomic_fetch_add(&w->nwait, 1);
    if (atomic_load(&w->counter) == 0) {
        atomic_fetch_sub(&w->nwait, 1);
        goro__spin_unlock(&w->sq.lock);
        return 0;
    }
    if (deadline != GORO_NO_DEADLINE && deadline <= goro__nanotime()) {
        atomic_fetch_sub(&w->nwait, 1);
        goro__spin_unlock(&w->sq.lock);
        return -ETIMEDOUT;
    }
    goro__waiter me;
    me.t = 0;
    me.arg = 0;
    int32_t wake = goro__syncq_park(&w->sq, g, &me, GORO__WAIT_WAITGROUP, w, deadline, false);
    atomic_fetch_sub(&w->nwait, 1);
    return wake == GORO__WAKE_TIMEOUT ? -ETIMEDOUT : 0;
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
