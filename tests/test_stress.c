/*
 * test_stress.c - thousands of goroutines doing random sends, receives and
 * selects (blocking, try, and with deadlines) on a shared set of channels of
 * capacities 0, 1 and 16, which are closed at the end by racing closers.
 * Every message carries a unique id; each id is counted when its send
 * succeeds and when it is received, and at the end every id must have been
 * received exactly as often as it was sent (0 or 1 times): nothing lost,
 * nothing duplicated, nothing invented, and a send that failed (-EPIPE,
 * -ETIMEDOUT, -EAGAIN, select ok = false) is not counted as sent.
 */
#define _GNU_SOURCE
#include "util.h"

#define MS GORO_MILLISECOND
#define NCH 12
#define CLOSERS 4
#define MAX_CASES 4
#define MAGIC 0x9E3779B97F4A7C15ull

typedef struct {
    uint64_t id;
    uint64_t check;
} msg_t;

typedef struct {
    goro_chan *ch[NCH];
    size_t workers, ops, ids_per_worker, total_ids;
    uint64_t seed;
    atomic_uchar *sent;
    atomic_uchar *recvd;
    atomic_long progress, finished;
    atomic_long bad_check, bad_id, bad_rc, dup_send;
    atomic_long n_sent, n_recv, n_epipe, n_timeout, n_eagain, n_closed_recv;
    atomic_long n_select;
    atomic_int close_ok[NCH], close_already[NCH], close_other[NCH];
    goro_waitgroup wg, closers_wg;
    int make_rc;
    bool stalled_close;
    long drained;
    int64_t elapsed;
} stress_state;

typedef struct {
    stress_state *s;
    size_t index;
} worker_arg;

static void record_recv(stress_state *s, const msg_t *m)
{
    if (m->id >= s->total_ids) {
        atomic_fetch_add(&s->bad_id, 1);
        return;
    }
    if (m->check != (m->id ^ MAGIC))
        atomic_fetch_add(&s->bad_check, 1);
    atomic_fetch_add(&s->recvd[m->id], 1);
    atomic_fetch_add(&s->n_recv, 1);
}

static void record_sent(stress_state *s, uint64_t id)
{
    if (atomic_exchange(&s->sent[id], 1) != 0)
        atomic_fetch_add(&s->dup_send, 1);
    atomic_fetch_add(&s->n_sent, 1);
}

static void send_result(stress_state *s, int rc, uint64_t id)
{
    switch (rc) {
    case 0: record_sent(s, id); break;
    case -EPIPE: atomic_fetch_add(&s->n_epipe, 1); break;
    case -ETIMEDOUT: atomic_fetch_add(&s->n_timeout, 1); break;
    case -EAGAIN: atomic_fetch_add(&s->n_eagain, 1); break;
    default: atomic_fetch_add(&s->bad_rc, 1); break;
    }
}

static void recv_result(stress_state *s, int rc, bool ok, const msg_t *m)
{
    switch (rc) {
    case 0:
        if (ok)
            record_recv(s, m);
        else
            atomic_fetch_add(&s->n_closed_recv, 1);
        break;
    case -ETIMEDOUT: atomic_fetch_add(&s->n_timeout, 1); break;
    case -EAGAIN: atomic_fetch_add(&s->n_eagain, 1); break;
    default: atomic_fetch_add(&s->bad_rc, 1); break;
    }
}

static int64_t short_deadline(gt_rng *r)
{
    return goro_now() + (int64_t)gt_rng_below(r, 2000) * GORO_MICROSECOND;
}

