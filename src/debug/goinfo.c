/*
 * goinfo.c - symbolized goroutine descriptions (goinfo.h).
 */
#include "debug/goinfo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void goro__frame_of(goro__symcache *c, uintptr_t pc, bool exact, goro_frame *out)
{
    const goro__sym *s = goro__symcache_get(c, exact ? pc : pc - 1);
    /* The innermost inline frame is where the call physically is. */
    const goro__sym_frame *f = &s->frames[0];
    out->pc = pc;
    out->func = f->func ? f->func : (s->frames[s->nframes - 1].func ? s->frames[s->nframes - 1].func : "?");
    out->file = f->file ? f->file : "?";
    out->line = f->line;
}

/* goro's internal frames (goroutine entry, the leak checker's own main)
 * end a stack or a creation chain. */
static bool is_entry(const goro_frame *f) { return strncmp(f->func, "goro__", 6) == 0; }

int goro__goinfo_from_snap(goro__symcache *c, const goro__gsnap *s, int64_t now,
                           goro_goroutine_info *info)
{
    memset(info, 0, sizeof *info);
    info->id = s->id;
    info->parent_id = s->info.parent_id;
    info->stack_bytes = s->stack_bytes;
    info->name = s->name[0] ? strdup(s->name) : NULL;
    switch (s->state) {
    case GORO__G_WAITING:
        info->state = goro__wait_reason_str(s->wait_reason);
        info->blocked = true;
        info->hint = goro__leak_hint(s->wait_reason, false, 0);
        info->wait_ns = s->wait_since && now > s->wait_since ? now - s->wait_since : 0;
        break;
    case GORO__G_RUNNABLE:
        info->state = "runnable";
        break;
    case GORO__G_SYSCALL:
        info->state = "syscall";
        break;
    default:
        info->state = "running";
    }
    uint32_t n = s->newborn ? 1 : s->npc;
    info->stack = n ? calloc(n, sizeof *info->stack) : NULL;
    if (n && !info->stack)
        return -ENOMEM;
    if (s->newborn) {
        goro__frame_of(c, (uintptr_t)s->info.fn, true, &info->stack[0]);
        info->nstack = 1;
    } else {
        for (uint32_t i = 0; i < n; i++) {
            goro_frame f;
            goro__frame_of(c, s->pc[i], false, &f);
            if (i == 0) {
                /* The public call a goroutine is blocked in: name the
                 * function itself, not goro's helpers inlined into it. */
                const goro__sym *sym = goro__symcache_get(c, s->pc[i] - 1);
                const char *outer = sym->frames[sym->nframes - 1].func;
                if (outer)
                    f.func = outer;
            }
            if (is_entry(&f))
                break;
            info->stack[info->nstack++] = f;
        }
        /* A wait reached by a tail call (-O2 without
         * -fno-optimize-sibling-calls) returns straight into goro's entry:
         * the function that made it has no frame. Name the goroutine's own
         * function rather than nothing. */
        if (!goro__goinfo_top(info) && s->info.fn && info->nstack < n)
            goro__frame_of(c, (uintptr_t)s->info.fn, true, &info->stack[info->nstack++]);
    }
    if (s->info.parent_id) {
        uint32_t k = s->info.npc;
        info->created = calloc(k ? k : 1, sizeof *info->created);
        if (!info->created)
            return -ENOMEM;
        /* Each creation pc with its inlined callers (innermost first). */
        size_t cap = k ? k : 1;
        for (uint32_t i = 0; i < k; i++) {
            const goro__sym *sym = goro__symcache_get(c, s->info.pc[i] - 1);
            bool stop = false;
            for (uint32_t j = 0; j < sym->nframes; j++) {
                goro_frame f = {.pc = s->info.pc[i],
                                .func = sym->frames[j].func ? sym->frames[j].func : "?",
                                .file = sym->frames[j].file ? sym->frames[j].file : "?",
                                .line = sym->frames[j].line};
                if (is_entry(&f)) {
                    stop = true;
                    break;
                }
                if (info->ncreated == cap) {
                    goro_frame *nc = realloc(info->created, 2 * cap * sizeof *nc);
                    if (!nc)
                        return -ENOMEM;
                    info->created = nc;
                    cap *= 2;
                }
                info->created[info->ncreated++] = f;
            }
            if (stop)
                break;
        }
        /* goro_go's own __FILE__/__LINE__/__func__ are exact even when the
         * spawning code has no debug information. */
        if (s->info.file && (!info->ncreated || !strcmp(info->created[0].file, "?"))) {
            /* No debug information for the spawning code: goro_go's
             * __FILE__/__LINE__/__func__ are still exact. */
            if (!info->ncreated)
                info->ncreated = 1;
            info->created[0].file = s->info.file;
            info->created[0].line = s->info.line;
            if (s->info.func)
                info->created[0].func = s->info.func;
        }
    }
    return 0;
}

