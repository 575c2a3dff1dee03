/*
 * test_badinput.c - every bad input documented in goro.h returns its error
 * code, and nothing crashes or hangs: NULL objects and out parameters,
 * sizes over the limits (including negative sizes converted to size_t),
 * misuse (send on closed, double close, unlock of unlocked, negative
 * WaitGroup), bad select cases, bad spawns, and blocking calls made from
 * outside a goroutine - from the test's own thread with no runtime, and from
 * a plain pthread while the runtime runs.
 */
#define _GNU_SOURCE
#include "util.h"

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <unistd.h>

#define MS GORO_MILLISECOND

/* ------------------------------------------------------------------------- */
/* A list of (expression, result, expected) recorded anywhere, checked on    */
/* the test thread afterwards.                                                */
/* ------------------------------------------------------------------------- */

typedef struct {
    const char *what;
    long long got, want, alt; /* alt: a second acceptable result, or want */
    int line;
} check_t;

typedef struct {
    check_t c[400];
    int n;
} checks_t;

static void add_check(checks_t *cl, const char *what, long long got, long long want,
                      long long alt, int line)
{
    if (cl->n < (int)(sizeof cl->c / sizeof cl->c[0]))
        cl->c[cl->n++] = (check_t){what, got, want, alt, line};
}

#define CHECK(cl, expr, want) add_check((cl), #expr, (long long)(expr), (want), (want), __LINE__)
#define CHECK2(cl, expr, want, alt) add_check((cl), #expr, (long long)(expr), (want), (alt), __LINE__)

static void verify(const checks_t *cl, int min_checks)
{
    int bad = 0;
    for (int i = 0; i < cl->n; i++) {
        const check_t *c = &cl->c[i];
        if (c->got != c->want && c->got != c->alt) {
            print_error("line %d: %s = %lld (%s), expected %lld (%s)\n", c->line, c->what,
                        c->got, gt_errname(c->got), c->want, gt_errname(c->want));
            bad++;
        }
    }
    assert_true_msg(cl->n >= min_checks, "only %d checks recorded", cl->n);
    assert_true_msg(bad == 0, "%d of %d checks failed (listed above)", bad, cl->n);
}

static void nop_fn(void *arg)
{
    (void)arg;
}

/* ------------------------------------------------------------------------- */
/* No runtime at all: calls from the test's thread                           */
/* ------------------------------------------------------------------------- */

