/*
 * test_ctx.c - cancellation contexts: propagation, deadlines, done channels,
 * goro_ctx_wait, the background context and reference counting.
 */
#define _GNU_SOURCE
#include "util.h"

#define MS GORO_MILLISECOND

/* Probe a done channel without blocking: 1 closed, 0 open, <0 error. */
static int done_closed(goro_ctx *c)
{
    goro_chan *d = goro_ctx_done(c);
    if (!d)
        return -100;
    bool ok = true;
    int rc = goro_chan_tryrecv(d, NULL, &ok);
    if (rc == -EAGAIN)
        return 0;
    if (rc == 0 && !ok)
        return 1;
    return rc == 0 ? -101 : rc; /* a value on a done channel is wrong */
}

/* ------------------------------------------------------------------------- */
/* Cancel propagates to children and grandchildren                            */
/* ------------------------------------------------------------------------- */

#define CP_N 5

typedef struct {
    goro_ctx *c[CP_N]; /* root, child1, child2, grandchild (of 1), great-grandchild */
    goro_waitgroup wg;
    atomic_int idx;
    atomic_long started;
    int wait_rc[CP_N];
    bool wait_ok[CP_N];
    int err_after[CP_N];
    int64_t woke_at[CP_N];
    int64_t cancel_at;
    int make_rc[CP_N];
    int err_before[CP_N];
    int closed_after[CP_N];
    int err_twice;
    int wg_rc;
} cp_state;

static void cp_waiter(void *arg)
{
    cp_state *s = arg;
    int i = atomic_fetch_add(&s->idx, 1);
    goro_chan *d = goro_ctx_done(s->c[i]);
    atomic_fetch_add(&s->started, 1);
    s->wait_ok[i] = true;
    s->wait_rc[i] = goro_chan_recv(d, NULL, &s->wait_ok[i]);
    s->woke_at[i] = goro_now();
    s->err_after[i] = goro_ctx_err(s->c[i]);
    goro_waitgroup_done(&s->wg);
}

static void cp_main(void *arg)
{
    cp_state *s = arg;
    s->make_rc[0] = goro_ctx_with_cancel(NULL, &s->c[0]);
    s->make_rc[1] = goro_ctx_with_cancel(s->c[0], &s->c[1]);
    s->make_rc[2] = goro_ctx_with_cancel(s->c[0], &s->c[2]);
    s->make_rc[3] = goro_ctx_with_cancel(s->c[1], &s->c[3]);
    s->make_rc[4] = goro_ctx_with_deadline(s->c[3], goro_deadline_after(60 * GORO_SECOND),
                                           &s->c[4]);
    for (int i = 0; i < CP_N; i++)
        if (s->make_rc[i])
            return;
    for (int i = 0; i < CP_N; i++)
        s->err_before[i] = goro_ctx_err(s->c[i]);
    goro_waitgroup_add(&s->wg, CP_N);
    for (int i = 0; i < CP_N; i++)
        goro_go(cp_waiter, s);
    gt_wait_atomic_ge(&s->started, CP_N, 10 * GORO_SECOND);
    goro_sleep(20 * MS);
    s->cancel_at = goro_now();
    goro_ctx_cancel(s->c[0]);
    s->wg_rc = gt_wg_wait(&s->wg, 10);
    for (int i = 0; i < CP_N; i++)
        s->closed_after[i] = done_closed(s->c[i]);
    if (s->wg_rc)
        return; /* the waiters still use the contexts */
    goro_ctx_cancel(s->c[0]); /* no-op */
    s->err_twice = goro_ctx_err(s->c[0]);
    /* parents first: children keep their parents alive */
    for (int i = 0; i < CP_N; i++)
        goro_ctx_release(s->c[i]);
}

static void test_cancel_propagates(void **st)
{
    (void)st;
    cp_state s;
    memset(&s, 0, sizeof s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("ctx cancel propagation", cp_main, &s, &o, 30), 0);
    assert_true_msg(s.wg_rc == 0, "cancel did not wake every waiter");
    for (int i = 0; i < CP_N; i++) {
        assert_rc(s.make_rc[i], 0);
        assert_rc(s.err_before[i], 0);
        assert_rc(s.wait_rc[i], 0);
        assert_false(s.wait_ok[i]);
        assert_rc(s.err_after[i], -ECANCELED);
        assert_int_equal(s.closed_after[i], 1);
        assert_true(s.woke_at[i] >= s.cancel_at);
    }
    assert_rc(s.err_twice, -ECANCELED);
}

