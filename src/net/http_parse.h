/*
 * http_parse.h - the strict HTTP/1.1 request parser (RFC 9110, RFC 9112).
 *
 * Three pure pieces, no I/O and no allocation, so that they can be fuzzed
 * on their own (fuzz/fuzz_http_parse.c compiles http_parse.c alone):
 *
 *  - goro__http_scan_head finds the end of a request head (CRLF CRLF) in a
 *    buffer that grows as bytes arrive, resuming where it stopped (linear in
 *    the total length, never rescanning). It skips empty lines before the
 *    request line (RFC 9112 2.2) and rejects a bare LF at once.
 *  - goro__http_parse_head parses a complete head once, in place: it writes
 *    NUL terminators into the buffer so that the method, the target, field
 *    names and (trimmed) field values become C strings pointing into it.
 *  - goro__http_chunked is a byte-at-a-time state machine for a chunked
 *    request body: it walks the framing (size lines, extensions, CRLFs,
 *    trailer fields) and tells the caller how many payload bytes follow, so
 *    the payload itself can be copied (or read from the socket) straight
 *    into the caller's buffer.
 *
 * Strictness (every choice rejects, never guesses; see goro.h):
 *  - lines end in CRLF only: a bare LF or a bare CR is 400;
 *  - request-line is exactly method SP target SP HTTP/d.d; the method and
 *    field names are tokens; the target is visible ASCII without '#', with
 *    well-formed %XX escapes, in origin-form, absolute-form (http/https) or
 *    "*" (OPTIONS only); CONNECT is 501;
 *  - HTTP/1.0 and HTTP/1.1 are served, any other well-formed version is 505;
 *  - no whitespace between a field name and its colon, no obs-fold (a line
 *    starting with SP or HTAB), no NUL or other control character (except
 *    HTAB) in a field value; obs-text (0x80-0xFF) is allowed in values;
 *  - Content-Length is 1*DIGIT (no sign, no list); repeated Content-Length
 *    lines must agree; Content-Length with Transfer-Encoding is 400;
 *    Transfer-Encoding in HTTP/1.0 is 400; a Transfer-Encoding other than a
 *    single "chunked" (case-insensitive) is 501;
 *  - HTTP/1.1 requires exactly one Host; more than one Host is 400;
 *  - Expect other than "100-continue" is 417;
 *  - more than GORO__HTTP_MAX_FIELDS field lines is 431.
 */
#ifndef GORO_HTTP_PARSE_H
#define GORO_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Most field lines one request head may have (431 beyond). */
#define GORO__HTTP_MAX_FIELDS 128

/* Longest chunk-size line (size, extensions, CRLF) and longest trailer
 * field line of a chunked body, in bytes. */
#define GORO__HTTP_CHUNK_LINE_MAX 4096

/* ---- finding the end of a head ------------------------------------------ */

typedef struct goro__http_scan {
    size_t start; /* offset of the request line (after skipped empty lines) */
    size_t pos;   /* bytes before this were examined */
} goro__http_scan;

/* Look for the end of a request head in buf[0..len), where buf only grows
 * between calls (same s, initially zeroed). Returns 1 with *head_len set
 * (the head is buf[s->start .. s->start + *head_len), ending in CRLF CRLF),
 * 0 when more bytes are needed, or 400 for a bare LF or a CR that does not
 * start a CRLF in a skipped empty line. */
int goro__http_scan_head(goro__http_scan *s, const char *buf, size_t len, size_t *head_len);

/* ---- parsing a head ----------------------------------------------------- */

typedef struct goro__http_field {
    const char *name;  /* NUL-terminated, inside the head buffer */
    const char *value; /* NUL-terminated, leading and trailing OWS removed */
    uint32_t name_len, value_len;
} goro__http_field;

typedef struct goro__http_head {
    const char *method; /* NUL-terminated */
    const char *target; /* NUL-terminated raw request-target */
    uint32_t method_len, target_len;
    /* Path and query inside target (not terminated there): the path of an
     * absolute-form target starts after its authority ("/" when empty);
     * query_off is -1 when the target has no '?'. */
    uint32_t path_off, path_len;
    int32_t query_off;
    uint32_t query_len;
    int version; /* 10 or 11 */
    goro__http_field *fields; /* caller's array of GORO__HTTP_MAX_FIELDS */
    uint32_t nfields;
    int64_t content_length; /* -1 when absent */
    const char *host;       /* NULL when absent */
    bool chunked;           /* Transfer-Encoding: chunked */
    bool conn_close;        /* Connection: close */
    bool conn_keep_alive;   /* Connection: keep-alive */
    bool expect_continue;   /* Expect: 100-continue */
    bool is_head;           /* method HEAD */
} goro__http_head;

/* Parse the complete head buf[0..len) (as delimited by goro__http_scan_head;
 * any input is safe: a head not ending in CRLF CRLF is 400). h->fields must
 * point to GORO__HTTP_MAX_FIELDS entries; everything else in h is set here.
 * Modifies buf (NUL terminators). Returns 0, or the HTTP status code to
 * answer with: 400, 417, 431, 501 or 505. */
int goro__http_parse_head(char *buf, size_t len, goro__http_head *h);

/* ---- chunked bodies ------------------------------------------------------ */

typedef struct goro__http_chunked {
    int state;
    int ndigits;
    uint64_t remaining;    /* payload bytes left in the current chunk */
    uint64_t total;        /* payload bytes so far */
    uint64_t max_total;    /* > this: -EFBIG (UINT64_MAX: no limit) */
    size_t line;           /* bytes of the current size or trailer line */
    size_t trailer_bytes;  /* bytes of the trailer section so far */
    size_t max_trailer;    /* > this: -EFBIG */
} goro__http_chunked;

/* Start decoding a body of at most max_total payload bytes whose trailer
 * section may have at most max_trailer bytes. */
void goro__http_chunked_init(goro__http_chunked *c, uint64_t max_total, size_t max_trailer);

/* Consume framing bytes from p[0..len) until payload bytes are due, the
 * body ends, or the input runs out. Returns the number of bytes consumed
 * (>= 0), -EPROTO for malformed framing, or -EFBIG when a limit is
 * exceeded. Afterwards goro__http_chunked_data_due(c) tells how many
 * payload bytes may be taken next (call goro__http_chunked_take for
 * them) and goro__http_chunked_done(c) whether the body is complete. */
long goro__http_chunked_frame(goro__http_chunked *c, const char *p, size_t len);

/* Payload bytes that may be taken now (0 while framing is due). */
uint64_t goro__http_chunked_data_due(const goro__http_chunked *c);

/* Record that n <= data_due payload bytes were taken. */
void goro__http_chunked_take(goro__http_chunked *c, uint64_t n);

/* The last chunk and the trailer section have been consumed. */
bool goro__http_chunked_done(const goro__http_chunked *c);

/* ---- small helpers shared with the server -------------------------------- */

/* Is c a tchar (RFC 9110 5.6.2)? */
bool goro__http_is_tchar(unsigned char c);

/* May c appear in a field value (HTAB, SP, VCHAR, obs-text)? */
bool goro__http_is_field_char(unsigned char c);

/* ASCII case-insensitive comparison of a[0..n) and b[0..n). */
bool goro__http_ieq(const char *a, const char *b, size_t n);

#endif /* GORO_HTTP_PARSE_H */
