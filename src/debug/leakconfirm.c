/*
 * leakconfirm.c - the watchdog's second tier: goro's confirmation thread.
 *
 * The watchdog judges from counts (a family that keeps growing while its
 * members wait long); the reachability scan judges from memory (nothing
 * live reaches what they wait on). When the watchdog reports a suspect it
 * asks for one scan, whose result marks the suspect "confirmed leaked" or
 * "still reachable" (watchdog.c, goro__watchdog_settle).
 *
 * Why a thread of its own: the watchdog runs on sysmon, which must keep
 * preempting and retaking processors and cannot be stalled for a scan
 * (up to about a second on a large heap); a goroutine would need a
 * processor, a place in the goroutine lists, and would show in every
 * dump and leak check. The thread is started on the first request (most
 * processes never have a suspect) on a stack goro maps (runtime/thread.h),
 * is known to the scan like sysmon (stopped by other scans, its frames,
 * runtime code only, never scanned) and to the deadlock check
 * (goro__aux_threads: not one of the program's threads, which could wake
 * a goroutine), and lives until goro_run's teardown.
 * SIGQUIT stays blocked in it (sysmon handles the dump).
 *
 * Rate limit: a scan starts only when the previous one ended at least
 * max(interval, 100 x its total time) ago (1 s after one that could not
 * stop the world consistently): scans take at most ~1% of a CPU and stop the world at
 * most ~1% of the time, whatever the leak rate.
 *
 * Protocol (cf.lock, a leaf: never held while scanning or while calling
 * the watchdog; the watchdog kicks without wd.lock):
 *  - kick: requested = true, signal the thread (start it first if needed),
 *    unless stopping.
 *  - thread: wait until requested and the rate limit allows; clear
 *    requested; unlock; scan; settle; lock; compute the next allowed
 *    start.
 * Race windows: (1) a kick during a scan sets requested again: one more
 * scan once allowed, after which settle finds nothing pending and the
 * watchdog stops kicking; (2) a kick racing goro__confirm_stop: stopping is
 * set under cf.lock before the join, and a kick that sees it does nothing,
 * so no thread is started after the join; (3) the thread wakes spuriously
 * or early: it re-checks every condition under cf.lock.
 */
#include "debug/leakconfirm.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "debug/leakscan.h"
#include "debug/watchdog.h"
#include "runtime/internal.h"
#include "runtime/thread.h"

#define STACK_SIZE (1u << 20)

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC (goro__nanotime) */
    bool cond_ready;
    bool requested, stopping, started;
    int64_t interval;
    int64_t next_ok; /* goro__nanotime() before which no scan starts */
    goro__thread th;
    _Atomic int tid;             /* while the thread runs */
    _Atomic uintptr_t lo, hi;    /* its stack */
    _Atomic uint64_t scans;
} cf = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void init_cond_locked(void)
{
    if (cf.cond_ready)
        return;
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&cf.cond, &a);
    pthread_condattr_destroy(&a);
    cf.cond_ready = true;
}

static void wait_until_locked(int64_t t)
{
    struct timespec ts = {.tv_sec = t / GORO_SECOND, .tv_nsec = t % GORO_SECOND};
    pthread_cond_timedwait(&cf.cond, &cf.lock, &ts);
}

static void *confirm_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&cf.lock); /* the starter has written cf.th by now */
    atomic_store(&cf.lo, cf.th.lo);
    atomic_store(&cf.hi, cf.th.hi);
    atomic_store(&cf.tid, (int)syscall(SYS_gettid));
    for (;;) {
        if (cf.stopping)
            break;
        if (!cf.requested) {
            pthread_cond_wait(&cf.cond, &cf.lock);
            continue;
        }
        int64_t now = goro__nanotime();
        if (now < cf.next_ok) {
            wait_until_locked(cf.next_ok);
            continue;
        }
        cf.requested = false;
        int64_t interval = cf.interval;
        pthread_mutex_unlock(&cf.lock);

        goro__scan_result r;
        int rc = goro__leakscan_thread(cf.th.lo, cf.th.hi, &r);
        atomic_fetch_add(&cf.scans, 1);
        goro__watchdog_settle(rc, &r, now);
        /* The world could not be stopped consistently: soon again. Any
         * other failure (-EBUSY: the program owns the stop signal): at the
         * normal pace. */
        bool failed = rc == -EAGAIN || (rc == 0 && r.incomplete && goro__leakscan_supported(NULL));
        int64_t cost = r.total_ns, end = goro__nanotime();
        goro__scan_result_free(&r);

        pthread_mutex_lock(&cf.lock);
        int64_t gap = failed ? GORO_SECOND : interval;
        if (cost > 0 && cost <= INT64_MAX / 100 && cost * 100 > gap)
            gap = cost * 100;
        cf.next_ok = end + gap;
    }
    atomic_store(&cf.tid, 0);
    atomic_store(&cf.lo, 0);
    atomic_store(&cf.hi, 0);
    pthread_mutex_unlock(&cf.lock);
    return NULL;
}

void goro__confirm_kick(int64_t interval)
{
    pthread_mutex_lock(&cf.lock);
    init_cond_locked();
    if (cf.stopping) {
        pthread_mutex_unlock(&cf.lock);
        return;
    }
    cf.interval = interval;
    cf.requested = true;
    if (!cf.started) {
        sigset_t quit, old;
        sigemptyset(&quit);
        sigaddset(&quit, SIGQUIT);
        pthread_sigmask(SIG_BLOCK, &quit, &old); /* inherited by the thread */
        atomic_fetch_add(&goro__aux_threads, 1); /* before it exists (sched.c's deadlock check) */
        int rc = goro__thread_start(&cf.th, STACK_SIZE, confirm_main, NULL);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc == 0) {
            cf.started = true;
        } else {
            atomic_fetch_sub(&goro__aux_threads, 1);
            cf.requested = false; /* no thread: the next pass asks again */
        }
    } else {
        pthread_cond_signal(&cf.cond);
    }
    pthread_mutex_unlock(&cf.lock);
}

void goro__confirm_allow(void)
{
    pthread_mutex_lock(&cf.lock);
    cf.stopping = false;
    cf.requested = false;
    pthread_mutex_unlock(&cf.lock);
}

void goro__confirm_stop(void)
{
    pthread_mutex_lock(&cf.lock);
    init_cond_locked();
    cf.stopping = true;
    bool started = cf.started;
    cf.started = false;
    pthread_cond_signal(&cf.cond);
    pthread_mutex_unlock(&cf.lock);
    if (started) {
        goro__thread_join(&cf.th);
        atomic_fetch_sub(&goro__aux_threads, 1);
    }
}

bool goro__confirm_thread(int *tid, uintptr_t *lo, uintptr_t *hi)
{
    int t = atomic_load(&cf.tid);
    if (!t)
        return false;
    *tid = t;
    *lo = atomic_load(&cf.lo);
    *hi = atomic_load(&cf.hi);
    return *lo != 0;
}

uint64_t goro__confirm_scans(void) { return atomic_load(&cf.scans); }
