/*
 * http_parse.c - the strict HTTP/1.1 request parser (see http_parse.h for
 * the rules it enforces and why).
 *
 * Owns nothing: every function works on the caller's buffer and state.
 * Invariants: no function reads outside [buf, buf + len) whatever the
 * input; the head parser touches each byte a bounded number of times (one
 * pass, plus short re-reads of a field value for Content-Length,
 * Connection and Host), so parsing is linear in the head size; the
 * chunked decoder is a byte-at-a-time state machine, so framing split
 * across any number of reads is decoded the same way.
 *
 * It depends on libc only, so the fuzzer builds it alone.
 */
#include "net/http_parse.h"

#include <errno.h>
#include <string.h>

/* Character classes. */
enum {
    C_TCHAR = 1,   /* token character (method, field name) */
    C_HEX = 4,     /* hex digit */
    C_FIELD = 8,   /* field-value character: HTAB, SP, VCHAR, obs-text */
    C_HOST = 16,   /* uri-host / port character (reg-name, IP literal) */
    C_TARGET = 32, /* request-target character: VCHAR except '#' */
};

static const unsigned char ctab[256] = {
    0,  0,  0,  0,  0,  0,  0,  0,  0,  8,  0,  0,  0,  0,  0,  0,
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
    8,  57, 40, 9,  57, 57, 57, 57, 56, 56, 57, 57, 56, 57, 57, 40,
    61, 61, 61, 61, 61, 61, 61, 61, 61, 61, 56, 56, 40, 56, 40, 40,
    40, 61, 61, 61, 61, 61, 61, 57, 57, 57, 57, 57, 57, 57, 57, 57,
    57, 57, 57, 57, 57, 57, 57, 57, 57, 57, 57, 56, 40, 56, 41, 57,
    41, 61, 61, 61, 61, 61, 61, 57, 57, 57, 57, 57, 57, 57, 57, 57,
    57, 57, 57, 57, 57, 57, 57, 57, 57, 57, 57, 40, 41, 40, 57, 0,
    8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,
    8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,
    8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,
    8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,
    8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,
    8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,
    8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,
    8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,
};

#define IS(c, cls) (ctab[(unsigned char)(c)] & (cls))

bool goro__http_is_tchar(unsigned char c) { return IS(c, C_TCHAR) != 0; }

bool goro__http_is_field_char(unsigned char c) { return IS(c, C_FIELD) != 0; }

static inline unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c | 0x20) : c;
}

bool goro__http_ieq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
    return true;
}

/* Field name n (length nl) equals the lower-case literal lit? */
#define NAME_IS(n, nl, lit) ((nl) == sizeof(lit) - 1 && goro__http_ieq((n), (lit), sizeof(lit) - 1))

static inline bool is_ows(char c) { return c == ' ' || c == '\t'; }

/* ---- finding the end of a head ------------------------------------------ */

int goro__http_scan_head(goro__http_scan *s, const char *buf, size_t len, size_t *head_len)
{
    if (s->pos <= s->start) {
        /* Nothing of the request line seen yet: skip empty lines. */
        while (s->start < len) {
            char c = buf[s->start];
            if (c == '\n')
                return 400;
            if (c != '\r')
                break;
            if (s->start + 1 >= len) {
                s->pos = s->start;
                return 0;
            }
            if (buf[s->start + 1] != '\n')
                return 400;
            s->start += 2;
        }
        s->pos = s->start;
        if (s->start >= len)
            return 0;
    }
    size_t i = s->pos;
    while (i < len) {
        const char *lf = memchr(buf + i, '\n', len - i);
        if (!lf)
            break;
        size_t k = (size_t)(lf - buf);
        /* k > start: the request line starts with a non-CR, non-LF byte. */
        if (k <= s->start || buf[k - 1] != '\r')
            return 400;
        if (k >= s->start + 2 && buf[k - 2] == '\n') {
            /* The line that ends here is empty: CRLF CRLF (the LF at k-2
             * was checked to follow a CR when it was passed). */
            *head_len = k + 1 - s->start;
            s->pos = k + 1;
            return 1;
        }
        i = k + 1;
    }
    s->pos = len;
    return 0;
}

