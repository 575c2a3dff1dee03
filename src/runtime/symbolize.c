/*
 * symbolize.c - the symbolizer (see symbolize.h).
 *
 * One libbacktrace state per process, created on first use (thread-safe
 * mode); libbacktrace cannot free it, so it is kept across runtime restarts.
 * DWARF line tables give inline chains; when an object has no debug
 * information the ELF symbol table still gives the function name.
 */
#include "runtime/symbolize.h"

#include <backtrace.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct backtrace_state *bt_state;
static pthread_once_t bt_once = PTHREAD_ONCE_INIT;

static void bt_error(void *data, const char *msg, int errnum)
{
    (void)data;
    (void)msg;
    (void)errnum;
}

static void bt_init(void) { bt_state = backtrace_create_state(NULL, 1, bt_error, NULL); }

/* libbacktrace (gcc 12) joins DWARF 5's compilation directory to a file
 * name that is already absolute, as clang writes them: "/build//src/a.c".
 * Keep the absolute part (the string is libbacktrace's and lives on). */
static const char *clean_file(const char *file)
{
    const char *dd = file ? strstr(file, "//") : NULL;
    return dd ? dd + 1 : file;
}

static int pcinfo_cb(void *data, uintptr_t pc, const char *file, int line, const char *func)
{
    (void)pc;
    goro__sym *s = data;
    if (!func && !file)
        return 0;
    file = clean_file(file);
    if (s->nframes < GORO__SYM_INLINE_MAX) {
        s->frames[s->nframes].func = func;
        s->frames[s->nframes].file = file;
        s->frames[s->nframes].line = line;
        s->nframes++;
    } else {
        /* Too deep an inline chain: keep the outermost in the last slot. */
        s->frames[GORO__SYM_INLINE_MAX - 1].func = func;
        s->frames[GORO__SYM_INLINE_MAX - 1].file = file;
        s->frames[GORO__SYM_INLINE_MAX - 1].line = line;
    }
    return 0;
}

static void syminfo_cb(void *data, uintptr_t pc, const char *name, uintptr_t val, uintptr_t size)
{
    (void)pc;
    (void)size;
    goro__sym *s = data;
    s->entry = val;
    if (s->nframes == 0 && name) {
        s->frames[0].func = name;
        s->frames[0].file = NULL;
        s->frames[0].line = 0;
        s->nframes = 1;
    } else if (s->nframes > 0 && !s->frames[s->nframes - 1].func && name) {
        s->frames[s->nframes - 1].func = name;
    }
}

void goro__symbolize(uintptr_t pc, goro__sym *out)
{
    memset(out, 0, sizeof *out);
    out->pc = pc;
    pthread_once(&bt_once, bt_init);
    if (bt_state) {
        backtrace_pcinfo(bt_state, pc, pcinfo_cb, bt_error, out);
        backtrace_syminfo(bt_state, pc, syminfo_cb, bt_error, out);
    }
    if (out->nframes == 0) {
        out->nframes = 1;
        out->frames[0].func = NULL;
    }
}

/* ---- cache: open addressing on the pc ----------------------------------- */

struct goro__symcache {
    size_t cap, n;
    goro__sym *slots; /* pc == 0: empty */
};

goro__symcache *goro__symcache_new(void)
{
    goro__symcache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->cap = 1024;
    c->slots = calloc(c->cap, sizeof *c->slots);
    if (!c->slots) {
        free(c);
        return NULL;
    }
    return c;
}

static size_t hash_pc(uintptr_t pc) { return (size_t)((pc * 0x9E3779B97F4A7C15ull) >> 17); }

static bool grow(goro__symcache *c)
{
    size_t ncap = c->cap * 2;
    goro__sym *ns = calloc(ncap, sizeof *ns);
    if (!ns)
        return false;
    for (size_t i = 0; i < c->cap; i++) {
        if (!c->slots[i].pc)
            continue;
        size_t j = hash_pc(c->slots[i].pc) & (ncap - 1);
        while (ns[j].pc)
            j = (j + 1) & (ncap - 1);
        ns[j] = c->slots[i];
    }
    free(c->slots);
    c->slots = ns;
    c->cap = ncap;
    return true;
}

const goro__sym *goro__symcache_get(goro__symcache *c, uintptr_t pc)
{
    static __thread goro__sym scratch;
    if (!c || pc == 0) {
        goro__symbolize(pc, &scratch);
        return &scratch;
    }
    size_t j = hash_pc(pc) & (c->cap - 1);
    while (c->slots[j].pc) {
        if (c->slots[j].pc == pc)
            return &c->slots[j];
        j = (j + 1) & (c->cap - 1);
    }
    if ((c->n + 1) * 2 > c->cap) {
        if (!grow(c)) {
            goro__symbolize(pc, &scratch);
            return &scratch;
        }
        return goro__symcache_get(c, pc);
    }
    goro__symbolize(pc, &c->slots[j]);
    c->n++;
    return &c->slots[j];
}

void goro__symcache_free(goro__symcache *c)
{
    if (!c)
        return;
    free(c->slots);
    free(c);
}

void goro__format_site(char *buf, size_t len, const goro__spawn_info *info)
{
    if (info->file) {
        snprintf(buf, len, "%s:%d in %s", info->file, info->line,
                 info->func ? info->func : "?");
        return;
    }
    if (info->npc) {
        goro__sym s;
        goro__symbolize(info->pc[0] - 1, &s);
        const goro__sym_frame *f = &s.frames[0];
        snprintf(buf, len, "%s:%d in %s", f->file ? f->file : "?", f->line,
                 f->func ? f->func : "?");
        return;
    }
    snprintf(buf, len, "%s", info->func ? info->func : "?");
}
