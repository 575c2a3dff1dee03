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
 *  - a goroutine blocked on a channel holds a reference to it (taken before
 *    parking, dropped after waking), so releasing every other reference
 *    never frees a channel under a waiter;
 *  - waking is claim-then-ready (sched.h): a waiter whose goroutine was
 *    already woken by a timeout or by another select case is skipped.
 * A woken goroutine is readied after the lock is released, into the
 * waker's runnext slot: a hand-off runs next on the same processor.
 */
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
    memset(c, 0, sizeof *c);
    atomic_init(&c->refs, 1);
    c->elem_size = (uint32_t)elem_size;
    c->cap = (uint32_t)cap;
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
    uint32_t old = atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel);
    if (GORO__UNLIKELY(old == 0))
        goro__panic("goro_chan_release: channel %p released more often than retained", (void *)c);
    if (old == 1)
        free(c);
}

void goro__chan_waiter_drop(goro__waiter *w) { goro_chan_release((goro_chan *)w->obj); }

size_t goro_chan_len(const goro_chan *c)
{
    return c ? goro__load_relaxed(&((goro_chan *)c)->count) : 0;
}
size_t goro_chan_cap(const goro_chan *c) { return c ? c->cap : 0; }
size_t goro_chan_elem_size(const goro_chan *c) { return c ? c->elem_size : 0; }

int goro__chan_try_send_locked(goro_chan *c, const void *elem, goro__g **woken)
{
    *woken = NULL;
    if (goro__load_relaxed(&c->closed))
        return -EPIPE;
    goro__waiter *w = goro__chan_dequeue(&c->recvq);
    if (w) {
        if (w->elem && c->elem_size)
            memcpy(w->elem, elem, c->elem_size);
        w->ok = 1;
        *woken = w->g;
        return 1;
    }
    uint32_t n = goro__load_relaxed(&c->count);
    if (n < c->cap) {
        uint32_t x = c->recvx + n;
        if (x >= c->cap)
            x -= c->cap;
        if (c->elem_size)
            memcpy(goro__chan_slot(c, x), elem, c->elem_size);
        goro__store_relaxed(&c->count, n + 1);
        return 1;
    }
    return 0;
}

int goro__chan_try_recv_locked(goro_chan *c, void *elem, bool *ok, goro__g **woken)
{
    *woken = NULL;
    goro__waiter *w = goro__chan_dequeue(&c->sendq);
    if (w) {
        if (c->cap == 0) {
            if (elem && c->elem_size)
                memcpy(elem, w->elem, c->elem_size);
        } else {
            /* Full buffer: take the oldest, append the sender's element. */
            unsigned char *s = goro__chan_slot(c, c->recvx);
            if (c->elem_size) {
                if (elem)
                    memcpy(elem, s, c->elem_size);
                memcpy(s, w->elem, c->elem_size);
            }
            if (++c->recvx == c->cap)
                c->recvx = 0;
        }
        w->ok = 1;
        *woken = w->g;
        *ok = true;
        return 1;
    }
    uint32_t n = goro__load_relaxed(&c->count);
    if (n > 0) {
        if (elem && c->elem_size)
            memcpy(elem, goro__chan_slot(c, c->recvx), c->elem_size);
        if (++c->recvx == c->cap)
            c->recvx = 0;
        goro__store_relaxed(&c->count, n - 1);
        *ok = true;
        return 1;
    }
    if (goro__load_relaxed(&c->closed)) {
        if (elem && c->elem_size)
            memset(elem, 0, c->elem_size);
        *ok = false;
        return 1;
    }
    return 0;
}

/* Block on c's queue q (lock held): returns the wake value. */
static int32_t chan_wait(goro_chan *c, goro__g *g, goro__waitq *q, goro__waiter *me, void *elem,
                         unsigned reason, int64_t deadline)
{
    memset(me, 0, sizeof *me);
    me->g = g;
    me->seq = goro__park_seq(g);
    me->elem = elem;
    me->lock = &c->lock;
    me->obj = c;
    me->drop = goro__chan_waiter_drop;
    goro__waitq_push(q, me);
    goro_chan_retain(c);
    g->waiting = me;
    g->nwaiting = 1;
    int32_t wake = goro__park(reason, c, goro__commit_unlock, &c->lock, deadline);
    g->waiting = NULL;
    g->nwaiting = 0;
    if (wake == GORO__WAKE_TIMEOUT) {
        goro__spin_lock(&c->lock);
        if (me->q)
            goro__waitq_remove(q, me);
        goro__spin_unlock(&c->lock);
    }
    return wake;
}

