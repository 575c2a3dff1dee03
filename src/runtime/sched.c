/*
 * sched.c - the M:N work-stealing scheduler.
 *
 * Model (Go's G/M/P):
 *  - G: a goroutine (g.h). Runs on a stack of its own.
 *  - M: an OS thread. Each M has a scheduler context ("g0") on its native
 *    thread stack where it looks for work and sleeps.
 *  - P: a processor, the right to run goroutines. There are `nprocs` Ps
 *    (GORO_PROCS); an M must hold a P to run goroutines, so at most nprocs
 *    goroutines run at once. Each P has a bounded local run queue (a ring of
 *    256 written only by the owner and stolen from by others with CAS), a
 *    `runnext` slot, a timer heap, and caches (stacks, registry slots, ids,
 *    newborn records) that need no locks.
 *  - The global run queue (under sched.lock) takes local-queue overflow and
 *    goroutines readied by threads without a P. Each P checks it every 61
 *    schedules so nothing starves there.
 *
 * Switching. A goroutine that blocks, yields or exits records what must be
 * finished *after* it is off its stack in m->after (mark WAITING, arm its
 * timer, unlock the queue lock it parked on; or requeue it; or free its
 * stack) and switches directly to the next runnable goroutine of its P
 * (runnext first), or to g0 when there is none. Whatever context resumes
 * next runs goro__after_switch() first. Because the lock protecting a wait
 * queue is released only after the waiter's registers are saved, a waker can
 * never resume a goroutine that is still running (Go's gopark unlockf).
 *
 * Waking. Anyone may claim a WAITING goroutine (goro__claim: CAS on the
 * status word with the wait's sequence number, see g.h); the winner readies
 * it onto its own P. A goroutine readied by a channel hand-off goes to
 * runnext and runs as soon as the waker blocks (ping-pong stays on one P
 * without waking other threads). Other threads are woken (wakep) only when
 * there is work beyond that one goroutine: a spawned goroutine, a displaced
 * runnext, a non-empty local queue, or a yield. When the current goroutine
 * instead keeps running, sysmon marks the P "stuck" after ~10 ms and wakes a
 * thread, and stealers may then take runnext as well.
 *
 * Finding work (findrunnable, on g0): own timers, local queue, global queue,
 * then (if fewer than half the busy Ps are already spinning) steal half of
 * a random victim's queue and run its due timers; the last round may take
 * runnext of stuck Ps. With nothing found the M releases its P, re-checks
 * every queue (a spinning M must not go to sleep while work is queued: the
 * "spinning" handshake of Go's scheduler), and then either becomes the
 * single poller (sleeps in epoll_wait until the earliest timer or I/O) or
 * parks on its futex. Idle threads use no CPU.
 *
 * Timers. Due timers of the current P run once per switch: before it, so
 * what they ready can run next, or - when the goroutine leaving holds a
 * queue lock until its commit - right after that commit (run_due_timers):
 * a callback may need that very lock. A P stuck in
 * one goroutine (a raw blocking call) has its queue and timers handed to
 * other Ps by sysmon (goro__sched_handoff_stuck).
 *
 * Deadlock. When the last M goes to sleep with every P idle, no timers, no
 * I/O waiters, no blocking calls in flight and goroutines still existing,
 * every goroutine is blocked on goro primitives forever: print Go's
 * "fatal error: all goroutines are asleep - deadlock!" and a dump, exit 2 -
 * unless a thread the runtime did not create exists (it may still wake a
 * goroutine through a non-blocking call).
 *
 * Race windows and what closes each: docs/concurrency.md (one table for
 * the whole runtime, with the lock order).
 *
 * No preemption: C code cannot be interrupted safely (a goroutine stopped
 * inside malloc holding its lock would deadlock the next one on that
 * thread). Sysmon reports goroutines that run too long instead.
 *
 * Locking: sched.lock (futex mutex) protects the idle P and M lists and the
 * global queue; it is never held while switching or while taking another
 * runtime lock except the timer heap locks in the deadlock check.
 * Local run queues are lock-free (owner pushes; anyone pops/steals by CAS on
 * the head). m->after is owned by its M.
 */
#define GORO__LOCK_RANK GORO__RANK_TIMERS /* lock.h */
#define GORO__MUTEX_RANK GORO__RANK_SCHED
#include "runtime/sched.h"

#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "debug/watchdog.h"
#include "prof/cpuprof.h"
#include "prof/heapprof.h"
#include "prof/syncprof.h"
#include "runtime/netpoll.h"
#include "runtime/sanitizer.h"
#include "runtime/unwind.h"

goro__sched goro__sched_;
#define S goro__sched_

__thread goro__m *goro__tls_m __attribute__((tls_model("initial-exec")));
#define tls_m goro__tls_m
static _Atomic uint32_t rt_active;
static _Atomic uint32_t rt_running;

void goro__ctx_switch(void **save, void *to);
void goro__ctx_trampoline(void);
void goro__after_switch(void);

#if defined(__x86_64__)
ptrdiff_t goro__tls_m_off;

/* The offset of goro__tls_m from the thread pointer is the same in every
 * thread (static TLS); compute it before anything can call goro__getm. */
__attribute__((constructor)) static void tls_offset_init(void)
{
    char *tp;
    __asm__ __volatile__("movq %%fs:0, %0" : "=r"(tp));
    goro__tls_m_off = (char *)&goro__tls_m - tp;
}
#else
/* Out of line: a compiler could otherwise reuse a TLS address computed
 * before a context switch, on another thread. */
GORO__NOINLINE goro__m *goro__getm(void)
{
    goro__m *m = tls_m;
    __asm__ __volatile__("" ::: "memory");
    return m;
}
#endif

bool goro__running(void) { return goro__load_acquire(&rt_running) != 0; }

goro__p *goro__curp(void)
{
    goro__m *m = goro__getm();
    return m ? m->p : NULL;
}

/* ---- randomness ------------------------------------------------------------ */

static __thread uint64_t tls_rng;

uint64_t *goro__rand_state_slow(void)
{
    if (GORO__UNLIKELY(tls_rng == 0))
        tls_rng = (uint64_t)goro__nanotime() ^ (uint64_t)(uintptr_t)&tls_rng;
    return &tls_rng;
}

/* ---- run queues ---------------------------------------------------------- */

/* The global queue is a growable ring of pointers (under sched.lock), so
 * batches move as contiguous copies, never by chasing links through the
 * goroutine records. */
static void globrunq_put_locked(goro__gbase *gb)
{
    uint32_t size = goro__load_relaxed(&S.gq_size);
    if (GORO__UNLIKELY(size == S.gq_cap)) {
        uint32_t ncap = S.gq_cap ? S.gq_cap * 2 : 1024;
        goro__gbase **nq = malloc((size_t)ncap * sizeof *nq);
        if (!nq)
            goro__panic("out of memory growing the global run queue");
        for (uint32_t i = 0; i < size; i++)
            nq[i] = S.gq[(S.gq_head + i) % S.gq_cap];
        free(S.gq);
        S.gq = nq;
        S.gq_cap = ncap;
        S.gq_head = 0;
    }
    S.gq[(S.gq_head + size) % S.gq_cap] = gb;
    atomic_store_explicit(&S.gq_size, size + 1, memory_order_relaxed);
}

static void globrunq_put(goro__gbase *gb)
{
    goro__mutex_lock(&S.lock);
    globrunq_put_locked(gb);
    goro__mutex_unlock(&S.lock);
}

/* Move half of p's local queue plus gb to the global queue (owner only). */
static bool runqput_slow(goro__p *p, goro__gbase *gb, uint32_t h, uint32_t t)
{
    goro__gbase *batch[GORO__RUNQ_SIZE / 2 + 1];
    uint32_t n = (t - h) / 2;
    for (uint32_t i = 0; i < n; i++)
        batch[i] = goro__load_relaxed(&p->runq[(h + i) % GORO__RUNQ_SIZE]);
    uint32_t hh = h;
    if (!atomic_compare_exchange_strong_explicit(&p->runqhead, &hh, h + n, memory_order_release,
                                                 memory_order_relaxed))
        return false;
    batch[n++] = gb;
    goro__mutex_lock(&S.lock);
    for (uint32_t i = 0; i < n; i++)
        globrunq_put_locked(batch[i]);
    goro__mutex_unlock(&S.lock);
    return true;
}

