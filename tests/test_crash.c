/*
 * test_crash.c - behaviour that ends (or reports on) the process: the global
 * deadlock report, stack overflow detection, SIGQUIT dumps (fatal and with
 * GORO_SIGQUIT=dump), the shape of goro_dump, and the long-running goroutine
 * report.
 *
 * Scenarios that end the process run in a child: the test re-executes
 * /proc/self/exe with GORO_TEST_SCENARIO=<name> (checked at the top of main,
 * before cmocka), captures its stdout and stderr, waits for it with a bounded
 * timeout and then checks its exit status and output.
 */
#define _GNU_SOURCE
#include "util.h"

#include <limits.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#define MS GORO_MILLISECOND

/* Placed after a goroutine's last call so that the compiler cannot turn it
 * into a tail call: the goroutine's own frame must stay on its stack (the
 * dump checks look for it). */
#define NO_TAIL_CALL() __asm__ volatile("" ::: "memory")

/* ========================================================================= */
/* Child scenarios                                                            */
/* ========================================================================= */

/* ---- (a) global deadlock ------------------------------------------------ */

static goro_mutex deadlock_mu = GORO_MUTEX_INIT;

static void deadlock_locker(void *arg)
{
    (void)arg;
    goro_mutex_lock(&deadlock_mu); /* held by main forever */
    NO_TAIL_CALL();
}

static void deadlock_main(void *arg)
{
    (void)arg;
    goro_mutex_lock(&deadlock_mu);
    goro_go(deadlock_locker, NULL);
    goro_chan *c;
    if (goro_chan_make(&c, sizeof(int), 0) != 0)
        return;
    goro_sleep(20 * MS);
    int v;
    goro_chan_recv(c, &v, NULL); /* nobody will ever send */
    NO_TAIL_CALL();
}

/* A global deadlock after the watchdog's confirmation thread started: that
 * thread is goro's own, not one of the program's (which could wake a
 * goroutine), so the deadlock is still reported. The leak's channels are
 * kept hidden (XOR), so that the scan confirms it. */
static uintptr_t dl_hidden[512];

static void dl_sender(void *arg)
{
    int v = 1;
    goro_chan_send(arg, &v);
    NO_TAIL_CALL();
}

static void deadlock_verdict_main(void *arg)
{
    (void)arg;
    goro_watchdog_opts wo = {.period = 50 * MS, .min_age = 200 * MS, .min_count = 5,
                             .on_suspect = NULL};
    if (goro_watchdog_configure(&wo) != 0)
        return;
    int64_t end = goro_now() + 20 * GORO_SECOND;
    int state = -1;
    for (size_t i = 0; goro_now() < end && state < 0; i++) {
        goro_chan *ch;
        if (i < sizeof dl_hidden / sizeof dl_hidden[0] && goro_chan_make(&ch, sizeof(int), 0) == 0) {
            dl_hidden[i] = (uintptr_t)ch ^ (uintptr_t)0xA5A5A5A5A5A5A5A5ull;
            goro_go(dl_sender, ch);
        }
        goro_sleep(5 * MS);
        goro_leak_suspect *v;
        size_t n;
        if (goro_watchdog_suspects(&v, &n) == 0) {
            for (size_t k = 0; k < n; k++)
                if (v[k].state != GORO_LEAK_SUSPECTED)
                    state = (int)v[k].state;
            goro_watchdog_suspects_free(v, n);
        }
    }
    gt_say("VERDICT %d\n", state);
    goro_chan *c;
    if (goro_chan_make(&c, sizeof(int), 0) != 0)
        return;
    int v;
    goro_chan_recv(c, &v, NULL); /* nobody will ever send */
    NO_TAIL_CALL();
}

/* The program's own SIGRTMIN+5 handler is left in place: a scan fails with
 * -EBUSY and says why, and the program's handler still gets the signal. */
static volatile sig_atomic_t own_rt_seen;

static void own_rt_handler(int sig)
{
    (void)sig;
    own_rt_seen = 1;
}

static void rt_busy_main(void *arg)
{
    (void)arg;
    goro_leak_report *rep = NULL;
    goro_leak_scan_stats stats;
    int rc = goro_leak_scan(&rep, &stats);
    goro_leak_report_free(rep);
    raise(SIGRTMIN + 5);
    gt_say("SCAN %d %d why=%s\n", rc, (int)own_rt_seen,
           stats.incomplete ? stats.incomplete : "(none)");
}

