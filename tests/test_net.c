/*
 * test_net.c - the network layer: TCP and UNIX stream sockets on goro's
 * poller (echo with 1,000 concurrent clients, a large bidirectional
 * transfer), deadlines and contexts on every blocking call, close while
 * blocked, peer behaviour (EOF, EPIPE without SIGPIPE, half close, reset),
 * descriptor and goroutine accounting, goro_num_io_waiting, goro_blocking,
 * addresses, goro_conn_from_fd and dumps of goroutines blocked on sockets.
 *
 * Only loopback addresses (127.0.0.1, ::1) with ephemeral ports and UNIX
 * sockets in a private temporary directory are used. The peer scenarios run
 * in a child process with SIGPIPE at its default action, so a SIGPIPE that
 * escapes shows up as "killed by signal 13" instead of killing the group.
 *
 * As everywhere in tests/, goroutines never call cmocka: they record what
 * they saw (EXPECT* below keeps the first failure and a count), and the test
 * function checks after goro_run returned.
 */
#define _GNU_SOURCE
#include "util.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define MS GORO_MILLISECOND
#define SEC GORO_SECOND

/* After a goroutine's last call: keeps its frame on the stack for dumps. */
#define NO_TAIL_CALL() __asm__ volatile("" ::: "memory")

/* ------------------------------------------------------------------------- */
/* Failures seen inside goroutines                                            */
/* ------------------------------------------------------------------------- */

static struct {
    atomic_long n;
    atomic_int claimed;
    atomic_int ready;
    char msg[1024];
} gbad;

static void bad_reset(void)
{
    atomic_store(&gbad.n, 0);
    atomic_store(&gbad.claimed, 0);
    atomic_store(&gbad.ready, 0);
    gbad.msg[0] = '\0';
}

__attribute__((format(printf, 2, 3))) static void bad_note(int line, const char *fmt, ...)
{
    atomic_fetch_add(&gbad.n, 1);
    if (atomic_exchange(&gbad.claimed, 1))
        return;
    int k = snprintf(gbad.msg, sizeof gbad.msg, "test_net.c:%d: ", line);
    if (k < 0 || (size_t)k >= sizeof gbad.msg)
        k = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(gbad.msg + k, sizeof gbad.msg - (size_t)k, fmt, ap);
    va_end(ap);
    atomic_store_explicit(&gbad.ready, 1, memory_order_release);
}

/* errno name of a return value: "0", "count" or "ECONNRESET". */
static const char *en(long long rc)
{
    if (rc == 0)
        return "0";
    if (rc > 0)
        return "count";
    if (rc < -4095)
        return "?";
    const char *n = strerrorname_np((int)-rc);
    return n ? n : "E?";
}

#define EXPECT(cond, ...)                                                      \
    do {                                                                       \
        if (!(cond))                                                           \
            bad_note(__LINE__, __VA_ARGS__);                                   \
    } while (0)

#define EXPECT_RC(actual, expected)                                            \
    do {                                                                       \
        long long a_ = (long long)(actual), e_ = (long long)(expected);        \
        if (a_ != e_)                                                          \
            bad_note(__LINE__, "%s = %lld (%s), expected %lld (%s)", #actual,  \
                     a_, en(a_), e_, en(e_));                                  \
    } while (0)

/* Test thread: fail if any goroutine recorded a failure. */
static void assert_no_bad(const char *what)
{
    long n = atomic_load(&gbad.n);
    if (n == 0)
        return;
    const char *m = atomic_load_explicit(&gbad.ready, memory_order_acquire)
                        ? gbad.msg
                        : "(message not recorded)";
    fail_msg("%s: %ld failed check(s) inside goroutines; first: %s", what, n, m);
}

/* Test thread: assert a return code, with errno names. */
#define assert_net_rc(actual, expected)                                        \
    do {                                                                       \
        long long a_ = (long long)(actual), e_ = (long long)(expected);        \
        if (a_ != e_)                                                          \
            fail_msg("%s = %lld (%s), expected %lld (%s)", #actual, a_, en(a_), \
                     e_, en(e_));                                              \
    } while (0)

/* ------------------------------------------------------------------------- */
/* Helpers                                                                    */
/* ------------------------------------------------------------------------- */

/* 4 MiB of zeros: larger than any socket buffer once buffers are shrunk. */
static char junk[4 << 20];

static int64_t gen_dl(void) { return goro_deadline_after(gt_slow(20 * SEC)); }

static uint64_t mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The byte stream of a seed: bytes [off, off + n) into p. */
static void pat_fill(uint64_t seed, uint64_t off, uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint64_t o = off + i;
        uint64_t w = mix64((seed << 40) ^ (o >> 3));
        for (unsigned b = (unsigned)(o & 7); b < 8 && i < n; b++, i++)
            p[i] = (uint8_t)(w >> (b * 8));
    }
}

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Entries of /proc/self/fd (the directory's own descriptor included, the
 * same way every time). Under sanitizers, pipes are left out: the first
 * sanitizer report of the process starts an external symbolizer connected
 * by two pipes that stay open (goro's network layer makes no pipes). */
static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        if (GT_SANITIZED) {
            char path[300], target[64];
            snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
            ssize_t k = readlink(path, target, sizeof target - 1);
            if (k > 0) {
                target[k] = '\0';
                if (strncmp(target, "pipe:", 5) == 0)
                    continue;
            }
        }
        n++;
    }
    closedir(d);
    return n;
}

/* Read exactly n bytes: n, the short count at end of stream, or -errno. */
static ssize_t read_full(goro_conn *c, void *buf, size_t n, int64_t deadline)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = goro_conn_read(c, (char *)buf + got, n - got, deadline, NULL);
        if (r < 0)
            return r;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

static int dial_any(const char *addr, goro_conn **out, int64_t deadline, goro_ctx *ctx)
{
    return addr[0] == '/' ? goro_dial_unix(addr, out, deadline, ctx)
                          : goro_dial_tcp(addr, out, deadline, ctx);
}

/* Dial l and accept: *cl is the dialing end, *sv the accepted one. */
static int make_pair(goro_listener *l, goro_conn **cl, goro_conn **sv)
{
    char addr[256];
    int rc = goro_listener_addr(l, addr, sizeof addr);
    if (rc)
        return rc;
    int64_t d = gen_dl();
    if ((rc = dial_any(addr, cl, d, NULL)))
        return rc;
    if ((rc = goro_accept(l, sv, d, NULL))) {
        goro_conn_close(*cl);
        return rc;
    }
    return 0;
}

/* Fill c's send buffer (the peer never reads): writes with a past deadline
 * until one would block. Several rounds, in case acknowledgements free
 * space after the first. */
static int fill_send_buffer(goro_conn *c)
{
    for (int round = 0; round < 3; round++) {
        int i;
        for (i = 0; i < 2000; i++) {
            ssize_t r = goro_conn_write(c, junk, 65536, goro_now() - 1, NULL);
            if (r == -ETIMEDOUT)
                break;
            if (r < 0)
                return (int)r;
        }
        if (i == 2000)
            return -ENOBUFS;
        goro_sleep(2 * MS);
    }
    return 0;
}

/* A pair whose *cl cannot write: small buffers on both ends, filled. A
 * write of sizeof junk on *cl blocks until its deadline. */
