/*
 * cond.c - goro_cond (Go's sync.Cond) over a goro_mutex.
 *
 * Wait queues itself under the cond's lock, then unlocks the mutex, then
 * parks; the cond lock is released only after the switch (park commit), so
 * a signal sent at any point after the mutex was unlocked finds the waiter
 * queued: no lost wake-ups. Lock order: cond lock, then the mutex's queue
 * lock (never the reverse).
 */
#define GORO__LOCK_RANK GORO__RANK_SYNC /* lock.h */
#include "sync/syncq.h"

bool goro__mutex_is_locked(goro_mutex *m);

typedef struct cond_impl {
    goro__syncq sq;
} cond_impl;

_Static_assert(sizeof(cond_impl) <= sizeof(goro_cond), "goro_cond too small");

static inline cond_impl *impl(goro_cond *c) { return (cond_impl *)(void *)c; }

GORO__NOINLINE static int cond_wait(cond_impl *c, goro_mutex *m, int64_t deadline)
{
    goro__g *g = goro__getg();
    if (!g || !goro__mutex_is_locked(m))
        return -EPERM;
    goro__spin_lock(&c->sq.lock);
    int rc = goro_mutex_unlock(m);
    if (rc) {
        goro__spin_unlock(&c->sq.lock);
        return rc;
    }
    int32_t wake = GORO__WAKE_TIMEOUT;
    if (deadline == GORO_NO_DEADLINE || deadline > goro__nanotime()) {
        goro__waiter me;
        me.t = 0;
        me.arg = 0;
        wake = goro__syncq_park(&c->sq, g, &me, GORO__WAIT_COND, c, deadline, false);
    } else {
        goro__spin_unlock(&c->sq.lock);
    }
    int lrc = goro_mutex_lock(m);
    if (lrc)
        return lrc;
    return wake == GORO__WAKE_TIMEOUT ? -ETIMEDOUT : 0;
}

int goro_cond_wait(goro_cond *c, goro_mutex *m)
{
    if (!c || !m)
        return -EINVAL;
    goro__g *g = goro__getg();
    if (g)
        GORO__WAIT_FRAME(g);
    return cond_wait(impl(c), m, GORO_NO_DEADLINE);
}

int goro_cond_wait_until(goro_cond *c, goro_mutex *m, int64_t deadline)
{
    if (!c || !m)
        return -EINVAL;
    goro__g *g = goro__getg();
    if (g)
        GORO__WAIT_FRAME(g);
    return cond_wait(impl(c), m, deadline);
}

int goro_cond_signal(goro_cond *c)
{
    if (!c)
        return -EINVAL;
    cond_impl *ci = impl(c);
    goro__spin_lock(&ci->sq.lock);
    goro__waiter *w = goro__syncq_pop(&ci->sq, 0);
    goro__spin_unlock(&ci->sq.lock);
    if (w)
        goro__ready(w->g, false);
    return 0;
}

int goro_cond_broadcast(goro_cond *c)
{
    if (!c)
        return -EINVAL;
    cond_impl *ci = impl(c);
    goro__spin_lock(&ci->sq.lock);
    goro__waiter *list = goro__syncq_pop_all(&ci->sq, 0);
    goro__spin_unlock(&ci->sq.lock);
    goro__syncq_ready_list(list);
    return 0;
}