/* ---- (b) stack overflow ------------------------------------------------- */

static volatile int overflow_limit = INT_MAX;

static int __attribute__((noinline)) overflow_deep(int depth, volatile char *prev)
{
    volatile char buf[4096];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (char)(depth + (int)i);
    __asm__ volatile("" ::: "memory");
    int r = depth < overflow_limit ? overflow_deep(depth + 1, buf) : 0;
    /* work after the call: no tail call */
    return r + buf[depth & 4095] + (prev ? prev[1] : 0);
}

static void overflow_fn(void *arg)
{
    (void)arg;
    gt_say("OVERFLOW_ID %llu\n", (unsigned long long)goro_id());
    overflow_deep(0, NULL);
}

/* The report must name the goro_go call on the line after the enum: keep
 * these two lines together. */
enum { OVERFLOW_SPAWN_LINE = __LINE__ + 1 };
static int spawn_overflower(void) { return goro_go(overflow_fn, NULL); }

static void overflow_main(void *arg)
{
    (void)arg;
    spawn_overflower();
    goro_sleep(30 * GORO_SECOND);
}

/* ---- (c), (d) SIGQUIT --------------------------------------------------- */

static goro_mutex quit_mu = GORO_MUTEX_INIT;
static goro_chan *quit_ch;

static void quit_receiver(void *arg)
{
    (void)arg;
    goro_chan_recv(quit_ch, NULL, NULL);
    NO_TAIL_CALL();
}

static void quit_sleeper(void *arg)
{
    (void)arg;
    goro_sleep(600 * GORO_SECOND);
    NO_TAIL_CALL();
}

static void quit_locker(void *arg)
{
    (void)arg;
    goro_mutex_lock(&quit_mu);
    NO_TAIL_CALL();
}

static void quit_setup(void)
{
    goro_mutex_lock(&quit_mu);
    if (goro_chan_make(&quit_ch, 0, 0) != 0)
        return;
    goro_go_named(quit_receiver, NULL, "quit-receiver");
    goro_go(quit_sleeper, NULL);
    goro_go(quit_locker, NULL);
    goro_sleep(30 * MS);
}

static void sigquit_main(void *arg)
{
    (void)arg;
    quit_setup();
    gt_say("READY\n");
    goro_sleep(30 * GORO_SECOND); /* SIGQUIT must end the process long before */
}

static void sigquit_dump_main(void *arg)
{
    (void)arg;
    quit_setup();
    gt_say("READY\n");
    for (int i = 1; i <= 6000; i++) {
        goro_sleep(10 * MS);
        gt_say("TICK %d\n", i);
    }
}

/* ---- (f) long-running goroutine report ---------------------------------- */

typedef struct {
    atomic_int spinning, stop;
    atomic_long ticks, ticks_during;
    goro_waitgroup progress_wg, spin_wg;
} longrun_state;

static void longrun_progress(void *arg)
{
    longrun_state *s = arg;
    while (!atomic_load(&s->stop)) {
        goro_sleep(10 * MS);
        atomic_fetch_add(&s->ticks, 1);
        if (atomic_load(&s->spinning))
            atomic_fetch_add(&s->ticks_during, 1);
    }
    goro_waitgroup_done(&s->progress_wg);
}

static void longrun_spinner(void *arg)
{
    longrun_state *s = arg;
    gt_say("SPINNER %llu\n", (unsigned long long)goro_id());
    atomic_store(&s->spinning, 1);
    int64_t t0 = goro_now();
    uint64_t x = 0;
    while (goro_now() - t0 < 1500 * MS) { /* no scheduling point */
        x++;
        __asm__ volatile("" : "+r"(x));
    }
    atomic_store(&s->spinning, 0);
    goro_waitgroup_done(&s->spin_wg);
}

static void longrun_main(void *arg)
{
    longrun_state *s = arg;
    goro_waitgroup_add(&s->progress_wg, 1);
    goro_go(longrun_progress, s);
    goro_sleep(50 * MS);
    goro_waitgroup_add(&s->spin_wg, 1);
    goro_go(longrun_spinner, s);
    goro_waitgroup_wait(&s->spin_wg);
    atomic_store(&s->stop, 1);
    goro_waitgroup_wait(&s->progress_wg);
    gt_say("PROGRESS %ld %ld\n", atomic_load(&s->ticks), atomic_load(&s->ticks_during));
}