static int make_full_pair(goro_listener *l, goro_conn **cl, goro_conn **sv)
{
    int rc = make_pair(l, cl, sv);
    if (rc)
        return rc;
    int v = 16384;
    setsockopt(goro_conn_fd(*cl), SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
    setsockopt(goro_conn_fd(*sv), SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
    if ((rc = fill_send_buffer(*cl))) {
        goro_conn_close(*cl);
        goro_conn_close(*sv);
    }
    return rc;
}

/* Make a private temporary directory for UNIX sockets. */
static int make_tmpdir(char *dir, size_t len)
{
    const char *t = getenv("TMPDIR");
    if (!t || !*t || strlen(t) > 60)
        t = "/tmp";
    snprintf(dir, len, "%s/goro-net-XXXXXX", t);
    return mkdtemp(dir) ? 0 : -errno;
}

/* Parse the port of "host:port" / "[v6]:port"; -1 if malformed. */
static long port_of(const char *addr)
{
    const char *c = strrchr(addr, ':');
    if (!c || !c[1])
        return -1;
    char *end;
    long p = strtol(c + 1, &end, 10);
    return *end ? -1 : p;
}

/* ------------------------------------------------------------------------- */
/* Calls that block: shared set-up for the deadline, context and dump tests   */
/* ------------------------------------------------------------------------- */

enum { OP_READ, OP_WRITE, OP_ACCEPT, OP_DIAL, OP_COUNT };
static const char *const op_name[OP_COUNT] = {"read", "write", "accept", "dial"};

#define FILL_MAX 8

typedef struct {
    goro_listener *lpair; /* source of the pairs */
    goro_listener *lidle; /* nobody dials it: accept blocks */
    goro_conn *rd_cl, *rd_sv; /* nothing is ever sent to rd_sv: read blocks */
    goro_conn *wr_cl, *wr_sv; /* wr_cl's buffers are full: write blocks */
    goro_listener *lfull;     /* backlog 1 with a full accept queue */
    goro_conn *fill[FILL_MAX];
    int nfill;
    bool dial_blocks; /* a dial to lfull blocks (Linux drops the SYN) */
    char full_addr[64];
} blk_env;

static void env_teardown(blk_env *e)
{
    goro_conn *cs[] = {e->rd_cl, e->rd_sv, e->wr_cl, e->wr_sv};
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
        if (cs[i])
            goro_conn_close(cs[i]);
    for (int i = 0; i < e->nfill; i++)
        goro_conn_close(e->fill[i]);
    goro_listener *ls[] = {e->lpair, e->lidle, e->lfull};
    for (size_t i = 0; i < sizeof ls / sizeof ls[0]; i++)
        if (ls[i])
            goro_listener_close(ls[i]);
    memset(e, 0, sizeof *e);
}

static int env_setup(blk_env *e)
{
    memset(e, 0, sizeof *e);
    int rc;
    if ((rc = goro_listen_tcp("127.0.0.1:0", 0, &e->lpair)) ||
        (rc = goro_listen_tcp("127.0.0.1:0", 0, &e->lidle)) ||
        (rc = make_pair(e->lpair, &e->rd_cl, &e->rd_sv)) ||
        (rc = make_full_pair(e->lpair, &e->wr_cl, &e->wr_sv)) ||
        (rc = goro_listen_tcp("127.0.0.1:0", 1, &e->lfull)) ||
        (rc = goro_listener_addr(e->lfull, e->full_addr, sizeof e->full_addr)))
        return rc;
    /* Fill lfull's accept queue: once it is full Linux drops new SYNs, so a
     * dial stays pending until its deadline or context ends it. */
    for (int i = 0; i < FILL_MAX; i++) {
        goro_conn *c;
        rc = goro_dial_tcp(e->full_addr, &c, goro_deadline_after(gt_slow(250 * MS)), NULL);
        if (rc == 0) {
            e->fill[e->nfill++] = c;
            continue;
        }
        if (rc != -ETIMEDOUT)
            return rc;
        e->dial_blocks = true;
        break;
    }
    return 0;
}

/* One blocking call of kind op on the environment's objects. */
static ssize_t do_op(blk_env *e, int op, int64_t deadline, goro_ctx *ctx)
{
    char buf[64];
    goro_conn *c = NULL;
    int rc;
    switch (op) {
    case OP_READ:
        return goro_conn_read(e->rd_sv, buf, sizeof buf, deadline, ctx);
    case OP_WRITE:
        return goro_conn_write(e->wr_cl, junk, sizeof junk, deadline, ctx);
    case OP_ACCEPT:
        rc = goro_accept(e->lidle, &c, deadline, ctx);
        break;
    default:
        rc = goro_dial_tcp(e->full_addr, &c, deadline, ctx);
        break;
    }
    if (rc == 0)
        goro_conn_close(c); /* unexpected: the caller reports rc */
    return rc;
}

static void print_env_note(bool dial_blocks)
{
    if (!dial_blocks)
        fprintf(stderr, "note: a dial to a listener with a full accept queue did not block "
                        "here; dial deadline/context checks skipped\n");
}

/* ========================================================================= */
/* 1. Echo server with 1,000 concurrent clients                              */
/* ========================================================================= */

typedef struct {
    int idx;
    int dial_rc, shut_rc, shut_bad_rc;
    ssize_t io_rc;
    size_t sent_len, recv_len;
    uint64_t sent_sum, recv_sum;
    long mismatches;
    bool eof;
} echo_cli;

typedef struct {
    int n;
    goro_listener *l;
    char addr[64];
    goro_chan *gate;
    goro_waitgroup cwg, hwg;
    atomic_long dialed, accepted, srv_in, srv_out;
    echo_cli *cli;
    int listen_rc, accept_end_rc, cwg_rc, hwg_rc;
    size_t io_all_blocked, io_end, g_base;
    bool g_back;
    int64_t ns;
} echo_state;

static echo_state *es;

static void echo_handler(void *arg)
{
    goro_conn *c = arg;
    char buf[4096];
    int64_t dl = gen_dl();
    for (;;) {
        ssize_t r = goro_conn_read(c, buf, sizeof buf, dl, NULL);
        if (r == 0)
            break;
        if (r < 0) {
            EXPECT(0, "echo handler: read returned %zd (%s)", r, en(r));
            break;
        }
        atomic_fetch_add(&es->srv_in, r);
        ssize_t w = goro_conn_write(c, buf, (size_t)r, dl, NULL);
        if (w != r) {
            EXPECT(0, "echo handler: write of %zd returned %zd (%s)", r, w, en(w));
            break;
        }
        atomic_fetch_add(&es->srv_out, w);
    }
    goro_conn_close(c);
    goro_waitgroup_done(&es->hwg);
}

static void echo_acceptor(void *arg)
{
    (void)arg;
    for (;;) {
        goro_conn *c;
        int rc = goro_accept(es->l, &c, GORO_NO_DEADLINE, NULL);
        if (rc) {
            es->accept_end_rc = rc;
            break;
        }
        atomic_fetch_add(&es->accepted, 1);
        goro_waitgroup_add(&es->hwg, 1);
        if ((rc = goro_go(echo_handler, c)) != 0) {
            EXPECT(0, "spawning a handler: %s", en(rc));
            goro_conn_close(c);
            goro_waitgroup_done(&es->hwg);
        }
    }
    goro_waitgroup_done(&es->hwg);
}

static void echo_client(void *arg)
{
    echo_cli *me = arg;
    gt_rng r;
    gt_rng_seed(&r, (uint64_t)me->idx + 1);
    size_t total = 2048 + gt_rng_below(&r, 4097); /* 2..6 KiB */
    uint8_t *out = malloc(total), *in = malloc(total + 1);
    goro_conn *c = NULL;
    int64_t dl = gen_dl();
    if (!out || !in) {
        EXPECT(0, "out of memory");
        goto done;
    }
    pat_fill(1000 + (uint64_t)me->idx, 0, out, total);
    if ((me->dial_rc = goro_dial_tcp(es->addr, &c, dl, NULL)) != 0) {
        c = NULL;
        goto done;
    }
    atomic_fetch_add(&es->dialed, 1);
    goro_chan_recv_until(es->gate, NULL, NULL, dl); /* closed: all go at once */

    /* several writes of random sizes */
    int nw = 3 + (int)gt_rng_below(&r, 6);
    size_t off = 0;
    for (int k = 0; off < total; k++) {
        size_t left = total - off;
        size_t n = k >= nw - 1 ? left : 1 + gt_rng_below(&r, (uint32_t)(2 * total / (size_t)nw));
        if (n > left)
            n = left;
        ssize_t w = goro_conn_write(c, out + off, n, dl, NULL);
        if (w != (ssize_t)n) {
            me->io_rc = w < 0 ? w : -EIO;
            goto done;
        }
        off += n;
        if (k & 1)
            goro_yield();
    }
    me->sent_len = off;
    me->sent_sum = fnv1a(out, off);
    /* An invalid direction is refused; GORO_SHUT_WR sends our FIN. */
    me->shut_bad_rc = goro_conn_shutdown(c, 7);
    me->shut_rc = goro_conn_shutdown(c, GORO_SHUT_WR);

    /* everything comes back, then EOF (the handler closes after our FIN) */
    size_t got = 0;
    while (got <= total) {
        ssize_t rr = goro_conn_read(c, in + got, total + 1 - got, dl, NULL);
        if (rr < 0) {
            me->io_rc = rr;
            break;
        }
        if (rr == 0) {
            me->eof = true;
            break;
        }
        got += (size_t)rr;
    }
    me->recv_len = got;
    me->recv_sum = fnv1a(in, got);
    for (size_t i = 0; i < got && i < total; i++)
        if (in[i] != out[i])
            me->mismatches++;
done:
    if (c)
        goro_conn_close(c);
    free(out);
    free(in);
    goro_waitgroup_done(&es->cwg);
}

static void echo_main(void *arg)
{
    echo_state *s = arg;
    es = s;
    int64_t t0 = goro_now();
    s->g_base = goro_num_goroutines();
    if ((s->listen_rc = goro_listen_tcp("127.0.0.1:0", 0, &s->l)) != 0)
        return;
    if (goro_listener_addr(s->l, s->addr, sizeof s->addr) != 0 ||
        goro_chan_make(&s->gate, 0, 0) != 0) {
        s->listen_rc = -EIO;
        goro_listener_close(s->l);
        return;
    }
    goro_waitgroup_add(&s->hwg, 1);
    goro_go(echo_acceptor, NULL);
    goro_waitgroup_add(&s->cwg, s->n);
    for (int i = 0; i < s->n; i++) {
        s->cli[i].idx = i;
        if (goro_go(echo_client, &s->cli[i]) != 0) {
            EXPECT(0, "spawning client %d", i);
            goro_waitgroup_done(&s->cwg);
        }
    }
    /* All connected and waiting at the gate, and (what goro_num_io_waiting
     * must count) every handler blocked in a read plus the acceptor. */
    gt_wait_atomic_ge(&s->dialed, s->n, gt_slow(30 * SEC));
    int64_t end = goro_now() + gt_slow(10 * SEC);
    while ((s->io_all_blocked = goro_num_io_waiting()) != (size_t)s->n + 1 && goro_now() < end)
        goro_sleep(MS);
    goro_chan_close(s->gate);
    s->cwg_rc = gt_wg_wait(&s->cwg, 60);
    goro_listener_close(s->l); /* the acceptor returns with -EBADF */
    s->hwg_rc = gt_wg_wait(&s->hwg, 60);
    s->g_back = gt_wait_num_goroutines(s->g_base, gt_slow(5 * SEC));
    s->io_end = goro_num_io_waiting();
    goro_chan_release(s->gate);
    s->ns = goro_now() - t0;
}

/* Raise the soft descriptor limit to the hard one; returns the soft limit. */
static long raise_nofile(void)
{
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) != 0)
        return 1024;
    if (r.rlim_cur < r.rlim_max) {
        rlim_t want = r.rlim_max == RLIM_INFINITY ? 65536 : r.rlim_max;
        struct rlimit n = {.rlim_cur = want, .rlim_max = r.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &n) == 0)
            r.rlim_cur = want;
    }
    return r.rlim_cur == RLIM_INFINITY ? 65536 : (long)r.rlim_cur;
}

static void run_echo(int procs)
{
    bad_reset();
    echo_state s;
    memset(&s, 0, sizeof s);
    s.n = 1000;
    long lim = raise_nofile();
    if (2L * s.n + 64 > lim) {
        s.n = (int)((lim - 64) / 2);
        fprintf(stderr, "note: echo clients scaled down from 1000 to %d (RLIMIT_NOFILE %ld)\n",
                s.n, lim);
    }
    s.cli = calloc((size_t)s.n, sizeof *s.cli);
    assert_non_null(s.cli);
    goro_options o = gt_opts(procs);
    assert_net_rc(gt_run("echo, 1000 clients", echo_main, &s, &o, 120), 0);
    assert_net_rc(s.listen_rc, 0);
    assert_no_bad("echo");
    assert_net_rc(s.cwg_rc, 0);
    assert_net_rc(s.hwg_rc, 0);
    size_t sent = 0, recvd = 0;
    for (int i = 0; i < s.n; i++) {
        echo_cli *c = &s.cli[i];
        if (c->dial_rc || c->io_rc || c->shut_rc)
            fail_msg("client %d: dial %s, shutdown %s, I/O %s", i, en(c->dial_rc),
                     en(c->shut_rc), en(c->io_rc));
        assert_true_msg(c->shut_bad_rc == -EINVAL, "client %d: shutdown(7) gave %s", i,
                        en(c->shut_bad_rc));
        assert_true_msg(c->eof, "client %d: no end of stream after its data", i);
        assert_true_msg(c->recv_len == c->sent_len,
                        "client %d sent %zu bytes, got %zu back", i, c->sent_len, c->recv_len);
        assert_true_msg(c->mismatches == 0 && c->recv_sum == c->sent_sum,
                        "client %d: %ld bytes differ (checksums %016llx / %016llx)", i,
                        c->mismatches, (unsigned long long)c->sent_sum,
                        (unsigned long long)c->recv_sum);
        sent += c->sent_len;
        recvd += c->recv_len;
    }
    long in = atomic_load(&s.srv_in), out = atomic_load(&s.srv_out);
    fprintf(stderr, "echo (procs %d): %d clients, %zu bytes each way, %.1f ms\n", procs, s.n,
            sent, s.ns / 1e6);
    assert_true_msg((size_t)in == sent && (size_t)out == sent && recvd == sent,
                    "bytes: clients sent %zu, server read %ld, server wrote %ld, clients "
                    "read %zu",
                    sent, in, out, recvd);
    assert_int_equal(atomic_load(&s.accepted), s.n);
    assert_net_rc(s.accept_end_rc, -EBADF);
    assert_true_msg(s.io_all_blocked == (size_t)s.n + 1,
                    "goro_num_io_waiting() = %zu with %d handlers blocked in reads and the "
                    "acceptor in accept (want %d)",
                    s.io_all_blocked, s.n, s.n + 1);
    assert_true_msg(s.g_back, "goroutines did not return to the baseline %zu", s.g_base);
    assert_int_equal(s.io_end, 0);
    free(s.cli);
}

static void test_echo_1000_procs1(void **st)
{
    (void)st;
    run_echo(1);
}

static void test_echo_1000_procs2(void **st)
{
    (void)st;
    run_echo(2);
}

/* ========================================================================= */
/* 2. Large transfer, both directions at once                                */
/* ========================================================================= */

typedef struct {
    goro_conn *w, *r; /* written on w, read from r (the other end) */
    uint64_t seed;
    size_t total, written, got, first_bad;
    ssize_t wrc, rrc;
    int shut_rc;
    bool bad, eof;
} big_dir;

typedef struct {
    big_dir d[2];
    goro_waitgroup wg;
    size_t total;
    int setup_rc, wg_rc;
    int64_t ns;
} big_state;

static big_state *bs;

static void big_writer(void *arg)
{
    big_dir *d = arg;
    gt_rng r;
    gt_rng_seed(&r, d->seed);
    const size_t cap = 1 << 20;
    uint8_t *buf = malloc(cap);
    int64_t dl = goro_deadline_after(gt_slow(60 * SEC));
    while (buf && d->written < d->total) {
        size_t n = 1 + gt_rng_below(&r, (uint32_t)cap); /* up to 1 MiB per call */
        if (n > d->total - d->written)
            n = d->total - d->written;
        pat_fill(d->seed, d->written, buf, n);
        ssize_t w = goro_conn_write(d->w, buf, n, dl, NULL);
        if (w != (ssize_t)n) {
            d->wrc = w < 0 ? w : -EIO;
            break;
        }
        d->written += n;
    }
    d->shut_rc = goro_conn_shutdown(d->w, SHUT_WR);
    free(buf);
    goro_waitgroup_done(&bs->wg);
}

static void big_reader(void *arg)
{
    big_dir *d = arg;
    gt_rng r;
    gt_rng_seed(&r, d->seed ^ 0x5555);
    const size_t cap = 256 << 10;
    uint8_t *buf = malloc(cap), *exp = malloc(cap);
    int64_t dl = goro_deadline_after(gt_slow(60 * SEC));
    while (buf && exp) {
        size_t want = 1 + gt_rng_below(&r, (uint32_t)cap);
        ssize_t n = goro_conn_read(d->r, buf, want, dl, NULL);
        if (n < 0) {
            d->rrc = n;
            break;
        }
        if (n == 0) {
            d->eof = true;
            break;
        }
        size_t un = (size_t)n;
        if (d->got + un > d->total) {
            if (!d->bad) {
                d->bad = true;
                d->first_bad = d->total;
            }
            d->got += un;
            continue;
        }
        pat_fill(d->seed, d->got, exp, un);
        if (!d->bad && memcmp(buf, exp, un) != 0) {
            size_t i = 0;
            while (buf[i] == exp[i])
                i++;
            d->bad = true;
            d->first_bad = d->got + i;
        }
        d->got += un;
    }
    free(buf);
    free(exp);
    goro_waitgroup_done(&bs->wg);
}

