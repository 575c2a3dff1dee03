/*
 * test_sync.c - Mutex, RWMutex, WaitGroup, Once and Cond.
 */
#define _GNU_SOURCE
#include "util.h"

#define MS GORO_MILLISECOND

/* goro_go that stores the new goroutine's id in *idp. */
#define go_id(fn, arg, idp)                                                    \
    goro_spawn((fn), (arg),                                                    \
               &(const goro_spawn_opts){                                       \
                   .file = __FILE__, .line = __LINE__, .func = __func__},      \
               (idp))

/* Inside a goroutine: wait until goroutine id is parked with the wait
 * reason `reason` ("sync.Mutex.Lock", ...), as goro_leak_find sees it, or
 * (if done is not NULL) until *done is set. Tests use it instead of
 * sleeping "long enough" for a goroutine to have queued on a lock: under
 * load no sleep is long enough. Bounded: false after a generous timeout. */
static bool wait_parked_or_done(uint64_t id, const char *reason, atomic_long *done)
{
    int64_t end = goro_now() + gt_slow(5 * GORO_SECOND);
    for (;;) {
        if (done && atomic_load(done))
            return true;
        goro_leak_report *r = NULL;
        bool found = false;
        if (goro_leak_find(&(goro_leak_opts){.retries = -1}, &r) == 0 && r)
            for (size_t i = 0; i < r->count && !found; i++)
                found = r->goroutines[i].id == id && r->goroutines[i].blocked &&
                        r->goroutines[i].state && strcmp(r->goroutines[i].state, reason) == 0;
        goro_leak_report_free(r);
        if (found)
            return true;
        if (goro_now() >= end)
            return false;
        goro_sleep(MS);
    }
}

static bool wait_parked_in(uint64_t id, const char *reason)
{
    return wait_parked_or_done(id, reason, NULL);
}

/* ------------------------------------------------------------------------- */
/* Mutex: mutual exclusion under contention                                   */
/* ------------------------------------------------------------------------- */

#define MX_N 8

typedef struct {
    goro_mutex mu;
    long counter; /* plain, protected by mu */
    size_t per;
    atomic_int holders;
    atomic_long overlap, lock_bad;
    goro_waitgroup wg;
} mx_state;

static void mx_worker(void *arg)
{
    mx_state *s = arg;
    for (size_t i = 0; i < s->per; i++) {
        if (goro_mutex_lock(&s->mu) != 0) {
            atomic_fetch_add(&s->lock_bad, 1);
            continue;
        }
        if (atomic_fetch_add(&s->holders, 1) != 0)
            atomic_fetch_add(&s->overlap, 1);
        long c = s->counter;
        if (i % 512 == 0)
            goro_yield(); /* let others pile up on the lock */
        s->counter = c + 1;
        atomic_fetch_sub(&s->holders, 1);
        if (goro_mutex_unlock(&s->mu) != 0)
            atomic_fetch_add(&s->lock_bad, 1);
    }
    goro_waitgroup_done(&s->wg);
}

static void mx_main(void *arg)
{
    mx_state *s = arg;
    goro_waitgroup_add(&s->wg, MX_N);
    for (int i = 0; i < MX_N; i++)
        goro_go(mx_worker, s);
    goro_waitgroup_wait(&s->wg);
}

static void test_mutex_exclusion(void **st)
{
    (void)st;
    for (int procs = 1; procs <= 2; procs++) {
        mx_state s;
        memset(&s, 0, sizeof s);
        s.per = gt_scale("mutex increments per goroutine", 20000, 10000, 5000);
        goro_options o = gt_opts(procs);
        assert_rc(gt_run("mutex exclusion", mx_main, &s, &o, 60), 0);
        assert_int_equal(atomic_load(&s.lock_bad), 0);
        assert_int_equal(atomic_load(&s.overlap), 0);
        assert_int_equal(s.counter, (long)(MX_N * s.per));
    }
}

/* ------------------------------------------------------------------------- */
/* Mutex: trylock, lock_until, unlock misuse, not tied to a goroutine         */
/* ------------------------------------------------------------------------- */

static goro_mutex static_mu = GORO_MUTEX_INIT;

typedef struct {
    goro_mutex mu;
    goro_waitgroup wg;
    int rc[24];
    int64_t late, fast;
    atomic_int b_locked;
    atomic_long t_done;
    bool t_seen, b_parked, t_returned;
} mt_state;

static void mt_trylocker(void *arg)
{
    mt_state *s = arg;
    s->rc[2] = goro_mutex_trylock(&s->mu);
    int64_t d = goro_now() + 50 * MS;
    s->rc[3] = goro_mutex_lock_until(&s->mu, d);
    s->late = goro_now() - d;
    s->rc[4] = goro_mutex_trylock(&s->mu); /* still held by main */
    goro_waitgroup_done(&s->wg);
}

static void mt_blocking_locker(void *arg)
{
    mt_state *s = arg;
    s->rc[10] = goro_mutex_lock(&s->mu);
    atomic_store(&s->b_locked, 1);
    goro_waitgroup_done(&s->wg);
}

