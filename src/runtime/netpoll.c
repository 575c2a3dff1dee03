/*
 * netpoll.c - the poller: one epoll instance per runtime.
 *
 * At most one idle thread sleeps here at a time (sched.poll_until != 0),
 * until the earliest timer of any P or until woken: goro__netpoll_break
 * writes an eventfd that is always registered, so the sleeper returns at
 * once (level-triggered: a break that happens before the sleep still
 * counts). File descriptors of goroutines blocked on I/O are added by the
 * net layer; this file only owns the epoll instance, the break mechanism
 * and the sleep.
 */
#include <sys/epoll.h>
#include <time.h>
#include <sys/eventfd.h>
#include <unistd.h>

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
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
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
    /* epoll_pwait2 takes a nanosecond timeout (Linux 5.11); fall back to
     * epoll_wait's milliseconds, rounded up so we never wake early. */
    int n = epoll_pwait2(epfd, evs, 64, tp, NULL);
    if (n < 0 && errno == ENOSYS) {
        int ms = -1;
        if (tp) {
            int64_t d = ts.tv_sec * GORO_SECOND + ts.tv_nsec;
            int64_t m = (d + GORO_MILLISECOND - 1) / GORO_MILLISECOND;
            ms = m > 1000000 ? 1000000 : (int)m;
        }
        n = epoll_wait(epfd, evs, 64, ms);
    }
    bool broken = false;
    for (int i = 0; i < n; i++) {
        if (evs[i].data.ptr == NULL) {
            uint64_t v;
            ssize_t r = read(breakfd, &v, sizeof v);
            (void)r;
            atomic_store(&break_pending, 0);
            broken = true;
        }
    }
    return broken;
}