static void big_main(void *arg)
{
    big_state *s = arg;
    bs = s;
    goro_listener *l;
    goro_conn *a, *b;
    if ((s->setup_rc = goro_listen_tcp("127.0.0.1:0", 0, &l)) != 0)
        return;
    if ((s->setup_rc = make_pair(l, &a, &b)) != 0) {
        goro_listener_close(l);
        return;
    }
    s->d[0] = (big_dir){.w = a, .r = b, .seed = 11, .total = s->total};
    s->d[1] = (big_dir){.w = b, .r = a, .seed = 22, .total = s->total};
    int64_t t0 = goro_now();
    goro_waitgroup_add(&s->wg, 4);
    goro_go(big_writer, &s->d[0]);
    goro_go(big_writer, &s->d[1]);
    goro_go(big_reader, &s->d[0]);
    goro_go(big_reader, &s->d[1]);
    s->wg_rc = gt_wg_wait(&s->wg, 90);
    s->ns = goro_now() - t0;
    goro_conn_close(a);
    goro_conn_close(b);
    goro_listener_close(l);
}

static void test_large_transfer(void **st)
{
    (void)st;
    bad_reset();
    big_state s;
    memset(&s, 0, sizeof s);
    s.total = gt_scale("bytes each way of the large transfer", 16 << 20, 16 << 20, 8 << 20);
    goro_options o = gt_opts(2);
    assert_net_rc(gt_run("large transfer", big_main, &s, &o, 120), 0);
    assert_net_rc(s.setup_rc, 0);
    assert_no_bad("large transfer");
    assert_net_rc(s.wg_rc, 0);
    for (int i = 0; i < 2; i++) {
        big_dir *d = &s.d[i];
        assert_net_rc(d->wrc, 0);
        assert_net_rc(d->rrc, 0);
        assert_net_rc(d->shut_rc, 0);
        assert_true_msg(d->written == d->total, "direction %d: wrote %zu of %zu", i, d->written,
                        d->total);
        assert_true_msg(!d->bad, "direction %d: first wrong byte at offset %zu", i,
                        d->first_bad);
        assert_true_msg(d->got == d->total, "direction %d: read %zu of %zu bytes", i, d->got,
                        d->total);
        assert_true_msg(d->eof, "direction %d: no end of stream after shutdown(SHUT_WR)", i);
    }
    fprintf(stderr, "large transfer: %zu MiB each way in %.1f ms\n", s.total >> 20, s.ns / 1e6);
}

/* ========================================================================= */
/* 3. Deadlines                                                               */
/* ========================================================================= */

#define DL_TRIES 5

typedef struct {
    int setup_rc;
    bool dial_blocks;
    ssize_t rc[OP_COUNT][DL_TRIES];
    int64_t late[OP_COUNT][DL_TRIES];
    ssize_t past_rc[OP_COUNT], min_rc[OP_COUNT];
    int64_t past_ns[OP_COUNT];
    int refused_rc;
    int64_t refused_ns;
    ssize_t ready_read_rc;
    int ready_accept_rc;
    char ready_buf[8];
} dl_state;

static void dl_main(void *arg)
{
    dl_state *s = arg;
    blk_env e;
    if ((s->setup_rc = env_setup(&e)) != 0) {
        env_teardown(&e);
        return;
    }
    s->dial_blocks = e.dial_blocks;
    int nops = e.dial_blocks ? OP_COUNT : OP_DIAL;
    for (int op = 0; op < nops; op++)
        for (int t = 0; t < DL_TRIES; t++) {
            int64_t d = goro_now() + 50 * MS;
            s->rc[op][t] = do_op(&e, op, d, NULL);
            s->late[op][t] = goro_now() - d;
        }

    /* A deadline in the past: no blocking at all. */
    for (int op = 0; op < nops; op++) {
        int64_t t0 = goro_now();
        s->past_rc[op] = do_op(&e, op, t0 - 1, NULL);
        s->min_rc[op] = do_op(&e, op, INT64_MIN, NULL);
        s->past_ns[op] = goro_now() - t0;
    }

    /* ... but a call that would not block still proceeds. */
    int64_t end = goro_now() + gt_slow(2 * SEC);
    EXPECT_RC(goro_conn_write(e.rd_cl, "ready", 5, goro_now() - 1, NULL), 5);
    do {
        s->ready_read_rc = goro_conn_read(e.rd_sv, s->ready_buf, sizeof s->ready_buf,
                                          goro_now() - 1, NULL);
    } while (s->ready_read_rc == -ETIMEDOUT && goro_now() < end && goro_sleep(MS) == 0);
    goro_conn *c = NULL, *v = NULL;
    char la[64];
    goro_listener_addr(e.lidle, la, sizeof la);
    EXPECT_RC(goro_dial_tcp(la, &c, gen_dl(), NULL), 0);
    do {
        s->ready_accept_rc = goro_accept(e.lidle, &v, goro_now() - 1, NULL);
    } while (s->ready_accept_rc == -ETIMEDOUT && goro_now() < end && goro_sleep(MS) == 0);
    if (s->ready_accept_rc == 0)
        goro_conn_close(v);
    if (c)
        goro_conn_close(c);

    /* A closed local port: refused at once. */
    goro_listener *l;
    char addr[64];
    if (goro_listen_tcp("127.0.0.1:0", 0, &l) == 0) {
        goro_listener_addr(l, addr, sizeof addr);
        goro_listener_close(l);
        int64_t t0 = goro_now();
        s->refused_rc = goro_dial_tcp(addr, &c, goro_now() + gt_slow(5 * SEC), NULL);
        s->refused_ns = goro_now() - t0;
        if (s->refused_rc == 0)
            goro_conn_close(c);
    } else {
        s->refused_rc = -EIO;
    }
    env_teardown(&e);
}

static void check_late_series(const char *what, const ssize_t *rc, ssize_t want,
                              const int64_t *late, int n)
{
    for (int i = 0; i < n; i++) {
        if (rc[i] != want)
            fail_msg("%s try %d returned %zd (%s), expected %zd (%s)", what, i, rc[i],
                     en(rc[i]), want, en(want));
        assert_true_msg(late[i] >= 0, "%s try %d returned %.3f ms before its deadline", what,
                        i, -late[i] / 1e6);
    }
    int64_t med = gt_median_i64(late, (size_t)n);
    fprintf(stderr, "%s: median lateness %.3f ms\n", what, med / 1e6);
    assert_true_msg(med < gt_late_tolerance(), "%s: median lateness %.3f ms exceeds %.0f ms",
                    what, med / 1e6, gt_late_tolerance() / 1e6);
}

static void test_deadlines(void **st)
{
    (void)st;
    bad_reset();
    dl_state s;
    memset(&s, 0, sizeof s);
    goro_options o = gt_opts(2);
    assert_net_rc(gt_run("deadlines", dl_main, &s, &o, 60), 0);
    assert_net_rc(s.setup_rc, 0);
    assert_no_bad("deadlines");
    print_env_note(s.dial_blocks);
    int nops = s.dial_blocks ? OP_COUNT : OP_DIAL;
    char what[64];
    for (int op = 0; op < nops; op++) {
        snprintf(what, sizeof what, "%s deadline", op_name[op]);
        check_late_series(what, s.rc[op], -ETIMEDOUT, s.late[op], DL_TRIES);
        if (s.past_rc[op] != -ETIMEDOUT || s.min_rc[op] != -ETIMEDOUT)
            fail_msg("%s with a past deadline: %s / INT64_MIN: %s (want ETIMEDOUT)",
                     op_name[op], en(s.past_rc[op]), en(s.min_rc[op]));
        assert_true_msg(s.past_ns[op] < gt_slow(100 * MS),
                        "%s with a past deadline took %.3f ms (must not block)", op_name[op],
                        s.past_ns[op] / 1e6);
    }
    assert_net_rc(s.ready_read_rc, 5);
    assert_memory_equal(s.ready_buf, "ready", 5);
    assert_net_rc(s.ready_accept_rc, 0);
    assert_net_rc(s.refused_rc, -ECONNREFUSED);
    fprintf(stderr, "dial to a closed port: refused after %.3f ms\n", s.refused_ns / 1e6);
    assert_true_msg(s.refused_ns < gt_slow(250 * MS),
                    "dial to a closed port took %.1f ms to fail", s.refused_ns / 1e6);
}

/* ========================================================================= */
/* 4. Contexts                                                                */
/* ========================================================================= */

#define CX_TRIES 5

typedef struct {
    int setup_rc;
    bool dial_blocks;
    ssize_t cancel_rc[OP_COUNT][CX_TRIES];
    int64_t cancel_delay[OP_COUNT][CX_TRIES];
    ssize_t tmo_rc[OP_COUNT][CX_TRIES];
    int64_t tmo_late[OP_COUNT][CX_TRIES];
    ssize_t pre_rc[OP_COUNT], expired_rc[OP_COUNT];
    int64_t pre_ns[OP_COUNT], expired_ns[OP_COUNT];
    ssize_t both_rc[2];
    int64_t both_late;
    /* the canceller */
    goro_ctx *cctx;
    int64_t t_cancel;
    goro_waitgroup wg;
} cx_state;

static void cx_canceller(void *arg)
{
    cx_state *s = arg;
    /* cancel a call that is blocked, not one that has yet to start */
    int64_t end = goro_now() + gt_slow(5 * SEC);
    while (goro_num_io_waiting() < 1 && goro_now() < end)
        goro_sleep(MS);
    goro_sleep(30 * MS);
    s->t_cancel = goro_now();
    goro_ctx_cancel(s->cctx);
    goro_waitgroup_done(&s->wg);
}

static void cx_main(void *arg)
{
    cx_state *s = arg;
    blk_env e;
    if ((s->setup_rc = env_setup(&e)) != 0) {
        env_teardown(&e);
        return;
    }
    s->dial_blocks = e.dial_blocks;
    int nops = e.dial_blocks ? OP_COUNT : OP_DIAL;
    for (int op = 0; op < nops; op++) {
        /* cancelled from another goroutine while blocked */
        for (int t = 0; t < CX_TRIES; t++) {
            if (goro_ctx_with_cancel(NULL, &s->cctx) != 0) {
                s->setup_rc = -ENOMEM;
                goto out;
            }
            goro_waitgroup_add(&s->wg, 1);
            goro_go(cx_canceller, s);
            s->cancel_rc[op][t] = do_op(&e, op, GORO_NO_DEADLINE, s->cctx);
            int64_t t_ret = goro_now();
            gt_wg_wait(&s->wg, 10);
            s->cancel_delay[op][t] = t_ret - s->t_cancel;
            goro_ctx_release(s->cctx);
        }
        /* the context's deadline */
        for (int t = 0; t < CX_TRIES; t++) {
            goro_ctx *c;
            if (goro_ctx_with_timeout(NULL, 40 * MS, &c) != 0) {
                s->setup_rc = -ENOMEM;
                goto out;
            }
            s->tmo_rc[op][t] = do_op(&e, op, GORO_NO_DEADLINE, c);
            s->tmo_late[op][t] = goro_now() - goro_ctx_deadline(c);
            goro_ctx_release(c);
        }
        /* already cancelled, already expired: at once */
        goro_ctx *c;
        if (goro_ctx_with_cancel(NULL, &c) == 0) {
            goro_ctx_cancel(c);
            int64_t t0 = goro_now();
            s->pre_rc[op] = do_op(&e, op, GORO_NO_DEADLINE, c);
            s->pre_ns[op] = goro_now() - t0;
            goro_ctx_release(c);
        }
        if (goro_ctx_with_deadline(NULL, goro_now() - MS, &c) == 0) {
            int64_t t0 = goro_now();
            s->expired_rc[op] = do_op(&e, op, GORO_NO_DEADLINE, c);
            s->expired_ns[op] = goro_now() - t0;
            goro_ctx_release(c);
        }
    }
    /* Deadline and context together: whichever comes first. */
    goro_ctx *c;
    if (goro_ctx_with_timeout(NULL, 5 * SEC, &c) == 0) {
        int64_t d = goro_now() + 30 * MS;
        s->both_rc[0] = do_op(&e, OP_READ, d, c);
        s->both_late = goro_now() - d;
        goro_ctx_release(c);
    }
    if (goro_ctx_with_cancel(NULL, &s->cctx) == 0) {
        goro_waitgroup_add(&s->wg, 1);
        goro_go(cx_canceller, s);
        s->both_rc[1] = do_op(&e, OP_READ, goro_deadline_after(5 * SEC), s->cctx);
        gt_wg_wait(&s->wg, 10);
        goro_ctx_release(s->cctx);
    }
out:
    env_teardown(&e);
}