/* ------------------------------------------------------------------------- */
/* Cancelling a child leaves the parent alone                                 */
/* ------------------------------------------------------------------------- */

typedef struct {
    int err[4][4];
    int closed[4][4];
    int make_rc;
} cc_state;

static void cc_snapshot(cc_state *s, goro_ctx **c, int row)
{
    for (int i = 0; i < 4; i++) {
        s->err[row][i] = goro_ctx_err(c[i]);
        s->closed[row][i] = done_closed(c[i]);
    }
}

static void cc_main(void *arg)
{
    cc_state *s = arg;
    goro_ctx *c[4]; /* root, child1, child2, grandchild of child1 */
    if ((s->make_rc = goro_ctx_with_cancel(NULL, &c[0])) ||
        (s->make_rc = goro_ctx_with_cancel(c[0], &c[1])) ||
        (s->make_rc = goro_ctx_with_cancel(c[0], &c[2])) ||
        (s->make_rc = goro_ctx_with_cancel(c[1], &c[3])))
        return;
    cc_snapshot(s, c, 0);
    goro_ctx_cancel(c[1]);
    cc_snapshot(s, c, 1);
    goro_sleep(10 * MS); /* nothing spreads upwards later either */
    cc_snapshot(s, c, 2);
    goro_ctx_cancel(c[0]);
    cc_snapshot(s, c, 3);
    /* children first this time */
    for (int i = 3; i >= 0; i--)
        goro_ctx_release(c[i]);
}

static void test_cancel_child_not_parent(void **st)
{
    (void)st;
    cc_state s;
    memset(&s, 0, sizeof s);
    assert_rc(gt_run("ctx child cancel", cc_main, &s, NULL, 30), 0);
    assert_rc(s.make_rc, 0);
    const int want_err[4][4] = {
        {0, 0, 0, 0},
        {0, -ECANCELED, 0, -ECANCELED},
        {0, -ECANCELED, 0, -ECANCELED},
        {-ECANCELED, -ECANCELED, -ECANCELED, -ECANCELED},
    };
    for (int r = 0; r < 4; r++)
        for (int i = 0; i < 4; i++) {
            assert_true_msg(s.err[r][i] == want_err[r][i],
                            "step %d ctx %d: err %s, expected %s", r, i,
                            gt_errname(s.err[r][i]), gt_errname(want_err[r][i]));
            assert_true_msg(s.closed[r][i] == (want_err[r][i] != 0),
                            "step %d ctx %d: done channel state %d", r, i,
                            s.closed[r][i]);
        }
}

/* ------------------------------------------------------------------------- */
/* Deadline contexts                                                          */
/* ------------------------------------------------------------------------- */

#define DC_TRIES 5

typedef struct {
    int make_rc;
    int err_before[DC_TRIES], err_after[DC_TRIES], recv_rc[DC_TRIES];
    bool recv_ok[DC_TRIES];
    int64_t late[DC_TRIES];
    int64_t dl_error[DC_TRIES]; /* goro_ctx_deadline - requested deadline */
    int cancel_first_err[2];
} dc_state;

static void dc_main(void *arg)
{
    dc_state *s = arg;
    for (int t = 0; t < DC_TRIES; t++) {
        goro_ctx *c;
        int64_t before = goro_now();
        if ((s->make_rc = goro_ctx_with_timeout(NULL, 50 * MS, &c)) != 0)
            return;
        int64_t after = goro_now();
        int64_t dl = goro_ctx_deadline(c);
        /* deadline within [before + 50 ms, after + 50 ms] */
        s->dl_error[t] = dl < before + 50 * MS ? dl - (before + 50 * MS)
                         : dl > after + 50 * MS ? dl - (after + 50 * MS)
                                                : 0;
        s->err_before[t] = goro_ctx_err(c);
        s->recv_ok[t] = true;
        s->recv_rc[t] = goro_chan_recv(goro_ctx_done(c), NULL, &s->recv_ok[t]);
        s->late[t] = goro_now() - dl;
        s->err_after[t] = goro_ctx_err(c);
        goro_ctx_release(c);
    }
    /* cancelled before its deadline: stays -ECANCELED */
    goro_ctx *c;
    if ((s->make_rc = goro_ctx_with_timeout(NULL, 20 * MS, &c)) != 0)
        return;
    goro_ctx_cancel(c);
    s->cancel_first_err[0] = goro_ctx_err(c);
    goro_sleep(40 * MS);
    s->cancel_first_err[1] = goro_ctx_err(c);
    goro_ctx_release(c);
}