static void mt_timed_out_locker(void *arg)
{
    mt_state *s = arg;
    s->rc[11] = goro_mutex_lock_until(&s->mu, goro_deadline_after(20 * MS));
    atomic_store(&s->t_done, 1);
    goro_waitgroup_done(&s->wg);
}

static void mt_unlocker(void *arg)
{
    mt_state *s = arg;
    s->rc[14] = goro_mutex_unlock(&s->mu); /* locked by main */
    goro_waitgroup_done(&s->wg);
}

static void mt_main(void *arg)
{
    mt_state *s = arg;
    s->rc[0] = goro_mutex_lock(&s->mu);
    s->rc[1] = goro_mutex_trylock(&s->mu); /* not reentrant */
    goro_waitgroup_add(&s->wg, 1);
    goro_go(mt_trylocker, s);
    goro_waitgroup_wait(&s->wg);
    s->rc[5] = goro_mutex_unlock(&s->mu);
    s->rc[6] = goro_mutex_trylock(&s->mu);
    s->rc[7] = goro_mutex_unlock(&s->mu);
    s->rc[8] = goro_mutex_unlock(&s->mu); /* unlocked: -EPERM */
    /* lock_until on a free mutex with a past deadline acquires it */
    s->rc[9] = goro_mutex_lock_until(&s->mu, goro_now() - 1);
    /* a waiter that times out does not swallow the wake-up of the next one:
     * the timed waiter queues first (when it is seen in time), the blocking
     * one behind it; the unlock comes after the first gave up */
    goro_waitgroup_add(&s->wg, 2);
    uint64_t t_id = 0, b_id = 0;
    go_id(mt_timed_out_locker, s, &t_id);
    s->t_seen = wait_parked_or_done(t_id, "sync.Mutex.Lock", &s->t_done);
    go_id(mt_blocking_locker, s, &b_id);
    s->b_parked = wait_parked_in(b_id, "sync.Mutex.Lock");
    s->t_returned = gt_wait_atomic_ge(&s->t_done, 1, gt_slow(5 * GORO_SECOND));
    s->rc[12] = atomic_load(&s->b_locked); /* 0: still waiting */
    s->rc[13] = goro_mutex_unlock(&s->mu);
    goro_waitgroup_wait(&s->wg);
    /* not tied to a goroutine: B locked it, another goroutine unlocks */
    goro_waitgroup_add(&s->wg, 1);
    goro_go(mt_unlocker, s);
    goro_waitgroup_wait(&s->wg);
    int64_t t0 = goro_now();
    s->rc[15] = goro_mutex_lock_until(&s->mu, goro_deadline_after(gt_slow(5 * GORO_SECOND)));
    s->fast = goro_now() - t0;
    s->rc[16] = goro_mutex_unlock(&s->mu);
    /* static initializer and zeroed struct */
    s->rc[17] = goro_mutex_lock(&static_mu);
    s->rc[18] = goro_mutex_trylock(&static_mu);
    s->rc[19] = goro_mutex_unlock(&static_mu);
    goro_mutex z;
    memset(&z, 0, sizeof z);
    s->rc[20] = goro_mutex_trylock(&z);
    s->rc[21] = goro_mutex_unlock(&z);
    s->rc[22] = goro_mutex_unlock(&z);
}

static void test_mutex_try_timeout_misuse(void **st)
{
    (void)st;
    mt_state s;
    memset(&s, 0, sizeof s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("mutex try/timeout", mt_main, &s, &o, 30), 0);
    assert_true_msg(s.t_seen, "the timed waiter was never seen waiting or done");
    assert_true_msg(s.b_parked, "the blocking locker never queued on the mutex");
    assert_true_msg(s.t_returned, "the timed waiter did not give up within its deadline");
    assert_rc(s.rc[0], 0);
    assert_rc(s.rc[1], -EBUSY);
    assert_rc(s.rc[2], -EBUSY);
    assert_rc(s.rc[3], -ETIMEDOUT);
    assert_true(s.late >= 0);
    assert_true(s.late < gt_slow(GORO_SECOND));
    assert_rc(s.rc[4], -EBUSY);
    assert_rc(s.rc[5], 0);
    assert_rc(s.rc[6], 0);
    assert_rc(s.rc[7], 0);
    assert_rc(s.rc[8], -EPERM);
    assert_rc(s.rc[9], 0);
    assert_rc(s.rc[10], 0);
    assert_rc(s.rc[11], -ETIMEDOUT);
    assert_int_equal(s.rc[12], 0);
    assert_rc(s.rc[13], 0);
    assert_rc(s.rc[14], 0);
    assert_rc(s.rc[15], 0);
    assert_true(s.fast < gt_slow(GORO_SECOND));
    assert_rc(s.rc[16], 0);
    assert_rc(s.rc[17], 0);
    assert_rc(s.rc[18], -EBUSY);
    assert_rc(s.rc[19], 0);
    assert_rc(s.rc[20], 0);
    assert_rc(s.rc[21], 0);
    assert_rc(s.rc[22], -EPERM);
}

/* ------------------------------------------------------------------------- */
/* Mutex: a waiter is not starved by a goroutine that keeps re-locking        */
/* ------------------------------------------------------------------------- */

