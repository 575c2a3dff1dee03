/*
 * syncprof.c - block and mutex profiles.
 *
 * Block profile (Go's runtime.SetBlockProfileRate): every time a goroutine
 * that blocked on a channel, select or sync primitive resumes, goro__park
 * (only when the rate is nonzero) reports the delay. Events of at least
 * `rate` ns are always recorded; shorter ones with probability delay/rate
 * and weight rate/delay, so the totals are unbiased.
 * Mutex profile (Go's runtime.SetMutexProfileFraction): when an unlock hands
 * a contended goro_mutex to a waiter, one event in `fraction` is recorded,
 * with the waiter's delay, under the unlocker's stack, weighted by
 * `fraction`.
 *
 * Records are keyed by stack in two hash tables (malloc'd: these hooks run
 * in goroutines, never inside malloc), each under its own spinlock. Values
 * are cumulative since the process started, as in Go.
 */
#define GORO__LOCK_RANK GORO__RANK_PROF /* lock.h */
#define GORO__MUTEX_RANK GORO__RANK_PROF
#include "prof/syncprof.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/lock.h"
#include "runtime/sched.h"
#include "runtime/unwind.h"

_Atomic int64_t goro__blockprof_rate;
_Atomic int64_t goro__mutexprof_fraction;

#define MAX_DEPTH 64

typedef struct table {
    goro__spinlock lock;
    goro__syncrec **slots;
    size_t cap, n;
} table;

static table tabs[2];

static uint64_t hash_stack(const uintptr_t *pcs, uint32_t n)
{
    uint64_t h = 0x84222325cbf29ce4ull ^ n;
    for (uint32_t i = 0; i < n; i++) {
        h ^= pcs[i];
        h *= 0x100000001b3ull;
        h ^= h >> 31;
    }
    return h;
}

static void add(table *t, const uintptr_t *pcs, uint32_t n, double count, double delay)
{
    uint64_t h = hash_stack(pcs, n);
    goro__spin_lock(&t->lock);
    if (t->n * 2 >= t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 256;
        goro__syncrec **ns = calloc(ncap, sizeof *ns);
        if (!ns) {
            goro__spin_unlock(&t->lock);
            return;
        }
        for (size_t i = 0; i < t->cap; i++)
            for (goro__syncrec *r = t->slots[i], *next; r; r = next) {
                next = r->next;
                r->next = ns[r->hash & (ncap - 1)];
                ns[r->hash & (ncap - 1)] = r;
            }
        free(t->slots);
        t->slots = ns;
        t->cap = ncap;
    }
    goro__syncrec **head = &t->slots[h & (t->cap - 1)], *r;
    for (r = *head; r; r = r->next)
        if (r->hash == h && r->npc == n && !memcmp(r->pcs, pcs, n * sizeof *pcs))
            break;
    if (!r) {
        r = malloc(sizeof *r + n * sizeof *pcs);
        if (!r) {
            goro__spin_unlock(&t->lock);
            return;
        }
        memset(r, 0, sizeof *r);
        r->hash = h;
        r->npc = n;
        memcpy(r->pcs, pcs, n * sizeof *pcs);
        r->next = *head;
        *head = r;
        t->n++;
    }
    r->count += count;
    r->delay += delay;
    goro__spin_unlock(&t->lock);
}

/* The stack of the calling goroutine from the public call's frame fp. */
static uint32_t stack_here(uintptr_t fp, uintptr_t *pcs)
{
    goro__g *g = goro__getg();
    if (!g || !fp)
        return 0;
    return goro__unwind_fp(fp, g->stack_lo, g->stack_hi, pcs, NULL, MAX_DEPTH);
}

void goro__blockprof_record(int64_t delay, uintptr_t fp)
{
    int64_t rate = atomic_load_explicit(&goro__blockprof_rate, memory_order_relaxed);
    if (rate <= 0 || delay <= 0)
        return;
    double w = 1;
    if (delay < rate) {
        if ((int64_t)(goro__rand() % (uint64_t)rate) >= delay)
            return;
        w = (double)rate / (double)delay;
    }
    uintptr_t pcs[MAX_DEPTH];
    uint32_t n = stack_here(fp, pcs);
    add(&tabs[0], pcs, n, w, w * (double)delay);
}

void goro__mutexprof_record(int64_t delay, uintptr_t fp)
{
    int64_t f = atomic_load_explicit(&goro__mutexprof_fraction, memory_order_relaxed);
    if (f <= 0 || delay < 0)
        return;
    if (f > 1 && goro__rand() % (uint64_t)f != 0)
        return;
    uintptr_t pcs[MAX_DEPTH];
    uint32_t n = stack_here(fp, pcs);
    add(&tabs[1], pcs, n, (double)f, (double)f * (double)delay);
}

void goro__syncprof_foreach(int which, goro__syncrec_fn fn, void *arg)
{
    table *t = &tabs[which ? 1 : 0];
    /* Records are never freed: copy the pointers, call out unlocked. */
    goro__spin_lock(&t->lock);
    size_t n = t->n, k = 0;
    goro__syncrec **copy = n ? malloc(n * sizeof *copy) : NULL;
    if (copy)
        for (size_t i = 0; i < t->cap; i++)
            for (goro__syncrec *r = t->slots[i]; r && k < n; r = r->next)
                copy[k++] = r;
    goro__spin_unlock(&t->lock);
    for (size_t i = 0; i < k; i++)
        fn(copy[i], arg);
    free(copy);
}

int64_t goro_block_profile_rate(void) { return atomic_load(&goro__blockprof_rate); }

int goro_set_block_profile_rate(int64_t rate_ns)
{
    if (rate_ns < 0)
        return -EINVAL;
    atomic_store(&goro__blockprof_rate, rate_ns);
    return 0;
}

int goro_mutex_profile_fraction(void) { return (int)atomic_load(&goro__mutexprof_fraction); }

int goro_set_mutex_profile_fraction(int fraction)
{
    if (fraction < 0)
        return -EINVAL;
    atomic_store(&goro__mutexprof_fraction, fraction);
    return 0;
}
