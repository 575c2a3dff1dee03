/*
 * select.c - goro_select: wait on several channel operations at once.
 *
 * Go's algorithm:
 *  1. shuffle the cases into a random poll order (uniform choice among
 *     ready cases: the first ready case of a uniformly random permutation);
 *     sort the distinct channels by address: the lock order. A case with a
 *     NULL channel is never ready and takes part in neither order (Go's nil
 *     channel idiom); a select whose cases are all NULL blocks like
 *     select {} (or until its deadline);
 *  2. lock every channel, take the first case in poll order that can
 *     proceed, unlock, done;
 *  3. otherwise (blocking) enqueue one waiter per case, all on this stack,
 *     in poll order (so several cases on one channel are served in random
 *     order, not always the lowest index), and park; the commit hook releases the channel locks once we
 *     are off the CPU. The first waker wins the claim (sched.h) and records
 *     the case index; other wakers skip our stale waiters;
 *  4. on waking, lock every channel again except the winning case's (see
 *     below), unqueue our waiters that are still queued, and free a zombie
 *     channel we were the last waiter of.
 * Race windows and what closes them:
 *  - a waker on another thread is still unlocking when we run: step 4
 *    relocks every channel before the waiter records (on our stack) go away;
 *  - the waker releases the last reference right after waking us: we do
 *    not touch the winning channel again (its waiter is gone), and every
 *    other channel still has our waiter queued - nobody but its owner
 *    removes a waiter it cannot claim - so it is alive, a zombie at worst
 *    (chan_internal.h);
 *  - two wakers race for us: the claim CAS picks one; the loser's case
 *    stays untouched (its element is not consumed).
 */
#define GORO__LOCK_RANK GORO__RANK_CHAN /* lock.h */
#include <stdlib.h>
#include <string.h>

#include "chan/chan_internal.h"

#define STACK_CASES 16
#define MAX_CASES 65536

typedef struct sel {
    goro_select_case *cases;
    uint32_t *lockorder; /* case indices sorted by channel address */
    uint32_t n;
} sel;

static inline __attribute__((always_inline)) void sel_lock(const sel *s)
{
    goro_chan *last = NULL;
    for (uint32_t i = 0; i < s->n; i++) {
        goro_chan *c = s->cases[s->lockorder[i]].ch;
        if (c != last)
            goro__spin_lock(&c->lock);
        last = c;
    }
}

/* Reverse order. After the last unlock the selecting goroutine may run and
 * return, so nothing of `s` is read after it. */
static inline __attribute__((always_inline)) void sel_unlock(const sel *s)
{
    goro_chan *last = NULL;
    for (uint32_t i = s->n; i-- > 0;) {
        goro_chan *c = s->cases[s->lockorder[i]].ch;
        if (c != last && last)
            goro__spin_unlock(&last->lock);
        last = c;
    }
    goro__spin_unlock(&last->lock);
}

/* The relock after waking: every channel except `skip` (the winning case's
 * channel when none of our other waiters is on it: the waker unqueued us
 * there and may already have freed it). */
static inline __attribute__((always_inline)) void sel_lock_except(const sel *s, const goro_chan *skip)
{
    goro_chan *last = NULL;
    for (uint32_t i = 0; i < s->n; i++) {
        goro_chan *c = s->cases[s->lockorder[i]].ch;
        if (c != last && c != skip)
            goro__spin_lock(&c->lock);
        last = c;
    }
}

static inline __attribute__((always_inline)) void sel_unlock_except(const sel *s, const goro_chan *skip)
{
    goro_chan *last = NULL;
    for (uint32_t i = s->n; i-- > 0;) {
        goro_chan *c = s->cases[s->lockorder[i]].ch;
        if (c != last && c != skip)
            goro__spin_unlock(&c->lock);
        last = c;
    }
}

static void sel_commit(void *arg) { sel_unlock(arg); }

static int cmp_case(const void *a, const void *b, void *ctx)
{
    const goro_select_case *cases = ctx;
    uintptr_t x = (uintptr_t)cases[*(const uint32_t *)a].ch;
    uintptr_t y = (uintptr_t)cases[*(const uint32_t *)b].ch;
    return x < y ? -1 : x > y;
}

