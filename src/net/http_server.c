/*
 * http_server.c - the HTTP/1.1 server: connections, keep-alive, pipelining,
 * request bodies, the response writer, timeouts and graceful shutdown.
 *
 * Owns: goro_http_server, one hconn per connection (with the request and
 * response objects handlers see, embedded: no allocation per request), and
 * the goroutines serving them.
 *
 * A connection is served by one goroutine, request after request:
 *  1. wait for the first bytes of a request (idle: the idle timeout, or the
 *     read-header timeout for a new connection, counting from the accept);
 *  2. read into the connection's read buffer until goro__http_scan_head
 *     finds CRLF CRLF (bounded by max_header_bytes and the read-header
 *     deadline), parse the head once, in place;
 *  3. run the handler; body reads take bytes already buffered after the
 *     head first, then read the socket (payload straight into the caller's
 *     buffer; chunked framing through goro__http_chunked);
 *  4. finish the response, discard an unread rest of the body (bounded) or
 *     decide to close, then go on with bytes already buffered (pipelining)
 *     or back to 1.
 * Output goes through a per-connection write buffer that is sent when it
 * fills, on flush, before the goroutine would block reading and before the
 * next pipelined request's handler runs (an answer never waits for a later
 * request's handler). A response body is held back (up to BODY_BUFFER
 * bytes) until the handler returns, flushes or writes more, so that small
 * bodies get a Content-Length instead of chunked framing.
 *
 * Request contexts are created on demand. Once the body has been read to
 * its end, a watcher goroutine reads one byte with the request context:
 * end of stream cancels the context (the client went away, as Go's
 * background read does), a byte is kept for the next request, and the
 * watcher ends when the context is cancelled after the handler returns.
 * Connection I/O itself never passes a context: the done channel of a
 * shared context would be one more lock taken by every idle connection's
 * park and wake-up; shutdown wakes connections with shutdown(2) instead.
 *
 * Invariants:
 *  - the parsed head (strings handed to the handler) lives in the read
 *    buffer at [0, body_base); the buffer is never moved or reallocated
 *    while a request is being served, only between requests;
 *  - [rpos, rend) are bytes read but not consumed; after the head they are
 *    body bytes and then the next pipelined request;
 *  - every socket operation carries a deadline (the watcher's read: the
 *    request context, cancelled when the handler returns): nothing a client
 *    does, or fails to do, holds a goroutine forever.
 *
 * Server lifetime and locking: s->mu guards the connection list, the
 * listener count and the counters; it is never held across I/O. The
 * server is reference counted (the user, each serve call, each connection)
 * so that a connection goroutine may still unlock s->mu after its
 * decrement has let goro_http_serve return and the user free the server.
 * Shutdown cancels s->shut (serve loops blocked in accept wake up and close
 * their listeners; goro_listener_close is only ever called by the serve
 * loop owning the listener, never under an accept in progress), shuts
 * down the read side of idle connections (their goroutine sees end of
 * stream and closes), and, at the deadline, shuts down both sides of every
 * connection and cancels s->base, the parent of every request context.
 * A connection is removed from the list (under s->mu) before
 * goro_conn_close, so shutdown never touches a closed connection.
 */
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "goro.h"
#include "net/http_parse.h"
#include "runtime/internal.h"

#define RBUF_INIT 4096
#define WBUF_INIT 4096
#define RBUF_KEEP (64 * 1024)      /* shrink larger buffers when idle */
#define BODY_BUFFER 4096           /* body held back before choosing framing */
#define RESP_FIELDS_MAX (64 * 1024) /* response header fields */
#define HEAD_ROOM 512              /* free bytes after a head, for body reads */
#define LEADING_MAX 1024           /* empty lines skipped before a request */
#define DRAIN_MAX (256 * 1024)     /* unread body discarded after a handler */
#define LINGER_NS (500 * GORO_MILLISECOND)
#define LINGER_BYTES (1024 * 1024)

#define DEF_READ_HEADER (10 * GORO_SECOND)
#define DEF_READ (60 * GORO_SECOND)
#define DEF_WRITE (60 * GORO_SECOND)
#define DEF_IDLE (120 * GORO_SECOND)
#define DEF_MAX_HEADER (1024 * 1024)
#define DEF_MAX_BODY (8 * 1024 * 1024)

enum { BODY_NONE, BODY_LENGTH, BODY_CHUNKED };
enum { W_UNDECIDED, W_FIXED, W_CHUNKED, W_CLOSE, W_NOBODY };

typedef struct hconn hconn;

struct goro_http_request {
    hconn *hc;
    const char *path, *query;
    int body;
    bool body_eof;
    bool continue_due, continue_sent;
    bool watching;
    int body_err;
    uint64_t body_left;
    goro__http_chunked ck;
    goro_ctx *ctx;
};

struct goro_http_response {
    hconn *hc;
    int status;
    int mode;
    bool committed; /* status and fields frozen */
    bool has_date, conn_hdr, close_hdr;
    int err;          /* sticky write error */
    int64_t declared; /* Content-Length set by the handler, or -1 */
    uint64_t written; /* body bytes accepted */
    char *hbuf;       /* "Name: value\r\n" lines */
    size_t hlen, hcap;
};

struct goro_http_server {
    goro_http_handler handler;
    void *arg;
    int64_t read_header_timeout, read_timeout, write_timeout, idle_timeout; /* INT64_MAX: none */
    size_t max_header;
    uint64_t max_body; /* UINT64_MAX: none */
    _Atomic uint32_t refs;
    _Atomic int shutting;
    goro_mutex mu;
    goro_cond cond; /* broadcast when nconns or nlisteners drops */
    hconn *conns;   /* under mu */
    size_t nconns;  /* accepted and not yet closed (under mu) */
    int nlisteners; /* listeners open (under mu) */
    int nserving;   /* goro_http_serve calls running (under mu) */
    bool forced;    /* a shutdown gave up waiting (under mu) */
    bool freed;     /* goro_http_server_free called (under mu) */
    goro_ctx *shut; /* cancelled when shutdown starts */
    goro_ctx *base; /* parent of request contexts; cancelled when forced */
};

