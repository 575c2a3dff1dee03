/*
 * loadgen.c - the demo's load generator and monitor, built on goro's own
 * net API (so `make demo` needs no wrk).
 *
 * Load: --conns keep-alive connections, each a goroutine sending
 * "GET --path" and reading the answer, paced so that all of them together
 * offer --rate requests per second (open-loop schedule per connection: a
 * connection that falls behind sends at once, but never more than one
 * second of backlog). --rate 0 sends nothing (monitor only, e.g. while wrk
 * drives the load); --rate -1 sends as fast as the server answers.
 * --requests N stops the load after N answers (whichever of it and
 * --duration comes first).
 *
 * Monitor (--monitor): once per second one more connection reads the
 * target's /stats, /metrics and, when goro_leak_suspects becomes non-zero,
 * /debug/goro/leaks?format=json, and prints a line: requests/s served,
 * resident memory, goroutines total and parked, and the watchdog's report
 * as it appears. --rss-cap stops the run early when the target grows past
 * the bound; --csv writes the time series. At the end one "summary" line
 * (key=value) is printed for scripts.
 *
 * Exit status: 0 the run finished (also when stopped by --rss-cap);
 * 1 the target could not be reached; 2 usage.
 *
 * Locking: the counters are atomics; everything else belongs to one
 * goroutine.
 */
#define _GNU_SOURCE
#include <goro.h>
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *target;          /* host:port */
static const char *path = "/work";
static int conns = 8;
static double rate = 2000;          /* requests/s offered in total */
static double duration = 20;        /* seconds */
static bool monitor;
static int64_t rss_cap = (int64_t)1 << 30;
static const char *csv_path;
static const char *label = "run";
static pid_t target_pid;            /* RSS fallback when /metrics has none */
static uint64_t max_requests;       /* 0: no limit; else stop after this many answers */

static _Atomic uint64_t sent_ok, sent_err;
static _Atomic bool stopping;
static goro_ctx *run_ctx;           /* cancelled to stop every client */
static int exit_code;

/* ---- a minimal keep-alive HTTP/1.1 client --------------------------------- */

typedef struct client {
    goro_conn *c;
    char *buf;
    size_t cap, len; /* bytes in buf */
} client;

static void client_close(client *cl)
{
    if (cl->c)
        goro_conn_close(cl->c);
    cl->c = NULL;
    cl->len = 0;
}

static int ensure(client *cl, size_t need)
{
    if (need <= cl->cap)
        return 0;
    size_t n = cl->cap ? cl->cap : 4096;
    while (n < need)
        n *= 2;
    char *b = realloc(cl->buf, n);
    if (!b)
        return -ENOMEM;
    cl->buf = b;
    cl->cap = n;
    return 0;
}

/* GET p; on success *body points into cl->buf (NUL-terminated), *status is
 * the HTTP status. Returns 0 or -errno. */
static int http_get(client *cl, const char *p, int *status, char **body, size_t *body_len)
{
    int64_t dl = goro_deadline_after(10 * GORO_SECOND);
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!cl->c) {
            int rc = goro_dial_tcp(target, &cl->c, dl, run_ctx);
            if (rc)
                return rc;
        }
        char req[512];
        int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: goro-loadgen\r\n\r\n",
                         p, target);
        ssize_t w = goro_conn_write(cl->c, req, (size_t)n, dl, run_ctx);
        if (w < 0) {
            client_close(cl);
            if (w == -ECANCELED)
                return (int)w;
            continue; /* the server closed a kept-alive connection: redial once */
        }
        cl->len = 0;
        size_t head_end = 0;
        int64_t clen = -1;
        for (;;) {
            if (head_end && clen >= 0 && cl->len >= head_end + (size_t)clen)
                break;
            if (ensure(cl, cl->len + 4096 + 1))
                return -ENOMEM;
            ssize_t r = goro_conn_read(cl->c, cl->buf + cl->len, cl->cap - cl->len - 1, dl, run_ctx);
            if (r <= 0) {
                client_close(cl);
                return r == 0 ? -ECONNRESET : (int)r;
            }
            cl->len += (size_t)r;
            cl->buf[cl->len] = 0;
            if (!head_end) {
                char *e = strstr(cl->buf, "\r\n\r\n");
                if (!e)
                    continue;
                head_end = (size_t)(e - cl->buf) + 4;
                if (sscanf(cl->buf, "HTTP/1.%*d %d", status) != 1) {
                    client_close(cl);
                    return -EPROTO;
                }
                /* Our servers answer with Content-Length; anything else is
                 * read until close. */
                char *h = strcasestr(cl->buf, "\r\nContent-Length:");
                if (h && h < e)
                    clen = strtoll(h + 17, NULL, 10);
                else
                    clen = -1;
            }
            if (head_end && clen < 0)
                continue; /* until the peer closes (r == 0 above ends it) */
        }
        *body = cl->buf + head_end;
        *body_len = (size_t)clen;
        (*body)[clen] = 0;
        return 0;
    }
    return -ECONNRESET;
}

