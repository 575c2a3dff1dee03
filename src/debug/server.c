/*
 * server.c - the diagnostics endpoints over goro's own HTTP server:
 * /debug/pprof/... with net/http/pprof's paths, parameters and response rules
 * (docs/formats.md §1), /debug/goro/leaks, and /metrics.
 *
 * Rules kept from Go: every response has X-Content-Type-Options: nosniff;
 * errors are plain text with X-Go-Pprof: 1 (pprof's client looks for it);
 * debug != 0 answers text/plain, debug == 0 application/octet-stream with
 * Content-Disposition: attachment; filename="NAME" ("NAME-delta" with
 * seconds=N); seconds together with debug is a 400; an unknown profile a
 * 404 "Unknown profile"; one CPU profile at a time (500 "Could not enable
 * CPU profiling: cpu profiling already in use").
 *
 * The handlers are ordinary goroutine code: profile collection never stops
 * other goroutines (except the leak profile's short stop-the-world scan),
 * and the server is just goroutines on the public net/http API.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "debug/metrics.h"
#include "debug/watchdog.h"
#include "prof/profiles.h"
#include "runtime/sched.h"
#include "runtime/symbolize.h"

static void nosniff(goro_http_response *w)
{
    goro_http_response_set_header(w, "X-Content-Type-Options", "nosniff");
}

static void serve_error(goro_http_response *w, int status, const char *msg)
{
    goro_http_response_set_header(w, "X-Go-Pprof", "1");
    goro_http_response_set_header(w, "Content-Disposition", NULL);
    goro_http_error(w, status, msg);
}

/* ---- /debug/pprof/ ----------------------------------------------------------- */

static void append(goro__membuf *b, const char *s) { goro__sink_mem(s, strlen(s), b); }

static void serve_index(goro_http_response *w)
{
    goro__membuf b = {0};
    char line[768];
    append(&b, "<html>\n<head>\n<title>/debug/pprof/</title>\n<style>\n.profile-name{\n"
               "\tdisplay:inline-block;\n\twidth:6rem;\n}\n</style>\n</head>\n<body>\n"
               "/debug/pprof/<br>\n<br>\nTypes of profiles available:\n<table>\n"
               "<thead><td>Count</td><td>Profile</td></thead>\n");
    for (const goro__profile_desc *d = goro__profiles; d->name; d++) {
        long n = goro__profile_count(d->name);
        char count[32] = "";
        if (n >= 0)
            snprintf(count, sizeof count, "%ld", n);
        snprintf(line, sizeof line, "<tr><td>%s</td><td><a href='%s?debug=1'>%s</a></td></tr>\n",
                 count, d->name, d->name);
        append(&b, line);
    }
    append(&b, "<tr><td></td><td><a href='profile'>profile</a></td></tr>\n"
               "</table>\n<a href=\"goroutine?debug=2\">full goroutine stack dump</a>\n<br>\n"
               "<p>\nProfile Descriptions:\n<ul>\n");
    for (const goro__profile_desc *d = goro__profiles; d->name; d++) {
        snprintf(line, sizeof line, "<li><div class=profile-name>%s: </div> %s</li>\n", d->name,
                 d->doc);
        append(&b, line);
    }
    append(&b, "<li><div class=profile-name>profile: </div> CPU profile. You can specify the "
               "duration in the seconds GET parameter. After you get the profile file, use the "
               "go tool pprof command to investigate the profile.</li>\n"
               "</ul>\n</p>\n<p>goro: <a href='/debug/goro/leaks'>leak suspects</a>, "
               "<a href='/metrics'>metrics</a></p>\n</body>\n</html>\n");
    goro_http_response_send(w, 200, "text/html; charset=utf-8", b.data, b.len);
    free(b.data);
}

