/*
 * test_select.c - goro_select: readiness, NONBLOCK, deadlines, mixed send and
 * receive cases, closed channels, fairness, wake-ups, duplicate channels,
 * zero cases, and many goroutines selecting on shared channels.
 */
#define _GNU_SOURCE
#include "util.h"

#define MS GORO_MILLISECOND

static goro_select_case rcase(goro_chan *c, void *elem)
{
    return (goro_select_case){.ch = c, .op = GORO_SELECT_RECV, .elem = elem, .ok = false};
}

static goro_select_case scase(goro_chan *c, void *elem)
{
    return (goro_select_case){.ch = c, .op = GORO_SELECT_SEND, .elem = elem, .ok = false};
}

/* ------------------------------------------------------------------------- */
/* A ready case is picked                                                     */
/* ------------------------------------------------------------------------- */

typedef struct {
    int rc[8];
    bool ok[8];
    int val[8];
    size_t len[4];
    int make_rc;
} ready_state;

static void ready_main(void *arg)
{
    ready_state *s = arg;
    goro_chan *c[3];
    for (int i = 0; i < 3; i++)
        if ((s->make_rc = goro_chan_make(&c[i], sizeof(int), 1)) != 0)
            return;
    int seven = 7;
    goro_chan_send(c[1], &seven);

    int v[3] = {-1, -1, -1};
    goro_select_case cs[3] = {rcase(c[0], &v[0]), rcase(c[1], &v[1]), rcase(c[2], &v[2])};
    s->rc[0] = goro_select(cs, 3, 0, GORO_NO_DEADLINE);
    s->ok[0] = cs[1].ok;
    s->val[0] = v[1];
    s->val[1] = v[0];
    s->val[2] = v[2];
    s->len[0] = goro_chan_len(c[1]);

    /* a send case with buffer space is ready; a receive on empty is not */
    int out = 99;
    goro_select_case cs2[2] = {rcase(c[2], &v[2]), scase(c[0], &out)};
    s->rc[1] = goro_select(cs2, 2, 0, GORO_NO_DEADLINE);
    s->ok[1] = cs2[1].ok;
    s->len[1] = goro_chan_len(c[0]);
    int got = -1;
    goro_chan_tryrecv(c[0], &got, NULL);
    s->val[3] = got;

    /* NONBLOCK with a ready case still performs it */
    goro_chan_send(c[2], &seven);
    goro_select_case cs3[2] = {rcase(c[0], &v[0]), rcase(c[2], &v[2])};
    v[2] = -1;
    s->rc[2] = goro_select(cs3, 2, GORO_SELECT_NONBLOCK, GORO_NO_DEADLINE);
    s->ok[2] = cs3[1].ok;
    s->val[4] = v[2];

    /* elem NULL on a receive case discards the value */
    goro_chan_send(c[0], &seven);
    goro_select_case cs4[1] = {rcase(c[0], NULL)};
    s->rc[3] = goro_select(cs4, 1, 0, GORO_NO_DEADLINE);
    s->ok[3] = cs4[0].ok;
    s->len[2] = goro_chan_len(c[0]);
    for (int i = 0; i < 3; i++)
        goro_chan_release(c[i]);
}

static void test_picks_ready_case(void **st)
{
    (void)st;
    ready_state s;
    memset(&s, 0, sizeof s);
    assert_rc(gt_run("select ready", ready_main, &s, NULL, 30), 0);
    assert_rc(s.make_rc, 0);
    assert_rc(s.rc[0], 1);
    assert_true(s.ok[0]);
    assert_int_equal(s.val[0], 7);
    assert_int_equal(s.val[1], -1); /* cases not chosen are not touched */
    assert_int_equal(s.val[2], -1);
    assert_int_equal(s.len[0], 0);
    assert_rc(s.rc[1], 1);
    assert_true(s.ok[1]);
    assert_int_equal(s.len[1], 1);
    assert_int_equal(s.val[3], 99);
    assert_rc(s.rc[2], 1);
    assert_true(s.ok[2]);
    assert_int_equal(s.val[4], 7);
    assert_rc(s.rc[3], 0);
    assert_true(s.ok[3]);
    assert_int_equal(s.len[2], 0);
}

/* ------------------------------------------------------------------------- */
/* NONBLOCK                                                                   */
/* ------------------------------------------------------------------------- */

typedef struct {
    int rc[4];
    int val[3];
    size_t len[3];
    int make_rc;
} nb_state;

