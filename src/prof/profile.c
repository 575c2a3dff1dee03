/*
 * profile.c - goro's in-memory profile (profile.h) and its two legacy text
 * encoders: the goroutine-style count format and the heap format
 * (docs/formats.md §2 and §4), byte for byte as Go 1.19's runtime/pprof
 * writes them. The profile.proto encoder is pprof_proto.c.
 *
 * Owns: the goro__prof model, and the helpers every encoder shares
 * (prof_internal.h): an interning string table, a u64 -> u32 hash map and a
 * growable byte buffer.
 *
 * The model. Every string handed in (kind, types, units, label keys and
 * values, comments) is interned once into the profile's string table, so
 * 100k samples carrying the same label cost one copy and the proto encoder
 * maps them to string_table indices with an array lookup. Samples live in
 * one array; their program counters in one shared pcs array, their labels in
 * one shared label array (offsets, not pointers, so growing never
 * invalidates anything). Sample types must be declared before the first
 * sample (add_type fails with -EINVAL afterwards), and a sample needs at
 * least one type: every sample carries exactly one value per type, which is
 * what pprof checks. The void setters (period, default type) cannot report
 * running out of memory; they set a sticky p->err that every encoder
 * returns instead of output that silently lacks the setting.
 *
 * The text encoders, as Go's printCountProfile / writeHeapInternal /
 * printStackRecord do it:
 *  - count profiles: samples are grouped by the exact text of their key
 *    ("@ 0x.. 0x.." plus "\n# labels: {...}"), so identical stacks and
 *    labels merge (their value[0] adds up); groups sort by count
 *    descending, ties by the key's bytes (Go's string order). Labels print
 *    as Go's %q:%q pairs sorted by their text; numeric labels print their
 *    decimal value as the quoted string (Go has no numeric goroutine
 *    labels).
 *  - heap: one record per sample (Go's records are never merged either),
 *    sorted by raw in-use bytes descending, ties in insertion order.
 *  - frame lines: one per frame of each pc's inline chain (innermost
 *    first), "#\t<pc>\t<func>+<off>\t<file>:<line>", where pc is the
 *    location address (return address - 1, or the exact leaf) and off is pc
 *    minus the entry of the physical function, as Go computes it for
 *    inlined frames too. Leading goro-internal frames ("goro__*") are hidden
 *    like Go hides leading "runtime." frames, goro__g_start (goro's
 *    runtime.goexit) is always hidden, and if that hides everything the
 *    record is printed again in full. A frame the symbolizer cannot name is
 *    "#\t<pc>" (Go's shape for a nameless frame); a named frame without a
 *    file prints "?" for it. An exact leaf pc is printed as pc + 1 in the
 *    "@" list, as Go prints a function entry, so that pprof's legacy parser,
 *    which subtracts one from every address, lands on it.
 *  - all text goes through a re-implementation of Go's text/tabwriter
 *    configured as runtime/pprof does (minwidth 1, tabwidth 8, padding 1,
 *    padchar '\t', no flags), including its treatment of '\v', '\f' and the
 *    0xff escape byte, and widths counted in runes as Go's utf8 counts them.
 *    %q follows strconv.Quote; its printable-rune test knows ASCII, the C1
 *    controls, the Unicode spaces, format characters and private-use
 *    ranges, and treats other non-ASCII code points as printable (Go would
 *    escape unassigned ones).
 *
 * Locking: none. A profile is built and encoded by one thread at a time
 * (profile.h); encoders only read the profile. Symbolization (symbolize.h)
 * is thread-safe and is never done in a signal handler.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prof/prof_internal.h"

/* ========================================================================== */
/* Byte buffer                                                                 */
/* ========================================================================== */

bool goro__pbuf_reserve(goro__pbuf *b, size_t extra)
{
    if (b->err)
        return false;
    if (b->cap - b->n >= extra)
        return true;
    if (extra > SIZE_MAX - b->n) {
        b->err = -ENOMEM;
        return false;
    }
    size_t need = b->n + extra;
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2) {
            ncap = need;
            break;
        }
        ncap *= 2;
    }
    unsigned char *np = realloc(b->p, ncap);
    if (!np) {
        b->err = -ENOMEM;
        return false;
    }
    b->p = np;
    b->cap = ncap;
    return true;
}

void goro__pbuf_put(goro__pbuf *b, const void *s, size_t len)
{
    if (!len || !goro__pbuf_reserve(b, len))
        return;
    memcpy(b->p + b->n, s, len);
    b->n += len;
}

void goro__pbuf_free(goro__pbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ========================================================================== */
/* Interning string table                                                      */
/* ========================================================================== */

struct goro__pstr_chunk {
    goro__pstr_chunk *next;
    size_t used, cap;
    char data[];
};

#define PSTR_CHUNK (64 * 1024)

static uint32_t str_hash(const char *s, size_t len)
{
    uint64_t h = 0x9E3779B97F4A7C15ull ^ len;
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
        s += 8;
        len -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, len);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
    h *= 0x9E3779B97F4A7C15ull;
    return (uint32_t)(h >> 32);
}

static char *pstr_store(goro__pstrtab *t, const char *s, size_t len)
{
    goro__pstr_chunk *c = t->chunks;
    if (!c || c->cap - c->used < len + 1) {
        size_t cap = len + 1 > PSTR_CHUNK ? len + 1 : PSTR_CHUNK;
        c = malloc(sizeof *c + cap);
        if (!c)
            return NULL;
        c->cap = cap;
        c->used = 0;
        /* A big string gets its own chunk behind the current one, so the
         * current chunk's free space is not abandoned. */
        if (t->chunks && cap > PSTR_CHUNK) {
            c->next = t->chunks->next;
            t->chunks->next = c;
        } else {
            c->next = t->chunks;
            t->chunks = c;
        }
    }
    char *d = c->data + c->used;
    memcpy(d, s, len);
    d[len] = '\0';
    c->used += len + 1;
    return d;
}