static void test_contexts(void **st)
{
    (void)st;
    bad_reset();
    cx_state s;
    memset(&s, 0, sizeof s);
    goro_options o = gt_opts(2);
    assert_net_rc(gt_run("contexts", cx_main, &s, &o, 60), 0);
    assert_net_rc(s.setup_rc, 0);
    assert_no_bad("contexts");
    print_env_note(s.dial_blocks);
    int nops = s.dial_blocks ? OP_COUNT : OP_DIAL;
    char what[80];
    for (int op = 0; op < nops; op++) {
        /* cancel: -ECANCELED, after the cancel and soon after it */
        snprintf(what, sizeof what, "%s cancelled by its context", op_name[op]);
        check_late_series(what, s.cancel_rc[op], -ECANCELED, s.cancel_delay[op], CX_TRIES);
        snprintf(what, sizeof what, "%s with an expiring context", op_name[op]);
        check_late_series(what, s.tmo_rc[op], -ETIMEDOUT, s.tmo_late[op], CX_TRIES);
        if (s.pre_rc[op] != -ECANCELED)
            fail_msg("%s with a cancelled context: %zd (%s), want ECANCELED", op_name[op],
                     s.pre_rc[op], en(s.pre_rc[op]));
        if (s.expired_rc[op] != -ETIMEDOUT)
            fail_msg("%s with an expired context: %zd (%s), want ETIMEDOUT", op_name[op],
                     s.expired_rc[op], en(s.expired_rc[op]));
        assert_true_msg(s.pre_ns[op] < gt_slow(100 * MS) && s.expired_ns[op] < gt_slow(100 * MS),
                        "%s with a finished context blocked (%.3f / %.3f ms)", op_name[op],
                        s.pre_ns[op] / 1e6, s.expired_ns[op] / 1e6);
    }
    assert_net_rc(s.both_rc[0], -ETIMEDOUT);
    assert_true_msg(s.both_late >= 0 && s.both_late < gt_slow(200 * MS),
                    "read with a deadline before its context's: returned %.3f ms after the "
                    "deadline",
                    s.both_late / 1e6);
    assert_net_rc(s.both_rc[1], -ECANCELED);
}

/* ========================================================================= */
/* 5. Close while blocked, double close, use after close                      */
/* ========================================================================= */

#define CL_TRIES 5
enum { CL_READ, CL_ACCEPT, CL_WRITE, CL_COUNT };
static const char *const cl_name[CL_COUNT] = {"read", "accept", "write"};

typedef struct {
    int setup_rc;
    ssize_t rc[CL_COUNT][CL_TRIES];
    int close_rc[CL_COUNT][CL_TRIES];
    int64_t delay[CL_COUNT][CL_TRIES];
    /* the closer */
    goro_conn *cconn;
    goro_listener *clis;
    int64_t t_close;
    int crc;
    goro_waitgroup wg;
} cl_state;

static void cl_closer(void *arg)
{
    cl_state *s = arg;
    /* Close only once the operation is blocked (and so holds the object):
     * closing an object nobody uses frees it. No timeout: a hang is
     * reported by gt_run's watchdog. */
    while (goro_num_io_waiting() < 1)
        goro_sleep(MS);
    goro_sleep(30 * MS);
    s->t_close = goro_now();
    s->crc = s->cconn ? goro_conn_close(s->cconn) : goro_listener_close(s->clis);
    goro_waitgroup_done(&s->wg);
}

static void cl_main(void *arg)
{
    cl_state *s = arg;
    goro_listener *lp;
    if ((s->setup_rc = goro_listen_tcp("127.0.0.1:0", 0, &lp)) != 0)
        return;
    char buf[64];
    for (int k = 0; k < CL_COUNT; k++)
        for (int t = 0; t < CL_TRIES; t++) {
            goro_conn *a = NULL, *b = NULL, *got = NULL;
            goro_listener *l = NULL;
            s->cconn = NULL;
            s->clis = NULL;
            int rc = k == CL_READ    ? make_pair(lp, &a, &b)
                     : k == CL_WRITE ? make_full_pair(lp, &a, &b)
                                     : goro_listen_tcp("127.0.0.1:0", 0, &l);
            if (rc) {
                s->setup_rc = rc;
                goto out;
            }
            if (k == CL_READ)
                s->cconn = b; /* closed under the reader */
            else if (k == CL_WRITE)
                s->cconn = a; /* closed under the writer */
            else
                s->clis = l;
            goro_waitgroup_add(&s->wg, 1);
            goro_go(cl_closer, s);
            int64_t dl = gen_dl();
            if (k == CL_READ)
                s->rc[k][t] = goro_conn_read(b, buf, sizeof buf, dl, NULL);
            else if (k == CL_WRITE)
                s->rc[k][t] = goro_conn_write(a, junk, sizeof junk, dl, NULL);
            else
                s->rc[k][t] = goro_accept(l, &got, dl, NULL);
            int64_t t_ret = goro_now();
            gt_wg_wait(&s->wg, 10);
            s->delay[k][t] = t_ret - s->t_close;
            s->close_rc[k][t] = s->crc;
            if (k == CL_READ)
                goro_conn_close(a);
            else if (k == CL_WRITE)
                goro_conn_close(b);
            else if (got)
                goro_conn_close(got);
        }
out:
    goro_listener_close(lp);
}

static void test_close_while_blocked(void **st)
{
    (void)st;
    bad_reset();
    cl_state s;
    memset(&s, 0, sizeof s);
    goro_options o = gt_opts(2);
    assert_net_rc(gt_run("close while blocked", cl_main, &s, &o, 60), 0);
    assert_net_rc(s.setup_rc, 0);
    assert_no_bad("close while blocked");
    char what[64];
    for (int k = 0; k < CL_COUNT; k++) {
        for (int t = 0; t < CL_TRIES; t++)
            assert_net_rc(s.close_rc[k][t], 0);
        snprintf(what, sizeof what, "blocked %s after close", cl_name[k]);
        check_late_series(what, s.rc[k], -EBADF, s.delay[k], CL_TRIES);
    }
}

/* procs = 1 and no yield between the calls: the goroutines blocked on the
 * objects cannot run (and return) before main is done with them, so the
 * objects are still alive (goro.h: freed once the last blocked call has
 * returned) while main closes them a second time and uses them. */
typedef struct {
    int setup_rc;
    goro_conn *c;
    goro_listener *l;
    goro_waitgroup wg;
    atomic_int returned;
    ssize_t r_rc, w_rc;
    int a_rc;
    size_t io_before, io_after;
    int returned_early;
    int close1, close2, lclose1, lclose2, shut_after, accept_after;
    ssize_t read_after, write_after;
    int nulls[2];
} dc_state;

static void dc_reader(void *arg)
{
    dc_state *s = arg;
    char b[16];
    s->r_rc = goro_conn_read(s->c, b, sizeof b, gen_dl(), NULL);
    atomic_fetch_add(&s->returned, 1);
    goro_waitgroup_done(&s->wg);
}

static void dc_writer(void *arg)
{
    dc_state *s = arg;
    s->w_rc = goro_conn_write(s->c, junk, sizeof junk, gen_dl(), NULL);
    atomic_fetch_add(&s->returned, 1);
    goro_waitgroup_done(&s->wg);
}

static void dc_acceptor(void *arg)
{
    dc_state *s = arg;
    goro_conn *c = NULL;
    s->a_rc = goro_accept(s->l, &c, gen_dl(), NULL);
    if (s->a_rc == 0)
        goro_conn_close(c);
    atomic_fetch_add(&s->returned, 1);
    goro_waitgroup_done(&s->wg);
}

static void dc_main(void *arg)
{
    dc_state *s = arg;
    goro_listener *lp;
    goro_conn *peer;
    if ((s->setup_rc = goro_listen_tcp("127.0.0.1:0", 0, &lp)) != 0)
        return;
    if ((s->setup_rc = make_full_pair(lp, &s->c, &peer)) != 0 ||
        (s->setup_rc = goro_listen_tcp("127.0.0.1:0", 0, &s->l)) != 0) {
        goro_listener_close(lp);
        return;
    }
    goro_waitgroup_add(&s->wg, 3);
    goro_go(dc_reader, s);
    goro_go(dc_writer, s);
    goro_go(dc_acceptor, s);
    /* all three blocked (no timeout: they must hold the objects before
     * the closes below; a hang is reported by gt_run's watchdog) */
    while ((s->io_before = goro_num_io_waiting()) < 3)
        goro_sleep(MS);

    char b[4];
    s->close1 = goro_conn_close(s->c);
    s->close2 = goro_conn_close(s->c);
    s->read_after = goro_conn_read(s->c, b, sizeof b, goro_now() - 1, NULL);
    s->write_after = goro_conn_write(s->c, "x", 1, goro_now() - 1, NULL);
    s->shut_after = goro_conn_shutdown(s->c, SHUT_RDWR);
    s->lclose1 = goro_listener_close(s->l);
    s->lclose2 = goro_listener_close(s->l);
    goro_conn *x = NULL;
    s->accept_after = goro_accept(s->l, &x, goro_now() - 1, NULL);
    s->returned_early = atomic_load(&s->returned);
    s->nulls[0] = goro_conn_close(NULL);
    s->nulls[1] = goro_listener_close(NULL);

    gt_wg_wait(&s->wg, 10);
    s->io_after = goro_num_io_waiting();
    goro_conn_close(peer);
    goro_listener_close(lp);
}

static void test_double_close_and_use_after_close(void **st)
{
    (void)st;
    bad_reset();
    dc_state s;
    memset(&s, 0, sizeof s);
    goro_options o = gt_opts(1);
    assert_net_rc(gt_run("double close", dc_main, &s, &o, 60), 0);
    assert_net_rc(s.setup_rc, 0);
    assert_no_bad("double close");
    assert_int_equal(s.io_before, 3);
    assert_int_equal(s.returned_early, 0);
    assert_net_rc(s.close1, 0);
    assert_true_msg(s.close2 < 0, "second goro_conn_close returned %d", s.close2);
    assert_net_rc(s.read_after, -EBADF);
    assert_net_rc(s.write_after, -EBADF);
    assert_net_rc(s.shut_after, -EBADF);
    assert_net_rc(s.lclose1, 0);
    assert_true_msg(s.lclose2 < 0, "second goro_listener_close returned %d", s.lclose2);
    assert_net_rc(s.accept_after, -EBADF);
    assert_net_rc(s.r_rc, -EBADF);
    assert_net_rc(s.w_rc, -EBADF);
    assert_net_rc(s.a_rc, -EBADF);
    assert_net_rc(s.nulls[0], -EINVAL);
    assert_net_rc(s.nulls[1], -EINVAL);
    assert_int_equal(s.io_after, 0);
}

/* ========================================================================= */
/* 6. Peer behaviour (in a child: SIGPIPE at its default action)              */
/* ========================================================================= */

typedef struct {
    char upath[160];
    int setup_rc;
    int epipe_writes[2];
    ssize_t epipe_rc[2][2];
} peer_state;