static void nb_main(void *arg)
{
    nb_state *s = arg;
    goro_chan *e, *u, *f;
    if ((s->make_rc = goro_chan_make(&e, sizeof(int), 2)) ||
        (s->make_rc = goro_chan_make(&u, sizeof(int), 0)) ||
        (s->make_rc = goro_chan_make(&f, sizeof(int), 1)))
        return;
    int one = 1;
    goro_chan_send(f, &one);
    int v[3] = {-5, -5, -5};
    goro_select_case cs[4] = {rcase(e, &v[0]), rcase(u, &v[1]), scase(u, &one),
                              scase(f, &one)};
    s->rc[0] = goro_select(cs, 4, GORO_SELECT_NONBLOCK, GORO_NO_DEADLINE);
    s->rc[1] = goro_select(cs, 4, GORO_SELECT_NONBLOCK, goro_deadline_after(GORO_SECOND));
    s->rc[2] = goro_select(cs, 1, GORO_SELECT_NONBLOCK, GORO_NO_DEADLINE);
    s->val[0] = v[0];
    s->val[1] = v[1];
    s->len[0] = goro_chan_len(e);
    s->len[1] = goro_chan_len(f);
    goro_chan_release(e);
    goro_chan_release(u);
    goro_chan_release(f);
}

static void test_nonblock_eagain(void **st)
{
    (void)st;
    nb_state s;
    memset(&s, 0, sizeof s);
    assert_rc(gt_run("select nonblock", nb_main, &s, NULL, 30), 0);
    assert_rc(s.make_rc, 0);
    assert_rc(s.rc[0], -EAGAIN);
    assert_rc(s.rc[1], -EAGAIN);
    assert_rc(s.rc[2], -EAGAIN);
    assert_int_equal(s.val[0], -5);
    assert_int_equal(s.val[1], -5);
    assert_int_equal(s.len[0], 0);
    assert_int_equal(s.len[1], 1);
}

/* ------------------------------------------------------------------------- */
/* Deadlines                                                                  */
/* ------------------------------------------------------------------------- */

#define SD_TRIES 7

typedef struct {
    int rc[SD_TRIES];
    int64_t late[SD_TRIES];
    int past_rc[3];
    int64_t past_elapsed;
    int make_rc;
} sd_state;

static void sd_main(void *arg)
{
    sd_state *s = arg;
    goro_chan *e, *f;
    if ((s->make_rc = goro_chan_make(&e, sizeof(int), 0)) ||
        (s->make_rc = goro_chan_make(&f, sizeof(int), 1)))
        return;
    int x = 1, v;
    goro_chan_send(f, &x);
    goro_select_case cs[2] = {rcase(e, &v), scase(f, &x)};
    for (int i = 0; i < SD_TRIES; i++) {
        int64_t d = goro_now() + 50 * MS;
        s->rc[i] = goro_select(cs, 2, 0, d);
        s->late[i] = goro_now() - d;
    }
    int64_t t0 = goro_now();
    s->past_rc[0] = goro_select(cs, 2, 0, goro_now() - 1);
    s->past_rc[1] = goro_select(cs, 2, 0, INT64_MIN);
    s->past_elapsed = goro_now() - t0;
    /* a past deadline still performs a ready case */
    goro_select_case cs2[2] = {rcase(e, &v), rcase(f, &v)};
    s->past_rc[2] = goro_select(cs2, 2, 0, goro_now() - 1);
    goro_chan_release(e);
    goro_chan_release(f);
}

static void test_deadline_timeout(void **st)
{
    (void)st;
    sd_state s;
    memset(&s, 0, sizeof s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("select deadline", sd_main, &s, &o, 30), 0);
    assert_rc(s.make_rc, 0);
    for (int i = 0; i < SD_TRIES; i++) {
        assert_rc(s.rc[i], -ETIMEDOUT);
        assert_true_msg(s.late[i] >= 0, "try %d: select returned %lld ns early", i,
                        (long long)-s.late[i]);
    }
    int64_t med = gt_median_i64(s.late, SD_TRIES);
    fprintf(stderr, "select deadline: median lateness %.3f ms\n", med / 1e6);
    assert_true_msg(med < gt_late_tolerance(), "median lateness %.3f ms", med / 1e6);
    assert_rc(s.past_rc[0], -ETIMEDOUT);
    assert_rc(s.past_rc[1], -ETIMEDOUT);
    assert_true(s.past_elapsed < gt_slow(200 * MS));
    assert_rc(s.past_rc[2], 1);
}