static int run_scenario(const char *sc)
{
    goro_options o = gt_opts(2);
    int rc;
    if (strcmp(sc, "deadlock") == 0) {
        rc = goro_run(deadlock_main, NULL, &o);
    } else if (strcmp(sc, "deadlock_verdict") == 0) {
        rc = goro_run(deadlock_verdict_main, NULL, &o);
    } else if (strcmp(sc, "rt_busy") == 0) {
        signal(SIGRTMIN + 5, own_rt_handler);
        rc = goro_run(rt_busy_main, NULL, &o);
        return rc == 0 ? 0 : 98;
    } else if (strcmp(sc, "overflow") == 0) {
        rc = goro_run(overflow_main, NULL, &o);
    } else if (strcmp(sc, "sigquit") == 0) {
        rc = goro_run(sigquit_main, NULL, &o);
    } else if (strcmp(sc, "sigquit_dump") == 0) {
        rc = goro_run(sigquit_dump_main, NULL, &o);
    } else if (strcmp(sc, "longrun") == 0) {
        static longrun_state s;
        o.longrun_report_ns = 200 * MS;
        rc = goro_run(longrun_main, &s, &o);
        return rc == 0 ? 0 : 98;
    } else {
        fprintf(stderr, "unknown scenario '%s'\n", sc);
        return 97;
    }
    fprintf(stderr, "UNEXPECTED: goro_run returned %d in scenario '%s'\n", rc, sc);
    return 99;
}

/* ========================================================================= */
/* Parent side                                                                */
/* ========================================================================= */

static void run_child(gt_child *c, const char *scenario, const char *const *env)
{
    int rc = gt_child_start(c, scenario, env);
    assert_rc(rc, 0);
}

static void finish_child(gt_child *c, const char *label)
{
    gt_child_finish(c, gt_slow(30 * GORO_SECOND));
    if (c->timed_out) {
        gt_child_print(c, label);
        fail_msg("%s: child did not exit within the time limit (killed)", label);
    }
}

static void expect_exit(gt_child *c, const char *label, int code)
{
    char buf[96];
    if (!WIFEXITED(c->status) || WEXITSTATUS(c->status) != code) {
        gt_child_print(c, label);
        fail_msg("%s: child ended with %s, expected exit status %d", label,
                 gt_status_str(c->status, buf, sizeof buf), code);
    }
}

static void expect_text(gt_child *c, const char *label, const char *text, bool found)
{
    if (!found) {
        gt_child_print(c, label);
        fail_msg("%s: expected %s in the child's output", label, text);
    }
}

static void test_deadlock_report(void **st)
{
    (void)st;
    gt_child c;
    run_child(&c, "deadlock", NULL);
    finish_child(&c, "deadlock");
    expect_exit(&c, "deadlock", 2);
    const char *head = "fatal error: all goroutines are asleep - deadlock!";
    expect_text(&c, "deadlock", head, strncmp(c.err, head, strlen(head)) == 0);
    expect_text(&c, "deadlock", "goroutine 1 [chan receive]:",
                gt_find_goroutine_header(c.err, 1, "chan receive") != NULL);
    expect_text(&c, "deadlock", "a goroutine [sync.Mutex.Lock]:",
                gt_find_any_header(c.err, "sync.Mutex.Lock") != NULL);
    expect_text(&c, "deadlock", "created by", strstr(c.err, "created by") != NULL);
    expect_text(&c, "deadlock", "created by deadlock_main",
                strstr(c.err, "created by deadlock_main") != NULL);
    gt_child_free(&c);
}

static void test_deadlock_after_verdict(void **st)
{
    (void)st;
    gt_child c;
    run_child(&c, "deadlock_verdict", NULL);
    finish_child(&c, "deadlock after a verdict");
    expect_exit(&c, "deadlock after a verdict", 2);
    int state = -2;
    const char *p = strstr(c.out, "VERDICT ");
    expect_text(&c, "deadlock after a verdict", "VERDICT on stdout",
                p && sscanf(p, "VERDICT %d", &state) == 1);
    /* Plain builds confirm the leak (the thread ran); sanitizer builds
     * cannot scan and say so. */
    int want = GT_SANITIZED ? GORO_LEAK_UNVERIFIED : GORO_LEAK_CONFIRMED;
    expect_text(&c, "deadlock after a verdict", "the expected verdict", state == want);
    const char *head = "fatal error: all goroutines are asleep - deadlock!";
    expect_text(&c, "deadlock after a verdict", head, strstr(c.err, head) != NULL);
    gt_child_free(&c);
}