struct hconn {
    hconn *prev, *next; /* s->conns (under s->mu) */
    goro_http_server *srv;
    goro_conn *c;
    _Atomic int idle; /* waiting for the first byte of a request */
    char *rbuf;
    size_t rcap, rpos, rend, body_base;
    char *wbuf;
    size_t wcap, wlen;
    char bbuf[BODY_BUFFER];
    size_t blen;
    char *scratch; /* path and query of the current request */
    size_t scratch_cap;
    int64_t t_accept, read_dl, write_dl;
    int version;
    bool is_head, keep_alive, close_after, linger;
    bool have_byte;         /* the context watcher read one byte */
    unsigned char byte;     /* ... this one */
    bool peer_set;
    char peer[64];
    goro_chan *watch_done; /* closed by the context watcher when it ends */
    goro__http_head head;
    goro_http_request req;
    goro_http_response resp;
    goro__http_field fields[GORO__HTTP_MAX_FIELDS];
};

/* ---- small helpers ---------------------------------------------------------- */

static int64_t resolve_timeout(int64_t v, int64_t def)
{
    return v == 0 ? def : v < 0 ? INT64_MAX : v;
}

static int64_t deadline_at(int64_t t, int64_t timeout)
{
    if (timeout == INT64_MAX || t > INT64_MAX - timeout)
        return GORO_NO_DEADLINE;
    return t + timeout;
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

static size_t put_hex(char *p, uint64_t v)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[16];
    size_t n = 0;
    do {
        tmp[n++] = hex[v & 15];
        v >>= 4;
    } while (v);
    for (size_t i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    return n;
}

#define PUT_LIT(p, lit) (memcpy((p), (lit), sizeof(lit) - 1), (p) += sizeof(lit) - 1)

/* UTC calendar date of a count of days since 1970-01-01 (the proleptic
 * Gregorian calendar in 400-year eras; see Howard Hinnant's "chrono-
 * compatible low-level date algorithms"). Pure arithmetic: gmtime_r would
 * take glibc's time-zone lock and run tzset. */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);                          /* [0, 146096] */
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
    unsigned mp = (5 * doy + 2) / 153;                                    /* [0, 11], from March */
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n": formatted once per second per
 * thread (the cache is read and written without a scheduling point). */
#define DATE_LINE_LEN 37
static void put_date(char *p)
{
    static _Thread_local time_t sec = -1;
    static _Thread_local char line[DATE_LINE_LEN + 1];
    time_t now = time(NULL);
    if (now != sec) {
        static const char days[] = "ThuFriSatSunMonTueWed"; /* 1970-01-01 was a Thursday */
        static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
        int64_t t = (int64_t)now;
        int64_t day = t >= 0 ? t / 86400 : (t - 86399) / 86400;
        int64_t secs = t - day * 86400;
        int64_t y;
        unsigned mon, mday;
        civil_from_days(day, &y, &mon, &mday);
        if (y < 0 || y > 9999)
            y = 9999;
        int wd = (int)(((day % 7) + 7) % 7);
        unsigned hh = (unsigned)(secs / 3600), mm = (unsigned)(secs / 60 % 60), ss = (unsigned)(secs % 60);
        char *q = line;
        PUT_LIT(q, "Date: ");
        memcpy(q, days + 3 * wd, 3);
        q += 3;
        PUT_LIT(q, ", ");
        *q++ = (char)('0' + mday / 10);
        *q++ = (char)('0' + mday % 10);
        *q++ = ' ';
        memcpy(q, months + 3 * (mon - 1), 3);
        q += 3;
        *q++ = ' ';
        *q++ = (char)('0' + y / 1000);
        *q++ = (char)('0' + y / 100 % 10);
        *q++ = (char)('0' + y / 10 % 10);
        *q++ = (char)('0' + y % 10);
        *q++ = ' ';
        *q++ = (char)('0' + hh / 10);
        *q++ = (char)('0' + hh % 10);
        *q++ = ':';
        *q++ = (char)('0' + mm / 10);
        *q++ = (char)('0' + mm % 10);
        *q++ = ':';
        *q++ = (char)('0' + ss / 10);
        *q++ = (char)('0' + ss % 10);
        PUT_LIT(q, " GMT\r\n");
        sec = now;
    }
    memcpy(p, line, DATE_LINE_LEN);
}

const char *goro_http_status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "";
    }
}

/* ---- server lifetime ----------------------------------------------------------- */

static void server_release(goro_http_server *s)
{
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    goro_ctx_release(s->base);
    goro_ctx_release(s->shut);
    free(s);
}