/* ------------------------------------------------------------------------- */
/* Send and receive cases mixed: a select-driven relay                       */
/* ------------------------------------------------------------------------- */

#define RELAY_N 5000

typedef struct {
    goro_chan *in, *out;
    goro_waitgroup wg;
    long producer_bad, consumer_bad, order_bad, received;
    long relay_bad;
    long chose_send, chose_recv;
    int make_rc;
} relay_state;

static void relay_producer(void *arg)
{
    relay_state *s = arg;
    for (int i = 1; i <= RELAY_N; i++)
        if (goro_chan_send(s->in, &i) != 0)
            s->producer_bad++;
    goro_waitgroup_done(&s->wg);
}

static void relay_consumer(void *arg)
{
    relay_state *s = arg;
    for (int i = 1; i <= RELAY_N; i++) {
        int v = 0;
        bool ok = false;
        if (goro_chan_recv(s->out, &v, &ok) != 0 || !ok)
            s->consumer_bad++;
        else if (v != i)
            s->order_bad++;
        else
            s->received++;
        if (i % 101 == 0)
            goro_sleep(MS / 10);
    }
    goro_waitgroup_done(&s->wg);
}

static void relay_main(void *arg)
{
    relay_state *s = arg;
    if ((s->make_rc = goro_chan_make(&s->in, sizeof(int), 0)) ||
        (s->make_rc = goro_chan_make(&s->out, sizeof(int), 0)))
        return;
    goro_waitgroup_add(&s->wg, 2);
    goro_go(relay_producer, s);
    goro_go(relay_consumer, s);
    int *q = malloc(sizeof(int) * RELAY_N);
    size_t head = 0, tail = 0;
    int got_in = 0, sent_out = 0;
    while (sent_out < RELAY_N) {
        goro_select_case cs[2];
        size_t n = 0;
        int incoming = 0;
        int idx_recv = -1, idx_send = -1;
        if (got_in < RELAY_N) {
            idx_recv = (int)n;
            cs[n++] = rcase(s->in, &incoming);
        }
        if (head < tail) {
            idx_send = (int)n;
            cs[n++] = scase(s->out, &q[head]);
        }
        int rc = goro_select(cs, n, 0, GORO_NO_DEADLINE);
        if (rc < 0 || !cs[rc].ok) {
            s->relay_bad++;
            break;
        }
        if (rc == idx_recv) {
            q[tail++] = incoming;
            got_in++;
            s->chose_recv++;
        } else if (rc == idx_send) {
            head++;
            sent_out++;
            s->chose_send++;
        } else {
            s->relay_bad++;
            break;
        }
    }
    free(q);
    goro_waitgroup_wait(&s->wg);
    goro_chan_release(s->in);
    goro_chan_release(s->out);
}

static void test_mixed_send_recv(void **st)
{
    (void)st;
    relay_state s;
    memset(&s, 0, sizeof s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("select relay", relay_main, &s, &o, 60), 0);
    assert_rc(s.make_rc, 0);
    assert_int_equal(s.relay_bad, 0);
    assert_int_equal(s.producer_bad, 0);
    assert_int_equal(s.consumer_bad, 0);
    assert_int_equal(s.order_bad, 0);
    assert_int_equal(s.received, RELAY_N);
    assert_int_equal(s.chose_recv, RELAY_N);
    assert_int_equal(s.chose_send, RELAY_N);
}

/* ------------------------------------------------------------------------- */
/* Closed channels                                                            */
/* ------------------------------------------------------------------------- */

typedef struct {
    int rc[8];
    bool ok[8];
    int64_t val[8];
    size_t len[2];
    goro_chan *late_closed[2];
    goro_waitgroup wg;
    int make_rc;
} cl_state;

static void cl_closer(void *arg)
{
    cl_state *s = arg;
    goro_sleep(20 * MS);
    goro_chan_close(s->late_closed[0]);
    goro_sleep(20 * MS);
    goro_chan_close(s->late_closed[1]);
    goro_waitgroup_done(&s->wg);
}

