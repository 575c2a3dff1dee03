/*
 * net.c - TCP and UNIX stream sockets on goro's poller.
 *
 * Owns: goro_listener and goro_conn. Every socket is non-blocking and
 * close-on-exec, registered once with the poller (netpoll.h). An operation
 * tries the syscall first and waits on the poll descriptor only on EAGAIN,
 * then retries.
 *
 * Lifetime: each object counts its in-flight operations plus one for the
 * owner. close marks it closed and wakes blocked operations (-EBADF); the
 * descriptor is closed and the object freed when the count drops to zero,
 * so an fd number is never reused under an operation still in a syscall
 * (Go's fdMutex does the same).
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "runtime/netpoll.h"

/* glibc declares __errno_location() const, so a compiler may compute errno's
 * address once per function and reuse it after goro__pd_wait - by then the
 * goroutine may run on another thread, and that address is the old thread's
 * errno (clang does this: reads then saw a stale EINPROGRESS or 0). Every
 * errno use in this file goes through a call defined in another file, which
 * cannot be folded. */
#undef errno
#define errno (*goro__errno_location())

typedef struct sock {
    goro__pd *pd;
    int fd;
    _Atomic uint32_t refs;
    _Atomic uint32_t closed;
} sock;

struct goro_conn {
    sock s;
};

struct goro_listener {
    sock s;
    char *unix_path; /* removed at close */
};

/* ---- lifetime ------------------------------------------------------------ */

static int sock_init(sock *s, int fd)
{
    s->fd = fd;
    atomic_init(&s->refs, 1);
    atomic_init(&s->closed, 0);
    return goro__pd_open(fd, &s->pd);
}

/* Take a reference for one operation; -EBADF once closed. */
static int sock_acquire(sock *s)
{
    if (atomic_load_explicit(&s->closed, memory_order_acquire))
        return -EBADF;
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    if (atomic_load_explicit(&s->closed, memory_order_acquire)) {
        atomic_fetch_sub_explicit(&s->refs, 1, memory_order_relaxed);
        return -EBADF; /* the closer will see our reference drop */
    }
    return 0;
}

/* Drop a reference; the last one closes the fd and frees the object. */
static bool sock_release(sock *s)
{
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return false;
    goro__pd_free(s->pd);
    close(s->fd);
    return true;
}

static int sock_close(sock *s)
{
    uint32_t zero = 0;
    if (!atomic_compare_exchange_strong(&s->closed, &zero, 1))
        return -EBADF;
    goro__pd_close(s->pd);
    return 0;
}

/* ---- addresses ------------------------------------------------------------- */

/* Parse a numeric "host:port" / "[v6]:port". Returns 0, or -EINVAL. */
static int parse_numeric(const char *addr, struct sockaddr_storage *ss, socklen_t *len)
{
    if (!addr)
        return -EINVAL;
    char host[INET6_ADDRSTRLEN + 2];
    const char *colon;
    size_t hl;
    if (addr[0] == '[') {
        const char *end = strchr(addr, ']');
        if (!end || end[1] != ':')
            return -EINVAL;
        hl = (size_t)(end - addr - 1);
        if (hl == 0 || hl >= sizeof host)
            return -EINVAL;
        memcpy(host, addr + 1, hl);
        colon = end + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon)
            return -EINVAL;
        hl = (size_t)(colon - addr);
        if (hl == 0 || hl >= sizeof host)
            return -EINVAL;
        memcpy(host, addr, hl);
    }
    host[hl] = 0;
    char *endp;
    errno = 0;
    long port = strtol(colon + 1, &endp, 10);
    if (colon[1] == 0 || *endp || errno || port < 0 || port > 65535)
        return -EINVAL;
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *len = sizeof *v4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *len = sizeof *v6;
        return 0;
    }
    return -EINVAL;
}

static int format_addr(const struct sockaddr_storage *ss, socklen_t sl, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN];
    int n;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
        n = snprintf(buf, len, "%s:%u", host, ntohs(v4->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
        n = snprintf(buf, len, "[%s]:%u", host, ntohs(v6->sin6_port));
    } else if (ss->ss_family == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)ss;
        size_t pl = sl > offsetof(struct sockaddr_un, sun_path)
                        ? strnlen(un->sun_path, sl - offsetof(struct sockaddr_un, sun_path))
                        : 0;
        n = snprintf(buf, len, "%.*s", (int)pl, un->sun_path);
    } else {
        return -EAFNOSUPPORT;
    }
    return (n < 0 || (size_t)n >= len) ? -ENOSPC : 0;
}