typedef struct {
    goro_mutex mu;
    goro_waitgroup wg;
    atomic_int acquired;
    atomic_long hammer_rounds;
    int64_t wait_ns;
    bool hammering;
} starve_state;

static void starve_hammer(void *arg)
{
    starve_state *s = arg;
    int64_t end = goro_now() + gt_slow(3 * GORO_SECOND);
    while (!atomic_load(&s->acquired) && goro_now() < end) {
        goro_mutex_lock(&s->mu);
        int64_t t = goro_now();
        while (goro_now() - t < 100 * GORO_MICROSECOND) {
        }
        goro_mutex_unlock(&s->mu);
        atomic_fetch_add(&s->hammer_rounds, 1);
    }
    goro_waitgroup_done(&s->wg);
}

static void starve_waiter(void *arg)
{
    starve_state *s = arg;
    int64_t t0 = goro_now();
    goro_mutex_lock(&s->mu);
    s->wait_ns = goro_now() - t0;
    atomic_store(&s->acquired, 1);
    goro_mutex_unlock(&s->mu);
    goro_waitgroup_done(&s->wg);
}

static void starve_main(void *arg)
{
    starve_state *s = arg;
    goro_waitgroup_add(&s->wg, 2);
    goro_go(starve_hammer, s);
    /* the hammer is going (a few rounds done) before the waiter comes */
    s->hammering = gt_wait_atomic_ge(&s->hammer_rounds, 20, gt_slow(5 * GORO_SECOND));
    goro_go(starve_waiter, s);
    goro_waitgroup_wait(&s->wg);
}

static void test_mutex_no_starvation(void **st)
{
    (void)st;
    starve_state s;
    memset(&s, 0, sizeof s);
    goro_options o = gt_opts(2);
    o.longrun_report_ns = -1;
    assert_rc(gt_run("mutex starvation", starve_main, &s, &o, 60), 0);
    assert_true(s.hammering);
    assert_int_equal(atomic_load(&s.acquired), 1);
    fprintf(stderr, "mutex: waiter got the lock after %.2f ms (hammer did %ld rounds)\n",
            s.wait_ns / 1e6, atomic_load(&s.hammer_rounds));
    /* Starved, the waiter would get the lock only when the hammer stops
     * (3 s, x5 under TSan): a third of that is a generous bound that still
     * tells the two apart on a loaded machine. */
    assert_true_msg(s.wait_ns < gt_slow(GORO_SECOND),
                    "waiter starved for %.1f ms by a re-locking goroutine", s.wait_ns / 1e6);
}

/* ------------------------------------------------------------------------- */
/* RWMutex                                                                    */
/* ------------------------------------------------------------------------- */

#define RW_READERS 4

typedef struct {
    goro_rwmutex rw;
    atomic_int inside, max_inside;
    atomic_int all_met, rlock_bad;
    goro_waitgroup wg;
} rr_state;

static void rr_reader(void *arg)
{
    rr_state *s = arg;
    if (goro_rwmutex_rlock(&s->rw) != 0) {
        atomic_fetch_add(&s->rlock_bad, 1);
        goro_waitgroup_done(&s->wg);
        return;
    }
    int n = atomic_fetch_add(&s->inside, 1) + 1;
    int m = atomic_load(&s->max_inside);
    while (n > m && !atomic_compare_exchange_weak(&s->max_inside, &m, n)) {
    }
    /* stay inside until every reader is inside: only possible if they hold
     * the read lock at the same time */
    int64_t end = goro_now() + gt_slow(3 * GORO_SECOND);
    while (atomic_load(&s->max_inside) < RW_READERS && goro_now() < end)
        goro_sleep(MS);
    if (atomic_load(&s->max_inside) == RW_READERS)
        atomic_fetch_add(&s->all_met, 1);
    atomic_fetch_sub(&s->inside, 1);
    if (goro_rwmutex_runlock(&s->rw) != 0)
        atomic_fetch_add(&s->rlock_bad, 1);
    goro_waitgroup_done(&s->wg);
}

static void rr_main(void *arg)
{
    rr_state *s = arg;
    goro_waitgroup_add(&s->wg, RW_READERS);
    for (int i = 0; i < RW_READERS; i++)
        goro_go(rr_reader, s);
    goro_waitgroup_wait(&s->wg);
}

static void test_rwmutex_readers_concurrent(void **st)
{
    (void)st;
    rr_state s;
    memset(&s, 0, sizeof s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("rwmutex readers", rr_main, &s, &o, 30), 0);
    assert_int_equal(atomic_load(&s.rlock_bad), 0);
    assert_int_equal(atomic_load(&s.max_inside), RW_READERS);
    assert_int_equal(atomic_load(&s.all_met), RW_READERS);
}

#define RWX_WRITERS 2
#define RWX_READERS 6

typedef struct {
    goro_rwmutex rw;
    atomic_int readers_in, writers_in;
    atomic_long violations, torn, bad_rc;
    long a, b; /* plain; written under the write lock, read under read locks */
    size_t iters;
    goro_waitgroup wg;
    long writes;
} rwx_state;

