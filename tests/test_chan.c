/*
 * test_chan.c - channels: rendezvous, FIFO, len/cap, close semantics, try
 * variants, deadlines, reference counting, zero-size and large elements.
 */
#define _GNU_SOURCE
#include "util.h"

#define MS GORO_MILLISECOND

/* ------------------------------------------------------------------------- */
/* Unbuffered rendezvous                                                      */
/* ------------------------------------------------------------------------- */

typedef struct {
    int n;
    goro_chan *ch;
    goro_waitgroup wg;
    atomic_long completed; /* index of the last send that returned */
    atomic_long seq;       /* shared sequence counter */
    /* recorded by the sender (read after goro_run) */
    long send_bad;
    long s_before[16], s_after[16];
    /* recorded by the receiver */
    long r_before[16];
    long early_completion; /* send i returned before receive i started */
    long recv_bad, order_bad;
    int make_rc;
} rdv_state;

static void rdv_sender(void *arg)
{
    rdv_state *s = arg;
    for (int i = 0; i < s->n; i++) {
        int v = i;
        if (i < 16)
            s->s_before[i] = atomic_fetch_add(&s->seq, 1);
        int rc = goro_chan_send(s->ch, &v);
        if (i < 16)
            s->s_after[i] = atomic_fetch_add(&s->seq, 1);
        if (rc != 0)
            s->send_bad++;
        atomic_store(&s->completed, i);
    }
    goro_waitgroup_done(&s->wg);
}

static void rdv_main(void *arg)
{
    rdv_state *s = arg;
    s->make_rc = goro_chan_make(&s->ch, sizeof(int), 0);
    if (s->make_rc)
        return;
    atomic_store(&s->completed, -1);
    goro_waitgroup_add(&s->wg, 1);
    goro_go(rdv_sender, s);
    for (int i = 0; i < s->n; i++) {
        /* Give the sender time to reach its send (and block) first. */
        if (i < 16 || i % 50 == 0)
            goro_sleep(2 * MS);
        if (i < 16)
            s->r_before[i] = atomic_fetch_add(&s->seq, 1);
        if (atomic_load(&s->completed) >= i)
            s->early_completion++;
        int v = -1;
        bool ok = false;
        int rc = goro_chan_recv(s->ch, &v, &ok);
        if (rc != 0 || !ok)
            s->recv_bad++;
        if (v != i)
            s->order_bad++;
    }
    goro_waitgroup_wait(&s->wg);
    goro_chan_release(s->ch);
}

static void run_rendezvous(int procs)
{
    rdv_state s;
    memset(&s, 0, sizeof s);
    s.n = 2000;
    goro_options o = gt_opts(procs);
    assert_rc(gt_run("unbuffered rendezvous", rdv_main, &s, &o, 60), 0);
    assert_rc(s.make_rc, 0);
    assert_int_equal(s.send_bad, 0);
    assert_int_equal(s.recv_bad, 0);
    assert_int_equal(s.order_bad, 0);
    assert_true_msg(s.early_completion == 0,
                    "%ld unbuffered sends completed before their receive started",
                    s.early_completion);
    for (int i = 0; i < 16; i++) {
        /* sender starts its send, then the receiver starts receiving, then
         * (and only then) the send completes */
        assert_true_msg(s.s_before[i] < s.r_before[i] && s.r_before[i] < s.s_after[i],
                        "round %d: send began at seq %ld, receive began at %ld, "
                        "send completed at %ld", i, s.s_before[i], s.r_before[i],
                        s.s_after[i]);
    }
}

static void test_unbuffered_rendezvous_procs1(void **st)
{
    (void)st;
    run_rendezvous(1);
}

static void test_unbuffered_rendezvous_procs2(void **st)
{
    (void)st;
    run_rendezvous(2);
}

/* ------------------------------------------------------------------------- */
/* Buffered FIFO                                                              */
/* ------------------------------------------------------------------------- */

#define FIFO_PRODUCERS 4
#define FIFO_PER_PRODUCER 5000

typedef struct {
    goro_chan *ch;
    goro_waitgroup wg;
    int fill_bad, fill_full_rc, fill_order_bad;
    size_t fill_len;
    atomic_long send_bad;
    atomic_int next_producer;
    long recv_bad, order_bad, total;
    int next[FIFO_PRODUCERS];
} fifo_state;

static void fifo_producer(void *arg)
{
    fifo_state *s = arg;
    int p = atomic_fetch_add(&s->next_producer, 1);
    for (int i = 0; i < FIFO_PER_PRODUCER; i++) {
        uint32_t v = ((uint32_t)p << 24) | (uint32_t)i;
        if (goro_chan_send(s->ch, &v) != 0)
            atomic_fetch_add(&s->send_bad, 1);
        if (i % 97 == 0)
            goro_yield();
    }
    goro_waitgroup_done(&s->wg);
}

static void fifo_main(void *arg)
{
    fifo_state *s = arg;
    goro_chan *c;
    if (goro_chan_make(&c, sizeof(uint32_t), 16) != 0) {
        s->fill_bad = -1;
        return;
    }
    /* single goroutine: fill to capacity, then drain in order */
    for (uint32_t i = 0; i < 16; i++)
        if (goro_chan_trysend(c, &i) != 0)
            s->fill_bad++;
    uint32_t extra = 99;
    s->fill_full_rc = goro_chan_trysend(c, &extra);
    s->fill_len = goro_chan_len(c);
    for (uint32_t i = 0; i < 16; i++) {
        uint32_t v = 12345;
        bool ok = false;
        if (goro_chan_recv(c, &v, &ok) != 0 || !ok || v != i)
            s->fill_order_bad++;
    }
    goro_chan_release(c);

    /* several producers: each producer's values arrive in its order */
    if (goro_chan_make(&s->ch, sizeof(uint32_t), 16) != 0) {
        s->fill_bad = -1;
        return;
    }
    goro_waitgroup_add(&s->wg, FIFO_PRODUCERS);
    for (int p = 0; p < FIFO_PRODUCERS; p++)
        goro_go(fifo_producer, s);
    for (long k = 0; k < (long)FIFO_PRODUCERS * FIFO_PER_PRODUCER; k++) {
        uint32_t v;
        bool ok = false;
        if (goro_chan_recv(s->ch, &v, &ok) != 0 || !ok) {
            s->recv_bad++;
            continue;
        }
        uint32_t p = v >> 24, i = v & 0xFFFFFF;
        if (p >= FIFO_PRODUCERS || (int)i != s->next[p])
            s->order_bad++;
        else
            s->next[p]++;
        s->total++;
    }
    goro_waitgroup_wait(&s->wg);
    goro_chan_release(s->ch);
}

