/*
 * syncq.h - the wait queue shared by goro's sync primitives (Mutex,
 * RWMutex, WaitGroup, Once, Cond): a spinlock and a FIFO of waiter records,
 * plus the park/pop helpers that follow the claim-then-ready protocol of
 * sched.h. Each primitive keeps its own state next to a goro__syncq and
 * changes it only under sq.lock (or with atomics for its fast paths).
 */
#ifndef GORO_SYNCQ_H
#define GORO_SYNCQ_H

#include <string.h>

#include "runtime/sched.h"

typedef struct goro__syncq {
    goro__spinlock lock;
    uint32_t n; /* waiters queued */
    goro__waitq q;
} goro__syncq;

/* Called with sq->lock held: queue the calling goroutine (at the front if
 * `front`), park, and return the wake value chosen by the waker, or
 * GORO__WAKE_TIMEOUT (the waiter is then already unqueued). sq->lock is not
 * held on return. `me` must live on the caller's stack; me->t and me->arg
 * may be preset by the caller (they are kept). */
int32_t goro__syncq_park(goro__syncq *sq, goro__g *g, goro__waiter *me, unsigned reason,
                         const void *obj, int64_t deadline, bool front);

/* Locked: unqueue and claim the first waiter that can still be claimed,
 * with wake value `wake`. Returns it (ready it after unlocking) or NULL. */
goro__waiter *goro__syncq_pop(goro__syncq *sq, int32_t wake);

/* Locked: the first queued waiter without unqueueing it, or NULL. */
static inline goro__waiter *goro__syncq_peek(goro__syncq *sq) { return sq->q.head; }

/* Locked: claim every waiter (wake value `wake`); returns them as a list
 * linked through ->next, to be readied with goro__syncq_ready_list after
 * unlocking. */
goro__waiter *goro__syncq_pop_all(goro__syncq *sq, int32_t wake);
void goro__syncq_ready_list(goro__waiter *list);

/* The calling goroutine, or NULL with -EPERM semantics for the caller. */
static inline goro__g *goro__sync_self(void) { return goro__getg(); }

#endif /* GORO_SYNCQ_H */
