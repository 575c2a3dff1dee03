/*
 * chan.c - channels: Go's hchan algorithm over goro's wait queues.
 *
 * Invariants (under c->lock):
 *  - if recvq is non-empty, the buffer is empty (receivers wait only on an
 *    empty channel); if sendq is non-empty, the buffer is full;
 *  - an unbuffered send completes by copying straight into the waiting
 *    receiver's destination (and a receive straight from the waiting
 *    sender's source): both live on the parked goroutine's stack, which
 *    cannot move or be resumed until it is claimed and readied;
 *  - a channel is freed when its last reference is dropped and no goroutine
 *    is queued on it, else when the last queued goroutine leaves (zombie,
 *    see chan_internal.h): never under a blocked goroutine;
 *  - waking is claim-then-ready (sched.h): a waiter whose goroutine was
 *    already woken by a timeout or by another select case is skipped.
 * A woken goroutine is readied after the lock is released, into the
 * waker's runnext slot: a hand-off runs next on the same processor.
 *
 * The public calls are thin: the lock, one inline attempt, and an
 * out-of-line slow path that parks. They pass their own frame address
 * down so a goroutine's dump starts at the call the user made.
 */
#define GORO__LOCK_RANK GORO__RANK_CHAN /* lock.h */
#include <stdlib.h>
#include <string.h>

#include "chan/chan_internal.h"

int goro_chan_make(goro_chan **out, size_t elem_size, size_t cap)
{
    if (!out || elem_size > GORO_CHAN_MAX_ELEM || cap > GORO_CHAN_MAX_CAP)
        return -EINVAL;
    size_t bytes = sizeof(goro_chan) + elem_size * cap;
    goro_chan *c = malloc(bytes);
    if (!c)
        return -ENOMEM;
    memset(c, 0, bytes); /* the buffer too: no stale words for the leak scan */
    atomic_init(&c->refs, 1);
    c->elem_size = (uint16_t)elem_size;
    c->cap = (uint32_t)cap;
    c->made_at = (uintptr_t)__builtin_return_address(0);
    *out = c;
    return 0;
}

goro_chan *goro_chan_retain(goro_chan *c)
{
    if (c)
        atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

void goro_chan_release(goro_chan *c)
{
    if (!c)
        return;
    GORO__CHAOS(GORO__CH_REF);
    uint32_t old = atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel);
    if (GORO__UNLIKELY(old == 0))
        goro__panic("goro_chan_release: channel %p released more often than retained", (void *)c);
    if (old != 1)
        return;
    goro__spin_lock(&c->lock);
    bool waiters = c->recvq.head || c->sendq.head;
    if (waiters)
        c->zombie = 1;
    goro__spin_unlock(&c->lock);
    if (!waiters)
        free(c);
}

void goro__chan_waiter_drop(goro__waiter *w)
{
    goro_chan *c = (goro_chan *)w->obj;
    goro__spin_lock(&c->lock);
    bool done = goro__chan_zombie_done(c);
    goro__spin_unlock(&c->lock);
    if (done)
        free(c);
}

size_t goro_chan_len(const goro_chan *c)
{
    return c ? goro__load_relaxed(&((goro_chan *)c)->count) : 0;
}
size_t goro_chan_cap(const goro_chan *c) { return c ? c->cap : 0; }
size_t goro_chan_elem_size(const goro_chan *c) { return c ? c->elem_size : 0; }

/* Lock held: queue the calling goroutine on q and park until woken.
 * Returns the wake value; on return the waiter is unqueued and *ok tells
 * whether a value was transferred. May free a zombie channel. */
static int32_t chan_wait(goro_chan *c, goro__waitq *q, void *elem, unsigned reason,
                         int64_t deadline, void *fp, bool *ok)
{
    goro__m *m = goro__getm();
    goro__g *g = m ? m->curg : NULL;
    if (!g) {
        goro__spin_unlock(&c->lock);
        return -EPERM;
    }
    if (deadline != GORO_NO_DEADLINE && deadline <= goro__nanotime()) {
        goro__spin_unlock(&c->lock);
        return -ETIMEDOUT;
    }
    goro__waiter me;
    me.g = g;
    me.seq = goro__park_seq(g);
    me.elem = elem;
    me.lock = &c->lock;
    me.obj = c;
    me.index = 0;
    me.arg = 0;
    me.t = 0;
    me.ok = 0;
    me.solo = deadline == GORO_NO_DEADLINE;
    me.drop = goro__chan_waiter_drop;
    goro__waitq_push(q, &me);
    g->waiting = &me;
    g->nwaiting = 1;
    g->wait_fp = fp;
    GORO__CHAOS(GORO__CH_PARK);
    int32_t wake = goro__park(reason, c, goro__commit_unlock, &c->lock, deadline);
    g->waiting = NULL;
    g->nwaiting = 0;
    GORO__CHAOS(GORO__CH_WAKE);
    if (wake == GORO__WAKE_TIMEOUT) {
        /* Our waiter is still queued (nobody else removes a waiter it
         * cannot claim), so c is alive: a zombie at worst (chan_internal.h). */
        goro__spin_lock(&c->lock);
        if (me.q)
            goro__waitq_remove(q, &me);
        bool done = goro__chan_zombie_done(c);
        goro__spin_unlock(&c->lock);
        if (done)
            free(c);
        return -ETIMEDOUT;
    }
    *ok = me.ok; /* the waker unqueued us: c is not touched again */
    return 0;
}

