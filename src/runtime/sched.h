/*
 * sched.h - the M:N scheduler's internal interface: processors (P), OS
 * threads (M), run queues, parking and readying goroutines.
 *
 * See the design comment at the top of sched.c for the model and the
 * invariants; this header is what channels, select, sync, timers and the
 * diagnostics use.
 */
#ifndef GORO_SCHED_H
#define GORO_SCHED_H

#include <pthread.h>

#include "runtime/census.h"
#include "runtime/g.h"
#include "runtime/internal.h"
#include "runtime/thread.h"
#include "runtime/lock.h"
#include "runtime/timer.h"

#define GORO__MAX_PROCS 256
#define GORO__RUNQ_SIZE 256
#define GORO__STACK_CACHE 64
#define GORO__SLOT_CACHE 64

/* ---- wait queues and waiter records -------------------------------------- */

/* A waiter is what a blocked goroutine leaves on a queue: it lives on the
 * goroutine's own stack for the duration of the wait. Queues are circular
 * doubly-linked lists protected by the owning primitive's spinlock. */
typedef struct goro__waiter {
    struct goro__waiter *next, *prev;
    struct goro__g *g;
    uint64_t seq;            /* status sequence of the wait (claim token) */
    void *elem;              /* channel element source / destination */
    struct goro__waitq *q;   /* queue it is on, NULL once dequeued */
    goro__spinlock *lock;    /* lock that protects q */
    const void *obj;         /* the primitive (channel, mutex, ...) */
    int32_t index;           /* select case index, or primitive-specific */
    uint32_t arg;            /* primitive-specific */
    int64_t t;               /* primitive-specific (mutex: first enqueue time) */
    uint8_t ok;              /* set by the waker */
    /* Only one party can ever wake this waiter (no deadline, one queue):
     * the waker, serialized by the queue lock, may mark the goroutine
     * runnable with a plain store instead of a CAS. */
    uint8_t solo;
    /* Runtime teardown: release what the wait holds (a channel reference). */
    void (*drop)(struct goro__waiter *w);
} goro__waiter;

typedef struct goro__waitq {
    goro__waiter *head;
} goro__waitq;

static inline bool goro__waitq_empty(const goro__waitq *q) { return q->head == NULL; }

static inline void goro__waitq_push(goro__waitq *q, goro__waiter *w)
{
    w->q = q;
    if (!q->head) {
        w->next = w->prev = w;
        q->head = w;
    } else {
        goro__waiter *h = q->head;
        w->next = h;
        w->prev = h->prev;
        h->prev->next = w;
        h->prev = w;
    }
}

static inline void goro__waitq_push_front(goro__waitq *q, goro__waiter *w)
{
    goro__waitq_push(q, w);
    q->head = w;
}

static inline void goro__waitq_remove(goro__waitq *q, goro__waiter *w)
{
    if (w->next == w) {
        q->head = NULL;
    } else {
        w->prev->next = w->next;
        w->next->prev = w->prev;
        if (q->head == w)
            q->head = w->next;
    }
    w->next = w->prev = NULL;
    w->q = NULL;
}

void goro__wakep(void);

/* ---- processors and threads ------------------------------------------------ */