static void serve_cmdline(goro_http_response *w)
{
    goro__membuf b = {0};
    FILE *f = fopen("/proc/self/cmdline", "r");
    char chunk[1024];
    size_t n;
    while (f && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        goro__sink_mem(chunk, n, &b);
    if (f)
        fclose(f);
    if (b.len && b.data[b.len - 1] == 0)
        b.len--; /* Go joins os.Args with NUL: no trailing NUL */
    goro_http_response_send(w, 200, "text/plain; charset=utf-8", b.data, b.len);
    free(b.data);
}

/* "0x1234+0x5678": the name of each known pc. */
static void serve_symbol(goro_http_response *w, goro_http_request *r)
{
    /* Heap buffers: handlers run on goroutine stacks (64 KiB by default). */
    enum { MAX = 1 << 20 };
    char *body = malloc(MAX);
    if (!body) {
        serve_error(w, 500, "out of memory");
        return;
    }
    size_t n = 0;
    if (!strcmp(goro_http_request_method(r), "POST")) {
        ssize_t k;
        while (n < MAX - 1 && (k = goro_http_request_read(r, body + n, MAX - 1 - n)) > 0)
            n += (size_t)k;
    } else {
        const char *q = goro_http_request_query(r);
        n = strnlen(q, MAX - 1);
        memcpy(body, q, n);
    }
    body[n] = 0;
    goro__membuf b = {0};
    append(&b, "num_symbols: 1\n");
    for (char *p = body; *p;) {
        char *end;
        unsigned long long pc = strtoull(p, &end, 0);
        if (end == p)
            break;
        goro__sym s;
        goro__symbolize((uintptr_t)pc, &s);
        const char *fn = s.frames[s.nframes - 1].func;
        if (fn) {
            char line[1024];
            snprintf(line, sizeof line, "%#llx %s\n", pc, fn);
            append(&b, line);
        }
        p = end;
        while (*p == '+' || *p == ' ')
            p++;
    }
    goro_http_response_send(w, 200, "text/plain; charset=utf-8", b.data, b.len);
    free(b.data);
    free(body);
}

/* Integer query parameter; *present tells whether it was there at all. */
static long long param(goro_http_request *r, const char *key, bool *present, bool *valid)
{
    char v[64];
    *present = false;
    *valid = true;
    if (goro_http_query_value(goro_http_request_query(r), key, v, sizeof v) < 0)
        return 0;
    *present = true;
    char *end;
    long long x = strtoll(v, &end, 10);
    *valid = v[0] && !*end;
    return x;
}

static void serve_cpu(goro_http_response *w, goro_http_request *r)
{
    bool present, valid;
    long long sec = param(r, "seconds", &present, &valid);
    if (!present || !valid || sec <= 0)
        sec = 30;
    unsigned char *out;
    size_t len;
    int rc = goro__cpu_profile_render(sec, &out, &len);
    if (rc == -EBUSY) {
        serve_error(w, 500, "Could not enable CPU profiling: cpu profiling already in use");
        return;
    }
    if (rc) {
        char msg[128];
        snprintf(msg, sizeof msg, "Could not enable CPU profiling: %s", strerror(-rc));
        serve_error(w, 500, msg);
        return;
    }
    goro_http_response_set_header(w, "Content-Disposition", "attachment; filename=\"profile\"");
    goro_http_response_send(w, 200, "application/octet-stream", out, len);
    free(out);
}

/* Dumps (debug=2) are streamed into the response as they are written. */
typedef struct stream_ctx {
    goro_http_response *w;
    bool started;
} stream_ctx;

static int stream_response(const void *buf, size_t len, void *arg)
{
    stream_ctx *sc = arg;
    if (!sc->started) {
        sc->started = true;
        goro_http_response_set_header(sc->w, "Content-Type", "text/plain; charset=utf-8");
        goro_http_response_set_status(sc->w, 200);
    }
    ssize_t n = goro_http_response_write(sc->w, buf, len);
    return n < 0 ? (int)n : 0;
}

static void serve_profile(goro_http_response *w, goro_http_request *r, const char *name)
{
    bool dpresent, dvalid, spresent, svalid;
    long long debug = param(r, "debug", &dpresent, &dvalid);
    if (!dvalid)
        debug = 0; /* Go: strconv.Atoi error -> 0 */
    long long sec = param(r, "seconds", &spresent, &svalid);
    if (spresent && debug != 0) {
        serve_error(w, 400, "seconds and debug params are incompatible");
        return;
    }
    if (spresent && (!svalid || sec <= 0)) {
        serve_error(w, 400, "invalid value for \"seconds\"");
        return;
    }
    unsigned char *out;
    size_t len;
    const char *ctype;
    stream_ctx sc = {.w = w};
    int rc = goro__profile_render(name, (int)debug, spresent ? sec : 0, stream_response, &sc, &out,
                                  &len, &ctype);
    if (sc.started) /* a dump went out as it was written; an error now can only cut it short */
        return;
    if (rc == -ENOENT) {
        serve_error(w, 404, "Unknown profile");
        return;
    }
    if (rc) {
        char msg[160];
        snprintf(msg, sizeof msg, "Could not write %s profile: %s", name, strerror(-rc));
        serve_error(w, 500, msg);
        return;
    }
    if (debug == 0) {
        char disp[128];
        snprintf(disp, sizeof disp, "attachment; filename=\"%s%s\"", name, spresent ? "-delta" : "");
        goro_http_response_set_header(w, "Content-Disposition", disp);
    }
    goro_http_response_send(w, 200, ctype, out, len);
    free(out);
}

/* ---- /debug/goro/leaks ---------------------------------------------------------- */

static void json_str(goro__membuf *b, const char *s)
{
    append(b, "\"");
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            esc[2] = 0;
            append(b, esc);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            append(b, esc);
        } else {
            goro__sink_mem(&c, 1, b);
        }
    }
    append(b, "\"");
}