/* ---- load ------------------------------------------------------------------- */

static goro_waitgroup load_wg = GORO_WAITGROUP_INIT;

static void load_conn(void *arg)
{
    int k = (int)(intptr_t)arg;
    client cl = {0};
    double interval = rate > 0 ? (double)conns / rate : 0; /* seconds per request, per conn */
    int64_t start = goro_now() + (int64_t)(interval * 1e9 * k / conns); /* spread the phases */
    int64_t end = goro_now() + (int64_t)(duration * 1e9);
    uint64_t i = 0;
    while (!atomic_load(&stopping) && goro_now() < end &&
           (!max_requests || atomic_load_explicit(&sent_ok, memory_order_relaxed) < max_requests)) {
        if (interval > 0) {
            int64_t next = start + (int64_t)(interval * 1e9 * (double)i);
            int64_t now = goro_now();
            if (next < now - GORO_SECOND) { /* far behind: drop the backlog */
                i = (uint64_t)((double)(now - start) / (interval * 1e9));
                next = now;
            }
            if (next > now && goro_sleep_until(next) != 0)
                break;
        }
        i++;
        int status;
        char *body;
        size_t blen;
        int rc = http_get(&cl, path, &status, &body, &blen);
        if (rc == -ECANCELED)
            break;
        if (rc == 0 && status == 200) {
            uint64_t done = atomic_fetch_add_explicit(&sent_ok, 1, memory_order_relaxed) + 1;
            if (max_requests && done >= max_requests) {
                atomic_store(&stopping, true);
                break;
            }
        } else {
            atomic_fetch_add_explicit(&sent_err, 1, memory_order_relaxed);
            if (rc)
                goro_sleep(10 * GORO_MILLISECOND); /* not a hot loop against a dead server */
        }
    }
    client_close(&cl);
    free(cl.buf);
    goro_waitgroup_done(&load_wg);
}

/* ---- monitor ---------------------------------------------------------------- */

typedef struct sample {
    bool have_stats, have_metrics;
    double requests;      /* served so far (/stats "requests N") */
    double rss;           /* bytes */
    double goroutines;
    double parked;        /* waiting on channels, select and sync (not I/O, sleep) */
    double suspects;
} sample;

static double metric_value(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; p && *p;) {
        if (!strncmp(p, name, n) && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return -1;
}

/* Sum of goro_goroutines{state="waiting",reason=R} over the reasons that are
 * goro primitives. */
static double parked_value(const char *text)
{
    static const char *const reasons[] = {"chan send", "chan receive", "select", "select (no cases)",
                                          "chan send (nil chan)", "chan receive (nil chan)",
                                          "sync.Mutex.Lock", "sync.RWMutex.Lock", "sync.RWMutex.RLock",
                                          "sync.WaitGroup.Wait", "sync.Cond.Wait", "sync.Once.Do"};
    double sum = 0;
    char name[128];
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++) {
        snprintf(name, sizeof name, "goro_goroutines{state=\"waiting\",reason=\"%s\"}", reasons[i]);
        double v = metric_value(text, name);
        if (v > 0)
            sum += v;
    }
    return sum;
}

/* Sum of goro_leak_suspects{state=S} over the states (-1: not exported). */
static double suspects_value(const char *text)
{
    static const char *const states[] = {"suspected", "confirmed", "reachable", "unverified"};
    double sum = -1;
    char name[64];
    for (size_t i = 0; i < sizeof states / sizeof states[0]; i++) {
        snprintf(name, sizeof name, "goro_leak_suspects{state=\"%s\"}", states[i]);
        double v = metric_value(text, name);
        if (v >= 0)
            sum = (sum < 0 ? 0 : sum) + v;
    }
    return sum;
}

static double proc_rss(void)
{
    if (!target_pid)
        return -1;
    char p[64], line[256];
    snprintf(p, sizeof p, "/proc/%d/status", (int)target_pid);
    FILE *f = fopen(p, "r");
    if (!f)
        return -1;
    double v = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6))
            v = strtod(line + 6, NULL) * 1024;
    fclose(f);
    return v;
}