static void test_buffered_fifo(void **st)
{
    (void)st;
    fifo_state s;
    memset(&s, 0, sizeof s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("buffered fifo", fifo_main, &s, &o, 60), 0);
    assert_int_equal(s.fill_bad, 0);
    assert_rc(s.fill_full_rc, -EAGAIN);
    assert_int_equal(s.fill_len, 16);
    assert_int_equal(s.fill_order_bad, 0);
    assert_int_equal(atomic_load(&s.send_bad), 0);
    assert_int_equal(s.recv_bad, 0);
    assert_int_equal(s.order_bad, 0);
    assert_int_equal(s.total, FIFO_PRODUCERS * FIFO_PER_PRODUCER);
    for (int p = 0; p < FIFO_PRODUCERS; p++)
        assert_int_equal(s.next[p], FIFO_PER_PRODUCER);
}

/* ------------------------------------------------------------------------- */
/* len / cap / elem_size                                                      */
/* ------------------------------------------------------------------------- */

typedef struct {
    int rc[4];
    size_t v[16];
} lce_state;

static void lce_main(void *arg)
{
    lce_state *s = arg;
    goro_chan *a = NULL, *b = NULL;
    s->rc[0] = goro_chan_make(&a, 8, 5);
    s->rc[1] = goro_chan_make(&b, 3, 0);
    if (s->rc[0] || s->rc[1])
        return;
    s->v[0] = goro_chan_len(a);
    s->v[1] = goro_chan_cap(a);
    s->v[2] = goro_chan_elem_size(a);
    uint64_t x = 7;
    for (int i = 0; i < 3; i++)
        goro_chan_send(a, &x);
    s->v[3] = goro_chan_len(a);
    goro_chan_recv(a, &x, NULL);
    s->v[4] = goro_chan_len(a);
    s->v[5] = goro_chan_len(b);
    s->v[6] = goro_chan_cap(b);
    s->v[7] = goro_chan_elem_size(b);
    goro_chan_close(a);
    s->v[8] = goro_chan_len(a); /* buffered values survive close */
    s->v[9] = goro_chan_cap(a);
    goro_chan_recv(a, &x, NULL);
    goro_chan_recv(a, &x, NULL);
    s->v[10] = goro_chan_len(a);
    goro_chan_release(a);
    goro_chan_release(b);
}

static void test_len_cap_elem_size(void **st)
{
    (void)st;
    lce_state s;
    memset(&s, 0, sizeof s);
    assert_rc(gt_run("len/cap/elem_size", lce_main, &s, NULL, 30), 0);
    assert_rc(s.rc[0], 0);
    assert_rc(s.rc[1], 0);
    assert_int_equal(s.v[0], 0);
    assert_int_equal(s.v[1], 5);
    assert_int_equal(s.v[2], 8);
    assert_int_equal(s.v[3], 3);
    assert_int_equal(s.v[4], 2);
    assert_int_equal(s.v[5], 0);
    assert_int_equal(s.v[6], 0);
    assert_int_equal(s.v[7], 3);
    assert_int_equal(s.v[8], 2);
    assert_int_equal(s.v[9], 5);
    assert_int_equal(s.v[10], 0);
}

/* ------------------------------------------------------------------------- */
/* Close wakes every blocked receiver / sender                                */
/* ------------------------------------------------------------------------- */

#define CW_N 8

typedef struct {
    goro_chan *ch;
    goro_waitgroup wg;
    atomic_long started;
    int rc[CW_N];
    bool ok[CW_N];
    uint64_t val[CW_N];
    int64_t returned_at[CW_N];
    atomic_int idx;
    int64_t closed_at;
    int close_rc, make_rc, wait_rc;
} cw_state;

static void cw_receiver(void *arg)
{
    cw_state *s = arg;
    int i = atomic_fetch_add(&s->idx, 1);
    uint64_t v = 0xA5A5A5A5A5A5A5A5ull;
    bool ok = true;
    atomic_fetch_add(&s->started, 1);
    s->rc[i] = goro_chan_recv(s->ch, &v, &ok);
    s->returned_at[i] = goro_now();
    s->ok[i] = ok;
    s->val[i] = v;
    goro_waitgroup_done(&s->wg);
}

static void cw_main(void *arg)
{
    cw_state *s = arg;
    if ((s->make_rc = goro_chan_make(&s->ch, sizeof(uint64_t), 0)) != 0)
        return;
    goro_waitgroup_add(&s->wg, CW_N);
    for (int i = 0; i < CW_N; i++)
        goro_go(cw_receiver, s);
    gt_wait_atomic_ge(&s->started, CW_N, 10 * GORO_SECOND);
    goro_sleep(30 * MS); /* let them all block */
    s->closed_at = goro_now();
    s->close_rc = goro_chan_close(s->ch);
    s->wait_rc = gt_wg_wait(&s->wg, 10);
    goro_chan_release(s->ch);
}