static void rwx_writer(void *arg)
{
    rwx_state *s = arg;
    for (size_t i = 0; i < s->iters; i++) {
        if (goro_rwmutex_lock(&s->rw) != 0) {
            atomic_fetch_add(&s->bad_rc, 1);
            continue;
        }
        if (atomic_fetch_add(&s->writers_in, 1) != 0 || atomic_load(&s->readers_in) != 0)
            atomic_fetch_add(&s->violations, 1);
        s->a++;
        if (i % 16 == 0)
            goro_yield();
        s->b++;
        s->writes++;
        atomic_fetch_sub(&s->writers_in, 1);
        if (goro_rwmutex_unlock(&s->rw) != 0)
            atomic_fetch_add(&s->bad_rc, 1);
    }
    goro_waitgroup_done(&s->wg);
}

static void rwx_reader(void *arg)
{
    rwx_state *s = arg;
    for (size_t i = 0; i < s->iters * 2; i++) {
        if (goro_rwmutex_rlock(&s->rw) != 0) {
            atomic_fetch_add(&s->bad_rc, 1);
            continue;
        }
        atomic_fetch_add(&s->readers_in, 1);
        if (atomic_load(&s->writers_in) != 0)
            atomic_fetch_add(&s->violations, 1);
        long a = s->a;
        if (i % 16 == 0)
            goro_yield();
        long b = s->b;
        if (a != b)
            atomic_fetch_add(&s->torn, 1);
        atomic_fetch_sub(&s->readers_in, 1);
        if (goro_rwmutex_runlock(&s->rw) != 0)
            atomic_fetch_add(&s->bad_rc, 1);
    }
    goro_waitgroup_done(&s->wg);
}

static void rwx_main(void *arg)
{
    rwx_state *s = arg;
    goro_waitgroup_add(&s->wg, RWX_WRITERS + RWX_READERS);
    for (int i = 0; i < RWX_READERS; i++) {
        goro_go(rwx_reader, s);
        if (i < RWX_WRITERS)
            goro_go(rwx_writer, s);
    }
    goro_waitgroup_wait(&s->wg);
}

static void test_rwmutex_writer_exclusive(void **st)
{
    (void)st;
    rwx_state s;
    memset(&s, 0, sizeof s);
    s.iters = gt_scale("rwmutex iterations", 5000, 3000, 1000);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("rwmutex exclusive", rwx_main, &s, &o, 60), 0);
    assert_int_equal(atomic_load(&s.bad_rc), 0);
    assert_int_equal(atomic_load(&s.violations), 0);
    assert_int_equal(atomic_load(&s.torn), 0);
    assert_int_equal(s.writes, (long)(RWX_WRITERS * s.iters));
    assert_int_equal(s.a, s.b);
}

typedef struct {
    goro_rwmutex rw;
    goro_waitgroup wg;
    char order[4];
    atomic_int pos;
    int rc[12];
    char order_before_release[4];
    bool w_waiting, r_waiting;
} pref_state;

static void pref_writer(void *arg)
{
    pref_state *s = arg;
    s->rc[5] = goro_rwmutex_lock(&s->rw);
    s->order[atomic_fetch_add(&s->pos, 1)] = 'W';
    goro_sleep(5 * MS);
    s->rc[6] = goro_rwmutex_unlock(&s->rw);
    goro_waitgroup_done(&s->wg);
}

static void pref_reader(void *arg)
{
    pref_state *s = arg;
    s->rc[7] = goro_rwmutex_rlock(&s->rw);
    s->order[atomic_fetch_add(&s->pos, 1)] = 'R';
    s->rc[8] = goro_rwmutex_runlock(&s->rw);
    goro_waitgroup_done(&s->wg);
}

static void pref_main(void *arg)
{
    pref_state *s = arg;
    s->rc[0] = goro_rwmutex_rlock(&s->rw);
    goro_waitgroup_add(&s->wg, 2);
    uint64_t w_id = 0, r_id = 0;
    go_id(pref_writer, s, &w_id);
    s->w_waiting = wait_parked_in(w_id, "sync.RWMutex.Lock");
    s->rc[1] = goro_rwmutex_tryrlock(&s->rw);
    if (s->rc[1] == 0)
        goro_rwmutex_runlock(&s->rw);
    s->rc[2] = goro_rwmutex_rlock_until(&s->rw, goro_deadline_after(30 * MS));
    if (s->rc[2] == 0)
        goro_rwmutex_runlock(&s->rw);
    go_id(pref_reader, s, &r_id);
    s->r_waiting = wait_parked_in(r_id, "sync.RWMutex.RLock");
    int n = atomic_load(&s->pos);
    memcpy(s->order_before_release, s->order, (size_t)n);
    s->rc[3] = n;
    s->rc[4] = goro_rwmutex_runlock(&s->rw);
    goro_waitgroup_wait(&s->wg);
}

