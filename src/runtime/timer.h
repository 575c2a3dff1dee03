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
 *
 * Persistent timers (context deadlines) may be armed and disarmed by any
 * thread at any time, also when no runtime is running: their owner can be
 * created before goro_run and released after it returns. Without a runtime
 * they wait on a global pending list (state PENDING); goro_run moves the
 * pending list into P 0's heap, and teardown moves every persistent timer
 * still queued back onto it (other timers belong to goroutines, which
 * teardown discards). One global lock, `tw_lock`, orders these moves with
 * the persistent-timer add/del calls of other threads; goroutine wait
 * timers never take it. Lock order: tw_lock, then a P's timers_lock.
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
    bool persist;                       /* survives the runtime (see above) */
    struct goro__timer *pnext, *pprev;  /* pending list links */
} goro__timer;

enum {
    GORO__TIMER_IDLE = 0,
    GORO__TIMER_HEAP = 1,
    GORO__TIMER_FIRING = 2,
    GORO__TIMER_PENDING = 3 /* persistent, waiting for a runtime */
};

/* Queue t (fn, arg, seq set by the caller) to fire at `when` on the calling
 * thread's P (or P 0 when the thread has none). t must be IDLE. */
void goro__timer_add(goro__timer *t, int64_t when);

/* Remove t. Returns true if it was removed before firing, false if it had
 * already fired (waits for a running callback to finish) or was idle. */
bool goro__timer_del(goro__timer *t);

/* Run the timers of p that are due at `now`. Returns the number run. */
int goro__timers_run(struct goro__p *p, int64_t now);

/* Move every timer of `from` to `to` (sysmon: `from` is stuck in a call
 * that never returns to the scheduler). Returns the number moved. */
int goro__timers_move(struct goro__p *from, struct goro__p *to);

/* Earliest `when` in p's heap, or 0 if empty (racy hint). */
int64_t goro__timers_next(struct goro__p *p);

/* Call fn for every timer in p's heap, without its lock: only with every
 * other thread stopped (the leak scan: armed timers are roots). */
void goro__timers_each_stopped(struct goro__p *p, void (*fn)(goro__timer *t, void *arg), void *arg);

/* Free p's heap storage (runtime teardown). */
void goro__timers_destroy(struct goro__p *p);

/* Persistent timers: arm (any thread, runtime running or not) and disarm.
 * goro__timer_del also works on them. The owner sets t->persist = true
 * (with fn and arg) before any other thread can see t. */
void goro__timer_add_persist(goro__timer *t, int64_t when);

/* goro_run: the runtime's timers are live on p0; pending timers move there.
 * Teardown (single scheduler thread left, Ps still allocated): persistent
 * timers move back to the pending list, the rest are dropped. */
void goro__timers_start(struct goro__p *p0);
void goro__timers_stop(void);

#endif /* GORO_TIMER_H */
