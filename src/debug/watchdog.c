/*
 * watchdog.c - the production leak watchdog (on by default, cheap).
 *
 * Every period (default 2 s), from the sysmon thread, one pass over the
 * goroutine registry groups the goroutines parked on goro primitives
 * (channels, select, sync — never I/O, sleep, syscalls or waits with a
 * deadline, which end by themselves) by (creation site, wait site, wait
 * reason). The pass reads each goroutine through goro__gpeek_take: a few
 * fields and the return address saved in the public blocking call's frame,
 * no unwinding, no symbolization, nothing locked that goroutines use.
 *
 * A group becomes a leak suspect when its size grew in each of the last
 * `windows` periods (and so did its family: all groups with its creation
 * site and reason, whatever the exact wait address, so that members moving
 * between two copies of one call site do not count as growth), it has at
 * least `min_count` members, and its oldest member has waited at least
 * `min_age`: a worker pool (stable), request
 * goroutines waiting briefly (young), or thousands of connections parked on
 * sockets (not a primitive) never qualify; the story's leak (a growing
 * group of goroutines blocked forever on the same send) does within
 * min_age + windows * period. The group remembers its oldest member; when
 * the saved return address lands in goro's own code (a function that ended
 * in a tail call to the blocking call, at -O2), reporting walks that
 * member's stack past goro's frames, or names its goroutine function
 * (user_wait_site). A new suspect is symbolized and reported once
 * (stderr line or callback), kept in the suspect list (refreshed every
 * period) for /debug/goro/leaks and counted for /metrics.
 *
 * Cost: when a pass takes longer than 2% of the period (a million parked
 * goroutines), the next one waits longer, so the watchdog never takes more
 * than ~2% of one CPU.
 *
 * Locking: wd.lock (thread mutex) guards configuration, groups and the
 * suspect list; held by sysmon during a pass's bookkeeping and by readers.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "debug/goinfo.h"
#include "runtime/sched.h"

#define MAXW 16

typedef struct wgroup {
    struct wgroup *next;
    uint64_t hash;
    uintptr_t create_pcs[GORO__CREATE_DEPTH];
    uint16_t ncreate;
    const char *cfile, *cfunc;
    int cline;
    uintptr_t wait_pc;
    uint8_t reason;
    uint32_t sample_slot;       /* a member seen in the last pass (registry slot) */
    uint64_t sample_id;
    uint32_t count;             /* this pass */
    int64_t oldest_since;       /* this pass */
    uint32_t hist[MAXW + 1];    /* counts of the last passes, [0] newest */
    uint32_t npass;             /* passes recorded in hist */
    uint32_t unseen;            /* passes in a row with count 0 */
    bool reported;
    goro_leak_suspect sus;      /* filled when reported */
} wgroup;

static struct {
    pthread_mutex_t lock;
    goro_watchdog_opts opts;
    bool env_read;
    wgroup **slots;
    size_t cap, n;
    int64_t next_pass;
    int64_t last_pass;
    _Atomic uint64_t reports;
} wd = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int64_t opt_period(void) { return wd.opts.period ? wd.opts.period : 2 * GORO_SECOND; }
static int opt_windows(void) { return wd.opts.windows ? wd.opts.windows : 3; }
static int64_t opt_min_age(void) { return wd.opts.min_age ? wd.opts.min_age : 5 * GORO_SECOND; }
static size_t opt_min_count(void) { return wd.opts.min_count ? wd.opts.min_count : 10; }

static void read_env_locked(void)
{
    if (wd.env_read)
        return;
    wd.env_read = true;
    const char *v = getenv("GORO_WATCHDOG");
    if (v && (!strcmp(v, "0") || !strcmp(v, "off")))
        wd.opts.disabled = true;
    v = getenv("GORO_WATCHDOG_PERIOD_MS");
    if (v && atoll(v) > 0 && !wd.opts.period)
        wd.opts.period = atoll(v) * GORO_MILLISECOND;
    v = getenv("GORO_WATCHDOG_MIN_AGE_MS");
    if (v && atoll(v) > 0 && !wd.opts.min_age)
        wd.opts.min_age = atoll(v) * GORO_MILLISECOND;
}

int goro_watchdog_configure(const goro_watchdog_opts *o)
{
    goro_watchdog_opts def = {0};
    if (!o)
        o = &def;
    if (o->period < 0 || o->windows < 0 || o->windows > MAXW || o->min_age < 0)
        return -EINVAL;
    pthread_mutex_lock(&wd.lock);
    wd.env_read = true; /* explicit configuration wins over the environment */
    wd.opts = *o;
    wd.next_pass = 0;
    pthread_mutex_unlock(&wd.lock);
    return 0;
}

