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

#include "runtime/chaos.h"
#include "runtime/internal.h"

typedef struct goro__spinlock {
    _Atomic uint32_t v;
} goro__spinlock;

/* ---- lock ranks (docs/concurrency.md has the table) ----------------------
 * In GORO_LOCKRANK builds (Debug and chaos builds) every acquisition of a
 * runtime lock is checked against the locks the thread already holds: a
 * lock of lower rank than one held is a lock-order violation and aborts
 * with both call sites. Equal ranks may nest (select's channels in address
 * order, a context and its child, a cond and its mutex's queue). Each
 * source file names the rank of the locks it takes by defining
 * GORO__LOCK_RANK before its includes; a call site that takes a lock of
 * another class uses goro__spin_lock_r. Rank 0 is unchecked. */
enum {
    GORO__RANK_ANY = 0,
    GORO__RANK_CTX = 1,
    GORO__RANK_PD = 2,
    GORO__RANK_CHAN = 3, /* channel locks */
    GORO__RANK_SYNC = 3, /* sync primitives' queue locks */
    GORO__RANK_TW = 4,   /* persistent timers */
    GORO__RANK_SCHED = 5,
    GORO__RANK_TIMERS = 6,
    GORO__RANK_ALLOC = 7, /* stacks, registry, newborn records, pd pool */
    GORO__RANK_PROF = 8,  /* profilers' tables (malloc interposer) */
};
#ifndef GORO__LOCK_RANK
#define GORO__LOCK_RANK GORO__RANK_ANY
#endif

#ifdef GORO_LOCKRANK
void goro__lockrank_acquire(const void *l, unsigned rank, const char *file, int line);
void goro__lockrank_release(const void *l);
#define GORO__RANK_ACQ(l, r) goro__lockrank_acquire((l), (r), __FILE__, __LINE__)
#define GORO__RANK_REL(l) goro__lockrank_release(l)
#else
#define GORO__RANK_ACQ(l, r) ((void)0)
#define GORO__RANK_REL(l) ((void)0)
#endif

void goro__spin_lock_slow(goro__spinlock *l);

static inline void goro__spin_lock_raw(goro__spinlock *l)
{
    GORO__CHAOS(GORO__CH_LOCK);
    if (GORO__LIKELY(atomic_exchange_explicit(&l->v, 1, memory_order_acquire) == 0))
        return;
    goro__spin_lock_slow(l);
}

static inline bool goro__spin_trylock_raw(goro__spinlock *l)
{
    return goro__load_relaxed(&l->v) == 0 &&
           atomic_exchange_explicit(&l->v, 1, memory_order_acquire) == 0;
}

static inline void goro__spin_unlock_raw(goro__spinlock *l)
{
    atomic_store_explicit(&l->v, 0, memory_order_release);
    GORO__CHAOS(GORO__CH_UNLOCK);
}

#define goro__spin_lock_r(l, rank)                                             \
    do {                                                                       \
        goro__spinlock *goro__l_ = (l);                                        \
        GORO__RANK_ACQ(goro__l_, (rank));                                      \
        goro__spin_lock_raw(goro__l_);                                         \
    } while (0)
#define goro__spin_lock(l) goro__spin_lock_r((l), GORO__LOCK_RANK)
#ifdef GORO_LOCKRANK
#define goro__spin_trylock(l)                                                  \
    __extension__({                                                            \
        goro__spinlock *goro__l_ = (l);                                        \
        bool goro__ok_ = goro__spin_trylock_raw(goro__l_);                     \
        if (goro__ok_)                                                         \
            GORO__RANK_ACQ(goro__l_, GORO__RANK_ANY);                          \
        goro__ok_;                                                             \
    })
#define goro__spin_unlock(l)                                                   \
    do {                                                                       \
        goro__spinlock *goro__l_ = (l);                                        \
        goro__spin_unlock_raw(goro__l_);                                       \
        GORO__RANK_REL(goro__l_);                                              \
    } while (0)
#else
#define goro__spin_trylock(l) goro__spin_trylock_raw(l)
#define goro__spin_unlock(l) goro__spin_unlock_raw(l)
#endif

/* Futex mutex: 0 unlocked, 1 locked, 2 locked with waiters. */
typedef struct goro__mutex {
    _Atomic uint32_t v;
} goro__mutex;

void goro__mutex_lock_raw(goro__mutex *m);
void goro__mutex_unlock_raw(goro__mutex *m);
#ifndef GORO__MUTEX_RANK
#define GORO__MUTEX_RANK GORO__RANK_ANY
#endif
#define goro__mutex_lock(m)                                                    \
    do {                                                                       \
        goro__mutex *goro__m_ = (m);                                           \
        GORO__RANK_ACQ(goro__m_, GORO__MUTEX_RANK);                            \
        goro__mutex_lock_raw(goro__m_);                                        \
    } while (0)
#define goro__mutex_unlock(m)                                                  \
    do {                                                                       \
        goro__mutex *goro__m_ = (m);                                           \
        goro__mutex_unlock_raw(goro__m_);                                      \
        GORO__RANK_REL(goro__m_);                                              \
    } while (0)

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
