/*
 * context.c - cancellation contexts (Go's context.Context).
 *
 * A context is a node in a tree: it holds a reference to its parent; the
 * parent lists its live children (weakly: a child unlinks itself when it is
 * freed). Cancellation sets `err` once, closes the `done` channel (waking
 * every receiver, which is how goroutines wait for it, usually in a select)
 * and cancels all children, depth first, each under its own lock with the
 * parent's lock held (lock order: parent before child, never the reverse;
 * a child that is being freed takes the parent lock only after it dropped
 * its own references, so the orders never cross).
 *
 * A deadline is a runtime timer owned by the context. The timer holds no
 * reference: freeing a context first removes its timer (waiting for a
 * callback that is running to finish), so the callback never sees a freed
 * context. Cancelling from the timer callback itself skips that removal.
 * The timer is persistent (timer.h): a context may be made before goro_run
 * and released after it returns, and its deadline counts across runs.
 * goro_ctx_err also checks the deadline itself, so a context is never
 * reported live past its deadline, even with no runtime to fire the timer.
 *
 * The background context is a static object with a static done channel
 * that is never closed.
 */
#define GORO__LOCK_RANK GORO__RANK_CTX /* lock.h */
#include <stdlib.h>
#include <string.h>

#include "chan/chan_internal.h"
#include "sync/syncq.h"

struct goro_ctx {
    _Atomic uint32_t refs;
    goro__spinlock lock;
    _Atomic int err;
    bool background;
    bool has_timer;
    int64_t deadline;
    goro_ctx *parent;
    goro_ctx *child_head;     /* live children (under lock) */
    goro_ctx *sib_prev, *sib_next;
    goro_chan *done;
    goro__timer timer;
};

static goro_chan bg_done = {.refs = 1};
static goro_ctx bg = {.refs = 1, .background = true, .deadline = GORO_NO_DEADLINE, .done = &bg_done};

goro_ctx *goro_ctx_background(void) { return &bg; }

