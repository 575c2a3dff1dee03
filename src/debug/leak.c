/*
 * leak.c - the test-time leak check (goleak, done with the goroutine table
 * instead of parsing stack dumps).
 *
 * Owns: leak scopes, snapshots, goro_leak_find and goro_run_checked.
 *
 * Scopes: a goroutine carries the scope its creator was in (spawn info) and
 * the scope its own children join (cur_scope). goro_leak_scope_begin gives
 * the calling goroutine a fresh scope whose parent is its current one; a
 * goroutine belongs to scope S when its scope or one of that scope's
 * ancestors is S. Scope ids are 32 bits, handed out in order and never
 * reused; the table keeps every scope's parent (4 bytes per scope ever
 * begun), so the goroutines of an ended nested scope still belong to the
 * scopes around it.
 *
 * goro_leak_find reads the goroutine registry through consistent snapshots
 * (g.h), retries with growing sleeps (1 us doubling up to 100 ms, within the
 * retry count and time budget, like goleak but configurable) while
 * goroutines are still finishing, and builds structured results plus the
 * readable message.
 *
 * Locking: scope table under scopes.lock; everything else is lock-free
 * reads of the registry.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "debug/goinfo.h"
#include "debug/leakscan.h"
#include "runtime/sched.h"

/* ---- scopes ------------------------------------------------------------- */

struct goro_leak_scope {
    uint32_t id;
    uint32_t parent;
    goro__g *owner;
};

static struct {
    goro__mutex lock;
    uint32_t *parent; /* parent[id] for every scope ever begun */
    uint32_t cap;
    uint32_t last;    /* ids are handed out in order and never reused */
} scopes;

int goro_leak_scope_begin(goro_leak_scope **out)
{
    goro__g *g = goro__getg();
    if (!out)
        return -EINVAL;
    if (!g)
        return -EPERM;
    goro_leak_scope *s = malloc(sizeof *s);
    if (!s)
        return -ENOMEM;
    goro__mutex_lock(&scopes.lock);
    uint32_t id = scopes.last + 1;
    if (id == UINT32_MAX) {
        goro__mutex_unlock(&scopes.lock);
        free(s);
        return -EAGAIN;
    }
    if (id >= scopes.cap) {
        uint32_t ncap = scopes.cap ? scopes.cap * 2 : 1024;
        uint32_t *np = realloc(scopes.parent, (size_t)ncap * sizeof *np);
        if (!np) {
            goro__mutex_unlock(&scopes.lock);
            free(s);
            return -ENOMEM;
        }
        scopes.parent = np;
        scopes.cap = ncap;
    }
    scopes.last = id;
    scopes.parent[id] = g->cur_scope;
    goro__mutex_unlock(&scopes.lock);
    s->id = id;
    s->parent = g->cur_scope;
    s->owner = g;
    g->cur_scope = id;
    *out = s;
    return 0;
}

void goro_leak_scope_end(goro_leak_scope *s)
{
    if (!s)
        return;
    goro__g *g = goro__getg();
    if (g && g == s->owner && g->cur_scope == s->id)
        g->cur_scope = s->parent;
    /* The table entry stays: goroutines created in this scope still belong
     * to the enclosing ones. */
    free(s);
}

/* Locked: is scope `id` (a goroutine's) s or inside it? A parent's id is
 * always smaller than its child's, so the walk ends. */
static bool in_scope(uint32_t id, const goro_leak_scope *s)
{
    while (id > s->id && id <= scopes.last)
        id = scopes.parent[id];
    return id == s->id;
}

/* ---- snapshots ------------------------------------------------------------- */

struct goro_leak_snapshot {
    size_t n;
    uint64_t ids[]; /* sorted */
};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int goro_leak_snapshot_take(goro_leak_snapshot **out)
{
    if (!out)
        return -EINVAL;
    if (!goro__getg())
        return -EPERM;
    uint32_t lim = goro__reg_limit();
    goro_leak_snapshot *s = malloc(sizeof *s + (size_t)lim * sizeof s->ids[0] + 1);
    if (!s)
        return -ENOMEM;
    s->n = 0;
    goro__gpeek pk;
    for (uint32_t i = 0; i < lim; i++)
        if (goro__gpeek_take(i, &pk))
            s->ids[s->n++] = pk.id;
    qsort(s->ids, s->n, sizeof s->ids[0], cmp_u64);
    *out = s;
    return 0;
}

void goro_leak_snapshot_free(goro_leak_snapshot *s) { free(s); }