static void cl_main(void *arg)
{
    cl_state *s = arg;
    goro_chan *closed_empty, *open_empty, *closed_buf;
    if ((s->make_rc = goro_chan_make(&closed_empty, sizeof(int64_t), 0)) ||
        (s->make_rc = goro_chan_make(&open_empty, sizeof(int64_t), 0)) ||
        (s->make_rc = goro_chan_make(&closed_buf, sizeof(int64_t), 2)))
        return;
    int64_t x = 5;
    goro_chan_send(closed_buf, &x);
    goro_chan_close(closed_empty);
    goro_chan_close(closed_buf);

    /* receive case on a closed, drained channel: ok = false, elem zeroed */
    int64_t a = -1, b = -1;
    goro_select_case c1[2] = {rcase(open_empty, &a), rcase(closed_empty, &b)};
    c1[1].ok = true;
    s->rc[0] = goro_select(c1, 2, 0, GORO_NO_DEADLINE);
    s->ok[0] = c1[1].ok;
    s->val[0] = b;
    s->val[1] = a;

    /* closed but buffered: the value comes first, then ok = false */
    b = -1;
    goro_select_case c2[1] = {rcase(closed_buf, &b)};
    s->rc[1] = goro_select(c2, 1, 0, GORO_NO_DEADLINE);
    s->ok[1] = c2[0].ok;
    s->val[2] = b;
    b = -1;
    c2[0].ok = true;
    s->rc[2] = goro_select(c2, 1, GORO_SELECT_NONBLOCK, GORO_NO_DEADLINE);
    s->ok[2] = c2[0].ok;
    s->val[3] = b;

    /* send case on a closed channel: ready, returns its index, ok = false */
    int64_t out = 11;
    goro_select_case c3[2] = {rcase(open_empty, &a), scase(closed_empty, &out)};
    c3[1].ok = true;
    s->rc[3] = goro_select(c3, 2, 0, GORO_NO_DEADLINE);
    s->ok[3] = c3[1].ok;

    /* channels closed while the select waits */
    goro_chan *full;
    if ((s->make_rc = goro_chan_make(&s->late_closed[0], sizeof(int64_t), 1)) ||
        (s->make_rc = goro_chan_make(&s->late_closed[1], sizeof(int64_t), 0)))
        return;
    full = s->late_closed[0];
    goro_chan_send(full, &x);
    goro_waitgroup_add(&s->wg, 1);
    goro_go(cl_closer, s);
    goro_select_case c4[2] = {scase(full, &out), rcase(open_empty, &a)};
    c4[0].ok = true;
    s->rc[4] = goro_select(c4, 2, 0, goro_deadline_after(gt_slow(10 * GORO_SECOND)));
    s->ok[4] = c4[0].ok;
    s->len[0] = goro_chan_len(full); /* nothing was sent */
    b = -1;
    goro_select_case c5[2] = {rcase(open_empty, &a), rcase(s->late_closed[1], &b)};
    c5[1].ok = true;
    s->rc[5] = goro_select(c5, 2, 0, goro_deadline_after(gt_slow(10 * GORO_SECOND)));
    s->ok[5] = c5[1].ok;
    s->val[4] = b;
    goro_waitgroup_wait(&s->wg);
    goro_chan_release(closed_empty);
    goro_chan_release(open_empty);
    goro_chan_release(closed_buf);
    goro_chan_release(s->late_closed[0]);
    goro_chan_release(s->late_closed[1]);
}

static void test_closed_channel_cases(void **st)
{
    (void)st;
    cl_state s;
    memset(&s, 0, sizeof s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("select closed", cl_main, &s, &o, 30), 0);
    assert_rc(s.make_rc, 0);
    assert_rc(s.rc[0], 1);
    assert_false(s.ok[0]);
    assert_int_equal(s.val[0], 0);
    assert_int_equal(s.val[1], -1);
    assert_rc(s.rc[1], 0);
    assert_true(s.ok[1]);
    assert_int_equal(s.val[2], 5);
    assert_rc(s.rc[2], 0);
    assert_false(s.ok[2]);
    assert_int_equal(s.val[3], 0);
    assert_rc(s.rc[3], 1); /* the index, not -EPIPE */
    assert_false(s.ok[3]);
    assert_rc(s.rc[4], 0);
    assert_false(s.ok[4]);
    assert_int_equal(s.len[0], 1);
    assert_rc(s.rc[5], 1);
    assert_false(s.ok[5]);
    assert_int_equal(s.val[4], 0);
}

/* ------------------------------------------------------------------------- */
/* Fairness                                                                   */
/* ------------------------------------------------------------------------- */

typedef struct {
    size_t rounds2, rounds3;
    long two_buf[2], two_closed[2], three[3];
    long bad;
    int make_rc;
} fair_state;