static void test_outside_runtime(void **st)
{
    (void)st;
    checks_t *cl = calloc(1, sizeof *cl);
    goro_options bad = gt_opts(257);
    CHECK(cl, goro_run(NULL, NULL, NULL), -EINVAL);
    CHECK(cl, goro_run(NULL, cl, &bad), -EINVAL);
    CHECK(cl, goro_run(nop_fn, NULL, &bad), -EINVAL);
    bad.procs = -1;
    CHECK(cl, goro_run(nop_fn, NULL, &bad), -EINVAL);
    bad.procs = INT_MIN;
    CHECK(cl, goro_run(nop_fn, NULL, &bad), -EINVAL);
    CHECK(cl, goro_spawn(nop_fn, NULL, NULL, NULL), -EPERM);
    uint64_t id = 777;
    CHECK(cl, goro_go(nop_fn, NULL), -EPERM);
    CHECK(cl, goro_spawn(nop_fn, NULL, NULL, &id), -EPERM);
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    CHECK(cl, goro_dump(devnull), -ESRCH);
    CHECK(cl, goro_dump(2), -ESRCH);
    close(devnull);
    CHECK(cl, goro_yield(), -EPERM);
    CHECK(cl, goro_sleep(MS), -EPERM);
    CHECK(cl, goro_sleep_until(goro_now() + MS), -EPERM);
    CHECK(cl, goro_id(), 0);
    CHECK(cl, goro_num_goroutines(), 0);
    CHECK(cl, goro_procs(), 0);
    goro_exit(); /* returns */
    int64_t t1 = goro_now(), t2 = goro_now();
    CHECK(cl, t1 > 0, 1);
    CHECK(cl, t2 >= t1, 1);
    CHECK(cl, goro_deadline_after(INT64_MAX) == GORO_NO_DEADLINE, 1);
    CHECK(cl, goro_deadline_after(INT64_MAX - 1) == GORO_NO_DEADLINE, 1);
    CHECK(cl, goro_deadline_after(-GORO_SECOND) < goro_now(), 1);
    int64_t d = goro_deadline_after(GORO_SECOND) - goro_now();
    CHECK(cl, d > 0 && d <= GORO_SECOND, 1);

    /* channels: non-blocking calls work from any thread; blocking ones that
     * would block return -EPERM */
    goro_chan *u = NULL, *b = NULL;
    CHECK(cl, goro_chan_make(&u, sizeof(int), 0), 0);
    CHECK(cl, goro_chan_make(&b, sizeof(int), 1), 0);
    if (u && b) {
        int x = 5, y = 0;
        CHECK(cl, goro_chan_send(u, &x), -EPERM);
        CHECK(cl, goro_chan_recv(u, &y, NULL), -EPERM);
        CHECK(cl, goro_chan_send_until(u, &x, goro_deadline_after(GORO_SECOND)), -EPERM);
        CHECK(cl, goro_chan_recv_until(u, &y, NULL, goro_deadline_after(GORO_SECOND)), -EPERM);
        CHECK(cl, goro_chan_trysend(u, &x), -EAGAIN);
        CHECK(cl, goro_chan_tryrecv(u, &y, NULL), -EAGAIN);
        CHECK(cl, goro_chan_recv(b, &y, NULL), -EPERM); /* empty */
        CHECK(cl, goro_chan_trysend(b, &x), 0);
        CHECK(cl, goro_chan_send(b, &x), -EPERM); /* full */
        CHECK(cl, goro_chan_len(b), 1);
        goro_select_case cs[2] = {{.ch = u, .op = GORO_SELECT_RECV, .elem = &y},
                                  {.ch = u, .op = GORO_SELECT_SEND, .elem = &x}};
        CHECK(cl, goro_select(cs, 2, 0, GORO_NO_DEADLINE), -EPERM);
        CHECK(cl, goro_select(cs, 2, 0, goro_deadline_after(GORO_SECOND)), -EPERM);
        CHECK(cl, goro_select(cs, 2, GORO_SELECT_NONBLOCK, GORO_NO_DEADLINE), -EAGAIN);
        CHECK(cl, goro_select(NULL, 0, 0, GORO_NO_DEADLINE), -EPERM); /* select {} */
        CHECK(cl, goro_chan_tryrecv(b, &y, NULL), 0);
        CHECK(cl, y, 5);
        CHECK(cl, goro_chan_close(u), 0);
        CHECK(cl, goro_chan_close(u), -EALREADY);
        CHECK(cl, goro_chan_trysend(u, &x), -EPIPE);
        goro_chan_release(u);
        goro_chan_release(b);
    }

    /* sync */
    goro_mutex m = GORO_MUTEX_INIT;
    CHECK(cl, goro_mutex_trylock(&m), 0);
    CHECK(cl, goro_mutex_lock(&m), -EPERM);
    CHECK(cl, goro_mutex_lock_until(&m, goro_deadline_after(GORO_SECOND)), -EPERM);
    goro_cond c = GORO_COND_INIT;
    CHECK(cl, goro_cond_wait(&c, &m), -EPERM);
    CHECK(cl, goro_cond_wait_until(&c, &m, goro_deadline_after(GORO_SECOND)), -EPERM);
    CHECK(cl, goro_cond_signal(&c), 0);
    CHECK(cl, goro_cond_broadcast(&c), 0);
    goro_mutex_unlock(&m);
    CHECK(cl, goro_mutex_unlock(&m), -EPERM);
    goro_rwmutex rw = GORO_RWMUTEX_INIT;
    CHECK(cl, goro_rwmutex_trylock(&rw), 0);
    CHECK(cl, goro_rwmutex_rlock(&rw), -EPERM);
    CHECK(cl, goro_rwmutex_lock(&rw), -EPERM);
    CHECK(cl, goro_rwmutex_rlock_until(&rw, goro_deadline_after(GORO_SECOND)), -EPERM);
    CHECK(cl, goro_rwmutex_unlock(&rw), 0);
    CHECK(cl, goro_rwmutex_tryrlock(&rw), 0);
    CHECK(cl, goro_rwmutex_lock_until(&rw, goro_deadline_after(GORO_SECOND)), -EPERM);
    CHECK(cl, goro_rwmutex_runlock(&rw), 0);
    goro_waitgroup wg = GORO_WAITGROUP_INIT;
    CHECK(cl, goro_waitgroup_add(&wg, 1), 0);
    CHECK(cl, goro_waitgroup_wait(&wg), -EPERM);
    CHECK(cl, goro_waitgroup_wait_until(&wg, goro_deadline_after(GORO_SECOND)), -EPERM);
    CHECK(cl, goro_waitgroup_done(&wg), 0);
    CHECK(cl, goro_waitgroup_done(&wg), -EINVAL);

    /* contexts */
    goro_ctx *ctx = NULL;
    CHECK(cl, goro_ctx_with_cancel(NULL, &ctx), 0);
    if (ctx) {
        CHECK(cl, goro_ctx_wait(ctx, GORO_NO_DEADLINE), -EPERM);
        CHECK(cl, goro_ctx_wait(ctx, goro_deadline_after(GORO_SECOND)), -EPERM);
        goro_ctx_cancel(ctx);
        CHECK(cl, goro_ctx_err(ctx), -ECANCELED);
        goro_ctx_release(ctx);
    }
    CHECK(cl, goro_ctx_wait(NULL, GORO_NO_DEADLINE), -EINVAL);
    verify(cl, 60);
    free(cl);
}