static bool pstr_grow_slots(goro__pstrtab *t)
{
    uint32_t ns = t->nslots ? t->nslots * 2 : 256;
    if (ns < t->nslots)
        return false;
    uint32_t *slots = calloc(ns, sizeof *slots);
    if (!slots)
        return false;
    for (uint32_t i = 0; i < t->n; i++) {
        uint32_t j = t->v[i].hash & (ns - 1);
        while (slots[j])
            j = (j + 1) & (ns - 1);
        slots[j] = i + 1;
    }
    free(t->slots);
    t->slots = slots;
    t->nslots = ns;
    return true;
}

int goro__pstr_init(goro__pstrtab *t)
{
    memset(t, 0, sizeof *t);
    int64_t id = goro__pstr_intern(t, "", 0);
    if (id < 0) {
        goro__pstr_free(t);
        return (int)id;
    }
    return 0;
}

void goro__pstr_free(goro__pstrtab *t)
{
    goro__pstr_chunk *c = t->chunks;
    while (c) {
        goro__pstr_chunk *n = c->next;
        free(c);
        c = n;
    }
    free(t->v);
    free(t->slots);
    memset(t, 0, sizeof *t);
}

int64_t goro__pstr_intern(goro__pstrtab *t, const char *s, size_t len)
{
    if (len >= UINT32_MAX || t->n >= UINT32_MAX / 4)
        return -E2BIG;
    if (len && !s)
        return -EINVAL;
    uint32_t h = str_hash(s ? s : "", len);
    if (t->nslots) {
        uint32_t j = h & (t->nslots - 1);
        while (t->slots[j]) {
            const goro__pstr_ent *e = &t->v[t->slots[j] - 1];
            if (e->hash == h && e->len == len && memcmp(e->s, s, len) == 0)
                return t->slots[j] - 1;
            j = (j + 1) & (t->nslots - 1);
        }
    }
    if ((uint64_t)(t->n + 1) * 2 > t->nslots && !pstr_grow_slots(t))
        return -ENOMEM;
    if (t->n == t->cap) {
        uint32_t ncap = t->cap ? t->cap * 2 : 64;
        goro__pstr_ent *nv = realloc(t->v, (size_t)ncap * sizeof *nv);
        if (!nv)
            return -ENOMEM;
        t->v = nv;
        t->cap = ncap;
    }
    char *d = pstr_store(t, s ? s : "", len);
    if (!d)
        return -ENOMEM;
    uint32_t id = t->n++;
    t->v[id] = (goro__pstr_ent){d, (uint32_t)len, h};
    uint32_t j = h & (t->nslots - 1);
    while (t->slots[j])
        j = (j + 1) & (t->nslots - 1);
    t->slots[j] = id + 1;
    return id;
}

/* ========================================================================== */
/* u64 -> u32 hash map                                                         */
/* ========================================================================== */

static size_t pmap_hash(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (size_t)k;
}

static bool pmap_grow(goro__pmap *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 1024;
    if (ncap > SIZE_MAX / sizeof(goro__pmap_ent))
        return false;
    goro__pmap_ent *nv = malloc(ncap * sizeof *nv);
    if (!nv)
        return false;
    for (size_t i = 0; i < ncap; i++)
        nv[i].val = UINT32_MAX;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->v[i].val == UINT32_MAX)
            continue;
        size_t j = pmap_hash(m->v[i].key) & (ncap - 1);
        while (nv[j].val != UINT32_MAX)
            j = (j + 1) & (ncap - 1);
        nv[j] = m->v[i];
    }
    free(m->v);
    m->v = nv;
    m->cap = ncap;
    return true;
}

uint32_t goro__pmap_get_or_add(goro__pmap *m, uint64_t key, uint32_t val_if_new, bool *found)
{
    *found = false;
    if ((m->n + 1) * 2 > m->cap && !pmap_grow(m))
        return UINT32_MAX;
    size_t j = pmap_hash(key) & (m->cap - 1);
    while (m->v[j].val != UINT32_MAX) {
        if (m->v[j].key == key) {
            *found = true;
            return m->v[j].val;
        }
        j = (j + 1) & (m->cap - 1);
    }
    if (val_if_new == UINT32_MAX)
        return UINT32_MAX;
    m->v[j].key = key;
    m->v[j].val = val_if_new;
    m->n++;
    return val_if_new;
}

void goro__pmap_free(goro__pmap *m)
{
    free(m->v);
    memset(m, 0, sizeof *m);
}

/* ========================================================================== */
/* The model                                                                   */
/* ========================================================================== */

static int64_t intern_c(goro__prof *p, const char *s)
{
    return goro__pstr_intern(&p->strs, s, strlen(s));
}

/* Make room for `need` more elements in a growable array. */
static int grow_array(void **v, size_t *cap, size_t n, size_t need, size_t elem)
{
    if (need <= *cap - n)
        return 0;
    if (need > SIZE_MAX / elem - n)
        return -ENOMEM;
    size_t want = n + need;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < want) {
        if (ncap > SIZE_MAX / elem / 2) {
            ncap = want;
            break;
        }
        ncap *= 2;
    }
    void *nv = realloc(*v, ncap * elem);
    if (!nv)
        return -ENOMEM;
    *v = nv;
    *cap = ncap;
    return 0;
}

