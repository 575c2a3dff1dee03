/*
 * sysmon.c - the system monitor thread.
 *
 * Owns: periodic chores that no goroutine can be trusted to do, because
 * goroutines are never preempted:
 *  - a P whose time slice has lasted a full period (~10 ms: one goroutine
 *    running without yielding, or a chain of runnext hand-offs) is marked
 *    "stuck": its owner then serves its run queue before runnext, stealers
 *    may take runnext too, and if it has queued goroutines or due timers an
 *    idle thread is woken to take them over; when no thread is idle and not
 *    even one switch happened (a raw blocking system call, a long
 *    computation), its queue goes to the global queue and its timers to a
 *    processor that still switches (goro__sched_handoff_stuck);
 *  - report a goroutine that has been running longer than the longrun
 *    threshold, once per stretch, on stderr;
 *  - keep the coarse clock fresh;
 *  - poll for I/O when goroutines wait on sockets and nobody polled for a
 *    whole period (every P busy);
 *  - return free goroutine stacks to the OS (goro__stack_scavenge);
 *  - write the SIGQUIT dump (the signal handler only sets a flag);
 *  - run the leak watchdog's passes (debug/watchdog.c).
 * When every P is idle it stops ticking and sleeps until a P becomes busy,
 * so an idle runtime costs no CPU.
 *
 * Signals: the runtime's threads block SIGQUIT; sysmon is the runtime
 * thread that takes it. It sleeps in poll() on an eventfd (woken by a
 * write, which is async-signal-safe): a blocking call that sanitizers
 * intercept, so ThreadSanitizer runs the handler at once instead of
 * deferring it until the thread wakes up.
 *
 * Locking: sysmon reads per-P atomics only; it takes no scheduler lock
 * except through goro__wakep.
 */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "debug/watchdog.h"
#include "runtime/sched.h"
#include "runtime/symbolize.h"

#define TICK (10 * GORO_MILLISECOND)
#define SCAVENGE_EVERY (500 * GORO_MILLISECOND)
#define IDLE_SLEEP (1000 * GORO_MILLISECOND)

static struct {
    goro__thread thread;
    bool started;
    int evfd; /* written to wake sysmon */
    _Atomic uint32_t stop;
    _Atomic uint32_t dump;
    _Atomic uint32_t deep; /* sleeping with the long idle timeout */
    uint32_t lasttick[GORO__MAX_PROCS], lastslice[GORO__MAX_PROCS];
    int64_t since[GORO__MAX_PROCS], slice_since[GORO__MAX_PROCS];
    bool reported[GORO__MAX_PROCS];
} sm;

void goro__sysmon_wake(void)
{
    uint64_t one = 1;
    ssize_t r = write(sm.evfd, &one, sizeof one);
    (void)r;
}

/* Dekker pair with sysmon's deep sleep: the caller took an idle P
 * (npidle decremented), then we read `deep`; sysmon sets `deep`, then
 * re-reads npidle before sleeping. With a full barrier between each write
 * and read, at least one side sees the other: either sysmon stays awake or
 * we wake it. Without them sysmon could miss a busy P for a whole second. */
void goro__sysmon_note_busy(void)
{
    goro__full_barrier();
    if (goro__load_relaxed(&sm.deep))
        goro__sysmon_wake();
}

/* Async-signal-safe. */
void goro__sysmon_request_dump(void)
{
    atomic_store(&sm.dump, 1);
    goro__sysmon_wake();
}

static void report_longrun(goro__p *p, int64_t dur)
{
    uint32_t slot = goro__load_relaxed(&p->cur_slot);
    if (!slot)
        return;
    goro__gsnap *s = malloc(sizeof *s);
    if (!s)
        return;
    if (goro__gsnap_take(slot - 1, s) && s->state == GORO__G_RUNNING) {
        char site[512];
        goro__format_site(site, sizeof site, &s->info);
        fprintf(stderr,
                "goro: goroutine %llu has been running for %.2fs without reaching a scheduling "
                "point (created at %s); other goroutines of its processor are handed to other "
                "threads\n",
                (unsigned long long)s->id, (double)dur / GORO_SECOND, site);
    }
    free(s);
}

