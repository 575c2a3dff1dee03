/*
 * test_fork.c - fork() and process creation in a process running goro
 * (include/goro.h "Fork", docs/fork.md).
 *
 *  - The child of a fork made while the runtime runs may only exec or _exit:
 *    goro calls in it must fail with a clear error instead of hanging
 *    (goro_run: -ECHILD; goroutine-context calls: -EPERM, as on a thread that
 *    is not the runtime's), whether it was forked from a goroutine, from
 *    inside goro_blocking or from a thread that is not the runtime's. The
 *    child reports what each call returned through a pipe and _exits; the
 *    parent kills it if it has not exited after 10 s.
 *  - fork+execv and posix_spawn from several goroutines at once, while other
 *    goroutines keep the scheduler busy (channel ping-pong, timers), with the
 *    children's exit statuses checked and every wait bounded.
 *  - A fork while the runtime is not running (before the first goro_run, and
 *    after one has returned) leaves a child that can run goro normally.
 *  - malloc/free in a forked child while other threads allocate with every
 *    allocation sampled by the heap profiler (whose locks the fork handlers
 *    hold across fork).
 *
 * As everywhere in tests/: goroutines and foreign threads only record what
 * they saw; the test functions assert after goro_run returned.
 */
#define _GNU_SOURCE
#include "util.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MS GORO_MILLISECOND
#define FT_NORETURN __attribute__((noreturn))

/* How long a child gets before the parent kills it and fails the test. */
static int64_t child_timeout(void) { return gt_slow(10 * GORO_SECOND); }

static const char *errno_name(long rc)
{
    switch (-rc) {
    case 0: return "0";
    case EPERM: return "-EPERM";
    case ECHILD: return "-ECHILD";
    case EBUSY: return "-EBUSY";
    case ESRCH: return "-ESRCH";
    case EINVAL: return "-EINVAL";
    case EAGAIN: return "-EAGAIN";
    case ETIMEDOUT: return "-ETIMEDOUT";
    default: return rc > 0 ? "positive" : "other";
    }
}

/* ========================================================================= */
/* Background load: channel ping-pong and timers keep every P busy            */
/* ========================================================================= */

#define LOAD_PAIRS 2
#define LOAD_SLEEPERS 3

typedef struct load {
    atomic_bool stop;
    atomic_long pingpongs;
    atomic_long ticks;
    goro_chan *a[LOAD_PAIRS], *b[LOAD_PAIRS];
    goro_waitgroup wg;
    int err; /* first error seen by a load goroutine */
} load;

typedef struct {
    load *l;
    int i;
} load_arg;

static load_arg load_args[LOAD_PAIRS + LOAD_SLEEPERS];

static void load_note(load *l, int rc)
{
    if (rc && !l->err)
        l->err = rc;
}

static void load_pinger(void *arg)
{
    load_arg *a = arg;
    load *l = a->l;
    int v = 0;
    while (!atomic_load(&l->stop)) {
        int rc = goro_chan_send(l->a[a->i], &v);
        bool ok = false;
        if (!rc)
            rc = goro_chan_recv(l->b[a->i], &v, &ok);
        if (rc || !ok) {
            load_note(l, rc ? rc : -EPIPE);
            break;
        }
        v++;
        atomic_fetch_add(&l->pingpongs, 1);
    }
    goro_chan_close(l->a[a->i]);
    goro_waitgroup_done(&l->wg);
}

static void load_ponger(void *arg)
{
    load_arg *a = arg;
    load *l = a->l;
    for (;;) {
        int v;
        bool ok = false;
        int rc = goro_chan_recv(l->a[a->i], &v, &ok);
        if (rc || !ok) {
            load_note(l, rc);
            break;
        }
        if ((rc = goro_chan_send(l->b[a->i], &v))) {
            load_note(l, rc);
            break;
        }
    }
    goro_waitgroup_done(&l->wg);
}

static void load_sleeper(void *arg)
{
    load_arg *a = arg;
    load *l = a->l;
    while (!atomic_load(&l->stop)) {
        int rc = goro_sleep((int64_t)(a->i + 1) * 300 * GORO_MICROSECOND);
        if (rc) {
            load_note(l, rc);
            break;
        }
        atomic_fetch_add(&l->ticks, 1);
    }
    goro_waitgroup_done(&l->wg);
}