/* Put gb on p's queue (owner only). Returns true when p now has queued work
 * beyond a lone runnext, i.e. when another thread could help. */
static inline __attribute__((always_inline)) bool runqput(goro__p *p, goro__gbase *gb, bool next)
{
    bool more = !next;
    if (next) {
        goro__gbase *old = atomic_exchange_explicit(&p->runnext, gb, memory_order_acq_rel);
        if (!old)
            return goro__load_relaxed(&p->runqtail) != goro__load_acquire(&p->runqhead);
        gb = old;
        more = true;
    }
    for (;;) {
        uint32_t h = goro__load_acquire(&p->runqhead);
        uint32_t t = goro__load_relaxed(&p->runqtail);
        if (t - h < GORO__RUNQ_SIZE) {
            goro__store_relaxed(&p->runq[t % GORO__RUNQ_SIZE], gb);
            goro__store_release(&p->runqtail, t + 1);
            return more;
        }
        if (runqput_slow(p, gb, h, t))
            return true;
    }
}

/* Take the next goroutine of p (owner only): runnext first, unless the
 * current time slice is used up (p->stuck), in which case the queue head
 * goes first. *inherit is set when the goroutine continues the slice. */
static inline __attribute__((always_inline)) goro__gbase *runqget(goro__p *p, bool *inherit)
{
    if (goro__load_relaxed(&p->runnext) && GORO__LIKELY(!goro__load_relaxed(&p->stuck))) {
        goro__gbase *next = atomic_exchange_explicit(&p->runnext, NULL, memory_order_acquire);
        if (next) {
            *inherit = true;
            return next;
        }
    }
    *inherit = false;
    for (;;) {
        uint32_t h = goro__load_acquire(&p->runqhead);
        uint32_t t = goro__load_relaxed(&p->runqtail);
        if (t == h) {
            /* Queue empty: runnext (a stuck P skipped it above). */
            goro__gbase *next = atomic_exchange_explicit(&p->runnext, NULL, memory_order_acquire);
            *inherit = next != NULL;
            return next;
        }
        goro__gbase *gb = goro__load_relaxed(&p->runq[h % GORO__RUNQ_SIZE]);
        if (atomic_compare_exchange_weak_explicit(&p->runqhead, &h, h + 1, memory_order_release,
                                                  memory_order_relaxed))
            return gb;
    }
}

static bool runq_empty(goro__p *p)
{
    return goro__load_acquire(&p->runqhead) == goro__load_acquire(&p->runqtail) &&
           goro__load_relaxed(&p->runnext) == NULL;
}

/* Steal half of victim's queue into p's (p's queue is empty: we are idle).
 * Returns one goroutine to run now, or NULL. */
static goro__gbase *runqsteal(goro__p *p, goro__p *victim, bool take_next)
{
    uint32_t t = goro__load_relaxed(&p->runqtail);
    for (;;) {
        uint32_t h = goro__load_acquire(&victim->runqhead);
        uint32_t vt = goro__load_acquire(&victim->runqtail);
        uint32_t n = vt - h;
        n -= n / 2;
        if (n == 0) {
            if (!take_next)
                return NULL;
            goro__gbase *next = goro__load_relaxed(&victim->runnext);
            if (next && atomic_compare_exchange_strong_explicit(
                            &victim->runnext, &next, NULL, memory_order_acq_rel,
                            memory_order_relaxed))
                return next;
            return NULL;
        }
        if (n > GORO__RUNQ_SIZE / 2)
            continue; /* inconsistent read of head/tail; retry */
        for (uint32_t i = 0; i < n; i++) {
            goro__gbase *gb = goro__load_relaxed(&victim->runq[(h + i) % GORO__RUNQ_SIZE]);
            goro__store_relaxed(&p->runq[(t + i) % GORO__RUNQ_SIZE], gb);
        }
        if (atomic_compare_exchange_strong_explicit(&victim->runqhead, &h, h + n,
                                                    memory_order_acq_rel, memory_order_relaxed)) {
            n--;
            goro__gbase *gb = goro__load_relaxed(&p->runq[(t + n) % GORO__RUNQ_SIZE]);
            if (n)
                goro__store_release(&p->runqtail, t + n);
            return gb;
        }
    }
}

/* Sysmon: v has not switched for a whole period (a goroutine in a raw
 * blocking system call or a long computation) and no processor is idle to
 * steal from it. Hand its queued goroutines (runnext included) to the
 * global queue, which every running processor serves at least every 61
 * schedules, and its timers to a processor that is still switching, whose
 * owner runs them at its next switch. Safe against v's owner: the run
 * queue is multi-consumer (CAS on the head), runnext is taken by CAS, and
 * timer moves hold both heap locks. Returns the goroutines moved. */
uint32_t goro__sched_handoff_stuck(goro__p *v)
{
    goro__gbase *batch[GORO__RUNQ_SIZE + 1];
    uint32_t n = 0;
    for (;;) {
        uint32_t h = goro__load_acquire(&v->runqhead);
        uint32_t t = goro__load_acquire(&v->runqtail);
        uint32_t k = t - h;
        if (k > GORO__RUNQ_SIZE)
            continue; /* inconsistent read; retry */
        for (uint32_t i = 0; i < k; i++)
            batch[i] = goro__load_relaxed(&v->runq[(h + i) % GORO__RUNQ_SIZE]);
        if (atomic_compare_exchange_strong_explicit(&v->runqhead, &h, h + k, memory_order_acq_rel,
                                                    memory_order_relaxed)) {
            n = k;
            break;
        }
    }
    goro__gbase *next = goro__load_relaxed(&v->runnext);
    if (next && atomic_compare_exchange_strong_explicit(&v->runnext, &next, NULL,
                                                        memory_order_acq_rel, memory_order_relaxed))
        batch[n++] = next;
    if (n) {
        goro__mutex_lock(&S.lock);
        for (uint32_t i = 0; i < n; i++)
            globrunq_put_locked(batch[i]);
        goro__mutex_unlock(&S.lock);
    }
    if (goro__load_relaxed(&v->timer0)) {
        for (uint32_t i = 0; i < S.nprocs; i++) {
            goro__p *to = S.allp[(v->id + 1 + i) % S.nprocs];
            if (to != v && goro__load_relaxed(&to->status) == GORO__P_RUNNING &&
                goro__load_relaxed(&to->stuck) != GORO__STUCK_RUNNING) {
                goro__timers_move(v, to);
                break;
            }
        }
    }
    return n;
}

/* Take a batch from the global queue: return one, queue the rest locally. */
static goro__gbase *globrunq_get(goro__p *p, bool locked)
{
    if (goro__load_relaxed(&S.gq_size) == 0)
        return NULL;
    if (!locked)
        goro__mutex_lock(&S.lock);
    uint32_t size = goro__load_relaxed(&S.gq_size);
    if (size == 0) { /* another P emptied the queue between the check and the lock */
        if (!locked)
            goro__mutex_unlock(&S.lock);
        return NULL;
    }
    uint32_t n = size / S.nprocs + 1;
    if (n > size)
        n = size;
    if (n > GORO__RUNQ_SIZE / 2)
        n = GORO__RUNQ_SIZE / 2;
    /* Never overflow the local queue here: that would take sched.lock. */
    uint32_t used = goro__load_relaxed(&p->runqtail) - goro__load_acquire(&p->runqhead);
    uint32_t space = GORO__RUNQ_SIZE - used;
    if (n > space + 1)
        n = space + 1;
    goro__gbase *first = S.gq[S.gq_head];
    for (uint32_t i = 1; i < n; i++)
        runqput(p, S.gq[(S.gq_head + i) % S.gq_cap], false);
    S.gq_head = (S.gq_head + n) % S.gq_cap;
    atomic_store_explicit(&S.gq_size, size - n, memory_order_relaxed);
    if (!locked)
        goro__mutex_unlock(&S.lock);
    return first;
}

/* ---- Ps and Ms ------------------------------------------------------------- */

static void acquirep(goro__m *m, goro__p *p)
{
    m->p = p;
    p->m = m;
    goro__store_relaxed(&p->status, GORO__P_RUNNING);
}

