/*
 * fuzz_http_parse.c - libFuzzer target for goro's strict HTTP/1.1 request
 * parser (src/net/http_parse.c, compiled in alone).
 *
 * For every input it checks, beyond "no crash, no out-of-bounds access,
 * no undefined behaviour" (ASan + UBSan):
 *  - goro__http_scan_head gives the same answer fed all at once and fed in
 *    pieces (sizes from a small PRNG seeded by the input);
 *  - goro__http_parse_head, run on an exact-size copy of the head (so any
 *    over-read hits ASan's redzone) and on the raw input, returns 0 or one
 *    of the documented status codes, and on success every string it
 *    returns lies inside the buffer, is NUL-terminated where documented,
 *    and the framing fields are consistent;
 *  - the chunked decoder gives the same payload and verdict fed at once
 *    and byte by byte, never yields more payload than its limit.
 * A violated check calls abort(), which libFuzzer reports as a crash.
 *
 *   cmake -S . -B build-fuzz -G Ninja -DCMAKE_C_COMPILER=clang -DGORO_FUZZ=ON
 *   cmake --build build-fuzz --target fuzz_http_parse
 *   build-fuzz/fuzz/fuzz_http_parse -max_total_time=60 CORPUS_COPY_DIR
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/http_parse.h"

#define CHECK(c)                                                               \
    do {                                                                       \
        if (!(c))                                                              \
            abort();                                                           \
    } while (0)

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static bool inside(const char *p, size_t n, const char *buf, size_t len)
{
    return p >= buf && p + n <= buf + len;
}

static void check_head(char *buf, size_t len)
{
    goro__http_field fields[GORO__HTTP_MAX_FIELDS];
    goro__http_head h;
    h.fields = fields;
    int rc = goro__http_parse_head(buf, len, &h);
    CHECK(rc == 0 || rc == 400 || rc == 417 || rc == 431 || rc == 501 || rc == 505);
    if (rc != 0)
        return;
    CHECK(h.version == 10 || h.version == 11);
    CHECK(h.method_len > 0 && inside(h.method, h.method_len + 1, buf, len));
    CHECK(h.method[h.method_len] == 0 && strlen(h.method) == h.method_len);
    CHECK(h.target_len > 0 && inside(h.target, h.target_len + 1, buf, len));
    CHECK(h.target[h.target_len] == 0 && strlen(h.target) == h.target_len);
    CHECK((uint64_t)h.path_off + h.path_len <= h.target_len);
    if (h.query_off >= 0)
        CHECK((uint64_t)h.query_off + h.query_len == h.target_len && h.query_off > 0 &&
              h.target[h.query_off - 1] == '?');
    else
        CHECK(h.query_len == 0);
    CHECK(h.nfields <= GORO__HTTP_MAX_FIELDS);
    for (uint32_t i = 0; i < h.nfields; i++) {
        const goro__http_field *f = &h.fields[i];
        CHECK(f->name_len > 0 && inside(f->name, f->name_len + 1, buf, len));
        CHECK(inside(f->value, f->value_len + 1, buf, len));
        CHECK(f->name[f->name_len] == 0 && f->value[f->value_len] == 0);
        CHECK(strlen(f->name) == f->name_len && strlen(f->value) == f->value_len);
        for (uint32_t k = 0; k < f->name_len; k++)
            CHECK(goro__http_is_tchar((unsigned char)f->name[k]));
        for (uint32_t k = 0; k < f->value_len; k++)
            CHECK(goro__http_is_field_char((unsigned char)f->value[k]));
        if (f->value_len)
            CHECK(f->value[0] != ' ' && f->value[0] != '\t' && f->value[f->value_len - 1] != ' ' &&
                  f->value[f->value_len - 1] != '\t');
    }
    CHECK(h.content_length >= -1);
    if (h.chunked)
        CHECK(h.content_length == -1 && h.version == 11);
    if (h.version == 11)
        CHECK(h.host != NULL);
}

/* Decode a chunked body; returns the verdict (1 done, 0 needs more, <0
 * error) and the payload length. step 0: everything at once. */