/* In a goroutine. */
static void load_start(load *l)
{
    for (int i = 0; i < LOAD_PAIRS; i++) {
        load_note(l, goro_chan_make(&l->a[i], sizeof(int), 0));
        load_note(l, goro_chan_make(&l->b[i], sizeof(int), 0));
        load_args[i] = (load_arg){l, i};
        goro_waitgroup_add(&l->wg, 2);
        load_note(l, goro_go(load_pinger, &load_args[i]));
        load_note(l, goro_go(load_ponger, &load_args[i]));
    }
    for (int i = 0; i < LOAD_SLEEPERS; i++) {
        load_args[LOAD_PAIRS + i] = (load_arg){l, i};
        goro_waitgroup_add(&l->wg, 1);
        load_note(l, goro_go(load_sleeper, &load_args[LOAD_PAIRS + i]));
    }
    /* Let the load get going (timers armed, a thread polling). */
    gt_wait_atomic_ge(&l->ticks, 5, gt_slow(5 * GORO_SECOND));
}

/* In a goroutine. */
static void load_stop(load *l)
{
    atomic_store(&l->stop, true);
    int rc = gt_wg_wait(&l->wg, 30);
    if (rc) {
        fprintf(stderr, "load goroutines did not stop (%s); goroutines:\n", errno_name(rc));
        goro_dump(2);
    }
    load_note(l, rc);
    for (int i = 0; i < LOAD_PAIRS; i++) {
        goro_chan_release(l->a[i]);
        goro_chan_release(l->b[i]);
    }
}

/* Test thread, after goro_run. */
static void load_check(load *l)
{
    assert_rc(l->err, 0);
    assert_true_msg(atomic_load(&l->pingpongs) > 0, "no ping-pong ran");
    assert_true_msg(atomic_load(&l->ticks) > 5, "only %ld timer ticks", atomic_load(&l->ticks));
}

/* ========================================================================= */
/* Waiting for a child, bounded                                               */
/* ========================================================================= */

/* Outcome of one wait. */
typedef struct reaped {
    bool reaped;    /* waitpid returned the child */
    bool timed_out; /* had to kill it */
    int status;
    int64_t ns; /* from start of the wait to the reaping */
    int err;    /* waitpid error (-errno) */
} reaped;

static void sleep_ms_thread(void)
{
    struct timespec ts = {0, 1000 * 1000};
    nanosleep(&ts, NULL);
}

/* Kill and reap after a timeout (plain thread calls: bounded by SIGKILL). */
static void kill_and_reap(pid_t pid, reaped *r)
{
    r->timed_out = true;
    kill(pid, SIGKILL);
    for (int i = 0; i < 5000; i++) {
        pid_t w = waitpid(pid, &r->status, WNOHANG);
        if (w == pid) {
            r->reaped = true;
            return;
        }
        if (w < 0) {
            r->err = -errno;
            return;
        }
        sleep_ms_thread();
    }
}

/* Any thread: WNOHANG loop with 1 ms thread sleeps until timeout_ns. */
static void wait_child_thread(pid_t pid, int64_t timeout_ns, reaped *r)
{
    int64_t t0 = gt_mono_ns();
    for (;;) {
        pid_t w = waitpid(pid, &r->status, WNOHANG);
        if (w == pid) {
            r->reaped = true;
            break;
        }
        if (w < 0) {
            r->err = -errno;
            return;
        }
        if (gt_mono_ns() - t0 >= timeout_ns) {
            kill_and_reap(pid, r);
            break;
        }
        sleep_ms_thread();
    }
    r->ns = gt_mono_ns() - t0;
}

typedef struct {
    pid_t pid;
    int64_t timeout_ns;
    reaped *r;
} blocking_wait;

static void blocking_wait_fn(void *arg)
{
    blocking_wait *bw = arg;
    wait_child_thread(bw->pid, bw->timeout_ns, bw->r);
}

/* In a goroutine: the wait runs inside goro_blocking (the P is handed to
 * another thread meanwhile). */
static void wait_child_blocking(pid_t pid, int64_t timeout_ns, reaped *r)
{
    blocking_wait bw = {pid, timeout_ns, r};
    goro_blocking(blocking_wait_fn, &bw);
}