static void test_rwmutex_writer_preference(void **st)
{
    (void)st;
    pref_state s;
    memset(&s, 0, sizeof s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("rwmutex writer preference", pref_main, &s, &o, 30), 0);
    assert_true_msg(s.w_waiting, "the writer was never seen waiting for the lock");
    assert_true_msg(s.r_waiting, "the later reader was never seen waiting for the lock");
    assert_rc(s.rc[0], 0);
    assert_rc(s.rc[1], -EBUSY);     /* a waiting writer blocks new readers */
    assert_rc(s.rc[2], -ETIMEDOUT); /* ... also blocking ones */
    assert_int_equal(s.rc[3], 0);   /* neither writer nor new reader got in */
    assert_rc(s.rc[4], 0);
    assert_rc(s.rc[5], 0);
    assert_rc(s.rc[6], 0);
    assert_rc(s.rc[7], 0);
    assert_rc(s.rc[8], 0);
    assert_int_equal(atomic_load(&s.pos), 2);
    assert_true_msg(s.order[0] == 'W' && s.order[1] == 'R',
                    "order %c%c: the waiting writer must go before the later reader",
                    s.order[0], s.order[1]);
}

typedef struct {
    int rc[20];
} rwm_state;

static void rwm_main(void *arg)
{
    rwm_state *s = arg;
    goro_rwmutex rw = GORO_RWMUTEX_INIT;
    s->rc[0] = goro_rwmutex_runlock(&rw);
    s->rc[1] = goro_rwmutex_unlock(&rw);
    s->rc[2] = goro_rwmutex_rlock(&rw);
    s->rc[3] = goro_rwmutex_unlock(&rw);  /* read-locked, not write-locked */
    s->rc[4] = goro_rwmutex_trylock(&rw); /* readers inside */
    s->rc[5] = goro_rwmutex_lock_until(&rw, goro_deadline_after(20 * MS));
    s->rc[6] = goro_rwmutex_tryrlock(&rw); /* second reader */
    s->rc[7] = goro_rwmutex_runlock(&rw);
    s->rc[8] = goro_rwmutex_runlock(&rw);
    s->rc[9] = goro_rwmutex_runlock(&rw); /* one too many */
    s->rc[10] = goro_rwmutex_lock(&rw);
    s->rc[11] = goro_rwmutex_runlock(&rw); /* write-locked, not read-locked */
    s->rc[12] = goro_rwmutex_tryrlock(&rw);
    s->rc[13] = goro_rwmutex_rlock_until(&rw, goro_deadline_after(20 * MS));
    s->rc[14] = goro_rwmutex_trylock(&rw);
    s->rc[15] = goro_rwmutex_unlock(&rw);
    s->rc[16] = goro_rwmutex_unlock(&rw);
    s->rc[17] = goro_rwmutex_trylock(&rw); /* still usable after misuse */
    s->rc[18] = goro_rwmutex_unlock(&rw);
    s->rc[19] = goro_rwmutex_lock_until(&rw, goro_now() - 1);
    goro_rwmutex_unlock(&rw);
}

static void test_rwmutex_misuse(void **st)
{
    (void)st;
    rwm_state s;
    memset(&s, 0, sizeof s);
    assert_rc(gt_run("rwmutex misuse", rwm_main, &s, NULL, 30), 0);
    assert_rc(s.rc[0], -EPERM);
    assert_rc(s.rc[1], -EPERM);
    assert_rc(s.rc[2], 0);
    assert_rc(s.rc[3], -EPERM);
    assert_rc(s.rc[4], -EBUSY);
    assert_rc(s.rc[5], -ETIMEDOUT);
    assert_rc(s.rc[6], 0);
    assert_rc(s.rc[7], 0);
    assert_rc(s.rc[8], 0);
    assert_rc(s.rc[9], -EPERM);
    assert_rc(s.rc[10], 0);
    assert_rc(s.rc[11], -EPERM);
    assert_rc(s.rc[12], -EBUSY);
    assert_rc(s.rc[13], -ETIMEDOUT);
    assert_rc(s.rc[14], -EBUSY);
    assert_rc(s.rc[15], 0);
    assert_rc(s.rc[16], -EPERM);
    assert_rc(s.rc[17], 0);
    assert_rc(s.rc[18], 0);
    assert_rc(s.rc[19], 0);
}

/* ------------------------------------------------------------------------- */
/* WaitGroup                                                                  */
/* ------------------------------------------------------------------------- */

#define WG_N 50
#define WG_WAITERS 3

typedef struct {
    goro_waitgroup wg, waiters_wg;
    atomic_int finished;
    int seen_by_waiter[WG_WAITERS];
    int waiter_rc[WG_WAITERS];
    atomic_int widx;
    int seen_by_main, main_rc, zero_rc;
    atomic_int done_rc_bad;
} wg_state;

static void wg_worker(void *arg)
{
    wg_state *s = arg;
    goro_sleep((int64_t)(goro_id() % 20) * MS);
    atomic_fetch_add(&s->finished, 1);
    if (goro_waitgroup_done(&s->wg) != 0)
        atomic_store(&s->done_rc_bad, 1);
}

static void wg_waiter(void *arg)
{
    wg_state *s = arg;
    int i = atomic_fetch_add(&s->widx, 1);
    s->waiter_rc[i] = goro_waitgroup_wait(&s->wg);
    s->seen_by_waiter[i] = atomic_load(&s->finished);
    goro_waitgroup_done(&s->waiters_wg);
}