static void test_deadline_context(void **st)
{
    (void)st;
    dc_state s;
    memset(&s, 0, sizeof s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("ctx deadline", dc_main, &s, &o, 30), 0);
    assert_rc(s.make_rc, 0);
    for (int t = 0; t < DC_TRIES; t++) {
        assert_int_equal(s.dl_error[t], 0);
        assert_rc(s.err_before[t], 0);
        assert_rc(s.recv_rc[t], 0);
        assert_false(s.recv_ok[t]);
        assert_rc(s.err_after[t], -ETIMEDOUT);
        assert_true_msg(s.late[t] >= 0, "try %d: cancelled %lld ns before its deadline",
                        t, (long long)-s.late[t]);
    }
    int64_t med = gt_median_i64(s.late, DC_TRIES);
    fprintf(stderr, "ctx deadline: median lateness %.3f ms\n", med / 1e6);
    assert_true(med < gt_late_tolerance());
    assert_rc(s.cancel_first_err[0], -ECANCELED);
    assert_rc(s.cancel_first_err[1], -ECANCELED);
}

typedef struct {
    int make_rc;
    int64_t pdl, c1dl, c2dl, c2want, c3dl, bgdl, plaindl;
    int err_c4, err_c5, err_p2;
    int64_t c4_late;
    int64_t p2dl;
} cd_state;

static void cd_main(void *arg)
{
    cd_state *s = arg;
    goro_ctx *p, *c1, *c2, *c3, *plain;
    int64_t now = goro_now();
    if ((s->make_rc = goro_ctx_with_deadline(NULL, now + GORO_SECOND, &p)) ||
        (s->make_rc = goro_ctx_with_deadline(p, now + 5 * GORO_SECOND, &c1)) ||
        (s->make_rc = goro_ctx_with_deadline(p, now + 100 * MS, &c2)) ||
        (s->make_rc = goro_ctx_with_cancel(p, &c3)) ||
        (s->make_rc = goro_ctx_with_cancel(NULL, &plain)))
        return;
    s->pdl = goro_ctx_deadline(p);
    s->c1dl = goro_ctx_deadline(c1);
    s->c2dl = goro_ctx_deadline(c2);
    s->c2want = now + 100 * MS;
    s->c3dl = goro_ctx_deadline(c3);
    s->bgdl = goro_ctx_deadline(goro_ctx_background());
    s->plaindl = goro_ctx_deadline(plain);
    goro_ctx_release(c1);
    goro_ctx_release(c2);
    goro_ctx_release(c3);
    goro_ctx_release(p);
    goro_ctx_release(plain);

    /* the parent's earlier deadline cancels a child with a later one */
    goro_ctx *p2, *c4, *c5;
    if ((s->make_rc = goro_ctx_with_timeout(NULL, 50 * MS, &p2)) ||
        (s->make_rc = goro_ctx_with_timeout(p2, 10 * GORO_SECOND, &c4)) ||
        (s->make_rc = goro_ctx_with_cancel(p2, &c5)))
        return;
    s->p2dl = goro_ctx_deadline(p2);
    goro_chan_recv(goro_ctx_done(c4), NULL, NULL);
    s->c4_late = goro_now() - s->p2dl;
    s->err_c4 = goro_ctx_err(c4);
    goro_chan_recv(goro_ctx_done(c5), NULL, NULL);
    s->err_c5 = goro_ctx_err(c5);
    s->err_p2 = goro_ctx_err(p2);
    goro_ctx_release(c5);
    goro_ctx_release(c4);
    goro_ctx_release(p2);
}