static void take_sample(client *cl, sample *s)
{
    memset(s, 0, sizeof *s);
    s->rss = s->goroutines = s->parked = s->suspects = -1;
    int status;
    char *body;
    size_t blen;
    if (http_get(cl, "/stats", &status, &body, &blen) == 0 && status == 200) {
        char *r = strstr(body, "requests ");
        if (r) {
            s->requests = strtod(r + 9, NULL);
            s->have_stats = true;
        }
    }
    if (http_get(cl, "/metrics", &status, &body, &blen) == 0 && status == 200) {
        s->have_metrics = true;
        s->rss = metric_value(body, "process_resident_memory_bytes");
        s->goroutines = metric_value(body, "go_goroutines");
        s->parked = parked_value(body);
        s->suspects = suspects_value(body);
    }
    if (s->rss < 0)
        s->rss = proc_rss();
}

/* The first suspect's one-line message and how long ago it was reported. */
static bool fetch_suspect(client *cl, char *msg, size_t len, double *ago)
{
    int status;
    char *body;
    size_t blen;
    if (http_get(cl, "/debug/goro/leaks?format=json", &status, &body, &blen) || status != 200)
        return false;
    char *a = strstr(body, "\"reported_seconds_ago\":");
    char *m = strstr(body, "\"message\":\"");
    if (!a || !m)
        return false;
    *ago = strtod(a + 23, NULL);
    m += 11;
    size_t o = 0;
    for (; *m && *m != '"' && o + 1 < len; m++) {
        if (*m == '\\' && m[1])
            m++;
        msg[o++] = *m;
    }
    msg[o] = 0;
    return true;
}

static void monitor_run(FILE *csv, int64_t t0)
{
    client cl = {0};
    sample first, prev, cur;
    take_sample(&cl, &first);
    if (!first.have_stats && !first.have_metrics && first.rss < 0) {
        fprintf(stderr, "loadgen: cannot read http://%s/stats or /metrics\n", target);
        exit_code = 1;
        atomic_store(&stopping, true);
        goro_ctx_cancel(run_ctx);
        client_close(&cl);
        free(cl.buf);
        return;
    }
    prev = cur = first;
    if (csv) /* the baseline, before any load */
        fprintf(csv, "%s,0.000,0,%.0f,%.0f,%.0f,%.0f\n", label, first.rss, first.goroutines, first.parked,
                first.suspects);
    double detect = -1, peak_rate = 0;
    char msg[1024] = "";
    const char *stop_reason = "duration";
    int64_t prev_t = t0;
    printf("%6s  %9s  %10s  %11s  %9s  %s\n", "time", "req/s", "resident", "goroutines", "parked",
           "watchdog");
    fflush(stdout);
    for (int sec = 1;; sec++) {
        int64_t at = t0 + (int64_t)sec * GORO_SECOND;
        if (goro_sleep_until(at) != 0)
            break;
        take_sample(&cl, &cur);
        int64_t now = goro_now();
        double t = (double)(now - t0) / 1e9;
        double rps = cur.have_stats ? (cur.requests - prev.requests) / ((double)(now - prev_t) / 1e9)
                                    : -1;
        if (rps > peak_rate)
            peak_rate = rps;
        char note[1100] = "";
        if (cur.suspects > 0 && detect < 0) {
            double ago = 0;
            if (fetch_suspect(&cl, msg, sizeof msg, &ago)) {
                detect = t - ago;
                if (detect < 0)
                    detect = 0;
                snprintf(note, sizeof note, "SUSPECT (reported at %.1fs)", detect);
            }
        } else if (cur.suspects > 0) {
            snprintf(note, sizeof note, "%.0f suspect%s", cur.suspects, cur.suspects == 1 ? "" : "s");
        } else if (cur.suspects == 0) {
            snprintf(note, sizeof note, "-");
        }
        printf("%5.1fs  %9.0f  %7.1f MB  %11.0f  %9.0f  %s\n", t, rps, cur.rss / 1048576.0,
               cur.goroutines, cur.parked, note);
        if (note[0] == 'S')
            printf("        watchdog: %s\n", msg);
        fflush(stdout);
        if (csv)
            fprintf(csv, "%s,%.3f,%.0f,%.0f,%.0f,%.0f,%.0f\n", label, t, rps, cur.rss, cur.goroutines,
                    cur.parked, cur.suspects);
        prev = cur;
        prev_t = now;
        if (rss_cap > 0 && cur.rss > (double)rss_cap) {
            stop_reason = "rss-cap";
            printf("        resident memory passed the cap (%.0f MB): stopping the load\n",
                   (double)rss_cap / 1048576.0);
            break;
        }
        if (t >= duration - 0.05)
            break;
    }
    atomic_store(&stopping, true);
    goro_ctx_cancel(run_ctx);
    double secs = (double)(goro_now() - t0) / 1e9;
    /* The last sample against the first: what the run did to the target. */
    printf("summary label=%s seconds=%.1f requests=%.0f rps=%.0f rss_start=%.0f rss_end=%.0f "
           "rss_growth_per_sec=%.0f goroutines_end=%.0f parked_end=%.0f detect_seconds=%.1f "
           "stopped=%s sent_ok=%" PRIu64 " sent_err=%" PRIu64 "\n",
           label, secs, cur.requests - first.requests,
           (cur.requests - first.requests) / ((double)(prev_t - t0) / 1e9 > 0 ? (double)(prev_t - t0) / 1e9 : 1),
           first.rss, cur.rss, (cur.rss - first.rss) / ((double)(prev_t - t0) / 1e9 > 0 ? (double)(prev_t - t0) / 1e9 : 1),
           cur.goroutines, cur.parked, detect, stop_reason, atomic_load(&sent_ok), atomic_load(&sent_err));
    if (detect >= 0)
        printf("suspect %s\n", msg);
    fflush(stdout);
    client_close(&cl);
    free(cl.buf);
}