goro__prof *goro__prof_new(const char *kind)
{
    if (!kind)
        return NULL;
    goro__prof *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    if (goro__pstr_init(&p->strs)) {
        free(p);
        return NULL;
    }
    int64_t k = intern_c(p, kind);
    if (k < 0) {
        goro__prof_free(p);
        return NULL;
    }
    p->kind = (uint32_t)k;
    return p;
}

void goro__prof_free(goro__prof *p)
{
    if (!p)
        return;
    goro__pstr_free(&p->strs);
    free(p->comments);
    free(p->samples);
    free(p->pcs);
    free(p->labels);
    free(p);
}

int goro__prof_add_type(goro__prof *p, const char *type, const char *unit)
{
    if (!p || !type || !unit || p->nsamples)
        return -EINVAL;
    if (p->ntypes == GORO__PROF_MAX_TYPES)
        return -ENOSPC;
    int64_t t = intern_c(p, type);
    if (t < 0)
        return (int)t;
    int64_t u = intern_c(p, unit);
    if (u < 0)
        return (int)u;
    p->type[p->ntypes] = (uint32_t)t;
    p->unit[p->ntypes] = (uint32_t)u;
    p->ntypes++;
    return 0;
}

void goro__prof_set_period(goro__prof *p, const char *type, const char *unit, int64_t period)
{
    if (!p)
        return;
    p->period = period;
    if (!type && !unit) {
        p->has_period_type = false;
        return;
    }
    int64_t t = intern_c(p, type ? type : "");
    int64_t u = intern_c(p, unit ? unit : "");
    if (t < 0 || u < 0) {
        p->err = t < 0 ? (int)t : (int)u;
        return;
    }
    p->has_period_type = true;
    p->period_type = (uint32_t)t;
    p->period_unit = (uint32_t)u;
}

void goro__prof_set_default_type(goro__prof *p, const char *type)
{
    if (!p)
        return;
    if (!type) {
        p->default_type = 0;
        return;
    }
    int64_t t = intern_c(p, type);
    if (t < 0) {
        p->err = (int)t;
        return;
    }
    p->default_type = (uint32_t)t;
}

void goro__prof_set_time(goro__prof *p, int64_t time_nanos, int64_t duration_nanos)
{
    if (!p)
        return;
    p->time_nanos = time_nanos;
    p->duration_nanos = duration_nanos;
}

int goro__prof_add_comment(goro__prof *p, const char *text)
{
    if (!p || !text)
        return -EINVAL;
    int rc = grow_array((void **)&p->comments, &p->comments_cap, p->ncomments, 1,
                        sizeof *p->comments);
    if (rc)
        return rc;
    int64_t id = intern_c(p, text);
    if (id < 0)
        return (int)id;
    p->comments[p->ncomments++] = (uint32_t)id;
    return 0;
}

int goro__prof_add_sample(goro__prof *p, const uintptr_t *pcs, uint32_t npc, bool leaf_exact,
                          const int64_t *values, const goro__prof_label *labels,
                          uint32_t nlabels)
{
    if (!p || (npc && !pcs) || !values || p->ntypes == 0 || (nlabels && !labels) ||
        nlabels > GORO__PROF_MAX_LABELS)
        return -EINVAL;
    for (uint32_t i = 0; i < nlabels; i++)
        if (!labels[i].key)
            return -EINVAL;
    int rc = grow_array((void **)&p->samples, &p->samples_cap, p->nsamples, 1,
                        sizeof *p->samples);
    if (!rc)
        rc = grow_array((void **)&p->pcs, &p->pcs_cap, p->npcs, npc, sizeof *p->pcs);
    if (!rc)
        rc = grow_array((void **)&p->labels, &p->labels_cap, p->nlabels, nlabels,
                        sizeof *p->labels);
    if (rc)
        return rc;
    goro__prof_slabel *sl = p->labels + p->nlabels;
    for (uint32_t i = 0; i < nlabels; i++) {
        const goro__prof_label *l = &labels[i];
        int64_t k = intern_c(p, l->key);
        if (k < 0)
            return (int)k;
        sl[i] = (goro__prof_slabel){.key = (uint32_t)k};
        if (l->str) {
            int64_t v = intern_c(p, l->str);
            if (v < 0)
                return (int)v;
            sl[i].is_str = true;
            sl[i].str = (uint32_t)v;
        } else {
            sl[i].num = l->num;
            if (l->unit) {
                int64_t u = intern_c(p, l->unit);
                if (u < 0)
                    return (int)u;
                sl[i].unit = (uint32_t)u;
            }
        }
    }
    goro__prof_sample *s = &p->samples[p->nsamples];
    memset(s, 0, sizeof *s);
    s->pc_off = p->npcs;
    s->npc = npc;
    s->lbl_off = p->nlabels;
    s->nlabels = (uint8_t)nlabels;
    s->leaf_exact = leaf_exact;
    memcpy(s->values, values, p->ntypes * sizeof *values);
    if (npc)
        memcpy(p->pcs + p->npcs, pcs, npc * sizeof *pcs);
    p->npcs += npc;
    p->nlabels += nlabels;
    p->nsamples++;
    return 0;
}

/* ========================================================================== */
/* Go's formatting: %#x, utf8 and strconv.Quote                                */
/* ========================================================================== */

static const char hexdig[] = "0123456789abcdef";

/* Go's %#x of an unsigned value: "0x0" for zero. Returns the length. */
static size_t fmt_hex(char *buf, uint64_t v)
{
    char tmp[16];
    size_t n = 0;
    do {
        tmp[n++] = hexdig[v & 15];
        v >>= 4;
    } while (v);
    buf[0] = '0';
    buf[1] = 'x';
    for (size_t i = 0; i < n; i++)
        buf[2 + i] = tmp[n - 1 - i];
    return n + 2;
}