static void test_child_deadline_is_min(void **st)
{
    (void)st;
    cd_state s;
    memset(&s, 0, sizeof s);
    assert_rc(gt_run("ctx child deadline", cd_main, &s, NULL, 30), 0);
    assert_rc(s.make_rc, 0);
    assert_true(s.pdl != GORO_NO_DEADLINE);
    assert_int_equal(s.c1dl, s.pdl);    /* min(parent, own later one) */
    assert_int_equal(s.c2dl, s.c2want); /* own earlier one */
    assert_int_equal(s.c3dl, s.pdl);    /* inherited by a cancel child */
    assert_int_equal(s.bgdl, GORO_NO_DEADLINE);
    assert_int_equal(s.plaindl, GORO_NO_DEADLINE);
    assert_rc(s.err_p2, -ETIMEDOUT);
    assert_rc(s.err_c4, -ETIMEDOUT);
    assert_rc(s.err_c5, -ETIMEDOUT);
    assert_true(s.c4_late >= 0);
    assert_true(s.c4_late < gt_slow(GORO_SECOND));
}

/* ------------------------------------------------------------------------- */
/* Child of an already-cancelled parent                                       */
/* ------------------------------------------------------------------------- */

typedef struct {
    int make_rc[6];
    int err[6];
    int closed[6];
    int64_t past_wait;
} cpc_state;

static void cpc_main(void *arg)
{
    cpc_state *s = arg;
    goro_ctx *p, *c0, *c1, *p2, *c2, *c3;
    s->make_rc[0] = goro_ctx_with_cancel(NULL, &p);
    if (s->make_rc[0])
        return;
    goro_ctx_cancel(p);
    s->make_rc[1] = goro_ctx_with_cancel(p, &c0);
    s->make_rc[2] = goro_ctx_with_deadline(p, goro_deadline_after(60 * GORO_SECOND), &c1);
    s->make_rc[3] = goro_ctx_with_timeout(NULL, MS, &p2);
    if (s->make_rc[1] || s->make_rc[2] || s->make_rc[3])
        return;
    goro_ctx_wait(p2, goro_deadline_after(gt_slow(5 * GORO_SECOND)));
    s->make_rc[4] = goro_ctx_with_cancel(p2, &c2);
    int64_t t0 = goro_now();
    s->make_rc[5] = goro_ctx_with_deadline(NULL, goro_now() - MS, &c3);
    if (s->make_rc[4] || s->make_rc[5])
        return;
    goro_ctx_wait(c3, goro_deadline_after(gt_slow(5 * GORO_SECOND)));
    s->past_wait = goro_now() - t0;
    goro_ctx *all[6] = {p, c0, c1, p2, c2, c3};
    for (int i = 0; i < 6; i++) {
        s->err[i] = goro_ctx_err(all[i]);
        s->closed[i] = done_closed(all[i]);
    }
    for (int i = 5; i >= 0; i--)
        goro_ctx_release(all[i]);
}

static void test_child_of_cancelled_parent(void **st)
{
    (void)st;
    cpc_state s;
    memset(&s, 0, sizeof s);
    assert_rc(gt_run("ctx child of cancelled", cpc_main, &s, NULL, 30), 0);
    for (int i = 0; i < 6; i++)
        assert_rc(s.make_rc[i], 0);
    const int want[6] = {-ECANCELED, -ECANCELED, -ECANCELED, -ETIMEDOUT, -ETIMEDOUT,
                         -ETIMEDOUT};
    for (int i = 0; i < 6; i++) {
        assert_true_msg(s.err[i] == want[i], "ctx %d: err %s, expected %s", i,
                        gt_errname(s.err[i]), gt_errname(want[i]));
        assert_int_equal(s.closed[i], 1);
    }
    assert_true_msg(s.past_wait < gt_slow(500 * MS),
                    "a context with a past deadline took %.1f ms to be done",
                    s.past_wait / 1e6);
}

/* ------------------------------------------------------------------------- */
/* The done channel in goro_select; goro_ctx_wait                             */
/* ------------------------------------------------------------------------- */

typedef struct {
    goro_ctx *ctx;
    goro_chan *data;
    goro_waitgroup wg;
    atomic_long started;
    int sel_rc[3];
    bool sel_ok[3];
    int val;
    int err_seen;
    int make_rc;
} ds_state;