/* A NULL channel is a valid case that is never ready. */
static inline bool case_valid(const goro_select_case *cs)
{
    if (cs->op != GORO_SELECT_RECV && cs->op != GORO_SELECT_SEND)
        return false;
    return !cs->ch || cs->op == GORO_SELECT_RECV || cs->elem || !cs->ch->elem_size;
}

/* pollorder: a uniformly random permutation (Fisher-Yates, 32 random bits
 * per step). lockorder: indices sorted by channel address. Also validates
 * the cases (one pass over them); false if one is invalid. */
static inline bool orders(goro_select_case *cases, uint32_t n, uint32_t *pollorder,
                          uint32_t *lockorder, uint32_t *nlockp)
{
    uint32_t nlock = 0;
    uint64_t r = goro__rand();
    bool half = false;
    pollorder[0] = 0;
    for (uint32_t i = 1; i < n; i++) {
        if (half) {
            r = goro__rand();
            half = false;
        } else {
            half = true;
        }
        uint32_t j = goro__rand_below((uint32_t)r, i + 1);
        r >>= 32;
        pollorder[i] = pollorder[j];
        pollorder[j] = i;
    }
    if (n <= 16) {
        for (uint32_t i = 0; i < n; i++) {
            if (GORO__UNLIKELY(!case_valid(&cases[i])))
                return false;
            if (GORO__UNLIKELY(!cases[i].ch))
                continue;
            uintptr_t key = (uintptr_t)cases[i].ch;
            uint32_t j = nlock++;
            while (j > 0 && (uintptr_t)cases[lockorder[j - 1]].ch > key) {
                lockorder[j] = lockorder[j - 1];
                j--;
            }
            lockorder[j] = i;
        }
    } else {
        for (uint32_t i = 0; i < n; i++) {
            if (!case_valid(&cases[i]))
                return false;
            if (cases[i].ch)
                lockorder[nlock++] = i;
        }
        qsort_r(lockorder, nlock, sizeof *lockorder, cmp_case, cases);
    }
    *nlockp = nlock;
    return true;
}

/* Nothing can ever be ready (no cases, or only NULL channels). */
static int select_none(unsigned flags, int64_t deadline, unsigned reason)
{
    if (flags & GORO_SELECT_NONBLOCK)
        return -EAGAIN;
    goro__g *g = goro__getg();
    if (!g)
        return -EPERM;
    if (deadline != GORO_NO_DEADLINE) {
        while (deadline > goro__nanotime())
            goro__park(reason, NULL, NULL, NULL, deadline);
        return -ETIMEDOUT;
    }
    for (;;) /* never woken: only runtime shutdown ends this */
        goro__park(reason, NULL, NULL, NULL, GORO_NO_DEADLINE);
}