/* In a goroutine: WNOHANG loop with goro_sleep between tries. */
static void wait_child_goro(pid_t pid, int64_t timeout_ns, reaped *r)
{
    int64_t t0 = gt_mono_ns();
    for (;;) {
        pid_t w = waitpid(pid, &r->status, WNOHANG);
        if (w == pid) {
            r->reaped = true;
            break;
        }
        if (w < 0) {
            r->err = -errno;
            return;
        }
        if (gt_mono_ns() - t0 >= timeout_ns) {
            kill_and_reap(pid, r);
            break;
        }
        goro_sleep(MS);
    }
    r->ns = gt_mono_ns() - t0;
}

/* Test thread: check a reaped child's status. */
static void check_reaped(const reaped *r, int want_exit, const char *what, int i)
{
    char buf[64];
    assert_true_msg(r->err == 0, "%s %d: waitpid: %s", what, i, strerror(-r->err));
    assert_true_msg(!r->timed_out, "%s %d: child still running after %.1f s (killed)", what, i,
                    (double)child_timeout() / 1e9);
    assert_true_msg(r->reaped, "%s %d: child not reaped", what, i);
    assert_true_msg(WIFEXITED(r->status) && WEXITSTATUS(r->status) == want_exit,
                    "%s %d: child %s, expected exit %d", what, i,
                    gt_status_str(r->status, buf, sizeof buf), want_exit);
}

/* ========================================================================= */
/* The forked child's probe: what does goro do in the child?                  */
/* ========================================================================= */

enum probe_op {
    OP_RUN,
    OP_ID,
    OP_SPAWN,
    OP_YIELD,
    OP_SLEEP,
    OP_SEND,
    OP_RECV,
    OP_SELECT,
    OP_MUTEX,
    OP_WG,
    OP_NUMG,
    OP_PROCS,
    OP_DUMP,
    OP_BLOCKING,
    OP_RUN_AGAIN,
    OP_GRANDCHILD,
    OP_DONE,
    NOPS
};

static const char *const op_names[NOPS] = {
    [OP_RUN] = "goro_run",
    [OP_ID] = "goro_id",
    [OP_SPAWN] = "goro_spawn",
    [OP_YIELD] = "goro_yield",
    [OP_SLEEP] = "goro_sleep",
    [OP_SEND] = "goro_chan_send",
    [OP_RECV] = "goro_chan_recv",
    [OP_SELECT] = "goro_select",
    [OP_MUTEX] = "goro_mutex_lock",
    [OP_WG] = "goro_waitgroup_wait",
    [OP_NUMG] = "goro_num_goroutines",
    [OP_PROCS] = "goro_procs",
    [OP_DUMP] = "goro_dump",
    [OP_BLOCKING] = "goro_blocking",
    [OP_RUN_AGAIN] = "goro_run (again)",
    [OP_GRANDCHILD] = "goro_run in a grandchild",
    [OP_DONE] = "(reached _exit)",
};

/* What the rule promises in the child of a fork made while the runtime
 * runs (include/goro.h "Fork"). */
static const long op_expect[NOPS] = {
    [OP_RUN] = -ECHILD,
    [OP_ID] = 0,
    [OP_SPAWN] = -EPERM,
    [OP_YIELD] = -EPERM,
    [OP_SLEEP] = -EPERM,
    [OP_SEND] = -EPERM,
    [OP_RECV] = -EPERM,
    [OP_SELECT] = -EPERM,
    [OP_MUTEX] = -EPERM,
    [OP_WG] = -EPERM,
    [OP_NUMG] = 0,
    [OP_PROCS] = 0,
    [OP_DUMP] = -ESRCH,
    [OP_BLOCKING] = 1, /* fn ran on the calling thread, then 0 returned */
    [OP_RUN_AGAIN] = -ECHILD,
    [OP_GRANDCHILD] = -ECHILD,
    [OP_DONE] = 0,
};

/* Objects a goroutine of the parent owns; the child tries to block on them. */
typedef struct probe_objs {
    goro_chan *ch;   /* unbuffered, nobody sends or receives */
    goro_mutex mu;   /* held by the forking goroutine */
    goro_waitgroup wg; /* counter 1 until the end */
} probe_objs;

typedef struct {
    int32_t op;
    int32_t pad;
    int64_t rc;
} probe_rec;

static void child_noop(void *arg) { (void)arg; }

static void child_blocking_fn(void *arg) { *(int *)arg = 1; }

/* Write one record (a single write < PIPE_BUF: atomic, never blocks here). */
static void probe_put(int fd, int op, long rc)
{
    probe_rec r = {op, 0, rc};
    ssize_t n = write(fd, &r, sizeof r);
    (void)n;
}