int goro_http_server_create(const goro_http_server_opts *o, goro_http_server **out)
{
    if (!o || !out || !o->handler || (o->max_header_bytes && o->max_header_bytes < 256))
        return -EINVAL;
    goro_http_server *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->handler = o->handler;
    s->arg = o->handler_arg;
    s->read_header_timeout = resolve_timeout(o->read_header_timeout, DEF_READ_HEADER);
    s->read_timeout = resolve_timeout(o->read_timeout, DEF_READ);
    s->write_timeout = resolve_timeout(o->write_timeout, DEF_WRITE);
    s->idle_timeout = resolve_timeout(o->idle_timeout, DEF_IDLE);
    s->max_header = o->max_header_bytes ? o->max_header_bytes : DEF_MAX_HEADER;
    if (s->max_header > (size_t)1 << 30)
        s->max_header = (size_t)1 << 30;
    s->max_body = o->max_body_bytes == 0  ? DEF_MAX_BODY
                  : o->max_body_bytes < 0 ? UINT64_MAX
                                          : (uint64_t)o->max_body_bytes;
    atomic_init(&s->refs, 1);
    atomic_init(&s->shutting, 0);
    int rc = goro_ctx_with_cancel(NULL, &s->shut);
    if (rc == 0)
        rc = goro_ctx_with_cancel(NULL, &s->base);
    if (rc) {
        goro_ctx_release(s->shut);
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int goro_http_server_free(goro_http_server *s)
{
    if (!s)
        return -EINVAL;
    int rc = goro_mutex_lock(&s->mu);
    if (rc)
        return rc;
    if (s->nconns || s->nserving || s->nlisteners || s->freed) {
        goro_mutex_unlock(&s->mu);
        return s->freed ? -EINVAL : -EBUSY;
    }
    s->freed = true;
    goro_mutex_unlock(&s->mu);
    server_release(s);
    return 0;
}

/* ---- output ---------------------------------------------------------------- */

static int out_send(hconn *hc, const void *p, size_t n)
{
    ssize_t r = goro_conn_write(hc->c, p, n, hc->write_dl, NULL);
    return r < 0 ? (int)r : 0;
}

static int out_flush(hconn *hc)
{
    if (!hc->wlen)
        return 0;
    int rc = out_send(hc, hc->wbuf, hc->wlen);
    hc->wlen = 0;
    return rc;
}

/* Make room for n contiguous bytes in the write buffer. */
static int out_reserve(hconn *hc, size_t n)
{
    if (hc->wcap - hc->wlen >= n)
        return 0;
    int rc = out_flush(hc);
    if (rc)
        return rc;
    if (hc->wcap >= n)
        return 0;
    size_t cap = hc->wcap;
    while (cap < n)
        cap *= 2;
    char *b = realloc(hc->wbuf, cap);
    if (!b)
        return -ENOMEM;
    hc->wbuf = b;
    hc->wcap = cap;
    return 0;
}

static int out_put(hconn *hc, const void *p, size_t n)
{
    if (n <= hc->wcap - hc->wlen) {
        memcpy(hc->wbuf + hc->wlen, p, n);
        hc->wlen += n;
        return 0;
    }
    int rc = out_flush(hc);
    if (rc)
        return rc;
    if (n >= hc->wcap / 2)
        return out_send(hc, p, n);
    memcpy(hc->wbuf, p, n);
    hc->wlen = n;
    return 0;
}

/* ---- response head --------------------------------------------------------- */

static bool status_has_body(int status)
{
    return !((status >= 100 && status < 200) || status == 204 || status == 304);
}

/* Write the status line, the handler's fields and ours into the write
 * buffer. auto_cl >= 0 adds that Content-Length. */
static int commit_head(hconn *hc, int mode, int64_t auto_cl)
{
    goro_http_response *w = &hc->resp;
    const char *reason = goro_http_status_text(w->status);
    size_t rl = strlen(reason);
    size_t need = 16 + rl + w->hlen + DATE_LINE_LEN + 40 + 32 + 32 + 2;
    int rc = out_reserve(hc, need);
    if (rc)
        return rc;
    char *p = hc->wbuf + hc->wlen;
    if (hc->version == 10)
        PUT_LIT(p, "HTTP/1.0 ");
    else
        PUT_LIT(p, "HTTP/1.1 ");
    *p++ = (char)('0' + w->status / 100);
    *p++ = (char)('0' + w->status / 10 % 10);
    *p++ = (char)('0' + w->status % 10);
    *p++ = ' ';
    memcpy(p, reason, rl);
    p += rl;
    PUT_LIT(p, "\r\n");
    if (w->hlen) {
        memcpy(p, w->hbuf, w->hlen);
        p += w->hlen;
    }
    if (!w->has_date) {
        put_date(p);
        p += DATE_LINE_LEN;
    }
    if (auto_cl >= 0) {
        PUT_LIT(p, "Content-Length: ");
        p += goro__fmt_u64(p, (uint64_t)auto_cl);
        PUT_LIT(p, "\r\n");
    }
    if (mode == W_CHUNKED)
        PUT_LIT(p, "Transfer-Encoding: chunked\r\n");
    if (hc->close_after) {
        if (!w->close_hdr)
            PUT_LIT(p, "Connection: close\r\n");
    } else if (hc->version == 10 && !w->conn_hdr) {
        PUT_LIT(p, "Connection: keep-alive\r\n");
    }
    PUT_LIT(p, "\r\n");
    hc->wlen = (size_t)(p - hc->wbuf);
    return 0;
}

static int body_out(hconn *hc, const void *p, size_t n)
{
    goro_http_response *w = &hc->resp;
    if (w->mode == W_NOBODY || n == 0)
        return 0;
    if (w->mode != W_CHUNKED)
        return out_put(hc, p, n);
    char line[20];
    size_t l = put_hex(line, n);
    line[l++] = '\r';
    line[l++] = '\n';
    int rc = out_put(hc, line, l);
    if (!rc)
        rc = out_put(hc, p, n);
    if (!rc)
        rc = out_put(hc, "\r\n", 2);
    return rc;
}

/* Choose the framing, commit the head and send the held-back body.
 * finished: the handler has returned (the body is complete). */
static int start_body(hconn *hc, bool finished)
{
    goro_http_response *w = &hc->resp;
    goro_http_server *s = hc->srv;
    int mode;
    int64_t auto_cl = -1;
    if (!status_has_body(w->status)) {
        mode = W_NOBODY;
    } else if (hc->is_head) {
        mode = W_NOBODY;
        if (w->declared < 0 && finished)
            auto_cl = (int64_t)w->written;
    } else if (w->declared >= 0) {
        mode = W_FIXED;
    } else if (finished) {
        mode = W_FIXED;
        auto_cl = (int64_t)hc->blen;
    } else if (hc->version >= 11) {
        mode = W_CHUNKED;
    } else {
        mode = W_CLOSE;
    }
    if (!hc->keep_alive || mode == W_CLOSE || w->close_hdr || atomic_load(&s->shutting))
        hc->close_after = true;
    w->committed = true;
    w->mode = mode;
    int rc = commit_head(hc, mode, auto_cl);
    if (rc)
        return rc;
    size_t n = hc->blen;
    hc->blen = 0;
    return body_out(hc, hc->bbuf, n);
}

static int fail(goro_http_response *w, int rc)
{
    if (!w->err)
        w->err = rc;
    w->hc->close_after = true;
    return w->err;
}

/* ---- response API ------------------------------------------------------------- */

int goro_http_response_set_status(goro_http_response *w, int status)
{
    if (!w || status < 200 || status > 999)
        return -EINVAL;
    if (w->committed)
        return -EALREADY;
    w->status = status;
    return 0;
}

int goro_http_response_status(const goro_http_response *w) { return w ? w->status : 0; }

bool goro_http_response_committed(const goro_http_response *w) { return w && w->committed; }

/* Remove every line of hbuf whose name is name[0..nl). */
static void hdr_remove(goro_http_response *w, const char *name, size_t nl)
{
    size_t i = 0;
    while (i < w->hlen) {
        char *line = w->hbuf + i;
        char *eol = memchr(line, '\n', w->hlen - i);
        size_t ll = (size_t)(eol - line) + 1;
        if (ll > nl && line[nl] == ':' && goro__http_ieq(line, name, nl)) {
            memmove(line, line + ll, w->hlen - i - ll);
            w->hlen -= ll;
        } else {
            i += ll;
        }
    }
}

static bool has_token(const char *v, const char *tok, size_t tl)
{
    size_t n = strlen(v), i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t b = i;
        while (i < n && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
            i++;
        if (i - b == tl && goro__http_ieq(v + b, tok, tl))
            return true;
    }
    return false;
}

static int hdr_put(goro_http_response *w, const char *name, const char *value, bool replace)
{
    if (!w || !name)
        return -EINVAL;
    if (w->committed)
        return -EALREADY;
    size_t nl = strlen(name);
    if (nl == 0 || (!value && !replace))
        return -EINVAL;
    for (size_t i = 0; i < nl; i++)
        if (!goro__http_is_tchar((unsigned char)name[i]))
            return -EINVAL;
    size_t vl = value ? strlen(value) : 0;
    for (size_t i = 0; i < vl; i++)
        if (!goro__http_is_field_char((unsigned char)value[i]))
            return -EINVAL;
#define IS_NAME(lit) (nl == sizeof(lit) - 1 && goro__http_ieq(name, lit, nl))
    int64_t declared = w->declared;
    if (IS_NAME("transfer-encoding"))
        return -EINVAL;
    if (IS_NAME("content-length")) {
        if (value) {
            if (vl == 0 || vl > 18)
                return -EINVAL;
            int64_t v = 0;
            for (size_t i = 0; i < vl; i++) {
                if (value[i] < '0' || value[i] > '9')
                    return -EINVAL;
                v = v * 10 + (value[i] - '0');
            }
            declared = v;
        } else {
            declared = -1;
        }
        replace = true;
    }
    if (value && w->hlen + nl + vl + 4 > RESP_FIELDS_MAX)
        return -E2BIG;
    if (value && w->hlen + nl + vl + 4 > w->hcap) {
        size_t cap = w->hcap ? w->hcap : 256;
        while (cap < w->hlen + nl + vl + 4)
            cap *= 2;
        char *b = realloc(w->hbuf, cap);
        if (!b)
            return -ENOMEM;
        w->hbuf = b;
        w->hcap = cap;
    }
    if (replace)
        hdr_remove(w, name, nl);
    if (IS_NAME("date")) {
        w->has_date = value != NULL || (!replace && w->has_date);
    } else if (IS_NAME("connection")) {
        if (replace)
            w->conn_hdr = w->close_hdr = false;
        if (value) {
            w->conn_hdr = true;
            w->close_hdr |= has_token(value, "close", 5);
        }
    }
#undef IS_NAME
    w->declared = declared;
    if (value) {
        char *p = w->hbuf + w->hlen;
        memcpy(p, name, nl);
        p += nl;
        *p++ = ':';
        *p++ = ' ';
        memcpy(p, value, vl);
        p += vl;
        *p++ = '\r';
        *p++ = '\n';
        w->hlen = (size_t)(p - w->hbuf);
    }
    return 0;
}

int goro_http_response_add_header(goro_http_response *w, const char *name, const char *value)
{
    return hdr_put(w, name, value, false);
}

int goro_http_response_set_header(goro_http_response *w, const char *name, const char *value)
{
    return hdr_put(w, name, value, true);
}

ssize_t goro_http_response_write(goro_http_response *w, const void *buf, size_t len)
{
    if (!w || (!buf && len))
        return -EINVAL;
    if (w->err)
        return w->err;
    hconn *hc = w->hc;
    w->committed = true;
    if (len == 0)
        return 0;
    if (!status_has_body(w->status))
        return -EINVAL;
    if (len > SSIZE_MAX)
        return -EINVAL;
    if (hc->is_head && w->mode == W_UNDECIDED) {
        w->written += len; /* discarded: the head is sent at the end */
        return (ssize_t)len;
    }
    if (w->mode == W_UNDECIDED) {
        if (w->declared < 0 && hc->blen + len <= BODY_BUFFER) {
            memcpy(hc->bbuf + hc->blen, buf, len);
            hc->blen += len;
            w->written += len;
            return (ssize_t)len;
        }
        if (w->declared >= 0 && len > (uint64_t)w->declared)
            return -EFBIG;
        int rc = start_body(hc, false);
        if (rc)
            return fail(w, rc);
    }
    if (w->mode == W_FIXED && len > (uint64_t)w->declared - w->written)
        return -EFBIG;
    int rc = body_out(hc, buf, len);
    if (rc)
        return fail(w, rc);
    w->written += len;
    return (ssize_t)len;
}

int goro_http_response_flush(goro_http_response *w)
{
    if (!w)
        return -EINVAL;
    if (w->err)
        return w->err;
    hconn *hc = w->hc;
    w->committed = true;
    int rc = 0;
    if (w->mode == W_UNDECIDED)
        rc = start_body(hc, false);
    if (!rc)
        rc = out_flush(hc);
    return rc ? fail(w, rc) : 0;
}

int goro_http_response_send(goro_http_response *w, int status, const char *content_type,
                            const void *body, size_t len)
{
    if (!w || (!body && len))
        return -EINVAL;
    if (w->committed)
        return -EALREADY;
    int rc = goro_http_response_set_status(w, status);
    if (rc)
        return rc;
    if (content_type && (rc = goro_http_response_set_header(w, "Content-Type", content_type)))
        return rc;
    if (status_has_body(status)) {
        char num[24];
        num[goro__fmt_u64(num, len)] = 0;
        if ((rc = goro_http_response_set_header(w, "Content-Length", num)))
            return rc;
    }
    ssize_t n = goro_http_response_write(w, body, len);
    return n < 0 ? (int)n : 0;
}

int goro_http_error(goro_http_response *w, int status, const char *msg)
{
    if (!w)
        return -EINVAL;
    if (w->committed)
        return -EALREADY;
    if (!msg)
        msg = goro_http_status_text(status);
    size_t ml = strlen(msg);
    int rc = goro_http_response_set_header(w, "X-Content-Type-Options", "nosniff");
    if (rc)
        return rc;
    char small[256];
    char *body = ml + 1 <= sizeof small ? small : malloc(ml + 1);
    if (!body)
        return -ENOMEM;
    memcpy(body, msg, ml);
    body[ml] = '\n';
    rc = goro_http_response_send(w, status, "text/plain; charset=utf-8", body, ml + 1);
    if (body != small)
        free(body);
    return rc;
}

/* ---- request API ------------------------------------------------------------- */

const char *goro_http_request_method(const goro_http_request *r)
{
    return r ? r->hc->head.method : NULL;
}

const char *goro_http_request_target(const goro_http_request *r)
{
    return r ? r->hc->head.target : NULL;
}

const char *goro_http_request_path(const goro_http_request *r) { return r ? r->path : NULL; }

const char *goro_http_request_query(const goro_http_request *r) { return r ? r->query : NULL; }

int goro_http_request_version(const goro_http_request *r) { return r ? r->hc->version : 0; }

const char *goro_http_request_header(const goro_http_request *r, const char *name)
{
    if (!r || !name)
        return NULL;
    size_t nl = strlen(name);
    const goro__http_head *h = &r->hc->head;
    for (uint32_t i = 0; i < h->nfields; i++)
        if (h->fields[i].name_len == nl && goro__http_ieq(h->fields[i].name, name, nl))
            return h->fields[i].value;
    return NULL;
}

size_t goro_http_request_num_headers(const goro_http_request *r)
{
    return r ? r->hc->head.nfields : 0;
}

int goro_http_request_header_at(const goro_http_request *r, size_t i, const char **name,
                                const char **value)
{
    if (!r)
        return -EINVAL;
    const goro__http_head *h = &r->hc->head;
    if (i >= h->nfields)
        return -ENOENT;
    if (name)
        *name = h->fields[i].name;
    if (value)
        *value = h->fields[i].value;
    return 0;
}

int64_t goro_http_request_content_length(const goro_http_request *r)
{
    if (!r)
        return 0;
    if (r->body == BODY_CHUNKED)
        return -1;
    return r->hc->head.content_length > 0 ? r->hc->head.content_length : 0;
}

const char *goro_http_request_peer(goro_http_request *r)
{
    if (!r)
        return NULL;
    hconn *hc = r->hc;
    if (!hc->peer_set) {
        if (goro_conn_peer_addr(hc->c, hc->peer, sizeof hc->peer) != 0)
            hc->peer[0] = 0;
        hc->peer_set = true;
    }
    return hc->peer;
}

static void watch_main(void *arg);

/* Start watching the connection for the client going away (the body has
 * been read to its end, so the next bytes belong to the next request). */
static void start_watch(hconn *hc)
{
    goro_http_request *r = &hc->req;
    if (!r->ctx || r->watching || !r->body_eof)
        return;
    /* A channel, not a WaitGroup: the watcher keeps its own reference, so
     * closing it is safe however soon the waiter moves on. */
    if (goro_chan_make(&hc->watch_done, 0, 0) != 0)
        return;
    goro_chan_retain(hc->watch_done);
    r->watching = true;
    if (goro_go_named(watch_main, hc, "http ctx watcher") != 0) {
        goro_chan_release(hc->watch_done);
        goro_chan_release(hc->watch_done);
        hc->watch_done = NULL;
        r->watching = false;
    }
}

static void watch_main(void *arg)
{
    hconn *hc = arg;
    goro_ctx *ctx = hc->req.ctx;
    goro_chan *done = hc->watch_done;
    unsigned char b;
    ssize_t n = goro_conn_read(hc->c, &b, 1, GORO_NO_DEADLINE, ctx);
    if (n == 1) {
        hc->byte = b; /* a pipelined request begins: keep its first byte */
        hc->have_byte = true;
    } else if (n != -ECANCELED && n != -ETIMEDOUT) {
        goro_ctx_cancel(ctx); /* end of stream or error: the client is gone */
    }
    goro_chan_close(done);
    goro_chan_release(done);
}

goro_ctx *goro_http_request_ctx(goro_http_request *r)
{
    if (!r)
        return NULL;
    if (!r->ctx) {
        if (goro_ctx_with_cancel(r->hc->srv->base, &r->ctx) != 0)
            return r->hc->srv->base; /* out of memory: still cancelled at shutdown */
        start_watch(r->hc);
    }
    return r->ctx;
}

/* Read body bytes (see goro_http_request_read); drain: called by the
 * server after the handler (never sends 100 Continue). */
/* Up to want (> 0) body bytes: what the read buffer already holds, else one
 * socket read. Returns the count, or a negative errno (-ECONNRESET when the
 * peer closed). */
static ssize_t body_take(hconn *hc, void *buf, size_t want)
{
    if (hc->rpos < hc->rend) {
        size_t n = hc->rend - hc->rpos;
        if (n > want)
            n = want;
        memcpy(buf, hc->rbuf + hc->rpos, n);
        hc->rpos += n;
        return (ssize_t)n;
    }
    ssize_t n = goro_conn_read(hc->c, buf, want, hc->read_dl, NULL);
    return n == 0 ? -ECONNRESET : n;
}

static ssize_t body_read(goro_http_request *r, void *buf, size_t len, bool drain)
{
    hconn *hc = r->hc;
    if (r->body_err)
        return r->body_err;
    if (r->body == BODY_NONE || r->body_eof || len == 0)
        return 0;
    if (r->continue_due && !r->continue_sent && !drain) {
        r->continue_sent = true;
        if (!hc->resp.committed) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            int rc = out_put(hc, cont, sizeof cont - 1);
            if (!rc)
                rc = out_flush(hc);
            if (rc) {
                fail(&hc->resp, rc);
                return r->body_err = rc;
            }
        }
    }
    ssize_t n;
    if (r->body == BODY_LENGTH) {
        n = body_take(hc, buf, len < r->body_left ? len : (size_t)r->body_left);
        if (n < 0)
            return r->body_err = (int)n;
        r->body_left -= (uint64_t)n;
        if (r->body_left == 0) {
            r->body_eof = true;
            start_watch(hc);
        }
        return n;
    }
    /* chunked */
    for (;;) {
        uint64_t due = goro__http_chunked_data_due(&r->ck);
        if (due) {
            n = body_take(hc, buf, len < due ? len : (size_t)due);
            if (n < 0)
                return r->body_err = (int)n;
            goro__http_chunked_take(&r->ck, (uint64_t)n);
            return n;
        }
        if (goro__http_chunked_done(&r->ck)) {
            r->body_eof = true;
            start_watch(hc);
            return 0;
        }
        if (hc->rpos == hc->rend) {
            /* Everything buffered is consumed: reuse the space after the head. */
            hc->rpos = hc->rend = hc->body_base;
            n = goro_conn_read(hc->c, hc->rbuf + hc->rend, hc->rcap - hc->rend, hc->read_dl, NULL);
            if (n <= 0)
                return r->body_err = n == 0 ? -ECONNRESET : (int)n;
            hc->rend += (size_t)n;
        }
        long k = goro__http_chunked_frame(&r->ck, hc->rbuf + hc->rpos, hc->rend - hc->rpos);
        if (k < 0)
            return r->body_err = (int)k;
        hc->rpos += (size_t)k;
    }
}

ssize_t goro_http_request_read(goro_http_request *r, void *buf, size_t len)
{
    if (!r || (!buf && len))
        return -EINVAL;
    if (len > SSIZE_MAX)
        len = SSIZE_MAX;
    return body_read(r, buf, len, false);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode a query component s[0..n) ('+' is a space) into out (NULL: only
 * validate and measure). Returns the decoded length or -EINVAL. */
static ssize_t query_decode(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -EINVAL;
            int hi = hexval(s[i + 1]);
            int lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -EINVAL;
            c = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (out)
            out[o] = c;
        o++;
    }
    return (ssize_t)o;
}

ssize_t goro_http_query_value(const char *query, const char *key, char *buf, size_t len)
{
    if (!query || !key || (!buf && len))
        return -EINVAL;
    size_t kl = strlen(key);
    const char *p = query;
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t pl = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', pl);
        size_t nl = eq ? (size_t)(eq - p) : pl;
        /* Compare the decoded name with key. */
        ssize_t dl = query_decode(p, nl, NULL);
        if (dl == (ssize_t)kl) {
            char small[128];
            char *tmp = kl <= sizeof small ? small : malloc(kl ? kl : 1);
            if (!tmp)
                return -ENOMEM;
            query_decode(p, nl, tmp);
            bool match = memcmp(tmp, key, kl) == 0;
            if (tmp != small)
                free(tmp);
            if (match) {
                const char *v = eq ? eq + 1 : p + pl;
                size_t vl = eq ? pl - nl - 1 : 0;
                ssize_t n = query_decode(v, vl, NULL);
                if (n < 0)
                    return n;
                if ((size_t)n + 1 > len)
                    return -ENOSPC;
                query_decode(v, vl, buf);
                buf[n] = 0;
                return n;
            }
        }
        if (!amp)
            break;
        p = amp + 1;
    }
    return -ENOENT;
}

