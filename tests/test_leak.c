/*
 * test_leak.c - goroutine-leak detection, layers 1 and 2:
 *  - goro_leak_find: results, wait sites, creation chains, message text,
 *    the retry budget, ignore rules, snapshots, scopes (concurrent and
 *    nested), goro_run_checked and goro_assert_no_leaks, bad input;
 *  - the production watchdog: the story's leak (a request handler's
 *    run_async() leaving a goroutine blocked on a send nobody reads) is
 *    reported once, quickly, with the right sites; a worker pool, sleepers,
 *    socket readers, timed waits and young waits are never reported.
 *
 * Nothing is asserted inside a goroutine: goroutines record, the test
 * function checks after goro_run returned. Every goroutine a test leaks on
 * purpose is released before its goro_run ends (no memory is left behind
 * for LeakSanitizer).
 */
#define _GNU_SOURCE
#include "util.h"

#include <pthread.h>
#include <unistd.h>

#define MS GORO_MILLISECOND
#define NOINLINE __attribute__((noinline))

static bool ends_with(const char *s, const char *suffix)
{
    if (!s || !suffix)
        return false;
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* The innermost frame outside goro's own functions (what goro.h calls the
 * top function). */
static const goro_frame *top_frame(const goro_goroutine_info *g)
{
    for (size_t i = 0; i < g->nstack; i++)
        if (strncmp(g->stack[i].func, "goro_", 5) != 0)
            return &g->stack[i];
    return NULL;
}

/* Bit i set when a goroutine named names[i] is in the report; *others
 * counts reported goroutines with none of the names. */
static unsigned names_mask(const goro_leak_report *r, const char *const *names, size_t n,
                           size_t *others)
{
    unsigned m = 0;
    size_t o = 0;
    for (size_t k = 0; r && k < r->count; k++) {
        const char *nm = r->goroutines[k].name;
        size_t i;
        for (i = 0; i < n; i++)
            if (nm && strcmp(nm, names[i]) == 0)
                break;
        if (i < n)
            m |= 1u << i;
        else
            o++;
    }
    if (others)
        *others = o;
    return m;
}

/* Inside a goroutine: poll goro_leak_find (no retries) until every name in
 * names is reported as blocked. */
static bool wait_blocked(const goro_leak_opts *base, const char *const *names, size_t n,
                         int64_t timeout)
{
    goro_leak_opts o = base ? *base : (goro_leak_opts){0};
    o.retries = -1;
    int64_t end = goro_now() + timeout;
    for (;;) {
        goro_leak_report *r = NULL;
        bool all = false;
        if (goro_leak_find(&o, &r) == 0 && r) {
            size_t got = 0;
            for (size_t i = 0; i < n; i++)
                for (size_t k = 0; k < r->count; k++)
                    if (r->goroutines[k].name && strcmp(r->goroutines[k].name, names[i]) == 0 &&
                        r->goroutines[k].blocked) {
                        got++;
                        break;
                    }
            all = got == n;
        }
        goro_leak_report_free(r);
        if (all)
            return true;
        if (goro_now() >= end)
            return false;
        goro_sleep(MS);
    }
}

/* ------------------------------------------------------------------------- */
/* goro_leak_find: nothing left; one goroutine blocked on a send             */
/* ------------------------------------------------------------------------- */

typedef struct fb_state {
    goro_chan *ch;
    goro_waitgroup wg;
    atomic_int send_line, go_line;
    _Atomic uint64_t sender_id;
    uint64_t main_id;
    int send_rc;
    bool blocked_seen;
    int rc_none, rc_find, rc_after, rc_null_opts;
    goro_leak_report *none, *rep, *after;
} fb_state;

static void fb_quick(void *arg)
{
    fb_state *s = arg;
    goro_waitgroup_done(&s->wg);
}

NOINLINE static void lk_send_forever(void *arg)
{
    fb_state *s = arg;
    int v = 7;
    atomic_store(&s->sender_id, goro_id());
    atomic_store(&s->send_line, __LINE__); int rc = goro_chan_send(s->ch, &v);
    s->send_rc = rc;
}

NOINLINE static int lk_spawn_sender(fb_state *s)
{
    atomic_store(&s->go_line, __LINE__); int rc = goro_go(lk_send_forever, s);
    return rc;
}

static void fb_main(void *arg)
{
    fb_state *s = arg;
    s->main_id = goro_id();

    /* Goroutines that all finished: nothing to report. */
    goro_waitgroup_add(&s->wg, 8);
    for (int i = 0; i < 8; i++)
        goro_go(fb_quick, s);
    goro_waitgroup_wait(&s->wg);
    s->rc_none = goro_leak_find(NULL, &s->none);

    /* One sender nobody receives from. */
    if (goro_chan_make(&s->ch, sizeof(int), 0) != 0)
        return;
    if (lk_spawn_sender(s) != 0) {
        goro_chan_release(s->ch);
        return;
    }
    /* The time allowed starts after the first call returns: the first one
     * loads the symbolizer's debug information, which takes seconds under
     * valgrind, and sees the sender before it ran. */
    int64_t end = 0;
    while (!s->blocked_seen) {
        goro_leak_report *r = NULL;
        if (goro_leak_find(&(goro_leak_opts){.retries = -1}, &r) == 0 && r && r->count == 1 &&
            r->goroutines[0].blocked && strcmp(r->goroutines[0].state, "chan send") == 0)
            s->blocked_seen = true;
        goro_leak_report_free(r);
        if (!end)
            end = goro_now() + gt_slow(2 * GORO_SECOND);
        else if (goro_now() >= end)
            break;
        if (!s->blocked_seen)
            goro_sleep(MS);
    }
    s->rc_find = goro_leak_find(NULL, &s->rep);
    /* A zeroed opts struct means the defaults too. */
    goro_leak_report *r2 = NULL;
    s->rc_null_opts = goro_leak_find(&(goro_leak_opts){0}, &r2);
    if (s->rc_null_opts == 0 && (!r2 || r2->count != 1))
        s->rc_null_opts = -1000;
    goro_leak_report_free(r2);

    /* Release it: afterwards nothing is left (with the retry budget). */
    goro_chan_close(s->ch);
    s->rc_after = goro_leak_find(NULL, &s->after);
    goro_chan_release(s->ch);
}

static void test_find_basics(void **st)
{
    (void)st;
    fb_state s;
    memset(&s, 0, sizeof s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("leak find basics", fb_main, &s, &o, 30), 0);

    assert_rc(s.rc_none, 0);
    assert_null(s.none);
    assert_true(s.blocked_seen);
    assert_rc(s.rc_find, 0);
    assert_rc(s.rc_null_opts, 0);
    assert_non_null(s.rep);
    goro_leak_report *r = s.rep;
    assert_int_equal(r->count, 1);
    const goro_goroutine_info *g = &r->goroutines[0];
    uint64_t sid = atomic_load(&s.sender_id);
    assert_int_equal(g->id, sid);
    assert_int_equal(g->parent_id, s.main_id);
    assert_null(g->name);
    assert_string_equal(g->state, "chan send");
    assert_true(g->blocked);
    assert_true(g->wait_ns >= 0);

    /* Wait site: the function that called goro_chan_send, at that line. */
    const goro_frame *top = top_frame(g);
    assert_non_null(top);
    assert_string_equal(top->func, "lk_send_forever");
    assert_true_msg(ends_with(top->file, "test_leak.c"), "wait site file %s", top->file);
    assert_int_equal(top->line, atomic_load(&s.send_line));
    /* The stack starts at the public call. */
    assert_true(g->nstack >= 2);
    assert_string_equal(g->stack[0].func, "goro_chan_send");

    /* Creation chain: the spawning function at the goro_go line, then its
     * caller. */
    assert_true(g->ncreated >= 2);
    assert_string_equal(g->created[0].func, "lk_spawn_sender");
    assert_true(ends_with(g->created[0].file, "test_leak.c"));
    assert_int_equal(g->created[0].line, atomic_load(&s.go_line));
    assert_string_equal(g->created[1].func, "fb_main");

    /* The message. */
    char want[96];
    assert_non_null(r->message);
    snprintf(want, sizeof want, "goroutine %llu [chan send", (unsigned long long)sid);
    assert_true_msg(strstr(r->message, want) != NULL, "no '%s' in:\n%s", want, r->message);
    assert_true_msg(strstr(r->message, "created by lk_spawn_sender") != NULL, "message:\n%s",
                    r->message);
    assert_true_msg(strstr(r->message, "blocked at") != NULL, "message:\n%s", r->message);
    snprintf(want, sizeof want, "test_leak.c:%d in lk_send_forever", atomic_load(&s.send_line));
    assert_true_msg(strstr(r->message, want) != NULL, "no '%s' in:\n%s", want, r->message);
    assert_true_msg(strstr(r->message, "found 1 unexpected goroutine") != NULL, "message:\n%s",
                    r->message);
    goro_leak_report_free(r);

    assert_rc(s.send_rc, -EPIPE);
    assert_rc(s.rc_after, 0);
    assert_null(s.after);
}

/* ------------------------------------------------------------------------- */
/* The retry budget                                                            */
/* ------------------------------------------------------------------------- */

#define RT_LOOKS 5 /* looks without retry: the median of their times counts */

typedef struct rt_state {
    atomic_int finished;
    atomic_int release; /* lk_finish_on_release: finish now */
    int rc[4];
    goro_leak_report *rep[4];
    int64_t elapsed[4];
    /* The looks without retry after the first (rep[1], elapsed[1]). */
    int look_rc[RT_LOOKS];
    size_t look_count[RT_LOOKS];
    int64_t look_ns[RT_LOOKS];
    bool finished_ok;
} rt_state;

NOINLINE static void lk_finish_later(void *arg)
{
    rt_state *s = arg;
    goro_sleep(50 * MS);
    atomic_fetch_add(&s->finished, 1);
}

/* Alive until released (bounded): the looks that must still see it do not
 * depend on how fast they run. */
NOINLINE static void lk_finish_on_release(void *arg)
{
    rt_state *s = arg;
    int64_t end = goro_now() + gt_slow(10 * GORO_SECOND);
    while (!atomic_load(&s->release) && goro_now() < end)
        goro_sleep(MS);
    atomic_fetch_add(&s->finished, 1);
}

static bool wait_finished(rt_state *s, int want)
{
    int64_t end = goro_now() + gt_slow(2 * GORO_SECOND);
    while (atomic_load(&s->finished) < want && goro_now() < end)
        goro_sleep(MS);
    return atomic_load(&s->finished) >= want;
}

static void rt_main(void *arg)
{
    rt_state *s = arg;
    /* Defaults (20 retries, 2 s): a goroutine that ends 50 ms after it
     * started is waited for. The clock starts before the spawn, so the
     * look cannot take less than those 50 ms. */
    int64_t t0 = goro_now();
    goro_go_named(lk_finish_later, s, "finisher");
    s->rc[0] = goro_leak_find(&(goro_leak_opts){0}, &s->rep[0]);
    s->elapsed[0] = goro_now() - t0;
    bool ok = wait_finished(s, 1);
    /* No retry, and a 10 ms budget: a goroutine that stays is reported. */
    goro_go_named(lk_finish_on_release, s, "finisher");
    for (int i = 0; i < RT_LOOKS; i++) {
        goro_leak_report *r = NULL;
        t0 = goro_now();
        s->look_rc[i] = goro_leak_find(&(goro_leak_opts){.retries = -1}, &r);
        s->look_ns[i] = goro_now() - t0;
        s->look_count[i] = r ? r->count : 0;
        if (i == 0) {
            s->rc[1] = s->look_rc[0];
            s->rep[1] = r;
        } else {
            goro_leak_report_free(r);
        }
    }
    s->elapsed[1] = gt_median_i64(s->look_ns, RT_LOOKS);
    t0 = goro_now();
    s->rc[2] = goro_leak_find(&(goro_leak_opts){.max_wait = 10 * MS}, &s->rep[2]);
    s->elapsed[2] = goro_now() - t0;
    atomic_store(&s->release, 1);
    ok = wait_finished(s, 2) && ok;
    s->finished_ok = gt_wait_num_goroutines(1, gt_slow(2 * GORO_SECOND)) && ok;
    s->rc[3] = goro_leak_find(&(goro_leak_opts){.retries = -1}, &s->rep[3]);
}