static void ds_worker(void *arg)
{
    ds_state *s = arg;
    int v = -1;
    goro_select_case cs[2] = {
        {.ch = s->data, .op = GORO_SELECT_RECV, .elem = &v},
        {.ch = goro_ctx_done(s->ctx), .op = GORO_SELECT_RECV, .elem = NULL},
    };
    /* first round: the data arrives before cancellation */
    s->sel_rc[0] = goro_select(cs, 2, 0, GORO_NO_DEADLINE);
    s->sel_ok[0] = s->sel_rc[0] >= 0 && cs[s->sel_rc[0]].ok;
    s->val = v;
    atomic_fetch_add(&s->started, 1);
    /* second round: nothing but the cancellation */
    s->sel_rc[1] = goro_select(cs, 2, 0, GORO_NO_DEADLINE);
    s->sel_ok[1] = s->sel_rc[1] >= 0 && cs[s->sel_rc[1]].ok;
    s->err_seen = goro_ctx_err(s->ctx);
    /* once cancelled, the done case is always ready */
    s->sel_rc[2] = goro_select(cs, 2, GORO_SELECT_NONBLOCK, GORO_NO_DEADLINE);
    goro_waitgroup_done(&s->wg);
}

static void ds_main(void *arg)
{
    ds_state *s = arg;
    if ((s->make_rc = goro_ctx_with_cancel(NULL, &s->ctx)) ||
        (s->make_rc = goro_chan_make(&s->data, sizeof(int), 0)))
        return;
    goro_waitgroup_add(&s->wg, 1);
    goro_go(ds_worker, s);
    int v = 99;
    goro_chan_send(s->data, &v);
    gt_wait_atomic_ge(&s->started, 1, 10 * GORO_SECOND);
    goro_sleep(20 * MS);
    goro_ctx_cancel(s->ctx);
    goro_waitgroup_wait(&s->wg);
    goro_chan_release(s->data);
    goro_ctx_release(s->ctx);
}

static void test_done_in_select(void **st)
{
    (void)st;
    ds_state s;
    memset(&s, 0, sizeof s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("ctx done in select", ds_main, &s, &o, 30), 0);
    assert_rc(s.make_rc, 0);
    assert_rc(s.sel_rc[0], 0);
    assert_true(s.sel_ok[0]);
    assert_int_equal(s.val, 99);
    assert_rc(s.sel_rc[1], 1);
    assert_false(s.sel_ok[1]);
    assert_rc(s.err_seen, -ECANCELED);
    assert_rc(s.sel_rc[2], 1);
}

typedef struct {
    goro_ctx *ctx;
    goro_waitgroup wg;
    int rc[8];
    int64_t t[8];
    int err_live;
    int make_rc;
} cw_state;

static void cw_canceller(void *arg)
{
    cw_state *s = arg;
    goro_sleep(30 * MS);
    goro_ctx_cancel(s->ctx);
    goro_waitgroup_done(&s->wg);
}

static void cw_main(void *arg)
{
    cw_state *s = arg;
    if ((s->make_rc = goro_ctx_with_cancel(NULL, &s->ctx)) != 0)
        return;
    /* live context, wait deadline passes */
    int64_t d = goro_now() + 30 * MS;
    s->rc[0] = goro_ctx_wait(s->ctx, d);
    s->t[0] = goro_now() - d;
    s->err_live = goro_ctx_err(s->ctx);
    /* cancelled by another goroutine while waiting */
    goro_waitgroup_add(&s->wg, 1);
    goro_go(cw_canceller, s);
    int64_t t0 = goro_now();
    s->rc[1] = goro_ctx_wait(s->ctx, GORO_NO_DEADLINE);
    s->t[1] = goro_now() - t0;
    goro_waitgroup_wait(&s->wg);
    /* already cancelled: at once */
    t0 = goro_now();
    s->rc[2] = goro_ctx_wait(s->ctx, GORO_NO_DEADLINE);
    s->rc[3] = goro_ctx_wait(s->ctx, goro_now() - 1);
    s->t[2] = goro_now() - t0;
    /* background: never done */
    d = goro_now() + 20 * MS;
    s->rc[4] = goro_ctx_wait(goro_ctx_background(), d);
    s->t[3] = goro_now() - d;
    s->rc[5] = goro_ctx_wait(NULL, GORO_NO_DEADLINE);
    /* a deadline context: the wait ends with the context's -ETIMEDOUT */
    goro_ctx *dl;
    if ((s->make_rc = goro_ctx_with_timeout(NULL, 20 * MS, &dl)) != 0)
        return;
    s->rc[6] = goro_ctx_wait(dl, GORO_NO_DEADLINE);
    s->rc[7] = goro_ctx_err(dl);
    goro_ctx_release(dl);
    goro_ctx_release(s->ctx);
}

