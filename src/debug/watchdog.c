/*
 * watchdog.c - the production leak watchdog (on by default, cheap).
 *
 * The runtime keeps a census of long waits by wait group (runtime/census.h:
 * (creation site, wait site, reason); waits on goro primitives without a
 * deadline that outlived the 67 ms epoch they began in; counters by park
 * epoch, kept by sysmon from per-P logs and by the goroutines' wake-ups).
 * Every period (default 500 ms), from the sysmon thread, a pass reads those
 * counters: O(groups), whatever the number of goroutines. Each group
 * belongs to a family: (creating function, reason); the goroutines one
 * function starts from two goro_go lines, or that move between two copies
 * of one wait call, are one family. Per family and pass the watchdog keeps
 * the count and the "aged" count (members parked at least min_age ago,
 * from the census's age lower bounds).
 *
 * A family becomes a leak suspect when
 *  - fast rule: its count grew in each of the last `windows` periods, its
 *    aged count grew over them, and it has at least `min_count` members;
 *  - slow rule (a small leak, e.g. one goroutine a second): over the last
 *    SLOW_SPAN seconds (at most HIST passes: 20 s at the default period)
 *    its count never dropped, rose in at least SLOW_STEPS passes and by at
 *    least SLOW_STEPS, and its aged count grew.
 * Either way at least one member has waited min_age (aged count > 0): a
 * worker pool (stable count), request goroutines waiting briefly (never
 * aged), thousands of connections parked on sockets, sleepers and timed
 * waits (not counted) never qualify; the story's leak (a growing group
 * blocked forever on the same send) does within min_age + windows periods.
 *
 * Reporting runs after the timed pass (its cost does not count against the
 * budget below): it names the family's largest group, walks the goroutine
 * registry once for that group's members (their number, stack bytes, the
 * oldest wait, and a member whose stack shows the user's frame when the
 * saved return address lands in goro's own code: a tail call at -O2,
 * user_wait_site), symbolizes, prints the line (or calls on_suspect), and
 * keeps the suspect listed (count refreshed every pass) for
 * /debug/goro/leaks and /metrics.
 *
 * Second tier: a new suspect is SUSPECTED (UNVERIFIED in builds that
 * cannot scan). After each pass that leaves a suspect waiting for a
 * verdict — SUSPECTED, or REACHABLE and grown since its last check at
 * least RECHECK ago — the watchdog asks goro's confirmation thread for a
 * reachability scan (leakconfirm.c: rate-limited, outside sysmon). The
 * thread hands the result to goro__watchdog_settle, which walks the
 * registry once for the members of the waiting families that parked
 * before the scan began: any of them leaked -> CONFIRMED (final: what
 * nothing reaches stays unreachable); all judged ones reachable ->
 * REACHABLE; none judged -> still SUSPECTED (the next pass asks again).
 * The walk runs without wd.lock (family keys copied first: groups and
 * families live until goro_run's teardown, which stops the thread
 * before goro__watchdog_reset).
 *
 * Cost: the pass is O(groups); when it still takes longer than 2% of the
 * period, the next one waits longer (the watchdog stays under ~2% of one
 * CPU). Families are created from census groups once (one symbolization
 * per new group when goro_go did not record the creating function).
 *
 * Locking: wd.lock (thread mutex) guards configuration, families and the
 * suspect list; held by sysmon during a pass, by the confirmation thread
 * while it applies a verdict, and by readers. It is never taken by
 * goroutines in the park path (the census takes no lock), and released
 * before kicking the confirmation thread (cf.lock is a leaf).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "debug/goinfo.h"
#include "debug/leakconfirm.h"
#include "debug/leakscan.h"
#include "debug/watchdog.h"
#include "runtime/census.h"
#include "runtime/sched.h"

#define MAXW 16
#define HIST 40                      /* passes of history per family */
#define SLOW_SPAN (20 * GORO_SECOND) /* the slow rule's horizon */
#define SLOW_STEPS 5
#define RECHECK (60 * GORO_SECOND)   /* a REACHABLE suspect's next scan, at the earliest */
#define SETTLE_MARGIN (200 * GORO_MILLISECOND) /* park stamps are coarse */