/* ------------------------------------------------------------------------- */
/* Bad arguments inside the runtime                                           */
/* ------------------------------------------------------------------------- */

typedef struct {
    checks_t cl;
    atomic_int spawned_ran;
    atomic_int once_runs;
} bad_state;

static void count_fn(void *arg)
{
    bad_state *s = arg;
    atomic_fetch_add(&s->spawned_ran, 1);
}

static void once_fn(void *arg)
{
    bad_state *s = arg;
    atomic_fetch_add(&s->once_runs, 1);
}

static void bad_channels(checks_t *cl)
{
    goro_chan *c = NULL;
    CHECK(cl, goro_chan_make(NULL, 4, 0), -EINVAL);
    CHECK(cl, goro_chan_make(NULL, 4, 4), -EINVAL);
    CHECK(cl, goro_chan_make(&c, GORO_CHAN_MAX_ELEM + 1, 0), -EINVAL);
    CHECK(cl, goro_chan_make(&c, (size_t)-1, 0), -EINVAL);
    CHECK(cl, goro_chan_make(&c, (size_t)-4, 1), -EINVAL);
    CHECK(cl, goro_chan_make(&c, (size_t)INT_MAX + 1, 0), -EINVAL);
    CHECK(cl, goro_chan_make(&c, 4, (size_t)GORO_CHAN_MAX_CAP + 1), -EINVAL);
    CHECK(cl, goro_chan_make(&c, 4, (size_t)-1), -EINVAL);
    CHECK(cl, goro_chan_make(&c, 0, (size_t)-1), -EINVAL);
    CHECK(cl, goro_chan_make(&c, (size_t)-1, (size_t)-1), -EINVAL);
    CHECK(cl, goro_chan_make(&c, GORO_CHAN_MAX_ELEM, 0), 0);
    goro_chan_release(c);
    c = NULL;
    /* the largest capacity of zero-size elements costs no buffer memory */
    int rc = goro_chan_make(&c, 0, GORO_CHAN_MAX_CAP);
    CHECK2(cl, rc, 0, -ENOMEM);
    if (rc == 0)
        goro_chan_release(c);

    goro_chan *c4 = NULL, *c0 = NULL, *full = NULL;
    CHECK(cl, goro_chan_make(&c4, sizeof(int), 2), 0);
    CHECK(cl, goro_chan_make(&c0, 0, 1), 0);
    CHECK(cl, goro_chan_make(&full, sizeof(int), 1), 0);
    if (!c4 || !c0 || !full)
        return;
    int x = 1, y = 0;
    bool ok;
    goro_chan_send(full, &x);
    int64_t d = goro_deadline_after(GORO_SECOND);
    CHECK(cl, goro_chan_send(NULL, &x), -EINVAL);
    CHECK(cl, goro_chan_send(c4, NULL), -EINVAL);
    CHECK(cl, goro_chan_send_until(NULL, &x, d), -EINVAL);
    CHECK(cl, goro_chan_send_until(c4, NULL, d), -EINVAL);
    CHECK(cl, goro_chan_trysend(NULL, &x), -EINVAL);
    CHECK(cl, goro_chan_trysend(c4, NULL), -EINVAL);
    CHECK(cl, goro_chan_len(c4), 0); /* nothing was sent by the failures */
    CHECK(cl, goro_chan_send(c0, NULL), 0); /* NULL is fine for size 0 */
    CHECK(cl, goro_chan_recv(NULL, &y, &ok), -EINVAL);
    CHECK(cl, goro_chan_recv_until(NULL, &y, &ok, d), -EINVAL);
    CHECK(cl, goro_chan_tryrecv(NULL, &y, &ok), -EINVAL);
    CHECK(cl, goro_chan_recv(c0, NULL, NULL), 0);
    CHECK(cl, goro_chan_send(c4, &x), 0);
    CHECK(cl, goro_chan_recv(c4, NULL, NULL), 0); /* discard into NULL */
    CHECK(cl, goro_chan_close(NULL), -EINVAL);
    CHECK(cl, goro_chan_len(NULL), 0);
    CHECK(cl, goro_chan_cap(NULL), 0);
    CHECK(cl, goro_chan_elem_size(NULL), 0);
    CHECK(cl, goro_chan_retain(NULL) == NULL, 1);
    goro_chan_release(NULL);
    CHECK(cl, goro_chan_close(c4), 0);
    CHECK(cl, goro_chan_close(c4), -EALREADY);
    CHECK(cl, goro_chan_close(c4), -EALREADY);
    CHECK(cl, goro_chan_send(c4, &x), -EPIPE);
    CHECK(cl, goro_chan_send_until(c4, &x, d), -EPIPE);
    CHECK(cl, goro_chan_trysend(c4, &x), -EPIPE);
    CHECK(cl, goro_chan_close(full), 0);
    CHECK(cl, goro_chan_send(full, &x), -EPIPE); /* full and closed */
    CHECK(cl, goro_chan_recv_until(c0, &y, NULL, INT64_MIN), -ETIMEDOUT);
    CHECK(cl, goro_chan_send_until(full, &x, INT64_MIN), -EPIPE);

    /* select */
    goro_chan *e = NULL;
    CHECK(cl, goro_chan_make(&e, sizeof(int), 4), 0);
    if (!e)
        return;
    goro_chan_send(e, &x); /* a ready case */
    goro_select_case cs[2];
    memset(cs, 0, sizeof cs);
    CHECK(cl, goro_select(NULL, 1, 0, GORO_NO_DEADLINE), -EINVAL);
    CHECK(cl, goro_select(NULL, 3, GORO_SELECT_NONBLOCK, GORO_NO_DEADLINE), -EINVAL);
    cs[0] = (goro_select_case){.ch = e, .op = GORO_SELECT_RECV, .elem = &y};
    cs[1] = (goro_select_case){.ch = NULL, .op = GORO_SELECT_RECV, .elem = &y};
    /* A NULL channel is a valid case that is never ready (Go's nil channel). */
    CHECK(cl, goro_select(cs, 2, 0, GORO_NO_DEADLINE), 0);
    goro_chan_send(e, &x); /* the ready case again */
    cs[1] = (goro_select_case){.ch = e, .op = 0, .elem = &y};
    CHECK(cl, goro_select(cs, 2, 0, GORO_NO_DEADLINE), -EINVAL);
    cs[1].op = 3;
    CHECK(cl, goro_select(cs, 2, 0, GORO_NO_DEADLINE), -EINVAL);
    cs[1].op = -1;
    CHECK(cl, goro_select(cs, 2, GORO_SELECT_NONBLOCK, GORO_NO_DEADLINE), -EINVAL);
    cs[1].op = INT_MAX;
    CHECK(cl, goro_select(cs, 2, 0, goro_deadline_after(GORO_SECOND)), -EINVAL);
    cs[1] = (goro_select_case){.ch = e, .op = GORO_SELECT_SEND, .elem = NULL};
    CHECK(cl, goro_select(cs, 2, 0, GORO_NO_DEADLINE), -EINVAL);
    /* the ready case was not performed by any of the rejected selects */
    CHECK(cl, goro_chan_len(e), 1);
    cs[0] = (goro_select_case){.ch = c0, .op = GORO_SELECT_SEND, .elem = NULL};
    CHECK(cl, goro_select(cs, 1, 0, GORO_NO_DEADLINE), 0); /* size 0: NULL ok */
    CHECK(cl, cs[0].ok, 1);
    /* -E2BIG: n over 65536, checked without reading past a short array */
    cs[0] = (goro_select_case){.ch = e, .op = GORO_SELECT_RECV, .elem = &y};
    CHECK(cl, goro_select(cs, (size_t)-1, 0, GORO_NO_DEADLINE), -E2BIG);
    CHECK(cl, goro_select(cs, (size_t)1 << 40, GORO_SELECT_NONBLOCK, GORO_NO_DEADLINE), -E2BIG);
    goro_select_case *many = calloc(65537, sizeof *many);
    goro_chan *empties[16];
    int made = 0;
    for (int i = 0; i < 16; i++)
        if (goro_chan_make(&empties[i], sizeof(int), 1) == 0)
            made++;
    if (many && made == 16) {
        for (size_t i = 0; i < 65537; i++)
            many[i] = (goro_select_case){.ch = empties[i % 16], .op = GORO_SELECT_RECV,
                                         .elem = NULL};
        CHECK(cl, goro_select(many, 65537, 0, GORO_NO_DEADLINE), -E2BIG);
        CHECK(cl, goro_select(many, 65537, GORO_SELECT_NONBLOCK, GORO_NO_DEADLINE), -E2BIG);
        /* the limit itself is allowed */
        CHECK2(cl, goro_select(many, 65536, GORO_SELECT_NONBLOCK, GORO_NO_DEADLINE), -EAGAIN,
               -ENOMEM);
    }
    for (int i = 0; i < made; i++)
        goro_chan_release(empties[i]);
    free(many);
    goro_chan_release(e);
    goro_chan_release(c4);
    goro_chan_release(c0);
    goro_chan_release(full);
}

