/*
 * test_http.c - the HTTP/1.1 server: requests and responses, bodies,
 * keep-alive and pipelining, every class of malformed request with its
 * status code, the mux, 1,000 concurrent echo clients with every byte
 * accounted for, timeouts, disconnects that leave nothing behind,
 * slowloris-style clients, graceful and forced shutdown.
 *
 * Clients are goroutines speaking raw HTTP/1.1 over goro's own dial API on
 * 127.0.0.1 (port 0 servers). As everywhere in this directory, goroutines
 * only record what they saw; the cmocka checks run after goro_run returns.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <strings.h>

#include "util.h"

#define MS GORO_MILLISECOND
#define SEC GORO_SECOND

/* gt_scale, and under valgrind (which runs one thread at a time, every
 * instruction many times slower) the size given for TSan. */
static size_t scale(const char *what, size_t plain, size_t asan, size_t tsan)
{
    if (gt_under_valgrind() && !GT_SANITIZED) {
        if (tsan != plain)
            fprintf(stderr, "note: %s scaled down from %zu to %zu under valgrind\n", what, plain,
                    tsan);
        return tsan;
    }
    return gt_scale(what, plain, asan, tsan);
}

/* ------------------------------------------------------------------------- */
/* A raw HTTP client                                                          */
/* ------------------------------------------------------------------------- */

typedef struct tc {
    goro_conn *c;
    size_t pos, len;
    char buf[16384];
} tc;

static int64_t io_deadline(void) { return goro_deadline_after(gt_slow(10 * SEC)); }

static tc *tc_dial(const char *addr, int *rc_out)
{
    tc *t = calloc(1, sizeof *t);
    if (!t) {
        if (rc_out)
            *rc_out = -ENOMEM;
        return NULL;
    }
    int rc = goro_dial_tcp(addr, &t->c, io_deadline(), NULL);
    if (rc_out)
        *rc_out = rc;
    if (rc) {
        free(t);
        return NULL;
    }
    return t;
}

static void tc_close(tc *t)
{
    if (t) {
        goro_conn_close(t->c);
        free(t);
    }
}

static int tc_send(tc *t, const void *p, size_t n)
{
    ssize_t r = goro_conn_write(t->c, p, n, io_deadline(), NULL);
    return r < 0 ? (int)r : 0;
}

static int tc_sends(tc *t, const char *s) { return tc_send(t, s, strlen(s)); }

/* Read more into the buffer: > 0 bytes, 0 end of stream, < 0 error. */
static ssize_t tc_fill(tc *t, int64_t dl)
{
    if (t->pos > 0) {
        memmove(t->buf, t->buf + t->pos, t->len - t->pos);
        t->len -= t->pos;
        t->pos = 0;
    }
    if (t->len == sizeof t->buf)
        return -ENOSPC;
    ssize_t n = goro_conn_read(t->c, t->buf + t->len, sizeof t->buf - t->len, dl, NULL);
    if (n > 0)
        t->len += (size_t)n;
    return n;
}

/* One CRLF-terminated line (without CRLF). -ENODATA at end of stream. */
static int tc_line(tc *t, char *out, size_t cap, int64_t dl)
{
    for (;;) {
        char *lf = memchr(t->buf + t->pos, '\n', t->len - t->pos);
        if (lf) {
            size_t n = (size_t)(lf - (t->buf + t->pos));
            if (n == 0 || lf[-1] != '\r')
                return -EPROTO;
            n--;
            if (n >= cap)
                return -ENOSPC;
            memcpy(out, t->buf + t->pos, n);
            out[n] = 0;
            t->pos += n + 2;
            return 0;
        }
        ssize_t r = tc_fill(t, dl);
        if (r == 0)
            return -ENODATA;
        if (r < 0)
            return (int)r;
    }
}

/* Exactly n bytes (out NULL: discard). */
static int tc_bytes(tc *t, char *out, size_t n, int64_t dl)
{
    while (n) {
        if (t->pos == t->len) {
            ssize_t r = tc_fill(t, dl);
            if (r == 0)
                return -ENODATA;
            if (r < 0)
                return (int)r;
        }
        size_t k = t->len - t->pos;
        if (k > n)
            k = n;
        if (out) {
            memcpy(out, t->buf + t->pos, k);
            out += k;
        }
        t->pos += k;
        n -= k;
    }
    return 0;
}

/* Wait for the server to close: true if end of stream (or a reset) comes
 * before dl; bytes that arrive meanwhile are discarded. */
static bool tc_wait_eof(tc *t, int64_t dl)
{
    t->pos = t->len = 0;
    for (;;) {
        ssize_t n = tc_fill(t, dl);
        if (n == 0 || n == -ECONNRESET || n == -EPIPE)
            return true;
        if (n < 0)
            return false;
        t->pos = t->len = 0;
    }
}

#define TR_MAX_HDRS 32
typedef struct tresp {
    int status;
    char version[16];
    int nh;
    char hname[TR_MAX_HDRS][64];
    char hval[TR_MAX_HDRS][256];
    char *body;
    size_t body_len, body_cap;
    bool chunked;
    long long cl; /* -1: none */
} tresp;

static const char *tr_header(const tresp *r, const char *name)
{
    for (int i = 0; i < r->nh; i++)
        if (strcasecmp(r->hname[i], name) == 0)
            return r->hval[i];
    return NULL;
}

static void tr_free(tresp *r)
{
    if (r->body) /* never free(NULL): goro's heap profiler can trip on it (see the report) */
        free(r->body);
    r->body = NULL;
}

static int tr_room(tresp *r, size_t n)
{
    if (r->body_len + n + 1 <= r->body_cap)
        return 0;
    size_t cap = r->body_cap ? r->body_cap : 256;
    while (cap < r->body_len + n + 1)
        cap *= 2;
    char *b = realloc(r->body, cap);
    if (!b)
        return -ENOMEM;
    r->body = b;
    r->body_cap = cap;
    return 0;
}

/* Read one response; no_body: it answers a HEAD request. The body is
 * NUL-terminated. */
static int tc_response(tc *t, tresp *r, bool no_body, int64_t dl)
{
    memset(r, 0, sizeof *r);
    r->cl = -1;
    char line[1024];
    int rc = tc_line(t, line, sizeof line, dl);
    if (rc)
        return rc;
    if (sscanf(line, "%15s %d", r->version, &r->status) != 2)
        return -EPROTO;
    for (;;) {
        if ((rc = tc_line(t, line, sizeof line, dl)))
            return rc;
        if (!line[0])
            break;
        char *colon = strchr(line, ':');
        if (!colon)
            return -EPROTO;
        if (r->nh < TR_MAX_HDRS) {
            *colon = 0;
            char *v = colon + 1;
            while (*v == ' ')
                v++;
            snprintf(r->hname[r->nh], sizeof r->hname[0], "%.63s", line);
            snprintf(r->hval[r->nh], sizeof r->hval[0], "%.255s", v);
            r->nh++;
        }
    }
    if ((rc = tr_room(r, 0)))
        return rc;
    r->body[0] = 0;
    const char *te = tr_header(r, "Transfer-Encoding"), *cl = tr_header(r, "Content-Length");
    if (cl)
        r->cl = atoll(cl);
    if (no_body || r->status < 200 || r->status == 204 || r->status == 304)
        return 0;
    if (te) {
        if (strcasecmp(te, "chunked") != 0)
            return -EPROTO;
        r->chunked = true;
        for (;;) {
            if ((rc = tc_line(t, line, sizeof line, dl)))
                return rc;
            char *end;
            unsigned long long n = strtoull(line, &end, 16);
            if (end == line)
                return -EPROTO;
            if (n == 0) {
                for (;;) { /* trailers */
                    if ((rc = tc_line(t, line, sizeof line, dl)))
                        return rc;
                    if (!line[0])
                        return 0;
                }
            }
            if ((rc = tr_room(r, n)) || (rc = tc_bytes(t, r->body + r->body_len, n, dl)))
                return rc;
            r->body_len += n;
            r->body[r->body_len] = 0;
            if ((rc = tc_line(t, line, sizeof line, dl)))
                return rc;
            if (line[0])
                return -EPROTO;
        }
    }
    if (cl) {
        if (r->cl < 0 || (rc = tr_room(r, (size_t)r->cl)) ||
            (rc = tc_bytes(t, r->body, (size_t)r->cl, dl)))
            return rc ? rc : -EPROTO;
        r->body_len = (size_t)r->cl;
        r->body[r->body_len] = 0;
        return 0;
    }
    for (;;) { /* delimited by the end of the stream */
        if (t->pos < t->len) {
            size_t k = t->len - t->pos;
            if ((rc = tr_room(r, k)))
                return rc;
            memcpy(r->body + r->body_len, t->buf + t->pos, k);
            r->body_len += k;
            r->body[r->body_len] = 0;
            t->pos = t->len;
        }
        ssize_t n = tc_fill(t, dl);
        if (n == 0)
            return 0;
        if (n < 0)
            return (int)n;
    }
}

/* One exchange on a fresh connection: send raw, read one response. */
static int roundtrip(const char *addr, const char *raw, size_t rawlen, tresp *r, bool no_body)
{
    int rc;
    tc *t = tc_dial(addr, &rc);
    if (!t)
        return rc;
    rc = tc_send(t, raw, rawlen);
    if (!rc)
        rc = tc_response(t, r, no_body, io_deadline());
    tc_close(t);
    return rc;
}

/* ------------------------------------------------------------------------- */
/* A server fixture and the handlers the tests share                          */
/* ------------------------------------------------------------------------- */

typedef struct fix {
    goro_http_server *srv;
    goro_listener *l;
    char addr[64];
    goro_waitgroup done;
    int serve_rc;
} fix;

static void fix_serve(void *arg)
{
    fix *f = arg;
    f->serve_rc = goro_http_serve(f->srv, f->l);
    goro_waitgroup_done(&f->done);
}

static int fix_start(fix *f, const goro_http_server_opts *o)
{
    memset(f, 0, sizeof *f);
    int rc = goro_http_server_create(o, &f->srv);
    if (rc)
        return rc;
    rc = goro_listen_tcp("127.0.0.1:0", 0, &f->l);
    if (rc) {
        goro_http_server_free(f->srv);
        return rc;
    }
    goro_listener_addr(f->l, f->addr, sizeof f->addr);
    goro_waitgroup_add(&f->done, 1);
    goro_go(fix_serve, f);
    return 0;
}

/* Graceful shutdown within grace, then wait for serve and free. Returns
 * shutdown's result, or -1000 when serve never returned. */
static int fix_stop(fix *f, int64_t grace)
{
    int rc = goro_http_server_shutdown(f->srv, goro_deadline_after(grace));
    if (rc == -ETIMEDOUT) {
        fprintf(stderr, "graceful shutdown timed out; goroutines then:\n");
        goro_dump(2);
    }
    if (gt_wg_wait(&f->done, 30))
        return -1000;
    int frc = goro_http_server_free(f->srv);
    if (f->serve_rc)
        return f->serve_rc;
    return rc ? rc : frc;
}