typedef struct wfam {
    struct wfam *next;
    char *func;      /* creating function (malloc'd) */
    char *file;      /* its source file (malloc'd, "" when unknown): two
                        static functions of one name are two families */
    uint8_t reason;
    uint32_t count, aged;        /* this pass */
    int64_t oldest_lb;           /* this pass: lower bound of the oldest wait */
    uint32_t top;                /* this pass: the largest census group */
    uint32_t top_count;
    uint32_t hist[HIST + 1];     /* counts of the last passes, [0] newest */
    uint32_t hist_aged[HIST + 1];
    uint32_t npass;              /* passes recorded in hist */
    uint32_t nlines;             /* creation lines seen (groups' distinct sites) */
    bool reported;
    uint32_t settled_count;      /* count when the last verdict was given */
    char *chain;                 /* "f (file:line) <- g (...)" of the report */
    int64_t oldest_since;        /* from the report's registry walk */
    goro_leak_suspect sus;       /* filled when reported */
} wfam;

static struct {
    pthread_mutex_t lock;
    goro_watchdog_opts opts;
    bool env_read;
    wfam *fams;
    wfam **gfam;       /* census group index -> family */
    uint32_t ngfam;    /* groups resolved */
    goro__symcache *symc;
    int64_t next_pass;
    int64_t pass_t[HIST + 1]; /* when the last passes ran, [0] newest */
    int64_t last_cost;
    _Atomic uint64_t reports;
} wd = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int64_t opt_period(void) { return wd.opts.period ? wd.opts.period : 500 * GORO_MILLISECOND; }
static int opt_windows(void) { return wd.opts.windows ? wd.opts.windows : 3; }
static int64_t opt_min_age(void) { return wd.opts.min_age ? wd.opts.min_age : 2 * GORO_SECOND; }
static size_t opt_min_count(void) { return wd.opts.min_count ? wd.opts.min_count : 10; }
static int64_t opt_confirm_interval(void)
{
    return wd.opts.confirm_interval ? wd.opts.confirm_interval : 10 * GORO_SECOND;
}

static void set_census_locked(void)
{
    goro__census_enable(!wd.opts.disabled);
}

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
    if (v && atoll(v) > 0 && !wd.opts.min_age && atoll(v) * GORO_MILLISECOND <= GORO_WATCHDOG_MAX_MIN_AGE)
        wd.opts.min_age = atoll(v) * GORO_MILLISECOND;
    v = getenv("GORO_WATCHDOG_CONFIRM");
    if (v && (!strcmp(v, "0") || !strcmp(v, "off")))
        wd.opts.no_confirm = true;
    set_census_locked();
}

int goro_watchdog_configure(const goro_watchdog_opts *o)
{
    goro_watchdog_opts def = {0};
    if (!o)
        o = &def;
    if (o->period < 0 || o->windows < 0 || o->windows > MAXW || o->min_age < 0 ||
        o->min_age > GORO_WATCHDOG_MAX_MIN_AGE ||
        (o->confirm_interval && o->confirm_interval < 100 * GORO_MILLISECOND))
        return -EINVAL;
    pthread_mutex_lock(&wd.lock);
    wd.env_read = true; /* explicit configuration wins over the environment */
    wd.opts = *o;
    wd.next_pass = 0;
    /* The rules judge history made under the new settings only. */
    for (wfam *f = wd.fams; f; f = f->next) {
        memset(f->hist, 0, sizeof f->hist);
        memset(f->hist_aged, 0, sizeof f->hist_aged);
        f->npass = 0;
    }
    memset(wd.pass_t, 0, sizeof wd.pass_t);
    set_census_locked();
    pthread_mutex_unlock(&wd.lock);
    return 0;
}

