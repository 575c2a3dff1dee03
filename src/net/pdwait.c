/*
 * pdwait.c - waiting for a socket: I/O readiness, a deadline and a context
 * in one wait.
 *
 * The goroutine queues one waiter on the poll descriptor (wake value 0:
 * ready, GORO__WAKE_CLOSED: closed) and, when a context is given, a second
 * one on the context's done channel (wake value 1), then parks with the
 * deadline as its timer. Whoever claims it first wins (sched.h); on waking
 * it unqueues whatever is still queued. Lock order: pd lock, then the done
 * channel's lock (closing a channel never takes a pd lock). The done channel
 * stays alive through the context, which the caller must hold for the
 * duration of the call; a stale waiter on it is removed only by us
 * (chan_internal.h). The poll descriptor stays alive through the
 * connection reference the I/O call holds (net.c).
 */
#define GORO__LOCK_RANK GORO__RANK_PD /* lock.h */
#include "chan/chan_internal.h"
#include "runtime/netpoll.h"

#define WAKE_CTX 1

typedef struct pd_commit {
    goro__pd *pd;
    goro_chan *done;
} pd_commit;

static void commit(void *arg)
{
    pd_commit *c = arg;
    goro_chan *done = c->done;
    goro__pd *pd = c->pd;
    /* The goroutine may run as soon as the first lock is released; it then
     * takes both locks before touching these records. */
    if (done)
        goro__spin_unlock(&done->lock);
    goro__spin_unlock(&pd->lock);
}

int goro__pd_wait(goro__pd *pd, int mode, int64_t deadline, goro_ctx *ctx, void *fp)
{
    goro__g *g = goro__getg();
    if (!g)
        return -EPERM;
    if (ctx) {
        int e = goro_ctx_err(ctx);
        if (e)
            return e;
    }
    goro_chan *done = ctx ? goro_ctx_done(ctx) : NULL;
    goro__waitq *q = mode == GORO__PD_READ ? &pd->rq : &pd->wq;
    goro__spin_lock(&pd->lock);
    if (pd->closing) {
        goro__spin_unlock(&pd->lock);
        return -EBADF;
    }
    uint8_t *ready = mode == GORO__PD_READ ? &pd->rready : &pd->wready;
    if (*ready) {
        /* An edge arrived after the operation saw EAGAIN: retry. */
        *ready = 0;
        goro__spin_unlock(&pd->lock);
        return 0;
    }
    if (deadline != GORO_NO_DEADLINE && deadline <= goro__nanotime()) {
        goro__spin_unlock(&pd->lock);
        return -ETIMEDOUT;
    }
    goro__waiter w[2];
    uint64_t seq = goro__park_seq(g);
    uint32_t nw = done ? 2 : 1;
    for (uint32_t i = 0; i < nw; i++) {
        w[i] = (goro__waiter){.g = g, .seq = seq, .index = (int32_t)i};
        w[i].solo = nw == 1 && deadline == GORO_NO_DEADLINE;
    }
    w[0].lock = &pd->lock;
    w[0].obj = pd;
    goro__waitq_push(q, &w[0]);
    if (done) {
        goro__spin_lock_r(&done->lock, GORO__RANK_CHAN);
        if (done->closed) { /* cancelled meanwhile */
            goro__waitq_remove(q, &w[0]);
            goro__spin_unlock(&done->lock);
            goro__spin_unlock(&pd->lock);
            return goro_ctx_err(ctx);
        }
        w[1].lock = &done->lock;
        w[1].obj = done;
        w[1].drop = goro__chan_waiter_drop;
        goro__waitq_push(&done->recvq, &w[1]);
    }
    g->waiting = w;
    g->nwaiting = nw;
    g->wait_fp = fp;
    pd_commit cm = {.pd = pd, .done = done};
    atomic_fetch_add_explicit(&goro__sched_.nwaiting_io, 1, memory_order_relaxed);
    int32_t wake = goro__park(GORO__WAIT_IO, pd, commit, &cm, deadline);
    atomic_fetch_sub_explicit(&goro__sched_.nwaiting_io, 1, memory_order_relaxed);
    g->waiting = NULL;
    g->nwaiting = 0;
    goro__spin_lock(&pd->lock);
    if (w[0].q)
        goro__waitq_remove(q, &w[0]);
    if (done) {
        goro__spin_lock_r(&done->lock, GORO__RANK_CHAN);
        if (w[1].q)
            goro__waitq_remove(&done->recvq, &w[1]);
        goro__spin_unlock(&done->lock);
    }
    goro__spin_unlock(&pd->lock);
    switch (wake) {
    case 0:
        return 0;
    case WAKE_CTX: {
        int e = goro_ctx_err(ctx);
        return e ? e : -ECANCELED;
    }
    case GORO__WAKE_TIMEOUT:
        return -ETIMEDOUT;
    default:
        return -EBADF;
    }
}

size_t goro_num_io_waiting(void)
{
    return goro__running() ? goro__load_relaxed(&goro__sched_.nwaiting_io) : 0;
}