static void test_ctx_wait(void **st)
{
    (void)st;
    cw_state s;
    memset(&s, 0, sizeof s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("ctx wait", cw_main, &s, &o, 30), 0);
    assert_rc(s.make_rc, 0);
    assert_rc(s.rc[0], -ETIMEDOUT);
    assert_true(s.t[0] >= 0);
    assert_rc(s.err_live, 0);
    assert_rc(s.rc[1], -ECANCELED);
    assert_true(s.t[1] >= 20 * MS);
    assert_rc(s.rc[2], -ECANCELED);
    assert_rc(s.rc[3], -ECANCELED);
    assert_true(s.t[2] < gt_slow(100 * MS));
    assert_rc(s.rc[4], -ETIMEDOUT);
    assert_true(s.t[3] >= 0);
    assert_rc(s.rc[5], -EINVAL);
    assert_rc(s.rc[6], -ETIMEDOUT);
    assert_rc(s.rc[7], -ETIMEDOUT);
}

/* ------------------------------------------------------------------------- */
/* Background                                                                 */
/* ------------------------------------------------------------------------- */

typedef struct {
    int err[3], closed[3];
    int64_t dl;
    bool same_retain, null_retain, same_twice, done_nonnull;
    int child_err;
    int make_rc;
} bg_state;

static void bg_main(void *arg)
{
    bg_state *s = arg;
    goro_ctx *bg = goro_ctx_background();
    s->same_twice = bg == goro_ctx_background();
    s->err[0] = goro_ctx_err(bg);
    s->closed[0] = done_closed(bg);
    s->done_nonnull = goro_ctx_done(bg) != NULL;
    s->dl = goro_ctx_deadline(bg);
    goro_ctx_cancel(bg); /* no-op */
    s->err[1] = goro_ctx_err(bg);
    s->closed[1] = done_closed(bg);
    s->same_retain = goro_ctx_retain(bg) == bg;
    for (int i = 0; i < 10; i++)
        goro_ctx_release(bg); /* no-ops: static */
    s->null_retain = goro_ctx_retain(NULL) == NULL;
    goro_ctx_release(NULL);
    /* cancelling a child of background does not touch background */
    goro_ctx *c;
    if ((s->make_rc = goro_ctx_with_cancel(bg, &c)) != 0)
        return;
    goro_ctx_cancel(c);
    s->child_err = goro_ctx_err(c);
    goro_ctx_release(c);
    goro_sleep(5 * MS);
    s->err[2] = goro_ctx_err(bg);
    s->closed[2] = done_closed(bg);
}

static void test_background(void **st)
{
    (void)st;
    bg_state s;
    memset(&s, 0, sizeof s);
    assert_rc(gt_run("ctx background", bg_main, &s, NULL, 30), 0);
    assert_rc(s.make_rc, 0);
    assert_true(s.same_twice);
    assert_true(s.done_nonnull);
    for (int i = 0; i < 3; i++) {
        assert_rc(s.err[i], 0);
        assert_int_equal(s.closed[i], 0);
    }
    assert_int_equal(s.dl, GORO_NO_DEADLINE);
    assert_true(s.same_retain);
    assert_true(s.null_retain);
    assert_rc(s.child_err, -ECANCELED);
}

/* ------------------------------------------------------------------------- */
/* Release of a live context cancels it and frees it                          */
/* ------------------------------------------------------------------------- */

typedef struct {
    goro_chan *done; /* borrowed by the waiter, see below */
    goro_waitgroup wg;
    atomic_long started;
    int waiter_rc;
    bool waiter_ok;
    int retained_closed;
    int parent_err, parent_closed;
    int sibling_err;
    int make_rc;
    int after_parent_cancel;
} rl_state;