static int decode(const uint8_t *p, size_t len, size_t step, uint64_t max, uint64_t *payload)
{
    goro__http_chunked c;
    goro__http_chunked_init(&c, max, 256);
    size_t pos = 0;
    *payload = 0;
    while (pos < len) {
        size_t avail = len - pos;
        if (step && avail > step)
            avail = step;
        uint64_t due = goro__http_chunked_data_due(&c);
        if (due) {
            size_t k = avail < due ? avail : (size_t)due;
            goro__http_chunked_take(&c, k);
            *payload += k;
            pos += k;
            continue;
        }
        if (goro__http_chunked_done(&c))
            return 1;
        long k = goro__http_chunked_frame(&c, (const char *)p + pos, avail);
        if (k < 0)
            return (int)k;
        CHECK((size_t)k <= avail);
        if (k == 0 && !goro__http_chunked_data_due(&c) && !goro__http_chunked_done(&c))
            abort(); /* no progress while framing is due */
        pos += (size_t)k;
    }
    CHECK(*payload <= max);
    return goro__http_chunked_done(&c) ? 1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0;
    uint64_t seed = size;
    for (size_t i = 0; i < size && i < 16; i++)
        seed = seed * 131 + data[i];

    /* 1. the scanner, all at once and in pieces */
    goro__http_scan s1 = {0, 0};
    size_t hl1 = 0;
    int r1 = goro__http_scan_head(&s1, (const char *)data, size, &hl1);
    goro__http_scan s2 = {0, 0};
    size_t hl2 = 0, fed = 0;
    int r2 = 0;
    while (fed < size) {
        fed += 1 + (size_t)(rng_next(&seed) % 7);
        if (fed > size)
            fed = size;
        r2 = goro__http_scan_head(&s2, (const char *)data, fed, &hl2);
        if (r2 != 0)
            break;
    }
    if (size == 0)
        r2 = goro__http_scan_head(&s2, (const char *)data, 0, &hl2);
    CHECK(r1 == 0 || r1 == 1 || r1 == 400);
    CHECK(r1 == r2);
    if (r1 == 1) {
        CHECK(hl1 == hl2 && s1.start == s2.start);
        CHECK(s1.start + hl1 <= size && hl1 >= 4);
        CHECK(memcmp(data + s1.start + hl1 - 4, "\r\n\r\n", 4) == 0);
    }

    /* 2. the parser on the exact head, and on the raw input */
    if (r1 == 1) {
        char *head = malloc(hl1);
        CHECK(head != NULL);
        memcpy(head, data + s1.start, hl1);
        goro__http_field fields[GORO__HTTP_MAX_FIELDS];
        goro__http_head h;
        h.fields = fields;
        memcpy(head, data + s1.start, hl1);
        int rc = goro__http_parse_head(head, hl1, &h);
        bool chunked = rc == 0 && h.chunked;
        memcpy(head, data + s1.start, hl1);
        check_head(head, hl1);
        free(head);

        /* 3. a chunked body after it: same result however it is fed */
        if (chunked) {
            const uint8_t *body = data + s1.start + hl1;
            size_t bl = size - s1.start - hl1;
            uint64_t max = 1 + rng_next(&seed) % 4096;
            uint64_t p1, p2, p3;
            int d1 = decode(body, bl, 0, max, &p1);
            int d2 = decode(body, bl, 1, max, &p2);
            int d3 = decode(body, bl, 1 + (size_t)(rng_next(&seed) % 13), max, &p3);
            CHECK(d1 == d2 && d1 == d3);
            CHECK(d1 == 1 || d1 == 0 || d1 == -EPROTO || d1 == -EFBIG || d1 == -EMSGSIZE);
            if (d1 >= 0)
                CHECK(p1 == p2 && p1 == p3);
        }
    }
    char *raw = malloc(size ? size : 1);
    CHECK(raw != NULL);
    memcpy(raw, data, size);
    check_head(raw, size);
    free(raw);

    /* 4. the input as a chunked body on its own */
    uint64_t q1, q2;
    int e1 = decode(data, size, 0, UINT64_MAX, &q1);
    int e2 = decode(data, size, 1, UINT64_MAX, &q2);
    CHECK(e1 == e2);
    if (e1 >= 0)
        CHECK(q1 == q2);
    return 0;
}