static void bad_spawn_and_runtime(bad_state *s)
{
    checks_t *cl = &s->cl;
    char name31[32], name32[33], name_long[1001];
    memset(name31, 'a', 31);
    name31[31] = '\0';
    memset(name32, 'b', 32);
    name32[32] = '\0';
    memset(name_long, 'c', 1000);
    name_long[1000] = '\0';
    size_t before = goro_num_goroutines();
    uint64_t id = 0;
    CHECK(cl, goro_spawn(NULL, s, NULL, NULL), -EINVAL);
    CHECK(cl, goro_spawn(NULL, s, NULL, &id), -EINVAL);
    CHECK(cl, goro_go(NULL, s), -EINVAL);
    CHECK(cl, goro_go_named(count_fn, s, name32), -ENAMETOOLONG);
    CHECK(cl, goro_go_named(count_fn, s, name_long), -ENAMETOOLONG);
    CHECK(cl, goro_num_goroutines(), (long long)before); /* nothing was created */
    goro_sleep(10 * MS);
    CHECK(cl, atomic_load(&s->spawned_ran), 0);
    CHECK(cl, goro_go_named(count_fn, s, name31), 0);
    CHECK(cl, goro_go_named(count_fn, s, ""), 0);
    goro_spawn_opts o = {.name = NULL, .file = NULL, .line = 0, .func = NULL};
    CHECK(cl, goro_spawn(count_fn, s, &o, &id), 0);
    CHECK(cl, id > 1, 1);
    int64_t end = goro_now() + gt_slow(5 * GORO_SECOND);
    while (atomic_load(&s->spawned_ran) < 3 && goro_now() < end)
        goro_sleep(MS);
    CHECK(cl, atomic_load(&s->spawned_ran), 3);

    CHECK(cl, goro_run(count_fn, s, NULL), -EBUSY);
    CHECK2(cl, goro_run(NULL, s, NULL), -EINVAL, -EBUSY);
    CHECK(cl, goro_dump(-1), -EBADF);
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    CHECK(cl, goro_dump(devnull), 0);
    close(devnull);
    CHECK(cl, goro_sleep(INT64_MIN), 0);
    CHECK(cl, goro_sleep_until(INT64_MIN), 0);
    CHECK(cl, goro_sleep_until(0), 0);
    CHECK(cl, goro_yield(), 0);
    CHECK(cl, goro_select(NULL, 0, 0, INT64_MIN), -ETIMEDOUT);
}