static void test_find_retries(void **st)
{
    (void)st;
    rt_state s;
    memset(&s, 0, sizeof s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("leak find retries", rt_main, &s, &o, 30), 0);
    fprintf(stderr, "retry budget: default %.1f ms, none %.1f ms (median of %d), max_wait=10ms %.1f ms\n",
            s.elapsed[0] / 1e6, s.elapsed[1] / 1e6, RT_LOOKS, s.elapsed[2] / 1e6);
    assert_true(s.finished_ok);
    assert_int_equal(atomic_load(&s.finished), 2);
    for (int i = 0; i < 4; i++)
        assert_rc(s.rc[i], 0);
    for (int i = 0; i < RT_LOOKS; i++) {
        assert_rc(s.look_rc[i], 0);
        assert_int_equal(s.look_count[i], 1);
    }
    /* Default budget: the goroutine finished while goro_leak_find retried,
     * and the check returned soon after it did (not at the end of 2 s). */
    assert_null(s.rep[0]);
    assert_true(s.elapsed[0] >= 40 * MS);
    assert_true_msg(s.elapsed[0] < gt_slow(1500 * MS), "default budget took %lld ms",
                    (long long)(s.elapsed[0] / MS));
    /* No retry, or a 10 ms budget: still alive, reported. */
    for (int i = 1; i <= 2; i++) {
        assert_non_null(s.rep[i]);
        assert_int_equal(s.rep[i]->count, 1);
        assert_string_equal(s.rep[i]->goroutines[0].name, "finisher");
        assert_non_null(strstr(s.rep[i]->message, "\"finisher\""));
        goro_leak_report_free(s.rep[i]);
    }
    /* Without retries a look returns at once; with the default budget the
     * same look of a goroutine that stays would take over 400 ms (20
     * retries, 1 us doubling up to 100 ms). */
    assert_true_msg(s.elapsed[1] < 150 * MS, "a look without retry took %.1f ms (median)",
                    s.elapsed[1] / 1e6);
    assert_true(s.elapsed[2] >= 9 * MS);
    assert_null(s.rep[3]);
}

/* ------------------------------------------------------------------------- */
/* Ignore rules and snapshots                                                 */
/* ------------------------------------------------------------------------- */

typedef struct ig_state {
    goro_chan *ch; /* everyone blocks receiving from it; closed at the end */
    goro_waitgroup wg;
    bool blocked;
    int rc[12]; /* [0..8] the looks, [9..11] the blocked receives */
    unsigned mask[10];
    size_t others[10];
    int rc_snap;
} ig_state;

static const char *const ig_names[] = {"A", "B", "C", "D", "E"};
#define IG_ALL 0x1fu

NOINLINE static void lk_block_a(goro_chan *ch, ig_state *s)
{
    int rc = goro_chan_recv(ch, NULL, NULL);
    if (rc)
        s->rc[9] = rc;
}

NOINLINE static void lk_top_a(void *arg)
{
    ig_state *s = arg;
    lk_block_a(s->ch, s);
    goro_waitgroup_done(&s->wg);
}

/* Not the same code as lk_block_a (identical functions may be folded into
 * one symbol by the compiler). */
NOINLINE static void lk_inner_block(goro_chan *ch, ig_state *s)
{
    bool ok = true;
    int rc = goro_chan_recv(ch, NULL, &ok);
    if (rc || ok)
        s->rc[10] = rc ? rc : -1;
}

NOINLINE static void lk_g_outer(void *arg)
{
    ig_state *s = arg;
    lk_inner_block(s->ch, s);
    goro_waitgroup_done(&s->wg);
}

NOINLINE static void lk_block_c(void *arg)
{
    ig_state *s = arg;
    int rc = goro_chan_recv(s->ch, NULL, NULL);
    if (rc)
        s->rc[11] = rc;
    goro_waitgroup_done(&s->wg);
}

NOINLINE static int lk_spawner_x(ig_state *s)
{
    int rc = goro_go_named(lk_block_c, s, "C");
    return rc;
}

NOINLINE static int lk_spawner_y(ig_state *s)
{
    int rc = goro_go_named(lk_block_c, s, "D");
    return rc;
}

static void ig_find(ig_state *s, int i, const goro_leak_opts *o)
{
    goro_leak_report *r = NULL;
    goro_leak_opts oo = *o;
    oo.retries = -1;
    s->rc[i] = goro_leak_find(&oo, &r);
    s->mask[i] = names_mask(r, ig_names, 5, &s->others[i]);
    goro_leak_report_free(r);
}

NOINLINE static void lk_ignore_main(void *arg)
{
    ig_state *s = arg;
    if (goro_chan_make(&s->ch, 0, 0))
        return;
    goro_waitgroup_add(&s->wg, 5);
    goro_go_named(lk_top_a, s, "A");
    goro_go_named(lk_g_outer, s, "B");
    lk_spawner_x(s);
    lk_spawner_y(s);
    const char *const abcd[] = {"A", "B", "C", "D"};
    s->blocked = wait_blocked(NULL, abcd, 4, gt_slow(2 * GORO_SECOND));

    ig_find(s, 0, &(goro_leak_opts){0});
    ig_find(s, 1, &(goro_leak_opts){.ignore_top = (const char *const[]){"lk_block_a", NULL}});
    /* Not the top function of B: ignore_top must not match it. */
    ig_find(s, 2, &(goro_leak_opts){.ignore_top = (const char *const[]){"lk_g_outer", NULL}});
    ig_find(s, 3, &(goro_leak_opts){.ignore_any = (const char *const[]){"lk_g_outer", NULL}});
    ig_find(s, 4,
            &(goro_leak_opts){.ignore_created_by = (const char *const[]){"lk_spawner_x", NULL}});
    /* Any frame of the creation chain: C and D were created through
     * lk_spawner_* called from here, A and B right here. */
    ig_find(s, 5, &(goro_leak_opts){.ignore_created_by =
                                        (const char *const[]){"lk_ignore_main", NULL}});
    /* Several names in one list, in several lists at once. */
    ig_find(s, 6, &(goro_leak_opts){
                      .ignore_top = (const char *const[]){"nothing", "lk_inner_block", NULL},
                      .ignore_created_by = (const char *const[]){"lk_spawner_y", NULL}});

    /* Snapshot: A-D are known, E is new. */
    goro_leak_snapshot *snap = NULL;
    s->rc_snap = goro_leak_snapshot_take(&snap);
    goro_go_named(lk_block_c, s, "E");
    ig_find(s, 7, &(goro_leak_opts){.ignore_current = snap});
    ig_find(s, 8, &(goro_leak_opts){0});
    goro_leak_snapshot_free(snap);

    goro_chan_close(s->ch);
    gt_wg_wait(&s->wg, 10);
    gt_wait_num_goroutines(1, gt_slow(2 * GORO_SECOND));
    goro_chan_release(s->ch);
}

static void test_find_ignore(void **st)
{
    (void)st;
    ig_state s;
    memset(&s, 0, sizeof s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("leak find ignore rules", lk_ignore_main, &s, &o, 30), 0);
    assert_true(s.blocked);
    assert_rc(s.rc_snap, 0);
    const unsigned A = 1, B = 2, C = 4, D = 8, E = 16;
    const unsigned want[9] = {
        A | B | C | D,     /* nothing ignored */
        B | C | D,         /* ignore_top lk_block_a */
        A | B | C | D,     /* ignore_top of a non-top frame */
        A | C | D,         /* ignore_any lk_g_outer */
        A | B | D,         /* created by lk_spawner_x */
        0,                 /* created (somewhere) by lk_ignore_main */
        A | C,             /* top lk_inner_block, created by lk_spawner_y */
        E,                 /* ignore_current */
        A | B | C | D | E, /* everything */
    };
    for (int i = 0; i < 9; i++) {
        assert_rc(s.rc[i], 0);
        assert_true_msg(s.mask[i] == want[i] && s.others[i] == 0,
                        "find %d: reported mask %#x (+%zu others), expected %#x", i, s.mask[i],
                        s.others[i], want[i]);
    }
    for (int i = 9; i < 12; i++)
        assert_rc(s.rc[i], 0); /* receives ended by close: rc 0, ok false */
}

/* ------------------------------------------------------------------------- */
/* Scopes: two concurrent "tests", nesting, goroutines from before            */
/* ------------------------------------------------------------------------- */

#define SC_NAMES 7
typedef struct sc_child {
    struct sc_state *s;
    const char *gc_name;
} sc_child;

typedef struct sc_test {
    struct sc_state *s;
    sc_child child; /* argument of the child that spawns a grandchild */
    int idx;
    char names[SC_NAMES][GORO_NAME_MAX];
    int rc_begin, rc_inner;
    int rc[4];
    unsigned mask[4];
    size_t others[4];
    bool blocked;
} sc_test;

typedef struct sc_state {
    goro_chan *stop;
    atomic_int spawned;   /* tests that have spawned everything */
    atomic_int done;      /* tests that have checked */
    atomic_long exited;
    sc_test t[2];
    int rc_all;
    unsigned mask_all[2];
    size_t others_all;
    bool finished;
} sc_state;

enum { SC_BEFORE, SC_C1, SC_C2, SC_GC, SC_N, SC_AFTER, SC_PRE };

static void sc_block(void *arg)
{
    sc_state *s = arg;
    goro_chan_recv(s->stop, NULL, NULL);
    atomic_fetch_add(&s->exited, 1);
}

/* A child that spawns a grandchild, then blocks. */
static void sc_parent(void *arg)
{
    sc_child *c = arg;
    goro_go_named(sc_block, c->s, c->gc_name);
    goro_chan_recv(c->s->stop, NULL, NULL);
    atomic_fetch_add(&c->s->exited, 1);
}

static void sc_find(sc_test *t, int i, const goro_leak_scope *scope)
{
    goro_leak_report *r = NULL;
    const char *names[SC_NAMES];
    for (int k = 0; k < SC_NAMES; k++)
        names[k] = t->names[k];
    t->rc[i] = goro_leak_find(&(goro_leak_opts){.scope = scope, .retries = -1}, &r);
    t->mask[i] = names_mask(r, names, SC_NAMES, &t->others[i]);
    goro_leak_report_free(r);
}

static void sc_test_main(void *arg)
{
    sc_test *t = arg;
    sc_state *s = t->s;
    t->child = (sc_child){.s = s, .gc_name = t->names[SC_GC]};
    goro_go_named(sc_block, s, t->names[SC_BEFORE]); /* before the scope */
    goro_leak_scope *sc = NULL, *inner = NULL;
    t->rc_begin = goro_leak_scope_begin(&sc);
    goro_go_named(sc_block, s, t->names[SC_C1]);
    goro_go_named(sc_parent, &t->child, t->names[SC_C2]);
    t->rc_inner = goro_leak_scope_begin(&inner);
    goro_go_named(sc_block, s, t->names[SC_N]);
    /* Both tests have spawned their goroutines before either looks. */
    atomic_fetch_add(&s->spawned, 1);
    int64_t end = goro_now() + gt_slow(5 * GORO_SECOND);
    while (atomic_load(&s->spawned) < 2 && goro_now() < end)
        goro_sleep(MS);
    const char *mine[] = {t->names[SC_C1], t->names[SC_C2], t->names[SC_GC], t->names[SC_N]};
    t->blocked = wait_blocked(&(goro_leak_opts){.scope = sc}, mine, 4, gt_slow(2 * GORO_SECOND));

    sc_find(t, 0, inner); /* the nested scope: only its own */
    sc_find(t, 1, sc);    /* the outer scope: its own and the nested one's */
    goro_leak_scope_end(inner);
    goro_go_named(sc_block, s, t->names[SC_AFTER]); /* the outer scope again */
    sc_find(t, 2, sc);
    sc_find(t, 3, NULL); /* every goroutine */
    goro_leak_scope_end(sc);
    atomic_fetch_add(&s->done, 1);
}