uint64_t goro_watchdog_reports_total(void) { return atomic_load(&wd.reports); }

bool goro__watchdog_enabled(void)
{
    pthread_mutex_lock(&wd.lock);
    read_env_locked();
    bool on = !wd.opts.disabled;
    pthread_mutex_unlock(&wd.lock);
    return on;
}

static bool is_goro_func(const char *f) { return !strncmp(f, "goro_", 5); }

/* Does gpeek p belong to census group k? */
static bool member_of(const goro__gpeek *p, const goro__census_key *k)
{
    uintptr_t site = p->info.npc ? p->info.pc[0] : (uintptr_t)p->info.fn;
    return !p->newborn && p->state == GORO__G_WAITING && !p->timed && site == k->site &&
           p->wait_pc == k->wait_pc && p->wait_reason == k->reason;
}

/* The report's registry walk (outside the timed pass): the members of
 * group k now, their stack bytes, the oldest wait and that member's slot. */
typedef struct walk_res {
    size_t n;
    uint64_t stack_bytes;
    int64_t oldest_since;
    uint32_t slot;
    uint64_t id;
} walk_res;

static void walk_group(const goro__census_key *k, walk_res *r)
{
    memset(r, 0, sizeof *r);
    r->oldest_since = INT64_MAX;
    uint32_t lim = goro__reg_limit();
    for (uint32_t i = 0; i < lim; i++) {
        goro__gpeek p;
        if (!goro__gpeek_take(i, &p) || !member_of(&p, k))
            continue;
        r->n++;
        r->stack_bytes += p.stack_bytes;
        if (p.wait_since && p.wait_since < r->oldest_since) {
            r->oldest_since = p.wait_since;
            r->slot = i;
            r->id = p.id;
        }
    }
}

/* The wait site is the return address saved in the public blocking call's
 * frame. When that lands in goro's own code, the caller's frame is gone: a
 * function that ended in a tail call to the blocking call (-O2 without
 * -fno-optimize-sibling-calls) returns straight into goro's goroutine
 * entry, or into goro_once_do. Then walk a member's stack past goro's
 * frames to the first of the user's, or, when there is none, name the
 * goroutine's own function (the one that made the tail call). Runs only
 * when a suspect is reported (symbolization is not in the timed pass). */
static void user_wait_site(const goro__census_key *k, const walk_res *wr, goro__symcache *c,
                           goro_frame *out)
{
    goro__frame_of(c, k->wait_pc, false, out);
    if (!is_goro_func(out->func) || !wr->n)
        return;
    goro__gsnap *snap = malloc(sizeof *snap);
    if (!snap)
        return;
    if (goro__gsnap_take(wr->slot, snap) && snap->id == wr->id) {
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
    } else if (k->fn) {
        goro__frame_of(c, (uintptr_t)k->fn, true, out);
    }
    free(snap);
}