/* Runs in the forked child (on whatever stack fork returned on) and never
 * returns. Each call's result is sent as soon as it is known, so a call
 * that hangs shows as the first missing record. */
FT_NORETURN static void probe_child(int fd, probe_objs *o)
{
    /* A crash must end the child (the parent sees the signal), not longjmp
     * into cmocka's handler and run the remaining tests in the child. */
    static const int fatal[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
    for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++)
        signal(fatal[i], SIG_DFL);
    probe_put(fd, OP_RUN, goro_run(child_noop, NULL, NULL));
    probe_put(fd, OP_ID, (long)goro_id());
    probe_put(fd, OP_SPAWN, goro_spawn(child_noop, NULL, NULL, NULL));
    probe_put(fd, OP_YIELD, goro_yield());
    probe_put(fd, OP_SLEEP, goro_sleep(MS));
    int v = 42;
    probe_put(fd, OP_SEND, goro_chan_send(o->ch, &v));
    bool ok;
    probe_put(fd, OP_RECV, goro_chan_recv(o->ch, &v, &ok));
    goro_select_case c = {.ch = o->ch, .op = GORO_SELECT_RECV, .elem = &v};
    probe_put(fd, OP_SELECT, goro_select(&c, 1, 0, GORO_NO_DEADLINE));
    probe_put(fd, OP_MUTEX, goro_mutex_lock(&o->mu));
    probe_put(fd, OP_WG, goro_waitgroup_wait(&o->wg));
    probe_put(fd, OP_NUMG, (long)goro_num_goroutines());
    probe_put(fd, OP_PROCS, goro_procs());
    int devnull = open("/dev/null", O_WRONLY);
    probe_put(fd, OP_DUMP, goro_dump(devnull));
    int ran = 0;
    int brc = goro_blocking(child_blocking_fn, &ran);
    probe_put(fd, OP_BLOCKING, brc ? brc : ran);
    probe_put(fd, OP_RUN_AGAIN, goro_run(child_noop, NULL, NULL));
    /* The child's own child: exits with -goro_run() (the parent bounds the
     * wait: it kills the child, whose grandchild then exits on its own). */
    pid_t gc = fork();
    if (gc == 0)
        _exit(-goro_run(child_noop, NULL, NULL) & 0xff);
    int gst = 0;
    long grc = gc < 0 ? 1000 : waitpid(gc, &gst, 0) != gc ? 1001
                            : WIFEXITED(gst)            ? -(long)WEXITSTATUS(gst)
                                                        : 1002;
    probe_put(fd, OP_GRANDCHILD, grc);
    probe_put(fd, OP_DONE, 0);
    _exit(0);
}

/* One fork of the probe, as seen by the parent. */
typedef struct probe_result {
    int fork_err;          /* -errno of pipe/fork */
    bool got[NOPS];
    long rc[NOPS];
    reaped r;
} probe_result;

/* Parent side after fork: close the write end, wait (bounded), then read
 * what the child wrote (the pipe holds it: the child never blocks). */
static void probe_collect(int rfd, probe_result *pr)
{
    probe_rec rec;
    for (;;) {
        ssize_t n = read(rfd, &rec, sizeof rec);
        if (n != (ssize_t)sizeof rec)
            break;
        if (rec.op >= 0 && rec.op < NOPS) {
            pr->got[rec.op] = true;
            pr->rc[rec.op] = (long)rec.rc;
        }
    }
    close(rfd);
}

/* How the parent waits for the probe child. */
enum { WAIT_GORO, WAIT_BLOCKING, WAIT_THREAD };

/* fork the probe from the calling context (a goroutine, a goro_blocking
 * function or a foreign thread), wait for it and collect its report. */
static void probe_fork(probe_objs *o, probe_result *pr, int how)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        pr->fork_err = -errno;
        return;
    }
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    pid_t pid = fork();
    if (pid < 0) {
        pr->fork_err = -errno;
        close(p[0]);
        close(p[1]);
        return;
    }
    if (pid == 0) {
        close(p[0]);
        probe_child(p[1], o);
    }
    close(p[1]);
    if (how == WAIT_GORO)
        wait_child_goro(pid, child_timeout(), &pr->r);
    else if (how == WAIT_BLOCKING)
        wait_child_blocking(pid, child_timeout(), &pr->r);
    else
        wait_child_thread(pid, child_timeout(), &pr->r);
    probe_collect(p[0], pr);
}