static void sc_main(void *arg)
{
    sc_state *s = arg;
    if (goro_chan_make(&s->stop, 0, 0))
        return;
    for (int i = 0; i < 2; i++) {
        s->t[i].s = s;
        s->t[i].idx = i;
        const char *suffix[SC_NAMES] = {"before", "c1", "c2", "gc", "n", "after", "pre"};
        for (int k = 0; k < SC_NAMES; k++)
            snprintf(s->t[i].names[k], GORO_NAME_MAX, "t%d.%s", i + 1, suffix[k]);
    }
    /* One goroutine that exists before any scope. */
    goro_go_named(sc_block, s, "pre");
    goro_go_named(sc_test_main, &s->t[0], "test1");
    goro_go_named(sc_test_main, &s->t[1], "test2");
    int64_t end = goro_now() + gt_slow(10 * GORO_SECOND);
    while (atomic_load(&s->done) < 2 && goro_now() < end)
        goro_sleep(MS);
    goro_leak_report *r = NULL;
    s->rc_all = goro_leak_find(&(goro_leak_opts){.retries = -1}, &r);
    for (int i = 0; i < 2; i++) {
        const char *names[SC_NAMES];
        for (int k = 0; k < SC_NAMES; k++)
            names[k] = s->t[i].names[k];
        s->mask_all[i] = names_mask(r, names, SC_NAMES, NULL);
    }
    s->others_all = 0;
    for (size_t k = 0; r && k < r->count; k++)
        if (r->goroutines[k].name && strcmp(r->goroutines[k].name, "pre") == 0)
            s->others_all++;
    goro_leak_report_free(r);
    goro_chan_close(s->stop);
    s->finished = gt_wait_num_goroutines(1, gt_slow(2 * GORO_SECOND));
    goro_chan_release(s->stop);
}

static void test_find_scopes(void **st)
{
    (void)st;
    sc_state *s = calloc(1, sizeof *s);
    assert_non_null(s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("leak scopes", sc_main, s, &o, 30), 0);
    const unsigned before = 1u << SC_BEFORE, c1 = 1u << SC_C1, c2 = 1u << SC_C2,
                   gc = 1u << SC_GC, n = 1u << SC_N, after = 1u << SC_AFTER;
    for (int i = 0; i < 2; i++) {
        sc_test *t = &s->t[i];
        assert_rc(t->rc_begin, 0);
        assert_rc(t->rc_inner, 0);
        assert_true(t->blocked);
        const unsigned want[3] = {n, c1 | c2 | gc | n, c1 | c2 | gc | n | after};
        for (int k = 0; k < 3; k++) {
            assert_rc(t->rc[k], 0);
            /* Whether "n" (created in the nested scope, which has ended by
             * find 2) still counts for the outer scope is checked by
             * test_find_scope_nested_end. */
            if (k == 2)
                t->mask[k] = (t->mask[k] & ~n) | (want[k] & n);
            /* Nothing of the other test, of "pre", of the goroutine created
             * before the scope, or of the tests themselves. */
            assert_true_msg(t->mask[k] == want[k] && t->others[k] == 0,
                            "test %d find %d: mask %#x (+%zu others), expected %#x", i + 1, k,
                            t->mask[k], t->others[k], want[k]);
        }
        /* Without a scope: everything, its own "before" included. */
        assert_rc(t->rc[3], 0);
        assert_int_equal(t->mask[3], before | c1 | c2 | gc | n | after);
        /* ... and others: at least "pre", main and what the other test had
         * spawned before both looked (its before, c1, c2 and n). */
        assert_true_msg(t->others[3] >= 6, "test %d: only %zu other goroutines without a scope",
                        i + 1, t->others[3]);
    }
    assert_rc(s->rc_all, 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(s->mask_all[i], before | c1 | c2 | gc | n | after);
    assert_int_equal(s->others_all, 1);
    assert_true(s->finished);
    assert_int_equal(atomic_load(&s->exited), 13);
    free(s);
}

/* Goroutines created in a nested scope were created inside the enclosing
 * scope too ("goroutines created inside a scope (and all their
 * descendants) belong to it"): ending the nested scope must not take them
 * out of the enclosing one. And a scope that ended must not hand its
 * goroutines to an unrelated scope created later (scope ids are recycled;
 * only open scopes are limited, to 65535). */
typedef struct ne_state {
    int mode; /* 0: nested scope ended; 1: many scopes later */
    goro_chan *stop;
    int rc[4];
    unsigned mask[2];
    size_t others[2];
    bool blocked, finished;
    long cycles, misattributed, first_bad_cycle;
    int64_t elapsed;
} ne_state;

static const char *const ne_names[] = {"outer.direct", "inner.child", "old.child"};

static void ne_block(void *arg)
{
    ne_state *s = arg;
    goro_chan_recv(s->stop, NULL, NULL);
}

static void ne_find(ne_state *s, int i, const goro_leak_scope *scope)
{
    goro_leak_report *r = NULL;
    s->rc[i] = goro_leak_find(&(goro_leak_opts){.scope = scope, .retries = -1}, &r);
    s->mask[i] = names_mask(r, ne_names, 3, &s->others[i]);
    goro_leak_report_free(r);
}

static void ne_main(void *arg)
{
    ne_state *s = arg;
    if (goro_chan_make(&s->stop, 0, 0))
        return;
    if (s->mode == 0) {
        goro_leak_scope *outer = NULL, *inner = NULL;
        s->rc[2] = goro_leak_scope_begin(&outer);
        goro_go_named(ne_block, s, "outer.direct");
        s->rc[3] = goro_leak_scope_begin(&inner);
        goro_go_named(ne_block, s, "inner.child");
        ne_find(s, 0, outer); /* both, while the nested scope is open */
        goro_leak_scope_end(inner);
        ne_find(s, 1, outer); /* both still: the outer scope has not ended */
        goro_leak_scope_end(outer);
        const char *const names[] = {"outer.direct", "inner.child"};
        s->blocked = wait_blocked(NULL, names, 2, gt_slow(2 * GORO_SECOND));
    } else {
        /* A scope ends while its goroutine lives on; then scope after scope
         * is created, each checked (nothing was created in any of them). */
        goro_leak_scope *old = NULL;
        s->rc[2] = goro_leak_scope_begin(&old);
        goro_go_named(ne_block, s, "old.child");
        goro_leak_scope_end(old);
        int64_t t0 = goro_now();
        for (long i = 0; i < 70000 && s->rc[3] == 0; i++) {
            goro_leak_scope *sc = NULL;
            if ((s->rc[3] = goro_leak_scope_begin(&sc)) != 0)
                break;
            goro_leak_report *r = NULL;
            s->rc[0] = goro_leak_find(&(goro_leak_opts){.scope = sc, .retries = -1}, &r);
            if (r && r->count && !s->misattributed++)
                s->first_bad_cycle = i + 1;
            goro_leak_report_free(r);
            goro_leak_scope_end(sc);
            s->cycles++;
            if (s->rc[0])
                break;
        }
        s->elapsed = goro_now() - t0;
        const char *const names[] = {"old.child"};
        s->blocked = wait_blocked(NULL, names, 1, gt_slow(2 * GORO_SECOND));
    }
    goro_chan_close(s->stop);
    s->finished = gt_wait_num_goroutines(1, gt_slow(2 * GORO_SECOND));
    goro_chan_release(s->stop);
}

static void test_find_scope_nested_end(void **st)
{
    (void)st;
    ne_state s;
    memset(&s, 0, sizeof s);
    goro_options o = gt_opts(1);
    assert_rc(gt_run("leak scopes: nested scope ended", ne_main, &s, &o, 30), 0);
    assert_true(s.blocked);
    assert_true(s.finished);
    for (int i = 0; i < 4; i++)
        assert_rc(s.rc[i], 0);
    assert_true_msg(s.mask[0] == 3 && s.others[0] == 0, "open nested scope: mask %#x", s.mask[0]);
    assert_true_msg(s.mask[1] == 3 && s.others[1] == 0,
                    "after the nested scope ended, the enclosing scope's check reports mask %#x "
                    "(+%zu others), expected %#x: the nested scope's goroutine was dropped",
                    s.mask[1], s.others[1], 3u);
}

static void test_find_scope_id_reuse(void **st)
{
    (void)st;
    ne_state s;
    memset(&s, 0, sizeof s);
    s.mode = 1;
    goro_options o = gt_opts(1);
    o.longrun_report_ns = -1; /* the loop never needs to block */
    assert_rc(gt_run("leak scopes: many scopes later", ne_main, &s, &o, 60), 0);
    fprintf(stderr, "scope reuse: %ld scopes begun, checked and ended in %.0f ms; %ld reported "
                    "a goroutine of an ended scope (first: scope #%ld)\n",
            s.cycles, s.elapsed / 1e6, s.misattributed, s.first_bad_cycle);
    assert_true(s.blocked);
    assert_true(s.finished);
    for (int i = 0; i < 4; i++)
        assert_rc(s.rc[i], 0);
    assert_int_equal(s.cycles, 70000);
    assert_true_msg(s.misattributed == 0,
                    "%ld new scopes (the first after %ld scopes had come and gone) reported "
                    "\"old.child\", created in a scope that had ended before they began",
                    s.misattributed, s.first_bad_cycle);
}

/* ------------------------------------------------------------------------- */
/* goro_run_checked and goro_assert_no_leaks                                  */
/* ------------------------------------------------------------------------- */

typedef struct rc_state {
    goro_waitgroup wg;
    atomic_int ran;
} rc_state;

static void rc_quick(void *arg)
{
    rc_state *s = arg;
    atomic_fetch_add(&s->ran, 1);
    goro_waitgroup_done(&s->wg);
}

static void rc_clean_main(void *arg)
{
    rc_state *s = arg;
    goro_waitgroup_add(&s->wg, 16);
    for (int i = 0; i < 16; i++)
        goro_go(rc_quick, s);
    goro_waitgroup_wait(&s->wg); /* they may still be exiting: the check retries */
}

NOINLINE static void lk_leaky_block(void *arg)
{
    (void)arg;
    goro_select(NULL, 0, 0, GORO_NO_DEADLINE); /* select {}: forever */
    __asm__ volatile("" ::: "memory");         /* not a tail call: keep this frame */
}

static void rc_leaky_main(void *arg)
{
    rc_state *s = arg;
    rc_clean_main(s);
    goro_go_named(lk_leaky_block, NULL, "leaky");
}

static void test_run_checked(void **st)
{
    (void)st;
    goro_options o = gt_opts(2);

    /* A clean main: no report, and the cmocka macro agrees. */
    rc_state s;
    memset(&s, 0, sizeof s);
    goro_leak_report *rep = (goro_leak_report *)&s; /* must be overwritten */
    assert_rc(goro_run_checked(rc_clean_main, &s, &o, NULL, &rep), 0);
    assert_null(rep);
    assert_int_equal(atomic_load(&s.ran), 16);
    goro_assert_no_leaks(rep);

    /* A leaking main: the report names the goroutine left behind. */
    memset(&s, 0, sizeof s);
    rep = NULL;
    assert_rc(goro_run_checked(rc_leaky_main, &s, &o, NULL, &rep), 0);
    assert_non_null(rep);
    assert_int_equal(rep->count, 1);
    assert_string_equal(rep->goroutines[0].name, "leaky");
    assert_string_equal(rep->goroutines[0].state, "select (no cases)");
    assert_int_equal(rep->goroutines[0].parent_id, 1);
    const goro_frame *top = top_frame(&rep->goroutines[0]);
    assert_non_null(top);
    assert_string_equal(top->func, "lk_leaky_block");
    assert_true(rep->goroutines[0].ncreated >= 1);
    assert_string_equal(rep->goroutines[0].created[0].func, "rc_leaky_main");
    assert_non_null(strstr(rep->message, "\"leaky\""));
    assert_non_null(strstr(rep->message, "[select (no cases)"));
    assert_non_null(strstr(rep->message, "created by rc_leaky_main"));
    goro_leak_report_free(rep);

    /* leak_opts are honoured. */
    rep = NULL;
    const goro_leak_opts lo = {.ignore_top = (const char *const[]){"lk_leaky_block", NULL}};
    assert_rc(goro_run_checked(rc_leaky_main, &s, &o, &lo, &rep), 0);
    assert_null(rep);
    goro_assert_no_leaks(rep);

    /* No report pointer: the report is freed (nothing left for LSan). */
    assert_rc(goro_run_checked(rc_leaky_main, &s, &o, NULL, NULL), 0);

    /* goro_run's own errors come through. */
    rep = (goro_leak_report *)&s;
    assert_rc(goro_run_checked(NULL, NULL, &o, NULL, &rep), -EINVAL);
}

/* ------------------------------------------------------------------------- */
/* Bad input                                                                   */
/* ------------------------------------------------------------------------- */

typedef struct bi_state {
    int rc[8];
    goro_leak_report *rep;
} bi_state;

static void bi_main(void *arg)
{
    bi_state *s = arg;
    s->rc[0] = goro_leak_find(NULL, NULL);
    s->rc[1] = goro_leak_snapshot_take(NULL);
    s->rc[2] = goro_leak_scope_begin(NULL);
    s->rep = (goro_leak_report *)s;
    s->rc[3] = goro_leak_find(&(goro_leak_opts){.retries = -1}, &s->rep); /* nothing: NULL */
    goro_leak_scope_end(NULL);
    goro_leak_snapshot_free(NULL);
    goro_leak_report_free(NULL);
}

static void test_bad_input(void **st)
{
    (void)st;
    /* Outside a goroutine. */
    goro_leak_report *rep = (goro_leak_report *)&rep;
    assert_rc(goro_leak_find(NULL, &rep), -EPERM);
    assert_null(rep);
    assert_rc(goro_leak_find(NULL, NULL), -EINVAL);
    goro_leak_snapshot *snap = NULL;
    assert_rc(goro_leak_snapshot_take(&snap), -EPERM);
    assert_rc(goro_leak_snapshot_take(NULL), -EINVAL);
    goro_leak_scope *sc = NULL;
    assert_rc(goro_leak_scope_begin(&sc), -EPERM);
    assert_rc(goro_leak_scope_begin(NULL), -EINVAL);
    goro_leak_scan_stats stats;
    rep = (goro_leak_report *)&rep;
    assert_rc(goro_leak_scan(&rep, &stats), -EPERM);
    assert_null(rep);
    goro_leak_scope_end(NULL);
    goro_leak_snapshot_free(NULL);
    goro_leak_report_free(NULL);

    /* The watchdog's configuration. */
    assert_rc(goro_watchdog_configure(&(goro_watchdog_opts){.period = -1}), -EINVAL);
    assert_rc(goro_watchdog_configure(&(goro_watchdog_opts){.windows = -1}), -EINVAL);
    assert_rc(goro_watchdog_configure(&(goro_watchdog_opts){.min_age = -1}), -EINVAL);
    assert_rc(goro_watchdog_configure(NULL), 0);
    size_t n = 0;
    goro_leak_suspect *sus = NULL;
    assert_rc(goro_watchdog_suspects(NULL, &n), -EINVAL);
    assert_rc(goro_watchdog_suspects(&sus, NULL), -EINVAL);
    goro_watchdog_suspects_free(NULL, 0);

    /* Inside a goroutine. */
    bi_state s;
    memset(&s, 0, sizeof s);
    goro_options o = gt_opts(1);
    assert_rc(gt_run("leak bad input", bi_main, &s, &o, 30), 0);
    assert_rc(s.rc[0], -EINVAL);
    assert_rc(s.rc[1], -EINVAL);
    assert_rc(s.rc[2], -EINVAL);
    assert_rc(s.rc[3], 0);
    assert_null(s.rep);
}

/* ------------------------------------------------------------------------- */
/* The watchdog                                                                */
/* ------------------------------------------------------------------------- */

#define WD_PERIOD (100 * MS)
#define WD_MIN_COUNT 5
#define WD_MAXREC 32

typedef struct wd_seen {
    size_t count, ncreated;
    double growth;
    int64_t oldest_ns, at;
    char reason[48];
    char wfunc[64], wfile[256];
    int wline;
    char cfunc[64], cfile[256];
    int cline;
    char msg[1024];
} wd_seen;

/* Written by goro's monitor thread (the callback), read by goroutines and
 * the test thread, under mu. */
static struct {
    pthread_mutex_t mu;
    int n, dropped;
    wd_seen v[WD_MAXREC];
} wdrec = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void copy_str(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src ? src : "(null)");
}