static void bad_sync(bad_state *s)
{
    checks_t *cl = &s->cl;
    int64_t d = goro_deadline_after(GORO_SECOND);
    CHECK(cl, goro_mutex_lock(NULL), -EINVAL);
    CHECK(cl, goro_mutex_lock_until(NULL, d), -EINVAL);
    CHECK(cl, goro_mutex_trylock(NULL), -EINVAL);
    CHECK(cl, goro_mutex_unlock(NULL), -EINVAL);
    goro_mutex m = GORO_MUTEX_INIT;
    CHECK(cl, goro_mutex_unlock(&m), -EPERM);
    CHECK(cl, goro_mutex_lock(&m), 0);
    CHECK(cl, goro_mutex_lock_until(&m, INT64_MIN), -ETIMEDOUT);
    CHECK(cl, goro_mutex_unlock(&m), 0);
    CHECK(cl, goro_mutex_unlock(&m), -EPERM);

    CHECK(cl, goro_rwmutex_rlock(NULL), -EINVAL);
    CHECK(cl, goro_rwmutex_rlock_until(NULL, d), -EINVAL);
    CHECK(cl, goro_rwmutex_tryrlock(NULL), -EINVAL);
    CHECK(cl, goro_rwmutex_runlock(NULL), -EINVAL);
    CHECK(cl, goro_rwmutex_lock(NULL), -EINVAL);
    CHECK(cl, goro_rwmutex_lock_until(NULL, d), -EINVAL);
    CHECK(cl, goro_rwmutex_trylock(NULL), -EINVAL);
    CHECK(cl, goro_rwmutex_unlock(NULL), -EINVAL);
    goro_rwmutex rw = GORO_RWMUTEX_INIT;
    CHECK(cl, goro_rwmutex_runlock(&rw), -EPERM);
    CHECK(cl, goro_rwmutex_unlock(&rw), -EPERM);
    CHECK(cl, goro_rwmutex_rlock(&rw), 0);
    CHECK(cl, goro_rwmutex_unlock(&rw), -EPERM);
    CHECK(cl, goro_rwmutex_runlock(&rw), 0);
    CHECK(cl, goro_rwmutex_runlock(&rw), -EPERM);

    CHECK(cl, goro_waitgroup_add(NULL, 1), -EINVAL);
    CHECK(cl, goro_waitgroup_done(NULL), -EINVAL);
    CHECK(cl, goro_waitgroup_wait(NULL), -EINVAL);
    CHECK(cl, goro_waitgroup_wait_until(NULL, d), -EINVAL);
    goro_waitgroup wg = GORO_WAITGROUP_INIT;
    CHECK(cl, goro_waitgroup_add(&wg, -1), -EINVAL);
    CHECK(cl, goro_waitgroup_done(&wg), -EINVAL);
    CHECK(cl, goro_waitgroup_add(&wg, INT_MIN), -EINVAL);
    CHECK(cl, goro_waitgroup_wait(&wg), 0); /* still zero */

    goro_once once = GORO_ONCE_INIT;
    CHECK(cl, goro_once_do(NULL, once_fn, s), -EINVAL);
    CHECK(cl, goro_once_do(&once, NULL, s), -EINVAL);
    CHECK(cl, goro_once_do(&once, once_fn, s), 1); /* the failures did not count */
    CHECK(cl, goro_once_do(&once, once_fn, s), 0);
    CHECK(cl, goro_once_do(&once, NULL, s), -EINVAL);
    CHECK(cl, atomic_load(&s->once_runs), 1);

    goro_cond c = GORO_COND_INIT;
    goro_mutex cm = GORO_MUTEX_INIT;
    CHECK(cl, goro_cond_wait(NULL, &cm), -EINVAL);
    CHECK(cl, goro_cond_wait(&c, NULL), -EINVAL);
    CHECK(cl, goro_cond_wait_until(NULL, &cm, d), -EINVAL);
    CHECK(cl, goro_cond_wait_until(&c, NULL, d), -EINVAL);
    CHECK(cl, goro_cond_signal(NULL), -EINVAL);
    CHECK(cl, goro_cond_broadcast(NULL), -EINVAL);
    CHECK(cl, goro_cond_wait(&c, &cm), -EPERM); /* cm not locked */
    goro_mutex cm2 = GORO_MUTEX_INIT;
    CHECK(cl, goro_cond_wait_until(&c, &cm2, d), -EPERM);

    goro_ctx *ctx = NULL;
    CHECK(cl, goro_ctx_with_cancel(NULL, NULL), -EINVAL);
    CHECK(cl, goro_ctx_with_cancel(goro_ctx_background(), NULL), -EINVAL);
    CHECK(cl, goro_ctx_with_deadline(NULL, d, NULL), -EINVAL);
    CHECK(cl, goro_ctx_with_timeout(NULL, GORO_SECOND, NULL), -EINVAL);
    CHECK(cl, goro_ctx_wait(NULL, d), -EINVAL);
    CHECK(cl, goro_ctx_retain(NULL) == NULL, 1);
    goro_ctx_release(NULL);
    /* a huge timeout saturates to "no deadline" instead of overflowing */
    CHECK(cl, goro_ctx_with_timeout(NULL, INT64_MAX, &ctx), 0);
    if (ctx) {
        CHECK(cl, goro_ctx_deadline(ctx) == GORO_NO_DEADLINE, 1);
        CHECK(cl, goro_ctx_err(ctx), 0);
        goro_ctx_release(ctx);
    }
    ctx = NULL;
    CHECK(cl, goro_ctx_with_deadline(NULL, INT64_MIN, &ctx), 0);
    if (ctx) {
        CHECK(cl, goro_ctx_wait(ctx, goro_deadline_after(gt_slow(2 * GORO_SECOND))), -ETIMEDOUT);
        CHECK(cl, goro_ctx_err(ctx), -ETIMEDOUT);
        goro_ctx_release(ctx);
    }
}