static void peer_one(peer_state *s, goro_listener *l, int k)
{
    const char *kind = k == 0 ? "tcp" : "unix";
    goro_conn *a, *b;
    char buf[64];
    int64_t dl = gen_dl();

    /* EOF after the peer closes, and again */
    if (make_pair(l, &a, &b) != 0)
        goto fail;
    EXPECT_RC(goro_conn_close(b), 0);
    ssize_t r = goro_conn_read(a, buf, sizeof buf, dl, NULL);
    EXPECT(r == 0, "%s: read after the peer closed: %zd (%s), want 0", kind, r, en(r));
    r = goro_conn_read(a, buf, sizeof buf, dl, NULL);
    EXPECT(r == 0, "%s: second read at EOF: %zd (%s), want 0", kind, r, en(r));
    goro_conn_close(a);

    /* buffered data first, then EOF */
    if (make_pair(l, &a, &b) != 0)
        goto fail;
    EXPECT_RC(goro_conn_write(b, "hello, world", 12, dl, NULL), 12);
    goro_conn_close(b);
    r = read_full(a, buf, 12, dl);
    EXPECT(r == 12 && memcmp(buf, "hello, world", 12) == 0, "%s: data before EOF: %zd", kind,
           r);
    EXPECT_RC(goro_conn_read(a, buf, sizeof buf, dl, NULL), 0);
    goro_conn_close(a);

    /* writing to a closed peer: an error (never SIGPIPE) */
    if (make_pair(l, &a, &b) != 0)
        goto fail;
    goro_conn_close(b);
    ssize_t w = 0;
    int ok = 0;
    for (; ok < 200; ok++) {
        w = goro_conn_write(a, junk, 4096, dl, NULL);
        if (w < 0)
            break;
        goro_sleep(MS);
    }
    s->epipe_writes[k] = ok;
    s->epipe_rc[k][0] = w;
    s->epipe_rc[k][1] = goro_conn_write(a, junk, 4096, dl, NULL);
    for (int i = 0; i < 2; i++)
        EXPECT(s->epipe_rc[k][i] == -EPIPE || s->epipe_rc[k][i] == -ECONNRESET,
               "%s: write %d after the peer closed: %zd (%s), want EPIPE or ECONNRESET", kind,
               i, s->epipe_rc[k][i], en(s->epipe_rc[k][i]));
    goro_conn_close(a);

    /* half close: the peer sees EOF, the other direction still works */
    if (make_pair(l, &a, &b) != 0)
        goto fail;
    EXPECT_RC(goro_conn_write(a, "last", 4, dl, NULL), 4);
    EXPECT_RC(goro_conn_shutdown(a, SHUT_WR), 0);
    r = read_full(b, buf, sizeof buf, dl); /* "last", then EOF */
    EXPECT(r == 4 && memcmp(buf, "last", 4) == 0, "%s: read before half-close EOF: %zd (%s)",
           kind, r, en(r));
    EXPECT_RC(goro_conn_read(b, buf, sizeof buf, dl, NULL), 0);
    EXPECT_RC(goro_conn_write(b, "reply", 5, dl, NULL), 5);
    r = read_full(a, buf, 5, dl);
    EXPECT(r == 5 && memcmp(buf, "reply", 5) == 0, "%s: reply after SHUT_WR: %zd (%s)", kind, r,
           en(r));
    EXPECT_RC(goro_conn_write(a, "x", 1, dl, NULL), -EPIPE);
    EXPECT_RC(goro_conn_write(b, "more", 4, dl, NULL), 4);
    EXPECT_RC(goro_conn_shutdown(b, SHUT_WR), 0);
    r = read_full(a, buf, sizeof buf, dl);
    EXPECT(r == 4 && memcmp(buf, "more", 4) == 0, "%s: data then EOF: %zd (%s)", kind, r, en(r));
    goro_conn_close(a);
    goro_conn_close(b);

    /* the peer closes with unread data: connection reset */
    if (make_pair(l, &a, &b) != 0)
        goto fail;
    EXPECT_RC(goro_conn_write(a, "unread", 6, dl, NULL), 6);
    goro_sleep(20 * MS);
    goro_conn_close(b);
    r = goro_conn_read(a, buf, sizeof buf, dl, NULL);
    EXPECT(r == -ECONNRESET, "%s: read after the peer closed with unread data: %zd (%s), want "
                             "ECONNRESET", kind, r, en(r));
    w = goro_conn_write(a, "x", 1, dl, NULL);
    EXPECT(w == -EPIPE || w == -ECONNRESET, "%s: write after a reset: %zd (%s)", kind, w, en(w));
    goro_conn_close(a);
    return;
fail:
    EXPECT(0, "%s: could not make a pair", kind);
}

static void peer_main(void *arg)
{
    peer_state *s = arg;
    goro_listener *lt, *lu;
    if ((s->setup_rc = goro_listen_tcp("127.0.0.1:0", 0, &lt)) != 0)
        return;
    if ((s->setup_rc = goro_listen_unix(s->upath, 0, &lu)) != 0) {
        goro_listener_close(lt);
        return;
    }
    peer_one(s, lt, 0);
    peer_one(s, lu, 1);
    goro_listener_close(lt);
    goro_listener_close(lu);
}

static int peer_child(void)
{
    signal(SIGPIPE, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    bad_reset();
    peer_state s;
    memset(&s, 0, sizeof s);
    char dir[128];
    if (make_tmpdir(dir, sizeof dir) != 0) {
        printf("FAIL: mkdtemp\n");
        return 1;
    }
    snprintf(s.upath, sizeof s.upath, "%s/peer.sock", dir);
    goro_options o = gt_opts(2);
    int rc = goro_run(peer_main, &s, &o);
    rmdir(dir);
    for (int k = 0; k < 2; k++)
        printf("%s: %d writes accepted after the peer closed, then %s, then %s\n",
               k ? "unix" : "tcp", s.epipe_writes[k], en(s.epipe_rc[k][0]),
               en(s.epipe_rc[k][1]));
    if (rc != 0 || s.setup_rc != 0) {
        printf("FAIL: goro_run %s, setup %s\n", en(rc), en(s.setup_rc));
        return 1;
    }
    if (atomic_load(&gbad.n)) {
        printf("FAIL: %ld checks; first: %s\n", atomic_load(&gbad.n), gbad.msg);
        return 1;
    }
    printf("PEER OK\n");
    fflush(stdout);
    return 0;
}

static void test_peer_behaviour(void **st)
{
    (void)st;
    gt_child c;
    assert_net_rc(gt_child_start(&c, "peer", NULL), 0);
    gt_child_finish(&c, gt_slow(60 * SEC));
    char sb[64];
    bool ok = !c.timed_out && WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0 &&
              strstr(c.out, "PEER OK");
    if (!ok) {
        gt_child_print(&c, "peer behaviour");
        fail_msg("peer scenario: %s%s", c.timed_out ? "timed out, " : "",
                 gt_status_str(c.status, sb, sizeof sb));
    }
    fprintf(stderr, "%s", c.out);
    gt_child_free(&c);
}

/* ========================================================================= */
/* 7. Descriptors, goroutines and goro_num_io_waiting                         */
/* ========================================================================= */

#define LK_TCP 200
#define LK_UNIX 50
#define LK_READERS 10

typedef struct {
    char dir[128], upath[192];
    int fds_before, fds_after;
    size_t g_base, io_base, io_blocked, io_drained, io_end;
    bool g_back;
    int setup_rc, wg_rc;
    goro_listener *lt, *lu;
    char taddr[64];
    goro_waitgroup wg;
    atomic_long client_ok, server_ok, reader_ok;
    int fail_rc[4];
    goro_conn *rc_[LK_READERS], *rs_[LK_READERS];
} lk_state;

static lk_state *lks;

static void lk_handler(void *arg)
{
    goro_conn *c = arg;
    char b[8];
    int64_t dl = gen_dl();
    if (goro_conn_read(c, b, 1, dl, NULL) == 1 && goro_conn_write(c, b, 1, dl, NULL) == 1 &&
        goro_conn_read(c, b, sizeof b, dl, NULL) == 0)
        atomic_fetch_add(&lks->server_ok, 1);
    goro_conn_close(c);
    goro_waitgroup_done(&lks->wg);
}

static void lk_acceptor(void *arg)
{
    goro_listener *l = arg;
    int n = l == lks->lt ? LK_TCP : LK_UNIX;
    for (int i = 0; i < n; i++) {
        goro_conn *c;
        int rc = goro_accept(l, &c, gen_dl(), NULL);
        if (rc) {
            EXPECT(0, "accept %d: %s", i, en(rc));
            break;
        }
        goro_waitgroup_add(&lks->wg, 1);
        goro_go(lk_handler, c);
    }
    goro_waitgroup_done(&lks->wg);
}

static void lk_client(void *arg)
{
    bool unix_ = arg != NULL;
    goro_conn *c;
    int64_t dl = gen_dl();
    int rc = unix_ ? goro_dial_unix(lks->upath, &c, dl, NULL)
                   : goro_dial_tcp(lks->taddr, &c, dl, NULL);
    if (rc) {
        EXPECT(0, "dial: %s", en(rc));
        goro_waitgroup_done(&lks->wg);
        return;
    }
    char b = 'q';
    if (goro_conn_write(c, &b, 1, dl, NULL) == 1 && goro_conn_read(c, &b, 1, dl, NULL) == 1 &&
        b == 'q')
        atomic_fetch_add(&lks->client_ok, 1);
    goro_conn_close(c);
    goro_waitgroup_done(&lks->wg);
}

static void lk_reader(void *arg)
{
    goro_conn *c = arg;
    char b[4];
    ssize_t r = goro_conn_read(c, b, sizeof b, gen_dl(), NULL);
    if (r == 1)
        atomic_fetch_add(&lks->reader_ok, 1);
    else if (r != -EBADF)
        EXPECT(0, "blocked reader: %zd (%s)", r, en(r));
    goro_waitgroup_done(&lks->wg);
}

static void lk_main(void *arg)
{
    lk_state *s = arg;
    lks = s;
    s->g_base = goro_num_goroutines();
    s->io_base = goro_num_io_waiting();
    s->fds_before = count_fds();

    /* a round of 250 connections (200 TCP, 50 UNIX), all closed */
    if ((s->setup_rc = goro_listen_tcp("127.0.0.1:0", 0, &s->lt)) != 0)
        return;
    if ((s->setup_rc = goro_listen_unix(s->upath, 0, &s->lu)) != 0) {
        goro_listener_close(s->lt);
        return;
    }
    goro_listener_addr(s->lt, s->taddr, sizeof s->taddr);
    goro_waitgroup_add(&s->wg, 2 + LK_TCP + LK_UNIX);
    goro_go(lk_acceptor, s->lt);
    goro_go(lk_acceptor, s->lu);
    for (int i = 0; i < LK_TCP + LK_UNIX; i++)
        goro_go(lk_client, i < LK_TCP ? NULL : (void *)1);
    s->wg_rc = gt_wg_wait(&s->wg, 60);

    /* failures must not leak either */
    goro_conn *c;
    goro_listener *l;
    for (int i = 0; i < 5; i++) {
        if ((s->fail_rc[0] = goro_listen_tcp(s->taddr, 0, &l)) == 0)
            goro_listener_close(l);
        if ((s->fail_rc[1] = goro_listen_unix(s->upath, 0, &l)) == 0)
            goro_listener_close(l);
        if ((s->fail_rc[2] = goro_accept(s->lt, &c, goro_now() + MS, NULL)) == 0)
            goro_conn_close(c);
    }
    goro_listener_close(s->lt);
    for (int i = 0; i < 20; i++)
        if ((s->fail_rc[3] = goro_dial_tcp(s->taddr, &c, gen_dl(), NULL)) == 0)
            goro_conn_close(c);

    /* goro_num_io_waiting: LK_READERS blocked readers, then woken by data;
     * then again, woken by close */
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < LK_READERS; i++)
            if ((s->setup_rc = make_pair(s->lu, &s->rc_[i], &s->rs_[i])) != 0)
                goto out;
        goro_waitgroup_add(&s->wg, LK_READERS);
        for (int i = 0; i < LK_READERS; i++)
            goro_go(lk_reader, s->rs_[i]);
        int64_t end = goro_now() + gt_slow(5 * SEC);
        size_t want = s->io_base + LK_READERS;
        size_t got;
        /* round 1 closes under the readers: they must be blocked first (no
         * timeout there; a hang is reported by gt_run's watchdog) */
        while ((got = goro_num_io_waiting()) != want && (round == 1 || goro_now() < end))
            goro_sleep(MS);
        if (round == 0)
            s->io_blocked = got;
        for (int i = 0; i < LK_READERS; i++) {
            if (round == 0)
                goro_conn_write(s->rc_[i], "z", 1, gen_dl(), NULL);
            else
                goro_conn_close(s->rs_[i]); /* readers see -EBADF */
        }
        gt_wg_wait(&s->wg, 10);
        if (round == 0)
            s->io_drained = goro_num_io_waiting();
        for (int i = 0; i < LK_READERS; i++) {
            goro_conn_close(s->rc_[i]);
            if (round == 0)
                goro_conn_close(s->rs_[i]);
        }
    }
out:
    goro_listener_close(s->lu);
    s->g_back = gt_wait_num_goroutines(s->g_base, gt_slow(5 * SEC));
    s->io_end = goro_num_io_waiting();
    s->fds_after = count_fds();
}

