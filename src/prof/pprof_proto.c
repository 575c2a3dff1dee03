/*
 * pprof_proto.c - a goro__prof as gzipped profile.proto (docs/formats.md
 * section 5), the format `go tool pprof`, Parca and Pyroscope read.
 *
 * Owns: the protobuf wire encoding (varints, length-delimited submessages,
 * packed repeated scalars; written here, no protobuf library), the
 * Location / Function / Mapping tables, and the gzip step (zlib, gzip
 * wrapper via windowBits 15 + 16, level 1 like Go's runtime/pprof).
 *
 * How a profile becomes a message:
 *  - strings: the output string table starts with "" (index 0); every
 *    string is interned once (a profile string id maps to its output index
 *    through an array, symbolizer strings through the table's hash), so the
 *    table holds each distinct string once and only strings that are used.
 *  - samples are written as they were added: location ids leaf first,
 *    one value per sample type, labels as Sample.label (a string label sets
 *    str, a numeric one num and num_unit).
 *  - locations: one per distinct address (return address - 1, or the exact
 *    leaf; prof_internal.h), ids 1.. in order of first use. Each is
 *    symbolized once (goro__symbolize); its Lines are the inline chain,
 *    innermost first, the physical function last, one Line per frame the
 *    symbolizer names. An address nothing names still gets a Location with
 *    its address and mapping, so pprof can symbolize it from the binary;
 *    an address outside every mapping has mapping_id 0.
 *  - functions: one per distinct (name, file); system_name = name,
 *    start_line 0 (the symbolizer does not know it).
 *  - mappings: every executable segment of every loaded object
 *    (mappings.c), the main executable first. has_functions is set only
 *    when at least one location falls in the mapping and the symbolizer
 *    named every one of them: pprof re-symbolizes a mapping without it (and
 *    never one with it), so a mapping where anything failed is left to
 *    pprof. has_filenames / has_line_numbers additionally need a file /
 *    line for every Line, has_inline_frames needs both (DWARF was there, so
 *    the inline chains are complete).
 *  - the string table is written last, once everything is interned (field
 *    order is free in protobuf; Go's runtime writes it last too).
 *
 * Memory: the uncompressed message is built in one buffer, then deflated
 * into a second one sized with deflateBound (grown if ever short). Every
 * allocation failure ends the encoding with -ENOMEM; nothing is truncated.
 *
 * Locking: none; see profile.h. Symbolization is thread-safe.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "prof/prof_internal.h"

/* profile.proto field numbers. */
enum {
    PROFILE_SAMPLE_TYPE = 1,
    PROFILE_SAMPLE = 2,
    PROFILE_MAPPING = 3,
    PROFILE_LOCATION = 4,
    PROFILE_FUNCTION = 5,
    PROFILE_STRING_TABLE = 6,
    PROFILE_TIME_NANOS = 9,
    PROFILE_DURATION_NANOS = 10,
    PROFILE_PERIOD_TYPE = 11,
    PROFILE_PERIOD = 12,
    PROFILE_COMMENT = 13,
    PROFILE_DEFAULT_SAMPLE_TYPE = 14,
    VALUETYPE_TYPE = 1,
    VALUETYPE_UNIT = 2,
    SAMPLE_LOCATION_ID = 1,
    SAMPLE_VALUE = 2,
    SAMPLE_LABEL = 3,
    LABEL_KEY = 1,
    LABEL_STR = 2,
    LABEL_NUM = 3,
    LABEL_NUM_UNIT = 4,
    MAPPING_ID = 1,
    MAPPING_MEMORY_START = 2,
    MAPPING_MEMORY_LIMIT = 3,
    MAPPING_FILE_OFFSET = 4,
    MAPPING_FILENAME = 5,
    MAPPING_BUILD_ID = 6,
    MAPPING_HAS_FUNCTIONS = 7,
    MAPPING_HAS_FILENAMES = 8,
    MAPPING_HAS_LINE_NUMBERS = 9,
    MAPPING_HAS_INLINE_FRAMES = 10,
    LOCATION_ID = 1,
    LOCATION_MAPPING_ID = 2,
    LOCATION_ADDRESS = 3,
    LOCATION_LINE = 4,
    LINE_FUNCTION_ID = 1,
    LINE_LINE = 2,
    FUNCTION_ID = 1,
    FUNCTION_NAME = 2,
    FUNCTION_SYSTEM_NAME = 3,
    FUNCTION_FILENAME = 4,
};