GORO__NOINLINE static int chan_send(goro_chan *c, const void *elem, bool block, int64_t deadline)
{
    if (!c || (!elem && c->elem_size))
        return -EINVAL;
    goro__g *woken;
    goro__spin_lock(&c->lock);
    int r = goro__chan_try_send_locked(c, elem, &woken);
    if (r != 0) {
        goro__spin_unlock(&c->lock);
        if (woken)
            goro__ready(woken, true);
        return r > 0 ? 0 : r;
    }
    if (!block) {
        goro__spin_unlock(&c->lock);
        return -EAGAIN;
    }
    goro__g *g = goro__getg();
    if (!g) {
        goro__spin_unlock(&c->lock);
        return -EPERM;
    }
    if (deadline != GORO_NO_DEADLINE && deadline <= goro__nanotime()) {
        goro__spin_unlock(&c->lock);
        return -ETIMEDOUT;
    }
    goro__waiter me;
    int32_t wake = chan_wait(c, g, &c->sendq, &me, (void *)elem, GORO__WAIT_CHAN_SEND, deadline);
    bool sent = me.ok;
    goro_chan_release(c);
    if (wake == GORO__WAKE_TIMEOUT)
        return -ETIMEDOUT;
    return sent ? 0 : -EPIPE;
}

GORO__NOINLINE static int chan_recv(goro_chan *c, void *elem, bool *okp, bool block,
                                    int64_t deadline)
{
    if (!c)
        return -EINVAL;
    bool ok = false;
    goro__g *woken;
    goro__spin_lock(&c->lock);
    if (goro__chan_try_recv_locked(c, elem, &ok, &woken)) {
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
    goro__g *g = goro__getg();
    if (!g) {
        goro__spin_unlock(&c->lock);
        return -EPERM;
    }
    if (deadline != GORO_NO_DEADLINE && deadline <= goro__nanotime()) {
        goro__spin_unlock(&c->lock);
        return -ETIMEDOUT;
    }
    goro__waiter me;
    int32_t wake = chan_wait(c, g, &c->recvq, &me, elem, GORO__WAIT_CHAN_RECV, deadline);
    ok = me.ok;
    goro_chan_release(c);
    if (wake == GORO__WAKE_TIMEOUT)
        return -ETIMEDOUT;
    if (okp)
        *okp = ok;
    return 0;
}

/* The public entry points record their frame, so dumps of a blocked
 * goroutine start at the call the user made. */
#define WAIT_FRAME()                                                           \
    do {                                                                       \
        goro__g *g_ = goro__getg();                                            \
        if (g_)                                                                \
            GORO__WAIT_FRAME(g_);                                              \
    } while (0)

int goro_chan_send(goro_chan *c, const void *elem)
{
    WAIT_FRAME();
    return chan_send(c, elem, true, GORO_NO_DEADLINE);
}

int goro_chan_send_until(goro_chan *c, const void *elem, int64_t deadline)
{
    WAIT_FRAME();
    return chan_send(c, elem, true, deadline);
}

int goro_chan_trysend(goro_chan *c, const void *elem)
{
    return chan_send(c, elem, false, GORO_NO_DEADLINE);
}

int goro_chan_recv(goro_chan *c, void *elem, bool *ok)
{
    WAIT_FRAME();
    return chan_recv(c, elem, ok, true, GORO_NO_DEADLINE);
}

int goro_chan_recv_until(goro_chan *c, void *elem, bool *ok, int64_t deadline)
{
    WAIT_FRAME();
    return chan_recv(c, elem, ok, true, deadline);
}

int goro_chan_tryrecv(goro_chan *c, void *elem, bool *ok)
{
    return chan_recv(c, elem, ok, false, GORO_NO_DEADLINE);
}

int goro_chan_close(goro_chan *c)
{
    if (!c)
        return -EINVAL;
    goro__spin_lock(&c->lock);
    if (goro__load_relaxed(&c->closed)) {
        goro__spin_unlock(&c->lock);
        return -EALREADY;
    }
    goro__store_relaxed(&c->closed, 1);
    /* Claim every waiter under the lock, ready them after. */
    goro__waiter *list = NULL;
    goro__waiter *w;
    while ((w = goro__chan_dequeue(&c->recvq))) {
        if (w->elem && c->elem_size)
            memset(w->elem, 0, c->elem_size);
        w->ok = 0;
        w->next = list;
        list = w;
    }
    while ((w = goro__chan_dequeue(&c->sendq))) {
        w->ok = 0;
        w->next = list;
        list = w;
    }
    goro__spin_unlock(&c->lock);
    while (list) {
        w = list;
        list = w->next;
        goro__ready(w->g, false);
    }
    return 0;
}