static void wd_on_suspect(const goro_leak_suspect *s, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&wdrec.mu);
    if (wdrec.n < WD_MAXREC) {
        wd_seen *w = &wdrec.v[wdrec.n++];
        w->count = s->count;
        w->ncreated = s->ncreated;
        w->growth = s->growth_per_sec;
        w->oldest_ns = s->oldest_wait_ns;
        w->at = goro_now();
        copy_str(w->reason, sizeof w->reason, s->reason);
        copy_str(w->wfunc, sizeof w->wfunc, s->wait_site.func);
        copy_str(w->wfile, sizeof w->wfile, s->wait_site.file);
        w->wline = s->wait_site.line;
        if (s->ncreated) {
            copy_str(w->cfunc, sizeof w->cfunc, s->created[0].func);
            copy_str(w->cfile, sizeof w->cfile, s->created[0].file);
            w->cline = s->created[0].line;
        }
        copy_str(w->msg, sizeof w->msg, s->message);
    } else {
        wdrec.dropped++;
    }
    pthread_mutex_unlock(&wdrec.mu);
}

/* Verdicts (on_verdict, from goro's confirmation thread), under wdrec.mu. */
typedef struct wd_verdict {
    goro_leak_state state;
    size_t judged, unreachable;
    char cfunc[64];
    char msg[1024];
} wd_verdict;
static struct {
    int n;
    wd_verdict v[WD_MAXREC];
} wdver;

static void wd_on_verdict(const goro_leak_suspect *s, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&wdrec.mu);
    if (wdver.n < WD_MAXREC) {
        wd_verdict *w = &wdver.v[wdver.n++];
        w->state = s->state;
        w->judged = s->judged;
        w->unreachable = s->unreachable;
        copy_str(w->cfunc, sizeof w->cfunc, s->ncreated ? s->created[0].func : NULL);
        copy_str(w->msg, sizeof w->msg, s->verdict);
    }
    pthread_mutex_unlock(&wdrec.mu);
}

static int wd_nseen(void)
{
    pthread_mutex_lock(&wdrec.mu);
    int n = wdrec.n;
    pthread_mutex_unlock(&wdrec.mu);
    return n;
}

/* The tests' watchdog configuration, with this min_age. */
static int wd_set_min_age(int64_t min_age)
{
    goro_watchdog_opts wo = {
        .period = WD_PERIOD,
        .windows = 3,
        .min_age = min_age,
        .min_count = WD_MIN_COUNT,
        .on_suspect = wd_on_suspect,
        .on_verdict = wd_on_verdict,
    };
    return goro_watchdog_configure(&wo);
}

static void wd_configure(void)
{
    pthread_mutex_lock(&wdrec.mu);
    wdrec.n = 0;
    wdrec.dropped = 0;
    wdver.n = 0;
    pthread_mutex_unlock(&wdrec.mu);
    assert_rc(wd_set_min_age(300 * MS), 0);
}


/* The story's leak: each request's run_async() starts a goroutine that
 * sends its result on an unbuffered channel nobody will ever read. The test
 * keeps the channels (one reference each) only to release the senders at
 * the end; the watchdog does not care who could still reach them. */
static atomic_int story_send_line, run_async_line;
static atomic_long story_exited, story_bad;

NOINLINE static void story_sender(void *arg)
{
    goro_chan *ch = arg;
    int v = 42;
    atomic_store(&story_send_line, __LINE__); int rc = goro_chan_send(ch, &v);
    if (rc != -EPIPE)
        atomic_fetch_add(&story_bad, 1);
    goro_chan_release(ch);
    atomic_fetch_add(&story_exited, 1);
}

#define WD_MAXCH 4096
typedef struct chan_keep {
    goro_chan *v[WD_MAXCH];
    size_t n;
} chan_keep;

NOINLINE static int run_async(chan_keep *k)
{
    goro_chan *ch;
    int rc = goro_chan_make(&ch, sizeof(int), 0);
    if (rc)
        return rc;
    if (k->n == WD_MAXCH) {
        goro_chan_release(ch);
        return -ENOSPC;
    }
    k->v[k->n++] = ch;
    atomic_store(&run_async_line, __LINE__); rc = goro_go(story_sender, goro_chan_retain(ch));
    if (rc)
        goro_chan_release(ch);
    return rc;
}

/* Controls for the negative tests: the same leak, each from its own
 * creation site (a suspect is reported once per site, so every test needs a
 * fresh one). A control proves that the watchdog made its passes while the
 * negative load was there. */
#define DEFINE_CONTROL(fname)                                                  \
    NOINLINE static int fname(chan_keep *k, int *line)                         \
    {                                                                          \
        goro_chan *ch;                                                         \
        int rc = goro_chan_make(&ch, sizeof(int), 0);                          \
        if (rc)                                                                \
            return rc;                                                         \
        if (k->n == WD_MAXCH) {                                                \
            goro_chan_release(ch);                                             \
            return -ENOSPC;                                                    \
        }                                                                      \
        k->v[k->n++] = ch;                                                     \
        *line = __LINE__;                                                      \
        rc = goro_go(story_sender, goro_chan_retain(ch));                      \
        if (rc)                                                                \
            goro_chan_release(ch);                                             \
        return rc;                                                             \
    }
DEFINE_CONTROL(control_for_pool)
DEFINE_CONTROL(control_for_sleep)
DEFINE_CONTROL(control_for_sockets)
DEFINE_CONTROL(control_for_timed)
DEFINE_CONTROL(control_for_young)
DEFINE_CONTROL(control_for_moving)

/* Close and release every kept channel; wait for their senders. */
static bool release_kept(chan_keep *k, long exited_before)
{
    for (size_t i = 0; i < k->n; i++) {
        goro_chan_close(k->v[i]);
        goro_chan_release(k->v[i]);
    }
    int64_t end = goro_now() + gt_slow(5 * GORO_SECOND);
    while (atomic_load(&story_exited) - exited_before < (long)k->n && goro_now() < end)
        goro_sleep(MS);
    return atomic_load(&story_exited) - exited_before == (long)k->n;
}

/* Index of the first record created at (cfunc, cline), or -1. */
static int wd_find(const char *cfunc, int cline)
{
    int r = -1;
    pthread_mutex_lock(&wdrec.mu);
    for (int i = 0; i < wdrec.n && r < 0; i++)
        if (strcmp(wdrec.v[i].cfunc, cfunc) == 0 && wdrec.v[i].cline == cline)
            r = i;
    pthread_mutex_unlock(&wdrec.mu);
    return r;
}

static void wd_print_all(const char *what)
{
    pthread_mutex_lock(&wdrec.mu);
    for (int i = 0; i < wdrec.n; i++)
        fprintf(stderr, "%s: suspect %d: %s\n", what, i, wdrec.v[i].msg);
    pthread_mutex_unlock(&wdrec.mu);
}

/* ---- the story is reported ---------------------------------------------- */