/* ---- connections ------------------------------------------------------------- */

/* free(), skipping NULL: goro's heap profiler (src/prof/heapprof.c) may
 * crash on free(NULL) while it reserves its sample region (see its
 * region_reserve), so this file never passes NULL to free. */
static void free_nn(void *p)
{
    if (p)
        free(p);
}

static void hconn_free(hconn *hc)
{
    free_nn(hc->rbuf);
    free_nn(hc->wbuf);
    free_nn(hc->scratch);
    free_nn(hc->resp.hbuf);
    free(hc);
}

static int grow_rbuf(hconn *hc, size_t want)
{
    size_t limit = hc->srv->max_header + LEADING_MAX + HEAD_ROOM + 16;
    if (want > limit)
        want = limit;
    if (want <= hc->rcap)
        return -ENOSPC;
    char *b = realloc(hc->rbuf, want);
    if (!b)
        return -ENOMEM;
    hc->rbuf = b;
    hc->rcap = want;
    return 0;
}

/* Answer a request the server refuses, then close. */
static bool reject(hconn *hc, int status)
{
    const char *reason = goro_http_status_text(status);
    char buf[256];
    char body[96];
    size_t bl = (size_t)goro__fmt_u64(body, (uint64_t)status);
    body[bl++] = ' ';
    size_t rl = strlen(reason);
    memcpy(body + bl, reason, rl);
    bl += rl;
    char *p = buf;
    PUT_LIT(p, "HTTP/1.1 ");
    p += goro__fmt_u64(p, (uint64_t)status);
    *p++ = ' ';
    memcpy(p, reason, rl);
    p += rl;
    PUT_LIT(p, "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n"
               "Content-Length: ");
    p += goro__fmt_u64(p, bl);
    PUT_LIT(p, "\r\n\r\n");
    memcpy(p, body, bl);
    p += bl;
    hc->write_dl = deadline_at(goro_now(), hc->srv->write_timeout);
    out_put(hc, buf, (size_t)(p - buf));
    hc->close_after = true;
    hc->linger = true;
    return false;
}