goro_ctx *goro_ctx_retain(goro_ctx *c)
{
    if (c && !c->background)
        atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

/* Cancel c (lock not held) and its subtree with err. */
static void cancel(goro_ctx *c, int err, bool from_timer);

/* Locked parent: cancel every child (called with parent->lock held). */
static void cancel_children_locked(goro_ctx *c, int err)
{
    for (goro_ctx *ch = c->child_head; ch; ch = ch->sib_next)
        cancel(ch, err, false);
}

static void cancel(goro_ctx *c, int err, bool from_timer)
{
    if (c->background)
        return;
    goro__spin_lock(&c->lock);
    int zero = 0;
    if (!atomic_compare_exchange_strong(&c->err, &zero, err)) {
        goro__spin_unlock(&c->lock);
        return;
    }
    goro_chan_close(c->done);
    cancel_children_locked(c, err);
    goro__spin_unlock(&c->lock);
    if (c->has_timer && !from_timer)
        goro__timer_del(&c->timer);
}

static void deadline_fired(goro__timer *t) { cancel(t->arg, -ETIMEDOUT, true); }

static int make_child(goro_ctx *parent, int64_t deadline, goro_ctx **out)
{
    if (!out)
        return -EINVAL;
    if (!parent)
        parent = &bg;
    goro_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    int rc = goro_chan_make(&c->done, 0, 0);
    if (rc) {
        free(c);
        return rc;
    }
    atomic_init(&c->refs, 1);
    c->deadline = deadline < parent->deadline ? deadline : parent->deadline;
    c->parent = goro_ctx_retain(parent);
    /* Everything a canceller reads (has_timer, the timer's fields) is set
     * before the child is linked under its parent: a parent's cancel may
     * reach the child as soon as the parent lock is released. The timer
     * itself is armed after (an idle timer's removal is a no-op). */
    if (c->deadline != GORO_NO_DEADLINE) {
        c->timer.fn = deadline_fired;
        c->timer.arg = c;
        c->timer.idx = -1;
        c->timer.persist = true;
        c->has_timer = true;
    }
    if (!parent->background) {
        goro__spin_lock(&parent->lock);
        int perr = atomic_load(&parent->err);
        if (perr) {
            atomic_store(&c->err, perr);
            goro_chan_close(c->done);
        } else {
            c->sib_next = parent->child_head;
            if (parent->child_head)
                parent->child_head->sib_prev = c;
            parent->child_head = c;
        }
        goro__spin_unlock(&parent->lock);
    }
    if (c->deadline != GORO_NO_DEADLINE && atomic_load(&c->err) == 0) {
        if (c->deadline <= goro__nanotime()) {
            cancel(c, -ETIMEDOUT, true);
        } else {
            /* Armed whether or not a runtime runs now: a persistent timer
             * waits for one (timer.h). */
            goro__timer_add_persist(&c->timer, c->deadline);
        }
    }
    *out = c;
    return 0;
}

int goro_ctx_with_cancel(goro_ctx *parent, goro_ctx **out)
{
    return make_child(parent, GORO_NO_DEADLINE, out);
}

int goro_ctx_with_deadline(goro_ctx *parent, int64_t deadline, goro_ctx **out)
{
    return make_child(parent, deadline, out);
}

int goro_ctx_with_timeout(goro_ctx *parent, int64_t timeout, goro_ctx **out)
{
    return make_child(parent, goro_deadline_after(timeout), out);
}

void goro_ctx_cancel(goro_ctx *c)
{
    if (c)
        cancel(c, -ECANCELED, false);
}

goro_chan *goro_ctx_done(goro_ctx *c) { return c ? c->done : NULL; }

int goro_ctx_err(const goro_ctx *c)
{
    if (!c)
        return 0;
    goro_ctx *m = (goro_ctx *)c;
    int e = atomic_load(&m->err);
    /* A passed deadline counts even before its timer ran (no runtime, or a
     * busy processor): Err never reports a live context past its deadline. */
    if (!e && m->deadline != GORO_NO_DEADLINE && !m->background &&
        m->deadline <= goro__nanotime()) {
        cancel(m, -ETIMEDOUT, false);
        e = atomic_load(&m->err);
    }
    return e;
}

int64_t goro_ctx_deadline(const goro_ctx *c) { return c ? c->deadline : GORO_NO_DEADLINE; }

void goro_ctx_release(goro_ctx *c)
{
    if (!c || c->background)
        return;
    uint32_t old = atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel);
    if (old == 0)
        goro__panic("goro_ctx_release: context %p released more often than retained", (void *)c);
    if (old != 1)
        return;
    /* Last reference: stop the timer (waits for a running callback), cancel
     * the subtree if still live, unlink from the parent, free. */
    if (c->has_timer)
        goro__timer_del(&c->timer);
    cancel(c, -ECANCELED, true);
    goro_ctx *p = c->parent;
    if (p && !p->background) {
        goro__spin_lock(&p->lock);
        if (c->sib_prev)
            c->sib_prev->sib_next = c->sib_next;
        else if (p->child_head == c)
            p->child_head = c->sib_next;
        if (c->sib_next)
            c->sib_next->sib_prev = c->sib_prev;
        goro__spin_unlock(&p->lock);
    }
    goro_chan_release(c->done);
    memset(c, 0, sizeof *c); /* no stale channel pointer in freed memory */
    free(c);
    goro_ctx_release(p);
}

int goro_ctx_wait(goro_ctx *c, int64_t deadline)
{
    if (!c)
        return -EINVAL;
    goro__g *g = goro__getg();
    if (!g)
        return -EPERM;
    GORO__WAIT_FRAME(g);
    int e = goro_ctx_err(c);
    if (e)
        return e;
    int rc = goro_chan_recv_until(c->done, NULL, NULL, deadline);
    if (rc == -ETIMEDOUT)
        return -ETIMEDOUT;
    return goro_ctx_err(c);
}