static goro__p *releasep(goro__m *m)
{
    goro__p *p = m->p;
    p->m = NULL;
    m->p = NULL;
    goro__store_relaxed(&p->status, GORO__P_IDLE);
    return p;
}

static void pidleput_locked(goro__p *p)
{
    p->link = S.pidle;
    S.pidle = p;
    atomic_fetch_add_explicit(&S.npidle, 1, memory_order_acq_rel);
}

static goro__p *pidleget_locked(void)
{
    goro__p *p = S.pidle;
    if (p) {
        S.pidle = p->link;
        p->link = NULL;
        if (atomic_fetch_sub_explicit(&S.npidle, 1, memory_order_acq_rel) == S.nprocs)
            goro__sysmon_note_busy(); /* the first busy P after full idleness */
    }
    return p;
}

static void notewakeup(goro__m *m)
{
    goro__store_release(&m->park, 1);
    goro__futex_wake(&m->park, 1);
}

static void *mstart(void *arg);

/* The thread-creation gate. A leak scan stops every thread goro owns by
 * signalling the tids of its Ms; an M being created meanwhile would run
 * through the scan unstopped (it can run goroutines that move pointers:
 * a false leak), or be listed in /proc/self/task before it stored its tid
 * and be taken for a foreign thread.
 *
 * Race windows and what closes each:
 *  W1 newm passes the gate while the closer closes it: newm increments
 *     newm_inflight (a seq_cst RMW) before it loads the gate; the closer
 *     stores the gate (seq_cst) before it loads newm_inflight. One of them
 *     sees the other: newm backs out and waits, or the closer waits for it.
 *  W2 the new thread is running, and listed, before m->tid is stored: the
 *     thread itself decrements newm_inflight after storing m->tid
 *     (seq_cst), so a closer that read 0 reads every tid.
 *  W3 newm waits while the gate opens: it waits with
 *     goro__futex_wait(&newm_gate, 1), which returns at once if the gate is
 *     no longer 1; the opener stores 0 before waking every waiter.
 *  W4 a thread start fails: newm decrements newm_inflight itself.
 *  W5 newm's own writes (m->th, from goro__thread_start) after the thread
 *     runs: each newm counts twice in newm_inflight, once for the thread
 *     (dropped after m->tid) and once for itself (dropped after
 *     goro__thread_start returned), so a closer that read 0 also sees m->th.
 * The closer's own thread passes the gate (a scan must not wait for
 * itself); a thread it creates is found when the scan reads the thread
 * list again with the world stopped. Shutdown closes the gate too, before
 * joining every M (an M still being created was skipped by the join and
 * raced with it, TSan saw it): newm then fails instead of waiting. The gate
 * counts its closers (a scan and shutdown may overlap). */
static void newm_leave(void)
{
    if (atomic_fetch_sub(&S.newm_inflight, 1) == 1)
        goro__futex_wake(&S.newm_inflight, INT32_MAX);
}

/* false: shutting down, create nothing. */
static bool newm_enter(void)
{
    for (;;) {
        atomic_fetch_add(&S.newm_inflight, 2);
        GORO__CHAOS(GORO__CH_CHECK);
        uint32_t gate = atomic_load(&S.newm_gate);
        if (!gate || atomic_load(&S.newm_gate_tid) == (int)gettid())
            return true;
        newm_leave();
        newm_leave();
        if (atomic_load(&S.shutdown))
            return false;
        goro__futex_wait(&S.newm_gate, gate, -1);
    }
}

static int gate_close(int64_t timeout_ns)
{
    atomic_fetch_add(&S.newm_gate, 1);
    goro__futex_wake(&S.newm_gate, INT32_MAX); /* waiters re-check shutdown */
    int64_t end = goro__nanotime() + timeout_ns;
    uint32_t v;
    while ((v = atomic_load(&S.newm_inflight)) != 0) {
        int64_t left = end - goro__nanotime();
        if (left <= 0)
            return -ETIMEDOUT;
        goro__futex_wait(&S.newm_inflight, v, left < GORO_MILLISECOND ? left : GORO_MILLISECOND);
    }
    return 0;
}

int goro__newm_gate_close(int64_t timeout_ns)
{
    atomic_store(&S.newm_gate_tid, (int)gettid());
    return gate_close(timeout_ns);
}

void goro__newm_gate_open(void)
{
    atomic_store(&S.newm_gate_tid, 0);
    atomic_fetch_sub(&S.newm_gate, 1);
    goro__futex_wake(&S.newm_gate, INT32_MAX);
}

static int newm(goro__p *p, bool spinning)
{
    if (!newm_enter())
        return -ESHUTDOWN;
    goro__m *m = calloc(1, sizeof *m);
    if (!m) {
        newm_leave();
        newm_leave();
        return -ENOMEM;
    }
    m->nextp = p;
    m->spinning = spinning;
    /* Where the thread is created from (the threadcreate profile). */
    goro__m *cur = goro__getm();
    if (cur) {
        uintptr_t fp = (uintptr_t)__builtin_frame_address(0);
        goro__g *g = cur->curg;
        bool on_g = g && fp >= g->stack_lo && fp < g->stack_hi;
        m->ncreate = goro__unwind_fp(fp, on_g ? g->stack_lo : cur->g0_lo,
                                     on_g ? g->stack_hi : cur->g0_hi, m->create_pc, NULL, 16);
    }
    goro__mutex_lock(&S.lock);
    m->id = S.mcount++;
    m->alllink = S.allm;
    S.allm = m;
    goro__mutex_unlock(&S.lock);
    int rc = goro__thread_start(&m->th, 8u << 20, mstart, m);
    if (rc != 0) {
        /* The M stays on allm (never started): joined as a no-op. */
        m->th.id = 0;
        newm_leave(); /* the thread's count */
        newm_leave();
        return rc;
    }
    newm_leave(); /* ours: m->th is written (W5) */
    return 0;
}

/* Get an M to run p (or any idle P). spinning: the M starts out looking for
 * work, and nmspinning was already incremented for it. */
static void startm(goro__p *p, bool spinning)
{
    goro__mutex_lock(&S.lock);
    if (!p) {
        p = pidleget_locked();
        if (!p) {
            goro__mutex_unlock(&S.lock);
            if (spinning)
                atomic_fetch_sub_explicit(&S.nmspinning, 1, memory_order_acq_rel);
            return;
        }
    }
    goro__m *m = S.midle;
    if (m) {
        S.midle = m->link;
        S.nmidle--;
    }
    goro__mutex_unlock(&S.lock);
    if (m) {
        m->spinning = spinning;
        m->nextp = p;
        notewakeup(m);
        return;
    }
    if (newm(p, spinning) != 0) {
        /* Could not create a thread: give the P back; work stays queued for
         * the running threads. */
        goro__mutex_lock(&S.lock);
        pidleput_locked(p);
        goro__mutex_unlock(&S.lock);
        if (spinning)
            atomic_fetch_sub_explicit(&S.nmspinning, 1, memory_order_acq_rel);
    }
}

/* Dekker handshake with the idle side: the waker publishes work (a run
 * queue store), then reads npidle/nmspinning; a thread going idle changes
 * npidle/nmspinning (atomic RMW, a full barrier) and then re-checks every
 * queue. Without a store-load barrier on the waker's side its read may be
 * satisfied before its store is visible (x86 store buffer; weaker still on
 * arm64): both sides then miss each other and the work waits for the next
 * scheduling point of its P instead of an idle thread. The barrier
 * (goro__full_barrier) closes it. */
GORO__NOINLINE static void wakep_slow(void)
{
    uint32_t zero = 0;
    if (!atomic_compare_exchange_strong_explicit(&S.nmspinning, &zero, 1, memory_order_acq_rel,
                                                 memory_order_relaxed))
        return;
    startm(NULL, true);
}

void goro__wakep(void)
{
    GORO__CHAOS(GORO__CH_WAKEP);
    /* Holding the only P: there is no idle P to hand work to. */
    if (S.nprocs == 1 && goro__curp())
        return;
    goro__full_barrier();
    if (goro__load_acquire(&S.npidle) == 0 || goro__load_relaxed(&S.nmspinning) != 0)
        return;
    wakep_slow();
}