static void fair_main(void *arg)
{
    fair_state *s = arg;
    goro_chan *c[2];
    for (int i = 0; i < 2; i++)
        if ((s->make_rc = goro_chan_make(&c[i], sizeof(int), 1)) != 0)
            return;
    int v = 1;
    goro_chan_send(c[0], &v);
    goro_chan_send(c[1], &v);
    /* (a) two buffered channels kept ready by refilling the chosen one */
    int r[2];
    goro_select_case cs[2] = {rcase(c[0], &r[0]), rcase(c[1], &r[1])};
    for (size_t i = 0; i < s->rounds2; i++) {
        int rc = goro_select(cs, 2, 0, GORO_NO_DEADLINE);
        if (rc < 0 || rc > 1 || !cs[rc].ok) {
            s->bad++;
            break;
        }
        s->two_buf[rc]++;
        if (goro_chan_trysend(c[rc], &v) != 0) {
            s->bad++;
            break;
        }
    }
    /* (b) two closed channels: always ready */
    goro_chan_close(c[0]);
    goro_chan_close(c[1]);
    goro_chan_recv(c[0], NULL, NULL); /* drain the buffered values */
    goro_chan_recv(c[1], NULL, NULL);
    for (size_t i = 0; i < s->rounds2; i++) {
        int rc = goro_select(cs, 2, GORO_SELECT_NONBLOCK, GORO_NO_DEADLINE);
        if (rc < 0 || rc > 1 || cs[rc].ok) {
            s->bad++;
            break;
        }
        s->two_closed[rc]++;
    }
    /* (c) three cases of three kinds, all ready every round: a buffered
     * receive, a send with buffer space, a receive on a closed channel */
    goro_chan *rb, *sb;
    if ((s->make_rc = goro_chan_make(&rb, sizeof(int), 1)) ||
        (s->make_rc = goro_chan_make(&sb, sizeof(int), 1)))
        return;
    goro_chan_send(rb, &v);
    int rv, sv = 3, cv;
    goro_select_case c3[3] = {rcase(rb, &rv), scase(sb, &sv), rcase(c[0], &cv)};
    for (size_t i = 0; i < s->rounds3; i++) {
        int rc = goro_select(c3, 3, 0, GORO_NO_DEADLINE);
        if (rc < 0 || rc > 2) {
            s->bad++;
            break;
        }
        s->three[rc]++;
        int fix;
        if (rc == 0)
            fix = goro_chan_trysend(rb, &v);
        else if (rc == 1)
            fix = goro_chan_tryrecv(sb, NULL, NULL);
        else
            fix = 0;
        if (fix != 0) {
            s->bad++;
            break;
        }
    }
    goro_chan_release(c[0]);
    goro_chan_release(c[1]);
    goro_chan_release(rb);
    goro_chan_release(sb);
}

static void check_share(const char *what, long count, size_t total, double lo, double hi)
{
    double share = (double)count / (double)total;
    fprintf(stderr, "fairness %s: %.2f%%\n", what, share * 100);
    assert_true_msg(share >= lo && share <= hi, "%s chosen %.2f%% of %zu rounds "
                    "(expected %.0f%%..%.0f%%)", what, share * 100, total, lo * 100,
                    hi * 100);
}

static void test_fairness(void **st)
{
    (void)st;
    fair_state s;
    memset(&s, 0, sizeof s);
    s.rounds2 = gt_scale("select fairness rounds", 100000, 100000, 50000);
    s.rounds3 = gt_scale("select 3-case fairness rounds", 90000, 90000, 45000);
    assert_rc(gt_run("select fairness", fair_main, &s, NULL, 120), 0);
    assert_rc(s.make_rc, 0);
    assert_int_equal(s.bad, 0);
    assert_int_equal(s.two_buf[0] + s.two_buf[1], s.rounds2);
    assert_int_equal(s.two_closed[0] + s.two_closed[1], s.rounds2);
    assert_int_equal(s.three[0] + s.three[1] + s.three[2], s.rounds3);
    check_share("buffered case 0", s.two_buf[0], s.rounds2, 0.45, 0.55);
    check_share("buffered case 1", s.two_buf[1], s.rounds2, 0.45, 0.55);
    check_share("closed case 0", s.two_closed[0], s.rounds2, 0.45, 0.55);
    check_share("closed case 1", s.two_closed[1], s.rounds2, 0.45, 0.55);
    check_share("3-case recv", s.three[0], s.rounds3, 0.28, 0.39);
    check_share("3-case send", s.three[1], s.rounds3, 0.28, 0.39);
    check_share("3-case closed", s.three[2], s.rounds3, 0.28, 0.39);
}

/* ------------------------------------------------------------------------- */
/* A blocked select wakes when a channel becomes ready later                 */
/* ------------------------------------------------------------------------- */

