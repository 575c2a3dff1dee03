/*
 * test_race.c - protocol stress tests, each aimed at one wait/wake race
 * window of the runtime, with exact accounting of every result:
 *
 *  1. close while senders, receivers and selects are blocked on the same
 *     channels (buffered and unbuffered);
 *  2. deadlines (0-200 us) racing wake-ups in send_until, recv_until and
 *     select;
 *  3. the waker dropping the last channel reference while the woken side
 *     (a timed receive/send or a select over several channels) is still
 *     returning;
 *  4. context cancel and deadline racing goro_ctx_wait and selects on
 *     goro_ctx_done, parent cancel against child deadline, contexts released
 *     right after their cancel;
 *  5. mutex and rwmutex hand-over against lock_until timeouts;
 *  6. threads that are not goroutines waking goroutines (trysend, tryrecv,
 *     close, waitgroup done, ctx cancel, mutex unlock, cond broadcast);
 *  7. close of a TCP connection while a goroutine is blocked reading or
 *     writing it.
 *
 * Accounting: every value a test sends is distinct (producer id and
 * sequence number, see the ledger below) and is recorded as sent, or as not
 * sent (the call reported -EPIPE / -ETIMEDOUT / ok = false), exactly once;
 * every receipt is recorded. After a round the ledger must show every sent
 * value received exactly once and no other value received at all. Every
 * return code is classified; codes outside the documented set are counted
 * as "bad" and must stay at zero.
 *
 * Rules of the suite: goroutines and foreign threads only record (atomic
 * counters, per-round result fields read after a WaitGroup); the cmocka test
 * function asserts after gt_run returned. Nothing sleeps to synchronize:
 * waits are on real state (WaitGroups, counters, goro_num_io_waiting, or
 * goro_leak_find showing a goroutine parked), and every wait is bounded so a
 * lost wake-up shows up as a failed count (or gt_run's watchdog) instead of
 * a hang. Sleeps that remain only place an action at a random time.
 *
 * Randomness: GT_RACE_SEED=N replays one run's choices (the seed is printed
 * at start; the interleaving also depends on the OS). In a chaos build
 * (-DGORO_CHAOS=ON) GORO_CHAOS_SEED picks the runtime's perturbation.
 * GT_FILTER=test_name runs one test.
 *
 * Self-check: GT_RACE_BREAK=N plants a deliberate bug in the bookkeeping of
 * test N (the runtime is not touched) to show that its checks can fail:
 * 1, 2, 4, 5, 6: a value or a result recorded wrongly; 3: a wrong value
 * recorded by the woken side; 30 (meant for ASan): the waker drops the last
 * reference before the woken side is blocked, a use-after-free in the test
 * that ASan must report; 7: the wrong end of the TCP pair is closed;
 * 70: a connection is left open (the fd count check fails).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define US GORO_MICROSECOND
#define MS GORO_MILLISECOND

#define INC(x) atomic_fetch_add_explicit(&(x), 1, memory_order_relaxed)
#define ADD(x, n) atomic_fetch_add_explicit(&(x), (n), memory_order_relaxed)
#define GET(x) atomic_load(&(x))

/* Assert a counter (atomic or plain) is zero / equals a value, naming it. */
#define CHECK_EQ(a, b)                                                         \
    do {                                                                       \
        long ce_a_ = (long)(a), ce_b_ = (long)(b);                             \
        if (ce_a_ != ce_b_)                                                    \
            fail_msg("%s = %ld, expected %s = %ld", #a, ce_a_, #b, ce_b_);     \
    } while (0)
#define CHECK_ZERO(st, field)                                                  \
    do {                                                                       \
        long cz_ = (long)(st).field;                                           \
        if (cz_ != 0)                                                          \
            fail_msg("%s = %ld (must be 0)", #field, cz_);                     \
    } while (0)

static uint64_t g_seed; /* GT_RACE_SEED or the clock */
static int g_break;     /* GT_RACE_BREAK */
static atomic_int g_broken;

/* True once per process when deliberate bug n is asked for. */
static bool inject_once(int n)
{
    return g_break == n && atomic_exchange(&g_broken, 1) == 0;
}

static uint64_t seed_for(int test, int procs)
{
    return g_seed * 1000003u + (uint64_t)test * 101u + (uint64_t)procs;
}

static void spin_ns(int64_t ns)
{
    int64_t end = gt_mono_ns() + ns;
    while (gt_mono_ns() < end) {
    }
}

static void shuffle_ints(gt_rng *r, int *v, int n)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)gt_rng_below(r, (uint32_t)i + 1);
        int t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

/* ------------------------------------------------------------------------- */
/* The ledger: every value sent, and how often it was received                */
/* ------------------------------------------------------------------------- */

#define LG_MAXP 16   /* producers per round */
#define LG_SEQ 4096  /* values per producer per round */

enum { LG_NONE = 0, LG_SENT = 1, LG_UNSENT = 2 };

typedef struct ledger {
    atomic_uchar st[LG_MAXP][LG_SEQ]; /* LG_NONE / LG_SENT / LG_UNSENT */
    atomic_uchar rc[LG_MAXP][LG_SEQ]; /* times received */
    atomic_long undecodable;          /* received garbage, or marked twice */
} ledger;

typedef struct lg_tot {
    long sent, unsent, recv;
    long lost;        /* sent, never received */
    long dup;         /* received more than once */
    long phantom;     /* received, never produced */
    long unsent_recv; /* reported not sent, yet received */
    long undecodable;
} lg_tot;

/* Never 0: a zeroed element (receive on a closed channel) is no value. */
static uint64_t lg_val(int p, uint32_t seq)
{
    return ((uint64_t)(uint32_t)(p + 1) << 32) | seq;
}

static bool lg_decode(uint64_t v, int *p, uint32_t *seq)
{
    uint64_t hi = v >> 32;
    uint32_t lo = (uint32_t)v;
    if (hi == 0 || hi > LG_MAXP || lo >= LG_SEQ)
        return false;
    *p = (int)hi - 1;
    *seq = lo;
    return true;
}

static int lg_producer(uint64_t v)
{
    int p;
    uint32_t s;
    return lg_decode(v, &p, &s) ? p : -1;
}

static void lg_mark(ledger *l, uint64_t v, unsigned char how)
{
    int p;
    uint32_t s;
    if (!lg_decode(v, &p, &s) || atomic_exchange(&l->st[p][s], how) != LG_NONE)
        INC(l->undecodable);
}

static void lg_recv(ledger *l, uint64_t v)
{
    int p;
    uint32_t s;
    if (!lg_decode(v, &p, &s)) {
        INC(l->undecodable);
        return;
    }
    if (atomic_fetch_add(&l->rc[p][s], 1) == 255) /* keep it nonzero */
        atomic_store(&l->rc[p][s], 255);
}

static void lg_reset(ledger *l)
{
    memset(l->st, 0, sizeof l->st);
    memset(l->rc, 0, sizeof l->rc);
}

/* Between rounds (no goroutine touches l): add up and classify. */
static void lg_tally(ledger *l, lg_tot *t)
{
    for (int p = 0; p < LG_MAXP; p++) {
        for (int s = 0; s < LG_SEQ; s++) {
            unsigned st = atomic_load_explicit(&l->st[p][s], memory_order_relaxed);
            unsigned n = atomic_load_explicit(&l->rc[p][s], memory_order_relaxed);
            t->recv += n;
            if (n > 1)
                t->dup++;
            if (st == LG_SENT) {
                t->sent++;
                if (n == 0)
                    t->lost++;
            } else if (st == LG_UNSENT) {
                t->unsent++;
                if (n)
                    t->unsent_recv++;
            } else if (n) {
                t->phantom++;
            }
        }
    }
    t->undecodable += atomic_exchange(&l->undecodable, 0);
}

static void check_ledger(const lg_tot *t, const char *what)
{
    assert_true_msg(t->lost == 0 && t->dup == 0 && t->phantom == 0 && t->unsent_recv == 0 &&
                        t->undecodable == 0,
                    "%s: %ld sent values lost, %ld received twice, %ld phantom, %ld reported "
                    "unsent yet received, %ld undecodable (of %ld sent, %ld received)",
                    what, t->lost, t->dup, t->phantom, t->unsent_recv, t->undecodable, t->sent,
                    t->recv);
}

/* A failed bounded wait in a main goroutine: show who is stuck. */
static void report_hang(const char *what)
{
    fprintf(stderr, "test_race: %s: goroutines did not finish; dump follows\n", what);
    goro_dump(STDERR_FILENO);
}

/* ========================================================================= */
/* 1. close while senders, receivers and selects are blocked                  */
/* ========================================================================= */

/* Per round: channel A (unbuffered) and B (buffered, cap 1-4); 0-4 plain
 * senders and 0-4 plain receivers spread over them; 1-4 selects with a
 * random subset of {recv A, send A, recv B, send B, recv A again}; two
 * closers per channel that close after a random number of transfers. Every
 * value a sender or select sent must be received exactly once; after close
 * senders get -EPIPE, receivers drain and get ok = false with a zeroed
 * element, select cases report ok = false; all return. */

enum { T1_SEND, T1_RECV, T1_SEL, T1_CLOSE };
#define T1_MAXG 4
#define T1_NARGS (3 * T1_MAXG + 4)

typedef struct t1_state t1_state;
typedef struct {
    t1_state *s;
    int role, id, ch;
    uint32_t mask; /* select: cases present; closer: max transfer target */
    bool timed;    /* use the _until variant with a far deadline */
    uint64_t seed;
} t1_arg;

struct t1_state {
    long rounds;
    int procs;
    ledger *lg;
    goro_chan *ch[2];
    atomic_int close_started[2], closed_done[2];
    atomic_long transfers;
    goro_waitgroup wg;
    t1_arg args[T1_NARGS];

    atomic_long send_ok, send_epipe, send_capped, send_bad, send_after_close;
    atomic_long recv_ok, recv_closed, recv_bad, recv_early_close, recv_nonzero;
    atomic_long sel_recv, sel_send, sel_recv_closed, sel_send_closed, sel_bad, sel_null,
        sel_self, sel_exit, sel_after_close, sel_nonzero, sel_early_close;
    atomic_long close_ok, close_already, close_bad;
    long exp_senders, exp_receivers, exp_selectors;
    long len_left, drained, hung, rounds_done;
    lg_tot tot;
};

static int64_t t1_far(void) { return goro_deadline_after(gt_slow(30 * GORO_SECOND)); }

static void t1_sender(t1_state *s, t1_arg *a)
{
    goro_chan *c = s->ch[a->ch];
    gt_rng r;
    gt_rng_seed(&r, a->seed);
    uint32_t seq;
    for (seq = 0; seq < LG_SEQ; seq++) {
        uint64_t v = lg_val(a->id, seq);
        int closed_before = atomic_load(&s->closed_done[a->ch]);
        int rc = a->timed ? goro_chan_send_until(c, &v, t1_far()) : goro_chan_send(c, &v);
        if (rc == 0) {
            lg_mark(s->lg, v, LG_SENT);
            INC(s->send_ok);
            if (closed_before)
                INC(s->send_after_close);
            /* Without preemption a sender/receiver pair could hand the
             * processor back and forth and starve the closers. */
            if (gt_rng_below(&r, 8) == 0)
                goro_yield();
            continue;
        }
        lg_mark(s->lg, v, LG_UNSENT);
        if (rc == -EPIPE)
            INC(s->send_epipe);
        else
            INC(s->send_bad);
        break;
    }
    if (seq == LG_SEQ)
        INC(s->send_capped);
}

static void t1_receiver(t1_state *s, t1_arg *a)
{
    goro_chan *c = s->ch[a->ch];
    gt_rng r;
    gt_rng_seed(&r, a->seed);
    for (;;) {
        uint64_t v = ~0ull;
        bool ok = true;
        int rc = a->timed ? goro_chan_recv_until(c, &v, &ok, t1_far()) : goro_chan_recv(c, &v, &ok);
        if (rc) {
            INC(s->recv_bad);
            return;
        }
        if (ok) {
            if (!inject_once(1))
                lg_recv(s->lg, v);
            INC(s->recv_ok);
            INC(s->transfers);
            if (gt_rng_below(&r, 8) == 0)
                goro_yield();
            continue;
        }
        if (v != 0)
            INC(s->recv_nonzero);
        if (!atomic_load(&s->close_started[a->ch]))
            INC(s->recv_early_close);
        INC(s->recv_closed);
        return;
    }
}

static void t1_selector(t1_state *s, t1_arg *a)
{
    static const int chan_of[5] = {0, 0, 1, 1, 0};
    static const int op_of[5] = {GORO_SELECT_RECV, GORO_SELECT_SEND, GORO_SELECT_RECV,
                                 GORO_SELECT_SEND, GORO_SELECT_RECV};
    gt_rng r;
    gt_rng_seed(&r, a->seed);
    bool recv_off[2] = {false, false}, send_off[2] = {false, false};
    uint64_t out[2] = {0, 0}; /* pending value per send case (0: none) */
    uint64_t in[5];
    uint32_t seq = 0;
    for (;;) {
        goro_select_case cs[5];
        int live = 0;
        for (int i = 0; i < 5; i++) {
            int c = chan_of[i];
            bool send = op_of[i] == GORO_SELECT_SEND;
            bool on = (a->mask >> i) & 1u;
            if (send ? send_off[c] : recv_off[c])
                on = false;
            if (on && send && out[c] == 0) {
                if (seq >= LG_SEQ) {
                    send_off[c] = true;
                    on = false;
                } else {
                    out[c] = lg_val(a->id, seq++);
                }
            }
            in[i] = ~0ull;
            cs[i] = (goro_select_case){
                .ch = on ? s->ch[c] : NULL,
                .op = op_of[i],
                .elem = send ? (void *)&out[c] : (void *)&in[i],
            };
            live += on;
        }
        if (!live)
            break;
        int closed_before[2] = {atomic_load(&s->closed_done[0]), atomic_load(&s->closed_done[1])};
        int rc = goro_select(cs, 5, 0, a->timed ? t1_far() : GORO_NO_DEADLINE);
        if (rc < 0 || rc >= 5) {
            INC(s->sel_bad);
            break;
        }
        if (!cs[rc].ch) { /* a switched-off case was chosen */
            INC(s->sel_null);
            break;
        }
        int c = chan_of[rc];
        if (op_of[rc] == GORO_SELECT_SEND) {
            if (cs[rc].ok) {
                lg_mark(s->lg, out[c], LG_SENT);
                INC(s->sel_send);
                if (closed_before[c])
                    INC(s->sel_after_close);
            } else {
                lg_mark(s->lg, out[c], LG_UNSENT);
                INC(s->sel_send_closed);
                if (!atomic_load(&s->close_started[c]))
                    INC(s->sel_early_close);
                send_off[c] = true;
            }
            out[c] = 0;
        } else if (cs[rc].ok) {
            /* On unbuffered A a select can never take its own value. */
            if (c == 0 && lg_producer(in[rc]) == a->id)
                INC(s->sel_self);
            lg_recv(s->lg, in[rc]);
            INC(s->sel_recv);
            INC(s->transfers);
        } else {
            if (in[rc] != 0)
                INC(s->sel_nonzero);
            if (!atomic_load(&s->close_started[c]))
                INC(s->sel_early_close);
            INC(s->sel_recv_closed);
            recv_off[c] = true;
        }
        if (gt_rng_below(&r, 8) == 0)
            goro_yield();
    }
    for (int c = 0; c < 2; c++)
        if (out[c])
            lg_mark(s->lg, out[c], LG_UNSENT);
    INC(s->sel_exit);
}

static void t1_closer(t1_state *s, t1_arg *a)
{
    gt_rng r;
    gt_rng_seed(&r, a->seed);
    long target = (long)gt_rng_below(&r, a->mask + 1);
    /* Bounded: a round without flow on this channel closes after the yields. */
    for (int i = 0; i < 3000 && GET(s->transfers) < target; i++)
        goro_yield();
    if (gt_rng_below(&r, 4) == 0)
        for (uint32_t n = gt_rng_below(&r, 64); n; n--)
            goro_yield();
    atomic_store(&s->close_started[a->ch], 1);
    int rc = goro_chan_close(s->ch[a->ch]);
    if (rc == 0) {
        atomic_store(&s->closed_done[a->ch], 1);
        INC(s->close_ok);
    } else if (rc == -EALREADY) {
        INC(s->close_already);
    } else {
        INC(s->close_bad);
    }
}

static void t1_goroutine(void *arg)
{
    t1_arg *a = arg;
    t1_state *s = a->s;
    switch (a->role) {
    case T1_SEND: t1_sender(s, a); break;
    case T1_RECV: t1_receiver(s, a); break;
    case T1_SEL: t1_selector(s, a); break;
    default: t1_closer(s, a); break;
    }
    goro_waitgroup_done(&s->wg);
}

static void t1_main(void *arg)
{
    t1_state *s = arg;
    gt_rng r;
    gt_rng_seed(&r, seed_for(1, s->procs));
    for (long round = 0; round < s->rounds; round++) {
        int ns = (int)gt_rng_below(&r, T1_MAXG + 1);
        int nr = (int)gt_rng_below(&r, T1_MAXG + 1);
        int nk = 1 + (int)gt_rng_below(&r, T1_MAXG);
        if (goro_chan_make(&s->ch[0], sizeof(uint64_t), 0) ||
            goro_chan_make(&s->ch[1], sizeof(uint64_t), 1 + gt_rng_below(&r, 4))) {
            s->hung++;
            return;
        }
        lg_reset(s->lg);
        for (int c = 0; c < 2; c++) {
            atomic_store(&s->close_started[c], 0);
            atomic_store(&s->closed_done[c], 0);
        }
        atomic_store(&s->transfers, 0);
        int n = 0;
        for (int i = 0; i < ns; i++)
            s->args[n++] = (t1_arg){.role = T1_SEND, .id = i, .ch = (int)gt_rng_below(&r, 2)};
        for (int i = 0; i < nr; i++)
            s->args[n++] = (t1_arg){.role = T1_RECV, .ch = (int)gt_rng_below(&r, 2)};
        for (int i = 0; i < nk; i++)
            s->args[n++] = (t1_arg){.role = T1_SEL, .id = ns + i, .mask = 1 + gt_rng_below(&r, 31)};
        uint32_t max_target = gt_rng_below(&r, 200);
        for (int i = 0; i < 4; i++)
            s->args[n++] = (t1_arg){.role = T1_CLOSE, .ch = i / 2, .mask = max_target};
        /* Who must drain B (and A) before seeing the close. */
        bool consumer[2] = {false, false};
        for (int i = 0; i < n; i++) {
            if (s->args[i].role == T1_RECV)
                consumer[s->args[i].ch] = true;
            if (s->args[i].role == T1_SEL) {
                consumer[0] |= (s->args[i].mask & 0x11u) != 0;
                consumer[1] |= (s->args[i].mask & 0x04u) != 0;
            }
        }
        int order[T1_NARGS];
        for (int i = 0; i < n; i++) {
            s->args[i].s = s;
            s->args[i].seed = gt_rng_next(&r);
            s->args[i].timed = gt_rng_below(&r, 2);
            order[i] = i;
        }
        shuffle_ints(&r, order, n);
        s->exp_senders += ns;
        s->exp_receivers += nr;
        s->exp_selectors += nk;
        goro_waitgroup_add(&s->wg, n);
        for (int i = 0; i < n; i++)
            goro_go(t1_goroutine, &s->args[order[i]]);
        if (gt_wg_wait(&s->wg, 30)) {
            s->hung++;
            report_hang("close vs blocked");
            return;
        }
        /* Consumers drain before they see the close: with one, nothing is
         * left. Without one, what is buffered was sent: take it here. */
        for (int c = 0; c < 2; c++) {
            if (consumer[c])
                s->len_left += (long)goro_chan_len(s->ch[c]);
            uint64_t v;
            bool ok;
            while (goro_chan_tryrecv(s->ch[c], &v, &ok) == 0 && ok) {
                lg_recv(s->lg, v);
                s->drained++;
            }
        }
        lg_tally(s->lg, &s->tot);
        goro_chan_release(s->ch[0]);
        goro_chan_release(s->ch[1]);
        s->rounds_done++;
    }
}

static void test_close_vs_blocked(void **st)
{
    (void)st;
    long rounds = (long)gt_scale("close-vs-blocked rounds", 500, 400, 300);
    for (int procs = 1; procs <= 2; procs++) {
        t1_state *s = calloc(1, sizeof *s);
        s->lg = calloc(1, sizeof *s->lg);
        s->rounds = rounds;
        s->procs = procs;
        goro_options o = gt_opts(procs);
        int64_t t0 = gt_mono_ns();
        assert_rc(gt_run("close vs blocked", t1_main, s, &o, 120), 0);
        fprintf(stderr,
                "  [1 procs=%d] %ld rounds in %.2f s: %ld values sent (%ld by selects), "
                "%ld senders got -EPIPE (%ld reached the cap), %ld receivers and %ld select "
                "cases saw the close, %ld select sends refused\n",
                procs, s->rounds_done, (double)(gt_mono_ns() - t0) / 1e9, s->tot.sent,
                GET(s->sel_send), GET(s->send_epipe), GET(s->send_capped), GET(s->recv_closed),
                GET(s->sel_recv_closed), GET(s->sel_send_closed));
        CHECK_ZERO(*s, hung);
        CHECK_EQ(s->rounds_done, rounds);
        check_ledger(&s->tot, "close vs blocked");
        CHECK_EQ(s->tot.sent, GET(s->send_ok) + GET(s->sel_send));
        CHECK_EQ(s->tot.recv, GET(s->recv_ok) + GET(s->sel_recv) + s->drained);
        CHECK_ZERO(*s, send_bad);
        CHECK_ZERO(*s, send_after_close);
        CHECK_EQ(GET(s->send_epipe) + GET(s->send_capped), s->exp_senders);
        CHECK_ZERO(*s, recv_bad);
        CHECK_ZERO(*s, recv_early_close);
        CHECK_ZERO(*s, recv_nonzero);
        CHECK_EQ(GET(s->recv_closed), s->exp_receivers);
        CHECK_ZERO(*s, sel_bad);
        CHECK_ZERO(*s, sel_null);
        CHECK_ZERO(*s, sel_self);
        CHECK_ZERO(*s, sel_after_close);
        CHECK_ZERO(*s, sel_nonzero);
        CHECK_ZERO(*s, sel_early_close);
        CHECK_EQ(GET(s->sel_exit), s->exp_selectors);
        CHECK_EQ(GET(s->close_ok), 2 * rounds);
        CHECK_EQ(GET(s->close_already), 2 * rounds);
        CHECK_ZERO(*s, close_bad);
        CHECK_ZERO(*s, len_left);
        free(s->lg);
        free(s);
    }
}

/* ========================================================================= */
/* 2. deadlines racing wake-ups                                               */
/* ========================================================================= */

/* Unbuffered U and buffered B. Producers: send_until on either, selects over
 * {send U, send B}, and a mixed select {send U, recv B, recv U}; consumers:
 * recv_until on either and selects {recv U, recv B, recv U}. Every deadline
 * is 0-200 us away (or already past). A send that returned 0 must be
 * received exactly once (by a consumer, or by the final drain); one that
 * returned -ETIMEDOUT (or whose select case was not chosen) never; no other
 * codes, and no -ETIMEDOUT before its deadline. */

enum { T2_SEND, T2_SELSEND, T2_MIXED, T2_RECV, T2_SELRECV };

typedef struct t2_state t2_state;
typedef struct {
    t2_state *s;
    int role, id;
    uint64_t seed;
} t2_arg;

struct t2_state {
    int procs;
    long iters;
    ledger *lg;
    goro_chan *ch[2];
    atomic_int stop;
    goro_waitgroup wg_prod, wg_cons;
    t2_arg args[16];

    atomic_long snd_ok, snd_to, snd_bad;
    atomic_long rcv_ok, rcv_to, rcv_bad, rcv_notok;
    atomic_long sel_send, sel_recv, sel_to, sel_bad, sel_notok, sel_self;
    atomic_long early;
    long drained, drain_bad, hung, rounds_done;
    lg_tot tot;
};

static int64_t t2_deadline(gt_rng *r)
{
    int64_t now = goro_now();
    switch (gt_rng_below(r, 16)) {
    case 0: return now - 10 * US; /* already past: like the try variant */
    case 1: return now;
    case 2: case 3: case 4: case 5: return now + (int64_t)gt_rng_below(r, 10001); /* 0-10 us */
    default: return now + (int64_t)gt_rng_below(r, 201) * US;
    }
}

/* Between operations: now and then a pause as long as the deadlines, so
 * that the other side's waits expire about as often as they are served. */
static void t2_pause(gt_rng *r)
{
    uint32_t k = gt_rng_below(r, 16);
    if (k == 0)
        goro_sleep((int64_t)gt_rng_below(r, 201) * US);
    else if (k == 1)
        spin_ns((int64_t)gt_rng_below(r, 30) * US);
    else if (k == 2)
        goro_yield();
}

static void t2_timeout(t2_state *s, int64_t dl, atomic_long *count)
{
    if (goro_now() < dl)
        INC(s->early);
    INC(*count);
}

static void t2_producer(t2_state *s, t2_arg *a, gt_rng *r)
{
    uint32_t seq = 0;
    for (long i = 0; i < s->iters && seq + 2 <= LG_SEQ; i++) {
        t2_pause(r);
        int64_t dl = t2_deadline(r);
        if (a->role == T2_SEND) {
            uint64_t v = lg_val(a->id, seq++);
            int rc = goro_chan_send_until(s->ch[gt_rng_below(r, 2)], &v, dl);
            if (rc == 0) {
                lg_mark(s->lg, v, LG_SENT);
                INC(s->snd_ok);
            } else {
                lg_mark(s->lg, v, LG_UNSENT);
                if (rc == -ETIMEDOUT)
                    t2_timeout(s, dl, &s->snd_to);
                else
                    INC(s->snd_bad);
            }
        } else if (a->role == T2_SELSEND) {
            uint64_t v[2] = {lg_val(a->id, seq), lg_val(a->id, seq + 1)};
            seq += 2;
            goro_select_case cs[2] = {
                {.ch = s->ch[0], .op = GORO_SELECT_SEND, .elem = &v[0]},
                {.ch = s->ch[1], .op = GORO_SELECT_SEND, .elem = &v[1]},
            };
            int rc = goro_select(cs, 2, 0, dl);
            if (rc == 0 || rc == 1) {
                if (!cs[rc].ok)
                    INC(s->sel_notok);
                lg_mark(s->lg, v[rc], LG_SENT);
                /* Deliberate bug 2: the case not chosen counted as sent. */
                lg_mark(s->lg, v[1 - rc], inject_once(2) ? LG_SENT : LG_UNSENT);
                INC(s->sel_send);
            } else {
                lg_mark(s->lg, v[0], LG_UNSENT);
                lg_mark(s->lg, v[1], LG_UNSENT);
                if (rc == -ETIMEDOUT)
                    t2_timeout(s, dl, &s->sel_to);
                else
                    INC(s->sel_bad);
            }
        } else { /* T2_MIXED */
            uint64_t v = lg_val(a->id, seq++), in1 = 0, in2 = 0;
            goro_select_case cs[3] = {
                {.ch = s->ch[0], .op = GORO_SELECT_SEND, .elem = &v},
                {.ch = s->ch[1], .op = GORO_SELECT_RECV, .elem = &in1},
                {.ch = s->ch[0], .op = GORO_SELECT_RECV, .elem = &in2},
            };
            int rc = goro_select(cs, 3, 0, dl);
            if (rc >= 0 && rc < 3 && !cs[rc].ok)
                INC(s->sel_notok);
            if (rc == 0) {
                lg_mark(s->lg, v, LG_SENT);
                INC(s->sel_send);
                continue;
            }
            lg_mark(s->lg, v, LG_UNSENT);
            if (rc == 1 || rc == 2) {
                uint64_t got = rc == 1 ? in1 : in2;
                if (rc == 2 && lg_producer(got) == a->id)
                    INC(s->sel_self);
                lg_recv(s->lg, got);
                INC(s->sel_recv);
            } else if (rc == -ETIMEDOUT) {
                t2_timeout(s, dl, &s->sel_to);
            } else {
                INC(s->sel_bad);
            }
        }
    }
}

static void t2_consumer(t2_state *s, t2_arg *a, gt_rng *r)
{
    while (!atomic_load(&s->stop)) {
        t2_pause(r);
        int64_t dl = t2_deadline(r);
        if (a->role == T2_RECV) {
            uint64_t v = 0;
            bool ok = false;
            int rc = goro_chan_recv_until(s->ch[gt_rng_below(r, 2)], &v, &ok, dl);
            if (rc == 0) {
                if (!ok) {
                    INC(s->rcv_notok);
                    continue;
                }
                lg_recv(s->lg, v);
                INC(s->rcv_ok);
            } else if (rc == -ETIMEDOUT) {
                t2_timeout(s, dl, &s->rcv_to);
            } else {
                INC(s->rcv_bad);
            }
        } else {
            uint64_t in[3] = {0, 0, 0};
            goro_select_case cs[3] = {
                {.ch = s->ch[0], .op = GORO_SELECT_RECV, .elem = &in[0]},
                {.ch = s->ch[1], .op = GORO_SELECT_RECV, .elem = &in[1]},
                {.ch = s->ch[0], .op = GORO_SELECT_RECV, .elem = &in[2]},
            };
            int rc = goro_select(cs, 3, 0, dl);
            if (rc >= 0 && rc < 3) {
                if (!cs[rc].ok) {
                    INC(s->sel_notok);
                    continue;
                }
                lg_recv(s->lg, in[rc]);
                INC(s->sel_recv);
            } else if (rc == -ETIMEDOUT) {
                t2_timeout(s, dl, &s->sel_to);
            } else {
                INC(s->sel_bad);
            }
        }
    }
}

static void t2_goroutine(void *arg)
{
    t2_arg *a = arg;
    t2_state *s = a->s;
    gt_rng r;
    gt_rng_seed(&r, a->seed);
    if (a->role <= T2_MIXED) {
        t2_producer(s, a, &r);
        goro_waitgroup_done(&s->wg_prod);
    } else {
        t2_consumer(s, a, &r);
        goro_waitgroup_done(&s->wg_cons);
    }
}

static void t2_main(void *arg)
{
    t2_state *s = arg;
    gt_rng r;
    gt_rng_seed(&r, seed_for(2, s->procs));
    static const int roles[] = {T2_SEND,    T2_SEND,    T2_SEND,   T2_SELSEND, T2_SELSEND,
                                T2_MIXED,   T2_RECV,    T2_RECV,   T2_RECV,    T2_SELRECV,
                                T2_SELRECV};
    const int n = (int)(sizeof roles / sizeof roles[0]);
    for (int round = 0; round < 4; round++) {
        if (goro_chan_make(&s->ch[0], sizeof(uint64_t), 0) ||
            goro_chan_make(&s->ch[1], sizeof(uint64_t), 1 + (size_t)round)) {
            s->hung++;
            return;
        }
        lg_reset(s->lg);
        atomic_store(&s->stop, 0);
        int order[16], np = 0;
        for (int i = 0; i < n; i++) {
            s->args[i] = (t2_arg){.s = s, .role = roles[i], .id = i, .seed = gt_rng_next(&r)};
            np += roles[i] <= T2_MIXED;
            order[i] = i;
        }
        shuffle_ints(&r, order, n);
        goro_waitgroup_add(&s->wg_prod, np);
        goro_waitgroup_add(&s->wg_cons, n - np);
        for (int i = 0; i < n; i++)
            goro_go(t2_goroutine, &s->args[order[i]]);
        if (gt_wg_wait(&s->wg_prod, 60)) {
            s->hung++;
            report_hang("deadlines vs wake-ups (producers)");
            return;
        }
        atomic_store(&s->stop, 1);
        if (gt_wg_wait(&s->wg_cons, 30)) {
            s->hung++;
            report_hang("deadlines vs wake-ups (consumers)");
            return;
        }
        /* What sits in B's buffer was sent: it counts as received here. */
        for (int c = 0; c < 2; c++) {
            for (;;) {
                uint64_t v = 0;
                bool ok = false;
                int rc = goro_chan_tryrecv(s->ch[c], &v, &ok);
                if (rc == -EAGAIN)
                    break;
                if (rc || !ok) {
                    s->drain_bad++;
                    break;
                }
                lg_recv(s->lg, v);
                s->drained++;
            }
        }
        lg_tally(s->lg, &s->tot);
        goro_chan_release(s->ch[0]);
        goro_chan_release(s->ch[1]);
        s->rounds_done++;
    }
}

static void test_deadline_vs_wakeup(void **st)
{
    (void)st;
    long iters = (long)gt_scale("deadline-vs-wakeup attempts per goroutine", 2000, 2000, 1000);
    for (int procs = 1; procs <= 2; procs++) {
        t2_state *s = calloc(1, sizeof *s);
        s->lg = calloc(1, sizeof *s->lg);
        s->iters = iters;
        s->procs = procs;
        goro_options o = gt_opts(procs);
        int64_t t0 = gt_mono_ns();
        assert_rc(gt_run("deadlines vs wake-ups", t2_main, s, &o, 120), 0);
        fprintf(stderr,
                "  [2 procs=%d] %.2f s: sends %ld ok / %ld timed out, receives %ld ok / %ld "
                "timed out, selects %ld sent / %ld received / %ld timed out, %ld drained\n",
                procs, (double)(gt_mono_ns() - t0) / 1e9, GET(s->snd_ok), GET(s->snd_to),
                GET(s->rcv_ok), GET(s->rcv_to), GET(s->sel_send), GET(s->sel_recv),
                GET(s->sel_to), s->drained);
        CHECK_ZERO(*s, hung);
        CHECK_EQ(s->rounds_done, 4);
        check_ledger(&s->tot, "deadlines vs wake-ups");
        CHECK_EQ(s->tot.sent, GET(s->snd_ok) + GET(s->sel_send));
        CHECK_EQ(s->tot.recv, GET(s->rcv_ok) + GET(s->sel_recv) + s->drained);
        CHECK_ZERO(*s, snd_bad);
        CHECK_ZERO(*s, rcv_bad);
        CHECK_ZERO(*s, rcv_notok);
        CHECK_ZERO(*s, sel_bad);
        CHECK_ZERO(*s, sel_notok);
        CHECK_ZERO(*s, sel_self);
        CHECK_ZERO(*s, early);
        CHECK_ZERO(*s, drain_bad);
        /* Both outcomes must actually have raced. */
        assert_true_msg(GET(s->snd_ok) > 0 && GET(s->snd_to) > 0,
                        "no race exercised: %ld ok, %ld timeouts", GET(s->snd_ok),
                        GET(s->snd_to));
        free(s->lg);
        free(s);
    }
}

/* ========================================================================= */
/* 3. the waker drops the last reference                                      */
/* ========================================================================= */

/* The woken goroutine W holds no reference to its channels; the waker K
 * holds the only one. As soon as K's operation has completed W's wait, K
 * releases it (freeing the channel) while W is still on its way out - which
 * goro.h allows: a goroutine blocked on a channel keeps it alive until its
 * call has returned. K may only release once W is provably blocked (or
 * done): for rendezvous kinds the completed rendezvous proves it, for close
 * and trysend kinds K first sees W parked through goro_leak_find. Kinds:
 *  0 W recv_until (unbuffered)            K send_until, release
 *  1 W send_until (unbuffered)            K recv_until, release
 *  2 W select {recv c0, recv c1, send c2, recv c0} (unbuffered)
 *                                         K completes one case, releases all
 *  3 W recv_until (unbuffered or cap 2)   K sees W parked, close or trysend,
 *                                         release
 *  4 W select {recv c0, recv c1, recv c1, send c2} (c1 cap 1)
 *                                         K sees W parked, closes one, releases
 *                                         all
 *  5 W send_until (unbuffered)            K sees W parked, close, release
 * W's deadline is either short (0-40 us, racing K, which starts acting
 * 0-150 us late) or far. */

#define T3_KINDS 6

typedef struct t3_state {
    long rounds;
    int procs;
    goro_leak_scope *scope;
    /* the round */
    int kind, pick, action, order[3];
    bool w_short, buffered;
    goro_chan *c[3];
    int64_t w_timeout, k_timeout, k_delay;
    bool k_sleep;
    uint64_t w_id;
    atomic_int w_done;
    int w_rc, w_val, k_rc, k_val, proof;
    bool w_ok, k_ok;
    goro_waitgroup wg;
    /* totals */
    long woken[T3_KINDS];     /* the wake-then-release race ran */
    long timed_out[T3_KINDS]; /* W's deadline won */
    long mismatch[T3_KINDS];
    long no_proof, hung, rounds_done;
} t3_state;

static void t3_w(void *arg)
{
    t3_state *s = arg;
    int64_t dl = goro_deadline_after(s->w_timeout);
    int v = -1, v2 = -1;
    bool ok = false;
    if (g_break == 30 && s->kind == 3)
        for (int i = 0; i < 20; i++)
            goro_yield(); /* let K free the channel first */
    switch (s->kind) {
    case 0:
    case 3:
        s->w_rc = goro_chan_recv_until(s->c[0], &v, &ok, dl);
        break;
    case 1:
    case 5:
        v = 42;
        s->w_rc = goro_chan_send_until(s->c[0], &v, dl);
        break;
    case 2: {
        int out = 43;
        goro_select_case cs[4] = {
            {.ch = s->c[0], .op = GORO_SELECT_RECV, .elem = &v},
            {.ch = s->c[1], .op = GORO_SELECT_RECV, .elem = &v},
            {.ch = s->c[2], .op = GORO_SELECT_SEND, .elem = &out},
            {.ch = s->c[0], .op = GORO_SELECT_RECV, .elem = &v2},
        };
        s->w_rc = goro_select(cs, 4, 0, dl);
        if (s->w_rc >= 0 && s->w_rc < 4)
            ok = cs[s->w_rc].ok;
        if (s->w_rc == 3)
            v = v2;
        break;
    }
    default: { /* 4 */
        int out = 45;
        goro_select_case cs[4] = {
            {.ch = s->c[0], .op = GORO_SELECT_RECV, .elem = &v},
            {.ch = s->c[1], .op = GORO_SELECT_RECV, .elem = &v},
            {.ch = s->c[1], .op = GORO_SELECT_RECV, .elem = &v2},
            {.ch = s->c[2], .op = GORO_SELECT_SEND, .elem = &out},
        };
        s->w_rc = goro_select(cs, 4, 0, dl);
        if (s->w_rc >= 0 && s->w_rc < 4)
            ok = cs[s->w_rc].ok;
        if (s->w_rc == 2)
            v = v2;
        break;
    }
    }
    /* Deliberate bug 3: the woken side records a wrong value. */
    s->w_val = s->kind == 0 && s->w_rc == 0 && inject_once(3) ? v + 1 : v;
    s->w_ok = ok;
    atomic_store(&s->w_done, 1);
    goro_waitgroup_done(&s->wg);
}

static void t3_wait_w_done(t3_state *s)
{
    while (!atomic_load(&s->w_done))
        goro_yield(); /* bounded: W's own call has a deadline */
}

/* 1: W is seen parked in its call; 0: W already returned; -1: neither. */
static int t3_wait_parked(t3_state *s, const char *reason)
{
    goro_leak_opts o = {.scope = s->scope, .retries = -1, .max_wait = -1};
    for (int i = 0; i < 20000; i++) {
        if (atomic_load(&s->w_done))
            return 0;
        goro_leak_report *rep = NULL;
        bool parked = false;
        if (goro_leak_find(&o, &rep) == 0 && rep) {
            for (size_t k = 0; k < rep->count; k++) {
                const goro_goroutine_info *g = &rep->goroutines[k];
                if (g->id == s->w_id && g->blocked && strcmp(g->state, reason) == 0)
                    parked = true;
            }
            goro_leak_report_free(rep);
        }
        if (parked)
            return 1;
        goro_yield();
    }
    return -1;
}

static void t3_release_all(t3_state *s)
{
    for (int i = 0; i < 3; i++)
        goro_chan_release(s->c[s->order[i]]);
}

static void t3_k(void *arg)
{
    t3_state *s = arg;
    if (s->k_delay) { /* act at a random moment around W's deadline */
        if (s->k_sleep)
            goro_sleep(s->k_delay);
        else
            spin_ns(s->k_delay);
    }
    int64_t dl = goro_deadline_after(s->k_timeout);
    int v = 0;
    bool ok = false;
    switch (s->kind) {
    case 0:
        v = 42;
        s->k_rc = goro_chan_send_until(s->c[0], &v, dl);
        if (s->k_rc)
            t3_wait_w_done(s);
        goro_chan_release(s->c[0]); /* the last reference */
        break;
    case 1:
        s->k_rc = goro_chan_recv_until(s->c[0], &v, &ok, dl);
        s->k_val = v;
        s->k_ok = ok;
        if (s->k_rc)
            t3_wait_w_done(s);
        goro_chan_release(s->c[0]);
        break;
    case 2:
        if (s->pick < 2) {
            v = 40 + s->pick;
            s->k_rc = goro_chan_send_until(s->c[s->pick], &v, dl);
        } else {
            s->k_rc = goro_chan_recv_until(s->c[2], &v, &ok, dl);
            s->k_val = v;
            s->k_ok = ok;
        }
        if (s->k_rc)
            t3_wait_w_done(s);
        t3_release_all(s);
        break;
    case 3:
        if (g_break == 30) { /* deliberate use-after-free (for ASan) */
            goro_chan_release(s->c[0]);
            s->k_rc = 0;
            break;
        }
        s->proof = t3_wait_parked(s, "chan receive");
        if (s->proof < 0)
            t3_wait_w_done(s);
        if (s->action == 0) {
            s->k_rc = goro_chan_close(s->c[0]);
        } else {
            v = 44;
            s->k_rc = goro_chan_trysend(s->c[0], &v);
        }
        goro_chan_release(s->c[0]);
        break;
    case 4:
        s->proof = t3_wait_parked(s, "select");
        if (s->proof < 0)
            t3_wait_w_done(s);
        s->k_rc = goro_chan_close(s->c[s->pick]);
        t3_release_all(s);
        break;
    default: /* 5 */
        s->proof = t3_wait_parked(s, "chan send");
        if (s->proof < 0)
            t3_wait_w_done(s);
        s->k_rc = goro_chan_close(s->c[0]);
        goro_chan_release(s->c[0]);
        break;
    }
    goro_waitgroup_done(&s->wg);
}

/* Is the round's outcome one of the allowed pairs? Returns 1 woken (the
 * race ran), 0 timed out (allowed only with a short W deadline), -1 wrong. */
static int t3_judge(const t3_state *s)
{
    bool to = s->w_short && s->w_rc == -ETIMEDOUT;
    switch (s->kind) {
    case 0:
        if (s->k_rc == 0 && s->w_rc == 0 && s->w_ok && s->w_val == 42)
            return 1;
        return to && s->k_rc == -ETIMEDOUT ? 0 : -1;
    case 1:
        if (s->k_rc == 0 && s->k_ok && s->k_val == 42 && s->w_rc == 0)
            return 1;
        return to && s->k_rc == -ETIMEDOUT ? 0 : -1;
    case 2:
        if (s->k_rc == 0 && s->w_ok) {
            if (s->pick == 0 && (s->w_rc == 0 || s->w_rc == 3) && s->w_val == 40)
                return 1;
            if (s->pick == 1 && s->w_rc == 1 && s->w_val == 41)
                return 1;
            if (s->pick == 2 && s->w_rc == 2 && s->k_ok && s->k_val == 43)
                return 1;
            return -1;
        }
        return to && s->k_rc == -ETIMEDOUT ? 0 : -1;
    case 3:
        if (s->action == 0) { /* close */
            if (s->k_rc != 0)
                return -1;
            if (s->w_rc == 0 && !s->w_ok && s->w_val == 0)
                return 1;
            return to ? 0 : -1;
        }
        if (s->k_rc == 0 && s->w_rc == 0 && s->w_ok && s->w_val == 44)
            return 1;
        /* W timed out first: the value stays buffered (freed with the
         * channel), or an unbuffered trysend finds nobody. */
        if (to && s->k_rc == (s->buffered ? 0 : -EAGAIN))
            return 0;
        return -1;
    case 4:
        if (s->k_rc != 0)
            return -1;
        if (s->w_rc >= 0 && !s->w_ok) {
            if (s->pick == 0 && s->w_rc == 0 && s->w_val == 0)
                return 1;
            if (s->pick == 1 && (s->w_rc == 1 || s->w_rc == 2) && s->w_val == 0)
                return 1;
            if (s->pick == 2 && s->w_rc == 3)
                return 1;
            return -1;
        }
        return to ? 0 : -1;
    default:
        if (s->k_rc != 0)
            return -1;
        if (s->w_rc == -EPIPE)
            return 1;
        return to ? 0 : -1;
    }
}

static void t3_main(void *arg)
{
    t3_state *s = arg;
    gt_rng r;
    gt_rng_seed(&r, seed_for(3, s->procs));
    if (goro_leak_scope_begin(&s->scope)) {
        s->hung++;
        return;
    }
    for (long round = 0; round < s->rounds; round++) {
        s->kind = (int)gt_rng_below(&r, T3_KINDS);
        s->pick = (int)gt_rng_below(&r, 3);
        s->action = (int)gt_rng_below(&r, 2);
        s->w_short = gt_rng_below(&r, 2);
        s->buffered = s->kind == 3 && gt_rng_below(&r, 2);
        for (int i = 0; i < 3; i++)
            s->order[i] = i;
        shuffle_ints(&r, s->order, 3);
        /* Far deadlines are far enough never to fire: then only "woken"
         * outcomes are allowed. */
        int64_t far = gt_slow(5 * GORO_SECOND);
        s->w_timeout = s->w_short ? (int64_t)gt_rng_below(&r, 41) * US : far;
        s->k_timeout = s->w_short ? (int64_t)gt_rng_below(&r, 61) * US : far;
        /* Timers fire some 70 us late (OS timer slack): K acts 0-150 us
         * after its start, spinning or sleeping. */
        s->k_delay = s->w_short ? (int64_t)gt_rng_below(&r, 151) * US : 0;
        s->k_sleep = gt_rng_below(&r, 2);
        size_t caps[3] = {s->buffered ? 2 : 0, s->kind == 4 ? 1 : 0, 0};
        for (int i = 0; i < 3; i++)
            if (goro_chan_make(&s->c[i], sizeof(int), caps[i])) {
                s->hung++;
                return;
            }
        if (s->kind != 2 && s->kind != 4) { /* one channel used */
            goro_chan_release(s->c[1]);
            goro_chan_release(s->c[2]);
        }
        atomic_store(&s->w_done, 0);
        s->w_rc = s->k_rc = 1;
        s->w_val = s->k_val = -1;
        s->w_ok = s->k_ok = false;
        s->proof = 1;
        goro_waitgroup_add(&s->wg, 2);
        uint64_t id = 0;
        if (goro_spawn(t3_w, s, &(const goro_spawn_opts){.name = "woken"}, &id)) {
            s->hung++;
            return;
        }
        s->w_id = id;
        goro_go(t3_k, s);
        if (gt_wg_wait(&s->wg, 20)) {
            s->hung++;
            report_hang("waker drops last reference");
            return;
        }
        int j = t3_judge(s);
        if (j > 0)
            s->woken[s->kind]++;
        else if (j == 0)
            s->timed_out[s->kind]++;
        else {
            s->mismatch[s->kind]++;
            if (s->mismatch[s->kind] <= 3)
                fprintf(stderr,
                        "  [3] round %ld kind %d pick %d action %d short %d buffered %d: "
                        "W rc %d (%s) ok %d val %d, K rc %d (%s) ok %d val %d\n",
                        round, s->kind, s->pick, s->action, s->w_short, s->buffered, s->w_rc,
                        gt_errname(s->w_rc), s->w_ok, s->w_val, s->k_rc, gt_errname(s->k_rc),
                        s->k_ok, s->k_val);
        }
        if (s->proof < 0)
            s->no_proof++;
        s->rounds_done++;
    }
    goro_leak_scope_end(s->scope);
}

static void test_waker_drops_last_ref(void **st)
{
    (void)st;
    long rounds = (long)gt_scale("waker-drops-last-ref rounds", 20000, 20000, 8000);
    for (int procs = 1; procs <= 2; procs++) {
        t3_state *s = calloc(1, sizeof *s);
        s->rounds = rounds;
        s->procs = procs;
        goro_options o = gt_opts(procs);
        int64_t t0 = gt_mono_ns();
        assert_rc(gt_run("waker drops last reference", t3_main, s, &o, 150), 0);
        long woken = 0, mism = 0;
        char line[256];
        size_t off = 0;
        for (int k = 0; k < T3_KINDS; k++) {
            woken += s->woken[k];
            mism += s->mismatch[k];
            off += (size_t)snprintf(line + off, sizeof line - off, " k%d:%ld/%ld", k,
                                    s->woken[k], s->timed_out[k]);
        }
        fprintf(stderr, "  [3 procs=%d] %ld rounds in %.2f s, woken/timed-out per kind:%s\n",
                procs, s->rounds_done, (double)(gt_mono_ns() - t0) / 1e9, line);
        CHECK_ZERO(*s, hung);
        CHECK_EQ(s->rounds_done, rounds);
        CHECK_ZERO(*s, no_proof);
        assert_true_msg(mism == 0, "%ld rounds with a wrong outcome (see above)", mism);
        assert_true_msg(woken > rounds / 4, "only %ld of %ld rounds ran the race", woken, rounds);
        free(s);
    }
}

/* ========================================================================= */
/* 4. context cancel and deadline racing waits                                */
/* ========================================================================= */

/* Per round: root (cancel), P = cancel or 0-500 us timeout child of root,
 * C1 = 0-500 us timeout child of P, C2 = cancel child of P, C3 = deadline
 * child of C2. Two cancellers cancel P and C2 at random times within
 * 0-500 us and release their reference right after the cancel. Six waiters
 * (own reference each) block in goro_ctx_wait or in a select on
 * goro_ctx_done(ctx) plus a data channel fed by a sender, with far or short
 * deadlines. Every waiter's final result must agree with goro_ctx_err
 * afterwards; in "hold" rounds main then checks the tree (a child's error
 * against its parent's and its deadline); in "drop" rounds main releases its
 * references at once, so the last release races the waiters. */

#define T4_NW 6
enum { T4_P, T4_C1, T4_C2, T4_C3 };

typedef struct t4_state t4_state;
typedef struct {
    t4_state *s;
    int role; /* 0 waiter, 1 canceller, 2 feeder */
    int ctx_idx;
    bool select, short_dl;
    goro_ctx *ctx; /* own reference */
    int64_t at;    /* canceller: offset from t0 */
    uint64_t seed;
} t4_arg;

struct t4_state {
    long rounds;
    int procs;
    ledger *lg;
    goro_ctx *root, *ctx[4];
    bool p_timeout;
    goro_chan *x;
    int64_t t0;
    goro_waitgroup wg;
    t4_arg args[T4_NW + 3];

    atomic_long w_cancelled, w_ctx_timeout, w_done_case, w_x, disagree, bad_rc, hang, early,
        sticky_bad, notok, iter_cap;
    atomic_long fed_ok, fed_to, fed_bad;
    long tree_bad, not_done, drained, hung, rounds_done, hold_rounds;
    lg_tot tot;
};

static void t4_waiter(t4_state *s, t4_arg *a)
{
    gt_rng r;
    gt_rng_seed(&r, a->seed);
    goro_ctx *X = a->ctx;
    int e_before = goro_ctx_err(X);
    int final = 1;
    for (int it = 0;; it++) {
        if (it == 100000) {
            INC(s->iter_cap);
            break;
        }
        int64_t dl = a->short_dl ? goro_now() + (int64_t)gt_rng_below(&r, 301) * US
                                 : goro_deadline_after(gt_slow(5 * GORO_SECOND));
        if (!a->select) {
            int rc = goro_ctx_wait(X, dl);
            int64_t now = goro_now();
            /* Deliberate bug 4: compare with an error read before the wait. */
            int e = g_break == 4 ? e_before : goro_ctx_err(X);
            if (rc == -ECANCELED) {
                if (e != -ECANCELED)
                    INC(s->disagree);
                INC(s->w_cancelled);
                final = rc;
                break;
            }
            if (rc != -ETIMEDOUT) {
                INC(s->bad_rc);
                break;
            }
            if (now < dl) { /* not our deadline: the context's */
                if (e != -ETIMEDOUT)
                    INC(s->disagree);
                INC(s->w_ctx_timeout);
                final = rc;
                break;
            }
            if (!a->short_dl) {
                INC(s->hang); /* 5 s passed and no context fired */
                break;
            }
            if (e != 0) {     /* done around our deadline: agree on it next */
                final = e;
                if (e == -ETIMEDOUT)
                    INC(s->w_ctx_timeout);
                else
                    INC(s->w_cancelled);
                break;
            }
        } else {
            uint64_t v = 0;
            goro_select_case cs[2] = {
                {.ch = goro_ctx_done(X), .op = GORO_SELECT_RECV, .elem = NULL},
                {.ch = s->x, .op = GORO_SELECT_RECV, .elem = &v},
            };
            int rc = goro_select(cs, 2, 0, dl);
            if (rc == 0) {
                if (cs[0].ok)
                    INC(s->notok);
                final = goro_ctx_err(X);
                if (final == 0)
                    INC(s->disagree);
                INC(s->w_done_case);
                break;
            }
            if (rc == 1) {
                if (!cs[1].ok)
                    INC(s->notok);
                lg_recv(s->lg, v);
                INC(s->w_x);
                continue;
            }
            if (rc != -ETIMEDOUT) {
                INC(s->bad_rc);
                break;
            }
            if (goro_now() < dl)
                INC(s->early);
            if (!a->short_dl) {
                INC(s->hang);
                break;
            }
        }
    }
    /* Sticky, and a done context makes ctx_wait return its error at once. */
    if (final != 1) {
        int e = goro_ctx_err(X);
        if (e != final || goro_ctx_wait(X, 0) != e)
            INC(s->sticky_bad);
    }
    goro_ctx_release(X);
}

static void t4_goroutine(void *arg)
{
    t4_arg *a = arg;
    t4_state *s = a->s;
    if (a->role == 0) {
        t4_waiter(s, a);
    } else if (a->role == 1) {
        goro_sleep_until(s->t0 + a->at); /* places the cancel in time */
        goro_ctx_cancel(a->ctx);
        goro_ctx_release(a->ctx); /* right after the cancel */
    } else {
        gt_rng r;
        gt_rng_seed(&r, a->seed);
        uint32_t n = gt_rng_below(&r, 24);
        for (uint32_t i = 0; i < n; i++) {
            uint64_t v = lg_val(0, i);
            int rc = goro_chan_send_until(s->x, &v, goro_now() + (int64_t)gt_rng_below(&r, 301) * US);
            lg_mark(s->lg, v, rc == 0 ? LG_SENT : LG_UNSENT);
            if (rc == 0)
                INC(s->fed_ok);
            else if (rc == -ETIMEDOUT)
                INC(s->fed_to);
            else
                INC(s->fed_bad);
        }
    }
    goro_waitgroup_done(&s->wg);
}

/* Main's view of the tree once everything returned (main holds every
 * reference): all done, errors consistent with parents and deadlines. */
static void t4_check_tree(t4_state *s)
{
    int64_t now = goro_now();
    int e[4];
    int64_t d[4];
    for (int i = 0; i < 4; i++) {
        e[i] = goro_ctx_err(s->ctx[i]);
        d[i] = goro_ctx_deadline(s->ctx[i]);
        if (e[i] != -ECANCELED && e[i] != -ETIMEDOUT) {
            s->not_done++;
            return;
        }
        if (e[i] == -ETIMEDOUT && d[i] > now)
            s->tree_bad++; /* timed out before its deadline */
    }
    static const int parent[4] = {-1, T4_P, T4_P, T4_C2};
    for (int i = 1; i < 4; i++) {
        int p = parent[i];
        if (d[i] > d[p])
            s->tree_bad++; /* a child's deadline is never later */
        /* Cancelled: only through the parent, except C2 (own canceller). */
        if (e[i] == -ECANCELED && i != T4_C2 && e[p] != -ECANCELED)
            s->tree_bad++;
    }
    if (!s->p_timeout && e[T4_P] != -ECANCELED)
        s->tree_bad++;
}

static void t4_main(void *arg)
{
    t4_state *s = arg;
    gt_rng r;
    gt_rng_seed(&r, seed_for(4, s->procs));
    for (long round = 0; round < s->rounds; round++) {
        bool hold = gt_rng_below(&r, 2);
        s->p_timeout = gt_rng_below(&r, 2);
        int rc = goro_ctx_with_cancel(NULL, &s->root);
        rc = rc ? rc
                : s->p_timeout
                      ? goro_ctx_with_timeout(s->root, (int64_t)gt_rng_below(&r, 501) * US, &s->ctx[T4_P])
                      : goro_ctx_with_cancel(s->root, &s->ctx[T4_P]);
        rc = rc ? rc : goro_ctx_with_timeout(s->ctx[T4_P], (int64_t)gt_rng_below(&r, 501) * US, &s->ctx[T4_C1]);
        rc = rc ? rc : goro_ctx_with_cancel(s->ctx[T4_P], &s->ctx[T4_C2]);
        rc = rc ? rc
                : goro_ctx_with_deadline(s->ctx[T4_C2], goro_now() + (int64_t)gt_rng_below(&r, 501) * US,
                                         &s->ctx[T4_C3]);
        rc = rc ? rc : goro_chan_make(&s->x, sizeof(uint64_t), gt_rng_below(&r, 2));
        if (rc) {
            s->hung++;
            return;
        }
        lg_reset(s->lg);
        s->t0 = goro_now();
        int n = 0;
        for (int i = 0; i < T4_NW; i++) {
            int ci = (int)gt_rng_below(&r, 4);
            s->args[n++] = (t4_arg){.role = 0,
                                    .ctx_idx = ci,
                                    .select = gt_rng_below(&r, 2),
                                    .short_dl = gt_rng_below(&r, 3) == 0,
                                    .ctx = goro_ctx_retain(s->ctx[ci])};
        }
        s->args[n++] = (t4_arg){.role = 1, .ctx = goro_ctx_retain(s->ctx[T4_P]),
                                .at = (int64_t)gt_rng_below(&r, 501) * US};
        s->args[n++] = (t4_arg){.role = 1, .ctx = goro_ctx_retain(s->ctx[T4_C2]),
                                .at = (int64_t)gt_rng_below(&r, 501) * US};
        s->args[n++] = (t4_arg){.role = 2};
        int order[T4_NW + 3];
        for (int i = 0; i < n; i++) {
            s->args[i].s = s;
            s->args[i].seed = gt_rng_next(&r);
            order[i] = i;
        }
        shuffle_ints(&r, order, n);
        goro_waitgroup_add(&s->wg, n);
        for (int i = 0; i < n; i++)
            goro_go(t4_goroutine, &s->args[order[i]]);
        if (!hold) { /* the waiters' and cancellers' references are the last */
            int ro[4] = {0, 1, 2, 3};
            shuffle_ints(&r, ro, 4);
            for (int i = 0; i < 4; i++)
                goro_ctx_release(s->ctx[ro[i]]);
        }
        if (gt_wg_wait(&s->wg, 30)) {
            s->hung++;
            report_hang("ctx cancel vs waits");
            return;
        }
        if (hold) {
            t4_check_tree(s);
            s->hold_rounds++;
        }
        for (;;) {
            uint64_t v;
            bool ok;
            if (goro_chan_tryrecv(s->x, &v, &ok) || !ok)
                break;
            lg_recv(s->lg, v);
            s->drained++;
        }
        lg_tally(s->lg, &s->tot);
        goro_ctx_cancel(s->root);
        if (hold) {
            int ro[4] = {0, 1, 2, 3};
            shuffle_ints(&r, ro, 4);
            for (int i = 0; i < 4; i++)
                goro_ctx_release(s->ctx[ro[i]]);
        }
        goro_ctx_release(s->root);
        goro_chan_release(s->x);
        s->rounds_done++;
    }
}

static void test_ctx_cancel_vs_waits(void **st)
{
    (void)st;
    long rounds = (long)gt_scale("ctx-cancel-vs-waits rounds", 1500, 1000, 600);
    for (int procs = 1; procs <= 2; procs++) {
        t4_state *s = calloc(1, sizeof *s);
        s->lg = calloc(1, sizeof *s->lg);
        s->rounds = rounds;
        s->procs = procs;
        goro_options o = gt_opts(procs);
        int64_t t0 = gt_mono_ns();
        assert_rc(gt_run("ctx cancel vs waits", t4_main, s, &o, 120), 0);
        fprintf(stderr,
                "  [4 procs=%d] %ld rounds in %.2f s: waits ended cancelled %ld, timed out by "
                "ctx %ld, select done case %ld; %ld values via select, %ld fed ok / %ld timed "
                "out\n",
                procs, s->rounds_done, (double)(gt_mono_ns() - t0) / 1e9, GET(s->w_cancelled),
                GET(s->w_ctx_timeout), GET(s->w_done_case), GET(s->w_x), GET(s->fed_ok),
                GET(s->fed_to));
        CHECK_ZERO(*s, hung);
        CHECK_EQ(s->rounds_done, rounds);
        CHECK_ZERO(*s, disagree);
        CHECK_ZERO(*s, bad_rc);
        CHECK_ZERO(*s, hang);
        CHECK_ZERO(*s, early);
        CHECK_ZERO(*s, sticky_bad);
        CHECK_ZERO(*s, notok);
        CHECK_ZERO(*s, iter_cap);
        CHECK_ZERO(*s, fed_bad);
        CHECK_ZERO(*s, tree_bad);
        CHECK_ZERO(*s, not_done);
        CHECK_EQ(GET(s->w_cancelled) + GET(s->w_ctx_timeout) + GET(s->w_done_case),
                 rounds * T4_NW);
        check_ledger(&s->tot, "ctx select data channel");
        CHECK_EQ(s->tot.sent, GET(s->fed_ok));
        CHECK_EQ(s->tot.recv, GET(s->w_x) + s->drained);
        free(s->lg);
        free(s);
    }
}

/* ========================================================================= */
/* 5. mutex and rwmutex hand-over against lock_until timeouts                 */
/* ========================================================================= */

/* Eight goroutines take one mutex with lock_until (0-200 us deadlines, some
 * far), trylock and lock; holders sometimes yield or sleep past 1 ms (the
 * hand-over mode). Readers and writers do the same on an rwmutex. Exact
 * count: successful critical sections = counter; timeouts only -ETIMEDOUT,
 * failed trylocks only -EBUSY, unlocks always 0; far deadlines never
 * expire; exclusion never violated; at the end both are free. */

typedef struct t5_state {
    int procs;
    long iters;
    goro_mutex mu;
    long counter;
    atomic_int inside;
    goro_rwmutex rw;
    long rw_counter;
    atomic_int readers_in, writer_in;
    goro_waitgroup wg;

    atomic_long m_ok, m_to, m_busy, m_bad, m_far_to, m_excl, m_unlock_bad, m_early;
    atomic_long r_ok, r_to, r_busy, r_bad, r_far_to, r_excl, r_unlock_bad;
    atomic_long w_ok, w_to, w_busy, w_bad, w_far_to, w_excl, w_unlock_bad;
    long attempts_m, attempts_r, attempts_w; /* set by main */
    int end_m_try, end_m_unlock, end_m_unlock2, end_w_try, end_w_unlock, end_r_try,
        end_r_unlock, end_r_unlock2, end_w_unlock2;
    long hung;
} t5_state;

typedef struct {
    t5_state *s;
    int role; /* 0 mutex, 1 reader, 2 writer */
    uint64_t seed;
} t5_arg;

/* Inside a critical section: nothing, a short spin, a yield, or (rarely) a
 * sleep past the 1 ms hand-over threshold of waiters. */
static void t5_hold(gt_rng *r)
{
    uint32_t k = gt_rng_below(r, 200);
    if (k < 100)
        return;
    if (k < 150)
        spin_ns((int64_t)gt_rng_below(r, 10) * US);
    else if (k < 198)
        goro_yield();
    else
        goro_sleep(1200 * US);
}

/* op: 0-5 short deadline, 6 far deadline, 7 try, 8 plain lock. */
static int64_t t5_deadline(gt_rng *r, int op)
{
    if (op == 6)
        return goro_deadline_after(gt_slow(5 * GORO_SECOND));
    return goro_now() + (int64_t)gt_rng_below(r, 201) * US;
}

static void t5_mutex_worker(t5_state *s, gt_rng *r)
{
    for (long i = 0; i < s->iters; i++) {
        int op = (int)gt_rng_below(r, 9);
        int64_t dl = t5_deadline(r, op);
        int rc = op == 7 ? goro_mutex_trylock(&s->mu) : op == 8 ? goro_mutex_lock(&s->mu)
                                                                : goro_mutex_lock_until(&s->mu, dl);
        if (rc == -ETIMEDOUT && op <= 6) {
            if (goro_now() < dl)
                INC(s->m_early);
            INC(s->m_to);
            if (op == 6)
                INC(s->m_far_to);
            /* Deliberate bug 5: ignore the timeout and go in anyway. */
            if (!inject_once(5))
                continue;
        } else if (rc == -EBUSY && op == 7) {
            INC(s->m_busy);
            continue;
        } else if (rc) {
            INC(s->m_bad);
            continue;
        } else {
            INC(s->m_ok);
        }
        if (atomic_fetch_add(&s->inside, 1) != 0)
            INC(s->m_excl);
        s->counter++;
        t5_hold(r);
        atomic_fetch_sub(&s->inside, 1);
        if (goro_mutex_unlock(&s->mu))
            INC(s->m_unlock_bad);
    }
}

static void t5_reader(t5_state *s, gt_rng *r)
{
    for (long i = 0; i < s->iters; i++) {
        int op = (int)gt_rng_below(r, 9);
        int64_t dl = t5_deadline(r, op);
        int rc = op == 7 ? goro_rwmutex_tryrlock(&s->rw) : op == 8 ? goro_rwmutex_rlock(&s->rw)
                                                                   : goro_rwmutex_rlock_until(&s->rw, dl);
        if (rc == -ETIMEDOUT && op <= 6) {
            INC(s->r_to);
            if (op == 6)
                INC(s->r_far_to);
            continue;
        }
        if (rc == -EBUSY && op == 7) {
            INC(s->r_busy);
            continue;
        }
        if (rc) {
            INC(s->r_bad);
            continue;
        }
        INC(s->r_ok);
        atomic_fetch_add(&s->readers_in, 1);
        if (atomic_load(&s->writer_in))
            INC(s->r_excl);
        long snap = *(volatile long *)&s->rw_counter;
        t5_hold(r);
        if (*(volatile long *)&s->rw_counter != snap || atomic_load(&s->writer_in))
            INC(s->r_excl);
        atomic_fetch_sub(&s->readers_in, 1);
        if (goro_rwmutex_runlock(&s->rw))
            INC(s->r_unlock_bad);
    }
}

static void t5_writer(t5_state *s, gt_rng *r)
{
    for (long i = 0; i < s->iters; i++) {
        int op = (int)gt_rng_below(r, 9);
        int64_t dl = t5_deadline(r, op);
        int rc = op == 7 ? goro_rwmutex_trylock(&s->rw) : op == 8 ? goro_rwmutex_lock(&s->rw)
                                                                   : goro_rwmutex_lock_until(&s->rw, dl);
        if (rc == -ETIMEDOUT && op <= 6) {
            INC(s->w_to);
            if (op == 6)
                INC(s->w_far_to);
            continue;
        }
        if (rc == -EBUSY && op == 7) {
            INC(s->w_busy);
            continue;
        }
        if (rc) {
            INC(s->w_bad);
            continue;
        }
        INC(s->w_ok);
        if (atomic_fetch_add(&s->writer_in, 1) != 0 || atomic_load(&s->readers_in) != 0)
            INC(s->w_excl);
        s->rw_counter++;
        t5_hold(r);
        atomic_fetch_sub(&s->writer_in, 1);
        if (goro_rwmutex_unlock(&s->rw))
            INC(s->w_unlock_bad);
    }
}

static void t5_goroutine(void *arg)
{
    t5_arg *a = arg;
    gt_rng r;
    gt_rng_seed(&r, a->seed);
    if (a->role == 0)
        t5_mutex_worker(a->s, &r);
    else if (a->role == 1)
        t5_reader(a->s, &r);
    else
        t5_writer(a->s, &r);
    goro_waitgroup_done(&a->s->wg);
}

static void t5_main(void *arg)
{
    t5_state *s = arg;
    gt_rng r;
    gt_rng_seed(&r, seed_for(5, s->procs));
    t5_arg args[15];
    int n = 0;
    for (int i = 0; i < 8; i++)
        args[n++] = (t5_arg){.s = s, .role = 0, .seed = gt_rng_next(&r)};
    for (int i = 0; i < 4; i++)
        args[n++] = (t5_arg){.s = s, .role = 1, .seed = gt_rng_next(&r)};
    for (int i = 0; i < 3; i++)
        args[n++] = (t5_arg){.s = s, .role = 2, .seed = gt_rng_next(&r)};
    s->attempts_m = 8 * s->iters;
    s->attempts_r = 4 * s->iters;
    s->attempts_w = 3 * s->iters;
    goro_waitgroup_add(&s->wg, n);
    for (int i = 0; i < n; i++)
        goro_go(t5_goroutine, &args[i]);
    if (gt_wg_wait(&s->wg, 90)) {
        s->hung++;
        report_hang("mutex hand-over vs timeouts");
        return;
    }
    /* Both must be free now. */
    s->end_m_try = goro_mutex_trylock(&s->mu);
    s->end_m_unlock = goro_mutex_unlock(&s->mu);
    s->end_m_unlock2 = goro_mutex_unlock(&s->mu);
    s->end_w_try = goro_rwmutex_trylock(&s->rw);
    s->end_w_unlock = goro_rwmutex_unlock(&s->rw);
    s->end_w_unlock2 = goro_rwmutex_unlock(&s->rw);
    s->end_r_try = goro_rwmutex_tryrlock(&s->rw);
    s->end_r_unlock = goro_rwmutex_runlock(&s->rw);
    s->end_r_unlock2 = goro_rwmutex_runlock(&s->rw);
}

static void test_mutex_handover_vs_timeouts(void **st)
{
    (void)st;
    long iters = (long)gt_scale("mutex-handover iterations per goroutine", 3000, 3000, 1500);
    for (int procs = 1; procs <= 2; procs++) {
        t5_state *s = calloc(1, sizeof *s);
        s->iters = iters;
        s->procs = procs;
        goro_options o = gt_opts(procs);
        int64_t t0 = gt_mono_ns();
        assert_rc(gt_run("mutex hand-over vs timeouts", t5_main, s, &o, 150), 0);
        fprintf(stderr,
                "  [5 procs=%d] %.2f s: mutex %ld ok / %ld timed out / %ld busy; rwmutex "
                "readers %ld / %ld / %ld, writers %ld / %ld / %ld\n",
                procs, (double)(gt_mono_ns() - t0) / 1e9, GET(s->m_ok), GET(s->m_to),
                GET(s->m_busy), GET(s->r_ok), GET(s->r_to), GET(s->r_busy), GET(s->w_ok),
                GET(s->w_to), GET(s->w_busy));
        CHECK_ZERO(*s, hung);
        CHECK_EQ(s->counter, GET(s->m_ok));
        CHECK_EQ(GET(s->m_ok) + GET(s->m_to) + GET(s->m_busy) + GET(s->m_bad), s->attempts_m);
        CHECK_ZERO(*s, m_bad);
        CHECK_ZERO(*s, m_far_to);
        CHECK_ZERO(*s, m_excl);
        CHECK_ZERO(*s, m_unlock_bad);
        CHECK_ZERO(*s, m_early);
        CHECK_EQ(s->rw_counter, GET(s->w_ok));
        CHECK_EQ(GET(s->r_ok) + GET(s->r_to) + GET(s->r_busy) + GET(s->r_bad), s->attempts_r);
        CHECK_EQ(GET(s->w_ok) + GET(s->w_to) + GET(s->w_busy) + GET(s->w_bad), s->attempts_w);
        CHECK_ZERO(*s, r_bad);
        CHECK_ZERO(*s, w_bad);
        CHECK_ZERO(*s, r_far_to);
        CHECK_ZERO(*s, w_far_to);
        CHECK_ZERO(*s, r_excl);
        CHECK_ZERO(*s, w_excl);
        CHECK_ZERO(*s, r_unlock_bad);
        CHECK_ZERO(*s, w_unlock_bad);
        assert_rc(s->end_m_try, 0);
        assert_rc(s->end_m_unlock, 0);
        assert_rc(s->end_m_unlock2, -EPERM);
        assert_rc(s->end_w_try, 0);
        assert_rc(s->end_w_unlock, 0);
        assert_rc(s->end_w_unlock2, -EPERM);
        assert_rc(s->end_r_try, 0);
        assert_rc(s->end_r_unlock, 0);
        assert_rc(s->end_r_unlock2, -EPERM);
        assert_true_msg(GET(s->m_to) > 0 && GET(s->w_to) + GET(s->r_to) > 0,
                        "no timeout raced a hand-over");
        free(s);
    }
}

/* ========================================================================= */
/* 6. threads that are not goroutines as wakers                               */
/* ========================================================================= */

/* Per round, seven plain pthreads act while goroutines block:
 *  - two trysend distinct values into c1 (cap 0-2) and both close it
 *    (exactly one close succeeds), goroutines receive until ok = false;
 *  - one tryrecv's from c2, which goroutines send into, closes it after a
 *    random number of values and drains it; the senders get -EPIPE;
 *  - one calls goro_waitgroup_done on a WaitGroup goroutines wait on, then
 *    once more (-EINVAL);
 *  - one cancels a context goroutines wait on (ctx_wait and select);
 *  - one unlocks a mutex each time a goroutine has locked it (goroutines
 *    hand the lock over through it), then unlocks once more (-EPERM);
 *  - one sets a predicate under trylock and broadcasts (or signals) a cond.
 * The threads spin with sched_yield, bounded by a time limit; they are
 * joined with goro_blocking(pthread_join). */

#define T6_Q1 40 /* values per c1 thread */
#define T6_Q2 30 /* values per c2 goroutine sender */

typedef struct t6_state t6_state;
typedef struct {
    t6_state *s;
    int role, id;
    uint64_t seed;
} t6_arg;

enum { T6G_C1RECV, T6G_C2SEND, T6G_WG, T6G_CTX, T6G_CTXSEL, T6G_MUTEX, T6G_COND };
enum { T6T_C1SEND, T6T_C2RECV, T6T_WG, T6T_CTX, T6T_MUTEX, T6T_COND };

struct t6_state {
    long rounds;
    int procs;
    ledger *lg;
    int64_t limit; /* gt_mono_ns() bound for threads */
    goro_waitgroup wg;

    goro_chan *c1;
    atomic_long c1_try_ok, c1_try_again, c1_try_epipe, c1_try_bad, c1_close_ok, c1_close_already,
        c1_close_bad, c1_recv_ok, c1_recv_closed, c1_recv_bad;
    long exp_c1_recv;

    goro_chan *c2;
    long c2_target;
    atomic_long c2_send_ok, c2_send_epipe, c2_send_capped, c2_send_bad, c2_try_ok, c2_try_again,
        c2_try_bad, c2_close_bad, c2_closed_seen;
    long exp_c2_send;

    goro_waitgroup wgx;
    int wg_n;
    atomic_long wg_wait_ok, wg_wait_bad, wg_done_bad, wg_extra_ok;
    long exp_wg_wait;

    goro_ctx *ctx;
    goro_chan *never;
    atomic_long ctx_ok, ctx_bad;
    long exp_ctx;

    goro_mutex mu;
    long mu_counter, mu_total;
    atomic_int mu_inside, handoff;
    atomic_long mu_unlocks, mu_bad, mu_excl, mu_extra_ok;
    long mu_unlocks_total;

    goro_mutex cmu;
    goro_cond cv;
    long gen, gen_target;
    int cond_signal; /* 0 broadcast once, 1 signal until all left */
    atomic_long cw_ok, cw_bad, cw_left, cv_bad;
    long exp_cw;

    atomic_long gave_up;
    long hung, rounds_done, thread_fail;
    lg_tot tot;
};

static void th_pause(gt_rng *r)
{
    uint32_t k = gt_rng_below(r, 8);
    if (k < 3)
        return;
    if (k < 7)
        sched_yield();
    else
        spin_ns((int64_t)gt_rng_below(r, 20) * US);
}

static bool th_expired(t6_state *s)
{
    if (gt_mono_ns() < s->limit)
        return false;
    INC(s->gave_up);
    return true;
}

static void *t6_thread(void *arg)
{
    t6_arg *a = arg;
    t6_state *s = a->s;
    gt_rng r;
    gt_rng_seed(&r, a->seed);
    switch (a->role) {
    case T6T_C1SEND: {
        for (uint32_t q = 0; q < T6_Q1; q++) {
            uint64_t v = lg_val(a->id, q);
            int rc;
            while ((rc = goro_chan_trysend(s->c1, &v)) == -EAGAIN) {
                INC(s->c1_try_again);
                if (th_expired(s))
                    break;
                th_pause(&r);
            }
            if (rc == 0) {
                lg_mark(s->lg, v, LG_SENT);
                INC(s->c1_try_ok);
                th_pause(&r);
                continue;
            }
            lg_mark(s->lg, v, LG_UNSENT);
            if (rc == -EPIPE)
                INC(s->c1_try_epipe);
            else if (rc != -EAGAIN)
                INC(s->c1_try_bad);
            break;
        }
        int rc = goro_chan_close(s->c1);
        if (rc == 0)
            INC(s->c1_close_ok);
        else if (rc == -EALREADY)
            INC(s->c1_close_already);
        else
            INC(s->c1_close_bad);
        break;
    }
    case T6T_C2RECV: {
        long got = 0;
        bool closed = false;
        for (;;) {
            if (!closed && got >= s->c2_target) {
                if (goro_chan_close(s->c2))
                    INC(s->c2_close_bad);
                closed = true;
            }
            uint64_t v = 0;
            bool ok = false;
            int rc = goro_chan_tryrecv(s->c2, &v, &ok);
            if (rc == -EAGAIN && !closed) {
                INC(s->c2_try_again);
                if (th_expired(s))
                    break;
                th_pause(&r);
                continue;
            }
            if (rc) {
                INC(s->c2_try_bad);
                break;
            }
            if (!ok) {
                INC(s->c2_closed_seen);
                break;
            }
            /* Deliberate bug 6: one value received but not recorded. */
            if (!inject_once(6))
                lg_recv(s->lg, v);
            INC(s->c2_try_ok);
            got++;
        }
        break;
    }
    case T6T_WG:
        for (int i = 0; i < s->wg_n; i++) {
            th_pause(&r);
            if (goro_waitgroup_done(&s->wgx))
                INC(s->wg_done_bad);
        }
        if (goro_waitgroup_done(&s->wgx) == -EINVAL) /* would go negative */
            INC(s->wg_extra_ok);
        break;
    case T6T_CTX:
        for (uint32_t n = gt_rng_below(&r, 200); n; n--)
            th_pause(&r);
        goro_ctx_cancel(s->ctx);
        break;
    case T6T_MUTEX:
        while (GET(s->mu_unlocks) < s->mu_total) {
            if (atomic_exchange(&s->handoff, 0)) {
                if (goro_mutex_unlock(&s->mu) == 0)
                    INC(s->mu_unlocks);
                else
                    INC(s->mu_bad);
                continue;
            }
            if (th_expired(s))
                break;
            th_pause(&r);
        }
        if (goro_mutex_unlock(&s->mu) == -EPERM) /* free by now */
            INC(s->mu_extra_ok);
        break;
    default: /* T6T_COND */
        for (uint32_t n = gt_rng_below(&r, 100); n; n--)
            th_pause(&r);
        for (;;) {
            int rc = goro_mutex_trylock(&s->cmu);
            if (rc == 0)
                break;
            if (rc != -EBUSY)
                INC(s->cv_bad);
            if (th_expired(s))
                return NULL;
            th_pause(&r);
        }
        s->gen = s->gen_target;
        if (goro_mutex_unlock(&s->cmu))
            INC(s->cv_bad);
        if (s->cond_signal == 0) {
            if (goro_cond_broadcast(&s->cv))
                INC(s->cv_bad);
        } else {
            while (GET(s->cw_left) < s->exp_cw) {
                if (goro_cond_signal(&s->cv))
                    INC(s->cv_bad);
                if (th_expired(s))
                    break;
                th_pause(&r);
            }
        }
        break;
    }
    return NULL;
}

static int64_t t6_far(void) { return goro_deadline_after(gt_slow(10 * GORO_SECOND)); }

static void t6_goroutine(void *arg)
{
    t6_arg *a = arg;
    t6_state *s = a->s;
    switch (a->role) {
    case T6G_C1RECV:
        for (;;) {
            uint64_t v = 0;
            bool ok = false;
            int rc = goro_chan_recv(s->c1, &v, &ok);
            if (rc) {
                INC(s->c1_recv_bad);
                break;
            }
            if (!ok) {
                if (v != 0)
                    INC(s->c1_recv_bad);
                INC(s->c1_recv_closed);
                break;
            }
            lg_recv(s->lg, v);
            INC(s->c1_recv_ok);
        }
        break;
    case T6G_C2SEND: {
        uint32_t q;
        for (q = 0; q < T6_Q2; q++) {
            uint64_t v = lg_val(a->id, q);
            int rc = goro_chan_send_until(s->c2, &v, t6_far());
            if (rc == 0) {
                lg_mark(s->lg, v, LG_SENT);
                INC(s->c2_send_ok);
                continue;
            }
            lg_mark(s->lg, v, LG_UNSENT);
            if (rc == -EPIPE)
                INC(s->c2_send_epipe);
            else
                INC(s->c2_send_bad);
            break;
        }
        if (q == T6_Q2)
            INC(s->c2_send_capped);
        break;
    }
    case T6G_WG:
        if (goro_waitgroup_wait_until(&s->wgx, t6_far()) == 0)
            INC(s->wg_wait_ok);
        else
            INC(s->wg_wait_bad);
        break;
    case T6G_CTX:
        if (goro_ctx_wait(s->ctx, t6_far()) == -ECANCELED && goro_ctx_err(s->ctx) == -ECANCELED)
            INC(s->ctx_ok);
        else
            INC(s->ctx_bad);
        break;
    case T6G_CTXSEL: {
        goro_select_case cs[2] = {
            {.ch = s->never, .op = GORO_SELECT_RECV, .elem = NULL},
            {.ch = goro_ctx_done(s->ctx), .op = GORO_SELECT_RECV, .elem = NULL},
        };
        int rc = goro_select(cs, 2, 0, t6_far());
        if (rc == 1 && !cs[1].ok && goro_ctx_err(s->ctx) == -ECANCELED)
            INC(s->ctx_ok);
        else
            INC(s->ctx_bad);
        break;
    }
    case T6G_MUTEX:
        for (int i = 0; i < 10; i++) {
            if (goro_mutex_lock_until(&s->mu, t6_far())) {
                INC(s->mu_bad);
                break;
            }
            if (atomic_fetch_add(&s->mu_inside, 1) != 0)
                INC(s->mu_excl);
            s->mu_counter++;
            atomic_fetch_sub(&s->mu_inside, 1);
            /* Hand the unlock to the thread; nobody else may be pending. */
            if (atomic_exchange(&s->handoff, 1) != 0)
                INC(s->mu_excl);
        }
        break;
    default: { /* T6G_COND */
        if (goro_mutex_lock(&s->cmu)) {
            INC(s->cw_bad);
            break;
        }
        bool good = true;
        while (s->gen < s->gen_target) {
            int rc = goro_cond_wait_until(&s->cv, &s->cmu, t6_far());
            if (rc) { /* a far deadline passed: a lost wake-up */
                good = false;
                break;
            }
        }
        if (goro_mutex_unlock(&s->cmu))
            good = false;
        if (good)
            INC(s->cw_ok);
        else
            INC(s->cw_bad);
        INC(s->cw_left);
        break;
    }
    }
    goro_waitgroup_done(&s->wg);
}

static void t6_join(void *arg)
{
    pthread_t *th = arg;
    pthread_join(*th, NULL);
}

static void t6_main(void *arg)
{
    t6_state *s = arg;
    gt_rng r;
    gt_rng_seed(&r, seed_for(6, s->procs));
    for (long round = 0; round < s->rounds; round++) {
        int rc = goro_chan_make(&s->c1, sizeof(uint64_t), gt_rng_below(&r, 3));
        rc = rc ? rc : goro_chan_make(&s->c2, sizeof(uint64_t), gt_rng_below(&r, 3));
        rc = rc ? rc : goro_chan_make(&s->never, 0, 0);
        rc = rc ? rc : goro_ctx_with_cancel(NULL, &s->ctx);
        if (rc) {
            s->hung++;
            return;
        }
        lg_reset(s->lg);
        s->limit = gt_mono_ns() + gt_slow(20 * GORO_SECOND);
        int n_c1r = 1 + (int)gt_rng_below(&r, 3), n_c2s = 1 + (int)gt_rng_below(&r, 3);
        s->c2_target = (long)gt_rng_below(&r, (uint32_t)(n_c2s * T6_Q2) + 1);
        s->wg_n = 1 + (int)gt_rng_below(&r, 4);
        goro_waitgroup_add(&s->wgx, s->wg_n);
        memset(&s->mu, 0, sizeof s->mu);
        s->mu_counter = 0;
        s->mu_total = 3 * 10;
        atomic_store(&s->mu_unlocks, 0);
        atomic_store(&s->handoff, 0);
        s->gen = 0;
        s->gen_target = round + 1;
        s->cond_signal = (int)gt_rng_below(&r, 2);
        atomic_store(&s->cw_left, 0);
        s->exp_cw = 3;

        t6_arg g[16];
        int ng = 0;
        for (int i = 0; i < n_c1r; i++)
            g[ng++] = (t6_arg){.role = T6G_C1RECV};
        for (int i = 0; i < n_c2s; i++)
            g[ng++] = (t6_arg){.role = T6G_C2SEND, .id = 2 + i};
        g[ng++] = (t6_arg){.role = T6G_WG};
        g[ng++] = (t6_arg){.role = T6G_WG};
        g[ng++] = (t6_arg){.role = T6G_CTX};
        g[ng++] = (t6_arg){.role = T6G_CTXSEL};
        for (int i = 0; i < 3; i++)
            g[ng++] = (t6_arg){.role = T6G_MUTEX};
        for (int i = 0; i < 3; i++)
            g[ng++] = (t6_arg){.role = T6G_COND};
        s->exp_c1_recv += n_c1r;
        s->exp_c2_send += n_c2s;
        s->exp_wg_wait += 2;
        s->exp_ctx += 2;
        t6_arg t[7] = {
            {.role = T6T_C1SEND, .id = 0}, {.role = T6T_C1SEND, .id = 1}, {.role = T6T_C2RECV},
            {.role = T6T_WG},              {.role = T6T_CTX},             {.role = T6T_MUTEX},
            {.role = T6T_COND},
        };
        for (int i = 0; i < ng; i++) {
            g[i].s = s;
            g[i].seed = gt_rng_next(&r);
        }
        for (int i = 0; i < 7; i++) {
            t[i].s = s;
            t[i].seed = gt_rng_next(&r);
        }
        goro_waitgroup_add(&s->wg, ng);
        bool threads_first = gt_rng_below(&r, 2);
        pthread_t th[7];
        int nth = 0;
        for (int pass = 0; pass < 2; pass++) {
            if ((pass == 0) == threads_first) {
                for (; nth < 7; nth++)
                    if (pthread_create(&th[nth], NULL, t6_thread, &t[nth])) {
                        s->thread_fail++;
                        break;
                    }
            } else {
                for (int i = 0; i < ng; i++)
                    goro_go(t6_goroutine, &g[i]);
            }
        }
        int wrc = gt_wg_wait(&s->wg, 60);
        for (int i = 0; i < nth; i++)
            goro_blocking(t6_join, &th[i]);
        if (wrc || s->thread_fail) {
            s->hung++;
            report_hang("foreign-thread wakers");
            return;
        }
        if (s->mu_counter != s->mu_total || GET(s->mu_unlocks) != s->mu_total)
            INC(s->mu_bad);
        if (goro_mutex_trylock(&s->mu) || goro_mutex_unlock(&s->mu))
            INC(s->mu_bad);
        s->mu_unlocks_total += GET(s->mu_unlocks);
        lg_tally(s->lg, &s->tot);
        goro_ctx_release(s->ctx);
        goro_chan_release(s->never);
        goro_chan_release(s->c1);
        goro_chan_release(s->c2);
        s->rounds_done++;
    }
}

static void test_foreign_thread_wakers(void **st)
{
    (void)st;
    long rounds = (long)gt_scale("foreign-waker rounds", 300, 300, 150);
    for (int procs = 1; procs <= 2; procs++) {
        t6_state *s = calloc(1, sizeof *s);
        s->lg = calloc(1, sizeof *s->lg);
        s->rounds = rounds;
        s->procs = procs;
        goro_options o = gt_opts(procs);
        int64_t t0 = gt_mono_ns();
        assert_rc(gt_run("foreign-thread wakers", t6_main, s, &o, 150), 0);
        fprintf(stderr,
                "  [6 procs=%d] %ld rounds in %.2f s: c1 %ld trysends ok (%ld -EAGAIN, %ld "
                "-EPIPE), c2 %ld sends ok (%ld -EPIPE), %ld tryrecvs ok; %ld foreign "
                "unlocks\n",
                procs, s->rounds_done, (double)(gt_mono_ns() - t0) / 1e9, GET(s->c1_try_ok),
                GET(s->c1_try_again), GET(s->c1_try_epipe), GET(s->c2_send_ok),
                GET(s->c2_send_epipe), GET(s->c2_try_ok), s->mu_unlocks_total);
        CHECK_ZERO(*s, hung);
        CHECK_ZERO(*s, gave_up);
        CHECK_EQ(s->rounds_done, rounds);
        check_ledger(&s->tot, "foreign-thread wakers");
        CHECK_EQ(s->tot.sent, GET(s->c1_try_ok) + GET(s->c2_send_ok));
        CHECK_EQ(s->tot.recv, GET(s->c1_recv_ok) + GET(s->c2_try_ok));
        CHECK_ZERO(*s, c1_try_bad);
        CHECK_EQ(GET(s->c1_close_ok), rounds);
        CHECK_EQ(GET(s->c1_close_already), rounds);
        CHECK_ZERO(*s, c1_close_bad);
        CHECK_ZERO(*s, c1_recv_bad);
        CHECK_EQ(GET(s->c1_recv_closed), s->exp_c1_recv);
        CHECK_ZERO(*s, c2_send_bad);
        CHECK_EQ(GET(s->c2_send_epipe) + GET(s->c2_send_capped), s->exp_c2_send);
        CHECK_ZERO(*s, c2_try_bad);
        CHECK_ZERO(*s, c2_close_bad);
        CHECK_EQ(GET(s->c2_closed_seen), rounds);
        CHECK_EQ(GET(s->wg_wait_ok), s->exp_wg_wait);
        CHECK_ZERO(*s, wg_wait_bad);
        CHECK_ZERO(*s, wg_done_bad);
        CHECK_EQ(GET(s->wg_extra_ok), rounds);
        CHECK_EQ(GET(s->ctx_ok), s->exp_ctx);
        CHECK_ZERO(*s, ctx_bad);
        CHECK_ZERO(*s, mu_bad);
        CHECK_ZERO(*s, mu_excl);
        CHECK_EQ(GET(s->mu_extra_ok), rounds);
        CHECK_EQ(s->mu_unlocks_total, 30 * rounds);
        CHECK_EQ(GET(s->cw_ok), 3 * rounds);
        CHECK_ZERO(*s, cw_bad);
        CHECK_ZERO(*s, cv_bad);
        free(s->lg);
        free(s);
    }
}

/* ========================================================================= */
/* 7. close of a connection during a blocked read or write                    */
/* ========================================================================= */

/* A TCP pair on 127.0.0.1 per round. Variants:
 *  0 a goroutine blocked reading the server end; another closes it once
 *    goro_num_io_waiting shows the reader (and the client's reader) parked:
 *    the reader gets -EBADF, the client's reader end of stream (0);
 *  1 as 0, and the client writes a byte at the same moment: the reader gets
 *    the byte (1) or -EBADF; the client reader 0 or -ECONNRESET;
 *  2 two goroutines blocked reading the server end: both get -EBADF;
 *  3 a goroutine blocked writing (small socket buffers, peer not reading):
 *    it gets -EBADF.
 * Every call returns within a bound measured from the close; every
 * descriptor is closed at the end (the /proc/self/fd count is unchanged). */

#define T7_WBUF (4u << 20)

typedef struct t7_state {
    int procs;
    long rounds;
    goro_listener *l;
    char addr[64];
    /* round */
    goro_conn *srv, *cli;
    int variant;
    atomic_int done_srv; /* server-side goroutines that returned */
    int srv_rc[2], cli_rc, cli_wrc;
    int64_t srv_at[2], close_at;
    int wr_yields;
    atomic_int closing;
    goro_waitgroup wg;
    unsigned char *wbuf;
    /* totals */
    long per_variant[4], bad_srv, bad_cli, bad_close, bad_cli_close, slow, hung, setup_bad,
        rounds_done, no_park, got_byte;
    int64_t max_latency;
    int fd_before, fd_after_first, fd_after;
    int listen_rc;
} t7_state;

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

typedef struct {
    t7_state *s;
    int slot; /* server-side goroutines: 0/1 */
} t7_arg;

static void t7_srv_reader(void *arg)
{
    t7_arg *a = arg;
    t7_state *s = a->s;
    char b[16];
    int rc = (int)goro_conn_read(s->srv, b, sizeof b, goro_deadline_after(gt_slow(5 * GORO_SECOND)),
                                 NULL);
    s->srv_at[a->slot] = goro_now();
    s->srv_rc[a->slot] = rc;
    atomic_fetch_add(&s->done_srv, 1);
    goro_waitgroup_done(&s->wg);
}

static void t7_srv_writer(void *arg)
{
    t7_arg *a = arg;
    t7_state *s = a->s;
    int rc = (int)goro_conn_write(s->srv, s->wbuf, T7_WBUF,
                                  goro_deadline_after(gt_slow(5 * GORO_SECOND)), NULL);
    s->srv_at[a->slot] = goro_now();
    s->srv_rc[a->slot] = rc;
    atomic_fetch_add(&s->done_srv, 1);
    goro_waitgroup_done(&s->wg);
}

static void t7_cli_reader(void *arg)
{
    t7_state *s = arg;
    char b[16];
    s->cli_rc = (int)goro_conn_read(s->cli, b, sizeof b,
                                    goro_deadline_after(gt_slow(5 * GORO_SECOND)), NULL);
    goro_waitgroup_done(&s->wg);
}

static void t7_cli_writer(void *arg)
{
    t7_state *s = arg;
    /* Like the closer: start once both readers are parked (or the close has
     * begun: the window can be missed), then a few yields, so that the byte
     * and the close arrive in either order. */
    int64_t until = goro_deadline_after(gt_slow(5 * GORO_SECOND));
    while (goro_num_io_waiting() < 2 && !atomic_load(&s->closing) && goro_now() < until)
        goro_yield();
    for (int i = s->wr_yields; i > 0; i--)
        goro_yield();
    s->cli_wrc = (int)goro_conn_write(s->cli, "x", 1, goro_deadline_after(gt_slow(GORO_SECOND)), NULL);
    goro_waitgroup_done(&s->wg);
}

static void t7_main(void *arg)
{
    t7_state *s = arg;
    gt_rng r;
    gt_rng_seed(&r, seed_for(7, s->procs));
    if ((s->listen_rc = goro_listen_tcp("127.0.0.1:0", 0, &s->l)) ||
        (s->listen_rc = goro_listener_addr(s->l, s->addr, sizeof s->addr)))
        return;
    for (long round = 0; round < s->rounds; round++) {
        int64_t dl = goro_deadline_after(gt_slow(5 * GORO_SECOND));
        if (goro_dial_tcp(s->addr, &s->cli, dl, NULL)) {
            s->setup_bad++;
            break;
        }
        if (goro_accept(s->l, &s->srv, dl, NULL)) {
            s->setup_bad++;
            goro_conn_close(s->cli);
            break;
        }
        s->variant = (int)gt_rng_below(&r, 4);
        s->wr_yields = (int)gt_rng_below(&r, 4);
        atomic_store(&s->done_srv, 0);
        atomic_store(&s->closing, 0);
        s->srv_rc[0] = s->srv_rc[1] = s->cli_rc = s->cli_wrc = 99;
        t7_arg a[2] = {{s, 0}, {s, 1}};
        int nsrv = s->variant == 2 ? 2 : 1;
        /* Parked I/O waiters that prove every server-side call is inside. */
        size_t want = (size_t)nsrv + (s->variant <= 1);
        if (s->variant == 3) {
            int small = 4096;
            setsockopt(goro_conn_fd(s->srv), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
            setsockopt(goro_conn_fd(s->cli), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
        }
        int nwg = nsrv + (s->variant <= 1) + (s->variant == 1);
        goro_waitgroup_add(&s->wg, nwg);
        for (int i = 0; i < nsrv; i++)
            goro_go(s->variant == 3 ? t7_srv_writer : t7_srv_reader, &a[i]);
        if (s->variant <= 1)
            goro_go(t7_cli_reader, s);
        if (s->variant == 1)
            goro_go(t7_cli_writer, s);
        /* Wait on real state: the calls are parked (or, variant 1, the
         * reader already returned with the byte). */
        int64_t until = goro_deadline_after(gt_slow(5 * GORO_SECOND));
        while (goro_num_io_waiting() < want && atomic_load(&s->done_srv) < nsrv &&
               goro_now() < until)
            goro_yield();
        bool parked = goro_num_io_waiting() >= want || atomic_load(&s->done_srv) == nsrv;
        if (!parked)
            s->no_park++;
        for (uint32_t i = gt_rng_below(&r, 4); i; i--)
            goro_yield();
        if (s->variant == 1 && gt_rng_below(&r, 2)) /* let the byte arrive, or not */
            goro_sleep((int64_t)gt_rng_below(&r, 151) * US);
        atomic_store(&s->closing, 1);
        s->close_at = goro_now();
        bool wrong_end = inject_once(7); /* deliberate bug 7 */
        int crc = parked ? goro_conn_close(wrong_end ? s->cli : s->srv) : 0;
        if (crc)
            s->bad_close++;
        if (gt_wg_wait(&s->wg, 20)) {
            s->hung++;
            report_hang("conn close vs blocked read");
            return;
        }
        if (wrong_end)
            goro_conn_close(s->srv);
        /* Check the outcome. */
        for (int i = 0; i < nsrv; i++) {
            int rc = s->srv_rc[i];
            bool good = rc == -EBADF || (s->variant == 1 && rc == 1);
            if (!good) {
                s->bad_srv++;
                if (s->bad_srv <= 3)
                    fprintf(stderr, "  [7] round %ld variant %d: server-side call returned %d (%s)\n",
                            round, s->variant, rc, gt_errname(rc));
            }
            if (rc == 1)
                s->got_byte++;
            int64_t lat = s->srv_at[i] - s->close_at;
            if (rc == -EBADF && lat > s->max_latency)
                s->max_latency = lat;
            if (rc == -EBADF && lat > gt_slow(250 * MS))
                s->slow++;
        }
        if (s->variant == 0 && s->cli_rc != 0)
            s->bad_cli++;
        if (s->variant == 1 && s->cli_rc != 0 && s->cli_rc != -ECONNRESET)
            s->bad_cli++;
        if (s->variant == 1 && s->cli_wrc != 1 && s->cli_wrc != -EPIPE && s->cli_wrc != -ECONNRESET)
            s->bad_cli++;
        if (!wrong_end && !(g_break == 70 && round == 1) && goro_conn_close(s->cli))
            s->bad_cli_close++;
        s->per_variant[s->variant]++;
        s->rounds_done++;
        if (round == 0)
            s->fd_after_first = count_fds();
    }
    goro_listener_close(s->l);
    s->fd_after = count_fds();
}

static void test_conn_close_vs_blocked_read(void **st)
{
    (void)st;
    int fd_start = count_fds();
    for (int procs = 1; procs <= 2; procs++) {
        t7_state *s = calloc(1, sizeof *s);
        s->wbuf = calloc(1, T7_WBUF);
        s->rounds = 200;
        s->procs = procs;
        goro_options o = gt_opts(procs);
        int64_t t0 = gt_mono_ns();
        assert_rc(gt_run("conn close vs blocked read", t7_main, s, &o, 120), 0);
        int fd_end = count_fds();
        fprintf(stderr,
                "  [7 procs=%d] %ld rounds in %.2f s (variants %ld/%ld/%ld/%ld), %ld reads got "
                "the byte, max close-to-return %.1f us; fds %d before, %d after\n",
                procs, s->rounds_done, (double)(gt_mono_ns() - t0) / 1e9, s->per_variant[0],
                s->per_variant[1], s->per_variant[2], s->per_variant[3], s->got_byte,
                (double)s->max_latency / 1e3, fd_start, fd_end);
        assert_rc(s->listen_rc, 0);
        CHECK_ZERO(*s, hung);
        CHECK_ZERO(*s, setup_bad);
        CHECK_EQ(s->rounds_done, 200);
        CHECK_ZERO(*s, no_park);
        CHECK_ZERO(*s, bad_close);
        CHECK_ZERO(*s, bad_srv);
        CHECK_ZERO(*s, bad_cli);
        CHECK_ZERO(*s, bad_cli_close);
        CHECK_ZERO(*s, slow);
        /* Inside the run: no growth after the first round (the poller's own
         * descriptors exist by then), one fewer after the listener closed. */
        CHECK_EQ(s->fd_after, s->fd_after_first - 1);
        CHECK_EQ(fd_end, fd_start);
        free(s->wbuf);
        free(s);
    }
}

/* ------------------------------------------------------------------------- */

int main(void)
{
    const char *e = getenv("GT_RACE_SEED");
    g_seed = e && *e ? strtoull(e, NULL, 10) : (uint64_t)gt_mono_ns();
    e = getenv("GT_RACE_BREAK");
    g_break = e && *e ? atoi(e) : 0;
    fprintf(stderr, "test_race: GT_RACE_SEED=%llu%s\n", (unsigned long long)g_seed,
            g_break ? " (GT_RACE_BREAK set: a deliberate bug is planted)" : "");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_close_vs_blocked),
        cmocka_unit_test(test_deadline_vs_wakeup),
        cmocka_unit_test(test_waker_drops_last_ref),
        cmocka_unit_test(test_ctx_cancel_vs_waits),
        cmocka_unit_test(test_mutex_handover_vs_timeouts),
        cmocka_unit_test(test_foreign_thread_wakers),
        cmocka_unit_test(test_conn_close_vs_blocked_read),
    };
    const char *filter = getenv("GT_FILTER");
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
