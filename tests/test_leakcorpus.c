/*
 * test_leakcorpus.c - a corpus of small, real-world-shaped goroutine-leak
 * programs (C ports of the kernels of Go's goroutineleak tests and of the
 * blocking-bug studies: the abandoned result channel, the early-returning
 * consumer, the timeout that leaves its worker behind, the fan-in that
 * reads one answer, AB-BA locking, Once behind a stuck initializer, ...)
 * judged by the reachability scan goro_leak_scan(), with Go's semantics:
 * the malloc heap is not a root, a heap block is live only when reachable
 * from a root, and a goroutine blocked without a deadline on primitives
 * nothing live reaches is leaked.
 *
 * Every case is a named entry of the table `cases` with an expected
 * verdict (LEAK or not) and, per goroutine name, whether it must be
 * reported. Each case runs three times, each run in a fresh process (the
 * test re-executes itself) with one goro_run:
 *   1. a noinline setup function starts named goroutines (goro_go_named)
 *      and returns, dropping every pointer a leak case must lose;
 *   2. the test waits on real state (an atomic PARK() count each goroutine
 *      bumps right before its final wait, the goroutine count, then scans
 *      without a report until stats.blocked says the judged ones parked);
 *   3. it clears the dead part of its stack and scans from a small
 *      noinline function;
 *   4. after the scan: the scan judged exactly the goroutines the case says
 *      are blocked without a deadline, and each is in the state the case
 *      declares (goro_leak_find);
 *   5. everything is woken (through "hidden handles": addresses XORed with
 *      a key no conservative scan takes for a pointer, kept in the global
 *      `cx`) and freed, so the process ends cleanly.
 * A summary table (case, expected, got per run) is printed at the end; the
 * group fails when any case is judged wrong.
 *
 * Rules the corpus follows so that it tests the scan and not itself:
 *  - after setup returns, no raw pointer to an object that must be
 *    unreachable is left in a root: not in a global (only hidden handles),
 *    not in the test's live frames or registers (the setup frames are dead
 *    and zeroed before the scan);
 *  - nothing that leaves pointer-carrying garbage in small freed blocks
 *    runs before the scan (goro_leak_find only after it);
 *  - no sleep is used as synchronization: goroutines that must wait for
 *    another's step poll an atomic (bounded); the goroutines that are
 *    meant to sleep (roots: a sleeping goroutine can still act) loop on
 *    goro_sleep until the test's stop flag;
 *  - nothing is asserted inside a goroutine (unexpected results bump
 *    cx.bad, checked by the test).
 * Two goroutines cannot be woken by anything, by construction (select with
 * no cases, select on NULL channels only, Go's select {}): goro_run
 * discards them (and frees their stacks) when the case's main returns.
 *
 * Under AddressSanitizer or ThreadSanitizer goro_leak_scan returns
 * -ENOTSUP: the group skips every case with a note.
 */
#define _GNU_SOURCE
#include "util.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define MS GORO_MILLISECOND
#define NOINLINE __attribute__((noinline))
#define RUNS 3

/* ------------------------------------------------------------------------- */
/* Hidden handles and the context of one run                                 */
/* ------------------------------------------------------------------------- */

#define HIDE_KEY ((uintptr_t)0xA5A5A5A5A5A5A5A5ull)
static inline uintptr_t hide(const void *p) { return p ? (uintptr_t)p ^ HIDE_KEY : 0; }
static inline void *unhide(uintptr_t h) { return h ? (void *)(h ^ HIDE_KEY) : NULL; }

#define NH 16
#define MAXREP 64
#define MAXEX 6

typedef struct rep_entry {
    char name[GORO_NAME_MAX];
    char state[32];
} rep_entry;

/* A global, so a root: it holds hidden handles only. */
typedef struct cx_t {
    _Atomic uintptr_t h[NH];
    atomic_int parked;  /* goroutines about to make their final wait */
    atomic_int locked;  /* holders that have taken their lock */
    atomic_int stage;   /* case-specific steps */
    atomic_int stop;    /* set after the scan: sleepers act and return */
    atomic_long bad;    /* unexpected results inside goroutines */
    /* the scan */
    int rc;
    int tries;
    goro_leak_scan_stats st;
    size_t nrep;
    rep_entry rep[MAXREP];
    /* preconditions, post-checks and the end */
    bool pre_ok;
    char pre_err[256];
    bool judged_short; /* the scan judged fewer goroutines than the case has blocked */
    bool clean_ok;
    size_t left;
} cx_t;

static cx_t cx;

#define PARK() atomic_fetch_add(&cx.parked, 1)
#define BAD() atomic_fetch_add(&cx.bad, 1)

static void keep(int i, const void *p) { atomic_store(&cx.h[i], hide(p)); }
static void *peek(int i) { return unhide(atomic_load(&cx.h[i])); }
static void *take(int i) { return unhide(atomic_exchange(&cx.h[i], 0)); }

/* Bounded wait (inside a goroutine) until *v >= want. */
static bool wait_int(atomic_int *v, int want)
{
    int64_t end = goro_now() + gt_slow(5 * GORO_SECOND);
    while (atomic_load(v) < want && goro_now() < end)
        goro_sleep(MS);
    return atomic_load(v) >= want;
}

/* A sleeping goroutine (a root): sleeps in 1 ms steps until the test is
 * done with the scan (bounded). */
static void sleep_until_stop(void)
{
    int64_t end = goro_now() + gt_slow(60 * GORO_SECOND);
    while (!atomic_load(&cx.stop) && goro_now() < end)
        goro_sleep(MS);
}

/* ------------------------------------------------------------------------- */
/* The shared heap struct (Go's &T{}) and its goroutines                     */
/* ------------------------------------------------------------------------- */

typedef struct box {
    long id;
    goro_chan *ch;  /* the case's main channel */
    goro_chan *ch2; /* a second one (the reader's wait, a reply, ...) */
    struct box *next, *self;
    goro_mutex mu;
    goro_cond cond;
    goro_rwmutex rw;
    goro_waitgroup wg;
    goro_once once;
    int ready;
    long pad[8];
} box;

static box *box_new(size_t elem, size_t cap)
{
    box *b = calloc(1, sizeof *b);
    if (!b) {
        BAD();
        return NULL;
    }
    if (goro_chan_make(&b->ch, elem, cap) != 0)
        BAD();
    return b;
}

/* The box owns its channels' references; goroutines borrow them (every
 * goroutine using a box is gone before it is freed). */
static void box_free(box *b)
{
    if (!b)
        return;
    goro_chan_release(b->ch);
    goro_chan_release(b->ch2);
    memset(b, 0, sizeof *b); /* no stale pointers left behind */
    free(b);
}

static void close_chan(goro_chan *ch)
{
    if (ch)
        goro_chan_close(ch);
}

NOINLINE static void g_recv(void *arg)
{
    box *b = arg;
    PARK();
    if (goro_chan_recv(b->ch, NULL, NULL) != 0)
        BAD();
}

NOINLINE static void g_send(void *arg)
{
    box *b = arg;
    long v = b->id;
    PARK();
    int rc = goro_chan_send(b->ch, &v);
    if (rc != 0 && rc != -EPIPE)
        BAD();
}

/* Locks the mutex and returns without unlocking it (an error path that
 * forgot the unlock). */
NOINLINE static void g_lock_and_exit(void *arg)
{
    box *b = arg;
    if (goro_mutex_lock(&b->mu) != 0)
        BAD();
    atomic_fetch_add(&cx.locked, 1);
}

NOINLINE static void g_lock(void *arg)
{
    box *b = arg;
    PARK();
    if (goro_mutex_lock(&b->mu) != 0) {
        BAD();
        return;
    }
    goro_mutex_unlock(&b->mu);
}

/* Read-locks and then waits for a message that never comes. */
NOINLINE static void g_rlock_hold(void *arg)
{
    box *b = arg;
    if (goro_rwmutex_rlock(&b->rw) != 0) {
        BAD();
        return;
    }
    atomic_fetch_add(&cx.locked, 1);
    PARK();
    if (goro_chan_recv(b->ch2, NULL, NULL) != 0)
        BAD();
    goro_rwmutex_runlock(&b->rw);
}

NOINLINE static void g_wlock(void *arg)
{
    box *b = arg;
    PARK();
    if (goro_rwmutex_lock(&b->rw) != 0) {
        BAD();
        return;
    }
    goro_rwmutex_unlock(&b->rw);
}

NOINLINE static void g_rlock(void *arg)
{
    box *b = arg;
    PARK();
    if (goro_rwmutex_rlock(&b->rw) != 0) {
        BAD();
        return;
    }
    goro_rwmutex_runlock(&b->rw);
}

NOINLINE static void g_cond_wait(void *arg)
{
    box *b = arg;
    goro_mutex_lock(&b->mu);
    PARK();
    while (!b->ready)
        if (goro_cond_wait(&b->cond, &b->mu) != 0) {
            BAD();
            break;
        }
    goro_mutex_unlock(&b->mu);
}

NOINLINE static void g_wg_wait(void *arg)
{
    box *b = arg;
    PARK();
    if (goro_waitgroup_wait(&b->wg) != 0)
        BAD();
}

NOINLINE static void g_wg_done(void *arg)
{
    box *b = arg;
    if (goro_waitgroup_done(&b->wg) != 0)
        BAD();
}

/* The initializer blocks: it waits for a configuration message that never
 * arrives. */
static void once_init_blocks(void *arg)
{
    box *b = arg;
    PARK();
    if (goro_chan_recv(b->ch, NULL, NULL) != 0)
        BAD();
}

