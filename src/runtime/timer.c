/*
 * timer.c - per-P timer heaps (see timer.h for the states and the contract).
 *
 * Each P owns a 4-ary min-heap of timer pointers ordered by `when`, under the
 * P's timers_lock. p->timer0 mirrors the earliest deadline so the scheduler
 * can check "anything due?" with one relaxed load. Timers are added to the
 * P of the calling thread; any thread holding a P may run another P's due
 * timers (stealers do, so timers of an idle P or of a P stuck in a long
 * computation still fire), and sysmon moves every timer of a P stuck with
 * no idle P around to a P that still switches (goro__timers_move). Adding a
 * timer earlier than the poller's wake-up time breaks the poller's sleep.
 * Persistent timers (context deadlines) outlive the runtime through a
 * pending list (timer.h).
 */
#define GORO__LOCK_RANK GORO__RANK_TIMERS /* lock.h */
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

static void heap_add(goro__p *p, goro__timer *t, int64_t when);

void goro__timer_add(goro__timer *t, int64_t when)
{
    goro__p *p = goro__curp();
    if (!p)
        p = goro__sched_.allp[0];
    t->persist = false;
    heap_add(p, t, when);
}

/* Locked: insert t into p's heap. */
static void heap_insert_locked(goro__p *p, goro__timer *t, int64_t when)
{
    if (when <= 0)
        when = 1; /* 0 means "no timer" in timer0 */
    t->when = when;
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
}

static void heap_add(goro__p *p, goro__timer *t, int64_t when)
{
    goro__spin_lock(&p->timers_lock);
    heap_insert_locked(p, t, when);
    goro__spin_unlock(&p->timers_lock);
    int64_t pu = goro__load_acquire(&goro__sched_.poll_until);
    if (pu && when < pu)
        goro__netpoll_break();
}

/* ---- persistent timers ---------------------------------------------------- */

static goro__spinlock tw_lock;
static bool tw_live;          /* a runtime is running: timers go to heaps */
static goro__timer *pending;  /* persistent timers waiting for a runtime */

static void pending_push(goro__timer *t)
{
    t->pprev = NULL;
    t->pnext = pending;
    if (pending)
        pending->pprev = t;
    pending = t;
    t->idx = -1;
    atomic_store_explicit(&t->p, NULL, memory_order_relaxed);
    atomic_store_explicit(&t->state, GORO__TIMER_PENDING, memory_order_relaxed);
}

static void pending_unlink(goro__timer *t)
{
    if (t->pprev)
        t->pprev->pnext = t->pnext;
    else
        pending = t->pnext;
    if (t->pnext)
        t->pnext->pprev = t->pprev;
    t->pnext = t->pprev = NULL;
}

void goro__timer_add_persist(goro__timer *t, int64_t when)
{
    /* t->persist was set by the owner before t became visible to other
     * threads (goro__timer_del reads it without a lock). */
    goro__spin_lock_r(&tw_lock, GORO__RANK_TW);
    if (!tw_live) {
        t->when = when <= 0 ? 1 : when;
        pending_push(t);
        goro__spin_unlock(&tw_lock);
        return;
    }
    goro__p *p = goro__curp();
    if (!p)
        p = goro__sched_.allp[0];
    heap_add(p, t, when);
    goro__spin_unlock(&tw_lock);
}

void goro__timers_start(goro__p *p0)
{
    goro__spin_lock_r(&tw_lock, GORO__RANK_TW);
    tw_live = true;
    while (pending) {
        goro__timer *t = pending;
        pending_unlink(t);
        atomic_store_explicit(&t->state, GORO__TIMER_IDLE, memory_order_relaxed);
        heap_add(p0, t, t->when);
    }
    goro__spin_unlock(&tw_lock);
}

void goro__timers_stop(void)
{
    goro__spin_lock_r(&tw_lock, GORO__RANK_TW);
    tw_live = false;
    for (uint32_t i = 0; i < goro__sched_.nprocs; i++) {
        goro__p *p = goro__sched_.allp[i];
        if (!p)
            continue;
        goro__spin_lock(&p->timers_lock);
        for (uint32_t k = 0; k < p->ntimers; k++) {
            goro__timer *t = p->timers[k];
            if (t->persist) {
                pending_push(t);
            } else {
                t->idx = -1;
                atomic_store_explicit(&t->p, NULL, memory_order_relaxed);
                atomic_store_explicit(&t->state, GORO__TIMER_IDLE, memory_order_relaxed);
            }
        }
        p->ntimers = 0;
        update_timer0(p);
        goro__spin_unlock(&p->timers_lock);
    }
    goro__spin_unlock(&tw_lock);
}