typedef struct {
    goro_chan *a, *b, *u;
    goro_waitgroup wg;
    int rc[4];
    bool ok[4];
    int val[4];
    int64_t elapsed[4];
    int helper_rc[2];
    int helper_val;
    int make_rc;
} wl_state;

static void wl_helper(void *arg)
{
    wl_state *s = arg;
    goro_sleep(30 * MS);
    int v = 1234;
    s->helper_rc[0] = goro_chan_send(s->b, &v);
    goro_sleep(30 * MS);
    s->helper_val = -1;
    s->helper_rc[1] = goro_chan_recv(s->u, &s->helper_val, NULL);
    goro_sleep(30 * MS);
    v = 777;
    goro_chan_send(s->a, &v);
    goro_waitgroup_done(&s->wg);
}

static void wl_main(void *arg)
{
    wl_state *s = arg;
    if ((s->make_rc = goro_chan_make(&s->a, sizeof(int), 0)) ||
        (s->make_rc = goro_chan_make(&s->b, sizeof(int), 0)) ||
        (s->make_rc = goro_chan_make(&s->u, sizeof(int), 0)))
        return;
    goro_waitgroup_add(&s->wg, 1);
    goro_go(wl_helper, s);
    int va = -1, vb = -1;
    goro_select_case c1[2] = {rcase(s->a, &va), rcase(s->b, &vb)};
    int64_t t0 = goro_now();
    s->rc[0] = goro_select(c1, 2, 0, GORO_NO_DEADLINE);
    s->elapsed[0] = goro_now() - t0;
    s->ok[0] = s->rc[0] == 1 && c1[1].ok;
    s->val[0] = vb;
    /* a send case wakes when a receiver arrives */
    int out = 4321;
    goro_select_case c2[2] = {rcase(s->a, &va), scase(s->u, &out)};
    s->rc[1] = goro_select(c2, 2, 0, GORO_NO_DEADLINE);
    s->ok[1] = s->rc[1] == 1 && c2[1].ok;
    /* a deadline far away does not stop an earlier wake-up */
    va = -1;
    goro_select_case c3[1] = {rcase(s->a, &va)};
    t0 = goro_now();
    s->rc[2] = goro_select(c3, 1, 0, goro_deadline_after(gt_slow(5 * GORO_SECOND)));
    s->elapsed[2] = goro_now() - t0;
    s->ok[2] = c3[0].ok;
    s->val[2] = va;
    goro_waitgroup_wait(&s->wg);
    goro_chan_release(s->a);
    goro_chan_release(s->b);
    goro_chan_release(s->u);
}

static void test_wakes_when_ready_later(void **st)
{
    (void)st;
    wl_state s;
    memset(&s, 0, sizeof s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("select wakes later", wl_main, &s, &o, 30), 0);
    assert_rc(s.make_rc, 0);
    assert_rc(s.rc[0], 1);
    assert_true(s.ok[0]);
    assert_int_equal(s.val[0], 1234);
    assert_true(s.elapsed[0] >= 20 * MS); /* it really waited for the sender */
    assert_rc(s.helper_rc[0], 0);
    assert_rc(s.rc[1], 1);
    assert_true(s.ok[1]);
    assert_rc(s.helper_rc[1], 0);
    assert_int_equal(s.helper_val, 4321);
    assert_rc(s.rc[2], 0);
    assert_true(s.ok[2]);
    assert_int_equal(s.val[2], 777);
    assert_true(s.elapsed[2] < gt_slow(2 * GORO_SECOND));
}

/* ------------------------------------------------------------------------- */
/* The same channel in two cases                                             */
/* ------------------------------------------------------------------------- */

#define SAME_ROUNDS 4000

typedef struct {
    long idx_count[2];
    long bad;
    int rc[6];
    int make_rc;
} same_state;

