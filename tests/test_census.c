/*
 * test_census.c - the park census the watchdog reads (runtime/census.h):
 * exact counts of long waits, wake-ups that undo them, no phantom counts
 * after heavy churn at the same call sites (the windows of census.h (1)
 * and (2): a goroutine waking while sysmon counts it), the registry walk
 * that replaces a lapped log (window 4), and what is never counted (timed
 * waits, sleeps). White-box: reads the census through its internal
 * interface. Waits on the census's state, bounded; never sleeps as
 * synchronization.
 *
 * Rule of the suite: goroutines record, the test function asserts.
 */
#define _GNU_SOURCE
#include "util.h"

#include "runtime/census.h"

#define MS GORO_MILLISECOND

/* Counted parks still parked, summed over the groups whose goroutine
 * function is fn (and reason, if not 0). */
static uint64_t census_of(goro_fn fn, unsigned reason)
{
    uint32_t n = goro__census_ngroups();
    uint32_t by_slot[GORO__CENSUS_RING];
    uint64_t total = 0;
    for (uint32_t i = 1; i <= n; i++) {
        goro__census_key k;
        goro__census_key_of(i, &k);
        if (k.fn == fn && (!reason || k.reason == reason))
            total += goro__census_read(i, by_slot);
    }
    return total;
}

/* Until census_of(fn) == want (bounded); returns the last value. */
static uint64_t wait_census(goro_fn fn, uint64_t want, int64_t timeout)
{
    int64_t end = goro_now() + gt_slow(timeout);
    uint64_t v;
    while ((v = census_of(fn, 0)) != want && goro_now() < end)
        goro_sleep(MS);
    return v;
}

/* ---- exact counts, and wake-ups that undo them ----------------------- */

typedef struct {
    goro_chan *ch;
    _Atomic long done, bad;
} hold_state;

#ifndef NOINLINE
#define NOINLINE __attribute__((noinline))
#endif

static void holder(void *arg)
{
    hold_state *s = arg;
    int v;
    bool ok = true;
    if (goro_chan_recv(s->ch, &v, &ok) != 0 || ok)
        atomic_fetch_add(&s->bad, 1);
    atomic_fetch_add(&s->done, 1);
}

typedef struct {
    int procs;
    long n;
    uint64_t seen_parked, seen_after, walks;
    long bad, done;
    bool cleaned;
} exact_res;

static void exact_main(void *arg)
{
    exact_res *r = arg;
    hold_state s = {0};
    if (goro_chan_make(&s.ch, sizeof(int), 0) != 0) {
        r->bad = -1;
        return;
    }
    for (long i = 0; i < r->n; i++)
        if (goro_go(holder, &s) != 0)
            atomic_fetch_add(&s.bad, 1);
    /* Counted once their park outlived its epoch (67 ms) and sysmon read
     * the logs. */
    r->seen_parked = wait_census(holder, (uint64_t)r->n, 5 * GORO_SECOND);
    goro__census_stats cs;
    goro__census_stats_get(&cs); /* the run's (reset at each run's end) */
    r->walks = cs.walks;
    goro_chan_close(s.ch);
    r->seen_after = wait_census(holder, 0, 5 * GORO_SECOND);
    r->cleaned = gt_wait_num_goroutines(1, gt_slow(5 * GORO_SECOND));
    r->bad = atomic_load(&s.bad);
    r->done = atomic_load(&s.done);
    goro_chan_release(s.ch);
}

static void run_exact(int procs, long n)
{
    exact_res r = {.procs = procs, .n = n};
    goro_options o = gt_opts(procs);
    assert_rc(gt_run("census exact", exact_main, &r, &o, 60), 0);
    fprintf(stderr, "census exact (%d procs): %ld parked, counted %llu; after the wake-ups %llu\n",
            procs, n, (unsigned long long)r.seen_parked, (unsigned long long)r.seen_after);
    assert_int_equal(r.bad, 0);
    assert_int_equal(r.done, n);
    assert_true(r.cleaned);
    assert_int_equal(r.seen_parked, (uint64_t)n);
    assert_int_equal(r.seen_after, 0);
}

static void test_exact_1proc(void **st)
{
    (void)st;
    run_exact(1, 2000);
}

static void test_exact_2procs(void **st)
{
    (void)st;
    run_exact(2, 2000);
}

/* ---- window 4: more goroutines park in one epoch than a log holds ---- */

