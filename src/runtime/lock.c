/*
 * lock.c - slow paths of the runtime's thread-level locks (see lock.h).
 *
 * The spinlock spins with PAUSE for a short while and then calls
 * sched_yield(): on a shared 2-core machine the holder may have been
 * descheduled, and burning a whole time slice would only delay it further.
 * The futex mutex is Drepper's three-state mutex ("Futexes are tricky").
 */
#include "runtime/lock.h"

#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

void goro__spin_lock_slow(goro__spinlock *l)
{
    for (unsigned i = 0;; i++) {
        if (goro__load_relaxed(&l->v) == 0 &&
            atomic_exchange_explicit(&l->v, 1, memory_order_acquire) == 0)
            return;
        if (i < 64)
            goro__cpu_relax();
        else
            sched_yield();
    }
}

void goro__futex_wait(_Atomic uint32_t *addr, uint32_t val, int64_t timeout_ns)
{
    struct timespec ts, *tp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000;
        ts.tv_nsec = timeout_ns % 1000000000;
        tp = &ts;
    }
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, val, tp, NULL, 0);
}

void goro__futex_wake(_Atomic uint32_t *addr, int n)
{
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

void goro__mutex_lock_raw(goro__mutex *m)
{
    uint32_t c = 0;
    if (atomic_compare_exchange_strong_explicit(&m->v, &c, 1, memory_order_acquire,
                                                memory_order_relaxed))
        return;
    for (int i = 0; i < 100; i++) {
        goro__cpu_relax();
        c = 0;
        if (goro__load_relaxed(&m->v) == 0 &&
            atomic_compare_exchange_weak_explicit(&m->v, &c, 1, memory_order_acquire,
                                                  memory_order_relaxed))
            return;
    }
    if (c != 2)
        c = atomic_exchange_explicit(&m->v, 2, memory_order_acquire);
    while (c != 0) {
        goro__futex_wait(&m->v, 2, -1);
        c = atomic_exchange_explicit(&m->v, 2, memory_order_acquire);
    }
}

void goro__mutex_unlock_raw(goro__mutex *m)
{
    if (atomic_exchange_explicit(&m->v, 0, memory_order_release) == 2)
        goro__futex_wake(&m->v, 1);
}

#ifdef GORO_LOCKRANK
/* The lock-rank checker (lock.h): a small per-thread stack of held locks. */
#include <stdio.h>

#define HELD_MAX 32
/* Lock addresses are kept disguised (XOR) and vacated slots cleared: the
 * leak scan reads thread-local memory as a root, and a plain pointer to a
 * channel's lock is a pointer to the channel. */
#define DISGUISE(p) ((uintptr_t)(p) ^ (uintptr_t)0x5a5a5a5a5a5a5a5aull)
static __thread struct held {
    uintptr_t l;
    unsigned rank;
    const char *file;
    int line;
} held[HELD_MAX];
static __thread unsigned nheld;

void goro__lockrank_acquire(const void *l, unsigned rank, const char *file, int line)
{
    if (rank != GORO__RANK_ANY) {
        for (unsigned i = 0; i < nheld; i++) {
            if (held[i].rank > rank) {
                char msg[512];
                int n = snprintf(msg, sizeof msg,
                                 "goro: lock order violation: taking a rank-%u lock at %s:%d "
                                 "while holding a rank-%u lock taken at %s:%d "
                                 "(docs/concurrency.md, lock order)\n",
                                 rank, file, line, held[i].rank, held[i].file, held[i].line);
                if (n > 0) {
                    ssize_t w = write(2, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
                    (void)w;
                }
                abort();
            }
        }
    }
    if (nheld < HELD_MAX)
        held[nheld] = (struct held){DISGUISE(l), rank, file, line};
    nheld++;
}

void goro__lockrank_release(const void *l)
{
    unsigned n = nheld < HELD_MAX ? nheld : HELD_MAX;
    for (unsigned i = n; i-- > 0;) {
        if (held[i].l == DISGUISE(l)) {
            for (unsigned k = i; k + 1 < n; k++)
                held[k] = held[k + 1];
            held[n - 1] = (struct held){0};
            nheld--;
            return;
        }
    }
    if (nheld > HELD_MAX)
        nheld--; /* an entry beyond the recorded ones */
}
#endif