GORO__NOINLINE static int do_select(goro_select_case *cases, uint32_t n, unsigned flags,
                                    int64_t deadline, void *fp)
{
    uint32_t stack_buf[2 * STACK_CASES];
    goro__waiter stack_w[STACK_CASES];
    uint32_t *pollorder = stack_buf, *lockorder = stack_buf + STACK_CASES;
    goro__waiter *ws = stack_w;
    void *heap = NULL;
    if (n > STACK_CASES) {
        heap = malloc(n * (2 * sizeof(uint32_t) + sizeof(goro__waiter)));
        if (!heap)
            return -ENOMEM;
        ws = heap;
        pollorder = (uint32_t *)(ws + n);
        lockorder = pollorder + n;
    }
    uint32_t nlock = 0;
    if (!orders(cases, n, pollorder, lockorder, &nlock)) {
        free(heap);
        return -EINVAL;
    }
    if (GORO__UNLIKELY(nlock == 0)) { /* every channel NULL: nothing can be ready */
        free(heap);
        return select_none(flags, deadline, GORO__WAIT_SELECT);
    }
    sel s = {.cases = cases, .lockorder = lockorder, .n = nlock};

    int result = -EAGAIN;
    goro__g *woken = NULL;
    sel_lock(&s);
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = pollorder[k];
        goro_select_case *cs = &cases[i];
        if (GORO__UNLIKELY(!cs->ch))
            continue;
        if (cs->op == GORO_SELECT_RECV) {
            bool ok;
            if (goro__chan_try_recv_locked(cs->ch, cs->elem, &ok, &woken)) {
                cs->ok = ok;
                result = (int)i;
                break;
            }
        } else {
            int r = goro__chan_try_send_locked(cs->ch, cs->elem, &woken);
            if (r != 0) {
                cs->ok = r > 0; /* closed: chosen, nothing sent */
                result = (int)i;
                break;
            }
        }
    }
    if (result >= 0 || (flags & GORO_SELECT_NONBLOCK)) {
        sel_unlock(&s);
        if (woken)
            goro__ready(woken, true);
        if (GORO__UNLIKELY(heap != NULL))
            free(heap);
        return result;
    }
    goro__g *g = goro__getg();
    if (!g || (deadline != GORO_NO_DEADLINE && deadline <= goro__nanotime())) {
        sel_unlock(&s);
        free(heap);
        return g ? -ETIMEDOUT : -EPERM;
    }

    /* Block: one waiter per non-NULL case, queued in poll order (ws[k]'s
     * case is ws[k].index). No references: our queued waiters keep their
     * channels alive (chan_internal.h). */
    uint64_t seq = goro__park_seq(g);
    uint32_t nw = 0;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = pollorder[k];
        goro_select_case *cs = &cases[i];
        if (!cs->ch)
            continue;
        goro__waiter *w = &ws[nw++];
        w->g = g;
        w->seq = seq;
        w->elem = cs->elem;
        w->lock = &cs->ch->lock;
        w->obj = cs->ch;
        w->index = (int32_t)i;
        w->arg = 0;
        w->t = 0;
        w->ok = 0;
        w->solo = 0;
        w->drop = goro__chan_waiter_drop;
        goro__waitq_push(cs->op == GORO_SELECT_RECV ? &cs->ch->recvq : &cs->ch->sendq, w);
    }
    g->waiting = ws;
    g->nwaiting = nw;
    g->wait_fp = fp;
    GORO__CHAOS(GORO__CH_PARK);
    int32_t wake = goro__park(GORO__WAIT_SELECT, cases[lockorder[0]].ch, sel_commit, &s, deadline);
    g->waiting = NULL;
    g->nwaiting = 0;
    GORO__CHAOS(GORO__CH_SELECT);
    /* The winning case's waiter was unqueued by its waker, who may free that
     * channel at once; all our other waiters are still queued (nobody but
     * us removes a waiter it cannot claim), so their channels are alive. */
    goro_chan *skip = NULL;
    bool chosen_ok = false;
    if (wake >= 0) {
        skip = cases[wake].ch;
        for (uint32_t k = 0; k < nw; k++) {
            if (ws[k].index == wake)
                chosen_ok = ws[k].ok;
            else if (ws[k].obj == skip)
                skip = NULL; /* another of our waiters keeps it alive */
        }
    }
    sel_lock_except(&s, skip);
    for (uint32_t k = 0; k < nw; k++)
        if (ws[k].index != wake && ws[k].q)
            goro__waitq_remove(ws[k].q, &ws[k]);
    /* Zombie channels we were the last waiter of. */
    bool any_done = false;
    for (uint32_t k = 0; k < nlock; k++) {
        goro_chan *c = cases[lockorder[k]].ch;
        if (c != skip && (k == 0 || cases[lockorder[k - 1]].ch != c) &&
            goro__chan_zombie_done(c)) {
            ws[k].arg = 1; /* ws[k] is reused as a mark for lockorder[k] */
            any_done = true;
        }
    }
    sel_unlock_except(&s, skip);
    GORO__CHAOS(GORO__CH_SELECT);
    if (any_done)
        for (uint32_t k = 0; k < nlock; k++)
            if (ws[k].arg)
                free(cases[lockorder[k]].ch);
    if (wake >= 0) {
        cases[wake].ok = chosen_ok;
        result = wake;
    } else {
        result = -ETIMEDOUT;
    }
    if (heap) {
        /* No stale channel pointers in freed memory (leak scan). */
        memset(heap, 0, n * (2 * sizeof(uint32_t) + sizeof(goro__waiter)));
        free(heap);
    }
    return result;
}

int goro_select(goro_select_case *cases, size_t n, unsigned flags, int64_t deadline)
{
    if (n > 0 && !cases)
        return -EINVAL;
    if (n > MAX_CASES)
        return -E2BIG;
    if (n == 0) {
        goro__g *g = goro__getg();
        if (g)
            GORO__WAIT_FRAME(g);
        return select_none(flags, deadline, GORO__WAIT_SELECT_NO_CASES);
    }
    return do_select(cases, (uint32_t)n, flags, deadline, __builtin_frame_address(0));
}
