/*
 * mutex.c - goro_mutex: a goroutine mutex (Go's sync.Mutex).
 *
 * state: bit 0 LOCKED, bit 1 WAITERS (some goroutine is queued; changed only
 * under sq.lock). Lock is one CAS when free; unlock is one CAS when nobody
 * waits. With waiters, unlock wakes the first one:
 *  - normally it releases the lock and the woken goroutine competes for it
 *    with newcomers (they are already on a CPU, so throughput is better); a
 *    waiter that loses goes back to the *front* of the queue;
 *  - once the first waiter has waited more than 1 ms (since it first
 *    queued), unlock hands the lock to it directly (state stays LOCKED), so
 *    no waiter starves. This is Go's normal/starvation mode split, decided
 *    per unlock.
 * A mutex is not owned by a goroutine: any goroutine may unlock it.
 *
 * Wait/wake protocol and its race windows:
 *  W1 contender checks (under sq.lock) and finds it locked; holder unlocks
 *     before the contender is queued. Closed by publishing WAITERS with a CAS
 *     that requires LOCKED (set_waiters_or_acquire): if the holder released
 *     first, the CAS fails and the contender takes the lock instead; if
 *     WAITERS got in first, the holder's fast-path CAS (LOCKED -> 0) fails
 *     and its slow path needs sq.lock, which the contender holds until it
 *     is parked (commit-unlock after the switch), so the holder always
 *     finds the waiter queued.
 *  W2 a timed-out waiter is still queued when unlock pops: the pop claims
 *     with a CAS, fails, and moves on (syncq.h); the timed-out goroutine
 *     unqueues itself under sq.lock and clears WAITERS if it was the last.
 *  W3 a woken (retry) waiter loses to a newcomer: it re-queues at the front
 *     through W1 again, so the hand-off is never lost, only retried.
 * Invariant: WAITERS is set whenever a waiter is queued (sq.n > 0), and is
 * cleared only under sq.lock when sq.n == 0.
 */
#define GORO__LOCK_RANK GORO__RANK_SYNC /* lock.h */
#include "runtime/chaos.h"
#include "prof/syncprof.h"
#include "sync/syncq.h"

#define LOCKED 1u
#define WAITERS 2u
#define STARVE_NS GORO_MILLISECOND
#define WAKE_RETRY 0
#define WAKE_HANDOFF 1

typedef struct mutex_impl {
    _Atomic uint32_t state;
    uint32_t pad;
    goro__syncq sq;
} mutex_impl;

_Static_assert(sizeof(mutex_impl) <= sizeof(goro_mutex), "goro_mutex too small");
_Static_assert(_Alignof(mutex_impl) <= _Alignof(goro_mutex), "goro_mutex misaligned");

static inline mutex_impl *impl(goro_mutex *m) { return (mutex_impl *)(void *)m; }

static inline bool try_acquire(mutex_impl *mi)
{
    uint32_t s = goro__load_relaxed(&mi->state);
    while (!(s & LOCKED)) {
        if (atomic_compare_exchange_weak_explicit(&mi->state, &s, s | LOCKED,
                                                  memory_order_acquire, memory_order_relaxed))
            return true;
    }
    return false;
}

/* Under sq.lock: set WAITERS if the mutex is locked (true), or acquire it
 * if it is free (false). */
static bool set_waiters_or_acquire(mutex_impl *mi)
{
    uint32_t s = goro__load_relaxed(&mi->state);
    for (;;) {
        if (!(s & LOCKED)) {
            if (atomic_compare_exchange_weak_explicit(&mi->state, &s, s | LOCKED,
                                                      memory_order_acquire, memory_order_relaxed))
                return false;
        } else if (s & WAITERS) {
            return true;
        } else if (atomic_compare_exchange_weak_explicit(&mi->state, &s, s | WAITERS,
                                                         memory_order_relaxed,
                                                         memory_order_relaxed)) {
            return true;
        }
    }
}