uint64_t goro_watchdog_reports_total(void) { return atomic_load(&wd.reports); }

static uint64_t group_hash(const goro__gpeek *p)
{
    uint64_t h = 0xcbf29ce484222325ull;
    uintptr_t k[3] = {p->info.npc ? p->info.pc[0] : (uintptr_t)p->info.fn, p->wait_pc,
                      p->wait_reason};
    for (int i = 0; i < 3; i++) {
        h ^= k[i];
        h *= 0x100000001b3ull;
        h ^= h >> 29;
    }
    return h;
}

/* Locked. */
static wgroup *group_get(const goro__gpeek *p, uint64_t h)
{
    if (wd.n * 2 >= wd.cap) {
        size_t ncap = wd.cap ? wd.cap * 2 : 256;
        wgroup **ns = calloc(ncap, sizeof *ns);
        if (!ns)
            return NULL;
        for (size_t i = 0; i < wd.cap; i++)
            for (wgroup *g = wd.slots[i], *next; g; g = next) {
                next = g->next;
                g->next = ns[g->hash & (ncap - 1)];
                ns[g->hash & (ncap - 1)] = g;
            }
        free(wd.slots);
        wd.slots = ns;
        wd.cap = ncap;
    }
    uintptr_t site = p->info.npc ? p->info.pc[0] : (uintptr_t)p->info.fn;
    wgroup **head = &wd.slots[h & (wd.cap - 1)], *g;
    for (g = *head; g; g = g->next)
        if (g->hash == h && g->wait_pc == p->wait_pc && g->reason == p->wait_reason &&
            (g->ncreate ? g->create_pcs[0] : 0) == (p->info.npc ? site : 0))
            return g;
    g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->hash = h;
    g->ncreate = p->info.npc;
    memcpy(g->create_pcs, p->info.pc, sizeof g->create_pcs);
    g->cfile = p->info.file;
    g->cfunc = p->info.func;
    g->cline = p->info.line;
    g->wait_pc = p->wait_pc;
    g->reason = p->wait_reason;
    g->next = *head;
    *head = g;
    wd.n++;
    return g;
}

static bool is_goro_func(const char *f) { return !strncmp(f, "goro_", 5); }

/* The wait site is the return address saved in the public blocking call's
 * frame. When that lands in goro's own code, the caller's frame is gone: a
 * function that ended in a tail call to the blocking call (-O2 without
 * -fno-optimize-sibling-calls) returns straight into goro's goroutine
 * entry, or into goro_once_do. Then walk a member's stack past goro's
 * frames to the first of the user's, or, when there is none, name the
 * goroutine's own function (the one that made the tail call). Runs only
 * when a suspect is reported (symbolization is not in the timed pass). */
static void user_wait_site(wgroup *g, goro__symcache *c, goro_frame *out)
{
    goro__frame_of(c, g->wait_pc, false, out);
    if (!is_goro_func(out->func))
        return;
    goro__gsnap *snap = malloc(sizeof *snap);
    if (!snap)
        return;
    if (goro__gsnap_take(g->sample_slot, snap) && snap->id == g->sample_id) {
        bool found = false;
        for (uint32_t i = 1; i < snap->npc && !found; i++) {
            goro_frame f;
            goro__frame_of(c, snap->pc[i], false, &f);
            if (!is_goro_func(f.func)) {
                *out = f;
                found = true;
            }
        }
        if (!found && snap->info.fn)
            goro__frame_of(c, (uintptr_t)snap->info.fn, true, out);
    }
    free(snap);
}

/* Symbolize a new suspect and build its line. */
static void describe(wgroup *g, goro__symcache *c, int64_t now, double growth)
{
    goro_leak_suspect *s = &g->sus;
    s->reason = goro__wait_reason_str(g->reason);
    user_wait_site(g, c, &s->wait_site);
    s->ncreated = 0;
    for (uint16_t i = 0; i < g->ncreate && i < 8; i++) {
        goro_frame f;
        goro__frame_of(c, g->create_pcs[i], false, &f);
        if (!strncmp(f.func, "goro__", 6))
            break;
        s->created[s->ncreated++] = f;
    }
    if (g->cfile) {
        if (!s->ncreated)
            s->ncreated = 1;
        s->created[0].file = g->cfile;
        s->created[0].line = g->cline;
        if (g->cfunc)
            s->created[0].func = g->cfunc;
    }
    s->first_reported = now;
    char chain[1024], oldest[32];
    size_t k = 0;
    chain[0] = 0;
    for (size_t i = 0; i < s->ncreated && k < sizeof chain; i++)
        k += (size_t)snprintf(chain + k, sizeof chain - k, "%s%s (%s:%d)", i ? " <- " : "",
                              s->created[i].func, goro__short_file(s->created[i].file),
                              s->created[i].line);
    goro__fmt_duration(oldest, sizeof oldest, s->oldest_wait_ns);
    char *msg = NULL;
    if (asprintf(&msg,
                 "goro: possible goroutine leak: %zu goroutines created at %s blocked in %s "
                 "at %s:%d (in %s), growing %.0f/s, oldest %s",
                 s->count, s->ncreated ? chain : "?", s->reason,
                 goro__short_file(s->wait_site.file), s->wait_site.line, s->wait_site.func,
                 growth, oldest) < 0)
        msg = NULL;
    s->message = msg;
}

