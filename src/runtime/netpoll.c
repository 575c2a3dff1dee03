/*
 * netpoll.c - the poller: one epoll instance per runtime, and the pool of
 * poll descriptors (netpoll.h).
 *
 * At most one idle thread sleeps here at a time (sched.poll_until != 0),
 * until the earliest timer of any P or an I/O event; goro__netpoll_break
 * writes an eventfd that is always registered, so the sleeper returns at
 * once (level-triggered: a break that happens before the sleep still
 * counts). Threads that hold a P poll without blocking when goroutines wait
 * for I/O and nobody is sleeping in the poller, and sysmon polls when no
 * one did for 10 ms, so I/O completions are noticed even when every P is
 * busy.
 *
 * Locking: a pd's lock protects its queues and flags; the pool has its own
 * mutex. The poller claims waiters under the pd lock and readies them after
 * releasing it.
 */
#define GORO__LOCK_RANK GORO__RANK_PD /* lock.h */
#define GORO__MUTEX_RANK GORO__RANK_ALLOC
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "runtime/netpoll.h"
#include "runtime/sanitizer.h"
#include "runtime/sched.h"

static int epfd = -1;
static int breakfd = -1;
static _Atomic uint32_t break_pending;

int goro__netpoll_init(void)
{
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        return -errno;
    breakfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (breakfd < 0) {
        int e = errno;
        close(epfd);
        epfd = -1;
        return -e;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, breakfd, &ev) != 0) {
        int e = errno;
        close(breakfd);
        close(epfd);
        breakfd = epfd = -1;
        return -e;
    }
    atomic_store(&break_pending, 0);
    return 0;
}

void goro__netpoll_fini(void)
{
    if (breakfd >= 0)
        close(breakfd);
    if (epfd >= 0)
        close(epfd);
    breakfd = epfd = -1;
}

void goro__netpoll_break(void)
{
    /* Coalesce: one pending wake-up is enough. */
    uint32_t zero = 0;
    if (!atomic_compare_exchange_strong(&break_pending, &zero, 1))
        return;
    uint64_t one = 1;
    ssize_t r = write(breakfd, &one, sizeof one);
    (void)r;
}

#define PD_PTR_MASK ((UINT64_C(1) << 48) - 1)

static uint64_t pd_tag(const goro__pd *pd) { return (uint64_t)(uintptr_t)pd | ((uint64_t)pd->seq << 48); }

/* Locked: claim every waiter of q, append them to *tail. */
static void claim_all(goro__waitq *q, goro__waiter ***tail, int32_t wake)
{
    goro__waiter *w;
    while ((w = q->head)) {
        goro__waitq_remove(q, w);
        if (goro__claim_waiter(w, wake)) {
            **tail = w;
            *tail = &w->next;
        }
    }
}

static goro__waiter *poll_events(struct epoll_event *evs, int n, bool *broken)
{
    goro__waiter *list = NULL, **tail = &list;
    for (int i = 0; i < n; i++) {
        if (evs[i].data.u64 == 0) {
            uint64_t v;
            ssize_t r = read(breakfd, &v, sizeof v);
            (void)r;
            atomic_store(&break_pending, 0);
            *broken = true;
            continue;
        }
        goro__pd *pd = (goro__pd *)(uintptr_t)(evs[i].data.u64 & PD_PTR_MASK);
        uint16_t seq = (uint16_t)(evs[i].data.u64 >> 48);
        uint32_t ev = evs[i].events;
        goro__san_acquire(pd); /* the pd came through epoll: see goro__pd_open */
        goro__spin_lock(&pd->lock);
        if (pd->seq == seq && !pd->closing) {
            if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
                pd->rready = 1;
                claim_all(&pd->rq, &tail, 0);
            }
            if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) {
                pd->wready = 1;
                claim_all(&pd->wq, &tail, 0);
            }
        }
        goro__spin_unlock(&pd->lock);
    }
    *tail = NULL;
    return list;
}

/* epoll_pwait2 takes a nanosecond timeout (Linux 5.11, glibc 2.35). Where
 * it is missing, the poller falls back to epoll_wait for good: the kernel
 * is older, a seccomp filter (containers) refuses the unknown syscall with
 * EPERM, or valgrind does not know it (it prints a warning for every call
 * of an unhandled syscall, so it must be tried once only). EINVAL is not a
 * sign of a missing syscall: the arguments are always valid here. */
enum { PWAIT2_UNTESTED, PWAIT2_PROBING, PWAIT2_OK, PWAIT2_MISSING };
static _Atomic uint32_t pwait2_state;

/* epoll_wait's timeout for tp (NULL: infinite): milliseconds, rounded up so
 * the poller never wakes before the deadline. */