static bool in_snapshot(const goro_leak_snapshot *s, uint64_t id)
{
    return s && bsearch(&id, s->ids, s->n, sizeof id, cmp_u64) != NULL;
}

/* ---- finding leaks ------------------------------------------------------------ */

static bool name_in(const char *const *list, const char *name)
{
    if (!list || !name)
        return false;
    for (; *list; list++)
        if (strcmp(*list, name) == 0)
            return true;
    return false;
}

static bool frames_match(const char *const *list, const goro_frame *f, size_t n)
{
    if (!list)
        return false;
    for (size_t i = 0; i < n; i++)
        if (name_in(list, f[i].func))
            return true;
    return false;
}

typedef struct found {
    goro_goroutine_info *v;
    size_t n, cap;
} found;

static void found_clear(found *f)
{
    for (size_t i = 0; i < f->n; i++)
        goro__goinfo_release(&f->v[i]);
    f->n = 0;
}

/* One look at the registry: the goroutines that count as leaks now. */
static int collect(const goro_leak_opts *o, uint64_t self, goro__symcache *c, found *out)
{
    found_clear(out);
    goro__gsnap *s = malloc(sizeof *s);
    if (!s)
        return -ENOMEM;
    int64_t now = goro__coarsetime();
    uint32_t lim = goro__reg_limit();
    int rc = 0;
    for (uint32_t i = 0; i < lim && rc == 0; i++) {
        if (!goro__gsnap_take(i, s) || s->id == self)
            continue;
        if (o->ignore_current && in_snapshot(o->ignore_current, s->id))
            continue;
        if (o->scope) {
            goro__mutex_lock(&scopes.lock);
            bool in = in_scope(s->info.scope, o->scope);
            goro__mutex_unlock(&scopes.lock);
            if (!in)
                continue;
        }
        goro_goroutine_info gi;
        if ((rc = goro__goinfo_from_snap(c, s, now, &gi)))
            break;
        const goro_frame *top = goro__goinfo_top(&gi);
        if ((top && name_in(o->ignore_top, top->func)) ||
            frames_match(o->ignore_any, gi.stack, gi.nstack) ||
            frames_match(o->ignore_created_by, gi.created, gi.ncreated)) {
            goro__goinfo_release(&gi);
            continue;
        }
        if (out->n == out->cap) {
            size_t ncap = out->cap ? out->cap * 2 : 16;
            goro_goroutine_info *nv = realloc(out->v, ncap * sizeof *nv);
            if (!nv) {
                goro__goinfo_release(&gi);
                rc = -ENOMEM;
                break;
            }
            out->v = nv;
            out->cap = ncap;
        }
        out->v[out->n++] = gi;
    }
    free(s);
    return rc;
}

/* Growable text. */
typedef struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

__attribute__((format(printf, 2, 3))) static void sb_printf(sbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = true;
            return;
        }
        if (b->p && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        size_t ncap = (b->cap ? b->cap * 2 : 1024) + (size_t)k;
        char *np = realloc(b->p, ncap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = ncap;
    }
}

static void describe(sbuf *b, const goro_goroutine_info *g, bool scan)
{
    char dur[32] = "";
    if (g->blocked && g->wait_ns >= GORO_SECOND) {
        dur[0] = ',';
        dur[1] = ' ';
        goro__fmt_duration(dur + 2, sizeof dur - 2, g->wait_ns);
    }
    sb_printf(b, "goroutine %llu [%s%s]", (unsigned long long)g->id, g->state, dur);
    if (g->name)
        sb_printf(b, " \"%s\"", g->name);
    const goro_frame *top = goro__goinfo_top(g);
    if (top)
        sb_printf(b, ": %s at %s:%d in %s", g->blocked ? "blocked" : g->state,
                  goro__short_file(top->file), top->line, top->func);
    else if (!g->nstack)
        sb_printf(b, ": running on another thread");
    sb_printf(b, "\n");
    if (g->ncreated) {
        sb_printf(b, "    created by");
        for (size_t i = 0; i < g->ncreated; i++)
            sb_printf(b, "%s %s (%s:%d)", i ? " <-" : "", g->created[i].func,
                      goro__short_file(g->created[i].file), g->created[i].line);
        sb_printf(b, " in goroutine %llu\n", (unsigned long long)g->parent_id);
    }
    if (g->nstack) {
        sb_printf(b, "    stack:");
        for (size_t i = 0; i < g->nstack; i++)
            sb_printf(b, "%s %s (%s:%d)", i ? " <-" : "", g->stack[i].func,
                      goro__short_file(g->stack[i].file), g->stack[i].line);
        sb_printf(b, "\n");
    }
    char sb[32], hb[32];
    goro__fmt_bytes(sb, sizeof sb, g->stack_bytes);
    goro__fmt_bytes(hb, sizeof hb, g->retained_bytes);
    if (scan)
        sb_printf(b, "    holds: stack %s, heap %s that only leaked goroutines reach\n", sb, hb);
    else
        sb_printf(b, "    holds: stack %s\n", sb);
    if (g->on_chan)
        sb_printf(b, "    waits on: channel made at %s (%s:%d), capacity %zu, %zu buffered, "
                     "%u reference%s (none from live memory)\n",
                  g->chan_made.func, goro__short_file(g->chan_made.file), g->chan_made.line,
                  g->chan_cap, g->chan_len, g->chan_refs, g->chan_refs == 1 ? "" : "s");
    if (g->hint)
        sb_printf(b, "    hint: %s\n", g->hint);
}