void goro__goinfo_release(goro_goroutine_info *info)
{
    free((void *)info->name);
    free(info->stack);
    free(info->created);
    memset(info, 0, sizeof *info);
}

const goro_frame *goro__goinfo_top(const goro_goroutine_info *info)
{
    for (size_t i = 0; i < info->nstack; i++)
        if (strncmp(info->stack[i].func, "goro_", 5) != 0)
            return &info->stack[i];
    return NULL;
}

const char *goro__short_file(const char *file)
{
    static __thread char cwd[4096];
    static __thread size_t cwdlen;
    if (!file)
        return "?";
    if (!cwdlen && getcwd(cwd, sizeof cwd))
        cwdlen = strlen(cwd);
    if (cwdlen > 1 && strncmp(file, cwd, cwdlen) == 0 && file[cwdlen] == '/')
        return file + cwdlen + 1;
    return file;
}

void goro__fmt_duration(char *buf, size_t len, int64_t ns)
{
    if (ns < GORO_SECOND)
        snprintf(buf, len, "%lldms", (long long)(ns / GORO_MILLISECOND));
    else if (ns < 60 * GORO_SECOND)
        snprintf(buf, len, "%llds", (long long)(ns / GORO_SECOND));
    else if (ns < 3600 * GORO_SECOND)
        snprintf(buf, len, "%lldm", (long long)(ns / (60 * GORO_SECOND)));
    else
        snprintf(buf, len, "%lldh%lldm", (long long)(ns / (3600 * GORO_SECOND)),
                 (long long)(ns % (3600 * GORO_SECOND) / (60 * GORO_SECOND)));
}

const char *goro__leak_hint(unsigned reason, bool on_chan, size_t cap)
{
    switch (reason) {
    case GORO__WAIT_CHAN_SEND:
        if (on_chan && cap == 0)
            return "an unbuffered send nobody receives: give the channel capacity 1 (for a "
                   "single result) so the sender can finish, or receive it";
        if (on_chan)
            return "a send on a full channel nobody receives from: receive the values, or make "
                   "the sender give up when the receiver is gone (select on a done channel or a "
                   "context)";
        return "a send nobody receives: receive it, or give the channel room for the value "
               "(capacity 1 for a single result) so the sender can finish";
    case GORO__WAIT_CHAN_RECV:
        return "a receive on a channel nobody sends on or closes: close it when the producer "
               "is done, or also wait on a done channel or a context";
    case GORO__WAIT_SELECT:
        return "a select none of whose cases can proceed: add a case on a done channel or a "
               "context that is cancelled when the work is abandoned";
    case GORO__WAIT_SELECT_NO_CASES:
        return "a select with no cases (or only NULL channels) blocks forever";
    case GORO__WAIT_MUTEX:
    case GORO__WAIT_RWMUTEX_RLOCK:
    case GORO__WAIT_RWMUTEX_LOCK:
        return "a lock never released: its holder is itself blocked or leaked, or an unlock "
               "is skipped on some path";
    case GORO__WAIT_WAITGROUP:
        return "WaitGroup.Wait with more Add than Done: every Add needs a Done on every path";
    case GORO__WAIT_COND:
        return "Cond.Wait nobody signals: Signal or Broadcast after changing the condition";
    case GORO__WAIT_ONCE:
        return "Once.Do waiting for an initialization that never returns";
    case GORO__WAIT_CTX:
        return "a wait on a context nobody cancels: call the cancel function of every "
               "context you create, also on the early-return paths";
    default:
        return NULL;
    }
}

void goro__fmt_bytes(char *buf, size_t len, uint64_t b)
{
    if (b < 1024)
        snprintf(buf, len, "%llu B", (unsigned long long)b);
    else if (b < (1u << 20))
        snprintf(buf, len, "%.1f KiB", (double)b / 1024);
    else if (b < (1ull << 30))
        snprintf(buf, len, "%.1f MiB", (double)b / (1 << 20));
    else
        snprintf(buf, len, "%.1f GiB", (double)b / (1ull << 30));
}
