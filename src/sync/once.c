/*
 * once.c - goro_once (Go's sync.Once): the first caller runs fn, every
 * concurrent caller blocks until fn has returned. `done` is read with
 * acquire on the fast path; the rest happens under sq.lock. The runner's
 * goroutine id is kept to turn a recursive call into -EDEADLK instead of a
 * deadlock. If fn ends its goroutine with goro_exit, the once still counts
 * as done (Go's Goexit runs Do's deferred completion): an exit hook on the
 * goroutine (g.h) finishes it, so later callers never block forever.
 */
#define GORO__LOCK_RANK GORO__RANK_SYNC /* lock.h */
#include "sync/syncq.h"

typedef struct once_impl {
    _Atomic uint32_t done;
    uint32_t running;
    goro__syncq sq;
    uint64_t runner; /* goroutine id running fn (0: a foreign thread) */
} once_impl;

_Static_assert(sizeof(once_impl) <= sizeof(goro_once), "goro_once too small");

static inline once_impl *impl(goro_once *o) { return (once_impl *)(void *)o; }

/* fn has returned (or its goroutine is exiting): done, wake the waiters. */
static void finish(once_impl *o)
{
    goro__spin_lock(&o->sq.lock);
    atomic_store_explicit(&o->done, 1, memory_order_release);
    o->running = 0;
    goro__waiter *list = goro__syncq_pop_all(&o->sq, 0);
    goro__spin_unlock(&o->sq.lock);
    goro__syncq_ready_list(list);
}

typedef struct once_exit {
    goro__exit_hook hook;
    once_impl *o;
} once_exit;

static void once_exit_hook(goro__exit_hook *h) { finish(((once_exit *)h)->o); }

int goro_once_do(goro_once *once, goro_fn fn, void *arg)
{
    if (!once || !fn)
        return -EINVAL;
    once_impl *o = impl(once);
    if (atomic_load_explicit(&o->done, memory_order_acquire))
        return 0;
    goro__g *g = goro__getg();
    if (g)
        GORO__WAIT_FRAME(g);
    goro__spin_lock(&o->sq.lock);
    if (atomic_load_explicit(&o->done, memory_order_relaxed)) {
        goro__spin_unlock(&o->sq.lock);
        return 0;
    }
    if (o->running) {
        uint64_t self = g ? g->base.id : 0;
        if (self && o->runner == self) {
            goro__spin_unlock(&o->sq.lock);
            return -EDEADLK;
        }
        if (!g) {
            goro__spin_unlock(&o->sq.lock);
            return -EPERM;
        }
        goro__waiter me;
        me.t = 0;
        me.arg = 0;
        goro__syncq_park(&o->sq, g, &me, GORO__WAIT_ONCE, o, GORO_NO_DEADLINE, false);
        return 0;
    }
    o->running = 1;
    o->runner = g ? g->base.id : 0;
    goro__spin_unlock(&o->sq.lock);
    once_exit ex = {.hook = {.fn = once_exit_hook}, .o = o};
    if (g) { /* fn may end the goroutine with goro_exit: finish then too */
        ex.hook.next = g->exit_hooks;
        g->exit_hooks = &ex.hook;
    }
    fn(arg);
    if (g) {
        g = goro__getg(); /* same goroutine, maybe another thread */
        g->exit_hooks = ex.hook.next;
    }
    finish(o);
    return 1;
}