/* Map a body error to the status the server answers with when the handler
 * has not started a response, or 0 to just close. */
static int body_error_status(int err)
{
    switch (err) {
    case -EFBIG: return 413;
    case -EPROTO: return 400;
    case -EMSGSIZE: return 431;
    default: return 0;
    }
}

static void finish_response(hconn *hc)
{
    goro_http_response *w = &hc->resp;
    goro_http_request *r = &hc->req;
    if (w->err) {
        hc->close_after = true;
        return;
    }
    int st = body_error_status(r->body_err);
    if (st && w->mode == W_UNDECIDED) {
        /* The handler did not get to send anything: report the body error. */
        hc->blen = 0;
        reject(hc, st);
        return;
    }
    int rc = 0;
    switch (w->mode) {
    case W_UNDECIDED:
        rc = start_body(hc, true);
        break;
    case W_CHUNKED:
        rc = out_put(hc, "0\r\n\r\n", 5);
        break;
    case W_FIXED:
        if (w->written < (uint64_t)w->declared)
            hc->close_after = true; /* the client would wait for the rest */
        break;
    case W_CLOSE:
        hc->close_after = true;
        break;
    default:
        break;
    }
    if (rc)
        fail(w, rc);
    if (r->body_err)
        hc->close_after = true;
}