static void wg_main(void *arg)
{
    wg_state *s = arg;
    goro_waitgroup z = GORO_WAITGROUP_INIT;
    s->zero_rc = goro_waitgroup_wait(&z); /* counter 0: returns at once */
    goro_waitgroup_add(&s->wg, WG_N);
    goro_waitgroup_add(&s->waiters_wg, WG_WAITERS);
    for (int i = 0; i < WG_WAITERS; i++)
        goro_go(wg_waiter, s);
    for (int i = 0; i < WG_N; i++)
        goro_go(wg_worker, s);
    s->main_rc = goro_waitgroup_wait(&s->wg);
    s->seen_by_main = atomic_load(&s->finished);
    goro_waitgroup_wait(&s->waiters_wg);
}

static void test_waitgroup_wait(void **st)
{
    (void)st;
    wg_state s;
    memset(&s, 0, sizeof s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("waitgroup", wg_main, &s, &o, 30), 0);
    assert_rc(s.zero_rc, 0);
    assert_rc(s.main_rc, 0);
    assert_int_equal(atomic_load(&s.done_rc_bad), 0);
    assert_int_equal(s.seen_by_main, WG_N);
    for (int i = 0; i < WG_WAITERS; i++) {
        assert_rc(s.waiter_rc[i], 0);
        assert_int_equal(s.seen_by_waiter[i], WG_N);
    }
}

typedef struct {
    int rc[20];
    int64_t late;
} wgn_state;

static void wgn_main(void *arg)
{
    wgn_state *s = arg;
    goro_waitgroup wg;
    memset(&wg, 0, sizeof wg);
    s->rc[0] = goro_waitgroup_done(&wg);      /* 0 -> -1 */
    s->rc[1] = goro_waitgroup_add(&wg, -1);
    s->rc[2] = goro_waitgroup_add(&wg, 2);
    s->rc[3] = goro_waitgroup_add(&wg, -3);   /* would be -1: unchanged (2) */
    s->rc[4] = goro_waitgroup_done(&wg);      /* 1 */
    s->rc[5] = goro_waitgroup_wait_until(&wg, goro_now() - 1); /* still 1 */
    int64_t d = goro_now() + 50 * MS;
    s->rc[6] = goro_waitgroup_wait_until(&wg, d);
    s->late = goro_now() - d;
    s->rc[7] = goro_waitgroup_done(&wg);      /* 0 */
    s->rc[8] = goro_waitgroup_wait(&wg);
    s->rc[9] = goro_waitgroup_wait_until(&wg, goro_now() - 1); /* 0: ready */
    s->rc[10] = goro_waitgroup_done(&wg);     /* -1 again */
    s->rc[11] = goro_waitgroup_add(&wg, INT32_MAX);
    s->rc[12] = goro_waitgroup_add(&wg, 1);   /* would exceed INT32_MAX */
    s->rc[13] = goro_waitgroup_add(&wg, -INT32_MAX);
    s->rc[14] = goro_waitgroup_wait_until(&wg, goro_now() - 1);
    s->rc[15] = goro_waitgroup_add(&wg, INT32_MIN);
    s->rc[16] = goro_waitgroup_add(&wg, 0);
    s->rc[17] = goro_waitgroup_wait(&wg);
}

static void test_waitgroup_negative_and_timeout(void **st)
{
    (void)st;
    wgn_state s;
    memset(&s, 0, sizeof s);
    assert_rc(gt_run("waitgroup negative", wgn_main, &s, NULL, 30), 0);
    assert_rc(s.rc[0], -EINVAL);
    assert_rc(s.rc[1], -EINVAL);
    assert_rc(s.rc[2], 0);
    assert_rc(s.rc[3], -EINVAL);
    assert_rc(s.rc[4], 0);
    assert_rc(s.rc[5], -ETIMEDOUT); /* proves the -3 left the counter alone */
    assert_rc(s.rc[6], -ETIMEDOUT);
    assert_true(s.late >= 0);
    assert_true(s.late < gt_slow(GORO_SECOND));
    assert_rc(s.rc[7], 0);
    assert_rc(s.rc[8], 0);
    assert_rc(s.rc[9], 0);
    assert_rc(s.rc[10], -EINVAL);
    assert_rc(s.rc[11], 0);
    assert_rc(s.rc[12], -EINVAL);
    assert_rc(s.rc[13], 0);
    assert_rc(s.rc[14], 0);
    assert_rc(s.rc[15], -EINVAL);
    assert_rc(s.rc[16], 0);
    assert_rc(s.rc[17], 0);
}

/* ------------------------------------------------------------------------- */
/* Once                                                                       */
/* ------------------------------------------------------------------------- */

#define ONCE_CALLERS 64

typedef struct {
    goro_once once, once2, once3;
    atomic_int calls, completed;
    int ret[ONCE_CALLERS];
    int saw_completed[ONCE_CALLERS];
    atomic_int idx;
    goro_waitgroup wg;
    int later_rc, inner_rc, outer_rc, nested_other_rc, nested_outer_rc;
    atomic_int later_calls;
} once_state;