/* Shared state of the handlers below (handler_arg of every route). */
typedef struct hstate {
    atomic_long echo_bytes;     /* body bytes the echo handler read */
    atomic_long handled;        /* requests handled */
    atomic_long ctx_cancelled;  /* /ctxwait saw its context cancelled */
    atomic_long read_err;       /* last body read error seen by /echo or /drip */
    atomic_long write_err;      /* last write error seen by /big */
    atomic_long body_started;   /* /drip: handler started */
    atomic_llong err_at;        /* goro_now() when that error came */
    atomic_llong started_at;    /* goro_now() when the handler started */
    atomic_llong ctx_done_at;   /* goro_now() when /ctxwait's context ended */
    int api[32];                /* /api: results of response API calls */
    char query_b[64];           /* /info: decoded query value of b */
    ssize_t query_rc;
} hstate;

/* /info: describe the request in the body. */
static void h_info(goro_http_response *w, goro_http_request *r, void *arg)
{
    hstate *st = arg;
    atomic_fetch_add(&st->handled, 1);
    char *out = malloc(65536);
    if (!out)
        return;
    size_t n = 0;
    n += (size_t)snprintf(out + n, 4096, "method=%s\ntarget=%s\npath=%s\nquery=%s\nversion=%d\ncl=%lld\n",
                          goro_http_request_method(r), goro_http_request_target(r),
                          goro_http_request_path(r), goro_http_request_query(r),
                          goro_http_request_version(r),
                          (long long)goro_http_request_content_length(r));
    for (size_t i = 0; i < goro_http_request_num_headers(r); i++) {
        const char *k, *v;
        if (goro_http_request_header_at(r, i, &k, &v) == 0)
            n += (size_t)snprintf(out + n, 4096, "h:%s=%s\n", k, v);
    }
    const char *xf = goro_http_request_header(r, "x-FOO");
    n += (size_t)snprintf(out + n, 4096, "x-foo=%s\npeer=%s\n", xf ? xf : "(null)",
                          goro_http_request_peer(r)[0] ? "set" : "unset");
    if (goro_http_request_query(r)[0])
        st->query_rc = goro_http_query_value(goro_http_request_query(r), "b", st->query_b,
                                             sizeof st->query_b);
    n += (size_t)snprintf(out + n, 64, "body=");
    for (;;) {
        ssize_t k = goro_http_request_read(r, out + n, 60000 - n);
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    out[n++] = '\n';
    goro_http_response_set_header(w, "X-Test", "info");
    goro_http_response_send(w, 200, "text/plain", out, n);
    free(out);
}

/* /echo: the body back (Content-Length when known, else streamed). */
static void h_echo(goro_http_response *w, goro_http_request *r, void *arg)
{
    hstate *st = arg;
    atomic_fetch_add(&st->handled, 1);
    int64_t cl = goro_http_request_content_length(r);
    if (cl >= 0) {
        char num[24];
        snprintf(num, sizeof num, "%lld", (long long)cl);
        goro_http_response_set_header(w, "Content-Length", num);
    }
    char buf[8192];
    for (;;) {
        ssize_t n = goro_http_request_read(r, buf, sizeof buf);
        if (n < 0) {
            atomic_store(&st->read_err, n);
            atomic_store(&st->err_at, goro_now());
        }
        if (n <= 0)
            break;
        atomic_fetch_add(&st->echo_bytes, n);
        if (goro_http_response_write(w, buf, (size_t)n) < 0)
            break;
    }
}

static long query_num(goro_http_request *r, const char *key, long def)
{
    char v[32];
    if (goro_http_query_value(goro_http_request_query(r), key, v, sizeof v) < 0)
        return def;
    return atol(v);
}

/* /chunks?n=N&size=S&flush=F: N pieces "pieceI:" padded to S bytes. */
static void h_chunks(goro_http_response *w, goro_http_request *r, void *arg)
{
    (void)arg;
    long n = query_num(r, "n", 3), size = query_num(r, "size", 10), fl = query_num(r, "flush", 1);
    char piece[4096];
    if (size > (long)sizeof piece)
        size = sizeof piece;
    for (long i = 0; i < n; i++) {
        memset(piece, 'a' + (int)(i % 26), (size_t)size);
        int k = snprintf(piece, sizeof piece, "piece%ld:", i);
        if (k < size)
            piece[k] = '-';
        if (goro_http_response_write(w, piece, (size_t)size) < 0)
            return;
        if (fl && goro_http_response_flush(w) < 0)
            return;
    }
}

/* /sleep?ms=M&size=S: sleep, then S bytes (default "slept\n"). */
static void h_sleep(goro_http_response *w, goro_http_request *r, void *arg)
{
    hstate *st = arg;
    atomic_store(&st->started_at, goro_now());
    goro_sleep(query_num(r, "ms", 100) * MS);
    long size = query_num(r, "size", 0);
    if (size <= 0) {
        goro_http_response_send(w, 200, "text/plain", "slept\n", 6);
        return;
    }
    char *b = malloc((size_t)size);
    if (!b)
        return;
    memset(b, 's', (size_t)size);
    goro_http_response_send(w, 200, "application/octet-stream", b, (size_t)size);
    free(b);
    atomic_fetch_add(&st->handled, 1);
}

/* /empty: writes nothing. */
static void h_empty(goro_http_response *w, goro_http_request *r, void *arg)
{
    (void)w;
    (void)r;
    hstate *st = arg;
    atomic_fetch_add(&st->handled, 1);
}

/* /ctxwait: wait for the request context (at most 10 s). */
static void h_ctxwait(goro_http_response *w, goro_http_request *r, void *arg)
{
    hstate *st = arg;
    atomic_store(&st->started_at, goro_now());
    goro_ctx *ctx = goro_http_request_ctx(r);
    int rc = goro_ctx_wait(ctx, goro_deadline_after(10 * SEC));
    if (rc == -ECANCELED) {
        atomic_store(&st->ctx_done_at, goro_now());
        atomic_fetch_add(&st->ctx_cancelled, 1);
    }
    goro_http_response_send(w, 200, "text/plain", "done\n", 5);
}

/* /big?mb=M: a large body written in 64 KiB pieces (write timeout). */
static void h_big(goro_http_response *w, goro_http_request *r, void *arg)
{
    hstate *st = arg;
    long mb = query_num(r, "mb", 64);
    char *piece = malloc(65536);
    if (!piece)
        return;
    memset(piece, 'b', 65536);
    atomic_store(&st->started_at, goro_now());
    for (long i = 0; i < mb * 16; i++) {
        ssize_t n = goro_http_response_write(w, piece, 65536);
        if (n < 0) {
            atomic_store(&st->write_err, n);
            atomic_store(&st->err_at, goro_now());
            break;
        }
    }
    free(piece);
}

/* /drip: read the body until an error (read timeout). */
static void h_drip(goro_http_response *w, goro_http_request *r, void *arg)
{
    hstate *st = arg;
    atomic_fetch_add(&st->body_started, 1);
    char buf[256];
    for (;;) {
        ssize_t n = goro_http_request_read(r, buf, sizeof buf);
        if (n < 0) {
            atomic_store(&st->read_err, n);
            atomic_store(&st->err_at, goro_now());
        }
        if (n <= 0)
            break;
    }
    goro_http_response_send(w, 200, "text/plain", "ok\n", 3);
}

/* /api: exercise the response API's error returns. */
static void h_api(goro_http_response *w, goro_http_request *r, void *arg)
{
    (void)r;
    hstate *st = arg;
    int i = 0;
    st->api[i++] = goro_http_response_set_header(w, "Bad Name", "x");          /* -EINVAL */
    st->api[i++] = goro_http_response_set_header(w, "X-Split", "a\r\nSet-Cookie: x"); /* -EINVAL */
    st->api[i++] = goro_http_response_set_header(w, "X-Nul", "a\x01");         /* -EINVAL */
    st->api[i++] = goro_http_response_set_header(w, "Transfer-Encoding", "chunked"); /* -EINVAL */
    st->api[i++] = goro_http_response_set_header(w, "Content-Length", "12x");  /* -EINVAL */
    st->api[i++] = goro_http_response_set_status(w, 99);                       /* -EINVAL */
    st->api[i++] = goro_http_response_set_status(w, 100);                      /* -EINVAL */
    st->api[i++] = goro_http_response_add_header(w, "X-Multi", "1");           /* 0 */
    st->api[i++] = goro_http_response_add_header(w, "X-Multi", "2");           /* 0 */
    st->api[i++] = goro_http_response_set_header(w, "X-Gone", "1");            /* 0 */
    st->api[i++] = goro_http_response_set_header(w, "x-gone", NULL);           /* 0 */
    st->api[i++] = goro_http_response_set_header(w, "Content-Length", "5");    /* 0 */
    st->api[i++] = goro_http_response_set_status(w, 201);                      /* 0 */
    st->api[i++] = (int)goro_http_response_write(w, "abcdef", 6);              /* -EFBIG */
    st->api[i++] = (int)goro_http_response_write(w, "abc", 3);                 /* 3 */
    st->api[i++] = goro_http_response_set_header(w, "X-Late", "1");            /* -EALREADY */
    st->api[i++] = goro_http_response_set_status(w, 500);                      /* -EALREADY */
    st->api[i++] = (int)goro_http_response_write(w, "de", 2);                  /* 2 */
    st->api[i++] = (int)goro_http_response_write(w, "f", 1);                   /* -EFBIG */
    st->api[i++] = goro_http_response_committed(w);                            /* 1 */
    st->api[i++] = goro_http_response_status(w);                               /* 201 */
}
static const int api_expect[] = {-EINVAL, -EINVAL, -EINVAL,    -EINVAL,    -EINVAL, -EINVAL, -EINVAL,
                                 0,       0,       0,          0,          0,       0,       -EFBIG,
                                 3,       -EALREADY, -EALREADY, 2,         -EFBIG,  1,       201};

/* /nocontent: 204 and a body write that must fail. */
static void h_nocontent(goro_http_response *w, goro_http_request *r, void *arg)
{
    (void)r;
    hstate *st = arg;
    goro_http_response_set_status(w, 204);
    st->api[0] = (int)goro_http_response_write(w, "x", 1);
}

static goro_http_mux *common_mux(hstate *st)
{
    goro_http_mux *m;
    if (goro_http_mux_create(&m))
        return NULL;
    goro_http_mux_handle(m, "/info", h_info, st);
    goro_http_mux_handle(m, "/echo", h_echo, st);
    goro_http_mux_handle(m, "/chunks", h_chunks, st);
    goro_http_mux_handle(m, "/sleep", h_sleep, st);
    goro_http_mux_handle(m, "/empty", h_empty, st);
    goro_http_mux_handle(m, "/ctxwait", h_ctxwait, st);
    goro_http_mux_handle(m, "/big", h_big, st);
    goro_http_mux_handle(m, "/drip", h_drip, st);
    goro_http_mux_handle(m, "/api", h_api, st);
    goro_http_mux_handle(m, "/nocontent", h_nocontent, st);
    return m;
}

/* Number of open descriptors of this process. */
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
    return n - 1; /* the directory's own descriptor */
}

/* ------------------------------------------------------------------------- */
/* Basic requests: method, target, path, query, headers, bodies, HEAD          */
/* ------------------------------------------------------------------------- */

#define NB 8
typedef struct {
    hstate st;
    int start_rc, stop_rc;
    int rc[NB];
    tresp resp[NB];
} basic_state;

