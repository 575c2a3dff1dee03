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
 * Lifetime: `refs` counts the users' references. The rule goro.h promises -
 * a goroutine blocked on a channel keeps it alive until its call returns -
 * rests on two invariants, so that blocking costs no reference atomics:
 *  (1) a channel whose last reference is dropped while waiters are queued
 *      on it becomes a zombie instead of being freed; whoever removes the
 *      last waiter from a zombie frees it;
 *  (2) a waiter leaves its queue only through its own goroutine or through
 *      the waker that claims it. A waker that meets a waiter it cannot
 *      claim (already woken by a timeout or another select case) skips it
 *      and leaves it queued (goro__chan_dequeue).
 * A woken goroutine that still has to lock a channel - select unqueueing
 * its other cases, a timed wait removing its entry after the timeout -
 * therefore always finds its own waiter still queued there, and (1) keeps
 * the channel alive; the channel of the winning case, whose waiter the
 * waker removed, it does not touch again. (Before (2), a sender dropping a
 * stale entry and then the last reference freed the channel under the
 * timed-out goroutine.) Nobody can wake a zombie's waiters (that needs a
 * reference), so they leave only on a timeout or at runtime teardown.
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
    uintptr_t made_at; /* return address of goro_chan_make (leak reports) */
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

/* Locked: claim and unqueue the first waiter of q whose goroutine can still
 * be claimed. Waiters whose goroutine was already woken by something else
 * (a timeout, another select case) stay queued for their owner to remove
 * (invariant (2) above). */
static inline __attribute__((always_inline)) goro__waiter *goro__chan_dequeue(goro__waitq *q)
{
    goro__waiter *first = q->head;
    if (!first)
        return NULL;
    goro__waiter *w = first;
    do {
        if (goro__claim_waiter(w, w->index)) {
            goro__waitq_remove(q, w);
            return w;
        }
        w = w->next;
    } while (w != first);
    return NULL;
}

/* Locked: true if c is a zombie with nobody left on it (free it after
 * unlocking). */
static inline bool goro__chan_zombie_done(const goro_chan *c)
{
    return c->zombie && !c->recvq.head && !c->sendq.head;
}

/* The teardown hook of a channel waiter (already unqueued): free a zombie
 * channel it was the last waiter of. */
void goro__chan_waiter_drop(goro__waiter *w);

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
        /* The slot keeps a copy of what it held (Go clears it for its GC):
         * clearing it cost up to 4% on the buffered benchmark. The leak
         * scan reads the whole buffer of a reachable channel, so a stale
         * pointer in a consumed slot can hide a leak (README, known limits). */
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