typedef struct goro__p {
    uint32_t id;
    _Atomic uint32_t status;            /* GORO__P_IDLE / GORO__P_RUNNING */
    struct goro__m *m;                  /* owner while running */
    struct goro__p *link;               /* idle list */
    /* Run queue: single producer (the owner), many consumers (stealers). */
    _Alignas(GORO__CACHELINE) _Atomic uint32_t runqhead;
    _Atomic uint32_t runqtail;
    _Atomic(goro__gbase *) runnext;
    _Atomic(goro__gbase *) runq[GORO__RUNQ_SIZE];
    /* Ticks watched by sysmon. schedtick moves at every switch (a goroutine
     * that does not move it is running without yielding); slicetick moves
     * only when a goroutine is taken from the run queue rather than from
     * runnext, so a chain of hand-offs shares one time slice (Go's
     * inheritTime). `stuck` is set by sysmon: GORO__STUCK_SLICE when the
     * slice has lasted a whole period (the owner then takes the run queue
     * head before runnext, so hand-off chains cannot starve the queue),
     * GORO__STUCK_RUNNING when not even schedtick moved (one goroutine runs
     * without yielding: stealers may then take runnext too). */
    _Alignas(GORO__CACHELINE) _Atomic uint32_t schedtick;
    _Atomic uint32_t slicetick;
    _Atomic uint32_t stuck;
    _Atomic uint32_t cur_slot;          /* registry slot + 1 of the running G */
    /* Timers (timer.c). */
    goro__spinlock timers_lock;
    goro__timer **timers;
    uint32_t ntimers, timers_cap;
    _Atomic int64_t timer0;             /* earliest when, 0 if none */
    /* Owner-only caches. */
    struct goro__g *scache[GORO__STACK_CACHE];
    uint32_t nscache;
    uint32_t slotcache[GORO__SLOT_CACHE];
    uint32_t nslot;
    uint64_t id_next, id_end;
    char *nb_chunk;                     /* newborn region chunk being filled */
    uint32_t nb_used;
    uint64_t rng;
    uint32_t gq_countdown;              /* look at the global queue when 0 */
    /* Goroutine counts, written by the owner, summed by readers. */
    _Atomic uint64_t nspawned, nexited;
    /* Goroutines that parked, for the census (census.h). */
    goro__census_log *census_log;
} goro__p;

enum { GORO__P_IDLE = 0, GORO__P_RUNNING = 1 };
enum { GORO__STUCK_NO = 0, GORO__STUCK_SLICE = 1, GORO__STUCK_RUNNING = 2 };

enum {
    GORO__AFTER_NONE = 0,
    GORO__AFTER_PARK,
    GORO__AFTER_YIELD,
    GORO__AFTER_EXIT,
    GORO__AFTER_REQUEUE /* back from a blocking call without a P: global queue */
};

typedef struct goro__m {
    uint32_t id;
    goro__thread th;                    /* its thread (thread.h); th.id 0: not started */
    int tid;                            /* kernel thread id */
    uint32_t ncreate;                   /* where it was created (threadcreate) */
    uintptr_t create_pc[16];
    bool is_main;                       /* the thread that called goro_run */
    /* CPU profile samples (cpuprof.c): set by another thread under the
     * profiler's lock (release), read by this thread's SIGPROF handler
     * (acquire). */
    struct goro__cpubuf *_Atomic cpubuf;
    _Atomic uint32_t park;              /* futex word for stopm */
    struct goro__p *p;                  /* P held, NULL when idle */
    struct goro__p *nextp;              /* P handed over by startm */
    struct goro__g *curg;               /* running goroutine, NULL on g0 */
    void *g0_sp;                        /* saved scheduler context */
    /* While goro_blocking's fn runs on this thread's own stack: the top of
     * fn's frames (the leak scan reads [sp, blocking_hi); everything else
     * on that stack is the scheduler's). 0 otherwise. */
    _Atomic uintptr_t blocking_hi;
    bool spinning;
    struct goro__m *link;               /* idle list */
    struct goro__m *alllink;
    /* What the goroutine that just switched away asked us to finish. */
    struct {
        int kind;
        struct goro__g *g;
        void (*commit)(void *arg);
        void *arg;
        int64_t deadline;
    } after;
    /* Native thread stack (the g0 stack): bounds for unwinding and tools. */
    uintptr_t g0_lo, g0_hi;
    void *g0_asan_fake;
    void *g0_tsan_fiber;
    void *altstack;
} goro__m;

/* The M of the calling thread (NULL for threads that are not the runtime's).
 * Must not be cached by the compiler across a context switch (the goroutine
 * may resume on another thread): on x86-64 the thread pointer is read with
 * a volatile asm each time and the TLS slot found at a fixed offset from it
 * (initial-exec TLS), elsewhere through an out-of-line call. */