static void basic_main(void *arg)
{
    basic_state *s = arg;
    goro_http_mux *m = common_mux(&s->st);
    fix f;
    goro_http_server_opts o = {.handler = goro_http_mux_serve, .handler_arg = m};
    if ((s->start_rc = fix_start(&f, &o))) {
        goro_http_mux_free(m);
        return;
    }
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "GET /info?a=1&b=x%%20y+z HTTP/1.1\r\nHost: %s\r\nX-Foo:   bar baz  \r\n"
                     "User-Agent: test\r\n\r\n",
                     f.addr);
    s->rc[0] = roundtrip(f.addr, req, (size_t)n, &s->resp[0], false);
    n = snprintf(req, sizeof req,
                 "POST /info HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world");
    s->rc[1] = roundtrip(f.addr, req, (size_t)n, &s->resp[1], false);
    n = snprintf(req, sizeof req,
                 "POST /info HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n");
    s->rc[2] = roundtrip(f.addr, req, (size_t)n, &s->resp[2], false);
    n = snprintf(req, sizeof req, "HEAD /info HTTP/1.1\r\nHost: h\r\n\r\n");
    s->rc[3] = roundtrip(f.addr, req, (size_t)n, &s->resp[3], true);
    n = snprintf(req, sizeof req, "GET /empty HTTP/1.1\r\nHost: h\r\n\r\n");
    s->rc[4] = roundtrip(f.addr, req, (size_t)n, &s->resp[4], false);
    n = snprintf(req, sizeof req, "GET /api HTTP/1.1\r\nHost: h\r\n\r\n");
    s->rc[5] = roundtrip(f.addr, req, (size_t)n, &s->resp[5], false);
    n = snprintf(req, sizeof req, "GET /nocontent HTTP/1.1\r\nHost: h\r\n\r\n");
    s->rc[6] = roundtrip(f.addr, req, (size_t)n, &s->resp[6], false);
    /* Expect: 100-continue: the client waits for "100 Continue" first. */
    int rc;
    tc *t = tc_dial(f.addr, &rc);
    s->rc[7] = rc;
    if (t) {
        rc = tc_sends(t, "POST /echo HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
                         "Content-Length: 4\r\n\r\n");
        tresp cont;
        if (!rc)
            rc = tc_response(t, &cont, false, io_deadline());
        if (!rc && cont.status != 100)
            rc = -1000 - cont.status;
        tr_free(&cont);
        if (!rc)
            rc = tc_sends(t, "ping");
        if (!rc)
            rc = tc_response(t, &s->resp[7], false, io_deadline());
        s->rc[7] = rc;
        tc_close(t);
    }
    s->stop_rc = fix_stop(&f, 5 * SEC);
    goro_http_mux_free(m);
}

static void test_basic(void **state)
{
    (void)state;
    basic_state *s = calloc(1, sizeof *s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("http basic", basic_main, s, &o, 60), 0);
    assert_rc(s->start_rc, 0);
    for (int i = 0; i < NB; i++)
        assert_true_msg(s->rc[i] == 0, "exchange %d: %s", i, gt_errname(s->rc[i]));
    tresp *r = &s->resp[0];
    assert_int_equal(r->status, 200);
    assert_string_equal(r->version, "HTTP/1.1");
    assert_non_null(tr_header(r, "Date"));
    assert_string_equal(tr_header(r, "X-Test"), "info");
    assert_string_equal(tr_header(r, "Content-Type"), "text/plain");
    assert_int_equal(r->cl, (long long)r->body_len);
    assert_non_null(strstr(r->body, "method=GET\n"));
    assert_non_null(strstr(r->body, "target=/info?a=1&b=x%20y+z\n"));
    assert_non_null(strstr(r->body, "path=/info\n"));
    assert_non_null(strstr(r->body, "query=a=1&b=x%20y+z\n"));
    assert_non_null(strstr(r->body, "version=11\n"));
    assert_non_null(strstr(r->body, "cl=0\n"));
    assert_non_null(strstr(r->body, "h:X-Foo=bar baz\n"));
    assert_non_null(strstr(r->body, "h:User-Agent=test\n"));
    assert_non_null(strstr(r->body, "x-foo=bar baz\n"));
    assert_non_null(strstr(r->body, "peer=set\n"));
    assert_rc(s->st.query_rc, 5);
    assert_string_equal(s->st.query_b, "x y z");

    r = &s->resp[1];
    assert_int_equal(r->status, 200);
    assert_non_null(strstr(r->body, "method=POST\n"));
    assert_non_null(strstr(r->body, "cl=11\n"));
    assert_non_null(strstr(r->body, "body=hello world\n"));

    r = &s->resp[2];
    assert_int_equal(r->status, 200);
    assert_non_null(strstr(r->body, "cl=-1\n"));
    assert_non_null(strstr(r->body, "body=hello world\n"));

    r = &s->resp[3]; /* HEAD: Content-Length of the body it would have had */
    assert_int_equal(r->status, 200);
    assert_true(r->cl > 50);
    assert_int_equal(r->body_len, 0);

    r = &s->resp[4]; /* a handler that writes nothing: empty 200 */
    assert_int_equal(r->status, 200);
    assert_int_equal(r->cl, 0);
    assert_int_equal(r->body_len, 0);

    r = &s->resp[5];
    assert_int_equal(r->status, 201);
    assert_int_equal(r->cl, 5);
    assert_string_equal(r->body, "abcde");
    assert_null(tr_header(r, "X-Gone"));
    assert_null(tr_header(r, "X-Late"));
    assert_null(tr_header(r, "X-Split"));
    int multi = 0;
    for (int i = 0; i < r->nh; i++)
        multi += strcasecmp(r->hname[i], "X-Multi") == 0;
    assert_int_equal(multi, 2);
    for (size_t i = 0; i < sizeof api_expect / sizeof api_expect[0]; i++)
        assert_true_msg(s->st.api[i] == api_expect[i], "api call %zu returned %d (%s), expected %d",
                        i, s->st.api[i], gt_errname(s->st.api[i]), api_expect[i]);

    r = &s->resp[6];
    assert_int_equal(r->status, 204);
    assert_null(tr_header(r, "Content-Length"));
    assert_null(tr_header(r, "Transfer-Encoding"));

    r = &s->resp[7];
    assert_int_equal(r->status, 200);
    assert_string_equal(r->body, "ping");
    assert_rc(s->stop_rc, 0);
    for (int i = 0; i < NB; i++)
        tr_free(&s->resp[i]);
    free(s);
}

/* ------------------------------------------------------------------------- */
/* Keep-alive, pipelining, chunked and close-delimited responses              */
/* ------------------------------------------------------------------------- */

typedef struct {
    hstate st;
    int start_rc, stop_rc;
    int seq_rc, pipe_rc, chunk_rc, close_rc, v10_rc, v10ka_rc, small_rc;
    int seq_ok, pipe_ok;
    tresp chunk, small, v10, v10ka, close_resp;
    bool close_eof, v10_eof, v10ka_open;
} ka_state;

