/*
 * rwmutex.c - goro_rwmutex: reader/writer lock with Go's policy.
 *
 * State, all under `lock`: readers (active readers), writer (held by a
 * writer), and two queues: rq (readers) and wq (writers; wq.n is the number
 * of waiting writers). A new reader waits while a writer holds the lock or
 * waits for it (writer preference: writers do not starve); when a writer
 * unlocks, every queued reader is let in before the next writer (readers do
 * not starve either). grant() is the single place that hands the lock to
 * waiters after any change (unlock, runlock, a waiter timing out), so a
 * wake-up can never be lost to a waiter that timed out meanwhile. Woken
 * goroutines already own what they asked for; nobody retries.
 */
#define GORO__LOCK_RANK GORO__RANK_SYNC /* lock.h */
#include "sync/syncq.h"

typedef struct rw_impl {
    goro__spinlock lock;
    int32_t readers;
    uint32_t writer;
    uint32_t pad;
    goro__syncq rq; /* queues only: `lock` above protects everything */
    goro__syncq wq;
} rw_impl;

_Static_assert(sizeof(rw_impl) <= sizeof(goro_rwmutex), "goro_rwmutex too small");

static inline rw_impl *impl(goro_rwmutex *rw) { return (rw_impl *)(void *)rw; }

/* Locked: hand the lock to waiters if possible; returns whom to ready. */
static goro__waiter *grant(rw_impl *r, bool readers_first)
{
    if (r->writer)
        return NULL;
    if ((readers_first || r->wq.n == 0) && r->rq.n) {
        goro__waiter *list = goro__syncq_pop_all(&r->rq, 0);
        for (goro__waiter *w = list; w; w = w->next)
            r->readers++;
        if (list)
            return list;
    }
    if (r->readers == 0 && r->wq.n) {
        goro__waiter *w = goro__syncq_pop(&r->wq, 0);
        if (w) {
            r->writer = 1;
            w->next = NULL;
            return w;
        }
        /* Every queued writer had timed out: readers may go now. */
        return grant(r, true);
    }
    return NULL;
}

static void unlock_and_ready(rw_impl *r, goro__waiter *list)
{
    goro__spin_unlock(&r->lock);
    goro__syncq_ready_list(list);
}

static int park_on(rw_impl *r, goro__syncq *q, goro__g *g, unsigned reason, int64_t deadline)
{
    goro__waiter me;
    memset(&me, 0, sizeof me);
    me.g = g;
    me.seq = goro__park_seq(g);
    me.lock = &r->lock;
    me.obj = r;
    me.solo = deadline == GORO_NO_DEADLINE;
    goro__waitq_push(&q->q, &me);
    q->n++;
    g->waiting = &me;
    g->nwaiting = 1;
    int32_t wake = goro__park(reason, r, goro__commit_unlock, &r->lock, deadline);
    g->waiting = NULL;
    g->nwaiting = 0;
    if (wake != GORO__WAKE_TIMEOUT)
        return 0;
    goro__spin_lock(&r->lock);
    if (me.q) {
        goro__waitq_remove(&q->q, &me);
        q->n--;
    }
    unlock_and_ready(r, grant(r, false));
    return -ETIMEDOUT;
}

GORO__NOINLINE static int rlock(rw_impl *r, bool block, int64_t deadline)
{
    goro__spin_lock(&r->lock);
    if (!r->writer && r->wq.n == 0) {
        r->readers++;
        goro__spin_unlock(&r->lock);
        return 0;
    }
    goro__g *g = goro__getg();
    if (!block || !g || (deadline != GORO_NO_DEADLINE && deadline <= goro__nanotime())) {
        goro__spin_unlock(&r->lock);
        return !block ? -EBUSY : !g ? -EPERM : -ETIMEDOUT;
    }
    return park_on(r, &r->rq, g, GORO__WAIT_RWMUTEX_RLOCK, deadline);
}

GORO__NOINLINE static int wlock(rw_impl *r, bool block, int64_t deadline)
{
    goro__spin_lock(&r->lock);
    if (!r->writer && r->readers == 0) {
        r->writer = 1;
        goro__spin_unlock(&r->lock);
        return 0;
    }
    goro__g *g = goro__getg();
    if (!block || !g || (deadline != GORO_NO_DEADLINE && deadline <= goro__nanotime())) {
        goro__spin_unlock(&r->lock);
        return !block ? -EBUSY : !g ? -EPERM : -ETIMEDOUT;
    }
    return park_on(r, &r->wq, g, GORO__WAIT_RWMUTEX_LOCK, deadline);
}

#define FRAME()                                                                \
    do {                                                                       \
        goro__g *g_ = goro__getg();                                            \
        if (g_)                                                                \
            GORO__WAIT_FRAME(g_);                                              \
    } while (0)

int goro_rwmutex_rlock(goro_rwmutex *rw)
{
    if (!rw)
        return -EINVAL;
    FRAME();
    return rlock(impl(rw), true, GORO_NO_DEADLINE);
}

int goro_rwmutex_rlock_until(goro_rwmutex *rw, int64_t deadline)
{
    if (!rw)
        return -EINVAL;
    FRAME();
    return rlock(impl(rw), true, deadline);
}

int goro_rwmutex_tryrlock(goro_rwmutex *rw)
{
    return rw ? rlock(impl(rw), false, GORO_NO_DEADLINE) : -EINVAL;
}

int goro_rwmutex_lock(goro_rwmutex *rw)
{
    if (!rw)
        return -EINVAL;
    FRAME();
    return wlock(impl(rw), true, GORO_NO_DEADLINE);
}

int goro_rwmutex_lock_until(goro_rwmutex *rw, int64_t deadline)
{
    if (!rw)
        return -EINVAL;
    FRAME();
    return wlock(impl(rw), true, deadline);
}

int goro_rwmutex_trylock(goro_rwmutex *rw)
{
    return rw ? wlock(impl(rw), false, GORO_NO_DEADLINE) : -EINVAL;
}

int goro_rwmutex_runlock(goro_rwmutex *rw)
{
    if (!rw)
        return -EINVAL;
    rw_impl *r = impl(rw);
    goro__spin_lock(&r->lock);
    if (r->readers <= 0) {
        goro__spin_unlock(&r->lock);
        return -EPERM;
    }
    r->readers--;
    unlock_and_ready(r, grant(r, false));
    return 0;
}

int goro_rwmutex_unlock(goro_rwmutex *rw)
{
    if (!rw)
        return -EINVAL;
    rw_impl *r = impl(rw);
    goro__spin_lock(&r->lock);
    if (!r->writer) {
        goro__spin_unlock(&r->lock);
        return -EPERM;
    }
    r->writer = 0;
    unlock_and_ready(r, grant(r, true));
    return 0;
}