static size_t fmt_dec(char *buf, int64_t v)
{
    return (size_t)snprintf(buf, 24, "%" PRId64, v);
}

/* One rune as Go's utf8.DecodeRune reads it: the size consumed (1 for an
 * invalid or short sequence, with *r = -1). n >= 1. */
static size_t utf8_decode(const unsigned char *s, size_t n, int32_t *r)
{
    unsigned c = s[0];
    if (c < 0x80) {
        *r = (int32_t)c;
        return 1;
    }
    size_t size;
    unsigned lo = 0x80, hi = 0xBF;
    int32_t v;
    if (c < 0xC2) {
        goto bad;
    } else if (c < 0xE0) {
        size = 2;
        v = (int32_t)(c & 0x1F);
    } else if (c < 0xF0) {
        size = 3;
        v = (int32_t)(c & 0x0F);
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c < 0xF5) {
        size = 4;
        v = (int32_t)(c & 0x07);
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        goto bad;
    }
    if (n < size || s[1] < lo || s[1] > hi)
        goto bad;
    v = (v << 6) | (s[1] & 0x3F);
    for (size_t k = 2; k < size; k++) {
        if (s[k] < 0x80 || s[k] > 0xBF)
            goto bad;
        v = (v << 6) | (s[k] & 0x3F);
    }
    *r = v;
    return size;
bad:
    *r = -1;
    return 1;
}

/* Go's utf8.RuneCount. */
static long rune_count(const unsigned char *s, size_t n)
{
    long cnt = 0;
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
        } else {
            int32_t r;
            i += utf8_decode(s + i, n - i, &r);
        }
        cnt++;
    }
    return cnt;
}

/* unicode.IsPrint, approximately for non-ASCII (see the file comment). */
static bool go_isprint(int32_t r)
{
    if (r < 0x80)
        return r >= 0x20 && r < 0x7F;
    static const struct {
        int32_t lo, hi;
    } np[] = {
        {0x80, 0xA0},       {0xAD, 0xAD},       {0x600, 0x605},     {0x61C, 0x61C},
        {0x6DD, 0x6DD},     {0x70F, 0x70F},     {0x8E2, 0x8E2},     {0x1680, 0x1680},
        {0x180E, 0x180E},   {0x2000, 0x200F},   {0x2028, 0x202F},   {0x205F, 0x206F},
        {0x3000, 0x3000},   {0xD800, 0xF8FF},   {0xFDD0, 0xFDEF},   {0xFEFF, 0xFEFF},
        {0xFFF9, 0xFFFB},   {0xFFFE, 0xFFFF},   {0x110BD, 0x110BD}, {0x110CD, 0x110CD},
        {0x13430, 0x13438}, {0x1BCA0, 0x1BCA3}, {0x1D173, 0x1D17A}, {0xE0001, 0xE0001},
        {0xE0020, 0xE007F}, {0xF0000, 0x10FFFF},
    };
    for (size_t i = 0; i < sizeof np / sizeof np[0]; i++)
        if (r >= np[i].lo && r <= np[i].hi)
            return false;
    return true;
}

/* strconv.Quote(s) appended to b. */
static void go_quote(goro__pbuf *b, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    goro__pbuf_byte(b, '"');
    size_t i = 0;
    while (i < n) {
        /* Fast path: a run of printable ASCII other than '"' and '\\'. */
        size_t j = i;
        while (j < n && s[j] >= 0x20 && s[j] < 0x7F && s[j] != '"' && s[j] != '\\')
            j++;
        goro__pbuf_put(b, s + i, j - i);
        i = j;
        if (i == n)
            break;
        int32_t r;
        size_t w = utf8_decode(s + i, n - i, &r);
        char e[10];
        size_t en = 0;
        if (r < 0) {
            e[en++] = '\\';
            e[en++] = 'x';
            e[en++] = hexdig[s[i] >> 4];
            e[en++] = hexdig[s[i] & 15];
        } else if (r == '"' || r == '\\') {
            e[en++] = '\\';
            e[en++] = (char)r;
        } else if (go_isprint(r)) {
            goro__pbuf_put(b, s + i, w);
        } else {
            e[en++] = '\\';
            switch (r) {
            case '\a': e[en++] = 'a'; break;
            case '\b': e[en++] = 'b'; break;
            case '\f': e[en++] = 'f'; break;
            case '\n': e[en++] = 'n'; break;
            case '\r': e[en++] = 'r'; break;
            case '\t': e[en++] = 't'; break;
            case '\v': e[en++] = 'v'; break;
            default:
                if (r < ' ' || r == 0x7F) {
                    e[en++] = 'x';
                    e[en++] = hexdig[(r >> 4) & 15];
                    e[en++] = hexdig[r & 15];
                } else if (r < 0x10000) {
                    e[en++] = 'u';
                    for (int sh = 12; sh >= 0; sh -= 4)
                        e[en++] = hexdig[(r >> sh) & 15];
                } else {
                    e[en++] = 'U';
                    for (int sh = 28; sh >= 0; sh -= 4)
                        e[en++] = hexdig[(r >> sh) & 15];
                }
            }
        }
        goro__pbuf_put(b, e, en);
        i += w;
    }
    goro__pbuf_byte(b, '"');
}

/* ========================================================================== */
/* Go's text/tabwriter (minwidth 1, tabwidth 8, padding 1, padchar '\t')       */
/* ========================================================================== */