static void test_scan_leaves_program_rt_handler(void **st)
{
    (void)st;
    gt_child c;
    run_child(&c, "rt_busy", NULL);
    finish_child(&c, "program's SIGRTMIN+5");
    expect_exit(&c, "program's SIGRTMIN+5", 0);
    int rc = 0, seen = 0;
    const char *p = strstr(c.out, "SCAN ");
    expect_text(&c, "program's SIGRTMIN+5", "SCAN on stdout",
                p && sscanf(p, "SCAN %d %d", &rc, &seen) == 2);
    expect_text(&c, "program's SIGRTMIN+5", "the scan refused (-EBUSY; -ENOTSUP sanitized)",
                rc == (GT_SANITIZED ? -ENOTSUP : -EBUSY));
    expect_text(&c, "program's SIGRTMIN+5", "the program's handler still called", seen == 1);
    if (!GT_SANITIZED)
        expect_text(&c, "program's SIGRTMIN+5", "why=SIGRTMIN+5",
                    strstr(c.out, "why=SIGRTMIN+5") != NULL);
    gt_child_free(&c);
}

static void test_stack_overflow(void **st)
{
    (void)st;
    gt_child c;
    run_child(&c, "overflow", NULL);
    finish_child(&c, "overflow");
    expect_exit(&c, "overflow", 2);
    expect_text(&c, "overflow", "overflowed its stack",
                strstr(c.err, "overflowed its stack") != NULL);
    char site[64];
    snprintf(site, sizeof site, "test_crash.c:%d", (int)OVERFLOW_SPAWN_LINE);
    expect_text(&c, "overflow", site, strstr(c.err, site) != NULL);
    unsigned long long id = 0;
    const char *p = strstr(c.out, "OVERFLOW_ID ");
    expect_text(&c, "overflow", "OVERFLOW_ID on stdout",
                p && sscanf(p, "OVERFLOW_ID %llu", &id) == 1);
    /* "goroutine N (created at FILE:LINE) overflowed its stack" */
    char who[64];
    snprintf(who, sizeof who, "goroutine %llu (created at ", id);
    expect_text(&c, "overflow", who, strstr(c.err, who) != NULL);
    gt_child_free(&c);
}

static void test_sigquit_exits_with_dump(void **st)
{
    (void)st;
    gt_child c;
    run_child(&c, "sigquit", NULL);
    bool ready = gt_child_wait_output(&c, 1, "READY\n", gt_slow(20 * GORO_SECOND));
    expect_text(&c, "sigquit", "READY", ready);
    usleep(100 * 1000);
    kill(c.pid, SIGQUIT);
    finish_child(&c, "sigquit");
    expect_exit(&c, "sigquit", 2);
    expect_text(&c, "sigquit", "goroutine 1 [",
                gt_find_goroutine_header(c.err, 1, NULL) != NULL);
    expect_text(&c, "sigquit", "goroutine 1 [sleep",
                gt_find_goroutine_header(c.err, 1, "sleep") != NULL);
    expect_text(&c, "sigquit", "a goroutine [chan receive",
                gt_find_any_header(c.err, "chan receive") != NULL);
    expect_text(&c, "sigquit", "a goroutine [sync.Mutex.Lock",
                gt_find_any_header(c.err, "sync.Mutex.Lock") != NULL);
    expect_text(&c, "sigquit", "the goroutine name quit-receiver",
                strstr(c.err, "quit-receiver") != NULL);
    gt_child_free(&c);
}

static void test_sigquit_dump_keeps_running(void **st)
{
    (void)st;
    gt_child c;
    const char *env[] = {"GORO_SIGQUIT=dump", NULL};
    run_child(&c, "sigquit_dump", env);
    bool ready = gt_child_wait_output(&c, 1, "READY\n", gt_slow(20 * GORO_SECOND));
    expect_text(&c, "sigquit_dump", "READY", ready);
    usleep(50 * 1000);
    kill(c.pid, SIGQUIT);
    bool dumped = gt_child_wait_output(&c, 2, "goroutine 1 [", gt_slow(10 * GORO_SECOND));
    expect_text(&c, "sigquit_dump", "a dump on stderr", dumped);
    /* still alive: it keeps printing ticks after the dump */
    size_t ticks = gt_count_substr(c.out, "TICK ");
    char want[32];
    snprintf(want, sizeof want, "TICK %zu\n", ticks + 5);
    bool more = gt_child_wait_output(&c, 1, want, gt_slow(10 * GORO_SECOND));
    bool alive = gt_child_alive(&c);
    if (alive)
        kill(c.pid, SIGKILL);
    gt_child_finish(&c, gt_slow(10 * GORO_SECOND));
    expect_text(&c, "sigquit_dump", want, more);
    char buf[96];
    if (!alive || !WIFSIGNALED(c.status) || WTERMSIG(c.status) != SIGKILL) {
        gt_child_print(&c, "sigquit_dump");
        fail_msg("with GORO_SIGQUIT=dump the child should have kept running until "
                 "killed; it ended with %s", gt_status_str(c.status, buf, sizeof buf));
    }
    expect_text(&c, "sigquit_dump", "a goroutine [chan receive",
                gt_find_any_header(c.err, "chan receive") != NULL);
    gt_child_free(&c);
}

