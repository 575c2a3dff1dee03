/*
 * profiles.c - goro's named profiles (net/http/pprof's list) gathered from
 * the runtime and rendered in Go's formats.
 *
 * Owns: the collectors and the sample sets they fill. A sample set maps a
 * (stack, labels) key to up to four values; delta profiles (seconds=N)
 * subtract two sets; the result is handed to the encoders (profile.h) or,
 * for debug=2, to the dump writer.
 *
 *  goroutine      one sample per goroutine (count 1), stacks from
 *                 consistent snapshots: nothing is stopped
 *  heap, allocs   the sampled malloc buckets, unbiased, plus the memory of
 *                 goroutine stacks grouped by creation site (exact, labelled
 *                 goro=goroutine-stack): the story's run_async shows up with
 *                 its stacks' bytes, which Go's heap profile cannot show
 *  threadcreate   the runtime's threads by the stack that created them
 *  block, mutex   syncprof.c's records
 *  goroutineleak  the goroutines a reachability scan found leaked; each
 *                 sample's stack continues with the goroutine's creation
 *                 stack (pprof's views reach the spawner) and carries a
 *                 created_by label, "run_async (service.c:59) <-
 *                 handle_work (service.c:91)" (goro's frames skipped)
 *  CPU            cpuprof.c's samples over `seconds`
 *
 * Locking: none of its own; collectors read through their modules' APIs.
 * Must be called from a goroutine (it may sleep).
 */
#define GORO__MUTEX_RANK GORO__RANK_SCHED /* lock.h */
#include "prof/profiles.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "debug/goinfo.h"
#include "debug/leakscan.h"
#include "prof/cpuprof.h"
#include "prof/heapprof.h"
#include "prof/profile.h"
#include "prof/syncprof.h"
#include "runtime/sched.h"
#include "runtime/unwind.h"

const goro__profile_desc goro__profiles[] = {
    {"allocs", "A sampling of all past memory allocations"},
    {"block", "Stack traces that led to blocking on synchronization primitives"},
    {"goroutine", "Stack traces of all current goroutines. Use debug=2 as a query parameter "
                  "to export in the same format as an unrecovered panic."},
    {"goroutineleak", "Stack traces of goroutines blocked forever on primitives nothing live "
                      "can reach (a reachability scan; stops the world while it runs)."},
    {"heap", "A sampling of memory allocations of live objects, plus the stacks of "
             "goroutines by the site that created them. You can specify the gc GET parameter "
             "to run GC before taking the heap sample (goro has no GC: it is accepted and "
             "ignored)."},
    {"mutex", "Stack traces of holders of contended mutexes"},
    {"threadcreate", "Stack traces that led to the creation of new OS threads"},
    {NULL, NULL},
};

/* ---- sample sets ----------------------------------------------------------- */

typedef struct sent {
    struct sent *next;
    uint64_t hash;
    uint32_t npc;
    bool exact;       /* pcs[0] is not a return address */
    char *lkey, *lval; /* one string label (owned), or NULL */
    char *lkey2, *lval2; /* a second one (goroutineleak: created_by), or NULL */
    int64_t num;       /* numeric label "bytes" (0: none) */
    int64_t v[4];
    int64_t raw[4];
    uintptr_t pcs[];
} sent;

typedef struct sset {
    sent **slots;
    size_t cap, n;
    int nvals;
} sset;

