/*
 * dump.c - every goroutine in the shape of Go's crash dump (goroutine
 * profile debug=2), for goro_dump, the deadlock report and SIGQUIT:
 *
 *     goroutine 6 [chan send, 2 minutes]:
 *     goro_chan_send(...)
 *     	/src/chan/chan.c:301 +0x8c
 *     run_async_worker(...)
 *     	/src/service.c:19 +0x2a
 *     created by run_async in goroutine 1
 *     	/src/service.c:17 +0x73
 *     	<- handle_work at /src/service.c:31 +0x20
 *
 * Go's shape plus goro's deeper creation frames ("<- f at file:line") and
 * the optional goroutine name as a last bracket attribute (`name "x"`).
 * The caller comes first as [running]; a goroutine running on another
 * thread is listed with Go's "goroutine running on other thread; stack
 * unavailable". Goroutines are read one at a time through consistent
 * snapshots (g.h): nothing is stopped, the output is streamed through a
 * 64 KiB buffer and never truncated.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/sched.h"
#include "runtime/symbolize.h"
#include "runtime/unwind.h"

typedef struct wbuf {
    goro__sink sink;
    void *sink_arg;
    int err;
    size_t n;
    char buf[65536];
} wbuf;

static void wb_flush(wbuf *w)
{
    if (w->n && !w->err) {
        int rc = w->sink(w->buf, w->n, w->sink_arg);
        if (rc)
            w->err = rc;
    }
    w->n = 0;
}

int goro__sink_fd(const void *buf, size_t len, void *arg)
{
    return goro__write_all(*(int *)arg, buf, len);
}

int goro__sink_mem(const void *buf, size_t len, void *arg)
{
    goro__membuf *m = arg;
    if (m->len + len > m->cap) {
        size_t ncap = m->cap ? m->cap : 65536;
        while (ncap < m->len + len)
            ncap *= 2;
        unsigned char *np = realloc(m->data, ncap);
        if (!np)
            return -ENOMEM;
        m->data = np;
        m->cap = ncap;
    }
    memcpy(m->data + m->len, buf, len);
    m->len += len;
    return 0;
}

static void wb_put(wbuf *w, const char *s, size_t len)
{
    while (len) {
        if (w->n == sizeof w->buf)
            wb_flush(w);
        size_t k = sizeof w->buf - w->n;
        if (k > len)
            k = len;
        memcpy(w->buf + w->n, s, k);
        w->n += k;
        s += k;
        len -= k;
    }
}

static void wb_str(wbuf *w, const char *s) { wb_put(w, s, strlen(s)); }

__attribute__((format(printf, 2, 3))) static void wb_printf(wbuf *w, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof tmp) {
        wb_put(w, tmp, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big)
        return;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    wb_put(w, big, (size_t)n);
    free(big);
}

static const char *state_str(const goro__gsnap *s)
{
    switch (s->state) {
    case GORO__G_WAITING:
        return goro__wait_reason_str(s->wait_reason);
    case GORO__G_RUNNABLE:
        return "runnable";
    case GORO__G_RUNNING:
        return "running";
    case GORO__G_SYSCALL:
        return "syscall";
    default:
        return "dead";
    }
}

static void write_header(wbuf *w, const goro__gsnap *s, int64_t now, const char *suffix)
{
    wb_printf(w, "goroutine %llu [%s%s", (unsigned long long)s->id, state_str(s), suffix);
    if (s->state == GORO__G_WAITING && s->wait_since) {
        int64_t mins = (now - s->wait_since) / (60 * GORO_SECOND);
        if (mins >= 1)
            wb_printf(w, ", %lld minutes", (long long)mins);
    }
    if (s->name[0])
        wb_printf(w, ", name \"%s\"", s->name);
    wb_str(w, "]:\n");
}

/* The runtime's goroutine entry: hidden like Go hides runtime.goexit. */
static bool is_entry_frame(const goro__sym *s)
{
    const char *f = s->frames[s->nframes - 1].func;
    return f && strcmp(f, "goro__g_start") == 0;
}

/* One physical frame: its inline chain, innermost first. `ret`: pc is a
 * return address (look up pc - 1; print the offset of pc). `outer_only`:
 * print just the containing function (for the public call a goroutine is
 * blocked in, whose inlined internals are of no interest). */
static void write_frame(wbuf *w, goro__symcache *c, uintptr_t pc, bool ret, bool outer_only)
{
    const goro__sym *s = goro__symcache_get(c, ret ? pc - 1 : pc);
    if (is_entry_frame(s))
        return;
    for (uint32_t i = outer_only ? s->nframes - 1 : 0; i < s->nframes; i++) {
        const goro__sym_frame *f = &s->frames[i];
        bool outer = i + 1 == s->nframes;
        if (f->func)
            wb_printf(w, "%s(...)\n", f->func);
        else
            wb_printf(w, "?(...)\n");
        wb_printf(w, "\t%s:%d", f->file ? f->file : "?", f->line);
        if (outer && ret && s->entry && s->entry <= pc) /* no offset when the entry is unknown */
            wb_printf(w, " +0x%lx", (unsigned long)(pc - s->entry));
        wb_str(w, "\n");
    }
}