static int unix_addr(const char *path, struct sockaddr_un *un, socklen_t *len)
{
    if (!path || !*path)
        return -EINVAL;
    size_t pl = strlen(path);
    if (pl >= sizeof un->sun_path)
        return -ENAMETOOLONG;
    memset(un, 0, sizeof *un);
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, path, pl);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + pl + 1);
    return 0;
}

/* ---- listeners --------------------------------------------------------------- */

static int listen_on(int family, const struct sockaddr *sa, socklen_t sl, int backlog,
                     goro_listener **out, const char *unix_path)
{
    if (!out)
        return -EINVAL;
    if (!goro__running())
        return -ESRCH;
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (family != AF_UNIX)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, sa, sl) != 0 || listen(fd, backlog > 0 ? backlog : SOMAXCONN) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    goro_listener *l = calloc(1, sizeof *l);
    if (!l) {
        close(fd);
        return -ENOMEM;
    }
    if (unix_path && !(l->unix_path = strdup(unix_path))) {
        free(l);
        close(fd);
        unlink(unix_path);
        return -ENOMEM;
    }
    int rc = sock_init(&l->s, fd);
    if (rc) {
        if (unix_path)
            unlink(unix_path);
        free(l->unix_path);
        free(l);
        close(fd);
        return rc;
    }
    *out = l;
    return 0;
}

int goro_listen_tcp(const char *addr, int backlog, goro_listener **out)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int rc = parse_numeric(addr, &ss, &sl);
    if (rc)
        return rc;
    return listen_on(ss.ss_family, (struct sockaddr *)&ss, sl, backlog, out, NULL);
}

int goro_listen_unix(const char *path, int backlog, goro_listener **out)
{
    struct sockaddr_un un;
    socklen_t sl;
    int rc = unix_addr(path, &un, &sl);
    if (rc)
        return rc;
    return listen_on(AF_UNIX, (struct sockaddr *)&un, sl, backlog, out, path);
}

int goro_listener_addr(const goro_listener *l, char *buf, size_t len)
{
    if (!l || !buf)
        return -EINVAL;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(l->s.fd, (struct sockaddr *)&ss, &sl) != 0)
        return -errno;
    return format_addr(&ss, sl, buf, len);
}

static goro_conn *conn_new(int fd, int *rc)
{
    goro_conn *c = calloc(1, sizeof *c);
    if (!c) {
        *rc = -ENOMEM;
        return NULL;
    }
    *rc = sock_init(&c->s, fd);
    if (*rc) {
        free(c);
        return NULL;
    }
    return c;
}

GORO__NOINLINE static int accept_impl(goro_listener *l, goro_conn **out, int64_t deadline,
                                      goro_ctx *ctx, void *fp)
{
    if (!l || !out)
        return -EINVAL;
    int rc = sock_acquire(&l->s);
    if (rc)
        return rc;
    for (;;) {
        int fd = accept4(l->s.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            goro_conn *c = conn_new(fd, &rc);
            if (c)
                *out = c;
            else
                close(fd);
            break;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno != EAGAIN) {
            rc = -errno;
            break;
        }
        if ((rc = goro__pd_wait(l->s.pd, GORO__PD_READ, deadline, ctx, fp)))
            break;
    }
    if (sock_release(&l->s)) {
        free(l->unix_path);
        free(l);
    }
    return rc;
}

int goro_accept(goro_listener *l, goro_conn **out, int64_t deadline, goro_ctx *ctx)
{
    return accept_impl(l, out, deadline, ctx, __builtin_frame_address(0));
}

int goro_listener_close(goro_listener *l)
{
    if (!l)
        return -EINVAL;
    int rc = sock_close(&l->s);
    if (rc)
        return rc;
    if (l->unix_path)
        unlink(l->unix_path);
    if (sock_release(&l->s)) {
        free(l->unix_path);
        free(l);
    }
    return 0;
}

/* ---- connections ----------------------------------------------------------- */

int goro_conn_from_fd(int fd, goro_conn **out)
{
    if (fd < 0 || !out)
        return -EINVAL;
    if (!goro__running())
        return -ESRCH;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
        return -errno;
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    int rc;
    goro_conn *c = conn_new(fd, &rc);
    if (!c)
        return rc;
    *out = c;
    return 0;
}

