/*
 * netpoll.h - poll descriptors: how a goroutine waits for a file descriptor.
 *
 * A poll descriptor (pd) is registered once with the runtime's epoll
 * instance, edge-triggered for input and output. A goroutine whose read or
 * write would block queues a waiter on the pd and parks ("IO wait"); when
 * the poller sees an edge it latches rready/wready and claims every waiter
 * of that direction. An operation retries the syscall after any wake-up,
 * and a latched edge found under the lock means "retry, do not sleep", so
 * no edge is lost between EAGAIN and parking.
 *
 * pds come from a pool and are never unmapped while the runtime runs; the
 * epoll event carries the pd pointer plus a 16-bit sequence number that
 * changes whenever the pd is reused, so an event fetched for a descriptor
 * that was closed meanwhile is recognised and ignored.
 */
#ifndef GORO_NETPOLL_H
#define GORO_NETPOLL_H

#include "runtime/sched.h"

typedef struct goro__pd {
    goro__spinlock lock;
    int fd;
    uint16_t seq;
    uint8_t closing;
    uint8_t rready, wready;
    goro__waitq rq, wq;
    struct goro__pd *free_next;
} goro__pd;

enum { GORO__PD_READ = 0, GORO__PD_WRITE = 1 };

/* Register fd (already non-blocking). Errors: -ENOMEM, epoll_ctl errors. */
int goro__pd_open(int fd, goro__pd **out);

/* Mark closing, wake every waiter (they see -EBADF) and deregister fd. The
 * fd itself is not closed here. */
void goro__pd_close(goro__pd *pd);

/* Return a closed pd to the pool (no goroutine may use it any more). */
void goro__pd_free(goro__pd *pd);

/* Wait until the direction `mode` may make progress. Returns 0 (retry the
 * operation), -ETIMEDOUT, -EBADF (closed), the context's error, or -EPERM
 * outside a goroutine. fp: the public call's frame (for dumps). */
int goro__pd_wait(goro__pd *pd, int mode, int64_t deadline, goro_ctx *ctx, void *fp);

/* Poller side (netpoll.c, used by sched.c and sysmon.c). */
void goro__netpoll_inject(goro__waiter *list);
void goro__pd_pool_fini(void);

#endif /* GORO_NETPOLL_H */