/* Sleep until some thread hands us a P (or shutdown). */
static void stopm(goro__m *m)
{
    goro__mutex_lock(&S.lock);
    if (goro__load_relaxed(&S.shutdown)) {
        goro__mutex_unlock(&S.lock);
        return;
    }
    m->link = S.midle;
    S.midle = m;
    S.nmidle++;
    goro__mutex_unlock(&S.lock);
    while (!goro__load_acquire(&m->park))
        goro__futex_wait(&m->park, 0, -1);
    goro__store_relaxed(&m->park, 0);
    goro__coarse_update(goro__nanotime());
    if (m->nextp) {
        acquirep(m, m->nextp);
        m->nextp = NULL;
    }
}

/* ---- switching ------------------------------------------------------------- */

static void ctx_init(goro__g *g)
{
    uint64_t *sp = (uint64_t *)((uintptr_t)g & ~(uintptr_t)15);
    *--sp = (uint64_t)(uintptr_t)goro__ctx_trampoline; /* return address */
    *--sp = 0;                                         /* rbp */
    *--sp = 0;                                         /* rbx */
    *--sp = (uint64_t)(uintptr_t)g;                    /* r12: the G */
    *--sp = 0;                                         /* r13 */
    *--sp = 0;                                         /* r14 */
    *--sp = 0;                                         /* r15 */
    g->sp = sp;
}

/* Turn a newborn into a G with a stack (on its first run). */
static goro__g *materialize(goro__p *p, goro__newborn *nb)
{
    goro__g *g = goro__stack_alloc(p);
    if (GORO__UNLIKELY(!g))
        goro__panic("cannot allocate a stack for goroutine %llu: out of memory",
                    (unsigned long long)nb->base.id);
    uint64_t old = goro__load_relaxed(&g->base.status);
    g->base.id = nb->base.id;
    g->base.slot = nb->base.slot;
    g->base.kind = GORO__KIND_G;
    g->sp = NULL;
    g->m = NULL;
    g->wait_reason = GORO__WAIT_NONE;
    g->longrun_reported = 0;
    g->wait_since = 0;
    g->wait_obj = NULL;
    g->wait_fp = NULL;
    g->waiting = NULL;
    g->nwaiting = 0;
    g->wake = GORO__WAKE_NONE;
    g->census_epoch = 0;
    memset(&g->timer, 0, sizeof g->timer);
    g->timer.idx = -1;
    g->info = nb->info;
    g->cur_scope = nb->info.scope;
    if (GORO__UNLIKELY(nb->name != NULL)) {
        strncpy(g->name, nb->name, GORO_NAME_MAX - 1);
        g->name[GORO_NAME_MAX - 1] = 0;
        free(nb->name);
    } else {
        g->name[0] = 0;
    }
    g->asan_fake_stack = NULL;
    goro__san_stack_reset(g);
    g->tsan_fiber = goro__san_fiber_create();
    ctx_init(g);
    goro__store_release(&g->base.status, GORO__GST(GORO__GST_SEQ(old) + 1, GORO__G_RUNNING));
    goro__reg_set(g->base.slot, &g->base);
    uint64_t ns = goro__load_relaxed(&nb->base.status);
    goro__store_release(&nb->base.status, GORO__GST(GORO__GST_SEQ(ns) + 1, GORO__G_FREE));
    goro__newborn_free(nb);
    return g;
}

/* Make gb the M's current goroutine (state RUNNING). */
static inline __attribute__((always_inline)) goro__g *prepare(goro__m *m, goro__p *p,
                                                             goro__gbase *gb, bool inherit)
{
    if (!inherit)
        goro__store_relaxed(&p->slicetick, goro__load_relaxed(&p->slicetick) + 1);
    goro__g *g;
    if (GORO__UNLIKELY(gb->kind == GORO__KIND_NEWBORN)) {
        g = materialize(p, (goro__newborn *)gb);
    } else {
        g = (goro__g *)gb;
        uint64_t s = goro__load_relaxed(&g->base.status);
        goro__store_release(&g->base.status, GORO__GST(GORO__GST_SEQ(s), GORO__G_RUNNING));
    }
    g->m = m;
    goro__store_relaxed(&p->cur_slot, g->base.slot + 1);
    /* sysmon watches the tick (and clears `stuck` once it moves). */
    goro__store_relaxed(&p->schedtick, goro__load_relaxed(&p->schedtick) + 1);
    return g;
}

/* Switch from the current context (from = NULL: g0) to `to` (NULL: g0). */
static inline __attribute__((always_inline)) void do_switch(goro__m *m, goro__g *from,
                                                           goro__g *to)
{
    if (from && GORO__UNLIKELY(!goro__stack_check_canary(from)))
        goro__stack_overflow_report(from);
    void **save = from ? &from->sp : &m->g0_sp;
    void *to_sp = to ? to->sp : m->g0_sp;
    bool dying = from && m->after.kind == GORO__AFTER_EXIT;
    m->curg = to;
    goro__san_switch_start(m, from, to, dying);
    goro__ctx_switch(save, to_sp);
}

static void begin_shutdown(void);

static void park_timeout(goro__timer *t)
{
    goro__g *g = t->arg;
    if (goro__claim(g, t->seq, GORO__WAKE_TIMEOUT))
        goro__ready(g, false);
}

/* Due timers of the current P. Never run while a parking goroutine still
 * holds its queue lock (before its commit): a timer callback may need that
 * very lock (a context deadline closing the done channel the goroutine is
 * parking on), and the thread would spin on it forever. */
static inline __attribute__((always_inline)) void run_due_timers(goro__m *m)
{
    goro__p *p = m->p;
    if (!p)
        return;
    int64_t t0 = goro__load_relaxed(&p->timer0);
    if (GORO__UNLIKELY(t0 != 0)) {
        int64_t now = goro__nanotime();
        if (t0 <= now)
            goro__timers_run(p, now);
    }
}

static inline __attribute__((always_inline)) void after_switch_kind(goro__m *m, int kind)
{
    goro__g *g = m->after.g;
    m->after.kind = GORO__AFTER_NONE;
    g->m = NULL;
    uint64_t s = goro__load_relaxed(&g->base.status);
    uint64_t seq = GORO__GST_SEQ(s) + 1;
    switch (kind) {
    case GORO__AFTER_PARK: {
        goro__store_release(&g->base.status, GORO__GST(seq, GORO__G_WAITING));
        if (m->after.deadline != GORO_NO_DEADLINE) {
            g->timer.fn = park_timeout;
            g->timer.arg = g;
            g->timer.seq = seq;
            goro__timer_add(&g->timer, m->after.deadline);
        }
        GORO__CHAOS(GORO__CH_COMMIT);
        if (m->after.commit)
            m->after.commit(m->after.arg);
        break;
    }
    case GORO__AFTER_YIELD:
        goro__store_release(&g->base.status, GORO__GST(seq, GORO__G_RUNNABLE));
        if (runqput(m->p, &g->base, false))
            goro__wakep();
        break;
    case GORO__AFTER_REQUEUE:
        goro__store_release(&g->base.status, GORO__GST(seq, GORO__G_RUNNABLE));
        globrunq_put(&g->base);
        goro__wakep();
        break;
    case GORO__AFTER_EXIT: {
        goro__p *p = m->p;
        bool is_main = (g->base.id == 1);
        goro__store_release(&g->base.status, GORO__GST(seq, GORO__G_DEAD));
        goro__reg_free(p, g->base.slot);
        goro__store_relaxed(&p->nexited, goro__load_relaxed(&p->nexited) + 1);
        goro__san_fiber_destroy(g->tsan_fiber);
        g->tsan_fiber = NULL;
        goro__stack_free(p, g);
        if (is_main)
            begin_shutdown();
        break;
    }
    }
}

static inline __attribute__((always_inline)) void after_switch(void)
{
    goro__m *m = goro__getm();
    goro__san_switch_finish(m);
    int kind = m->after.kind;
    if (kind == GORO__AFTER_NONE)
        return;
    /* schedule_from ran the due timers before the switch unless the
     * goroutine leaving held a queue lock until this commit. */
    bool timers_late = kind == GORO__AFTER_PARK && m->after.commit;
    after_switch_kind(m, kind);
    if (timers_late)
        run_due_timers(m);
}