/* Is the decimal number n present in s as a whole token? */
static bool has_number(const char *s, unsigned long long n)
{
    char num[32];
    snprintf(num, sizeof num, "%llu", n);
    size_t l = strlen(num);
    for (const char *p = strstr(s, num); p; p = strstr(p + 1, num)) {
        bool left = p == s || p[-1] < '0' || p[-1] > '9';
        bool right = p[l] < '0' || p[l] > '9';
        if (left && right)
            return true;
    }
    return false;
}

static void test_longrun_report(void **st)
{
    (void)st;
    gt_child c;
    run_child(&c, "longrun", NULL);
    finish_child(&c, "longrun");
    expect_exit(&c, "longrun", 0);
    unsigned long long id = 0;
    long ticks = -1, during = -1;
    const char *p = strstr(c.out, "SPINNER ");
    expect_text(&c, "longrun", "SPINNER <id>", p && sscanf(p, "SPINNER %llu", &id) == 1);
    p = strstr(c.out, "PROGRESS ");
    expect_text(&c, "longrun", "PROGRESS <n> <m>",
                p && sscanf(p, "PROGRESS %ld %ld", &ticks, &during) == 2);
    /* the report names the goroutine and says it is running */
    bool found = false;
    for (const char *line = c.err; line && *line;) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        char *l = strndup(line, len);
        if (strstr(l, "running") && has_number(l, id))
            found = true;
        free(l);
        line = eol ? eol + 1 : NULL;
    }
    if (!found) /* a multi-line report: id and "running" in the text */
        found = strstr(c.err, "running") && has_number(c.err, id);
    expect_text(&c, "longrun", "a report naming the spinning goroutine and 'running'", found);
    /* another goroutine kept making progress on the other P meanwhile:
     * ~150 ticks of 10 ms in 1.5 s; demand a fraction */
    fprintf(stderr, "longrun: %ld ticks in total, %ld while the spinner spun\n", ticks,
            during);
    if (during < 15) {
        gt_child_print(&c, "longrun");
        fail_msg("only %ld progress ticks while a goroutine spun for 1.5 s on the "
                 "other P", during);
    }
    gt_child_free(&c);
}

/* ========================================================================= */
/* goro_dump shape (in process)                                               */
/* ========================================================================= */

enum {
    D_SEND,
    D_RECV,
    D_SELECT,
    D_SLEEP,
    D_WG,
    D_MUTEX,
    D_COND,
    D_NAMED,
    D_SPAWNER,
    D_GRAND,
    D_RLOCK,
    D_WLOCK,
    D_ONCE_RUNNER,
    D_ONCE_WAITER,
    D_SELECT0,
    D_COUNT
};

#define DUMP_NAME "dump-named-worker"

typedef struct {
    uint64_t id[D_COUNT];
    atomic_long started;
    goro_chan *c_send, *c_recv, *c_sel_a, *c_sel_b, *c_named, *c_spawner, *c_grand,
        *c_once;
    goro_waitgroup wg_block, wg_helpers;
    goro_mutex mu;
    goro_cond cond;
    goro_mutex cond_mu;
    int cond_flag;
    goro_rwmutex rw;
    goro_once once;
    atomic_int once_entered;
    int dump_rc;
    size_t count_before, count_after;
    char *dump;
    int make_rc;
} dump_state;

static dump_state *ds;

static void mark(int which)
{
    ds->id[which] = goro_id();
    atomic_fetch_add(&ds->started, 1);
}

static void dump_send_fn(void *arg)
{
    (void)arg;
    mark(D_SEND);
    int v = 1;
    goro_chan_send(ds->c_send, &v);
    goro_waitgroup_done(&ds->wg_helpers);
}