typedef struct wdp_state {
    chan_keep keep;
    int64_t t_start, t_report, limit;
    int rc_spawn;
    bool listed;
    size_t listed_count;
    double listed_growth;
    uint64_t total_before, total_after;
    bool released, cleaned;
} wdp_state;

static void wdp_main(void *arg)
{
    wdp_state *s = arg;
    long exited0 = atomic_load(&story_exited);
    s->total_before = goro_watchdog_reports_total();
    s->t_start = goro_now();
    int64_t hard_end = s->t_start + s->limit + GORO_SECOND, stop_at = INT64_MAX;
    /* ~200 leaks per second until the report, then 6 more periods of the
     * same load (it must not be reported again). */
    while (goro_now() < hard_end && goro_now() < stop_at) {
        if ((s->rc_spawn = run_async(&s->keep)))
            break;
        goro_sleep(5 * MS);
        if (!s->t_report && wd_nseen() > 0) {
            pthread_mutex_lock(&wdrec.mu);
            s->t_report = wdrec.v[0].at;
            pthread_mutex_unlock(&wdrec.mu);
            stop_at = goro_now() + 6 * WD_PERIOD;
        }
    }
    /* The suspect list has it, with its count refreshed. */
    goro_leak_suspect *v = NULL;
    size_t n = 0;
    if (goro_watchdog_suspects(&v, &n) == 0) {
        for (size_t i = 0; i < n; i++)
            if (v[i].ncreated && v[i].created[0].line == atomic_load(&run_async_line) &&
                strcmp(v[i].created[0].func, "run_async") == 0 &&
                v[i].wait_site.line == atomic_load(&story_send_line) &&
                strcmp(v[i].wait_site.func, "story_sender") == 0 && v[i].message &&
                strstr(v[i].message, "possible goroutine leak")) {
                s->listed = true;
                s->listed_count = v[i].count;
                s->listed_growth = v[i].growth_per_sec;
            }
        goro_watchdog_suspects_free(v, n);
    }
    s->total_after = goro_watchdog_reports_total();
    s->released = release_kept(&s->keep, exited0);
    s->cleaned = gt_wait_num_goroutines(1, gt_slow(2 * GORO_SECOND));
}

static void test_watchdog_story(void **st)
{
    (void)st;
    wd_configure();
    wdp_state *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->limit = GT_SANITIZED ? 3 * GORO_SECOND : 1500 * MS;
    goro_options o = gt_opts(2);
    int rc = gt_run("watchdog story", wdp_main, s, &o, 30);
    goro_watchdog_configure(NULL);
    wd_print_all("story");
    assert_rc(rc, 0);
    assert_rc(s->rc_spawn, 0);
    assert_true(s->released);
    assert_true(s->cleaned);
    assert_int_equal(atomic_load(&story_bad), 0);

    /* Reported, in time, exactly once, and nothing else. */
    assert_true_msg(s->t_report != 0, "the story's leak was not reported within %lld ms",
                    (long long)((s->limit + GORO_SECOND) / MS));
    int64_t after = s->t_report - s->t_start;
    fprintf(stderr, "watchdog: story reported after %lld ms (%zu leaked goroutines by the end)\n",
            (long long)(after / MS), s->keep.n);
    assert_true_msg(after <= s->limit, "reported after %lld ms", (long long)(after / MS));
    pthread_mutex_lock(&wdrec.mu);
    int n = wdrec.n;
    wd_seen w = wdrec.v[0];
    pthread_mutex_unlock(&wdrec.mu);
    assert_int_equal(n, 1);
    assert_int_equal(s->total_after - s->total_before, 1);

    /* Its sites: blocked at the send, created at run_async's goro_go. */
    assert_string_equal(w.reason, "chan send");
    assert_string_equal(w.wfunc, "story_sender");
    assert_true_msg(ends_with(w.wfile, "test_leak.c"), "wait site file %s", w.wfile);
    assert_int_equal(w.wline, atomic_load(&story_send_line));
    assert_true(w.ncreated >= 1);
    assert_string_equal(w.cfunc, "run_async");
    assert_true_msg(ends_with(w.cfile, "test_leak.c"), "creation file %s", w.cfile);
    assert_int_equal(w.cline, atomic_load(&run_async_line));
    assert_true(w.growth > 0);
    assert_true(w.count >= WD_MIN_COUNT);
    assert_true(w.oldest_ns >= 300 * MS);
    char want[64];
    snprintf(want, sizeof want, "test_leak.c:%d", atomic_load(&story_send_line));
    assert_non_null(strstr(w.msg, want));
    snprintf(want, sizeof want, "run_async (");
    assert_non_null(strstr(w.msg, want));
    assert_non_null(strstr(w.msg, "possible goroutine leak"));
    /* The pattern of the story, and the memory it holds. */
    assert_non_null(strstr(w.msg, "; hint: a send nobody receives"));
    assert_non_null(strstr(w.msg, " MiB"));

    /* Listed as a suspect while it ran. */
    assert_true(s->listed);
    assert_true(s->listed_count >= WD_MIN_COUNT);
    assert_true(s->listed_count >= w.count);
    assert_true(s->listed_growth > 0);
    free(s);
}

/* ---- what must not be reported ------------------------------------------- */

enum { NEG_POOL, NEG_SLEEP, NEG_SOCKETS, NEG_TIMED, NEG_YOUNG, NEG_MOVING };

/* NEG_MOVING: stable pools under rising load, whose workers take their
 * first job at one receive call and every later one at another. Each job
 * goes to the longest waiter, so a pool's members move from the first
 * group to the second: the second grows for as long as the first shrinks,
 * while the pool (the family) stays the same size. The load rises (more
 * jobs per tick, so more members move per period than in the period
 * before): a family sum that mixes this pass's count of one group with
 * the previous pass's count of the other (the bug this catches) then
 * grows although the family does not. Several pools, each created at its
 * own site, because whether such a mix happens depends on the order in
 * which the watchdog visits the two groups (their hash slots). */
#define MOVING_POOLS 8
#define MOVING_WORKERS 300
struct wdn_state;
typedef struct moving_pool {
    struct wdn_state *s;
    goro_chan *ch;
} moving_pool;

#define NEG_MAXCONN 64
typedef struct wdn_state {
    int kind;
    chan_keep keep; /* the control's channels */
    int control_line;
    const char *control_func;
    int rc_control, rc_load;
    int64_t t_start, t_control;
    uint64_t total_before, total_after;
    long ticks;
    /* loads */
    goro_chan *ch;           /* pool: jobs; timed: never sent on */
    atomic_long started, finished, bad;
    atomic_long processed;
    int64_t sleep_until;
    goro_listener *l;
    char addr[64];
    goro_conn *conns[2 * NEG_MAXCONN];
    size_t nconns;
    moving_pool pools[MOVING_POOLS];
    bool released, load_done, cleaned;
} wdn_state;

static int neg_control(wdn_state *s)
{
    switch (s->kind) {
    case NEG_POOL: return control_for_pool(&s->keep, &s->control_line);
    case NEG_SLEEP: return control_for_sleep(&s->keep, &s->control_line);
    case NEG_SOCKETS: return control_for_sockets(&s->keep, &s->control_line);
    case NEG_TIMED: return control_for_timed(&s->keep, &s->control_line);
    case NEG_YOUNG: return control_for_young(&s->keep, &s->control_line);
    default: return control_for_moving(&s->keep, &s->control_line);
    }
}

static const char *neg_control_func(int kind)
{
    static const char *const f[] = {"control_for_pool", "control_for_sleep",
                                    "control_for_sockets", "control_for_timed",
                                    "control_for_young", "control_for_moving"};
    return f[kind];
}

NOINLINE static void pool_worker(void *arg)
{
    wdn_state *s = arg;
    for (;;) {
        bool ok = false;
        int job = 0;
        if (goro_chan_recv(s->ch, &job, &ok) != 0) {
            atomic_fetch_add(&s->bad, 1);
            break;
        }
        if (!ok)
            break;
        atomic_fetch_add(&s->processed, 1);
    }
    atomic_fetch_add(&s->finished, 1);
}

NOINLINE static void sleeper(void *arg)
{
    wdn_state *s = arg;
    goro_sleep_until(s->sleep_until);
    atomic_fetch_add(&s->finished, 1);
}

typedef struct reader_arg {
    wdn_state *s;
    goro_conn *c;
} reader_arg;

NOINLINE static void socket_reader(void *arg)
{
    reader_arg *ra = arg;
    char buf[64];
    ssize_t r = goro_conn_read(ra->c, buf, sizeof buf, GORO_NO_DEADLINE, NULL);
    if (r > 0) /* nobody writes */
        atomic_fetch_add(&ra->s->bad, 1);
    atomic_fetch_add(&ra->s->finished, 1);
    free(ra);
}

NOINLINE static void timed_waiter(void *arg)
{
    wdn_state *s = arg;
    bool ok = true;
    int v;
    int rc = goro_chan_recv_until(s->ch, &v, &ok, goro_deadline_after(60 * GORO_SECOND));
    if (rc != 0 || ok)
        atomic_fetch_add(&s->bad, 1);
    atomic_fetch_add(&s->finished, 1);
}

NOINLINE static void young_waker(void *arg)
{
    goro_chan *ch = arg;
    goro_sleep(50 * MS);
    int v = 1;
    goro_chan_send(ch, &v);
    goro_chan_release(ch);
}

NOINLINE static void young_waiter(void *arg)
{
    wdn_state *s = arg;
    goro_chan *ch;
    if (goro_chan_make(&ch, sizeof(int), 0) != 0) {
        atomic_fetch_add(&s->bad, 1);
        atomic_fetch_add(&s->finished, 1);
        return;
    }
    goro_go(young_waker, goro_chan_retain(ch));
    int v = 0;
    bool ok = false;
    if (goro_chan_recv(ch, &v, &ok) != 0 || !ok || v != 1) /* ~50 ms */
        atomic_fetch_add(&s->bad, 1);
    goro_chan_release(ch);
    atomic_fetch_add(&s->finished, 1);
}

static int neg_spawn(wdn_state *s, goro_fn fn, void *arg)
{
    int rc = goro_go(fn, arg);
    if (rc == 0)
        atomic_fetch_add(&s->started, 1);
    return rc;
}

/* The first job is taken here, every later one in moving_worker: two wait
 * sites (two receive calls in one function can be merged by the compiler
 * into one call instruction). The empty asm keeps the call from becoming
 * a tail call. */
NOINLINE static int moving_first_recv(moving_pool *p, int *job, bool *ok)
{
    int rc = goro_chan_recv(p->ch, job, ok);
    __asm__ volatile("" ::: "memory");
    return rc;
}

NOINLINE static void moving_worker(void *arg)
{
    moving_pool *p = arg;
    bool ok = false;
    int job = 0;
    int rc = moving_first_recv(p, &job, &ok);
    while (rc == 0 && ok) {
        atomic_fetch_add(&p->s->processed, 1);
        rc = goro_chan_recv(p->ch, &job, &ok);
    }
    if (rc)
        atomic_fetch_add(&p->s->bad, 1);
    atomic_fetch_add(&p->s->finished, 1);
}

#define DEFINE_MOVING_SPAWN(fname)                                             \
    NOINLINE static int fname(moving_pool *p)                                  \
    {                                                                          \
        int rc = goro_go(moving_worker, p);                                    \
        if (rc == 0)                                                           \
            atomic_fetch_add(&p->s->started, 1);                               \
        return rc;                                                             \
    }
DEFINE_MOVING_SPAWN(moving_spawn0)
DEFINE_MOVING_SPAWN(moving_spawn1)
DEFINE_MOVING_SPAWN(moving_spawn2)
DEFINE_MOVING_SPAWN(moving_spawn3)
DEFINE_MOVING_SPAWN(moving_spawn4)
DEFINE_MOVING_SPAWN(moving_spawn5)
DEFINE_MOVING_SPAWN(moving_spawn6)
DEFINE_MOVING_SPAWN(moving_spawn7)
static int (*const moving_spawn[MOVING_POOLS])(moving_pool *) = {
    moving_spawn0, moving_spawn1, moving_spawn2, moving_spawn3,
    moving_spawn4, moving_spawn5, moving_spawn6, moving_spawn7,
};

