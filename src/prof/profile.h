/*
 * profile.h - goro's in-memory profile and its encoders.
 *
 * Every profile goro serves (goroutine, heap, allocs, CPU, block, mutex,
 * threadcreate, goroutineleak) is first gathered into a goro__prof: sample
 * types, samples (a stack of program counters, one value per sample type,
 * optional labels), and metadata. Encoders then turn it into:
 *  - profile.proto (gzipped), the format `go tool pprof`, Parca and
 *    Pyroscope read: mappings of loaded objects with GNU build IDs, locations
 *    symbolized (function, file, line, inline chains) by goro's symbolizer;
 *  - Go's legacy text formats (debug=1) for the goroutine-style profiles and
 *    the heap profile.
 * Formats: docs/formats.md §2, §4 and §5.
 *
 * Ownership: a goro__prof owns copies of everything added to it (stacks,
 * label strings); goro__prof_free releases all of it. Not thread-safe: one
 * writer builds a profile at a time.
 */
#ifndef GORO_PROF_PROFILE_H
#define GORO_PROF_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GORO__PROF_MAX_TYPES 4
#define GORO__PROF_MAX_LABELS 4

typedef struct goro__prof_label {
    const char *key;
    const char *str;  /* string label, or NULL for a numeric one */
    int64_t num;
    const char *unit; /* numeric unit ("bytes") or NULL */
} goro__prof_label;

typedef struct goro__prof goro__prof;

/* A new empty profile. `kind` names it ("goroutine", "heap", ...; used by
 * the text encoders' header line). Returns NULL when out of memory. */
goro__prof *goro__prof_new(const char *kind);
void goro__prof_free(goro__prof *p);

/* Sample types in order, e.g. ("alloc_objects","count"), ("alloc_space",
 * "bytes"), ... At most GORO__PROF_MAX_TYPES. */
int goro__prof_add_type(goro__prof *p, const char *type, const char *unit);
/* period_type / period (e.g. "space"/"bytes", 524288), default sample type,
 * time_nanos (wall clock, ns since the epoch), duration_nanos (0: absent). */
void goro__prof_set_period(goro__prof *p, const char *type, const char *unit, int64_t period);
void goro__prof_set_default_type(goro__prof *p, const char *type);
void goro__prof_set_time(goro__prof *p, int64_t time_nanos, int64_t duration_nanos);
/* A free-text comment (Profile.comment). */
int goro__prof_add_comment(goro__prof *p, const char *text);

/* Add one sample. pcs: innermost first. `ret_addrs`: the pcs are return
 * addresses (the usual case for unwound stacks; location addresses are then
 * pc - 1 as pprof expects) except pcs[0] when `leaf_exact` is set (a CPU
 * sample's interrupted pc, or a function entry). values: one per sample
 * type. Samples with identical stacks and labels are NOT merged here (the
 * caller aggregates). Returns 0 or -ENOMEM. */
int goro__prof_add_sample(goro__prof *p, const uintptr_t *pcs, uint32_t npc, bool leaf_exact,
                          const int64_t *values, const goro__prof_label *labels,
                          uint32_t nlabels);

/* Encode as gzipped profile.proto into a malloc'd buffer (*out, *len).
 * Returns 0 or -errno. */
int goro__prof_encode_proto(goro__prof *p, unsigned char **out, size_t *len);

/* Legacy text for goroutine-style profiles (docs/formats.md §2):
 * "<kind> profile: total N", the comments as "# text" lines (Go's parser
 * skips them), groups "count @ 0x.. 0x..", optional
 * "# labels: {...}", "#\t0x..\tfunc+0x..\tfile:line" lines, aligned like
 * Go's tabwriter; groups sorted by count descending. Uses value index 0.
 * Returns a malloc'd NUL-terminated string, or NULL. */
char *goro__prof_encode_text_counts(goro__prof *p);

/* Legacy heap text (docs/formats.md §4) from a heap profile whose types
 * are alloc_objects, alloc_space, inuse_objects, inuse_space; `rate` is the
 * sampling rate (the header says heap/2*rate); `raw` values are the
 * unscaled sample counts (same order as the samples added). stats: a
 * "# name = value" trailer block (may be NULL). */
char *goro__prof_encode_text_heap(goro__prof *p, int64_t rate, const int64_t (*raw)[4],
                                  const char *stats);

#endif /* GORO_PROF_PROFILE_H */