/* Text is cut into cells at '\t', '\v', '\n' and '\f' (the terminator is
 * not part of the cell); a line's last cell is not part of any column. A
 * column is laid out per block of consecutive lines that have a cell in
 * it: its width is the widest cell + padding (at least minwidth), rounded
 * up to a multiple of tabwidth, and each cell is followed by enough tabs to
 * reach it. A line of a single cell (no tab) breaks every block, and Go
 * flushes there; '\f' flushes too and is written as '\n'. Text between two
 * 0xff bytes is escaped: terminators inside it are plain text, and the two
 * 0xff bytes count no width. */

enum { TW_MINWIDTH = 1, TW_TABWIDTH = 8, TW_PADDING = 1 };

typedef struct tw_cell {
    size_t off, size; /* bytes in pend */
    long width;       /* runes */
} tw_cell;

typedef struct tw_frame {
    size_t line0, line1, at;
} tw_frame;

typedef struct tw {
    goro__pbuf *out;
    goro__pbuf pend; /* text of the buffered cells */
    tw_cell *cells;
    size_t ncells, cells_cap;
    size_t *lines; /* index of each buffered line's first cell */
    size_t nlines, lines_cap;
    size_t cell_off; /* start of the open cell in pend */
    long cell_nesc;  /* escapes opened in the open cell */
    bool in_esc;
    long *widths;
    size_t nwidths, widths_cap;
    tw_frame *frames;
    size_t frames_cap;
    int err;
} tw;

static void tw_init(tw *t, goro__pbuf *out)
{
    memset(t, 0, sizeof *t);
    t->out = out;
    if (grow_array((void **)&t->lines, &t->lines_cap, 0, 1, sizeof *t->lines))
        t->err = -ENOMEM;
    else
        t->lines[t->nlines++] = 0;
}

static void tw_free(tw *t)
{
    goro__pbuf_free(&t->pend);
    free(t->cells);
    free(t->lines);
    free(t->widths);
    free(t->frames);
}

static size_t tw_line_len(const tw *t, size_t i)
{
    size_t end = i + 1 < t->nlines ? t->lines[i + 1] : t->ncells;
    return end - t->lines[i];
}

/* Close the open cell; returns the number of cells of the current line. */
static size_t tw_terminate_cell(tw *t)
{
    if (grow_array((void **)&t->cells, &t->cells_cap, t->ncells, 1, sizeof *t->cells)) {
        t->err = -ENOMEM;
        return 0;
    }
    size_t size = t->pend.n - t->cell_off;
    tw_cell *c = &t->cells[t->ncells++];
    c->off = t->cell_off;
    c->size = size;
    c->width = rune_count(t->pend.p ? t->pend.p + t->cell_off : NULL, size) - 2 * t->cell_nesc;
    t->cell_off = t->pend.n;
    t->cell_nesc = 0;
    return t->ncells - t->lines[t->nlines - 1];
}

static void tw_add_line(tw *t)
{
    if (grow_array((void **)&t->lines, &t->lines_cap, t->nlines, 1, sizeof *t->lines)) {
        t->err = -ENOMEM;
        return;
    }
    t->lines[t->nlines++] = t->ncells;
}

static void tw_padding(tw *t, long textw, long cellw)
{
    static const char tabs[] = "\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t";
    cellw = (cellw + TW_TABWIDTH - 1) / TW_TABWIDTH * TW_TABWIDTH;
    long n = cellw - textw;
    long k = (n + TW_TABWIDTH - 1) / TW_TABWIDTH;
    while (k > 0) {
        long m = k < 16 ? k : 16;
        goro__pbuf_put(t->out, tabs, (size_t)m);
        k -= m;
    }
}

static void tw_write_lines(tw *t, size_t line0, size_t line1)
{
    for (size_t i = line0; i < line1; i++) {
        size_t first = t->lines[i], len = tw_line_len(t, i);
        for (size_t j = 0; j < len; j++) {
            const tw_cell *c = &t->cells[first + j];
            if (c->size)
                goro__pbuf_put(t->out, t->pend.p + c->off, c->size);
            if (j < t->nwidths)
                tw_padding(t, c->size ? c->width : 0, t->widths[j]);
        }
        if (i + 1 < t->nlines)
            goro__pbuf_byte(t->out, '\n');
    }
}

/* Go's recursive format(), with an explicit stack: frame k lays out column
 * k of its lines, widths[0..k) are the widths of the columns to its left. */
static void tw_format(tw *t)
{
    size_t depth = 0;
    if (grow_array((void **)&t->frames, &t->frames_cap, 0, 1, sizeof *t->frames)) {
        t->err = -ENOMEM;
        return;
    }
    t->frames[depth++] = (tw_frame){0, t->nlines, 0};
    t->nwidths = 0;
    while (depth) {
        tw_frame *f = &t->frames[depth - 1];
        size_t column = depth - 1;
        bool pushed = false;
        while (f->at < f->line1) {
            if (column + 1 >= tw_line_len(t, f->at)) {
                f->at++;
                continue;
            }
            /* A block of lines with a cell in this column starts here. */
            tw_write_lines(t, f->line0, f->at);
            size_t b0 = f->at, e = f->at;
            long width = TW_MINWIDTH;
            for (; e < f->line1; e++) {
                if (column + 1 >= tw_line_len(t, e))
                    break;
                long w = t->cells[t->lines[e] + column].width + TW_PADDING;
                if (w > width)
                    width = w;
            }
            f->line0 = e;
            f->at = e;
            if (grow_array((void **)&t->widths, &t->widths_cap, t->nwidths, 1,
                           sizeof *t->widths) ||
                grow_array((void **)&t->frames, &t->frames_cap, depth, 1, sizeof *t->frames)) {
                t->err = -ENOMEM;
                return;
            }
            t->widths[t->nwidths++] = width;
            t->frames[depth++] = (tw_frame){b0, e, b0};
            pushed = true;
            break;
        }
        if (pushed)
            continue;
        f = &t->frames[depth - 1];
        tw_write_lines(t, f->line0, f->line1);
        depth--;
        if (t->nwidths)
            t->nwidths--;
    }
}