static void bad_main(void *arg)
{
    bad_state *s = arg;
    bad_channels(&s->cl);
    bad_spawn_and_runtime(s);
    bad_sync(s);
}

static void test_bad_arguments(void **st)
{
    (void)st;
    bad_state *s = calloc(1, sizeof *s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("bad arguments", bad_main, s, &o, 60), 0);
    verify(&s->cl, 130);
    free(s);
}

/* ------------------------------------------------------------------------- */
/* A plain pthread while the runtime runs                                     */
/* ------------------------------------------------------------------------- */

typedef struct {
    checks_t cl;       /* written by the pthread only */
    checks_t main_cl;  /* written by the main goroutine only */
    goro_chan *u, *b, *u2;
    goro_mutex m, m2, cm, cm2;
    goro_rwmutex rw;
    goro_waitgroup wg, wg_helpers;
    goro_cond c, c2;
    goro_ctx *ctx;
    int cond_flag; /* under cm2 */
    atomic_int thread_done;
    atomic_long helpers_started;
    int procs;
    /* results of goroutines woken by the pthread */
    int r_rc, m_rc, g_rc, c_rc, x_rc;
    bool r_ok;
    char *dump;
    int dump_rc;
} th_state;

static void *plain_thread(void *arg)
{
    th_state *s = arg;
    checks_t *cl = &s->cl;
    int x = 1, y = 0;
    int64_t d = goro_deadline_after(GORO_SECOND);
    /* blocking calls: -EPERM */
    CHECK(cl, goro_chan_send(s->u, &x), -EPERM);
    CHECK(cl, goro_chan_recv(s->u, &y, NULL), -EPERM);
    CHECK(cl, goro_chan_send_until(s->u, &x, d), -EPERM);
    CHECK(cl, goro_chan_recv_until(s->u, &y, NULL, d), -EPERM);
    goro_select_case cs[1] = {{.ch = s->u, .op = GORO_SELECT_RECV, .elem = &y}};
    CHECK(cl, goro_select(cs, 1, 0, GORO_NO_DEADLINE), -EPERM);
    CHECK(cl, goro_select(cs, 1, 0, d), -EPERM);
    CHECK(cl, goro_select(NULL, 0, 0, d), -EPERM);
    CHECK(cl, goro_sleep(MS), -EPERM);
    CHECK(cl, goro_sleep_until(d), -EPERM);
    CHECK(cl, goro_yield(), -EPERM);
    CHECK(cl, goro_mutex_lock(&s->m), -EPERM);
    CHECK(cl, goro_mutex_lock_until(&s->m, d), -EPERM);
    CHECK(cl, goro_rwmutex_rlock(&s->rw), -EPERM);
    CHECK(cl, goro_rwmutex_lock(&s->rw), -EPERM);
    CHECK(cl, goro_waitgroup_wait(&s->wg), -EPERM);
    CHECK(cl, goro_waitgroup_wait_until(&s->wg, d), -EPERM);
    CHECK(cl, goro_mutex_trylock(&s->cm), 0);
    CHECK(cl, goro_cond_wait(&s->c, &s->cm), -EPERM);
    goro_mutex_unlock(&s->cm);
    CHECK(cl, goro_ctx_wait(s->ctx, d), -EPERM);
    CHECK(cl, goro_spawn(nop_fn, NULL, NULL, NULL), -EPERM);
    CHECK(cl, goro_run(nop_fn, NULL, NULL), -EBUSY);
    CHECK(cl, goro_id(), 0);
    goro_exit(); /* returns */
    CHECK(cl, goro_procs(), s->procs);
    CHECK(cl, goro_num_goroutines() >= 1, 1);
    /* non-blocking calls work, and wake goroutines */
    CHECK(cl, goro_chan_trysend(s->b, &x), 0);
    CHECK(cl, goro_chan_trysend(s->b, &x), -EAGAIN);
    CHECK(cl, goro_chan_tryrecv(s->b, &y, NULL), 0);
    CHECK(cl, goro_chan_len(s->b), 0);
    CHECK(cl, goro_chan_cap(s->b), 1);
    CHECK(cl, goro_chan_close(s->u2), 0);       /* wakes R */
    CHECK(cl, goro_mutex_unlock(&s->m2), 0);    /* wakes M */
    CHECK(cl, goro_waitgroup_done(&s->wg), 0);  /* wakes G */
    goro_ctx_cancel(s->ctx);                    /* wakes X */
    /* wake C: set its predicate under cm2 (trylock: we may not block) */
    int64_t end = gt_mono_ns() + 5 * GORO_SECOND;
    int rc;
    while ((rc = goro_mutex_trylock(&s->cm2)) == -EBUSY && gt_mono_ns() < end)
        usleep(100);
    CHECK(cl, rc, 0);
    s->cond_flag = 1;
    CHECK(cl, goro_mutex_unlock(&s->cm2), 0);
    CHECK(cl, goro_cond_signal(&s->c2), 0);
    CHECK(cl, goro_cond_broadcast(&s->c2), 0);
    /* a dump from a thread that is not a goroutine */
    FILE *f = tmpfile();
    if (f) {
        s->dump_rc = goro_dump(fileno(f));
        s->dump = gt_read_all_fd(fileno(f));
        fclose(f);
    } else {
        s->dump_rc = -999;
    }
    atomic_store(&s->thread_done, 1);
    return NULL;
}