/* Test thread: assert one probe's report. */
static void probe_check(const probe_result *pr, const char *what, int iter)
{
    assert_true_msg(pr->fork_err == 0, "%s %d: fork: %s", what, iter, strerror(-pr->fork_err));
    /* Print the whole report first: it is the diagnosis when something is off. */
    bool bad = pr->r.timed_out || !pr->r.reaped;
    for (int op = 0; op < NOPS; op++)
        bad |= !pr->got[op] || pr->rc[op] != op_expect[op];
    if (bad) {
        char buf[64];
        print_error("%s, fork %d: child %s after %.3f s%s\n", what, iter,
                    pr->r.reaped ? gt_status_str(pr->r.status, buf, sizeof buf) : "not reaped",
                    (double)pr->r.ns / 1e9, pr->r.timed_out ? " (killed: it hung)" : "");
        for (int op = 0; op < NOPS; op++) {
            if (!pr->got[op])
                print_error("  %-22s no answer (the child never got past it)\n", op_names[op]);
            else
                print_error("  %-22s %ld (%s), expected %ld (%s)%s\n", op_names[op], pr->rc[op],
                            errno_name(pr->rc[op]), op_expect[op], errno_name(op_expect[op]),
                            pr->rc[op] == op_expect[op] ? "" : "  <-- wrong");
        }
    }
    check_reaped(&pr->r, 0, what, iter);
    for (int op = 0; op < NOPS; op++) {
        assert_true_msg(pr->got[op], "%s %d: the child hung or died in %s", what, iter,
                        op_names[op]);
        assert_true_msg(pr->rc[op] == op_expect[op], "%s %d: in the child %s returned %ld (%s), expected %ld (%s)",
                        what, iter, op_names[op], pr->rc[op], errno_name(pr->rc[op]),
                        op_expect[op], errno_name(op_expect[op]));
    }
}

/* ========================================================================= */
/* A goroutine forks; the child tries to use goro                             */
/* ========================================================================= */

#define CHILD_ITERS 20

typedef struct child_state {
    load l;
    probe_objs o;
    int setup_err;
    int how;  /* 0: fork from the goroutine; 1: from inside goro_blocking */
    int iters_done;
    probe_result pr[CHILD_ITERS];
    goro_waitgroup done;
} child_state;

typedef struct {
    child_state *s;
    probe_result *pr;
} in_blocking_arg;

static void fork_in_blocking(void *arg)
{
    in_blocking_arg *a = arg;
    probe_fork(&a->s->o, a->pr, WAIT_THREAD);
}

static void child_forker(void *arg)
{
    child_state *s = arg;
    goro_mutex_lock(&s->o.mu); /* held across every fork */
    for (int i = 0; i < CHILD_ITERS; i++) {
        probe_result *pr = &s->pr[i];
        if (s->how == 0) {
            probe_fork(&s->o, pr, i % 2 ? WAIT_BLOCKING : WAIT_GORO);
        } else {
            in_blocking_arg a = {s, pr};
            goro_blocking(fork_in_blocking, &a);
        }
        s->iters_done = i + 1;
        if (pr->fork_err || pr->r.timed_out || !pr->r.reaped)
            break; /* one failure is the diagnosis; do not wait 10 s more each time */
    }
    goro_mutex_unlock(&s->o.mu);
    goro_waitgroup_done(&s->done);
}

static void child_main(void *arg)
{
    child_state *s = arg;
    if ((s->setup_err = goro_chan_make(&s->o.ch, sizeof(int), 0)))
        return;
    goro_waitgroup_add(&s->o.wg, 1);
    load_start(&s->l);
    goro_waitgroup_add(&s->done, 1);
    s->setup_err = goro_go(child_forker, s); /* not goroutine 1 */
    if (!s->setup_err)
        s->setup_err = gt_wg_wait(&s->done, 200);
    load_stop(&s->l);
    goro_waitgroup_done(&s->o.wg);
    goro_chan_release(s->o.ch);
}

static void run_child_test(int how, const char *what)
{
    child_state *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->how = how;
    goro_options o = gt_opts(4);
    assert_rc(gt_run(what, child_main, s, &o, 220), 0);
    assert_rc(s->setup_err, 0);
    for (int i = 0; i < s->iters_done; i++)
        probe_check(&s->pr[i], what, i);
    assert_int_equal(s->iters_done, CHILD_ITERS);
    load_check(&s->l);
    free(s);
}

