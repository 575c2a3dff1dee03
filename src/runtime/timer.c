/*
 * timer.c - per-P timer heaps (see timer.h for the states and the contract).
 *
 * Each P owns a 4-ary min-heap of timer pointers ordered by `when`, under the
 * P's timers_lock. p->timer0 mirrors the earliest deadline so the scheduler
 * can check "anything due?" with one relaxed load. Timers are added to the
 * P of the calling thread; any thread holding a P may run another P's due
 * timers (stealers do, so timers of an idle P or of a P stuck in a long
 * computation still fire). Adding a timer earlier than the poller's wake-up
 * time breaks the poller's sleep.
 */
#include <sched.h>
#include <stdlib.h>

#include "runtime/sched.h"

static void sift_up(goro__timer **h, uint32_t i)
{
    goro__timer *t = h[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 4;
        if (h[parent]->when <= t->when)
            break;
        h[i] = h[parent];
        h[i]->idx = (int32_t)i;
        i = parent;
    }
    h[i] = t;
    t->idx = (int32_t)i;
}

static void sift_down(goro__timer **h, uint32_t n, uint32_t i)
{
    goro__timer *t = h[i];
    for (;;) {
        uint32_t c = 4 * i + 1;
        if (c >= n)
            break;
        uint32_t best = c;
        for (uint32_t k = c + 1; k < c + 4 && k < n; k++)
            if (h[k]->when < h[best]->when)
                best = k;
        if (h[best]->when >= t->when)
            break;
        h[i] = h[best];
        h[i]->idx = (int32_t)i;
        i = best;
    }
    h[i] = t;
    t->idx = (int32_t)i;
}

static void update_timer0(goro__p *p)
{
    goro__store_relaxed(&p->timer0, p->ntimers ? p->timers[0]->when : 0);
}

/* Locked: remove the timer at index i. */
static void heap_remove(goro__p *p, uint32_t i)
{
    uint32_t last = --p->ntimers;
    if (i != last) {
        p->timers[i] = p->timers[last];
        p->timers[i]->idx = (int32_t)i;
        sift_down(p->timers, p->ntimers, i);
        sift_up(p->timers, (uint32_t)p->timers[i]->idx);
    }
    update_timer0(p);
}

void goro__timer_add(goro__timer *t, int64_t when)
{
    goro__p *p = goro__curp();
    if (!p)
        p = goro__sched_.allp[0];
    if (when <= 0)
        when = 1; /* 0 means "no timer" in timer0 */
    t->when = when;
    goro__spin_lock(&p->timers_lock);
    if (p->ntimers == p->timers_cap) {
        uint32_t ncap = p->timers_cap ? p->timers_cap * 2 : 64;
        goro__timer **nh = realloc(p->timers, ncap * sizeof *nh);
        if (!nh)
            goro__panic("out of memory growing a timer heap");
        p->timers = nh;
        p->timers_cap = ncap;
    }
    uint32_t i = p->ntimers++;
    p->timers[i] = t;
    sift_up(p->timers, i);
    atomic_store_explicit(&t->p, p, memory_order_relaxed);
    atomic_store_explicit(&t->state, GORO__TIMER_HEAP, memory_order_relaxed);
    update_timer0(p);
    goro__spin_unlock(&p->timers_lock);
    int64_t pu = goro__load_acquire(&goro__sched_.poll_until);
    if (pu && when < pu)
        goro__netpoll_break();
}

bool goro__timer_del(goro__timer *t)
{
    for (unsigned spins = 0;; spins++) {
        goro__p *p = atomic_load_explicit(&t->p, memory_order_acquire);
        if (p) {
            goro__spin_lock(&p->timers_lock);
            if (atomic_load_explicit(&t->p, memory_order_relaxed) == p &&
                atomic_load_explicit(&t->state, memory_order_relaxed) == GORO__TIMER_HEAP) {
                heap_remove(p, (uint32_t)t->idx);
                t->idx = -1;
                atomic_store_explicit(&t->p, NULL, memory_order_relaxed);
                atomic_store_explicit(&t->state, GORO__TIMER_IDLE, memory_order_relaxed);
                goro__spin_unlock(&p->timers_lock);
                return true;
            }
            goro__spin_unlock(&p->timers_lock);
            continue; /* it moved or fired meanwhile: look again */
        }
        uint32_t s = atomic_load_explicit(&t->state, memory_order_acquire);
        if (s == GORO__TIMER_IDLE)
            return false;
        if (s == GORO__TIMER_FIRING) {
            if (spins < 64)
                goro__cpu_relax();
            else
                sched_yield();
        }
    }
}

int goro__timers_run(goro__p *p, int64_t now)
{
    int ran = 0;
    goro__spin_lock(&p->timers_lock);
    while (p->ntimers && p->timers[0]->when <= now) {
        goro__timer *t = p->timers[0];
        heap_remove(p, 0);
        t->idx = -1;
        atomic_store_explicit(&t->state, GORO__TIMER_FIRING, memory_order_relaxed);
        atomic_store_explicit(&t->p, NULL, memory_order_relaxed);
        goro__spin_unlock(&p->timers_lock);
        t->fn(t);
        /* Last touch: the owner may reuse t as soon as it sees IDLE. */
        atomic_store_explicit(&t->state, GORO__TIMER_IDLE, memory_order_release);
        ran++;
        goro__spin_lock(&p->timers_lock);
    }
    goro__spin_unlock(&p->timers_lock);
    return ran;
}

int64_t goro__timers_next(goro__p *p) { return goro__load_relaxed(&p->timer0); }

void goro__timers_destroy(goro__p *p)
{
    free(p->timers);
    p->timers = NULL;
    p->ntimers = p->timers_cap = 0;
}