/* Symbolize a new suspect and build its line (wd.lock held; sysmon). */
static void describe(wfam *f, int64_t now, double growth)
{
    goro_leak_suspect *s = &f->sus;
    goro__symcache *c = wd.symc;
    goro__census_key k;
    goro__census_key_of(f->top, &k);
    walk_res wr;
    walk_group(&k, &wr);
    f->oldest_since = wr.oldest_since;
    s->reason = goro__wait_reason_str(f->reason);
    s->hint = goro__leak_hint(f->reason, false, 0);
    user_wait_site(&k, &wr, c, &s->wait_site);
    s->stack_bytes = wr.stack_bytes;
    s->ncreated = 0;
    for (uint16_t i = 0; i < k.npc && i < 8; i++) {
        goro_frame fr;
        goro__frame_of(c, k.pc[i], false, &fr);
        if (!strncmp(fr.func, "goro__", 6))
            break;
        s->created[s->ncreated++] = fr;
    }
    if (k.file) {
        if (!s->ncreated)
            s->ncreated = 1;
        s->created[0].file = k.file;
        s->created[0].line = k.line;
        if (k.func)
            s->created[0].func = k.func;
    }
    if (!s->ncreated && k.fn) { /* no creation stack: name the goroutine function */
        goro__frame_of(c, (uintptr_t)k.fn, true, &s->created[0]);
        s->ncreated = 1;
    }
    s->first_reported = now;
    if (wr.n && wr.oldest_since != INT64_MAX && now - wr.oldest_since > s->oldest_wait_ns)
        s->oldest_wait_ns = now - wr.oldest_since;
    char chain[1024], oldest[32], lines[64] = "";
    size_t n = 0;
    chain[0] = 0;
    for (size_t i = 0; i < s->ncreated && n < sizeof chain; i++)
        n += (size_t)snprintf(chain + n, sizeof chain - n, "%s%s (%s:%d)", i ? " <- " : "",
                              s->created[i].func, goro__short_file(s->created[i].file),
                              s->created[i].line);
    free(f->chain);
    f->chain = strdup(s->ncreated ? chain : "?");
    s->state = goro__leakscan_supported(NULL) ? GORO_LEAK_SUSPECTED : GORO_LEAK_UNVERIFIED;
    if (f->nlines > 1)
        snprintf(lines, sizeof lines, " (and %u other creation site%s in %s)", f->nlines - 1,
                 f->nlines > 2 ? "s" : "", f->func);
    goro__fmt_duration(oldest, sizeof oldest, s->oldest_wait_ns);
    char *msg = NULL;
    if (asprintf(&msg,
                 "goro: possible goroutine leak: %zu goroutines created at %s%s blocked in %s "
                 "at %s:%d (in %s), growing %.0f/s, oldest %s, stacks %.1f MiB%s%s",
                 s->count, s->ncreated ? chain : "?", lines, s->reason,
                 goro__short_file(s->wait_site.file), s->wait_site.line, s->wait_site.func,
                 growth, oldest, (double)s->stack_bytes / (1 << 20), s->hint ? "; hint: " : "",
                 s->hint ? s->hint : "") < 0)
        msg = NULL;
    s->message = msg;
}

/* Locked. The family of census group idx (created on first sight). */
static wfam *family_of(uint32_t idx)
{
    goro__census_key k;
    goro__census_key_of(idx, &k);
    char buf[256], fbuf[512];
    const char *name = k.func, *file = k.file;
    if (!name) {
        if (!wd.symc && !(wd.symc = goro__symcache_new()))
            return NULL;
        goro_frame fr;
        uintptr_t pc = k.npc ? k.pc[0] : (uintptr_t)k.fn;
        goro__frame_of(wd.symc, pc, !k.npc, &fr);
        snprintf(buf, sizeof buf, "%s", fr.func ? fr.func : "?");
        snprintf(fbuf, sizeof fbuf, "%s", fr.file ? fr.file : "");
        name = buf;
        file = fbuf;
    }
    if (!file)
        file = "";
    wfam *f;
    for (f = wd.fams; f; f = f->next)
        if (f->reason == k.reason && !strcmp(f->func, name) && !strcmp(f->file, file))
            break;
    if (!f) {
        f = calloc(1, sizeof *f);
        if (!f || !(f->func = strdup(name)) || !(f->file = strdup(file))) {
            if (f)
                free(f->func);
            free(f);
            return NULL;
        }
        f->reason = k.reason;
        f->next = wd.fams;
        wd.fams = f;
    }
    /* A new creation site of the family? (Sites of the groups resolved so
     * far; the number of groups is small.) */
    bool seen = false;
    for (uint32_t j = 1; j < idx && !seen; j++) {
        if (wd.gfam[j] != f)
            continue;
        goro__census_key o;
        goro__census_key_of(j, &o);
        seen = o.site == k.site;
    }
    if (!seen)
        f->nlines++;
    return f;
}