static void test_close_wakes_all_receivers(void **st)
{
    (void)st;
    cw_state s;
    memset(&s, 0, sizeof s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("close wakes receivers", cw_main, &s, &o, 30), 0);
    assert_rc(s.make_rc, 0);
    assert_rc(s.close_rc, 0);
    assert_true_msg(s.wait_rc == 0, "close did not wake every blocked receiver");
    for (int i = 0; i < CW_N; i++) {
        assert_rc(s.rc[i], 0);
        assert_false(s.ok[i]);
        assert_true_msg(s.val[i] == 0, "receiver %d: element not zeroed (0x%llx)",
                        i, (unsigned long long)s.val[i]);
        assert_true_msg(s.returned_at[i] >= s.closed_at,
                        "receiver %d returned %lld ns before the close", i,
                        (long long)(s.closed_at - s.returned_at[i]));
    }
}

#define CS_UNBUF 6
#define CS_FULL 4

typedef struct {
    goro_chan *unbuf, *full;
    goro_waitgroup wg;
    atomic_long started;
    atomic_int idx_u, idx_f;
    int rc_u[CS_UNBUF], rc_f[CS_FULL];
    int close_rc[2], make_rc, wait_rc;
    int drain_rc[4];
    bool drain_ok[4];
    int drain_val[4];
    int unbuf_recv_rc;
    bool unbuf_recv_ok;
} cs_state;

static void cs_sender_u(void *arg)
{
    cs_state *s = arg;
    int i = atomic_fetch_add(&s->idx_u, 1);
    int v = 1000 + i;
    atomic_fetch_add(&s->started, 1);
    s->rc_u[i] = goro_chan_send(s->unbuf, &v);
    goro_waitgroup_done(&s->wg);
}

static void cs_sender_f(void *arg)
{
    cs_state *s = arg;
    int i = atomic_fetch_add(&s->idx_f, 1);
    int v = 2000 + i;
    atomic_fetch_add(&s->started, 1);
    s->rc_f[i] = goro_chan_send(s->full, &v);
    goro_waitgroup_done(&s->wg);
}

static void cs_main(void *arg)
{
    cs_state *s = arg;
    if ((s->make_rc = goro_chan_make(&s->unbuf, sizeof(int), 0)) != 0)
        return;
    if ((s->make_rc = goro_chan_make(&s->full, sizeof(int), 2)) != 0)
        return;
    int a = 1, b = 2;
    goro_chan_send(s->full, &a);
    goro_chan_send(s->full, &b);
    goro_waitgroup_add(&s->wg, CS_UNBUF + CS_FULL);
    for (int i = 0; i < CS_UNBUF; i++)
        goro_go(cs_sender_u, s);
    for (int i = 0; i < CS_FULL; i++)
        goro_go(cs_sender_f, s);
    gt_wait_atomic_ge(&s->started, CS_UNBUF + CS_FULL, 10 * GORO_SECOND);
    goro_sleep(30 * MS);
    s->close_rc[0] = goro_chan_close(s->unbuf);
    s->close_rc[1] = goro_chan_close(s->full);
    if ((s->wait_rc = gt_wg_wait(&s->wg, 10)) != 0)
        return;
    /* the buffered values sent before close are still delivered; none of the
     * failed senders' values is */
    for (int i = 0; i < 4; i++) {
        s->drain_val[i] = -1;
        s->drain_rc[i] = goro_chan_recv(s->full, &s->drain_val[i], &s->drain_ok[i]);
    }
    int v = 5;
    s->unbuf_recv_ok = true;
    s->unbuf_recv_rc = goro_chan_recv(s->unbuf, &v, &s->unbuf_recv_ok);
    goro_chan_release(s->unbuf);
    goro_chan_release(s->full);
}

static void test_close_wakes_blocked_senders(void **st)
{
    (void)st;
    cs_state s;
    memset(&s, 0, sizeof s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("close wakes senders", cs_main, &s, &o, 30), 0);
    assert_rc(s.make_rc, 0);
    assert_rc(s.close_rc[0], 0);
    assert_rc(s.close_rc[1], 0);
    assert_true_msg(s.wait_rc == 0, "close did not wake every blocked sender");
    for (int i = 0; i < CS_UNBUF; i++)
        assert_rc(s.rc_u[i], -EPIPE);
    for (int i = 0; i < CS_FULL; i++)
        assert_rc(s.rc_f[i], -EPIPE);
    assert_rc(s.drain_rc[0], 0);
    assert_true(s.drain_ok[0]);
    assert_int_equal(s.drain_val[0], 1);
    assert_rc(s.drain_rc[1], 0);
    assert_true(s.drain_ok[1]);
    assert_int_equal(s.drain_val[1], 2);
    for (int i = 2; i < 4; i++) {
        assert_rc(s.drain_rc[i], 0);
        assert_false(s.drain_ok[i]);
        assert_int_equal(s.drain_val[i], 0);
    }
    assert_rc(s.unbuf_recv_rc, 0);
    assert_false(s.unbuf_recv_ok);
}

/* ------------------------------------------------------------------------- */
/* Receives drain the buffer after close                                      */
/* ------------------------------------------------------------------------- */

typedef struct {
    int rc[32];
    bool ok[32];
    int val[32];
    int n;
} drain_state;

static void rec(drain_state *s, int rc, bool ok, int val)
{
    if (s->n < 32) {
        s->rc[s->n] = rc;
        s->ok[s->n] = ok;
        s->val[s->n] = val;
        s->n++;
    }
}