static void dump_recv_fn(void *arg)
{
    (void)arg;
    mark(D_RECV);
    goro_chan_recv(ds->c_recv, NULL, NULL);
    goro_waitgroup_done(&ds->wg_helpers);
}

static void dump_select_fn(void *arg)
{
    (void)arg;
    mark(D_SELECT);
    goro_select_case cs[2] = {{.ch = ds->c_sel_a, .op = GORO_SELECT_RECV},
                              {.ch = ds->c_sel_b, .op = GORO_SELECT_RECV}};
    goro_select(cs, 2, 0, GORO_NO_DEADLINE);
    goro_waitgroup_done(&ds->wg_helpers);
}

static void dump_sleep_fn(void *arg)
{
    (void)arg;
    mark(D_SLEEP);
    goro_sleep(600 * GORO_SECOND); /* discarded when main returns */
    NO_TAIL_CALL();
}

static void dump_select0_fn(void *arg)
{
    (void)arg;
    mark(D_SELECT0);
    goro_select(NULL, 0, 0, goro_deadline_after(600 * GORO_SECOND)); /* discarded */
    NO_TAIL_CALL();
}

static void dump_wg_fn(void *arg)
{
    (void)arg;
    mark(D_WG);
    goro_waitgroup_wait(&ds->wg_block);
    goro_waitgroup_done(&ds->wg_helpers);
}

static void dump_mutex_fn(void *arg)
{
    (void)arg;
    mark(D_MUTEX);
    goro_mutex_lock(&ds->mu);
    goro_mutex_unlock(&ds->mu);
    goro_waitgroup_done(&ds->wg_helpers);
}

static void dump_cond_fn(void *arg)
{
    (void)arg;
    goro_mutex_lock(&ds->cond_mu);
    mark(D_COND);
    while (!ds->cond_flag)
        goro_cond_wait(&ds->cond, &ds->cond_mu);
    goro_mutex_unlock(&ds->cond_mu);
    goro_waitgroup_done(&ds->wg_helpers);
}

static void dump_named_fn(void *arg)
{
    (void)arg;
    mark(D_NAMED);
    goro_chan_recv(ds->c_named, NULL, NULL);
    goro_waitgroup_done(&ds->wg_helpers);
}

static void dump_grand_fn(void *arg)
{
    (void)arg;
    mark(D_GRAND);
    goro_chan_recv(ds->c_grand, NULL, NULL);
    goro_waitgroup_done(&ds->wg_helpers);
}

static void dump_spawner(void *arg)
{
    (void)arg;
    goro_go(dump_grand_fn, NULL);
    mark(D_SPAWNER);
    goro_chan_recv(ds->c_spawner, NULL, NULL);
    goro_waitgroup_done(&ds->wg_helpers);
}

static void dump_rlock_fn(void *arg)
{
    (void)arg;
    mark(D_RLOCK);
    goro_rwmutex_rlock(&ds->rw);
    goro_rwmutex_runlock(&ds->rw);
    goro_waitgroup_done(&ds->wg_helpers);
}

static void dump_wlock_fn(void *arg)
{
    (void)arg;
    mark(D_WLOCK);
    goro_rwmutex_lock(&ds->rw);
    goro_rwmutex_unlock(&ds->rw);
    goro_waitgroup_done(&ds->wg_helpers);
}

static void dump_once_body(void *arg)
{
    (void)arg;
    atomic_store(&ds->once_entered, 1);
    goro_chan_recv(ds->c_once, NULL, NULL);
    NO_TAIL_CALL();
}

static void dump_once_runner(void *arg)
{
    (void)arg;
    mark(D_ONCE_RUNNER);
    goro_once_do(&ds->once, dump_once_body, NULL);
    goro_waitgroup_done(&ds->wg_helpers);
}

static void dump_once_waiter(void *arg)
{
    (void)arg;
    /* start only once the runner is inside fn */
    while (!atomic_load(&ds->once_entered))
        goro_sleep(MS);
    goro_sleep(10 * MS);
    mark(D_ONCE_WAITER);
    goro_once_do(&ds->once, dump_once_body, NULL);
    goro_waitgroup_done(&ds->wg_helpers);
}