static void test_lapped_log_walk(void **st)
{
    (void)st;
    exact_res r = {.procs = 1, .n = 3 * GORO__CENSUS_LOG};
    goro_options o = gt_opts(1);
    assert_rc(gt_run("census lapped", exact_main, &r, &o, 60), 0);
    fprintf(stderr, "census lapped log: %ld parked, counted %llu (%llu registry walks); after "
                    "the wake-ups %llu\n",
            r.n, (unsigned long long)r.seen_parked, (unsigned long long)r.walks,
            (unsigned long long)r.seen_after);
    /* 24k goroutines spawned and parked on one P lap its 8k-entry log
     * within an epoch, unless the build is too slow to park them that
     * fast (sanitizers, valgrind, the chaos build's injected delays): then
     * the walk is not needed, and the counts above are what is checked. */
#ifndef GORO_CHAOS
    if (!GT_SANITIZED && !gt_under_valgrind())
        assert_true(r.walks >= 1);
#endif
    assert_int_equal(r.bad, 0);
    assert_true(r.cleaned);
    assert_int_equal(r.seen_parked, (uint64_t)r.n);
    assert_int_equal(r.seen_after, 0);
}

/* ---- windows 1 and 2: churn at the counted call sites ---------------- */

/* Pairs ping-pong on unbuffered channels (every receive parks, briefly or
 * across an epoch when the partner is descheduled) at the same call as
 * goroutines that stay parked; the chaos build perturbs the schedule in
 * the park path. At the end only the stayers may be counted: a phantom
 * count (a wake-up lost against sysmon's CAS) or a lost one would show. */
#define PAIRS 8
#define STAYERS 100

typedef struct churn_state {
    goro_chan *stay;
    _Atomic int stop;
    _Atomic long rounds, bad, done;
} churn_state;

typedef struct churn_pair {
    churn_state *s;
    goro_chan *a, *b;
} churn_pair;

NOINLINE static int churn_recv(goro_chan *c, int *v, bool *ok) { return goro_chan_recv(c, v, ok); }

static void churner(void *arg)
{
    churn_pair *p = arg;
    int v = 0;
    bool ok = true;
    while (churn_recv(p->a, &v, &ok) == 0 && ok) {
        if (goro_chan_send(p->b, &v) != 0)
            atomic_fetch_add(&p->s->bad, 1);
        atomic_fetch_add(&p->s->rounds, 1);
    }
    atomic_fetch_add(&p->s->done, 1);
}

static void churn_stayer(void *arg)
{
    churn_state *s = arg;
    int v;
    bool ok = true;
    if (churn_recv(s->stay, &v, &ok) != 0 || ok)
        atomic_fetch_add(&s->bad, 1);
    atomic_fetch_add(&s->done, 1);
}

static void churn_driver(void *arg)
{
    churn_pair *p = arg;
    int64_t i = 0;
    while (!atomic_load(&p->s->stop)) {
        int v = (int)i++, back;
        bool ok;
        if (goro_chan_send(p->a, &v) != 0 || goro_chan_recv(p->b, &back, &ok) != 0 || !ok)
            atomic_fetch_add(&p->s->bad, 1);
        if (i % 64 == 0) /* now and then a wait across an epoch */
            goro_sleep(70 * MS);
    }
    goro_chan_close(p->a);
    atomic_fetch_add(&p->s->done, 1);
}

typedef struct {
    uint64_t stayers_seen, churn_left, stay_left;
    long rounds, bad, done;
    bool cleaned;
} churn_res;

static void churn_main(void *arg)
{
    churn_res *r = arg;
    churn_state s = {0};
    churn_pair pairs[PAIRS];
    long started = 0;
    if (goro_chan_make(&s.stay, sizeof(int), 0) != 0) {
        r->bad = -1;
        return;
    }
    for (int i = 0; i < PAIRS; i++) {
        pairs[i].s = &s;
        if (goro_chan_make(&pairs[i].a, sizeof(int), 0) || goro_chan_make(&pairs[i].b, sizeof(int), 0)) {
            r->bad = -1;
            return;
        }
        started += goro_go(churner, &pairs[i]) == 0;
        started += goro_go(churn_driver, &pairs[i]) == 0;
    }
    for (int i = 0; i < STAYERS; i++)
        started += goro_go(churn_stayer, &s) == 0;
    r->stayers_seen = wait_census(churn_stayer, STAYERS, 5 * GORO_SECOND);
    int64_t end = goro_now() + gt_slow(1500 * MS);
    while (goro_now() < end)
        goro_sleep(10 * MS);
    atomic_store(&s.stop, 1);
    /* The churners end (their channels closed by the drivers): nothing of
     * them may stay counted; the stayers still are. */
    int64_t t = goro_now() + gt_slow(5 * GORO_SECOND);
    while (atomic_load(&s.done) < 2 * PAIRS && goro_now() < t)
        goro_sleep(MS);
    r->churn_left = wait_census(churner, 0, 2 * GORO_SECOND);
    r->stay_left = census_of(churn_stayer, 0);
    goro_chan_close(s.stay);
    uint64_t gone = wait_census(churn_stayer, 0, 5 * GORO_SECOND);
    if (gone)
        r->stay_left = 1000000 + gone;
    r->cleaned = gt_wait_num_goroutines(1, gt_slow(5 * GORO_SECOND));
    r->rounds = atomic_load(&s.rounds);
    r->bad = atomic_load(&s.bad);
    r->done = atomic_load(&s.done);
    if (started != 2 * PAIRS + STAYERS)
        r->bad++;
    for (int i = 0; i < PAIRS; i++) {
        goro_chan_release(pairs[i].a);
        goro_chan_release(pairs[i].b);
    }
    goro_chan_release(s.stay);
}