static void json_frame(goro__membuf *b, const goro_frame *f)
{
    char num[32];
    append(b, "{\"func\":");
    json_str(b, f->func);
    append(b, ",\"file\":");
    json_str(b, f->file);
    snprintf(num, sizeof num, ",\"line\":%d}", f->line);
    append(b, num);
}

static void serve_leaks(goro_http_response *w, goro_http_request *r)
{
    goro_leak_suspect *v;
    size_t n;
    if (goro_watchdog_suspects(&v, &n)) {
        serve_error(w, 500, "out of memory");
        return;
    }
    char fmt[16] = "";
    goro_http_query_value(goro_http_request_query(r), "format", fmt, sizeof fmt);
    goro__membuf b = {0};
    char line[256];
    int64_t now = goro_now();
    if (!strcmp(fmt, "json")) {
        snprintf(line, sizeof line, "{\"watchdog\":\"%s\",\"reports_total\":%" PRIu64 ",\"suspects\":[",
                 goro__watchdog_enabled() ? "on" : "off", goro_watchdog_reports_total());
        append(&b, line);
        for (size_t i = 0; i < n; i++) {
            const goro_leak_suspect *s = &v[i];
            snprintf(line, sizeof line,
                     "%s{\"count\":%zu,\"growth_per_sec\":%.1f,\"oldest_wait_seconds\":%.3f,"
                     "\"reported_seconds_ago\":%.3f,\"reason\":",
                     i ? "," : "", s->count, s->growth_per_sec, (double)s->oldest_wait_ns / 1e9,
                     (double)(now - s->first_reported) / 1e9);
            append(&b, line);
            json_str(&b, s->reason);
            append(&b, ",\"wait_site\":");
            json_frame(&b, &s->wait_site);
            append(&b, ",\"created_by\":[");
            for (size_t k = 0; k < s->ncreated; k++) {
                if (k)
                    append(&b, ",");
                json_frame(&b, &s->created[k]);
            }
            snprintf(line, sizeof line, "],\"stack_bytes\":%" PRIu64 ",\"hint\":", s->stack_bytes);
            append(&b, line);
            json_str(&b, s->hint);
            append(&b, ",\"message\":");
            json_str(&b, s->message);
            snprintf(line, sizeof line,
                     ",\"state\":\"%s\",\"judged\":%zu,\"unreachable\":%zu,"
                     "\"settled_seconds_ago\":",
                     goro__leak_state_str(s->state), s->judged, s->unreachable);
            append(&b, line);
            if (s->settled_at)
                snprintf(line, sizeof line, "%.3f", (double)(now - s->settled_at) / 1e9);
            else
                snprintf(line, sizeof line, "null");
            append(&b, line);
            append(&b, ",\"verdict\":");
            json_str(&b, s->verdict);
            snprintf(line, sizeof line, ",\"retained_bytes\":%" PRIu64 ",\"channel\":",
                     s->retained_bytes);
            append(&b, line);
            if (s->on_chan) {
                append(&b, "{\"made_at\":");
                json_frame(&b, &s->chan_made);
                snprintf(line, sizeof line, ",\"capacity\":%zu}", s->chan_cap);
                append(&b, line);
            } else {
                append(&b, "null");
            }
            append(&b, "}");
        }
        append(&b, "]}\n");
        goro_http_response_send(w, 200, "application/json", b.data, b.len);
    } else {
        if (!goro__watchdog_enabled()) {
            snprintf(line, sizeof line,
                     "goro leak watchdog: off (GORO_WATCHDOG=0 or goro_watchdog_configure): "
                     "no leak is being watched for; %zu suspect%s listed from before, "
                     "%" PRIu64 " reported since start\n",
                     n, n == 1 ? "" : "s", goro_watchdog_reports_total());
        } else {
            snprintf(line, sizeof line,
                     "goro leak watchdog: %zu suspect%s (%" PRIu64 " reported since start)\n", n,
                     n == 1 ? "" : "s", goro_watchdog_reports_total());
        }
        append(&b, line);
        for (size_t i = 0; i < n; i++) {
            append(&b, "\n");
            append(&b, v[i].message ? v[i].message : "?");
            snprintf(line, sizeof line,
                     "\n    now: %zu goroutines, growing %.0f/s, oldest waiting %.0fs; state: %s\n",
                     v[i].count, v[i].growth_per_sec, (double)v[i].oldest_wait_ns / 1e9,
                     goro__leak_state_str(v[i].state));
            append(&b, line);
            if (v[i].verdict) {
                append(&b, "    ");
                append(&b, v[i].verdict);
                append(&b, "\n");
            }
        }
        append(&b, "\nReachability check (stops the world briefly): /debug/pprof/goroutineleak?debug=1\n");
        goro_http_response_send(w, 200, "text/plain; charset=utf-8", b.data, b.len);
    }
    free(b.data);
    goro_watchdog_suspects_free(v, n);
}