static void rl_waiter(void *arg)
{
    rl_state *s = arg;
    goro_chan *d = s->done;
    atomic_fetch_add(&s->started, 1);
    s->waiter_ok = true;
    /* blocked on the done channel: goro holds the channel for us while we
     * wait, even when the context (and its reference) goes away */
    s->waiter_rc = goro_chan_recv(d, NULL, &s->waiter_ok);
    goro_waitgroup_done(&s->wg);
}

static void rl_main(void *arg)
{
    rl_state *s = arg;
    goro_ctx *parent, *c, *c2, *sibling;
    if ((s->make_rc = goro_ctx_with_cancel(NULL, &parent)) ||
        (s->make_rc = goro_ctx_with_cancel(parent, &c)) ||
        (s->make_rc = goro_ctx_with_cancel(parent, &c2)) ||
        (s->make_rc = goro_ctx_with_cancel(parent, &sibling)))
        return;
    /* (1) a goroutine blocked on c's done channel wakes when c's last
     * reference is released */
    s->done = goro_ctx_done(c);
    goro_waitgroup_add(&s->wg, 1);
    goro_go(rl_waiter, s);
    gt_wait_atomic_ge(&s->started, 1, 10 * GORO_SECOND);
    goro_sleep(20 * MS);
    goro_ctx_release(c);
    goro_waitgroup_wait(&s->wg);
    /* (2) a retained done channel outlives its context and is closed */
    goro_chan *d2 = goro_chan_retain(goro_ctx_done(c2));
    goro_ctx_release(c2);
    bool ok = true;
    int rc = goro_chan_tryrecv(d2, NULL, &ok);
    s->retained_closed = rc == 0 && !ok;
    goro_chan_release(d2);
    /* the parent and the sibling are untouched */
    s->parent_err = goro_ctx_err(parent);
    s->parent_closed = done_closed(parent);
    s->sibling_err = goro_ctx_err(sibling);
    /* (3) many live children released, then the parent cancelled: the
     * released children must have been detached (ASan: no use after free) */
    for (int i = 0; i < 50; i++) {
        goro_ctx *k;
        if (goro_ctx_with_cancel(parent, &k) == 0)
            goro_ctx_release(k);
    }
    goro_ctx_cancel(parent);
    s->after_parent_cancel = goro_ctx_err(sibling);
    /* (4) parent released before its child: the child keeps it alive */
    goro_ctx_release(parent);
    goro_ctx_release(sibling);
}

static void test_release_live_cancels(void **st)
{
    (void)st;
    rl_state s;
    memset(&s, 0, sizeof s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("ctx release live", rl_main, &s, &o, 30), 0);
    assert_rc(s.make_rc, 0);
    assert_rc(s.waiter_rc, 0);
    assert_false(s.waiter_ok);
    assert_true(s.retained_closed);
    assert_rc(s.parent_err, 0);
    assert_int_equal(s.parent_closed, 0);
    assert_rc(s.sibling_err, 0);
    assert_rc(s.after_parent_cancel, -ECANCELED);
}

/* ------------------------------------------------------------------------- */
/* Retain / release across goroutines                                         */
/* ------------------------------------------------------------------------- */

#define RX_N 100

typedef struct {
    goro_waitgroup wg;
    atomic_long started;
    int err[RX_N];
    int wait_rc[RX_N];
    atomic_int idx;
    int make_rc, wg_rc;
    bool retain_same;
} rx_state;

typedef struct {
    rx_state *s;
    goro_ctx *ctx; /* this goroutine's own reference */
} rx_arg;

static void rx_worker(void *arg)
{
    rx_arg *a = arg;
    rx_state *s = a->s;
    goro_ctx *ctx = a->ctx;
    free(a);
    int i = atomic_fetch_add(&s->idx, 1);
    atomic_fetch_add(&s->started, 1);
    s->wait_rc[i] = goro_ctx_wait(ctx, GORO_NO_DEADLINE);
    goro_sleep((int64_t)(i % 7) * MS / 2); /* release in scattered order */
    s->err[i] = goro_ctx_err(ctx);
    goro_ctx_release(ctx);
    goro_waitgroup_done(&s->wg);
}

