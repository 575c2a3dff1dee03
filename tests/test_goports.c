/*
 * test_goports.c - C ports of tests from Go's runtime/chan_test.go and
 * select tests (TestSelfSelect, TestSelectStress, TestMultiConsumer,
 * TestSelectFairness, TestChanSendSelectBarrier-like close checks), written
 * from their descriptions: they pin down Go semantics goro promises to
 * keep (no self-communication in select, nil channel cases switching a
 * case off, FIFO per channel, uniform choice among ready cases).
 *
 * Goroutines record; the test functions assert.
 */
#define _GNU_SOURCE
#include "util.h"

#define MS GORO_MILLISECOND

/* ---- TestSelfSelect: a select never pairs its send with its own recv --- */

typedef struct {
    goro_chan *c;
    atomic_long self, errs;
    goro_waitgroup wg;
    long iters;
} self_state;

static void self_worker(void *arg)
{
    self_state *s = arg;
    long me = (long)goro_id();
    for (long i = 0; i < s->iters; i++) {
        long out = me, in = 0;
        goro_select_case cs[2];
        bool send_first = (i + me) & 1;
        cs[send_first ? 0 : 1] = (goro_select_case){.ch = s->c, .op = GORO_SELECT_SEND, .elem = &out};
        cs[send_first ? 1 : 0] = (goro_select_case){.ch = s->c, .op = GORO_SELECT_RECV, .elem = &in};
        int rc = goro_select(cs, 2, 0, goro_deadline_after(gt_slow(5 * GORO_SECOND)));
        if (rc < 0) {
            atomic_fetch_add(&s->errs, 1);
            break;
        }
        if (cs[rc].op == GORO_SELECT_RECV && in == me)
            atomic_fetch_add(&s->self, 1);
    }
    goro_waitgroup_done(&s->wg);
}

static void self_main(void *arg)
{
    self_state *s = arg;
    goro_waitgroup_add(&s->wg, 2);
    goro_go(self_worker, s);
    goro_go(self_worker, s);
    gt_wg_wait(&s->wg, 60);
}

static void test_self_select(void **st)
{
    (void)st;
    for (size_t cap = 0; cap <= 1; cap++) {
        for (int procs = 1; procs <= 2; procs++) {
            self_state s;
            memset(&s, 0, sizeof s);
            s.iters = (long)gt_scale("self-select iterations", 20000, 5000, 3000);
            goro_chan_make(&s.c, sizeof(long), cap);
            goro_options o = gt_opts(procs);
            assert_rc(gt_run("self select", self_main, &s, &o, 90), 0);
            /* With cap 1 a goroutine may receive its own buffered value
             * later, as in Go; only the unbuffered case forbids it. */
            if (cap == 0)
                assert_int_equal(atomic_load(&s.self), 0);
            assert_int_equal(atomic_load(&s.errs), 0);
            goro_chan_release(s.c);
        }
    }
}

/* ---- TestSelectStress: selects whose cases are switched off with NULL -- */

#define SS_N 4

typedef struct {
    goro_chan *c[SS_N];
    long n;
    atomic_long sent[SS_N], recvd[SS_N], errs;
    goro_waitgroup wg;
} ss_state;

/* One goroutine sends n values on each channel through a select, turning a
 * case off (NULL) once its channel got its n values. */
static void ss_sender(void *arg)
{
    ss_state *s = arg;
    long cnt[SS_N] = {0};
    goro_chan *cs_ch[SS_N];
    for (int i = 0; i < SS_N; i++)
        cs_ch[i] = s->c[i];
    long left = SS_N;
    while (left > 0) {
        long v[SS_N];
        goro_select_case cs[SS_N];
        for (int i = 0; i < SS_N; i++) {
            v[i] = cnt[i];
            cs[i] = (goro_select_case){.ch = cs_ch[i], .op = GORO_SELECT_SEND, .elem = &v[i]};
        }
        int rc = goro_select(cs, SS_N, 0, goro_deadline_after(gt_slow(10 * GORO_SECOND)));
        if (rc < 0 || !cs[rc].ok) {
            atomic_fetch_add(&s->errs, 1);
            break;
        }
        atomic_fetch_add(&s->sent[rc], 1);
        if (++cnt[rc] == s->n) {
            cs_ch[rc] = NULL;
            left--;
        }
    }
    goro_waitgroup_done(&s->wg);
}