static void once_fn(void *arg)
{
    once_state *s = arg;
    atomic_fetch_add(&s->calls, 1);
    goro_sleep(20 * MS); /* the others must wait for this */
    atomic_store(&s->completed, 1);
}

static void once_caller(void *arg)
{
    once_state *s = arg;
    int i = atomic_fetch_add(&s->idx, 1);
    s->ret[i] = goro_once_do(&s->once, once_fn, s);
    s->saw_completed[i] = atomic_load(&s->completed);
    goro_waitgroup_done(&s->wg);
}

static void once_later(void *arg)
{
    once_state *s = arg;
    atomic_fetch_add(&s->later_calls, 1);
}

static void once_recursive(void *arg)
{
    once_state *s = arg;
    s->inner_rc = goro_once_do(&s->once2, once_later, s);
}

static void once_other(void *arg)
{
    once_state *s = arg;
    s->nested_other_rc = goro_once_do(&s->once3, once_later, s);
}

static void once_main(void *arg)
{
    once_state *s = arg;
    goro_waitgroup_add(&s->wg, ONCE_CALLERS);
    for (int i = 0; i < ONCE_CALLERS; i++)
        goro_go(once_caller, s);
    goro_waitgroup_wait(&s->wg);
    s->later_rc = goro_once_do(&s->once, once_later, s); /* already done */
    s->outer_rc = goro_once_do(&s->once2, once_recursive, s);
    goro_once o4 = GORO_ONCE_INIT;
    s->nested_outer_rc = goro_once_do(&o4, once_other, s);
}

static void test_once(void **st)
{
    (void)st;
    once_state s;
    memset(&s, 0, sizeof s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("once", once_main, &s, &o, 30), 0);
    assert_int_equal(atomic_load(&s.calls), 1);
    int ones = 0;
    for (int i = 0; i < ONCE_CALLERS; i++) {
        assert_true_msg(s.ret[i] == 0 || s.ret[i] == 1, "caller %d got %d (%s)", i,
                        s.ret[i], gt_errname(s.ret[i]));
        ones += s.ret[i];
        assert_true_msg(s.saw_completed[i], "caller %d returned before fn completed", i);
    }
    assert_int_equal(ones, 1);
    assert_rc(s.later_rc, 0);
    /* fn calling goro_once_do on its own once: -EDEADLK, and the outer call
     * still ran fn */
    assert_rc(s.inner_rc, -EDEADLK);
    assert_rc(s.outer_rc, 1);
    /* fn calling goro_once_do on a different once is fine */
    assert_rc(s.nested_outer_rc, 1);
    assert_rc(s.nested_other_rc, 1);
    assert_int_equal(atomic_load(&s.later_calls), 1);
}

/* ------------------------------------------------------------------------- */
/* Cond                                                                       */
/* ------------------------------------------------------------------------- */

#define COND_WAITERS 5

typedef struct {
    goro_cond c;
    goro_mutex m;
    int waiting;   /* under m */
    int tokens;    /* under m */
    atomic_int returns; /* raw returns from goro_cond_wait */
    atomic_int consumed;
    atomic_long bad_rc;
    goro_waitgroup wg;
    int after_signal_returns, after_signal_consumed;
    int all_waiting;
    bool signalled_woke;
    int rc[4];
    int wait_rc;
} cond_state;

static void cond_waiter(void *arg)
{
    cond_state *s = arg;
    goro_mutex_lock(&s->m);
    while (s->tokens == 0) {
        s->waiting++;
        int rc = goro_cond_wait(&s->c, &s->m);
        s->waiting--;
        atomic_fetch_add(&s->returns, 1);
        if (rc != 0)
            atomic_fetch_add(&s->bad_rc, 1);
    }
    s->tokens--;
    atomic_fetch_add(&s->consumed, 1);
    goro_mutex_unlock(&s->m);
    goro_waitgroup_done(&s->wg);
}

static void cond_main(void *arg)
{
    cond_state *s = arg;
    goro_waitgroup_add(&s->wg, COND_WAITERS);
    for (int i = 0; i < COND_WAITERS; i++)
        goro_go(cond_waiter, s);
    /* wait until every waiter is inside goro_cond_wait: they count
     * themselves under m, and cond_wait releases m atomically */
    int64_t end = goro_now() + gt_slow(5 * GORO_SECOND);
    for (;;) {
        goro_mutex_lock(&s->m);
        int w = s->waiting;
        goro_mutex_unlock(&s->m);
        if (w == COND_WAITERS) {
            s->all_waiting = 1;
            break;
        }
        if (goro_now() > end)
            break;
        goro_sleep(MS);
    }
    goro_mutex_lock(&s->m);
    s->tokens = 1;
    s->rc[0] = goro_cond_signal(&s->c);
    goro_mutex_unlock(&s->m);
    /* the signalled waiter takes the token; then give any waiter the
     * signal wrongly woke as well a moment to show itself */
    end = goro_now() + gt_slow(5 * GORO_SECOND);
    while (!(s->signalled_woke = atomic_load(&s->consumed) >= 1) && goro_now() < end)
        goro_sleep(MS);
    goro_sleep(20 * MS);
    s->after_signal_returns = atomic_load(&s->returns);
    s->after_signal_consumed = atomic_load(&s->consumed);
    goro_mutex_lock(&s->m);
    s->tokens += COND_WAITERS - 1;
    s->rc[1] = goro_cond_broadcast(&s->c);
    goro_mutex_unlock(&s->m);
    if ((s->wait_rc = gt_wg_wait(&s->wg, 10)) != 0)
        return;
    /* signals with nobody waiting are not remembered */
    s->rc[2] = goro_cond_signal(&s->c);
    s->rc[3] = goro_cond_broadcast(&s->c);
}