/* End the request context: cancel it, wait for the watcher, keep the byte
 * it may have read. */
static void end_ctx(hconn *hc)
{
    goro_http_request *r = &hc->req;
    if (!r->ctx)
        return;
    goro_ctx_cancel(r->ctx);
    if (r->watching) {
        goro_chan_recv(hc->watch_done, NULL, NULL); /* until the watcher closes it */
        goro_chan_release(hc->watch_done);
        hc->watch_done = NULL;
        r->watching = false;
    }
    goro_ctx_release(r->ctx);
    r->ctx = NULL;
    if (hc->have_byte) {
        hc->have_byte = false;
        /* The request is over: the buffer may move now. */
        if (hc->rend == hc->rcap) {
            memmove(hc->rbuf, hc->rbuf + hc->rpos, hc->rend - hc->rpos);
            hc->rend -= hc->rpos;
            hc->rpos = 0;
        }
        if (hc->rend == hc->rcap && grow_rbuf(hc, hc->rcap * 2) != 0) {
            hc->close_after = true;
            return;
        }
        hc->rbuf[hc->rend++] = (char)hc->byte;
    }
}

/* Discard what the handler left of the body, or decide to close. */
static void finish_body(hconn *hc)
{
    goro_http_request *r = &hc->req;
    if (r->body == BODY_NONE || r->body_eof)
        return;
    hc->linger = true; /* unless the rest is drained below */
    if (r->body_err || hc->close_after || (r->continue_due && !r->continue_sent)) {
        hc->close_after = true;
        return;
    }
    if (out_flush(hc) != 0) {
        hc->close_after = true;
        return;
    }
    char tmp[2048];
    size_t drained = 0;
    while (drained < DRAIN_MAX) {
        ssize_t n = body_read(r, tmp, sizeof tmp, true);
        if (n == 0) {
            hc->linger = false;
            return;
        }
        if (n < 0)
            break;
        drained += (size_t)n;
    }
    hc->close_after = true;
}

