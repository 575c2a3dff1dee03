/*
 * prof_internal.h - what profile.c, pprof_proto.c and mappings.c share:
 * the layout of goro__prof, an interning string table, a u64 -> u32 hash
 * map, a growable byte buffer with a sticky error, and the loaded-object
 * mappings.
 * Nothing here is thread-safe: one encoder works on one profile at a time
 * (profile.h). No state lives here.
 */
#ifndef GORO_PROF_INTERNAL_H
#define GORO_PROF_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "prof/profile.h"
#include "runtime/symbolize.h"

/* ---- growable byte buffer ------------------------------------------------- */

/* err is sticky: after the first failed growth every append is a no-op and
 * the owner reports err (-ENOMEM) instead of a truncated result. */
typedef struct goro__pbuf {
    unsigned char *p;
    size_t n, cap;
    int err;
} goro__pbuf;

bool goro__pbuf_reserve(goro__pbuf *b, size_t extra);
void goro__pbuf_put(goro__pbuf *b, const void *s, size_t len);
static inline void goro__pbuf_byte(goro__pbuf *b, unsigned char c)
{
    if (b->n < b->cap) {
        b->p[b->n++] = c;
        return;
    }
    goro__pbuf_put(b, &c, 1);
}
void goro__pbuf_free(goro__pbuf *b);

/* ---- interning string table ----------------------------------------------- */

/* Strings are copied into chunked arena storage (NUL-terminated, stable
 * addresses); each distinct byte string gets a dense id, "" is id 0. */
typedef struct goro__pstr_ent {
    const char *s;
    uint32_t len;
    uint32_t hash;
} goro__pstr_ent;

typedef struct goro__pstr_chunk goro__pstr_chunk;

typedef struct goro__pstrtab {
    goro__pstr_ent *v;
    uint32_t n, cap;
    uint32_t *slots; /* id + 1, 0 = empty */
    uint32_t nslots; /* power of two */
    goro__pstr_chunk *chunks;
} goro__pstrtab;

/* Initialise with "" as id 0. Returns 0 or -ENOMEM. */
int goro__pstr_init(goro__pstrtab *t);
void goro__pstr_free(goro__pstrtab *t);
/* Id of the string (adding it if new) or -ENOMEM / -E2BIG (> 4 GiB). */
int64_t goro__pstr_intern(goro__pstrtab *t, const char *s, size_t len);

/* ---- u64 -> u32 hash map --------------------------------------------------- */

typedef struct goro__pmap_ent {
    uint64_t key;
    uint32_t val; /* UINT32_MAX: empty */
} goro__pmap_ent;

typedef struct goro__pmap {
    goro__pmap_ent *v;
    size_t n, cap; /* cap: power of two, or 0 */
} goro__pmap;

/* Find key; if absent insert it with value `val_if_new`. Sets *found.
 * Returns the stored value, or UINT32_MAX when out of memory. */
uint32_t goro__pmap_get_or_add(goro__pmap *m, uint64_t key, uint32_t val_if_new, bool *found);
void goro__pmap_free(goro__pmap *m);

/* ---- the profile ------------------------------------------------------------ */

typedef struct goro__prof_slabel {
    uint32_t key;  /* string ids */
    uint32_t str;  /* string label value (is_str) */
    uint32_t unit; /* numeric unit, 0 = none */
    bool is_str;
    int64_t num;
} goro__prof_slabel;

typedef struct goro__prof_sample {
    size_t pc_off; /* into pcs */
    size_t lbl_off; /* into labels */
    uint32_t npc;
    uint8_t nlabels;
    bool leaf_exact;
    int64_t values[GORO__PROF_MAX_TYPES];
} goro__prof_sample;

struct goro__prof {
    int err; /* sticky: a void setter ran out of memory */
    uint32_t kind; /* string ids into strs */
    uint32_t ntypes;
    uint32_t type[GORO__PROF_MAX_TYPES], unit[GORO__PROF_MAX_TYPES];
    bool has_period_type;
    uint32_t period_type, period_unit;
    int64_t period;
    uint32_t default_type; /* 0 = none */
    int64_t time_nanos, duration_nanos;
    uint32_t *comments;
    size_t ncomments, comments_cap;
    goro__prof_sample *samples;
    size_t nsamples, samples_cap;
    uintptr_t *pcs;
    size_t npcs, pcs_cap;
    goro__prof_slabel *labels;
    size_t nlabels, labels_cap;
    goro__pstrtab strs;
};

/* A sample's program counters (NULL for an empty stack: the shared array
 * may not exist yet). */
static inline const uintptr_t *goro__prof_sample_pcs(const goro__prof *p,
                                                     const goro__prof_sample *s)
{
    return s->npc ? p->pcs + s->pc_off : NULL;
}

/* Location address of pcs[i] of a sample: return addresses minus one,
 * except an exact leaf. */
static inline uintptr_t goro__prof_loc_addr(const goro__prof_sample *s, const uintptr_t *pcs,
                                            uint32_t i)
{
    uintptr_t pc = pcs[i];
    if ((i == 0 && s->leaf_exact) || pc == 0)
        return pc;
    return pc - 1;
}

/* ---- loaded objects (mappings.c) -------------------------------------------- */

typedef struct goro__mapping {
    uintptr_t start, limit; /* page-aligned executable range [start, limit) */
    uint64_t offset;        /* file offset of start */
    const char *file;       /* path ("" if unknown) */
    const char *build_id;   /* lowercase hex GNU build ID, "" if none */
    bool is_main;           /* the main executable */
    size_t file_off, bid_off; /* (while loading: offsets into names) */
} goro__mapping;

/* v[0] is the main executable when it was found (is_main tells); the others
 * follow in load order. `by_start` indexes v sorted by start for lookups. */
typedef struct goro__mappings {
    goro__mapping *v;
    size_t n, cap;
    uint32_t *by_start;
    char *names; /* storage for file and build_id strings */
    size_t names_n, names_cap;
} goro__mappings;

/* Read the executable PT_LOAD segments of every loaded object with
 * dl_iterate_phdr. Returns 0 or -errno; on error *m is left empty. */
int goro__mappings_load(goro__mappings *m);
void goro__mappings_free(goro__mappings *m);
/* Index into v of the mapping containing addr, or -1. */
long goro__mappings_find(const goro__mappings *m, uintptr_t addr);

#endif /* GORO_PROF_INTERNAL_H */