void goro__after_switch(void) { after_switch(); }

/* The fast path of every block/yield/exit: run the next local goroutine
 * directly, or fall back to g0. Returns when `prev` is resumed. */
static inline __attribute__((always_inline)) void schedule_from(goro__m *m, goro__g *prev)
{
    goro__p *p = m->p;
    goro__gbase *gb = NULL;
    bool inherit = false;
    if (GORO__LIKELY(!goro__load_relaxed(&S.shutdown))) {
        if (GORO__UNLIKELY(--p->gq_countdown == 0)) {
            p->gq_countdown = 61;
            if (goro__load_relaxed(&S.gq_size))
                gb = globrunq_get(p, false);
        }
        if (!gb) {
            /* Due timers first, so what they ready can run next - unless
             * the goroutine leaving holds a queue lock until its commit
             * (see run_due_timers): then they run after the switch. */
            if (m->after.kind != GORO__AFTER_PARK || !m->after.commit)
                run_due_timers(m);
            gb = runqget(p, &inherit);
        }
    }
    goro__g *next = gb ? prepare(m, p, gb, inherit) : NULL;
    if (!next)
        goro__store_relaxed(&p->cur_slot, 0);
    do_switch(m, prev, next);
    after_switch();
}


GORO__NORETURN static void g_exit(void)
{
    goro__m *m = goro__getm();
    goro__g *g = m->curg;
    m->after.kind = GORO__AFTER_EXIT;
    m->after.g = g;
    schedule_from(m, g);
    goro__panic("dead goroutine %llu resumed", (unsigned long long)g->base.id);
}

void goro__g_start(goro__g *g)
{
    g->exit_hooks = NULL;
    goro__after_switch();
    g->info.fn(g->info.arg);
    g_exit();
}

/* ---- parking and readying --------------------------------------------------- */

void goro__commit_unlock(void *lock) { goro__spin_unlock(lock); }

int32_t goro__park(unsigned reason, const void *obj, void (*commit)(void *), void *arg,
                   int64_t deadline)
{
    goro__m *m = goro__getm();
    goro__g *g = m->curg;
    g->wait_reason = (uint8_t)reason;
    g->wait_obj = obj;
    g->wait_since = goro__coarsetime();
    g->wake = GORO__WAKE_NONE;
    m->after.kind = GORO__AFTER_PARK;
    m->after.g = g;
    m->after.commit = commit;
    m->after.arg = arg;
    m->after.deadline = deadline;
    int64_t t0 = 0;
    if (GORO__UNLIKELY(goro__load_relaxed(&goro__blockprof_rate) > 0) &&
        goro__wait_reason_is_primitive(reason))
        t0 = goro__nanotime();
    if (goro__census_counts(reason, deadline))
        goro__census_park(m->p->census_log, g);
    schedule_from(m, g);
    goro__census_resume(g);
    if (deadline != GORO_NO_DEADLINE)
        goro__timer_del(&g->timer);
    if (GORO__UNLIKELY(t0 != 0))
        goro__blockprof_record(goro__nanotime() - t0, (uintptr_t)g->wait_fp);
    g->wait_reason = GORO__WAIT_NONE;
    g->wait_obj = NULL;
    g->wait_fp = NULL;
    return g->wake;
}

bool goro__claim(goro__g *g, uint64_t seq, int32_t wake)
{
    uint64_t exp = GORO__GST(seq, GORO__G_WAITING);
    if (!atomic_compare_exchange_strong_explicit(&g->base.status, &exp,
                                                 GORO__GST(seq, GORO__G_RUNNABLE),
                                                 memory_order_acq_rel, memory_order_relaxed))
        return false;
    g->wake = wake;
    GORO__CHAOS(GORO__CH_CLAIM);
    return true;
}

void goro__ready_slow(goro__g *g, bool next)
{
    GORO__CHAOS(GORO__CH_READY);
    goro__m *m = goro__getm();
    goro__p *p = m ? m->p : NULL;
    if (!p) {
        globrunq_put(&g->base);
        goro__wakep();
        return;
    }
    if (runqput(p, &g->base, next))
        goro__wakep();
}

/* Spawn order is FIFO (the run queue's tail), not Go's newest-first
 * runnext: see docs/concurrency.md, "Spawn order", for the measurement and
 * the reasons. */
void goro__ready_new(goro__gbase *gb)
{
    runqput(goro__getm()->p, gb, false);
    goro__wakep();
}

/* Ready goroutines woken by the poller (a list linked through ->next):
 * onto our P if we hold one, else onto the global queue. */
void goro__netpoll_inject(goro__waiter *list)
{
    if (!list)
        return;
    goro__m *m = goro__getm();
    goro__p *p = m ? m->p : NULL;
    if (p) {
        while (list) {
            goro__waiter *w = list;
            list = w->next;
            runqput(p, &w->g->base, false);
        }
    } else {
        goro__mutex_lock(&S.lock);
        while (list) {
            goro__waiter *w = list;
            list = w->next;
            globrunq_put_locked(&w->g->base);
        }
        goro__mutex_unlock(&S.lock);
    }
    goro__wakep();
}

/* ---- finding work ------------------------------------------------------------ */

static goro__gbase *steal_work(goro__m *m)
{
    goro__p *p = m->p;
    uint32_t n = S.nprocs;
    for (int round = 0; round < 4; round++) {
        bool last = round == 3;
        uint32_t start = goro__rand_below((uint32_t)goro__rand(), n);
        for (uint32_t i = 0; i < n; i++) {
            goro__p *v = S.allp[(start + i) % n];
            if (v == p)
                continue;
            if (last && goro__load_relaxed(&v->timer0) != 0) {
                int64_t now = goro__nanotime();
                if (goro__load_relaxed(&v->timer0) <= now && goro__timers_run(v, now) > 0) {
                    bool inh;
                    goro__gbase *gb = runqget(p, &inh);
                    if (gb)
                        return gb;
                }
            }
            /* runnext too in the last round when nobody else can run it: its
             * P is stuck in one goroutine, or idle (goro_blocking and the
             * idle path release a P whatever its runnext holds; without
             * this a spinning thread could take its own P back forever
             * while a goroutine waits in an idle P's runnext). */
            bool take_next = last && (goro__load_relaxed(&v->stuck) == GORO__STUCK_RUNNING ||
                                      goro__load_relaxed(&v->status) != GORO__P_RUNNING);
            goro__gbase *gb = runqsteal(p, v, take_next);
            if (gb)
                return gb;
        }
    }
    return NULL;
}

static int64_t earliest_timer(void)
{
    int64_t min = 0;
    for (uint32_t i = 0; i < S.nprocs; i++) {
        int64_t t = goro__load_relaxed(&S.allp[i]->timer0);
        if (t && (!min || t < min))
            min = t;
    }
    return min;
}

static bool any_timers(void)
{
    for (uint32_t i = 0; i < S.nprocs; i++) {
        goro__p *p = S.allp[i];
        goro__spin_lock(&p->timers_lock);
        uint32_t n = p->ntimers;
        goro__spin_unlock(&p->timers_lock);
        if (n)
            return true;
    }
    return false;
}

GORO__NORETURN static void report_deadlock(void)
{
    goro__dump_all(2, "fatal error: all goroutines are asleep - deadlock!\n\n");
#ifdef GORO_CHAOS
    goro__chaos_print_seed();
#endif
    _exit(2);
}

/* Threads of this process (the "Threads:" line of /proc/self/status), or
 * -1 if unknown. Plain syscalls, no allocation: called under sched.lock. */
static long process_threads(void)
{
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    const char *t = strstr(buf, "\nThreads:");
    if (!t)
        return -1;
    return strtol(t + 9, NULL, 10);
}

/* A thread the runtime did not create (the program's own pthreads, a
 * library's) may still wake a goroutine (goro_chan_trysend,
 * goro_waitgroup_done, ... are allowed from any thread), so "every
 * goroutine is blocked" is not a deadlock while one exists. The runtime's
 * own threads: every M ever started (they never exit before shutdown),
 * sysmon and goro__aux_threads; ThreadSanitizer adds one background
 * thread of its own. */
_Atomic int goro__aux_threads;