/* Serve one request whose first bytes are in the buffer. Returns whether
 * the connection stays open. */
static bool serve_one(hconn *hc, int64_t t_start)
{
    goro_http_server *s = hc->srv;
    hc->close_after = false;
    hc->linger = false;
    hc->version = 11;
    int64_t hdr_dl = deadline_at(t_start, min64(s->read_header_timeout, s->read_timeout));
    hc->read_dl = deadline_at(t_start, s->read_timeout);
    if (hc->rpos > 0) {
        memmove(hc->rbuf, hc->rbuf + hc->rpos, hc->rend - hc->rpos);
        hc->rend -= hc->rpos;
        hc->rpos = 0;
    }

    /* 2. the head */
    goro__http_scan sc = {0, 0};
    size_t hlen = 0;
    for (;;) {
        int r = goro__http_scan_head(&sc, hc->rbuf, hc->rend, &hlen);
        if (r == 1)
            break;
        if (r != 0 || sc.start > LEADING_MAX)
            return reject(hc, 400);
        if (hc->rend - sc.start >= s->max_header)
            return reject(hc, 431);
        if (hc->rend == hc->rcap) {
            int rc = grow_rbuf(hc, hc->rcap * 2);
            if (rc)
                return reject(hc, rc == -ENOMEM ? 503 : 431);
        }
        ssize_t n = goro_conn_read(hc->c, hc->rbuf + hc->rend, hc->rcap - hc->rend, hdr_dl, NULL);
        if (n <= 0)
            return false; /* timeout, end of stream, error: close quietly */
        hc->rend += (size_t)n;
    }
    if (hlen > s->max_header)
        return reject(hc, 431);
    size_t head_end = sc.start + hlen;
    if (hc->rcap - head_end < HEAD_ROOM && grow_rbuf(hc, head_end + HEAD_ROOM) == -ENOMEM)
        return reject(hc, 503);
    goro__http_head *h = &hc->head;
    h->fields = hc->fields;
    int st = goro__http_parse_head(hc->rbuf + sc.start, hlen, h);
    hc->rpos = hc->body_base = head_end;
    if (st) {
        h->nfields = 0;
        return reject(hc, st);
    }
    hc->version = h->version;
    hc->is_head = h->is_head;
    hc->keep_alive = h->version >= 11 ? !h->conn_close : (h->conn_keep_alive && !h->conn_close);

    /* the request */
    goro_http_request *r = &hc->req;
    memset(r, 0, sizeof *r);
    r->hc = hc;
    size_t need = (size_t)h->target_len + 3;
    if (need > hc->scratch_cap) {
        size_t cap = hc->scratch_cap ? hc->scratch_cap : 256;
        while (cap < need)
            cap *= 2;
        char *b = realloc(hc->scratch, cap);
        if (!b)
            return reject(hc, 503);
        hc->scratch = b;
        hc->scratch_cap = cap;
    }
    char *q = hc->scratch;
    if (h->path_len) {
        memcpy(q, h->target + h->path_off, h->path_len);
        q[h->path_len] = 0;
        r->path = q;
        q += h->path_len + 1;
    } else {
        r->path = "/";
    }
    if (h->query_off >= 0) {
        memcpy(q, h->target + h->query_off, h->query_len);
        q[h->query_len] = 0;
        r->query = q;
    } else {
        r->query = "";
    }
    if (h->chunked) {
        r->body = BODY_CHUNKED;
        goro__http_chunked_init(&r->ck, s->max_body, s->max_header);
    } else if (h->content_length > 0) {
        if ((uint64_t)h->content_length > s->max_body)
            return reject(hc, 413);
        r->body = BODY_LENGTH;
        r->body_left = (uint64_t)h->content_length;
    } else {
        r->body = BODY_NONE;
        r->body_eof = true;
    }
    r->continue_due = h->expect_continue && h->version >= 11 && r->body != BODY_NONE;

    /* the response */
    goro_http_response *w = &hc->resp;
    w->hc = hc;
    w->status = 200;
    w->mode = W_UNDECIDED;
    w->committed = w->has_date = w->conn_hdr = w->close_hdr = false;
    w->err = 0;
    w->declared = -1;
    w->written = 0;
    w->hlen = 0;
    hc->blen = 0;
    hc->write_dl = deadline_at(goro_now(), s->write_timeout);

    /* 3. the handler. Answers to earlier pipelined requests leave first:
     * they must not wait for this handler. */
    if (hc->wlen && out_flush(hc) != 0)
        return false;
    s->handler(w, r, s->arg);

    /* 4. the end of the exchange */
    finish_response(hc);
    end_ctx(hc);
    finish_body(hc);
    return hc->keep_alive && !hc->close_after;
}

/* Flush, half-close and read what the client still sends for a moment
 * (its reset would otherwise destroy the response in flight), remove the
 * connection from the server, close it, free it. */
static void conn_end(hconn *hc)
{
    goro_http_server *s = hc->srv;
    out_flush(hc);
    if (hc->linger) {
        goro_conn_shutdown(hc->c, SHUT_WR);
        int64_t dl = goro_deadline_after(LINGER_NS);
        size_t total = 0;
        while (total < LINGER_BYTES) {
            ssize_t n = goro_conn_read(hc->c, hc->rbuf, hc->rcap, dl, NULL);
            if (n <= 0)
                break;
            total += (size_t)n;
        }
    }
    goro_mutex_lock(&s->mu);
    if (hc->prev)
        hc->prev->next = hc->next;
    else
        s->conns = hc->next;
    if (hc->next)
        hc->next->prev = hc->prev;
    goro_mutex_unlock(&s->mu);
    goro_conn_close(hc->c);
    hconn_free(hc);
    goro_mutex_lock(&s->mu);
    s->nconns--;
    goro_cond_broadcast(&s->cond);
    goro_mutex_unlock(&s->mu);
    server_release(s);
}