static void test_cond_signal_broadcast(void **st)
{
    (void)st;
    cond_state s;
    memset(&s, 0, sizeof s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("cond", cond_main, &s, &o, 30), 0);
    assert_true(s.all_waiting);
    assert_true_msg(s.signalled_woke, "goro_cond_signal woke no waiter");
    assert_true_msg(s.wait_rc == 0, "broadcast did not wake every waiter");
    assert_rc(s.rc[0], 0);
    assert_rc(s.rc[1], 0);
    assert_rc(s.rc[2], 0);
    assert_rc(s.rc[3], 0);
    assert_int_equal(atomic_load(&s.bad_rc), 0);
    assert_int_equal(s.after_signal_consumed, 1);
    assert_true_msg(s.after_signal_returns == 1,
                    "goro_cond_signal woke %d waiters, expected exactly one",
                    s.after_signal_returns);
    assert_int_equal(atomic_load(&s.consumed), COND_WAITERS);
}

typedef struct {
    goro_cond c;
    goro_mutex m;
    int rc[10];
    int64_t late, late2;
    goro_waitgroup wg;
} condt_state;

static void condt_other(void *arg)
{
    condt_state *s = arg;
    s->rc[3] = goro_mutex_trylock(&s->m); /* main re-holds m after the timeout */
    goro_waitgroup_done(&s->wg);
}

static void condt_main(void *arg)
{
    condt_state *s = arg;
    goro_mutex_lock(&s->m);
    int64_t d = goro_now() + 50 * MS;
    s->rc[0] = goro_cond_wait_until(&s->c, &s->m, d);
    s->late = goro_now() - d;
    s->rc[1] = goro_mutex_trylock(&s->m); /* held by us: -EBUSY */
    goro_waitgroup_add(&s->wg, 1);
    goro_go(condt_other, s);
    goro_waitgroup_wait(&s->wg);
    s->rc[2] = goro_mutex_unlock(&s->m); /* 0 proves it was locked */
    /* a signal sent before anyone waits is lost */
    goro_cond_signal(&s->c);
    goro_mutex_lock(&s->m);
    d = goro_now() + 30 * MS;
    s->rc[4] = goro_cond_wait_until(&s->c, &s->m, d);
    s->late2 = goro_now() - d;
    s->rc[5] = goro_mutex_unlock(&s->m);
    /* waiting with m not locked: -EPERM */
    goro_mutex m2 = GORO_MUTEX_INIT;
    s->rc[6] = goro_cond_wait(&s->c, &m2);
    goro_mutex m3 = GORO_MUTEX_INIT;
    s->rc[7] = goro_cond_wait_until(&s->c, &m3, goro_deadline_after(10 * MS));
    /* past deadline: times out at once, m still held */
    goro_mutex_lock(&s->m);
    s->rc[8] = goro_cond_wait_until(&s->c, &s->m, goro_now() - 1);
    s->rc[9] = goro_mutex_unlock(&s->m);
}

static void test_cond_wait_until(void **st)
{
    (void)st;
    condt_state s;
    memset(&s, 0, sizeof s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("cond wait_until", condt_main, &s, &o, 30), 0);
    assert_rc(s.rc[0], -ETIMEDOUT);
    assert_true(s.late >= 0);
    assert_true(s.late < gt_slow(GORO_SECOND));
    assert_rc(s.rc[1], -EBUSY);
    assert_rc(s.rc[3], -EBUSY);
    assert_rc(s.rc[2], 0);
    assert_rc(s.rc[4], -ETIMEDOUT);
    assert_true(s.late2 >= 0);
    assert_rc(s.rc[5], 0);
    assert_rc(s.rc[6], -EPERM);
    assert_rc(s.rc[7], -EPERM);
    assert_rc(s.rc[8], -ETIMEDOUT);
    assert_rc(s.rc[9], 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mutex_exclusion),
        cmocka_unit_test(test_mutex_try_timeout_misuse),
        cmocka_unit_test(test_mutex_no_starvation),
        cmocka_unit_test(test_rwmutex_readers_concurrent),
        cmocka_unit_test(test_rwmutex_writer_exclusive),
        cmocka_unit_test(test_rwmutex_writer_preference),
        cmocka_unit_test(test_rwmutex_misuse),
        cmocka_unit_test(test_waitgroup_wait),
        cmocka_unit_test(test_waitgroup_negative_and_timeout),
        cmocka_unit_test(test_once),
        cmocka_unit_test(test_cond_signal_broadcast),
        cmocka_unit_test(test_cond_wait_until),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