static int neg_load_start(wdn_state *s)
{
    int rc = 0;
    switch (s->kind) {
    case NEG_POOL:
        if ((rc = goro_chan_make(&s->ch, sizeof(int), 0)))
            return rc;
        for (int i = 0; i < 50 && rc == 0; i++)
            rc = neg_spawn(s, pool_worker, s);
        return rc;
    case NEG_SLEEP:
        s->sleep_until = goro_now() + (GT_SANITIZED ? 4 : 2) * GORO_SECOND;
        return 0;
    case NEG_SOCKETS:
        if ((rc = goro_listen_tcp("127.0.0.1:0", 0, &s->l)))
            return rc;
        return goro_listener_addr(s->l, s->addr, sizeof s->addr);
    case NEG_TIMED:
        return goro_chan_make(&s->ch, sizeof(int), 0);
    case NEG_MOVING:
        for (int i = 0; i < MOVING_POOLS && rc == 0; i++) {
            s->pools[i].s = s;
            if ((rc = goro_chan_make(&s->pools[i].ch, sizeof(int), 0)))
                break;
            for (int j = 0; j < MOVING_WORKERS && rc == 0; j++)
                rc = moving_spawn[i](&s->pools[i]);
        }
        return rc;
    default:
        return 0;
    }
}

/* One 10 ms tick of load. */
static int neg_load_tick(wdn_state *s)
{
    int rc = 0;
    switch (s->kind) {
    case NEG_POOL: { /* a job now and then: the pool stays at 50 */
        int job = (int)s->ticks;
        return goro_chan_send_until(s->ch, &job, goro_deadline_after(gt_slow(GORO_SECOND)));
    }
    case NEG_SLEEP: /* up to 1000 sleepers, 10 more per tick */
        for (int i = 0; i < 10 && atomic_load(&s->started) < 1000 && rc == 0; i++)
            rc = neg_spawn(s, sleeper, s);
        return rc;
    case NEG_SOCKETS: { /* a new pair every other tick, both ends read */
        if (s->ticks % 2 || s->nconns + 2 > 2 * NEG_MAXCONN)
            return 0;
        goro_conn *cl = NULL, *sv = NULL;
        int64_t d = goro_deadline_after(gt_slow(2 * GORO_SECOND));
        if ((rc = goro_dial_tcp(s->addr, &cl, d, NULL)))
            return rc;
        s->conns[s->nconns++] = cl;
        if ((rc = goro_accept(s->l, &sv, d, NULL)))
            return rc;
        s->conns[s->nconns++] = sv;
        for (int i = 0; i < 2 && rc == 0; i++) {
            reader_arg *ra = malloc(sizeof *ra);
            if (!ra)
                return -ENOMEM;
            *ra = (reader_arg){.s = s, .c = i ? sv : cl};
            if ((rc = neg_spawn(s, socket_reader, ra)))
                free(ra);
        }
        return rc;
    }
    case NEG_MOVING: {
        /* Rising load: 1 job per pool per tick, one more every 10 ticks up
         * to 8 (tick 70, when about MOVING_WORKERS jobs have gone out and
         * all workers have moved); then steady. */
        int per = 1 + (int)(s->ticks < 70 ? s->ticks : 70) / 10;
        for (int i = 0; i < MOVING_POOLS && rc == 0; i++)
            for (int j = 0; j < per && rc == 0; j++) {
                int job = (int)s->ticks;
                rc = goro_chan_send_until(s->pools[i].ch, &job,
                                          goro_deadline_after(gt_slow(GORO_SECOND)));
            }
        return rc;
    }
    case NEG_TIMED: /* 2 more waiters with a far deadline per tick */
        for (int i = 0; i < 2 && rc == 0; i++)
            rc = neg_spawn(s, timed_waiter, s);
        return rc;
    default: { /* ever more short waits: 1, 2, 3, ... per tick */
        long k = 1 + s->ticks / 10;
        for (long i = 0; i < k && rc == 0; i++)
            rc = neg_spawn(s, young_waiter, s);
        return rc;
    }
    }
}

static bool neg_load_stop(wdn_state *s)
{
    switch (s->kind) {
    case NEG_POOL:
    case NEG_TIMED:
        goro_chan_close(s->ch);
        break;
    case NEG_MOVING:
        for (int i = 0; i < MOVING_POOLS; i++)
            if (s->pools[i].ch)
                goro_chan_close(s->pools[i].ch);
        break;
    case NEG_SOCKETS:
        for (size_t i = 0; i < s->nconns; i++)
            goro_conn_close(s->conns[i]);
        if (s->l)
            goro_listener_close(s->l);
        break;
    default:
        break;
    }
    int64_t end = goro_now() + gt_slow(6 * GORO_SECOND);
    while (atomic_load(&s->finished) < atomic_load(&s->started) && goro_now() < end)
        goro_sleep(MS);
    if (s->ch)
        goro_chan_release(s->ch);
    for (int i = 0; i < MOVING_POOLS; i++)
        if (s->pools[i].ch)
            goro_chan_release(s->pools[i].ch);
    return atomic_load(&s->finished) == atomic_load(&s->started);
}

/* Goroutines parked in a receive, counted from a leak-check report (no
 * retries: a snapshot of the moment). */
static size_t count_receivers(void)
{
    goro_leak_report *r = NULL;
    size_t n = 0;
    if (goro_leak_find(&(goro_leak_opts){.retries = -1}, &r) == 0 && r) {
        for (size_t i = 0; i < r->count; i++)
            n += r->goroutines[i].blocked && !strcmp(r->goroutines[i].state, "chan receive");
        goro_leak_report_free(r);
    }
    return n;
}

static void wdn_main(void *arg)
{
    wdn_state *s = arg;
    long exited0 = atomic_load(&story_exited);
    s->total_before = goro_watchdog_reports_total();
    s->control_func = neg_control_func(s->kind);
    /* The load's start-up (spawning thousands of workers takes long under
     * the sanitizers and chaos) is not what these tests judge: a group
     * that grows while its first members already wait min_age is a leak
     * to the first tier. So no member can be aged while the load starts
     * (min_age at its maximum), and the moving pools are judged only once
     * every worker is parked. */
    s->rc_load = wd_set_min_age(GORO_WATCHDOG_MAX_MIN_AGE);
    if (s->rc_load == 0)
        s->rc_load = neg_load_start(s);
    if (s->rc_load == 0 && s->kind == NEG_MOVING) {
        int64_t end = goro_now() + gt_slow(20 * GORO_SECOND);
        while (count_receivers() < (size_t)MOVING_POOLS * MOVING_WORKERS && goro_now() < end)
            goro_sleep(10 * MS);
        if (count_receivers() < (size_t)MOVING_POOLS * MOVING_WORKERS)
            s->rc_load = -ETIMEDOUT;
    }
    if (s->rc_load == 0)
        s->rc_load = wd_set_min_age(300 * MS);
    s->t_start = goro_now();
    if (s->rc_load == 0) {
        int64_t hard_end = s->t_start + gt_slow(4 * GORO_SECOND), stop_at = INT64_MAX;
        /* At least 1.5 s of load (15 periods); past the control's report,
         * 6 more periods. */
        int64_t min_end = s->t_start + 1500 * MS;
        while (goro_now() < hard_end && (goro_now() < stop_at || goro_now() < min_end)) {
            if ((s->rc_control = neg_control(s)))
                break;
            if ((s->rc_load = neg_load_tick(s)))
                break;
            s->ticks++;
            goro_sleep(10 * MS);
            if (!s->t_control && s->control_line && wd_find(s->control_func, s->control_line) >= 0) {
                s->t_control = goro_now();
                stop_at = goro_now() + 6 * WD_PERIOD;
            }
        }
    }
    s->total_after = goro_watchdog_reports_total();
    s->load_done = neg_load_stop(s);
    s->released = release_kept(&s->keep, exited0);
    s->cleaned = gt_wait_num_goroutines(1, gt_slow(5 * GORO_SECOND));
}

static void run_negative(int kind, const char *what)
{
    wd_configure();
    wdn_state *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->kind = kind;
    goro_options o = gt_opts(2);
    int rc = gt_run(what, wdn_main, s, &o, 40);
    goro_watchdog_configure(NULL);
    wd_print_all(what);
    fprintf(stderr, "watchdog %s: %ld goroutines of load, %ld ticks, control reported after %lld ms\n",
            what, atomic_load(&s->started), s->ticks,
            s->t_control ? (long long)((s->t_control - s->t_start) / MS) : -1LL);
    assert_rc(rc, 0);
    assert_rc(s->rc_load, 0);
    assert_rc(s->rc_control, 0);
    assert_true(s->load_done);
    assert_true(s->released);
    assert_true(s->cleaned);
    assert_int_equal(atomic_load(&s->bad), 0);
    /* The watchdog was working (the control was reported) and reported
     * nothing else. */
    assert_true_msg(s->t_control != 0, "%s: the control leak was never reported", what);
    pthread_mutex_lock(&wdrec.mu);
    int n = wdrec.n;
    wd_seen w = wdrec.v[0];
    pthread_mutex_unlock(&wdrec.mu);
    assert_true_msg(n == 1, "%s: %d suspects reported (see above), expected only the control",
                    what, n);
    assert_string_equal(w.cfunc, s->control_func);
    assert_int_equal(w.cline, s->control_line);
    assert_int_equal(s->total_after - s->total_before, 1);
    free(s);
}

/* ---- a wait reached by a tail call (-O2) ---------------------------------- */

/* tailcall_o2.c: goro_chan_send((goro_chan *)arg, &v) as a tail call. */
void lk_tail_sender(void *arg);
static atomic_int tail_spawn_line;

NOINLINE static int run_async_tail(chan_keep *k)
{
    goro_chan *ch;
    int rc = goro_chan_make(&ch, sizeof(int), 0);
    if (rc)
        return rc;
    if (k->n == WD_MAXCH) {
        goro_chan_release(ch);
        return -ENOSPC;
    }
    k->v[k->n++] = ch; /* the sender uses this reference: it cannot release one */
    atomic_store(&tail_spawn_line, __LINE__); rc = goro_go(lk_tail_sender, ch);
    return rc;
}

typedef struct wdt_state {
    chan_keep keep;
    int64_t limit;
    int rc_spawn;
    bool reported, cleaned;
} wdt_state;

static void wdt_main(void *arg)
{
    wdt_state *s = arg;
    int64_t end = goro_now() + s->limit;
    while (goro_now() < end && !(s->reported = wd_nseen() > 0)) {
        if ((s->rc_spawn = run_async_tail(&s->keep)))
            break;
        goro_sleep(5 * MS);
    }
    for (size_t i = 0; i < s->keep.n; i++)
        goro_chan_close(s->keep.v[i]);
    s->cleaned = gt_wait_num_goroutines(1, gt_slow(5 * GORO_SECOND));
    for (size_t i = 0; i < s->keep.n; i++)
        goro_chan_release(s->keep.v[i]);
}

/* The test-time check on the same goroutine: its report names
 * lk_tail_sender as the wait site (before: no site at all, "?:0"). */
typedef struct ftc_state {
    goro_leak_report *rep;
    int rc;
    bool cleaned;
} ftc_state;

static void ftc_main(void *arg)
{
    ftc_state *s = arg;
    goro_chan *ch;
    if ((s->rc = goro_chan_make(&ch, sizeof(int), 0)) != 0)
        return;
    if ((s->rc = goro_go(lk_tail_sender, ch)) != 0) {
        goro_chan_release(ch);
        return;
    }
    /* goro_leak_find retries until the sender is blocked (or its budget
     * ends): no sleep needed. */
    s->rc = goro_leak_find(NULL, &s->rep);
    goro_chan_close(ch);
    s->cleaned = gt_wait_num_goroutines(1, gt_slow(5 * GORO_SECOND));
    goro_chan_release(ch);
}