/* A goroutine (not goroutine 1) forks 20 times while other goroutines keep
 * every P busy; the child calls goro_run, goro_spawn, goro_sleep, blocks on
 * a channel, a mutex, a WaitGroup... and must get errors, not hang. */
static void test_child_uses_goro(void **st)
{
    (void)st;
    run_child_test(0, "fork from a goroutine");
}

/* The same, forking from inside goro_blocking (the child continues on the
 * runtime thread's own stack, the goroutine still current). */
static void test_child_uses_goro_from_blocking(void **st)
{
    (void)st;
    run_child_test(1, "fork inside goro_blocking");
}

/* ---- a thread that is not the runtime's forks while the runtime runs ---- */

typedef struct foreign_state {
    load l;
    probe_objs o;
    int setup_err;
    int thread_err;
    probe_result pr[4];
} foreign_state;

static void *foreign_thread(void *arg)
{
    foreign_state *s = arg;
    for (int i = 0; i < 4; i++) {
        probe_fork(&s->o, &s->pr[i], WAIT_THREAD);
        if (s->pr[i].r.timed_out)
            break;
    }
    return NULL;
}

static void join_fn(void *arg)
{
    pthread_join(*(pthread_t *)arg, NULL);
}

static void foreign_main(void *arg)
{
    foreign_state *s = arg;
    if ((s->setup_err = goro_chan_make(&s->o.ch, sizeof(int), 0)))
        return;
    goro_waitgroup_add(&s->o.wg, 1);
    goro_mutex_lock(&s->o.mu);
    load_start(&s->l);
    pthread_t th;
    int e = pthread_create(&th, NULL, foreign_thread, s);
    if (e)
        s->thread_err = -e;
    else
        goro_blocking(join_fn, &th); /* bounded: every wait in it is */
    load_stop(&s->l);
    goro_mutex_unlock(&s->o.mu);
    goro_waitgroup_done(&s->o.wg);
    goro_chan_release(s->o.ch);
}

static void test_child_of_foreign_thread(void **st)
{
    (void)st;
    foreign_state *s = calloc(1, sizeof *s);
    assert_non_null(s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("fork from a foreign thread", foreign_main, s, &o, 120), 0);
    assert_rc(s->setup_err, 0);
    assert_rc(s->thread_err, 0);
    for (int i = 0; i < 4; i++)
        probe_check(&s->pr[i], "fork from a foreign thread", i);
    load_check(&s->l);
    free(s);
}

/* ========================================================================= */
/* fork outside the runtime: the child may run goro                           */
/* ========================================================================= */

typedef struct mini_state {
    goro_chan *ch;
    goro_waitgroup wg;
    atomic_long sum;
    int err;
} mini_state;

static void mini_worker(void *arg)
{
    mini_state *m = arg;
    for (;;) {
        int v;
        bool ok = false;
        int rc = goro_chan_recv(m->ch, &v, &ok);
        if (rc || !ok)
            break;
        goro_sleep(100 * GORO_MICROSECOND);
        atomic_fetch_add(&m->sum, v);
    }
    goro_waitgroup_done(&m->wg);
}

/* A small program: 4 workers summing 1..100 sent over a channel. */
static void mini_main(void *arg)
{
    mini_state *m = arg;
    if ((m->err = goro_chan_make(&m->ch, sizeof(int), 0)))
        return;
    goro_waitgroup_add(&m->wg, 4);
    for (int i = 0; i < 4; i++)
        goro_go(mini_worker, m);
    for (int v = 1; v <= 100 && !m->err; v++)
        m->err = goro_chan_send(m->ch, &v);
    goro_chan_close(m->ch);
    if (!m->err)
        m->err = goro_waitgroup_wait(&m->wg);
    goro_chan_release(m->ch);
}

/* Child: run the mini program; exit 0 if it worked, else 10 + what failed. */
FT_NORETURN static void mini_child(void)
{
    mini_state m;
    memset(&m, 0, sizeof m);
    goro_options o = gt_opts(2);
    int rc = goro_run(mini_main, &m, &o);
    if (rc)
        _exit(10);
    if (m.err)
        _exit(11);
    if (atomic_load(&m.sum) != 5050)
        _exit(12);
    _exit(0);
}

/* Test thread (no runtime running): fork; the child runs goro. */
static void fork_mini(reaped *r)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        r->err = -errno;
        return;
    }
    if (pid == 0) {
        static const int fatal[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
        for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++)
            signal(fatal[i], SIG_DFL);
        mini_child();
    }
    wait_child_thread(pid, child_timeout(), r);
}