/* ---- parsing a head ----------------------------------------------------- */

/* Content-Length value: 1*DIGIT, at most 18 digits of value. -1 if bad. */
static int64_t parse_length(const char *v, size_t n)
{
    if (n == 0)
        return -1;
    int64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        if (x > (INT64_MAX - 9) / 10)
            return -1;
        x = x * 10 + (v[i] - '0');
    }
    return x;
}

/* Connection: comma-separated tokens; we only act on close / keep-alive. */
static void parse_connection(goro__http_head *h, const char *v, size_t n)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (is_ows(v[i]) || v[i] == ','))
            i++;
        size_t b = i;
        while (i < n && v[i] != ',' && !is_ows(v[i]))
            i++;
        size_t tl = i - b;
        if (tl == 5 && goro__http_ieq(v + b, "close", 5))
            h->conn_close = true;
        else if (tl == 10 && goro__http_ieq(v + b, "keep-alive", 10))
            h->conn_keep_alive = true;
    }
}

static bool valid_host(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!IS(v[i], C_HOST))
            return false;
    return true;
}

/* Split the target into path and query (see http_parse.h). 0 or 400. */
static int parse_target(goro__http_head *h)
{
    const char *t = h->target;
    uint32_t n = h->target_len;
    uint32_t p = 0; /* start of the path */
    if (t[0] == '/') {
        p = 0;
    } else if (n == 1 && t[0] == '*') {
        if (!(h->method_len == 7 && memcmp(h->method, "OPTIONS", 7) == 0))
            return 400;
        h->path_off = 0;
        h->path_len = 1;
        h->query_off = -1;
        return 0;
    } else {
        uint32_t skip;
        if (n >= 7 && goro__http_ieq(t, "http://", 7))
            skip = 7;
        else if (n >= 8 && goro__http_ieq(t, "https://", 8))
            skip = 8;
        else
            return 400;
        p = skip;
        while (p < n && t[p] != '/' && t[p] != '?')
            p++;
        if (p == skip) /* empty authority */
            return 400;
    }
    uint32_t q = p;
    while (q < n && t[q] != '?')
        q++;
    h->path_off = p;
    h->path_len = q - p; /* 0 for "http://host" or "http://host?x": "/" */
    if (q < n) {
        h->query_off = (int32_t)(q + 1);
        h->query_len = n - q - 1;
    } else {
        h->query_off = -1;
        h->query_len = 0;
    }
    return 0;
}