static int timeout_ms(const struct timespec *tp)
{
    if (!tp)
        return -1;
    int64_t d = (int64_t)tp->tv_sec * GORO_SECOND + tp->tv_nsec;
    int64_t m = (d + GORO_MILLISECOND - 1) / GORO_MILLISECOND;
    return m > 1000000 ? 1000000 : (int)m;
}

bool goro__netpoll(int64_t until)
{
    struct timespec ts, *tp = &ts;
    if (until == INT64_MAX) {
        tp = NULL;
    } else {
        int64_t d = until ? until - goro__nanotime() : 0;
        if (d < 0)
            d = 0;
        ts.tv_sec = d / GORO_SECOND;
        ts.tv_nsec = d % GORO_SECOND;
    }
    struct epoll_event evs[64];
    int n;
    if (atomic_load_explicit(&pwait2_state, memory_order_relaxed) == PWAIT2_OK) {
        n = epoll_pwait2(epfd, evs, 64, tp, NULL);
    } else {
        uint32_t untested = PWAIT2_UNTESTED;
        if (atomic_compare_exchange_strong(&pwait2_state, &untested, PWAIT2_PROBING)) {
            /* The first poll finds out whether epoll_pwait2 exists. */
            n = epoll_pwait2(epfd, evs, 64, tp, NULL);
            bool missing = n < 0 && (errno == ENOSYS || errno == EPERM);
            atomic_store(&pwait2_state, missing ? PWAIT2_MISSING : PWAIT2_OK);
            if (missing)
                n = epoll_wait(epfd, evs, 64, timeout_ms(tp));
        } else {
            /* Missing, or being probed by another thread right now. */
            n = epoll_wait(epfd, evs, 64, timeout_ms(tp));
        }
    }
    bool broken = false;
    goro__store_relaxed(&goro__sched_.last_poll, goro__nanotime());
    if (n > 0) {
        goro__waiter *list = poll_events(evs, n, &broken);
        if (list)
            goro__netpoll_inject(list);
    }
    return broken;
}

/* ---- poll descriptors ------------------------------------------------------ */

static struct {
    goro__mutex lock;
    goro__pd *free;
    void **chunks;
    size_t nchunks;
} pool;

#define PD_CHUNK 256

static goro__pd *pd_alloc(void)
{
    goro__mutex_lock(&pool.lock);
    if (!pool.free) {
        goro__pd *c = calloc(PD_CHUNK, sizeof *c);
        void **nc = c ? realloc(pool.chunks, (pool.nchunks + 1) * sizeof *nc) : NULL;
        if (!nc) {
            free(c);
            goro__mutex_unlock(&pool.lock);
            return NULL;
        }
        pool.chunks = nc;
        pool.chunks[pool.nchunks++] = c;
        for (int i = PD_CHUNK; i-- > 0;) {
            c[i].free_next = pool.free;
            pool.free = &c[i];
        }
    }
    goro__pd *pd = pool.free;
    pool.free = pd->free_next;
    goro__mutex_unlock(&pool.lock);
    return pd;
}

void goro__pd_free(goro__pd *pd)
{
    goro__mutex_lock(&pool.lock);
    pd->free_next = pool.free;
    pool.free = pd;
    goro__mutex_unlock(&pool.lock);
}

void goro__pd_pool_fini(void)
{
    for (size_t i = 0; i < pool.nchunks; i++)
        free(pool.chunks[i]);
    free(pool.chunks);
    pool.chunks = NULL;
    pool.nchunks = 0;
    pool.free = NULL;
}

int goro__pd_open(int fd, goro__pd **out)
{
    goro__pd *pd = pd_alloc();
    if (!pd)
        return -ENOMEM;
    goro__spin_lock(&pd->lock);
    pd->fd = fd;
    pd->seq++;
    pd->closing = 0;
    pd->rready = pd->wready = 0;
    pd->rq.head = pd->wq.head = NULL;
    uint64_t tag = pd_tag(pd);
    goro__spin_unlock(&pd->lock);
    goro__san_release(pd); /* for TSan: the poller reaches pd through the kernel */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.u64 = tag};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        int e = errno;
        goro__pd_free(pd);
        return -e;
    }
    *out = pd;
    return 0;
}

void goro__pd_close(goro__pd *pd)
{
    goro__waiter *list = NULL, **tail = &list;
    goro__spin_lock(&pd->lock);
    pd->closing = 1;
    claim_all(&pd->rq, &tail, GORO__WAKE_CLOSED);
    claim_all(&pd->wq, &tail, GORO__WAKE_CLOSED);
    *tail = NULL;
    int fd = pd->fd;
    goro__spin_unlock(&pd->lock);
    epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
    goro__netpoll_inject(list);
}