static void run_noop_main(void *arg) { (void)arg; }

static long count_threads(void)
{
    long n = 0;
    char *s = NULL;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "Threads:", 8) == 0)
            n = strtol(line + 8, &s, 10);
    fclose(f);
    return n;
}

/* Runs first: no goro_run yet in this process. The runs here use goro_run
 * itself, not gt_run: gt_run's watchdog thread would make the second fork a
 * fork of a multithreaded process (outside POSIX for a child that then
 * creates threads; ThreadSanitizer refuses it). goro_run leaves no thread
 * behind, which is checked; each child is still bounded by the parent. */
static void test_fork_outside_runtime(void **st)
{
    (void)st;
    reaped before = {0}, after = {0};
    long t0 = count_threads();
    fork_mini(&before);
    check_reaped(&before, 0, "fork before any goro_run", 0);
    /* And after a goro_run has come and gone. */
    mini_state m;
    memset(&m, 0, sizeof m);
    goro_options o = gt_opts(2);
    assert_rc(goro_run(mini_main, &m, &o), 0);
    assert_rc(m.err, 0);
    assert_int_equal(atomic_load(&m.sum), 5050);
    assert_rc(goro_run(run_noop_main, NULL, &o), 0);
    if (GT_TSAN) {
        /* ThreadSanitizer has started its background thread by now, and it
         * kills a child of a multithreaded fork that creates threads. */
        fprintf(stderr, "test_fork: fork after goro_run returned: skipped under %s\n",
                gt_sanitizer_name());
        return;
    }
    assert_true_msg(count_threads() == t0, "%ld threads after goro_run returned, %ld before",
                    count_threads(), t0);
    fork_mini(&after);
    check_reaped(&after, 0, "fork after goro_run returned", 0);
}

/* ========================================================================= */
/* fork+exec and posix_spawn from goroutines                                  */
/* ========================================================================= */

#define SPAWNERS 6
#define SPAWN_ITERS 8

enum { HOW_POSIX_SPAWN, HOW_FORK_EXEC, NHOW };

typedef struct spawn_one {
    int how;
    int want; /* expected exit status */
    int err;  /* -errno of posix_spawn / fork */
    reaped r;
} spawn_one;

typedef struct spawn_state {
    load l;
    spawn_one runs[SPAWNERS][SPAWN_ITERS];
    goro_waitgroup wg;
    int setup_err;
    atomic_long pingpongs_during; /* load progress while children were waited for */
} spawn_state;

typedef struct {
    spawn_state *s;
    int k;
} spawner_arg;

static char *const argv_true[] = {(char *)"true", NULL};
static char *const argv_exit3[] = {(char *)"sh", (char *)"-c", (char *)"exit 3", NULL};

/* Start one child; returns its pid or -errno. */
static pid_t start_child(int how, bool exit3)
{
    const char *path = exit3 ? "/bin/sh" : "/bin/true";
    char *const *argv = exit3 ? argv_exit3 : argv_true;
    if (how == HOW_POSIX_SPAWN) {
        pid_t pid;
        int e = posix_spawn(&pid, path, NULL, NULL, argv, environ);
        return e ? -e : pid;
    }
    pid_t pid = fork();
    if (pid == 0) {
        /* Only async-signal-safe calls until exec. */
        execv(path, argv);
        _exit(127);
    }
    return pid < 0 ? -errno : pid;
}

static void spawner(void *arg)
{
    spawner_arg *a = arg;
    spawn_state *s = a->s;
    for (int i = 0; i < SPAWN_ITERS; i++) {
        spawn_one *one = &s->runs[a->k][i];
        one->how = (a->k + i) % NHOW;
        bool exit3 = (i / NHOW) % 2;
        one->want = exit3 ? 3 : 0;
        long pp0 = atomic_load(&s->l.pingpongs);
        pid_t pid = start_child(one->how, exit3);
        if (pid < 0) {
            one->err = pid;
            continue;
        }
        /* Half the waits inside goro_blocking, half polling with goro_sleep. */
        if ((a->k + i / NHOW) % 2)
            wait_child_blocking(pid, child_timeout(), &one->r);
        else
            wait_child_goro(pid, child_timeout(), &one->r);
        atomic_fetch_add(&s->pingpongs_during, atomic_load(&s->l.pingpongs) - pp0);
    }
    goro_waitgroup_done(&s->wg);
}