static void test_find_tail_call(void **st)
{
    (void)st;
    ftc_state s = {0};
    goro_options o = gt_opts(2);
    assert_rc(gt_run("leak find, tail call", ftc_main, &s, &o, 30), 0);
    assert_rc(s.rc, 0);
    assert_true(s.cleaned);
    assert_non_null(s.rep);
    assert_int_equal(s.rep->count, 1);
    const goro_goroutine_info *g = &s.rep->goroutines[0];
    assert_string_equal(g->state, "chan send");
    const goro_frame *top = top_frame(g);
    assert_non_null(top);
    assert_string_equal(top->func, "lk_tail_sender");
    goro_leak_report_free(s.rep);
}

/* The saved return address of the blocking call lands in goro's goroutine
 * entry: the watchdog names the goroutine's own function, not goro's
 * trampoline (before: "(in goro__g_start)"). */
static void test_watchdog_tail_call(void **st)
{
    (void)st;
    wd_configure();
    wdt_state *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->limit = gt_slow(5 * GORO_SECOND);
    goro_options o = gt_opts(2);
    int rc = gt_run("watchdog, tail call", wdt_main, s, &o, 30);
    goro_watchdog_configure(NULL);
    wd_print_all("tail call");
    assert_rc(rc, 0);
    assert_rc(s->rc_spawn, 0);
    assert_true(s->cleaned);
    assert_true_msg(s->reported, "the tail-call leak was not reported within %lld ms",
                    (long long)(s->limit / MS));
    pthread_mutex_lock(&wdrec.mu);
    wd_seen w = wdrec.v[0];
    pthread_mutex_unlock(&wdrec.mu);
    assert_string_equal(w.reason, "chan send");
    assert_string_equal(w.cfunc, "run_async_tail");
    assert_int_equal(w.cline, atomic_load(&tail_spawn_line));
    assert_true_msg(strcmp(w.wfunc, "lk_tail_sender") == 0, "wait site in %s (%s:%d): %s",
                    w.wfunc, w.wfile, w.wline, w.msg);
    assert_null(strstr(w.msg, "(in goro"));
    free(s);
}

/* ---- one leak from two goro_go lines of one function ------------------- */

/* run_async_two starts the leaking goroutine from one line in even periods
 * and from another in odd ones: each line's group grows only every other
 * period, so neither qualifies alone; their family (same creating
 * function, same reason) grows every period and is reported, once. */
static atomic_int two_line_a, two_line_b;

NOINLINE static int run_async_two(chan_keep *k, bool second)
{
    goro_chan *ch;
    int rc = goro_chan_make(&ch, sizeof(int), 0);
    if (rc)
        return rc;
    if (k->n == WD_MAXCH) {
        goro_chan_release(ch);
        return -ENOSPC;
    }
    k->v[k->n++] = ch;
    /* Different code after each call, so that the compiler cannot merge
     * the two calls into one. */
    if (second) {
        atomic_store(&two_line_b, __LINE__); rc = goro_go(story_sender, goro_chan_retain(ch));
        if (rc)
            goro_chan_release(ch);
        return rc;
    }
    atomic_store(&two_line_a, __LINE__); rc = goro_go(story_sender, goro_chan_retain(ch));
    if (rc) {
        goro_chan_release(ch);
        return rc + 0 * atomic_load(&two_line_a);
    }
    return 0;
}

typedef struct wdf_state {
    chan_keep keep;
    int64_t limit, period;
    int rc_spawn;
    bool reported, released, cleaned;
    long spawned_a, spawned_b;
} wdf_state;

static void wdf_main(void *arg)
{
    wdf_state *s = arg;
    long exited0 = atomic_load(&story_exited);
    int64_t t0 = goro_now(), end = t0 + s->limit, stop_at = INT64_MAX;
    while (goro_now() < end && goro_now() < stop_at) {
        bool second = ((goro_now() - t0) / s->period) % 2 == 1;
        if ((s->rc_spawn = run_async_two(&s->keep, second)))
            break;
        if (second)
            s->spawned_b++;
        else
            s->spawned_a++;
        goro_sleep(5 * MS);
        if (!s->reported && (s->reported = wd_nseen() > 0))
            stop_at = goro_now() + 6 * s->period; /* once only, also later */
    }
    s->released = release_kept(&s->keep, exited0);
    s->cleaned = gt_wait_num_goroutines(1, gt_slow(5 * GORO_SECOND));
}

static void test_watchdog_family_two_lines(void **st)
{
    (void)st;
    wd_configure();
    wdf_state *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->period = WD_PERIOD;
    s->limit = gt_slow(5 * GORO_SECOND);
    goro_options o = gt_opts(2);
    int rc = gt_run("watchdog, one leak from two lines", wdf_main, s, &o, 30);
    goro_watchdog_configure(NULL);
    wd_print_all("two lines");
    assert_rc(rc, 0);
    assert_rc(s->rc_spawn, 0);
    assert_true(s->released);
    assert_true(s->cleaned);
    assert_true(s->spawned_a > 0 && s->spawned_b > 0);
    assert_true_msg(s->reported, "not reported within %lld ms", (long long)(s->limit / MS));
    pthread_mutex_lock(&wdrec.mu);
    int n = wdrec.n;
    wd_seen w = wdrec.v[0];
    pthread_mutex_unlock(&wdrec.mu);
    assert_int_equal(n, 1);
    assert_string_equal(w.cfunc, "run_async_two");
    assert_true(w.cline == atomic_load(&two_line_a) || w.cline == atomic_load(&two_line_b));
    assert_non_null(strstr(w.msg, "other creation site"));
    free(s);
}

/* ---- a small steady leak: one goroutine every 250 ms -------------------- */

/* Below the fast rule (the group grows in fewer than half of the 100 ms
 * periods, and min_count is far away); the slow rule (never dropping,
 * growing at least 5 times over its horizon) reports it. */
typedef struct wds_state {
    chan_keep keep;
    int64_t limit, t_report, t_start;
    int rc_spawn, line;
    bool released, cleaned;
} wds_state;

/* The story's spawner, from its own creation site (see DEFINE_CONTROL). */
DEFINE_CONTROL(run_async_slow)

static void wds_main(void *arg)
{
    wds_state *s = arg;
    long exited0 = atomic_load(&story_exited);
    s->t_start = goro_now();
    int64_t end = s->t_start + s->limit;
    while (goro_now() < end && !s->t_report) {
        if ((s->rc_spawn = run_async_slow(&s->keep, &s->line)))
            break;
        goro_sleep(250 * MS);
        if (wd_nseen() > 0)
            s->t_report = goro_now();
    }
    s->released = release_kept(&s->keep, exited0);
    s->cleaned = gt_wait_num_goroutines(1, gt_slow(5 * GORO_SECOND));
}

static void test_watchdog_slow_leak(void **st)
{
    (void)st;
    pthread_mutex_lock(&wdrec.mu);
    wdrec.n = 0;
    pthread_mutex_unlock(&wdrec.mu);
    goro_watchdog_opts wo = {
        .period = WD_PERIOD,
        .windows = 3,
        .min_age = 300 * MS,
        .min_count = 1000, /* out of reach: only the slow rule can report */
        .on_suspect = wd_on_suspect,
    };
    assert_rc(goro_watchdog_configure(&wo), 0);
    wds_state *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->limit = gt_slow(15 * GORO_SECOND);
    goro_options o = gt_opts(2);
    int rc = gt_run("watchdog, small steady leak", wds_main, s, &o, 60);
    goro_watchdog_configure(NULL);
    wd_print_all("slow leak");
    assert_rc(rc, 0);
    assert_rc(s->rc_spawn, 0);
    assert_true(s->released);
    assert_true(s->cleaned);
    assert_true_msg(s->t_report, "a leak of 4/s not reported within %lld ms",
                    (long long)(s->limit / MS));
    fprintf(stderr, "watchdog: a leak of 4 goroutines/s reported after %lld ms\n",
            (long long)((s->t_report - s->t_start) / MS));
    pthread_mutex_lock(&wdrec.mu);
    wd_seen w = wdrec.v[0];
    pthread_mutex_unlock(&wdrec.mu);
    assert_string_equal(w.cfunc, "run_async_slow");
    assert_int_equal(w.cline, s->line);
    assert_true(w.count < 1000);
    free(s);
}

/* ---- the second tier: a reachability scan settles each suspect ----------- */

/* Two leaks of the story's shape at once, from two creation sites: the
 * channels of one are kept by the test only in hidden form (XOR with a
 * key: no word of memory points to them, so nothing can reach what the
 * senders wait on: CONFIRMED); the other's are kept in plain memory, as
 * chan_keep does (REACHABLE: the scan must not call them leaked). */
#define WD_HIDE_KEY ((uintptr_t)0xA5A5A5A5A5A5A5A5ull)

typedef struct hidden_keep {
    uintptr_t v[WD_MAXCH];
    size_t n;
} hidden_keep;

static atomic_int hidden_make_line;

NOINLINE static int run_async_hidden(hidden_keep *k, int *line)
{
    goro_chan *ch;
    atomic_store(&hidden_make_line, __LINE__ + 1);
    int rc = goro_chan_make(&ch, sizeof(int), 0);
    if (rc)
        return rc;
    if (k->n == WD_MAXCH) {
        goro_chan_release(ch);
        return -ENOSPC;
    }
    k->v[k->n++] = (uintptr_t)ch ^ WD_HIDE_KEY;
    *line = __LINE__;
    rc = goro_go(story_sender, goro_chan_retain(ch));
    if (rc)
        goro_chan_release(ch);
    return rc;
}

DEFINE_CONTROL(run_async_kept)

typedef struct wdv_state {
    hidden_keep hidden;
    chan_keep kept;
    int64_t limit;
    int rc_spawn, line_h, line_k;
    bool reported, settled, released, cleaned;
    goro_leak_suspect sh, sk; /* the suspects as listed (strings dropped) */
    bool have_h, have_k;
    bool h_chan_ok; /* the hidden one names its channel (where it was
                       made), capacity 0, and the unbuffered hint */
} wdv_state;

/* Look the two suspects up in goro_watchdog_suspects. */
static void wdv_lookup(wdv_state *s)
{
    goro_leak_suspect *v = NULL;
    size_t n = 0;
    s->have_h = s->have_k = false;
    if (goro_watchdog_suspects(&v, &n) != 0)
        return;
    for (size_t i = 0; i < n; i++) {
        if (!v[i].ncreated)
            continue;
        goro_leak_suspect c = v[i];
        c.message = c.verdict = NULL;
        c.reason = c.hint = NULL;
        memset(&c.wait_site, 0, sizeof c.wait_site);
        memset(c.created, 0, sizeof c.created);
        if (!strcmp(v[i].created[0].func, "run_async_hidden")) {
            s->h_chan_ok = v[i].on_chan && v[i].chan_cap == 0 &&
                           !strcmp(v[i].chan_made.func, "run_async_hidden") &&
                           v[i].chan_made.line == atomic_load(&hidden_make_line) && v[i].hint &&
                           strstr(v[i].hint, "unbuffered send");
            memset(&c.chan_made, 0, sizeof c.chan_made);
            s->sh = c;
            s->have_h = true;
        } else if (!strcmp(v[i].created[0].func, "run_async_kept")) {
            s->sk = c;
            s->have_k = true;
        }
    }
    goro_watchdog_suspects_free(v, n);
}