static void h_recv(void *arg)
{
    th_state *s = arg;
    atomic_fetch_add(&s->helpers_started, 1);
    s->r_ok = true;
    s->r_rc = goro_chan_recv(s->u2, NULL, &s->r_ok);
    goro_waitgroup_done(&s->wg_helpers);
}

static void h_mutex(void *arg)
{
    th_state *s = arg;
    atomic_fetch_add(&s->helpers_started, 1);
    s->m_rc = goro_mutex_lock(&s->m2);
    goro_mutex_unlock(&s->m2);
    goro_waitgroup_done(&s->wg_helpers);
}

static void h_wg(void *arg)
{
    th_state *s = arg;
    atomic_fetch_add(&s->helpers_started, 1);
    s->g_rc = goro_waitgroup_wait(&s->wg);
    goro_waitgroup_done(&s->wg_helpers);
}

static void h_cond(void *arg)
{
    th_state *s = arg;
    goro_mutex_lock(&s->cm2);
    atomic_fetch_add(&s->helpers_started, 1);
    int rc = 0;
    while (!s->cond_flag && rc == 0)
        rc = goro_cond_wait(&s->c2, &s->cm2);
    s->c_rc = rc;
    goro_mutex_unlock(&s->cm2);
    goro_waitgroup_done(&s->wg_helpers);
}