static void test_no_leaks(void **st)
{
    (void)st;
    bad_reset();
    lk_state *s = calloc(1, sizeof *s);
    assert_non_null(s);
    assert_net_rc(make_tmpdir(s->dir, sizeof s->dir), 0);
    snprintf(s->upath, sizeof s->upath, "%s/leak.sock", s->dir);
    int fds_outside = count_fds();
    goro_options o = gt_opts(2);
    assert_net_rc(gt_run("no leaks", lk_main, s, &o, 60), 0);
    int fds_outside_after = count_fds();
    int rmd = rmdir(s->dir) == 0 ? 0 : -errno;
    assert_net_rc(s->setup_rc, 0);
    assert_no_bad("no leaks");
    assert_net_rc(s->wg_rc, 0);
    assert_int_equal(atomic_load(&s->client_ok), LK_TCP + LK_UNIX);
    assert_int_equal(atomic_load(&s->server_ok), LK_TCP + LK_UNIX);
    assert_net_rc(s->fail_rc[0], -EADDRINUSE);
    assert_net_rc(s->fail_rc[1], -EADDRINUSE);
    assert_net_rc(s->fail_rc[2], -ETIMEDOUT);
    assert_net_rc(s->fail_rc[3], -ECONNREFUSED);
    fprintf(stderr, "descriptors: %d before, %d after (in goro_run); %d / %d outside\n",
            s->fds_before, s->fds_after, fds_outside, fds_outside_after);
    assert_true(s->fds_before > 0);
    assert_int_equal(s->fds_after, s->fds_before);
    assert_int_equal(fds_outside_after, fds_outside);
    assert_true_msg(s->g_back, "goroutines did not return to the baseline %zu", s->g_base);
    assert_int_equal(s->io_base, 0);
    assert_true_msg(s->io_blocked == LK_READERS,
                    "goro_num_io_waiting() = %zu with %d readers blocked", s->io_blocked,
                    LK_READERS);
    assert_int_equal(atomic_load(&s->reader_ok), LK_READERS);
    assert_int_equal(s->io_drained, 0);
    assert_int_equal(s->io_end, 0);
    assert_net_rc(rmd, 0); /* the UNIX socket file was removed */
    free(s);
}

/* ========================================================================= */
/* 8. goro_blocking                                                           */
/* ========================================================================= */

typedef struct {
    atomic_long counter, c_start, c_end;
    atomic_int fn_started, fn_done, dump_taken;
    uint64_t blk_id;
    int blk_rc, dump_rc;
    char *dump;
    goro_waitgroup wg;
} gb_state;

#define GB_COUNT 20

static void gb_sleep_fn(void *arg)
{
    gb_state *s = arg;
    atomic_store(&s->c_start, atomic_load(&s->counter));
    atomic_store(&s->fn_started, 1);
    /* Block this thread until the other goroutine has counted 20 more
     * (it can only if the processor was handed over: procs = 1) and the
     * dump showing this call was taken; bounded, a wait on the real state
     * rather than a fixed 300 ms, which a loaded machine can fill with
     * two of the counter's wake-ups. */
    for (int i = 0; i < 10000 && (!atomic_load(&s->dump_taken) ||
                                  atomic_load(&s->counter) - atomic_load(&s->c_start) < GB_COUNT);
         i++)
        usleep(1000);
    atomic_store(&s->c_end, atomic_load(&s->counter));
    atomic_store(&s->fn_done, 1);
}

static void gb_blocker(void *arg)
{
    gb_state *s = arg;
    s->blk_id = goro_id();
    s->blk_rc = goro_blocking(gb_sleep_fn, s);
    goro_waitgroup_done(&s->wg);
    NO_TAIL_CALL();
}

static void gb_counter(void *arg)
{
    gb_state *s = arg;
    int64_t end = goro_now() + gt_slow(10 * SEC);
    for (unsigned i = 0; !atomic_load(&s->fn_done) && goro_now() < end; i++) {
        atomic_fetch_add(&s->counter, 1);
        if (i & 1)
            goro_yield();
        else
            goro_sleep(200 * GORO_MICROSECOND);
    }
    goro_waitgroup_done(&s->wg);
}

static void gb_dumper(void *arg)
{
    gb_state *s = arg;
    int64_t end = goro_now() + gt_slow(10 * SEC);
    while (!atomic_load(&s->fn_started) && goro_now() < end)
        goro_sleep(MS);
    goro_sleep(20 * MS);
    FILE *f = tmpfile();
    if (f) {
        s->dump_rc = goro_dump(fileno(f));
        s->dump = gt_read_all_fd(fileno(f));
        fclose(f);
    } else {
        s->dump_rc = -errno;
    }
    atomic_store(&s->dump_taken, 1);
    goro_waitgroup_done(&s->wg);
}

typedef struct {
    int calls;
    pthread_t thread;
} gb_outside;

static void gb_outside_fn(void *arg)
{
    gb_outside *o = arg;
    o->calls++;
    o->thread = pthread_self();
}

typedef struct {
    gb_outside foreign;
    int foreign_rc;
    bool foreign_same_thread;
    /* blocking network calls from the foreign thread */
    goro_conn *idle;     /* nothing to read */
    goro_listener *lidle; /* nothing to accept */
    ssize_t read_rc, ready_read_rc;
    int accept_rc, setup_rc;
    int64_t ns;
    char buf[8];
} gb_foreign_state;

static void *gb_foreign_thread(void *arg)
{
    gb_outside *o = arg;
    intptr_t rc = goro_blocking(gb_outside_fn, o);
    return (void *)rc;
}

static void *net_foreign_ready(void *arg)
{
    gb_foreign_state *s = arg;
    s->ready_read_rc = goro_conn_read(s->idle, s->buf, sizeof s->buf, goro_now() - 1, NULL);
    return NULL;
}

/* goro.h conventions: a call that would block, made from a thread that is
 * not running a goroutine, returns -EPERM instead of blocking. */
static void *net_foreign_thread(void *arg)
{
    gb_foreign_state *s = arg;
    int64_t t0 = gt_mono_ns();
    s->read_rc = goro_conn_read(s->idle, s->buf, sizeof s->buf, goro_deadline_after(2 * SEC),
                                NULL);
    goro_conn *c = NULL;
    s->accept_rc = goro_accept(s->lidle, &c, goro_deadline_after(2 * SEC), NULL);
    if (s->accept_rc == 0)
        goro_conn_close(c);
    s->ns = gt_mono_ns() - t0;
    return NULL;
}


static void gb_foreign_main(void *arg)
{
    gb_foreign_state *s = arg;
    goro_listener *lp;
    goro_conn *peer;
    if ((s->setup_rc = goro_listen_tcp("127.0.0.1:0", 0, &lp)) != 0)
        return;
    if ((s->setup_rc = goro_listen_tcp("127.0.0.1:0", 0, &s->lidle)) != 0 ||
        (s->setup_rc = make_pair(lp, &s->idle, &peer)) != 0) {
        goro_listener_close(lp);
        return;
    }
    pthread_t nt;
    if (pthread_create(&nt, NULL, net_foreign_thread, s) == 0) {
        while (pthread_tryjoin_np(nt, NULL) != 0)
            goro_sleep(MS);
    } else {
        s->setup_rc = -EAGAIN;
    }
    /* with data there, the same read does not block: it is allowed */
    EXPECT_RC(goro_conn_write(peer, "data", 4, gen_dl(), NULL), 4);
    goro_sleep(10 * MS);
    if (pthread_create(&nt, NULL, net_foreign_ready, s) == 0) {
        while (pthread_tryjoin_np(nt, NULL) != 0)
            goro_sleep(MS);
    }
    goro_conn_close(s->idle);
    goro_conn_close(peer);
    goro_listener_close(s->lidle);
    goro_listener_close(lp);

    pthread_t th;
    if (pthread_create(&th, NULL, gb_foreign_thread, &s->foreign) != 0) {
        s->foreign_rc = -EAGAIN;
        return;
    }
    goro_sleep(20 * MS);
    void *ret;
    pthread_join(th, &ret);
    s->foreign_rc = (int)(intptr_t)ret;
    s->foreign_same_thread = pthread_equal(s->foreign.thread, th);
}

static void gb_main(void *arg)
{
    gb_state *s = arg;
    goro_waitgroup_add(&s->wg, 3);
    goro_go(gb_counter, s);
    goro_go(gb_blocker, s);
    goro_go(gb_dumper, s);
    gt_wg_wait(&s->wg, 30);
}

static void test_blocking_hands_over_the_processor(void **st)
{
    (void)st;
    bad_reset();
    /* outside a goroutine: fn just runs, on the calling thread */
    gb_outside out = {0};
    assert_net_rc(goro_blocking(gb_outside_fn, &out), 0);
    assert_int_equal(out.calls, 1);
    assert_true(pthread_equal(out.thread, pthread_self()));
    /* ... also from a foreign thread while the runtime runs */
    gb_foreign_state fs;
    memset(&fs, 0, sizeof fs);
    assert_net_rc(gt_run("goro_blocking from a foreign thread", gb_foreign_main, &fs, NULL, 30),
                  0);
    assert_net_rc(fs.foreign_rc, 0);
    assert_int_equal(fs.foreign.calls, 1);
    assert_true(fs.foreign_same_thread);
    assert_net_rc(fs.setup_rc, 0);
    assert_no_bad("network calls from a foreign thread");
    assert_net_rc(fs.read_rc, -EPERM);
    assert_net_rc(fs.accept_rc, -EPERM);
    assert_true_msg(fs.ns < gt_slow(500 * MS),
                    "blocking calls from a foreign thread took %.1f ms (must not block)",
                    fs.ns / 1e6);
    assert_net_rc(fs.ready_read_rc, 4);
    assert_memory_equal(fs.buf, "data", 4);

    gb_state *s = calloc(1, sizeof *s);
    assert_non_null(s);
    goro_options o = gt_opts(1);
    assert_net_rc(gt_run("goro_blocking, procs 1", gb_main, s, &o, 30), 0);
    assert_no_bad("goro_blocking");
    assert_net_rc(s->blk_rc, 0);
    assert_true(atomic_load(&s->fn_done));
    long adv = atomic_load(&s->c_end) - atomic_load(&s->c_start);
    fprintf(stderr, "goro_blocking (procs 1): the other goroutine counted %ld during the call\n",
            adv);
    assert_true_msg(adv >= GB_COUNT,
                    "the counter advanced only %ld during a goro_blocking call of up to 10 s with "
                    "procs = 1: the processor was not handed over",
                    adv);
    assert_net_rc(s->dump_rc, 0);
    assert_non_null(s->dump);
    const char *h = gt_find_goroutine_header(s->dump, s->blk_id, "syscall");
    if (!h) {
        fprintf(stderr, "dump:\n%s\n", s->dump);
        fail_msg("no 'goroutine %llu [syscall]:' header in the dump taken during the call",
                 (unsigned long long)s->blk_id);
    }
    char *blk = gt_dump_block(h);
    if (!strstr(blk, "gb_blocker")) {
        fprintf(stderr, "block:\n%s\n", blk);
        free(blk);
        fail_msg("the [syscall] goroutine's stack does not show its function gb_blocker");
    }
    free(blk);
    free(s->dump);
    free(s);
}

#define GB_MANY 20

typedef struct {
    atomic_long inflight, max_inflight, done, bad;
    goro_waitgroup wg;
    int64_t ns;
    int wg_rc;
} gbm_state;

static void gbm_fn(void *arg)
{
    gbm_state *m = arg;
    long now = atomic_fetch_add(&m->inflight, 1) + 1;
    long prev = atomic_load(&m->max_inflight);
    while (now > prev && !atomic_compare_exchange_weak(&m->max_inflight, &prev, now))
        ;
    usleep(50 * 1000);
    atomic_fetch_sub(&m->inflight, 1);
    atomic_fetch_add(&m->done, 1);
}

static void gbm_goroutine(void *arg)
{
    gbm_state *m = arg;
    if (goro_blocking(gbm_fn, m) != 0)
        atomic_fetch_add(&m->bad, 1);
    goro_waitgroup_done(&m->wg);
}

static void gbm_main(void *arg)
{
    gbm_state *m = arg;
    int64_t t0 = goro_now();
    goro_waitgroup_add(&m->wg, GB_MANY);
    for (int i = 0; i < GB_MANY; i++)
        goro_go(gbm_goroutine, m);
    m->wg_rc = gt_wg_wait(&m->wg, 30);
    m->ns = goro_now() - t0;
}

static void test_many_blocking_calls(void **st)
{
    (void)st;
    gbm_state m;
    memset(&m, 0, sizeof m);
    goro_options o = gt_opts(2);
    assert_net_rc(gt_run("20 goro_blocking calls", gbm_main, &m, &o, 30), 0);
    assert_net_rc(m.wg_rc, 0);
    assert_int_equal(atomic_load(&m.done), GB_MANY);
    assert_int_equal(atomic_load(&m.bad), 0);
    fprintf(stderr, "%d x 50 ms goro_blocking with procs 2: %.1f ms, up to %ld at once\n",
            GB_MANY, m.ns / 1e6, atomic_load(&m.max_inflight));
    /* Serially they would take 1 s; each call hands its P on, so they overlap. */
    assert_true_msg(atomic_load(&m.max_inflight) > 2,
                    "at most %ld blocking calls ran at once with 2 processors",
                    atomic_load(&m.max_inflight));
    assert_true_msg(m.ns < gt_slow(500 * MS), "20 concurrent 50 ms calls took %.1f ms",
                    m.ns / 1e6);
}