/* ---- dispatch --------------------------------------------------------------------- */

void goro_debug_handler(goro_http_response *w, goro_http_request *r, void *arg)
{
    (void)arg;
    const char *path = goro_http_request_path(r);
    nosniff(w);
    if (!strcmp(path, "/metrics")) {
        goro__membuf b = {0};
        if (goro__metrics_render(&b) != 0) {
            free(b.data);
            serve_error(w, 500, "could not gather metrics");
            return;
        }
        goro_http_response_send(w, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
        free(b.data);
        return;
    }
    if (!strcmp(path, "/debug/goro/leaks")) {
        serve_leaks(w, r);
        return;
    }
    const char *prefix = "/debug/pprof/";
    size_t pl = strlen(prefix);
    if (strncmp(path, prefix, pl) != 0) {
        if (!strcmp(path, "/debug/pprof")) {
            goro_http_response_set_header(w, "Location", "/debug/pprof/");
            goro_http_response_send(w, 301, NULL, NULL, 0);
            return;
        }
        goro_http_error(w, 404, "404 page not found");
        return;
    }
    const char *name = path + pl;
    if (!*name)
        serve_index(w);
    else if (!strcmp(name, "cmdline"))
        serve_cmdline(w);
    else if (!strcmp(name, "symbol"))
        serve_symbol(w, r);
    else if (!strcmp(name, "profile"))
        serve_cpu(w, r);
    else
        serve_profile(w, r, name);
}

int goro_debug_mount(goro_http_mux *mux)
{
    int rc = goro_http_mux_handle(mux, "/debug/pprof/", goro_debug_handler, NULL);
    if (!rc)
        rc = goro_http_mux_handle(mux, "/debug/goro/", goro_debug_handler, NULL);
    if (!rc)
        rc = goro_http_mux_handle(mux, "/metrics", goro_debug_handler, NULL);
    return rc;
}

/* ---- a server of its own ---------------------------------------------------------- */

struct goro_debug_server {
    goro_http_server *srv;
    goro_listener *l;
    goro_waitgroup done;
    char addr[80];
};

static bool loopback(const char *addr)
{
    return !strncmp(addr, "127.", 4) || !strncmp(addr, "[::1]:", 6);
}

static void serve_fn(void *arg)
{
    goro_debug_server *d = arg;
    goro_http_serve(d->srv, d->l);
    goro_waitgroup_done(&d->done);
}

int goro_debug_serve(const char *addr, bool allow_remote, goro_debug_server **out)
{
    if (!out)
        return -EINVAL;
    if (!goro__getg())
        return -EPERM;
    if (!addr)
        addr = getenv("GORO_DEBUG_ADDR");
    if (!addr || !*addr)
        addr = "127.0.0.1:6060";
    if (!loopback(addr) && !allow_remote)
        return -EACCES;
    goro_debug_server *d = calloc(1, sizeof *d);
    if (!d)
        return -ENOMEM;
    goro_http_server_opts o = {.handler = goro_debug_handler,
                               /* a CPU profile may take minutes to answer */
                               .write_timeout = -1};
    int rc = goro_http_server_create(&o, &d->srv);
    if (rc == 0)
        rc = goro_listen_tcp(addr, 0, &d->l);
    if (rc == 0)
        rc = goro_listener_addr(d->l, d->addr, sizeof d->addr);
    if (rc == 0) {
        goro_waitgroup_add(&d->done, 1);
        rc = goro_go_named(serve_fn, d, "goro-debug-server");
        if (rc)
            goro_waitgroup_done(&d->done);
    }
    if (rc) {
        if (d->l)
            goro_listener_close(d->l);
        if (d->srv)
            goro_http_server_free(d->srv);
        free(d);
        return rc;
    }
    *out = d;
    return 0;
}

const char *goro_debug_server_addr(const goro_debug_server *s) { return s ? s->addr : NULL; }

int goro_debug_server_stop(goro_debug_server *d, int64_t deadline)
{
    if (!d)
        return -EINVAL;
    int rc = goro_http_server_shutdown(d->srv, deadline);
    goro_waitgroup_wait(&d->done);
    goro_http_server_free(d->srv);
    free(d);
    return rc == -ETIMEDOUT ? rc : 0;
}

/* ---- without HTTP --------------------------------------------------------------------- */

int goro_write_profile(const char *name, int debug, int fd)
{
    if (!name)
        return -EINVAL;
    unsigned char *out;
    size_t len;
    const char *ctype;
    int rc = goro__profile_render(name, debug, 0, goro__sink_fd, &fd, &out, &len, &ctype);
    if (rc || !out) /* dumps are written to fd as they are produced */
        return rc;
    rc = goro__write_all(fd, out, len);
    free(out);
    return rc;
}

int goro_write_cpu_profile(int64_t seconds, int fd)
{
    unsigned char *out;
    size_t len;
    int rc = goro__cpu_profile_render(seconds, &out, &len);
    if (rc)
        return rc;
    rc = goro__write_all(fd, out, len);
    free(out);
    return rc;
}