static bool retake(int64_t now)
{
    bool busy = false, stuck_work = false;
    for (uint32_t i = 0; i < goro__sched_.nprocs; i++) {
        goro__p *p = goro__sched_.allp[i];
        if (goro__load_relaxed(&p->status) != GORO__P_RUNNING) {
            sm.since[i] = sm.slice_since[i] = 0;
            continue;
        }
        busy = true;
        uint32_t tick = goro__load_relaxed(&p->schedtick);
        uint32_t slice = goro__load_relaxed(&p->slicetick);
        if (tick != sm.lasttick[i] || sm.since[i] == 0) {
            sm.lasttick[i] = tick;
            sm.since[i] = now;
            sm.reported[i] = false;
        }
        if (slice != sm.lastslice[i] || sm.slice_since[i] == 0) {
            sm.lastslice[i] = slice;
            sm.slice_since[i] = now;
            if (goro__load_relaxed(&p->stuck))
                goro__store_relaxed(&p->stuck, 0);
            continue;
        }
        /* The same slice (one goroutine, or a chain of hand-offs) has held
         * this P for a whole period: let the queue go first and let idle
         * threads take the queued work; if not even one switch happened,
         * runnext may be taken too. */
        if (now - sm.slice_since[i] < TICK)
            continue;
        int64_t dur = now - sm.since[i];
        bool running = dur >= TICK;
        goro__store_relaxed(&p->stuck, running ? GORO__STUCK_RUNNING : GORO__STUCK_SLICE);
        bool work = goro__load_acquire(&p->runqhead) != goro__load_acquire(&p->runqtail) ||
                    (running && goro__load_relaxed(&p->runnext) != NULL);
        int64_t t0 = goro__load_relaxed(&p->timer0);
        if (work || (t0 && t0 <= now)) {
            stuck_work = true;
            goro__wakep();
        }
        /* Not even one switch for a period and no idle processor to steal
         * from it: move its queue and every timer (due or not) away. */
        if (running && (work || t0) && goro__load_relaxed(&goro__sched_.npidle) == 0)
            goro__sched_handoff_stuck(p);
        if (goro__sched_.longrun_ns > 0 && dur >= goro__sched_.longrun_ns && !sm.reported[i]) {
            sm.reported[i] = true;
            report_longrun(p, dur);
        }
    }
    if (goro__load_relaxed(&goro__sched_.stuck_work) != stuck_work)
        goro__store_relaxed(&goro__sched_.stuck_work, stuck_work);
    return busy;
}

static void do_dump(void)
{
    goro__dump_all(2, "SIGQUIT: quit\n\n");
    const char *mode = getenv("GORO_SIGQUIT");
    if (!mode || strcmp(mode, "dump") != 0)
        _exit(2);
}

static _Atomic int sysmon_tid; /* 0 until sysmon runs */

int goro__sysmon_tid(void) { return atomic_load(&sysmon_tid); }

bool goro__sysmon_stack(uintptr_t *lo, uintptr_t *hi)
{
    if (!sm.started || !sm.thread.lo)
        return false;
    *lo = sm.thread.lo;
    *hi = sm.thread.hi;
    return true;
}

static void *sysmon_main(void *arg)
{
    (void)arg;
    atomic_store(&sysmon_tid, (int)syscall(SYS_gettid));
    sigset_t quit;
    sigemptyset(&quit);
    sigaddset(&quit, SIGQUIT);
    pthread_sigmask(SIG_UNBLOCK, &quit, NULL);
    int64_t last_scavenge = goro__nanotime();
    int idle = 0;
    while (!atomic_load(&sm.stop)) {
        bool deep = idle >= 3;
        if (deep) {
            atomic_store(&sm.deep, 1);
            goro__full_barrier();
            if (goro__load_relaxed(&goro__sched_.npidle) != goro__sched_.nprocs) {
                atomic_store(&sm.deep, 0); /* a P became busy meanwhile */
                deep = false;
                idle = 0;
            }
        }
        struct pollfd pfd = {.fd = sm.evfd, .events = POLLIN};
        if (poll(&pfd, 1, (int)((deep ? IDLE_SLEEP : TICK) / GORO_MILLISECOND)) > 0) {
            uint64_t v;
            ssize_t r = read(sm.evfd, &v, sizeof v);
            (void)r;
        }
        if (deep)
            atomic_store(&sm.deep, 0);
        if (atomic_load(&sm.stop))
            break;
        int64_t now = goro__nanotime();
        goro__coarse_update(now);
        if (atomic_exchange(&sm.dump, 0))
            do_dump();
        bool busy = retake(now);
        goro__census_collect(now);
        goro__watchdog_tick(now);
        /* I/O completions must be noticed even when every P is busy. */
        if (goro__load_relaxed(&goro__sched_.nwaiting_io) &&
            goro__load_relaxed(&goro__sched_.poll_until) == 0 &&
            now - goro__load_relaxed(&goro__sched_.last_poll) > TICK)
            goro__netpoll(0);
        if (now - last_scavenge >= SCAVENGE_EVERY || (!busy && idle == 2)) {
            goro__stack_scavenge();
            if (!busy)
                goro__newborn_scavenge();
            last_scavenge = now;
        }
        idle = busy ? 0 : idle + 1;
    }
    return NULL;
}

int goro__sysmon_start(void)
{
    memset(&sm, 0, sizeof sm);
    sm.evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (sm.evfd < 0)
        return -errno;
    int rc = goro__thread_start(&sm.thread, 8u << 20, sysmon_main, NULL);
    if (rc) {
        close(sm.evfd);
        return rc;
    }
    sm.started = true;
    return 0;
}

void goro__sysmon_stop(void)
{
    if (!sm.started)
        return;
    atomic_store(&sm.stop, 1);
    goro__sysmon_wake();
    goro__thread_join(&sm.thread);
    close(sm.evfd);
    sm.started = false;
}