/* Locked. Did the family of g - every group with its creation site and
 * wait reason, whatever the exact wait address - grow in each of the last W
 * passes? A compiler may duplicate one source call (clang does for a loop's
 * first iteration): a stable pool's workers then move from one group to the
 * other, which grows while the family does not. */
static bool family_grew(const wgroup *g, int W)
{
    uint64_t sum[MAXW + 1] = {0};
    uintptr_t site = g->ncreate ? g->create_pcs[0] : 0;
    for (size_t i = 0; i < wd.cap; i++)
        for (const wgroup *o = wd.slots[i]; o; o = o->next)
            if (o->reason == g->reason && (o->ncreate ? o->create_pcs[0] : 0) == site &&
                o->cfile == g->cfile && o->cline == g->cline)
                for (int w = 0; w <= W; w++)
                    sum[w] += o->npass > (uint32_t)w ? o->hist[w] : 0;
    for (int w = 0; w < W; w++)
        if (sum[w] <= sum[w + 1])
            return false;
    return true;
}

static void pass(int64_t now)
{
    /* Count without the lock (reading goroutines is lock-free); groups are
     * only touched under it. Peeks go into a local batch first. */
    enum { BATCH = 512 };
    goro__gpeek *batch = malloc(BATCH * sizeof *batch);
    uint32_t *slots = malloc(BATCH * sizeof *slots);
    if (!batch || !slots) {
        free(batch);
        free(slots);
        return;
    }
    pthread_mutex_lock(&wd.lock);
    for (size_t i = 0; i < wd.cap; i++)
        for (wgroup *g = wd.slots[i]; g; g = g->next) {
            g->count = 0;
            g->oldest_since = INT64_MAX;
        }
    pthread_mutex_unlock(&wd.lock);
    uint32_t lim = goro__reg_limit(), k = 0;
    for (uint32_t i = 0; i <= lim; i++) {
        if (i < lim) {
            goro__gpeek *p = &batch[k];
            if (!goro__gpeek_take(i, p) || p->newborn || p->state != GORO__G_WAITING ||
                p->timed || !goro__wait_reason_is_primitive(p->wait_reason) || !p->wait_pc)
                continue;
            slots[k] = i;
            if (++k < BATCH)
                continue;
        }
        pthread_mutex_lock(&wd.lock);
        for (uint32_t j = 0; j < k; j++) {
            wgroup *g = group_get(&batch[j], group_hash(&batch[j]));
            if (!g)
                continue;
            g->count++;
            if (batch[j].wait_since && batch[j].wait_since < g->oldest_since) {
                g->oldest_since = batch[j].wait_since;
                g->sample_slot = slots[j]; /* the oldest member: the likeliest to stay */
                g->sample_id = batch[j].id;
            }
        }
        pthread_mutex_unlock(&wd.lock);
        k = 0;
    }
    free(batch);
    free(slots);

    /* Windows, suspects, reports. */
    goro__symcache *c = NULL;
    pthread_mutex_lock(&wd.lock);
    int W = opt_windows();
    double period_s = (double)opt_period() / GORO_SECOND;
    /* Two loops: every group's history is shifted before any is judged,
     * because family_grew() sums the histories of other groups. Judged
     * in the same loop, a group visited later would still hold last
     * pass's count at [0]: the sum would mix passes, and a family whose
     * members move from one group to another faster each period (a pool
     * under rising load) would seem to grow. */
    for (size_t i = 0; i < wd.cap; i++) {
        for (wgroup **pp = &wd.slots[i], *g; (g = *pp);) {
            memmove(&g->hist[1], &g->hist[0], MAXW * sizeof g->hist[0]);
            g->hist[0] = g->count;
            if (g->npass <= MAXW)
                g->npass++;
            g->unseen = g->count ? 0 : g->unseen + 1;
            /* An empty group is kept W+1 passes, so that family_grew()
             * still sees the members that moved away from it. */
            if (g->unseen >= (uint32_t)(W + 10) || (!g->reported && g->unseen > (uint32_t)W)) {
                *pp = g->next;
                free((void *)g->sus.message);
                free(g);
                wd.n--;
                continue;
            }
            pp = &g->next;
        }
    }
    for (size_t i = 0; i < wd.cap; i++) {
        for (wgroup *g = wd.slots[i]; g; g = g->next) {
            bool grew = g->npass > (uint32_t)W;
            for (int w = 0; grew && w < W; w++)
                grew = g->hist[w] > g->hist[w + 1];
            int64_t oldest = g->count && g->oldest_since != INT64_MAX ? now - g->oldest_since : 0;
            double growth = g->npass > (uint32_t)W
                                ? ((double)g->hist[0] - (double)g->hist[W]) / (W * period_s)
                                : 0;
            if (g->reported) {
                g->sus.count = g->count;
                g->sus.oldest_wait_ns = oldest;
                if (g->count)
                    g->sus.growth_per_sec = growth;
                continue;
            }
            if (!grew || g->count < opt_min_count() || oldest < opt_min_age() ||
                !family_grew(g, W))
                continue;
            g->reported = true;
            g->sus.count = g->count;
            g->sus.oldest_wait_ns = oldest;
            g->sus.growth_per_sec = growth;
            if (!c)
                c = goro__symcache_new();
            describe(g, c, now, growth);
            atomic_fetch_add(&wd.reports, 1);
            if (wd.opts.on_suspect)
                wd.opts.on_suspect(&g->sus, wd.opts.arg);
            else if (g->sus.message)
                fprintf(stderr, "%s\n", g->sus.message);
        }
    }
    pthread_mutex_unlock(&wd.lock);
    goro__symcache_free(c);
}