GORO__NOINLINE static int leak_find(const goro_leak_opts *opts, goro_leak_report **report)
{
    if (!report)
        return -EINVAL;
    *report = NULL;
    goro__g *self = goro__getg();
    if (!self)
        return -EPERM;
    goro_leak_opts o = {0};
    if (opts)
        o = *opts;
    int retries = o.retries == 0 ? 20 : o.retries < 0 ? 0 : o.retries;
    int64_t budget = o.max_wait == 0 ? 2 * GORO_SECOND : o.max_wait < 0 ? 0 : o.max_wait;
    int64_t start = goro__nanotime();
    goro__symcache *c = goro__symcache_new();
    found f = {0};
    int rc = 0;
    for (int attempt = 0;; attempt++) {
        if ((rc = collect(&o, self->base.id, c, &f)) || f.n == 0)
            break;
        int64_t left = budget - (goro__nanotime() - start);
        if (attempt >= retries || left <= 0)
            break;
        int64_t nap = (int64_t)GORO_MICROSECOND << (attempt < 20 ? attempt : 20);
        if (nap > 100 * GORO_MILLISECOND)
            nap = 100 * GORO_MILLISECOND;
        goro_sleep(nap < left ? nap : left);
    }
    if (rc == 0 && f.n) {
        goro_leak_report *r = calloc(1, sizeof *r);
        sbuf b = {0};
        if (r) {
            sb_printf(&b, "goro: found %zu unexpected goroutine%s\n", f.n, f.n == 1 ? "" : "s");
            for (size_t i = 0; i < f.n; i++)
                describe(&b, &f.v[i], false);
        }
        if (!r || b.oom) {
            free(b.p);
            free(r);
            found_clear(&f);
            rc = -ENOMEM;
        } else {
            r->count = f.n;
            r->goroutines = f.v;
            r->message = b.p;
            f.v = NULL;
            *report = r;
        }
    } else {
        found_clear(&f);
    }
    free(f.v);
    /* Frames point at the symbolizer's strings, which live for the whole
     * process; the cache itself can go. */
    goro__symcache_free(c);
    return rc;
}

int goro_leak_find(const goro_leak_opts *opts, goro_leak_report **report)
{
    return leak_find(opts, report);
}

void goro_leak_report_free(goro_leak_report *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->count; i++)
        goro__goinfo_release(&r->goroutines[i]);
    /* Wiped: a later goro_leak_scan reads freed heap memory as roots. */
    goro__free_wiped(r->goroutines, r->count * sizeof r->goroutines[0]);
    if (r->message)
        goro__free_wiped(r->message, strlen(r->message));
    goro__free_wiped(r, sizeof *r);
}

/* ---- the reachability scan ----------------------------------------------------- */