/* One goroutine receives n values from each channel, in order per channel. */
static void ss_receiver(void *arg)
{
    ss_state *s = arg;
    long cnt[SS_N] = {0};
    goro_chan *cs_ch[SS_N];
    for (int i = 0; i < SS_N; i++)
        cs_ch[i] = s->c[i];
    long left = SS_N;
    while (left > 0) {
        long v[SS_N];
        goro_select_case cs[SS_N];
        for (int i = 0; i < SS_N; i++)
            cs[i] = (goro_select_case){.ch = cs_ch[i], .op = GORO_SELECT_RECV, .elem = &v[i]};
        int rc = goro_select(cs, SS_N, 0, goro_deadline_after(gt_slow(10 * GORO_SECOND)));
        if (rc < 0 || !cs[rc].ok || v[rc] != cnt[rc]) {
            atomic_fetch_add(&s->errs, 1);
            break;
        }
        atomic_fetch_add(&s->recvd[rc], 1);
        if (++cnt[rc] == s->n) {
            cs_ch[rc] = NULL;
            left--;
        }
    }
    goro_waitgroup_done(&s->wg);
}

static void ss_main(void *arg)
{
    ss_state *s = arg;
    goro_waitgroup_add(&s->wg, 2);
    goro_go(ss_sender, s);
    goro_go(ss_receiver, s);
    gt_wg_wait(&s->wg, 120);
}

static void test_select_stress(void **st)
{
    (void)st;
    for (size_t cap = 0; cap <= 2; cap += 2) {
        for (int procs = 1; procs <= 2; procs++) {
            ss_state s;
            memset(&s, 0, sizeof s);
            s.n = (long)gt_scale("select-stress values per channel", 20000, 5000, 2000);
            for (int i = 0; i < SS_N; i++)
                goro_chan_make(&s.c[i], sizeof(long), cap);
            goro_options o = gt_opts(procs);
            assert_rc(gt_run("select stress", ss_main, &s, &o, 150), 0);
            assert_int_equal(atomic_load(&s.errs), 0);
            for (int i = 0; i < SS_N; i++) {
                assert_int_equal(atomic_load(&s.sent[i]), s.n);
                assert_int_equal(atomic_load(&s.recvd[i]), s.n);
                goro_chan_release(s.c[i]);
            }
        }
    }
}

/* ---- TestMultiConsumer: every value received exactly once ------------- */

#define MC_PROD 5
#define MC_CONS 10

typedef struct {
    goro_chan *q, *r;
    long per;
    goro_waitgroup pwg, cwg;
    atomic_long errs;
} mc_state;

static void mc_producer(void *arg)
{
    mc_state *s = arg;
    long base = (long)goro_id() * 1000000;
    for (long i = 0; i < s->per; i++) {
        long v = base + i;
        if (goro_chan_send(s->q, &v))
            atomic_fetch_add(&s->errs, 1);
    }
    goro_waitgroup_done(&s->pwg);
}

static void mc_consumer(void *arg)
{
    mc_state *s = arg;
    long sum = 0, n = 0, v;
    bool ok;
    while (goro_chan_recv(s->q, &v, &ok) == 0 && ok) {
        sum += v;
        n++;
    }
    long res[2] = {n, sum};
    goro_chan_send(s->r, res);
    goro_waitgroup_done(&s->cwg);
}

static void mc_main(void *arg)
{
    long *out = arg; /* out[0] = n, out[1] = sum received, out[2] = sum sent, out[3] = errs */
    mc_state s;
    memset(&s, 0, sizeof s);
    s.per = out[0];
    goro_chan_make(&s.q, sizeof(long), 4);
    goro_chan_make(&s.r, 2 * sizeof(long), MC_CONS);
    goro_waitgroup_add(&s.pwg, MC_PROD);
    goro_waitgroup_add(&s.cwg, MC_CONS);
    uint64_t ids[MC_PROD];
    for (int i = 0; i < MC_CONS; i++)
        goro_go(mc_consumer, &s);
    for (int i = 0; i < MC_PROD; i++)
        goro_spawn(mc_producer, &s, NULL, &ids[i]);
    gt_wg_wait(&s.pwg, 60);
    goro_chan_close(s.q);
    gt_wg_wait(&s.cwg, 60);
    long n = 0, sum = 0, res[2];
    while (goro_chan_tryrecv(s.r, res, NULL) == 0) {
        n += res[0];
        sum += res[1];
    }
    long want = 0;
    for (int i = 0; i < MC_PROD; i++)
        want += (long)ids[i] * 1000000 * s.per + s.per * (s.per - 1) / 2;
    out[0] = n;
    out[1] = sum;
    out[2] = want;
    out[3] = atomic_load(&s.errs);
    goro_chan_release(s.q);
    goro_chan_release(s.r);
}