/* Locked p: remove t if it is still on p's heap. */
static bool heap_take_locked(goro__p *p, goro__timer *t)
{
    if (atomic_load_explicit(&t->p, memory_order_relaxed) != p ||
        atomic_load_explicit(&t->state, memory_order_relaxed) != GORO__TIMER_HEAP)
        return false; /* it moved or fired meanwhile */
    heap_remove(p, (uint32_t)t->idx);
    t->idx = -1;
    atomic_store_explicit(&t->p, NULL, memory_order_relaxed);
    atomic_store_explicit(&t->state, GORO__TIMER_IDLE, memory_order_relaxed);
    return true;
}

/* For a persistent timer, tw_lock is held only to find the timer and lock
 * its heap (so teardown cannot free the heap under us), never while waiting
 * for a firing callback: that callback may itself disarm a child context's
 * timer and need tw_lock. */
bool goro__timer_del(goro__timer *t)
{
    bool persist = t->persist;
    for (unsigned spins = 0;; spins++) {
        if (persist)
            goro__spin_lock_r(&tw_lock, GORO__RANK_TW);
        uint32_t st = atomic_load_explicit(&t->state, memory_order_acquire);
        if (st == GORO__TIMER_PENDING) {
            pending_unlink(t);
            atomic_store_explicit(&t->state, GORO__TIMER_IDLE, memory_order_relaxed);
            goro__spin_unlock(&tw_lock);
            return true;
        }
        goro__p *p = atomic_load_explicit(&t->p, memory_order_acquire);
        if (p) {
            goro__spin_lock(&p->timers_lock);
            if (persist)
                goro__spin_unlock(&tw_lock);
            bool taken = heap_take_locked(p, t);
            goro__spin_unlock(&p->timers_lock);
            if (taken)
                return true;
            continue;
        }
        if (persist)
            goro__spin_unlock(&tw_lock);
        if (st == GORO__TIMER_IDLE)
            return false;
        if (st == GORO__TIMER_FIRING) {
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
        GORO__CHAOS(GORO__CH_TIMER);
        t->fn(t);
        /* Last touch: the owner may reuse t as soon as it sees IDLE. */
        atomic_store_explicit(&t->state, GORO__TIMER_IDLE, memory_order_release);
        ran++;
        goro__spin_lock(&p->timers_lock);
    }
    goro__spin_unlock(&p->timers_lock);
    return ran;
}

int goro__timers_move(goro__p *from, goro__p *to)
{
    if (from == to)
        return 0;
    goro__p *first = from->id < to->id ? from : to, *second = first == from ? to : from;
    goro__spin_lock(&first->timers_lock);
    goro__spin_lock(&second->timers_lock);
    int n = 0;
    int64_t earliest = 0;
    while (from->ntimers) {
        goro__timer *t = from->timers[from->ntimers - 1];
        heap_remove(from, from->ntimers - 1);
        /* Both locks held: goro__timer_del sees it on one heap or the other. */
        heap_insert_locked(to, t, t->when);
        if (!earliest || t->when < earliest)
            earliest = t->when;
        n++;
    }
    goro__spin_unlock(&second->timers_lock);
    goro__spin_unlock(&first->timers_lock);
    int64_t pu = goro__load_acquire(&goro__sched_.poll_until);
    if (n && pu && earliest < pu)
        goro__netpoll_break();
    return n;
}

int64_t goro__timers_next(goro__p *p) { return goro__load_relaxed(&p->timer0); }

void goro__timers_each_stopped(goro__p *p, void (*fn)(goro__timer *t, void *arg), void *arg)
{
    for (uint32_t i = 0; i < p->ntimers; i++)
        fn(p->timers[i], arg);
}

void goro__timers_destroy(goro__p *p)
{
    free(p->timers);
    p->timers = NULL;
    p->ntimers = p->timers_cap = 0;
}