extern __thread struct goro__m *goro__tls_m __attribute__((tls_model("initial-exec")));
#if defined(__x86_64__)
extern ptrdiff_t goro__tls_m_off;
static inline struct goro__m *goro__getm(void)
{
    char *tp;
    __asm__ __volatile__("movq %%fs:0, %0" : "=r"(tp));
    return *(struct goro__m **)(void *)(tp + goro__tls_m_off);
}
#else
struct goro__m *goro__getm(void);
#endif

/* The running goroutine, or NULL. */
static inline goro__g *goro__getg(void)
{
    goro__m *m = goro__getm();
    return m ? m->curg : NULL;
}

/* True while goro_run is active. */
bool goro__running(void);

/* ---- parking and readying --------------------------------------------------- */

/* Sequence number the calling goroutine's next wait will carry. Waiter
 * records must be stamped with it before they become visible. */
static inline uint64_t goro__park_seq(goro__g *g)
{
    return GORO__GST_SEQ(goro__load_relaxed(&g->base.status)) + 1;
}

/* Block the calling goroutine. After the switch away has completed, the
 * scheduler marks it WAITING, arms its timer if deadline is not
 * GORO_NO_DEADLINE, and calls commit(arg) (typically: unlock the lock that
 * protects the queue the goroutine put its waiter on). Returns the wake
 * value set by whoever claimed it (GORO__WAKE_TIMEOUT for the deadline). The
 * timer is always disarmed on return. */
int32_t goro__park(unsigned reason, const void *obj, void (*commit)(void *), void *arg,
                   int64_t deadline);

/* Commit helper: unlock the goro__spinlock at arg. */
void goro__commit_unlock(void *lock);

/* Claim the goroutine behind waiter w (CAS WAITING -> RUNNABLE for w's
 * sequence). Returns false if someone else already woke it. On success the
 * caller must set anything the goroutine reads on waking, then call
 * goro__ready. */
bool goro__claim(goro__g *g, uint64_t seq, int32_t wake);

/* Claim the goroutine behind waiter w with wake value `wake` (see solo). */
static inline bool goro__claim_waiter(goro__waiter *w, int32_t wake)
{
    if (w->solo) {
        w->g->wake = wake;
        goro__store_release(&w->g->base.status, GORO__GST(w->seq, GORO__G_RUNNABLE));
        return true;
    }
    return goro__claim(w->g, w->seq, wake);
}

/* Put a claimed goroutine on a run queue. next: run it as soon as the
 * current goroutine blocks (channel hand-off). May be called from any
 * thread. The hand-off into an empty runnext slot is inline. */
void goro__ready_slow(goro__g *g, bool next);
static inline void goro__ready(goro__g *g, bool next);

/* Queue a just-spawned goroutine on the current P and wake an idle thread. */
void goro__ready_new(goro__gbase *gb);

static inline void goro__ready(goro__g *g, bool next)
{
    goro__m *m = goro__getm();
    goro__p *p;
    if (GORO__LIKELY(next && m && (p = m->p))) {
        goro__gbase *old = NULL;
        if (GORO__LIKELY(atomic_compare_exchange_strong_explicit(
                &p->runnext, &old, &g->base, memory_order_release, memory_order_relaxed))) {
            /* Work beyond the hand-off: let an idle thread help. */
            if (goro__load_relaxed(&p->runqtail) != goro__load_acquire(&p->runqhead))
                goro__wakep();
            return;
        }
    }
    goro__ready_slow(g, next);
}

static inline bool goro__stack_check_canary(goro__g *g)
{
    return !g->stack_canary || *(volatile uint64_t *)g->stack_lo == 0x676f726f2d73746bull;
}

/* Record the frame of the public blocking call that is about to park, so
 * dumps start at that call. */
#define GORO__WAIT_FRAME(g) ((g)->wait_fp = __builtin_frame_address(0))

/* ---- internals shared with g.c, stack.c, timer.c, sysmon.c, dump.c ---------- */