/* Locked. Resolve the census groups created since the last pass. */
static void resolve_groups(void)
{
    uint32_t n = goro__census_ngroups();
    if (n <= wd.ngfam)
        return;
    wfam **ng = realloc(wd.gfam, (n + 1) * sizeof *ng);
    if (!ng)
        return;
    wd.gfam = ng;
    for (uint32_t i = wd.ngfam + 1; i <= n; i++) {
        wd.gfam[i] = NULL;
        wd.gfam[i] = family_of(i);
        wd.ngfam = i;
    }
}

static bool fast_rule(const wfam *f, int W)
{
    if (f->npass <= (uint32_t)W || f->count < opt_min_count())
        return false;
    for (int w = 0; w < W; w++)
        if (f->hist[w] <= f->hist[w + 1])
            return false;
    return f->hist_aged[0] > f->hist_aged[W];
}

static bool slow_rule(const wfam *f, int64_t period)
{
    uint32_t span = (uint32_t)(SLOW_SPAN / period);
    if (span < SLOW_STEPS + 1)
        span = SLOW_STEPS + 1;
    if (span > HIST)
        span = HIST;
    if (f->npass <= span)
        return false;
    uint32_t steps = 0;
    for (uint32_t w = 0; w < span; w++) {
        if (f->hist[w] < f->hist[w + 1])
            return false;
        steps += f->hist[w] > f->hist[w + 1];
    }
    return steps >= SLOW_STEPS && f->hist[0] - f->hist[span] >= SLOW_STEPS &&
           f->hist_aged[0] > f->hist_aged[span];
}

/* Locked. Read the census into the families (the timed part). */
static void count(int64_t now)
{
    int64_t min_age = opt_min_age();
    for (wfam *f = wd.fams; f; f = f->next) {
        f->count = f->aged = 0;
        f->oldest_lb = 0;
        f->top = 0;
        f->top_count = 0;
    }
    uint32_t by_slot[GORO__CENSUS_RING];
    int64_t age[GORO__CENSUS_RING];
    for (uint32_t s = 0; s < GORO__CENSUS_RING; s++)
        age[s] = goro__census_slot_age(s, now);
    for (uint32_t i = 1; i <= wd.ngfam; i++) {
        wfam *f = wd.gfam[i];
        if (!f)
            continue;
        uint64_t n = goro__census_read(i, by_slot);
        if (!n)
            continue;
        f->count += (uint32_t)n;
        for (uint32_t s = 0; s < GORO__CENSUS_RING; s++) {
            if (!by_slot[s])
                continue;
            if (age[s] >= min_age)
                f->aged += by_slot[s];
            if (age[s] > f->oldest_lb)
                f->oldest_lb = age[s];
        }
        if (n > f->top_count) {
            f->top_count = (uint32_t)n;
            f->top = i;
        }
    }
}

/* Locked. Does f wait for a scan's verdict? */
static bool wants_verdict(const wfam *f, int64_t now)
{
    if (!f->reported)
        return false;
    if (!f->count)
        return false; /* no members now (a suspect of an earlier run) */
    if (f->sus.state == GORO_LEAK_SUSPECTED)
        return true;
    return f->sus.state == GORO_LEAK_REACHABLE && f->count > f->settled_count &&
           now - f->sus.settled_at >= RECHECK;
}

/* Pass's result: whether to ask for a scan, and the interval. */
static bool want_scan;