GORO__NOINLINE static int lock_slow(mutex_impl *mi, int64_t deadline)
{
    for (int i = 0; i < 32; i++) {
        goro__cpu_relax();
        if (try_acquire(mi))
            return 0;
    }
    goro__g *g = goro__sync_self();
    if (!g)
        return -EPERM;
    goro__waiter me;
    me.t = 0;
    me.arg = 0;
    bool front = false;
    for (;;) {
        goro__spin_lock(&mi->sq.lock);
        if (try_acquire(mi)) {
            goro__spin_unlock(&mi->sq.lock);
            return 0;
        }
        if (deadline != GORO_NO_DEADLINE && deadline <= goro__nanotime()) {
            goro__spin_unlock(&mi->sq.lock);
            return -ETIMEDOUT;
        }
        if (me.t == 0)
            me.t = goro__nanotime();
        /* Publish WAITERS only on a mutex that is still locked (one CAS
         * covering both): once WAITERS is set, the holder's unlock cannot
         * take the fast path and must take sq.lock, which we hold until
         * we are parked. If the holder released meanwhile, take the lock. */
        if (!set_waiters_or_acquire(mi)) {
            goro__spin_unlock(&mi->sq.lock);
            return 0;
        }
        GORO__CHAOS(GORO__CH_PARK);
        int32_t wake = goro__syncq_park(&mi->sq, g, &me, GORO__WAIT_MUTEX, mi, deadline, front);
        if (wake == WAKE_HANDOFF)
            return 0;
        if (wake == GORO__WAKE_TIMEOUT) {
            goro__spin_lock(&mi->sq.lock);
            if (mi->sq.n == 0)
                atomic_fetch_and_explicit(&mi->state, ~WAITERS, memory_order_relaxed);
            goro__spin_unlock(&mi->sq.lock);
            return -ETIMEDOUT;
        }
        if (try_acquire(mi))
            return 0;
        front = true; /* lost to a newcomer: wait at the head */
    }
}

int goro_mutex_lock(goro_mutex *m)
{
    if (!m)
        return -EINVAL;
    mutex_impl *mi = impl(m);
    uint32_t zero = 0;
    if (GORO__LIKELY(atomic_compare_exchange_strong_explicit(
            &mi->state, &zero, LOCKED, memory_order_acquire, memory_order_relaxed)))
        return 0;
    goro__g *g = goro__getg();
    if (!g)
        return -EPERM;
    GORO__WAIT_FRAME(g);
    return lock_slow(mi, GORO_NO_DEADLINE);
}

int goro_mutex_lock_until(goro_mutex *m, int64_t deadline)
{
    if (!m)
        return -EINVAL;
    mutex_impl *mi = impl(m);
    if (try_acquire(mi))
        return 0;
    goro__g *g = goro__getg();
    if (!g)
        return -EPERM;
    GORO__WAIT_FRAME(g);
    return lock_slow(mi, deadline);
}

int goro_mutex_trylock(goro_mutex *m)
{
    if (!m)
        return -EINVAL;
    return try_acquire(impl(m)) ? 0 : -EBUSY;
}

/* Mutex profile: fp is goro_mutex_unlock's frame (its caller is the site). */
static void contention(const goro__waiter *w, void *fp)
{
    if (GORO__UNLIKELY(goro__load_relaxed(&goro__mutexprof_fraction) > 0) && w)
        goro__mutexprof_record(goro__nanotime() - w->t, (uintptr_t)fp);
}

int goro_mutex_unlock(goro_mutex *m)
{
    if (!m)
        return -EINVAL;
    mutex_impl *mi = impl(m);
    uint32_t s = LOCKED;
    if (GORO__LIKELY(atomic_compare_exchange_strong_explicit(&mi->state, &s, 0, memory_order_release,
                                                             memory_order_relaxed)))
        return 0;
    if (!(s & LOCKED))
        return -EPERM;
    goro__spin_lock(&mi->sq.lock);
    s = goro__load_relaxed(&mi->state);
    if (!(s & LOCKED)) {
        goro__spin_unlock(&mi->sq.lock);
        return -EPERM;
    }
    goro__waiter *first = goro__syncq_peek(&mi->sq);
    goro__waiter *w = NULL;
    if (first && goro__nanotime() - first->t > STARVE_NS) {
        w = goro__syncq_pop(&mi->sq, WAKE_HANDOFF);
        contention(w, __builtin_frame_address(0));
        if (w) {
            /* Ownership passes to w: the lock stays LOCKED. */
            if (mi->sq.n == 0)
                atomic_fetch_and_explicit(&mi->state, ~WAITERS, memory_order_relaxed);
            goro__spin_unlock(&mi->sq.lock);
            goro__ready(w->g, false);
            return 0;
        }
    }
    w = goro__syncq_pop(&mi->sq, WAKE_RETRY);
    contention(w, __builtin_frame_address(0));
    uint32_t clear = LOCKED | (mi->sq.n == 0 ? WAITERS : 0);
    atomic_fetch_and_explicit(&mi->state, ~clear, memory_order_release);
    goro__spin_unlock(&mi->sq.lock);
    if (w)
        goro__ready(w->g, false);
    return 0;
}

/* For goro_cond: is m locked? */
bool goro__mutex_is_locked(goro_mutex *m);
bool goro__mutex_is_locked(goro_mutex *m)
{
    return (goro__load_relaxed(&impl(m)->state) & LOCKED) != 0;
}