/* Connect a fresh non-blocking socket to sa, waiting for completion. */
static int connect_one(const struct sockaddr *sa, socklen_t sl, goro_conn **out, int64_t deadline,
                       goro_ctx *ctx, void *fp)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (sa->sa_family != AF_UNIX) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    int rc;
    goro_conn *c = conn_new(fd, &rc);
    if (!c) {
        close(fd);
        return rc;
    }
    while (connect(fd, sa, sl) != 0) {
        if (errno == EINTR)
            continue;
        if (errno != EINPROGRESS) {
            rc = -errno;
            goto fail;
        }
        for (;;) {
            if ((rc = goro__pd_wait(c->s.pd, GORO__PD_WRITE, deadline, ctx, fp)))
                goto fail;
            int err = 0;
            socklen_t el = sizeof err;
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0) {
                rc = -errno;
                goto fail;
            }
            if (err == 0) {
                /* Writable could also be spurious: confirm with getpeername. */
                struct sockaddr_storage peer;
                socklen_t pl = sizeof peer;
                if (getpeername(fd, (struct sockaddr *)&peer, &pl) == 0) {
                    *out = c;
                    return 0;
                }
                if (errno != ENOTCONN) {
                    rc = -errno;
                    goto fail;
                }
                continue;
            }
            rc = -err;
            goto fail;
        }
    }
    *out = c;
    return 0;
fail:
    sock_close(&c->s);
    if (sock_release(&c->s))
        free(c);
    return rc;
}

typedef struct resolve_arg {
    const char *host, *port;
    struct addrinfo *res;
    int rc;
} resolve_arg;

static void resolve(void *arg)
{
    resolve_arg *r = arg;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG};
    r->rc = getaddrinfo(r->host, r->port, &hints, &r->res);
}

static int gai_errno(int rc)
{
    switch (rc) {
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
        return -ENOENT;
    case EAI_AGAIN:
        return -EAGAIN;
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_SYSTEM:
        return -errno;
    default:
        return -EINVAL;
    }
}

GORO__NOINLINE static int dial_tcp_impl(const char *addr, goro_conn **out, int64_t deadline,
                                        goro_ctx *ctx, void *fp)
{
    if (!addr || !out)
        return -EINVAL;
    if (!goro__running())
        return -ESRCH;
    /* The port must be a decimal number in 0..65535 whatever the host is
     * (getaddrinfo would silently wrap 99999). */
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || !colon[1] || strlen(colon + 1) > 5)
        return -EINVAL;
    for (const char *c = colon + 1; *c; c++)
        if (*c < '0' || *c > '9')
            return -EINVAL;
    if (atol(colon + 1) > 65535)
        return -EINVAL;
    struct sockaddr_storage ss;
    socklen_t sl;
    if (parse_numeric(addr, &ss, &sl) == 0)
        return connect_one((struct sockaddr *)&ss, sl, out, deadline, ctx, fp);
    if (addr[0] == '[')
        return -EINVAL; /* a bracketed host must be a numeric IPv6 address */
    /* A host name: resolve without blocking the P. */
    char host[256];
    size_t hl = (size_t)(colon - addr);
    if (hl >= sizeof host)
        return -ENAMETOOLONG;
    memcpy(host, addr, hl);
    host[hl] = 0;
    resolve_arg r = {.host = host, .port = colon + 1};
    goro_blocking(resolve, &r);
    if (r.rc != 0)
        return gai_errno(r.rc);
    int rc = -ENOENT;
    for (struct addrinfo *ai = r.res; ai; ai = ai->ai_next) {
        rc = connect_one(ai->ai_addr, ai->ai_addrlen, out, deadline, ctx, fp);
        if (rc == 0 || rc == -ETIMEDOUT || rc == -ECANCELED || (ctx && rc == goro_ctx_err(ctx)))
            break;
    }
    freeaddrinfo(r.res);
    return rc;
}

int goro_dial_tcp(const char *addr, goro_conn **out, int64_t deadline, goro_ctx *ctx)
{
    return dial_tcp_impl(addr, out, deadline, ctx, __builtin_frame_address(0));
}

GORO__NOINLINE static int dial_unix_impl(const char *path, goro_conn **out, int64_t deadline,
                                         goro_ctx *ctx, void *fp)
{
    if (!out)
        return -EINVAL;
    if (!goro__running())
        return -ESRCH;
    struct sockaddr_un un;
    socklen_t sl;
    int rc = unix_addr(path, &un, &sl);
    if (rc)
        return rc;
    return connect_one((struct sockaddr *)&un, sl, out, deadline, ctx, fp);
}

int goro_dial_unix(const char *path, goro_conn **out, int64_t deadline, goro_ctx *ctx)
{
    return dial_unix_impl(path, out, deadline, ctx, __builtin_frame_address(0));
}