static spawner_arg spawner_args[SPAWNERS];

static void spawn_main(void *arg)
{
    spawn_state *s = arg;
    load_start(&s->l);
    goro_waitgroup_add(&s->wg, SPAWNERS);
    for (int k = 0; k < SPAWNERS; k++) {
        spawner_args[k] = (spawner_arg){s, k};
        int rc = goro_go(spawner, &spawner_args[k]);
        if (rc) {
            s->setup_err = rc;
            goro_waitgroup_done(&s->wg);
        }
    }
    int rc = gt_wg_wait(&s->wg, 200);
    if (rc && !s->setup_err)
        s->setup_err = rc;
    load_stop(&s->l);
}

static void test_spawn_and_exec_from_goroutines(void **st)
{
    (void)st;
    spawn_state *s = calloc(1, sizeof *s);
    assert_non_null(s);
    goro_options o = gt_opts(4);
    assert_rc(gt_run("posix_spawn and fork+exec from goroutines", spawn_main, s, &o, 220), 0);
    assert_rc(s->setup_err, 0);
    int n[NHOW] = {0};
    for (int k = 0; k < SPAWNERS; k++) {
        for (int i = 0; i < SPAWN_ITERS; i++) {
            spawn_one *one = &s->runs[k][i];
            const char *what = one->how == HOW_POSIX_SPAWN ? "posix_spawn" : "fork+execv";
            assert_true_msg(one->err == 0, "%s %d/%d: %s", what, k, i, strerror(-one->err));
            check_reaped(&one->r, one->want, what, k * SPAWN_ITERS + i);
            n[one->how]++;
        }
    }
    assert_int_equal(n[HOW_POSIX_SPAWN], SPAWNERS * SPAWN_ITERS / 2);
    assert_int_equal(n[HOW_FORK_EXEC], SPAWNERS * SPAWN_ITERS / 2);
    load_check(&s->l);
    /* The scheduler kept running goroutines while children were waited for. */
    assert_true_msg(atomic_load(&s->pingpongs_during) > 0, "no ping-pong during the waits");
    free(s);
}

/* ========================================================================= */
/* malloc in a forked child while other threads allocate, every allocation    */
/* sampled by the heap profiler (its locks are held across fork)              */
/* ========================================================================= */

static atomic_bool churn_stop;

static void *churn_thread(void *arg)
{
    (void)arg;
    void *v[64] = {0};
    for (unsigned i = 0; !atomic_load(&churn_stop); i++) {
        free(v[i % 64]);
        v[i % 64] = malloc(16 + i % 300);
    }
    for (int k = 0; k < 64; k++)
        free(v[k]);
    return NULL;
}

#define MALLOC_FORKS 200

static void test_malloc_in_child_while_sampling(void **st)
{
    (void)st;
    long rate = goro_memprofile_rate();
    assert_rc(goro_set_memprofile_rate(1), 0);
    atomic_store(&churn_stop, false);
    pthread_t th[2];
    int nth = 0;
    for (; nth < 2; nth++)
        if (pthread_create(&th[nth], NULL, churn_thread, NULL) != 0)
            break;
    reaped r[MALLOC_FORKS];
    memset(r, 0, sizeof r);
    int done = 0;
    for (; done < MALLOC_FORKS; done++) {
        pid_t pid = fork();
        if (pid < 0) {
            r[done].err = -errno;
            break;
        }
        if (pid == 0) {
            for (int k = 0; k < 20; k++)
                free(malloc(32 + (size_t)k));
            _exit(0);
        }
        wait_child_thread(pid, child_timeout(), &r[done]);
        if (r[done].timed_out)
            break;
    }
    atomic_store(&churn_stop, true);
    for (int i = 0; i < nth; i++)
        pthread_join(th[i], NULL);
    goro_set_memprofile_rate(rate);
    assert_int_equal(nth, 2);
    for (int i = 0; i <= done && i < MALLOC_FORKS; i++)
        check_reaped(&r[i], 0, "malloc in a forked child", i);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fork_outside_runtime), /* first: before any goro_run */
        cmocka_unit_test(test_child_uses_goro),
        cmocka_unit_test(test_child_uses_goro_from_blocking),
        cmocka_unit_test(test_child_of_foreign_thread),
        cmocka_unit_test(test_spawn_and_exec_from_goroutines),
        cmocka_unit_test(test_malloc_in_child_while_sampling),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