static void dump_main(void *arg)
{
    dump_state *s = arg;
    ds = s;
    goro_chan **chans[] = {&s->c_send, &s->c_recv, &s->c_sel_a, &s->c_sel_b,
                           &s->c_named, &s->c_spawner, &s->c_grand, &s->c_once};
    for (size_t i = 0; i < sizeof chans / sizeof chans[0]; i++)
        if ((s->make_rc = goro_chan_make(chans[i], sizeof(int), 0)) != 0)
            return;
    goro_mutex_lock(&s->mu);
    goro_rwmutex_lock(&s->rw);
    goro_waitgroup_add(&s->wg_block, 1);
    const int helpers = D_COUNT - 2; /* all but the sleeper and select0 */
    goro_waitgroup_add(&s->wg_helpers, helpers);
    goro_go(dump_send_fn, NULL);
    goro_go(dump_recv_fn, NULL);
    goro_go(dump_select_fn, NULL);
    goro_go(dump_sleep_fn, NULL);
    goro_go(dump_wg_fn, NULL);
    goro_go(dump_mutex_fn, NULL);
    goro_go(dump_cond_fn, NULL);
    goro_go_named(dump_named_fn, NULL, DUMP_NAME);
    goro_go(dump_spawner, NULL);
    goro_go(dump_rlock_fn, NULL);
    goro_go(dump_wlock_fn, NULL);
    goro_go(dump_once_runner, NULL);
    goro_go(dump_once_waiter, NULL);
    goro_go(dump_select0_fn, NULL);
    gt_wait_atomic_ge(&s->started, D_COUNT, 10 * GORO_SECOND);
    goro_sleep(50 * MS); /* let everyone block */

    s->count_before = goro_num_goroutines();
    FILE *f = tmpfile();
    if (f) {
        s->dump_rc = goro_dump(fileno(f));
        s->dump = gt_read_all_fd(fileno(f));
        fclose(f);
    } else {
        s->dump_rc = -999;
    }
    s->count_after = goro_num_goroutines();

    /* release everyone (but the sleepers) */
    goro_chan_recv(s->c_send, NULL, NULL);
    goro_chan_close(s->c_recv);
    goro_chan_close(s->c_sel_a);
    goro_chan_close(s->c_named);
    goro_chan_close(s->c_spawner);
    goro_chan_close(s->c_grand);
    goro_chan_close(s->c_once);
    goro_waitgroup_done(&s->wg_block);
    goro_mutex_unlock(&s->mu);
    goro_mutex_lock(&s->cond_mu);
    s->cond_flag = 1;
    goro_cond_broadcast(&s->cond);
    goro_mutex_unlock(&s->cond_mu);
    goro_rwmutex_unlock(&s->rw);
    goro_waitgroup_wait_until(&s->wg_helpers, goro_deadline_after(gt_slow(10 * GORO_SECOND)));
    for (size_t i = 0; i < sizeof chans / sizeof chans[0]; i++)
        goro_chan_release(*chans[i]);
}

/* Check one goroutine's block: header with the reason, creator, extra text.
 * Returns NULL or a description of the problem (static buffer). */
static const char *block_problem(const dump_state *s, int which, const char *reason,
                                 const char *creator, uint64_t parent, const char *extra)
{
    static char msg[4096];
    unsigned long long id = s->id[which];
    const char *h = gt_find_goroutine_header(s->dump, id, reason);
    if (!h) {
        const char *any = gt_find_goroutine_header(s->dump, id, NULL);
        char *blk = any ? gt_dump_block(any) : NULL;
        snprintf(msg, sizeof msg, "no header 'goroutine %llu [%s...]:'; its block:\n%s", id,
                 reason, blk ? blk : "(none)");
        free(blk);
        return msg;
    }
    char *blk = gt_dump_block(h);
    char want[128];
    snprintf(want, sizeof want, "created by %s in goroutine %llu", creator,
             (unsigned long long)parent);
    const char *missing = !strstr(blk, want)            ? want
                          : (extra && !strstr(blk, extra)) ? extra
                          : !strchr(blk, '\n')            ? "a stack below the header"
                                                          : NULL;
    if (missing)
        snprintf(msg, sizeof msg, "goroutine %llu [%s]: expected '%s' in its block:\n%s", id,
                 reason, missing, blk);
    free(blk);
    return missing ? msg : NULL;
}

#define check_block(s, which, reason, creator, parent, extra)                      \
    do {                                                                           \
        const char *problem_ = block_problem(s, which, reason, creator, parent, extra); \
        if (problem_) {                                                            \
            fprintf(stderr, "dump:\n%s\n", (s)->dump);                              \
            fail_msg("%s", problem_);                                              \
        }                                                                          \
    } while (0)