static void same_main(void *arg)
{
    same_state *s = arg;
    goro_chan *c, *u, *one;
    if ((s->make_rc = goro_chan_make(&c, sizeof(int), 4)) ||
        (s->make_rc = goro_chan_make(&u, sizeof(int), 0)) ||
        (s->make_rc = goro_chan_make(&one, sizeof(int), 1)))
        return;
    int v0, v1;
    goro_select_case cs[2] = {rcase(c, &v0), rcase(c, &v1)};
    for (int i = 0; i < SAME_ROUNDS; i++) {
        goro_chan_send(c, &i);
        v0 = v1 = -1;
        int rc = goro_select(cs, 2, 0, GORO_NO_DEADLINE);
        if (rc < 0 || rc > 1 || !cs[rc].ok || (rc == 0 ? v0 : v1) != i ||
            (rc == 0 ? v1 : v0) != -1) {
            s->bad++;
            break;
        }
        s->idx_count[rc]++;
    }
    s->rc[0] = (int)goro_chan_len(c);
    /* a send and a receive case on the same unbuffered channel do not pair
     * with each other */
    int x = 1, y = -1;
    goro_select_case su[2] = {scase(u, &x), rcase(u, &y)};
    s->rc[1] = goro_select(su, 2, GORO_SELECT_NONBLOCK, GORO_NO_DEADLINE);
    s->rc[2] = goro_select(su, 2, 0, goro_deadline_after(20 * MS));
    /* with a 1-slot buffer: empty -> only the send is ready; full -> only the
     * receive is ready */
    goro_select_case so[2] = {scase(one, &x), rcase(one, &y)};
    s->rc[3] = goro_select(so, 2, 0, GORO_NO_DEADLINE);
    s->rc[4] = goro_select(so, 2, 0, GORO_NO_DEADLINE);
    s->rc[5] = y;
    goro_chan_release(c);
    goro_chan_release(u);
    goro_chan_release(one);
}

static void test_same_channel_two_cases(void **st)
{
    (void)st;
    same_state s;
    memset(&s, 0, sizeof s);
    assert_rc(gt_run("select same channel", same_main, &s, NULL, 30), 0);
    assert_rc(s.make_rc, 0);
    assert_int_equal(s.bad, 0);
    assert_int_equal(s.idx_count[0] + s.idx_count[1], SAME_ROUNDS);
    /* both cases are ready every round; each should be picked often */
    assert_true_msg(s.idx_count[0] > SAME_ROUNDS * 4 / 10 &&
                    s.idx_count[1] > SAME_ROUNDS * 4 / 10,
                    "case 0 chosen %ld times, case 1 %ld times", s.idx_count[0],
                    s.idx_count[1]);
    assert_int_equal(s.rc[0], 0);
    assert_rc(s.rc[1], -EAGAIN);
    assert_rc(s.rc[2], -ETIMEDOUT);
    assert_rc(s.rc[3], 0);
    assert_rc(s.rc[4], 1);
    assert_int_equal(s.rc[5], 1);
}

/* ------------------------------------------------------------------------- */
/* Zero cases                                                                 */
/* ------------------------------------------------------------------------- */

typedef struct {
    int rc[4];
    int64_t late[4];
} zc_state;

static void zc_main(void *arg)
{
    zc_state *s = arg;
    int64_t d = goro_now() + 30 * MS;
    s->rc[0] = goro_select(NULL, 0, 0, d);
    s->late[0] = goro_now() - d;
    goro_select_case dummy[1];
    memset(dummy, 0, sizeof dummy);
    d = goro_now() + 30 * MS;
    s->rc[1] = goro_select(dummy, 0, 0, d);
    s->late[1] = goro_now() - d;
    s->rc[2] = goro_select(NULL, 0, GORO_SELECT_NONBLOCK, GORO_NO_DEADLINE);
    s->rc[3] = goro_select(NULL, 0, 0, goro_now() - 1);
}

static void test_zero_cases(void **st)
{
    (void)st;
    zc_state s;
    memset(&s, 0, sizeof s);
    assert_rc(gt_run("select zero cases", zc_main, &s, NULL, 30), 0);
    assert_rc(s.rc[0], -ETIMEDOUT);
    assert_rc(s.rc[1], -ETIMEDOUT);
    assert_true(s.late[0] >= 0);
    assert_true(s.late[1] >= 0);
    assert_true(s.late[0] < gt_slow(GORO_SECOND));
    assert_rc(s.rc[2], -EAGAIN);
    assert_rc(s.rc[3], -ETIMEDOUT);
}

/* ------------------------------------------------------------------------- */
/* Many goroutines selecting on shared channels                               */
/* ------------------------------------------------------------------------- */

#define MS_K 4

typedef struct {
    goro_chan *ch[MS_K];
    goro_waitgroup prod_wg, cons_wg;
    size_t producers, consumers, per_producer;
    atomic_uchar *seen;
    atomic_long received, bad_send, bad_recv, dup;
    atomic_int next_id;
    int make_rc;
    int close_rc[MS_K];
} many_state;