static bool foreign_threads_exist(void)
{
    long n = process_threads();
    if (n < 0)
        return false; /* cannot tell: keep Go's behaviour */
    long own = (long)S.mcount + 1 + (GORO__TSAN ? 1 : 0) + atomic_load(&goro__aux_threads);
    return n > own;
}

/* Called with sched.lock held by an M that is about to sleep without a P. */
static void check_deadlock_locked(void)
{
    if ((S.flags & GORO_NO_DEADLOCK_CHECK) || goro__load_relaxed(&S.shutdown))
        return;
    if (goro__load_relaxed(&S.npidle) != S.nprocs || goro__load_relaxed(&S.nmspinning) != 0 ||
        goro__load_relaxed(&S.gq_size) != 0 || goro__load_relaxed(&S.poll_until) != 0 ||
        goro__load_relaxed(&S.nwaiting_io) != 0 || goro__load_relaxed(&S.nsyscall) != 0)
        return;
    for (uint32_t i = 0; i < S.nprocs; i++)
        if (!runq_empty(S.allp[i]))
            return;
    if (any_timers() || goro__count_goroutines() == 0)
        return;
    if (foreign_threads_exist())
        return; /* not provably a deadlock: a foreign thread may wake one */
    report_deadlock();
}

static void drop_spinning(goro__m *m)
{
    if (m->spinning) {
        m->spinning = false;
        if (atomic_fetch_sub_explicit(&S.nmspinning, 1, memory_order_acq_rel) == 1)
            goro__wakep(); /* we found work: let another thread look for more */
    }
}

/* Find a goroutine to run, sleeping as needed. Returns NULL at shutdown.
 * The M holds a P on return (if not NULL). */
static goro__gbase *findrunnable(goro__m *m)
{
    goro__gbase *gb;
top:
    if (goro__load_relaxed(&S.shutdown))
        return NULL;
    goro__p *p = m->p;
    if (!p) {
        /* Woken without a P (poller wake-up or shutdown). */
        goro__mutex_lock(&S.lock);
        p = pidleget_locked();
        goro__mutex_unlock(&S.lock);
        if (!p) {
            stopm(m);
            goto top;
        }
        acquirep(m, p);
        if (!m->spinning) {
            m->spinning = true;
            atomic_fetch_add_explicit(&S.nmspinning, 1, memory_order_acq_rel);
        }
    }
    int64_t t0 = goro__load_relaxed(&p->timer0);
    if (t0) {
        int64_t now = goro__nanotime();
        if (t0 <= now)
            goro__timers_run(p, now);
    }
    bool inh;
    if ((gb = runqget(p, &inh)) || (gb = globrunq_get(p, false)))
        goto found;
    /* Goroutines wait for I/O and nobody sleeps in the poller: look. */
    if (goro__load_relaxed(&S.nwaiting_io) && goro__load_relaxed(&S.poll_until) == 0) {
        goro__netpoll(0);
        if ((gb = runqget(p, &inh)))
            goto found;
    }
    uint32_t busy = S.nprocs - goro__load_relaxed(&S.npidle);
    if (m->spinning || 2 * goro__load_relaxed(&S.nmspinning) < busy) {
        if (!m->spinning) {
            m->spinning = true;
            atomic_fetch_add_explicit(&S.nmspinning, 1, memory_order_acq_rel);
        }
        if ((gb = steal_work(m)))
            goto found;
    }

    /* Nothing to do: give up the P. */
    goro__mutex_lock(&S.lock);
    if (goro__load_relaxed(&S.shutdown)) {
        goro__mutex_unlock(&S.lock);
        return NULL;
    }
    if ((gb = globrunq_get(p, true))) {
        goro__mutex_unlock(&S.lock);
        goto found;
    }
    releasep(m);
    pidleput_locked(p);
    goro__mutex_unlock(&S.lock);

    if (m->spinning) {
        m->spinning = false;
        atomic_fetch_sub_explicit(&S.nmspinning, 1, memory_order_acq_rel);
        /* A goroutine may have been queued after we looked and before we
         * stopped spinning; its readier saw us spinning and did not wake
         * anyone. Look again. */
        for (uint32_t i = 0; i < S.nprocs; i++) {
            if (!runq_empty(S.allp[i]) || goro__load_relaxed(&S.gq_size)) {
                goro__mutex_lock(&S.lock);
                goro__p *np = pidleget_locked();
                goro__mutex_unlock(&S.lock);
                if (np) {
                    acquirep(m, np);
                    m->spinning = true;
                    atomic_fetch_add_explicit(&S.nmspinning, 1, memory_order_acq_rel);
                    goto top;
                }
                break;
            }
        }
    }

    int64_t until = earliest_timer();
    bool io = goro__load_relaxed(&S.nwaiting_io) != 0;
    if (until || io) {
        int64_t want = until ? until : INT64_MAX;
        int64_t zero = 0;
        if (atomic_compare_exchange_strong_explicit(&S.poll_until, &zero, want,
                                                    memory_order_acq_rel, memory_order_relaxed)) {
            /* We are the poller: sleep until the earliest timer or I/O. A new
             * earlier timer or new work breaks the sleep. */
            goro__netpoll(want);
            goro__store_release(&S.poll_until, 0);
            goro__coarse_update(goro__nanotime());
            goto top; /* find a P, run due timers */
        }
        if (want < zero)
            goro__netpoll_break(); /* the poller sleeps too long: recompute */
    }
    goro__mutex_lock(&S.lock);
    check_deadlock_locked();
    goro__mutex_unlock(&S.lock);
    stopm(m);
    goto top;

found:
    drop_spinning(m);
    return gb;
}

/* ---- threads --------------------------------------------------------------- */

static void m_init_thread(goro__m *m)
{
    tls_m = m;
    m->tid = (int)gettid();
    goro__cpuprof_thread_start(m);
    pthread_attr_t attr;
    void *addr = NULL;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstack(&attr, &addr, &size);
        pthread_attr_destroy(&attr);
    }
    m->g0_lo = (uintptr_t)addr;
    m->g0_hi = (uintptr_t)addr + size;
    m->g0_tsan_fiber = goro__san_fiber_current();
    goro__m_altstack_init(m);
}

static void schedule_loop(goro__m *m)
{
    for (;;) {
        goro__gbase *gb = findrunnable(m);
        if (!gb)
            return;
        goro__g *g = prepare(m, m->p, gb, false);
        do_switch(m, NULL, g);
        goro__after_switch();
    }
}

static void *mstart(void *arg)
{
    goro__m *m = arg;
    m_init_thread(m);
    newm_leave(); /* m->tid is stored (the gate's W2) */
    if (m->nextp) {
        acquirep(m, m->nextp);
        m->nextp = NULL;
    }
    schedule_loop(m);
    if (m->p) {
        goro__mutex_lock(&S.lock);
        goro__p *p = releasep(m);
        pidleput_locked(p);
        goro__mutex_unlock(&S.lock);
    }
    goro__cpuprof_thread_stop(m);
    goro__m_altstack_fini(m);
    tls_m = NULL;
    return NULL;
}

static void begin_shutdown(void)
{
    goro__store_release(&S.shutdown, 1);
    goro__mutex_lock(&S.lock);
    for (goro__m *m = S.midle; m; m = m->link)
        notewakeup(m);
    S.midle = NULL;
    S.nmidle = 0;
    goro__mutex_unlock(&S.lock);
    goro__netpoll_break();
    goro__sysmon_wake();
}

/* ---- public: runtime -------------------------------------------------------- */

static int parse_env_int(const char *name, long long *out)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return 0;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 0);
    if (errno || *end)
        return -EINVAL;
    *out = x;
    return 1;
}