static void drain_main(void *arg)
{
    drain_state *s = arg;
    goro_chan *c;
    if (goro_chan_make(&c, sizeof(int), 4) != 0) {
        rec(s, -999, false, 0);
        return;
    }
    for (int i = 1; i <= 3; i++)
        goro_chan_send(c, &i);
    rec(s, goro_chan_close(c), true, 0);                /* 0 */
    for (int i = 0; i < 3; i++) {                       /* 1..3 */
        int v = -1;
        bool ok = false;
        int rc = goro_chan_recv(c, &v, &ok);
        rec(s, rc, ok, v);
    }
    for (int i = 0; i < 2; i++) {                       /* 4..5 */
        int v = 77;
        bool ok = true;
        int rc = goro_chan_recv(c, &v, &ok);
        rec(s, rc, ok, v);
    }
    {                                                   /* 6 */
        int v = 77;
        bool ok = true;
        int rc = goro_chan_tryrecv(c, &v, &ok);
        rec(s, rc, ok, v);
    }
    {                                                   /* 7 */
        int v = 77;
        bool ok = true;
        int rc = goro_chan_recv_until(c, &v, &ok, goro_deadline_after(GORO_SECOND));
        rec(s, rc, ok, v);
    }
    int x = 9;
    rec(s, goro_chan_send(c, &x), false, 0);            /* 8 */
    rec(s, goro_chan_trysend(c, &x), false, 0);         /* 9 */
    rec(s, goro_chan_send_until(c, &x, goro_deadline_after(GORO_SECOND)), false, 0); /* 10 */
    rec(s, goro_chan_close(c), false, 0);               /* 11 */
    rec(s, (int)goro_chan_len(c), false, 0);            /* 12 */
    goro_chan_release(c);
}

static void test_recv_drains_after_close(void **st)
{
    (void)st;
    drain_state s;
    memset(&s, 0, sizeof s);
    assert_rc(gt_run("drain after close", drain_main, &s, NULL, 30), 0);
    assert_int_equal(s.n, 13);
    assert_rc(s.rc[0], 0);
    for (int i = 1; i <= 3; i++) {
        assert_rc(s.rc[i], 0);
        assert_true(s.ok[i]);
        assert_int_equal(s.val[i], i);
    }
    for (int i = 4; i <= 7; i++) {
        assert_rc(s.rc[i], 0); /* closed and drained: success with ok = false */
        assert_false(s.ok[i]);
        assert_int_equal(s.val[i], 0);
    }
    assert_rc(s.rc[8], -EPIPE);
    assert_rc(s.rc[9], -EPIPE);
    assert_rc(s.rc[10], -EPIPE);
    assert_rc(s.rc[11], -EALREADY);
    assert_int_equal(s.rc[12], 0);
}

/* ------------------------------------------------------------------------- */
/* trysend / tryrecv                                                          */
/* ------------------------------------------------------------------------- */

typedef struct {
    goro_chan *u;
    goro_waitgroup wg;
    atomic_long started;
    int rc[16];
    bool ok[4];
    int val[4];
    int helper_rc;
    int helper_val;
    bool helper_ok;
    int64_t try_loops;
} try_state;

static void try_blocked_receiver(void *arg)
{
    try_state *s = arg;
    atomic_fetch_add(&s->started, 1);
    s->helper_val = -1;
    s->helper_rc = goro_chan_recv(s->u, &s->helper_val, &s->helper_ok);
    goro_waitgroup_done(&s->wg);
}

static void try_blocked_sender(void *arg)
{
    try_state *s = arg;
    int v = 4242;
    atomic_fetch_add(&s->started, 1);
    s->helper_rc = goro_chan_send(s->u, &v);
    goro_waitgroup_done(&s->wg);
}

static void try_main(void *arg)
{
    try_state *s = arg;
    goro_chan *b;
    int x = 1;
    if (goro_chan_make(&s->u, sizeof(int), 0) || goro_chan_make(&b, sizeof(int), 2)) {
        s->rc[0] = -999;
        return;
    }
    s->rc[0] = goro_chan_trysend(s->u, &x); /* no receiver: -EAGAIN */
    int v = 55;
    s->rc[1] = goro_chan_tryrecv(s->u, &v, &s->ok[0]); /* nothing: -EAGAIN */
    s->val[0] = v;
    s->rc[2] = goro_chan_tryrecv(b, &v, NULL);          /* empty: -EAGAIN */
    s->rc[3] = goro_chan_trysend(b, &x);                /* 0 */
    x = 2;
    s->rc[4] = goro_chan_trysend(b, &x);                /* 0 */
    x = 3;
    s->rc[5] = goro_chan_trysend(b, &x);                /* full: -EAGAIN */
    s->rc[6] = goro_chan_tryrecv(b, &s->val[1], &s->ok[1]); /* 1 */
    s->rc[7] = goro_chan_tryrecv(b, &s->val[2], &s->ok[2]); /* 2 */
    s->rc[8] = goro_chan_tryrecv(b, &v, NULL);              /* empty again */

    /* trysend succeeds on an unbuffered channel once a receiver waits */
    goro_waitgroup_add(&s->wg, 1);
    goro_go(try_blocked_receiver, s);
    gt_wait_atomic_ge(&s->started, 1, 10 * GORO_SECOND);
    x = 31337;
    int rc;
    int64_t end = goro_now() + gt_slow(5 * GORO_SECOND);
    while ((rc = goro_chan_trysend(s->u, &x)) == -EAGAIN && goro_now() < end) {
        s->try_loops++;
        goro_sleep(MS / 2);
    }
    s->rc[9] = rc;
    goro_waitgroup_wait(&s->wg);
    s->rc[10] = s->helper_rc;
    s->val[3] = s->helper_val;
    s->ok[3] = s->helper_ok;

    /* tryrecv succeeds on an unbuffered channel once a sender waits */
    goro_waitgroup_add(&s->wg, 1);
    goro_go(try_blocked_sender, s);
    gt_wait_atomic_ge(&s->started, 2, 10 * GORO_SECOND);
    v = 0;
    end = goro_now() + gt_slow(5 * GORO_SECOND);
    while ((rc = goro_chan_tryrecv(s->u, &v, NULL)) == -EAGAIN && goro_now() < end)
        goro_sleep(MS / 2);
    s->rc[11] = rc;
    s->rc[12] = v;
    goro_waitgroup_wait(&s->wg);
    s->rc[13] = s->helper_rc;
    goro_chan_release(s->u);
    goro_chan_release(b);
}

