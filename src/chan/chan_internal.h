/*
 * chan_internal.h - the channel object, shared by chan.c and select.c.
 *
 * A channel is one malloc block: this header followed by the ring buffer
 * (elem_size * cap bytes). 48 bytes for an unbuffered channel (Go: 96).
 * Everything below `refs` is protected by `lock`; `count` and `closed` are
 * atomics only so that goro_chan_len may read them without the lock.
 * Waiting senders and receivers are goro__waiter records on their own
 * stacks, queued FIFO on sendq/recvq.
 */
#ifndef GORO_CHAN_INTERNAL_H
#define GORO_CHAN_INTERNAL_H

#include "runtime/sched.h"

struct goro_chan {
    goro__spinlock lock;
    _Atomic uint32_t refs;
    uint32_t elem_size;
    uint32_t cap;
    _Atomic uint32_t count;
    uint32_t recvx;            /* index of the oldest buffered element */
    _Atomic uint32_t closed;
    goro__waitq recvq;
    goro__waitq sendq;
    _Alignas(8) unsigned char buf[];
};

static inline unsigned char *goro__chan_slot(goro_chan *c, uint32_t i)
{
    return c->buf + (size_t)i * c->elem_size;
}

/* Locked: pop the first waiter of q whose goroutine can still be claimed;
 * waiters whose goroutine was already woken by something else (a timeout,
 * another select case) are dropped on the way. */
static inline goro__waiter *goro__chan_dequeue(goro__waitq *q)
{
    for (;;) {
        goro__waiter *w = q->head;
        if (!w)
            return NULL;
        goro__waitq_remove(q, w);
        if (goro__claim(w->g, w->seq, w->index))
            return w;
    }
}

/* The teardown hook of a channel waiter: drop its channel reference. */
void goro__chan_waiter_drop(goro__waiter *w);

/* Locked by the caller: try to complete a send of elem on c without
 * blocking. Returns 1 if done (*woken = receiver to ready after unlocking,
 * or NULL), -EPIPE if closed, 0 if it would block. */
int goro__chan_try_send_locked(goro_chan *c, const void *elem, goro__g **woken);

/* Locked by the caller: try to complete a receive without blocking.
 * Returns 1 if done (*ok set; *woken = sender to ready), 0 if it would
 * block. */
int goro__chan_try_recv_locked(goro_chan *c, void *elem, bool *ok, goro__g **woken);

#endif /* GORO_CHAN_INTERNAL_H */