static void pass(int64_t now)
{
    pthread_mutex_lock(&wd.lock);
    resolve_groups();
    int64_t t0 = goro__nanotime();
    count(now);
    wd.last_cost = goro__nanotime() - t0;

    /* Windows, suspects, reports. */
    int W = opt_windows();
    int64_t period = opt_period();
    memmove(&wd.pass_t[1], &wd.pass_t[0], HIST * sizeof wd.pass_t[0]);
    wd.pass_t[0] = now;
    /* Growth over the last W passes, in real time (sysmon may wake later
     * than the period when the process is idle). */
    double span_s = wd.pass_t[W] ? (double)(now - wd.pass_t[W]) / GORO_SECOND : 0;
    for (wfam *f = wd.fams; f; f = f->next) {
        memmove(&f->hist[1], &f->hist[0], HIST * sizeof f->hist[0]);
        memmove(&f->hist_aged[1], &f->hist_aged[0], HIST * sizeof f->hist_aged[0]);
        f->hist[0] = f->count;
        f->hist_aged[0] = f->aged;
        if (f->npass <= HIST)
            f->npass++;
        double growth = f->npass > (uint32_t)W && span_s > 0
                            ? ((double)f->hist[0] - (double)f->hist[W]) / span_s
                            : 0;
        int64_t oldest = f->oldest_lb;
        if (f->count && f->oldest_since != INT64_MAX && f->oldest_since &&
            now - f->oldest_since > oldest)
            oldest = now - f->oldest_since;
        if (f->reported) {
            f->sus.count = f->count;
            f->sus.oldest_wait_ns = f->count ? oldest : 0;
            if (f->count)
                f->sus.growth_per_sec = growth;
            continue;
        }
        if (!f->count || !f->aged || !f->top || (!fast_rule(f, W) && !slow_rule(f, period)))
            continue;
        if (!wd.symc && !(wd.symc = goro__symcache_new()))
            continue;
        f->reported = true;
        f->sus.count = f->count;
        f->sus.oldest_wait_ns = oldest;
        f->sus.growth_per_sec = growth;
        describe(f, now, growth);
        atomic_fetch_add(&wd.reports, 1);
        if (wd.opts.on_suspect)
            wd.opts.on_suspect(&f->sus, wd.opts.arg);
        else if (f->sus.message)
            fprintf(stderr, "%s\n", f->sus.message);
    }
    want_scan = false;
    if (!wd.opts.no_confirm && goro__leakscan_supported(NULL))
        for (wfam *f = wd.fams; f && !want_scan; f = f->next)
            want_scan = wants_verdict(f, now);
    pthread_mutex_unlock(&wd.lock);
}

void goro__watchdog_start(void)
{
    goro__confirm_allow();
    pthread_mutex_lock(&wd.lock);
    read_env_locked();
    set_census_locked();
    pthread_mutex_unlock(&wd.lock);
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
    pass(now);
    pthread_mutex_lock(&wd.lock);
    /* Keep the counting under ~2% of one CPU (reports are not timed). */
    wd.next_pass = now + (wd.last_cost * 50 > period ? wd.last_cost * 50 : period);
    bool kick = want_scan;
    int64_t interval = opt_confirm_interval();
    pthread_mutex_unlock(&wd.lock);
    if (kick)
        goro__confirm_kick(interval);
}

/* ---- the second tier: a scan's verdict ----------------------------------- */

typedef struct pending {
    wfam *f;
    size_t judged, leaked;
    uint64_t retained;      /* heap only the leaked members reach */
    uintptr_t chan_made_at; /* a leaked member's channel, if any */
    uint32_t chan_cap;
} pending;

typedef struct pkey {
    uint32_t p; /* index into the pending families */
    goro__census_key k;
} pkey;