/* ========================================================================= */
/* 9. Addresses                                                               */
/* ========================================================================= */

static const char *const bad_addrs[] = {
    "", "127.0.0.1", "127.0.0.1:", "127.0.0.1:99999", ":80", "[::1]80", NULL,
};
#define NBAD (sizeof bad_addrs / sizeof bad_addrs[0])

/* Only for listen (dial would resolve names: keep it off DNS). */
static const char *const bad_listen_only[] = {
    "localhost:0", "[::1]:", "[::1]", "127.0.0.1:-1", "127.0.0.1:80x", "1.2.3:80", "[]:80",
};
#define NBADL (sizeof bad_listen_only / sizeof bad_listen_only[0])

typedef struct {
    int listen_rc, dial_rc, accept_rc, addr_rc[5];
    char laddr[200], cl_local[200], cl_peer[200], sv_local[200], sv_peer[200];
    bool echo_ok;
} fam_res;

enum { FAM_V4, FAM_V6, FAM_UNIX, FAM_LOCALHOST, FAM_COUNT };

typedef struct {
    char dir[128], path[192];
    fam_res fam[FAM_COUNT];
    int bad_listen[NBAD], bad_dial[NBAD], bad_listen_only_rc[NBADL];
    int inuse_rc, nospc_rc[2], null_rc[4];
    int u_inuse_rc, u_still_dials_rc, u_file_rc, u_missing_rc, u_stale_rc, u_stale_listen_rc,
        u_empty_rc, u_null_rc, u_long_rc;
    bool u_removed, u_file_kept, u_removed_after_inuse;
} ad_state;

static bool echo_check(goro_conn *a, goro_conn *b)
{
    char buf[8];
    int64_t dl = gen_dl();
    return goro_conn_write(a, "ping", 4, dl, NULL) == 4 && read_full(b, buf, 4, dl) == 4 &&
           memcmp(buf, "ping", 4) == 0 && goro_conn_write(b, "pong", 4, dl, NULL) == 4 &&
           read_full(a, buf, 4, dl) == 4 && memcmp(buf, "pong", 4) == 0;
}

/* Listen on la, dial the address the listener reports (dial_addr overrides
 * it: "localhost:PORT"), accept, compare addresses, echo. */
static void fam_check(fam_res *r, int fam, const char *la)
{
    goro_listener *l;
    r->listen_rc = fam == FAM_UNIX ? goro_listen_unix(la, 0, &l) : goro_listen_tcp(la, 0, &l);
    if (r->listen_rc)
        return;
    r->addr_rc[0] = goro_listener_addr(l, r->laddr, sizeof r->laddr);
    char dial[256];
    if (fam == FAM_LOCALHOST)
        snprintf(dial, sizeof dial, "localhost:%ld", port_of(r->laddr));
    else
        snprintf(dial, sizeof dial, "%s", r->laddr);
    goro_conn *c = NULL, *v = NULL;
    r->dial_rc = dial_any(dial, &c, gen_dl(), NULL);
    if (r->dial_rc == 0) {
        r->accept_rc = goro_accept(l, &v, gen_dl(), NULL);
        if (r->accept_rc == 0) {
            r->addr_rc[1] = goro_conn_local_addr(c, r->cl_local, sizeof r->cl_local);
            r->addr_rc[2] = goro_conn_peer_addr(c, r->cl_peer, sizeof r->cl_peer);
            r->addr_rc[3] = goro_conn_local_addr(v, r->sv_local, sizeof r->sv_local);
            r->addr_rc[4] = goro_conn_peer_addr(v, r->sv_peer, sizeof r->sv_peer);
            r->echo_ok = echo_check(c, v);
            goro_conn_close(v);
        }
        goro_conn_close(c);
    }
    goro_listener_close(l);
}

static void ad_main(void *arg)
{
    ad_state *s = arg;
    fam_check(&s->fam[FAM_V4], FAM_V4, "127.0.0.1:0");
    fam_check(&s->fam[FAM_V6], FAM_V6, "[::1]:0");
    fam_check(&s->fam[FAM_UNIX], FAM_UNIX, s->path);
    struct stat sb;
    s->u_removed = stat(s->path, &sb) != 0 && errno == ENOENT;
    fam_check(&s->fam[FAM_LOCALHOST], FAM_LOCALHOST, "127.0.0.1:0");

    goro_listener *l;
    goro_conn *c;
    for (size_t i = 0; i < NBAD; i++) {
        if ((s->bad_listen[i] = goro_listen_tcp(bad_addrs[i], 0, &l)) == 0)
            goro_listener_close(l);
        if ((s->bad_dial[i] = goro_dial_tcp(bad_addrs[i], &c, goro_deadline_after(2 * SEC),
                                            NULL)) == 0)
            goro_conn_close(c);
    }
    for (size_t i = 0; i < NBADL; i++)
        if ((s->bad_listen_only_rc[i] = goro_listen_tcp(bad_listen_only[i], 0, &l)) == 0)
            goro_listener_close(l);

    /* port in use; buffers too small; NULL outputs */
    char a[64], tiny[5];
    if (goro_listen_tcp("127.0.0.1:0", 0, &l) == 0) {
        goro_listener_addr(l, a, sizeof a);
        goro_listener *l2;
        if ((s->inuse_rc = goro_listen_tcp(a, 0, &l2)) == 0)
            goro_listener_close(l2);
        s->nospc_rc[0] = goro_listener_addr(l, tiny, sizeof tiny);
        if (goro_dial_tcp(a, &c, gen_dl(), NULL) == 0) {
            s->nospc_rc[1] = goro_conn_local_addr(c, tiny, sizeof tiny);
            goro_conn_close(c);
        }
        s->null_rc[0] = goro_accept(l, NULL, goro_now() - 1, NULL);
        s->null_rc[1] = goro_dial_tcp(a, NULL, gen_dl(), NULL);
        goro_listener_close(l);
    }
    s->null_rc[2] = goro_listen_tcp("127.0.0.1:0", 0, NULL);
    s->null_rc[3] = goro_listen_unix(s->path, 0, NULL);
    s->u_removed = s->u_removed && stat(s->path, &sb) != 0;

    /* UNIX: a path in use, a regular file, a missing path, a stale socket */
    if (goro_listen_unix(s->path, 0, &l) == 0) {
        goro_listener *l2;
        if ((s->u_inuse_rc = goro_listen_unix(s->path, 0, &l2)) == 0)
            goro_listener_close(l2);
        /* the failed listen left the first listener's file alone */
        if ((s->u_still_dials_rc = goro_dial_unix(s->path, &c, gen_dl(), NULL)) == 0)
            goro_conn_close(c);
        goro_listener_close(l);
        s->u_removed_after_inuse = stat(s->path, &sb) != 0;
    } else {
        s->u_inuse_rc = -EIO;
    }
    int fd = open(s->path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    if (fd >= 0) {
        close(fd);
        if ((s->u_file_rc = goro_listen_unix(s->path, 0, &l)) == 0)
            goro_listener_close(l);
        s->u_file_kept = stat(s->path, &sb) == 0 && S_ISREG(sb.st_mode);
        unlink(s->path);
    }
    s->u_missing_rc = goro_dial_unix(s->path, &c, gen_dl(), NULL);
    if (s->u_missing_rc == 0)
        goro_conn_close(c);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    size_t pl = strlen(s->path);
    if (pl < sizeof un.sun_path)
        memcpy(un.sun_path, s->path, pl + 1);
    if (fd >= 0 && pl < sizeof un.sun_path && bind(fd, (struct sockaddr *)&un, sizeof un) == 0) {
        close(fd); /* the file stays: nobody listens there */
        if ((s->u_stale_rc = goro_dial_unix(s->path, &c, gen_dl(), NULL)) == 0)
            goro_conn_close(c);
        if ((s->u_stale_listen_rc = goro_listen_unix(s->path, 0, &l)) == 0)
            goro_listener_close(l);
        unlink(s->path);
    } else {
        if (fd >= 0)
            close(fd);
        s->u_stale_rc = s->u_stale_listen_rc = -EIO;
    }
    if ((s->u_empty_rc = goro_listen_unix("", 0, &l)) == 0)
        goro_listener_close(l);
    if ((s->u_null_rc = goro_listen_unix(NULL, 0, &l)) == 0)
        goro_listener_close(l);
    char longp[300];
    memset(longp, 'x', sizeof longp - 1);
    longp[0] = '/';
    longp[sizeof longp - 1] = '\0';
    if ((s->u_long_rc = goro_listen_unix(longp, 0, &l)) == 0)
        goro_listener_close(l);
}

static void check_fam(const ad_state *s, int fam, const char *prefix)
{
    const fam_res *r = &s->fam[fam];
    assert_net_rc(r->addr_rc[0], 0);
    assert_net_rc(r->dial_rc, 0);
    assert_net_rc(r->accept_rc, 0);
    for (int i = 1; i < 5; i++)
        assert_net_rc(r->addr_rc[i], 0);
    assert_true_msg(r->echo_ok, "echo over %s failed", r->laddr);
    if (fam == FAM_UNIX) {
        assert_string_equal(r->laddr, s->path);
        assert_string_equal(r->cl_peer, s->path);
        assert_string_equal(r->sv_local, s->path);
        return;
    }
    size_t pl = strlen(prefix);
    long lp = port_of(r->laddr), cp = port_of(r->cl_local);
    assert_true_msg(strncmp(r->laddr, prefix, pl) == 0 && lp > 0 && lp <= 65535,
                    "listener address '%s' (want %sPORT, PORT != 0)", r->laddr, prefix);
    assert_true_msg(strncmp(r->cl_local, prefix, pl) == 0 && cp > 0 && cp <= 65535,
                    "client local address '%s'", r->cl_local);
    assert_string_equal(r->cl_peer, r->laddr);
    assert_string_equal(r->sv_local, r->laddr);
    assert_string_equal(r->sv_peer, r->cl_local);
}

static void test_addresses(void **st)
{
    (void)st;
    bad_reset();
    ad_state *s = calloc(1, sizeof *s);
    assert_non_null(s);
    assert_net_rc(make_tmpdir(s->dir, sizeof s->dir), 0);
    snprintf(s->path, sizeof s->path, "%s/addr.sock", s->dir);
    goro_options o = gt_opts(2);
    assert_net_rc(gt_run("addresses", ad_main, s, &o, 60), 0);
    int rmd = rmdir(s->dir) == 0 ? 0 : -errno;
    assert_no_bad("addresses");

    assert_net_rc(s->fam[FAM_V4].listen_rc, 0);
    check_fam(s, FAM_V4, "127.0.0.1:");
    int v6 = s->fam[FAM_V6].listen_rc;
    if (v6 == -EADDRNOTAVAIL || v6 == -EAFNOSUPPORT)
        fprintf(stderr, "note: IPv6 loopback unavailable (%s); [::1] checks skipped\n", en(v6));
    else {
        assert_net_rc(v6, 0);
        check_fam(s, FAM_V6, "[::1]:");
    }
    assert_net_rc(s->fam[FAM_UNIX].listen_rc, 0);
    check_fam(s, FAM_UNIX, NULL);
    assert_true_msg(s->u_removed, "goro_listener_close left the UNIX socket file behind");
    /* localhost resolves (through goro_blocking) to the 127.0.0.1 listener */
    assert_net_rc(s->fam[FAM_LOCALHOST].listen_rc, 0);
    check_fam(s, FAM_LOCALHOST, "127.0.0.1:");

    assert_net_rc(s->inuse_rc, -EADDRINUSE);
    assert_net_rc(s->nospc_rc[0], -ENOSPC);
    assert_net_rc(s->nospc_rc[1], -ENOSPC);
    for (int i = 0; i < 4; i++)
        assert_net_rc(s->null_rc[i], -EINVAL);
    assert_net_rc(s->u_inuse_rc, -EADDRINUSE);
    assert_net_rc(s->u_still_dials_rc, 0);
    assert_true(s->u_removed_after_inuse);
    assert_net_rc(s->u_file_rc, -EADDRINUSE);
    assert_true_msg(s->u_file_kept, "a failed goro_listen_unix removed an existing file");
    assert_net_rc(s->u_missing_rc, -ENOENT);
    assert_net_rc(s->u_stale_rc, -ECONNREFUSED);
    assert_net_rc(s->u_stale_listen_rc, -EADDRINUSE);
    assert_net_rc(s->u_empty_rc, -EINVAL);
    assert_net_rc(s->u_null_rc, -EINVAL);
    assert_true_msg(s->u_long_rc < 0, "goro_listen_unix with a 299-byte path returned %d",
                    s->u_long_rc);
    assert_net_rc(rmd, 0);

    /* every malformed address is -EINVAL, for listen and for dial (all
     * mismatches in one message) */
    char msg[2048] = "";
    size_t ml = 0;
    for (size_t i = 0; i < NBAD + NBADL; i++) {
        const char *a = i < NBAD ? bad_addrs[i] : bad_listen_only[i - NBAD];
        int lrc = i < NBAD ? s->bad_listen[i] : s->bad_listen_only_rc[i - NBAD];
        if (lrc != -EINVAL && ml < sizeof msg)
            ml += (size_t)snprintf(msg + ml, sizeof msg - ml,
                                   "\n  goro_listen_tcp(%s%s%s) = %d (%s)", a ? "\"" : "",
                                   a ? a : "NULL", a ? "\"" : "", lrc, en(lrc));
        if (i < NBAD && s->bad_dial[i] != -EINVAL && ml < sizeof msg)
            ml += (size_t)snprintf(msg + ml, sizeof msg - ml,
                                   "\n  goro_dial_tcp(%s%s%s) = %d (%s)", a ? "\"" : "",
                                   a ? a : "NULL", a ? "\"" : "", s->bad_dial[i],
                                   en(s->bad_dial[i]));
    }
    free(s);
    if (ml)
        fail_msg("malformed addresses not rejected with EINVAL:%s", msg);
}

/* ========================================================================= */
/* 10. goro_conn_from_fd                                                      */
/* ========================================================================= */

typedef struct {
    int sp_rc, wrap_rc[2], fd_match, nonblock, inval_rc[2];
    ssize_t rw[4];
    char got[2][8];
    ssize_t idle_rc;
    int64_t idle_late;
    goro_conn *a, *b;
    size_t stream_total, stream_got;
    bool stream_ok;
    goro_waitgroup wg;
    int closed_errno, close_rc;
    ssize_t eof_rc;
} fd_state;

static void fd_writer(void *arg)
{
    fd_state *s = arg;
    uint8_t *buf = malloc(s->stream_total);
    if (buf) {
        pat_fill(77, 0, buf, s->stream_total);
        EXPECT_RC(goro_conn_write(s->a, buf, s->stream_total, gen_dl(), NULL),
                  (ssize_t)s->stream_total);
    }
    free(buf);
    goro_waitgroup_done(&s->wg);
}

static void fd_main(void *arg)
{
    fd_state *s = arg;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        s->sp_rc = -errno;
        return;
    }
    s->inval_rc[0] = goro_conn_from_fd(-1, &s->a);
    s->inval_rc[1] = goro_conn_from_fd(sv[0], NULL);
    s->wrap_rc[0] = goro_conn_from_fd(sv[0], &s->a);
    s->wrap_rc[1] = goro_conn_from_fd(sv[1], &s->b);
    if (s->wrap_rc[0] || s->wrap_rc[1])
        return;
    s->fd_match = goro_conn_fd(s->a) == sv[0] && goro_conn_fd(s->b) == sv[1];
    int fl = fcntl(sv[0], F_GETFL);
    s->nonblock = fl >= 0 && (fl & O_NONBLOCK);
    int64_t dl = gen_dl();
    s->rw[0] = goro_conn_write(s->a, "abc", 3, dl, NULL);
    s->rw[1] = read_full(s->b, s->got[0], 3, dl);
    s->rw[2] = goro_conn_write(s->b, "xyz", 3, dl, NULL);
    s->rw[3] = read_full(s->a, s->got[1], 3, dl);
    int64_t d = goro_now() + 30 * MS; /* the wrapped fd is on the poller */
    char x;
    s->idle_rc = goro_conn_read(s->a, &x, 1, d, NULL);
    s->idle_late = goro_now() - d;

    /* 1 MiB through the pair: the writer blocks, the reader unblocks it */
    s->stream_total = 1 << 20;
    goro_waitgroup_add(&s->wg, 1);
    goro_go(fd_writer, s);
    uint8_t *buf = malloc(s->stream_total), *exp = malloc(s->stream_total);
    if (buf && exp) {
        ssize_t r = read_full(s->b, buf, s->stream_total, dl);
        s->stream_got = r > 0 ? (size_t)r : 0;
        pat_fill(77, 0, exp, s->stream_total);
        s->stream_ok = s->stream_got == s->stream_total && memcmp(buf, exp, s->stream_total) == 0;
    }
    free(buf);
    free(exp);
    gt_wg_wait(&s->wg, 30);

    /* goro_conn_close closes the descriptor: the peer sees EOF */
    s->close_rc = goro_conn_close(s->a);
    s->closed_errno = fcntl(sv[0], F_GETFD) == -1 ? errno : 0;
    s->eof_rc = goro_conn_read(s->b, &x, 1, dl, NULL);
    goro_conn_close(s->b);
}