static int dump_setup(void **st)
{
    *st = calloc(1, sizeof(dump_state));
    return *st ? 0 : -1;
}

static int dump_teardown(void **st)
{
    dump_state *s = *st;
    if (s)
        free(s->dump);
    free(s);
    return 0;
}

static void test_dump_shape(void **st)
{
    dump_state *s = *st;
    goro_options o = gt_opts(2);
    assert_rc(gt_run("goro_dump", dump_main, s, &o, 60), 0);
    assert_rc(s->make_rc, 0);
    assert_rc(s->dump_rc, 0);
    assert_non_null(s->dump);
    for (int i = 0; i < D_COUNT; i++)
        assert_true(s->id[i] > 1);
    const char *d = s->dump;

    /* the caller first, running */
    if (!gt_find_goroutine_header(d, 1, "running") ||
        gt_find_goroutine_header(d, 1, "running") != d) {
        fprintf(stderr, "dump:\n%s\n", d);
        fail_msg("the dump must start with 'goroutine 1 [running]:'");
    }
    /* every block is "goroutine <id> [...]:" + lines, separated by blank
     * lines */
    size_t blocks = 0;
    const char *p = d;
    while (*p) {
        while (*p == '\n')
            p++;
        if (!*p)
            break;
        if (gt_find_any_header(p, NULL) != p) {
            fprintf(stderr, "dump:\n%s\n", d);
            fail_msg("block %zu does not start with a 'goroutine <id> [...]:' header: %.80s",
                     blocks, p);
        }
        blocks++;
        const char *end = strstr(p, "\n\n");
        if (!end)
            break;
        p = end + 2;
    }
    size_t headers = gt_count_substr(d, "\ngoroutine ") + 1;
    fprintf(stderr, "dump: %zu blocks, %zu goroutines before, %zu after\n", blocks,
            s->count_before, s->count_after);
    assert_int_equal(blocks, headers); /* no header hides inside a block */
    assert_true_msg(blocks == s->count_before,
                    "%zu blocks for %zu goroutines", blocks, s->count_before);

    check_block(s, D_SEND, "chan send", "dump_main", 1, NULL);
    check_block(s, D_RECV, "chan receive", "dump_main", 1, "dump_recv_fn");
    check_block(s, D_RECV, "chan receive", "dump_main", 1, "test_crash.c:");
    check_block(s, D_SELECT, "select", "dump_main", 1, NULL);
    check_block(s, D_SLEEP, "sleep", "dump_main", 1, NULL);
    check_block(s, D_WG, "sync.WaitGroup.Wait", "dump_main", 1, NULL);
    check_block(s, D_MUTEX, "sync.Mutex.Lock", "dump_main", 1, NULL);
    check_block(s, D_COND, "sync.Cond.Wait", "dump_main", 1, NULL);
    check_block(s, D_NAMED, "chan receive", "dump_main", 1, DUMP_NAME);
    check_block(s, D_SPAWNER, "chan receive", "dump_main", 1, NULL);
    check_block(s, D_GRAND, "chan receive", "dump_spawner", s->id[D_SPAWNER], NULL);
    check_block(s, D_RLOCK, "sync.RWMutex.RLock", "dump_main", 1, NULL);
    check_block(s, D_WLOCK, "sync.RWMutex.Lock", "dump_main", 1, NULL);
    check_block(s, D_ONCE_RUNNER, "chan receive", "dump_main", 1, "dump_once_body");
    check_block(s, D_ONCE_WAITER, "sync.Once.Do", "dump_main", 1, NULL);
    /* goro.h: wait reason "select (no cases)" when n is 0 (here with a
     * deadline) */
    check_block(s, D_SELECT0, "select (no cases)", "dump_main", 1, NULL);
}

int main(void)
{
    const char *sc = gt_child_scenario();
    if (sc)
        return run_scenario(sc);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deadlock_report),
        cmocka_unit_test(test_deadlock_after_verdict),
        cmocka_unit_test(test_scan_leaves_program_rt_handler),
        cmocka_unit_test(test_stack_overflow),
        cmocka_unit_test(test_sigquit_exits_with_dump),
        cmocka_unit_test(test_sigquit_dump_keeps_running),
        cmocka_unit_test(test_longrun_report),
        cmocka_unit_test_setup_teardown(test_dump_shape, dump_setup, dump_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