typedef struct goro__sched {
    goro__mutex lock;
    goro__p *pidle;
    _Atomic uint32_t npidle;
    goro__m *midle;
    uint32_t nmidle;
    _Atomic uint32_t nmspinning;
    goro__m *allm;
    uint32_t mcount;
    /* Global run queue (under lock). */
    goro__gbase **gq;                   /* ring of gq_cap entries */
    uint32_t gq_cap, gq_head;
    _Atomic uint32_t gq_size;
    /* Some P is stuck (sysmon) with goroutines queued behind it: a yield
     * with nothing else to run takes them (goro_yield). */
    _Atomic uint32_t stuck_work;
    /* The thread-creation gate (goro__newm_gate_close, sched.c). */
    _Atomic uint32_t newm_gate;     /* closers holding it (0: open) */
    _Atomic uint32_t newm_inflight; /* 2 per newm past the gate: its thread (until m->tid), itself (until m->th) */
    _Atomic int newm_gate_tid;      /* the closer's thread (not held back by its own gate) */
    /* Configuration. */
    goro__p *allp[GORO__MAX_PROCS];
    uint32_t nprocs;
    size_t stack_size;
    unsigned flags;
    int64_t longrun_ns;
    /* Global state. */
    _Atomic uint32_t shutdown;
    _Atomic uint64_t next_id;           /* id batches for Ps */
    _Atomic int64_t poll_until;         /* 0: nobody polls; else its wake time */
    _Atomic int64_t last_poll;          /* when the poller last looked */
    _Atomic uint32_t nwaiting_io;       /* goroutines blocked in netpoll */
    _Atomic uint32_t nsyscall;          /* goroutines in blocking calls */
} goro__sched;

extern goro__sched goro__sched_;

void goro__wakep(void);

/* A fast per-P pseudo-random number (wyrand; per-thread state for threads
 * without a P). Not for cryptography. */
uint64_t *goro__rand_state_slow(void);
static inline uint64_t goro__rand(void)
{
    goro__m *m = goro__getm();
    uint64_t *s = (m && m->p) ? &m->p->rng : goro__rand_state_slow();
    *s += 0xa0761d6478bd642full;
    __uint128_t t = (__uint128_t)*s * (*s ^ 0xe7037ed1a0b428dbull);
    return (uint64_t)(t >> 64) ^ (uint64_t)t;
}

/* Uniform integer in [0, n) from 32 random bits (Lemire's reduction). */
static inline uint32_t goro__rand_below(uint32_t bits, uint32_t n)
{
    return (uint32_t)(((uint64_t)bits * n) >> 32);
}
goro__p *goro__curp(void);

/* g.c */
int goro__reg_alloc(goro__p *p, uint32_t *slot);
void goro__reg_free(goro__p *p, uint32_t slot);
goro__newborn *goro__newborn_alloc(goro__p *p);
void goro__newborn_free(goro__newborn *nb);
/* Return the reserve of free newborn chunks to the OS (sysmon, when idle). */
void goro__newborn_scavenge(void);
void goro__g_teardown_all(void);
void goro__g_subsystem_fini(void);
size_t goro__count_goroutines(void);
GORO__NORETURN void goro__g_start(goro__g *g);

/* stack.c: stacks with their G record at the top. */
int goro__stack_init(size_t stack_size);
void goro__stack_fini(void);
goro__g *goro__stack_alloc(goro__p *p);
void goro__stack_free(goro__p *p, goro__g *g);
void goro__stack_flush_cache(goro__p *p);
void goro__stack_scavenge(void);
/* Visit the runtime's own memory ranges (stack regions, registry chunks,
 * the newborn region): the leak scan treats them specially. */
typedef void (*goro__range_fn)(uintptr_t lo, uintptr_t hi, void *arg);
void goro__stack_regions(goro__range_fn fn, void *arg);
void goro__g_regions(goro__range_fn fn, void *arg);
/* The goroutine record of the stack slot containing addr, or NULL. */
goro__g *goro__stack_owner(uintptr_t addr);
/* If addr lies in a goroutine stack's guard or lowest page, the goroutine
 * record of that stack (for the overflow report); else NULL. */