int goro__http_parse_head(char *buf, size_t len, goro__http_head *h)
{
    goro__http_field *fields = h->fields;
    memset(h, 0, sizeof *h);
    h->fields = fields;
    h->content_length = -1;
    h->query_off = -1;
    if (!buf || len < 4 || len > UINT32_MAX || memcmp(buf + len - 4, "\r\n\r\n", 4) != 0)
        return 400;
    char *p = buf, *end = buf + len;

    /* request-line: method SP request-target SP HTTP-version CRLF */
    char *m = p;
    while (p < end && IS(*p, C_TCHAR))
        p++;
    if (p == m || p >= end || *p != ' ')
        return 400;
    h->method = m;
    h->method_len = (uint32_t)(p - m);
    *p++ = 0;
    char *t = p;
    while (p < end && IS(*p, C_TARGET)) {
        if (*p == '%') {
            if (end - p < 3 || !IS(p[1], C_HEX) || !IS(p[2], C_HEX))
                return 400;
            p += 3;
        } else {
            p++;
        }
    }
    if (p == t || p >= end || *p != ' ')
        return 400;
    h->target = t;
    h->target_len = (uint32_t)(p - t);
    *p++ = 0;
    if (end - p < 10 || memcmp(p, "HTTP/", 5) != 0 || p[5] < '0' || p[5] > '9' || p[6] != '.' ||
        p[7] < '0' || p[7] > '9' || p[8] != '\r' || p[9] != '\n')
        return 400;
    int major = p[5] - '0', minor = p[7] - '0';
    if (major != 1 || minor > 1)
        return 505;
    h->version = 10 + minor;
    p += 10;
    if (h->method_len == 7 && memcmp(h->method, "CONNECT", 7) == 0)
        return 501;
    h->is_head = h->method_len == 4 && memcmp(h->method, "HEAD", 4) == 0;
    int rc = parse_target(h);
    if (rc)
        return rc;

    /* field lines */
    unsigned te_count = 0;
    bool te_bad = false, expect_bad = false;
    for (;;) {
        if (end - p < 2)
            return 400;
        if (p[0] == '\r') {
            if (p[1] != '\n')
                return 400;
            p += 2;
            break;
        }
        /* A line starting with whitespace is obs-fold (or whitespace
         * between the request line and the first field): 400. */
        char *n = p;
        while (p < end && IS(*p, C_TCHAR))
            p++;
        if (p == n || p >= end || *p != ':')
            return 400;
        uint32_t nl = (uint32_t)(p - n);
        *p++ = 0;
        while (p < end && is_ows(*p))
            p++;
        char *v = p, *vend = p;
        while (p < end && *p != '\r') {
            if (!IS(*p, C_FIELD))
                return 400; /* NUL, LF, other controls, DEL */
            if (!is_ows(*p))
                vend = p + 1;
            p++;
        }
        if (end - p < 2 || p[1] != '\n')
            return 400; /* bare CR */
        if (h->nfields >= GORO__HTTP_MAX_FIELDS)
            return 431;
        uint32_t vl = (uint32_t)(vend - v);
        *vend = 0;
        p += 2;
        h->fields[h->nfields++] = (goro__http_field){.name = n, .value = v, .name_len = nl,
                                                     .value_len = vl};
        switch (nl) {
        case 4:
            if (NAME_IS(n, nl, "host")) {
                if (h->host || !valid_host(v, vl))
                    return 400;
                h->host = v;
            }
            break;
        case 6:
            if (NAME_IS(n, nl, "expect")) {
                if (vl == 12 && goro__http_ieq(v, "100-continue", 12))
                    h->expect_continue = true;
                else
                    expect_bad = true;
            }
            break;
        case 10:
            if (NAME_IS(n, nl, "connection"))
                parse_connection(h, v, vl);
            break;
        case 14:
            if (NAME_IS(n, nl, "content-length")) {
                int64_t cl = parse_length(v, vl);
                if (cl < 0 || (h->content_length >= 0 && h->content_length != cl))
                    return 400;
                h->content_length = cl;
            }
            break;
        case 17:
            if (NAME_IS(n, nl, "transfer-encoding")) {
                te_count++;
                if (!(vl == 7 && goro__http_ieq(v, "chunked", 7)))
                    te_bad = true;
            }
            break;
        default:
            break;
        }
    }
    if (p != end)
        return 400;
    if (h->version == 11 && !h->host)
        return 400;
    if (te_count) {
        if (h->version == 10 || h->content_length >= 0)
            return 400;
        if (te_count > 1 || te_bad)
            return 501;
        h->chunked = true;
    }
    if (expect_bad)
        return 417;
    return 0;
}

/* ---- chunked bodies ------------------------------------------------------ */

enum {
    CK_SIZE0,    /* first hex digit of a chunk size */
    CK_SIZE,     /* more hex digits, ';' or CR */
    CK_EXT,      /* chunk extensions up to CR */
    CK_SIZE_LF,  /* LF ending the size line */
    CK_DATA,     /* payload bytes are due */
    CK_DATA_CR,  /* CR after the payload */
    CK_DATA_LF,  /* LF after the payload */
    CK_TR_START, /* start of a trailer line, or CR of the final CRLF */
    CK_TR_NAME,  /* trailer field name up to ':' */
    CK_TR_VALUE, /* trailer field value up to CR */
    CK_TR_LF,    /* LF ending a trailer line */
    CK_FINAL_LF, /* LF of the final CRLF */
    CK_DONE,
};