static void h_ctx(void *arg)
{
    th_state *s = arg;
    atomic_fetch_add(&s->helpers_started, 1);
    s->x_rc = goro_ctx_wait(s->ctx, GORO_NO_DEADLINE);
    goro_waitgroup_done(&s->wg_helpers);
}

static void th_main(void *arg)
{
    th_state *s = arg;
    checks_t *cl = &s->main_cl;
    s->procs = goro_procs();
    CHECK(cl, goro_chan_make(&s->u, sizeof(int), 0), 0);
    CHECK(cl, goro_chan_make(&s->b, sizeof(int), 1), 0);
    CHECK(cl, goro_chan_make(&s->u2, sizeof(int), 0), 0);
    CHECK(cl, goro_ctx_with_cancel(NULL, &s->ctx), 0);
    if (!s->u || !s->b || !s->u2 || !s->ctx)
        return;
    goro_mutex_lock(&s->m);
    goro_mutex_lock(&s->m2);
    goro_rwmutex_lock(&s->rw);
    goro_waitgroup_add(&s->wg, 1);
    goro_waitgroup_add(&s->wg_helpers, 5);
    goro_go(h_recv, s);
    goro_go(h_mutex, s);
    goro_go(h_wg, s);
    goro_go(h_cond, s);
    goro_go(h_ctx, s);
    gt_wait_atomic_ge(&s->helpers_started, 5, 10 * GORO_SECOND);
    goro_sleep(20 * MS);
    pthread_t th;
    if (pthread_create(&th, NULL, plain_thread, s) != 0) {
        CHECK(cl, -1, 0);
        return;
    }
    int64_t end = goro_now() + gt_slow(20 * GORO_SECOND);
    while (!atomic_load(&s->thread_done) && goro_now() < end)
        goro_sleep(MS);
    CHECK(cl, atomic_load(&s->thread_done), 1);
    if (atomic_load(&s->thread_done))
        pthread_join(th, NULL);
    else
        pthread_detach(th);
    CHECK(cl, goro_waitgroup_wait_until(&s->wg_helpers, goro_deadline_after(gt_slow(10 * GORO_SECOND))), 0);
    goro_mutex_unlock(&s->m);
    goro_rwmutex_unlock(&s->rw);
    goro_chan_release(s->u);
    goro_chan_release(s->b);
    goro_chan_release(s->u2);
    goro_ctx_release(s->ctx);
}

static void test_plain_thread_while_running(void **st)
{
    (void)st;
    th_state *s = calloc(1, sizeof *s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("pthread calls", th_main, s, &o, 60), 0);
    verify(&s->main_cl, 5);
    verify(&s->cl, 35);
    assert_rc(s->r_rc, 0);
    assert_false(s->r_ok);
    assert_rc(s->m_rc, 0);
    assert_rc(s->g_rc, 0);
    assert_rc(s->c_rc, 0);
    assert_rc(s->x_rc, -ECANCELED);
    assert_rc(s->dump_rc, 0);
    assert_non_null(s->dump);
    assert_true_msg(gt_find_goroutine_header(s->dump, 1, NULL) != NULL,
                    "dump written from a pthread has no goroutine 1:\n%s", s->dump);
    free(s->dump);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outside_runtime),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_plain_thread_while_running),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