static void worker(void *arg)
{
    worker_arg *wa = arg;
    stress_state *s = wa->s;
    size_t w = wa->index;
    gt_rng r;
    gt_rng_seed(&r, s->seed * 1000003u + w);
    uint64_t next = 0;
#define NEW_ID() ((uint64_t)w * s->ids_per_worker + next++)
    for (size_t op = 0; op < s->ops; op++) {
        uint32_t kind = gt_rng_below(&r, 100);
        goro_chan *c = s->ch[gt_rng_below(&r, NCH)];
        msg_t m;
        bool ok = false;
        int rc;
        if (kind < 20) {
            m.id = NEW_ID();
            m.check = m.id ^ MAGIC;
            send_result(s, goro_chan_send(c, &m), m.id);
        } else if (kind < 30) {
            m.id = NEW_ID();
            m.check = m.id ^ MAGIC;
            send_result(s, goro_chan_send_until(c, &m, short_deadline(&r)), m.id);
        } else if (kind < 40) {
            m.id = NEW_ID();
            m.check = m.id ^ MAGIC;
            send_result(s, goro_chan_trysend(c, &m), m.id);
        } else if (kind < 55) {
            rc = goro_chan_recv(c, &m, &ok);
            recv_result(s, rc, ok, &m);
        } else if (kind < 65) {
            rc = goro_chan_recv_until(c, &m, &ok, short_deadline(&r));
            recv_result(s, rc, ok, &m);
        } else if (kind < 75) {
            rc = goro_chan_tryrecv(c, &m, &ok);
            recv_result(s, rc, ok, &m);
        } else {
            goro_select_case cs[MAX_CASES];
            msg_t elems[MAX_CASES];
            size_t n = 1 + gt_rng_below(&r, MAX_CASES);
            for (size_t i = 0; i < n; i++) {
                cs[i].ch = s->ch[gt_rng_below(&r, NCH)];
                cs[i].ok = false;
                cs[i].elem = &elems[i];
                if (gt_rng_below(&r, 2)) {
                    cs[i].op = GORO_SELECT_SEND;
                    elems[i].id = NEW_ID();
                    elems[i].check = elems[i].id ^ MAGIC;
                } else {
                    cs[i].op = GORO_SELECT_RECV;
                    elems[i].id = UINT64_MAX;
                    elems[i].check = 0;
                }
            }
            uint32_t mode = gt_rng_below(&r, 4);
            unsigned flags = mode == 0 ? GORO_SELECT_NONBLOCK : 0;
            int64_t dl = mode == 1 ? short_deadline(&r) : GORO_NO_DEADLINE;
            rc = goro_select(cs, n, flags, dl);
            atomic_fetch_add(&s->n_select, 1);
            if (rc >= 0 && (size_t)rc < n) {
                if (cs[rc].op == GORO_SELECT_SEND)
                    send_result(s, cs[rc].ok ? 0 : -EPIPE, elems[rc].id);
                else
                    recv_result(s, 0, cs[rc].ok, &elems[rc]);
            } else if (rc == -EAGAIN || rc == -ETIMEDOUT) {
                recv_result(s, rc, false, NULL);
            } else {
                atomic_fetch_add(&s->bad_rc, 1);
            }
        }
        if (gt_rng_below(&r, 16) == 0)
            goro_yield();
        atomic_fetch_add(&s->progress, 1);
    }
#undef NEW_ID
    atomic_fetch_add(&s->finished, 1);
    goro_waitgroup_done(&s->wg);
}

static void closer(void *arg)
{
    stress_state *s = arg;
    for (int i = 0; i < NCH; i++) {
        int rc = goro_chan_close(s->ch[i]);
        if (rc == 0)
            atomic_fetch_add(&s->close_ok[i], 1);
        else if (rc == -EALREADY)
            atomic_fetch_add(&s->close_already[i], 1);
        else
            atomic_fetch_add(&s->close_other[i], 1);
    }
    goro_waitgroup_done(&s->closers_wg);
}

static void stress_main(void *arg)
{
    stress_state *s = arg;
    static const size_t caps[3] = {0, 1, 16};
    for (int i = 0; i < NCH; i++)
        if ((s->make_rc = goro_chan_make(&s->ch[i], sizeof(msg_t), caps[i % 3])) != 0)
            return;
    int64_t t0 = goro_now();
    worker_arg *args = calloc(s->workers, sizeof *args);
    goro_waitgroup_add(&s->wg, (int)s->workers);
    for (size_t w = 0; w < s->workers; w++) {
        args[w] = (worker_arg){s, w};
        if (goro_go(worker, &args[w]) != 0) {
            atomic_fetch_add(&s->bad_rc, 1);
            goro_waitgroup_done(&s->wg);
            atomic_fetch_add(&s->finished, 1);
        }
    }
    /* Supervise: when every worker has finished, or the remaining ones have
     * made no progress for a while (all blocked on each other, which is the
     * normal end state with blocking operations), close the channels. */
    long last = -1;
    int64_t last_change = goro_now();
    const int64_t stall = gt_slow(250 * MS);
    while ((size_t)atomic_load(&s->finished) < s->workers) {
        goro_sleep(5 * MS);
        long p = atomic_load(&s->progress);
        if (p != last) {
            last = p;
            last_change = goro_now();
        } else if (goro_now() - last_change > stall) {
            s->stalled_close = true;
            break;
        }
    }
    goro_waitgroup_add(&s->closers_wg, CLOSERS);
    for (int i = 0; i < CLOSERS; i++)
        goro_go(closer, s);
    goro_waitgroup_wait(&s->closers_wg);
    goro_waitgroup_wait(&s->wg);
    /* drain what is still buffered */
    for (int i = 0; i < NCH; i++) {
        for (;;) {
            msg_t m;
            bool ok = false;
            int rc = goro_chan_recv(s->ch[i], &m, &ok);
            if (rc != 0) {
                atomic_fetch_add(&s->bad_rc, 1);
                break;
            }
            if (!ok)
                break;
            record_recv(s, &m);
            s->drained++;
        }
        goro_chan_release(s->ch[i]);
    }
    s->elapsed = goro_now() - t0;
    free(args);
}