static void test_try_variants(void **st)
{
    (void)st;
    try_state s;
    memset(&s, 0, sizeof s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("try variants", try_main, &s, &o, 30), 0);
    assert_rc(s.rc[0], -EAGAIN);
    assert_rc(s.rc[1], -EAGAIN);
    assert_int_equal(s.val[0], 55); /* untouched on -EAGAIN */
    assert_rc(s.rc[2], -EAGAIN);
    assert_rc(s.rc[3], 0);
    assert_rc(s.rc[4], 0);
    assert_rc(s.rc[5], -EAGAIN);
    assert_rc(s.rc[6], 0);
    assert_true(s.ok[1]);
    assert_int_equal(s.val[1], 1);
    assert_rc(s.rc[7], 0);
    assert_true(s.ok[2]);
    assert_int_equal(s.val[2], 2);
    assert_rc(s.rc[8], -EAGAIN);
    assert_rc(s.rc[9], 0);
    assert_rc(s.rc[10], 0);
    assert_true(s.ok[3]);
    assert_int_equal(s.val[3], 31337);
    assert_rc(s.rc[11], 0);
    assert_int_equal(s.rc[12], 4242);
    assert_rc(s.rc[13], 0);
}

/* ------------------------------------------------------------------------- */
/* Deadlines                                                                  */
/* ------------------------------------------------------------------------- */

#define DL_TRIES 7

typedef struct {
    int recv_rc[DL_TRIES], send_rc[DL_TRIES], bsend_rc[DL_TRIES];
    int64_t recv_late[DL_TRIES], send_late[DL_TRIES], bsend_late[DL_TRIES];
    int make_rc;
} dl_state;

static void dl_main(void *arg)
{
    dl_state *s = arg;
    goro_chan *u, *full;
    if ((s->make_rc = goro_chan_make(&u, sizeof(int), 0)) != 0)
        return;
    if ((s->make_rc = goro_chan_make(&full, sizeof(int), 1)) != 0)
        return;
    int x = 1;
    goro_chan_send(full, &x);
    for (int i = 0; i < DL_TRIES; i++) {
        int v;
        int64_t d = goro_now() + 50 * MS;
        s->recv_rc[i] = goro_chan_recv_until(u, &v, NULL, d);
        s->recv_late[i] = goro_now() - d;

        d = goro_now() + 50 * MS;
        s->send_rc[i] = goro_chan_send_until(u, &x, d);
        s->send_late[i] = goro_now() - d;

        d = goro_now() + 50 * MS;
        s->bsend_rc[i] = goro_chan_send_until(full, &x, d);
        s->bsend_late[i] = goro_now() - d;
    }
    goro_chan_release(u);
    goro_chan_release(full);
}

static void check_deadline_series(const char *what, const int *rc,
                                  const int64_t *late)
{
    for (int i = 0; i < DL_TRIES; i++) {
        assert_rc(rc[i], -ETIMEDOUT);
        assert_true_msg(late[i] >= 0, "%s try %d returned %lld ns before its deadline",
                        what, i, (long long)-late[i]);
    }
    int64_t med = gt_median_i64(late, DL_TRIES);
    fprintf(stderr, "%s: median lateness %.3f ms\n", what, med / 1e6);
    assert_true_msg(med < gt_late_tolerance(),
                    "%s: median lateness %.3f ms exceeds %.0f ms", what, med / 1e6,
                    gt_late_tolerance() / 1e6);
}

static void test_send_recv_deadlines(void **st)
{
    (void)st;
    dl_state s;
    memset(&s, 0, sizeof s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("deadlines", dl_main, &s, &o, 60), 0);
    assert_rc(s.make_rc, 0);
    check_deadline_series("recv_until (unbuffered)", s.recv_rc, s.recv_late);
    check_deadline_series("send_until (unbuffered)", s.send_rc, s.send_late);
    check_deadline_series("send_until (full buffer)", s.bsend_rc, s.bsend_late);
}

typedef struct {
    int rc[12];
    int val[4];
    bool ok[4];
    int64_t elapsed;
    goro_chan *u;
    goro_waitgroup wg;
    atomic_long started;
    int helper_rc, helper_val;
} past_state;

static void past_receiver(void *arg)
{
    past_state *s = arg;
    atomic_fetch_add(&s->started, 1);
    s->helper_val = -1;
    s->helper_rc = goro_chan_recv(s->u, &s->helper_val, NULL);
    goro_waitgroup_done(&s->wg);
}