/* ---- main ------------------------------------------------------------------- */

static void run(void *arg)
{
    (void)arg;
    goro_ctx_with_cancel(NULL, &run_ctx);
    FILE *csv = NULL;
    if (csv_path) {
        csv = fopen(csv_path, "a");
        if (!csv) {
            fprintf(stderr, "loadgen: %s: %s\n", csv_path, strerror(errno));
            exit_code = 2;
            goro_ctx_release(run_ctx);
            return;
        }
    }
    int64_t t0 = goro_now();
    if (rate != 0) {
        for (int k = 0; k < conns; k++) {
            goro_waitgroup_add(&load_wg, 1);
            goro_go(load_conn, (void *)(intptr_t)k);
        }
    }
    if (monitor)
        monitor_run(csv, t0); /* stops the clients when it ends */
    goro_waitgroup_wait(&load_wg); /* else --duration or --requests ends them */
    if (!monitor) {
        double secs = (double)(goro_now() - t0) / 1e9;
        printf("summary label=%s seconds=%.1f sent_ok=%" PRIu64 " sent_err=%" PRIu64 " rps=%.0f\n", label,
               secs, atomic_load(&sent_ok), atomic_load(&sent_err), (double)atomic_load(&sent_ok) / secs);
        if (atomic_load(&sent_ok) == 0 && rate != 0)
            exit_code = 1;
    }
    if (csv)
        fclose(csv);
    goro_ctx_release(run_ctx);
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s HOST:PORT [--path /work] [--conns N] [--rate R|0|-1] [--duration S]\n"
            "       [--requests N] [--monitor] [--rss-cap BYTES] [--csv FILE] [--label NAME] [--pid PID]\n",
            argv0);
    exit(2);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (!strcmp(a, "--monitor")) {
            monitor = true;
            continue;
        }
        if (a[0] != '-') {
            if (target)
                usage(argv[0]);
            target = a;
            continue;
        }
        if (!v)
            usage(argv[0]);
        i++;
        if (!strcmp(a, "--path"))
            path = v;
        else if (!strcmp(a, "--conns"))
            conns = (int)strtol(v, &end, 10);
        else if (!strcmp(a, "--rate"))
            rate = strtod(v, &end);
        else if (!strcmp(a, "--duration"))
            duration = strtod(v, &end);
        else if (!strcmp(a, "--rss-cap"))
            rss_cap = strtoll(v, &end, 10);
        else if (!strcmp(a, "--csv"))
            csv_path = v;
        else if (!strcmp(a, "--label"))
            label = v;
        else if (!strcmp(a, "--requests"))
            max_requests = strtoull(v, &end, 10);
        else if (!strcmp(a, "--pid"))
            target_pid = (pid_t)strtol(v, &end, 10);
        else
            usage(argv[0]);
        if (end && *end) {
            fprintf(stderr, "loadgen: bad value for %s: %s\n", a, v);
            return 2;
        }
    }
    if (!target || conns < 1 || conns > 10000 || duration <= 0 || duration > 3600 || rate < -1 ||
        (rate < 0 && rate != -1))
        usage(argv[0]);
    goro_options o = {.flags = GORO_NO_DEADLOCK_CHECK};
    if (goro_run(run, NULL, &o) != 0)
        return 1;
    return exit_code;
}