/* The scan's record of leaked goroutine id, or NULL. */
static const goro__scan_leak *leak_info(const goro__scan_result *r, uint64_t id)
{
    size_t lo = 0, hi = r->nleaked;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->info[mid].id == id)
            return &r->info[mid];
        if (r->info[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Locked. Build f's verdict line and tell the user. */
static void announce(wfam *f, const goro__scan_result *r)
{
    goro_leak_suspect *s = &f->sus;
    char pause[32], total[32], hb[32], chan[512] = "";
    goro__fmt_duration(pause, sizeof pause, r->pause_ns);
    goro__fmt_duration(total, sizeof total, r->total_ns);
    goro__fmt_bytes(hb, sizeof hb, s->retained_bytes);
    if (s->on_chan)
        snprintf(chan, sizeof chan, "; on channels made at %s (%s:%d), capacity %zu",
                 s->chan_made.func, goro__short_file(s->chan_made.file), s->chan_made.line,
                 s->chan_cap);
    char *msg = NULL;
    int rc;
    if (s->state == GORO_LEAK_CONFIRMED)
        rc = asprintf(&msg,
                      "goro: confirmed goroutine leak: %zu of %zu goroutines created at %s "
                      "blocked in %s at %s:%d (in %s) are unreachable: nothing can wake them; "
                      "heap only they reach %s%s%s%s (reachability scan: %s, world stopped %s)",
                      s->unreachable, s->judged, f->chain ? f->chain : "?", s->reason,
                      goro__short_file(s->wait_site.file), s->wait_site.line,
                      s->wait_site.func, hb, chan, s->hint ? "; hint: " : "",
                      s->hint ? s->hint : "", total, pause);
    else
        rc = asprintf(&msg,
                      "goro: leak suspect still reachable: the %zu goroutines created at %s "
                      "blocked in %s at %s:%d (in %s) wait on objects that live memory still "
                      "reaches (reachability scan: %s, world stopped %s); watching",
                      s->judged, f->chain ? f->chain : "?", s->reason,
                      goro__short_file(s->wait_site.file), s->wait_site.line,
                      s->wait_site.func, total, pause);
    free((void *)s->verdict);
    s->verdict = rc < 0 ? NULL : msg;
    if (wd.opts.on_verdict)
        wd.opts.on_verdict(s, wd.opts.arg);
    else if (!wd.opts.on_suspect && s->verdict)
        fprintf(stderr, "%s\n", s->verdict);
}

void goro__watchdog_settle(int rc, const goro__scan_result *r, int64_t t_start)
{
    if (rc != 0 || r->incomplete)
        return; /* no verdict: the next pass asks again */
    /* The waiting families and the keys of their groups. */
    pthread_mutex_lock(&wd.lock);
    size_t np = 0, nk = 0;
    for (wfam *f = wd.fams; f; f = f->next)
        np += wants_verdict(f, t_start);
    for (uint32_t i = 1; i <= wd.ngfam; i++)
        nk += wd.gfam[i] && wants_verdict(wd.gfam[i], t_start);
    pending *pv = np ? calloc(np, sizeof *pv) : NULL;
    pkey *kv = nk ? calloc(nk, sizeof *kv) : NULL;
    if (!pv || !kv) {
        pthread_mutex_unlock(&wd.lock);
        free(pv);
        free(kv);
        return;
    }
    np = 0;
    for (wfam *f = wd.fams; f; f = f->next)
        if (wants_verdict(f, t_start))
            pv[np++].f = f;
    nk = 0;
    for (uint32_t i = 1; i <= wd.ngfam; i++) {
        if (!wd.gfam[i] || !wants_verdict(wd.gfam[i], t_start))
            continue;
        for (uint32_t j = 0; j < np; j++)
            if (pv[j].f == wd.gfam[i])
                kv[nk].p = j;
        goro__census_key_of(i, &kv[nk++].k);
    }
    pthread_mutex_unlock(&wd.lock);

    /* One registry walk: members parked before the scan began (minus the
     * park stamp's coarseness) and still parked were judged by it. */
    uint32_t lim = goro__reg_limit();
    for (uint32_t i = 0; i < lim; i++) {
        goro__gpeek p;
        if (!goro__gpeek_take(i, &p) || !p.wait_since || p.wait_since > t_start - SETTLE_MARGIN)
            continue;
        for (size_t k = 0; k < nk; k++)
            if (member_of(&p, &kv[k].k)) {
                pending *pp = &pv[kv[k].p];
                const goro__scan_leak *li = leak_info(r, p.id);
                pp->judged++;
                if (li) {
                    pp->leaked++;
                    pp->retained += li->retained;
                    if (li->chan_made_at && !pp->chan_made_at) {
                        pp->chan_made_at = li->chan_made_at;
                        pp->chan_cap = li->chan_cap;
                    }
                }
                break;
            }
    }

    pthread_mutex_lock(&wd.lock);
    for (size_t j = 0; j < np; j++) {
        wfam *f = pv[j].f;
        if (!f->reported || !pv[j].judged)
            continue;
        goro_leak_state st = pv[j].leaked ? GORO_LEAK_CONFIRMED : GORO_LEAK_REACHABLE;
        bool news = st != f->sus.state;
        f->sus.state = st;
        f->sus.judged = pv[j].judged;
        f->sus.unreachable = pv[j].leaked;
        f->sus.retained_bytes = pv[j].retained;
        if (pv[j].chan_made_at) {
            if (!wd.symc)
                wd.symc = goro__symcache_new();
            if (wd.symc) {
                goro__frame_of(wd.symc, pv[j].chan_made_at, false, &f->sus.chan_made);
                f->sus.on_chan = true;
                f->sus.chan_cap = pv[j].chan_cap;
                f->sus.hint = goro__leak_hint(f->reason, true, pv[j].chan_cap);
            }
        }
        f->sus.settled_at = t_start;
        f->settled_count = f->count;
        if (news)
            announce(f, r);
    }
    pthread_mutex_unlock(&wd.lock);
    free(pv);
    free(kv);
}

void goro__watchdog_stop(void) { goro__confirm_stop(); }

const char *goro__leak_state_str(unsigned state)
{
    static const char *const names[] = {"suspected", "confirmed", "reachable", "unverified"};
    return state < 4 ? names[state] : "?";
}

/* Forget the families of a finished run (the goroutines are gone; the
 * census is reset next). Suspects already reported stay listed. */
void goro__watchdog_reset(void)
{
    pthread_mutex_lock(&wd.lock);
    for (wfam **pp = &wd.fams, *f; (f = *pp);) {
        if (f->reported) {
            f->count = 0;
            f->sus.count = 0;
            memset(f->hist, 0, sizeof f->hist);
            memset(f->hist_aged, 0, sizeof f->hist_aged);
            f->npass = 0;
            f->nlines = 0;
            pp = &f->next;
            continue;
        }
        *pp = f->next;
        free(f->func);
        free(f->file);
        free(f->chain);
        free(f);
    }
    free(wd.gfam);
    wd.gfam = NULL;
    memset(wd.pass_t, 0, sizeof wd.pass_t);
    wd.ngfam = 0;
    goro__symcache_free(wd.symc);
    wd.symc = NULL;
    wd.next_pass = 0;
    pthread_mutex_unlock(&wd.lock);
}

int goro_watchdog_suspects(goro_leak_suspect **out, size_t *n)
{
    if (!out || !n)
        return -EINVAL;
    pthread_mutex_lock(&wd.lock);
    size_t k = 0;
    for (wfam *f = wd.fams; f; f = f->next)
        k += f->reported;
    goro_leak_suspect *v = k ? calloc(k, sizeof *v) : NULL;
    if (k && !v) {
        pthread_mutex_unlock(&wd.lock);
        return -ENOMEM;
    }
    size_t j = 0;
    for (wfam *f = wd.fams; f; f = f->next)
        if (f->reported) {
            v[j] = f->sus;
            v[j].message = f->sus.message ? strdup(f->sus.message) : NULL;
            v[j].verdict = f->sus.verdict ? strdup(f->sus.verdict) : NULL;
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
    for (size_t i = 0; i < n; i++) {
        free((void *)s[i].message);
        free((void *)s[i].verdict);
    }
    free(s);
}