GORO__NOINLINE static int send_block(goro_chan *c, const void *elem, int64_t deadline, void *fp)
{
    bool ok = false;
    int rc = chan_wait(c, &c->sendq, (void *)elem, GORO__WAIT_CHAN_SEND, deadline, fp, &ok);
    if (rc)
        return rc;
    return ok ? 0 : -EPIPE;
}

GORO__NOINLINE static int recv_block(goro_chan *c, void *elem, bool *okp, int64_t deadline,
                                     void *fp)
{
    bool ok = false;
    int rc = chan_wait(c, &c->recvq, elem, GORO__WAIT_CHAN_RECV, deadline, fp, &ok);
    if (rc)
        return rc;
    if (okp)
        *okp = ok;
    return 0;
}

static inline __attribute__((always_inline)) int chan_send(goro_chan *c, const void *elem,
                                                           bool block, int64_t deadline, void *fp)
{
    if (GORO__UNLIKELY(!c || (!elem && c->elem_size)))
        return -EINVAL;
    goro__g *woken;
    goro__spin_lock(&c->lock);
    int r = goro__chan_try_send_locked(c, elem, &woken);
    if (GORO__LIKELY(r != 0)) {
        goro__spin_unlock(&c->lock);
        if (woken)
            goro__ready(woken, true);
        return r > 0 ? 0 : r;
    }
    if (!block) {
        goro__spin_unlock(&c->lock);
        return -EAGAIN;
    }
    return send_block(c, elem, deadline, fp);
}

static inline __attribute__((always_inline)) int chan_recv(goro_chan *c, void *elem, bool *okp,
                                                           bool block, int64_t deadline, void *fp)
{
    if (GORO__UNLIKELY(!c))
        return -EINVAL;
    bool ok;
    goro__g *woken;
    goro__spin_lock(&c->lock);
    if (GORO__LIKELY(goro__chan_try_recv_locked(c, elem, &ok, &woken))) {
        goro__spin_unlock(&c->lock);
        if (woken)
            goro__ready(woken, true);
        if (okp)
            *okp = ok;
        return 0;
    }
    if (!block) {
        goro__spin_unlock(&c->lock);
        return -EAGAIN;
    }
    return recv_block(c, elem, okp, deadline, fp);
}

#define FP() __builtin_frame_address(0)

int goro_chan_send(goro_chan *c, const void *elem)
{
    return chan_send(c, elem, true, GORO_NO_DEADLINE, FP());
}

int goro_chan_send_until(goro_chan *c, const void *elem, int64_t deadline)
{
    return chan_send(c, elem, true, deadline, FP());
}

int goro_chan_trysend(goro_chan *c, const void *elem)
{
    return chan_send(c, elem, false, GORO_NO_DEADLINE, NULL);
}

int goro_chan_recv(goro_chan *c, void *elem, bool *ok)
{
    return chan_recv(c, elem, ok, true, GORO_NO_DEADLINE, FP());
}

int goro_chan_recv_until(goro_chan *c, void *elem, bool *ok, int64_t deadline)
{
    return chan_recv(c, elem, ok, true, deadline, FP());
}

int goro_chan_tryrecv(goro_chan *c, void *elem, bool *ok)
{
    return chan_recv(c, elem, ok, false, GORO_NO_DEADLINE, NULL);
}

int goro_chan_close(goro_chan *c)
{
    if (!c)
        return -EINVAL;
    goro__spin_lock(&c->lock);
    if (c->closed) {
        goro__spin_unlock(&c->lock);
        return -EALREADY;
    }
    c->closed = 1;
    /* Claim every waiter under the lock (FIFO), ready them after. */
    goro__waiter *list = NULL, **tail = &list;
    goro__waiter *w;
    while ((w = goro__chan_dequeue(&c->recvq))) {
        if (w->elem && c->elem_size)
            memset(w->elem, 0, c->elem_size);
        w->ok = 0;
        *tail = w;
        tail = &w->next;
    }
    while ((w = goro__chan_dequeue(&c->sendq))) {
        w->ok = 0;
        *tail = w;
        tail = &w->next;
    }
    *tail = NULL;
    goro__spin_unlock(&c->lock);
    while (list) {
        w = list;
        list = w->next;
        goro__ready(w->g, false);
    }
    return 0;
}