goro__g *goro__stack_overflow_owner(uintptr_t addr);
void goro__stack_overflow_report(goro__g *g);
/* Async-signal-safe, for the SIGSEGV handler (stack.c has the details):
 * the goroutine whose stack overflow caused a fault at addr taken with
 * stack pointer sp while cur ran, or NULL; and a running goroutine whose
 * canary-only stack has its canary overwritten, or NULL. */
goro__g *goro__stack_fault_culprit(goro__g *cur, uintptr_t sp, uintptr_t addr);
goro__g *goro__stack_overrun_running(void);

/* netpoll.c */
int goro__netpoll_init(void);
void goro__netpoll_fini(void);
/* Wait for I/O or until `until` (0: do not block, INT64_MAX: no timeout);
 * returns true if woken by goro__netpoll_break. */
bool goro__netpoll(int64_t until);
void goro__netpoll_break(void);

/* The thread-creation gate, for a caller that must know every thread goro
 * owns while it stops them (the leak scan). Close: no new M thread is
 * created until the gate opens again (newm waits in front of it; the
 * closing thread itself is not held back), and every M already being
 * created has published its kernel tid (m->tid) before this returns 0.
 * -ETIMEDOUT when a thread did not get that far within timeout_ns: the
 * gate is closed all the same. Open: always, after a close. Closers are
 * serialised by the caller (one scan at a time). */
int goro__newm_gate_close(int64_t timeout_ns);
void goro__newm_gate_open(void);

/* sysmon.c */
int goro__sysmon_start(void);
void goro__sysmon_stop(void);
void goro__sysmon_wake(void);
/* The sysmon thread's stack mapping (goro's own: thread.h); false when
 * sysmon is not running. */
bool goro__sysmon_stack(uintptr_t *lo, uintptr_t *hi);
/* Kernel thread id of the sysmon thread (0 before it ran). */
int goro__sysmon_tid(void);
/* A P became busy after the whole runtime was idle: restart the ticks. */
void goro__sysmon_note_busy(void);
void goro__sysmon_request_dump(void);
/* sched.c, for sysmon: move a stuck P's run queue and timers elsewhere. */
uint32_t goro__sched_handoff_stuck(goro__p *v);

/* signals.c */
/* sigaction(sig, sa, old) for a handler goro installs, with *old kept in a
 * global: glibc fills the part of sa_mask beyond the kernel's 64 signals
 * with whatever its stack held (stale pointers, which the leak scan reads
 * in the global); that part is cleared. 0 or -errno. */
struct sigaction;
int goro__sigaction_save(int sig, const struct sigaction *sa, struct sigaction *old);
int goro__signals_install(void);
void goro__signals_restore(void);
int goro__m_altstack_init(goro__m *m);
void goro__m_altstack_fini(goro__m *m);

/* dump.c: write all goroutines, Go crash-dump shape. */
int goro__dump_all(int fd, const char *header);

/* Output sinks for the dump writer: an fd (arg: int *) or memory. */
typedef int (*goro__sink)(const void *buf, size_t len, void *arg);
typedef struct goro__membuf {
    unsigned char *data;
    size_t len, cap;
} goro__membuf;
int goro__sink_fd(const void *buf, size_t len, void *arg);
int goro__sink_mem(const void *buf, size_t len, void *arg);

typedef struct goro__dump_opts {
    const uint64_t *only_ids; /* sorted; NULL: every goroutine */
    size_t nonly;
    const char *state_suffix; /* e.g. " (leaked)" */
} goro__dump_opts;
int goro__dump_write(goro__sink sink, void *sink_arg, const char *header, uintptr_t self_fp,
                     const goro__dump_opts *o);

/* ---- fork (fork.c) ---- */

/* In the child of a fork (atfork child handler): if the runtime was active,
 * make the child's copy inert and return true (see sched.c). */
bool goro__sched_fork_child(void);

#endif /* GORO_SCHED_H */