static void tw_flush(tw *t)
{
    if (t->err)
        return;
    if (t->pend.n > t->cell_off) {
        t->in_esc = false;
        tw_terminate_cell(t);
    }
    tw_format(t);
    t->pend.n = 0;
    t->ncells = 0;
    t->nlines = 0;
    t->cell_off = 0;
    t->cell_nesc = 0;
    t->in_esc = false;
    t->nwidths = 0;
    tw_add_line(t);
    if (t->pend.err)
        t->err = t->pend.err;
}

static void tw_write(tw *t, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n && !t->err) {
        size_t j = i;
        if (t->in_esc) {
            while (j < n && s[j] != 0xFF)
                j++;
            if (j < n) {
                j++; /* the closing 0xff belongs to the cell */
                t->in_esc = false;
            }
            goro__pbuf_put(&t->pend, s + i, j - i);
            i = j;
            continue;
        }
        while (j < n && s[j] != '\t' && s[j] != '\n' && s[j] != '\v' && s[j] != '\f' &&
               s[j] != 0xFF)
            j++;
        goro__pbuf_put(&t->pend, s + i, j - i);
        if (t->pend.err) {
            t->err = t->pend.err;
            return;
        }
        i = j;
        if (i == n)
            break;
        unsigned char ch = s[i++];
        if (ch == 0xFF) {
            goro__pbuf_byte(&t->pend, ch);
            t->in_esc = true;
            t->cell_nesc++;
            continue;
        }
        size_t ncells = tw_terminate_cell(t);
        if (ch == '\n' || ch == '\f') {
            tw_add_line(t);
            if (ch == '\f' || ncells == 1)
                tw_flush(t);
        }
    }
    if (t->pend.err)
        t->err = t->pend.err;
}

static void tw_puts(tw *t, const char *s) { tw_write(t, s, strlen(s)); }

/* ========================================================================== */
/* Text encoders                                                               */
/* ========================================================================== */

typedef struct text_enc {
    goro__prof *p;
    goro__symcache *sc;
    goro__pbuf out;
    tw tw;
} text_enc;

static int text_begin(text_enc *e, goro__prof *p)
{
    memset(e, 0, sizeof *e);
    e->p = p;
    e->sc = goro__symcache_new();
    if (!e->sc)
        return -ENOMEM;
    tw_init(&e->tw, &e->out);
    return e->tw.err;
}

/* Finish: flush, NUL-terminate and hand out the text, or NULL on error. */
static char *text_end(text_enc *e, int err)
{
    if (!err) {
        tw_flush(&e->tw);
        err = e->tw.err ? e->tw.err : e->out.err;
    }
    if (!err) {
        goro__pbuf_byte(&e->out, '\0');
        err = e->out.err;
    }
    tw_free(&e->tw);
    goro__symcache_free(e->sc);
    if (err) {
        goro__pbuf_free(&e->out);
        return NULL;
    }
    return (char *)e->out.p;
}

static bool has_prefix(const char *s, const char *pre) { return strncmp(s, pre, strlen(pre)) == 0; }

/* printStackRecord: the "#" lines of one stack and the blank line. */
static void print_stack_record(text_enc *e, const goro__prof_sample *s, bool all_frames)
{
    const uintptr_t *pcs = goro__prof_sample_pcs(e->p, s);
    bool show = all_frames;
    char num[2][24];
    for (uint32_t i = 0; i < s->npc; i++) {
        uintptr_t pc = goro__prof_loc_addr(s, pcs, i);
        const goro__sym *sym = goro__symcache_get(e->sc, pc);
        size_t pn = fmt_hex(num[0], pc);
        for (uint32_t k = 0; k < sym->nframes; k++) {
            const goro__sym_frame *f = &sym->frames[k];
            if (!f->func) {
                show = true;
                tw_write(&e->tw, "#\t", 2);
                tw_write(&e->tw, num[0], pn);
                tw_write(&e->tw, "\n", 1);
            } else if (strcmp(f->func, "goro__g_start") != 0 &&
                       (show || !has_prefix(f->func, "goro__"))) {
                show = true;
                /* Entry unknown (no symbol table entry): offset 0. */
                uintptr_t off = sym->entry && sym->entry <= pc ? pc - sym->entry : 0;
                size_t on = fmt_hex(num[1], off);
                tw_write(&e->tw, "#\t", 2);
                tw_write(&e->tw, num[0], pn);
                tw_write(&e->tw, "\t", 1);
                tw_puts(&e->tw, f->func);
                tw_write(&e->tw, "+", 1);
                tw_write(&e->tw, num[1], on);
                tw_write(&e->tw, "\t", 1);
                tw_puts(&e->tw, f->file ? f->file : "?");
                char ln[24];
                ln[0] = ':';
                size_t lnn = 1 + fmt_dec(ln + 1, f->line);
                ln[lnn++] = '\n';
                tw_write(&e->tw, ln, lnn);
            }
        }
    }
    if (!show) {
        print_stack_record(e, s, true);
        return;
    }
    tw_write(&e->tw, "\n", 1);
}