static void past_main(void *arg)
{
    past_state *s = arg;
    goro_chan *b;
    if (goro_chan_make(&s->u, sizeof(int), 0) || goro_chan_make(&b, sizeof(int), 1)) {
        s->rc[0] = -999;
        return;
    }
    int64_t t0 = goro_now();
    int64_t past = goro_now() - MS;
    int v = 3;
    s->rc[0] = goro_chan_recv_until(b, &v, NULL, past);            /* empty */
    s->rc[1] = goro_chan_send_until(b, &v, past);                  /* space: 0 */
    s->rc[2] = goro_chan_send_until(b, &v, past);                  /* full */
    s->rc[3] = goro_chan_recv_until(b, &s->val[0], &s->ok[0], past); /* value: 0 */
    s->rc[4] = goro_chan_send_until(s->u, &v, past);               /* no receiver */
    s->rc[5] = goro_chan_recv_until(s->u, &v, NULL, past);         /* no sender */
    s->rc[6] = goro_chan_recv_until(s->u, &v, NULL, goro_deadline_after(-GORO_SECOND));
    s->rc[7] = goro_chan_recv_until(s->u, &v, NULL, INT64_MIN);
    s->elapsed = goro_now() - t0;

    /* with a receiver already waiting, a past deadline still sends (try) */
    goro_waitgroup_add(&s->wg, 1);
    goro_go(past_receiver, s);
    gt_wait_atomic_ge(&s->started, 1, 10 * GORO_SECOND);
    int rc;
    int x = 8080;
    int64_t end = goro_now() + gt_slow(5 * GORO_SECOND);
    while ((rc = goro_chan_send_until(s->u, &x, goro_now() - 1)) == -ETIMEDOUT &&
           goro_now() < end)
        goro_sleep(MS / 2);
    s->rc[8] = rc;
    goro_waitgroup_wait(&s->wg);
    s->rc[9] = s->helper_rc;
    s->val[1] = s->helper_val;
    goro_chan_release(s->u);
    goro_chan_release(b);
}

static void test_deadline_in_past(void **st)
{
    (void)st;
    past_state s;
    memset(&s, 0, sizeof s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("past deadlines", past_main, &s, &o, 30), 0);
    assert_rc(s.rc[0], -ETIMEDOUT);
    assert_rc(s.rc[1], 0);
    assert_rc(s.rc[2], -ETIMEDOUT);
    assert_rc(s.rc[3], 0);
    assert_true(s.ok[0]);
    assert_int_equal(s.val[0], 3);
    assert_rc(s.rc[4], -ETIMEDOUT);
    assert_rc(s.rc[5], -ETIMEDOUT);
    assert_rc(s.rc[6], -ETIMEDOUT);
    assert_rc(s.rc[7], -ETIMEDOUT);
    assert_true_msg(s.elapsed < gt_slow(200 * MS),
                    "calls with past deadlines took %.1f ms in total (should not block)",
                    s.elapsed / 1e6);
    assert_rc(s.rc[8], 0);
    assert_rc(s.rc[9], 0);
    assert_int_equal(s.val[1], 8080);
}

/* ------------------------------------------------------------------------- */
/* Reference counting while goroutines are blocked                            */
/* ------------------------------------------------------------------------- */

/*
 * The blocked goroutine borrows the creator's reference; the creator drops
 * it while the goroutine is blocked, so the only references left are the
 * helper's and the one goro holds for the blocked goroutine. The helper
 * completes the operation and drops its reference right away; if goro did
 * not hold its own reference for the blocked goroutine, the channel would be
 * freed before the blocked goroutine resumes and touches it again (a
 * heap-use-after-free under ASan, garbage otherwise).
 */
#define RR_WAITERS 4

typedef struct {
    goro_chan *ch;
    goro_waitgroup wg;
    atomic_long started;
    atomic_int idx;
    int mode; /* 0 recv/send, 1 send/recv, 2 recv/close */
    int rc[RR_WAITERS];
    bool ok[RR_WAITERS];
    uint64_t val[RR_WAITERS];
    int helper_rc[RR_WAITERS];
    uint64_t helper_val;
    int make_rc;
    goro_chan *go; /* tells the helper when to act */
    size_t retain_same, retain_null;
    int wait_rc;
} rr_state;

static void rr_blocked(void *arg)
{
    rr_state *s = arg;
    int i = atomic_fetch_add(&s->idx, 1);
    goro_chan *ch = s->ch; /* borrowed */
    atomic_fetch_add(&s->started, 1);
    if (s->mode == 1) {
        uint64_t v = 0xC0FFEEull + (uint64_t)i;
        s->rc[i] = goro_chan_send(ch, &v);
    } else {
        uint64_t v = 0xDEADull;
        bool ok = false;
        s->rc[i] = goro_chan_recv(ch, &v, &ok);
        s->ok[i] = ok;
        s->val[i] = v;
    }
    goro_waitgroup_done(&s->wg);
}

typedef struct {
    rr_state *s;
    goro_chan *ref; /* the helper's own reference */
} rr_helper_arg;

static void rr_helper(void *arg)
{
    rr_helper_arg *h = arg;
    rr_state *s = h->s;
    goro_chan *ch = h->ref;
    free(h);
    goro_chan_recv(s->go, NULL, NULL);
    if (s->mode == 0) {
        uint64_t v = 42;
        s->helper_rc[0] = goro_chan_send(ch, &v);
    } else if (s->mode == 1) {
        s->helper_rc[0] = goro_chan_recv(ch, &s->helper_val, NULL);
    } else {
        s->helper_rc[0] = goro_chan_close(ch);
    }
    goro_chan_release(ch); /* possibly the last user reference */
    goro_waitgroup_done(&s->wg);
}

static void rr_main(void *arg)
{
    rr_state *s = arg;
    if ((s->make_rc = goro_chan_make(&s->ch, sizeof(uint64_t), 0)) != 0)
        return;
    if ((s->make_rc = goro_chan_make(&s->go, 0, 1)) != 0)
        return;
    s->retain_same = goro_chan_retain(s->ch) == s->ch;
    goro_chan_release(s->ch); /* back to one reference */
    s->retain_null = goro_chan_retain(NULL) == NULL;
    goro_chan_release(NULL);

    int nwaiters = s->mode == 2 ? RR_WAITERS : 1;
    rr_helper_arg *h = malloc(sizeof *h);
    h->s = s;
    h->ref = goro_chan_retain(s->ch);
    goro_waitgroup_add(&s->wg, nwaiters + 1);
    goro_go(rr_helper, h);
    for (int i = 0; i < nwaiters; i++)
        goro_go(rr_blocked, s);
    gt_wait_atomic_ge(&s->started, nwaiters, 10 * GORO_SECOND);
    goro_sleep(20 * MS); /* they are blocked now */
    goro_chan_release(s->ch); /* drop every reference except the helper's */
    s->ch = NULL;
    goro_chan_send(s->go, NULL); /* let the helper act */
    s->wait_rc = gt_wg_wait(&s->wg, 10);
    goro_chan_release(s->go);
}