static void many_producer(void *arg)
{
    many_state *s = arg;
    int p = atomic_fetch_add(&s->next_id, 1);
    gt_rng r;
    gt_rng_seed(&r, (uint64_t)p + 1);
    for (size_t i = 0; i < s->per_producer; i++) {
        uint32_t id = (uint32_t)(p * s->per_producer + i);
        uint32_t a = gt_rng_below(&r, MS_K), b = gt_rng_below(&r, MS_K);
        goro_select_case cs[2] = {scase(s->ch[a], &id), scase(s->ch[b], &id)};
        int rc = goro_select(cs, 2, 0, GORO_NO_DEADLINE);
        if (rc < 0 || !cs[rc].ok)
            atomic_fetch_add(&s->bad_send, 1);
    }
    goro_waitgroup_done(&s->prod_wg);
}

static void many_consumer(void *arg)
{
    many_state *s = arg;
    goro_chan *open[MS_K];
    size_t nopen = MS_K;
    memcpy(open, s->ch, sizeof open);
    uint32_t vals[MS_K];
    while (nopen > 0) {
        goro_select_case cs[MS_K];
        for (size_t i = 0; i < nopen; i++)
            cs[i] = rcase(open[i], &vals[i]);
        int rc = goro_select(cs, nopen, 0, GORO_NO_DEADLINE);
        if (rc < 0) {
            atomic_fetch_add(&s->bad_recv, 1);
            break;
        }
        if (!cs[rc].ok) { /* closed and drained: drop the case */
            open[rc] = open[--nopen];
            continue;
        }
        uint32_t id = vals[rc];
        if (id >= s->producers * s->per_producer) {
            atomic_fetch_add(&s->bad_recv, 1);
            continue;
        }
        if (atomic_fetch_add(&s->seen[id], 1) != 0)
            atomic_fetch_add(&s->dup, 1);
        atomic_fetch_add(&s->received, 1);
    }
    goro_waitgroup_done(&s->cons_wg);
}

static void many_main(void *arg)
{
    many_state *s = arg;
    const size_t caps[MS_K] = {0, 1, 16, 0};
    for (int i = 0; i < MS_K; i++)
        if ((s->make_rc = goro_chan_make(&s->ch[i], sizeof(uint32_t), caps[i])) != 0)
            return;
    goro_waitgroup_add(&s->prod_wg, (int)s->producers);
    goro_waitgroup_add(&s->cons_wg, (int)s->consumers);
    for (size_t i = 0; i < s->consumers; i++)
        goro_go(many_consumer, s);
    for (size_t i = 0; i < s->producers; i++)
        goro_go(many_producer, s);
    goro_waitgroup_wait(&s->prod_wg);
    for (int i = 0; i < MS_K; i++)
        s->close_rc[i] = goro_chan_close(s->ch[i]);
    goro_waitgroup_wait(&s->cons_wg);
    for (int i = 0; i < MS_K; i++)
        goro_chan_release(s->ch[i]);
}

static void test_many_selectors(void **st)
{
    (void)st;
    many_state s;
    memset(&s, 0, sizeof s);
    s.producers = 16;
    s.consumers = 16;
    s.per_producer = gt_scale("select many-goroutines messages per producer", 4000, 2000, 1000);
    size_t total = s.producers * s.per_producer;
    s.seen = calloc(total, sizeof *s.seen);
    assert_non_null(s.seen);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("many selectors", many_main, &s, &o, 120), 0);
    assert_rc(s.make_rc, 0);
    for (int i = 0; i < MS_K; i++)
        assert_rc(s.close_rc[i], 0);
    assert_int_equal(atomic_load(&s.bad_send), 0);
    assert_int_equal(atomic_load(&s.bad_recv), 0);
    assert_int_equal(atomic_load(&s.dup), 0);
    size_t missing = 0, first_missing = 0;
    for (size_t i = 0; i < total; i++)
        if (atomic_load(&s.seen[i]) != 1 && missing++ == 0)
            first_missing = i;
    free(s.seen);
    assert_true_msg(missing == 0, "%zu of %zu messages lost (first id %zu)", missing,
                    total, first_missing);
    assert_int_equal(atomic_load(&s.received), total);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_picks_ready_case),
        cmocka_unit_test(test_nonblock_eagain),
        cmocka_unit_test(test_deadline_timeout),
        cmocka_unit_test(test_mixed_send_recv),
        cmocka_unit_test(test_closed_channel_cases),
        cmocka_unit_test(test_fairness),
        cmocka_unit_test(test_wakes_when_ready_later),
        cmocka_unit_test(test_same_channel_two_cases),
        cmocka_unit_test(test_zero_cases),
        cmocka_unit_test(test_many_selectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