/* " 0x.." per pc, Go's "@" list (an exact leaf as pc + 1). */
static void put_at_list(goro__pbuf *b, const goro__prof *p, const goro__prof_sample *s)
{
    const uintptr_t *pcs = goro__prof_sample_pcs(p, s);
    goro__pbuf_reserve(b, 2 + (size_t)s->npc * 19);
    goro__pbuf_byte(b, '@');
    for (uint32_t i = 0; i < s->npc; i++) {
        uintptr_t pc = pcs[i];
        if (i == 0 && s->leaf_exact)
            pc++;
        char h[20];
        h[0] = ' ';
        size_t n = 1 + fmt_hex(h + 1, pc);
        goro__pbuf_put(b, h, n);
    }
}

typedef struct lbl_text {
    size_t off, len;
} lbl_text;

static int cmp_lbl_text(const void *a, const void *b, void *arg)
{
    const unsigned char *base = arg;
    const lbl_text *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(base + x->off, base + y->off, n);
    if (c)
        return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

/* "{"k":"v", ...}" as Go's labelMap.String(): %q:%q pairs sorted. */
static void put_labels(goro__pbuf *b, goro__pbuf *tmp, const goro__prof *p,
                       const goro__prof_sample *s)
{
    lbl_text lt[GORO__PROF_MAX_LABELS];
    tmp->n = 0;
    for (uint32_t i = 0; i < s->nlabels; i++) {
        const goro__prof_slabel *l = &p->labels[s->lbl_off + i];
        lt[i].off = tmp->n;
        const goro__pstr_ent *k = &p->strs.v[l->key];
        go_quote(tmp, k->s, k->len);
        goro__pbuf_byte(tmp, ':');
        if (l->is_str) {
            const goro__pstr_ent *v = &p->strs.v[l->str];
            go_quote(tmp, v->s, v->len);
        } else {
            char d[24];
            go_quote(tmp, d, fmt_dec(d, l->num));
        }
        lt[i].len = tmp->n - lt[i].off;
    }
    if (tmp->err) {
        b->err = tmp->err;
        return;
    }
    qsort_r(lt, s->nlabels, sizeof lt[0], cmp_lbl_text, tmp->p);
    goro__pbuf_byte(b, '{');
    for (uint32_t i = 0; i < s->nlabels; i++) {
        if (i)
            goro__pbuf_put(b, ", ", 2);
        goro__pbuf_put(b, tmp->p + lt[i].off, lt[i].len);
    }
    goro__pbuf_byte(b, '}');
}

typedef struct group {
    int64_t count;
    const char *key;
    size_t len;
    size_t rep; /* first sample with this key */
} group;

static int cmp_group(const void *a, const void *b)
{
    const group *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->key, y->key, n);
    if (c)
        return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

char *goro__prof_encode_text_counts(goro__prof *p)
{
    if (!p || p->err)
        return NULL;
    text_enc e;
    int err = text_begin(&e, p);
    goro__pstrtab keys;
    bool keys_ok = false;
    goro__pbuf kb = {0}, tmp = {0};
    group *groups = NULL;
    size_t ngroups = 0;
    uint64_t total = 0;
    if (!err)
        err = goro__pstr_init(&keys);
    keys_ok = !err;
    if (!err && p->nsamples) {
        groups = malloc(p->nsamples * sizeof *groups);
        if (!groups)
            err = -ENOMEM;
    }
    for (size_t i = 0; !err && i < p->nsamples; i++) {
        const goro__prof_sample *s = &p->samples[i];
        total += (uint64_t)s->values[0];
        kb.n = 0;
        put_at_list(&kb, p, s);
        if (s->nlabels) {
            goro__pbuf_put(&kb, "\n# labels: ", 11);
            put_labels(&kb, &tmp, p, s);
        }
        if (kb.err) {
            err = kb.err;
            break;
        }
        int64_t id = goro__pstr_intern(&keys, (const char *)kb.p, kb.n);
        if (id < 0) {
            err = (int)id;
            break;
        }
        /* Id 0 is the table's "": a key always starts with '@'. */
        size_t g = (size_t)id - 1;
        if (g == ngroups) {
            groups[g] = (group){0, keys.v[id].s, keys.v[id].len, i};
            ngroups++;
        }
        groups[g].count = (int64_t)((uint64_t)groups[g].count + (uint64_t)s->values[0]);
    }
    if (!err) {
        if (ngroups)
            qsort(groups, ngroups, sizeof *groups, cmp_group);
        const goro__pstr_ent *kind = &p->strs.v[p->kind];
        char d[24];
        tw_write(&e.tw, kind->s, kind->len);
        tw_puts(&e.tw, " profile: total ");
        tw_write(&e.tw, d, fmt_dec(d, (int64_t)total));
        tw_write(&e.tw, "\n", 1);
        /* The profile's comments (e.g. the leak profile's summary), as
         * "# " lines: Go's parser of this format skips them. */
        for (size_t c = 0; c < p->ncomments && !e.tw.err; c++) {
            const goro__pstr_ent *t = &p->strs.v[p->comments[c]];
            tw_puts(&e.tw, "# ");
            tw_write(&e.tw, t->s, t->len);
            tw_write(&e.tw, "\n", 1);
        }
        for (size_t g = 0; g < ngroups && !e.tw.err; g++) {
            tw_write(&e.tw, d, fmt_dec(d, groups[g].count));
            tw_write(&e.tw, " ", 1);
            tw_write(&e.tw, groups[g].key, groups[g].len);
            tw_write(&e.tw, "\n", 1);
            print_stack_record(&e, &p->samples[groups[g].rep], false);
        }
        err = e.tw.err;
    }
    free(groups);
    goro__pbuf_free(&kb);
    goro__pbuf_free(&tmp);
    if (keys_ok)
        goro__pstr_free(&keys);
    return text_end(&e, err);
}

typedef struct heap_rec {
    int64_t v[4]; /* alloc_objects, alloc_space, inuse_objects, inuse_space */
    size_t idx;
} heap_rec;

static int cmp_heap_rec(const void *a, const void *b)
{
    const heap_rec *x = a, *y = b;
    if (x->v[3] != y->v[3])
        return x->v[3] > y->v[3] ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static bool type_is(const goro__prof *p, uint32_t i, const char *type, const char *unit)
{
    const goro__pstr_ent *t = &p->strs.v[p->type[i]], *u = &p->strs.v[p->unit[i]];
    return t->len == strlen(type) && memcmp(t->s, type, t->len) == 0 &&
           u->len == strlen(unit) && memcmp(u->s, unit, u->len) == 0;
}

char *goro__prof_encode_text_heap(goro__prof *p, int64_t rate, const int64_t (*raw)[4],
                                  const char *stats)
{
    if (!p || p->err || rate < 0 || rate > INT64_MAX / 2 || p->ntypes != 4 ||
        !type_is(p, 0, "alloc_objects", "count") || !type_is(p, 1, "alloc_space", "bytes") ||
        !type_is(p, 2, "inuse_objects", "count") || !type_is(p, 3, "inuse_space", "bytes"))
        return NULL;
    text_enc e;
    int err = text_begin(&e, p);
    heap_rec *recs = NULL;
    if (!err && p->nsamples) {
        recs = malloc(p->nsamples * sizeof *recs);
        if (!recs)
            err = -ENOMEM;
    }
    uint64_t tot[4] = {0, 0, 0, 0};
    goro__pbuf kb = {0};
    size_t nrec = 0, nexact = 0;
    if (!err) {
        /* Samples whose raw values are negative are exact (goroutine
         * memory, not sampled): readers would unbias them again, so they go
         * to a comment section after the records instead. */
        for (size_t i = 0; i < p->nsamples; i++) {
            const int64_t *v = raw ? raw[i] : p->samples[i].values;
            if (v[0] < 0) {
                nexact++;
                continue;
            }
            memcpy(recs[nrec].v, v, sizeof recs[nrec].v);
            recs[nrec].idx = i;
            for (int k = 0; k < 4; k++)
                tot[k] += (uint64_t)v[k];
            nrec++;
        }
        if (nrec)
            qsort(recs, nrec, sizeof *recs, cmp_heap_rec);
        char line[160];
        int n = snprintf(line, sizeof line,
                         "heap profile: %" PRId64 ": %" PRId64 " [%" PRId64 ": %" PRId64
                         "] @ heap/%" PRId64 "\n",
                         (int64_t)tot[2], (int64_t)tot[3], (int64_t)tot[0], (int64_t)tot[1],
                         2 * rate);
        tw_write(&e.tw, line, (size_t)n);
        for (size_t i = 0; i < nrec && !e.tw.err; i++) {
            const heap_rec *r = &recs[i];
            n = snprintf(line, sizeof line,
                         "%" PRId64 ": %" PRId64 " [%" PRId64 ": %" PRId64 "] ", r->v[2],
                         r->v[3], r->v[0], r->v[1]);
            tw_write(&e.tw, line, (size_t)n);
            kb.n = 0;
            put_at_list(&kb, p, &p->samples[r->idx]);
            goro__pbuf_byte(&kb, '\n');
            if (kb.err) {
                err = kb.err;
                break;
            }
            tw_write(&e.tw, (const char *)kb.p, kb.n);
            print_stack_record(&e, &p->samples[r->idx], false);
        }
        if (stats && !err) {
            size_t sl = strlen(stats);
            tw_write(&e.tw, "\n", 1);
            tw_write(&e.tw, stats, sl);
            if (sl && stats[sl - 1] != '\n')
                tw_write(&e.tw, "\n", 1);
        }
        if (nexact && !err) {
            /* Exact records, largest first, as comments ("# N: B @ pcs"
             * and the usual frame lines): legacy parsers skip them. */
            nrec = 0;
            for (size_t i = 0; i < p->nsamples; i++)
                if (raw[i][0] < 0) {
                    memcpy(recs[nrec].v, p->samples[i].values, sizeof recs[nrec].v);
                    recs[nrec++].idx = i;
                }
            qsort(recs, nrec, sizeof *recs, cmp_heap_rec);
            static const char hdr[] =
                "\n# goroutine memory by creation site (exact, not sampled; in the protobuf\n"
                "# profile as samples labelled goro=\"goroutine stack\" or \"goroutine record\"):\n";
            tw_write(&e.tw, hdr, sizeof hdr - 1);
            for (size_t i = 0; i < nrec && !e.tw.err; i++) {
                n = snprintf(line, sizeof line, "# %" PRId64 ": %" PRId64 " ", recs[i].v[2],
                             recs[i].v[3]);
                tw_write(&e.tw, line, (size_t)n);
                kb.n = 0;
                put_at_list(&kb, p, &p->samples[recs[i].idx]);
                goro__pbuf_byte(&kb, '\n');
                if (kb.err) {
                    err = kb.err;
                    break;
                }
                tw_write(&e.tw, (const char *)kb.p, kb.n);
                print_stack_record(&e, &p->samples[recs[i].idx], false);
            }
        }
        if (!err)
            err = e.tw.err;
    }
    free(recs);
    goro__pbuf_free(&kb);
    return text_end(&e, err);
}