void goro__http_chunked_init(goro__http_chunked *c, uint64_t max_total, size_t max_trailer)
{
    memset(c, 0, sizeof *c);
    c->state = CK_SIZE0;
    c->max_total = max_total;
    c->max_trailer = max_trailer;
}

static inline int hexval(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = lower(ch);
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

long goro__http_chunked_frame(goro__http_chunked *c, const char *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char ch = (unsigned char)p[i];
        switch (c->state) {
        case CK_SIZE0:
        case CK_SIZE: {
            int d = hexval(ch);
            if (d >= 0) {
                if (c->remaining > (UINT64_C(1) << 59))
                    return -EFBIG; /* absurd size: beyond any limit */
                c->remaining = c->remaining * 16 + (uint64_t)d;
                c->state = CK_SIZE;
            } else if (c->state == CK_SIZE && ch == ';') {
                c->state = CK_EXT;
            } else if (c->state == CK_SIZE && ch == '\r') {
                c->state = CK_SIZE_LF;
            } else {
                return -EPROTO;
            }
            break;
        }
        case CK_EXT:
            if (ch == '\r')
                c->state = CK_SIZE_LF;
            else if (!IS(ch, C_FIELD))
                return -EPROTO;
            break;
        case CK_SIZE_LF:
            if (ch != '\n')
                return -EPROTO;
            c->line = 0;
            if (c->remaining == 0) {
                c->state = CK_TR_START;
            } else {
                if (c->remaining > c->max_total - c->total)
                    return -EFBIG;
                c->state = CK_DATA;
                return (long)(i + 1);
            }
            i++;
            continue;
        case CK_DATA:
            return (long)i;
        case CK_DATA_CR:
            if (ch != '\r')
                return -EPROTO;
            c->state = CK_DATA_LF;
            break;
        case CK_DATA_LF:
            if (ch != '\n')
                return -EPROTO;
            c->state = CK_SIZE0;
            c->line = 0;
            i++;
            continue;
        case CK_TR_START:
            if (ch == '\r')
                c->state = CK_FINAL_LF;
            else if (IS(ch, C_TCHAR))
                c->state = CK_TR_NAME;
            else
                return -EPROTO; /* obs-fold or junk */
            break;
        case CK_TR_NAME:
            if (ch == ':')
                c->state = CK_TR_VALUE;
            else if (!IS(ch, C_TCHAR))
                return -EPROTO;
            break;
        case CK_TR_VALUE:
            if (ch == '\r')
                c->state = CK_TR_LF;
            else if (!IS(ch, C_FIELD))
                return -EPROTO;
            break;
        case CK_TR_LF:
            if (ch != '\n')
                return -EPROTO;
            c->state = CK_TR_START;
            break;
        case CK_FINAL_LF:
            if (ch != '\n')
                return -EPROTO;
            c->state = CK_DONE;
            return (long)(i + 1);
        default: /* CK_DONE */
            return (long)i;
        }
        /* A framing byte of the current line was consumed. */
        i++;
        if (c->state >= CK_TR_START) {
            if (c->state == CK_TR_START) {
                c->line = 0;
            } else if (++c->line > GORO__HTTP_CHUNK_LINE_MAX) {
                return -EMSGSIZE;
            }
            if (++c->trailer_bytes > c->max_trailer)
                return -EMSGSIZE;
        } else if (++c->line > GORO__HTTP_CHUNK_LINE_MAX) {
            return -EPROTO;
        }
    }
    return (long)i;
}

uint64_t goro__http_chunked_data_due(const goro__http_chunked *c)
{
    return c->state == CK_DATA ? c->remaining : 0;
}

void goro__http_chunked_take(goro__http_chunked *c, uint64_t n)
{
    if (c->state != CK_DATA || n > c->remaining)
        return;
    c->remaining -= n;
    c->total += n;
    if (c->remaining == 0)
        c->state = CK_DATA_CR;
}

bool goro__http_chunked_done(const goro__http_chunked *c) { return c->state == CK_DONE; }