static uint64_t key_hash(const uintptr_t *pcs, uint32_t n, bool exact, const char *lk,
                         const char *lv, int64_t num)
{
    uint64_t h = 0xcbf29ce484222325ull ^ ((uint64_t)n << 1) ^ exact;
    for (uint32_t i = 0; i < n; i++) {
        h ^= pcs[i];
        h *= 0x100000001b3ull;
    }
    for (const char *p = lk; p && *p; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
    for (const char *p = lv; p && *p; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
    h ^= (uint64_t)num * 0x9E3779B97F4A7C15ull;
    return h ^ (h >> 29);
}

static bool streq(const char *a, const char *b) { return a == b || (a && b && !strcmp(a, b)); }

static void sset_free(sset *s)
{
    for (size_t i = 0; i < s->cap; i++)
        for (sent *e = s->slots[i], *next; e; e = next) {
            next = e->next;
            free(e->lkey);
            free(e->lval);
            free(e->lkey2);
            free(e->lval2);
            free(e);
        }
    free(s->slots);
    memset(s, 0, sizeof *s);
}

/* Add values to the entry for (pcs, labels), creating it. */
static sent *sset_add2(sset *s, const uintptr_t *pcs, uint32_t n, bool exact, const char *lk,
                       const char *lv, const char *lk2, const char *lv2, int64_t num,
                       const int64_t *v, const int64_t *raw)
{
    if (s->n * 2 >= s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 1024;
        sent **ns = calloc(ncap, sizeof *ns);
        if (!ns)
            return NULL;
        for (size_t i = 0; i < s->cap; i++)
            for (sent *e = s->slots[i], *next; e; e = next) {
                next = e->next;
                e->next = ns[e->hash & (ncap - 1)];
                ns[e->hash & (ncap - 1)] = e;
            }
        free(s->slots);
        s->slots = ns;
        s->cap = ncap;
    }
    uint64_t h = key_hash(pcs, n, exact, lk, lv, num);
    if (lk2)
        h ^= key_hash(NULL, 0, false, lk2, lv2, 0) * 0x9E3779B97F4A7C15ull;
    sent **head = &s->slots[h & (s->cap - 1)], *e;
    for (e = *head; e; e = e->next)
        if (e->hash == h && e->npc == n && e->exact == exact && e->num == num &&
            streq(e->lkey, lk) && streq(e->lval, lv) && streq(e->lkey2, lk2) &&
            streq(e->lval2, lv2) && !memcmp(e->pcs, pcs, n * sizeof *pcs))
            break;
    if (!e) {
        e = calloc(1, sizeof *e + n * sizeof *pcs);
        if (!e)
            return NULL;
        e->hash = h;
        e->npc = n;
        e->exact = exact;
        e->num = num;
        e->lkey = lk ? strdup(lk) : NULL;
        e->lval = lv ? strdup(lv) : NULL;
        e->lkey2 = lk2 ? strdup(lk2) : NULL;
        e->lval2 = lv2 ? strdup(lv2) : NULL;
        memcpy(e->pcs, pcs, n * sizeof *pcs);
        e->next = *head;
        *head = e;
        s->n++;
    }
    for (int i = 0; i < s->nvals; i++) {
        e->v[i] += v[i];
        if (raw)
            e->raw[i] += raw[i];
    }
    return e;
}

static sent *sset_add(sset *s, const uintptr_t *pcs, uint32_t n, bool exact, const char *lk,
                      const char *lv, int64_t num, const int64_t *v, const int64_t *raw)
{
    return sset_add2(s, pcs, n, exact, lk, lv, NULL, NULL, num, v, raw);
}

/* s1 -= s0, key by key (delta profiles). */
static int sset_sub(sset *s1, const sset *s0)
{
    int64_t neg[4];
    for (size_t i = 0; i < s0->cap; i++)
        for (const sent *e = s0->slots[i]; e; e = e->next) {
            for (int k = 0; k < 4; k++)
                neg[k] = -e->v[k];
            if (!sset_add2(s1, e->pcs, e->npc, e->exact, e->lkey, e->lval, e->lkey2, e->lval2,
                           e->num, neg, NULL))
                return -ENOMEM;
        }
    return 0;
}

/* ---- collectors --------------------------------------------------------------- */

/* The calling goroutine's own stack from the public call's frame. */
static uint32_t self_stack(uintptr_t fp, uintptr_t *pcs, uint32_t max)
{
    goro__g *g = goro__getg();
    if (!g || !fp)
        return 0;
    return goro__unwind_fp(fp, g->stack_lo, g->stack_hi, pcs, NULL, max);
}

/* only: sorted ids to include (NULL: all). */
/* "run_async (service.c:59) <- handle_work (service.c:91)": where a
 * goroutine was created, spawner first, a few frames (goro's own skipped). */
static void created_by(goro__symcache *c, const goro__gsnap *snap, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = 0;
    int shown = 0;
    for (uint32_t i = 0; i < snap->info.npc && shown < 2 && off + 1 < len; i++) {
        goro_frame f;
        goro__frame_of(c, snap->info.pc[i], false, &f);
        if (!strncmp(f.func, "goro_", 5))
            continue;
        int k = snprintf(buf + off, len - off, "%s%s (%s:%d)", shown ? " <- " : "", f.func,
                         goro__short_file(f.file), f.line);
        if (k < 0)
            break;
        off += (size_t)k < len - off ? (size_t)k : len - off - 1;
        shown++;
    }
}

/* only != NULL (goroutineleak): just those goroutines, each sample's stack
 * followed by its creation stack (so that pprof's views reach the spawner,
 * run_async in the story) and labelled created_by (created_by() above). */
/* goroutineleak: leaked goroutines summed by creation chain and wait
 * reason (the report's one line per group). */
#define MAX_LSUM 32
typedef struct lsum {
    char created_by[256];
    unsigned reason;
    size_t n;
    uint64_t stack_bytes, retained;
    uintptr_t chan_made_at; /* of the first member, when on a channel */
    uint32_t chan_cap;
    char *text;             /* its line (leak_summary) */
} lsum;

typedef struct collected {
    sset s;
    char *comment;              /* e.g. "heap profile unavailable: ..." */
    uint64_t *leaked;           /* goroutineleak: sorted ids */
    goro__scan_leak *info;      /* goroutineleak: parallel to leaked */
    size_t nleaked;
    lsum *sums;                 /* goroutineleak: MAX_LSUM, malloc'd */
    size_t nsums, nsums_dropped;
} collected;

/* One line per group of leaked goroutines: where they were created, what
 * they hold, what they wait on and the usual fix. */
static int cmp_lsum(const void *a, const void *b)
{
    const lsum *x = a, *y = b;
    return x->n > y->n ? -1 : x->n < y->n;
}

static int leak_summary(collected *c)
{
    goro__symcache *sc = goro__symcache_new();
    if (!sc)
        return -ENOMEM;
    if (c->nsums)
        qsort(c->sums, c->nsums, sizeof *c->sums, cmp_lsum);
    for (size_t i = 0; i < c->nsums; i++) {
        const lsum *m = &c->sums[i];
        char sb[32], hb[32], chan[512] = "";
        goro__fmt_bytes(sb, sizeof sb, m->stack_bytes);
        goro__fmt_bytes(hb, sizeof hb, m->retained);
        if (m->chan_made_at) {
            goro_frame f;
            goro__frame_of(sc, m->chan_made_at, false, &f);
            snprintf(chan, sizeof chan, "; on channels made at %s (%s:%d), capacity %u", f.func,
                     goro__short_file(f.file), f.line, m->chan_cap);
        }
        const char *hint = goro__leak_hint(m->reason, m->chan_made_at != 0, m->chan_cap);
        if (asprintf(&c->sums[i].text,
                     "leaked: %zu goroutine%s created by %s [%s]: stacks %s, heap only they "
                     "reach %s%s%s%s",
                     m->n, m->n == 1 ? "" : "s", m->created_by, goro__wait_reason_str(m->reason),
                     sb, hb, chan, hint ? "; hint: " : "", hint ? hint : "") < 0) {
            c->sums[i].text = NULL;
            goro__symcache_free(sc);
            return -ENOMEM;
        }
    }
    goro__symcache_free(sc);
    return 0;
}

static void lsum_add(collected *c, const char *cb, const goro__gsnap *snap,
                     const goro__scan_leak *li)
{
    lsum *m = NULL;
    if (!c->sums && !(c->sums = malloc(MAX_LSUM * sizeof *c->sums))) {
        c->nsums_dropped++;
        return;
    }
    for (size_t i = 0; i < c->nsums && !m; i++)
        if (c->sums[i].reason == snap->wait_reason && !strcmp(c->sums[i].created_by, cb))
            m = &c->sums[i];
    if (!m) {
        if (c->nsums == MAX_LSUM) {
            c->nsums_dropped++;
            return;
        }
        m = &c->sums[c->nsums++];
        memset(m, 0, sizeof *m);
        snprintf(m->created_by, sizeof m->created_by, "%s", cb);
        m->reason = snap->wait_reason;
        if (li) {
            m->chan_made_at = li->chan_made_at;
            m->chan_cap = li->chan_cap;
        }
    }
    m->n++;
    m->stack_bytes += snap->stack_bytes;
    if (li)
        m->retained += li->retained;
}

static int collect_goroutines(sset *s, uintptr_t fp, const uint64_t *only, size_t nonly,
                              collected *col)
{
    s->nvals = 1;
    goro__symcache *sc = NULL;
    if (only && !(sc = goro__symcache_new()))
        return -ENOMEM;
    goro__gsnap *snap = malloc(sizeof *snap);
    if (!snap)
        return -ENOMEM;
    int64_t one = 1;
    goro__g *self = goro__getg();
    if (self && !only) {
        uintptr_t pcs[64];
        uint32_t n = self_stack(fp, pcs, 64);
        if (!sset_add(s, pcs, n, false, self->name[0] ? "name" : NULL,
                      self->name[0] ? self->name : NULL, 0, &one, NULL)) {
            free(snap);
            return -ENOMEM;
        }
    }
    uint32_t lim = goro__reg_limit();
    int rc = 0;
    for (uint32_t i = 0; i < lim && rc == 0; i++) {
        GORO__SNAP_AHEAD(i, lim);
        if (!goro__gsnap_take(i, snap) || (self && snap->id == self->base.id))
            continue;
        size_t at = 0; /* only: its index there */
        if (only) {
            size_t lo = 0, hi = nonly;
            while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                if (only[mid] < snap->id)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            if (lo == nonly || only[lo] != snap->id)
                continue;
            at = lo;
        }
        const uintptr_t *pcs = snap->pc;
        uint32_t n = snap->npc;
        bool exact = false;
        uintptr_t entry;
        if (snap->newborn || n == 0) {
            /* Not started, or running on another thread: its function. */
            entry = (uintptr_t)snap->info.fn;
            pcs = &entry;
            n = 1;
            exact = true;
        }
        bool named = snap->name[0] != 0;
        if (only) {
            uintptr_t all[64 + GORO__CREATE_DEPTH];
            memcpy(all, pcs, n * sizeof *pcs);
            for (uint32_t k = 0; k < snap->info.npc && n < 64 + GORO__CREATE_DEPTH; k++)
                all[n++] = snap->info.pc[k];
            char cb[256];
            created_by(sc, snap, cb, sizeof cb);
            if (col)
                lsum_add(col, cb[0] ? cb : "?", snap, col->info ? &col->info[at] : NULL);
            if (!sset_add2(s, all, n, exact, named ? "name" : NULL, named ? snap->name : NULL,
                           cb[0] ? "created_by" : NULL, cb[0] ? cb : NULL, 0, &one, NULL))
                rc = -ENOMEM;
            continue;
        }
        if (!sset_add(s, pcs, n, exact, named ? "name" : NULL, named ? snap->name : NULL, 0, &one,
                      NULL))
            rc = -ENOMEM;
    }
    free(snap);
    if (sc)
        goro__symcache_free(sc);
    return rc;
}

typedef struct heap_ctx {
    sset *s;
    int64_t rate;
    int rc;
} heap_ctx;

/* docs/formats.md §6: undo the Poisson sampling. */
static void unbias(int64_t count, int64_t bytes, int64_t rate, int64_t *oc, int64_t *ob)
{
    if (count <= 0 || bytes <= 0 || rate <= 1) {
        *oc = count;
        *ob = bytes;
        return;
    }
    double avg = (double)bytes / (double)count;
    double scale = 1.0 / (1.0 - exp(-avg / (double)rate));
    *oc = (int64_t)llround((double)count * scale);
    *ob = (int64_t)llround((double)bytes * scale);
}

static void heap_bucket(const goro__heap_bucket *b, void *arg)
{
    heap_ctx *h = arg;
    int64_t ao = atomic_load(&b->alloc_objects), ab = atomic_load(&b->alloc_bytes);
    int64_t io = ao - atomic_load(&b->free_objects), ib = ab - atomic_load(&b->free_bytes);
    if (ao <= 0 || h->rc)
        return;
    int64_t v[4], raw[4] = {ao, ab, io, ib};
    unbias(ao, ab, h->rate, &v[0], &v[1]);
    unbias(io, ib, h->rate, &v[2], &v[3]);
    /* A block's size, as Go labels heap samples. */
    int64_t size = ab / ao;
    if (!sset_add(h->s, b->pcs, b->npc, false, NULL, NULL, size, v, raw))
        h->rc = -ENOMEM;
}

/* Goroutine stacks (and not-yet-started goroutines' records) by creation
 * site: exact, not sampled. */
static int collect_goroutine_memory(sset *s)
{
    goro__gsnap *snap = malloc(sizeof *snap);
    if (!snap)
        return -ENOMEM;
    uint32_t lim = goro__reg_limit();
    int rc = 0;
    for (uint32_t i = 0; i < lim && rc == 0; i++) {
        if (!goro__gsnap_take(i, snap) || snap->info.parent_id == 0)
            continue;
        const uintptr_t *pcs = snap->info.pc;
        uint32_t n = snap->info.npc;
        uintptr_t entry;
        if (n == 0) {
            entry = (uintptr_t)snap->info.fn;
            pcs = &entry;
        }
        int64_t b = (int64_t)snap->stack_bytes;
        int64_t v[4] = {1, b, 1, b};
        static const int64_t exact[4] = {-1, -1, -1, -1}; /* raw < 0: not sampled */
        if (!sset_add(s, pcs, n ? n : 1, n == 0, "goro",
                      snap->newborn ? "goroutine record" : "goroutine stack", 0, v, exact))
            rc = -ENOMEM;
    }
    free(snap);
    return rc;
}

static void sync_rec(const goro__syncrec *r, void *arg)
{
    heap_ctx *h = arg;
    int64_t v[2] = {(int64_t)llround(r->count), (int64_t)llround(r->delay)};
    if (!h->rc && !sset_add(h->s, r->pcs, r->npc, false, NULL, NULL, 0, v, NULL))
        h->rc = -ENOMEM;
}

static int collect_threads(sset *s)
{
    s->nvals = 1;
    int64_t one = 1;
    int rc = 0;
    goro__mutex_lock(&goro__sched_.lock);
    for (goro__m *m = goro__sched_.allm; m && rc == 0; m = m->alllink)
        if (m->ncreate && /* a stack-less record would make the text form unreadable */
            !sset_add(s, m->create_pc, m->ncreate, false, NULL, NULL, 0, &one, NULL))
            rc = -ENOMEM;
    goro__mutex_unlock(&goro__sched_.lock);
    return rc;
}

/* fp: the frame to unwind the calling goroutine from; base: where the leak
 * scan's roots on its stack start (GORO__SCAN_BASE). */
static int collect(const char *name, uintptr_t fp, uintptr_t base, collected *c)
{
    memset(c, 0, sizeof *c);
    if (!strcmp(name, "goroutine"))
        return collect_goroutines(&c->s, fp, NULL, 0, NULL);
    if (!strcmp(name, "heap") || !strcmp(name, "allocs")) {
        c->s.nvals = 4;
        const char *why;
        if (goro__heapprof_available(&why)) {
            heap_ctx h = {.s = &c->s, .rate = goro_memprofile_rate()};
            goro__heapprof_snapshot(heap_bucket, &h);
            if (h.rc)
                return h.rc;
        } else if (asprintf(&c->comment, "heap profile unavailable: %s (goroutine memory below "
                                         "is exact)", why) < 0) {
            c->comment = NULL;
        }
        return collect_goroutine_memory(&c->s);
    }
    if (!strcmp(name, "threadcreate"))
        return collect_threads(&c->s);
    if (!strcmp(name, "block") || !strcmp(name, "mutex")) {
        c->s.nvals = 2;
        heap_ctx h = {.s = &c->s};
        goro__syncprof_foreach(!strcmp(name, "mutex"), sync_rec, &h);
        return h.rc;
    }
    if (!strcmp(name, "goroutineleak")) {
        const char *why;
        if (!goro__leakscan_supported(&why)) {
            c->s.nvals = 1;
            if (asprintf(&c->comment, "goroutine leak profile unavailable: %s", why) < 0)
                c->comment = NULL;
            return 0;
        }
        goro__scan_result r;
        int rc = goro__leakscan(base, &r);
        if (rc)
            return rc;
        if (r.incomplete && asprintf(&c->comment, "scan incomplete: %s", r.incomplete) < 0)
            c->comment = NULL;
        c->leaked = r.leaked;
        c->info = r.info;
        c->nleaked = r.nleaked;
        r.leaked = NULL;
        r.info = NULL;
        if (!c->nleaked) {
            c->s.nvals = 1;
            return 0;
        }
        rc = collect_goroutines(&c->s, fp, c->leaked, c->nleaked, c);
        if (rc == 0)
            rc = leak_summary(c);
        return rc;
    }
    return -ENOENT;
}

static void collected_free(collected *c)
{
    sset_free(&c->s);
    free(c->comment);
    free(c->leaked);
    free(c->info);
    for (size_t i = 0; i < c->nsums; i++)
        free(c->sums[i].text);
    free(c->sums);
}

/* ---- rendering ---------------------------------------------------------------- */

static int64_t wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * GORO_SECOND + ts.tv_nsec;
}

static int to_prof(const char *name, collected *c, int64_t duration, goro__prof **out,
                   int64_t (**raw)[4])
{
    const char *kind = !strcmp(name, "allocs") ? "heap" : name;
    goro__prof *p = goro__prof_new(kind);
    if (!p)
        return -ENOMEM;
    if (!strcmp(kind, "heap")) {
        goro__prof_add_type(p, "alloc_objects", "count");
        goro__prof_add_type(p, "alloc_space", "bytes");
        goro__prof_add_type(p, "inuse_objects", "count");
        goro__prof_add_type(p, "inuse_space", "bytes");
        goro__prof_set_period(p, "space", "bytes", goro_memprofile_rate());
        if (!strcmp(name, "allocs"))
            goro__prof_set_default_type(p, "alloc_space");
    } else if (!strcmp(kind, "block") || !strcmp(kind, "mutex")) {
        goro__prof_add_type(p, "contentions", "count");
        goro__prof_add_type(p, "delay", "nanoseconds");
        goro__prof_set_period(p, "contentions", "count", 1);
    } else {
        goro__prof_add_type(p, kind, "count");
        goro__prof_set_period(p, kind, "count", 1);
    }
    goro__prof_set_time(p, wall_now(), duration);
    if (c->comment)
        goro__prof_add_comment(p, c->comment);
    for (size_t i = 0; i < c->nsums; i++)
        if (c->sums[i].text)
            goro__prof_add_comment(p, c->sums[i].text);
    if (raw)
        *raw = c->s.n ? calloc(c->s.n, sizeof **raw) : NULL;
    size_t k = 0;
    for (size_t i = 0; i < c->s.cap; i++)
        for (const sent *e = c->s.slots[i]; e; e = e->next) {
            bool any = false;
            for (int j = 0; j < c->s.nvals; j++)
                any |= e->v[j] != 0;
            if (!any && duration == 0)
                continue;
            goro__prof_label labels[3];
            uint32_t nl = 0;
            if (e->lkey)
                labels[nl++] = (goro__prof_label){.key = e->lkey, .str = e->lval};
            if (e->lkey2)
                labels[nl++] = (goro__prof_label){.key = e->lkey2, .str = e->lval2};
            if (e->num)
                labels[nl++] = (goro__prof_label){.key = "bytes", .num = e->num, .unit = "bytes"};
            if (goro__prof_add_sample(p, e->pcs, e->npc, e->exact, e->v, labels, nl)) {
                goro__prof_free(p);
                return -ENOMEM;
            }
            if (raw && *raw)
                memcpy((*raw)[k], e->raw, sizeof e->raw);
            k++;
        }
    *out = p;
    return 0;
}

static const char *heap_stats(const char *comment)
{
    static __thread char buf[768];
    snprintf(buf, sizeof buf, "# goro\n%s%s%s# Goroutines = %zu\n# MemProfileRate = %ld\n",
             comment ? "# " : "", comment ? comment : "", comment ? "\n" : "",
             goro_num_goroutines(), goro_memprofile_rate());
    return buf;
}

GORO__NOINLINE static int render(const char *name, int debug, int64_t seconds,
                                 goro__sink stream, void *stream_arg, unsigned char **out,
                                 size_t *len, const char **ctype, void *fp, uintptr_t base)
{
    *out = NULL;
    *len = 0;
    if (!goro__getg())
        return -EPERM;
    bool known = false;
    for (const goro__profile_desc *d = goro__profiles; d->name; d++)
        known |= !strcmp(d->name, name);
    if (!known)
        return -ENOENT;
    if (seconds < 0 || (seconds > 0 && debug != 0))
        return -EINVAL;
    bool dump = debug >= 2 && (!strcmp(name, "goroutine") || !strcmp(name, "goroutineleak"));
    if (dump) {
        goro__membuf mb = {0};
        goro__sink sink = stream ? stream : goro__sink_mem;
        void *sink_arg = stream ? stream_arg : (void *)&mb;
        goro__dump_opts o = {0};
        collected c = {0};
        int rc = 0;
        *ctype = "text/plain; charset=utf-8";
        if (!strcmp(name, "goroutineleak")) {
            const char *why;
            if (!goro__leakscan_supported(&why)) {
                char *msg;
                int n = asprintf(&msg, "goroutine leak profile unavailable: %s\n", why);
                if (n < 0)
                    return -ENOMEM;
                if (stream) {
                    rc = stream(msg, (size_t)n, stream_arg);
                    free(msg);
                    return rc;
                }
                *out = (unsigned char *)msg;
                *len = (size_t)n;
                return 0;
            }
            if ((rc = collect(name, (uintptr_t)fp, base, &c)))
                return rc;
            o.only_ids = c.leaked;
            o.nonly = c.nleaked;
            o.state_suffix = " (leaked)";
            if (!c.nleaked) {
                static const uint64_t none = 0;
                o.only_ids = &none; /* an empty filter */
                o.nonly = 0;
            }
            if (c.comment) {
                rc = sink(c.comment, strlen(c.comment), sink_arg);
                if (rc == 0)
                    rc = sink("\n\n", 2, sink_arg);
            }

        }
        if (rc == 0)
            rc = goro__dump_write(sink, sink_arg, NULL, (uintptr_t)fp, &o);
        collected_free(&c);
        if (rc) {
            free(mb.data);
            return rc;
        }
        *out = (unsigned char *)mb.data;
        *len = mb.len;
        return 0;
    }
    collected c;
    int rc = collect(name, (uintptr_t)fp, base, &c);
    int64_t duration = 0;
    if (rc == 0 && seconds > 0) {
        collected c0 = c;
        goro_sleep(seconds * GORO_SECOND);
        rc = collect(name, (uintptr_t)fp, base, &c);
        if (rc == 0)
            rc = sset_sub(&c.s, &c0.s);
        collected_free(&c0);
        duration = seconds * GORO_SECOND;
    }
    if (rc) {
        collected_free(&c);
        return rc;
    }
    goro__prof *p;
    int64_t(*raw)[4] = NULL;
    rc = to_prof(name, &c, duration, &p, debug ? &raw : NULL);
    char *comment = c.comment; /* also shown in the text forms */
    c.comment = NULL;
    collected_free(&c);
    if (rc) {
        free(comment);
        return rc;
    }
    if (debug == 0) {
        rc = goro__prof_encode_proto(p, out, len);
        *ctype = "application/octet-stream";
    } else {
        bool heap = !strcmp(name, "heap") || !strcmp(name, "allocs");
        char *text = heap ? goro__prof_encode_text_heap(p, goro_memprofile_rate(),
                                                        (const int64_t(*)[4])raw,
                                                        heap_stats(comment))
                          : goro__prof_encode_text_counts(p);
        if (text && !heap && comment) { /* e.g. goroutineleak unavailable: say why */
            char *t2;
            if (asprintf(&t2, "%s\n# %s\n", text, comment) < 0) {
                t2 = NULL;
            }
            free(text);
            text = t2;
        }
        if (!text) {
            rc = -ENOMEM;
        } else {
            *out = (unsigned char *)text;
            *len = strlen(text);
            *ctype = "text/plain; charset=utf-8";
        }
    }
    free(raw);
    free(comment);
    goro__prof_free(p);
    return rc;
}

GORO__NOINLINE int goro__profile_render(const char *name, int debug, int64_t seconds,
                                        goro__sink stream, void *stream_arg, unsigned char **out,
                                        size_t *len, const char **ctype)
{
    GORO__SCAN_BASE(base); /* goroutineleak: the caller's registers are roots */
    int rc = render(name, debug, seconds, stream, stream_arg, out, len, ctype,
                    __builtin_frame_address(0), base);
    (void)base_marker;
    return rc;
}

long goro__profile_count(const char *name)
{
    if (!strcmp(name, "goroutine"))
        return (long)goro_num_goroutines();
    if (!strcmp(name, "threadcreate")) {
        long n = 0;
        goro__mutex_lock(&goro__sched_.lock);
        for (goro__m *m = goro__sched_.allm; m; m = m->alllink)
            n++;
        goro__mutex_unlock(&goro__sched_.lock);
        return n;
    }
    return -1;
}

/* ---- CPU ------------------------------------------------------------------------ */

static void cpu_sample(const uintptr_t *pcs, uint32_t npc, void *arg)
{
    sset *s = arg;
    int64_t v[1] = {1};
    sset_add(s, pcs, npc, true, NULL, NULL, 0, v, NULL);
}

int goro__cpu_profile_render(int64_t seconds, unsigned char **out, size_t *len)
{
    const int hz = 100;
    if (seconds <= 0)
        seconds = 30;
    if (!goro__getg())
        return -EPERM;
    int rc = goro__cpuprof_start(hz);
    if (rc)
        return rc;
    sset s = {.nvals = 1};
    int64_t start = goro_now(), end = start + seconds * GORO_SECOND, t0 = wall_now();
    while (goro_now() < end) {
        int64_t left = end - goro_now();
        goro_sleep(left < 100 * GORO_MILLISECOND ? left : 100 * GORO_MILLISECOND);
        goro__cpuprof_drain(cpu_sample, &s);
    }
    goro__cpuprof_stop();
    uint64_t lost = goro__cpuprof_drain(cpu_sample, &s);
    int64_t period = GORO_SECOND / hz;
    goro__prof *p = goro__prof_new("cpu");
    if (!p) {
        sset_free(&s);
        return -ENOMEM;
    }
    goro__prof_add_type(p, "samples", "count");
    goro__prof_add_type(p, "cpu", "nanoseconds");
    goro__prof_set_period(p, "cpu", "nanoseconds", period);
    goro__prof_set_time(p, t0, goro_now() - start);
    if (lost) {
        char note[96];
        snprintf(note, sizeof note, "%llu samples lost (buffers full)", (unsigned long long)lost);
        goro__prof_add_comment(p, note);
    }
    for (size_t i = 0; i < s.cap && rc == 0; i++)
        for (const sent *e = s.slots[i]; e && rc == 0; e = e->next) {
            int64_t v[2] = {e->v[0], e->v[0] * period};
            rc = goro__prof_add_sample(p, e->pcs, e->npc, true, v, NULL, 0);
        }
    sset_free(&s);
    if (rc == 0)
        rc = goro__prof_encode_proto(p, out, len);
    goro__prof_free(p);
    return rc;
}

bool goro_heap_profiler_active(const char **why) { return goro__heapprof_available(why); }