GORO__NOINLINE static int leak_scan(goro_leak_report **report, goro_leak_scan_stats *stats,
                                    void *fp)
{
    if (report)
        *report = NULL;
    if (stats)
        memset(stats, 0, sizeof *stats);
    if (!goro__getg())
        return -EPERM;
    const char *why;
    if (!goro__leakscan_supported(&why)) {
        if (stats)
            stats->incomplete = why;
        return -ENOTSUP;
    }
    goro__scan_result r;
    int rc = goro__leakscan((uintptr_t)fp, &r);
    if (rc) {
        if (stats)
            stats->incomplete = r.incomplete;
        return rc;
    }
    if (stats) {
        stats->goroutines = r.ngoroutines;
        stats->blocked = r.nblocked;
        stats->leaked = r.nleaked;
        stats->threads = r.nthreads;
        stats->threads_not_stopped = r.nunstopped;
        stats->heap_bytes = r.heap_bytes;
        stats->scanned_bytes = r.root_bytes;
        stats->pause_ns = r.pause_ns;
        stats->total_ns = r.total_ns;
        stats->incomplete = r.incomplete;
    }
    if (r.incomplete) {
        goro__scan_result_free(&r);
        return -EAGAIN;
    }
    if (r.nleaked && report) {
        /* Describe them (the world runs again; leaked goroutines stay). */
        goro__symcache *c = goro__symcache_new();
        goro__gsnap *s = malloc(sizeof *s);
        goro_leak_report *out = calloc(1, sizeof *out);
        goro_goroutine_info *v = calloc(r.nleaked, sizeof *v);
        sbuf b = {0};
        if (!c || !s || !out || !v) {
            rc = -ENOMEM;
        } else {
            int64_t now = goro__coarsetime();
            uint32_t lim = goro__reg_limit();
            size_t n = 0;
            for (uint32_t i = 0; i < lim && rc == 0; i++) {
                if (!goro__gsnap_take(i, s) ||
                    !bsearch(&s->id, r.leaked, r.nleaked, sizeof s->id, cmp_u64))
                    continue;
                if (n >= r.nleaked || (rc = goro__goinfo_from_snap(c, s, now, &v[n])))
                    continue;
                /* What the scan found: retained bytes, its channel. */
                goro_goroutine_info *gi = &v[n++];
                const goro__scan_leak *li = NULL;
                for (size_t lo = 0, hi = r.nleaked; lo < hi && !li;) {
                    size_t mid = lo + (hi - lo) / 2;
                    if (r.info[mid].id == gi->id)
                        li = &r.info[mid];
                    else if (r.info[mid].id < gi->id)
                        lo = mid + 1;
                    else
                        hi = mid;
                }
                if (!li)
                    continue;
                gi->retained_bytes = li->retained;
                if (li->chan_made_at) {
                    gi->on_chan = true;
                    goro__frame_of(c, li->chan_made_at, false, &gi->chan_made);
                    gi->chan_cap = li->chan_cap;
                    gi->chan_len = li->chan_count;
                    gi->chan_refs = li->chan_refs;
                    gi->hint = goro__leak_hint(s->wait_reason, true, li->chan_cap);
                }
            }
            sb_printf(&b, "goro: %zu goroutine%s leaked (blocked forever: nothing live can reach "
                          "what %s waiting on)\n",
                      n, n == 1 ? "" : "s", n == 1 ? "it is" : "they are");
            for (size_t i = 0; i < n; i++)
                describe(&b, &v[i], true);
            if (b.oom)
                rc = -ENOMEM;
            out->count = n;
            out->goroutines = v;
            out->message = b.p;
        }
        if (rc) {
            for (size_t i = 0; v && i < r.nleaked; i++)
                goro__goinfo_release(&v[i]);
            free(v);
            free(b.p);
            free(out);
        } else {
            *report = out;
        }
        free(s);
        goro__symcache_free(c);
    }
    goro__scan_result_free(&r);
    return rc;
}

GORO__NOINLINE int goro_leak_scan(goro_leak_report **report, goro_leak_scan_stats *stats)
{
    GORO__SCAN_BASE(base);
    int rc = leak_scan(report, stats, (void *)base);
    (void)base_marker;
    return rc;
}

/* ---- goro_run_checked ----------------------------------------------------------- */

typedef struct checked {
    goro_fn fn;
    void *arg;
    const goro_leak_opts *opts;
    goro_leak_report *report;
    int rc;
} checked;

/* Named goro__ so stacks and creation chains stop at it. */
static void goro__checked_main(void *arg)
{
    checked *c = arg;
    c->fn(c->arg);
    c->rc = goro_leak_find(c->opts, &c->report);
}

int goro_run_checked(goro_fn main_fn, void *arg, const goro_options *opts,
                     const goro_leak_opts *leak_opts, goro_leak_report **report)
{
    if (!main_fn)
        return -EINVAL;
    checked c = {.fn = main_fn, .arg = arg, .opts = leak_opts};
    int rc = goro_run(goro__checked_main, &c, opts);
    if (report)
        *report = c.report;
    else
        goro_leak_report_free(c.report);
    return rc ? rc : c.rc;
}