GORO__NOINLINE static ssize_t read_impl(goro_conn *c, void *buf, size_t len, int64_t deadline,
                                        goro_ctx *ctx, void *fp)
{
    if (!c || (!buf && len))
        return -EINVAL;
    int rc = sock_acquire(&c->s);
    if (rc)
        return rc;
    ssize_t n;
    for (;;) {
        n = read(c->s.fd, buf, len);
        if (n >= 0)
            break;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN) {
            n = -errno;
            break;
        }
        if ((rc = goro__pd_wait(c->s.pd, GORO__PD_READ, deadline, ctx, fp))) {
            n = rc;
            break;
        }
    }
    if (sock_release(&c->s))
        free(c);
    return n;
}

ssize_t goro_conn_read(goro_conn *c, void *buf, size_t len, int64_t deadline, goro_ctx *ctx)
{
    return read_impl(c, buf, len, deadline, ctx, __builtin_frame_address(0));
}

/* write(2) to a pipe without SIGPIPE (send's MSG_NOSIGNAL is for sockets
 * only): block the signal on this thread, write, and discard the SIGPIPE the
 * write raised (not one that was already pending), then restore the mask. */
static ssize_t write_nosigpipe(int fd, const void *buf, size_t len)
{
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    ssize_t n = write(fd, buf, len);
    int e = errno;
    if (n < 0 && e == EPIPE && !was_pending) {
        const struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) == -1 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = e;
    return n;
}

GORO__NOINLINE static ssize_t write_impl(goro_conn *c, const void *buf, size_t len,
                                         int64_t deadline, goro_ctx *ctx, void *fp)
{
    if (!c || (!buf && len))
        return -EINVAL;
    if (len > SSIZE_MAX)
        return -EINVAL;
    int rc = sock_acquire(&c->s);
    if (rc)
        return rc;
    size_t done = 0;
    ssize_t result = (ssize_t)len;
    while (done < len) {
        ssize_t n = send(c->s.fd, (const char *)buf + done, len - done, MSG_NOSIGNAL);
        if (n >= 0) {
            done += (size_t)n;
            continue;
        }
        if (errno == ENOTSOCK) /* a pipe or tty wrapped with goro_conn_from_fd */
            n = write_nosigpipe(c->s.fd, (const char *)buf + done, len - done);
        if (n >= 0) {
            done += (size_t)n;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN) {
            result = -errno;
            break;
        }
        if ((rc = goro__pd_wait(c->s.pd, GORO__PD_WRITE, deadline, ctx, fp))) {
            result = rc;
            break;
        }
    }
    if (sock_release(&c->s))
        free(c);
    return result;
}

ssize_t goro_conn_write(goro_conn *c, const void *buf, size_t len, int64_t deadline,
                        goro_ctx *ctx)
{
    return write_impl(c, buf, len, deadline, ctx, __builtin_frame_address(0));
}

_Static_assert(GORO_SHUT_RD == SHUT_RD && GORO_SHUT_WR == SHUT_WR && GORO_SHUT_RDWR == SHUT_RDWR,
               "GORO_SHUT_* are shutdown(2)'s values");

int goro_conn_shutdown(goro_conn *c, int how)
{
    if (!c || (how != GORO_SHUT_RD && how != GORO_SHUT_WR && how != GORO_SHUT_RDWR))
        return -EINVAL;
    int rc = sock_acquire(&c->s);
    if (rc)
        return rc;
    rc = shutdown(c->s.fd, how) == 0 ? 0 : -errno;
    if (sock_release(&c->s))
        free(c);
    return rc;
}

int goro_conn_close(goro_conn *c)
{
    if (!c)
        return -EINVAL;
    int rc = sock_close(&c->s);
    if (rc)
        return rc;
    if (sock_release(&c->s))
        free(c);
    return 0;
}

int goro_conn_fd(const goro_conn *c) { return c ? c->s.fd : -EINVAL; }

int goro_conn_local_addr(const goro_conn *c, char *buf, size_t len)
{
    if (!c || !buf)
        return -EINVAL;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(c->s.fd, (struct sockaddr *)&ss, &sl) != 0)
        return -errno;
    return format_addr(&ss, sl, buf, len);
}

int goro_conn_peer_addr(const goro_conn *c, char *buf, size_t len)
{
    if (!c || !buf)
        return -EINVAL;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getpeername(c->s.fd, (struct sockaddr *)&ss, &sl) != 0)
        return -errno;
    return format_addr(&ss, sl, buf, len);
}