static int default_procs(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0)
            return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static int configure(const goro_options *opts)
{
    goro_options o = {0};
    if (opts)
        o = *opts;
    long long v;
    int procs = o.procs;
    if (procs < 0 || procs > GORO__MAX_PROCS)
        return -EINVAL;
    if (procs == 0) {
        int r = parse_env_int("GORO_PROCS", &v);
        if (r < 0 || (r > 0 && (v < 1 || v > GORO__MAX_PROCS))) {
            fprintf(stderr, "goro: GORO_PROCS must be an integer in 1..%d\n", GORO__MAX_PROCS);
            return -EINVAL;
        }
        procs = r > 0 ? (int)v : default_procs();
        if (procs > GORO__MAX_PROCS)
            procs = GORO__MAX_PROCS;
    }
    size_t ss = o.stack_size;
    if (ss == 0) {
        int r = parse_env_int("GORO_STACK_SIZE", &v);
        if (r < 0 || (r > 0 && v <= 0)) {
            fprintf(stderr, "goro: GORO_STACK_SIZE must be a positive byte count\n");
            return -EINVAL;
        }
        ss = r > 0 ? (size_t)v : 64 * 1024;
    }
    if (ss > 8u << 20)
        return -EINVAL;
    size_t pow = 16 * 1024;
    while (pow < ss)
        pow <<= 1;
    int64_t lr = o.longrun_report_ns;
    if (lr == 0) {
        int r = parse_env_int("GORO_LONGRUN_MS", &v);
        lr = (r > 0) ? (v > 0 ? v * GORO_MILLISECOND : -1) : GORO_SECOND;
    }
    S.nprocs = (uint32_t)procs;
    S.stack_size = pow;
    S.flags = o.flags;
    S.longrun_ns = lr;
    return 0;
}

static void teardown(void)
{
    goro__watchdog_stop();
    goro__sysmon_stop();
    goro__watchdog_reset();
    goro__census_reset();
    /* Every other M has left its scheduling loop (joined by the caller). */
    goro__g_teardown_all();
    goro__timers_stop(); /* persistent timers outlive the runtime */
    for (uint32_t i = 0; i < S.nprocs; i++) {
        goro__p *p = S.allp[i];
        goro__timers_destroy(p);
        goro__stack_flush_cache(p);
        goro__census_p_free(p);
        goro__free_wiped(p, sizeof *p);
        S.allp[i] = NULL;
    }
    goro__free_wiped(S.gq, S.gq_cap * sizeof S.gq[0]);
    S.gq = NULL;
    goro__g_subsystem_fini();
    goro__stack_fini();
    goro__netpoll_fini();
    goro__pd_pool_fini();
    goro__signals_restore();
    goro__m *m = S.allm;
    while (m) {
        goro__m *next = m->alllink;
        goro__free_wiped(m, sizeof *m);
        m = next;
    }
}

int goro_run(goro_fn main_fn, void *arg, const goro_options *opts)
{
    if (!main_fn)
        return -EINVAL;
    uint32_t zero = 0;
    if (!atomic_compare_exchange_strong(&rt_active, &zero, 1))
        return -EBUSY;
    memset(&S, 0, sizeof S);
    goro__heapprof_init(); /* also links the malloc interposer in */
    int rc = configure(opts);
    if (rc)
        goto fail_active;
    goro__coarse_update(goro__nanotime());
#ifdef GORO_CHAOS
    goro__chaos_print_seed();
#endif
    atomic_store(&S.next_id, 1);
    if ((rc = goro__stack_init(S.stack_size)))
        goto fail_active;
    if ((rc = goro__netpoll_init()))
        goto fail_stack;
    for (uint32_t i = 0; i < S.nprocs; i++) {
        goro__p *p = aligned_alloc(GORO__CACHELINE, GORO__ALIGN_UP(sizeof(goro__p), GORO__CACHELINE));
        if (!p) {
            rc = -ENOMEM;
            goto fail_ps;
        }
        memset(p, 0, sizeof *p);
        S.allp[i] = p;
        if (goro__census_p_init(p)) {
            rc = -ENOMEM;
            goto fail_ps;
        }
        p->id = i;
        p->rng = ((uint64_t)goro__nanotime() + i * 0x9E3779B97F4A7C15ull) | 1;
        p->gq_countdown = 61;
    }
    goro__m *m0 = calloc(1, sizeof *m0);
    if (!m0) {
        rc = -ENOMEM;
        goto fail_ps;
    }
    m0->is_main = true;
    m0->th.id = pthread_self(); /* th.lo 0: not a stack goro mapped */
    /* Runtime threads (all created from here, inheriting the mask) leave
     * SIGQUIT to sysmon; see sysmon.c. */
    sigset_t quit, saved_mask;
    sigemptyset(&quit);
    sigaddset(&quit, SIGQUIT);
    pthread_sigmask(SIG_BLOCK, &quit, &saved_mask);
    S.allm = m0;
    S.mcount = 1;
    m_init_thread(m0);
    /* The threadcreate profile: this thread "was created" by goro_run's caller. */
    m0->ncreate = goro__unwind_fp((uintptr_t)__builtin_frame_address(0), m0->g0_lo, m0->g0_hi,
                                  m0->create_pc, NULL, 16);
    acquirep(m0, S.allp[0]);
    for (uint32_t i = S.nprocs; i-- > 1;)
        pidleput_locked(S.allp[i]);
    if ((rc = goro__signals_install()))
        goto fail_m0;
    atomic_store(&rt_running, 1);
    goro__watchdog_start();
    if ((rc = goro__sysmon_start()))
        goto fail_sig;

    /* The main goroutine, id 1. */
    goro__p *p0 = m0->p;
    uint32_t slot;
    goro__newborn *nb;
    if ((rc = goro__reg_alloc(p0, &slot)) || !(nb = goro__newborn_alloc(p0))) {
        rc = rc ? rc : -ENOMEM;
        goto fail_sysmon;
    }
    memset(&nb->info, 0, sizeof nb->info);
    nb->info.fn = main_fn;
    nb->info.arg = arg;
    nb->info.func = "goro_run";
    nb->base.id = atomic_fetch_add(&S.next_id, 1);
    nb->base.slot = slot;
    nb->base.kind = GORO__KIND_NEWBORN;
    nb->name = NULL;
    goro__store_release(&nb->base.status, GORO__GST(1, GORO__G_RUNNABLE));
    goro__reg_set(slot, &nb->base);
    goro__store_relaxed(&p0->nspawned, 1);
    runqput(p0, &nb->base, false);
    goro__timers_start(p0); /* contexts' deadlines armed before goro_run */

    schedule_loop(m0);

    /* Shutdown: no M starts any more, and every M being created is
     * complete (its m->th written), then wait for the other threads. */
    gate_close(10 * GORO_SECOND);
    for (;;) {
        goro__mutex_lock(&S.lock);
        goro__m *list = S.allm;
        goro__mutex_unlock(&S.lock);
        bool all = true;
        for (goro__m *m = list; m; m = m->alllink) {
            if (m == m0 || !m->th.id)
                continue;
            goro__thread_join(&m->th);
            m->th.id = 0;
            all = false;
        }
        if (all)
            break;
    }
    atomic_fetch_sub(&S.newm_gate, 1);
    if (m0->p)
        releasep(m0);
    goro__cpuprof_stop();
    goro__cpuprof_thread_stop(m0);
    goro__m_altstack_fini(m0);
    tls_m = NULL;
    atomic_store(&rt_running, 0);
    teardown();
    pthread_sigmask(SIG_SETMASK, &saved_mask, NULL);
    memset(&S, 0, sizeof S);
    atomic_store(&rt_active, 0);
    return 0;

fail_sysmon:
    goro__sysmon_stop();
fail_sig:
    atomic_store(&rt_running, 0);
    goro__signals_restore();
fail_m0:
    pthread_sigmask(SIG_SETMASK, &saved_mask, NULL);
    goro__m_altstack_fini(m0);
    tls_m = NULL;
    goro__free_wiped(m0, sizeof *m0);
    S.allm = NULL;
fail_ps:
    for (uint32_t i = 0; i < S.nprocs; i++) {
        if (S.allp[i])
            goro__census_p_free(S.allp[i]);
        free(S.allp[i]);
    }
    goro__netpoll_fini();
fail_stack:
    goro__stack_fini();
fail_active:
    memset(&S, 0, sizeof S);
    atomic_store(&rt_active, 0);
    return rc;
}

uint64_t goro_id(void)
{
    goro__g *g = goro__getg();
    return g ? g->base.id : 0;
}

