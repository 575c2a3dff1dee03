/*
 * timer.h - runtime timers: one 4-ary min-heap per P.
 *
 * A timer is a small record embedded in its owner (a goroutine's current
 * wait, a context's deadline). It lives in at most one P's heap. States:
 * IDLE (in no heap), HEAP (queued on timer->p), FIRING (popped, callback
 * running). All changes happen under the heap's spinlock except the final
 * FIRING -> IDLE store after the callback returns. goro__timer_del removes a
 * queued timer, or waits for a firing callback to finish, so once it
 * returns the owner may reuse or free the record.
 *
 * Callbacks run on a scheduler thread that holds a P, outside every lock:
 * they must not block (claiming and readying a goroutine, cancelling a
 * context are fine).
 */
#ifndef GORO_TIMER_H
#define GORO_TIMER_H

#include "runtime/internal.h"

struct goro__p;

typedef struct goro__timer {
    int64_t when;
    void (*fn)(struct goro__timer *t);
    void *arg;
    uint64_t seq;
    _Atomic(struct goro__p *) p;
    int32_t idx;
    _Atomic uint32_t state;
} goro__timer;

enum { GORO__TIMER_IDLE = 0, GORO__TIMER_HEAP = 1, GORO__TIMER_FIRING = 2 };

/* Queue t (fn, arg, seq set by the caller) to fire at `when` on the calling
 * thread's P (or P 0 when the thread has none). t must be IDLE. */
void goro__timer_add(goro__timer *t, int64_t when);

/* Remove t. Returns true if it was removed before firing, false if it had
 * already fired (waits for a running callback to finish) or was idle. */
bool goro__timer_del(goro__timer *t);

/* Run the timers of p that are due at `now`. Returns the number run. */
int goro__timers_run(struct goro__p *p, int64_t now);

/* Earliest `when` in p's heap, or 0 if empty (racy hint). */
int64_t goro__timers_next(struct goro__p *p);

/* Free p's heap storage (runtime teardown). */
void goro__timers_destroy(struct goro__p *p);

#endif /* GORO_TIMER_H */