static void run_rr(int mode)
{
    rr_state s;
    memset(&s, 0, sizeof s);
    s.mode = mode;
    goro_options o = gt_opts(2);
    assert_rc(gt_run("retain/release while blocked", rr_main, &s, &o, 30), 0);
    assert_rc(s.make_rc, 0);
    assert_true(s.retain_same);
    assert_true(s.retain_null);
    assert_true_msg(s.wait_rc == 0, "the blocked goroutines did not complete");
    if (mode == 0) {
        assert_rc(s.helper_rc[0], 0);
        assert_rc(s.rc[0], 0);
        assert_true(s.ok[0]);
        assert_int_equal(s.val[0], 42);
    } else if (mode == 1) {
        assert_rc(s.helper_rc[0], 0);
        assert_rc(s.rc[0], 0);
        assert_int_equal(s.helper_val, 0xC0FFEEull);
    } else {
        assert_rc(s.helper_rc[0], 0);
        for (int i = 0; i < RR_WAITERS; i++) {
            assert_rc(s.rc[i], 0);
            assert_false(s.ok[i]);
            assert_int_equal(s.val[i], 0);
        }
    }
}

static void test_release_while_blocked_recv(void **st)
{
    (void)st;
    run_rr(0);
}

static void test_release_while_blocked_send(void **st)
{
    (void)st;
    run_rr(1);
}

static void test_release_while_blocked_close(void **st)
{
    (void)st;
    run_rr(2);
}

/* A goroutine left blocked on a channel whose every user reference was
 * dropped is discarded when main returns: it never resumes, and (checked by
 * LeakSanitizer in the ASan run) the channel is freed with it. */
typedef struct {
    goro_chan *ch;
    atomic_long started;
    atomic_int resumed;
} disc_state;

static void disc_blocked(void *arg)
{
    disc_state *s = arg;
    goro_chan *ch = s->ch;
    atomic_fetch_add(&s->started, 1);
    goro_chan_recv(ch, NULL, NULL);
    atomic_store(&s->resumed, 1);
}

static void disc_main(void *arg)
{
    disc_state *s = arg;
    if (goro_chan_make(&s->ch, 16, 2) != 0)
        return;
    goro_go(disc_blocked, s);
    gt_wait_atomic_ge(&s->started, 1, 10 * GORO_SECOND);
    goro_sleep(10 * MS);
    goro_chan_release(s->ch);
}

static void test_blocked_goroutine_discarded(void **st)
{
    (void)st;
    disc_state s;
    memset(&s, 0, sizeof s);
    assert_rc(gt_run("discard blocked goroutine", disc_main, &s, NULL, 30), 0);
    assert_int_equal(atomic_load(&s.started), 1);
    assert_int_equal(atomic_load(&s.resumed), 0);
}

/* ------------------------------------------------------------------------- */
/* Element size 0                                                             */
/* ------------------------------------------------------------------------- */

typedef struct {
    goro_chan *u, *b;
    goro_waitgroup wg;
    int rc[16];
    size_t len[4];
    long received, producer_bad;
    bool ok_after_close;
} z_state;

static void z_producer(void *arg)
{
    z_state *s = arg;
    for (int i = 0; i < 1000; i++)
        if (goro_chan_send(s->u, NULL) != 0)
            s->producer_bad++;
    goro_chan_close(s->u);
    goro_waitgroup_done(&s->wg);
}

static void z_main(void *arg)
{
    z_state *s = arg;
    if ((s->rc[0] = goro_chan_make(&s->u, 0, 0)) != 0)
        return;
    if ((s->rc[1] = goro_chan_make(&s->b, 0, 3)) != 0)
        return;
    s->len[0] = goro_chan_elem_size(s->b);
    s->rc[2] = goro_chan_trysend(s->b, NULL);
    s->rc[3] = goro_chan_send(s->b, NULL);
    char dummy = 0;
    s->rc[4] = goro_chan_send(s->b, &dummy); /* a non-NULL elem is fine too */
    s->rc[5] = goro_chan_trysend(s->b, NULL); /* full */
    s->len[1] = goro_chan_len(s->b);
    bool ok = false;
    s->rc[6] = goro_chan_recv(s->b, NULL, &ok);
    s->rc[7] = ok;
    s->len[2] = goro_chan_len(s->b);
    s->rc[8] = goro_chan_trysend(s->u, NULL); /* no receiver */

    goro_waitgroup_add(&s->wg, 1);
    goro_go(z_producer, s);
    for (;;) {
        bool ok2 = false;
        int rc = goro_chan_recv(s->u, NULL, &ok2);
        if (rc != 0) {
            s->rc[9] = rc;
            break;
        }
        if (!ok2)
            break;
        s->received++;
    }
    goro_waitgroup_wait(&s->wg);
    ok = true;
    s->rc[10] = goro_chan_recv(s->u, NULL, &ok);
    s->ok_after_close = ok;
    goro_chan_release(s->u);
    goro_chan_release(s->b);
}