static void run_stress(int procs, unsigned round)
{
    stress_state *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->workers = gt_scale("stress: goroutines", 2000, 1000, 250);
    s->ops = gt_scale("stress: operations per goroutine", 400, 200, 100);
    s->ids_per_worker = s->ops * MAX_CASES;
    s->total_ids = s->workers * s->ids_per_worker;
    s->seed = 0x5EED0000u + (uint64_t)procs * 100 + round;
    s->sent = calloc(s->total_ids, 1);
    s->recvd = calloc(s->total_ids, 1);
    assert_non_null(s->sent);
    assert_non_null(s->recvd);
    goro_options o = gt_opts(procs);
    assert_rc(gt_run("stress", stress_main, s, &o, 150), 0);
    fprintf(stderr,
            "stress procs=%d round %u: %zu goroutines x %zu ops in %.0f ms: sent %ld, received %ld "
            "(%ld drained at the end), -EPIPE %ld, timeouts %ld, -EAGAIN %ld, closed "
            "receives %ld, selects %ld%s\n",
            procs, round, s->workers, s->ops, s->elapsed / 1e6, atomic_load(&s->n_sent),
            atomic_load(&s->n_recv), s->drained, atomic_load(&s->n_epipe),
            atomic_load(&s->n_timeout), atomic_load(&s->n_eagain),
            atomic_load(&s->n_closed_recv), atomic_load(&s->n_select),
            s->stalled_close ? " (closed when the rest were all blocked)" : "");
    assert_rc(s->make_rc, 0);
    assert_int_equal(atomic_load(&s->bad_rc), 0);
    assert_int_equal(atomic_load(&s->bad_id), 0);
    assert_int_equal(atomic_load(&s->bad_check), 0);
    assert_int_equal(atomic_load(&s->dup_send), 0);
    for (int i = 0; i < NCH; i++) {
        assert_true_msg(atomic_load(&s->close_ok[i]) == 1,
                        "channel %d closed successfully %d times", i,
                        atomic_load(&s->close_ok[i]));
        assert_int_equal(atomic_load(&s->close_already[i]), CLOSERS - 1);
        assert_int_equal(atomic_load(&s->close_other[i]), 0);
    }
    size_t lost = 0, dup = 0, phantom = 0;
    long first_bad = -1;
    for (size_t id = 0; id < s->total_ids; id++) {
        unsigned snt = atomic_load(&s->sent[id]), rcv = atomic_load(&s->recvd[id]);
        if (snt == rcv)
            continue;
        if (first_bad < 0)
            first_bad = (long)id;
        if (snt && rcv == 0)
            lost++;
        else if (!snt && rcv)
            phantom++;
        else
            dup++;
    }
    long n_sent = atomic_load(&s->n_sent), n_recv = atomic_load(&s->n_recv);
    free(s->sent);
    free(s->recvd);
    free(s);
    assert_true_msg(lost == 0 && dup == 0 && phantom == 0,
                    "%zu messages lost, %zu duplicated, %zu received but never "
                    "(successfully) sent; first id %ld",
                    lost, dup, phantom, first_bad);
    assert_int_equal(n_sent, n_recv);
    /* the run did real work */
    assert_true_msg(n_sent > 1000, "only %ld messages went through", n_sent);
}

#define ROUNDS 3 /* different seeds */

static void test_stress_procs1(void **st)
{
    (void)st;
    for (unsigned r = 0; r < ROUNDS; r++)
        run_stress(1, r);
}

static void test_stress_procs2(void **st)
{
    (void)st;
    for (unsigned r = 0; r < ROUNDS; r++)
        run_stress(2, r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stress_procs1),
        cmocka_unit_test(test_stress_procs2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
