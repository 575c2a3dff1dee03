/*
 * chan_internal.h - the channel object, shared by chan.c and select.c.
 *
 * A channel is one malloc block: this 40-byte header (Go's hchan is 96)
 * followed by the ring buffer (elem_size * cap bytes). Everything except
 * `refs` and `count` is protected by `lock`; `count` is an atomic only so
 * that goro_chan_len may read it without the lock. Waiting senders and
 * receivers are goro__waiter records on their own stacks, queued FIFO on
 * sendq/recvq.
 *
 * Lifetime: `refs` counts references. The rule goro.h promises - a
 * goroutine blocked on a channel keeps it alive - must hold until the
 * goroutine is completely done with the channel, not only while its waiter
 * is queued: a woken goroutine that still has to lock the channel (select
 * unqueueing its other cases, a timed wait removing its entry after the
 * timeout) would otherwise race with a waker, or a sender dropping the
 * stale entry, that then releases the last reference and frees it.
 * Two kinds of waiter:
 *  - "solo" waiters (plain send/recv without a deadline) are removed only
 *    by their waker, under the lock, and never touch the channel after
 *    waking. They take no reference (the common blocking path stays free of
 *    extra atomics). A channel whose last reference is dropped while solo
 *    waiters are queued becomes a zombie; nobody can wake them any more (a
 *    wake needs a reference), so they leave only at runtime teardown, whose
 *    last one frees it (goro__chan_waiter_drop).
 *  - every other waiter (select, timed waits, a socket wait's context
 *    channel) takes a reference under the lock before it is queued and
 *    drops it after its last unlock of the channel (goro__chan_unref), so
 *    the channel outlives every touch. Only solo waiters can be queued on a
 *    zombie.
 */
#ifndef GORO_CHAN_INTERNAL_H
#define GORO_CHAN_INTERNAL_H

#include <string.h>

#include "runtime/sched.h"

struct goro_chan {
    goro__spinlock lock;
    _Atomic uint32_t refs;
    uint16_t elem_size;
    uint8_t closed;
    uint8_t zombie;
    uint32_t cap;
    _Atomic uint32_t count;
    uint32_t recvx; /* index of the oldest buffered element */
    goro__waitq recvq;
    goro__waitq sendq;
    _Alignas(8) unsigned char buf[];
};

static inline unsigned char *goro__chan_slot(goro_chan *c, uint32_t i)
{
    return c->buf + (size_t)i * c->elem_size;
}

/* Copy one element; the common sizes become single moves. */
static inline void goro__elem_copy(void *dst, const void *src, uint32_t size)
{
    switch (size) {
    case 0:
        return;
    case 4:
        memcpy(dst, src, 4);
        return;
    case 8:
        memcpy(dst, src, 8);
        return;
    case 16:
        memcpy(dst, src, 16);
        return;
    default:
        memcpy(dst, src, size);
    }
}

/* Locked: pop the first waiter of q whose goroutine can still be claimed;
 * waiters whose goroutine was already woken by something else (a timeout,
 * another select case) are dropped on the way. */
static inline __attribute__((always_inline)) goro__waiter *goro__chan_dequeue(goro__waitq *q)
{
    for (;;) {
        goro__waiter *w = q->head;
        if (!w)
            return NULL;
        goro__waitq_remove(q, w);
        if (goro__claim_waiter(w, w->index))
            return w;
    }
}

/* Locked: true if c is a zombie with nobody left on it (free it after
 * unlocking). */
static inline bool goro__chan_zombie_done(const goro_chan *c)
{
    return c->zombie && !c->recvq.head && !c->sendq.head;
}

/* The teardown hooks of a channel waiter (already unqueued): for a solo
 * waiter, free a zombie channel it was the last waiter of; for a waiter that
 * holds a reference, drop it. */
void goro__chan_waiter_drop(goro__waiter *w);
void goro__chan_waiter_unref(goro__waiter *w);

/* Locked: take the reference of a non-solo waiter (the caller holds a
 * reference or the lock of a live channel, so this is never the first). */
static inline void goro__chan_ref_locked(goro_chan *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

/* Drop a waiter's reference after the last unlock (may free c). */
void goro__chan_unref(goro_chan *c);

/* Locked by the caller: try to complete a send of elem on c without
 * blocking. Returns 1 if done (*woken = receiver to ready after unlocking,
 * or NULL), -EPIPE if closed, 0 if it would block. */
static inline __attribute__((always_inline)) int goro__chan_try_send_locked(goro_chan *c, const void *elem, goro__g **woken)
{
    *woken = NULL;
    if (c->closed)
        return -EPIPE;
    if (c->recvq.head) {
        goro__waiter *w = goro__chan_dequeue(&c->recvq);
        if (w) {
            if (w->elem)
                goro__elem_copy(w->elem, elem, c->elem_size);
            w->ok = 1;
            *woken = w->g;
            return 1;
        }
    }
    uint32_t n = goro__load_relaxed(&c->count);
    if (n < c->cap) {
        uint32_t x = c->recvx + n;
        if (x >= c->cap)
            x -= c->cap;
        goro__elem_copy(goro__chan_slot(c, x), elem, c->elem_size);
        goro__store_relaxed(&c->count, n + 1);
        return 1;
    }
    return 0;
}

/* Locked by the caller: try to complete a receive without blocking.
 * Returns 1 if done (*ok set; *woken = sender to ready), 0 if it would
 * block. */
static inline __attribute__((always_inline)) int goro__chan_try_recv_locked(goro_chan *c, void *elem, bool *ok,
                                             goro__g **woken)
{
    *woken = NULL;
    uint32_t n = goro__load_relaxed(&c->count);
    if (c->sendq.head) {
        goro__waiter *w = goro__chan_dequeue(&c->sendq);
        if (w) {
            if (c->cap == 0) {
                if (elem)
                    goro__elem_copy(elem, w->elem, c->elem_size);
            } else {
                /* Full buffer: take the oldest, append the sender's one. */
                unsigned char *s = goro__chan_slot(c, c->recvx);
                if (elem)
                    goro__elem_copy(elem, s, c->elem_size);
                goro__elem_copy(s, w->elem, c->elem_size);
                if (++c->recvx == c->cap)
                    c->recvx = 0;
            }
            w->ok = 1;
            *woken = w->g;
            *ok = true;
            return 1;
        }
    }
    if (n > 0) {
        if (elem)
            goro__elem_copy(elem, goro__chan_slot(c, c->recvx), c->elem_size);
        if (++c->recvx == c->cap)
            c->recvx = 0;
        goro__store_relaxed(&c->count, n - 1);
        *ok = true;
        return 1;
    }
    if (c->closed) {
        if (elem && c->elem_size)
            memset(elem, 0, c->elem_size);
        *ok = false;
        return 1;
    }
    return 0;
}

#endif /* GORO_CHAN_INTERNAL_H */