static void once_nothing(void *arg) { (void)arg; }

NOINLINE static void g_once_init(void *arg)
{
    box *b = arg;
    if (goro_once_do(&b->once, once_init_blocks, b) != 1)
        BAD();
}

NOINLINE static void g_once_wait(void *arg)
{
    box *b = arg;
    PARK();
    if (goro_once_do(&b->once, once_nothing, NULL) != 0)
        BAD();
}

/* ------------------------------------------------------------------------- */
/* Where a non-leak case keeps its struct (a root, or reachable from one)    */
/* ------------------------------------------------------------------------- */

enum { P_NONE, P_GLOBAL, P_SHM_ANON, P_SHM_FILE, P_TLS, P_HEAP3, P_INTERIOR };

/* Non-static so that the compiler keeps them as they are. */
void *volatile lc_global_ptr;      /* P_GLOBAL, P_HEAP3 (the first level) */
char *volatile lc_global_interior; /* P_INTERIOR: a pointer into the middle */
static struct {
    int where;
    void *map; /* P_SHM_*: the mapping (not heap: pointing to it marks nothing) */
    size_t maplen;
    pthread_t th; /* P_TLS */
    bool th_started;
    int pipefd[2];
} pl = {.pipefd = {-1, -1}};

/* Non-static and volatile: the store must happen (a static thread-local
 * nobody reads would be optimized away, and the case would test nothing). */
__thread void *volatile lc_tls_ptr;
static _Atomic uintptr_t tls_handoff;
static atomic_int tls_ready;

/* A thread goro does not own: it keeps the pointer in a thread-local
 * variable and sleeps in read() until the test writes to the pipe. */
static void *tls_thread(void *arg)
{
    (void)arg;
    lc_tls_ptr = unhide(atomic_exchange(&tls_handoff, 0));
    atomic_store(&tls_ready, 1);
    char c;
    while (read(pl.pipefd[0], &c, 1) < 0 && errno == EINTR)
        ;
    lc_tls_ptr = NULL;
    return NULL;
}

static void join_tls(void *arg)
{
    (void)arg;
    pthread_join(pl.th, NULL);
}

/* Heap levels for P_HEAP3: global -> n1 -> n2 -> n3 -> the struct. */
typedef struct lvl {
    long tag;
    void *p[5];
} lvl;