static void test_churn_no_phantoms(void **st)
{
    (void)st;
    churn_res r = {0};
    goro_options o = gt_opts(2);
    assert_rc(gt_run("census churn", churn_main, &r, &o, 60), 0);
    fprintf(stderr, "census churn: %ld round trips; stayers counted %llu of %d, then %llu; "
                    "churners left counted %llu\n",
            r.rounds, (unsigned long long)r.stayers_seen, STAYERS,
            (unsigned long long)r.stay_left, (unsigned long long)r.churn_left);
    assert_int_equal(r.bad, 0);
    assert_true(r.cleaned);
    assert_true(r.rounds > 0);
    assert_int_equal(r.stayers_seen, STAYERS);
    assert_int_equal(r.stay_left, STAYERS);
    assert_int_equal(r.churn_left, 0);
}

/* ---- never counted: timed waits and sleeps --------------------------- */

typedef struct {
    goro_chan *ch;
    _Atomic int parked;
    _Atomic long bad;
} nc_state;

static void timed_waiter(void *arg)
{
    nc_state *s = arg;
    int v;
    bool ok;
    atomic_fetch_add(&s->parked, 1);
    int rc = goro_chan_recv_until(s->ch, &v, &ok, goro_deadline_after(60 * GORO_SECOND));
    if (rc != 0 || ok)
        atomic_fetch_add(&s->bad, 1);
}

static void long_sleeper(void *arg)
{
    nc_state *s = arg;
    atomic_fetch_add(&s->parked, 1);
    goro_sleep(400 * MS);
}

static void control_waiter(void *arg)
{
    nc_state *s = arg;
    int v;
    bool ok;
    atomic_fetch_add(&s->parked, 1);
    if (goro_chan_recv(s->ch, &v, &ok) != 0 || ok)
        atomic_fetch_add(&s->bad, 1);
}

typedef struct {
    uint64_t timed, sleepers, control;
    long bad;
    bool cleaned;
} nc_res;

static void nc_main(void *arg)
{
    nc_res *r = arg;
    nc_state s = {0};
    if (goro_chan_make(&s.ch, sizeof(int), 0) != 0) {
        r->bad = -1;
        return;
    }
    for (int i = 0; i < 50; i++) {
        goro_go(timed_waiter, &s);
        goro_go(long_sleeper, &s);
    }
    goro_go(control_waiter, &s);
    /* The control (same channel, no deadline) being counted proves sysmon
     * read the logs of the others' epochs too. */
    r->control = wait_census(control_waiter, 1, 5 * GORO_SECOND);
    r->timed = census_of(timed_waiter, 0);
    r->sleepers = census_of(long_sleeper, 0);
    goro_chan_close(s.ch);
    r->cleaned = gt_wait_num_goroutines(1, gt_slow(5 * GORO_SECOND));
    r->bad = atomic_load(&s.bad);
    goro_chan_release(s.ch);
}

static void test_timed_and_sleep_not_counted(void **st)
{
    (void)st;
    nc_res r = {0};
    goro_options o = gt_opts(2);
    assert_rc(gt_run("census not counted", nc_main, &r, &o, 60), 0);
    assert_int_equal(r.bad, 0);
    assert_true(r.cleaned);
    assert_int_equal(r.control, 1);
    assert_int_equal(r.timed, 0);
    assert_int_equal(r.sleepers, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_1proc),
        cmocka_unit_test(test_exact_2procs),
        cmocka_unit_test(test_lapped_log_walk),
        cmocka_unit_test(test_churn_no_phantoms),
        cmocka_unit_test(test_timed_and_sleep_not_counted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
