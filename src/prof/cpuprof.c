/*
 * cpuprof.c - the CPU profiler: SIGPROF sampling of every runtime thread.
 *
 * Owns: one POSIX timer per runtime thread (M) on that thread's CPU-time
 * clock (pthread_getcpuclockid), delivering SIGPROF to exactly that thread
 * (SIGEV_THREAD_ID) at `hz` — per thread, as Go does since 1.18, because a
 * process-wide setitimer skews samples between threads — and one sample
 * ring per M.
 *
 * The SIGPROF handler runs on the interrupted thread: it unwinds from the
 * interrupted registers (frame pointers, bounded by the goroutine's stack
 * or the thread's own stack, whichever the stack pointer is in) into the
 * M's ring, a single-producer/single-consumer queue (producer: the handler
 * on its own thread; consumer: the goroutine taking the profile). No locks,
 * no allocation, errno preserved. A full ring drops the sample and counts
 * it.
 *
 * Locking: prof.lock (a thread mutex) serialises start/stop/drain and the
 * list of rings; `active` is read by the handler and by starting threads.
 */
#define GORO__MUTEX_RANK GORO__RANK_SCHED /* lock.h */
#include "prof/cpuprof.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "runtime/sched.h"
#include "runtime/unwind.h"

#define RING 512

typedef struct cpu_rec {
    uint32_t npc;
    uintptr_t pcs[GORO__CPU_MAX_DEPTH];
} cpu_rec;

typedef struct goro__cpubuf {
    _Atomic uint32_t head, tail;
    _Atomic uint64_t lost;
    timer_t timer;
    bool has_timer;
    struct goro__cpubuf *next;
    cpu_rec recs[RING];
} goro__cpubuf;

static struct {
    pthread_mutex_t lock;
    _Atomic int active;
    int hz;
    goro__cpubuf *bufs; /* every ring ever made since the last start */
    uint64_t lost_base;
    struct sigaction old;
    bool handler_installed;
} prof = {.lock = PTHREAD_MUTEX_INITIALIZER};

GORO__NO_SANITIZE static void on_sigprof(int sig, siginfo_t *si, void *ucv)
{
    (void)sig;
    (void)si;
    goro__m *m = goro__getm();
    if (!m || !atomic_load_explicit(&prof.active, memory_order_relaxed))
        return;
    goro__cpubuf *b = atomic_load_explicit(&m->cpubuf, memory_order_acquire);
    if (!b)
        return;
    int saved_errno = errno;
    ucontext_t *uc = ucv;
    uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    uintptr_t fp = (uintptr_t)uc->uc_mcontext.gregs[REG_RBP];
    uintptr_t sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
    uintptr_t lo = m->g0_lo, hi = m->g0_hi;
    goro__g *g = m->curg;
    if (g && sp >= g->stack_lo && sp < g->stack_hi) {
        lo = g->stack_lo;
        hi = g->stack_hi;
    }
    uint32_t t = atomic_load_explicit(&b->tail, memory_order_relaxed);
    uint32_t h = atomic_load_explicit(&b->head, memory_order_acquire);
    if (t - h >= RING) {
        atomic_fetch_add_explicit(&b->lost, 1, memory_order_relaxed);
    } else {
        cpu_rec *r = &b->recs[t % RING];
        r->pcs[0] = pc;
        r->npc = 1 + goro__unwind_fp(fp, lo, hi, r->pcs + 1, NULL, GORO__CPU_MAX_DEPTH - 1);
        atomic_store_explicit(&b->tail, t + 1, memory_order_release);
    }
    errno = saved_errno;
}