enum { WT_VARINT = 0, WT_BYTES = 2 };

/* ---- wire encoding --------------------------------------------------------- */

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static void put_varint(goro__pbuf *b, uint64_t v)
{
    unsigned char t[10];
    size_t n = 0;
    while (v >= 0x80) {
        t[n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    t[n++] = (unsigned char)v;
    goro__pbuf_put(b, t, n);
}

static void put_tag(goro__pbuf *b, unsigned field, unsigned wt)
{
    put_varint(b, (uint64_t)field << 3 | wt);
}

/* A varint field; zero is proto3's default and is left out. */
static void put_uint(goro__pbuf *b, unsigned field, uint64_t v)
{
    if (!v)
        return;
    put_tag(b, field, WT_VARINT);
    put_varint(b, v);
}

static void put_int(goro__pbuf *b, unsigned field, int64_t v) { put_uint(b, field, (uint64_t)v); }

static void put_bytes(goro__pbuf *b, unsigned field, const void *s, size_t len)
{
    put_tag(b, field, WT_BYTES);
    put_varint(b, len);
    goro__pbuf_put(b, s, len);
}

/* A packed repeated varint field (nothing when empty). */
static void put_packed(goro__pbuf *b, unsigned field, const uint64_t *v, size_t n)
{
    if (!n)
        return;
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += varint_len(v[i]);
    put_tag(b, field, WT_BYTES);
    put_varint(b, len);
    if (!goro__pbuf_reserve(b, len))
        return;
    for (size_t i = 0; i < n; i++) {
        uint64_t x = v[i];
        while (x >= 0x80) {
            b->p[b->n++] = (unsigned char)(x | 0x80);
            x >>= 7;
        }
        b->p[b->n++] = (unsigned char)x;
    }
}

/* ---- the encoder -------------------------------------------------------------- */

typedef struct loc {
    uintptr_t addr;
    long mapping; /* index into maps.v, -1 if none */
} loc;

typedef struct func {
    uint32_t name, file; /* output string ids */
} func;

typedef struct mapstat {
    size_t nlocs;
    bool all_funcs, all_files, all_lines;
} mapstat;

typedef struct penc {
    goro__prof *p;
    int err;
    goro__pbuf out;   /* the Profile message */
    goro__pbuf msg;   /* one submessage */
    goro__pbuf sub;   /* a submessage of msg (Label, Line) */
    goro__pstrtab st; /* output string table */
    bool st_ok;
    uint32_t *smap; /* profile string id -> output id, UINT32_MAX unmapped */
    goro__pmap locmap;
    loc *locs;
    size_t nlocs, locs_cap;
    goro__pmap funcmap;
    func *funcs;
    size_t nfuncs, funcs_cap;
    goro__mappings maps;
    mapstat *mstat;
    uint64_t *ids; /* one sample's location ids / values */
    size_t ids_cap;
} penc;

static void set_err(penc *e, int err)
{
    if (!e->err)
        e->err = err;
}

/* Output string id of profile string id `id`. */
static uint64_t str_of(penc *e, uint32_t id)
{
    if (e->smap[id] != UINT32_MAX)
        return e->smap[id];
    const goro__pstr_ent *s = &e->p->strs.v[id];
    int64_t o = goro__pstr_intern(&e->st, s->s, s->len);
    if (o < 0) {
        set_err(e, (int)o);
        return 0;
    }
    e->smap[id] = (uint32_t)o;
    return (uint64_t)o;
}

static uint64_t str_c(penc *e, const char *s)
{
    int64_t o = goro__pstr_intern(&e->st, s, strlen(s));
    if (o < 0) {
        set_err(e, (int)o);
        return 0;
    }
    return (uint64_t)o;
}

static int grow(void **v, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 64;
    if (ncap > SIZE_MAX / elem)
        return -ENOMEM;
    void *nv = realloc(*v, ncap * elem);
    if (!nv)
        return -ENOMEM;
    *v = nv;
    *cap = ncap;
    return 0;
}

/* Location id (1-based) of an address, adding it if new; 0 on error. */
static uint64_t loc_id(penc *e, uintptr_t addr)
{
    bool found;
    uint32_t idx = goro__pmap_get_or_add(&e->locmap, addr, (uint32_t)e->nlocs, &found);
    if (idx == UINT32_MAX) {
        set_err(e, -ENOMEM);
        return 0;
    }
    if (!found) {
        if (e->nlocs >= UINT32_MAX - 1 ||
            grow((void **)&e->locs, &e->locs_cap, e->nlocs, sizeof *e->locs)) {
            set_err(e, -ENOMEM);
            return 0;
        }
        e->locs[e->nlocs++] = (loc){addr, -1};
    }
    return (uint64_t)idx + 1;
}

/* Function id (1-based) of (name, file), adding it if new; 0 on error. */
static uint64_t func_id(penc *e, uint32_t name, uint32_t file)
{
    bool found;
    uint64_t key = (uint64_t)name << 32 | file;
    uint32_t idx = goro__pmap_get_or_add(&e->funcmap, key, (uint32_t)e->nfuncs, &found);
    if (idx == UINT32_MAX) {
        set_err(e, -ENOMEM);
        return 0;
    }
    if (!found) {
        if (grow((void **)&e->funcs, &e->funcs_cap, e->nfuncs, sizeof *e->funcs)) {
            set_err(e, -ENOMEM);
            return 0;
        }
        e->funcs[e->nfuncs++] = (func){name, file};
    }
    return (uint64_t)idx + 1;
}

/* A submessage held in e->msg, as field `field` of e->out. */
static void flush_msg(penc *e, unsigned field)
{
    if (e->msg.err)
        set_err(e, e->msg.err);
    if (e->sub.err)
        set_err(e, e->sub.err);
    put_bytes(&e->out, field, e->msg.p, e->msg.n);
    e->msg.n = 0;
}

static void put_value_type(penc *e, unsigned field, uint32_t type, uint32_t unit)
{
    e->msg.n = 0;
    put_uint(&e->msg, VALUETYPE_TYPE, str_of(e, type));
    put_uint(&e->msg, VALUETYPE_UNIT, str_of(e, unit));
    flush_msg(e, field);
}

static void put_samples(penc *e)
{
    goro__prof *p = e->p;
    for (size_t i = 0; i < p->nsamples && !e->err; i++) {
        const goro__prof_sample *s = &p->samples[i];
        size_t need = s->npc > p->ntypes ? s->npc : p->ntypes;
        if (need > e->ids_cap) {
            uint64_t *n = realloc(e->ids, need * sizeof *n);
            if (!n) {
                set_err(e, -ENOMEM);
                return;
            }
            e->ids = n;
            e->ids_cap = need;
        }
        e->msg.n = 0;
        const uintptr_t *pcs = goro__prof_sample_pcs(p, s);
        for (uint32_t k = 0; k < s->npc; k++)
            e->ids[k] = loc_id(e, goro__prof_loc_addr(s, pcs, k));
        put_packed(&e->msg, SAMPLE_LOCATION_ID, e->ids, s->npc);
        for (uint32_t k = 0; k < p->ntypes; k++)
            e->ids[k] = (uint64_t)s->values[k];
        put_packed(&e->msg, SAMPLE_VALUE, e->ids, p->ntypes);
        for (uint32_t k = 0; k < s->nlabels; k++) {
            const goro__prof_slabel *l = &p->labels[s->lbl_off + k];
            goro__pbuf *lb = &e->sub;
            lb->n = 0;
            put_uint(lb, LABEL_KEY, str_of(e, l->key));
            if (l->is_str) {
                put_uint(lb, LABEL_STR, str_of(e, l->str));
            } else {
                put_int(lb, LABEL_NUM, l->num);
                if (l->unit)
                    put_uint(lb, LABEL_NUM_UNIT, str_of(e, l->unit));
            }
            put_bytes(&e->msg, SAMPLE_LABEL, lb->p, lb->n);
        }
        flush_msg(e, PROFILE_SAMPLE);
    }
}

static void put_locations(penc *e)
{
    for (size_t i = 0; i < e->nlocs && !e->err; i++) {
        loc *l = &e->locs[i];
        l->mapping = goro__mappings_find(&e->maps, l->addr);
        goro__sym sym;
        goro__symbolize(l->addr, &sym);
        e->msg.n = 0;
        put_uint(&e->msg, LOCATION_ID, i + 1);
        put_uint(&e->msg, LOCATION_MAPPING_ID, l->mapping < 0 ? 0 : (uint64_t)l->mapping + 1);
        put_uint(&e->msg, LOCATION_ADDRESS, l->addr);
        size_t named = 0;
        bool files = true, lines = true;
        for (uint32_t k = 0; k < sym.nframes && k < GORO__SYM_INLINE_MAX; k++) {
            const goro__sym_frame *f = &sym.frames[k];
            if (!f->func)
                continue;
            named++;
            if (!f->file)
                files = false;
            if (f->line <= 0)
                lines = false;
            uint64_t fid =
                func_id(e, (uint32_t)str_c(e, f->func), (uint32_t)str_c(e, f->file ? f->file : ""));
            goro__pbuf *lb = &e->sub;
            lb->n = 0;
            put_uint(lb, LINE_FUNCTION_ID, fid);
            put_int(lb, LINE_LINE, f->line > 0 ? f->line : 0);
            put_bytes(&e->msg, LOCATION_LINE, lb->p, lb->n);
        }
        if (l->mapping >= 0) {
            mapstat *m = &e->mstat[l->mapping];
            if (m->nlocs++ == 0)
                m->all_funcs = m->all_files = m->all_lines = true;
            if (!named)
                m->all_funcs = false;
            if (!files)
                m->all_files = false;
            if (!lines)
                m->all_lines = false;
        }
        flush_msg(e, PROFILE_LOCATION);
    }
}

static void put_functions(penc *e)
{
    for (size_t i = 0; i < e->nfuncs && !e->err; i++) {
        e->msg.n = 0;
        put_uint(&e->msg, FUNCTION_ID, i + 1);
        put_uint(&e->msg, FUNCTION_NAME, e->funcs[i].name);
        put_uint(&e->msg, FUNCTION_SYSTEM_NAME, e->funcs[i].name);
        put_uint(&e->msg, FUNCTION_FILENAME, e->funcs[i].file);
        flush_msg(e, PROFILE_FUNCTION);
    }
}

static void put_mappings(penc *e)
{
    for (size_t i = 0; i < e->maps.n && !e->err; i++) {
        const goro__mapping *m = &e->maps.v[i];
        const mapstat *ms = &e->mstat[i];
        bool fn = ms->nlocs && ms->all_funcs;
        bool fl = fn && ms->all_files;
        bool ln = fn && ms->all_lines;
        e->msg.n = 0;
        put_uint(&e->msg, MAPPING_ID, i + 1);
        put_uint(&e->msg, MAPPING_MEMORY_START, m->start);
        put_uint(&e->msg, MAPPING_MEMORY_LIMIT, m->limit);
        put_uint(&e->msg, MAPPING_FILE_OFFSET, m->offset);
        put_uint(&e->msg, MAPPING_FILENAME, str_c(e, m->file));
        put_uint(&e->msg, MAPPING_BUILD_ID, str_c(e, m->build_id));
        put_uint(&e->msg, MAPPING_HAS_FUNCTIONS, fn);
        put_uint(&e->msg, MAPPING_HAS_FILENAMES, fl);
        put_uint(&e->msg, MAPPING_HAS_LINE_NUMBERS, ln);
        put_uint(&e->msg, MAPPING_HAS_INLINE_FRAMES, fl && ln);
        flush_msg(e, PROFILE_MAPPING);
    }
}

static void put_header_fields(penc *e)
{
    goro__prof *p = e->p;
    put_int(&e->out, PROFILE_TIME_NANOS, p->time_nanos);
    put_int(&e->out, PROFILE_DURATION_NANOS, p->duration_nanos);
    if (p->has_period_type)
        put_value_type(e, PROFILE_PERIOD_TYPE, p->period_type, p->period_unit);
    put_int(&e->out, PROFILE_PERIOD, p->period);
    if (p->ncomments) {
        uint64_t *c = malloc(p->ncomments * sizeof *c);
        if (!c) {
            set_err(e, -ENOMEM);
            return;
        }
        for (size_t i = 0; i < p->ncomments; i++)
            c[i] = str_of(e, p->comments[i]);
        put_packed(&e->out, PROFILE_COMMENT, c, p->ncomments);
        free(c);
    }
    if (p->default_type)
        put_uint(&e->out, PROFILE_DEFAULT_SAMPLE_TYPE, str_of(e, p->default_type));
}

static void put_string_table(penc *e)
{
    for (uint32_t i = 0; i < e->st.n && !e->out.err; i++)
        put_bytes(&e->out, PROFILE_STRING_TABLE, e->st.v[i].s, e->st.v[i].len);
}

/* gzip (RFC 1952) of in[0..len) into a malloc'd buffer. */
static int gzip_buf(const unsigned char *in, size_t len, unsigned char **out, size_t *outlen)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -ENOMEM;
    size_t cap = len <= UINT32_MAX ? (size_t)deflateBound(&z, (uLong)len) : len + len / 8 + 1024;
    unsigned char *buf = malloc(cap);
    if (!buf) {
        deflateEnd(&z);
        return -ENOMEM;
    }
    size_t in_off = 0, out_n = 0;
    int rc;
    for (;;) {
        size_t in_left = len - in_off;
        z.next_in = (Bytef *)(in ? in + in_off : (const unsigned char *)"");
        z.avail_in = in_left > UINT32_MAX ? UINT32_MAX : (uInt)in_left;
        if (cap - out_n < 64) {
            size_t ncap = cap * 2;
            unsigned char *nb = ncap > cap ? realloc(buf, ncap) : NULL;
            if (!nb) {
                free(buf);
                deflateEnd(&z);
                return -ENOMEM;
            }
            buf = nb;
            cap = ncap;
        }
        size_t out_left = cap - out_n;
        z.next_out = buf + out_n;
        z.avail_out = out_left > UINT32_MAX ? UINT32_MAX : (uInt)out_left;
        uInt ain = z.avail_in, aout = z.avail_out;
        bool last = in_left == (size_t)z.avail_in;
        rc = deflate(&z, last ? Z_FINISH : Z_NO_FLUSH);
        in_off += ain - z.avail_in;
        out_n += aout - z.avail_out;
        if (rc == Z_STREAM_END)
            break;
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            free(buf);
            deflateEnd(&z);
            return -EIO;
        }
    }
    deflateEnd(&z);
    *out = buf;
    *outlen = out_n;
    return 0;
}