static void test_conn_from_fd(void **st)
{
    (void)st;
    bad_reset();
    fd_state s;
    memset(&s, 0, sizeof s);
    goro_options o = gt_opts(2);
    assert_net_rc(gt_run("goro_conn_from_fd", fd_main, &s, &o, 30), 0);
    assert_net_rc(s.sp_rc, 0);
    assert_no_bad("goro_conn_from_fd");
    assert_net_rc(s.inval_rc[0], -EINVAL);
    assert_net_rc(s.inval_rc[1], -EINVAL);
    assert_net_rc(s.wrap_rc[0], 0);
    assert_net_rc(s.wrap_rc[1], 0);
    assert_true(s.fd_match);
    assert_true_msg(s.nonblock, "the wrapped descriptor was not made non-blocking");
    for (int i = 0; i < 4; i++)
        assert_net_rc(s.rw[i], 3);
    assert_memory_equal(s.got[0], "abc", 3);
    assert_memory_equal(s.got[1], "xyz", 3);
    assert_net_rc(s.idle_rc, -ETIMEDOUT);
    assert_true(s.idle_late >= 0 && s.idle_late < gt_slow(200 * MS));
    assert_true_msg(s.stream_ok, "1 MiB through the socketpair: got %zu bytes%s",
                    s.stream_got, s.stream_got == s.stream_total ? ", corrupted" : "");
    assert_net_rc(s.close_rc, 0);
    assert_true_msg(s.closed_errno == EBADF,
                    "the descriptor is still open after goro_conn_close (fcntl errno %d)",
                    s.closed_errno);
    assert_net_rc(s.eof_rc, 0);
}

/* ========================================================================= */
/* 11. Dumps of goroutines blocked on sockets                                 */
/* ========================================================================= */

typedef struct {
    blk_env e;
    goro_ctx *ctx;
    uint64_t id[OP_COUNT];
    ssize_t rc[OP_COUNT];
    int setup_rc, dump_rc, nblocked;
    size_t io;
    char *dump;
    goro_waitgroup wg;
} du_state;

static du_state *dus;

static void du_op(int op)
{
    dus->id[op] = goro_id();
    dus->rc[op] = do_op(&dus->e, op, gen_dl(), dus->ctx);
}

static void du_reader(void *arg)
{
    (void)arg;
    du_op(OP_READ);
    goro_waitgroup_done(&dus->wg);
    NO_TAIL_CALL();
}

static void du_writer(void *arg)
{
    (void)arg;
    du_op(OP_WRITE);
    goro_waitgroup_done(&dus->wg);
    NO_TAIL_CALL();
}

static void du_acceptor(void *arg)
{
    (void)arg;
    du_op(OP_ACCEPT);
    goro_waitgroup_done(&dus->wg);
    NO_TAIL_CALL();
}

static void du_dialer(void *arg)
{
    (void)arg;
    du_op(OP_DIAL);
    goro_waitgroup_done(&dus->wg);
    NO_TAIL_CALL();
}

static void du_main(void *arg)
{
    du_state *s = arg;
    dus = s;
    if ((s->setup_rc = env_setup(&s->e)) != 0 ||
        (s->setup_rc = goro_ctx_with_cancel(NULL, &s->ctx)) != 0) {
        env_teardown(&s->e);
        return;
    }
    s->nblocked = s->e.dial_blocks ? 4 : 3;
    goro_waitgroup_add(&s->wg, s->nblocked);
    goro_go_named(du_reader, NULL, "net-reader");
    goro_go(du_writer, NULL);
    goro_go(du_acceptor, NULL);
    if (s->e.dial_blocks)
        goro_go(du_dialer, NULL);
    int64_t end = goro_now() + gt_slow(5 * SEC);
    while ((s->io = goro_num_io_waiting()) < (size_t)s->nblocked && goro_now() < end)
        goro_sleep(MS);
    goro_sleep(5 * MS);
    FILE *f = tmpfile();
    if (f) {
        s->dump_rc = goro_dump(fileno(f));
        s->dump = gt_read_all_fd(fileno(f));
        fclose(f);
    } else {
        s->dump_rc = -errno;
    }
    goro_ctx_cancel(s->ctx);
    gt_wg_wait(&s->wg, 10);
    goro_ctx_release(s->ctx);
    env_teardown(&s->e);
}

static void check_io_block(const du_state *s, int op, const char *first, const char *fn)
{
    const char *h = gt_find_goroutine_header(s->dump, s->id[op], "IO wait");
    if (!h) {
        fprintf(stderr, "dump:\n%s\n", s->dump);
        fail_msg("no 'goroutine %llu [IO wait...]:' header for the goroutine blocked in %s",
                 (unsigned long long)s->id[op], op_name[op]);
    }
    char *blk = gt_dump_block(h);
    const char *nl = strchr(blk, '\n');
    char want[64];
    snprintf(want, sizeof want, "%s(", first);
    bool ok = nl && strncmp(nl + 1, want, strlen(want)) == 0 && strstr(blk, fn);
    if (!ok) {
        fprintf(stderr, "block:\n%s\n", blk);
        free(blk);
        fail_msg("the goroutine blocked in %s: want '%s...' as its first frame and %s below",
                 op_name[op], want, fn);
    }
    free(blk);
}

static void test_dump_io_wait(void **st)
{
    (void)st;
    bad_reset();
    du_state *s = calloc(1, sizeof *s);
    assert_non_null(s);
    goro_options o = gt_opts(2);
    assert_net_rc(gt_run("dump of IO waits", du_main, s, &o, 60), 0);
    assert_net_rc(s->setup_rc, 0);
    assert_no_bad("dump of IO waits");
    print_env_note(s->nblocked == 4);
    assert_net_rc(s->dump_rc, 0);
    assert_non_null(s->dump);
    assert_int_equal(s->io, (size_t)s->nblocked);
    check_io_block(s, OP_READ, "goro_conn_read", "du_reader");
    assert_non_null(strstr(s->dump, "name \"net-reader\""));
    check_io_block(s, OP_WRITE, "goro_conn_write", "du_writer");
    check_io_block(s, OP_ACCEPT, "goro_accept", "du_acceptor");
    if (s->nblocked == 4)
        check_io_block(s, OP_DIAL, "goro_dial_tcp", "du_dialer");
    for (int op = 0; op < s->nblocked; op++)
        if (s->rc[op] != -ECANCELED)
            fail_msg("%s after the cancel: %zd (%s)", op_name[op], s->rc[op], en(s->rc[op]));
    free(s->dump);
    free(s);
}

/* ========================================================================= */

int main(void)
{
    const char *sc = gt_child_scenario();
    if (sc) {
        if (strcmp(sc, "peer") == 0)
            return peer_child();
        fprintf(stderr, "unknown scenario %s\n", sc);
        return 127;
    }
    /* e.g. GORO_TEST_FILTER='test_echo*' to run a subset while debugging */
    const char *filter = getenv("GORO_TEST_FILTER");
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_1000_procs1),
        cmocka_unit_test(test_echo_1000_procs2),
        cmocka_unit_test(test_large_transfer),
        cmocka_unit_test(test_deadlines),
        cmocka_unit_test(test_contexts),
        cmocka_unit_test(test_close_while_blocked),
        cmocka_unit_test(test_double_close_and_use_after_close),
        cmocka_unit_test(test_peer_behaviour),
        cmocka_unit_test(test_no_leaks),
        cmocka_unit_test(test_blocking_hands_over_the_processor),
        cmocka_unit_test(test_many_blocking_calls),
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_conn_from_fd),
        cmocka_unit_test(test_dump_io_wait),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