static void test_elem_size_zero(void **st)
{
    (void)st;
    z_state s;
    memset(&s, 0, sizeof s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("zero-size elements", z_main, &s, &o, 30), 0);
    assert_rc(s.rc[0], 0);
    assert_rc(s.rc[1], 0);
    assert_int_equal(s.len[0], 0);
    assert_rc(s.rc[2], 0);
    assert_rc(s.rc[3], 0);
    assert_rc(s.rc[4], 0);
    assert_rc(s.rc[5], -EAGAIN);
    assert_int_equal(s.len[1], 3);
    assert_rc(s.rc[6], 0);
    assert_int_equal(s.rc[7], 1);
    assert_int_equal(s.len[2], 2);
    assert_rc(s.rc[8], -EAGAIN);
    assert_rc(s.rc[9], 0);
    assert_int_equal(s.producer_bad, 0);
    assert_int_equal(s.received, 1000);
    assert_rc(s.rc[10], 0);
    assert_false(s.ok_after_close);
}

/* ------------------------------------------------------------------------- */
/* Large elements                                                             */
/* ------------------------------------------------------------------------- */

#define BIG 4096
#define BIG_COUNT 300

static inline uint8_t big_byte(uint32_t msg, uint32_t j)
{
    return (uint8_t)(msg * 131u + j * 7u + (j >> 8) * 13u + 1u);
}

typedef struct {
    goro_chan *ch[2]; /* cap 0 and cap 3 */
    goro_waitgroup wg;
    long bad_bytes[2], bad_msgs[2], recv_bad[2], send_bad;
    int make_rc;
    long max_bad;
    int max_rc[2];
} big_state;

static void big_producer(void *arg)
{
    big_state *s = arg;
    uint8_t *buf = malloc(BIG);
    for (int c = 0; c < 2; c++) {
        for (uint32_t m = 0; m < BIG_COUNT; m++) {
            for (uint32_t j = 0; j < BIG; j++)
                buf[j] = big_byte(m + (uint32_t)c * 1000u, j);
            if (goro_chan_send(s->ch[c], buf) != 0)
                s->send_bad++;
            memset(buf, 0xEE, BIG); /* the channel must have copied it */
        }
    }
    free(buf);
    goro_waitgroup_done(&s->wg);
}

static void big_main(void *arg)
{
    big_state *s = arg;
    if ((s->make_rc = goro_chan_make(&s->ch[0], BIG, 0)) != 0)
        return;
    if ((s->make_rc = goro_chan_make(&s->ch[1], BIG, 3)) != 0)
        return;
    goro_waitgroup_add(&s->wg, 1);
    goro_go(big_producer, s);
    uint8_t *buf = malloc(BIG);
    for (int c = 0; c < 2; c++) {
        for (uint32_t m = 0; m < BIG_COUNT; m++) {
            memset(buf, 0, BIG);
            bool ok = false;
            if (m % 7 == 0)
                goro_sleep(MS / 4); /* let the buffer fill up sometimes */
            if (goro_chan_recv(s->ch[c], buf, &ok) != 0 || !ok) {
                s->recv_bad[c]++;
                continue;
            }
            long bad = 0;
            for (uint32_t j = 0; j < BIG; j++)
                bad += buf[j] != big_byte(m + (uint32_t)c * 1000u, j);
            s->bad_bytes[c] += bad;
            s->bad_msgs[c] += bad != 0;
        }
    }
    free(buf);
    goro_waitgroup_wait(&s->wg);
    goro_chan_release(s->ch[0]);
    goro_chan_release(s->ch[1]);

    /* the largest element size the contract allows */
    goro_chan *mx;
    if ((s->max_rc[0] = goro_chan_make(&mx, GORO_CHAN_MAX_ELEM, 1)) != 0)
        return;
    uint8_t *in = malloc(GORO_CHAN_MAX_ELEM), *out = malloc(GORO_CHAN_MAX_ELEM);
    for (uint32_t j = 0; j < GORO_CHAN_MAX_ELEM; j++)
        in[j] = big_byte(77, j);
    memset(out, 0, GORO_CHAN_MAX_ELEM);
    s->max_rc[0] = goro_chan_send(mx, in);
    s->max_rc[1] = goro_chan_recv(mx, out, NULL);
    s->max_bad = 0;
    for (uint32_t j = 0; j < GORO_CHAN_MAX_ELEM; j++)
        s->max_bad += in[j] != out[j];
    free(in);
    free(out);
    goro_chan_release(mx);
}

static void test_large_elements(void **st)
{
    (void)st;
    big_state s;
    memset(&s, 0, sizeof s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("large elements", big_main, &s, &o, 60), 0);
    assert_rc(s.make_rc, 0);
    assert_int_equal(s.send_bad, 0);
    for (int c = 0; c < 2; c++) {
        assert_int_equal(s.recv_bad[c], 0);
        assert_true_msg(s.bad_msgs[c] == 0,
                        "cap %d: %ld of %d 4 KiB messages corrupted (%ld bytes)",
                        c ? 3 : 0, s.bad_msgs[c], BIG_COUNT, s.bad_bytes[c]);
    }
    assert_rc(s.max_rc[0], 0);
    assert_rc(s.max_rc[1], 0);
    assert_int_equal(s.max_bad, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unbuffered_rendezvous_procs1),
        cmocka_unit_test(test_unbuffered_rendezvous_procs2),
        cmocka_unit_test(test_buffered_fifo),
        cmocka_unit_test(test_len_cap_elem_size),
        cmocka_unit_test(test_close_wakes_all_receivers),
        cmocka_unit_test(test_close_wakes_blocked_senders),
        cmocka_unit_test(test_recv_drains_after_close),
        cmocka_unit_test(test_try_variants),
        cmocka_unit_test(test_send_recv_deadlines),
        cmocka_unit_test(test_deadline_in_past),
        cmocka_unit_test(test_release_while_blocked_recv),
        cmocka_unit_test(test_release_while_blocked_send),
        cmocka_unit_test(test_release_while_blocked_close),
        cmocka_unit_test(test_blocked_goroutine_discarded),
        cmocka_unit_test(test_elem_size_zero),
        cmocka_unit_test(test_large_elements),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