static void ka_main(void *arg)
{
    ka_state *s = arg;
    goro_http_mux *m = common_mux(&s->st);
    fix f;
    goro_http_server_opts o = {.handler = goro_http_mux_serve, .handler_arg = m};
    if ((s->start_rc = fix_start(&f, &o))) {
        goro_http_mux_free(m);
        return;
    }
    int rc;
    /* Sequential requests on one connection. */
    tc *t = tc_dial(f.addr, &rc);
    s->seq_rc = rc;
    for (int i = 0; t && i < 5 && !rc; i++) {
        char req[256];
        int n = snprintf(req, sizeof req,
                         "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n\r\nseq%03d", i);
        tresp r;
        rc = tc_send(t, req, (size_t)n);
        if (!rc)
            rc = tc_response(t, &r, false, io_deadline());
        char want[8];
        snprintf(want, sizeof want, "seq%03d", i);
        if (!rc && r.status == 200 && strcmp(r.body, want) == 0)
            s->seq_ok++;
        tr_free(&r);
    }
    s->seq_rc = rc;
    /* Pipelining: seven requests in one write, answered in order. */
    if (t && !rc) {
        char big[4096];
        size_t n = 0;
        for (int i = 0; i < 7; i++) {
            if (i % 2)
                n += (size_t)snprintf(big + n, sizeof big - n,
                                      "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\n\r\npipe%03d", i);
            else
                n += (size_t)snprintf(big + n, sizeof big - n,
                                      "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                                      "4\r\npipe\r\n3\r\n%03d\r\n0\r\n\r\n", i);
        }
        rc = tc_send(t, big, n);
        for (int i = 0; i < 7 && !rc; i++) {
            tresp r;
            rc = tc_response(t, &r, false, io_deadline());
            char want[16];
            snprintf(want, sizeof want, "pipe%03d", i);
            if (!rc && r.status == 200 && strcmp(r.body, want) == 0)
                s->pipe_ok++;
            tr_free(&r);
        }
        s->pipe_rc = rc;
    }
    /* Streamed response: flushed pieces are sent chunked. */
    if (t && !rc) {
        rc = tc_sends(t, "GET /chunks?n=5&size=3000&flush=1 HTTP/1.1\r\nHost: h\r\n\r\n");
        if (!rc)
            rc = tc_response(t, &s->chunk, false, io_deadline());
        s->chunk_rc = rc;
    }
    /* Small unflushed pieces: Content-Length computed by the server. */
    if (t && !rc) {
        rc = tc_sends(t, "GET /chunks?n=3&size=100&flush=0 HTTP/1.1\r\nHost: h\r\n\r\n");
        if (!rc)
            rc = tc_response(t, &s->small, false, io_deadline());
        s->small_rc = rc;
    }
    /* Connection: close is honoured. */
    if (t && !rc) {
        rc = tc_sends(t, "GET /empty HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
        if (!rc)
            rc = tc_response(t, &s->close_resp, false, io_deadline());
        s->close_rc = rc;
        s->close_eof = !rc && tc_wait_eof(t, io_deadline());
    }
    tc_close(t);
    /* HTTP/1.0 without keep-alive: streamed body delimited by close. */
    t = tc_dial(f.addr, &rc);
    if (t) {
        rc = tc_sends(t, "GET /chunks?n=4&size=3000&flush=1 HTTP/1.0\r\n\r\n");
        if (!rc)
            rc = tc_response(t, &s->v10, false, io_deadline());
        s->v10_eof = true; /* the body ended with the stream */
        tc_close(t);
    }
    s->v10_rc = rc;
    /* HTTP/1.0 keep-alive. */
    t = tc_dial(f.addr, &rc);
    if (t) {
        rc = tc_sends(t, "GET /empty HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        if (!rc)
            rc = tc_response(t, &s->v10ka, false, io_deadline());
        if (!rc) {
            tresp r2;
            rc = tc_sends(t, "GET /empty HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
            if (!rc)
                rc = tc_response(t, &r2, false, io_deadline());
            s->v10ka_open = !rc && r2.status == 200;
            tr_free(&r2);
        }
        tc_close(t);
    }
    s->v10ka_rc = rc;
    s->stop_rc = fix_stop(&f, 5 * SEC);
    goro_http_mux_free(m);
}

static void test_keepalive_pipelining(void **state)
{
    (void)state;
    ka_state *s = calloc(1, sizeof *s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("http keep-alive", ka_main, s, &o, 60), 0);
    assert_rc(s->start_rc, 0);
    assert_rc(s->seq_rc, 0);
    assert_int_equal(s->seq_ok, 5);
    assert_rc(s->pipe_rc, 0);
    assert_int_equal(s->pipe_ok, 7);
    assert_rc(s->chunk_rc, 0);
    assert_true(s->chunk.chunked);
    assert_int_equal(s->chunk.cl, -1);
    assert_int_equal(s->chunk.body_len, 5 * 3000);
    assert_non_null(strstr(s->chunk.body, "piece4:"));
    assert_rc(s->small_rc, 0);
    assert_false(s->small.chunked);
    assert_int_equal(s->small.cl, 300);
    assert_rc(s->close_rc, 0);
    assert_string_equal(tr_header(&s->close_resp, "Connection"), "close");
    assert_true(s->close_eof);
    assert_rc(s->v10_rc, 0);
    assert_string_equal(s->v10.version, "HTTP/1.0");
    assert_false(s->v10.chunked);
    assert_int_equal(s->v10.cl, -1);
    assert_int_equal(s->v10.body_len, 4 * 3000);
    assert_rc(s->v10ka_rc, 0);
    assert_string_equal(tr_header(&s->v10ka, "Connection"), "keep-alive");
    assert_true(s->v10ka_open);
    assert_rc(s->stop_rc, 0);
    tr_free(&s->chunk);
    tr_free(&s->small);
    tr_free(&s->v10);
    tr_free(&s->v10ka);
    tr_free(&s->close_resp);
    free(s);
}

/* ------------------------------------------------------------------------- */
/* Malformed requests: one status code per class, then the connection closes  */
/* ------------------------------------------------------------------------- */

typedef struct bad_case {
    const char *name;
    const char *raw; /* NULL: built by the test (see below) */
    size_t len;      /* 0: strlen(raw) */
    int status;      /* expected; 200 for the accepted look-alikes */
    bool closes;     /* the server must close the connection afterwards */
} bad_case;

#define RAW(s) s, sizeof(s) - 1
#define H "GET /echo HTTP/1.1\r\nHost: h\r\n"
#define P "POST /echo HTTP/1.1\r\nHost: h\r\n"

static const bad_case bad_cases[] = {
    {"bare CR in a value", RAW(H "X: a\rb\r\n\r\n"), 400, true},
    {"bare CR ending a line", RAW(H "X: a\r\r\n\r\n"), 400, true},
    {"bare LF line ends", RAW("GET /echo HTTP/1.1\nHost: h\n\n"), 400, true},
    {"bare LF in the head", RAW(H "X: a\nY: b\r\n\r\n"), 400, true},
    {"obs-fold", RAW(H "X: a\r\n  folded\r\n\r\n"), 400, true},
    {"whitespace before the first field", RAW("GET /echo HTTP/1.1\r\n Host: h\r\n\r\n"), 400, true},
    {"NUL in a value", RAW(H "X: a\0b\r\n\r\n"), 400, true},
    {"control char in a value", RAW(H "X: a\x01" "b\r\n\r\n"), 400, true},
    {"DEL in a value", RAW(H "X: a\x7f\r\n\r\n"), 400, true},
    {"space before colon", RAW("GET /echo HTTP/1.1\r\nHost : h\r\n\r\n"), 400, true},
    {"bad char in a field name", RAW(H "X{y}: a\r\n\r\n"), 400, true},
    {"empty field name", RAW(H ": a\r\n\r\n"), 400, true},
    {"bad char in the method", RAW("G(T /echo HTTP/1.1\r\nHost: h\r\n\r\n"), 400, true},
    {"two spaces in the request line", RAW("GET  /echo HTTP/1.1\r\nHost: h\r\n\r\n"), 400, true},
    {"space in the target", RAW("GET /a b HTTP/1.1\r\nHost: h\r\n\r\n"), 400, true},
    {"fragment in the target", RAW("GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n"), 400, true},
    {"bad escape in the target", RAW("GET /a%zz HTTP/1.1\r\nHost: h\r\n\r\n"), 400, true},
    {"non-ASCII in the target", RAW("GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n"), 400, true},
    {"relative target", RAW("GET echo HTTP/1.1\r\nHost: h\r\n\r\n"), 400, true},
    {"asterisk with GET", RAW("GET * HTTP/1.1\r\nHost: h\r\n\r\n"), 400, true},
    {"conflicting Content-Length", RAW(P "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello"), 400, true},
    {"Content-Length list", RAW(P "Content-Length: 5, 5\r\n\r\nhello"), 400, true},
    {"negative Content-Length", RAW(P "Content-Length: -1\r\n\r\n"), 400, true},
    {"signed Content-Length", RAW(P "Content-Length: +5\r\n\r\nhello"), 400, true},
    {"empty Content-Length", RAW(P "Content-Length:\r\n\r\n"), 400, true},
    {"huge Content-Length", RAW(P "Content-Length: 99999999999999999999\r\n\r\n"), 400, true},
    {"Content-Length with Transfer-Encoding",
     RAW(P "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400, true},
    {"unknown Transfer-Encoding", RAW(P "Transfer-Encoding: gzip\r\n\r\n"), 501, true},
    {"gzip, chunked", RAW(P "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"), 501, true},
    {"chunked twice", RAW(P "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 501, true},
    {"Transfer-Encoding in HTTP/1.0", RAW("POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400, true},
    {"HTTP/2.0", RAW("GET /echo HTTP/2.0\r\nHost: h\r\n\r\n"), 505, true},
    {"HTTP/1.2", RAW("GET /echo HTTP/1.2\r\nHost: h\r\n\r\n"), 505, true},
    {"HTTP/0.9 style", RAW("GET /echo HTTP/0.9\r\n\r\n"), 505, true},
    {"lower-case version", RAW("GET /echo http/1.1\r\nHost: h\r\n\r\n"), 400, true},
    {"version with junk", RAW("GET /echo HTTP/1.10\r\nHost: h\r\n\r\n"), 400, true},
    {"missing Host", RAW("GET /echo HTTP/1.1\r\n\r\n"), 400, true},
    {"two Host fields", RAW("GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400, true},
    {"Host with a space", RAW("GET /echo HTTP/1.1\r\nHost: a b\r\n\r\n"), 400, true},
    {"Expect other than 100-continue", RAW(H "Expect: 200-ok\r\n\r\n"), 417, true},
    {"CONNECT", RAW("CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n"), 501, true},
    {"malformed chunk size", RAW(P "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"), 400, true},
    {"chunk without CRLF", RAW(P "Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n"), 400, true},
    {"obs-fold in trailers", RAW(P "Transfer-Encoding: chunked\r\n\r\n0\r\nA: b\r\n c\r\n\r\n"), 400, true},
    {"oversized Content-Length body", RAW(P "Content-Length: 5000\r\n\r\n"), 413, true},
    {"oversized chunked body", RAW(P "Transfer-Encoding: chunked\r\n\r\n7d0\r\n"), 413, true},
    {"oversized head", NULL, 0, 431, true},
    {"too many fields", NULL, 1, 431, true},
    /* Accepted look-alikes. */
    {"HTTP/1.0 without Host", RAW("GET /echo HTTP/1.0\r\n\r\n"), 200, true},
    {"empty lines before the request", RAW("\r\n\r\nGET /echo HTTP/1.1\r\nHost: h\r\n\r\n"), 200, false},
    {"repeated equal Content-Length", RAW(P "Content-Length: 2\r\nContent-Length: 2\r\n\r\nok"), 200, false},
    {"Transfer-Encoding: Chunked", RAW(P "Transfer-Encoding: Chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"), 200, false},
    {"absolute-form target", RAW("GET http://h/echo?x=1 HTTP/1.1\r\nHost: h\r\n\r\n"), 200, false},
    {"OPTIONS *", RAW("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"), 404, false},
    {"obs-text in a value", RAW(H "X: caf\xc3\xa9\r\n\r\n"), 200, false},
    {"HTAB in a value", RAW(H "X: a\tb\r\n\r\n"), 200, false},
    {"empty Host", RAW("GET /echo HTTP/1.1\r\nHost:\r\n\r\n"), 200, false},
};
#define NBAD (sizeof bad_cases / sizeof bad_cases[0])

typedef struct {
    hstate st;
    int start_rc, stop_rc;
    int rc[NBAD];
    int status[NBAD];
    bool eof[NBAD];
} bad_state;

static void bad_main(void *arg)
{
    bad_state *s = arg;
    goro_http_mux *m = common_mux(&s->st);
    fix f;
    goro_http_server_opts o = {.handler = goro_http_mux_serve,
                               .handler_arg = m,
                               .max_header_bytes = 1024,
                               .max_body_bytes = 1000};
    if ((s->start_rc = fix_start(&f, &o))) {
        goro_http_mux_free(m);
        return;
    }
    char *built = malloc(8192);
    for (size_t i = 0; i < NBAD; i++) {
        const bad_case *bc = &bad_cases[i];
        const char *raw = bc->raw;
        size_t len = bc->len;
        if (!raw) {
            size_t n = (size_t)snprintf(built, 8192, H);
            if (len == 0) { /* a 2000-byte field */
                n += (size_t)snprintf(built + n, 8192 - n, "X-Big: ");
                memset(built + n, 'x', 2000);
                n += 2000;
                n += (size_t)snprintf(built + n, 8192 - n, "\r\n\r\n");
            } else { /* 129 small fields (fits in 1024 bytes) */
                for (int k = 0; k < 129; k++)
                    n += (size_t)snprintf(built + n, 8192 - n, "A:\r\n");
                n += (size_t)snprintf(built + n, 8192 - n, "\r\n");
            }
            raw = built;
            len = n;
        }
        int rc;
        tc *t = tc_dial(f.addr, &rc);
        if (t) {
            rc = tc_send(t, raw, len);
            tresp r;
            if (!rc)
                rc = tc_response(t, &r, false, io_deadline());
            if (!rc) {
                s->status[i] = r.status;
                tr_free(&r);
                s->eof[i] = tc_wait_eof(t, goro_deadline_after(bc->closes ? gt_slow(3 * SEC) : 200 * MS));
            }
            tc_close(t);
        }
        s->rc[i] = rc;
    }
    free(built);
    s->stop_rc = fix_stop(&f, 5 * SEC);
    goro_http_mux_free(m);
}

static void test_malformed(void **state)
{
    (void)state;
    bad_state *s = calloc(1, sizeof *s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("http malformed", bad_main, s, &o, 120), 0);
    assert_rc(s->start_rc, 0);
    int failed = 0;
    for (size_t i = 0; i < NBAD; i++) {
        const bad_case *bc = &bad_cases[i];
        bool ok = s->rc[i] == 0 && s->status[i] == bc->status && s->eof[i] == bc->closes;
        if (!ok) {
            print_error("case \"%s\": rc %s, status %d (want %d), closed %d (want %d)\n", bc->name,
                        gt_errname(s->rc[i]), s->status[i], bc->status, s->eof[i], bc->closes);
            failed++;
        }
    }
    assert_int_equal(failed, 0);
    assert_rc(s->stop_rc, 0);
    free(s);
}

/* ------------------------------------------------------------------------- */
/* The mux                                                                    */
/* ------------------------------------------------------------------------- */

static void h_tag(goro_http_response *w, goro_http_request *r, void *arg)
{
    (void)r;
    const char *tag = arg;
    goro_http_response_send(w, 200, "text/plain", tag, strlen(tag));
}

typedef struct {
    int start_rc, stop_rc;
    int reg[8];
    int rc[16];
    int status[16];
    char body[16][32];
    int rc404, status404;
} mux_state;

static const struct {
    const char *path;
    const char *tag; /* NULL: 404 */
} mux_cases[] = {
    {"/", "root"},          {"/foo", "root"},         {"/api/", "api"},
    {"/api/x/y", "api"},    {"/api/v1/", "v1"},       {"/api/v1/z", "v1"},
    {"/exact", "exact"},    {"/exact/", "root"},      {"/exactly", "root"},
    {"/api", "root"},       {"/api/v1", "api"},       {"/a?x=/api/", "root"},
};
#define NMUX (sizeof mux_cases / sizeof mux_cases[0])

static void mux_main(void *arg)
{
    mux_state *s = arg;
    goro_http_mux *m;
    if ((s->start_rc = goro_http_mux_create(&m)))
        return;
    s->reg[0] = goro_http_mux_handle(m, "/api/", h_tag, "api");
    s->reg[1] = goro_http_mux_handle(m, "/", h_tag, "root");
    s->reg[2] = goro_http_mux_handle(m, "/exact", h_tag, "exact");
    s->reg[3] = goro_http_mux_handle(m, "/api/v1/", h_tag, "v1");
    s->reg[4] = goro_http_mux_handle(m, "/api/", h_tag, "dup");  /* -EEXIST */
    s->reg[5] = goro_http_mux_handle(m, "api", h_tag, "bad");    /* -EINVAL */
    s->reg[6] = goro_http_mux_handle(m, "/x", NULL, NULL);       /* -EINVAL */
    fix f;
    goro_http_server_opts o = {.handler = goro_http_mux_serve, .handler_arg = m};
    if ((s->start_rc = fix_start(&f, &o))) {
        goro_http_mux_free(m);
        return;
    }
    for (size_t i = 0; i < NMUX; i++) {
        char req[256];
        int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: h\r\n\r\n", mux_cases[i].path);
        tresp r;
        s->rc[i] = roundtrip(f.addr, req, (size_t)n, &r, false);
        if (!s->rc[i]) {
            s->status[i] = r.status;
            snprintf(s->body[i], sizeof s->body[i], "%s", r.body);
            tr_free(&r);
        }
    }
    s->stop_rc = fix_stop(&f, 5 * SEC);
    goro_http_mux_free(m);
    /* A mux without "/" answers 404. */
    if (goro_http_mux_create(&m))
        return;
    goro_http_mux_handle(m, "/only", h_tag, "only");
    o.handler_arg = m;
    fix f2; /* not f: its WaitGroup may still be touched by the last done() */
    if (fix_start(&f2, &o) == 0) {
        tresp r;
        const char *req = "GET /other HTTP/1.1\r\nHost: h\r\n\r\n";
        s->rc404 = roundtrip(f2.addr, req, strlen(req), &r, false);
        if (!s->rc404) {
            s->status404 = r.status;
            tr_free(&r);
        }
        fix_stop(&f2, 5 * SEC);
    }
    goro_http_mux_free(m);
}

static void test_mux(void **state)
{
    (void)state;
    mux_state s;
    memset(&s, 0, sizeof s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("http mux", mux_main, &s, &o, 60), 0);
    assert_rc(s.start_rc, 0);
    for (int i = 0; i < 4; i++)
        assert_rc(s.reg[i], 0);
    assert_rc(s.reg[4], -EEXIST);
    assert_rc(s.reg[5], -EINVAL);
    assert_rc(s.reg[6], -EINVAL);
    for (size_t i = 0; i < NMUX; i++) {
        assert_rc(s.rc[i], 0);
        assert_int_equal(s.status[i], 200);
        assert_true_msg(strcmp(s.body[i], mux_cases[i].tag) == 0, "path %s went to %s, want %s",
                        mux_cases[i].path, s.body[i], mux_cases[i].tag);
    }
    assert_rc(s.stop_rc, 0);
    assert_rc(s.rc404, 0);
    assert_int_equal(s.status404, 404);
}

/* ------------------------------------------------------------------------- */
/* 1,000 concurrent echo clients, every byte accounted for                     */
/* ------------------------------------------------------------------------- */

#define ECHO_REQS 3
#define ECHO_MAX_BODY 32768

typedef struct echo_state {
    hstate st;
    int start_rc, stop_rc;
    size_t nclients;
    char addr[64];
    goro_waitgroup wg;
    atomic_long ok_clients, ok_requests;
    atomic_long sent, received;
    atomic_long first_err;
    atomic_long mismatches;
    int64_t elapsed;
} echo_state;

static void fill_body(char *b, size_t n, uint64_t seed)
{
    gt_rng g;
    gt_rng_seed(&g, seed);
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = gt_rng_next(&g);
        size_t k = n - i < 8 ? n - i : 8;
        memcpy(b + i, &v, k);
    }
}

static void echo_client(void *arg)
{
    echo_state *s = arg;
    static atomic_long next_id;
    long id = atomic_fetch_add(&next_id, 1);
    char *body = malloc(ECHO_MAX_BODY);
    char *chunked = malloc(ECHO_MAX_BODY + 256);
    int rc = -ENOMEM;
    tc *t = body && chunked ? tc_dial(s->addr, &rc) : NULL;
    int ok = 0;
    gt_rng g;
    gt_rng_seed(&g, (uint64_t)id * 7919 + 1);
    for (int i = 0; t && i < ECHO_REQS && !rc; i++) {
        size_t n = gt_rng_below(&g, ECHO_MAX_BODY);
        bool use_chunked = gt_rng_below(&g, 3) == 0;
        fill_body(body, n, (uint64_t)id << 8 | (uint64_t)i);
        char head[256];
        int hl;
        if (use_chunked) {
            hl = snprintf(head, sizeof head,
                          "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
            /* two chunks, then the last one */
            size_t half = n / 2, cl = 0;
            if (half)
                cl += (size_t)sprintf(chunked + cl, "%zx\r\n", half);
            memcpy(chunked + cl, body, half);
            cl += half;
            if (half)
                cl += (size_t)sprintf(chunked + cl, "\r\n");
            if (n - half) {
                cl += (size_t)sprintf(chunked + cl, "%zx;ext\r\n", n - half);
                memcpy(chunked + cl, body + half, n - half);
                cl += n - half;
                cl += (size_t)sprintf(chunked + cl, "\r\n");
            }
            cl += (size_t)sprintf(chunked + cl, "0\r\n\r\n");
            rc = tc_send(t, head, (size_t)hl);
            if (!rc)
                rc = tc_send(t, chunked, cl);
        } else {
            hl = snprintf(head, sizeof head,
                          "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: %zu\r\n\r\n", n);
            rc = tc_send(t, head, (size_t)hl);
            if (!rc && n)
                rc = tc_send(t, body, n);
        }
        if (rc)
            break;
        atomic_fetch_add(&s->sent, (long)n);
        tresp r;
        rc = tc_response(t, &r, false, io_deadline());
        if (!rc) {
            atomic_fetch_add(&s->received, (long)r.body_len);
            if (r.status != 200 || r.body_len != n || memcmp(r.body, body, n) != 0)
                atomic_fetch_add(&s->mismatches, 1);
            else {
                ok++;
                atomic_fetch_add(&s->ok_requests, 1);
            }
            tr_free(&r);
        }
    }
    if (rc) {
        long zero = 0;
        atomic_compare_exchange_strong(&s->first_err, &zero, rc);
    }
    if (ok == ECHO_REQS)
        atomic_fetch_add(&s->ok_clients, 1);
    tc_close(t);
    free(body);
    free(chunked);
    goro_waitgroup_done(&s->wg);
}

static void echo_main(void *arg)
{
    echo_state *s = arg;
    goro_http_mux *m = common_mux(&s->st);
    fix f;
    goro_http_server_opts o = {.handler = goro_http_mux_serve, .handler_arg = m};
    if ((s->start_rc = fix_start(&f, &o))) {
        goro_http_mux_free(m);
        return;
    }
    memcpy(s->addr, f.addr, sizeof s->addr);
    int64_t t0 = goro_now();
    goro_waitgroup_add(&s->wg, (int)s->nclients);
    for (size_t i = 0; i < s->nclients; i++)
        goro_go(echo_client, s);
    if (gt_wg_wait(&s->wg, 120)) {
        atomic_store(&s->first_err, -ETIMEDOUT);
        return; /* clients still running: do not tear down under them */
    }
    s->elapsed = goro_now() - t0;
    s->stop_rc = fix_stop(&f, 5 * SEC);
    goro_http_mux_free(m);
}

static void test_echo_many_clients(void **state)
{
    (void)state;
    echo_state *s = calloc(1, sizeof *s);
    s->nclients = scale("http echo clients", 1000, 1000, 250);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("http 1000 echo clients", echo_main, s, &o, 180), 0);
    assert_rc(s->start_rc, 0);
    fprintf(stderr, "echo: %zu clients x %d requests in %.1f ms, %ld body bytes each way\n",
            s->nclients, ECHO_REQS, (double)s->elapsed / 1e6, atomic_load(&s->sent));
    assert_rc(atomic_load(&s->first_err), 0);
    assert_int_equal(atomic_load(&s->mismatches), 0);
    assert_int_equal(atomic_load(&s->ok_clients), (long)s->nclients);
    assert_int_equal(atomic_load(&s->ok_requests), (long)(s->nclients * ECHO_REQS));
    assert_int_equal(atomic_load(&s->sent), atomic_load(&s->received));
    assert_int_equal(atomic_load(&s->sent), atomic_load(&s->st.echo_bytes));
    assert_rc(s->stop_rc, 0);
    free(s);
}

/* ------------------------------------------------------------------------- */
/* Deadlines fire on time                                                     */
/* ------------------------------------------------------------------------- */

#define DL_TRIES 5
#define DL_HEADER (100 * MS)
#define DL_IDLE (150 * MS)
#define DL_WRITE (200 * MS)
#define DL_READ (250 * MS)

typedef struct {
    hstate st;
    int start_rc, stop_rc;
    int64_t silent[DL_TRIES];  /* connect -> closed, nothing sent */
    int64_t partial[DL_TRIES]; /* connect -> closed, half a head sent */
    int64_t idle[DL_TRIES];    /* response read -> closed (for "not late") */
    int64_t idle_lo[DL_TRIES]; /* request sent -> closed (for "not early") */
    int rc;
    int64_t write_took[DL_TRIES]; /* head sent -> the handler's write failed */
    int64_t read_took[DL_TRIES];  /* head sent -> the handler's body read failed */
    long write_err[DL_TRIES], read_err[DL_TRIES];
} dl_state;

static void dl_main(void *arg)
{
    dl_state *s = arg;
    goro_http_mux *m = common_mux(&s->st);
    fix f;
    goro_http_server_opts o = {.handler = goro_http_mux_serve,
                               .handler_arg = m,
                               .read_header_timeout = DL_HEADER,
                               .idle_timeout = DL_IDLE,
                               .write_timeout = DL_WRITE,
                               .read_timeout = DL_READ};
    if ((s->start_rc = fix_start(&f, &o))) {
        goro_http_mux_free(m);
        return;
    }
    int rc = 0;
    for (int i = 0; i < DL_TRIES && !rc; i++) {
        int64_t t0 = goro_now(); /* before the connect: the server counts from its accept */
        tc *t = tc_dial(f.addr, &rc);
        if (!t)
            break;
        if (!tc_wait_eof(t, io_deadline()))
            rc = -1;
        s->silent[i] = goro_now() - t0;
        tc_close(t);

        t0 = goro_now();
        t = tc_dial(f.addr, &rc);
        if (!t)
            break;
        rc = tc_sends(t, "GET /echo HTTP/1.1\r\nHost:");
        if (!rc && !tc_wait_eof(t, io_deadline()))
            rc = -2;
        s->partial[i] = goro_now() - t0;
        tc_close(t);

        t = tc_dial(f.addr, &rc);
        if (!t)
            break;
        tresp r;
        /* The server starts the idle timer when its response is out: after
         * the request is sent, before the client has read the response. */
        int64_t t_sent = goro_now();
        rc = tc_sends(t, "GET /empty HTTP/1.1\r\nHost: h\r\n\r\n");
        if (!rc)
            rc = tc_response(t, &r, false, io_deadline());
        t0 = goro_now();
        if (!rc) {
            tr_free(&r);
            if (!tc_wait_eof(t, io_deadline()))
                rc = -3;
        }
        s->idle[i] = goro_now() - t0;
        s->idle_lo[i] = goro_now() - t_sent;
        tc_close(t);
    }
    for (int i = 0; i < DL_TRIES && !rc; i++) {
        /* Write timeout: the client never reads a 64 MiB response. */
        tc *t = tc_dial(f.addr, &rc);
        if (!t)
            break;
        atomic_store(&s->st.write_err, 0);
        atomic_store(&s->st.err_at, 0);
        /* The server counts from the end of the head, after this. */
        int64_t t0 = goro_now();
        rc = tc_sends(t, "GET /big?mb=64 HTTP/1.1\r\nHost: h\r\n\r\n");
        while (!rc && atomic_load(&s->st.write_err) == 0 && goro_now() - t0 < gt_slow(5 * SEC))
            goro_sleep(MS);
        s->write_err[i] = atomic_load(&s->st.write_err);
        s->write_took[i] = atomic_load(&s->st.err_at) - t0;
        tc_close(t);
        if (rc)
            break;

        /* Read timeout: a body that stops half-way. The server counts the
         * first request's read timeout from its accept, which can come
         * before tc_dial returns here: the clock starts before the dial. */
        atomic_store(&s->st.read_err, 0);
        atomic_store(&s->st.err_at, 0);
        t0 = goro_now();
        t = tc_dial(f.addr, &rc);
        if (!t)
            break;
        rc = tc_sends(t, "POST /drip HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n0123456789");
        while (!rc && atomic_load(&s->st.read_err) == 0 && goro_now() - t0 < gt_slow(5 * SEC))
            goro_sleep(MS);
        s->read_err[i] = atomic_load(&s->st.read_err);
        s->read_took[i] = atomic_load(&s->st.err_at) - t0;
        tc_close(t);
    }
    s->rc = rc;
    s->stop_rc = fix_stop(&f, 5 * SEC);
    goro_http_mux_free(m);
}

/* Every try no earlier than want (lo: times measured from a point that is
 * surely before the server's clock started), the median not much later
 * (v: measured from a point as close as the client can get). */
static void check_timing2(const char *what, const int64_t *v, const int64_t *lo, int64_t want)
{
    int64_t med = gt_median_i64(v, DL_TRIES);
    int64_t min = lo[0];
    for (int i = 1; i < DL_TRIES; i++)
        min = lo[i] < min ? lo[i] : min;
    fprintf(stderr, "%s: timeout %.0f ms, hit after median %.2f ms (min %.2f)\n", what,
            (double)want / 1e6, (double)med / 1e6, (double)min / 1e6);
    assert_true_msg(min >= want - MS, "%s: closed %.2f ms early", what, (double)(want - min) / 1e6);
    assert_true_msg(med - want <= gt_late_tolerance(), "%s: median %.2f ms late", what,
                    (double)(med - want) / 1e6);
}

static void check_timing(const char *what, const int64_t *v, int64_t want)
{
    check_timing2(what, v, v, want);
}

static void test_deadlines(void **state)
{
    (void)state;
    dl_state *s = calloc(1, sizeof *s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("http deadlines", dl_main, s, &o, 60), 0);
    assert_rc(s->start_rc, 0);
    assert_rc(s->rc, 0);
    check_timing("read-header timeout, silent client", s->silent, DL_HEADER);
    check_timing("read-header timeout, half a head", s->partial, DL_HEADER);
    check_timing2("idle timeout", s->idle, s->idle_lo, DL_IDLE);
    for (int i = 0; i < DL_TRIES; i++) {
        assert_rc(s->write_err[i], -ETIMEDOUT);
        assert_rc(s->read_err[i], -ETIMEDOUT);
    }
    check_timing("write timeout, client never reads", s->write_took, DL_WRITE);
    check_timing("read timeout, body stops half-way", s->read_took, DL_READ);
    assert_rc(s->stop_rc, 0);
    free(s);
}

/* ------------------------------------------------------------------------- */
/* Clients that vanish leave no goroutine and no descriptor behind            */
/* ------------------------------------------------------------------------- */

#define DC_CASES 8

typedef struct {
    hstate st;
    int start_rc, stop_rc;
    size_t g0, g_after;
    int fd0, fd_after;
    int rc[DC_CASES];
    bool back_to_base;
    long body_err;
    long ctx_cancelled;
    int64_t ctx_latency;
    size_t g_end;
    int fd_end, fd_start;
} dc_state;

/* Cases 2, 3 and 6 reach /echo or /empty (handled counts them), 4 and 5
 * /sleep or /ctxwait (they set started_at). */
static bool dc_has_handler(int i) { return i >= 2 && i <= 6; }

static bool dc_started(dc_state *s, int i, long handled0)
{
    if (i == 4 || i == 5)
        return atomic_load(&s->st.started_at) != 0;
    return atomic_load(&s->st.handled) > handled0;
}

static void dc_main(void *arg)
{
    dc_state *s = arg;
    s->fd_start = count_fds();
    goro_http_mux *m = common_mux(&s->st);
    fix f;
    goro_http_server_opts o = {.handler = goro_http_mux_serve, .handler_arg = m};
    if ((s->start_rc = fix_start(&f, &o))) {
        goro_http_mux_free(m);
        return;
    }
    /* The baseline: the server waits in accept (its goroutine has run). */
    int64_t end = goro_now() + gt_slow(5 * SEC);
    while (goro_num_io_waiting() < 1 && goro_now() < end)
        goro_sleep(MS);
    s->g0 = goro_num_goroutines();
    s->fd0 = count_fds();
    static const char *sends[DC_CASES] = {
        "",                                                                /* connect, close */
        "GET /echo HTTP/1.1\r\nHo",                                        /* half a head */
        "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n0123456789", /* half a body */
        "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123", /* half a chunk */
        "GET /sleep?ms=200&size=300000 HTTP/1.1\r\nHost: h\r\n\r\n",        /* gone before the answer */
        "GET /ctxwait HTTP/1.1\r\nHost: h\r\n\r\n",                        /* handler waits on its ctx */
        "GET /empty HTTP/1.1\r\nHost: h\r\n\r\nGET /empty HTTP/1.1\r\nHost: h\r\n\r\nGET /em", /* pipelined */
        "GET /chunks?n=100&size=4000 HTTP/1.1\r\nHost: h\r\n\r\n",         /* streaming, never read */
    };
    for (int i = 0; i < DC_CASES; i++) {
        int rc;
        long handled0 = atomic_load(&s->st.handled);
        atomic_store(&s->st.started_at, 0);
        tc *t = tc_dial(f.addr, &rc);
        if (t) {
            if (sends[i][0])
                rc = tc_sends(t, sends[i]);
            /* Where a handler runs, it has started before the client goes
             * (bounded wait); elsewhere give the server a moment to read. */
            if (dc_has_handler(i)) {
                int64_t hend = goro_now() + gt_slow(5 * SEC);
                bool started = false;
                while (!rc && !(started = dc_started(s, i, handled0)) && goro_now() < hend)
                    goro_sleep(MS);
                if (!rc && !started)
                    rc = -ETIMEDOUT;
            } else {
                goro_sleep(50 * MS);
            }
            if (i == 5)
                atomic_store(&s->st.started_at, goro_now());
            int64_t closed_at = goro_now();
            tc_close(t);
            if (i == 5) {
                int64_t cend = goro_now() + gt_slow(5 * SEC);
                while (atomic_load(&s->st.ctx_cancelled) == 0 && goro_now() < cend)
                    goro_sleep(MS);
                s->ctx_cancelled = atomic_load(&s->st.ctx_cancelled);
                s->ctx_latency = atomic_load(&s->st.ctx_done_at) - closed_at;
            }
        }
        s->rc[i] = rc;
    }
    /* Everything the server started for these clients must go away. */
    end = goro_now() + gt_slow(5 * SEC);
    for (;;) {
        s->g_after = goro_num_goroutines();
        s->fd_after = count_fds();
        if ((s->g_after == s->g0 && s->fd_after == s->fd0) || goro_now() > end)
            break;
        goro_sleep(5 * MS);
    }
    s->back_to_base = s->g_after == s->g0 && s->fd_after == s->fd0;
    s->body_err = atomic_load(&s->st.read_err);
    s->stop_rc = fix_stop(&f, 5 * SEC);
    goro_http_mux_free(m);
    gt_wait_num_goroutines(1, gt_slow(5 * SEC));
    s->g_end = goro_num_goroutines();
    s->fd_end = count_fds();
}

static void test_disconnects(void **state)
{
    (void)state;
    dc_state *s = calloc(1, sizeof *s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("http disconnects", dc_main, s, &o, 60), 0);
    assert_rc(s->start_rc, 0);
    for (int i = 0; i < DC_CASES; i++)
        assert_rc(s->rc[i], 0);
    fprintf(stderr, "disconnects: goroutines %zu -> %zu, fds %d -> %d; ctx cancelled %.2f ms after close\n",
            s->g0, s->g_after, s->fd0, s->fd_after, (double)s->ctx_latency / 1e6);
    assert_true_msg(s->back_to_base, "goroutines %zu -> %zu, fds %d -> %d", s->g0, s->g_after,
                    s->fd0, s->fd_after);
    assert_true(s->body_err == -ECONNRESET);
    assert_int_equal(s->ctx_cancelled, 1);
    assert_true(s->ctx_latency >= 0 && s->ctx_latency < gt_slow(500 * MS));
    assert_rc(s->stop_rc, 0);
    assert_int_equal(s->g_end, 1);
    assert_int_equal(s->fd_end, s->fd_start);
    free(s);
}

/* ------------------------------------------------------------------------- */
/* Slowloris: slow clients are cut off, normal clients keep being served      */
/* ------------------------------------------------------------------------- */

#define SL_HEADER (300 * MS)
#define SL_READ (600 * MS)
#define SL_STEP (20 * MS)
#define SL_NORMAL 4

typedef struct {
    hstate st;
    int start_rc, stop_rc;
    char addr[64];
    size_t nslow, nbody;
    goro_waitgroup wg;
    atomic_int slow_started;
    int64_t *cut;     /* per slow client: connected -> closed, -1 never */
    int64_t *cutb;    /* per slow-body client */
    int64_t *early;   /* per client: before connect -> closed (lower bound) */
    int64_t lat[SL_NORMAL][4096];
    int nlat[SL_NORMAL];
    int normal_fail[SL_NORMAL];
    int normal_err[SL_NORMAL]; /* rc or -status of the failure */
    atomic_int stop_normal;
} sl_state;

static void slow_client(void *arg)
{
    sl_state *s = arg;
    static atomic_long next;
    long id = atomic_fetch_add(&next, 1);
    bool body = (size_t)id >= s->nslow;
    int64_t *slot = body ? &s->cutb[(size_t)id - s->nslow] : &s->cut[id];
    *slot = -1;
    int rc;
    /* The server counts from its accept, which lies between these two. */
    int64_t t_before = goro_now();
    tc *t = tc_dial(s->addr, &rc);
    if (!t) {
        *slot = -2;
        goro_waitgroup_done(&s->wg);
        return;
    }
    int64_t t0 = goro_now();
    atomic_fetch_add(&s->slow_started, 1);
    const char *head = body ? "POST /drip HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\n"
                            : "GET /echo HTTP/1.1\r\nHost: h\r\n";
    rc = tc_sends(t, head);
    /* One byte per step, reading in between: the read sees the close. */
    while (!rc && goro_now() - t0 < 5 * SEC) {
        rc = tc_send(t, body ? "x" : "X", 1);
        ssize_t n = tc_fill(t, goro_deadline_after(SL_STEP));
        t->pos = t->len = 0;
        if (n == 0 || (n < 0 && n != -ETIMEDOUT))
            break;
    }
    if (goro_now() - t0 < 5 * SEC) {
        int64_t now = goro_now();
        *slot = now - t0;
        s->early[id] = now - t_before;
    }
    tc_close(t);
    goro_waitgroup_done(&s->wg);
}

static void normal_client(void *arg)
{
    sl_state *s = arg;
    static atomic_int next;
    int id = atomic_fetch_add(&next, 1);
    int rc;
    tc *t = tc_dial(s->addr, &rc);
    while (t && !atomic_load(&s->stop_normal) && s->nlat[id] < 4096) {
        int64_t t0 = goro_now();
        tresp r;
        /* Every other request on a fresh connection. */
        if (s->nlat[id] % 2) {
            tc_close(t);
            t = tc_dial(s->addr, &rc);
            if (!t)
                break;
        }
        rc = tc_sends(t, "GET /info HTTP/1.1\r\nHost: h\r\n\r\n");
        if (!rc)
            rc = tc_response(t, &r, false, io_deadline());
        if (rc || r.status != 200) {
            s->normal_fail[id]++;
            s->normal_err[id] = rc ? rc : -r.status;
            if (!rc)
                tr_free(&r);
            break;
        }
        tr_free(&r);
        s->lat[id][s->nlat[id]++] = goro_now() - t0;
        goro_sleep(2 * MS);
    }
    if (!t) {
        s->normal_fail[id]++;
        s->normal_err[id] = rc;
    }
    tc_close(t);
    goro_waitgroup_done(&s->wg);
}

static void sl_main(void *arg)
{
    sl_state *s = arg;
    goro_http_mux *m = common_mux(&s->st);
    fix f;
    goro_http_server_opts o = {.handler = goro_http_mux_serve,
                               .handler_arg = m,
                               .read_header_timeout = SL_HEADER,
                               .read_timeout = SL_READ};
    if ((s->start_rc = fix_start(&f, &o))) {
        goro_http_mux_free(m);
        return;
    }
    memcpy(s->addr, f.addr, sizeof s->addr);
    goro_waitgroup_add(&s->wg, (int)(s->nslow + s->nbody + SL_NORMAL));
    for (int i = 0; i < SL_NORMAL; i++)
        goro_go(normal_client, s);
    for (size_t i = 0; i < s->nslow + s->nbody; i++) {
        goro_go(slow_client, s);
        if (i % 4 == 3)
            goro_sleep(MS); /* no burst: accept delays would blur the timing */
    }
    goro_sleep(SL_READ + 400 * MS);
    atomic_store(&s->stop_normal, 1);
    if (gt_wg_wait(&s->wg, 30))
        return;
    s->stop_rc = fix_stop(&f, 5 * SEC);
    goro_http_mux_free(m);
}

static void test_slowloris(void **state)
{
    (void)state;
    sl_state *s = calloc(1, sizeof *s);
    s->nslow = scale("http slowloris clients", 200, 100, 50);
    s->nbody = s->nslow / 4;
    s->cut = calloc(s->nslow, sizeof *s->cut);
    s->cutb = calloc(s->nbody, sizeof *s->cutb);
    s->early = calloc(s->nslow + s->nbody, sizeof *s->early);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("http slowloris", sl_main, s, &o, 60), 0);
    assert_rc(s->start_rc, 0);
    int64_t *v = malloc(sizeof(int64_t) * (s->nslow + s->nbody));
    int64_t max = 0, min = INT64_MAX;
    for (size_t i = 0; i < s->nslow; i++) {
        assert_true_msg(s->cut[i] >= 0, "slow client %zu was never cut off (%lld)", i,
                        (long long)s->cut[i]);
        v[i] = s->cut[i];
        max = v[i] > max ? v[i] : max;
        min = v[i] < min ? v[i] : min;
    }
    int64_t med = gt_median_i64(v, s->nslow);
    for (size_t i = 0; i < s->nslow + s->nbody; i++)
        assert_true_msg(s->early[i] >= (i < s->nslow ? SL_HEADER : SL_READ) - MS,
                        "client %zu cut %.2f ms after it started connecting", i,
                        (double)s->early[i] / 1e6);
    fprintf(stderr, "slowloris: %zu slow-head clients cut after min %.1f / median %.1f / max %.1f ms "
                    "(read-header timeout %.0f ms)\n",
            s->nslow, (double)min / 1e6, (double)med / 1e6, (double)max / 1e6, (double)SL_HEADER / 1e6);
    assert_true(med <= SL_HEADER + 2 * gt_late_tolerance());
    max = 0;
    min = INT64_MAX;
    for (size_t i = 0; i < s->nbody; i++) {
        assert_true_msg(s->cutb[i] >= 0, "slow-body client %zu was never cut off", i);
        v[i] = s->cutb[i];
        max = v[i] > max ? v[i] : max;
        min = v[i] < min ? v[i] : min;
    }
    med = gt_median_i64(v, s->nbody);
    fprintf(stderr, "slowloris: %zu slow-body clients cut after min %.1f / median %.1f / max %.1f ms "
                    "(read timeout %.0f ms)\n",
            s->nbody, (double)min / 1e6, (double)med / 1e6, (double)max / 1e6, (double)SL_READ / 1e6);
    assert_true(med <= SL_READ + 2 * gt_late_tolerance());
    free(v);
    int total = 0;
    int64_t all[SL_NORMAL * 4096];
    for (int i = 0; i < SL_NORMAL; i++) {
        assert_true_msg(s->normal_fail[i] == 0, "normal client %d failed after %d requests: %d (%s)",
                        i, s->nlat[i], s->normal_err[i], gt_errname(s->normal_err[i]));
        for (int k = 0; k < s->nlat[i]; k++)
            all[total++] = s->lat[i][k];
    }
    int64_t nmed = gt_median_i64(all, (size_t)total);
    /* p99 by sorting a copy */
    for (int i = 1; i < total; i++)
        for (int k = i; k > 0 && all[k - 1] > all[k]; k--) {
            int64_t x = all[k];
            all[k] = all[k - 1];
            all[k - 1] = x;
        }
    int64_t p99 = all[(size_t)total * 99 / 100];
    fprintf(stderr, "slowloris: meanwhile %d normal requests, latency median %.2f ms, p99 %.2f ms, max %.2f ms\n",
            total, (double)nmed / 1e6, (double)p99 / 1e6, (double)all[total - 1] / 1e6);
    assert_true(total >= 50);
    assert_true_msg(p99 < gt_slow(100 * MS), "p99 %.2f ms", (double)p99 / 1e6);
    assert_rc(s->stop_rc, 0);
    free(s->cut);
    free(s->cutb);
    free(s->early);
    free(s);
}

/* ------------------------------------------------------------------------- */
/* Graceful shutdown                                                          */
/* ------------------------------------------------------------------------- */

#define GS_BODY 200000

typedef struct {
    hstate st;
    int start_rc;
    int inflight_rc, idle_rc, refused_rc, shutdown_rc, serve_rc, free_rc;
    tresp inflight;
    bool idle_closed, handler_seen;
    int64_t idle_closed_after;
    int64_t shutdown_started, shutdown_returned, handler_started;
    fix f;
    goro_waitgroup wg;
} gs_state;

static void gs_inflight(void *arg)
{
    gs_state *s = arg;
    int rc;
    tc *t = tc_dial(s->f.addr, &rc);
    if (t) {
        char req[128];
        snprintf(req, sizeof req, "GET /sleep?ms=200&size=%d HTTP/1.1\r\nHost: h\r\n\r\n", GS_BODY);
        rc = tc_sends(t, req);
        if (!rc)
            rc = tc_response(t, &s->inflight, false, io_deadline());
        tc_close(t);
    }
    s->inflight_rc = rc;
    goro_waitgroup_done(&s->wg);
}

static void gs_shutdown(void *arg)
{
    gs_state *s = arg;
    s->shutdown_rc = goro_http_server_shutdown(s->f.srv, goro_deadline_after(5 * SEC));
    s->shutdown_returned = goro_now();
    goro_waitgroup_done(&s->wg);
}

static void gs_main(void *arg)
{
    gs_state *s = arg;
    goro_http_mux *m = common_mux(&s->st);
    goro_http_server_opts o = {.handler = goro_http_mux_serve, .handler_arg = m};
    if ((s->start_rc = fix_start(&s->f, &o))) {
        goro_http_mux_free(m);
        return;
    }
    /* An idle keep-alive connection. */
    int rc;
    tc *idle = tc_dial(s->f.addr, &rc);
    if (idle) {
        tresp r;
        rc = tc_sends(idle, "GET /empty HTTP/1.1\r\nHost: h\r\n\r\n");
        if (!rc)
            rc = tc_response(idle, &r, false, io_deadline());
        if (!rc)
            tr_free(&r);
    }
    s->idle_rc = rc;
    goro_waitgroup_add(&s->wg, 1);
    goro_go(gs_inflight, s);
    int64_t end = goro_now() + gt_slow(10 * SEC);
    while (atomic_load(&s->st.started_at) == 0 && goro_now() < end)
        goro_sleep(MS);
    s->handler_started = atomic_load(&s->st.started_at);
    s->handler_seen = s->handler_started != 0;
    /* Shut down from another goroutine; meanwhile check the listener and
     * the idle connection. */
    s->shutdown_started = goro_now();
    goro_waitgroup_add(&s->wg, 1);
    goro_go(gs_shutdown, s);
    if (idle) {
        s->idle_closed = tc_wait_eof(idle, goro_deadline_after(gt_slow(1 * SEC)));
        s->idle_closed_after = goro_now() - s->shutdown_started;
        tc_close(idle);
    }
    /* The serving goroutine closes the listener once it sees the shutdown:
     * dial until refused (bounded), closing what still got through. A
     * connect that lands in the backlog just as the listener closes is
     * reset (-ECONNRESET): that one got through too; dial again. */
    end = goro_now() + gt_slow(5 * SEC);
    for (;;) {
        goro_conn *c;
        s->refused_rc = goro_dial_tcp(s->f.addr, &c, io_deadline(), NULL);
        if ((s->refused_rc != 0 && s->refused_rc != -ECONNRESET) || goro_now() >= end)
            break;
        if (s->refused_rc == 0)
            goro_conn_close(c);
        goro_sleep(MS);
    }
    gt_wg_wait(&s->wg, 30);
    if (gt_wg_wait(&s->f.done, 30))
        return;
    s->serve_rc = s->f.serve_rc;
    s->free_rc = goro_http_server_free(s->f.srv);
    goro_http_mux_free(m);
}

static void test_graceful_shutdown(void **state)
{
    (void)state;
    gs_state *s = calloc(1, sizeof *s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("http graceful shutdown", gs_main, s, &o, 60), 0);
    assert_rc(s->start_rc, 0);
    assert_rc(s->idle_rc, 0);
    assert_true_msg(s->handler_seen, "the in-flight request's handler never started");
    fprintf(stderr, "shutdown: idle connection closed after %.2f ms; shutdown took %.1f ms "
                    "(handler had %.1f ms of its 200 ms left)\n",
            (double)s->idle_closed_after / 1e6,
            (double)(s->shutdown_returned - s->shutdown_started) / 1e6,
            (double)(s->handler_started + 200 * MS - s->shutdown_started) / 1e6);
    assert_true(s->idle_closed);
    /* At once, not when the in-flight handler is done (>= 200 ms after it
     * started): the ordering holds however loaded the machine is, the
     * absolute bound is generous. */
    assert_true_msg(s->shutdown_started + s->idle_closed_after < s->shutdown_returned,
                    "the idle connection was closed only after the in-flight request ended");
    assert_true(s->idle_closed_after < gt_slow(GORO_SECOND));
    assert_rc(s->refused_rc, -ECONNREFUSED);
    assert_rc(s->inflight_rc, 0);
    assert_int_equal(s->inflight.status, 200);
    assert_int_equal(s->inflight.body_len, GS_BODY);
    assert_string_equal(tr_header(&s->inflight, "Connection"), "close");
    assert_rc(s->shutdown_rc, 0);
    assert_true(s->shutdown_returned >= s->handler_started + 200 * MS);
    assert_rc(s->serve_rc, 0);
    assert_rc(s->free_rc, 0);
    tr_free(&s->inflight);
    free(s);
}

/* ------------------------------------------------------------------------- */
/* Forced shutdown: the deadline passes, contexts are cancelled               */
/* ------------------------------------------------------------------------- */

/* Each try is a server of its own with one request whose handler waits on
 * its context; the timing checks use the median over the tries. */
#define FS_TRIES 5
#define FS_GRACE (100 * MS)

typedef struct {
    hstate st;
    int start_rc, shutdown_rc, free_rc, client_rc;
    int64_t shutdown_took, cancel_after;
    long cancelled;
    bool client_closed, handler_started, serve_done;
    fix f;
} fs_try;

typedef struct {
    fs_try t[FS_TRIES];
} fs_state;

static void fs_once(fs_try *s)
{
    goro_http_mux *m = common_mux(&s->st);
    goro_http_server_opts o = {.handler = goro_http_mux_serve, .handler_arg = m};
    if ((s->start_rc = fix_start(&s->f, &o))) {
        goro_http_mux_free(m);
        return;
    }
    int rc;
    tc *t = tc_dial(s->f.addr, &rc);
    if (t)
        rc = tc_sends(t, "GET /ctxwait HTTP/1.1\r\nHost: h\r\n\r\n");
    s->client_rc = rc;
    int64_t end = goro_now() + gt_slow(10 * SEC);
    while (!rc && atomic_load(&s->st.started_at) == 0 && goro_now() < end)
        goro_sleep(MS);
    s->handler_started = atomic_load(&s->st.started_at) != 0;
    int64_t t0 = goro_now();
    s->shutdown_rc = goro_http_server_shutdown(s->f.srv, goro_deadline_after(FS_GRACE));
    s->shutdown_took = goro_now() - t0;
    if (t) {
        /* The handler answers after its context is cancelled, but the
         * connection is shut down: the client sees the end. */
        s->client_closed = tc_wait_eof(t, io_deadline());
        tc_close(t);
    }
    if (gt_wg_wait(&s->f.done, 30))
        return; /* serve still running: do not free under it */
    s->serve_done = true;
    s->cancelled = atomic_load(&s->st.ctx_cancelled);
    s->cancel_after = atomic_load(&s->st.ctx_done_at) - t0;
    s->free_rc = goro_http_server_free(s->f.srv);
    goro_http_mux_free(m);
}

static void fs_main(void *arg)
{
    fs_state *s = arg;
    for (int i = 0; i < FS_TRIES; i++) {
        fs_once(&s->t[i]);
        if (!s->t[i].serve_done)
            return;
    }
}

static void test_forced_shutdown(void **state)
{
    (void)state;
    fs_state *s = calloc(1, sizeof *s);
    goro_options o = gt_opts(2);
    assert_rc(gt_run("http forced shutdown", fs_main, s, &o, 60), 0);
    int64_t took[FS_TRIES], cancel[FS_TRIES];
    for (int i = 0; i < FS_TRIES; i++) {
        fs_try *t = &s->t[i];
        fprintf(stderr, "forced shutdown %d: returned after %.1f ms, context cancelled after %.1f ms\n",
                i + 1, (double)t->shutdown_took / 1e6, (double)t->cancel_after / 1e6);
        assert_rc(t->start_rc, 0);
        assert_rc(t->client_rc, 0);
        assert_true_msg(t->handler_started, "try %d: the handler never started", i + 1);
        assert_true_msg(t->serve_done, "try %d: serve did not return after the shutdown", i + 1);
        assert_rc(t->shutdown_rc, -ETIMEDOUT);
        /* never before the deadline */
        assert_true_msg(t->shutdown_took >= FS_GRACE - MS, "try %d: shutdown returned after %.1f ms",
                        i + 1, (double)t->shutdown_took / 1e6);
        assert_int_equal(t->cancelled, 1);
        assert_true(t->client_closed);
        assert_rc(t->free_rc, 0);
        took[i] = t->shutdown_took;
        cancel[i] = t->cancel_after;
    }
    /* not much later than the deadline: medians */
    int64_t mt = gt_median_i64(took, FS_TRIES), mc = gt_median_i64(cancel, FS_TRIES);
    fprintf(stderr, "forced shutdown: median %.1f ms to return, %.1f ms to cancel (grace %.0f ms)\n",
            (double)mt / 1e6, (double)mc / 1e6, (double)FS_GRACE / 1e6);
    assert_true_msg(mt < FS_GRACE + gt_late_tolerance(), "median shutdown %.1f ms", (double)mt / 1e6);
    assert_true_msg(mc < FS_GRACE + gt_late_tolerance(), "median cancellation %.1f ms",
                    (double)mc / 1e6);
    free(s);
}

/* ------------------------------------------------------------------------- */
/* Bad arguments                                                              */
/* ------------------------------------------------------------------------- */

static void noop_handler(goro_http_response *w, goro_http_request *r, void *arg)
{
    (void)w;
    (void)r;
    (void)arg;
}

static void test_bad_arguments(void **state)
{
    (void)state;
    goro_http_server *s = NULL;
    goro_http_server_opts o = {0};
    assert_rc(goro_http_server_create(NULL, &s), -EINVAL);
    assert_rc(goro_http_server_create(&o, &s), -EINVAL);
    o.handler = noop_handler;
    o.max_header_bytes = 100;
    assert_rc(goro_http_server_create(&o, &s), -EINVAL);
    o.max_header_bytes = 0;
    assert_rc(goro_http_server_create(&o, NULL), -EINVAL);
    assert_rc(goro_http_server_create(&o, &s), 0);
    assert_rc(goro_http_serve(s, NULL), -EINVAL);
    assert_rc(goro_http_serve(NULL, NULL), -EINVAL);
    assert_rc(goro_http_server_shutdown(NULL, 0), -EINVAL);
    assert_rc(goro_http_server_free(s), 0);
    assert_rc(goro_http_server_free(NULL), -EINVAL);
    assert_null(goro_http_request_method(NULL));
    assert_null(goro_http_request_header(NULL, "x"));
    assert_rc(goro_http_request_read(NULL, NULL, 0), -EINVAL);
    assert_null(goro_http_request_ctx(NULL));
    assert_rc(goro_http_response_write(NULL, "x", 1), -EINVAL);
    assert_rc(goro_http_response_set_status(NULL, 200), -EINVAL);
    assert_rc(goro_http_error(NULL, 500, NULL), -EINVAL);
    assert_string_equal(goro_http_status_text(404), "Not Found");
    assert_string_equal(goro_http_status_text(799), "");
    char buf[16];
    assert_rc(goro_http_query_value("a=1&b=%41%42&c&d=x+y", "b", buf, sizeof buf), 2);
    assert_string_equal(buf, "AB");
    assert_rc(goro_http_query_value("a=1&b=%41%42&c&d=x+y", "c", buf, sizeof buf), 0);
    assert_string_equal(buf, "");
    assert_rc(goro_http_query_value("a=1&b=%41%42&c&d=x+y", "d", buf, sizeof buf), 3);
    assert_string_equal(buf, "x y");
    assert_rc(goro_http_query_value("a=1", "z", buf, sizeof buf), -ENOENT);
    assert_rc(goro_http_query_value("a=12345", "a", buf, 3), -ENOSPC);
    assert_rc(goro_http_query_value("a=%4", "a", buf, sizeof buf), -EINVAL);
    assert_rc(goro_http_query_value("%61=x", "a", buf, sizeof buf), 1);
    assert_rc(goro_http_query_value(NULL, "a", buf, sizeof buf), -EINVAL);
    goro_http_mux *m;
    assert_rc(goro_http_mux_create(NULL), -EINVAL);
    assert_rc(goro_http_mux_create(&m), 0);
    assert_rc(goro_http_mux_handle(m, "/", noop_handler, NULL), 0);
    goro_http_mux_free(m);
    goro_http_mux_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_keepalive_pipelining),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_mux),
        cmocka_unit_test(test_echo_many_clients),
        cmocka_unit_test(test_deadlines),
        cmocka_unit_test(test_disconnects),
        cmocka_unit_test(test_slowloris),
        cmocka_unit_test(test_graceful_shutdown),
        cmocka_unit_test(test_forced_shutdown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