void goro__watchdog_tick(int64_t now)
{
    pthread_mutex_lock(&wd.lock);
    read_env_locked();
    bool due = !wd.opts.disabled && now >= wd.next_pass;
    int64_t period = opt_period();
    pthread_mutex_unlock(&wd.lock);
    if (!due)
        return;
    int64_t t0 = goro__nanotime();
    pass(now);
    int64_t cost = goro__nanotime() - t0;
    pthread_mutex_lock(&wd.lock);
    /* Keep the watchdog under ~2% of one CPU. */
    wd.next_pass = now + (cost * 50 > period ? cost * 50 : period);
    wd.last_pass = now;
    pthread_mutex_unlock(&wd.lock);
}

/* Forget the groups of a finished run (the goroutines are gone). Suspects
 * already reported stay listed. */
void goro__watchdog_reset(void)
{
    pthread_mutex_lock(&wd.lock);
    for (size_t i = 0; i < wd.cap; i++)
        for (wgroup **pp = &wd.slots[i], *g; (g = *pp);) {
            if (g->reported) {
                g->count = 0;
                g->sus.count = 0;
                pp = &g->next;
                continue;
            }
            *pp = g->next;
            free(g);
            wd.n--;
        }
    wd.next_pass = 0;
    pthread_mutex_unlock(&wd.lock);
}

int goro_watchdog_suspects(goro_leak_suspect **out, size_t *n)
{
    if (!out || !n)
        return -EINVAL;
    pthread_mutex_lock(&wd.lock);
    size_t k = 0;
    for (size_t i = 0; i < wd.cap; i++)
        for (wgroup *g = wd.slots[i]; g; g = g->next)
            k += g->reported;
    goro_leak_suspect *v = k ? calloc(k, sizeof *v) : NULL;
    if (k && !v) {
        pthread_mutex_unlock(&wd.lock);
        return -ENOMEM;
    }
    size_t j = 0;
    for (size_t i = 0; i < wd.cap; i++)
        for (wgroup *g = wd.slots[i]; g; g = g->next)
            if (g->reported) {
                v[j] = g->sus;
                v[j].message = g->sus.message ? strdup(g->sus.message) : NULL;
                j++;
            }
    pthread_mutex_unlock(&wd.lock);
    /* Newest first. */
    for (size_t a = 1; a < j; a++)
        for (size_t b = a; b > 0 && v[b].first_reported > v[b - 1].first_reported; b--) {
            goro_leak_suspect t = v[b];
            v[b] = v[b - 1];
            v[b - 1] = t;
        }
    *out = v;
    *n = j;
    return 0;
}

void goro_watchdog_suspects_free(goro_leak_suspect *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free((void *)s[i].message);
    free(s);
}