static void conn_main(void *arg)
{
    hconn *hc = arg;
    goro_http_server *s = hc->srv;
    int one = 1;
    setsockopt(goro_conn_fd(hc->c), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    bool first = true;
    for (;;) {
        int64_t t_start;
        if (hc->rpos == hc->rend) {
            /* 1. idle: send what is pending, wait for the next request */
            if (out_flush(hc) != 0)
                break;
            hc->rpos = hc->rend = 0;
            if (hc->rcap > RBUF_KEEP) {
                char *b = realloc(hc->rbuf, RBUF_INIT);
                if (b) {
                    hc->rbuf = b;
                    hc->rcap = RBUF_INIT;
                }
            }
            if (hc->wcap > RBUF_KEEP) {
                char *b = realloc(hc->wbuf, WBUF_INIT);
                if (b) {
                    hc->wbuf = b;
                    hc->wcap = WBUF_INIT;
                }
            }
            int64_t dl = first ? deadline_at(hc->t_accept, s->read_header_timeout)
                               : deadline_at(goro_now(), s->idle_timeout);
            atomic_store(&hc->idle, 1);
            if (atomic_load(&s->shutting))
                break;
            ssize_t n = goro_conn_read(hc->c, hc->rbuf, hc->rcap, dl, NULL);
            atomic_store(&hc->idle, 0);
            if (n <= 0)
                break;
            hc->rend = (size_t)n;
            t_start = first ? hc->t_accept : goro_now();
        } else {
            t_start = goro_now(); /* pipelined: already here */
        }
        first = false;
        if (!serve_one(hc, t_start))
            break;
        if (atomic_load(&s->shutting)) {
            hc->linger = hc->rpos < hc->rend;
            break;
        }
    }
    conn_end(hc);
}

/* ---- serving ------------------------------------------------------------------ */

static bool temporary_accept_error(int rc)
{
    return rc == -EMFILE || rc == -ENFILE || rc == -ENOBUFS || rc == -ENOMEM || rc == -EAGAIN ||
           rc == -EINTR || rc == -EPROTO || rc == -EPERM || rc == -ECONNABORTED;
}

/* Register and start a connection. Consumes c. */
static void start_conn(goro_http_server *s, goro_conn *c)
{
    hconn *hc = calloc(1, sizeof *hc);
    if (hc) {
        hc->rbuf = malloc(RBUF_INIT);
        hc->wbuf = malloc(WBUF_INIT);
    }
    if (!hc || !hc->rbuf || !hc->wbuf) {
        if (hc)
            hconn_free(hc);
        goro_conn_close(c);
        return;
    }
    hc->rcap = RBUF_INIT;
    hc->wcap = WBUF_INIT;
    hc->srv = s;
    hc->c = c;
    hc->t_accept = goro_now();
    hc->resp.hc = hc;
    hc->req.hc = hc;
    goro_mutex_lock(&s->mu);
    if (atomic_load(&s->shutting)) {
        goro_mutex_unlock(&s->mu);
        goro_conn_close(c);
        hconn_free(hc);
        return;
    }
    hc->next = s->conns;
    if (s->conns)
        s->conns->prev = hc;
    s->conns = hc;
    s->nconns++;
    atomic_fetch_add(&s->refs, 1);
    goro_mutex_unlock(&s->mu);
    if (goro_go_named(conn_main, hc, "http conn") != 0) {
        hc->linger = false;
        conn_end(hc);
    }
}

int goro_http_serve(goro_http_server *s, goro_listener *l)
{
    if (!s || !l)
        return -EINVAL;
    if (goro_id() == 0)
        return -EPERM;
    int rc = goro_mutex_lock(&s->mu);
    if (rc)
        return rc;
    if (atomic_load(&s->shutting) || s->freed) {
        goro_mutex_unlock(&s->mu);
        goro_listener_close(l);
        return -ESHUTDOWN;
    }
    s->nserving++;
    s->nlisteners++;
    atomic_fetch_add(&s->refs, 1);
    goro_mutex_unlock(&s->mu);

    int64_t backoff = 0;
    rc = 0;
    for (;;) {
        goro_conn *c = NULL;
        int a = goro_accept(l, &c, GORO_NO_DEADLINE, s->shut);
        if (atomic_load(&s->shutting)) {
            if (a == 0)
                goro_conn_close(c); /* refused: the server is closing */
            break;
        }
        if (a == 0) {
            backoff = 0;
            start_conn(s, c);
            continue;
        }
        if (!temporary_accept_error(a)) {
            rc = a;
            break;
        }
        /* Like Go: back off 5 ms, doubling up to 1 s. */
        backoff = backoff ? min64(backoff * 2, GORO_SECOND) : 5 * GORO_MILLISECOND;
        goro_ctx_wait(s->shut, goro_deadline_after(backoff));
    }
    goro_listener_close(l);

    goro_mutex_lock(&s->mu);
    s->nlisteners--;
    goro_cond_broadcast(&s->cond);
    if (rc == 0) {
        while (s->nconns > 0)
            goro_cond_wait(&s->cond, &s->mu);
    }
    s->nserving--;
    goro_mutex_unlock(&s->mu);
    server_release(s);
    return rc;
}

int goro_http_listen_and_serve(goro_http_server *s, const char *addr)
{
    if (!s || !addr)
        return -EINVAL;
    goro_listener *l;
    int rc = goro_listen_tcp(addr, 0, &l);
    if (rc)
        return rc;
    return goro_http_serve(s, l);
}

int goro_http_server_shutdown(goro_http_server *s, int64_t deadline)
{
    if (!s)
        return -EINVAL;
    if (goro_id() == 0)
        return -EPERM;
    int rc = goro_mutex_lock(&s->mu);
    if (rc)
        return rc;
    if (!atomic_load(&s->shutting)) {
        atomic_store(&s->shutting, 1);
        goro_ctx_cancel(s->shut);
    }
    /* Idle connections: their goroutine sees end of stream and closes. A
     * connection that stops being idle after this check sees `shutting`
     * once its request is done (both sides use sequentially consistent
     * operations: one of them sees the other). */
    for (hconn *hc = s->conns; hc; hc = hc->next)
        if (atomic_load(&hc->idle))
            goro_conn_shutdown(hc->c, SHUT_RD);
    rc = 0;
    while (s->nconns > 0 || s->nlisteners > 0) {
        if (goro_cond_wait_until(&s->cond, &s->mu, deadline) == -ETIMEDOUT &&
            (s->nconns > 0 || s->nlisteners > 0)) {
            rc = -ETIMEDOUT;
            break;
        }
    }
    if (rc) {
        s->forced = true;
        for (hconn *hc = s->conns; hc; hc = hc->next)
            goro_conn_shutdown(hc->c, SHUT_RDWR);
        goro_ctx_cancel(s->base);
    }
    goro_mutex_unlock(&s->mu);
    return rc;
}
