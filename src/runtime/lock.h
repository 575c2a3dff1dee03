/*
 * lock.h - the runtime's own thread-level locks and futex helpers.
 *
 * Owns: goro__spinlock (short critical sections: channels, wait queues,
 * timer heaps; unlock is a plain release store, contention spins briefly and
 * then yields the CPU), goro__mutex (a three-state futex mutex for the
 * scheduler's rarer, longer sections), and thin futex wrappers.
 *
 * These lock OS threads, never goroutines: a goroutine must not block (park)
 * while holding one, except through the park protocol in sched.c that
 * releases it after the switch.
 */
#ifndef GORO_LOCK_H
#define GORO_LOCK_H

#include "runtime/internal.h"

typedef struct goro__spinlock {
    _Atomic uint32_t v;
} goro__spinlock;

void goro__spin_lock_slow(goro__spinlock *l);

static inline void goro__spin_lock(goro__spinlock *l)
{
    if (GORO__LIKELY(atomic_exchange_explicit(&l->v, 1, memory_order_acquire) == 0))
        return;
    goro__spin_lock_slow(l);
}

static inline bool goro__spin_trylock(goro__spinlock *l)
{
    return goro__load_relaxed(&l->v) == 0 &&
           atomic_exchange_explicit(&l->v, 1, memory_order_acquire) == 0;
}

static inline void goro__spin_unlock(goro__spinlock *l)
{
    atomic_store_explicit(&l->v, 0, memory_order_release);
}

/* Futex mutex: 0 unlocked, 1 locked, 2 locked with waiters. */
typedef struct goro__mutex {
    _Atomic uint32_t v;
} goro__mutex;

void goro__mutex_lock(goro__mutex *m);
void goro__mutex_unlock(goro__mutex *m);

/* Sleep while *addr == val, at most timeout_ns (< 0: no timeout). Returns
 * after a wake, a timeout, a signal or a mismatch; callers re-check. */
void goro__futex_wait(_Atomic uint32_t *addr, uint32_t val, int64_t timeout_ns);
void goro__futex_wake(_Atomic uint32_t *addr, int n);

static inline void goro__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#endif /* GORO_LOCK_H */