static void wdv_main(void *arg)
{
    wdv_state *s = arg;
    long exited0 = atomic_load(&story_exited);
    int64_t end = goro_now() + s->limit;
    bool can_scan = !GT_SANITIZED && !gt_under_valgrind();
    /* Both leaks, ~200/s each, until both are suspects. */
    while (goro_now() < end && !s->reported) {
        if ((s->rc_spawn = run_async_hidden(&s->hidden, &s->line_h)) ||
            (s->rc_spawn = run_async_kept(&s->kept, &s->line_k)))
            break;
        goro_sleep(5 * MS);
        wdv_lookup(s);
        s->reported = s->have_h && s->have_k;
    }
    /* Then wait (on the suspects' state) for the scan's verdicts. */
    while (s->reported && goro_now() < end) {
        wdv_lookup(s);
        if (can_scan ? s->sh.state != GORO_LEAK_SUSPECTED && s->sk.state != GORO_LEAK_SUSPECTED
                     : true) {
            s->settled = true;
            break;
        }
        goro_sleep(10 * MS);
    }
    for (size_t i = 0; i < s->hidden.n; i++) {
        goro_chan *ch = (goro_chan *)(s->hidden.v[i] ^ WD_HIDE_KEY);
        goro_chan_close(ch);
        goro_chan_release(ch);
    }
    chan_keep *k = &s->kept;
    size_t nh = s->hidden.n;
    s->released = release_kept(k, exited0 + (long)nh);
    s->cleaned = gt_wait_num_goroutines(1, gt_slow(5 * GORO_SECOND));
}

static void test_watchdog_verdicts(void **st)
{
    (void)st;
    wd_configure();
    wdv_state *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->limit = gt_slow(15 * GORO_SECOND);
    goro_options o = gt_opts(2);
    int rc = gt_run("watchdog, verdicts of the reachability scan", wdv_main, s, &o, 60);
    goro_watchdog_configure(NULL);
    wd_print_all("verdicts");
    pthread_mutex_lock(&wdrec.mu);
    wd_verdict vv[WD_MAXREC];
    int nv = wdver.n;
    memcpy(vv, wdver.v, sizeof vv);
    pthread_mutex_unlock(&wdrec.mu);
    for (int i = 0; i < nv; i++)
        fprintf(stderr, "verdicts: %s\n", vv[i].msg);
    assert_rc(rc, 0);
    assert_rc(s->rc_spawn, 0);
    assert_true(s->released);
    assert_true(s->cleaned);
    assert_true_msg(s->reported, "the two leaks were not both reported within %lld ms",
                    (long long)(s->limit / MS));
    assert_true_msg(s->settled, "no verdict within %lld ms (hidden: state %d, kept: state %d)",
                    (long long)(s->limit / MS), (int)s->sh.state, (int)s->sk.state);
    if (GT_SANITIZED || gt_under_valgrind()) {
        /* No scan is possible: both say so, and no verdict was given. */
        assert_int_equal(s->sh.state, GORO_LEAK_UNVERIFIED);
        assert_int_equal(s->sk.state, GORO_LEAK_UNVERIFIED);
        assert_int_equal(nv, 0);
        free(s);
        return;
    }
    /* Hidden channels: confirmed, most members judged unreachable (a stale
     * copy of a pointer may keep one or two alive, never the rest). */
    assert_int_equal(s->sh.state, GORO_LEAK_CONFIRMED);
    assert_true(s->sh.judged > 0);
    assert_true_msg(s->sh.unreachable * 2 >= s->sh.judged, "only %zu of %zu unreachable",
                    s->sh.unreachable, s->sh.judged);
    assert_true(s->sh.settled_at > 0);
    assert_true_msg(s->h_chan_ok, "the confirmed suspect does not name its channel right");
    /* Its channels (one block each) are memory only the leaked reach. */
    assert_true(s->sh.retained_bytes > 0);
    /* Kept channels: reachable, none called leaked. */
    assert_int_equal(s->sk.state, GORO_LEAK_REACHABLE);
    assert_true(s->sk.judged > 0);
    assert_int_equal(s->sk.unreachable, 0);
    /* One verdict each, through on_verdict, naming the creator. */
    int nh = 0, nk = 0;
    for (int i = 0; i < nv; i++) {
        if (!strcmp(vv[i].cfunc, "run_async_hidden")) {
            nh++;
            assert_int_equal(vv[i].state, GORO_LEAK_CONFIRMED);
            assert_non_null(strstr(vv[i].msg, "confirmed goroutine leak"));
            assert_non_null(strstr(vv[i].msg, "run_async_hidden ("));
        } else if (!strcmp(vv[i].cfunc, "run_async_kept")) {
            nk++;
            assert_int_equal(vv[i].state, GORO_LEAK_REACHABLE);
            assert_non_null(strstr(vv[i].msg, "still reachable"));
        }
    }
    assert_int_equal(nh, 1);
    assert_int_equal(nk, 1);
    free(s);
}

/* ---- /debug/goro/leaks and /metrics say what the watchdog does ----------- */

typedef struct ep_state {
    int rc;
    char off_text[2048], on_text[2048], on_json[2048], metrics[65536];
} ep_state;

/* GET path from addr over a plain connection (HTTP/1.0: the server closes). */
static int ep_get(const char *addr, const char *path, char *out, size_t len)
{
    goro_conn *c;
    int rc = goro_dial_tcp(addr, &c, goro_deadline_after(gt_slow(5 * GORO_SECOND)), NULL);
    if (rc)
        return rc;
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: x\r\n\r\n", path);
    ssize_t w = goro_conn_write(c, req, (size_t)n, goro_deadline_after(gt_slow(5 * GORO_SECOND)), NULL);
    size_t got = 0;
    while (w == n && got + 1 < len) {
        ssize_t r = goro_conn_read(c, out + got, len - 1 - got,
                                   goro_deadline_after(gt_slow(5 * GORO_SECOND)), NULL);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    out[got] = 0;
    goro_conn_close(c);
    return w == n ? 0 : -EIO;
}

static void ep_main(void *arg)
{
    ep_state *s = arg;
    goro_debug_server *srv;
    if ((s->rc = goro_debug_serve("127.0.0.1:0", false, &srv)))
        return;
    const char *a = goro_debug_server_addr(srv);
    goro_watchdog_opts off = {.disabled = true};
    goro_watchdog_configure(&off);
    s->rc = ep_get(a, "/debug/goro/leaks", s->off_text, sizeof s->off_text);
    goro_watchdog_configure(NULL);
    if (!s->rc)
        s->rc = ep_get(a, "/debug/goro/leaks", s->on_text, sizeof s->on_text);
    if (!s->rc)
        s->rc = ep_get(a, "/debug/goro/leaks?format=json", s->on_json, sizeof s->on_json);
    if (!s->rc)
        s->rc = ep_get(a, "/metrics", s->metrics, sizeof s->metrics);
    goro_debug_server_stop(srv, goro_deadline_after(GORO_SECOND));
}

static void test_leaks_endpoint(void **st)
{
    (void)st;
    ep_state *s = calloc(1, sizeof *s);
    assert_non_null(s);
    goro_options o = gt_opts(2);
    int rc = gt_run("leaks endpoint", ep_main, s, &o, 30);
    goro_watchdog_configure(NULL);
    assert_rc(rc, 0);
    assert_rc(s->rc, 0);
    assert_true_msg(strstr(s->off_text, "goro leak watchdog: off") != NULL, "%s", s->off_text);
    assert_true_msg(strstr(s->on_text, "goro leak watchdog: ") != NULL, "%s", s->on_text);
    assert_null(strstr(s->on_text, "watchdog: off"));
    assert_true_msg(strstr(s->on_json, "\"watchdog\":\"on\"") != NULL, "%s", s->on_json);
    static const char *const states[] = {"suspected", "confirmed", "reachable", "unverified"};
    for (int i = 0; i < 4; i++) {
        char want[64];
        snprintf(want, sizeof want, "goro_leak_suspects{state=\"%s\"} ", states[i]);
        assert_true_msg(strstr(s->metrics, want) != NULL, "no %s in /metrics", want);
    }
    free(s);
}

/* ---- where the scan cannot run, it says so ------------------------------- */

typedef struct su_state {
    int rc;
    char why[256];
    char prof[1024];
} su_state;

static void su_main(void *arg)
{
    su_state *s = arg;
    goro_leak_report *rep = NULL;
    goro_leak_scan_stats st;
    s->rc = goro_leak_scan(&rep, &st);
    goro_leak_report_free(rep);
    snprintf(s->why, sizeof s->why, "%s", st.incomplete ? st.incomplete : "");
    int p[2];
    if (pipe(p) == 0) {
        goro_write_profile("goroutineleak", 1, p[1]);
        close(p[1]);
        ssize_t n = read(p[0], s->prof, sizeof s->prof - 1);
        s->prof[n > 0 ? n : 0] = 0;
        close(p[0]);
    }
}

static void test_scan_unavailable_says_so(void **st)
{
    (void)st;
    su_state *s = calloc(1, sizeof *s);
    assert_non_null(s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("scan where it cannot run", su_main, s, &o, 60), 0);
    if (gt_under_valgrind()) {
        /* memcheck's allocator replaces glibc's heap: no scan, and both the
         * call and the profile say why (they used to report "total 0"). */
        assert_rc(s->rc, -ENOTSUP);
        assert_true_msg(strstr(s->why, "valgrind") != NULL, "why: %s", s->why);
        assert_true_msg(strstr(s->prof, "unavailable") && strstr(s->prof, "valgrind"), "%s",
                        s->prof);
    } else if (GT_SANITIZED) {
        assert_rc(s->rc, -ENOTSUP);
        assert_true_msg(strstr(s->prof, "unavailable") != NULL, "%s", s->prof);
    } else {
        assert_true_msg(s->rc == 0 || s->rc == -EAGAIN, "scan: %d", s->rc);
        assert_true_msg(strstr(s->prof, "goroutineleak profile: total") != NULL, "%s", s->prof);
    }
    free(s);
}

static void test_watchdog_pool_not_reported(void **st)
{
    (void)st;
    run_negative(NEG_POOL, "worker pool of 50");
}

static void test_watchdog_sleepers_not_reported(void **st)
{
    (void)st;
    run_negative(NEG_SLEEP, "1000 sleepers");
}

static void test_watchdog_sockets_not_reported(void **st)
{
    (void)st;
    run_negative(NEG_SOCKETS, "socket readers");
}

static void test_watchdog_timed_not_reported(void **st)
{
    (void)st;
    run_negative(NEG_TIMED, "timed waits");
}

static void test_watchdog_young_not_reported(void **st)
{
    (void)st;
    run_negative(NEG_YOUNG, "young waits");
}

static void test_watchdog_moving_not_reported(void **st)
{
    (void)st;
    run_negative(NEG_MOVING, "pools moving between two receive calls");
}

static int group_teardown(void **st)
{
    (void)st;
    goro_watchdog_configure(NULL);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find_basics),
        cmocka_unit_test(test_find_retries),
        cmocka_unit_test(test_find_ignore),
        cmocka_unit_test(test_find_scopes),
        cmocka_unit_test(test_find_scope_nested_end),
        cmocka_unit_test(test_find_scope_id_reuse),
        cmocka_unit_test(test_run_checked),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_watchdog_story),
        cmocka_unit_test(test_watchdog_tail_call),
        cmocka_unit_test(test_find_tail_call),
        cmocka_unit_test(test_watchdog_family_two_lines),
        cmocka_unit_test(test_watchdog_slow_leak),
        cmocka_unit_test(test_watchdog_verdicts),
        cmocka_unit_test(test_leaks_endpoint),
        cmocka_unit_test(test_scan_unavailable_says_so),
        cmocka_unit_test(test_watchdog_pool_not_reported),
        cmocka_unit_test(test_watchdog_sleepers_not_reported),
        cmocka_unit_test(test_watchdog_sockets_not_reported),
        cmocka_unit_test(test_watchdog_timed_not_reported),
        cmocka_unit_test(test_watchdog_young_not_reported),
        cmocka_unit_test(test_watchdog_moving_not_reported),
    };
    return cmocka_run_group_tests(tests, NULL, group_teardown);
}