static void test_multi_consumer(void **st)
{
    (void)st;
    for (int procs = 1; procs <= 2; procs++) {
        long per = (long)gt_scale("multi-consumer values per producer", 20000, 5000, 2000);
        long out[4] = {per, 0, 0, 0};
        goro_options o = gt_opts(procs);
        assert_rc(gt_run("multi consumer", mc_main, out, &o, 90), 0);
        assert_int_equal(out[0], MC_PROD * per);
        assert_int_equal(out[1], out[2]);
        assert_int_equal(out[3], 0);
    }
}

/* ---- TestSelectFairness: uniform choice among ready cases -------------- */

static void fair_main(void *arg)
{
    long *cnt = arg;
    goro_chan *c[4];
    for (int i = 0; i < 4; i++) {
        goro_chan_make(&c[i], sizeof(int), 1);
    }
    int one = 1, v;
    for (int k = 0; k < 4000; k++) {
        for (int i = 0; i < 4; i++)
            goro_chan_trysend(c[i], &one); /* all four ready */
        goro_select_case cs[4];
        for (int i = 0; i < 4; i++)
            cs[i] = (goro_select_case){.ch = c[i], .op = GORO_SELECT_RECV, .elem = &v};
        int rc = goro_select(cs, 4, GORO_SELECT_NONBLOCK, GORO_NO_DEADLINE);
        if (rc >= 0)
            cnt[rc]++;
        else
            cnt[4]++;
    }
    for (int i = 0; i < 4; i++)
        goro_chan_release(c[i]);
}

static void test_select_fairness(void **st)
{
    (void)st;
    long cnt[5] = {0};
    goro_options o = gt_opts(1);
    assert_rc(gt_run("select fairness", fair_main, cnt, &o, 30), 0);
    assert_int_equal(cnt[4], 0);
    /* 1000 expected per case; sigma ~27: +-250 is > 9 sigma. */
    for (int i = 0; i < 4; i++)
        assert_true_msg(cnt[i] > 750 && cnt[i] < 1250, "case %d chosen %ld of 4000 times", i,
                        cnt[i]);
}

/* ---- close semantics (Go's TestChan, closed part) ---------------------- */

static void close_main(void *arg)
{
    long *bad = arg;
    for (size_t cap = 0; cap < 4; cap++) {
        goro_chan *c;
        goro_chan_make(&c, sizeof(int), cap);
        for (int i = 0; i < (int)cap; i++)
            goro_chan_send(c, &i);
        goro_chan_close(c);
        for (int i = 0; i < (int)cap; i++) {
            int v = -1;
            bool ok = false;
            if (goro_chan_recv(c, &v, &ok) || !ok || v != i)
                (*bad)++;
        }
        for (int k = 0; k < 3; k++) {
            int v = 7;
            bool ok = true;
            if (goro_chan_recv(c, &v, &ok) || ok || v != 0)
                (*bad)++;
        }
        int v = 1;
        if (goro_chan_send(c, &v) != -EPIPE)
            (*bad)++;
        if (goro_chan_close(c) != -EALREADY)
            (*bad)++;
        goro_select_case cs[1] = {{.ch = c, .op = GORO_SELECT_RECV, .elem = &v}};
        if (goro_select(cs, 1, GORO_SELECT_NONBLOCK, GORO_NO_DEADLINE) != 0 || cs[0].ok)
            (*bad)++;
        goro_chan_release(c);
    }
}

static void test_closed_channel(void **st)
{
    (void)st;
    long bad = 0;
    goro_options o = gt_opts(1);
    assert_rc(gt_run("closed channel", close_main, &bad, &o, 30), 0);
    assert_int_equal(bad, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_self_select),
        cmocka_unit_test(test_select_stress),
        cmocka_unit_test(test_multi_consumer),
        cmocka_unit_test(test_select_fairness),
        cmocka_unit_test(test_closed_channel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