static void rx_main(void *arg)
{
    rx_state *s = arg;
    goro_ctx *parent, *ctx;
    if ((s->make_rc = goro_ctx_with_cancel(NULL, &parent)) ||
        (s->make_rc = goro_ctx_with_cancel(parent, &ctx)))
        return;
    goro_waitgroup_add(&s->wg, RX_N);
    for (int i = 0; i < RX_N; i++) {
        rx_arg *a = malloc(sizeof *a);
        a->s = s;
        a->ctx = goro_ctx_retain(ctx);
        if (i == 0)
            s->retain_same = a->ctx == ctx;
        goro_go(rx_worker, a);
    }
    gt_wait_atomic_ge(&s->started, RX_N, 10 * GORO_SECOND);
    goro_sleep(10 * MS);
    /* drop ours first: the goroutines' references keep ctx alive; cancel it
     * through the parent */
    goro_ctx_release(ctx);
    goro_ctx_cancel(parent);
    goro_ctx_release(parent);
    s->wg_rc = gt_wg_wait(&s->wg, 10);
}

static void test_retain_release_across_goroutines(void **st)
{
    (void)st;
    rx_state s;
    memset(&s, 0, sizeof s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("ctx retain across goroutines", rx_main, &s, &o, 30), 0);
    assert_rc(s.make_rc, 0);
    assert_true(s.retain_same);
    assert_true_msg(s.wg_rc == 0, "cancel through the parent did not wake every waiter");
    for (int i = 0; i < RX_N; i++) {
        assert_rc(s.wait_rc[i], -ECANCELED);
        assert_rc(s.err[i], -ECANCELED);
    }
}

/* ------------------------------------------------------------------------- */
/* Many deadline contexts fire in time                                        */
/* ------------------------------------------------------------------------- */

#define MT_N 20

typedef struct {
    goro_waitgroup wg;
    atomic_int idx;
    int err[MT_N];
    int64_t late[MT_N];
    int make_rc[MT_N];
} mt_state;

static void mt_worker(void *arg)
{
    mt_state *s = arg;
    int i = atomic_fetch_add(&s->idx, 1);
    goro_ctx *c;
    if ((s->make_rc[i] = goro_ctx_with_timeout(NULL, (int64_t)(i + 1) * 10 * MS, &c)) == 0) {
        goro_chan_recv(goro_ctx_done(c), NULL, NULL);
        s->late[i] = goro_now() - goro_ctx_deadline(c);
        s->err[i] = goro_ctx_err(c);
        goro_ctx_release(c);
    }
    goro_waitgroup_done(&s->wg);
}

static void mt_main(void *arg)
{
    mt_state *s = arg;
    goro_waitgroup_add(&s->wg, MT_N);
    for (int i = 0; i < MT_N; i++)
        goro_go(mt_worker, s);
    goro_waitgroup_wait(&s->wg);
}

static void test_many_deadlines(void **st)
{
    (void)st;
    mt_state s;
    memset(&s, 0, sizeof s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("ctx many deadlines", mt_main, &s, &o, 30), 0);
    for (int i = 0; i < MT_N; i++) {
        assert_rc(s.make_rc[i], 0);
        assert_rc(s.err[i], -ETIMEDOUT);
        assert_true_msg(s.late[i] >= 0, "ctx %d done %lld ns early", i,
                        (long long)-s.late[i]);
    }
    int64_t med = gt_median_i64(s.late, MT_N);
    fprintf(stderr, "ctx: 20 deadline contexts, median lateness %.3f ms\n", med / 1e6);
    assert_true(med < gt_late_tolerance());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cancel_propagates),
        cmocka_unit_test(test_cancel_child_not_parent),
        cmocka_unit_test(test_deadline_context),
        cmocka_unit_test(test_child_deadline_is_min),
        cmocka_unit_test(test_child_of_cancelled_parent),
        cmocka_unit_test(test_done_in_select),
        cmocka_unit_test(test_ctx_wait),
        cmocka_unit_test(test_background),
        cmocka_unit_test(test_release_live_cancels),
        cmocka_unit_test(test_retain_release_across_goroutines),
        cmocka_unit_test(test_many_deadlines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