static void write_created_by(wbuf *w, goro__symcache *c, const goro__gsnap *s)
{
    const goro__spawn_info *in = &s->info;
    if (in->parent_id == 0)
        return;
    const goro__sym *sym = in->npc ? goro__symcache_get(c, in->pc[0] - 1) : NULL;
    const char *func = in->func;
    const char *file = in->file;
    int line = in->line;
    /* The debug information's path is the full one; goro_go's __FILE__ is
     * only as the compiler was given it. */
    if (sym && sym->frames[0].file) {
        file = sym->frames[0].file;
        line = sym->frames[0].line;
    }
    if (sym && sym->frames[0].func)
        func = sym->frames[0].func;
    wb_printf(w, "created by %s in goroutine %llu\n", func ? func : "?",
              (unsigned long long)in->parent_id);
    wb_printf(w, "\t%s:%d", file ? file : "?", line);
    if (sym && sym->entry)
        wb_printf(w, " +0x%lx", (unsigned long)(in->pc[0] - sym->entry));
    wb_str(w, "\n");
    /* The rest of the creation chain: the spawning function's inlined
     * callers first, then the deeper frames with theirs. */
    for (uint32_t k = 0; k < in->npc; k++) {
        const goro__sym *d = k ? goro__symcache_get(c, in->pc[k] - 1) : sym;
        if (!d || is_entry_frame(d))
            break;
        for (uint32_t i = k ? 0 : 1; i < d->nframes; i++) {
            const goro__sym_frame *f = &d->frames[i];
            wb_printf(w, "\t<- %s at %s:%d", f->func ? f->func : "?", f->file ? f->file : "?",
                      f->line);
            if (i + 1 == d->nframes && d->entry)
                wb_printf(w, " +0x%lx", (unsigned long)(in->pc[k] - d->entry));
            wb_str(w, "\n");
        }
    }
}

static void write_goroutine(wbuf *w, goro__symcache *c, const goro__gsnap *s, int64_t now,
                            bool self, const char *suffix)
{
    write_header(w, s, now, suffix);
    if (s->newborn) {
        write_frame(w, c, (uintptr_t)s->info.fn, false, false);
    } else if (s->state == GORO__G_RUNNING && !self) {
        wb_str(w, "\tgoroutine running on other thread; stack unavailable\n");
    } else {
        for (uint32_t i = 0; i < s->npc; i++)
            write_frame(w, c, s->pc[i], true, i == 0);
    }
    write_created_by(w, c, s);
    wb_str(w, "\n");
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Write all goroutines (or only o->only_ids, sorted). self_fp: frame of the
 * public function that asked (its caller's stack is shown for the calling
 * goroutine). */
GORO__NOINLINE int goro__dump_write(goro__sink sink, void *sink_arg, const char *header,
                                    uintptr_t self_fp, const goro__dump_opts *o)
{
    static const goro__dump_opts none = {0};
    if (!o)
        o = &none;
    const char *suffix = o->state_suffix ? o->state_suffix : "";
    wbuf *w = malloc(sizeof *w);
    goro__gsnap *s = malloc(sizeof *s);
    goro__symcache *c = goro__symcache_new();
    if (!w || !s) {
        free(w);
        free(s);
        goro__symcache_free(c);
        return -ENOMEM;
    }
    w->sink = sink;
    w->sink_arg = sink_arg;
    w->err = 0;
    w->n = 0;
    if (header)
        wb_str(w, header);
    int64_t now = goro__coarsetime();
    goro__g *self = goro__getg();
    uint32_t self_slot = UINT32_MAX;
    if (self && o->only_ids)
        self_slot = self->base.slot; /* a filtered dump never lists its caller */
    else if (self) {
        self_slot = self->base.slot;
        memset(s, 0, sizeof *s);
        s->id = self->base.id;
        s->state = GORO__G_RUNNING;
        s->info = self->info;
        s->info.arg = NULL;
        memcpy(s->name, self->name, GORO_NAME_MAX);
        /* The public function's own frame first, then its callers. */
        uintptr_t fps[GORO__ARRAY_LEN(s->pc)];
        uint32_t n = goro__unwind_fp((uintptr_t)__builtin_frame_address(0), self->stack_lo,
                                     self->stack_hi, s->pc, fps, GORO__ARRAY_LEN(s->pc));
        uint32_t skip = 0;
        for (uint32_t i = 0; i < n; i++)
            if (fps[i] == self_fp) {
                skip = i;
                break;
            }
        memmove(s->pc, s->pc + skip, (n - skip) * sizeof s->pc[0]);
        s->npc = n - skip;
        write_goroutine(w, c, s, now, true, "");
    }
    uint32_t lim = goro__reg_limit();
    for (uint32_t i = 0; i < lim; i++) {
        GORO__SNAP_AHEAD(i, lim);
        if (i == self_slot)
            continue;
        if (!goro__gsnap_take(i, s))
            continue;
        if (o->only_ids && !bsearch(&s->id, o->only_ids, o->nonly, sizeof s->id, cmp_u64))
            continue;
        write_goroutine(w, c, s, now, false, suffix);
    }
    wb_flush(w);
    int err = w->err;
    free(w);
    free(s);
    goro__symcache_free(c);
    return err;
}

int goro__dump_all(int fd, const char *header)
{
    return goro__dump_write(goro__sink_fd, &fd, header, 0, NULL);
}

int goro_dump(int fd)
{
    if (!goro__running())
        return -ESRCH;
    return goro__dump_write(goro__sink_fd, &fd, NULL, (uintptr_t)__builtin_frame_address(0), NULL);
}