int goro__prof_encode_proto(goro__prof *p, unsigned char **out, size_t *len)
{
    if (!p || !out || !len)
        return -EINVAL;
    *out = NULL;
    *len = 0;
    if (p->err)
        return p->err;
    penc e;
    memset(&e, 0, sizeof e);
    e.p = p;
    int rc = goro__pstr_init(&e.st);
    if (rc)
        return rc;
    e.st_ok = true;
    e.smap = malloc((size_t)p->strs.n * sizeof *e.smap);
    if (!e.smap)
        set_err(&e, -ENOMEM);
    else
        memset(e.smap, 0xFF, (size_t)p->strs.n * sizeof *e.smap);
    if (!e.err) {
        rc = goro__mappings_load(&e.maps);
        if (rc)
            set_err(&e, rc);
    }
    if (!e.err && e.maps.n) {
        e.mstat = calloc(e.maps.n, sizeof *e.mstat);
        if (!e.mstat)
            set_err(&e, -ENOMEM);
    }
    if (!e.err) {
        for (uint32_t i = 0; i < p->ntypes; i++)
            put_value_type(&e, PROFILE_SAMPLE_TYPE, p->type[i], p->unit[i]);
        put_samples(&e);
        put_locations(&e);
        put_functions(&e);
        put_mappings(&e);
        put_header_fields(&e);
        put_string_table(&e);
        if (e.out.err)
            set_err(&e, e.out.err);
        if (e.msg.err)
            set_err(&e, e.msg.err);
    }
    if (!e.err)
        set_err(&e, gzip_buf(e.out.p, e.out.n, out, len));
    goro__pbuf_free(&e.out);
    goro__pbuf_free(&e.msg);
    goro__pbuf_free(&e.sub);
    goro__pstr_free(&e.st);
    free(e.smap);
    goro__pmap_free(&e.locmap);
    free(e.locs);
    goro__pmap_free(&e.funcmap);
    free(e.funcs);
    goro__mappings_free(&e.maps);
    free(e.mstat);
    free(e.ids);
    if (e.err) {
        free(*out);
        *out = NULL;
        *len = 0;
    }
    return e.err;
}