/* Locked: give m a ring and a timer. */
static int arm(goro__m *m, bool self)
{
    if (!m->cpubuf) {
        goro__cpubuf *b = mmap(NULL, sizeof *b, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (b == MAP_FAILED)
            return -ENOMEM;
        b->next = prof.bufs;
        prof.bufs = b;
        atomic_store_explicit(&m->cpubuf, b, memory_order_release);
    }
    goro__cpubuf *b = m->cpubuf;
    if (b->has_timer)
        return 0;
    clockid_t clk = CLOCK_THREAD_CPUTIME_ID;
    if (!self && pthread_getcpuclockid(m->th.id, &clk) != 0)
        return -ESRCH;
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = SIGPROF;
    sev._sigev_un._tid = m->tid;
    if (timer_create(clk, &sev, &b->timer) != 0)
        return -errno;
    long ns = 1000000000L / prof.hz;
    struct itimerspec its = {.it_interval = {ns / 1000000000L, ns % 1000000000L},
                             .it_value = {ns / 1000000000L, ns % 1000000000L}};
    if (timer_settime(b->timer, 0, &its, NULL) != 0) {
        int e = errno;
        timer_delete(b->timer);
        return -e;
    }
    b->has_timer = true;
    return 0;
}

static void disarm(goro__cpubuf *b)
{
    if (b && b->has_timer) {
        timer_delete(b->timer);
        b->has_timer = false;
    }
}

int goro__cpuprof_start(int hz)
{
    if (hz < 1 || hz > 1000)
        return -EINVAL;
    if (!goro__running())
        return -ESRCH;
    pthread_mutex_lock(&prof.lock);
    if (atomic_load(&prof.active)) {
        pthread_mutex_unlock(&prof.lock);
        return -EBUSY;
    }
    prof.hz = hz;
    /* Forget what the previous profile left behind. */
    for (goro__cpubuf *b = prof.bufs; b; b = b->next) {
        atomic_store(&b->head, atomic_load(&b->tail));
        atomic_store(&b->lost, 0);
    }
    if (!prof.handler_installed) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_sigprof;
        sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        int e = goro__sigaction_save(SIGPROF, &sa, &prof.old);
        if (e != 0) {
            pthread_mutex_unlock(&prof.lock);
            return e;
        }
        prof.handler_installed = true;
    }
    atomic_store(&prof.active, 1);
    int rc = 0;
    goro__mutex_lock(&goro__sched_.lock);
    for (goro__m *m = goro__sched_.allm; m && rc == 0; m = m->alllink)
        if (m->tid)
            rc = arm(m, m == goro__getm());
    goro__mutex_unlock(&goro__sched_.lock);
    if (rc) {
        atomic_store(&prof.active, 0);
        for (goro__cpubuf *b = prof.bufs; b; b = b->next)
            disarm(b);
    }
    pthread_mutex_unlock(&prof.lock);
    return rc;
}

void goro__cpuprof_stop(void)
{
    pthread_mutex_lock(&prof.lock);
    if (atomic_exchange(&prof.active, 0))
        for (goro__cpubuf *b = prof.bufs; b; b = b->next)
            disarm(b);
    pthread_mutex_unlock(&prof.lock);
}

bool goro__cpuprof_active(void) { return atomic_load(&prof.active) != 0; }

uint64_t goro__cpuprof_drain(goro__cpu_sample_fn fn, void *arg)
{
    uint64_t lost = 0;
    pthread_mutex_lock(&prof.lock);
    for (goro__cpubuf *b = prof.bufs; b; b = b->next) {
        uint32_t h = atomic_load_explicit(&b->head, memory_order_relaxed);
        uint32_t t = atomic_load_explicit(&b->tail, memory_order_acquire);
        for (; h != t; h++) {
            const cpu_rec *r = &b->recs[h % RING];
            fn(r->pcs, r->npc, arg);
        }
        atomic_store_explicit(&b->head, h, memory_order_release);
        lost += atomic_load(&b->lost);
    }
    pthread_mutex_unlock(&prof.lock);
    return lost;
}

void goro__cpuprof_thread_start(goro__m *m)
{
    if (!atomic_load(&prof.active))
        return;
    pthread_mutex_lock(&prof.lock);
    if (atomic_load(&prof.active))
        arm(m, true);
    pthread_mutex_unlock(&prof.lock);
}

void goro__cpuprof_thread_stop(goro__m *m)
{
    pthread_mutex_lock(&prof.lock);
    goro__cpubuf *b = m->cpubuf;
    if (b) {
        disarm(b);
        goro__cpubuf **pp = &prof.bufs;
        while (*pp && *pp != b)
            pp = &(*pp)->next;
        if (*pp)
            *pp = b->next;
        m->cpubuf = NULL;
        munmap(b, sizeof *b);
    }
    pthread_mutex_unlock(&prof.lock);
}