NOINLINE static void place(int where, void *p)
{
    pl.where = where;
    switch (where) {
    case P_NONE:
        break;
    case P_GLOBAL:
        lc_global_ptr = p;
        break;
    case P_SHM_ANON:
        pl.maplen = 4096;
        pl.map = mmap(NULL, pl.maplen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (pl.map == MAP_FAILED) {
            pl.map = NULL;
            BAD();
            break;
        }
        ((void **)pl.map)[37] = p;
        break;
    case P_SHM_FILE: {
        const char *dir = getenv("TMPDIR");
        char path[256];
        snprintf(path, sizeof path, "%s/goro-leakcorpus-XXXXXX", dir && *dir ? dir : "/tmp");
        int fd = mkstemp(path);
        if (fd < 0) {
            BAD();
            break;
        }
        unlink(path);
        pl.maplen = 8192;
        if (ftruncate(fd, (off_t)pl.maplen) != 0) {
            close(fd);
            BAD();
            break;
        }
        pl.map = mmap(NULL, pl.maplen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
        if (pl.map == MAP_FAILED) {
            pl.map = NULL;
            BAD();
            break;
        }
        ((void **)pl.map)[600] = p; /* on the second page */
        break;
    }
    case P_TLS:
        if (pipe(pl.pipefd) != 0) {
            BAD();
            break;
        }
        atomic_store(&tls_handoff, hide(p));
        if (pthread_create(&pl.th, NULL, tls_thread, NULL) != 0) {
            BAD();
            break;
        }
        pl.th_started = true;
        if (!wait_int(&tls_ready, 1))
            BAD();
        break;
    case P_HEAP3: {
        lvl *n1 = calloc(1, sizeof *n1), *n2 = calloc(1, sizeof *n2), *n3 = calloc(1, sizeof *n3);
        if (!n1 || !n2 || !n3) {
            BAD();
            free(n1);
            free(n2);
            free(n3);
            break;
        }
        n3->p[1] = p;
        n2->p[4] = n3;
        n1->p[2] = n2;
        lc_global_ptr = n1;
        break;
    }
    case P_INTERIOR:
        /* Only a pointer to a field in the middle of the struct. */
        lc_global_interior = (char *)p + offsetof(box, pad) + 3 * sizeof(long);
        break;
    }
}

static void *interior_base(void)
{
    char *q = lc_global_interior;
    return q ? q - offsetof(box, pad) - 3 * sizeof(long) : NULL;
}

static void place_undo(void)
{
    if (pl.map) {
        munmap(pl.map, pl.maplen);
        pl.map = NULL;
    }
    if (pl.th_started) {
        if (write(pl.pipefd[1], "x", 1) != 1)
            BAD();
        goro_blocking(join_tls, NULL);
        pl.th_started = false;
    }
    for (int i = 0; i < 2; i++)
        if (pl.pipefd[i] >= 0) {
            close(pl.pipefd[i]);
            pl.pipefd[i] = -1;
        }
    if (pl.where == P_HEAP3 && lc_global_ptr) {
        lvl *n1 = lc_global_ptr, *n2 = n1->p[2], *n3 = n2 ? n2->p[4] : NULL;
        lc_global_ptr = NULL;
        free(n3);
        free(n2);
        free(n1);
    }
    lc_global_ptr = NULL;
    lc_global_interior = NULL;
}

/* ------------------------------------------------------------------------- */
/* Shapes: start the goroutines, hand back the struct                        */
/* ------------------------------------------------------------------------- */

enum { H_BOX = 0, H_BOX2 = 1, H_CH = 2, H_CTX = 3, H_PRIV = 4, H_ARR = 5, H_BLK = 6 };

/* A receive nobody will ever answer: a reply channel in a request. */
NOINLINE static box *shape_recv(void)
{
    box *b = box_new(sizeof(long), 0);
    if (!b)
        return NULL;
    keep(H_BOX, b);
    goro_go_named(g_recv, b, "receiver");
    return b;
}

static void wake_box_ch(void)
{
    box *b = peek(H_BOX);
    if (b)
        close_chan(b->ch);
}

static void reclaim_box(void) { box_free(take(H_BOX)); }

/* A struct's mutex taken by a goroutine that then returned; two others
 * queue on it. */
NOINLINE static box *shape_mutex_exited(void)
{
    box *b = box_new(0, 0);
    if (!b)
        return NULL;
    keep(H_BOX, b);
    goro_go_named(g_lock_and_exit, b, "locker");
    if (!wait_int(&cx.locked, 1))
        BAD();
    goro_go_named(g_lock, b, "lock_waiter");
    goro_go_named(g_lock, b, "lock_waiter");
    return b;
}

static void wake_mutex_exited(void)
{
    box *b = peek(H_BOX);
    if (b)
        goro_mutex_unlock(&b->mu); /* Go's Mutex is not tied to a goroutine */
}

/* A reader holds the read lock while it waits for a message that never
 * comes; a writer queues behind it, a later reader behind the writer. */
NOINLINE static box *shape_rw(void)
{
    box *b = box_new(0, 0);
    if (!b || goro_chan_make(&b->ch2, 0, 0) != 0) {
        BAD();
        return b;
    }
    keep(H_BOX, b);
    goro_go_named(g_rlock_hold, b, "rw_reader");
    if (!wait_int(&cx.locked, 1))
        BAD();
    goro_go_named(g_wlock, b, "rw_writer");
    /* The late reader must come after the writer queued (writer
     * preference): wait until both block (a scan without a report). */
    int64_t end = goro_now() + gt_slow(5 * GORO_SECOND);
    for (;;) {
        goro_leak_scan_stats st;
        int rc = goro_leak_scan(NULL, &st);
        if ((rc == 0 && st.blocked >= 2) || goro_now() >= end)
            break;
        goro_sleep(MS);
    }
    goro_go_named(g_rlock, b, "rw_reader2");
    return b;
}

static void wake_rw(void)
{
    box *b = peek(H_BOX);
    if (b)
        close_chan(b->ch2);
}

NOINLINE static box *shape_cond(void)
{
    box *b = box_new(0, 0);
    if (!b)
        return NULL;
    keep(H_BOX, b);
    goro_go_named(g_cond_wait, b, "cond_waiter");
    goro_go_named(g_cond_wait, b, "cond_waiter");
    return b;
}

static void wake_cond(void)
{
    box *b = peek(H_BOX);
    if (!b)
        return;
    goro_mutex_lock(&b->mu);
    b->ready = 1;
    goro_cond_broadcast(&b->cond);
    goro_mutex_unlock(&b->mu);
}

/* Once behind an initializer that blocks forever. */
NOINLINE static box *shape_once(void)
{
    box *b = box_new(0, 0);
    if (!b)
        return NULL;
    keep(H_BOX, b);
    goro_go_named(g_once_init, b, "once_init");
    if (!wait_int(&cx.parked, 1)) /* the initializer runs: the once is taken */
        BAD();
    goro_go_named(g_once_wait, b, "once_waiter");
    return b;
}

/* A daisy chain of 5 goroutines through 6 heap links: each sends to the
 * next link before it receives from its own, so every one is blocked
 * sending (the last link has no receiver at all). */
#define DAISY 5
NOINLINE static void g_daisy(void *arg)
{
    box *in = arg, *out = in->next;
    long v = in->id;
    PARK();
    int rc = goro_chan_send(out->ch, &v);
    if (rc != 0 && rc != -EPIPE)
        BAD();
    if (goro_chan_recv(in->ch, NULL, NULL) != 0)
        BAD();
}

NOINLINE static box *shape_daisy(void)
{
    box *head = NULL, *prev = NULL;
    for (int i = 0; i <= DAISY; i++) {
        box *l = box_new(sizeof(long), 0);
        if (!l)
            return head;
        l->id = i;
        if (prev)
            prev->next = l;
        else
            head = l;
        prev = l;
    }
    keep(H_BOX, head);
    for (box *l = head; l && l->next; l = l->next)
        goro_go_named(g_daisy, l, "daisy");
    return head;
}

static void wake_daisy(void)
{
    for (box *l = peek(H_BOX); l; l = l->next)
        close_chan(l->ch);
}

static void reclaim_daisy(void)
{
    box *l = take(H_BOX);
    while (l) {
        box *n = l->next;
        box_free(l);
        l = n;
    }
}

/* A linked list of 5 nodes, each with a channel; a goroutine waits on the
 * 4th node's. */
NOINLINE static box *shape_list(void)
{
    box *head = NULL, *prev = NULL, *target = NULL;
    for (int i = 0; i < 5; i++) {
        box *n = box_new(0, 0);
        if (!n)
            return head;
        n->id = i;
        if (prev)
            prev->next = n;
        else
            head = n;
        if (i == 3)
            target = n;
        prev = n;
    }
    keep(H_BOX, head);
    if (target)
        goro_go_named(g_recv, target, "list_waiter");
    return head;
}

static void wake_list(void) { wake_daisy(); }

/* AB-BA: two transfers between accounts of a heap array, each locking its
 * source and then its destination. */
typedef struct account {
    long id;
    goro_mutex mu;
    long balance;
} account;
#define NACCT 8

NOINLINE static void g_xfer_ab(void *arg)
{
    account *arr = arg;
    goro_mutex_lock(&arr[1].mu);
    atomic_fetch_add(&cx.locked, 1);
    if (!wait_int(&cx.locked, 2))
        BAD();
    PARK();
    goro_mutex_lock(&arr[2].mu);
    arr[1].balance -= 10;
    arr[2].balance += 10;
    goro_mutex_unlock(&arr[2].mu);
    /* At the clean-up the test released arr[1] for us (it broke the
     * deadlock); the BA transfer has unlocked it since. */
    if (!atomic_load(&cx.stop))
        goro_mutex_unlock(&arr[1].mu);
}

NOINLINE static void g_xfer_ba(void *arg)
{
    account *arr = arg;
    goro_mutex_lock(&arr[2].mu);
    atomic_fetch_add(&cx.locked, 1);
    if (!wait_int(&cx.locked, 2))
        BAD();
    PARK();
    goro_mutex_lock(&arr[1].mu);
    arr[2].balance -= 5;
    arr[1].balance += 5;
    goro_mutex_unlock(&arr[1].mu);
    goro_mutex_unlock(&arr[2].mu);
}

NOINLINE static account *shape_abba(void)
{
    account *arr = calloc(NACCT, sizeof *arr);
    if (!arr) {
        BAD();
        return NULL;
    }
    for (int i = 0; i < NACCT; i++)
        arr[i].id = i, arr[i].balance = 100;
    keep(H_ARR, arr);
    goro_go_named(g_xfer_ab, arr, "xfer_ab");
    goro_go_named(g_xfer_ba, arr, "xfer_ba");
    return arr;
}

static void wake_abba(void)
{
    account *arr = peek(H_ARR);
    if (arr)
        goro_mutex_unlock(&arr[1].mu); /* xfer_ab's first lock */
}

static void reclaim_abba(void)
{
    account *arr = take(H_ARR);
    if (arr)
        memset(arr, 0, NACCT * sizeof *arr);
    free(arr);
}

/* A client queues a request (with its reply channel) on a server's
 * buffered request channel and waits for the reply. */
NOINLINE static void g_client(void *arg)
{
    goro_chan *reqs = arg;
    box *r = box_new(sizeof(long), 0); /* r->ch: the reply channel */
    if (!r)
        return;
    r->id = 7;
    keep(H_BOX2, r);
    if (goro_chan_send(reqs, &r) != 0) /* room in the buffer: does not block */
        BAD();
    PARK();
    if (goro_chan_recv(r->ch, NULL, NULL) != 0)
        BAD();
}

NOINLINE static goro_chan *shape_request(void)
{
    goro_chan *reqs;
    if (goro_chan_make(&reqs, sizeof(box *), 4) != 0) {
        BAD();
        return NULL;
    }
    keep(H_CH, reqs);
    goro_go_named(g_client, reqs, "client");
    return reqs;
}

static void wake_request(void)
{
    box *r = peek(H_BOX2);
    if (r)
        close_chan(r->ch);
}

static void reclaim_request(void)
{
    goro_chan *reqs = take(H_CH);
    box *r = NULL;
    bool ok = false;
    while (reqs && goro_chan_tryrecv(reqs, &r, &ok) == 0 && ok)
        box_free(r);
    take(H_BOX2);
    goro_chan_release(reqs);
}

/* ------------------------------------------------------------------------- */
/* Leak cases                                                                 */
/* ------------------------------------------------------------------------- */

/* The story: a helper starts the work in the background; the result goes
 * to an unbuffered channel and the caller drops the channel. */
NOINLINE static void story_sender(void *arg)
{
    goro_chan *ch = arg;
    long v = 42;
    PARK();
    int rc = goro_chan_send(ch, &v);
    if (rc != -EPIPE)
        BAD();
}

NOINLINE static void run_async(void)
{
    goro_chan *ch;
    if (goro_chan_make(&ch, sizeof(long), 0) != 0) {
        BAD();
        return;
    }
    keep(H_CH, ch);
    goro_go_named(story_sender, ch, "story");
}

NOINLINE static void setup_story(void) { run_async(); }

static void wake_chan(void) { close_chan(peek(H_CH)); }
static void reclaim_chan(void) { goro_chan_release(take(H_CH)); }

NOINLINE static void setup_recv(void) { shape_recv(); }
NOINLINE static void setup_mutex_exited(void) { shape_mutex_exited(); }
NOINLINE static void setup_rw(void) { shape_rw(); }
NOINLINE static void setup_cond(void) { shape_cond(); }
NOINLINE static void setup_once(void) { shape_once(); }
NOINLINE static void setup_daisy(void) { shape_daisy(); }
NOINLINE static void setup_list(void) { shape_list(); }
NOINLINE static void setup_abba(void) { shape_abba(); }
NOINLINE static void setup_request(void) { shape_request(); }

/* WaitGroup: three Adds, two Dones. */
NOINLINE static box *shape_wg(void)
{
    box *b = box_new(0, 0);
    if (!b)
        return NULL;
    keep(H_BOX, b);
    goro_waitgroup_add(&b->wg, 3);
    goro_go_named(g_wg_wait, b, "wg_waiter");
    goro_go_named(g_wg_done, b, "wg_worker");
    goro_go_named(g_wg_done, b, "wg_worker");
    return b;
}
NOINLINE static void setup_wg(void) { shape_wg(); }
static void wake_wg(void)
{
    box *b = peek(H_BOX);
    if (b)
        goro_waitgroup_done(&b->wg);
}

/* Producer/consumer: the consumer hits an error after three items and
 * returns; the producer blocks on the fourth. */
NOINLINE static void g_producer(void *arg)
{
    box *b = arg;
    PARK();
    for (long i = 0; i < 10; i++)
        if (goro_chan_send(b->ch, &i) != 0)
            break; /* -EPIPE at the clean-up */
}

NOINLINE static void g_consumer(void *arg)
{
    box *b = arg;
    for (int i = 0; i < 3; i++) {
        long v;
        bool ok = false;
        if (goro_chan_recv(b->ch, &v, &ok) != 0 || !ok || v != i)
            BAD();
    }
    /* "error: bad item": return early, nobody drains the channel */
}

NOINLINE static void setup_prodcons(void)
{
    box *b = box_new(sizeof(long), 0);
    if (!b)
        return;
    keep(H_BOX, b);
    goro_go_named(g_producer, b, "producer");
    goro_go_named(g_consumer, b, "consumer");
}

/* The timeout pattern: the waiter gives up after its timeout and returns;
 * the worker finishes later and blocks sending on the unbuffered result
 * channel. variant 0: goro_chan_recv_until; 1: select with a deadline. */
NOINLINE static void g_timeout_waiter(void *arg)
{
    box *b = arg;
    long v;
    int rc;
    if (b->id == 0) {
        rc = goro_chan_recv_until(b->ch, &v, NULL, goro_deadline_after(5 * MS));
    } else {
        goro_select_case cs[1] = {{.ch = b->ch, .op = GORO_SELECT_RECV, .elem = &v}};
        rc = goro_select(cs, 1, 0, goro_deadline_after(5 * MS));
    }
    if (rc != -ETIMEDOUT)
        BAD();
    atomic_store(&cx.stage, 1); /* "request timed out" */
}

NOINLINE static void g_slow_worker(void *arg)
{
    box *b = arg;
    /* The slow work: done only once the waiter has left. */
    if (!wait_int(&cx.stage, 1))
        BAD();
    long v = 1;
    PARK();
    int rc = goro_chan_send(b->ch, &v);
    if (rc != -EPIPE)
        BAD();
}

NOINLINE static void start_timeout(long variant)
{
    box *b = box_new(sizeof(long), 0);
    if (!b)
        return;
    b->id = variant;
    keep(H_BOX, b);
    goro_go_named(g_slow_worker, b, "slow_worker");
    goro_go_named(g_timeout_waiter, b, "timeout_waiter");
}
NOINLINE static void setup_timeout_recv(void) { start_timeout(0); }
NOINLINE static void setup_timeout_select(void) { start_timeout(1); }

/* Fan-in: four searchers, the first answer wins, the others leak. */
NOINLINE static void setup_fanin(void)
{
    box *b = box_new(sizeof(long), 0);
    if (!b)
        return;
    keep(H_BOX, b);
    for (int i = 0; i < 4; i++)
        goro_go_named(g_send, b, "searcher");
    long v;
    bool ok = false;
    if (goro_chan_recv(b->ch, &v, &ok) != 0 || !ok) /* first result only */
        BAD();
}

/* A private channel only the calling goroutine knows (hidden for the
 * clean-up in slot H_PRIV). */
NOINLINE static void block_on_private(void)
{
    goro_chan *mine;
    if (goro_chan_make(&mine, 0, 0) != 0) {
        BAD();
        return;
    }
    keep(H_PRIV, mine);
    PARK();
    if (goro_chan_recv(mine, NULL, NULL) != 0)
        BAD();
}

static void wake_private(void)
{
    goro_chan *mine = take(H_PRIV);
    if (mine) {
        goro_chan_close(mine);
        goro_chan_release(mine); /* the holder does not touch it after waking */
    }
}

/* A leaked goroutine's stack holds the only pointer to another leaked
 * goroutine's channel. */
NOINLINE static void g_holder_chan(void *arg)
{
    goro_chan *volatile other = unhide((uintptr_t)arg);
    block_on_private();
    close_chan(other);
}

NOINLINE static void g_recv_chan(void *arg)
{
    goro_chan *ch = arg;
    PARK();
    if (goro_chan_recv(ch, NULL, NULL) != 0)
        BAD();
}

NOINLINE static void setup_holds_other(void)
{
    goro_chan *ch;
    if (goro_chan_make(&ch, 0, 0) != 0) {
        BAD();
        return;
    }
    keep(H_CH, ch);
    goro_go_named(g_recv_chan, ch, "held_receiver");
    goro_go_named(g_holder_chan, (void *)hide(ch), "holder");
}

static void wake_holds_other(void) { wake_private(); }

/* A struct reachable only from a leaked goroutine's stack. */
NOINLINE static void g_holder_box(void *arg)
{
    box *volatile b = unhide((uintptr_t)arg);
    block_on_private();
    goro_waitgroup_done(&b->wg);
}

NOINLINE static void setup_struct_on_leaked_stack(void)
{
    box *b = box_new(0, 0);
    if (!b)
        return;
    keep(H_BOX, b);
    goro_waitgroup_add(&b->wg, 1);
    goro_go_named(g_wg_wait, b, "wg_waiter");
    goro_go_named(g_holder_box, (void *)hide(b), "holder");
}

/* Contexts. */
NOINLINE static void g_ctx_wait(void *arg)
{
    goro_ctx *c = arg;
    PARK();
    if (goro_ctx_wait(c, GORO_NO_DEADLINE) == 0)
        BAD();
    goro_ctx_release(c);
}

/* Waits for cancellation in a select with a work channel of its own. */
NOINLINE static void g_ctx_select(void *arg)
{
    goro_ctx *c = arg;
    goro_chan *work;
    if (goro_chan_make(&work, sizeof(long), 0) != 0) {
        BAD();
        goro_ctx_release(c);
        return;
    }
    long v;
    goro_select_case cs[2] = {
        {.ch = work, .op = GORO_SELECT_RECV, .elem = &v},
        {.ch = goro_ctx_done(c), .op = GORO_SELECT_RECV},
    };
    PARK();
    if (goro_select(cs, 2, 0, GORO_NO_DEADLINE) != 1)
        BAD();
    goro_chan_release(work);
    goro_ctx_release(c);
}

static void cancel_hidden_ctx(int slot)
{
    goro_ctx *c = take(slot);
    if (c) { /* the waiter holds the only reference until it wakes */
        goro_ctx_retain(c);
        goro_ctx_cancel(c);
        goro_ctx_release(c);
    }
}

static void wake_ctx(void) { cancel_hidden_ctx(H_CTX); }

/* context.WithCancel whose cancel function is dropped. */
NOINLINE static void setup_ctx_dropped(void)
{
    goro_ctx *c;
    if (goro_ctx_with_cancel(NULL, &c) != 0) {
        BAD();
        return;
    }
    keep(H_CTX, c);
    goro_go_named(g_ctx_wait, c, "ctx_waiter"); /* takes our reference */
}

NOINLINE static void setup_ctx_select_dropped(void)
{
    goro_ctx *c;
    if (goro_ctx_with_cancel(NULL, &c) != 0) {
        BAD();
        return;
    }
    keep(H_CTX, c);
    goro_go_named(g_ctx_select, c, "ctx_selecter");
}

/* A child of a cancellable parent; both dropped. */
NOINLINE static void setup_ctx_child_dropped(void)
{
    goro_ctx *parent, *child;
    if (goro_ctx_with_cancel(NULL, &parent) != 0) {
        BAD();
        return;
    }
    if (goro_ctx_with_cancel(parent, &child) != 0) {
        BAD();
        goro_ctx_release(parent);
        return;
    }
    goro_ctx_release(parent); /* the child keeps it */
    keep(H_CTX, child);
    goro_go_named(g_ctx_wait, child, "ctx_child_waiter");
}

/* select {} and a select whose cases are all switched off (NULL). */
NOINLINE static void g_select_none(void *arg)
{
    (void)arg;
    PARK();
    goro_select(NULL, 0, 0, GORO_NO_DEADLINE);
    BAD(); /* never returns */
}

NOINLINE static void g_select_nulls(void *arg)
{
    (void)arg;
    long out = 1, in = 0;
    goro_select_case cs[2] = {
        {.ch = NULL, .op = GORO_SELECT_RECV, .elem = &in},
        {.ch = NULL, .op = GORO_SELECT_SEND, .elem = &out},
    };
    PARK();
    goro_select(cs, 2, 0, GORO_NO_DEADLINE);
    BAD();
}

NOINLINE static void setup_select_none(void) { goro_go_named(g_select_none, NULL, "select_empty"); }
NOINLINE static void setup_select_nulls(void) { goro_go_named(g_select_nulls, NULL, "select_nil"); }

/* A struct pointing to itself, and in a two-node cycle. */
NOINLINE static void setup_self_cycle(void)
{
    box *a = box_new(0, 0), *b = box_new(0, 0);
    if (!a || !b) {
        box_free(a);
        box_free(b);
        return;
    }
    a->self = a;
    a->next = b;
    b->next = a;
    b->self = b;
    keep(H_BOX, a);
    goro_go_named(g_recv, a, "cycle_waiter");
}

static void reclaim_self_cycle(void)
{
    box *a = take(H_BOX);
    if (!a)
        return;
    box_free(a->next);
    box_free(a);
}

/* The only other reference to the channel sits in a freed heap block (too
 * big for the tcache and the fastbins: glibc's chunk headers say free). */
#define FREED_WORDS 512
NOINLINE static void setup_freed(void)
{
    goro_chan *ch;
    void **blk = malloc(FREED_WORDS * sizeof *blk);
    if (!blk || goro_chan_make(&ch, 0, 0) != 0) {
        BAD();
        free(blk);
        return;
    }
    memset(blk, 0, FREED_WORDS * sizeof *blk);
    blk[100] = ch;
    blk[101] = ch;
    keep(H_CH, ch);
    goro_go_named(g_recv_chan, ch, "freed_waiter");
    free(blk); /* stale copies stay in the freed block */
}

/* Buffered channel of pointers, full: the producer blocks on the third. */
NOINLINE static void g_buf_producer(void *arg)
{
    goro_chan *ch = arg;
    PARK();
    for (int i = 0; i < 3; i++) {
        long *item = calloc(4, sizeof *item);
        if (!item) {
            BAD();
            return;
        }
        item[0] = i;
        if (goro_chan_send(ch, &item) != 0) {
            free(item); /* -EPIPE at the clean-up */
            return;
        }
    }
}

NOINLINE static void setup_buffered(void)
{
    goro_chan *ch;
    if (goro_chan_make(&ch, sizeof(long *), 2) != 0) {
        BAD();
        return;
    }
    keep(H_CH, ch);
    goro_go_named(g_buf_producer, ch, "buf_producer");
}

static void reclaim_buffered(void)
{
    goro_chan *ch = take(H_CH);
    long *item = NULL;
    bool ok = false;
    while (ch && goro_chan_tryrecv(ch, &item, &ok) == 0 && ok)
        free(item);
    goro_chan_release(ch);
}

/* Three levels of heap indirection, the top one dropped. */
NOINLINE static void setup_heap3_orphan(void)
{
    box *b = shape_recv();
    lvl *n1 = calloc(1, sizeof *n1), *n2 = calloc(1, sizeof *n2), *n3 = calloc(1, sizeof *n3);
    if (!b || !n1 || !n2 || !n3) {
        BAD();
        free(n1);
        free(n2);
        free(n3);
        return;
    }
    n3->p[1] = b;
    n2->p[4] = n3;
    n1->p[2] = n2;
    keep(H_BLK, n1);
}

static void reclaim_heap3_orphan(void)
{
    lvl *n1 = take(H_BLK);
    if (n1) {
        lvl *n2 = n1->p[2], *n3 = n2->p[4];
        free(n3);
        free(n2);
        free(n1);
    }
    reclaim_box();
}

/* ------------------------------------------------------------------------- */
/* Non-leak cases                                                             */
/* ------------------------------------------------------------------------- */

NOINLINE static void setup_recv_global(void) { place(P_GLOBAL, shape_recv()); }
NOINLINE static void setup_recv_heap3(void) { place(P_HEAP3, shape_recv()); }
NOINLINE static void setup_mutex_shm_anon(void) { place(P_SHM_ANON, shape_mutex_exited()); }
NOINLINE static void setup_cond_shm_file(void) { place(P_SHM_FILE, shape_cond()); }
NOINLINE static void setup_rw_tls(void) { place(P_TLS, shape_rw()); }
NOINLINE static void setup_daisy_global(void) { place(P_GLOBAL, shape_daisy()); }
NOINLINE static void setup_once_interior(void) { place(P_INTERIOR, shape_once()); }
NOINLINE static void setup_list_global(void) { place(P_GLOBAL, shape_list()); }
NOINLINE static void setup_abba_global(void) { place(P_GLOBAL, shape_abba()); }
goro_chan *volatile lc_global_reqs; /* the server's request queue */
NOINLINE static void setup_request_global(void) { lc_global_reqs = shape_request(); }

/* The struct is on a sleeping goroutine's stack; once the sleep ends it
 * receives the result. */
NOINLINE static void g_sleeper_recv(void *arg)
{
    box *volatile b = unhide((uintptr_t)arg);
    PARK();
    sleep_until_stop();
    long v;
    if (goro_chan_recv(b->ch, &v, NULL) != 0)
        BAD();
}

NOINLINE static void setup_send_sleeper(void)
{
    box *b = box_new(sizeof(long), 0);
    if (!b)
        return;
    keep(H_BOX, b);
    goro_go_named(g_send, b, "sender");
    goro_go_named(g_sleeper_recv, (void *)hide(b), "sleeper");
}

/* A receive from a channel a sleeping goroutine will send to. */
NOINLINE static void g_sleeper_send(void *arg)
{
    goro_chan *volatile ch = unhide((uintptr_t)arg);
    PARK();
    sleep_until_stop();
    long v = 5;
    if (goro_chan_send(ch, &v) != 0)
        BAD();
}

NOINLINE static void setup_recv_from_sleeper(void)
{
    goro_chan *ch;
    if (goro_chan_make(&ch, sizeof(long), 0) != 0) {
        BAD();
        return;
    }
    keep(H_CH, ch);
    goro_go_named(g_recv_chan, ch, "receiver");
    goro_go_named(g_sleeper_send, (void *)hide(ch), "sleeper");
}

/* A WaitGroup whose Done comes from a goroutine sleeping on a timer. */
NOINLINE static void g_sleeper_done(void *arg)
{
    box *volatile b = unhide((uintptr_t)arg);
    PARK();
    sleep_until_stop();
    goro_waitgroup_done(&b->wg);
}

NOINLINE static void setup_wg_sleeper(void)
{
    box *b = box_new(0, 0);
    if (!b)
        return;
    keep(H_BOX, b);
    goro_waitgroup_add(&b->wg, 1);
    goro_go_named(g_wg_wait, b, "wg_waiter");
    goro_go_named(g_sleeper_done, (void *)hide(b), "sleeper");
}

/* A context with a deadline pending (an hour): its timer can cancel it. */
NOINLINE static void setup_ctx_deadline(void)
{
    goro_ctx *c;
    if (goro_ctx_with_timeout(NULL, 3600 * GORO_SECOND, &c) != 0) {
        BAD();
        return;
    }
    keep(H_CTX, c);
    goro_go_named(g_ctx_wait, c, "ctx_waiter");
}

/* A child of a parent that a live (sleeping) goroutine will cancel. */
NOINLINE static void g_canceller(void *arg)
{
    goro_ctx *volatile parent = unhide((uintptr_t)arg);
    PARK();
    sleep_until_stop();
    goro_ctx_cancel(parent);
    goro_ctx_release(parent);
}

NOINLINE static void setup_ctx_child_live(void)
{
    goro_ctx *parent, *child;
    if (goro_ctx_with_cancel(NULL, &parent) != 0) {
        BAD();
        return;
    }
    if (goro_ctx_with_cancel(parent, &child) != 0) {
        BAD();
        goro_ctx_release(parent);
        return;
    }
    goro_go_named(g_ctx_wait, child, "ctx_child_waiter");
    goro_go_named(g_canceller, (void *)hide(parent), "canceller");
}

/* A context a global holds. */
goro_ctx *volatile lc_global_ctx;
NOINLINE static void setup_ctx_global(void)
{
    goro_ctx *c;
    if (goro_ctx_with_cancel(NULL, &c) != 0) {
        BAD();
        return;
    }
    lc_global_ctx = c;
    goro_go_named(g_ctx_wait, goro_ctx_retain(c), "ctx_waiter");
}
static void wake_ctx_global(void) { goro_ctx_cancel(lc_global_ctx); }
static void reclaim_ctx_global(void)
{
    goro_ctx_release(lc_global_ctx);
    lc_global_ctx = NULL;
}

/* A worker pool blocked on its job channel; the pool is a global. */
typedef struct pool {
    goro_chan *jobs;
    goro_waitgroup wg;
    long done;
} pool;
pool *volatile lc_global_pool;

NOINLINE static void g_worker(void *arg)
{
    pool *p = arg;
    long job;
    bool ok = true;
    PARK();
    while (goro_chan_recv(p->jobs, &job, &ok) == 0 && ok)
        ;
    goro_waitgroup_done(&p->wg);
}

NOINLINE static void setup_pool_global(void)
{
    pool *p = calloc(1, sizeof *p);
    if (!p || goro_chan_make(&p->jobs, sizeof(long), 0) != 0) {
        BAD();
        free(p);
        return;
    }
    lc_global_pool = p;
    goro_waitgroup_add(&p->wg, 4);
    for (int i = 0; i < 4; i++)
        goro_go_named(g_worker, p, "pool_worker");
}
static void wake_pool(void)
{
    if (lc_global_pool)
        goro_chan_close(lc_global_pool->jobs);
}
static void reclaim_pool(void)
{
    pool *p = lc_global_pool;
    lc_global_pool = NULL;
    if (p) {
        goro_chan_release(p->jobs);
        free(p);
    }
}

/* select with a NULL (switched-off) case and a live one. */
goro_chan *volatile lc_global_ch;
NOINLINE static void g_select_null_live(void *arg)
{
    (void)arg;
    long in = 0;
    goro_select_case cs[2] = {
        {.ch = NULL, .op = GORO_SELECT_RECV, .elem = &in},
        {.ch = lc_global_ch, .op = GORO_SELECT_RECV, .elem = &in},
    };
    PARK();
    if (goro_select(cs, 2, 0, GORO_NO_DEADLINE) != 1)
        BAD();
}
NOINLINE static void setup_select_null_live(void)
{
    goro_chan *ch;
    if (goro_chan_make(&ch, sizeof(long), 0) != 0) {
        BAD();
        return;
    }
    lc_global_ch = ch;
    goro_go_named(g_select_null_live, NULL, "select_nil_live");
}
static void wake_global_ch(void) { close_chan(lc_global_ch); }
static void reclaim_global_ch(void)
{
    goro_chan_release(lc_global_ch);
    lc_global_ch = NULL;
}

static void reclaim_once_interior(void)
{
    take(H_BOX);
    box_free(interior_base());
}

/* ------------------------------------------------------------------------- */
/* The table                                                                  */
/* ------------------------------------------------------------------------- */

typedef struct expect {
    const char *name;
    int n;             /* goroutines of that name alive at the scan */
    bool leaked;       /* each must be reported (else none may be) */
    const char *state; /* their wait reason; "sleep": a root, not judged */
} expect;

typedef struct lc_case {
    const char *id;
    bool leak; /* the case's verdict */
    const char *what;
    void (*setup)(void);
    void (*wake)(void);
    void (*reclaim)(void);
    int nstuck; /* goroutines nothing can wake (left to goro_run) */
    int procs;
    expect ex[MAXEX];
} lc_case;

#define L true
#define N false
static const lc_case cases[] = {
    /* ---- leaks ---- */
    {"story_unbuffered_send", L, "helper's goroutine sends its result on an unbuffered channel the "
     "caller dropped", setup_story, wake_chan, reclaim_chan, 0, 2,
     {{"story", 1, L, "chan send"}}},
    {"recv_never_sent", L, "receive on a struct's channel nobody sends on or closes", setup_recv,
     wake_box_ch, reclaim_box, 0, 2, {{"receiver", 1, L, "chan receive"}}},
    {"mutex_holder_exited", L, "struct's mutex locked by a goroutine that returned; two waiters",
     setup_mutex_exited, wake_mutex_exited, reclaim_box, 0, 2,
     {{"lock_waiter", 2, L, "sync.Mutex.Lock"}}},
    {"rwmutex_writer_behind_reader", L, "writer behind a leaked reader, a reader behind the writer",
     setup_rw, wake_rw, reclaim_box, 0, 2,
     {{"rw_reader", 1, L, "chan receive"},
      {"rw_writer", 1, L, "sync.RWMutex.Lock"},
      {"rw_reader2", 1, L, "sync.RWMutex.RLock"}}},
    {"cond_never_signalled", L, "two Cond waiters nobody signals", setup_cond, wake_cond,
     reclaim_box, 0, 2, {{"cond_waiter", 2, L, "sync.Cond.Wait"}}},
    {"waitgroup_add_gt_done", L, "WaitGroup.Wait with three Adds and two Dones", setup_wg, wake_wg,
     reclaim_box, 0, 2, {{"wg_waiter", 1, L, "sync.WaitGroup.Wait"}}},
    {"daisy_chain", L, "5 goroutines each blocked sending to the next through heap links",
     setup_daisy, wake_daisy, reclaim_daisy, 0, 2, {{"daisy", DAISY, L, "chan send"}}},
    {"consumer_returns_early", L, "consumer returns on error after 3 items, producer blocks",
     setup_prodcons, wake_box_ch, reclaim_box, 0, 2, {{"producer", 1, L, "chan send"}}},
    {"timeout_recv_until", L, "waiter leaves after goro_chan_recv_until times out; worker's "
     "unbuffered send blocks", setup_timeout_recv, wake_box_ch, reclaim_box, 0, 2,
     {{"slow_worker", 1, L, "chan send"}}},
    {"timeout_select", L, "waiter leaves after a select with a deadline; worker's send blocks",
     setup_timeout_select, wake_box_ch, reclaim_box, 0, 2, {{"slow_worker", 1, L, "chan send"}}},
    {"fanin_first_only", L, "four searchers, only the first result is read", setup_fanin,
     wake_box_ch, reclaim_box, 0, 2, {{"searcher", 3, L, "chan send"}}},
    {"leaked_holds_other_chan", L, "a leaked goroutine holds the only pointer to another's channel",
     setup_holds_other, wake_holds_other, reclaim_chan, 0, 2,
     {{"holder", 1, L, "chan receive"}, {"held_receiver", 1, L, "chan receive"}}},
    {"ctx_cancel_dropped", L, "WithCancel context whose cancel is dropped; goroutine waits on it",
     setup_ctx_dropped, wake_ctx, NULL, 0, 2, {{"ctx_waiter", 1, L, "chan receive"}}},
    {"ctx_done_select_dropped", L, "select on a dropped context's done channel and a private one",
     setup_ctx_select_dropped, wake_ctx, NULL, 0, 2, {{"ctx_selecter", 1, L, "select"}}},
    {"ctx_child_parent_dropped", L, "child context of a cancellable parent, both dropped",
     setup_ctx_child_dropped, wake_ctx, NULL, 0, 2, {{"ctx_child_waiter", 1, L, "chan receive"}}},
    {"select_no_cases", L, "select {} (no cases, no deadline)", setup_select_none, NULL, NULL, 1, 2,
     {{"select_empty", 1, L, "select (no cases)"}}},
    {"select_only_nil", L, "select whose cases all have NULL channels", setup_select_nulls, NULL,
     NULL, 1, 2, {{"select_nil", 1, L, "select"}}},
    {"linked_list_orphan", L, "channel in the 4th node of a heap linked list nothing references",
     setup_list, wake_list, reclaim_daisy, 0, 2, {{"list_waiter", 1, L, "chan receive"}}},
    {"self_cycle", L, "struct pointing to itself and in a 2-node cycle holds the channel",
     setup_self_cycle, wake_box_ch, reclaim_self_cycle, 0, 2,
     {{"cycle_waiter", 1, L, "chan receive"}}},
    {"struct_on_leaked_stack", L, "struct reachable only from a leaked goroutine's stack",
     setup_struct_on_leaked_stack, wake_private, reclaim_box, 0, 2,
     {{"holder", 1, L, "chan receive"}, {"wg_waiter", 1, L, "sync.WaitGroup.Wait"}}},
    {"freed_block_only_ref", L, "the channel's only other reference is in a freed heap block",
     setup_freed, wake_chan, reclaim_chan, 0, 2, {{"freed_waiter", 1, L, "chan receive"}}},
    {"mutex_abba_heap_array", L, "AB-BA deadlock on mutexes in a heap array of accounts",
     setup_abba, wake_abba, reclaim_abba, 0, 2,
     {{"xfer_ab", 1, L, "sync.Mutex.Lock"}, {"xfer_ba", 1, L, "sync.Mutex.Lock"}}},
    {"once_behind_leaked_init", L, "Once.Do behind an initializer blocked forever", setup_once,
     wake_box_ch, reclaim_box, 0, 2,
     {{"once_init", 1, L, "chan receive"}, {"once_waiter", 1, L, "sync.Once.Do"}}},
    {"buffered_full", L, "producer blocked on a full buffered channel of heap pointers",
     setup_buffered, wake_chan, reclaim_buffered, 0, 2, {{"buf_producer", 1, L, "chan send"}}},
    {"heap3_orphan", L, "struct three heap levels below a block nothing references",
     setup_heap3_orphan, wake_box_ch, reclaim_heap3_orphan, 0, 2,
     {{"receiver", 1, L, "chan receive"}}},
    {"request_queue_orphan", L, "client waits on a reply channel in a request queued on a dropped "
     "server queue", setup_request, wake_request, reclaim_request, 0, 2,
     {{"client", 1, L, "chan receive"}}},
    /* ---- not leaks ---- */
    {"recv_struct_global", N, "receive on a struct's channel, the struct in a global",
     setup_recv_global, wake_box_ch, reclaim_box, 0, 2, {{"receiver", 1, N, "chan receive"}}},
    {"send_struct_sleeper_stack", N, "send on a struct's channel, the struct on a sleeping "
     "goroutine's stack (it receives later)", setup_send_sleeper, NULL, reclaim_box, 0, 2,
     {{"sender", 1, N, "chan send"}, {"sleeper", 1, N, "sleep"}}},
    {"mutex_shm_anon", N, "mutex-holder-exited struct, pointer in a MAP_SHARED anonymous page",
     setup_mutex_shm_anon, wake_mutex_exited, reclaim_box, 0, 2,
     {{"lock_waiter", 2, N, "sync.Mutex.Lock"}}},
    {"cond_shm_file", N, "Cond struct, pointer in a file-backed MAP_SHARED mapping",
     setup_cond_shm_file, wake_cond, reclaim_box, 0, 2,
     {{"cond_waiter", 2, N, "sync.Cond.Wait"}}},
    {"rwmutex_foreign_tls", N, "RWMutex struct, pointer in a TLS variable of a sleeping non-goro "
     "thread", setup_rw_tls, wake_rw, reclaim_box, 0, 2,
     {{"rw_reader", 1, N, "chan receive"},
      {"rw_writer", 1, N, "sync.RWMutex.Lock"},
      {"rw_reader2", 1, N, "sync.RWMutex.RLock"}}},
    {"recv_heap3_global", N, "struct three heap levels below a global", setup_recv_heap3,
     wake_box_ch, reclaim_box, 0, 2, {{"receiver", 1, N, "chan receive"}}},
    {"once_interior_pointer", N, "Once struct reachable only through an interior pointer in a "
     "global", setup_once_interior, wake_box_ch, reclaim_once_interior, 0, 2,
     {{"once_init", 1, N, "chan receive"}, {"once_waiter", 1, N, "sync.Once.Do"}}},
    {"daisy_chain_global_head", N, "daisy chain whose head link is in a global", setup_daisy_global,
     wake_daisy, reclaim_daisy, 0, 2, {{"daisy", DAISY, N, "chan send"}}},
    {"linked_list_global", N, "channel in the 4th node of a list whose head is in a global",
     setup_list_global, wake_list, reclaim_daisy, 0, 2, {{"list_waiter", 1, N, "chan receive"}}},
    {"mutex_abba_array_global", N, "AB-BA on a heap array a global points to", setup_abba_global,
     wake_abba, reclaim_abba, 0, 2,
     {{"xfer_ab", 1, N, "sync.Mutex.Lock"}, {"xfer_ba", 1, N, "sync.Mutex.Lock"}}},
    {"ctx_deadline_pending", N, "context with a pending deadline (its timer can fire)",
     setup_ctx_deadline, wake_ctx, NULL, 0, 2, {{"ctx_waiter", 1, N, "chan receive"}}},
    {"ctx_child_live_parent", N, "child context of a parent a sleeping goroutine will cancel",
     setup_ctx_child_live, NULL, NULL, 0, 2,
     {{"ctx_child_waiter", 1, N, "chan receive"}, {"canceller", 1, N, "sleep"}}},
    {"ctx_global", N, "context held by a global", setup_ctx_global, wake_ctx_global,
     reclaim_ctx_global, 0, 2, {{"ctx_waiter", 1, N, "chan receive"}}},
    {"worker_pool_global", N, "4 workers blocked on a job channel of a pool in a global",
     setup_pool_global, wake_pool, reclaim_pool, 0, 2, {{"pool_worker", 4, N, "chan receive"}}},
    {"recv_from_sleeper", N, "receive from a channel a sleeping goroutine will send to",
     setup_recv_from_sleeper, NULL, reclaim_chan, 0, 2,
     {{"receiver", 1, N, "chan receive"}, {"sleeper", 1, N, "sleep"}}},
    {"select_nil_and_live", N, "select with a NULL case and a live one (global channel)",
     setup_select_null_live, wake_global_ch, reclaim_global_ch, 0, 2,
     {{"select_nil_live", 1, N, "select"}}},
    {"waitgroup_done_from_sleeper", N, "WaitGroup whose Done comes from a goroutine sleeping on a "
     "timer", setup_wg_sleeper, NULL, reclaim_box, 0, 2,
     {{"wg_waiter", 1, N, "sync.WaitGroup.Wait"}, {"sleeper", 1, N, "sleep"}}},
    {"request_queue_global", N, "client's reply channel reachable through a global queue's buffer",
     setup_request_global, wake_request, reclaim_request, 0, 2,
     {{"client", 1, N, "chan receive"}}},
};
#undef L
#undef N
#define NCASES (sizeof cases / sizeof cases[0])

/* ------------------------------------------------------------------------- */
/* In the child: one run of one case                                          */
/* ------------------------------------------------------------------------- */

static int ngor_of(const lc_case *k)
{
    int n = 0;
    for (int i = 0; i < MAXEX && k->ex[i].name; i++)
        n += k->ex[i].n;
    return n;
}

static size_t judged_of(const lc_case *k)
{
    size_t n = 0;
    for (int i = 0; i < MAXEX && k->ex[i].name; i++)
        if (strcmp(k->ex[i].state, "sleep") != 0)
            n += (size_t)k->ex[i].n;
    return n;
}

/* Zero the dead part of the stack below the caller. */
NOINLINE static void scrub_stack(void)
{
    volatile char buf[16384];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = 0;
    __asm__ volatile("" : : "r"(buf) : "memory");
}

/* The scan, from a frame that holds nothing but its report pointer. */
NOINLINE static void do_scan(void)
{
    goro_leak_report *r = NULL;
    cx.rc = goro_leak_scan(&r, &cx.st);
    cx.nrep = r ? r->count : 0;
    for (size_t i = 0; r && i < r->count && i < MAXREP; i++) {
        const goro_goroutine_info *g = &r->goroutines[i];
        snprintf(cx.rep[i].name, sizeof cx.rep[i].name, "%s", g->name ? g->name : "");
        snprintf(cx.rep[i].state, sizeof cx.rep[i].state, "%s", g->state ? g->state : "");
    }
    goro_leak_report_free(r);
}

/* Until the goroutines of the case made it to their final wait: the PARK()
 * count, the goroutine count (helpers that return are gone), then scans
 * without a report until the judged ones have parked on their primitives
 * (PARK() comes right before the wait). A scan without a report leaves
 * nothing behind; goro_leak_find's results would. */
NOINLINE static bool wait_ready(const lc_case *k)
{
    int ngor = ngor_of(k);
    size_t judged = judged_of(k);
    int64_t end = goro_now() + gt_slow(10 * GORO_SECOND);
    while (atomic_load(&cx.parked) < ngor && goro_now() < end)
        goro_sleep(MS);
    if (atomic_load(&cx.parked) < ngor) {
        snprintf(cx.pre_err, sizeof cx.pre_err, "only %d of %d goroutines got to their wait",
                 atomic_load(&cx.parked), ngor);
        return false;
    }
    while (goro_num_goroutines() != (size_t)ngor + 1 && goro_now() < end)
        goro_sleep(MS);
    if (goro_num_goroutines() != (size_t)ngor + 1) {
        snprintf(cx.pre_err, sizeof cx.pre_err, "%zu goroutines besides main, expected %d",
                 goro_num_goroutines() - 1, ngor);
        return false;
    }
    /* A scan that does not judge some kind of wait at all (an older scan and
     * select {}) would never count it: after 2 s, go on (the post-check
     * verifies the states; a leak the scan did not judge is a missed one). */
    int64_t judge_end = goro_now() + gt_slow(2 * GORO_SECOND);
    int last_rc = 0;
    size_t seen = 0;
    for (;;) {
        goro_leak_scan_stats st;
        memset(&st, 0, sizeof st);
        last_rc = goro_leak_scan(NULL, &st);
        seen = st.blocked;
        if (last_rc == -ENOTSUP || (last_rc == 0 && st.blocked >= judged))
            return true; /* -ENOTSUP: the real scan meets it and reports it */
        if (last_rc == 0 && goro_now() >= judge_end)
            return true;
        if (goro_now() >= end)
            break;
        goro_sleep(MS);
    }
    snprintf(cx.pre_err, sizeof cx.pre_err,
             "only %zu of %zu goroutines parked on their primitive (last scan %s)", seen, judged,
             gt_errname(last_rc));
    return false;
}

static const goro_goroutine_info *nth_named(const goro_leak_report *r, const char *name, int nth)
{
    for (size_t i = 0; r && i < r->count; i++)
        if (r->goroutines[i].name && strcmp(r->goroutines[i].name, name) == 0 && nth-- == 0)
            return &r->goroutines[i];
    return NULL;
}

/* After the scan (its garbage no longer matters): the scan judged exactly
 * the goroutines blocked without a deadline, and each goroutine is in the
 * state the case declares. */
static void post_check(const lc_case *k)
{
    if (!cx.pre_ok || cx.rc != 0)
        return;
    size_t judged = judged_of(k);
    if (cx.st.blocked > judged) { /* something the case did not plan is blocked */
        cx.pre_ok = false;
        snprintf(cx.pre_err, sizeof cx.pre_err, "the scan judged %zu goroutines, expected %zu",
                 cx.st.blocked, judged);
        return;
    }
    /* Fewer: the goroutines are where they should be (checked below) but
     * the scan did not judge some of them (a note; for a leak, a miss). */
    cx.judged_short = cx.st.blocked < judged;
    /* A sleeper loops on short sleeps: a snapshot can catch it runnable or
     * running between two of them. Blocked goroutines do not move, so take
     * snapshots until every goroutine is in its declared state (bounded). */
    int64_t end = goro_now() + gt_slow(2 * GORO_SECOND);
    for (;;) {
        goro_leak_report *r = NULL;
        if (goro_leak_find(&(goro_leak_opts){.retries = -1}, &r) != 0) {
            cx.pre_ok = false;
            snprintf(cx.pre_err, sizeof cx.pre_err, "goro_leak_find failed");
            return;
        }
        bool states_ok = true;
        for (int i = 0; i < MAXEX && k->ex[i].name && states_ok; i++) {
            const expect *e = &k->ex[i];
            for (int j = 0; j < e->n; j++) {
                const goro_goroutine_info *g = nth_named(r, e->name, j);
                if (!g || strcmp(g->state, e->state) != 0) {
                    states_ok = false;
                    snprintf(cx.pre_err, sizeof cx.pre_err, "%s #%d is %s, expected %s",
                             e->name, j + 1, g ? g->state : "missing", e->state);
                    break;
                }
            }
        }
        goro_leak_report_free(r);
        if (states_ok) {
            cx.pre_err[0] = 0;
            return;
        }
        if (goro_now() >= end) {
            cx.pre_ok = false;
            return;
        }
        goro_sleep(MS);
    }
}

static void lc_main(void *arg)
{
    const lc_case *k = arg;
    k->setup();
    cx.pre_ok = wait_ready(k);
    /* A scan that could not stop a thread judges nothing: try again. */
    for (cx.tries = 1;; cx.tries++) {
        scrub_stack();
        do_scan();
        if (cx.rc != -EAGAIN || cx.tries == 20)
            break;
        goro_sleep(MS);
    }
    post_check(k);
    atomic_store(&cx.stop, 1);
    if (k->wake)
        k->wake();
    cx.clean_ok = gt_wait_num_goroutines(1 + (size_t)k->nstuck, gt_slow(5 * GORO_SECOND));
    cx.left = goro_num_goroutines();
    if (k->reclaim)
        k->reclaim();
    place_undo();
}

static const lc_case *find_case(const char *id)
{
    for (size_t i = 0; i < NCASES; i++)
        if (strcmp(cases[i].id, id) == 0)
            return &cases[i];
    return NULL;
}

static int child_main(const char *scenario)
{
    if (strncmp(scenario, "lc:", 3) != 0)
        return 3;
    const lc_case *k = find_case(scenario + 3);
    if (!k)
        return 3;
    memset(&cx, 0, sizeof cx);
    goro_options o = gt_opts(k->procs);
    int rc = gt_run(k->what, lc_main, (void *)k, &o, 60);
    printf("lc-result\n");
    printf("rc %d\n", rc);
    printf("scan %d %d\n", cx.rc, cx.tries);
    printf("pre %d %s\n", cx.pre_ok, cx.pre_err);
    printf("stats %zu %zu %zu %s\n", cx.st.goroutines, cx.st.blocked, cx.st.leaked,
           cx.st.incomplete ? cx.st.incomplete : "-");
    for (size_t i = 0; i < cx.nrep && i < MAXREP; i++)
        printf("rep %s\t%s\n", cx.rep[i].name, cx.rep[i].state);
    printf("short %d\n", cx.judged_short);
    printf("bad %ld\n", atomic_load(&cx.bad));
    printf("clean %d %zu\n", cx.clean_ok, cx.left);
    printf("end\n");
    fflush(stdout);
    return 0;
}

/* ------------------------------------------------------------------------- */
/* In the test: each case in fresh processes                                  */
/* ------------------------------------------------------------------------- */

typedef struct run_res {
    bool complete; /* the child printed everything and exited 0 */
    int rc, scan, tries;
    bool pre_ok, clean_ok, judged_short;
    char pre_err[256], incomplete[160];
    size_t goroutines, blocked, leaked, left;
    long bad;
    size_t nrep;
    rep_entry rep[MAXREP];
} run_res;

static void copy_trunc(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    if (n >= size)
        n = size - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

static void parse_result(const char *out, run_res *r)
{
    memset(r, 0, sizeof *r);
    const char *p = out ? strstr(out, "lc-result\n") : NULL;
    while (p && *p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char line[512];
        snprintf(line, sizeof line, "%.*s", (int)(len < sizeof line ? len : sizeof line - 1), p);
        p = nl ? nl + 1 : NULL;
        int a, b;
        if (sscanf(line, "rc %d", &a) == 1)
            r->rc = a;
        else if (sscanf(line, "scan %d %d", &a, &b) == 2)
            r->scan = a, r->tries = b;
        else if (strncmp(line, "pre ", 4) == 0) {
            r->pre_ok = line[4] == '1';
            copy_trunc(r->pre_err, sizeof r->pre_err, line[5] ? line + 6 : "");
        } else if (sscanf(line, "stats %zu %zu %zu %159[^\n]", &r->goroutines, &r->blocked,
                          &r->leaked, r->incomplete) == 4) {
        } else if (strncmp(line, "rep ", 4) == 0) {
            if (r->nrep < MAXREP) {
                rep_entry *e = &r->rep[r->nrep++];
                char *tab = strchr(line + 4, '\t');
                if (tab)
                    *tab++ = 0;
                copy_trunc(e->name, sizeof e->name, line + 4);
                copy_trunc(e->state, sizeof e->state, tab ? tab : "");
            }
        } else if (sscanf(line, "short %d", &a) == 1) {
            r->judged_short = a;
        } else if (sscanf(line, "bad %ld", &r->bad) == 1) {
        } else if (sscanf(line, "clean %d %zu", &a, &r->left) == 2) {
            r->clean_ok = a;
        } else if (strcmp(line, "end") == 0) {
            r->complete = true;
        }
    }
}

static int count_reported(const run_res *r, const char *name)
{
    int n = 0;
    for (size_t i = 0; i < r->nrep; i++)
        n += strcmp(r->rep[i].name, name) == 0;
    return n;
}

/* Summary rows (test thread only). */
enum { G_ERR, G_NONE, G_PARTIAL, G_LEAK };
typedef struct row {
    const lc_case *k;
    int got[RUNS];
    int nrun;
    bool wrong;
} row;
static row rows[NCASES];
static bool note_printed;

#define FAILF(...)                                                                       \
    do {                                                                                 \
        if (nf < sizeof fails - 1)                                                       \
            nf += (size_t)snprintf(fails + nf, sizeof fails - nf, __VA_ARGS__);          \
    } while (0)

static void test_case(void **state)
{
    const lc_case *k = *state;
    if (GT_SANITIZED) {
        if (!note_printed)
            fprintf(stderr, "note: leak corpus skipped: the build uses %s, where goro_leak_scan "
                            "returns -ENOTSUP (its result cannot be trusted under sanitizers)\n",
                    gt_sanitizer_name());
        note_printed = true;
        skip();
    }
    row *rw = &rows[k - cases];
    rw->k = k;
    char fails[3072] = "", scen[80];
    size_t nf = 0;
    snprintf(scen, sizeof scen, "lc:%s", k->id);
    for (int run = 0; run < RUNS; run++) {
        gt_child c;
        run_res *r = calloc(1, sizeof *r);
        assert_non_null(r);
        memset(&c, 0, sizeof c);
        bool ok = gt_child_start(&c, scen, NULL) == 0;
        if (ok) {
            gt_child_finish(&c, gt_slow(120 * GORO_SECOND));
            ok = !c.timed_out && WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0;
        }
        parse_result(c.out, r);
        int *got = &rw->got[rw->nrun++];
        *got = G_ERR;
        if (!ok || !r->complete) {
            gt_child_print(&c, k->id);
            FAILF("run %d: the child did not complete\n", run + 1);
            gt_child_free(&c);
            free(r);
            continue;
        }
        gt_child_free(&c);
        char line[600];
        size_t nl = (size_t)snprintf(line, sizeof line, "%-30s run %d: reported [", k->id, run + 1);
        for (size_t i = 0; i < r->nrep && nl < sizeof line - 80; i++)
            nl += (size_t)snprintf(line + nl, sizeof line - nl, "%s%s", i ? " " : "",
                                   r->rep[i].name);
        fprintf(stderr, "%s] judged %zu of %zu goroutines%s%s%s\n", line, r->blocked,
                r->goroutines, r->tries > 1 ? ", scan retried" : "", r->scan ? ", scan failed" : "",
                r->judged_short ? " (fewer than the case has blocked without a deadline)" : "");
        if (r->rc != 0)
            FAILF("run %d: goro_run = %d\n", run + 1, r->rc);
        else if (r->scan != 0)
            FAILF("run %d: goro_leak_scan = %s (%s) after %d tries\n", run + 1,
                  gt_errname(r->scan), r->incomplete, r->tries);
        else if (!r->pre_ok)
            FAILF("run %d: precondition: %s\n", run + 1, r->pre_err);
        else {
            /* Judge. */
            int want_total = 0, got_total = 0;
            bool exact = true;
            for (int i = 0; i < MAXEX && k->ex[i].name; i++) {
                const expect *e = &k->ex[i];
                int n = count_reported(r, e->name), want = e->leaked ? e->n : 0;
                want_total += want;
                got_total += n < want ? n : want;
                if (n != want) {
                    exact = false;
                    FAILF("run %d: %s: %s reported %d time(s), expected %d\n", run + 1,
                          n > want ? "FALSE POSITIVE" : "MISSED", e->name, n, want);
                }
            }
            for (size_t i = 0; i < r->nrep; i++) {
                int j;
                for (j = 0; j < MAXEX && k->ex[j].name; j++)
                    if (strcmp(r->rep[i].name, k->ex[j].name) == 0)
                        break;
                if (j == MAXEX || !k->ex[j].name) {
                    exact = false;
                    FAILF("run %d: FALSE POSITIVE: unexpected goroutine \"%s\" [%s] reported\n",
                          run + 1, r->rep[i].name, r->rep[i].state);
                }
            }
            if (r->nrep == 0)
                *got = G_NONE;
            else if (k->leak && got_total < want_total)
                *got = G_PARTIAL;
            else
                *got = G_LEAK;
            if (!exact && *got == (k->leak ? G_LEAK : G_NONE))
                *got = G_PARTIAL; /* right verdict, wrong goroutines */
        }
        if (r->bad)
            FAILF("run %d: %ld unexpected results inside goroutines\n", run + 1, r->bad);
        if (!r->clean_ok)
            FAILF("run %d: %zu goroutines left after the clean-up\n", run + 1, r->left);
        free(r);
    }
    if (nf) {
        rw->wrong = true;
        fail_msg("case %s (%s, expected %s):\n%s", k->id, k->what, k->leak ? "LEAK" : "no leak",
                 fails);
    }
}

static const char *got_str(int g)
{
    switch (g) {
    case G_NONE:
        return "none";
    case G_PARTIAL:
        return "partial";
    case G_LEAK:
        return "LEAK";
    default:
        return "ERROR";
    }
}

static int print_table(void **state)
{
    (void)state;
    int nl = 0, nn = 0, ok_l = 0, ok_n = 0, missed = 0, fp = 0, err = 0;
    bool any = false;
    for (size_t i = 0; i < NCASES; i++)
        any |= rows[i].nrun > 0;
    if (!any)
        return 0;
    fprintf(stderr, "\nleak corpus (%d fresh processes per case):\n", RUNS);
    fprintf(stderr, "  %-30s %-8s %-26s %s\n", "case", "expected", "got (per run)", "verdict");
    for (size_t i = 0; i < NCASES; i++) {
        const row *r = &rows[i];
        if (!r->nrun)
            continue;
        char got[64] = "";
        size_t n = 0;
        bool all_right = true, any_err = false, any_fp = false;
        for (int j = 0; j < r->nrun; j++) {
            n += (size_t)snprintf(got + n, sizeof got - n, "%s%s", j ? " " : "", got_str(r->got[j]));
            int want = r->k->leak ? G_LEAK : G_NONE;
            all_right &= r->got[j] == want;
            any_err |= r->got[j] == G_ERR;
            any_fp |= !r->k->leak && (r->got[j] == G_LEAK || r->got[j] == G_PARTIAL);
        }
        const char *verdict = "ok";
        if (any_err)
            verdict = "ERROR", err++;
        else if (any_fp)
            verdict = "FALSE POSITIVE", fp++;
        else if (!all_right || r->wrong)
            verdict = r->k->leak ? "MISSED" : "WRONG", missed += r->k->leak;
        if (r->k->leak) {
            nl++;
            ok_l += !strcmp(verdict, "ok");
        } else {
            nn++;
            ok_n += !strcmp(verdict, "ok");
        }
        fprintf(stderr, "  %-30s %-8s %-26s %s\n", r->k->id, r->k->leak ? "LEAK" : "none", got,
                verdict);
    }
    fprintf(stderr, "  leak cases right: %d/%d, non-leak cases right: %d/%d; missed %d, false "
                    "positives %d, errors %d\n\n",
            ok_l, nl, ok_n, nn, missed, fp, err);
    return 0;
}

int main(void)
{
    const char *scenario = gt_child_scenario();
    if (scenario)
        return child_main(scenario);
    struct CMUnitTest tests[NCASES];
    for (size_t i = 0; i < NCASES; i++)
        tests[i] = (struct CMUnitTest){.name = cases[i].id,
                                       .test_func = test_case,
                                       .initial_state = (void *)&cases[i]};
    return cmocka_run_group_tests(tests, NULL, print_table);
}