int goro_yield(void)
{
    goro__m *m = goro__getm();
    if (!m || !m->curg)
        return -EPERM;
    goro__p *p = m->p;
    if (runq_empty(p) && goro__load_relaxed(&S.gq_size) == 0 &&
        goro__load_relaxed(&p->timer0) == 0 && !goro__load_relaxed(&S.shutdown)) {
        /* Nothing here. Unless another P is stuck behind a goroutine that
         * never yields with work queued (no thread is idle to take it, or
         * sysmon's wakeup would have), keep running. */
        if (GORO__LIKELY(!goro__load_relaxed(&S.stuck_work))) {
            /* Still a scheduling point for sysmon's long-runner check. */
            goro__store_relaxed(&p->schedtick, goro__load_relaxed(&p->schedtick) + 1);
            return 0;
        }
        goro__gbase *gb = NULL;
        for (uint32_t i = 0; i < S.nprocs && !gb && runq_empty(p); i++) {
            goro__p *v = S.allp[i];
            unsigned stuck = goro__load_relaxed(&v->stuck);
            if (v == p || !stuck)
                continue;
            int64_t t0 = goro__load_relaxed(&v->timer0), now;
            if (t0 && t0 <= (now = goro__nanotime()))
                goro__timers_run(v, now); /* readies onto this P, as in findrunnable */
            if (runq_empty(p))
                gb = runqsteal(p, v, stuck == GORO__STUCK_RUNNING);
        }
        if (gb) {
            runqput(p, gb, false);
        } else if (runq_empty(p)) {
            goro__store_relaxed(&p->schedtick, goro__load_relaxed(&p->schedtick) + 1);
            return 0;
        }
    }
    goro__g *g = m->curg;
    GORO__WAIT_FRAME(g);
    m->after.kind = GORO__AFTER_YIELD;
    m->after.g = g;
    schedule_from(m, g);
    g->wait_fp = NULL;
    return 0;
}

void goro_exit(void)
{
    goro__m *m = goro__getm();
    if (!m || !m->curg)
        return;
    goro__g *g = m->curg;
    while (g->exit_hooks) {
        goro__exit_hook *h = g->exit_hooks;
        g->exit_hooks = h->next;
        h->fn(h);
    }
    g_exit();
}

/* ---- blocking calls (Go's entersyscall / exitsyscall) ------------------------ */

void goro__call_on_stack(void (*fn)(void *), void *arg, void *stack_top);

typedef struct blocking_call {
    goro_fn fn;
    void *arg;
    goro__g *g;
    goro__m *m;
    void *g0_fake; /* ASan: fake stack of the g0 context we borrow */
} blocking_call;

/* Runs on the thread's own stack. */
static void blocking_tramp(void *arg)
{
    blocking_call *bc = arg;
#if GORO__ASAN
    const void *ob;
    size_t os;
    __sanitizer_finish_switch_fiber(bc->m->g0_asan_fake, &ob, &os);
#endif
    bc->fn(bc->arg);
#if GORO__ASAN
    __sanitizer_start_switch_fiber(&bc->m->g0_asan_fake, (const void *)bc->g->stack_lo,
                                   bc->g->stack_hi - bc->g->stack_lo);
#endif
}

/* Bytes of the thread's stack cleared below fn's first frame (goro_blocking). */
#define BLOCKING_CLEAR (16u << 10)

int goro_blocking(goro_fn fn, void *arg)
{
    if (!fn)
        return -EINVAL;
    goro__m *m = goro__getm();
    goro__g *g = m ? m->curg : NULL;
    if (!g) {
        fn(arg);
        return 0;
    }
    g->wait_fp = __builtin_frame_address(0);
    uint64_t s = goro__load_relaxed(&g->base.status);
    goro__store_release(&g->base.status, GORO__GST(GORO__GST_SEQ(s) + 1, GORO__G_SYSCALL));
    atomic_fetch_add_explicit(&S.nsyscall, 1, memory_order_acq_rel);
    /* Hand the P over: whoever has work for it takes it. */
    goro__p *p = m->p;
    goro__store_relaxed(&p->cur_slot, 0);
    goro__mutex_lock(&S.lock);
    releasep(m);
    pidleput_locked(p);
    goro__mutex_unlock(&S.lock);
    if (!runq_empty(p) || goro__load_relaxed(&p->timer0) || goro__load_relaxed(&S.gq_size) ||
        goro__load_relaxed(&S.nwaiting_io))
        goro__wakep();

    blocking_call bc = {.fn = fn, .arg = arg, .g = g, .m = m};
#if GORO__ASAN
    void *g_fake;
    __sanitizer_start_switch_fiber(&g_fake, (const void *)m->g0_lo, m->g0_hi - m->g0_lo);
#endif
    /* Below the scheduler's suspended frames, past the red zone. That
     * memory held the frames of park commits and timer callbacks run on
     * this thread, full of pointers to channels and goroutines; fn's
     * frames leave slots of it uninitialised, and the leak scan reads this
     * thread's stack from its stack pointer up, so a stale channel pointer
     * there would hide a leak. Clear what fn's first frames cover. */
    char *fn_sp = (char *)m->g0_sp - 256;
#if !GORO__ASAN && !GORO__TSAN
    {
        char *lo = fn_sp - BLOCKING_CLEAR;
        if ((uintptr_t)lo < m->g0_lo + 2 * 4096)
            lo = (char *)(m->g0_lo + 2 * 4096);
        if (lo < fn_sp)
            memset(lo, 0, (size_t)(fn_sp - lo));
    }
#endif
    goro__store_relaxed(&m->blocking_hi, (uintptr_t)fn_sp);
    goro__call_on_stack(blocking_tramp, &bc, fn_sp);
    goro__store_relaxed(&m->blocking_hi, 0);
#if GORO__ASAN
    const void *ob;
    size_t os;
    __sanitizer_finish_switch_fiber(g_fake, &ob, &os);
#endif

    /* Back: take any idle P, or queue ourselves and let this thread sleep. */
    m = goro__getm();
    goro__mutex_lock(&S.lock);
    p = pidleget_locked();
    goro__mutex_unlock(&S.lock);
    atomic_fetch_sub_explicit(&S.nsyscall, 1, memory_order_acq_rel);
    if (p) {
        acquirep(m, p);
        s = goro__load_relaxed(&g->base.status);
        goro__store_release(&g->base.status, GORO__GST(GORO__GST_SEQ(s) + 1, GORO__G_RUNNING));
        goro__store_relaxed(&p->cur_slot, g->base.slot + 1);
    } else {
        m->after.kind = GORO__AFTER_REQUEUE;
        m->after.g = g;
        do_switch(m, g, NULL);
        after_switch();
    }
    g->wait_fp = NULL;
    return 0;
}

int goro_sleep_until(int64_t deadline)
{
    goro__m *m = goro__getm();
    if (!m || !m->curg)
        return -EPERM;
    if (deadline <= goro__nanotime())
        return goro_yield();
    goro__g *g = m->curg;
    GORO__WAIT_FRAME(g);
    goro__park(GORO__WAIT_SLEEP, NULL, NULL, NULL, deadline);
    return 0;
}

int goro_sleep(int64_t ns)
{
    if (ns <= 0)
        return goro_yield();
    return goro_sleep_until(goro_deadline_after(ns));
}

size_t goro_num_goroutines(void)
{
    if (!goro__running())
        return 0;
    return goro__count_goroutines();
}

int goro_procs(void) { return goro__running() ? (int)S.nprocs : 0; }

/* ---- fork (fork.c) ---- */

/* fork.c's pthread_atfork child handler, in the child (one thread, the one
 * that forked). If the runtime was active at the fork, make this copy of it
 * inert and return true: the calling thread stops being a runtime thread
 * (goroutine-context calls return -EPERM), the runtime reads as not running,
 * and nothing may start a scheduler thread (wakep finds no idle P). The
 * inherited state is otherwise left as it was; goro_run fails with -ECHILD
 * (fork.c). Returns false, changing nothing, when the runtime was not active. */
bool goro__sched_fork_child(void)
{
    if (!atomic_load(&rt_active))
        return false;
    tls_m = NULL;
    goro__store_relaxed(&S.shutdown, 1);
    goro__store_relaxed(&S.npidle, 0);
    atomic_store(&rt_running, 0);
    atomic_store(&rt_active, 0); /* goro_run gets past -EBUSY to -ECHILD */
    return true;
}
